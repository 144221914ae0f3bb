//! Connection settings the way libpq reads them, turned into a connected `postgres::Client`.
//!
//! This module owns everything between the connection flags and a live session. DBAs run
//! pgkick from cron and scripts next to psql, so every rule here follows libpq (fe-connect.c)
//! unless a comment says otherwise. One file per libpq feature:
//!
//! - `keywords.rs`: the keyword table and the raw keyword/value map every source fills;
//! - `options.rs`: the precedence of the sources (below);
//! - `key_value.rs` (libpq's `key=value` conninfo) and `uri.rs`: the two syntaxes of a `-d`
//!   connection string;
//! - `service.rs`: the connection service file; `pgpass.rs`: the password file;
//! - `os_user.rs`: the default user name and the home directory;
//! - `settings.rs`: raw values to typed [`Settings`], with libpq's defaults and checks;
//! - `hosts.rs`: the host/hostaddr/port lists; `attempts.rs`: trying each host and address,
//!   with the sslmode retries; `try_error.rs`: how one try fails; `timeout.rs`:
//!   connect_timeout over a whole attempt;
//! - `explain.rs`: one-line failure messages; `tls.rs`: sslmode and its rustls configuration;
//! - `require_auth.rs`: the authentication requests a server may make, checked before they
//!   are answered; `relay.rs`: a plain connection relayed so that they can be;
//! - `mask.rs`: passwords hidden in what is shown or recorded, read with the parsers above;
//!   `lookalikes.rs`: the text-level net under it, which the URI parser's messages use too.
//!
//! Nothing here prints or reads the terminal: resolving returns its warnings in
//! [`Settings::warnings`] and [`connect`] asks its caller for a password through a [`Prompt`].
//!
//! Precedence, per connection option, highest first (libpq `PQconnectdbParams` with
//! `expand_dbname`, called the way psql and dropdb call it: host, port, user, then dbname):
//! 1. A `-d` value that is a conninfo string or URI: with expand_dbname, the options of the
//!    expanded dbname string override any keyword processed before it, and psql passes
//!    `-h/-p/-U` before dbname. So `pgkick -h a -d "host=b"` connects to `b`, as psql does.
//! 2. `-h`, `-p`, `-U` (and a plain `-d` name).
//! 3. The service file entry (`service=` or PGSERVICE): it fills only options still unset,
//!    and it overrides the environment (libpq `conninfo_add_defaults` reads the service file
//!    before the environment variables).
//! 4. The PG* environment variables.
//! 5. Defaults: the unix socket directory, port 5432, the OS user name, database `postgres`
//!    (the maintenance database, as dropdb uses, rather than libpq's "same as the user").

mod attempts;
mod explain;
mod hosts;
mod key_value;
mod keywords;
mod lookalikes;
mod mask;
pub mod notices;
mod options;
mod os_user;
mod passwords;
mod pgpass;
mod relay;
pub mod report;
mod require_auth;
mod service;
mod settings;
#[cfg(test)]
mod testutil;
mod timeout;
pub mod tls;
mod try_error;
mod uri;

use std::time::Duration;

use anyhow::{anyhow, bail, Result};

pub use attempts::{Connected, Failure};
pub use key_value::render_conninfo;

pub use hosts::{Host, Target};
pub use keywords::KEYWORDS;
pub use mask::mask_passwords;
pub use options::{Given, Origin};
pub use os_user::{os_user, passwd};
pub use passwords::typed as typed_password;
pub use settings::Settings;

/// The name pgkick's sessions carry in pg_stat_activity unless the user sets
/// application_name (libpq's fallback_application_name).
pub const APPLICATION_NAME: &str = "pgkick";
/// The database pgkick connects to when neither -d nor PGDATABASE names one.
pub const DEFAULT_DBNAME: &str = "postgres";
pub const DEFAULT_PORT: u16 = 5432;
/// pgkick runs unattended (cron, scripts), so unlike libpq it does not wait forever for an
/// unreachable server: without connect_timeout/PGCONNECT_TIMEOUT each host gets 30 seconds.
/// `connect_timeout=0` restores libpq's "wait indefinitely".
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// Socket directories tried in order when no host is given: Debian's libpq default, then
/// upstream's. The first one holding `.s.PGSQL.<port>` is used; if neither does, the first,
/// so the error names it.
pub const DEFAULT_SOCKET_DIRS: [&str; 2] = ["/var/run/postgresql", "/tmp"];

