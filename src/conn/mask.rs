//! Passwords hidden in what pgkick shows or records: `--audit-log` records pgkick's arguments,
//! and error messages quote connection strings.
//!
//! A connection string is masked by reading it the way libpq reads it (the parsers of
//! `uri.rs` and `key_value.rs`, so a URI's keys and values are percent-decoded and every
//! spelling of the password counts: `user:pw@`, `?password=`, `?pass%77ord=`, a quoted
//! conninfo value with escapes, a second `password=`) and writing it again with the password
//! replaced by [`MASK`]. The text may be a whole argument: `--dbname=...`, `--pgbouncer=...`
//! and `-d...` (a cluster of short flags) are split before the value.
//!
//! Text that is not a connection string libpq accepts can still hold a password: a URI with
//! a typo (`postgresql://u:pw@[::1`), a SQLAlchemy-style `postgresql+psycopg://u:pw@h`, or a
//! `password=` inside a value or a reason. For those, [`hide_lookalikes`] errs on the side of
//! hiding: any `scheme://user:...@` and the value of any key that percent-decodes to
//! `password` (any case) are masked, with the widest extent either syntax could give it. It
//! also runs over the parsed-and-rewritten text, for lookalikes inside values (a dbname that
//! is itself a URI). It is a text-level safety net, not the reading of record: where libpq
//! says there is a password, the parser has already removed it.

use super::key_value::render_conninfo;
use super::lookalikes::{hide_lookalikes, MASK};
use super::options::{expand, is_connection_string, Origin};
use super::uri::{render_uri, uri_prefix_len};

/// `text` with every password in it replaced by [`MASK`] (see the module comment).
pub fn mask_passwords(text: &str) -> String {
    let rewritten = split_candidates(text).find_map(|(prefix, value)| {
        let (mut opts, origin) = expand(value).ok()??;
        if let Some(p) = opts.get_mut("password") {
            *p = MASK.to_string();
        }
        let value = match origin {
            Origin::Uri => render_uri(&value[..uri_prefix_len(value)], &opts),
            _ => render_conninfo(&opts),
        };
        Some(format!("{prefix}{value}"))
    });
    hide_lookalikes(rewritten.as_deref().unwrap_or(text))
}

