//! One-line explanations of a failed attempt, in psql's words, with the fix where there is
//! one (the password sources to check, pg_hba.conf, reserved connection slots, the root
//! certificate to point sslrootcert at, a server that is not running).

use postgres::error::SqlState;

use super::hosts::{Host, Target};
use super::settings::Settings;
use super::tls::RootCert;
use super::try_error::TryError;
use super::DEFAULT_DBNAME;

impl Settings {
    /// The reason part of a failure message, psql-style, with the fix where there is one.
    pub(super) fn explain(&self, err: &TryError, target: &Target) -> String {
        let e = match err {
            TryError::Timeout(d) => {
                return format!(
                    "timed out after {}s (connect_timeout; set connect_timeout= or \
                     PGCONNECT_TIMEOUT to change it, 0 to wait forever)",
                    d.as_secs()
                )
            }
            TryError::Attrs(msg) => return msg.to_string(),
            TryError::Refused(why) => return why.clone(),
            TryError::Io(io) => return explain_io(io, target),
            TryError::Pg(e) => e,
        };
        if let Some(db) = e.as_db_error() {
            let msg = db.message();
            let code = db.code();
            let pw_hint = || {
                let from = match (&self.password, &target.pgpass) {
                    (None, Some((_, file))) => {
                        format!(" (password retrieved from file \"{}\")", file.display())
                    }
                    _ => String::new(),
                };
                format!(
                    "{msg}{from}; fix the password in ~/.pgpass (or PGPASSFILE), PGPASSWORD or \
                     the connection string, or use -W to type it"
                )
            };
            return if *code == SqlState::INVALID_PASSWORD {
                pw_hint()
            } else if *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION {
                if msg.contains("password") {
                    pw_hint()
                } else if msg.contains("pg_hba.conf") {
                    format!("{msg}; the server's pg_hba.conf does not admit this connection")
                } else if msg.starts_with("role") {
                    format!("{msg}; name an existing role with -U")
                } else {
                    msg.to_string()
                }
            } else if *code == SqlState::TOO_MANY_CONNECTIONS {
                format!(
                    "{msg}: the server has no free connection slot; pgkick needs one, and \
                     superuser_reserved_connections (and reserved_connections with \
                     pg_use_reserved_connections, PostgreSQL 16+) keep slots for exactly \
                     this: connect as a superuser or as a role granted \
                     pg_use_reserved_connections"
                )
            } else if *code == SqlState::INVALID_CATALOG_NAME {
                format!(
                    "database \"{}\" does not exist; name an existing database with -d \
                     (pgkick connects to \"{DEFAULT_DBNAME}\" unless told otherwise)",
                    self.dbname
                )
            } else {
                format!("{}: {msg}", db.severity())
            };
        }
        if is_tls_error(e) {
            let cause = std::error::Error::source(e)
                .map(|c| c.to_string())
                .unwrap_or_default();
            if server_refused_tls(e) {
                return format!(
                    "server does not support SSL, but SSL was required (sslmode={})",
                    self.tls.mode
                );
            }
            if cause.contains("UnknownIssuer") {
                let roots = match &self.tls.root_cert {
                    RootCert::File(path) => {
                        format!("the root certificate file \"{}\"", path.display())
                    }
                    RootCert::System => "the system's trusted roots".to_string(),
                };
                return format!(
                    "SSL error: the server's certificate was not issued by a CA in {roots}; \
                     point sslrootcert/PGSSLROOTCERT at the CA that signed it (sslmode={})",
                    self.tls.mode
                );
            }
            return format!("SSL error: {cause} (sslmode={})", self.tls.mode);
        }
        if let Some(io) = io_error(e) {
            return explain_io(io, target);
        }
        let text = with_cause(e);
        if text.ends_with("server did not use channel binding") {
            return "channel binding required, but the server's authentication request does not \
                    use it (channel_binding=require): no password was sent"
                .to_string();
        }
        text
    }
}

/// A socket that could not be reached or broke, psql-style.
fn explain_io(io: &std::io::Error, target: &Target) -> String {
    let socket = matches!(target.host, Host::Socket(_));
    let hint = if socket {
        "Is the server running locally and accepting connections on that socket?"
    } else {
        "Is the server running on that host and accepting TCP/IP connections?"
    };
    match io.kind() {
        std::io::ErrorKind::NotFound if socket => format!("No such file or directory. {hint}"),
        std::io::ErrorKind::ConnectionRefused => format!("Connection refused. {hint}"),
        std::io::ErrorKind::TimedOut => "timed out (connect_timeout)".to_string(),
        std::io::ErrorKind::PermissionDenied if socket => {
            "Permission denied (check the socket's permissions)".to_string()
        }
        _ => capitalize(&io.to_string()),
    }
}

pub(super) fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

pub(super) fn io_error(e: &postgres::Error) -> Option<&std::io::Error> {
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        cause = c.source();
    }
    None
}

pub(super) fn is_tls_error(e: &postgres::Error) -> bool {
    e.to_string().starts_with("error performing TLS handshake")
}

/// The server answered the TLS request with a no (sslmode=require and above).
pub(super) fn server_refused_tls(e: &postgres::Error) -> bool {
    is_tls_error(e)
        && std::error::Error::source(e)
            .is_some_and(|c| c.to_string() == "server does not support TLS")
}

pub(super) fn is_password_missing(e: &postgres::Error) -> bool {
    e.as_db_error().is_none() && with_cause(e).ends_with("password missing")
}

/// rust-postgres' Display names only the error kind; the cause carries the detail.
pub(super) fn with_cause(e: &postgres::Error) -> String {
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use crate::conn::Params;
    use std::time::Duration;

    use super::*;
    use crate::conn::testutil::*;

    #[test]
    fn timeouts_and_attrs_explain_themselves() {
        let s = resolve(&Params::default(), &[], None).unwrap();
        let t = &s.targets[0];
        assert_eq!(
            s.explain(&TryError::Timeout(Duration::from_secs(7)), t),
            "timed out after 7s (connect_timeout; set connect_timeout= or PGCONNECT_TIMEOUT \
             to change it, 0 to wait forever)"
        );
        assert_eq!(
            s.explain(&TryError::Attrs("session is read-only"), t),
            "session is read-only"
        );
        assert_eq!(capitalize("connection reset"), "Connection reset");
        assert_eq!(capitalize(""), "");
    }
}
