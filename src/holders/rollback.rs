//! `--rollback-prepared`: `ROLLBACK PREPARED` must run in the prepared transaction's own
//! database, and once `ALLOW_CONNECTIONS false` is set nobody can connect to it, so its
//! connections are opened before the lock (into a database pgkick locked already, through
//! `lock::window`) and closed at the end.

use std::collections::BTreeSet;

use anyhow::{Context, Result};
use postgres::error::SqlState;
use postgres_protocol::escape::escape_literal;

use super::{Holder, Kind};

/// `ROLLBACK PREPARED 'gid'`: a utility statement, so the gid (read from the catalog) is
/// quoted as a literal; it cannot be a bind parameter.
pub fn rollback_statement(gid: &str) -> String {
    format!("ROLLBACK PREPARED {}", escape_literal(gid).trim_start())
}

/// Connections opened into databases for `--rollback-prepared`, before the lock closes them.
pub struct PreparedRollback {
    /// Database name, its connection and that connection's backend pid.
    conns: Vec<(String, postgres::Client, i32)>,
}

impl PreparedRollback {
    /// Opens one connection into each of `dbs` with `connect`, which says what went wrong.
    pub fn open(
        dbs: &[String],
        mut connect: impl FnMut(&str) -> Result<postgres::Client>,
    ) -> Result<PreparedRollback> {
        let mut conns = Vec::new();
        for db in dbs {
            let mut client = connect(db)?;
            let pid: i32 = client
                .query_one("SELECT pg_catalog.pg_backend_pid()", &[])
                .context("could not read the backend pid of --rollback-prepared's connection")?
                .get(0);
            conns.push((db.clone(), client, pid));
        }
        Ok(PreparedRollback { conns })
    }

    /// The backends of these connections, to leave out of the targets and the holders.
    pub fn pids(&self) -> BTreeSet<i32> {
        self.conns.iter().map(|c| c.2).collect()
    }

    /// Rolls back each prepared transaction in `holders` whose database has a connection here,
    /// turning it into `rolled_back`. One that fails (another role's, it was finished meanwhile)
    /// stays a holder with the server's message in its fix.
    pub fn rollback(&mut self, holders: &mut [Holder]) {
        for h in holders
            .iter_mut()
            .filter(|h| h.outcome == Kind::PreparedTransaction)
        {
            let Some((_, client, _)) = self.conns.iter_mut().find(|c| c.0 == h.datname) else {
                continue;
            };
            let gid = h.gid.clone().unwrap_or_default();
            match client.batch_execute(&rollback_statement(&gid)) {
                Ok(()) => {
                    h.outcome = Kind::RolledBack;
                    h.fix = String::new();
                }
                Err(e) if e.code() == Some(&SqlState::UNDEFINED_OBJECT) => {
                    // Committed or rolled back by someone else in the meantime: gone too.
                    h.outcome = Kind::RolledBack;
                    h.fix = "it was finished by someone else meanwhile".into();
                }
                Err(e) => {
                    let why = e
                        .as_db_error()
                        .map(|d| d.message().to_string())
                        .unwrap_or_else(|| e.to_string());
                    h.fix = format!("ROLLBACK PREPARED failed ({why}); {}", h.fix);
                }
            }
        }
    }

    /// Closes the connections; their backends leave the databases a moment later.
    pub fn close(self) {
        for (_, client, _) in self.conns {
            let _ = client.close();
        }
    }
}
