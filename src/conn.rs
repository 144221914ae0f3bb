//! Connection settings the way libpq reads them, turned into a connected `postgres::Client`.
//!
//! This file owns everything between the connection flags and a live session: the
//! `-d` conninfo string or URI, the PG* environment, the service file, `.pgpass`, defaults,
//! the password prompt, the per-host attempts and the one-line error messages. TLS lives in
//! the `tls` module. DBAs run pgkick from cron and scripts next to psql, so every rule here
//! follows libpq (fe-connect.c) unless a comment says otherwise.
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

use std::collections::BTreeMap;
use std::ffi::{CStr, OsStr};
use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use postgres::config::{ChannelBinding, SslMode as PgSslMode, SslNegotiation};
use postgres::error::SqlState;

use crate::cli::ConnArgs;
use crate::tls::{Attempt, RootCert, SslMode, TlsConnector, TlsSettings};

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
/// Where the system-wide pg_service.conf lives when PGSYSCONFDIR is unset (Debian's libpq).
const SYSCONFDIR: &str = "/etc/postgresql-common";

/// Every keyword libpq accepts (PostgreSQL 17), with its environment variable. Keywords
/// pgkick does not act on are accepted and ignored, except those in [`UNSUPPORTED`].
const KEYWORDS: &[(&str, Option<&str>)] = &[
    ("service", Some("PGSERVICE")),
    ("user", Some("PGUSER")),
    ("password", Some("PGPASSWORD")),
    ("passfile", Some("PGPASSFILE")),
    ("channel_binding", Some("PGCHANNELBINDING")),
    ("connect_timeout", Some("PGCONNECT_TIMEOUT")),
    ("dbname", Some("PGDATABASE")),
    ("host", Some("PGHOST")),
    ("hostaddr", Some("PGHOSTADDR")),
    ("port", Some("PGPORT")),
    ("client_encoding", Some("PGCLIENTENCODING")),
    ("options", Some("PGOPTIONS")),
    ("application_name", Some("PGAPPNAME")),
    ("fallback_application_name", None),
    ("keepalives", None),
    ("keepalives_idle", None),
    ("keepalives_interval", None),
    ("keepalives_count", None),
    ("tcp_user_timeout", None),
    ("sslmode", Some("PGSSLMODE")),
    ("sslnegotiation", Some("PGSSLNEGOTIATION")),
    ("sslcompression", Some("PGSSLCOMPRESSION")),
    ("sslcert", Some("PGSSLCERT")),
    ("sslkey", Some("PGSSLKEY")),
    ("sslcertmode", Some("PGSSLCERTMODE")),
    ("sslpassword", None),
    ("sslrootcert", Some("PGSSLROOTCERT")),
    ("sslcrl", Some("PGSSLCRL")),
    ("sslcrldir", Some("PGSSLCRLDIR")),
    ("sslsni", Some("PGSSLSNI")),
    ("requirepeer", Some("PGREQUIREPEER")),
    ("require_auth", Some("PGREQUIREAUTH")),
    ("ssl_min_protocol_version", Some("PGSSLMINPROTOCOLVERSION")),
    ("ssl_max_protocol_version", Some("PGSSLMAXPROTOCOLVERSION")),
    ("gssencmode", Some("PGGSSENCMODE")),
    ("krbsrvname", Some("PGKRBSRVNAME")),
    ("gsslib", Some("PGGSSLIB")),
    ("gssdelegation", Some("PGGSSDELEGATION")),
    ("replication", None),
    ("target_session_attrs", Some("PGTARGETSESSIONATTRS")),
    ("load_balance_hosts", Some("PGLOADBALANCEHOSTS")),
];

/// Security-relevant keywords pgkick cannot honour: refusing is safer than ignoring them.
const UNSUPPORTED: &[&str] = &[
    "requirepeer",
    "require_auth",
    "sslpassword",
    "sslcrl",
    "sslcrldir",
    "replication",
];

/// Raw keyword/value options, as libpq's PQconninfoOption array holds them.
pub type Options = BTreeMap<String, String>;

/// Where to connect: a unix socket directory or a TCP host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// Directory holding `.s.PGSQL.<port>`.
    Socket(PathBuf),
    /// Host name or IP address literal.
    Tcp(String),
}

/// One entry of the host list, with the password that applies to it.
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    pub host: Host,
    /// libpq's hostaddr: the address to use instead of resolving `host`.
    pub hostaddr: Option<IpAddr>,
    pub port: u16,
    /// The password from the password file for this host, and the file it came from.
    pub pgpass: Option<(String, PathBuf)>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("host", &self.host)
            .field("hostaddr", &self.hostaddr)
            .field("port", &self.port)
            .field("pgpass", &self.pgpass.as_ref().map(|(_, file)| file))
            .finish()
    }
}

/// libpq's target_session_attrs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionAttrs {
    Any,
    ReadWrite,
    ReadOnly,
    Primary,
    Standby,
    PreferStandby,
}

/// Where the explicit password came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordSource {
    /// The `-d` conninfo string or URI: beats even a -W prompt (it is expanded after psql's
    /// password keyword).
    Dbname,
    /// The service file or PGPASSWORD.
    Other,
}

/// Resolved connection settings (after flags, conninfo/URI, service file, env, defaults,
/// pgpass).
pub struct Settings {
    /// Hosts in the order they are tried.
    pub targets: Vec<Target>,
    pub user: String,
    pub dbname: String,
    /// Password given in the connection string, service file or PGPASSWORD.
    pub password: Option<(String, PasswordSource)>,
    pub application_name: String,
    /// Server options (`-c name=value ...`), from options=/PGOPTIONS.
    pub options: Option<String>,
    /// Per host; `None` waits indefinitely.
    pub connect_timeout: Option<Duration>,
    pub keepalives: bool,
    pub keepalives_idle: Option<Duration>,
    pub keepalives_interval: Option<Duration>,
    pub keepalives_count: Option<u32>,
    pub tls: TlsSettings,
    pub ssl_negotiation_direct: bool,
    pub channel_binding: ChannelBinding,
    pub target_session_attrs: SessionAttrs,
    /// load_balance_hosts=random: try the hosts in random order.
    pub load_balance: bool,
    /// Things the user should hear about (an unsafe password file), without the
    /// `pgkick: warning: ` prefix.
    pub warnings: Vec<String>,
}

impl Settings {
    /// Resolves with the process environment and the user's home directory.
    pub fn resolve(args: &ConnArgs) -> Result<Settings> {
        let env = |k: &str| std::env::var(k).ok();
        let home = home_dir();
        Settings::resolve_with(args, &env, home.as_deref())
    }

    /// Resolves with `env` as the environment and `home` as the home directory (for
    /// `~/.pgpass`, `~/.pg_service.conf` and `~/.postgresql/`). Reads the service and
    /// password files; nothing else leaves the process.
    pub fn resolve_with(
        args: &ConnArgs,
        env: &dyn Fn(&str) -> Option<String>,
        home: Option<&Path>,
    ) -> Result<Settings> {
        let opts = collect_options(args, env, home)?;
        Settings::from_options(&opts, home)
    }

