//! lock / unlock: keep new connections out of databases, or stop roles from logging in, and
//! give back exactly what was there.
//!
//! # Methods
//! - `allow-connections` (databases, default): `ALTER DATABASE x ALLOW_CONNECTIONS false`
//!   (servers before 9.5: `UPDATE pg_catalog.pg_database SET datallowconn = false`, superuser
//!   only). Nobody can connect, superusers included. The server refuses this for the database
//!   pgkick itself is connected to, so pgkick says so before changing anything.
//! - `connection-limit`: `ALTER DATABASE x CONNECTION LIMIT 0`. Superusers can still connect.
//! - `revoke-connect`: reads the CONNECT entries of the database's ACL
//!   (`aclexplode(coalesce(datacl, acldefault('d', datdba)))`) and runs one
//!   `REVOKE CONNECT ON DATABASE x FROM PUBLIC, <every holder, the owner included> CASCADE`.
//!   Afterwards nobody holds CONNECT, so only superusers can connect; pgkick checks that no
//!   CONNECT entry is left and otherwise fails without changing anything (e.g. a non-owner
//!   cannot revoke what others granted).
//! - roles (`--role`): `ALTER ROLE x NOLOGIN`. pgkick refuses to lock the role it is connected
//!   as.
//!
//! # Where the saved state lives
//! In the object's own comment (`COMMENT ON DATABASE` / `COMMENT ON ROLE`, stored in the shared
//! catalog `pg_shdescription`): visible from every database of the cluster, so a lock taken by
//! a cron job on one machine can be undone by a person on another, and writable by a
//! database's owner without superuser (unlike `ALTER DATABASE ... SET` of a custom setting).
//! The comment is the prefix `pgkick-lock v1 ` followed by one JSON object:
//!
//! ```text
//! pgkick-lock v1 {"method":"revoke-connect","locked_by":"alice",
//!   "locked_at":"2026-01-02T03:04:05.123456Z","pgkick_version":"0.1.0",
//!   "prior":{"comment":null,"owner":"app","datallowconn":true,"datconnlimit":-1,
//!     "acl":[{"grantee":null,"grantor":"app","grant_option":false},
//!            {"grantee":"app","grantor":"app","grant_option":true}]}}
//! ```
//!
//! `grantee` null is PUBLIC (a role may really be called "PUBLIC"). Only the CONNECT entries
//! are kept. For roles, `method` is `nologin` and `prior` holds `comment` and `rolcanlogin`.
//! The previous comment is saved and put back by unlock (`COMMENT ... IS NULL` if there was
//! none). `lock --list` reads these comments from `pg_shdescription`.
//!
//! # Unlock gives back exactly what lock changed
//! - allow-connections: `ALLOW_CONNECTIONS true` only if it was true before the lock and is
//!   still false; a database closed before the lock stays closed.
//! - connection-limit: the previous limit, only if the limit is still 0 (a limit someone set
//!   by hand after the lock is left alone).
//! - revoke-connect: exactly the saved entries, each with its grant option and by its grantor:
//!   entries granted by the owner with a plain `GRANT` (a superuser's GRANT is performed as the
//!   owner), entries granted by another role G within `SET ROLE G; GRANT ...; RESET ROLE`, in
//!   an order where each grantor has its grant option back first. (`GRANT ... GRANTED BY`
//!   only accepts the current role before PostgreSQL 19, hence SET ROLE.) Entries whose role
//!   has been dropped since are skipped, and the status says so. A non-superuser owner can
//!   lock such a database (REVOKE ... CASCADE also removes grants made by others), but
//!   giving back a grant made by another role G needs `SET ROLE G`, i.e. membership in G, or
//!   a superuser; otherwise unlock fails and changes nothing.
//! - roles: `LOGIN` only if the role could log in before the lock.
//!
//! Locking an object that already carries a record changes nothing and keeps the first saved
//! state (status `already_locked`, or `already_locked (<method>)` when it was locked with
//! another method), so one unlock restores the state before the first lock. Unlocking an object
//! without a record changes nothing (status `not_locked`).
//!
//! # Serialization and atomicity
//! One run is one transaction: `SET LOCAL lock_timeout`, look every target up (an unknown one
//! fails the run before anything changes), take `pg_advisory_xact_lock(<kind key>, <oid>)` for
//! each object in oid order, read the catalog and the comment only after that, run the DDL,
//! write the comment, COMMIT. The catalog and the saved state change together or not at all;
//! a lock_timeout error rolls everything back. Advisory locks are per database, so the
//! serialization holds among pgkick processes connected to the same database (by default
//! `postgres`); processes connected to different databases are still protected from silent
//! corruption by the catalog's own row locks, but one of them may fail with "tuple
//! concurrently updated" instead of waiting.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use chrono::{DateTime, Utc};
use postgres::error::SqlState;
use postgres::types::Type;
use postgres::Transaction;
use postgres_protocol::escape::{escape_identifier, escape_literal};
use serde::{Deserialize, Serialize};

