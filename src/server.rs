//! What the connected server is, detected once per run: version and the capabilities that
//! follow from it, and whether pgkick's own role is a superuser.

use anyhow::{Context, Result};

/// The server facts every generated statement depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Server {
    /// `server_version_num`, e.g. 150008 or 90624.
    pub version_num: i32,
    pub is_superuser: bool,
}

impl Server {
    /// One statement: version and superuser status.
    pub fn detect(client: &mut postgres::Client) -> Result<Server> {
        // query_typed: one round trip (query_one would prepare first: two).
        let rows = client
            .query_typed(
                "SELECT pg_catalog.current_setting('server_version_num')::int4, \
                        pg_catalog.current_setting('is_superuser') = 'on'",
                &[],
            )
            .context("could not read the server version")?;
        let row = rows
            .first()
            .context("could not read the server version: no row")?;
        Ok(Server {
            version_num: row.get(0),
            is_superuser: row.get(1),
        })
    }

    /// The server a probe writes its first statement for, before it knows the real one: the
    /// oldest version whose SQL for that statement is the same as the newest's, 13
    /// (`leader_pid`). A server older than that rejects the probe's statement; a newer one
    /// answers it with its real facts (`activity::Matched::server`). The lock graph is never
    /// in a probe: it follows once the server is known. For SQL generation only: never the
    /// facts of the server connected to.
    pub fn assumed_for_probe() -> Server {
        Server {
            version_num: 130000,
            is_superuser: false,
        }
    }

    /// A server of the given version, for SQL generation without a connection.
    #[cfg(test)]
    pub fn version(version_num: i32) -> Server {
        Server {
            version_num,
            is_superuser: true,
        }
    }

    /// "15.8", "9.6.24": for messages.
    pub fn version_text(&self) -> String {
        let v = self.version_num;
        if v >= 100000 {
            format!("{}.{}", v / 10000, v % 10000)
        } else {
            format!("{}.{}.{}", v / 10000, (v / 100) % 100, v % 100)
        }
    }

    /// `pid`, `query` and `state` replaced `procpid` and `current_query` in 9.2.
    pub fn has_state(&self) -> bool {
        self.version_num >= 90200
    }
    /// `wait_event_type` and `wait_event` replaced `waiting` in 9.6.
    pub fn has_wait_event(&self) -> bool {
        self.version_num >= 90600
    }
    /// `pg_blocking_pids()`, which the lock-chain columns and filters are built on, from 9.6.
    pub fn has_blocking_pids(&self) -> bool {
        self.version_num >= 90600
    }
    /// `WITH name AS MATERIALIZED (...)` from 12 (before, every CTE is materialized).
    pub fn has_materialized_cte(&self) -> bool {
        self.version_num >= 120000
    }
    /// `pg_locks.waitstart` from 14: when a backend began to wait for its lock.
    pub fn has_waitstart(&self) -> bool {
        self.version_num >= 140000
    }
    /// The pg_signal_backend role exists from 9.6.
    pub fn has_pg_signal_backend(&self) -> bool {
        self.version_num >= 90600
    }
    /// `ALTER DATABASE ... ALLOW_CONNECTIONS` exists from 9.5.
    pub fn has_allow_connections(&self) -> bool {
        self.version_num >= 90500
    }
    /// `backend_type` (and background processes in pg_stat_activity) from 10.
    pub fn has_backend_type(&self) -> bool {
        self.version_num >= 100000
    }
    /// Parallel workers have their own backend_type from 11; on 10 they are 'background
    /// worker', like every other background worker.
    pub fn has_parallel_worker_type(&self) -> bool {
        self.version_num >= 110000
    }
    pub fn parallel_worker_type(&self) -> &'static str {
        if self.has_parallel_worker_type() {
            "parallel worker"
        } else {
            "background worker"
        }
    }
    /// Replication slots (`pg_replication_slots`) from 9.4.
    pub fn has_replication_slots(&self) -> bool {
        self.version_num >= 90400
    }
    /// Logical replication subscriptions (`pg_subscription`) from 10.
    pub fn has_subscriptions(&self) -> bool {
        self.version_num >= 100000
    }
    /// `leader_pid` from 13.
    pub fn has_leader_pid(&self) -> bool {
        self.version_num >= 130000
    }
    /// `pg_terminate_backend(pid, timeout)` from 14.
    pub fn has_terminate_timeout(&self) -> bool {
        self.version_num >= 140000
    }
    /// `pg_signal_autovacuum_worker` from 18.
    pub fn has_pg_signal_autovacuum_worker(&self) -> bool {
        self.version_num >= 180000
    }
    /// From 16, `SET ROLE` follows only memberships granted `WITH SET` (`pg_auth_members.
    /// set_option`), and a role with CREATEROLE and ADMIN OPTION on a role may change its
    /// LOGIN even when it has REPLICATION (before 16: superusers only).
    pub fn has_role_admin_rules(&self) -> bool {
        self.version_num >= 160000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_text() {
        assert_eq!(Server::version(150008).version_text(), "15.8");
        assert_eq!(Server::version(90624).version_text(), "9.6.24");
        assert_eq!(Server::version(180000).version_text(), "18.0");
    }
}
