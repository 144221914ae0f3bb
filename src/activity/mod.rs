//! Finding sessions: the statement over pg_stat_activity assembled from what the run needs,
//! run, and its rows read by name.
//!
//! - `needs.rs`: the parts a statement can carry (the lock graph, the prepared transactions
//!   that block, whether anything waits, the server's facts, what holds the `--db`
//!   databases, the columns of a recheck);
//! - `statement.rs`: the statement without the lock graph; `graph.rs`: the one with it;
//!   `parts.rs`: what both write alike (neither uses the other); [`build`] picks one;
//! - `rows.rs`: reading the rows by the names of `crate::columns::name`.
//!
//! A run pays for the lock graph only when it can tell something. A find's statement says
//! whether any backend waits for a lock and whether a prepared transaction exists; only when
//! something waits (and a session was found, or a lock-chain filter could select a prepared
//! transaction) is the graph's statement sent after it, with the prepared transactions only
//! when one exists: a run where nothing waits sends one statement, a run where something waits
//! two. When nothing waits, the lock-chain filters select nothing and `--tree` is flat.
//!
//! Modules depend one way: `session` (the data) ← `columns` (pg_stat_activity's columns) ←
//! `filter` (the filter and its conditions) ← `activity` (the statements, their rows).

mod graph;
pub mod needs;
mod parts;
mod rows;
pub mod statement;

use anyhow::{Context, Result};

use crate::columns::name;
use crate::filter::Filter;
use crate::server::Server;
use crate::session::{PreparedBlocker, Session};
use crate::sql::Query;
use needs::Needs;
use rows::Row;

/// The statement for `needs`: the graph's when it asks for the graph (9.6+), otherwise the
/// one without it; with `only`, restricted to those pids (a recheck of targets).
pub fn build(filter: &Filter, server: &Server, needs: Needs, only: Option<&[i32]>) -> Query {
    if needs.graph && server.has_blocking_pids() {
        graph::build(filter, server, needs, only)
    } else {
        statement::build(filter, server, needs, only)
    }
}

/// The sessions a filter matches, and how many the `--query` filter could not judge because
/// their query text is hidden from pgkick's role.
#[derive(Debug, Default)]
pub struct Matched {
    /// In pid order.
    pub sessions: Vec<Session>,
    /// Prepared transactions that block someone; `matched` tells which the filters select.
    pub prepared: Vec<PreparedBlocker>,
    pub hidden_from_query_filter: usize,
    /// The server's facts, read from the first statement's row (it returns one even when no
    /// session matches).
    pub server: Option<Server>,
    /// With `--db`, on the first find of a run: whether those databases have prepared
    /// transactions or active logical slots (None without `--db`).
    pub held_in_dbs: Option<bool>,
    /// The databases and roles the filter names that the server has none of (known on the
    /// first find of a run).
    pub unknown: Vec<Unknown>,
    /// Without the lock graph: some backend waits for a lock.
    waits: bool,
    /// Told with `waits`: a prepared transaction exists (read only when something waits).
    prepared_exist: bool,
    /// The session rows, before the `--query` filter.
    rows: usize,
}

/// A database or role the filter names that does not exist on the server: a typo, most
/// likely, and never "nothing to do".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unknown {
    /// The flag that names it: `--db`, `--exclude-db`, `--user` or `--exclude-user`.
    pub flag: &'static str,
    pub name: String,
    /// `database` or `role`.
    pub kind: &'static str,
    /// The existing name it is closest to, when one is close (see [`suggest`]).
    pub close: Option<String>,
}

impl std::fmt::Display for Unknown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: the server has no {} of that name",
            self.flag,
            crate::shell::word(&self.name),
            self.kind
        )?;
        if let Some(close) = &self.close {
            write!(f, " (did you mean {}?)", crate::shell::word(close))?;
        }
        Ok(())
    }
}