use crate::cli::LockMethod;
use crate::server::Server;

/// What every comment pgkick writes starts with.
const PREFIX: &str = "pgkick-lock v1 ";
/// A record of any format version (to refuse those of a newer pgkick instead of ignoring them).
const ANY_VERSION_PREFIX: &str = "pgkick-lock ";
/// `pg_advisory_xact_lock(key, oid)` first keys: "pkdb" and "pkrl".
const ADVISORY_KEY_DATABASE: i32 = 0x706b_6462;
const ADVISORY_KEY_ROLE: i32 = 0x706b_726c;
/// The method name recorded for roles.
const NOLOGIN: &str = "nologin";

/// What to lock or unlock.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    pub dbs: Vec<String>,
    pub roles: Vec<String>,
}

/// What lock or unlock did (or, with dry_run, would do) to one database or role.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// `database` or `role`.
    pub kind: &'static str,
    pub name: String,
    /// `locked`, `already_locked`, `already_locked (<recorded method>)`, `would_lock`,
    /// `unlocked`, `not_locked`, `would_unlock`; unlock may add a note in parentheses.
    pub status: String,
    /// The lock method recorded for the object (the one just used, or the earlier one).
    pub method: Option<String>,
    /// The statements run (or, with dry_run, that would run), in order.
    pub statements: Vec<String>,
    /// The saved state before the first lock (what unlock gives back), as recorded in the
    /// object's comment; None when the object carries no record. For audit records.
    #[serde(skip)]
    pub prior: Option<serde_json::Value>,
}

/// One lock recorded in the cluster, for `lock --list`.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    pub kind: &'static str,
    pub name: String,
    pub method: Option<String>,
    pub locked_by: Option<String>,
    pub locked_at: Option<DateTime<Utc>>,
    pub pgkick_version: Option<String>,
    /// The saved state unlock gives back, as recorded.
    pub prior: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Database,
    Role,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Database => "database",
            Kind::Role => "role",
        }
    }
    fn keyword(self) -> &'static str {
        match self {
            Kind::Database => "DATABASE",
            Kind::Role => "ROLE",
        }
    }
    fn advisory_key(self) -> i32 {
        match self {
            Kind::Database => ADVISORY_KEY_DATABASE,
            Kind::Role => ADVISORY_KEY_ROLE,
        }
    }
}

/// `database "x"`, for messages.
struct Label<'a>(Kind, &'a str);

impl fmt::Display for Label<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} \"{}\"", self.0.as_str(), self.1)
    }
}

/// The comment's JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Saved {
    method: String,
    locked_by: String,
    locked_at: DateTime<Utc>,
    pgkick_version: String,
    prior: Prior,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Prior {
    comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    datallowconn: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    datconnlimit: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    acl: Option<Vec<AclEntry>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rolcanlogin: Option<bool>,
}

/// One CONNECT entry of a database ACL.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct AclEntry {
    /// None is PUBLIC.
    grantee: Option<String>,
    grantor: String,
    grant_option: bool,
}

/// A database or role as the catalog shows it now.
#[derive(Debug, Clone)]
struct Object {
    kind: Kind,
    name: String,
    oid: u32,
    comment: Option<String>,
    facts: Facts,
}