    fn from_options(opts: &Options, home: Option<&Path>) -> Result<Settings> {
        // Empty values mean "default", as in libpq.
        let get = |k: &str| opts.get(k).map(String::as_str).filter(|v| !v.is_empty());
        for k in UNSUPPORTED {
            if get(k).is_some() {
                bail!("connection option \"{k}\" is not supported by pgkick");
            }
        }
        match get("gssencmode") {
            None | Some("disable" | "prefer") => {}
            Some("require") => bail!("gssencmode=require is not supported by pgkick (no GSSAPI)"),
            Some(v) => bail!("invalid gssencmode value: \"{v}\""),
        }

        let user = match get("user") {
            Some(u) => u.to_string(),
            None => os_user().ok_or_else(|| {
                anyhow!("could not determine the local user name; use -U or PGUSER")
            })?,
        };
        let dbname = get("dbname").unwrap_or(DEFAULT_DBNAME).to_string();
        let password = get("password").map(|p| {
            let source = if opts.contains_key(FROM_DBNAME_PASSWORD) {
                PasswordSource::Dbname
            } else {
                PasswordSource::Other
            };
            (p.to_string(), source)
        });

        let connect_timeout = match get("connect_timeout") {
            None => Some(DEFAULT_CONNECT_TIMEOUT),
            Some(v) => match parse_int(v, "connect_timeout")? {
                n if n <= 0 => None,
                // libpq: the minimum is 2 seconds.
                1 => Some(Duration::from_secs(2)),
                n => Some(Duration::from_secs(n as u64)),
            },
        };
        let keepalives = match get("keepalives") {
            None => true,
            Some(v) => parse_int(v, "keepalives")? != 0,
        };
        let secs = |k: &str| -> Result<Option<Duration>> {
            Ok(match get(k) {
                None => None,
                Some(v) => Some(Duration::from_secs(parse_int(v, k)?.max(0) as u64)),
            })
        };
        let keepalives_idle = secs("keepalives_idle")?;
        let keepalives_interval = secs("keepalives_interval")?;
        let keepalives_count = match get("keepalives_count") {
            None => None,
            Some(v) => Some(parse_int(v, "keepalives_count")?.max(0) as u32),
        };

        let tls = TlsSettings::new(
            get("sslmode"),
            get("sslrootcert"),
            get("sslcert"),
            get("sslkey"),
            home,
        )?;
        let ssl_negotiation_direct = match get("sslnegotiation") {
            None | Some("postgres") => false,
            Some("direct") => {
                if matches!(
                    tls.mode,
                    SslMode::Disable | SslMode::Allow | SslMode::Prefer
                ) {
                    bail!(
                        "weak sslmode \"{}\" may not be used with sslnegotiation=direct (use \
                         \"require\", \"verify-ca\", or \"verify-full\")",
                        tls.mode
                    );
                }
                true
            }
            Some(v) => bail!("invalid sslnegotiation value: \"{v}\""),
        };
        let channel_binding = match get("channel_binding") {
            None | Some("prefer") => ChannelBinding::Prefer,
            Some("disable") => ChannelBinding::Disable,
            Some("require") => ChannelBinding::Require,
            Some(v) => bail!("invalid channel_binding value: \"{v}\""),
        };
        let target_session_attrs = match get("target_session_attrs") {
            None | Some("any") => SessionAttrs::Any,
            Some("read-write") => SessionAttrs::ReadWrite,
            Some("read-only") => SessionAttrs::ReadOnly,
            Some("primary") => SessionAttrs::Primary,
            Some("standby") => SessionAttrs::Standby,
            Some("prefer-standby") => SessionAttrs::PreferStandby,
            Some(v) => bail!("invalid target_session_attrs value: \"{v}\""),
        };
        let load_balance = match get("load_balance_hosts") {
            None | Some("disable") => false,
            Some("random") => true,
            Some(v) => bail!("invalid load_balance_hosts value: \"{v}\""),
        };

        let mut targets = parse_hosts(get("host"), get("hostaddr"), get("port"))?;

        // The password file is read only when no password was given (libpq: per host).
        let mut warnings = Vec::new();
        if password.is_none() {
            let passfile = match get("passfile") {
                Some(p) => Some(PathBuf::from(p)),
                None => home.map(|h| h.join(".pgpass")),
            };
            if let Some(passfile) = passfile {
                let (contents, warning) = read_pgpass(&passfile);
                warnings.extend(warning);
                if let Some(contents) = contents {
                    for t in &mut targets {
                        let host = pgpass_host(t);
                        let port = t.port.to_string();
                        if let Some(pw) = pgpass_lookup(&contents, &host, &port, &dbname, &user) {
                            t.pgpass = Some((pw, passfile.clone()));
                        }
                    }
                }
            }
        }

        Ok(Settings {
            targets,
            user,
            dbname,
            password,
            application_name: get("application_name")
                .unwrap_or(APPLICATION_NAME)
                .to_string(),
            options: get("options").map(str::to_string),
            connect_timeout,
            keepalives,
            keepalives_idle,
            keepalives_interval,
            keepalives_count,
            tls,
            ssl_negotiation_direct,
            channel_binding,
            target_session_attrs,
            load_balance,
            warnings,
        })
    }
}

/// Marker key recording that `password` came from the expanded `-d` string.
const FROM_DBNAME_PASSWORD: &str = " password from dbname";

/// Gathers the raw options in libpq's order (see the module comment).
fn collect_options(
    args: &ConnArgs,
    env: &dyn Fn(&str) -> Option<String>,
    home: Option<&Path>,
) -> Result<Options> {
    let mut opts = Options::new();
    // PQconnectdbParams skips NULL and empty values in its arrays.
    let flags = [
        ("host", &args.host),
        ("port", &args.port),
        ("user", &args.username),
    ];
    for (k, v) in flags {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            opts.insert(k.to_string(), v.to_string());
        }
    }
    if let Some(db) = args.dbname.as_deref().filter(|v| !v.is_empty()) {
        if is_connection_string(db) {
            let expanded = if uri_prefix_len(db) > 0 {
                parse_uri(db)?
            } else {
                parse_conninfo(db)?
            };
            if expanded.contains_key("password") {
                opts.insert(FROM_DBNAME_PASSWORD.to_string(), String::new());
            }
            // The expanded string overrides -h/-p/-U.
            opts.extend(expanded);
        } else {
            opts.insert("dbname".to_string(), db.to_string());
        }
    }

    let service = match opts.get("service") {
        Some(s) => Some(s.clone()),
        None => env("PGSERVICE"),
    };
    if let Some(service) = service {
        apply_service(&mut opts, &service, env, home)?;
    }

    for (k, var) in KEYWORDS {
        if let (false, Some(var)) = (opts.contains_key(*k), var) {
            if let Some(v) = env(var) {
                opts.insert(k.to_string(), v);
            }
        }
    }
    Ok(opts)
}

