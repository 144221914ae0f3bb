//! Which servers a run acts on: the `-d` values and the `--servers` file, each host of a
//! multi-host value with `--each-host`, one [`Member`] per distinct server, and how each is
//! named.
//!
//! Reading the file's lines, naming and deduplicating are pure; resolving a value into hosts
//! uses the connection settings (`conn::Settings`), which read the service and password files
//! but never connect. Each member keeps its resolved settings, so a run resolves them once.

use anyhow::Result;

use crate::conn::{self, Host, Params, Settings};
use crate::error::Usage;

/// One server of the run.
#[derive(Clone)]
pub struct Member {
    /// The connection parameters of this server alone: the flags, its `-d` value and, with
    /// --each-host, which host of the value's list it is.
    pub params: Params,
    /// Its settings, resolved from `params` (with --each-host, only its own host).
    pub settings: Settings,
    /// How results and messages name it.
    pub label: String,
    /// The same host list, port and database is the same server.
    identity: Identity,
}

/// The label alone: the settings may hold a password.
impl std::fmt::Debug for Member {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Member")
            .field("label", &self.label)
            .finish()
    }
}

/// (host, port) of each host tried, and the database.
type Identity = (Vec<(String, u16)>, String);

/// Where a value came from, for the usage error of a value that does not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The N-th `-d` (from 1).
    Flag(usize),
    /// Line N (from 1) of the servers file.
    Line(usize),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Flag(1) => f.write_str("-d"),
            Source::Flag(n) => write!(f, "-d value {n}"),
            Source::Line(n) => write!(f, "line {n}"),
        }
    }
}

