//! The report of `pgkick conninfo`: where pgkick would connect, and why.
//!
//! [`Report::new`] turns resolved [`Settings`] into a report of each setting with its value
//! and its source (flag, `-d` conninfo string or URI, PG* variable, service file, default),
//! the hosts in the order they would be tried, and whether a password was found and where.
//! It does no I/O: resolving (which reads the service and password files) is `conn`'s, and
//! printing is `output`'s. With `--connect`, [`Connection::query`] adds what the server says
//! about the session it got.
//!
//! The password is never part of a report: only whether one was found and where.

use std::path::PathBuf;

use anyhow::{Context, Result};

use serde::Serialize;

use super::Params;
use super::{Connected, Given, Host, Origin, Settings, Target};
/// Everything `pgkick conninfo` shows.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The main settings always, then every other option that was set.
    pub settings: Vec<Setting>,
    /// The hosts in the order they are tried (load_balance_hosts=random shuffles them).
    pub hosts: Vec<HostEntry>,
    pub password: Password,
    /// What pgkick would warn about when connecting (an unsafe password file).
    pub warnings: Vec<String>,
    /// With `--connect`: the session pgkick got.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection: Option<Connection>,
}

/// The kinds of place a setting can come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// A command-line flag (`from` names it).
    Flag,
    /// The `-d` value, a `key=value` conninfo string.
    Conninfo,
    /// The `-d` value, a `postgresql://` URI.
    Uri,
    /// An environment variable (`from` names it).
    Env,
    /// A connection service file (`from` names the service, `file` the file).
    Service,
    /// The password file (`file`, `line`).
    Pgpass,
    /// Nothing set it.
    Default,
}

/// One connection option.
#[derive(Debug, Serialize)]
pub struct Setting {
    pub name: String,
    pub value: String,
    pub source: Source,
    /// The flag, environment variable or service name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The service file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
}

/// One entry of the host list.
#[derive(Debug, Serialize)]
pub struct HostEntry {
    /// Host name, IP address, or unix socket directory.
    pub host: String,
    /// True for a unix socket directory.
    pub socket: bool,
    /// The address used instead of resolving `host`.
    pub hostaddr: Option<String>,
    pub port: u16,
    /// The password file line that matches this host, when the password comes from there.
    pub pgpass_line: Option<usize>,
}

/// Whether a password is known before connecting, and where from. Never the password.
#[derive(Debug, Serialize)]
pub struct Password {
    pub found: bool,
    /// `conninfo`, `uri`, `env`, `service` or `pgpass`; null when none was found.
    pub source: Option<Source>,
    /// The environment variable or service name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// The service file or password file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
    /// The password file line (from 1), for the first host it matches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// When pgkick asks on the terminal: `before` (-W), `never` (-w), or `when-asked` (the
    /// server wants a password none was found for, and stdin is a terminal).
    pub prompt: &'static str,
}

/// What the server says about the session `--connect` got.
#[derive(Debug, Serialize)]
pub struct Connection {
    /// The "server at ..." or "server on socket ..." the session went to.
    pub connected_to: String,
    /// The address connected to (null for a unix socket).
    pub address: Option<String>,
    pub port: u16,
    /// `server_version`, e.g. "17.2".
    pub server_version: String,
    pub server_version_num: i32,
    /// Whether the session is encrypted (pg_stat_ssl), and with what protocol.
    pub tls: bool,
    pub tls_version: Option<String>,
    /// The role privileges are checked against, and the one that authenticated.
    pub current_user: String,
    pub session_user: String,
}

/// The options always shown, with their defaults when unset; any other option is shown only
/// when set.
const MAIN: [&str; 8] = [
    "host",
    "port",
    "user",
    "dbname",
    "sslmode",
    "application_name",
    "connect_timeout",
    "service",
];

impl Report {
    /// The report of `settings`, resolved from `args` (for -W and -w).
    pub fn new(settings: &Settings, args: &Params) -> Report {
        let mut rows = Vec::new();
        for name in MAIN {
            match settings.given.get(name) {
                Some(given) => rows.push(Setting::given(name, given)),
                None => rows.extend(default_value(settings, name).map(|value| Setting {
                    name: name.to_string(),
                    value,
                    source: Source::Default,
                    from: None,
                    file: None,
                })),
            }
        }
        for (name, _) in super::KEYWORDS {
            if MAIN.contains(name) || *name == "password" {
                continue;
            }
            if let Some(given) = settings.given.get(*name) {
                rows.push(Setting::given(name, given));
            }
        }
        Report {
            settings: rows,
            hosts: settings.targets.iter().map(HostEntry::new).collect(),
            password: Password::new(settings, args),
            warnings: settings.warnings.clone(),
            connection: None,
        }
    }

