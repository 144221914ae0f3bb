//! The one statement that reads what holds a set of databases (every part of the catalog
//! DROP DATABASE checks, branch by branch), and its rows.

use anyhow::{Context, Result};
use postgres::error::SqlState;

use super::{fix, Exclude, Holder, Kind};
use crate::columns::Columns;
use crate::server::Server;
use crate::sql::{Param, Query};

/// Which parts of the catalog one statement reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Part {
    Template,
    PreparedTransactions,
    ReplicationSlots,
    Subscriptions,
    Backends,
}

impl Part {
    pub(super) const ALL: [Part; 5] = [
        Part::Template,
        Part::PreparedTransactions,
        Part::ReplicationSlots,
        Part::Subscriptions,
        Part::Backends,
    ];

    fn catalog(self) -> &'static str {
        match self {
            Part::Template => "pg_database",
            Part::PreparedTransactions => "pg_prepared_xacts",
            Part::ReplicationSlots => "pg_replication_slots",
            Part::Subscriptions => "pg_subscription",
            Part::Backends => "pg_stat_activity",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Part::Template => "template flags",
            Part::PreparedTransactions => "prepared transactions",
            Part::ReplicationSlots => "logical replication slots",
            Part::Subscriptions => "subscriptions",
            Part::Backends => "backends",
        }
    }

    /// One branch of the UNION, its columns named as [`read`] reads them. `d` is the set of
    /// databases; `$2` the excluded pids.
    fn select(self, server: &Server) -> Option<String> {
        Some(match self {
            Part::Template => branch(Kind::TemplateDatabase, &[], "d WHERE d.datistemplate"),
            Part::PreparedTransactions => branch(
                Kind::PreparedTransaction,
                &[("gid", "p.gid"), ("owner", "p.owner::text")],
                "pg_catalog.pg_prepared_xacts p JOIN d ON p.database::text = d.datname",
            ),
            Part::ReplicationSlots => {
                if !server.has_replication_slots() {
                    return None;
                }
                branch(
                    Kind::ReplicationSlot,
                    &[
                        ("pid", slot_pid(server)),
                        ("slot_name", "s.slot_name::text"),
                    ],
                    &format!(
                        "pg_catalog.pg_replication_slots s JOIN d ON s.datoid = d.oid WHERE {}",
                        slot_holds(server)
                    ),
                )
            }
            Part::Subscriptions => {
                if !server.has_subscriptions() {
                    return None;
                }
                // Only columns granted to PUBLIC (subconninfo is not).
                branch(
                    Kind::Subscription,
                    &[("subname", "s.subname::text")],
                    "pg_catalog.pg_subscription s JOIN d ON s.subdbid = d.oid",
                )
            }
            Part::Backends => {
                let cols = Columns::for_server(server);
                let not_autovacuum = if server.has_backend_type() {
                    " AND a.backend_type IS DISTINCT FROM 'autovacuum worker'"
                } else {
                    ""
                };
                // A logical replication worker whose subscription is disabled exits by itself.
                // (Joined by name: before 12, pg_subscription's oid is not granted to PUBLIC.)
                let exiting = if server.has_subscriptions() {
                    "COALESCE((SELECT NOT s.subenabled FROM pg_catalog.pg_stat_subscription w \
                     JOIN pg_catalog.pg_subscription s ON s.subname = w.subname \
                     AND s.subdbid = a.datid WHERE w.pid = a.pid LIMIT 1), false)"
                } else {
                    "false"
                };
                branch(
                    Kind::Backend,
                    &[
                        ("pid", cols.pid),
                        ("backend_type", cols.backend_type),
                        ("exiting", exiting),
                        ("leader_pid", cols.leader_pid),
                    ],
                    &format!(
                        "pg_catalog.pg_stat_activity a JOIN d ON a.datid = d.oid \
                         WHERE {pid} <> pg_catalog.pg_backend_pid() \
                         AND NOT ({pid} = ANY($2::int4[])){not_autovacuum}",
                        pid = cols.pid
                    ),
                )
            }
        })
    }
}

/// The columns every branch returns, by name, with what a branch that lacks one sends.
const COLUMNS: [(&str, &str); 8] = [
    ("pid", "NULL::int4"),
    ("backend_type", "NULL::text"),
    ("gid", "NULL::text"),
    ("owner", "NULL::text"),
    ("slot_name", "NULL::text"),
    ("subname", "NULL::text"),
    ("exiting", "false"),
    ("leader_pid", "NULL::int4"),
];

/// `SELECT '<outcome>' AS outcome, d.datname AS datname, <COLUMNS> FROM <from>`, with the
/// expressions `given` has and the defaults for the rest.
fn branch(kind: Kind, given: &[(&str, &str)], from: &str) -> String {
    let columns: Vec<String> = COLUMNS
        .iter()
        .map(|&(name, default)| {
            let expr = given
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(default, |(_, e)| e);
            format!("{expr} AS {name}")
        })
        .collect();
    format!(
        "SELECT '{}' AS outcome, d.datname AS datname, {} FROM {from}",
        kind.as_str(),
        columns.join(", ")
    )
}

/// The pid of the walsender that keeps a slot active (`active_pid`, from 9.5).
fn slot_pid(server: &Server) -> &'static str {
    if server.version_num >= 90500 {
        "s.active_pid"
    } else {
        "NULL::int4"
    }
}

/// Which logical slots of a database stop DROP DATABASE: from 10 the active ones (it drops the
/// others itself); before, every one.
fn slot_holds(server: &Server) -> &'static str {
    if server.version_num >= 100000 {
        "s.active"
    } else {
        "true"
    }
}

