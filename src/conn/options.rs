//! The order in which the sources of the connection options are applied.
//!
//! This file owns [`collect_options`], which merges flags, the `-d` conninfo string or URI,
//! the service file and the environment into one raw keyword/value map (`keywords.rs`),
//! remembering where each value came from (for `pgkick conninfo`). Turning the raw values into typed settings is
//! `settings.rs`'s job.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;

use super::key_value::parse_conninfo;
use super::keywords::{Options, KEYWORDS};
use super::service::apply_service;
use super::uri::{parse_uri, uri_prefix_len};
use super::Params;

/// Marker key recording that `password` came from the expanded `-d` string.
pub(super) const FROM_DBNAME_PASSWORD: &str = " password from dbname";

/// Where a raw option's value came from, for `pgkick conninfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A command-line flag: `-h`, `-p`, `-U`, or `-d` with a plain database name.
    Flag(&'static str),
    /// The `-d` value, a `key=value` conninfo string.
    Conninfo,
    /// The `-d` value, a `postgresql://` URI.
    Uri,
    /// A section of a connection service file.
    Service { name: String, file: PathBuf },
    /// A PG* environment variable.
    Env(&'static str),
}

/// The origin of each key of an [`Options`].
pub type Origins = BTreeMap<String, Origin>;

/// One option that was set, and where: what `pgkick conninfo` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Given {
    /// The raw value; always empty for `password`, whose value is never copied here.
    pub value: String,
    pub origin: Origin,
}

/// Gathers the raw options in libpq's order (see the module comment).
pub(super) fn collect_options(
    args: &Params,
    env: &dyn Fn(&str) -> Option<String>,
    home: Option<&Path>,
) -> Result<(Options, Origins)> {
    let mut opts = Options::new();
    let mut origins = Origins::new();
    // PQconnectdbParams skips NULL and empty values in its arrays.
    let flags = [
        ("host", "-h", &args.host),
        ("port", "-p", &args.port),
        ("user", "-U", &args.user),
    ];
    for (k, flag, v) in flags {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            opts.insert(k.to_string(), v.to_string());
            origins.insert(k.to_string(), Origin::Flag(flag));
        }
    }
    if let Some(db) = args.dbname.as_deref().filter(|v| !v.is_empty()) {
        if let Some((expanded, origin)) = expand(db)? {
            if expanded.contains_key("password") {
                opts.insert(FROM_DBNAME_PASSWORD.to_string(), String::new());
            }
            // The expanded string overrides -h/-p/-U.
            for k in expanded.keys() {
                origins.insert(k.clone(), origin.clone());
            }
            opts.extend(expanded);
        } else {
            opts.insert("dbname".to_string(), db.to_string());
            origins.insert("dbname".to_string(), Origin::Flag("-d"));
        }
    }

    let service = match opts.get("service") {
        Some(s) => Some(s.clone()),
        None => env("PGSERVICE"),
    };
    if let Some(service) = service {
        let before: Vec<String> = opts.keys().cloned().collect();
        let file = apply_service(&mut opts, &service, env, home)?;
        for k in opts.keys().filter(|k| !before.contains(k)) {
            let origin = Origin::Service {
                name: service.clone(),
                file: file.clone(),
            };
            origins.insert(k.clone(), origin);
        }
    }

    for (k, var) in KEYWORDS {
        if let (false, Some(var)) = (opts.contains_key(*k), var) {
            if let Some(v) = env(var) {
                opts.insert(k.to_string(), v);
                origins.insert(k.to_string(), Origin::Env(var));
            }
        }
    }
    Ok((opts, origins))
}

/// The options a connection string sets (a URI or a `key=value` conninfo string) and which of
/// the two it is; `None` when `s` is neither (a plain database name).
pub fn expand(s: &str) -> Result<Option<(Options, Origin)>> {
    if !is_connection_string(s) {
        return Ok(None);
    }
    Ok(Some(if uri_prefix_len(s) > 0 {
        (parse_uri(s)?, Origin::Uri)
    } else {
        (parse_conninfo(s)?, Origin::Conninfo)
    }))
}

/// libpq's `recognized_connection_string`: a URI, or anything containing `=`.
pub fn is_connection_string(s: &str) -> bool {
    uri_prefix_len(s) > 0 || s.contains('=')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conn::hosts::Host;
    use crate::conn::testutil::*;

    #[test]
    fn connection_string_detection() {
        assert!(is_connection_string("host=x"));
        assert!(is_connection_string("postgresql://x"));
        assert!(is_connection_string("postgres://x"));
        assert!(!is_connection_string("mydb"));
        assert!(!is_connection_string("postgresql:/x"));
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
    fn an_empty_uri_port_leaves_the_flag_env_or_default() {
        let uri = Some("postgresql://urihost:/db");
        let s = resolve(&args(None, Some("6001"), None, uri), &[], None).unwrap();
        assert_eq!(s.targets[0].port, 6001, "-p");
        let s = resolve(&args(None, None, None, uri), &[("PGPORT", "6002")], None).unwrap();
        assert_eq!(s.targets[0].port, 6002, "PGPORT");
        let s = resolve(&args(None, None, None, uri), &[], None).unwrap();
        assert_eq!(s.targets[0].port, 5432, "the default");
        assert_eq!(s.targets[0].host, Host::Tcp("urihost".into()));
        // A conninfo "port=" is a value, empty: libpq then uses the default, not -p.
        let s = resolve(&args(None, Some("6001"), None, Some("port=")), &[], None).unwrap();
        assert_eq!(s.targets[0].port, 5432);
    }
}
