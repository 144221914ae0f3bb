//! libpq's `key=value` connection strings (`-d "host=db1 port=5433"`).
//!
//! This file owns their syntax: whitespace, single quotes and backslash escapes. Each keyword
//! is checked against the table in `keywords.rs`; [`render_conninfo`] writes the same syntax.

use anyhow::{bail, Result};

use super::keywords::{store, Options};

/// Parses a `key=value` conninfo string with libpq's rules: values may be single-quoted;
/// a backslash escapes the next character, quoted or not.
pub fn parse_conninfo(s: &str) -> Result<Options> {
    let mut opts = Options::new();
    let mut chars = s.chars().peekable();
    // A word after an unquoted password may be the rest of it (a blank not quoted): errors
    // about it do not quote it.
    let mut after_password = false;
    loop {
        while chars.next_if(|c| c.is_ascii_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(opts);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_ascii_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_ascii_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            if after_password {
                bail!(
                    "missing \"=\" after the value of \"password\" in connection info string \
                     (quote a password that holds blanks: password='...')"
                );
            }
            bail!("missing \"=\" after \"{key}\" in connection info string");
        }
        while chars.next_if(|c| c.is_ascii_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    None => bail!("unterminated quoted string in connection info string"),
                    Some('\\') => {
                        if let Some(c) = chars.next() {
                            value.push(c);
                        }
                    }
                    Some('\'') => break,
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next() {
                match c {
                    c if c.is_ascii_whitespace() => break,
                    '\\' => {
                        if let Some(c) = chars.next() {
                            value.push(c);
                        }
                    }
                    c => value.push(c),
                }
            }
        }
        let stored = store(&mut opts, &key, value);
        if stored.is_err() && after_password {
            bail!(
                "invalid connection option after the value of \"password\" (quote a password \
                 that holds blanks: password='...')"
            );
        }
        stored?;
        after_password = key == "password";
    }
}

/// Writes options as a `key=value` conninfo string that [`parse_conninfo`] reads back: values
/// that are empty or hold whitespace, quotes or backslashes are single-quoted and escaped.
pub fn render_conninfo(opts: &Options) -> String {
    let mut parts = Vec::new();
    for (key, value) in opts {
        let plain = !value.is_empty()
            && !value
                .chars()
                .any(|c| c.is_ascii_whitespace() || c == '\'' || c == '\\');
        if plain {
            parts.push(format!("{key}={value}"));
        } else {
            let escaped = value.replace('\\', "\\\\").replace('\'', "\\'");
            parts.push(format!("{key}='{escaped}'"));
        }
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::testutil::*;

    #[test]
    fn conninfo_quoting_and_escapes() {
        let o = parse_conninfo(
            r"host=db1  port = 5433 dbname='my db' password='it\'s' user=a\ b options='-c x=\\y'",
        )
        .unwrap();
        assert_eq!(
            o,
            opts(&[
                ("host", "db1"),
                ("port", "5433"),
                ("dbname", "my db"),
                ("password", "it's"),
                ("user", "a b"),
                ("options", r"-c x=\y"),
            ])
        );
        assert_eq!(
            parse_conninfo("dbname=''").unwrap(),
            opts(&[("dbname", "")])
        );
        assert_eq!(parse_conninfo("  ").unwrap(), Options::new());
        let err = |s| parse_conninfo(s).unwrap_err().to_string();
        assert_eq!(
            err("host"),
            "missing \"=\" after \"host\" in connection info string"
        );
        assert_eq!(
            err("host='x"),
            "unterminated quoted string in connection info string"
        );
        assert_eq!(err("hots=x"), "invalid connection option \"hots\"");
        // After a password, a word that is not an option may be the rest of the password.
        for s in ["password=my secret", "password=my secret=x host=h"] {
            let e = err(s);
            assert!(!e.contains("secret"), "{e}");
            assert!(e.contains("password='...'"), "{e}");
        }
        assert_eq!(
            err("password='my' secret"),
            "missing \"=\" after the value of \"password\" in connection info string (quote \
             a password that holds blanks: password='...')"
        );
        assert_eq!(
            parse_conninfo("requiressl=1").unwrap(),
            opts(&[("sslmode", "require")])
        );
    }

    #[test]
    fn rendered_conninfo_parses_back() {
        let o = opts(&[
            ("host", "/tmp/a dir"),
            ("port", "6432"),
            ("user", r"it's\x"),
            ("dbname", ""),
        ]);
        let text = render_conninfo(&o);
        assert_eq!(
            text,
            r"dbname='' host='/tmp/a dir' port=6432 user='it\'s\\x'"
        );
        assert_eq!(parse_conninfo(&text).unwrap(), o);
    }
}