/// The first statement of a run, before the server's version is known: finds the sessions as
/// if the server were the oldest whose SQL is the same up to the newest version
/// (`Server::assumed_for_probe`; never with the graph, which follows once the server is
/// known), and learns the server from its row (`Matched::server`). `None` when the server is
/// older and rejected the statement (a column it lacks): then detect the server and call
/// `first`.
pub fn probe(
    client: &mut postgres::Client,
    filter: &Filter,
    tree: bool,
) -> Result<Option<Matched>> {
    let assumed = Server::assumed_for_probe();
    let needs = Needs::first(filter, &assumed, tree);
    match statement::build(filter, &assumed, needs, None).run(client) {
        Ok(rows) => {
            let mut matched = read(filter, &rows, needs, None)?;
            let server = matched
                .server
                .context("the server returned no row of facts")?;
            // An older server can answer a statement that names none of what it lacks (a
            // lock-chain filter's reads only the pid, and that is all it is read for): what
            // only its version reveals is checked as after a detect.
            filter.check_server(&server).map_err(crate::error::Usage)?;
            then_the_graph(client, &server, filter, needs, &mut matched)?;
            Ok(Some(matched))
        }
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

/// The first find of a run on a server detected first (one that rejected the probe).
pub fn first(
    client: &mut postgres::Client,
    server: &Server,
    filter: &Filter,
    tree: bool,
) -> Result<Matched> {
    // The facts again (the version is known): the statement reads them in its one-row part
    // anyway, with what holds the databases and the names.
    let needs = Needs::first(filter, server, tree);
    let rows = build(filter, server, needs, None)
        .run(client)
        .context("could not read pg_stat_activity")?;
    let mut matched = read(filter, &rows, needs, Some(*server))?;
    then_the_graph(client, server, filter, needs, &mut matched)?;
    Ok(matched)
}

/// Finds the filter's sessions later in a run.
pub fn find(client: &mut postgres::Client, server: &Server, filter: &Filter) -> Result<Matched> {
    run(client, server, filter, Needs::later(filter, server))
}

/// Which of `targets` still match the filter, after a prompt, a lock or a grace period: the
/// rows carry only what `Session::same_backend` compares (the other fields are empty).
pub fn recheck(
    client: &mut postgres::Client,
    server: &Server,
    filter: &Filter,
    targets: &[Session],
) -> Result<Vec<Session>> {
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    let pids: Vec<i32> = targets.iter().map(|t| t.pid).collect();
    let needs = Needs::recheck(filter, server);
    let rows = build(filter, server, needs, Some(&pids))
        .run(client)
        .context("could not read pg_stat_activity")?;
    let mut still = Vec::with_capacity(rows.len());
    for row in &rows {
        let session = rows::identity(row, !filter.queries.is_empty())?;
        if filter.matches_query(&session) {
            still.push(session);
        }
    }
    Ok(still)
}

fn run(
    client: &mut postgres::Client,
    server: &Server,
    filter: &Filter,
    needs: Needs,
) -> Result<Matched> {
    let rows = build(filter, server, needs, None)
        .run(client)
        .context("could not read pg_stat_activity")?;
    let mut matched = read(filter, &rows, needs, Some(*server))?;
    then_the_graph(client, server, filter, needs, &mut matched)?;
    Ok(matched)
}

/// The named databases and roles a first statement's row says do not exist.
fn unknown<R: Row>(filter: &Filter, row: &R) -> Result<Vec<Unknown>> {
    let mut out = Vec::new();
    let groups = [
        (
            "database",
            name::KNOWN_DBS,
            [("--db", &filter.dbs), ("--exclude-db", &filter.exclude_dbs)],
            filter.named_dbs().is_empty(),
        ),
        (
            "role",
            name::KNOWN_ROLES,
            [
                ("--user", &filter.users),
                ("--exclude-user", &filter.exclude_users),
            ],
            filter.named_users().is_empty(),
        ),
    ];
    for (kind, column, flags, none_named) in groups {
        if none_named {
            continue;
        }
        let known: Vec<String> = row.col::<Option<Vec<String>>>(column)?.unwrap_or_default();
        for (flag, names) in flags {
            for name in names.iter().filter(|n| !known.contains(n)) {
                if !out
                    .iter()
                    .any(|u: &Unknown| u.kind == kind && u.name == *name)
                {
                    out.push(Unknown {
                        flag,
                        name: name.clone(),
                        kind,
                        close: None,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// For each unknown name, the existing database or role it is closest to: read only when a
/// name is unknown (a typo's error path), and close means as close as a one- or two-letter
/// slip (normalized Damerau-Levenshtein similarity of 0.7 or more, as clap suggests flags).
pub fn suggest(client: &mut postgres::Client, unknown: &mut [Unknown]) -> Result<()> {
    for kind in ["database", "role"] {
        if !unknown.iter().any(|u| u.kind == kind) {
            continue;
        }
        let sql = match kind {
            "database" => "SELECT d.datname::text FROM pg_catalog.pg_database d",
            _ => "SELECT r.rolname::text FROM pg_catalog.pg_roles r",
        };
        let names: Vec<String> = client
            .query(sql, &[])
            .with_context(|| format!("could not read the {kind} names"))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        for u in unknown.iter_mut().filter(|u| u.kind == kind) {
            u.close = closest(&u.name, &names);
        }
    }
    Ok(())
}

/// The one of `names` closest to `typed`, when it is close.
fn closest(typed: &str, names: &[String]) -> Option<String> {
    names
        .iter()
        .map(|n| (strsim::normalized_damerau_levenshtein(typed, n), n))
        .filter(|(score, _)| *score >= 0.7)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, n)| n.clone())
}

/// After a statement without the lock graph: when some backend waits for a lock, the graph's
/// statement (with the prepared transactions when one exists), whose rows replace the first
/// ones. Sent only when it can change the answer: a session was found, or a lock-chain
/// filter (which can select a prepared transaction alone) asked for it and a prepared
/// transaction exists. When nothing waits, a lock-chain filter selects nothing: no session
/// is blocked or blocking.
fn then_the_graph(
    client: &mut postgres::Client,
    server: &Server,
    filter: &Filter,
    needs: Needs,
    matched: &mut Matched,
) -> Result<()> {
    if needs.graph || !needs.waits || !server.has_blocking_pids() {
        return Ok(());
    }
    let chains = !filter.chain.is_empty();
    let worth_it = matched.rows > 0 || (chains && matched.prepared_exist);
    if !matched.waits || !worth_it {
        if chains {
            // What the graph's statement would have said: nobody is blocked or blocking.
            matched.sessions.clear();
            matched.prepared.clear();
            matched.hidden_from_query_filter = 0;
        }
        return Ok(());
    }
    let needs = Needs::graph(matched.prepared_exist);
    let rows = build(filter, server, needs, None)
        .run(client)
        .context("could not read pg_stat_activity")?;
    let again = read(filter, &rows, needs, Some(*server))?;
    matched.sessions = again.sessions;
    matched.prepared = again.prepared;
    matched.hidden_from_query_filter = again.hidden_from_query_filter;
    Ok(())
}

fn read<R: Row>(
    filter: &Filter,
    rows: &[R],
    needs: Needs,
    server: Option<Server>,
) -> Result<Matched> {
    let mut matched = Matched {
        server,
        ..Matched::default()
    };
    let prepared_rows = needs.graph && needs.prepared;
    for (i, row) in rows.iter().enumerate() {
        if i == 0 {
            if needs.facts {
                matched.server = Some(rows::facts(row)?);
            }
            if needs.held && !filter.dbs.is_empty() {
                matched.held_in_dbs = row.col(name::HELD_IN_DBS)?;
            }
            if needs.waits {
                let waits = row.col::<Option<i32>>(name::WAITS)?.unwrap_or(0);
                matched.waits = waits > 0;
                matched.prepared_exist = waits > 1;
            }
            if needs.names {
                matched.unknown = unknown(filter, row)?;
            }
        }
        if needs.one_row() && !rows::is_session(row)? {
            continue;
        }
        if needs.rows == needs::Rows::Pid {
            // A lock-chain filter's first statement: the graph's rows replace these.
            matched.rows += 1;
            continue;
        }
        if prepared_rows {
            if let Some(gid) = row.col::<Option<String>>(name::GID)? {
                matched.prepared.push(rows::prepared(row, gid)?);
                continue;
            }
        }
        matched.rows += 1;
        let session = rows::session(row, needs.graph)?;
        if filter.matches_query(&session) {
            matched.sessions.push(session);
        } else if !filter.queries.is_empty() && !session.details_visible() {
            matched.hidden_from_query_filter += 1;
        }
    }
    matched.sessions.sort_by_key(|s| s.pid);
    matched.prepared.sort_by(|a, b| a.gid.cmp(&b.gid));
    // The graph's statement sends null for "in no chain" (it costs less on the wire than an
    // empty array), and a statement without the graph sends nothing; before 9.6 null means
    // "cannot tell".
    let graph = matched.server.is_some_and(|s| s.has_blocking_pids());
    for session in &mut matched.sessions {
        if let Some(b) = &mut session.blocked_by {
            b.sort_unstable();
            b.dedup();
        }
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
mod tests;