#[derive(Debug, Clone)]
enum Facts {
    Database {
        owner: String,
        allow_connections: bool,
        connection_limit: i32,
        is_current: bool,
        connect_acl: Vec<AclEntry>,
    },
    Role {
        can_login: bool,
        is_self: bool,
    },
}

impl Object {
    fn label(&self) -> Label<'_> {
        Label(self.kind, &self.name)
    }
    fn quoted(&self) -> String {
        escape_identifier(&self.name)
    }
    fn comment_statement(&self, text: Option<&str>) -> String {
        let value = text.map_or_else(|| "NULL".to_string(), escape_literal);
        format!(
            "COMMENT ON {} {} IS {};",
            self.kind.keyword(),
            self.quoted(),
            value.trim_start()
        )
    }
    fn saved(&self) -> Result<Option<Saved>> {
        let Some(comment) = &self.comment else {
            return Ok(None);
        };
        if let Some(json) = comment.strip_prefix(PREFIX) {
            return serde_json::from_str(json).map(Some).with_context(|| {
                format!(
                    "the comment on {} starts like a pgkick lock record but cannot be read; \
                     nothing was changed",
                    self.label()
                )
            });
        }
        if comment.starts_with(ANY_VERSION_PREFIX) {
            bail!(
                "the comment on {} is a pgkick lock record in a format this pgkick ({}) does \
                 not know; use the pgkick that wrote it; nothing was changed",
                self.label(),
                env!("CARGO_PKG_VERSION")
            );
        }
        Ok(None)
    }
}

/// Who runs pgkick and when, for the record.
struct Me {
    user: String,
    now: DateTime<Utc>,
}

/// Locks the targets; see the module documentation.
pub fn lock(
    client: &mut postgres::Client,
    server: &Server,
    targets: &Targets,
    method: LockMethod,
    dry_run: bool,
    lock_timeout: Duration,
) -> Result<Vec<Change>> {
    in_one_transaction(client, targets, dry_run, lock_timeout, |tx, me, object| {
        plan_lock(tx, server, me, object, method)
    })
}

/// Gives back what the matching lock changed; see the module documentation.
pub fn unlock(
    client: &mut postgres::Client,
    server: &Server,
    targets: &Targets,
    dry_run: bool,
    lock_timeout: Duration,
) -> Result<Vec<Change>> {
    in_one_transaction(client, targets, dry_run, lock_timeout, |tx, _me, object| {
        plan_unlock(tx, server, object)
    })
}

/// Every database and role that carries a pgkick lock record.
pub fn list(client: &mut postgres::Client, _server: &Server) -> Result<Vec<Record>> {
    let rows = client
        .query(
            "SELECT 'database', d.datname::text, s.description \
               FROM pg_catalog.pg_shdescription s \
               JOIN pg_catalog.pg_database d ON d.oid = s.objoid \
              WHERE s.classoid = 'pg_catalog.pg_database'::pg_catalog.regclass \
                AND s.description LIKE 'pgkick-lock %' \
             UNION ALL \
             SELECT 'role', r.rolname::text, s.description \
               FROM pg_catalog.pg_shdescription s \
               JOIN pg_catalog.pg_roles r ON r.oid = s.objoid \
              WHERE s.classoid = 'pg_catalog.pg_authid'::pg_catalog.regclass \
                AND s.description LIKE 'pgkick-lock %' \
             ORDER BY 1, 2",
            &[],
        )
        .context("could not read the lock records")?;
    Ok(rows
        .iter()
        .map(|row| {
            let kind = if row.get::<_, &str>(0) == "role" {
                "role"
            } else {
                "database"
            };
            let comment: &str = row.get(2);
            let json = comment
                .strip_prefix(PREFIX)
                .and_then(|j| serde_json::from_str::<serde_json::Value>(j).ok());
            let field = |k: &str| {
                json.as_ref()
                    .and_then(|j| j.get(k))
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
            };
            Record {
                kind,
                name: row.get(1),
                method: field("method").or_else(|| Some("(unreadable record)".into())),
                locked_by: field("locked_by"),
                locked_at: field("locked_at").and_then(|t| t.parse().ok()),
                pgkick_version: field("pgkick_version"),
                prior: json.as_ref().and_then(|j| j.get("prior")).cloned(),
            }
        })
        .collect())
}