/// libpq's `recognized_connection_string`: a URI, or anything containing `=`.
pub fn is_connection_string(s: &str) -> bool {
    uri_prefix_len(s) > 0 || s.contains('=')
}

fn uri_prefix_len(s: &str) -> usize {
    ["postgresql://", "postgres://"]
        .iter()
        .find(|p| s.starts_with(**p))
        .map_or(0, |p| p.len())
}

fn store(opts: &mut Options, key: &str, value: String) -> Result<()> {
    let (key, value) = match key {
        // libpq still accepts the pre-7.4 keyword.
        "requiressl" => (
            "sslmode",
            if value.starts_with('1') {
                "require"
            } else {
                "prefer"
            }
            .to_string(),
        ),
        k => (k, value),
    };
    if !KEYWORDS.iter().any(|(k, _)| *k == key) {
        bail!("invalid connection option \"{key}\"");
    }
    opts.insert(key.to_string(), value);
    Ok(())
}

/// Parses a `key=value` conninfo string with libpq's rules: values may be single-quoted;
/// a backslash escapes the next character, quoted or not.
pub fn parse_conninfo(s: &str) -> Result<Options> {
    let mut opts = Options::new();
    let mut chars = s.chars().peekable();
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
        store(&mut opts, &key, value)?;
    }
}

/// Percent-decodes a URI component the way libpq does (`+` stays `+`; `%00` is refused).
fn percent_decode(s: &str) -> Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .filter(|_| bytes[i + 1].is_ascii_hexdigit() && bytes[i + 2].is_ascii_hexdigit())
            .ok_or_else(|| anyhow!("invalid percent-encoded token: \"{s}\""))?;
        if hex == 0 {
            bail!("forbidden value %00 in percent-encoded value: \"{s}\"");
        }
        out.push(hex);
        i += 3;
    }
    String::from_utf8(out).map_err(|_| anyhow!("percent-encoded value is not UTF-8: \"{s}\""))
}

/// Parses a `postgresql://` or `postgres://` URI with libpq's rules:
/// `postgresql://[user[:password]@][host][:port][,host[:port]...][/dbname][?key=value&...]`,
/// hosts may be `[IPv6]`, every part is percent-decoded, query parameters are conninfo
/// keywords (`host=/socket/dir` included) and `ssl=true` means `sslmode=require`.
pub fn parse_uri(uri: &str) -> Result<Options> {
    let mut opts = Options::new();
    let rest = &uri[uri_prefix_len(uri)..];
    if uri_prefix_len(uri) == 0 {
        bail!("invalid URI: \"{uri}\"");
    }

    // Credentials: an '@' before the first '/'.
    let mut rest = rest;
    let cred_end = rest.find(['@', '/']);
    if let Some(at) = cred_end.filter(|&i| rest.as_bytes()[i] == b'@') {
        let creds = &rest[..at];
        let (user, password) = match creds.split_once(':') {
            Some((u, p)) => (u, Some(p)),
            None => (creds, None),
        };
        if !user.is_empty() {
            opts.insert("user".into(), percent_decode(user)?);
        }
        if let Some(p) = password.filter(|p| !p.is_empty()) {
            opts.insert("password".into(), percent_decode(p)?);
        }
        rest = &rest[at + 1..];
    }

    // Host list: netloc[:port] separated by commas.
    let mut hosts = Vec::new();
    let mut ports = Vec::new();
    let mut any_port = false;
    let bytes = rest.as_bytes();
    let mut i = 0;
    let terminator;
    loop {
        let host;
        if bytes.get(i) == Some(&b'[') {
            let start = i + 1;
            let close = rest[start..].find(']').map(|j| start + j).ok_or_else(|| {
                anyhow!(
                    "end of string reached when looking for matching \"]\" in IPv6 host \
                     address in URI: \"{uri}\""
                )
            })?;
            if close == start {
                bail!("IPv6 host address may not be empty in URI: \"{uri}\"");
            }
            host = &rest[start..close];
            i = close + 1;
            if let Some(&c) = bytes.get(i) {
                if !matches!(c, b':' | b'/' | b'?' | b',') {
                    bail!(
                        "unexpected character \"{}\" at position {} in URI (expected \":\" or \
                         \"/\"): \"{uri}\"",
                        c as char,
                        uri.len() - rest.len() + i + 1
                    );
                }
            }
        } else {
            let start = i;
            while i < bytes.len() && !matches!(bytes[i], b':' | b'/' | b'?' | b',') {
                i += 1;
            }
            host = &rest[start..i];
        }
        hosts.push(host);
        let mut port = "";
        if bytes.get(i) == Some(&b':') {
            let start = i + 1;
            i = start;
            while i < bytes.len() && !matches!(bytes[i], b'/' | b'?' | b',') {
                i += 1;
            }
            port = &rest[start..i];
            any_port = true;
        }
        ports.push(port);
        if bytes.get(i) != Some(&b',') {
            terminator = bytes.get(i).copied();
            break;
        }
        i += 1;
    }
    let host_list = hosts.join(",");
    if !host_list.is_empty() {
        opts.insert("host".into(), percent_decode(&host_list)?);
    }
    if any_port {
        opts.insert("port".into(), percent_decode(&ports.join(","))?);
    }

    let mut query = None;
    match terminator {
        Some(b'/') => {
            let after = &rest[i + 1..];
            let (db, q) = match after.split_once('?') {
                Some((d, q)) => (d, Some(q)),
                None => (after, None),
            };
            // An empty dbname is left unset, so PGDATABASE still applies.
            if !db.is_empty() {
                opts.insert("dbname".into(), percent_decode(db)?);
            }
            query = q;
        }
        Some(b'?') => query = Some(&rest[i + 1..]),
        _ => {}
    }
    if let Some(query) = query {
        for param in query.split('&') {
            let mut parts = param.splitn(3, '=');
            let (key, value) = match (parts.next(), parts.next(), parts.next()) {
                (_, _, Some(_)) => {
                    bail!("extra key/value separator \"=\" in URI query parameter: \"{param}\"")
                }
                (Some(k), Some(v), None) => (k, v),
                _ => bail!("missing key/value separator \"=\" in URI query parameter: \"{param}\""),
            };
            let key = percent_decode(key)?;
            let value = percent_decode(value)?;
            let (key, value) = if key == "ssl" && value == "true" {
                ("sslmode".to_string(), "require".to_string())
            } else {
                (key, value)
            };
            store(&mut opts, &key, value)
                .map_err(|_| anyhow!("invalid URI query parameter: \"{key}\""))?;
        }
    }
    Ok(opts)
}

