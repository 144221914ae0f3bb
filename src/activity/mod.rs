//! Finding sessions: the statement over pg_stat_activity assembled from what the run needs,
//! run, and its rows read by name.
//!
//! - `needs.rs`: the parts a statement can carry (the lock graph, the prepared transactions
//!   that block, whether anything waits, the server's facts, what holds the `--db`
//!   databases, the columns of a recheck);
//! - `statement.rs`: the statement without the lock graph; `graph.rs`: the one with it;
//! - `rows.rs`: reading the rows by the names of `crate::columns::name`.
//!
//! A run pays for the lock graph only when it can tell something. Without a lock-chain filter
//! or `--tree`, the statement says whether any backend waits for a lock; only when one does
//! (and a session was found) is the graph's statement sent after it: a run where nothing waits
//! sends one statement, a run where something waits two.
//!
//! Modules depend one way: `session` (the data) ← `columns` (pg_stat_activity's columns) ←
//! `filter` (the filter and its conditions) ← `activity` (the statements, their rows).

mod graph;
pub mod needs;
mod rows;
pub mod statement;

use anyhow::{Context, Result};

use crate::columns::name;
use crate::filter::Filter;
use crate::server::Server;
use crate::session::{PreparedBlocker, Session};
use needs::Needs;
use rows::Row;

/// The sessions a filter matches, and how many the `--query` filter could not judge because
/// their query text is hidden from pgkick's role.
#[derive(Debug, Default)]
pub struct Matched {
    /// In pid order.
    pub sessions: Vec<Session>,
    /// Prepared transactions that block someone; `matched` tells which the filters select.
    pub prepared: Vec<PreparedBlocker>,
    pub hidden_from_query_filter: usize,
    /// The server's facts, read from the rows; None when no row came back (then nothing here
    /// tells the server: a caller that needs it detects it).
    pub server: Option<Server>,
    /// With `--db`, on the first find of a run: whether those databases have prepared
    /// transactions or active logical slots (None when no row came back, or without `--db`).
    pub held_in_dbs: Option<bool>,
    /// The databases and roles the filter names that the server has none of (known on the
    /// first find of a run).
    pub unknown: Vec<Unknown>,
    /// Without the lock graph: some backend waits for a lock.
    waits: bool,
    /// From the first statement's facts: the server can have prepared transactions.
    two_phase: Option<bool>,
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
/// (`Server::assumed_for_probe`), and learns the server from the rows (`Matched::server`;
/// None when no row came back). `None` when the server is older and rejected the statement
/// (a column it lacks): then detect the server and call `first`.
pub fn probe(
    client: &mut postgres::Client,
    filter: &Filter,
    tree: bool,
) -> Result<Option<Matched>> {
    let assumed = Server::assumed_for_probe(!filter.chain.is_empty() || tree);
    let needs = Needs::first(filter, &assumed, tree);
    match statement::build(filter, &assumed, needs, None).run(client) {
        Ok(rows) => {
            let mut matched = read(filter, &rows, needs, None)?;
            if let Some(server) = matched.server {
                then_the_graph(client, &server, filter, needs, &mut matched)?;
            } else {
                // The server answered the probe's statement, so it has that statement's SQL.
                told_by_no_row(client, &assumed, filter, &mut matched)?;
            }
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
    // The facts again (the version is known): they also tell whether the server can have
    // prepared transactions, which spares the graph's statement that part.
    let needs = Needs::first(filter, server, tree);
    let rows = statement::build(filter, server, needs, None)
        .run(client)
        .context("could not read pg_stat_activity")?;
    let mut matched = read(filter, &rows, needs, Some(*server))?;
    if rows.is_empty() {
        told_by_no_row(client, server, filter, &mut matched)?;
    }
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
    let rows = statement::build(filter, server, needs, Some(&pids))
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
    let rows = statement::build(filter, server, needs, None)
        .run(client)
        .context("could not read pg_stat_activity")?;
    let mut matched = read(filter, &rows, needs, Some(*server))?;
    then_the_graph(client, server, filter, needs, &mut matched)?;
    Ok(matched)
}

/// A first statement that found no row told nothing of what its rows carry: one statement
/// with the server's facts, what holds the `--db` databases and which named databases and
/// roles exist (the version detect it replaces would have been sent anyway).
fn told_by_no_row(
    client: &mut postgres::Client,
    server: &Server,
    filter: &Filter,
    matched: &mut Matched,
) -> Result<()> {
    let rows = statement::facts_alone(filter, server)
        .run(client)
        .context("could not read the server's facts")?;
    let row = rows
        .first()
        .context("the server returned no row of facts")?;
    let (facts, two_phase) = rows::facts(row)?;
    matched.server = Some(facts);
    matched.two_phase = Some(two_phase);
    if !filter.dbs.is_empty() {
        matched.held_in_dbs = row.col(name::HELD_IN_DBS)?;
    }
    matched.unknown = unknown(filter, row)?;
    Ok(())
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

/// After a statement without the lock graph that found sessions while some backend waits
/// for a lock: the graph's statement, whose rows replace the first ones.
fn then_the_graph(
    client: &mut postgres::Client,
    server: &Server,
    filter: &Filter,
    needs: Needs,
    matched: &mut Matched,
) -> Result<()> {
    if needs.graph || !matched.waits || matched.sessions.is_empty() {
        return Ok(());
    }
    let needs = Needs::graph(matched.two_phase.unwrap_or(true));
    let rows = statement::build(filter, server, needs, None)
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
                let (server, two_phase) = rows::facts(row)?;
                matched.server = Some(server);
                matched.two_phase = Some(two_phase);
            }
            if needs.held && !filter.dbs.is_empty() {
                matched.held_in_dbs = row.col(name::HELD_IN_DBS)?;
            }
            if needs.waits {
                matched.waits = row.col::<Option<bool>>(name::WAITS)?.unwrap_or(false);
            }
            if needs.names {
                matched.unknown = unknown(filter, row)?;
            }
        }
        if prepared_rows {
            if let Some(gid) = row.col::<Option<String>>(name::GID)? {
                matched.prepared.push(rows::prepared(row, gid)?);
                continue;
            }
        }
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