/// What to do to one object: its change (status and statements) and checks to run after.
struct Plan {
    change: Change,
    /// After the statements: every CONNECT entry must be gone (revoke-connect).
    check_no_connect: bool,
}

/// The shared frame of lock and unlock: one transaction; look up every target, take the
/// advisory locks, read each object, plan, run, commit (or roll back for a dry run).
fn in_one_transaction(
    client: &mut postgres::Client,
    targets: &Targets,
    dry_run: bool,
    lock_timeout: Duration,
    mut plan: impl FnMut(&mut Transaction<'_>, &Me, &Object) -> Result<Plan>,
) -> Result<Vec<Change>> {
    let mut tx = client
        .transaction()
        .context("could not start a transaction")?;
    let timeout_ms = lock_timeout.as_millis().clamp(1, i32::MAX as u128);
    tx.batch_execute(&format!("SET LOCAL lock_timeout = {timeout_ms}"))
        .context("could not set lock_timeout")?;
    let row = tx
        .query_one("SELECT session_user::text, pg_catalog.now()", &[])
        .context("could not read the session user")?;
    let me = Me {
        user: row.get(0),
        now: row.get(1),
    };

    // Every name must exist before anything is touched.
    let mut wanted: Vec<(Kind, String, u32)> = Vec::new();
    for (kind, names) in [(Kind::Database, &targets.dbs), (Kind::Role, &targets.roles)] {
        for name in names {
            if wanted.iter().any(|(k, n, _)| *k == kind && n == name) {
                continue;
            }
            let oid = resolve(&mut tx, kind, name)?.ok_or_else(|| {
                anyhow!("{} does not exist; nothing was changed", Label(kind, name))
            })?;
            wanted.push((kind, name.clone(), oid));
        }
    }

    if !dry_run {
        let mut order: Vec<&(Kind, String, u32)> = wanted.iter().collect();
        order.sort_by_key(|(kind, _, oid)| (*kind, *oid));
        for (kind, name, oid) in order {
            tx.query_typed(
                "SELECT pg_catalog.pg_advisory_xact_lock($1, $2)",
                &[
                    (&kind.advisory_key(), Type::INT4),
                    (&(*oid as i32), Type::INT4),
                ],
            )
            .map_err(|e| sql_error(e, Label(*kind, name), lock_timeout))?;
        }
    }

    let mut plans = Vec::new();
    for (kind, name, oid) in &wanted {
        let object = read(&mut tx, *kind, name, *oid)?;
        plans.push((plan(&mut tx, &me, &object)?, object));
    }
    if dry_run {
        tx.rollback().context("could not roll back")?;
        return Ok(plans
            .into_iter()
            .map(|(p, _)| {
                let mut change = p.change;
                for (done, would) in [("locked", "would_lock"), ("unlocked", "would_unlock")] {
                    if let Some(rest) = change.status.strip_prefix(done) {
                        change.status = format!("{would}{rest}");
                    }
                }
                change
            })
            .collect());
    }
    for (plan, object) in &plans {
        for statement in &plan.change.statements {
            tx.batch_execute(statement)
                .map_err(|e| sql_error(e, object.label(), lock_timeout))?;
        }
        if plan.check_no_connect {
            let left = connect_acl(&mut tx, object.oid)?;
            if !left.is_empty() {
                let holders: Vec<String> = left.iter().map(grantee_sql).collect();
                bail!(
                    "could not revoke CONNECT on {} from {} (only the owner or a superuser \
                     can revoke every grant); nothing was changed",
                    object.label(),
                    holders.join(", ")
                );
            }
        }
    }
    // A SIGINT or SIGTERM that came while waiting for a lock: give up rather than commit.
    crate::interrupt::check().context("nothing was changed")?;
    tx.commit()
        .context("could not commit; nothing was changed")?;
    Ok(plans.into_iter().map(|(p, _)| p.change).collect())
}

/// A postgres error while acting on `what`, as one sentence.
fn sql_error(e: postgres::Error, what: Label<'_>, lock_timeout: Duration) -> anyhow::Error {
    if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) {
        return anyhow!(
            "gave up after {} waiting for a lock on {what} held by another transaction; \
             nothing was changed",
            humantime::format_duration(lock_timeout)
        );
    }
    let msg = match e.as_db_error() {
        Some(db) => match db.hint() {
            Some(hint) => format!("{} ({hint})", db.message()),
            None => db.message().to_string(),
        },
        None => e.to_string(),
    };
    anyhow!("{what}: {msg}; nothing was changed")
}