/// The ways `text` may be `prefix` + connection string, longest value first: the whole text;
/// after the first `=` of a long option (`--dbname=...`); after the flag letters of a short
/// option cluster (`-d...`, `-wd...`).
fn split_candidates(text: &str) -> impl Iterator<Item = (&str, &str)> {
    let whole = std::iter::once(("", text));
    let long = text
        .strip_prefix("--")
        .and_then(|_| text.find('='))
        .map(|eq| text.split_at(eq + 1));
    let cluster_len = match text.strip_prefix('-') {
        Some(rest) if !rest.starts_with('-') => {
            rest.bytes().take_while(u8::is_ascii_alphabetic).count()
        }
        _ => 0,
    };
    let short = (2..=cluster_len + 1).map(move |i| text.split_at(i));
    whole
        .chain(long)
        .chain(short)
        .filter(|(_, value)| is_connection_string(value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::options::expand;

    /// The password text, and any run of 3+ of its characters, is gone; the mask is fixed.
    fn assert_hidden(masked: &str, secret: &str) {
        let chars: Vec<char> = secret.chars().collect();
        for w in chars.windows(3.min(chars.len())) {
            let w: String = w.iter().collect();
            assert!(!masked.contains(&w), "{w:?} of {secret:?} in {masked:?}");
        }
        assert!(masked.contains(MASK), "no mask in {masked:?}");
        assert!(!masked.contains(&"*".repeat(MASK.len() + 1)), "{masked:?}");
    }

    /// What `masked` says the options are, re-read as libpq would.
    fn reread(masked: &str) -> crate::conn::keywords::Options {
        expand(masked).unwrap().unwrap().0
    }

    #[test]
    fn every_spelling_of_a_uri_password_is_masked() {
        let cases = [
            ("postgresql://alice:s3cr%40tXYZ@db1:5432/app", "s3cr%40tXYZ"),
            ("postgres://db1/app?password=hunter2XYZ", "hunter2XYZ"),
            (
                "postgresql://db1/postgres?pass%77ord=hunter2XYZ",
                "hunter2XYZ",
            ),
            (
                "postgresql://db1/postgres?%70assword=hunter2XYZ",
                "hunter2XYZ",
            ),
            (
                "postgresql://db1/?%70%61%73%73%77%6f%72%64=hunter2XYZ",
                "hunter2XYZ",
            ),
            (
                "postgresql://u:first1XYZ@h/?password=second2XYZ",
                "first1XYZ",
            ),
            (
                "postgresql://u:first1XYZ@h/?password=second2XYZ",
                "second2XYZ",
            ),
            (
                "postgresql://h?password=a%26bXYZ&sslmode=require",
                "a%26bXYZ",
            ),
        ];
        for (uri, secret) in cases {
            let masked = mask_passwords(uri);
            assert_hidden(&masked, secret);
            // What is left is a URI with the same options, the password being the mask.
            let mut want = reread(uri);
            want.insert("password".into(), MASK.into());
            assert_eq!(reread(&masked), want, "{uri} -> {masked}");
        }
        // An '@' left unencoded in a password: libpq takes the rest for the host, a person
        // for the password; it is hidden either way.
        let masked = mask_passwords("postgresql://alice:s3cr@tXYZ@db1/app");
        assert_hidden(&masked, "s3cr@tXYZ");
        assert_eq!(masked, "postgresql://alice:******@db1/app");
        let masked = mask_passwords("postgresql://alice:s3cr/tXYZ@db1/app");
        assert_hidden(&masked, "s3cr/tXYZ");
        assert_eq!(
            mask_passwords("postgresql://alice:s3cr%40t@db1:5432/app"),
            "postgresql://alice:******@db1:5432/app"
        );
        assert_eq!(
            mask_passwords("postgresql://db1/postgres?pass%77ord=secret"),
            "postgresql://:******@db1/postgres"
        );
    }

    #[test]
    fn every_spelling_of_a_conninfo_password_is_masked() {
        let cases = [
            ("host=db1 password=secretXYZ dbname=app", "secretXYZ"),
            (
                r"password = 'it\'s a secretXYZ' user=bob",
                r"it\'s a secretXYZ",
            ),
            (r"password=a\ bXYZ user=bob", r"a\ bXYZ"),
            ("password=first1XYZ host=h password=second2XYZ", "first1XYZ"),
            (
                "password=first1XYZ host=h password=second2XYZ",
                "second2XYZ",
            ),
            ("password='' host=h", "''"),
        ];
        for (conninfo, secret) in cases {
            let masked = mask_passwords(conninfo);
            assert_hidden(&masked, secret);
            let mut want = reread(conninfo);
            want.insert("password".into(), MASK.into());
            assert_eq!(reread(&masked), want, "{conninfo} -> {masked}");
        }
        assert_eq!(
            mask_passwords("host=db1 password=secret dbname=app"),
            "dbname=app host=db1 password=******"
        );
        // No password: the options are unchanged (written in a canonical order).
        assert_eq!(mask_passwords("xpassword=1"), "xpassword=1");
        assert_eq!(mask_passwords("host=h port=5"), "host=h port=5");
        for plain in [
            "postgresql://alice@db1/app",
            "postgresql:///app?host=/tmp",
            "app",
        ] {
            assert!(!mask_passwords(plain).contains(MASK), "{plain}");
        }
    }

    #[test]
    fn whole_arguments_are_split_before_the_value() {
        let cases = [
            "--dbname=postgresql://u:secretXYZ@h/db",
            "--dbname=host=h password=secretXYZ",
            "--pgbouncer=postgresql://h:6432/pgbouncer?pass%77ord=secretXYZ",
            "-dpostgresql://u:secretXYZ@h/db",
            "-dhost=h password=secretXYZ",
            "-wdhost=h pass%77ord=secretXYZ",
            "-wdpostgresql://h/?%70assword=secretXYZ",
        ];
        for arg in cases {
            let masked = mask_passwords(arg);
            assert_hidden(&masked, "secretXYZ");
            let flag = &arg[..arg.find(['p', 'h']).unwrap()];
            assert!(masked.starts_with(flag), "{arg} -> {masked}");
        }
        assert_eq!(
            mask_passwords("--dbname=postgres://u:p@[::1]/x?sslmode=require&password=two"),
            "--dbname=postgres://u:******@[::1]/x?sslmode=require"
        );
    }

    #[test]
    fn what_does_not_parse_is_masked_by_its_looks() {
        let cases = [
            ("postgresql://u:secretXYZ@[::1", "secretXYZ"),
            ("postgresql://u:sec/retXYZ@h/db?&", "sec/retXYZ"),
            ("postgresql+psycopg://u:secretXYZ@h/db", "secretXYZ"),
            ("postgresql://h/db?pass%77ord=secretXYZ&&", "secretXYZ"),
            ("postgresql://h/db?password=sec retXYZ&x", "sec retXYZ"),
            ("host=h password=secretXYZ hots=1", "secretXYZ"),
            ("host=h PASSWORD='sec ret XYZ' x", "sec ret XYZ"),
            ("--reason=rotate password=secretXYZ now", "secretXYZ"),
            ("dbname='postgresql://u:secretXYZ@h'", "secretXYZ"),
        ];
        for (text, secret) in cases {
            let masked = mask_passwords(text);
            assert_hidden(&masked, secret);
        }
        assert_eq!(
            mask_passwords("--reason=rotate password=secret now"),
            "--reason=rotate password=****** now"
        );
    }
}
