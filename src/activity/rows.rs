//! Reading the statements' rows by the column names of `crate::columns::name`.

use anyhow::{Context, Result};
use postgres::types::FromSqlOwned;

use crate::columns::name;
use crate::server::Server;
use crate::session::{PreparedBlocker, Session};

/// A row's column by name. `postgres::Row` in use; in the tests, a row that records which
/// names are read.
pub(super) trait Row {
    fn col<T: FromSqlOwned + Default + 'static>(&self, name: &str) -> Result<T>;
}

impl Row for postgres::Row {
    fn col<T: FromSqlOwned + Default + 'static>(&self, name: &str) -> Result<T> {
        self.try_get(name)
            .with_context(|| format!("could not read column {name} of pg_stat_activity"))
    }
}

/// Every column of a session; the lock graph's only when the statement had it (`graph`).
pub(super) fn session<R: Row>(row: &R, graph: bool) -> Result<Session> {
    let (blocked_by, blocking, lock_wait_start) = if graph {
        (
            row.col(name::BLOCKED_BY)?,
            row.col(name::BLOCKING)?,
            row.col(name::LOCK_WAIT_START)?,
        )
    } else {
        (None, None, None)
    };
    Ok(Session {
        pid: row.col(name::PID)?,
        datname: row.col(name::DATNAME)?,
        usename: row.col(name::USENAME)?,
        application_name: row.col(name::APPLICATION_NAME)?,
        client_addr: row.col(name::CLIENT_ADDR)?,
        client_port: row.col(name::CLIENT_PORT)?,
        backend_start: row.col(name::BACKEND_START)?,
        xact_start: row.col(name::XACT_START)?,
        query_start: row.col(name::QUERY_START)?,
        state_change: row.col(name::STATE_CHANGE)?,
        wait_event_type: row.col(name::WAIT_EVENT_TYPE)?,
        wait_event: row.col(name::WAIT_EVENT)?,
        state: row.col(name::STATE)?,
        backend_type: row.col(name::BACKEND_TYPE)?,
        leader_pid: row.col(name::LEADER_PID)?,
        query: row.col(name::QUERY)?,
        usesysid: row.col(name::USESYSID)?,
        blocked_by,
        blocking,
        lock_wait_start,
        blocked_by_prepared: Vec::new(),
        pooler: None,
    })
}

/// What a recheck compares, and the query text when `--query` needs it.
pub(super) fn identity<R: Row>(row: &R, query: bool) -> Result<Session> {
    Ok(Session {
        pid: row.col(name::PID)?,
        backend_start: row.col(name::BACKEND_START)?,
        usesysid: row.col(name::USESYSID)?,
        query: if query { row.col(name::QUERY)? } else { None },
        ..Session::default()
    })
}

/// A prepared transaction's row (`gid` not null): the session columns that have its values.
pub(super) fn prepared<R: Row>(row: &R, gid: String) -> Result<PreparedBlocker> {
    Ok(PreparedBlocker {
        gid,
        database: row.col(name::DATNAME)?,
        owner: row.col(name::USENAME)?,
        prepared: row.col(name::XACT_START)?,
        blocking: row
            .col::<Option<Vec<i32>>>(name::BLOCKING)?
            .unwrap_or_default(),
        matched: row.col::<Option<bool>>(name::MATCHED)?.unwrap_or(false),
    })
}

/// The facts of the first statement: the server.
pub(super) fn facts<R: Row>(row: &R) -> Result<Server> {
    Ok(Server {
        version_num: row.col(name::SERVER_VERSION_NUM)?,
        is_superuser: row.col(name::IS_SUPERUSER)?,
    })
}

/// A row of a statement that returns one even when no session matches: no session when its
/// pid is null.
pub(super) fn is_session<R: Row>(row: &R) -> Result<bool> {
    Ok(row.col::<Option<i32>>(name::PID)?.is_some())
}