fn resolve(tx: &mut Transaction<'_>, kind: Kind, name: &str) -> Result<Option<u32>> {
    // Compared as text: a cast to `name` would cut a long argument to 63 bytes and could
    // match another object.
    let sql = match kind {
        Kind::Database => "SELECT oid FROM pg_catalog.pg_database WHERE datname::text = $1",
        Kind::Role => "SELECT oid FROM pg_catalog.pg_roles WHERE rolname::text = $1",
    };
    let rows = tx
        .query_typed(sql, &[(&name, Type::TEXT)])
        .with_context(|| format!("could not look up {}", Label(kind, name)))?;
    Ok(rows.first().map(|r| r.get(0)))
}

fn read(tx: &mut Transaction<'_>, kind: Kind, name: &str, oid: u32) -> Result<Object> {
    let gone = || {
        anyhow!(
            "{} was dropped meanwhile; nothing was changed",
            Label(kind, name)
        )
    };
    let context = || format!("could not read {}", Label(kind, name));
    match kind {
        Kind::Database => {
            let row = tx
                .query_typed(
                    "SELECT d.datname::text, d.datallowconn, d.datconnlimit, \
                            pg_catalog.shobj_description(d.oid, 'pg_database'), \
                            pg_catalog.pg_get_userbyid(d.datdba)::text, \
                            d.datname = pg_catalog.current_database() \
                       FROM pg_catalog.pg_database d WHERE d.oid = $1",
                    &[(&oid, Type::OID)],
                )
                .with_context(context)?
                .into_iter()
                .next()
                .ok_or_else(gone)?;
            let connect_acl = connect_acl(tx, oid)?;
            Ok(Object {
                kind,
                name: row.get(0),
                oid,
                comment: row.get(3),
                facts: Facts::Database {
                    owner: row.get(4),
                    allow_connections: row.get(1),
                    connection_limit: row.get(2),
                    is_current: row.get(5),
                    connect_acl,
                },
            })
        }
        Kind::Role => {
            let row = tx
                .query_typed(
                    "SELECT r.rolname::text, r.rolcanlogin, \
                            pg_catalog.shobj_description(r.oid, 'pg_authid'), \
                            r.rolname IN (current_user, session_user) \
                       FROM pg_catalog.pg_roles r WHERE r.oid = $1",
                    &[(&oid, Type::OID)],
                )
                .with_context(context)?
                .into_iter()
                .next()
                .ok_or_else(gone)?;
            Ok(Object {
                kind,
                name: row.get(0),
                oid,
                comment: row.get(2),
                facts: Facts::Role {
                    can_login: row.get(1),
                    is_self: row.get(3),
                },
            })
        }
    }
}

/// The CONNECT entries of a database's ACL (the default ACL when datacl is NULL).
fn connect_acl(tx: &mut Transaction<'_>, oid: u32) -> Result<Vec<AclEntry>> {
    let rows = tx
        .query_typed(
            "SELECT CASE WHEN a.grantee = 0 THEN NULL \
                         ELSE pg_catalog.pg_get_userbyid(a.grantee)::text END, \
                    pg_catalog.pg_get_userbyid(a.grantor)::text, a.is_grantable \
               FROM pg_catalog.pg_database d, \
                    LATERAL pg_catalog.aclexplode( \
                        coalesce(d.datacl, pg_catalog.acldefault('d', d.datdba))) a \
              WHERE d.oid = $1 AND a.privilege_type = 'CONNECT'",
            &[(&oid, Type::OID)],
        )
        .context("could not read the database's privileges")?;
    let mut entries: Vec<AclEntry> = rows
        .iter()
        .map(|r| AclEntry {
            grantee: r.get(0),
            grantor: r.get(1),
            grant_option: r.get(2),
        })
        .collect();
    entries.sort();
    Ok(entries)
}

