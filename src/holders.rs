//! What keeps a database from being dropped, besides the sessions pgkick terminates.
//!
//! `DROP DATABASE` (`dropdb()` in PostgreSQL's `src/backend/commands/dbcommands.c`, the same
//! checks from 10 to 18) refuses while any of these is left, in this order:
//! - an *active* logical replication slot of the database (inactive ones it drops itself;
//!   before 10, any logical slot);
//! - a subscription defined in the database (`pg_subscription.subdbid`, from 10);
//! - another backend connected to it (`CountOtherDBBackends`): client sessions, and also
//!   walsenders serving a logical slot in it, logical replication apply and tablesync workers,
//!   parallel and other background workers. Autovacuum workers it signals itself, so they do
//!   not count;
//! - a prepared transaction in it (`pg_prepared_xacts.database`), counted by the same
//!   function;
//! - and before all of these, the database being a template (`pg_database.datistemplate`):
//!   "cannot drop a template database", whoever asks.
//!
//! A backend still starting into the database is in the ProcArray, where `CountOtherDBBackends`
//! looks, before it is in pg_stat_activity; [`wait_for_starting`] sees it by the lock its
//! startup holds on the database.
//!
//! [`find`] reads all of them for a set of databases in one statement, whatever their number.
//! A part of the catalog that pgkick's role may not read is reported as a [`Holder`] of kind
//! `not_visible`: what cannot be seen is never taken as absent.
//!
//! [`PreparedRollback`] handles `--rollback-prepared`: `ROLLBACK PREPARED` must run in the
//! prepared transaction's own database, and once `ALLOW_CONNECTIONS false` is set nobody can
//! connect to it, so its connections are opened before the lock and closed at the end.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result};
use postgres::error::SqlState;
use postgres_protocol::escape::{escape_identifier, escape_literal};
use serde::Serialize;

use crate::columns::Columns;
use crate::interrupt::Backoff;
use crate::server::Server;
use crate::signal::Report;
use crate::sql::{Param, Query};