/// Fills unset options from the service's section: `PGSERVICEFILE` or `~/.pg_service.conf`
/// first, then `$PGSYSCONFDIR/pg_service.conf`. An unknown service is an error.
fn apply_service(
    opts: &mut Options,
    service: &str,
    env: &dyn Fn(&str) -> Option<String>,
    home: Option<&Path>,
) -> Result<()> {
    let user_file = match env("PGSERVICEFILE") {
        Some(f) => Some(PathBuf::from(f)),
        None => home.map(|h| h.join(".pg_service.conf")),
    };
    let sysconfdir = env("PGSYSCONFDIR").unwrap_or_else(|| SYSCONFDIR.to_string());
    let system_file = Path::new(&sysconfdir).join("pg_service.conf");
    let mut searched = Vec::new();
    for file in user_file.into_iter().chain([system_file]) {
        searched.push(file.display().to_string());
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        if let Some(section) = parse_service_file(&text, service, &file)? {
            for (k, v) in section {
                opts.entry(k).or_insert(v);
            }
            return Ok(());
        }
    }
    bail!(
        "definition of service \"{service}\" not found (searched {}); check PGSERVICE or \
         service=, or set PGSERVICEFILE",
        searched.join(", ")
    )
}

/// The `[service]` section of a pg_service.conf, or `None` when the file has no such section.
/// libpq's format: `#` comments, no spaces around `=`, known keywords only, no nesting.
pub fn parse_service_file(text: &str, service: &str, file: &Path) -> Result<Option<Options>> {
    let mut found: Option<Options> = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[') {
            if found.is_some() {
                break;
            }
            if name
                .strip_prefix(service)
                .is_some_and(|r| r.starts_with(']'))
            {
                found = Some(Options::new());
            }
            continue;
        }
        let Some(section) = found.as_mut() else {
            continue;
        };
        let syntax = || {
            anyhow!(
                "syntax error in service file \"{}\", line {}",
                file.display(),
                n + 1
            )
        };
        let (key, value) = line.split_once('=').ok_or_else(syntax)?;
        if key == "service" {
            bail!(
                "nested service specifications not supported in service file \"{}\", line {}",
                file.display(),
                n + 1
            );
        }
        if !KEYWORDS.iter().any(|(k, _)| *k == key) {
            return Err(syntax());
        }
        // The first occurrence wins, as in libpq.
        section
            .entry(key.to_string())
            .or_insert_with(|| value.to_string());
    }
    Ok(found)
}

fn parse_int(v: &str, key: &str) -> Result<i64> {
    v.trim()
        .parse::<i64>()
        .map_err(|_| anyhow!("invalid integer value \"{v}\" for connection option \"{key}\""))
}

fn split_list(v: Option<&str>) -> Vec<&str> {
    v.map_or_else(Vec::new, |v| v.split(',').collect())
}

/// libpq's host/hostaddr/port lists: hostaddr and host lists must have the same length; the
/// port list has one entry for all hosts or one per host; empty entries mean defaults.
fn parse_hosts(
    host: Option<&str>,
    hostaddr: Option<&str>,
    port: Option<&str>,
) -> Result<Vec<Target>> {
    let hosts = split_list(host);
    let addrs = split_list(hostaddr);
    if !hosts.is_empty() && !addrs.is_empty() && hosts.len() != addrs.len() {
        bail!(
            "could not match {} host names to {} hostaddr values",
            hosts.len(),
            addrs.len()
        );
    }
    let n = hosts.len().max(addrs.len()).max(1);
    let ports = split_list(port);
    if ports.len() > 1 && ports.len() != n {
        bail!("could not match {} port numbers to {n} hosts", ports.len());
    }
    let mut targets = Vec::with_capacity(n);
    for i in 0..n {
        let port_text = ports.get(i).or(ports.first()).copied().unwrap_or("").trim();
        let port = if port_text.is_empty() {
            DEFAULT_PORT
        } else {
            port_text
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| anyhow!("invalid port number: \"{port_text}\""))?
        };
        let name = hosts.get(i).copied().unwrap_or("");
        let addr = addrs.get(i).copied().unwrap_or("");
        let hostaddr = if addr.is_empty() {
            None
        } else {
            Some(addr.parse::<IpAddr>().map_err(|_| {
                anyhow!(
                    "could not parse network address \"{addr}\" (hostaddr must be an IP address)"
                )
            })?)
        };
        let host = if name.starts_with('/') || name.starts_with('@') {
            Host::Socket(PathBuf::from(name))
        } else if !name.is_empty() {
            Host::Tcp(name.to_string())
        } else if let Some(a) = hostaddr {
            Host::Tcp(a.to_string())
        } else {
            Host::Socket(default_socket_dir(port))
        };
        targets.push(Target {
            host,
            hostaddr,
            port,
            pgpass: None,
        });
    }
    Ok(targets)
}

fn default_socket_dir(port: u16) -> PathBuf {
    DEFAULT_SOCKET_DIRS
        .iter()
        .map(PathBuf::from)
        .find(|d| d.join(format!(".s.PGSQL.{port}")).exists())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET_DIRS[0]))
}

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

/// The password of the first line of a .pgpass file matching
/// `hostname:port:database:username`. `*` matches anything; `\` escapes `:` and `\`;
/// lines starting with `#` are comments.
pub fn pgpass_lookup(
    contents: &str,
    host: &str,
    port: &str,
    dbname: &str,
    user: &str,
) -> Option<String> {
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
    for line in contents.lines() {
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
            return Some(pw);
        }
    }
    None
}

/// The passwd entry of the effective user: name and home directory.
fn passwd_entry() -> Option<(String, PathBuf)> {
    // SAFETY: geteuid cannot fail; getpwuid_r writes only into `pwd` and `buf`, whose sizes
    // are passed; the strings it points to live in `buf`, which outlives their use.
    unsafe {
        let uid = libc::geteuid();
        let mut size = 4096;
        loop {
            let mut buf = vec![0u8; size];
            let mut pwd: libc::passwd = std::mem::zeroed();
            let mut result: *mut libc::passwd = std::ptr::null_mut();
            let rc = libc::getpwuid_r(
                uid,
                &mut pwd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            );
            if rc == libc::ERANGE && size < 1 << 20 {
                size *= 4;
                continue;
            }
            if rc != 0 || result.is_null() {
                return None;
            }
            let name = CStr::from_ptr(pwd.pw_name).to_string_lossy().into_owned();
            let dir = PathBuf::from(OsStr::from_bytes(CStr::from_ptr(pwd.pw_dir).to_bytes()));
            return Some((name, dir));
        }
    }
}

/// The OS user name, as libpq's default user: the effective uid's passwd entry, else $USER.
pub fn os_user() -> Option<String> {
    passwd_entry()
        .map(|(name, _)| name)
        .or_else(|| std::env::var("USER").ok().filter(|u| !u.is_empty()))
}

/// $HOME, else the passwd entry's home directory.
fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .or_else(|| passwd_entry().map(|(_, dir)| dir))
}

/// Resolves the settings, prompts for a password when asked to (or when the server wants one
/// and stdin is a terminal, as psql does), and connects to the first host that accepts.
/// Warnings (an unsafe password file) go to stderr, as libpq prints them.
pub fn connect(args: &ConnArgs) -> Result<postgres::Client> {
    connect_with(args, Settings::resolve(args)?)
}