    /// The lines a person reads under the settings table.
    pub fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let hosts: Vec<String> = self.hosts.iter().map(HostEntry::describe).collect();
        let tried = if hosts.len() == 1 {
            "host"
        } else {
            "hosts, tried in order"
        };
        lines.push(format!("{tried}: {}", hosts.join("; ")));
        lines.push(format!("password: {}", self.password.describe()));
        for w in &self.warnings {
            lines.push(format!("warning: {w}"));
        }
        if let Some(s) = &self.connection {
            lines.push(format!("connected to: {}", s.connected_to));
            lines.push(format!(
                "server version: {} ({})",
                s.server_version, s.server_version_num
            ));
            lines.push(format!(
                "TLS: {}",
                match (&s.tls, &s.tls_version) {
                    (true, Some(v)) => format!("yes ({v})"),
                    (true, None) => "yes".to_string(),
                    (false, _) => "no".to_string(),
                }
            ));
            lines.push(format!(
                "user: {} (session_user {})",
                s.current_user, s.session_user
            ));
        }
        lines
    }
}

impl Setting {
    fn given(name: &str, given: &Given) -> Setting {
        let (source, from, file) = match &given.origin {
            Origin::Flag(flag) => (Source::Flag, Some(flag.to_string()), None),
            Origin::Conninfo => (Source::Conninfo, None, None),
            Origin::Uri => (Source::Uri, None, None),
            Origin::Env(var) => (Source::Env, Some(var.to_string()), None),
            Origin::Service { name, file } => {
                (Source::Service, Some(name.clone()), Some(file.clone()))
            }
        };
        Setting {
            name: name.to_string(),
            value: given.value.clone(),
            source,
            from,
            file,
        }
    }

    pub fn describe_source(&self) -> String {
        describe(self.source, self.from.as_deref(), self.file.as_ref(), None)
    }
}

/// The value pgkick uses for `name` when nothing sets it.
fn default_value(settings: &Settings, name: &str) -> Option<String> {
    Some(match name {
        "host" => {
            let hosts: Vec<String> = settings.targets.iter().map(|t| t.host.text()).collect();
            hosts.join(",")
        }
        "port" => super::DEFAULT_PORT.to_string(),
        "user" => settings.user.clone(),
        "dbname" => settings.dbname.clone(),
        "sslmode" => settings.tls.mode.to_string(),
        "application_name" => super::APPLICATION_NAME.to_string(),
        "connect_timeout" => super::DEFAULT_CONNECT_TIMEOUT.as_secs().to_string(),
        _ => return None,
    })
}

impl HostEntry {
    fn new(t: &Target) -> HostEntry {
        HostEntry {
            host: t.host.text(),
            socket: matches!(t.host, Host::Socket(_)),
            hostaddr: t.hostaddr.map(|a| a.to_string()),
            port: t.port,
            pgpass_line: t.pgpass_line,
        }
    }

    fn describe(&self) -> String {
        let mut text = if self.socket {
            format!("socket {}/.s.PGSQL.{}", self.host, self.port)
        } else {
            format!("{} port {}", self.host, self.port)
        };
        if let Some(a) = &self.hostaddr {
            text.push_str(&format!(" (hostaddr {a})"));
        }
        text
    }
}

impl Password {
    fn new(settings: &Settings, args: &Params) -> Password {
        let prompt = match args.password {
            super::PasswordPolicy::Before => "before",
            super::PasswordPolicy::Never => "never",
            super::PasswordPolicy::WhenNeeded => "when-asked",
        };
        let none = Password {
            found: false,
            source: None,
            from: None,
            file: None,
            line: None,
            prompt,
        };
        if settings.password.is_some() {
            let Some(given) = settings.given.get("password") else {
                return none;
            };
            let setting = Setting::given("password", given);
            return Password {
                found: true,
                source: Some(setting.source),
                from: setting.from,
                file: setting.file,
                ..none
            };
        }
        match settings.targets.iter().find(|t| t.pgpass.is_some()) {
            Some(t) => Password {
                found: true,
                source: Some(Source::Pgpass),
                file: t.pgpass.as_ref().map(|(_, file)| file.clone()),
                line: t.pgpass_line,
                ..none
            },
            None => none,
        }
    }

    fn describe(&self) -> String {
        match (self.found, self.source, self.prompt) {
            (true, Some(source), prompt) => {
                let from = describe(source, self.from.as_deref(), self.file.as_ref(), self.line);
                let also = if prompt == "before" {
                    "; -W also asks for one before connecting"
                } else {
                    ""
                };
                format!("found, from {from}{also}")
            }
            (_, _, "before") => "none found; -W asks for one before connecting".to_string(),
            (_, _, "never") => {
                "none found; -w: never asked for (fails if the server wants one)".to_string()
            }
            _ => "none found; asked for on the terminal if the server wants one".to_string(),
        }
    }
}