fn grantee_sql(entry: &AclEntry) -> String {
    entry
        .grantee
        .as_deref()
        .map_or_else(|| "PUBLIC".to_string(), escape_identifier)
}

fn method_name(method: LockMethod) -> &'static str {
    match method {
        LockMethod::AllowConnections => "allow-connections",
        LockMethod::ConnectionLimit => "connection-limit",
        LockMethod::RevokeConnect => "revoke-connect",
    }
}

fn plan_lock(
    _tx: &mut Transaction<'_>,
    server: &Server,
    me: &Me,
    object: &Object,
    method: LockMethod,
) -> Result<Plan> {
    let wanted_method = match object.kind {
        Kind::Database => method_name(method),
        Kind::Role => NOLOGIN,
    };
    let mut change = Change {
        kind: object.kind.as_str(),
        name: object.name.clone(),
        status: String::new(),
        method: Some(wanted_method.to_string()),
        statements: Vec::new(),
        prior: None,
    };
    if let Some(saved) = object.saved()? {
        change.prior = Some(serde_json::to_value(&saved.prior)?);
        change.status = if saved.method == wanted_method {
            "already_locked".into()
        } else {
            format!("already_locked ({})", saved.method)
        };
        change.method = Some(saved.method);
        return Ok(Plan {
            change,
            check_no_connect: false,
        });
    }
    let q = object.quoted();
    let mut check_no_connect = false;
    let prior = match &object.facts {
        Facts::Database {
            owner,
            allow_connections,
            connection_limit,
            is_current,
            connect_acl,
        } => {
            match method {
                LockMethod::AllowConnections if *allow_connections => {
                    if *is_current {
                        bail!(
                            "cannot lock {} with allow-connections while pgkick is connected \
                             to it: connect to another database with -d (e.g. -d postgres); \
                             nothing was changed",
                            object.label()
                        );
                    }
                    if server.has_allow_connections() {
                        change
                            .statements
                            .push(format!("ALTER DATABASE {q} ALLOW_CONNECTIONS false;"));
                    } else if server.is_superuser {
                        change.statements.push(format!(
                            "UPDATE pg_catalog.pg_database SET datallowconn = false \
                             WHERE oid = {};",
                            object.oid
                        ));
                    } else {
                        bail!(
                            "cannot lock {} with allow-connections: PostgreSQL {} has no \
                             ALTER DATABASE ... ALLOW_CONNECTIONS and only a superuser can \
                             update pg_database; use --method connection-limit or \
                             revoke-connect; nothing was changed",
                            object.label(),
                            server.version_text()
                        );
                    }
                }
                LockMethod::ConnectionLimit if *connection_limit != 0 => {
                    change
                        .statements
                        .push(format!("ALTER DATABASE {q} CONNECTION LIMIT 0;"));
                }
                LockMethod::RevokeConnect if !connect_acl.is_empty() => {
                    let mut grantees: Vec<String> = Vec::new();
                    for entry in connect_acl {
                        let g = grantee_sql(entry);
                        if !grantees.contains(&g) {
                            grantees.push(g);
                        }
                    }
                    change.statements.push(format!(
                        "REVOKE CONNECT ON DATABASE {q} FROM {} CASCADE;",
                        grantees.join(", ")
                    ));
                    check_no_connect = true;
                }
                _ => {}
            }
            Prior {
                comment: object.comment.clone(),
                owner: Some(owner.clone()),
                datallowconn: Some(*allow_connections),
                datconnlimit: Some(*connection_limit),
                acl: Some(connect_acl.clone()),
                rolcanlogin: None,
            }
        }
        Facts::Role { can_login, is_self } => {
            if *is_self {
                bail!(
                    "refusing to lock {}: pgkick is connected as it; connect as another role \
                     with -U; nothing was changed",
                    object.label()
                );
            }
            if *can_login {
                change.statements.push(format!("ALTER ROLE {q} NOLOGIN;"));
            }
            Prior {
                comment: object.comment.clone(),
                rolcanlogin: Some(*can_login),
                ..Prior::default()
            }
        }
    };
    let saved = Saved {
        method: wanted_method.to_string(),
        locked_by: me.user.clone(),
        locked_at: me.now,
        pgkick_version: env!("CARGO_PKG_VERSION").to_string(),
        prior,
    };
    change.prior = Some(serde_json::to_value(&saved.prior)?);
    let text = format!("{PREFIX}{}", serde_json::to_string(&saved)?);
    change
        .statements
        .push(object.comment_statement(Some(&text)));
    change.status = "locked".into();
    Ok(Plan {
        change,
        check_no_connect,
    })
}

