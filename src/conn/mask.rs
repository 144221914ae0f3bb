//! Passwords hidden in connection strings that are shown or recorded (`--audit-log` records
//! pgkick's arguments): a URI's `user:password@` and `?password=`, a conninfo string's
//! `password=` (quoted or not).
//!
//! Masking works on any text, a whole argument such as `--dbname=postgresql://...` included,
//! and errs on the side of hiding: `password=` anywhere a keyword may start is masked.

use std::sync::OnceLock;

use regex::Regex;

/// What a password is replaced with: a fixed string, so that not even its length shows.
pub const MASK: &str = "******";

/// `text` with every connection-string password replaced by [`MASK`].
pub fn mask_passwords(text: &str) -> String {
    static PATTERNS: OnceLock<[Regex; 3]> = OnceLock::new();
    let [uri_credentials, uri_param, conninfo] = PATTERNS.get_or_init(|| {
        [
            // postgresql://user:password@ (libpq: the credentials end at the first '@'
            // before any '/'; the user name ends at the first ':').
            Regex::new(r"(postgres(?:ql)?://[^:@/]*:)[^@/]*@").unwrap(),
            // ?password=... or &password=... in a URI's query.
            Regex::new(r"([?&]password=)[^&]*").unwrap(),
            // password=value, password = 'quoted \' value' in a conninfo string.
            Regex::new(r"((?:^|[\s=])password\s*=\s*)(?:'(?:[^'\\]|\\.)*'?|(?:[^\s\\']|\\.)+)")
                .unwrap(),
        ]
    });
    let text = uri_credentials.replace_all(text, format!("${{1}}{MASK}@"));
    let text = uri_param.replace_all(&text, format!("${{1}}{MASK}"));
    conninfo
        .replace_all(&text, format!("${{1}}{MASK}"))
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_passwords_are_masked_whatever_their_length() {
        assert_eq!(
            mask_passwords("postgresql://alice:s3cr%40t@db1:5432/app"),
            "postgresql://alice:******@db1:5432/app"
        );
        assert_eq!(
            mask_passwords("--dbname=postgres://u:p@[::1]/x?sslmode=require&password=two"),
            "--dbname=postgres://u:******@[::1]/x?sslmode=require&password=******"
        );
        // No password, or no credentials at all: unchanged.
        for plain in [
            "postgresql://alice@db1/app",
            "postgresql:///app?host=/tmp",
            "app",
        ] {
            assert_eq!(mask_passwords(plain), plain);
        }
    }

    #[test]
    fn conninfo_passwords_are_masked_quoted_or_not() {
        assert_eq!(
            mask_passwords("host=db1 password=secret dbname=app"),
            "host=db1 password=****** dbname=app"
        );
        assert_eq!(
            mask_passwords(r"password = 'it\'s a secret' user=bob"),
            "password = ****** user=bob"
        );
        assert_eq!(
            mask_passwords(r"password=a\ b user=bob"),
            "password=****** user=bob"
        );
        assert_eq!(
            mask_passwords("--dbname=password=x"),
            "--dbname=password=******"
        );
        // A keyword that only ends in "password" is not a password.
        assert_eq!(mask_passwords("xpassword=1"), "xpassword=1");
    }
}