/// A source in words: "flag -h", "environment variable PGHOST", "service file (service prod,
/// /etc/pg_service.conf)", "/root/.pgpass line 3".
fn describe(
    source: Source,
    from: Option<&str>,
    file: Option<&PathBuf>,
    line: Option<usize>,
) -> String {
    let from = from.unwrap_or_default();
    let file = file.map(|f| f.display().to_string()).unwrap_or_default();
    match source {
        Source::Flag => format!("flag {from}"),
        Source::Conninfo => "conninfo string (-d)".to_string(),
        Source::Uri => "URI (-d)".to_string(),
        Source::Env => format!("environment variable {from}"),
        Source::Service => format!("service file (service {from}, {file})"),
        Source::Pgpass => match line {
            Some(n) => format!("password file {file} line {n}"),
            None => format!("password file {file}"),
        },
        Source::Default => "default".to_string(),
    }
}

impl Connection {
    /// Asks the server about the session `connected` holds.
    pub fn query(connected: &mut Connected) -> Result<Connection> {
        let row = connected
            .client
            .query_one(
                "SELECT pg_catalog.current_setting('server_version'), \
                        pg_catalog.current_setting('server_version_num')::int4, \
                        current_user::text, session_user::text, s.ssl, s.version \
                 FROM (SELECT 1) AS one \
                 LEFT JOIN pg_catalog.pg_stat_ssl AS s ON s.pid = pg_catalog.pg_backend_pid()",
                &[],
            )
            .context("asking the server about the session")?;
        let connected_to = connected
            .place
            .strip_prefix("connection to ")
            .unwrap_or(&connected.place)
            .to_string();
        Ok(Connection {
            connected_to,
            address: connected.addr.map(|a| a.to_string()),
            port: connected.target.port,
            server_version: row.get(0),
            server_version_num: row.get(1),
            current_user: row.get(2),
            session_user: row.get(3),
            tls: row.get::<_, Option<bool>>(4).unwrap_or(false),
            tls_version: row.get(5),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::Params;
    use std::collections::HashMap;

    fn report(args: &Params, env: &[(&str, &str)]) -> Report {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let settings = Settings::resolve_with(args, &|k| env.get(k).cloned(), None).unwrap();
        Report::new(&settings, args)
    }

    fn row<'a>(r: &'a Report, name: &str) -> &'a Setting {
        r.settings.iter().find(|s| s.name == name).unwrap()
    }

    #[test]
    fn every_source_is_named() {
        let args = Params {
            host: Some("flaghost".into()),
            dbname: Some("postgresql://u:secret@/d?sslmode=require".into()),
            ..Params::default()
        };
        let r = report(&args, &[("PGAPPNAME", "etl")]);
        let h = row(&r, "host");
        assert_eq!((h.value.as_str(), h.source), ("flaghost", Source::Flag));
        assert_eq!(h.from.as_deref(), Some("-h"));
        assert_eq!(row(&r, "user").source, Source::Uri);
        assert_eq!(row(&r, "dbname").value, "d");
        assert_eq!(row(&r, "sslmode").value, "require");
        let app = row(&r, "application_name");
        assert_eq!(
            (app.source, app.from.as_deref()),
            (Source::Env, Some("PGAPPNAME"))
        );
        let port = row(&r, "port");
        assert_eq!(
            (port.value.as_str(), port.source),
            ("5432", Source::Default)
        );
        assert!(r.settings.iter().all(|s| s.name != "password"));
        assert!(r.password.found);
        assert_eq!(r.password.source, Some(Source::Uri));
        let json = serde_json::to_string(&r).unwrap();
        assert!(!json.contains("secret"), "{json}");
        assert!(!format!("{r:?}").contains("secret"));
        assert!(!r.lines().join("\n").contains("secret"));
    }

    #[test]
    fn password_from_the_environment_and_prompting() {
        let r = report(&Params::default(), &[("PGPASSWORD", "hunter2")]);
        assert_eq!(r.password.source, Some(Source::Env));
        assert_eq!(r.password.from.as_deref(), Some("PGPASSWORD"));
        assert!(!serde_json::to_string(&r).unwrap().contains("hunter2"));
        let w = Params {
            password: crate::conn::PasswordPolicy::Never,
            ..Params::default()
        };
        let r = report(&w, &[]);
        assert!(!r.password.found);
        assert_eq!(r.password.prompt, "never");
        assert_eq!(
            r.password.describe(),
            "none found; -w: never asked for (fails if the server wants one)"
        );
    }
}