fn plan_unlock(tx: &mut Transaction<'_>, server: &Server, object: &Object) -> Result<Plan> {
    let mut change = Change {
        kind: object.kind.as_str(),
        name: object.name.clone(),
        status: "not_locked".into(),
        method: None,
        statements: Vec::new(),
        prior: None,
    };
    let Some(saved) = object.saved()? else {
        return Ok(Plan {
            change,
            check_no_connect: false,
        });
    };
    change.prior = Some(serde_json::to_value(&saved.prior)?);
    change.method = Some(saved.method.clone());
    let q = object.quoted();
    let prior = &saved.prior;
    let mut notes: Vec<String> = Vec::new();
    match (&object.facts, saved.method.as_str()) {
        (
            Facts::Database {
                allow_connections, ..
            },
            "allow-connections",
        ) => {
            if prior.datallowconn == Some(true) && !allow_connections {
                if server.has_allow_connections() {
                    change
                        .statements
                        .push(format!("ALTER DATABASE {q} ALLOW_CONNECTIONS true;"));
                } else {
                    change.statements.push(format!(
                        "UPDATE pg_catalog.pg_database SET datallowconn = true WHERE oid = {};",
                        object.oid
                    ));
                }
            }
        }
        (
            Facts::Database {
                connection_limit, ..
            },
            "connection-limit",
        ) => {
            if let Some(limit) = prior.datconnlimit {
                if *connection_limit == 0 && limit != 0 {
                    change
                        .statements
                        .push(format!("ALTER DATABASE {q} CONNECTION LIMIT {limit};"));
                } else if *connection_limit != 0 {
                    notes.push(format!(
                        "connection limit left at {connection_limit}, set after the lock"
                    ));
                }
            }
        }
        (
            Facts::Database {
                owner, connect_acl, ..
            },
            "revoke-connect",
        ) => {
            let saved_acl = prior.acl.clone().unwrap_or_default();
            let mut missing = Vec::new();
            for entry in grant_order(&saved_acl, owner) {
                if connect_acl.contains(entry) {
                    continue;
                }
                let mut dropped = None;
                for role in entry.grantee.iter().chain([&entry.grantor]) {
                    if resolve(tx, Kind::Role, role)?.is_none() {
                        dropped = Some(role.clone());
                    }
                }
                if let Some(role) = dropped {
                    missing.push(role);
                    continue;
                }
                let grant = format!(
                    "GRANT CONNECT ON DATABASE {q} TO {}{};",
                    grantee_sql(entry),
                    if entry.grant_option {
                        " WITH GRANT OPTION"
                    } else {
                        ""
                    }
                );
                if &entry.grantor == owner {
                    change.statements.push(grant);
                } else {
                    change
                        .statements
                        .push(format!("SET ROLE {};", escape_identifier(&entry.grantor)));
                    change.statements.push(grant);
                    change.statements.push("RESET ROLE;".into());
                }
            }
            missing.sort();
            missing.dedup();
            for role in missing {
                notes.push(format!(
                    "CONNECT not given back for role \"{role}\", dropped since the lock"
                ));
            }
        }
        (Facts::Role { can_login, .. }, NOLOGIN) => {
            if prior.rolcanlogin == Some(true) && !can_login {
                change.statements.push(format!("ALTER ROLE {q} LOGIN;"));
            }
        }
        (_, other) => bail!(
            "{} carries a pgkick lock record with method \"{other}\", which this pgkick \
             cannot undo; nothing was changed",
            object.label()
        ),
    }
    change
        .statements
        .push(object.comment_statement(prior.comment.as_deref()));
    change.status = "unlocked".into();
    if !notes.is_empty() {
        change.status = format!("unlocked ({})", notes.join("; "));
    }
    Ok(Plan {
        change,
        check_no_connect: false,
    })
}

