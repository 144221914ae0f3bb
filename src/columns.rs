//! pg_stat_activity's columns: their expression on each server version, the select list, and
//! the name each column of a row is read by. `crate::filter` writes its statement from these;
//! `crate::activity` reads the rows by these names, so that the two cannot disagree on a position.

use crate::server::Server;

/// The backend type considered when no --backend-type is given.
pub const DEFAULT_BACKEND_TYPE: &str = "client backend";

/// The names of the columns of a row of `Filter::select`'s statement. The SQL aliases are
/// written from these and `crate::activity` reads by them.
pub mod name {
    pub const PID: &str = "pid";
    pub const DATNAME: &str = "datname";
    pub const USENAME: &str = "usename";
    pub const APPLICATION_NAME: &str = "application_name";
    pub const CLIENT_ADDR: &str = "client_addr";
    pub const CLIENT_PORT: &str = "client_port";
    pub const BACKEND_START: &str = "backend_start";
    pub const XACT_START: &str = "xact_start";
    pub const QUERY_START: &str = "query_start";
    pub const STATE_CHANGE: &str = "state_change";
    pub const WAIT_EVENT_TYPE: &str = "wait_event_type";
    pub const WAIT_EVENT: &str = "wait_event";
    pub const STATE: &str = "state";
    pub const BACKEND_TYPE: &str = "backend_type";
    pub const LEADER_PID: &str = "leader_pid";
    pub const QUERY: &str = "query";
    pub const USESYSID: &str = "usesysid";
    /// The lock graph (`Filter::select`'s CTEs), after the session's own columns.
    pub const BLOCKED_BY: &str = "blocked_by";
    pub const BLOCKING: &str = "blocking";
    pub const LOCK_WAIT_START: &str = "lock_wait_start";
    /// A prepared transaction's row: its gid (null on a session's row) and whether the filters
    /// select it.
    pub const GID: &str = "gid";
    pub const MATCHED: &str = "matched";
    /// The server's facts, on every row.
    pub const SERVER_VERSION_NUM: &str = "server_version_num";
    pub const IS_SUPERUSER: &str = "is_superuser";
    /// With `--db`: what holds those databases without a session (see `Filter::select`).
    pub const HELD_IN_DBS: &str = "held_in_dbs";
}

/// Appended to every row of `Filter::select`: the server's version and whether pgkick's role is
/// a superuser, so the rows carry what detection would ask.
pub const SERVER_FACTS: &str = "pg_catalog.current_setting('server_version_num')::int4 \
     AS server_version_num, pg_catalog.current_setting('is_superuser') = 'on' AS is_superuser";

/// The lock-chain columns on servers without pg_blocking_pids (before 9.6): unknown.
pub const NO_LOCK_COLUMNS: &str = "NULL::int4[] AS blocked_by, NULL::int4[] AS blocking, \
     NULL::timestamptz AS lock_wait_start, NULL::text AS gid, NULL::bool AS matched";

/// Column expressions of pg_stat_activity for one server version family.
pub struct Columns {
    pub pid: &'static str,
    pub query: &'static str,
    pub state: &'static str,
    pub state_change: &'static str,
    pub wait_event_type: &'static str,
    pub wait_event: &'static str,
    pub backend_type: &'static str,
    pub leader_pid: &'static str,
}

impl Columns {
    pub fn for_server(server: &Server) -> Columns {
        let old = !server.has_state();
        Columns {
            pid: if old { "a.procpid" } else { "a.pid" },
            query: if old { "a.current_query" } else { "a.query" },
            // Before 9.2 the state is encoded in current_query.
            state: if old {
                "(CASE a.current_query WHEN '<IDLE>' THEN 'idle' \
                 WHEN '<IDLE> in transaction' THEN 'idle in transaction' \
                 WHEN '<IDLE> in transaction (aborted)' THEN 'idle in transaction (aborted)' \
                 WHEN '<insufficient privilege>' THEN NULL ELSE 'active' END)"
            } else {
                "a.state"
            },
            state_change: if old {
                "NULL::timestamptz"
            } else {
                "a.state_change"
            },
            wait_event_type: if server.has_wait_event() {
                "a.wait_event_type"
            } else {
                "(CASE WHEN a.waiting THEN 'Lock' END)"
            },
            wait_event: if server.has_wait_event() {
                "a.wait_event"
            } else {
                "NULL::text"
            },
            backend_type: if server.has_backend_type() {
                "a.backend_type"
            } else {
                "NULL::text"
            },
            leader_pid: if server.has_leader_pid() {
                "a.leader_pid"
            } else {
                "NULL::int4"
            },
        }
    }

    /// The session's columns, each under its name in `name` (which `find` reads them by).
    pub fn select_list(&self) -> String {
        [
            (self.pid, name::PID),
            ("a.datname::text", name::DATNAME),
            ("a.usename::text", name::USENAME),
            ("a.application_name", name::APPLICATION_NAME),
            ("a.client_addr", name::CLIENT_ADDR),
            ("a.client_port", name::CLIENT_PORT),
            ("a.backend_start", name::BACKEND_START),
            ("a.xact_start", name::XACT_START),
            ("a.query_start", name::QUERY_START),
            (self.state_change, name::STATE_CHANGE),
            (self.wait_event_type, name::WAIT_EVENT_TYPE),
            (self.wait_event, name::WAIT_EVENT),
            (self.state, name::STATE),
            (self.backend_type, name::BACKEND_TYPE),
            (self.leader_pid, name::LEADER_PID),
            (self.query, name::QUERY),
            ("a.usesysid", name::USESYSID),
        ]
        .iter()
        .map(|(expr, name)| format!("{expr} AS {name}"))
        .collect::<Vec<_>>()
        .join(", ")
    }

    /// Conditions that hold whatever the filters: not pgkick's own session, a database
    /// session, not a parallel worker.
    pub fn always(&self, server: &Server) -> Vec<String> {
        let mut conds = vec![
            format!("{} <> pg_catalog.pg_backend_pid()", self.pid),
            "a.datname IS NOT NULL".to_string(),
        ];
        if server.has_backend_type() {
            conds.push(format!(
                "a.backend_type IS DISTINCT FROM '{}'",
                server.parallel_worker_type()
            ));
        }
        if server.has_leader_pid() {
            conds.push("(a.leader_pid IS NULL OR a.leader_pid = a.pid)".into());
        }
        conds
    }
}
