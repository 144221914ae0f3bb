//! Finding the sessions a filter matches: runs `Filter::select`'s statement and reads each
//! row by the column names of `crate::columns::name`.
//!
//! Modules depend one way: `session` (the data) ← `columns` (pg_stat_activity's columns) ←
//! `filter` (the filter and its SQL) ← `activity` (runs it and reads the rows).

use anyhow::{Context, Result};
use postgres::types::FromSqlOwned;

use crate::columns::name;
use crate::filter::Filter;
use crate::server::Server;
use crate::session::{PreparedBlocker, Session};

/// The sessions a filter matches, and how many the `--query` filter could not judge because
/// their query text is hidden from pgkick's role.
#[derive(Debug, Default)]
pub struct Matched {
    pub sessions: Vec<Session>,
    /// Prepared transactions that block someone; `matched` tells which the filters select.
    pub prepared: Vec<PreparedBlocker>,
    pub hidden_from_query_filter: usize,
    /// The server's facts, read from the rows; None when no row came back (then nothing here
    /// tells the server: a caller that needs it detects it).
    pub server: Option<Server>,
    /// With `--db`: the prepared transactions and active slots of those databases, counted by
    /// the same statement (None when no row came back, or without `--db`).
    pub held_in_dbs: Option<i64>,
}

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
/// the server from the rows (`Matched::server`; None when no row came back). `None` when the
/// server is older and rejected the statement (a column it lacks): then detect the server and
/// `find`.
pub fn probe(client: &mut postgres::Client, filter: &Filter) -> Result<Option<Matched>> {
    match filter.select(&Server::assumed_for_probe()).run(client) {
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

/// A row's column by name. `postgres::Row` in use; in the tests, a row that records which
/// names are read.
trait Row {
    fn col<T: FromSqlOwned + Default>(&self, name: &str) -> Result<T>;
}

impl Row for postgres::Row {
    fn col<T: FromSqlOwned + Default>(&self, name: &str) -> Result<T> {
        self.try_get(name)
            .with_context(|| format!("could not read column {name} of pg_stat_activity"))
    }
}

fn session<R: Row>(row: &R) -> Result<Session> {
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
        blocked_by: row.col(name::BLOCKED_BY)?,
        blocking: row.col(name::BLOCKING)?,
        lock_wait_start: row.col(name::LOCK_WAIT_START)?,
        blocked_by_prepared: Vec::new(),
        pooler: None,
    })
}

/// A prepared transaction's row (`gid` not null): the session columns that have its values.
fn prepared<R: Row>(row: &R, gid: String) -> Result<PreparedBlocker> {
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

/// The facts `Filter::select` appends to each row.
fn server<R: Row>(row: &R) -> Result<Server> {
    Ok(Server {
        version_num: row.col(name::SERVER_VERSION_NUM)?,
        is_superuser: row.col(name::IS_SUPERUSER)?,
    })
}

fn matched<R: Row>(filter: &Filter, rows: &[R]) -> Result<Matched> {
    let mut matched = Matched::default();
    for row in rows {
        if matched.server.is_none() {
            matched.server = Some(server(row)?);
            matched.held_in_dbs = row.col(name::HELD_IN_DBS)?;
        }
        if let Some(gid) = row.col::<Option<String>>(name::GID)? {
            matched.prepared.push(prepared(row, gid)?);
            continue;
        }
        let session = session(row)?;
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

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeSet;

    use super::*;
    use crate::columns::{Columns, NO_LOCK_COLUMNS, SERVER_FACTS};

    /// A row whose every column is its type's default, and that records the names read.
    #[derive(Default)]
    struct Recorder(RefCell<BTreeSet<String>>);

    impl Row for Recorder {
        fn col<T: FromSqlOwned + Default>(&self, name: &str) -> Result<T> {
            self.0.borrow_mut().insert(name.to_string());
            Ok(T::default())
        }
    }

    /// `name AS alias` → every alias in a select list.
    fn aliases(list: &str) -> BTreeSet<String> {
        let re = regex::Regex::new(r"\bAS (\w+)").unwrap();
        re.captures_iter(list).map(|c| c[1].to_string()).collect()
    }

    #[test]
    fn every_alias_of_the_select_list_is_read_and_every_name_read_is_an_alias() {
        let row = Recorder::default();
        session(&row).unwrap();
        prepared(&row, String::new()).unwrap();
        server(&row).unwrap();
        row.col::<Option<i64>>(name::HELD_IN_DBS).unwrap();
        row.col::<Option<String>>(name::GID).unwrap();
        let read = row.0.into_inner();
        for v in [80400, 90124, 90200, 90600, 100000, 120000, 130000, 180000] {
            let server = Server::version(v);
            let list = format!(
                "{}, {NO_LOCK_COLUMNS}, {SERVER_FACTS}, NULL AS {}",
                Columns::for_server(&server).select_list(),
                name::HELD_IN_DBS
            );
            assert_eq!(aliases(&list), read, "{v}");
            // The statement itself names every column read.
            let sql = Filter::default().select(&server).sql;
            for n in &read {
                assert!(
                    sql.contains(&format!(" AS {n},")) || sql.contains(&format!(" AS {n} ")),
                    "{v}: {n}"
                );
            }
        }
    }

    #[test]
    fn no_row_no_server() {
        let matched = matched::<Recorder>(&Filter::default(), &[]).unwrap();
        assert_eq!(matched.server, None);
        assert_eq!(matched.held_in_dbs, None);
    }
}
