//! pg_stat_activity's columns: where they are read from and their expression on each server
//! version, the select list, and the name each column of a row is read by. `crate::activity`
//! writes its statements from these and reads the rows by these names, so that the two cannot
//! disagree on a position.
//!
//! From PostgreSQL 10 the rows are read from `pg_stat_get_activity(NULL)`, the function behind
//! the view, joined to `pg_database` for the name: the view's rewrite (and its join to
//! `pg_authid`, which only a superuser may read directly) is most of what a new backend spends
//! on a statement over pg_stat_activity, and from 10 the view is exactly that function left
//! joined to `pg_database` and `pg_authid`. The role's name is `pg_get_userbyid`, which
//! answers `unknown (OID=n)` for a role dropped while its session lives on, where the view has
//! null: that answer is turned back into null. Before 10 the view (with inner joins then) is
//! read as it is.

use crate::server::Server;

/// The backend type considered when no --backend-type is given.
pub const DEFAULT_BACKEND_TYPE: &str = "client backend";

/// The names of the columns of a row of `crate::activity`'s statements. The SQL aliases are
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
    /// The lock graph (`activity::graph`), after the session's own columns.
    pub const BLOCKED_BY: &str = "blocked_by";
    pub const BLOCKING: &str = "blocking";
    pub const LOCK_WAIT_START: &str = "lock_wait_start";
    /// A prepared transaction's row: its gid (null on a session's row) and whether the filters
    /// select it.
    pub const GID: &str = "gid";
    pub const MATCHED: &str = "matched";
    /// The server's facts, on every row of the first statement of a run.
    pub const SERVER_VERSION_NUM: &str = "server_version_num";
    pub const IS_SUPERUSER: &str = "is_superuser";
    /// With `--db`, on the first statement: whether something holds those databases without a
    /// session (see `activity::statement`).
    pub const HELD_IN_DBS: &str = "held_in_dbs";
    /// On a statement without the lock graph: whether any backend waits for a lock (0 none,
    /// 1 one does, 2 one does and a prepared transaction exists).
    pub const WAITS: &str = "waits";
    /// Of the databases and roles the filter names, those that exist.
    pub const KNOWN_DBS: &str = "known_dbs";
    pub const KNOWN_ROLES: &str = "known_roles";
}

/// The server's facts, carried by the first statement of a run: its version, and whether
/// pgkick's role is a superuser. (Whether a prepared transaction exists is told with whether
/// anything waits: `activity::statement::waits`.)
pub const SERVER_FACTS: &str = "pg_catalog.current_setting('server_version_num')::int4 \
     AS server_version_num, pg_catalog.current_setting('is_superuser') = 'on' AS is_superuser";

/// Column expressions of pg_stat_activity for one server version family, over the rows `a`
/// (and `d`, their database, when read from the function).
pub struct Columns {
    pub pid: &'static str,
    /// The database's name, as text.
    pub datname: &'static str,
    /// The role's name, as text (null for a role that no longer exists).
    pub usename: &'static str,
    pub query: &'static str,
    pub state: &'static str,
    pub state_change: &'static str,
    pub wait_event_type: &'static str,
    pub wait_event: &'static str,
    pub backend_type: &'static str,
    pub leader_pid: &'static str,
}

/// `pg_get_userbyid`'s answer for a role that does not exist, turned into the view's null.
const USENAME_OF_ID: &str = "NULLIF(pg_catalog.pg_get_userbyid(a.usesysid)::text, \
     'unknown (OID=' || a.usesysid::text || ')')";

/// Where the rows `a` come from.
pub fn source(server: &Server) -> &'static str {
    if server.has_backend_type() {
        "pg_catalog.pg_stat_get_activity(NULL) a \
         LEFT JOIN pg_catalog.pg_database d ON d.oid = a.datid"
    } else {
        "pg_catalog.pg_stat_activity a"
    }
}

/// The rows `a` alone, for statements that need neither the database's nor the role's name
/// (finding a target's backend by pid, start time and role).
pub fn backends(server: &Server) -> &'static str {
    if server.has_backend_type() {
        "pg_catalog.pg_stat_get_activity(NULL) a"
    } else {
        "pg_catalog.pg_stat_activity a"
    }
}

impl Columns {
    /// The columns of the rows [`source`] gives.
    pub fn scanned(server: &Server) -> Columns {
        let mut cols = Columns::for_server(server);
        if server.has_backend_type() {
            cols.datname = "d.datname::text";
            cols.usename = USENAME_OF_ID;
        }
        cols
    }

    /// The columns of rows that have pg_stat_activity's names: the view, or a CTE that kept
    /// them (`activity::graph`'s `sa`).
    pub fn for_server(server: &Server) -> Columns {
        let old = !server.has_state();
        Columns {
            pid: if old { "a.procpid" } else { "a.pid" },
            datname: "a.datname::text",
            usename: "a.usename::text",
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

    /// The session's columns, each under its name in `name` (which `activity` reads them by).
    pub fn select_list(&self) -> String {
        [
            (self.pid, name::PID),
            (self.datname, name::DATNAME),
            (self.usename, name::USENAME),
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

    /// What a recheck compares (`Session::same_backend`), each under its name.
    pub fn identity_list(&self) -> String {
        format!(
            "{} AS {}, a.backend_start AS {}, a.usesysid AS {}",
            self.pid,
            name::PID,
            name::BACKEND_START,
            name::USESYSID
        )
    }

    /// Conditions that hold whatever the filters: not pgkick's own session, a database
    /// session, not a parallel worker. `workers_possible` is false when the backend types
    /// asked for can be no parallel worker (the default, client backends): then the two
    /// conditions about workers would hold of every row and are left out. (A client backend
    /// is never a worker, and shows no leader_pid: the server shows it for workers only. A
    /// session hidden from pgkick's role has neither backend_type nor leader_pid.)
    pub fn always(&self, server: &Server, workers_possible: bool) -> Vec<String> {
        let mut conds = vec![
            format!("{} <> pg_catalog.pg_backend_pid()", self.pid),
            format!("{} IS NOT NULL", self.datname),
        ];
        if server.has_backend_type() && workers_possible {
            conds.push(format!(
                "a.backend_type IS DISTINCT FROM '{}'",
                server.parallel_worker_type()
            ));
        }
        if server.has_leader_pid() && workers_possible {
            conds.push("(a.leader_pid IS NULL OR a.leader_pid = a.pid)".into());
        }
        conds
    }
}
