//! One row of pg_stat_activity, as pgkick reports it.

use std::net::IpAddr;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::filter::Filter;
use crate::server::Server;

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
    /// Builds a session from a row of `Filter::select`'s result (columns in the order
    /// above, usesysid after query).
    pub fn from_row(row: &postgres::Row) -> Result<Session> {
        Ok(Session {
            pid: row.try_get(0)?,
            datname: row.try_get(1)?,
            usename: row.try_get(2)?,
            application_name: row.try_get(3)?,
            client_addr: row.try_get(4)?,
            client_port: row.try_get(5)?,
            backend_start: row.try_get(6)?,
            xact_start: row.try_get(7)?,
            query_start: row.try_get(8)?,
            state_change: row.try_get(9)?,
            wait_event_type: row.try_get(10)?,
            wait_event: row.try_get(11)?,
            state: row.try_get(12)?,
            backend_type: row.try_get(13)?,
            leader_pid: row.try_get(14)?,
            query: row.try_get(15)?,
            usesysid: row.try_get(16)?,
            blocked_by: row.try_get(17)?,
            blocking: row.try_get(18)?,
            lock_wait_start: row.try_get(19)?,
            blocked_by_prepared: Vec::new(),
            pooler: None,
        })
    }

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

/// The sessions a filter matches, and how many the `--query` filter could not judge because
/// their query text is hidden from pgkick's role.
#[derive(Debug, Default)]
pub struct Matched {
    pub sessions: Vec<Session>,
    /// Prepared transactions that block someone; `matched` tells which the filters select.
    pub prepared: Vec<PreparedBlocker>,
    pub hidden_from_query_filter: usize,
    /// The server's facts, read from the rows (None when no row came back).
    pub server: Option<Server>,
    /// With `--db`: the prepared transactions and active slots of those databases, counted by
    /// the same statement (None when no row came back, or without `--db`).
    pub held_in_dbs: Option<i64>,
}

/// The columns `Session::from_row` reads, then a prepared transaction's gid and whether it
/// matched; the server's facts follow them.
const SESSION_COLUMNS: usize = 20;
const GID_COLUMN: usize = SESSION_COLUMNS;
const MATCHED_COLUMN: usize = SESSION_COLUMNS + 1;
const SERVER_COLUMN: usize = SESSION_COLUMNS + 2;
/// After the server's two facts: `held_in_dbs` (see `Filter::select`).
const HELD_COLUMN: usize = SERVER_COLUMN + 2;

/// Runs the filter's SELECT (one statement) and applies its `--query` part.
pub fn find(client: &mut postgres::Client, server: &Server, filter: &Filter) -> Result<Matched> {
    let rows = filter
        .select(server)
        .run(client)
        .context("could not read pg_stat_activity")?;
    matched(filter, &rows)
}

/// The first statement of a run, before the server's version is known: finds the sessions as
/// if the server were 13 or later, whose SQL is the same up to the newest version, and learns
/// the server from the rows. `None` when the server is older and rejected the statement (a
/// column it lacks): then detect the server and `find`.
pub fn probe(client: &mut postgres::Client, filter: &Filter) -> Result<Option<Matched>> {
    match filter.select(&Server::probe()).run(client) {
        Ok(rows) => matched(filter, &rows).map(Some),
        // What an older server lacks: a column, a function (pg_blocking_pids before 9.6) or
        // syntax (`AS MATERIALIZED` before 12). Should a newer server reject the statement,
        // the second attempt fails with the same error, reported as such.
        Err(e)
            if [
                postgres::error::SqlState::UNDEFINED_COLUMN,
                postgres::error::SqlState::UNDEFINED_FUNCTION,
                postgres::error::SqlState::SYNTAX_ERROR,
            ]
            .iter()
            .any(|c| e.code() == Some(c)) =>
        {
            Ok(None)
        }
        Err(e) => Err(e).context("could not read pg_stat_activity"),
    }
}

fn matched(filter: &Filter, rows: &[postgres::Row]) -> Result<Matched> {
    let mut matched = Matched::default();
    for row in rows {
        if matched.server.is_none() {
            matched.server = Some(Server::from_row(row, SERVER_COLUMN)?);
            matched.held_in_dbs = row.try_get(HELD_COLUMN)?;
        }
        if let Some(gid) = row.try_get::<_, Option<String>>(GID_COLUMN)? {
            matched.prepared.push(PreparedBlocker {
                gid,
                database: row.try_get(1)?,
                owner: row.try_get(2)?,
                prepared: row.try_get(7)?,
                blocking: row.try_get::<_, Option<Vec<i32>>>(18)?.unwrap_or_default(),
                matched: row
                    .try_get::<_, Option<bool>>(MATCHED_COLUMN)?
                    .unwrap_or(false),
            });
            continue;
        }
        let session = Session::from_row(row)?;
        if filter.matches_query(&session) {
            matched.sessions.push(session);
        } else if !filter.queries.is_empty() && !session.details_visible() {
            matched.hidden_from_query_filter += 1;
        }
    }
    // The statement sends null for "in no chain" (it costs less on the wire than an empty
    // array); before 9.6 null means "cannot tell".
    let graph = matched.server.is_some_and(|s| s.has_blocking_pids());
    for session in &mut matched.sessions {
        if graph {
            session.blocked_by.get_or_insert_with(Vec::new);
            session.blocking.get_or_insert_with(Vec::new);
        }
        session.blocked_by_prepared = matched
            .prepared
            .iter()
            .filter(|p| p.blocking.contains(&session.pid))
            .map(|p| p.gid.clone())
            .collect();
    }
    Ok(matched)
}