/// What a holder is, and its `outcome` in the JSON report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// The database is a template (`IS_TEMPLATE true`): DROP DATABASE refuses it.
    TemplateDatabase,
    /// An active logical replication slot of the database.
    ReplicationSlot,
    /// A subscription defined in the database.
    Subscription,
    /// A backend other than the sessions pgkick signalled (`backend_type` says which).
    #[serde(rename = "still_present")]
    Backend,
    /// A prepared transaction in the database.
    PreparedTransaction,
    /// A prepared transaction that `--rollback-prepared` rolled back: no longer a holder.
    RolledBack,
    /// --dry-run with --rollback-prepared: a prepared transaction it would roll back.
    WouldRollBack,
    /// A part of the catalog pgkick's role may not read: whether it holds the database is
    /// unknown.
    #[default]
    NotVisible,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::TemplateDatabase => "template_database",
            Kind::ReplicationSlot => "replication_slot",
            Kind::Subscription => "subscription",
            Kind::Backend => "still_present",
            Kind::PreparedTransaction => "prepared_transaction",
            Kind::RolledBack => "rolled_back",
            Kind::WouldRollBack => "would_roll_back",
            Kind::NotVisible => "not_visible",
        }
    }

    /// The kinds the statement reports, by their `outcome`.
    fn parse(s: &str) -> Option<Kind> {
        [
            Kind::TemplateDatabase,
            Kind::ReplicationSlot,
            Kind::Subscription,
            Kind::Backend,
            Kind::PreparedTransaction,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// One thing that keeps a database from being dropped. Every field is present in JSON (null
/// when it does not apply), so `jq` filters need not test for keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Holder {
    pub outcome: Kind,
    pub datname: String,
    /// The backend's pid; for a slot, the pid of the walsender that keeps it active.
    pub pid: Option<i32>,
    /// For a backend: pg_stat_activity.backend_type (null when hidden from pgkick's role).
    pub backend_type: Option<String>,
    /// For a prepared transaction: its global transaction id.
    pub gid: Option<String>,
    /// For a prepared transaction: the role that prepared it.
    pub owner: Option<String>,
    pub slot_name: Option<String>,
    pub subname: Option<String>,
    /// For a logical replication worker: its subscription is disabled, so it is on its way out.
    #[serde(skip)]
    pub exiting: bool,
    /// For a parallel worker: its leader (PostgreSQL 13 and later).
    #[serde(skip)]
    pub leader_pid: Option<i32>,
    /// What to do about it, in words a person can follow.
    pub fix: String,
}

impl Holder {
    /// Still in the way of DROP DATABASE.
    pub fn holds(&self) -> bool {
        self.outcome != Kind::RolledBack
    }

    /// On its way out once the backends in `ended` are gone: pgkick's own closed connection
    /// or a backend it terminated, a worker of a disabled subscription, a parallel worker of
    /// an ended leader (before 13, whose leader is unknown: any parallel worker).
    pub fn leaving(&self, ended: &BTreeSet<i32>) -> bool {
        let parallel = self.backend_type.as_deref() == Some("parallel worker")
            && self.leader_pid.is_none_or(|l| ended.contains(&l));
        self.outcome == Kind::Backend
            && (self.exiting || parallel || self.pid.is_some_and(|p| ended.contains(&p)))
    }

    /// What it is, for people: `prepared transaction 'tx1'`.
    pub fn what(&self) -> String {
        let s = |v: &Option<String>| v.clone().unwrap_or_default();
        match self.outcome {
            Kind::PreparedTransaction | Kind::RolledBack | Kind::WouldRollBack => {
                format!("prepared transaction '{}'", s(&self.gid))
            }
            Kind::ReplicationSlot => format!(
                "active logical replication slot \"{}\"{}",
                s(&self.slot_name),
                self.pid
                    .map(|p| format!(" (walsender pid {p})"))
                    .unwrap_or_default()
            ),
            Kind::Subscription => format!("subscription \"{}\"", s(&self.subname)),
            Kind::TemplateDatabase => "its template flag (datistemplate)".to_string(),
            Kind::Backend => format!(
                "{} pid {}",
                self.backend_type
                    .as_deref()
                    .unwrap_or("backend of unknown type"),
                self.pid.unwrap_or_default()
            ),
            Kind::NotVisible => "what pgkick's role cannot see".to_string(),
        }
    }

    /// A note for list, cancel and terminate without --lock: something no session row shows.
    pub fn note(&self) -> String {
        let why = match self.outcome {
            Kind::PreparedTransaction => {
                "; no session shows it, yet it keeps its locks, holds back VACUUM and keeps \
                 the database from being dropped"
            }
            _ => "; it keeps the database from being dropped",
        };
        format!(
            "database \"{}\" has {}{why}: {}",
            self.datname,
            self.what(),
            self.fix
        )
    }

    /// One line for stderr: what it is and how to clear it.
    pub fn line(&self) -> String {
        match self.outcome {
            Kind::RolledBack => format!(
                "database \"{}\": {} was rolled back",
                self.datname,
                self.what()
            ),
            _ => format!(
                "database \"{}\" is still held by {}: {}",
                self.datname,
                self.what(),
                self.fix
            ),
        }
    }
}

/// One object of terminate --lock's report: a session, or something else that holds a
/// database. Both serialize flat, told apart by `outcome`. The report is boxed: a session
/// row is much larger than a holder.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Entry {
    Session(Box<Report>),
    Holder(Holder),
}

/// After a lock with ALLOW_CONNECTIONS false: the fixes that must run inside a database say
/// that nobody can connect to it until it is unlocked.
pub fn locked_out(holders: &mut [Holder]) {
    for h in holders
        .iter_mut()
        .filter(|h| matches!(h.outcome, Kind::PreparedTransaction | Kind::Subscription))
    {
        h.fix.push_str(&format!(
            "; the lock keeps everyone out of \"{}\" now, superusers included: pgkick unlock \
             --db {} first",
            h.datname,
            shell_word(&h.datname)
        ));
    }
}

/// The sessions' reports, then the holders.
pub fn entries(reports: Vec<Report>, holders: Vec<Holder>) -> Vec<Entry> {
    reports
        .into_iter()
        .map(|r| Entry::Session(Box::new(r)))
        .chain(holders.into_iter().map(Entry::Holder))
        .collect()
}