/// Where and as whom to connect, for one server, as the command line says it: psql's `-h`,
/// `-p`, `-U`, one `-d` value and `-w`/`-W`, in domain form (the plan builds it from the
/// flags; the fleet gives each server its own). Everything else comes from the `-d` string,
/// the service file, the environment and the defaults when [`Settings`] are resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    pub host: Option<String>,
    pub port: Option<String>,
    pub user: Option<String>,
    /// This server's `-d` value: a database name, a conninfo string or a URI.
    pub dbname: Option<String>,
    /// With --each-host: which host of the value's host list this server is (from 0).
    pub only_host: Option<usize>,
    pub password: PasswordPolicy,
}

/// When a password may be asked for: psql's `-W`, `-w`, or neither.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PasswordPolicy {
    /// Neither: ask on a terminal when a server wants one none was found for.
    #[default]
    WhenNeeded,
    /// `-W`: ask before the first attempt.
    Before,
    /// `-w`: never ask.
    Never,
}

/// Every host answered, but none has the target_session_attrs property asked for: with
/// --each-host such a host is skipped, not failed.
#[derive(Debug)]
pub struct NotTargetSession(pub String);

impl std::fmt::Display for NotTargetSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for NotTargetSession {}

/// The options a connection string sets (a `key=value` conninfo string or a URI), checked as
/// `-d` checks them; `None` when `s` is neither (a plain database name).
pub fn parse_connection_string(s: &str) -> Result<Option<keywords::Options>> {
    Ok(options::expand(s)?.map(|(opts, _)| opts))
}

/// Reads a password from a person: for the user (the first argument) on the server(s) named
/// by the second (`host:port`, several joined by commas).
pub type ReadPassword<'a> = &'a mut dyn FnMut(&str, &str) -> Result<String>;

/// Whether and when [`connect`] may ask for a password: psql's `-W`, `-w`, or neither.
pub enum Prompt<'a> {
    /// `-W`: ask before the first attempt.
    Before(ReadPassword<'a>),
    /// Neither flag, stdin a terminal: ask when a server wants a password none was found for.
    WhenNeeded(ReadPassword<'a>),
    /// Neither flag, and no terminal on stdin to ask on.
    NoTerminal,
    /// `-w`: never ask.
    Never,
}

/// Connects to the first host that accepts, asking a person for a password (through `read`)
/// as `policy` allows and as psql would: before the first attempt with `-W`, never with `-w`,
/// otherwise once a server asks for one none was found for, when stdin is a terminal.
pub fn connect_asking(
    settings: &Settings,
    policy: PasswordPolicy,
    read: ReadPassword<'_>,
) -> Result<Connected> {
    use std::io::IsTerminal;
    let prompt = match policy {
        PasswordPolicy::Before => Prompt::Before(read),
        PasswordPolicy::Never => Prompt::Never,
        PasswordPolicy::WhenNeeded if std::io::stdin().is_terminal() => Prompt::WhenNeeded(read),
        PasswordPolicy::WhenNeeded => Prompt::NoTerminal,
    };
    connect(settings, prompt)
}

/// Connects to the first host that accepts, asking for a password through `prompt` when it
/// allows (as psql does: once, after a server asked for one that was not known). The caller
/// has resolved `settings` and shown their warnings.
pub fn connect(settings: &Settings, prompt: Prompt<'_>) -> Result<Connected> {
    let why_not_asked = match &prompt {
        Prompt::Never => " and -w forbids prompting",
        Prompt::NoTerminal => " and stdin is not a terminal to prompt on",
        Prompt::Before(_) | Prompt::WhenNeeded(_) => "",
    };
    let all_hosts = || {
        let hosts: Vec<String> = settings.targets.iter().map(Target::host_port).collect();
        hosts.join(",")
    };
    let (mut read, mut typed) = match prompt {
        Prompt::Before(read) => (None, Some(read(&settings.user, &all_hosts())?)),
        Prompt::WhenNeeded(read) => (Some(read), None),
        Prompt::NoTerminal | Prompt::Never => (None, None),
    };
    loop {
        match settings.connect(typed.as_deref()) {
            Ok(connected) => return Ok(connected),
            Err(Failure::NeedPassword {
                place: where_,
                host_port,
            }) => {
                if let (None, Some(read)) = (&typed, read.take()) {
                    typed = Some(read(&settings.user, &host_port)?);
                    continue;
                }
                let why = if typed.is_some() { "" } else { why_not_asked };
                bail!(
                    "{where_} failed: the server requires a password for user \"{}\", none was \
                     supplied{why}; put it in ~/.pgpass (or the file PGPASSFILE names) or \
                     PGPASSWORD, or use -W on a terminal",
                    settings.user
                );
            }
            Err(Failure::NotTarget(msg)) => return Err(NotTargetSession(msg).into()),
            Err(Failure::Other(msg)) => return Err(anyhow!(msg)),
        }
    }
}