/// Connects as `connect` does, but to the database `dbname` whatever the command line names
/// (the password file is looked up for that database).
pub fn connect_to_database(args: &ConnArgs, dbname: &str) -> Result<postgres::Client> {
    let env = |k: &str| std::env::var(k).ok();
    let home = home_dir();
    let mut opts = collect_options(args, &env, home.as_deref())?;
    opts.insert("dbname".to_string(), dbname.to_string());
    connect_with(args, Settings::from_options(&opts, home.as_deref())?)
}

fn connect_with(args: &ConnArgs, settings: Settings) -> Result<postgres::Client> {
    for w in &settings.warnings {
        eprintln!("pgkick: warning: {w}");
    }
    let prompt = |user: &str| -> Result<String> {
        rpassword::prompt_password(format!("Password for user {user}: "))
            .map_err(|e| anyhow!("could not read the password from the terminal: {e}"))
    };
    let mut typed = if args.password {
        Some(prompt(&settings.user)?)
    } else {
        None
    };
    loop {
        match settings.connect(typed.as_deref()) {
            Ok(client) => return Ok(client),
            Err(Failure::NeedPassword(where_)) => {
                if typed.is_none() && !args.no_password && std::io::stdin().is_terminal() {
                    typed = Some(prompt(&settings.user)?);
                    continue;
                }
                let why = if args.no_password {
                    " and -w forbids prompting"
                } else if typed.is_some() {
                    ""
                } else {
                    " and stdin is not a terminal to prompt on"
                };
                bail!(
                    "{where_} failed: the server requires a password for user \"{}\", none was \
                     supplied{why}; put it in ~/.pgpass (or the file PGPASSFILE names) or \
                     PGPASSWORD, or use -W on a terminal",
                    settings.user
                );
            }
            Err(Failure::Other(msg)) => return Err(anyhow!(msg)),
        }
    }
}

/// Why connecting failed.
#[derive(Debug)]
pub enum Failure {
    /// The server asked for a password and none was known; holds the "connection to server
    /// ..." prefix.
    NeedPassword(String),
    /// Everything else, as one line naming each host's problem.
    Other(String),
}

/// One failed try of one address.
enum TryError {
    Pg(postgres::Error),
    Timeout(Duration),
    /// The session does not have the target_session_attrs property.
    Attrs(&'static str),
}

impl Settings {
    /// Tries every host in order (libpq: the first that accepts wins), with `typed` as the
    /// password from a prompt.
    pub fn connect(&self, typed: Option<&str>) -> Result<postgres::Client, Failure> {
        let mut order: Vec<&Target> = self.targets.iter().collect();
        if self.load_balance {
            shuffle(&mut order);
        }
        let needs_tls = self.tls.mode != SslMode::Disable
            && order.iter().any(|t| matches!(t.host, Host::Tcp(_)));
        let connector = if needs_tls {
            Some(
                self.tls
                    .connector()
                    .map_err(|e| Failure::Other(format!("{e:#}")))?,
            )
        } else {
            None
        };
        let passes = match self.target_session_attrs {
            SessionAttrs::PreferStandby => vec![SessionAttrs::Standby, SessionAttrs::Any],
            a => vec![a],
        };
        let mut errors: Vec<String> = Vec::new();
        let mut need_password = None;
        for attrs in &passes {
            for target in &order {
                let password = self.password_for(target, typed);
                let addrs: Vec<Option<IpAddr>> = match (&target.host, target.hostaddr) {
                    (_, Some(a)) => vec![Some(a)],
                    (Host::Socket(_), None) => vec![None],
                    (Host::Tcp(name), None) => match (name.as_str(), target.port).to_socket_addrs()
                    {
                        Ok(a) => a.map(|s: SocketAddr| Some(s.ip())).collect(),
                        Err(e) => {
                            let e = e.to_string();
                            let e = e
                                .strip_prefix("failed to lookup address information: ")
                                .unwrap_or(&e);
                            errors.push(format!(
                                "could not translate host name \"{name}\" to address: {e}"
                            ));
                            continue;
                        }
                    },
                };
                for addr in addrs {
                    let place = describe_target(target, addr);
                    match self.try_address(target, addr, password, *attrs, connector.as_ref()) {
                        Ok(client) => return Ok(client),
                        Err(TryError::Pg(e)) if is_password_missing(&e) => {
                            need_password.get_or_insert(place);
                        }
                        Err(e) => {
                            errors.push(format!("{place} failed: {}", self.explain(&e, target)))
                        }
                    }
                }
            }
        }
        // psql prompts when any host asked for a password that was not known.
        if let Some(place) = need_password {
            return Err(Failure::NeedPassword(place));
        }
        Err(Failure::Other(errors.join("; ")))
    }