/// The backends [`find`] leaves out: pgkick's own connections and the sessions it already
/// reports on.
#[derive(Debug, Default, Clone)]
pub struct Exclude {
    pub pids: BTreeSet<i32>,
}

/// Which parts of the catalog one statement reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Template,
    PreparedTransactions,
    ReplicationSlots,
    Subscriptions,
    Backends,
}

impl Part {
    const ALL: [Part; 5] = [
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
fn query(server: &Server, dbs: &[String], exclude: &Exclude, parts: &[Part]) -> Query {
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

/// How long [`wait_for_starting`] waits: as long as DROP DATABASE waits for other backends
/// to leave (`CountOtherDBBackends`).
pub const STARTING_WAIT: Duration = Duration::from_secs(5);

/// The backends starting into the databases `dbs` that pg_stat_activity does not show yet.
///
/// `InitPostgres` takes a `RowExclusiveLock` on the database object (`pg_locks`, locktype
/// `object`) before it reads `datallowconn`, the connection limit and the CONNECT privilege,
/// and holds it until its startup transaction ends, after the backend has appeared in
/// pg_stat_activity (`pgstat_bestart`). A backend that passed those checks before a lock
/// committed is in the database without being in pg_stat_activity yet, and only this lock
/// tells.
fn starting_query(dbs: &[String]) -> Query {
    let mut q = Query::default();
    let d = q.bind(Param::TextArray(dbs.to_vec()));
    q.sql = format!(
        "SELECT l.pid FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_database d \
         ON l.classid = 'pg_catalog.pg_database'::pg_catalog.regclass::pg_catalog.oid \
         AND l.objid = d.oid \
         WHERE l.locktype = 'object' AND l.database = 0 AND l.mode = 'RowExclusiveLock' \
         AND l.granted AND l.pid <> pg_catalog.pg_backend_pid() \
         AND d.datname::text = ANY({d}::text[]) \
         AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a \
         WHERE a.pid = l.pid AND a.datid = d.oid) ORDER BY 1"
    );
    q
}

/// After a lock has committed: waits, up to `within`, until every backend that was starting
/// into `dbs` has either appeared in pg_stat_activity or gone, so that a search for the
/// sessions in `dbs` finds those that got in just before the lock. Backends that begin to
/// start later read the lock and are refused (or, with a method that lets them in, are not
/// waited for: they keep coming). Returns the pids still starting at the end.
pub fn wait_for_starting(
    client: &mut postgres::Client,
    dbs: &[String],
    within: Duration,
) -> Result<Vec<i32>> {
    if dbs.is_empty() {
        return Ok(Vec::new());
    }
    let q = starting_query(dbs);
    let pids = |client: &mut postgres::Client| -> Result<BTreeSet<i32>> {
        let rows = q
            .run(client)
            .context("could not read which backends are starting into the databases")?;
        rows.iter().map(|r| Ok(r.try_get::<_, i32>(0)?)).collect()
    };
    let first = pids(client)?;
    let mut backoff = Backoff::new(within, Duration::from_millis(2), Duration::from_millis(100));
    let mut still = first.clone();
    while !still.is_empty() && backoff.sleep()? {
        still = pids(client)?.intersection(&first).copied().collect();
    }
    Ok(still.into_iter().collect())
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

fn not_visible(db: &str, part: Part) -> Holder {
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

/// How to clear a holder, naming the statement or the pgkick flag.
fn fix(h: &Holder) -> String {
    let db = &h.datname;
    match h.outcome {
        Kind::PreparedTransaction => format!(
            "run {} (or COMMIT PREPARED) in database \"{db}\", or let pgkick terminate --db \
             {} --lock --rollback-prepared do it (it connects before it locks){}",
            rollback_statement(h.gid.as_deref().unwrap_or_default()),
            shell_word(db),
            h.owner
                .as_deref()
                .map(|o| format!("; it was prepared by role \"{o}\""))
                .unwrap_or_default()
        ),
        Kind::ReplicationSlot => format!(
            "stop the consumer of slot \"{}\" (on a subscriber: ALTER SUBSCRIPTION ... DISABLE), \
             or end its walsender with pgkick terminate --db {} --backend-type walsender; \
             DROP DATABASE drops inactive slots itself",
            h.slot_name.as_deref().unwrap_or_default(),
            shell_word(db)
        ),
        Kind::TemplateDatabase => format!(
            "DROP DATABASE refuses a template database: ALTER DATABASE {} IS_TEMPLATE false \
             first (as a superuser or its owner)",
            escape_identifier(db)
        ),
        Kind::Subscription => {
            let name = escape_identifier(h.subname.as_deref().unwrap_or_default());
            format!(
                "in database \"{db}\": ALTER SUBSCRIPTION {name} DISABLE; ALTER SUBSCRIPTION \
                 {name} SET (slot_name = NONE); DROP SUBSCRIPTION {name} (or just DROP \
                 SUBSCRIPTION {name}, which also drops its slot on the publisher)"
            )
        }
        Kind::Backend => match h.backend_type.as_deref() {
            None => "pgkick's role cannot see what this backend is (grant it \
                     pg_read_all_stats); a superuser can end it"
                .to_string(),
            Some(t) if t.starts_with("logical replication") => format!(
                "a worker of a subscription in \"{db}\": disable or drop the subscription \
                 (ALTER SUBSCRIPTION ... DISABLE), or end it with --backend-type '{t}'"
            ),
            Some(t) if t == crate::columns::DEFAULT_BACKEND_TYPE => {
                "a session the filters did not match: widen them, or terminate it".to_string()
            }
            Some(t) => format!("not a target by default: add --backend-type '{t}' to end it"),
        },
        Kind::RolledBack | Kind::WouldRollBack => String::new(),
        Kind::NotVisible => h.fix.clone(),
    }
}

/// `ROLLBACK PREPARED 'gid'`: a utility statement, so the gid (read from the catalog) is
/// quoted as a literal; it cannot be a bind parameter.
pub fn rollback_statement(gid: &str) -> String {
    format!("ROLLBACK PREPARED {}", escape_literal(gid).trim_start())
}

/// A database name as a shell word, for the commands a fix names.
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.,/:@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Connections opened into databases for `--rollback-prepared`, before the lock closes them.
pub struct PreparedRollback {
    /// Database name, its connection and that connection's backend pid.
    conns: Vec<(String, postgres::Client, i32)>,
}

impl PreparedRollback {
    /// Opens one connection into each of `dbs` with `connect`.
    pub fn open(
        dbs: &[String],
        mut connect: impl FnMut(&str) -> Result<postgres::Client>,
    ) -> Result<PreparedRollback> {
        let mut conns = Vec::new();
        for db in dbs {
            let mut client = connect(db).with_context(|| {
                format!(
                    "--rollback-prepared: could not connect to database \"{db}\" to roll back \
                     its prepared transactions (a database locked already keeps everyone out: \
                     pgkick unlock --db it first); nothing was changed"
                )
            })?;
            let pid: i32 = client
                .query_one("SELECT pg_catalog.pg_backend_pid()", &[])?
                .get(0);
            conns.push((db.clone(), client, pid));
        }
        Ok(PreparedRollback { conns })
    }

    /// The backends of these connections, to leave out of the targets and the holders.
    pub fn pids(&self) -> BTreeSet<i32> {
        self.conns.iter().map(|c| c.2).collect()
    }

    /// Rolls back each prepared transaction in `holders` whose database has a connection here,
    /// turning it into `rolled_back`. One that fails (another role's, it was finished meanwhile)
    /// stays a holder with the server's message in its fix.
    pub fn rollback(&mut self, holders: &mut [Holder]) {
        for h in holders
            .iter_mut()
            .filter(|h| h.outcome == Kind::PreparedTransaction)
        {
            let Some((_, client, _)) = self.conns.iter_mut().find(|c| c.0 == h.datname) else {
                continue;
            };
            let gid = h.gid.clone().unwrap_or_default();
            match client.batch_execute(&rollback_statement(&gid)) {
                Ok(()) => {
                    h.outcome = Kind::RolledBack;
                    h.fix = String::new();
                }
                Err(e) if e.code() == Some(&SqlState::UNDEFINED_OBJECT) => {
                    // Committed or rolled back by someone else in the meantime: gone too.
                    h.outcome = Kind::RolledBack;
                    h.fix = "it was finished by someone else meanwhile".into();
                }
                Err(e) => {
                    let why = e
                        .as_db_error()
                        .map(|d| d.message().to_string())
                        .unwrap_or_else(|| e.to_string());
                    h.fix = format!("ROLLBACK PREPARED failed ({why}); {}", h.fix);
                }
            }
        }
    }

    /// Closes the connections; their backends leave the databases a moment later.
    pub fn close(self) {
        for (_, client, _) in self.conns {
            let _ = client.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_statement_for_every_part_with_values_as_parameters() {
        let exclude = Exclude {
            pids: [7, 9].into_iter().collect(),
        };
        let dbs = vec!["shop".to_string(), "it's".to_string()];
        let q = query(&Server::version(150000), &dbs, &exclude, &Part::ALL);
        assert_eq!(q.params[0], Param::TextArray(dbs.clone()));
        assert_eq!(q.params[1], Param::Int4Array(vec![7, 9]));
        assert!(!q.sql.contains("shop") && !q.sql.contains("it's"));
        assert!(q.sql.contains("d WHERE d.datistemplate"), "{}", q.sql);
        for catalog in [
            "pg_catalog.pg_prepared_xacts",
            "pg_catalog.pg_replication_slots",
            "pg_catalog.pg_subscription",
            "pg_catalog.pg_stat_activity",
        ] {
            assert!(q.sql.contains(catalog), "{catalog}: {}", q.sql);
        }
        assert!(q.sql.contains("WHERE s.active"), "{}", q.sql);
        assert!(q.sql.contains("'autovacuum worker'"));
    }

    #[test]
    fn starting_backends_are_read_from_the_database_lock_with_names_as_parameters() {
        let dbs = vec!["it's".to_string()];
        let q = starting_query(&dbs);
        assert_eq!(q.params, vec![Param::TextArray(dbs)]);
        assert!(!q.sql.contains("it's"));
        for part in [
            "pg_catalog.pg_locks l",
            "l.mode = 'RowExclusiveLock' AND l.granted",
            "l.pid <> pg_catalog.pg_backend_pid()",
            "NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a",
        ] {
            assert!(q.sql.contains(part), "{part}: {}", q.sql);
        }
    }

    #[test]
    fn before_10_every_logical_slot_holds_and_there_are_no_subscriptions() {
        let q = query(
            &Server::version(90624),
            &["x".into()],
            &Exclude::default(),
            &Part::ALL,
        );
        assert!(!q.sql.contains("WHERE s.active"));
        assert!(!q.sql.contains("pg_subscription"));
        assert!(!q.sql.contains("a.backend_type"));
        assert!(
            q.sql.contains("WHERE true"),
            "every logical slot holds: {}",
            q.sql
        );
    }

    #[test]
    fn the_rollback_statement_quotes_the_gid() {
        assert_eq!(rollback_statement("tx1"), "ROLLBACK PREPARED 'tx1'");
        assert_eq!(rollback_statement("a'b"), "ROLLBACK PREPARED 'a''b'");
        assert_eq!(rollback_statement(r"a\b"), r"ROLLBACK PREPARED E'a\\b'");
    }

    #[test]
    fn fixes_name_the_statement_or_the_flag() {
        let mut h = not_visible("shop", Part::Subscriptions);
        h.outcome = Kind::Subscription;
        h.subname = Some("Sub".into());
        assert!(fix(&h).contains("ALTER SUBSCRIPTION \"Sub\" DISABLE"));
        assert!(fix(&h).contains("SET (slot_name = NONE)"));
        h.outcome = Kind::Backend;
        h.backend_type = Some("walsender".into());
        assert!(fix(&h).contains("--backend-type 'walsender'"));
        h.outcome = Kind::PreparedTransaction;
        h.gid = Some("g".into());
        assert!(fix(&h).contains("ROLLBACK PREPARED 'g'"));
        h.outcome = Kind::TemplateDatabase;
        h.datname = "Shop".into();
        assert!(fix(&h).contains("ALTER DATABASE \"Shop\" IS_TEMPLATE false"));
        assert_eq!(shell_word("shop"), "shop");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
    }
}
