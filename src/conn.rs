//! Connection settings the way libpq reads them, turned into a connected `postgres::Client`.
//!
//! (Placeholder: a helper is writing the full libpq-compatible implementation.)

use anyhow::{Context, Result};

use crate::cli::ConnArgs;

/// Connects with libpq's rules for flags, conninfo/URI, PG* environment, service file,
/// .pgpass and defaults. pgkick's session carries application_name `pgkick`.
pub fn connect(args: &ConnArgs) -> Result<postgres::Client> {
    let mut cfg = postgres::Config::new();
    let host = args
        .host
        .clone()
        .or_else(|| std::env::var("PGHOST").ok())
        .unwrap_or_else(|| "/var/run/postgresql".into());
    if host.starts_with('/') {
        cfg.host_path(&host);
    } else {
        cfg.host(&host);
    }
    let port = args
        .port
        .clone()
        .or_else(|| std::env::var("PGPORT").ok())
        .unwrap_or_else(|| "5432".into());
    cfg.port(port.parse().context("invalid port")?);
    let user = args
        .username
        .clone()
        .or_else(|| std::env::var("PGUSER").ok())
        .unwrap_or_else(|| std::env::var("USER").unwrap_or_else(|_| "postgres".into()));
    cfg.user(&user);
    cfg.dbname(args.dbname.as_deref().unwrap_or("postgres"));
    cfg.application_name("pgkick");
    cfg.connect(postgres::NoTls)
        .context("could not connect to the server")
}
