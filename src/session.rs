//! One row of pg_stat_activity, as pgkick reports it: the data only (`activity` reads it
//! from the server).

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::Serialize;

/// A session, with pg_stat_activity's own column names. Fields the server does not have (older
/// versions) or hides (insufficient privilege) are `None` and serialize as `null`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Session {
    pub pid: i32,
    pub datname: Option<String>,
    pub usename: Option<String>,
    pub application_name: Option<String>,
    pub client_addr: Option<IpAddr>,
    pub client_port: Option<i32>,
    pub backend_start: Option<DateTime<Utc>>,
    pub xact_start: Option<DateTime<Utc>>,
    pub query_start: Option<DateTime<Utc>>,
    pub state_change: Option<DateTime<Utc>>,
    pub wait_event_type: Option<String>,
    pub wait_event: Option<String>,
    pub state: Option<String>,
    pub backend_type: Option<String>,
    pub leader_pid: Option<i32>,
    pub query: Option<String>,
    /// The role's OID: part of a session's identity when its details are hidden.
    #[serde(skip)]
    pub usesysid: Option<u32>,
    /// The pids this session waits on (`pg_blocking_pids`, sorted, without duplicates; 0 is a
    /// prepared transaction); empty when it does not wait for a lock, null before 9.6.
    pub blocked_by: Option<Vec<i32>>,
    /// The pids waiting on this session; null before 9.6.
    pub blocking: Option<Vec<i32>>,
    /// When the session began to wait for its lock (pg_locks.waitstart; before 14 its
    /// query_start); null when it is not blocked.
    pub lock_wait_start: Option<DateTime<Utc>>,
    /// The gids of the prepared transactions it waits on (the 0 in `blocked_by`).
    pub blocked_by_prepared: Vec<String>,
    /// With `--pgbouncer` only: the pooler whose server connection this session is, and its
    /// client (`null` for a session of no pooler given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pooler: Option<Option<Box<crate::pgbouncer::PoolerLink>>>,
}

/// A prepared transaction that holds a lock some session waits for: pid 0 in
/// `pg_blocking_pids`. It is no session and cannot be signalled; `ROLLBACK PREPARED` ends it.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct PreparedBlocker {
    pub gid: String,
    pub database: Option<String>,
    pub owner: Option<String>,
    pub prepared: Option<DateTime<Utc>>,
    /// The pids waiting on it.
    pub blocking: Vec<i32>,
    /// Whether the filters select it (only the lock-chain filters can).
    #[serde(skip)]
    pub matched: bool,
}

impl Session {
    /// Waits for a lock someone holds or waits for.
    pub fn is_blocked(&self) -> bool {
        self.blocked_by.as_ref().is_some_and(|b| !b.is_empty())
    }

    /// Someone waits for it.
    pub fn is_blocking(&self) -> bool {
        self.blocking.as_ref().is_some_and(|b| !b.is_empty())
    }

    /// False when the server hides this session's details from pgkick's role (query text
    /// `<insufficient privilege>`; needs pg_read_all_stats or membership in the session's role).
    /// Every visible session has a backend_start; a hidden one never does.
    pub fn details_visible(&self) -> bool {
        self.backend_start.is_some()
    }

    /// The same backend: pid, start time and role all equal (a reused pid has a later
    /// backend_start).
    pub fn same_backend(&self, other: &Session) -> bool {
        self.pid == other.pid
            && self.backend_start == other.backend_start
            && self.usesysid == other.usesysid
    }
}
