//! Typed connection settings: the raw keyword values after libpq's defaults and checks.
//!
//! This file owns [`Settings`] and how each keyword's text becomes a value (integers,
//! enumerations, the connect timeout's minimum, unsupported keywords refused), and reads the
//! password file for each host when no password was given. Where the raw values come from is
//! `options.rs`; connecting with the result is `attempts.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Result};
use postgres::config::ChannelBinding;

use super::hosts::{parse_hosts, Target};
use super::keywords::{Options, UNSUPPORTED};
use super::options::{collect_options, Given, FROM_DBNAME_PASSWORD};
use super::os_user::{home_dir, os_user};
use super::pgpass::{pgpass_find, pgpass_host, read_pgpass};
use super::require_auth::RequireAuth;
use super::tls::{SslMode, TlsSettings};
use super::Params;
use super::{APPLICATION_NAME, DEFAULT_CONNECT_TIMEOUT, DEFAULT_DBNAME};

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
#[derive(Clone)]
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
    /// require_auth: the authentication requests the server may make (libpq 16).
    pub require_auth: Option<RequireAuth>,
    pub target_session_attrs: SessionAttrs,
    /// load_balance_hosts=random: try the hosts in random order.
    pub load_balance: bool,
    /// Things the user should hear about (an unsafe password file), without the
    /// `pgkick: warning: ` prefix.
    pub warnings: Vec<String>,
    /// Each option that was set, with where it came from (flag, `-d` string, service file,
    /// environment); an option missing here has its default.
    pub given: BTreeMap<String, Given>,
}

impl Settings {
    /// Resolves with the process environment and the user's home directory.
    pub fn resolve(args: &Params) -> Result<Settings> {
        let env = |k: &str| std::env::var(k).ok();
        let home = home_dir();
        Settings::resolve_with(args, &env, home.as_deref())
    }

    /// Resolves as `resolve` does, but for the database `dbname` whatever the command line
    /// names (the password file is looked up for that database): a second connection of the
    /// same run, into another database of the same server.
    pub fn resolve_for_database(args: &Params, dbname: &str) -> Result<Settings> {
        let env = |k: &str| std::env::var(k).ok();
        let home = home_dir();
        let (mut opts, _) = collect_options(args, &env, home.as_deref())?;
        opts.insert("dbname".to_string(), dbname.to_string());
        let mut settings = Settings::from_options(&opts, home.as_deref())?;
        settings.keep_only_host(args.only_host);
        Ok(settings)
    }

    /// --each-host: this server is one host of the value's list.
    fn keep_only_host(&mut self, only: Option<usize>) {
        if let Some(target) = only.and_then(|i| self.targets.get(i).cloned()) {
            self.targets = vec![target];
            self.load_balance = false;
        }
    }

    /// The same settings for the `i`-th host of the list alone (--each-host).
    pub fn only_host(mut self, i: usize) -> Settings {
        self.keep_only_host(Some(i));
        self
    }

    /// Resolves with `env` as the environment and `home` as the home directory (for
    /// `~/.pgpass`, `~/.pg_service.conf` and `~/.postgresql/`). Reads the service and
    /// password files; nothing else leaves the process.
    pub fn resolve_with(
        args: &Params,
        env: &dyn Fn(&str) -> Option<String>,
        home: Option<&Path>,
    ) -> Result<Settings> {
        let (opts, origins) = collect_options(args, env, home)?;
        let mut settings = Settings::from_options(&opts, home)?;
        settings.keep_only_host(args.only_host);
        settings.given = origins
            .into_iter()
            .map(|(key, origin)| {
                let value = match key.as_str() {
                    "password" => String::new(),
                    k => opts.get(k).cloned().unwrap_or_default(),
                };
                (key, Given { value, origin })
            })
            .collect();
        Ok(settings)
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
        let require_auth = get("require_auth").map(str::parse).transpose()?;
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
                        if let Some((pw, line)) =
                            pgpass_find(&contents, &host, &port, &dbname, &user)
                        {
                            t.pgpass = Some((pw, passfile.clone()));
                            t.pgpass_line = Some(line);
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
            require_auth,
            target_session_attrs,
            load_balance,
            warnings,
            given: BTreeMap::new(),
        })
    }
}

fn parse_int(v: &str, key: &str) -> Result<i64> {
    v.trim()
        .parse::<i64>()
        .map_err(|_| anyhow!("invalid integer value \"{v}\" for connection option \"{key}\""))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::hosts::Host;
    use crate::conn::testutil::*;
    use crate::conn::Params;
    use crate::conn::DEFAULT_SOCKET_DIRS;

    #[test]
    fn defaults() {
        let s = resolve(&Params::default(), &[], None).unwrap();
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
        let s = resolve(&Params::default(), &env, None).unwrap();
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
    fn require_auth_is_read_from_every_source_and_checked() {
        let s = resolve(
            &args(None, None, None, Some("require_auth=scram-sha-256")),
            &[],
            None,
        )
        .unwrap();
        assert_eq!(s.require_auth, Some("scram-sha-256".parse().unwrap()));
        let s = resolve(&Params::default(), &[("PGREQUIREAUTH", "!password")], None).unwrap();
        assert_eq!(s.require_auth, Some("!password".parse().unwrap()));
        // Empty means unset, as in libpq.
        let s = resolve(&args(None, None, None, Some("require_auth=")), &[], None).unwrap();
        assert!(s.require_auth.is_none());
        let err = resolve(
            &args(None, None, None, Some("require_auth=md5,!gss")),
            &[],
            None,
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("cannot be mixed"), "{err}");
    }
}