/// The values of a servers file: one per line, surrounding blanks trimmed; blank lines and
/// lines starting with `#` are skipped.
pub fn file_values(text: &str) -> Vec<(Source, String)> {
    text.lines()
        .enumerate()
        .map(|(i, line)| (Source::Line(i + 1), line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
        .map(|(source, line)| (source, line.to_string()))
        .collect()
}

/// The servers the values name, in order, each once. Each value is resolved as `-d` would be
/// with the other parameters of `base`; one that does not resolve is a usage error naming
/// where it came from (`file`, `line N`). With `each_host`, a value with several hosts becomes
/// one server per host. `resolve` is `Settings::resolve` but in tests.
pub fn plan(
    base: &Params,
    values: &[(Source, String)],
    each_host: bool,
    file: &str,
    resolve: &dyn Fn(&Params) -> Result<Settings>,
) -> Result<Vec<Member>> {
    let mut members: Vec<Member> = Vec::new();
    for (source, value) in values {
        let params = Params {
            dbname: Some(value.clone()),
            ..base.clone()
        };
        let settings = resolve(&params).map_err(|e| {
            let whence = match source {
                Source::Line(_) => format!("{file} {source}"),
                Source::Flag(_) => source.to_string(),
            };
            Usage(format!("{whence}: {}", crate::error::one_line(&e)))
        })?;
        for member in split(params, settings, each_host) {
            if !members.iter().any(|s| s.identity == member.identity) {
                members.push(member);
            }
        }
    }
    Ok(members)
}

/// The one server of a run that names at most one (the flags and PG* alone, or one `-d`); a
/// value that does not resolve is a usage error, found before anything connects.
pub fn single(params: Params, resolve: &dyn Fn(&Params) -> Result<Settings>) -> Result<Member> {
    let settings = resolve(&params).map_err(|e| Usage(crate::error::one_line(&e)))?;
    Ok(split(params, settings, false).remove(0))
}

/// One server for the value, or one per host with --each-host.
fn split(params: Params, settings: Settings, each_host: bool) -> Vec<Member> {
    let hosts: Vec<(String, u16)> = settings
        .targets
        .iter()
        .map(|t| (host_name(t), t.port))
        .collect();
    // A service names the server only when the server (its hosts or port) came from it: a
    // PGSERVICE that every value overrides names none of them.
    let from_service = ["host", "hostaddr", "port"].iter().any(|k| {
        settings
            .given
            .get(*k)
            .is_some_and(|g| matches!(g.origin, conn::Origin::Service { .. }))
    });
    let service = settings
        .given
        .get("service")
        .filter(|_| from_service)
        .map(|g| g.value.clone());
    if !each_host || hosts.len() < 2 {
        return vec![Member {
            label: label(service.as_deref(), &hosts, &settings.dbname),
            identity: (hosts, settings.dbname.clone()),
            params,
            settings,
        }];
    }
    hosts
        .into_iter()
        .enumerate()
        .map(|(i, host)| Member {
            label: label(None, std::slice::from_ref(&host), &settings.dbname),
            identity: (vec![host], settings.dbname.clone()),
            params: Params {
                only_host: Some(i),
                ..params.clone()
            },
            settings: settings.clone().only_host(i),
        })
        .collect()
}

fn host_name(target: &conn::Target) -> String {
    match (&target.host, target.hostaddr) {
        (Host::Tcp(name), _) if !name.is_empty() => name.clone(),
        (_, Some(addr)) => addr.to_string(),
        (host, None) => host.text(),
    }
}

/// The service name when the server came from one, else `host:port` for each host (joined
/// by commas), followed by `/dbname` unless the database is the default.
pub fn label(service: Option<&str>, hosts: &[(String, u16)], dbname: &str) -> String {
    if let Some(service) = service.filter(|s| !s.is_empty()) {
        return service.to_string();
    }
    let hosts: Vec<String> = hosts
        .iter()
        .map(|(h, p)| {
            if h.contains(':') && !h.starts_with('/') {
                format!("[{h}]:{p}")
            } else {
                format!("{h}:{p}")
            }
        })
        .collect();
    let mut label = hosts.join(",");
    if dbname != conn::DEFAULT_DBNAME {
        label.push('/');
        label.push_str(dbname);
    }
    label
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Params {
        Params {
            password: conn::PasswordPolicy::Never,
            ..Params::default()
        }
    }

    fn resolve(args: &Params) -> Result<Settings> {
        Settings::resolve_with(args, &|_| None, None)
    }

    fn values(list: &[&str]) -> Vec<(Source, String)> {
        list.iter()
            .enumerate()
            .map(|(i, v)| (Source::Flag(i + 1), v.to_string()))
            .collect()
    }

    #[test]
    fn file_lines_skip_blanks_and_comments() {
        let text = "# shards\n\nhost=a port=5432\n   \n  # indented comment\n  host=b  \n";
        assert_eq!(
            file_values(text),
            vec![
                (Source::Line(3), "host=a port=5432".to_string()),
                (Source::Line(6), "host=b".to_string()),
            ]
        );
    }

    #[test]
    fn labels_name_service_or_hosts_and_database() {
        let hosts = vec![("db1".to_string(), 5432)];
        assert_eq!(label(None, &hosts, "postgres"), "db1:5432");
        assert_eq!(label(None, &hosts, "app"), "db1:5432/app");
        assert_eq!(label(Some("shard1"), &hosts, "app"), "shard1");
        let two = vec![("a".to_string(), 5432), ("::1".to_string(), 6432)];
        assert_eq!(label(None, &two, "postgres"), "a:5432,[::1]:6432");
        let socket = vec![("/tmp".to_string(), 5433)];
        assert_eq!(label(None, &socket, "postgres"), "/tmp:5433");
    }

    #[test]
    fn a_service_names_the_servers_it_gives_the_host_of() {
        let dir = std::env::temp_dir().join(format!("pgkick-fleet-svc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pg_service.conf");
        std::fs::write(
            &file,
            "[shard1]\nhost=s1 port=6432\n[opts]\nconnect_timeout=5\n",
        )
        .unwrap();
        let env = |k: &str| (k == "PGSERVICEFILE").then(|| file.display().to_string());
        let resolve = |a: &Params| Settings::resolve_with(a, &env, None);
        let v = values(&["service=shard1", "service=opts host=b"]);
        let servers = plan(&base(), &v, false, "", &resolve).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let labels: Vec<&str> = servers.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(labels, ["shard1", "b:5432"]);
    }

    #[test]
    fn the_same_server_twice_is_one() {
        let servers = plan(
            &base(),
            &values(&[
                "host=a port=5432",
                "postgresql://a:5432/postgres",
                "host=a port=5433",
                "host=a dbname=app",
            ]),
            false,
            "",
            &resolve,
        )
        .unwrap();
        let labels: Vec<&str> = servers.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(labels, ["a:5432", "a:5433", "a:5432/app"]);
    }

    #[test]
    fn each_host_splits_a_host_list() {
        let v = values(&["host=a,b,c port=5432,5433,5434 target_session_attrs=primary"]);
        let first_only = plan(&base(), &v, false, "", &resolve).unwrap();
        assert_eq!(first_only.len(), 1);
        assert_eq!(first_only[0].label, "a:5432,b:5433,c:5434");
        let each = plan(&base(), &v, true, "", &resolve).unwrap();
        let labels: Vec<&str> = each.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(labels, ["a:5432", "b:5433", "c:5434"]);
        assert_eq!(each[1].params.only_host, Some(1));
        let b = resolve(&each[1].params).unwrap();
        assert_eq!(b.targets.len(), 1);
        assert_eq!(b.targets[0].port, 5433);
        assert_eq!(each[1].settings.targets.len(), 1);
        assert_eq!(each[1].settings.targets[0].port, 5433);
    }

    #[test]
    fn a_bad_value_names_its_line() {
        let v = vec![
            (Source::Line(2), "host=a".to_string()),
            (Source::Line(5), "host='unterminated".to_string()),
        ];
        let err = plan(&base(), &v, false, "servers.txt", &resolve).unwrap_err();
        assert_eq!(
            crate::error::exit_status(&err),
            crate::error::ExitStatus::Usage
        );
        assert!(err.to_string().starts_with("servers.txt line 5: "), "{err}");
        let err = plan(&base(), &values(&["host=a", "port=x"]), false, "", &resolve).unwrap_err();
        assert!(err.to_string().starts_with("-d value 2: "), "{err}");
    }
}
