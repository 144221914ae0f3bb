//! lock / unlock: keep new connections out of databases or roles, and give back exactly what
//! was there. (Stub: being written.)

use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use crate::cli::LockMethod;
use crate::server::Server;

/// What to lock or unlock.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    pub dbs: Vec<String>,
    pub roles: Vec<String>,
}

/// What lock or unlock did (or, with dry_run, would do) to one database or role.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub kind: &'static str,
    pub name: String,
    pub status: String,
    pub statements: Vec<String>,
}

/// One lock recorded in the cluster, for `lock --list`.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    pub kind: &'static str,
    pub name: String,
}

pub fn lock(
    _client: &mut postgres::Client,
    _server: &Server,
    _targets: &Targets,
    _method: LockMethod,
    _dry_run: bool,
    _lock_timeout: Duration,
) -> Result<Vec<Change>> {
    anyhow::bail!("lock is not implemented yet")
}

pub fn unlock(
    _client: &mut postgres::Client,
    _server: &Server,
    _targets: &Targets,
    _dry_run: bool,
    _lock_timeout: Duration,
) -> Result<Vec<Change>> {
    anyhow::bail!("unlock is not implemented yet")
}

pub fn list(_client: &mut postgres::Client, _server: &Server) -> Result<Vec<Record>> {
    anyhow::bail!("lock --list is not implemented yet")
}
