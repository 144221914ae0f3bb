//! Passwords hidden in what pgkick shows or records: `--audit-log` records pgkick's arguments,
//! and error messages quote connection strings.
//!
//! A connection string is masked by reading it the way libpq reads it (the parsers of
//! `uri.rs` and `conninfo.rs`, so a URI's keys and values are percent-decoded and every
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

use std::sync::OnceLock;

use regex::Regex;

use super::conninfo::render_conninfo;
use super::options::{expand, is_connection_string, Origin};
use super::uri::{render_uri, uri_prefix_len};

/// What a password is replaced with: a fixed string, so that not even its length shows.
pub const MASK: &str = "******";

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

/// Masks what only looks like a password, erring on the side of hiding (see the module
/// comment): the password of `scheme://user:password@` (up to the last `@` before a blank)
/// and the value of every `password=` key, however percent-encoded or capitalised.
pub fn hide_lookalikes(text: &str) -> String {
    static PATTERNS: OnceLock<(Regex, Regex)> = OnceLock::new();
    let (credentials, key) = PATTERNS.get_or_init(|| {
        (
            Regex::new(r"([A-Za-z][A-Za-z0-9+.-]*:/+[^\s/:@]*:)\S*@").unwrap(),
            Regex::new(r"[A-Za-z0-9_%]+[ \t\r\n\x0b\x0c]*=[ \t\r\n\x0b\x0c]*").unwrap(),
        )
    });
    let text = credentials.replace_all(text, format!("${{1}}{MASK}@"));
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    while let Some(m) = key.find_at(&text, pos) {
        let name = m
            .as_str()
            .trim_end_matches(|c: char| c == '=' || c.is_ascii_whitespace());
        let starts_word = text[..m.start()]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_' || c == '%'));
        if !starts_word || !lossy_percent_decode(name).eq_ignore_ascii_case("password") {
            out.push_str(&text[pos..m.end()]);
            pos = m.end();
            continue;
        }
        let in_query = text[..m.start()].ends_with(['?', '&']);
        let end = m.end() + value_len(&text[m.end()..], in_query);
        out.push_str(&text[pos..m.end()]);
        out.push_str(MASK);
        pos = end;
    }
    out.push_str(&text[pos..]);
    out
}

/// The length of the value that starts `rest`: in a URI's query (`in_query`), up to the next
/// `&`; otherwise a conninfo value, single-quoted (to the closing quote, or the end) or up to
/// the next unescaped blank.
fn value_len(rest: &str, in_query: bool) -> usize {
    if in_query {
        return rest.find('&').unwrap_or(rest.len());
    }
    let mut chars = rest.char_indices();
    let quoted = rest.starts_with('\'');
    if quoted {
        chars.next();
    }
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '\'' if quoted => return i + 1,
            c if c.is_ascii_whitespace() && !quoted => return i,
            _ => {}
        }
    }
    rest.len()
}

/// Percent-decodes what can be decoded, keeping the rest as it is.
fn lossy_percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|_| bytes[i] == b'%')
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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
    fn reread(masked: &str) -> crate::conn::options::Options {
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