/// An SQL expression telling whether something that is no session holds the databases in
/// the text array `dbs` (a placeholder): a prepared transaction, or a slot that stops DROP
/// DATABASE. The first statement of a run carries it, so that a note on them costs another
/// statement only when there is something to note. Read from the functions behind the views
/// (`pg_prepared_xact`, `pg_get_replication_slots`), which a new backend plans for a fraction
/// of what the views' rewrite costs, and as EXISTS, which stops at the first.
pub fn held_without_backends(server: &Server, dbs: &str) -> String {
    let slots = if server.has_replication_slots() {
        format!(
            " OR EXISTS (SELECT 1 FROM pg_catalog.pg_get_replication_slots() s \
             JOIN pg_catalog.pg_database d ON d.oid = s.datoid \
             WHERE d.datname::text = ANY({dbs}::text[]) AND {})",
            slot_holds(server)
        )
    } else {
        String::new()
    };
    format!(
        "(EXISTS (SELECT 1 FROM pg_catalog.pg_prepared_xact() x \
         JOIN pg_catalog.pg_database d ON d.oid = x.dbid \
         WHERE d.datname::text = ANY({dbs}::text[])){slots})"
    )
}

/// The statement that reads `parts` for the databases `dbs`.
pub(super) fn query(server: &Server, dbs: &[String], exclude: &Exclude, parts: &[Part]) -> Query {
    let mut q = Query::default();
    let d = q.bind(Param::TextArray(dbs.to_vec()));
    // Always $2, which the backends' branch names (unused parameters are allowed).
    q.bind(Param::Int4Array(exclude.pids.iter().copied().collect()));
    let branches: Vec<String> = parts.iter().filter_map(|p| p.select(server)).collect();
    let branches = branches.join(" UNION ALL ");
    q.sql = format!(
        "WITH d AS (SELECT oid, datname::text AS datname, datistemplate \
         FROM pg_catalog.pg_database WHERE datname::text = ANY({d}::text[])) \
         SELECT * FROM ({branches}) AS h ORDER BY datname, outcome, pid, gid, slot_name, subname"
    );
    q
}

/// What no session row shows but holds the databases `dbs`: prepared transactions and
/// active logical slots, in one statement.
pub fn find_without_backends(
    client: &mut postgres::Client,
    server: &Server,
    dbs: &[String],
) -> Result<Vec<Holder>> {
    find_parts(
        client,
        server,
        dbs,
        &Exclude::default(),
        &[Part::PreparedTransactions, Part::ReplicationSlots],
    )
}

/// The prepared transactions of the databases `dbs`: what `--rollback-prepared` acts on.
pub fn find_prepared(
    client: &mut postgres::Client,
    server: &Server,
    dbs: &[String],
) -> Result<Vec<Holder>> {
    find_parts(
        client,
        server,
        dbs,
        &Exclude::default(),
        &[Part::PreparedTransactions],
    )
}

/// Everything that holds the databases `dbs` now, in one statement. Backends in `exclude` are
/// left out. Parts of the catalog the role may not read become `not_visible` holders (then one
/// statement per part).
pub fn find(
    client: &mut postgres::Client,
    server: &Server,
    dbs: &[String],
    exclude: &Exclude,
) -> Result<Vec<Holder>> {
    find_parts(client, server, dbs, exclude, &Part::ALL)
}

fn find_parts(
    client: &mut postgres::Client,
    server: &Server,
    dbs: &[String],
    exclude: &Exclude,
    parts: &[Part],
) -> Result<Vec<Holder>> {
    if dbs.is_empty() {
        return Ok(Vec::new());
    }
    match query(server, dbs, exclude, parts).run(client) {
        Ok(rows) => return read(&rows),
        Err(e) if e.code() != Some(&SqlState::INSUFFICIENT_PRIVILEGE) => {
            return Err(e).context("could not read what holds the databases");
        }
        Err(_) => {}
    }
    let mut holders = Vec::new();
    for &part in parts {
        if part.select(server).is_none() {
            continue;
        }
        match query(server, dbs, exclude, &[part]).run(client) {
            Ok(rows) => holders.extend(read(&rows)?),
            Err(e) if e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE) => {
                holders.extend(dbs.iter().map(|db| not_visible(db, part)))
            }
            Err(e) => return Err(e).context("could not read what holds the databases"),
        }
    }
    Ok(holders)
}

pub(super) fn not_visible(db: &str, part: Part) -> Holder {
    Holder {
        outcome: Kind::NotVisible,
        datname: db.to_string(),
        fix: format!(
            "pgkick's role may not read {}, so it cannot tell whether {} hold the database; \
             connect as a superuser or grant SELECT on it",
            Part::catalog(part),
            part.what()
        ),
        ..Holder::default()
    }
}

fn read(rows: &[postgres::Row]) -> Result<Vec<Holder>> {
    rows.iter()
        .map(|row| {
            let kind: String = row.try_get("outcome")?;
            let mut h = Holder {
                outcome: Kind::parse(&kind).with_context(|| format!("unknown holder {kind:?}"))?,
                datname: row.try_get("datname")?,
                pid: row.try_get("pid")?,
                backend_type: row.try_get("backend_type")?,
                gid: row.try_get("gid")?,
                owner: row.try_get("owner")?,
                slot_name: row.try_get("slot_name")?,
                subname: row.try_get("subname")?,
                exiting: row.try_get("exiting")?,
                leader_pid: row.try_get("leader_pid")?,
                fix: String::new(),
            };
            h.fix = fix(&h);
            Ok(h)
        })
        .collect()
}
