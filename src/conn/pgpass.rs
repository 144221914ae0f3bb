//! The password file (`~/.pgpass` or `PGPASSFILE`).
//!
//! This file owns reading it (refused, with a warning, when group or others may read it, as
//! libpq does), matching its `hostname:port:database:username:password` lines with `*`
//! wildcards and backslash escapes, and the host name a unix-socket target matches.

use std::path::Path;

use super::hosts::{Host, Target};
use super::DEFAULT_SOCKET_DIRS;

/// The host name a .pgpass line must match: the host as given; `localhost` for the default
/// socket directory (libpq compares with its compiled-in DEFAULT_PGSOCKET_DIR; pgkick treats
/// both of its default directories that way). Other socket directories match literally.
pub fn pgpass_host(t: &Target) -> String {
    match &t.host {
        Host::Socket(dir) if DEFAULT_SOCKET_DIRS.iter().any(|d| Path::new(d) == dir) => {
            "localhost".to_string()
        }
        Host::Socket(dir) => dir.display().to_string(),
        Host::Tcp(name) => name.clone(),
    }
}

/// Reads a password file, refusing (with a warning) one that is not a plain file or that group
/// or others may access, exactly as libpq does. A missing file is silently no file.
pub fn read_pgpass(path: &Path) -> (Option<String>, Option<String>) {
    let Ok(meta) = std::fs::metadata(path) else {
        return (None, None);
    };
    if !meta.is_file() {
        let w = format!("password file \"{}\" is not a plain file", path.display());
        return (None, Some(w));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            let w = format!(
                "password file \"{}\" has group or world access; permissions should be u=rw \
                 (0600) or less",
                path.display()
            );
            return (None, Some(w));
        }
    }
    (std::fs::read_to_string(path).ok(), None)
}

/// The password alone of [`pgpass_find`]'s line.
#[cfg(test)]
pub fn pgpass_lookup(
    contents: &str,
    host: &str,
    port: &str,
    dbname: &str,
    user: &str,
) -> Option<String> {
    pgpass_find(contents, host, port, dbname, user).map(|(pw, _)| pw)
}

