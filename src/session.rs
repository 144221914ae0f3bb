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
    /// With `--pgbouncer` only: the pooler whose server connection this session is, and its
    /// client (`null` for a session of no pooler given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pooler: Option<Option<Box<crate::pgbouncer::PoolerLink>>>,
}

impl Session {
    /// Builds a session from a row of `filter::select_sql`'s result (columns in the order
    /// above, then usesysid).
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
            pooler: None,
        })
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
    pub hidden_from_query_filter: usize,
    /// The server's facts, read from the rows (None when no row came back).
    pub server: Option<Server>,
}

/// The columns `Session::from_row` reads; the server's facts follow them.
const SESSION_COLUMNS: usize = 17;

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
        Err(e) if e.code() == Some(&postgres::error::SqlState::UNDEFINED_COLUMN) => Ok(None),
        Err(e) => Err(e).context("could not read pg_stat_activity"),
    }
}

fn matched(filter: &Filter, rows: &[postgres::Row]) -> Result<Matched> {
    let mut matched = Matched::default();
    for row in rows {
        if matched.server.is_none() {
            matched.server = Some(Server::from_row(row, SESSION_COLUMNS)?);
        }
        let session = Session::from_row(row)?;
        if filter.matches_query(&session) {
            matched.sessions.push(session);
        } else if !filter.queries.is_empty() && !session.details_visible() {
            matched.hidden_from_query_filter += 1;
        }
    }
    Ok(matched)
}