/// The saved entries in an order where every grantor holds its grant option before it grants:
/// the owner's grants first, then those of roles whose grant option is back.
fn grant_order<'a>(entries: &'a [AclEntry], owner: &str) -> Vec<&'a AclEntry> {
    let mut can_grant: BTreeSet<&str> = BTreeSet::from([owner]);
    let mut left: Vec<&AclEntry> = entries.iter().collect();
    let mut out = Vec::new();
    while !left.is_empty() {
        let (ready, rest): (Vec<&AclEntry>, Vec<&AclEntry>) = left
            .into_iter()
            .partition(|e| can_grant.contains(e.grantor.as_str()));
        if ready.is_empty() {
            // A chain pgkick cannot order (e.g. a grantor's own entry is missing): try anyway;
            // the server's error then names the problem.
            out.extend(rest);
            break;
        }
        for entry in ready {
            if entry.grant_option {
                if let Some(grantee) = &entry.grantee {
                    can_grant.insert(grantee);
                }
            }
            out.push(entry);
        }
        left = rest;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(grantee: Option<&str>, grantor: &str, grant_option: bool) -> AclEntry {
        AclEntry {
            grantee: grantee.map(str::to_string),
            grantor: grantor.to_string(),
            grant_option,
        }
    }

    #[test]
    fn grants_come_after_their_grantor_has_the_grant_option() {
        let entries = vec![
            entry(Some("c"), "b", false),
            entry(Some("b"), "a", true),
            entry(Some("a"), "owner", true),
            entry(None, "owner", false),
        ];
        let order: Vec<_> = grant_order(&entries, "owner")
            .into_iter()
            .map(|e| e.grantee.clone())
            .collect();
        assert_eq!(
            order,
            vec![
                Some("a".to_string()),
                None,
                Some("b".to_string()),
                Some("c".to_string())
            ]
        );
    }

    #[test]
    fn the_record_round_trips_through_json() {
        let saved = Saved {
            method: "revoke-connect".into(),
            locked_by: "alice".into(),
            locked_at: "2026-01-02T03:04:05Z".parse().unwrap(),
            pgkick_version: "0.1.0".into(),
            prior: Prior {
                comment: Some("it's \\ \"x\"".into()),
                owner: Some("o".into()),
                datallowconn: Some(true),
                datconnlimit: Some(-1),
                acl: Some(vec![entry(None, "o", false)]),
                rolcanlogin: None,
            },
        };
        let json = serde_json::to_string(&saved).unwrap();
        assert!(json.contains(r#""comment":"it's \\ \"x\"""#), "{json}");
        assert!(!json.contains("rolcanlogin"));
        let back: Saved = serde_json::from_str(&json).unwrap();
        assert_eq!(back.prior.comment, saved.prior.comment);
        assert_eq!(back.prior.acl, saved.prior.acl);
    }

    #[test]
    fn comment_statements_quote_names_and_text() {
        let object = Object {
            kind: Kind::Database,
            name: "a\"b'c\\".into(),
            oid: 1,
            comment: None,
            facts: Facts::Role {
                can_login: true,
                is_self: false,
            },
        };
        assert_eq!(
            object.comment_statement(Some("x'y\\z")),
            r#"COMMENT ON DATABASE "a""b'c\" IS E'x''y\\z';"#
        );
        assert_eq!(
            object.comment_statement(None),
            r#"COMMENT ON DATABASE "a""b'c\" IS NULL;"#
        );
    }
}