/// The password of the first line of a .pgpass file matching
/// `hostname:port:database:username`, and that line's number (from 1). `*` matches anything;
/// `\` escapes `:` and `\`; lines starting with `#` are comments.
pub fn pgpass_find(
    contents: &str,
    host: &str,
    port: &str,
    dbname: &str,
    user: &str,
) -> Option<(String, usize)> {
    /// libpq's pwdfMatchesString: the rest of the line after a matching field.
    fn field<'a>(line: &'a str, token: &str) -> Option<&'a str> {
        if let Some(rest) = line.strip_prefix("*:") {
            return Some(rest);
        }
        let mut chars = line.char_indices();
        let mut tok = token.chars();
        while let Some((i, mut c)) = chars.next() {
            let mut escaped = false;
            if c == '\\' {
                match chars.next() {
                    Some((_, next)) => {
                        c = next;
                        escaped = true;
                    }
                    None => return None,
                }
            }
            let t = tok.clone().next();
            if c == ':' && !escaped && t.is_none() {
                return Some(&line[i + 1..]);
            }
            if t? != c {
                return None;
            }
            tok.next();
        }
        None
    }
    for (n, line) in contents.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let rest = field(line, host)
            .and_then(|r| field(r, port))
            .and_then(|r| field(r, dbname))
            .and_then(|r| field(r, user));
        if let Some(rest) = rest {
            // De-escape up to the first unescaped ':'.
            let mut pw = String::new();
            let mut chars = rest.chars();
            while let Some(c) = chars.next() {
                match c {
                    ':' => break,
                    '\\' => match chars.next() {
                        Some(n) => pw.push(n),
                        None => pw.push('\\'),
                    },
                    c => pw.push(c),
                }
            }
            return Some((pw, n + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::settings::PasswordSource;
    use crate::conn::testutil::*;

    #[test]
    fn pgpass_matching() {
        let file = "\
# comment
db1:5432:*:alice:first
*:*:*:alice:second
db\\:x:*:*:bob:p\\:w\\\\d:ignored
localhost:5432:postgres:carol:sock
/tmp/pgA:5499:*:carol:dir
";
        let l = |h, p, d, u| pgpass_lookup(file, h, p, d, u);
        assert_eq!(l("db1", "5432", "x", "alice").as_deref(), Some("first"));
        assert_eq!(
            l("db2", "5432", "x", "alice").as_deref(),
            Some("second"),
            "wildcards"
        );
        assert_eq!(
            l("db:x", "1", "y", "bob").as_deref(),
            Some("p:w\\d"),
            "escapes"
        );
        assert_eq!(l("db1", "5432", "x", "nobody"), None);
        assert_eq!(
            l("localhost", "5432", "postgres", "carol").as_deref(),
            Some("sock")
        );
        assert_eq!(
            l("/tmp/pgA", "5499", "postgres", "carol").as_deref(),
            Some("dir")
        );
        assert_eq!(
            pgpass_lookup("h:1:d:u", "h", "1", "d", "u"),
            None,
            "no password field"
        );
        assert_eq!(
            pgpass_lookup("h:1:d:u:", "h", "1", "d", "u").as_deref(),
            Some("")
        );
        assert_eq!(
            pgpass_lookup("h:1:d:u:pw\r\n", "h", "1", "d", "u").as_deref(),
            Some("pw")
        );
        assert_eq!(
            pgpass_lookup("ho:1:d:u:pw", "h", "1", "d", "u"),
            None,
            "no prefix match"
        );
    }

    #[test]
    fn pgpass_host_for_sockets() {
        let t = |host| Target {
            host,
            hostaddr: None,
            port: 5432,
            pgpass: None,
            pgpass_line: None,
        };
        assert_eq!(
            pgpass_host(&t(Host::Socket("/var/run/postgresql".into()))),
            "localhost"
        );
        assert_eq!(pgpass_host(&t(Host::Socket("/tmp".into()))), "localhost");
        assert_eq!(pgpass_host(&t(Host::Socket("/tmp/pgA".into()))), "/tmp/pgA");
        assert_eq!(pgpass_host(&t(Host::Tcp("db1".into()))), "db1");
    }

    #[test]
    fn pgpass_file_is_used_only_when_private() {
        let dir = Scratch::new("pgpass");
        let file = dir.write("pgpass", "*:*:*:*:secret\n", 0o600);
        let (text, warning) = read_pgpass(&file);
        assert_eq!((text.as_deref(), warning), (Some("*:*:*:*:secret\n"), None));
        let env = [("PGPASSFILE", file.to_str().unwrap())];
        let s = resolve(&args(Some("h"), None, Some("u"), None), &env, None).unwrap();
        assert_eq!(
            s.targets[0].pgpass,
            Some(("secret".to_string(), file.clone()))
        );
        assert!(s.warnings.is_empty());

        let loose = dir.write("loose", "*:*:*:*:secret\n", 0o644);
        let (text, warning) = read_pgpass(&loose);
        assert_eq!(text, None);
        assert_eq!(
            warning.unwrap(),
            format!(
                "password file \"{}\" has group or world access; permissions should be u=rw \
                 (0600) or less",
                loose.display()
            )
        );
        let env = [("PGPASSFILE", loose.to_str().unwrap())];
        let s = resolve(&args(Some("h"), None, Some("u"), None), &env, None).unwrap();
        assert_eq!(s.targets[0].pgpass, None);
        assert_eq!(s.warnings.len(), 1);
        assert_eq!(read_pgpass(&dir.0.join("missing")), (None, None));

        // ~/.pgpass by default; PGPASSWORD makes the file irrelevant.
        dir.write(".pgpass", "h:5432:postgres:u:fromhome\n", 0o600);
        let s = resolve(&args(Some("h"), None, Some("u"), None), &[], Some(&dir.0)).unwrap();
        assert_eq!(s.targets[0].pgpass.as_ref().unwrap().0, "fromhome");
        let s = resolve(
            &args(Some("h"), None, Some("u"), None),
            &[("PGPASSWORD", "env")],
            Some(&dir.0),
        )
        .unwrap();
        assert_eq!(s.targets[0].pgpass, None);
        assert_eq!(s.password, Some(("env".to_string(), PasswordSource::Other)));
    }

    #[test]
    fn pgpass_reports_the_matching_line() {
        let file = "# comment\n\nother:*:*:*:x\n*:*:*:alice:pw\n";
        assert_eq!(
            pgpass_find(file, "h", "5432", "d", "alice"),
            Some(("pw".to_string(), 4))
        );
        assert_eq!(pgpass_find(file, "h", "5432", "d", "bob"), None);
    }
}