    fn password_for<'a>(&'a self, target: &'a Target, typed: Option<&'a str>) -> Option<&'a str> {
        match (&self.password, typed) {
            (Some((p, PasswordSource::Dbname)), _) => Some(p),
            (_, Some(t)) => Some(t),
            (Some((p, _)), None) => Some(p),
            (None, None) => target.pgpass.as_ref().map(|(p, _)| p.as_str()),
        }
    }

    /// One address, with libpq's sslmode retries (`allow`: plain then TLS when the server
    /// rejects the plain session; `prefer`: TLS then plain when the handshake fails or the
    /// server rejects the encrypted session). Unix sockets never use TLS.
    fn try_address(
        &self,
        target: &Target,
        addr: Option<IpAddr>,
        password: Option<&str>,
        attrs: SessionAttrs,
        connector: Option<&TlsConnector>,
    ) -> Result<postgres::Client, TryError> {
        let attempts: &[Attempt] = match (&target.host, connector) {
            (Host::Tcp(_), Some(_)) => self.tls.attempts(),
            _ => &[Attempt::Plain],
        };
        let mut last = None;
        for (i, attempt) in attempts.iter().enumerate() {
            let cfg = self.config(target, addr, password, *attempt);
            let tls = connector.filter(|_| *attempt != Attempt::Plain);
            if let Some(c) = tls {
                c.reset();
            }
            let result = run_with_timeout(self.connect_timeout, cfg, tls.cloned());
            let err = match result {
                Ok(client) => return check_attrs(client, attrs),
                Err(e) => e,
            };
            let retry = i + 1 < attempts.len()
                && match (&err, attempt) {
                    (TryError::Pg(e), Attempt::Plain) => e.as_db_error().is_some(),
                    (TryError::Pg(e), Attempt::TryTls) => {
                        tls.is_some_and(TlsConnector::handshake_started)
                            && (e.as_db_error().is_some() || is_tls_error(e))
                    }
                    _ => false,
                };
            if !retry {
                return Err(err);
            }
            last = Some(err);
        }
        Err(last.expect("at least one attempt"))
    }

    fn config(
        &self,
        target: &Target,
        addr: Option<IpAddr>,
        password: Option<&str>,
        attempt: Attempt,
    ) -> postgres::Config {
        let mut cfg = postgres::Config::new();
        cfg.user(&self.user)
            .dbname(&self.dbname)
            .application_name(&self.application_name)
            .port(target.port)
            .keepalives(self.keepalives)
            .channel_binding(self.channel_binding)
            .ssl_mode(match attempt {
                Attempt::Plain => PgSslMode::Disable,
                Attempt::TryTls => PgSslMode::Prefer,
                Attempt::Tls => PgSslMode::Require,
            });
        if self.ssl_negotiation_direct {
            cfg.ssl_negotiation(SslNegotiation::Direct);
        }
        if let Some(d) = self.keepalives_idle {
            cfg.keepalives_idle(d);
        }
        if let Some(d) = self.keepalives_interval {
            cfg.keepalives_interval(d);
        }
        if let Some(n) = self.keepalives_count {
            cfg.keepalives_retries(n);
        }
        if let Some(o) = &self.options {
            cfg.options(o);
        }
        if let Some(p) = password {
            cfg.password(p);
        }
        match &target.host {
            Host::Socket(dir) => {
                cfg.host_path(dir);
            }
            Host::Tcp(name) => {
                cfg.host(name);
            }
        }
        if let Some(a) = addr {
            cfg.hostaddr(a);
        }
        cfg
    }

    /// The reason part of a failure message, psql-style, with the fix where there is one.
    fn explain(&self, err: &TryError, target: &Target) -> String {
        let e = match err {
            TryError::Timeout(d) => {
                return format!(
                    "timed out after {}s (connect_timeout; set connect_timeout= or \
                     PGCONNECT_TIMEOUT to change it, 0 to wait forever)",
                    d.as_secs()
                )
            }
            TryError::Attrs(msg) => return msg.to_string(),
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
            if cause.contains("server does not support TLS") {
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
        let socket = matches!(target.host, Host::Socket(_));
        if let Some(io) = io_error(e) {
            let hint = if socket {
                "Is the server running locally and accepting connections on that socket?"
            } else {
                "Is the server running on that host and accepting TCP/IP connections?"
            };
            return match io.kind() {
                std::io::ErrorKind::NotFound if socket => {
                    format!("No such file or directory. {hint}")
                }
                std::io::ErrorKind::ConnectionRefused => format!("Connection refused. {hint}"),
                std::io::ErrorKind::TimedOut => "timed out (connect_timeout)".to_string(),
                std::io::ErrorKind::PermissionDenied if socket => {
                    "Permission denied (check the socket's permissions)".to_string()
                }
                _ => capitalize(&io.to_string()),
            };
        }
        with_cause(e)
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// A "connection to server ..." prefix naming the socket file or host, address and port.
fn describe_target(t: &Target, addr: Option<IpAddr>) -> String {
    match &t.host {
        Host::Socket(dir) => format!(
            "connection to server on socket \"{}\"",
            dir.join(format!(".s.PGSQL.{}", t.port)).display()
        ),
        Host::Tcp(name) => match addr {
            Some(a) if a.to_string() != *name => {
                format!("connection to server at \"{name}\" ({a}), port {}", t.port)
            }
            _ => format!("connection to server at \"{name}\", port {}", t.port),
        },
    }
}

fn io_error(e: &postgres::Error) -> Option<&std::io::Error> {
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        cause = c.source();
    }
    None
}

fn is_tls_error(e: &postgres::Error) -> bool {
    e.to_string().starts_with("error performing TLS handshake")
}

fn is_password_missing(e: &postgres::Error) -> bool {
    e.as_db_error().is_none() && with_cause(e).ends_with("password missing")
}

/// rust-postgres' Display names only the error kind; the cause carries the detail.
fn with_cause(e: &postgres::Error) -> String {
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// Connects in a thread so that connect_timeout bounds the whole attempt (TCP connect, TLS
/// and authentication), as libpq's does, not only the TCP connect.
fn run_with_timeout(
    timeout: Option<Duration>,
    cfg: postgres::Config,
    tls: Option<TlsConnector>,
) -> Result<postgres::Client, TryError> {
    let go = move || match tls {
        Some(tls) => cfg.connect(tls),
        None => cfg.connect(postgres::NoTls),
    };
    let Some(timeout) = timeout else {
        return go().map_err(TryError::Pg);
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(go());
    });
    match rx.recv_timeout(timeout) {
        Ok(result) => result.map_err(TryError::Pg),
        // The thread is left to finish or fail on its own; its client, if any, is dropped.
        Err(_) => Err(TryError::Timeout(timeout)),
    }
}

/// target_session_attrs, checked as libpq does after the session is up.
fn check_attrs(
    mut client: postgres::Client,
    attrs: SessionAttrs,
) -> Result<postgres::Client, TryError> {
    let (sql, want, msg) = match attrs {
        SessionAttrs::Any | SessionAttrs::PreferStandby => return Ok(client),
        SessionAttrs::ReadWrite => ("SHOW transaction_read_only", "off", "session is read-only"),
        SessionAttrs::ReadOnly => (
            "SHOW transaction_read_only",
            "on",
            "session is not read-only",
        ),
        SessionAttrs::Primary => (
            "SELECT pg_catalog.pg_is_in_recovery()",
            "f",
            "server is in hot standby mode",
        ),
        SessionAttrs::Standby => (
            "SELECT pg_catalog.pg_is_in_recovery()",
            "t",
            "server is not in hot standby mode",
        ),
    };
    let rows = client.simple_query(sql).map_err(TryError::Pg)?;
    let value = rows.iter().find_map(|m| match m {
        postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
        _ => None,
    });
    if value.as_deref() == Some(want) {
        Ok(client)
    } else {
        Err(TryError::Attrs(msg))
    }
}

/// load_balance_hosts=random without a rand dependency: a randomly keyed hasher orders the
/// hosts.
fn shuffle<T>(items: &mut [T]) {
    use std::hash::{BuildHasher, RandomState};
    let state = RandomState::new();
    let mut keys: Vec<u64> = (0..items.len()).map(|i| state.hash_one(i)).collect();
    // Selection sort by key, swapping items alongside.
    for i in 0..items.len() {
        let min = (i..items.len()).min_by_key(|&j| keys[j]).unwrap_or(i);
        keys.swap(i, min);
        items.swap(i, min);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn opts(pairs: &[(&str, &str)]) -> Options {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// A scratch directory removed on drop.
    struct Scratch(PathBuf);
    impl Scratch {
        fn new(name: &str) -> Scratch {
            let dir =
                std::env::temp_dir().join(format!("pgkick-conn-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }
        fn write(&self, name: &str, text: &str, mode: u32) -> PathBuf {
            use std::os::unix::fs::PermissionsExt;
            let p = self.0.join(name);
            std::fs::write(&p, text).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            p
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn resolve(args: &ConnArgs, env: &[(&str, &str)], home: Option<&Path>) -> Result<Settings> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::resolve_with(args, &|k| env.get(k).cloned(), home)
    }

    fn args(
        host: Option<&str>,
        port: Option<&str>,
        user: Option<&str>,
        db: Option<&str>,
    ) -> ConnArgs {
        ConnArgs {
            host: host.map(Into::into),
            port: port.map(Into::into),
            username: user.map(Into::into),
            dbname: db.map(Into::into),
            ..ConnArgs::default()
        }
    }

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
        assert_eq!(
            parse_conninfo("requiressl=1").unwrap(),
            opts(&[("sslmode", "require")])
        );
    }

    #[test]
    fn uri_full_form() {
        let o = parse_uri(
            "postgresql://us%40er:p%3Ass@db1.example:5433,[::1]:5434,db3/my%20db?sslmode=verify-full&application_name=x",
        )
        .unwrap();
        assert_eq!(
            o,
            opts(&[
                ("user", "us@er"),
                ("password", "p:ss"),
                ("host", "db1.example,::1,db3"),
                ("port", "5433,5434,"),
                ("dbname", "my db"),
                ("sslmode", "verify-full"),
                ("application_name", "x"),
            ])
        );
    }

    #[test]
    fn uri_short_forms_and_query_params() {
        assert_eq!(parse_uri("postgres://").unwrap(), Options::new());
        assert_eq!(parse_uri("postgresql://h").unwrap(), opts(&[("host", "h")]));
        assert_eq!(
            parse_uri("postgresql://h/").unwrap(),
            opts(&[("host", "h")])
        );
        assert_eq!(
            parse_uri("postgresql://[::1]").unwrap(),
            opts(&[("host", "::1")])
        );
        assert_eq!(
            parse_uri("postgresql:///db?host=/var/lib/postgresql&port=5433").unwrap(),
            opts(&[
                ("dbname", "db"),
                ("host", "/var/lib/postgresql"),
                ("port", "5433")
            ])
        );
        assert_eq!(
            parse_uri("postgresql://%2Ftmp%2Fpg/db").unwrap(),
            opts(&[("host", "/tmp/pg"), ("dbname", "db")])
        );
        assert_eq!(
            parse_uri("postgresql://u@?ssl=true").unwrap(),
            opts(&[("user", "u"), ("sslmode", "require")])
        );
        // '+' is not a space in libpq URIs.
        assert_eq!(
            parse_uri("postgresql:///a+b").unwrap(),
            opts(&[("dbname", "a+b")])
        );
        let err = |s| parse_uri(s).unwrap_err().to_string();
        assert!(err("postgresql://[::1").contains("matching \"]\""));
        assert!(err("postgresql://[]").contains("may not be empty"));
        assert!(err("postgresql://[::1]x").contains("unexpected character \"x\""));
        assert_eq!(
            err("postgresql:///db?foo=1"),
            "invalid URI query parameter: \"foo\""
        );
        assert!(err("postgresql:///db?port").contains("missing key/value separator"));
        assert!(err("postgresql:///db?port=1=2").contains("extra key/value separator"));
        assert!(err("postgresql:///d%zz").contains("invalid percent-encoded token"));
        assert!(err("postgresql:///d%00").contains("forbidden value %00"));
    }

    #[test]
    fn connection_string_detection() {
        assert!(is_connection_string("host=x"));
        assert!(is_connection_string("postgresql://x"));
        assert!(is_connection_string("postgres://x"));
        assert!(!is_connection_string("mydb"));
        assert!(!is_connection_string("postgresql:/x"));
    }

    #[test]
    fn defaults() {
        let s = resolve(&ConnArgs::default(), &[], None).unwrap();
        assert_eq!(s.user, os_user().unwrap());
        assert_eq!(s.dbname, "postgres");
        assert_eq!(s.application_name, "pgkick");
        assert_eq!(s.connect_timeout, Some(Duration::from_secs(30)));
        assert!(s.keepalives);
        assert_eq!(s.tls.mode, SslMode::Prefer);
        assert_eq!(s.targets.len(), 1);
        assert_eq!(s.targets[0].port, 5432);
        match &s.targets[0].host {
            Host::Socket(d) => assert!(DEFAULT_SOCKET_DIRS.iter().any(|x| Path::new(x) == d)),
            h => panic!("{h:?}"),
        }
        // No socket on this odd port anywhere: the first default directory is named.
        let s = resolve(&args(None, Some("65001"), None, None), &[], None).unwrap();
        assert_eq!(
            s.targets[0].host,
            Host::Socket("/var/run/postgresql".into())
        );
    }

    #[test]
    fn dbname_conninfo_overrides_flags_like_psql() {
        let a = args(
            Some("flaghost"),
            Some("1111"),
            Some("flaguser"),
            Some("host=connhost dbname=d"),
        );
        let s = resolve(&a, &[], None).unwrap();
        assert_eq!(s.targets[0].host, Host::Tcp("connhost".into()));
        assert_eq!(
            s.targets[0].port, 1111,
            "flags still apply where conninfo is silent"
        );
        assert_eq!(s.user, "flaguser");
        assert_eq!(s.dbname, "d");
        let a = args(
            Some("flaghost"),
            None,
            Some("flaguser"),
            Some("postgresql://uriuser@urihost:2222"),
        );
        let s = resolve(&a, &[("PGDATABASE", "envdb")], None).unwrap();
        assert_eq!(s.targets[0].host, Host::Tcp("urihost".into()));
        assert_eq!(s.targets[0].port, 2222);
        assert_eq!(s.user, "uriuser");
        assert_eq!(
            s.dbname, "envdb",
            "a URI without dbname leaves PGDATABASE in force"
        );
    }

    #[test]
    fn flags_override_env_and_env_overrides_defaults() {
        let env = [
            ("PGHOST", "envhost"),
            ("PGPORT", "3333"),
            ("PGUSER", "envuser"),
            ("PGDATABASE", "envdb"),
            ("PGAPPNAME", "mine"),
            ("PGCONNECT_TIMEOUT", "0"),
            ("PGSSLMODE", "disable"),
            ("PGOPTIONS", "-c x=1"),
        ];
        let s = resolve(&ConnArgs::default(), &env, None).unwrap();
        assert_eq!(s.targets[0].host, Host::Tcp("envhost".into()));
        assert_eq!(s.targets[0].port, 3333);
        assert_eq!(s.user, "envuser");
        assert_eq!(s.dbname, "envdb");
        assert_eq!(s.application_name, "mine");
        assert_eq!(s.connect_timeout, None);
        assert_eq!(s.tls.mode, SslMode::Disable);
        assert_eq!(s.options.as_deref(), Some("-c x=1"));
        let s = resolve(
            &args(Some("h"), Some("4444"), Some("u"), Some("db")),
            &env,
            None,
        )
        .unwrap();
        assert_eq!(s.targets[0].host, Host::Tcp("h".into()));
        assert_eq!(s.targets[0].port, 4444);
        assert_eq!((s.user.as_str(), s.dbname.as_str()), ("u", "db"));
        let s = resolve(
            &args(None, None, None, Some("connect_timeout=1")),
            &[],
            None,
        )
        .unwrap();
        assert_eq!(s.connect_timeout, Some(Duration::from_secs(2)));
        assert!(resolve(
            &args(None, None, None, Some("connect_timeout=x")),
            &[],
            None
        )
        .is_err());
    }

    #[test]
    fn service_file_between_flags_and_env() {
        let dir = Scratch::new("service");
        let file = dir.write(
            "svc.conf",
            "# comment\n[other]\nhost=wrong\n\n[prod]\nhost=svchost\nport=6543\ndbname=svcdb\n[after]\nuser=wrong\n",
            0o644,
        );
        let file_s = file.to_str().unwrap();
        let env = [
            ("PGSERVICEFILE", file_s),
            ("PGHOST", "envhost"),
            ("PGUSER", "envuser"),
        ];
        let s = resolve(
            &args(None, Some("1"), None, Some("service=prod")),
            &env,
            None,
        )
        .unwrap();
        assert_eq!(
            s.targets[0].host,
            Host::Tcp("svchost".into()),
            "service beats env"
        );
        assert_eq!(s.targets[0].port, 1, "flags beat the service");
        assert_eq!(s.dbname, "svcdb");
        assert_eq!(s.user, "envuser", "env fills what the service leaves unset");
        // PGSERVICE selects it too.
        let env2 = [("PGSERVICEFILE", file_s), ("PGSERVICE", "prod")];
        assert_eq!(
            resolve(&ConnArgs::default(), &env2, None).unwrap().dbname,
            "svcdb"
        );
        // The system file under PGSYSCONFDIR is searched next.
        let sysdir = Scratch::new("sysconf");
        sysdir.write("pg_service.conf", "[sys]\nport=7777\n", 0o644);
        let env3 = [
            ("PGSERVICEFILE", file_s),
            ("PGSYSCONFDIR", sysdir.0.to_str().unwrap()),
            ("PGSERVICE", "sys"),
        ];
        assert_eq!(
            resolve(&ConnArgs::default(), &env3, None).unwrap().targets[0].port,
            7777
        );
        let env4 = [("PGSERVICEFILE", file_s), ("PGSYSCONFDIR", "/nonexistent")];
        let err = resolve(&args(None, None, None, Some("service=nope")), &env4, None)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.starts_with("definition of service \"nope\" not found"),
            "{err}"
        );
    }

    #[test]
    fn service_file_syntax() {
        let f = Path::new("f.conf");
        let s = parse_service_file("[a]\n  host=x  \nport=1\nport=2\n", "a", f)
            .unwrap()
            .unwrap();
        assert_eq!(s, opts(&[("host", "x"), ("port", "1")]));
        assert!(parse_service_file("[ab]\nhost=x\n", "a", f)
            .unwrap()
            .is_none());
        let err = |t| parse_service_file(t, "a", f).unwrap_err().to_string();
        assert_eq!(
            err("[a]\nhost\n"),
            "syntax error in service file \"f.conf\", line 2"
        );
        assert_eq!(
            err("[a]\nhots=x\n"),
            "syntax error in service file \"f.conf\", line 2"
        );
        assert!(err("[a]\nservice=b\n").contains("nested service"));
        // Errors in other sections are not looked at.
        assert!(parse_service_file("[b]\ngarbage\n[a]\nport=1\n", "a", f)
            .unwrap()
            .is_some());
    }

    #[test]
    fn host_and_port_lists() {
        let s = resolve(
            &args(Some("a,/sock,,b"), Some("1,2,,4"), None, None),
            &[],
            None,
        )
        .unwrap();
        let hosts: Vec<_> = s.targets.iter().map(|t| (t.host.clone(), t.port)).collect();
        assert_eq!(hosts[0], (Host::Tcp("a".into()), 1));
        assert_eq!(hosts[1], (Host::Socket("/sock".into()), 2));
        assert!(matches!(hosts[2], (Host::Socket(_), 5432)));
        assert_eq!(hosts[3], (Host::Tcp("b".into()), 4));
        let s = resolve(&args(Some("a,b"), Some("9"), None, None), &[], None).unwrap();
        assert!(s.targets.iter().all(|t| t.port == 9));
        let err = |a: ConnArgs| resolve(&a, &[], None).err().unwrap().to_string();
        assert_eq!(
            err(args(Some("a,b,c"), Some("1,2"), None, None)),
            "could not match 2 port numbers to 3 hosts"
        );
        assert_eq!(
            err(args(None, Some("99999"), None, None)),
            "invalid port number: \"99999\""
        );
        let s = resolve(
            &args(None, None, None, Some("host=h hostaddr=10.1.2.3")),
            &[],
            None,
        )
        .unwrap();
        assert_eq!(s.targets[0].hostaddr, Some("10.1.2.3".parse().unwrap()));
        assert_eq!(s.targets[0].host, Host::Tcp("h".into()));
        let s = resolve(&args(None, None, None, Some("hostaddr=::1")), &[], None).unwrap();
        assert_eq!(s.targets[0].host, Host::Tcp("::1".into()));
        assert!(resolve(
            &args(None, None, None, Some("host=a,b hostaddr=::1")),
            &[],
            None
        )
        .is_err());
    }

    #[test]
    fn application_name_falls_back_to_pgkick() {
        let s = resolve(
            &args(None, None, None, Some("application_name=etl")),
            &[],
            None,
        )
        .unwrap();
        assert_eq!(s.application_name, "etl");
        let s = resolve(
            &args(None, None, None, Some("fallback_application_name=x")),
            &[],
            None,
        )
        .unwrap();
        assert_eq!(s.application_name, "pgkick");
    }

    #[test]
    fn unsupported_options_are_refused() {
        for c in ["requirepeer=postgres", "gssencmode=require", "sslcrl=/x"] {
            assert!(
                resolve(&args(None, None, None, Some(c)), &[], None).is_err(),
                "{c}"
            );
        }
        assert!(resolve(
            &args(None, None, None, Some("gssencmode=prefer")),
            &[],
            None
        )
        .is_ok());
    }

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
    fn password_precedence() {
        let s = resolve(
            &args(None, None, None, Some("password=conn")),
            &[("PGPASSWORD", "env")],
            None,
        )
        .unwrap();
        let t = &s.targets[0];
        assert_eq!(s.password_for(t, None), Some("conn"));
        assert_eq!(
            s.password_for(t, Some("typed")),
            Some("conn"),
            "libpq expands dbname last"
        );
        let s = resolve(&ConnArgs::default(), &[("PGPASSWORD", "env")], None).unwrap();
        assert_eq!(s.password_for(&s.targets[0], Some("typed")), Some("typed"));
        assert_eq!(s.password_for(&s.targets[0], None), Some("env"));
    }

    #[test]
    fn target_descriptions() {
        let t = |host| Target {
            host,
            hostaddr: None,
            port: 5433,
            pgpass: None,
        };
        assert_eq!(
            describe_target(&t(Host::Socket("/tmp".into())), None),
            "connection to server on socket \"/tmp/.s.PGSQL.5433\""
        );
        assert_eq!(
            describe_target(
                &t(Host::Tcp("db".into())),
                Some("10.0.0.1".parse().unwrap())
            ),
            "connection to server at \"db\" (10.0.0.1), port 5433"
        );
        assert_eq!(
            describe_target(
                &t(Host::Tcp("10.0.0.1".into())),
                Some("10.0.0.1".parse().unwrap())
            ),
            "connection to server at \"10.0.0.1\", port 5433"
        );
    }
}
