//! The connection keywords libpq knows (each with its PG* variable), the keywords pgkick
//! refuses, and the raw keyword/value map that every source (flags, the `-d` string, the
//! service file, the environment) fills through [`store`].

use std::collections::BTreeMap;

use anyhow::{bail, Result};

/// Every keyword libpq accepts (PostgreSQL 17), with its environment variable. Keywords
/// pgkick does not act on are accepted and ignored, except those in [`UNSUPPORTED`].
pub const KEYWORDS: &[(&str, Option<&str>)] = &[
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
pub(super) const UNSUPPORTED: &[&str] = &[
    "requirepeer",
    "sslpassword",
    "sslcrl",
    "sslcrldir",
    "replication",
];

/// Raw keyword/value options, as libpq's PQconninfoOption array holds them.
pub type Options = BTreeMap<String, String>;

pub(super) fn store(opts: &mut Options, key: &str, value: String) -> Result<()> {
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
