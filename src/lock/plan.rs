//! The planner: from an object's catalog state (comment and its proof included), the method
//! and the server, the statements lock or unlock runs and the status it reports. No I/O: the
//! transaction frame reads the catalog and runs what comes out, so every method × prior state
//! × server version × proof is a unit test here and the live tests only confirm that the
//! server agrees.
//!
//! # A record is a claim
//! Whoever may `COMMENT ON` an object can write a record on it: a database's owner (and the
//! members of the owner role), a role's CREATEROLE administrator. unlock is often run by a
//! superuser. So unlock does what a record asks only within what a writer of that comment
//! could have done itself, unless the record is proven (`proof.rs`: a setting only a
//! superuser can write names this very comment):
//! - a database: `ALLOW_CONNECTIONS true` (the owner may; before 9.5 only the superuser-only
//!   catalog update could, so that needs a proof), `CONNECTION LIMIT n`, the owner's own
//!   CONNECT grants, and a grant by another role G only when the owner may `SET ROLE G` by
//!   membership and G is not a superuser;
//! - a role: `LOGIN` only when the role is not a superuser and, before PostgreSQL 16, has no
//!   REPLICATION (16 lets a CREATEROLE role with ADMIN OPTION change it).
//!
//! What is not given back is a note on the change with the statements that would give it
//! back, and the run exits 3. Whatever the proof, the previous comment is never a pgkick
//! record (lock keeps the first record, so a genuine one never saves another).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Result};
use chrono::{DateTime, Utc};
use postgres_protocol::escape::{escape_identifier, escape_literal};

use super::catalog::{AclEntry, Facts, Object, RoleFacts};
use super::proof;
use super::record::{PoolerEntry, Prior, Saved, ANY_VERSION_PREFIX};
use super::LockMethod;
use super::{Change, Kind, Note, Status};
use crate::server::Server;

/// The method name recorded for roles.
const NOLOGIN: &str = "nologin";

/// Who runs pgkick and when, for the record.
pub struct Me {
    pub user: String,
    pub now: DateTime<Utc>,
    /// The transaction's id when pgkick's role is a superuser, who can prove what it writes
    /// (`proof.rs`); None otherwise.
    pub proof_xid: Option<i64>,
}

/// What to do to one object: its change (status and statements) and checks to run after.
/// (The run's own plan, parsed from the command line, is `crate::plan::Plan`.)
#[derive(Debug)]
pub struct ObjectPlan {
    pub change: Change,
    /// The statements in order, in groups: `change.statements` is their concatenation.
    pub steps: Vec<Step>,
    /// After the statements: every CONNECT entry must be gone (revoke-connect).
    pub check_no_connect: bool,
}

/// Statements that succeed or fail together.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub statements: Vec<String>,
    /// unlock of revoke-connect: the entry these statements give back. The frame runs them in
    /// a savepoint and checks the ACL holds the entry afterwards: a GRANT that fails or only
    /// warns (the grantor lacks the grant option) is then a note, not a silent success.
    pub gives_back: Option<AclEntry>,
}

impl ObjectPlan {
    fn new(change: Change) -> ObjectPlan {
        ObjectPlan {
            change,
            steps: Vec::new(),
            check_no_connect: false,
        }
    }

    /// Appends a step of `statements` (and to the change's list).
    fn push(&mut self, statements: Vec<String>, gives_back: Option<AclEntry>) {
        self.change.statements.extend(statements.iter().cloned());
        self.steps.push(Step {
            statements,
            gives_back,
        });
    }

    fn push_one(&mut self, statement: String) {
        self.push(vec![statement], None);
    }
}

/// The name a database lock method is recorded under.
pub fn method_name(method: LockMethod) -> &'static str {
    match method {
        LockMethod::AllowConnections => "allow-connections",
        LockMethod::ConnectionLimit => "connection-limit",
        LockMethod::RevokeConnect => "revoke-connect",
    }
}

fn quoted(object: &Object) -> String {
    escape_identifier(&object.name)
}

/// `COMMENT ON <kind> <name> IS <text or NULL>;`
fn comment_statement(object: &Object, text: Option<&str>) -> String {
    let value = text.map_or_else(|| "NULL".to_string(), escape_literal);
    format!(
        "COMMENT ON {} {} IS {};",
        object.kind.keyword(),
        quoted(object),
        value.trim_start()
    )
}

fn saved(object: &Object) -> Result<Option<Saved>> {
    Saved::decode(object.comment.as_deref(), object.label())
}

/// [`lock_recording`] with no poolers.
#[cfg(test)]
pub fn lock(object: &Object, method: LockMethod, server: &Server, me: &Me) -> Result<ObjectPlan> {
    lock_recording(object, method, server, me, &[])
}

fn empty_change(object: &Object, status: Status) -> Change {
    Change {
        kind: object.kind.as_str(),
        name: object.name.clone(),
        status,
        method: None,
        statements: Vec::new(),
        recorded_poolers: Vec::new(),
        prior: None,
        proven: None,
    }
}

/// Writes `saved` as the object's comment and, when pgkick can (`me.proof_xid`), the proof
/// that names it.
fn write_record(plan: &mut ObjectPlan, object: &Object, saved: &Saved, me: &Me) {
    let text = saved.encode();
    plan.push_one(comment_statement(object, Some(&text)));
    if let Some(xid) = me.proof_xid {
        plan.push_one(proof::set_statement(object, &proof::value(xid, &text)));
    }
    plan.change.proven = Some(me.proof_xid.is_some());
}

/// Locks `object` with `method` (roles: always NOLOGIN), unless it already carries a record,
/// recording `poolers` (what `--pgbouncer` did for this database) in the record; a record
/// there already keeps its saved state and gains the poolers it did not name.
///
/// An object whose record says locked but which is open again:
/// - proven record (a superuser's pgkick wrote it, `proof.rs`): the lock was undone by hand;
///   it is closed again with the recorded method (`relocked`), keeping the first saved state,
///   which that superuser's run read from the catalog;
/// - unproven record: anybody who may comment on the object could have written it on an open
///   object, with a saved state of their choosing (a "prior" NOLOGIN that unlock would then
///   leave in place). Its saved state is not trusted: the object is locked as a fresh lock
///   would lock it (`method`, the state saved as the catalog shows it now, a proof when this
///   run can write one), reported `relocked`. Only the record's previous comment is kept, as
///   its writer could have set that comment directly, and never when it is a pgkick text.
///   An unproven record with a method this pgkick does not know is judged by `method`.
pub fn lock_recording(
    object: &Object,
    method: LockMethod,
    server: &Server,
    me: &Me,
    poolers: &[PoolerEntry],
) -> Result<ObjectPlan> {
    let wanted = match object.kind {
        Kind::Database => Recorded::Database(method),
        Kind::Role => Recorded::Nologin,
    };
    let Some(mut saved) = saved(object)? else {
        return fresh_lock(object, wanted, server, me, poolers);
    };
    let recorded = recorded_method(object.kind, &saved.method);
    if !object.proof.matches {
        let open = !lock_statements(object, recorded.unwrap_or(wanted), server)?
            .0
            .is_empty();
        if open {
            // The object as if it carried no record: its previous comment instead.
            let unrecorded = Object {
                comment: saved
                    .prior
                    .comment
                    .filter(|c| !c.starts_with(ANY_VERSION_PREFIX)),
                ..object.clone()
            };
            let mut plan = fresh_lock(&unrecorded, wanted, server, me, poolers)?;
            plan.change.status = Status::Relocked;
            return Ok(plan);
        }
    }
    let mut plan = ObjectPlan::new(empty_change(object, Status::Locked));
    plan.change.prior = Some(serde_json::to_value(&saved.prior)?);
    plan.change.method = Some(saved.method.clone());
    plan.change.proven = Some(object.proof.matches);
    let relock = match recorded {
        Some(recorded) => lock_statements(object, recorded, server)?,
        None => (Vec::new(), false),
    };
    plan.change.status = if relock.0.is_empty() {
        Status::AlreadyLocked {
            other_method: (saved.method != wanted.name()).then(|| saved.method.clone()),
        }
    } else {
        Status::Relocked
    };
    for statement in relock.0 {
        plan.push_one(statement);
    }
    plan.check_no_connect = relock.1;
    let new: Vec<&PoolerEntry> = poolers
        .iter()
        .filter(|p| !saved.poolers.iter().any(|s| s.pooler == p.pooler))
        .collect();
    if !new.is_empty() {
        saved.poolers.extend(new.into_iter().cloned());
        // A proven record stays proven only if pgkick can prove the new text; an
        // unproven one never becomes proven by being rewritten.
        let me = Me {
            proof_xid: me.proof_xid.filter(|_| object.proof.matches),
            user: me.user.clone(),
            now: me.now,
        };
        write_record(&mut plan, object, &saved, &me);
    }
    plan.change.recorded_poolers = saved.poolers;
    Ok(plan)
}

/// Locks `object` with `method` and writes a new record of the state the catalog shows now,
/// its comment included (what unlock puts back).
fn fresh_lock(
    object: &Object,
    method: Recorded,
    server: &Server,
    me: &Me,
    poolers: &[PoolerEntry],
) -> Result<ObjectPlan> {
    let mut plan = ObjectPlan::new(empty_change(object, Status::Locked));
    plan.change.method = Some(method.name().to_string());
    plan.change.recorded_poolers = poolers.to_vec();
    let (statements, check_no_connect) = lock_statements(object, method, server)?;
    for statement in statements {
        plan.push_one(statement);
    }
    plan.check_no_connect = check_no_connect;
    let prior = match &object.facts {
        Facts::Database {
            owner,
            allow_connections,
            connection_limit,
            connect_acl,
            ..
        } => Prior {
            comment: object.comment.clone(),
            owner: Some(owner.clone()),
            datallowconn: Some(*allow_connections),
            datconnlimit: Some(*connection_limit),
            acl: Some(connect_acl.clone()),
            rolcanlogin: None,
        },
        Facts::Role { can_login, .. } => Prior {
            comment: object.comment.clone(),
            rolcanlogin: Some(*can_login),
            ..Prior::default()
        },
    };
    let saved = Saved {
        method: method.name().to_string(),
        locked_by: me.user.clone(),
        locked_at: me.now,
        pgkick_version: env!("CARGO_PKG_VERSION").to_string(),
        prior,
        poolers: poolers.to_vec(),
    };
    plan.change.prior = Some(serde_json::to_value(&saved.prior)?);
    write_record(&mut plan, object, &saved, me);
    Ok(plan)
}

/// A method as a record names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recorded {
    Database(LockMethod),
    Nologin,
}

impl Recorded {
    /// The name the record gives it.
    fn name(self) -> &'static str {
        match self {
            Recorded::Database(method) => method_name(method),
            Recorded::Nologin => NOLOGIN,
        }
    }
}

/// The recorded method, when this pgkick knows it for this kind of object.
fn recorded_method(kind: Kind, name: &str) -> Option<Recorded> {
    match (kind, name) {
        (Kind::Role, NOLOGIN) => Some(Recorded::Nologin),
        (Kind::Database, name) => [
            LockMethod::AllowConnections,
            LockMethod::ConnectionLimit,
            LockMethod::RevokeConnect,
        ]
        .into_iter()
        .find(|m| method_name(*m) == name)
        .map(Recorded::Database),
        _ => None,
    }
}

/// The statements that close `object` with `method` where it is open, and whether the CONNECT
/// entries must be checked gone afterwards; none when it is closed already.
fn lock_statements(
    object: &Object,
    method: Recorded,
    server: &Server,
) -> Result<(Vec<String>, bool)> {
    let q = quoted(object);
    let mut statements = Vec::new();
    let mut check_no_connect = false;
    match (&object.facts, method) {
        (
            Facts::Database {
                allow_connections,
                connection_limit,
                is_current,
                connect_acl,
                ..
            },
            Recorded::Database(method),
        ) => match method {
            LockMethod::AllowConnections if *allow_connections => {
                if *is_current {
                    bail!(
                        "cannot lock {} with allow-connections while pgkick is connected to \
                         it: connect to another database with -d (e.g. -d postgres); nothing \
                         was changed",
                        object.label()
                    );
                }
                if server.has_allow_connections() {
                    statements.push(format!("ALTER DATABASE {q} ALLOW_CONNECTIONS false;"));
                } else if server.is_superuser {
                    statements.push(format!(
                        "UPDATE pg_catalog.pg_database SET datallowconn = false WHERE oid = {};",
                        object.oid
                    ));
                } else {
                    bail!(
                        "cannot lock {} with allow-connections: PostgreSQL {} has no ALTER \
                         DATABASE ... ALLOW_CONNECTIONS and only a superuser can update \
                         pg_database; use --method connection-limit or revoke-connect; \
                         nothing was changed",
                        object.label(),
                        server.version_text()
                    );
                }
            }
            LockMethod::ConnectionLimit if *connection_limit != 0 => {
                statements.push(format!("ALTER DATABASE {q} CONNECTION LIMIT 0;"));
            }
            LockMethod::RevokeConnect if !connect_acl.is_empty() => {
                let mut grantees: Vec<String> = Vec::new();
                for entry in connect_acl {
                    let g = entry.grantee_sql();
                    if !grantees.contains(&g) {
                        grantees.push(g);
                    }
                }
                statements.push(format!(
                    "REVOKE CONNECT ON DATABASE {q} FROM {} CASCADE;",
                    grantees.join(", ")
                ));
                check_no_connect = true;
            }
            _ => {}
        },
        (
            Facts::Role {
                can_login, is_self, ..
            },
            Recorded::Nologin,
        ) => {
            if *is_self {
                bail!(
                    "refusing to lock {}: pgkick is connected as it; connect as another role \
                     with -U; nothing was changed",
                    object.label()
                );
            }
            if *can_login {
                statements.push(format!("ALTER ROLE {q} NOLOGIN;"));
            }
        }
        _ => {}
    }
    Ok((statements, check_no_connect))
}

/// The saved CONNECT entries unlock of `object` would grant again (those missing from the ACL
/// now), if it is a database locked with revoke-connect.
fn entries_to_give_back<'a>(object: &Object, saved: &'a Saved) -> Vec<&'a AclEntry> {
    match (&object.facts, saved.method.as_str()) {
        (
            Facts::Database {
                owner, connect_acl, ..
            },
            "revoke-connect",
        ) => grant_order(saved.prior.acl.as_deref().unwrap_or_default(), owner)
            .into_iter()
            .filter(|entry| !connect_acl.contains(entry))
            .collect(),
        _ => Vec::new(),
    }
}

/// The roles whose facts [`unlock`] needs: the grantees and grantors of the entries it would
/// grant again.
pub fn roles_unlock_would_grant(object: &Object) -> Result<Vec<String>> {
    let Some(saved) = saved(object)? else {
        return Ok(Vec::new());
    };
    let roles: BTreeSet<&String> = entries_to_give_back(object, &saved)
        .into_iter()
        .flat_map(|e| e.grantee.iter().chain([&e.grantor]))
        .collect();
    Ok(roles.into_iter().cloned().collect())
}

/// Gives back what the record on `object` says lock changed, where it is still as lock left
/// it, and within what the record's writer could do unless it is proven (see the module
/// documentation). `roles`: the facts of the [`roles_unlock_would_grant`] that still exist.
pub fn unlock(
    object: &Object,
    server: &Server,
    roles: &BTreeMap<String, RoleFacts>,
    me: &Me,
) -> Result<ObjectPlan> {
    let mut plan = ObjectPlan::new(empty_change(object, Status::NotLocked));
    let Some(saved) = saved(object)? else {
        return Ok(plan);
    };
    let proven = object.proof.matches;
    plan.change.proven = Some(proven);
    plan.change.prior = Some(serde_json::to_value(&saved.prior)?);
    plan.change.method = Some(saved.method.clone());
    plan.change.recorded_poolers = saved.poolers.clone();
    let q = quoted(object);
    let prior = &saved.prior;
    let mut notes: Vec<Note> = Vec::new();
    let unproven = |what: &str, writer: &str| {
        format!(
            "the record is not proven, and {writer} could have written it but could not {what} \
             itself; check that the record tells the truth, then run the statement by hand"
        )
    };
    match (&object.facts, saved.method.as_str()) {
        (
            Facts::Database {
                allow_connections, ..
            },
            "allow-connections",
        ) => {
            if prior.datallowconn == Some(true) && !allow_connections {
                if server.has_allow_connections() {
                    plan.push_one(format!("ALTER DATABASE {q} ALLOW_CONNECTIONS true;"));
                } else {
                    let update = format!(
                        "UPDATE pg_catalog.pg_database SET datallowconn = true WHERE oid = {};",
                        object.oid
                    );
                    if proven {
                        plan.push_one(update);
                    } else {
                        notes.push(Note::NotRestored {
                            what: "ALLOW_CONNECTIONS".into(),
                            statements: vec![update],
                            why: unproven("update pg_database", "the database's owner"),
                        });
                    }
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
                    plan.push_one(format!("ALTER DATABASE {q} CONNECTION LIMIT {limit};"));
                } else if *connection_limit != 0 {
                    notes.push(Note::LimitSetAfterLock(*connection_limit));
                }
            }
        }
        (Facts::Database { owner, .. }, "revoke-connect") => {
            let mut dropped = BTreeSet::new();
            for entry in entries_to_give_back(object, &saved) {
                // When both are gone, the grantor is the one named.
                let gone = [&entry.grantor]
                    .into_iter()
                    .chain(entry.grantee.iter())
                    .find(|role| !roles.contains_key(*role));
                if let Some(role) = gone {
                    dropped.insert(role.clone());
                    continue;
                }
                let grant = format!(
                    "GRANT CONNECT ON DATABASE {q} TO {}{};",
                    entry.grantee_sql(),
                    if entry.grant_option {
                        " WITH GRANT OPTION"
                    } else {
                        ""
                    }
                );
                if &entry.grantor == owner {
                    plan.push(vec![grant], Some(entry.clone()));
                    continue;
                }
                let statements = vec![
                    format!("SET ROLE {};", escape_identifier(&entry.grantor)),
                    grant,
                    "RESET ROLE;".into(),
                ];
                let grantor = roles[&entry.grantor];
                let refused = if grantor.is_superuser {
                    // A superuser's grant is recorded as the owner's: no genuine record names
                    // a superuser grantor other than the owner.
                    Some(format!(
                        "the record names superuser \"{}\" as the grantor, which no grant by \
                         a superuser records; pgkick does not take on a superuser's role for \
                         a record",
                        entry.grantor
                    ))
                } else if !proven && !grantor.owner_can_become {
                    Some(unproven(
                        &format!(
                            "grant as \"{}\" (the owner is not a member of it)",
                            entry.grantor
                        ),
                        "the database's owner",
                    ))
                } else {
                    None
                };
                match refused {
                    Some(why) => notes.push(Note::NotRestored {
                        what: format!(
                            "CONNECT for {} granted by \"{}\"",
                            entry.grantee_sql(),
                            entry.grantor
                        ),
                        statements,
                        why,
                    }),
                    None => plan.push(statements, Some(entry.clone())),
                }
            }
            notes.extend(dropped.into_iter().map(Note::RoleDropped));
        }
        (
            Facts::Role {
                can_login,
                is_superuser,
                is_replication,
                ..
            },
            NOLOGIN,
        ) => {
            if prior.rolcanlogin == Some(true) && !can_login {
                let login = format!("ALTER ROLE {q} LOGIN;");
                let attribute = if *is_superuser {
                    Some("SUPERUSER")
                } else if *is_replication && !server.has_role_admin_rules() {
                    Some("REPLICATION")
                } else {
                    None
                };
                match attribute {
                    Some(attribute) if !proven => notes.push(Note::NotRestored {
                        what: "LOGIN".into(),
                        statements: vec![login],
                        why: unproven(
                            &format!("give LOGIN back to a role with {attribute}"),
                            "a role with CREATEROLE",
                        ),
                    }),
                    _ => plan.push_one(login),
                }
            }
        }
        (_, other) => bail!(
            "{} carries a pgkick lock record with method \"{other}\", which this pgkick \
             cannot undo; nothing was changed",
            object.label()
        ),
    }
    // The comment before the lock, unless it is itself a record: lock keeps the first
    // record, so a genuine one never saves another as the previous comment.
    let previous = match prior.comment.as_deref() {
        Some(c) if c.starts_with(ANY_VERSION_PREFIX) => {
            notes.push(Note::NotRestored {
                what: "the previous comment".into(),
                statements: Vec::new(),
                why: "the record saves a pgkick lock record as the previous comment, which \
                      no lock does: the comment is cleared instead"
                    .into(),
            });
            None
        }
        other => other,
    };
    plan.push_one(comment_statement(object, previous));
    if object.proof.present {
        if me.proof_xid.is_some() {
            plan.push_one(proof::reset_statement(object));
        } else {
            notes.push(Note::ProofLeft);
        }
    }
    plan.change.status = Status::Unlocked { notes };
    Ok(plan)
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
            // the check after each grant then reports what was not given back.
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
    //! The "unlock restores exactly" matrix: every method × prior state × server version.
    //! `after_lock` stands in for the server: it applies what lock's statements do, so that
    //! unlock is planned from the state a real lock leaves.

    use super::*;
    use crate::lock::catalog::Proof;

    const V9_4: i32 = 90424;
    const V9_5: i32 = 90500;
    const V15: i32 = 150008;

    fn server(version_num: i32, is_superuser: bool) -> Server {
        Server {
            version_num,
            is_superuser,
        }
    }

    fn me() -> Me {
        Me {
            user: "alice".into(),
            now: "2026-01-02T03:04:05Z".parse().unwrap(),
            proof_xid: None,
        }
    }

    fn entry(grantee: Option<&str>, grantor: &str, grant_option: bool) -> AclEntry {
        AclEntry {
            grantee: grantee.map(str::to_string),
            grantor: grantor.to_string(),
            grant_option,
        }
    }

    /// The default ACL's CONNECT entries: PUBLIC, and the owner with the grant option.
    fn default_acl() -> Vec<AclEntry> {
        let mut acl = vec![
            entry(None, "owner", false),
            entry(Some("owner"), "owner", true),
        ];
        acl.sort();
        acl
    }

    /// A database "app" owned by "owner", open to everyone, no limit, default ACL.
    fn db() -> Object {
        Object {
            kind: Kind::Database,
            name: "app".into(),
            oid: 16384,
            comment: None,
            proof: Proof::default(),
            facts: Facts::Database {
                owner: "owner".into(),
                allow_connections: true,
                connection_limit: -1,
                is_current: false,
                connect_acl: default_acl(),
            },
        }
    }

    fn with_db(
        mut object: Object,
        change: impl FnOnce(&mut bool, &mut i32, &mut bool, &mut Vec<AclEntry>),
    ) -> Object {
        let Facts::Database {
            allow_connections,
            connection_limit,
            is_current,
            connect_acl,
            ..
        } = &mut object.facts
        else {
            panic!("not a database");
        };
        change(allow_connections, connection_limit, is_current, connect_acl);
        connect_acl.sort();
        object
    }

    fn role(can_login: bool) -> Object {
        Object {
            kind: Kind::Role,
            name: "bob".into(),
            oid: 16500,
            comment: None,
            proof: Proof::default(),
            facts: Facts::Role {
                can_login,
                is_self: false,
                is_superuser: false,
                is_replication: false,
            },
        }
    }

    /// Who runs pgkick on `server`: a superuser proves what it writes.
    fn me_on(server: &Server) -> Me {
        Me {
            proof_xid: server.is_superuser.then_some(42),
            ..me()
        }
    }

    fn lock_plan(object: &Object, method: LockMethod, server: &Server) -> ObjectPlan {
        lock(object, method, server, &me_on(server)).unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// The statements without the record's proof (which only a superuser writes).
    fn unproven(statements: &[String]) -> Vec<&str> {
        statements
            .iter()
            .map(String::as_str)
            .filter(|s| !s.contains(" pgkick.lock_proof"))
            .collect()
    }

    /// The statements before the final COMMENT.
    fn ddl(plan: &ObjectPlan) -> Vec<&str> {
        let statements = unproven(&plan.change.statements);
        assert!(
            statements
                .last()
                .is_some_and(|s| s.starts_with("COMMENT ON ")),
            "{statements:?}"
        );
        statements[..statements.len() - 1].to_vec()
    }

    /// The object as the server leaves it after a lock of `object` with `method`.
    fn after_lock(object: &Object, method: LockMethod, server: &Server) -> Object {
        let plan = lock_plan(object, method, server);
        assert_eq!(plan.change.status, Status::Locked);
        apply(object, &plan.change.statements)
    }

    /// An unquoted identifier.
    fn unquote(ident: &str) -> String {
        ident
            .strip_prefix('"')
            .and_then(|i| i.strip_suffix('"'))
            .unwrap_or_else(|| panic!("not a quoted identifier: {ident}"))
            .replace("\"\"", "\"")
    }

    /// The text of an escape_literal: '...' with '' for ', or E'...' with \\ for \ too.
    fn unliteral(literal: &str) -> String {
        let text = match literal.strip_prefix("E'") {
            Some(rest) => rest.replace("\\\\", "\\"),
            None => literal.strip_prefix('\'').unwrap().to_string(),
        };
        text.strip_suffix('\'').unwrap().replace("''", "'")
    }

    /// What the server does with the statements the planner writes: the test's stand-in for
    /// it, so that lock then unlock can be checked to give back exactly what was there.
    fn apply(object: &Object, statements: &[String]) -> Object {
        let mut after = object.clone();
        let mut role: Option<String> = None;
        for statement in statements {
            let sql = statement.strip_suffix(';').expect("statements end with ;");
            if let Some(text) = sql.split_once(" IS ").map(|(_, v)| v) {
                after.comment = (text != "NULL").then(|| unliteral(text));
                // A new comment is a new row: no proof names it yet.
                after.proof.matches = false;
            } else if sql.contains(" SET pgkick.lock_proof = ") {
                // proof.rs checks the value itself; here it names the comment just written.
                after.proof = Proof {
                    matches: after.comment.is_some(),
                    present: true,
                };
            } else if sql.contains(" RESET pgkick.lock_proof") {
                after.proof = Proof::default();
            } else if let Some(r) = sql.strip_prefix("SET ROLE ") {
                role = Some(unquote(r));
            } else if sql == "RESET ROLE" {
                role = None;
            } else if let Facts::Role { can_login, .. } = &mut after.facts {
                *can_login = match sql.rsplit_once(' ').unwrap().1 {
                    "LOGIN" => true,
                    "NOLOGIN" => false,
                    _ => panic!("unknown statement {statement}"),
                };
            } else if let Facts::Database {
                owner,
                allow_connections,
                connection_limit,
                connect_acl,
                ..
            } = &mut after.facts
            {
                let words: Vec<&str> = sql.split(' ').collect();
                if sql.contains("ALLOW_CONNECTIONS ") || sql.contains("datallowconn = ") {
                    *allow_connections = sql.contains(" true");
                } else if let Some(limit) = sql.split_once("CONNECTION LIMIT ") {
                    *connection_limit = limit.1.parse().unwrap();
                } else if let Some(from) = sql.strip_suffix(" CASCADE") {
                    // Every holder is named, so CASCADE leaves nothing granted.
                    assert!(
                        from.starts_with("REVOKE CONNECT ON DATABASE "),
                        "{statement}"
                    );
                    connect_acl.clear();
                } else if words[..4] == ["GRANT", "CONNECT", "ON", "DATABASE"] {
                    let grantee = match words[6] {
                        "PUBLIC" => None,
                        quoted => Some(unquote(quoted)),
                    };
                    let entry = AclEntry {
                        grantee,
                        grantor: role.clone().unwrap_or_else(|| owner.clone()),
                        grant_option: sql.ends_with(" WITH GRANT OPTION"),
                    };
                    if !connect_acl.contains(&entry) {
                        connect_acl.push(entry);
                        connect_acl.sort();
                    }
                } else {
                    panic!("unknown statement {statement}");
                }
            }
        }
        after
    }

    /// The record the plan's COMMENT statement writes.
    fn record_of(plan: &ObjectPlan) -> Saved {
        let statements = unproven(&plan.change.statements);
        let last = statements.last().unwrap();
        let literal = last
            .split_once(" IS ")
            .and_then(|(_, v)| v.strip_suffix(';'))
            .unwrap();
        Saved::decode(Some(&unliteral(literal)), plan_label(plan))
            .unwrap()
            .unwrap()
    }

    fn plan_label(plan: &ObjectPlan) -> super::super::Label<'_> {
        let kind = if plan.change.kind == "role" {
            Kind::Role
        } else {
            Kind::Database
        };
        super::super::Label(kind, &plan.change.name)
    }

    /// Plain roles the owner may become: every grant by one of them can be given back.
    fn plain_roles(names: &[&str]) -> BTreeMap<String, RoleFacts> {
        names
            .iter()
            .map(|r| {
                (
                    r.to_string(),
                    RoleFacts {
                        is_superuser: false,
                        owner_can_become: true,
                    },
                )
            })
            .collect()
    }

    fn unlock_plan(object: &Object, server: &Server, existing: &[&str]) -> ObjectPlan {
        unlock(object, server, &plain_roles(existing), &me_on(server))
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    fn error(result: Result<ObjectPlan>) -> String {
        format!("{:#}", result.expect_err("planned, not refused"))
    }

    const ALL_ROLES: &[&str] = &["owner", "a", "b"];

    // --- lock -------------------------------------------------------------------------------

    #[test]
    fn lock_statements_per_method_prior_state_and_version() {
        let open = db();
        let closed = with_db(db(), |allow, _, _, _| *allow = false);
        let current = with_db(db(), |_, _, current, _| *current = true);
        let closed_current = with_db(db(), |allow, _, current, _| {
            *allow = false;
            *current = true
        });
        let limited = with_db(db(), |_, limit, _, _| *limit = 7);
        let zero = with_db(db(), |_, limit, _, _| *limit = 0);
        let no_acl = with_db(db(), |_, _, _, acl| acl.clear());
        use LockMethod::*;
        let alter = "ALTER DATABASE \"app\" ALLOW_CONNECTIONS false;";
        let update = "UPDATE pg_catalog.pg_database SET datallowconn = false WHERE oid = 16384;";
        let revoke = "REVOKE CONNECT ON DATABASE \"app\" FROM PUBLIC, \"owner\" CASCADE;";
        let cases: Vec<(&Object, LockMethod, Server, Vec<&str>)> = vec![
            (&open, AllowConnections, server(V15, true), vec![alter]),
            (&open, AllowConnections, server(V9_5, false), vec![alter]),
            (&open, AllowConnections, server(V9_4, true), vec![update]),
            (&closed, AllowConnections, server(V15, true), vec![]),
            (&closed, AllowConnections, server(V9_4, false), vec![]),
            (&closed_current, AllowConnections, server(V15, true), vec![]),
            (
                &current,
                ConnectionLimit,
                server(V15, true),
                vec!["ALTER DATABASE \"app\" CONNECTION LIMIT 0;"],
            ),
            (
                &limited,
                ConnectionLimit,
                server(V9_4, false),
                vec!["ALTER DATABASE \"app\" CONNECTION LIMIT 0;"],
            ),
            (&zero, ConnectionLimit, server(V15, true), vec![]),
            (&current, RevokeConnect, server(V9_4, false), vec![revoke]),
            (&no_acl, RevokeConnect, server(V15, true), vec![]),
        ];
        for (object, method, server, expected) in cases {
            let plan = lock_plan(object, method, &server);
            let what = format!("{method:?} on {:?} at {}", object.facts, server.version_num);
            assert_eq!(ddl(&plan), expected, "{what}");
            assert_eq!(plan.change.status, Status::Locked, "{what}");
            assert_eq!(plan.change.method.as_deref(), Some(method_name(method)));
            assert_eq!(
                plan.check_no_connect,
                method == RevokeConnect && !expected.is_empty(),
                "{what}"
            );
        }
    }

    #[test]
    fn lock_refuses_what_cannot_work_before_changing_anything() {
        let current = with_db(db(), |_, _, current, _| *current = true);
        let err = error(lock(
            &current,
            LockMethod::AllowConnections,
            &server(V15, true),
            &me(),
        ));
        assert!(err.contains("while pgkick is connected to it"), "{err}");
        let err = error(lock(
            &db(),
            LockMethod::AllowConnections,
            &server(V9_4, false),
            &me(),
        ));
        assert!(
            err.contains("PostgreSQL 9.4.24 has no ALTER DATABASE ... ALLOW_CONNECTIONS"),
            "{err}"
        );
        let mut me_role = role(true);
        me_role.facts = Facts::Role {
            can_login: true,
            is_self: true,
            is_superuser: false,
            is_replication: false,
        };
        let err = error(lock(
            &me_role,
            LockMethod::RevokeConnect,
            &server(V15, true),
            &me(),
        ));
        assert!(err.contains("refusing to lock role \"bob\""), "{err}");
    }

    #[test]
    fn lock_roles_with_nologin_whatever_the_method() {
        let plan = lock_plan(
            &role(true),
            LockMethod::ConnectionLimit,
            &server(V9_4, false),
        );
        assert_eq!(ddl(&plan), ["ALTER ROLE \"bob\" NOLOGIN;"]);
        assert_eq!(plan.change.method.as_deref(), Some("nologin"));
        let plan = lock_plan(
            &role(false),
            LockMethod::AllowConnections,
            &server(V15, true),
        );
        assert_eq!(ddl(&plan), Vec::<&str>::new());
        assert_eq!(plan.change.status, Status::Locked);
    }

    fn pooler(label: &str) -> PoolerEntry {
        PoolerEntry {
            pooler: label.into(),
            action: super::super::PoolerAction::Pause,
        }
    }

    #[test]
    fn poolers_go_into_the_record_and_back_out_at_unlock() {
        let srv = server(V15, true);
        let a = [pooler("host=a port=6432 user=p")];
        let plan = lock_recording(&db(), LockMethod::AllowConnections, &srv, &me(), &a).unwrap();
        assert_eq!(record_of(&plan).poolers, a);
        assert_eq!(plan.change.recorded_poolers, a);
        let locked = apply(&db(), &plan.change.statements);
        let unlocked = unlock(&locked, &srv, &BTreeMap::new(), &me()).unwrap();
        assert_eq!(unlocked.change.recorded_poolers, a);

        // Locked again through another pooler: the saved state stays, the pooler is added.
        let b = [pooler("host=b port=6432 user=p")];
        let again = lock_recording(&locked, LockMethod::AllowConnections, &srv, &me(), &b).unwrap();
        assert!(matches!(again.change.status, Status::AlreadyLocked { .. }));
        assert_eq!(again.change.statements.len(), 1);
        let record = record_of(&again);
        assert_eq!(record.prior, record_of(&plan).prior);
        assert_eq!(record.poolers, [a[0].clone(), b[0].clone()]);
        // The same pooler again changes nothing.
        let same = lock_recording(&locked, LockMethod::AllowConnections, &srv, &me(), &a).unwrap();
        assert!(same.change.statements.is_empty());
    }

    #[test]
    fn the_record_keeps_the_state_before_the_lock() {
        let mut object = with_db(db(), |_, limit, _, _| *limit = 7);
        object.comment = Some("keep 'me' \\ please".into());
        let plan = lock_plan(&object, LockMethod::RevokeConnect, &server(V15, true));
        assert_eq!(
            record_of(&plan),
            Saved {
                method: "revoke-connect".into(),
                locked_by: "alice".into(),
                locked_at: me().now,
                pgkick_version: env!("CARGO_PKG_VERSION").into(),
                prior: Prior {
                    comment: Some("keep 'me' \\ please".into()),
                    owner: Some("owner".into()),
                    datallowconn: Some(true),
                    datconnlimit: Some(7),
                    acl: Some(default_acl()),
                    rolcanlogin: None,
                },
                poolers: Vec::new(),
            }
        );
        let plan = lock_plan(&role(true), LockMethod::RevokeConnect, &server(V15, true));
        let prior = record_of(&plan).prior;
        assert_eq!(
            prior,
            Prior {
                comment: None,
                rolcanlogin: Some(true),
                ..Prior::default()
            }
        );
    }

    #[test]
    fn locking_again_keeps_the_first_record() {
        let srv = server(V15, true);
        let locked = after_lock(&db(), LockMethod::ConnectionLimit, &srv);
        let again = lock_plan(&locked, LockMethod::ConnectionLimit, &srv);
        assert_eq!(
            again.change.status,
            Status::AlreadyLocked { other_method: None }
        );
        assert!(again.change.statements.is_empty());
        let other = lock_plan(&locked, LockMethod::RevokeConnect, &srv);
        assert_eq!(
            other.change.status,
            Status::AlreadyLocked {
                other_method: Some("connection-limit".into())
            }
        );
        assert_eq!(other.change.method.as_deref(), Some("connection-limit"));
        assert!(other.change.statements.is_empty() && !other.check_no_connect);
        // Even where a fresh lock would be refused: nothing is to be done.
        let current = with_db(locked, |_, _, current, _| *current = true);
        let plan = lock_plan(&current, LockMethod::AllowConnections, &server(V9_4, false));
        assert!(matches!(plan.change.status, Status::AlreadyLocked { .. }));

        let role = after_lock(&role(true), LockMethod::AllowConnections, &srv);
        let again = lock_plan(&role, LockMethod::RevokeConnect, &srv);
        assert_eq!(
            again.change.status,
            Status::AlreadyLocked { other_method: None }
        );
    }

    #[test]
    fn records_pgkick_cannot_read_stop_lock_and_unlock() {
        let srv = server(V15, true);
        for comment in ["pgkick-lock v1 {not json", "pgkick-lock v2 {}"] {
            let mut object = db();
            object.comment = Some(comment.into());
            let err = error(lock(&object, LockMethod::ConnectionLimit, &srv, &me()));
            assert!(err.contains("nothing was changed"), "{err}");
            let err = error(unlock(&object, &srv, &BTreeMap::new(), &me()));
            assert!(err.contains("nothing was changed"), "{err}");
            assert!(roles_unlock_would_grant(&object).is_err());
        }
    }

    // --- unlock -----------------------------------------------------------------------------

    /// Lock then unlock, with nothing changed in between, gives back exactly what was there,
    /// for every method, prior state and server version (where lock does not refuse).
    #[test]
    fn unlock_restores_exactly_what_lock_changed() {
        let mut commented = chain();
        commented.comment = Some("keep 'me' \\ please".into());
        let priors = [
            db(),
            with_db(db(), |allow, _, _, _| *allow = false),
            with_db(db(), |_, limit, _, _| *limit = 7),
            with_db(db(), |_, limit, _, _| *limit = 0),
            with_db(db(), |_, _, _, acl| acl.clear()),
            chain(),
            commented,
            role(true),
            role(false),
        ];
        let servers = [
            server(V9_4, true),
            server(V9_4, false),
            server(V9_5, false),
            server(V15, true),
        ];
        let methods = [
            LockMethod::AllowConnections,
            LockMethod::ConnectionLimit,
            LockMethod::RevokeConnect,
        ];
        let mut checked = 0;
        for prior in &priors {
            for srv in &servers {
                for method in methods {
                    let Ok(plan) = lock(prior, method, srv, &me_on(srv)) else {
                        continue;
                    };
                    let what = format!("{method:?} on {prior:?} at {srv:?}");
                    let locked = apply(prior, &plan.change.statements);
                    match &locked.facts {
                        Facts::Database {
                            allow_connections,
                            connection_limit,
                            connect_acl,
                            ..
                        } => assert!(
                            match method {
                                LockMethod::AllowConnections => !allow_connections,
                                LockMethod::ConnectionLimit => *connection_limit == 0,
                                LockMethod::RevokeConnect => connect_acl.is_empty(),
                            },
                            "{what}: still open: {locked:?}"
                        ),
                        Facts::Role { can_login, .. } => assert!(!can_login, "{what}"),
                    }
                    let unplan = unlock_plan(&locked, srv, ALL_ROLES);
                    assert_eq!(unplan.change.status, Status::Unlocked { notes: vec![] });
                    let back = apply(&locked, &unplan.change.statements);
                    assert_eq!(back, *prior, "{what}");
                    checked += 1;
                }
            }
        }
        // Every combination but allow-connections on the six open databases at 9.4 without
        // superuser, which lock refuses.
        assert_eq!(checked, priors.len() * servers.len() * methods.len() - 6);
    }

    #[test]
    fn unlock_without_a_record_changes_nothing() {
        let mut foreign = db();
        foreign.comment = Some("the main database".into());
        for object in [db(), foreign, role(false)] {
            let plan = unlock_plan(&object, &server(V15, true), ALL_ROLES);
            assert_eq!(plan.change.status, Status::NotLocked);
            assert_eq!(plan.change.method, None);
            assert!(plan.change.statements.is_empty());
        }
    }

    #[test]
    fn unlock_allow_connections_restores_exactly() {
        for (version, superuser, give_back) in [
            (V15, false, "ALTER DATABASE \"app\" ALLOW_CONNECTIONS true;"),
            (
                V9_5,
                false,
                "ALTER DATABASE \"app\" ALLOW_CONNECTIONS true;",
            ),
            (
                V9_4,
                true,
                "UPDATE pg_catalog.pg_database SET datallowconn = true WHERE oid = 16384;",
            ),
        ] {
            let srv = server(version, superuser);
            let locked = after_lock(&db(), LockMethod::AllowConnections, &srv);
            let plan = unlock_plan(&locked, &srv, ALL_ROLES);
            assert_eq!(ddl(&plan), [give_back], "{version}");
            assert_eq!(plan.change.status, Status::Unlocked { notes: vec![] });
            assert_eq!(
                *unproven(&plan.change.statements).last().unwrap(),
                "COMMENT ON DATABASE \"app\" IS NULL;"
            );

            // Opened again by hand since the lock: only the record goes.
            let opened = with_db(locked, |allow, _, _, _| *allow = true);
            assert!(ddl(&unlock_plan(&opened, &srv, ALL_ROLES)).is_empty());
        }
        // Closed before the lock: stays closed.
        let srv = server(V15, true);
        let closed = with_db(db(), |allow, _, _, _| *allow = false);
        let locked = after_lock(&closed, LockMethod::AllowConnections, &srv);
        assert!(ddl(&unlock_plan(&locked, &srv, ALL_ROLES)).is_empty());
    }

    #[test]
    fn unlock_connection_limit_restores_exactly() {
        let srv = server(V15, true);
        let limited = with_db(db(), |_, limit, _, _| *limit = 7);
        let locked = after_lock(&limited, LockMethod::ConnectionLimit, &srv);
        let plan = unlock_plan(&locked, &srv, ALL_ROLES);
        assert_eq!(ddl(&plan), ["ALTER DATABASE \"app\" CONNECTION LIMIT 7;"]);
        let locked = after_lock(&db(), LockMethod::ConnectionLimit, &srv);
        let plan = unlock_plan(&locked, &server(V9_4, false), ALL_ROLES);
        assert_eq!(ddl(&plan), ["ALTER DATABASE \"app\" CONNECTION LIMIT -1;"]);

        // Changed by hand after the lock: left alone, and said so.
        let by_hand = with_db(locked, |_, limit, _, _| *limit = 5);
        let plan = unlock_plan(&by_hand, &srv, ALL_ROLES);
        assert!(ddl(&plan).is_empty());
        assert_eq!(
            plan.change.status,
            Status::Unlocked {
                notes: vec![Note::LimitSetAfterLock(5)]
            }
        );
        assert_eq!(
            plan.change.status.to_string(),
            "unlocked (connection limit left at 5, set after the lock)"
        );

        // Already 0 before the lock: stays 0, nothing to say.
        let zero = with_db(db(), |_, limit, _, _| *limit = 0);
        let locked = after_lock(&zero, LockMethod::ConnectionLimit, &srv);
        let plan = unlock_plan(&locked, &srv, ALL_ROLES);
        assert!(ddl(&plan).is_empty());
        assert_eq!(plan.change.status, Status::Unlocked { notes: vec![] });
    }

    /// PUBLIC revoked; a holds CONNECT with the grant option from the owner and granted it to
    /// b; PUBLIC is back by the owner too.
    fn chain() -> Object {
        with_db(db(), |_, _, _, acl| {
            *acl = vec![
                entry(Some("b"), "a", false),
                entry(Some("a"), "owner", true),
                entry(None, "owner", false),
            ]
        })
    }

    #[test]
    fn unlock_revoke_connect_grants_back_each_entry_by_its_grantor() {
        let srv = server(V15, false);
        let locked = after_lock(&chain(), LockMethod::RevokeConnect, &srv);
        assert_eq!(
            roles_unlock_would_grant(&locked).unwrap(),
            ["a", "b", "owner"]
        );
        let plan = unlock_plan(&locked, &srv, ALL_ROLES);
        assert_eq!(
            ddl(&plan),
            [
                "GRANT CONNECT ON DATABASE \"app\" TO PUBLIC;",
                "GRANT CONNECT ON DATABASE \"app\" TO \"a\" WITH GRANT OPTION;",
                "SET ROLE \"a\";",
                "GRANT CONNECT ON DATABASE \"app\" TO \"b\";",
                "RESET ROLE;",
            ]
        );
        assert_eq!(plan.change.status, Status::Unlocked { notes: vec![] });

        // Entries granted again by hand since the lock are not granted twice.
        let partly = with_db(locked, |_, _, _, acl| acl.push(entry(None, "owner", false)));
        assert_eq!(
            roles_unlock_would_grant(&partly).unwrap(),
            ["a", "b", "owner"]
        );
        let plan = unlock_plan(&partly, &srv, ALL_ROLES);
        assert!(!ddl(&plan).contains(&"GRANT CONNECT ON DATABASE \"app\" TO PUBLIC;"));
        assert_eq!(ddl(&plan).len(), 4);
    }

    #[test]
    fn unlock_revoke_connect_skips_dropped_grantees_and_grantors() {
        let srv = server(V15, true);
        let locked = after_lock(&chain(), LockMethod::RevokeConnect, &srv);
        // b dropped: its entry is skipped, the others come back.
        let plan = unlock_plan(&locked, &srv, &["owner", "a"]);
        assert_eq!(ddl(&plan).len(), 2, "{:?}", ddl(&plan));
        assert_eq!(
            plan.change.status.to_string(),
            "unlocked (CONNECT not given back for role \"b\", dropped since the lock)"
        );
        // a dropped: its entry and the one it granted are skipped; a is named once (as b's
        // grantor, not b).
        let plan = unlock_plan(&locked, &srv, &["owner", "b"]);
        assert_eq!(ddl(&plan), ["GRANT CONNECT ON DATABASE \"app\" TO PUBLIC;"]);
        assert_eq!(
            plan.change.status,
            Status::Unlocked {
                notes: vec![Note::RoleDropped("a".into())]
            }
        );
        // Both dropped: one note each, sorted.
        let plan = unlock_plan(&locked, &srv, &["owner"]);
        assert_eq!(
            plan.change.status,
            Status::Unlocked {
                notes: vec![Note::RoleDropped("a".into())]
            }
        );
    }

    #[test]
    fn unlock_nologin_restores_exactly() {
        let srv = server(V9_4, false);
        let locked = after_lock(&role(true), LockMethod::AllowConnections, &srv);
        let plan = unlock_plan(&locked, &srv, ALL_ROLES);
        assert_eq!(ddl(&plan), ["ALTER ROLE \"bob\" LOGIN;"]);
        assert_eq!(
            *unproven(&plan.change.statements).last().unwrap(),
            "COMMENT ON ROLE \"bob\" IS NULL;"
        );
        // NOLOGIN before the lock: stays NOLOGIN.
        let locked = after_lock(&role(false), LockMethod::AllowConnections, &srv);
        assert!(ddl(&unlock_plan(&locked, &srv, ALL_ROLES)).is_empty());
        // LOGIN given back by hand: only the record goes.
        let mut by_hand = after_lock(&role(true), LockMethod::AllowConnections, &srv);
        by_hand.facts = Facts::Role {
            can_login: true,
            is_self: false,
            is_superuser: false,
            is_replication: false,
        };
        assert!(ddl(&unlock_plan(&by_hand, &srv, ALL_ROLES)).is_empty());
    }

    #[test]
    fn unlock_puts_the_previous_comment_back() {
        let srv = server(V15, true);
        let mut object = role(true);
        object.comment = Some("keep 'me' \\ please".into());
        let locked = after_lock(&object, LockMethod::AllowConnections, &srv);
        let plan = unlock_plan(&locked, &srv, ALL_ROLES);
        assert_eq!(
            *unproven(&plan.change.statements).last().unwrap(),
            "COMMENT ON ROLE \"bob\" IS E'keep ''me'' \\\\ please';"
        );
    }

    #[test]
    fn unlock_refuses_a_method_it_cannot_undo() {
        let srv = server(V15, true);
        // A database record with the roles' method, and a method of the future.
        let mut saved = record_of(&lock_plan(&db(), LockMethod::ConnectionLimit, &srv));
        for method in ["nologin", "frobnicate"] {
            saved.method = method.into();
            let mut object = db();
            object.comment = Some(saved.encode());
            let err = error(unlock(&object, &srv, &BTreeMap::new(), &me()));
            assert!(
                err.contains(&format!(
                    "method \"{method}\", which this pgkick cannot undo"
                )),
                "{err}"
            );
        }
    }

    #[test]
    fn only_revoke_connect_needs_to_know_which_roles_exist() {
        let srv = server(V15, true);
        for method in [LockMethod::AllowConnections, LockMethod::ConnectionLimit] {
            let locked = after_lock(&chain(), method, &srv);
            assert!(roles_unlock_would_grant(&locked).unwrap().is_empty());
        }
        assert!(roles_unlock_would_grant(&db()).unwrap().is_empty());
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
    fn comment_statements_quote_names_and_text() {
        let mut object = db();
        object.name = "a\"b'c\\".into();
        assert_eq!(
            comment_statement(&object, Some("x'y\\z")),
            r#"COMMENT ON DATABASE "a""b'c\" IS E'x''y\\z';"#
        );
        assert_eq!(
            comment_statement(&object, None),
            r#"COMMENT ON DATABASE "a""b'c\" IS NULL;"#
        );
    }

    // --- a record is a claim ----------------------------------------------------------------

    const V16: i32 = 160000;

    /// The object with a record as `writer` (a superuser or not) would leave it.
    fn locked_by(object: &Object, method: LockMethod, superuser: bool) -> Object {
        let srv = server(V15, superuser);
        let plan = lock(object, method, &srv, &me_on(&srv)).unwrap();
        apply(object, &plan.change.statements)
    }

    fn not_restored(plan: &ObjectPlan) -> Vec<(String, Vec<String>)> {
        let Status::Unlocked { notes } = &plan.change.status else {
            panic!("not unlocked: {:?}", plan.change.status);
        };
        notes
            .iter()
            .filter_map(|n| match n {
                Note::NotRestored {
                    what, statements, ..
                } => Some((what.clone(), statements.clone())),
                _ => None,
            })
            .collect()
    }

    fn with_role(mut object: Object, superuser: bool, replication: bool) -> Object {
        let Facts::Role {
            is_superuser,
            is_replication,
            ..
        } = &mut object.facts
        else {
            panic!("not a role");
        };
        *is_superuser = superuser;
        *is_replication = replication;
        object
    }

    #[test]
    fn only_a_superuser_proves_the_record_it_writes() {
        let srv = server(V15, true);
        let plan = lock(&db(), LockMethod::AllowConnections, &srv, &me_on(&srv)).unwrap();
        let last = plan.change.statements.last().unwrap();
        assert!(
            last.starts_with("ALTER DATABASE \"app\" SET pgkick.lock_proof = 'v1:42:"),
            "{last}"
        );
        assert_eq!(plan.change.proven, Some(true));
        assert!(apply(&db(), &plan.change.statements).proof.matches);
        let srv = server(V15, false);
        let plan = lock(&db(), LockMethod::AllowConnections, &srv, &me_on(&srv)).unwrap();
        assert!(!plan
            .change
            .statements
            .iter()
            .any(|s| s.contains("lock_proof")));
        assert_eq!(plan.change.proven, Some(false));
    }

    #[test]
    fn a_superuser_does_not_prove_a_record_someone_else_wrote() {
        // An owner's record, then a superuser's lock through a pooler rewrites it: still
        // unproven. A proven record rewritten by a superuser stays proven.
        let srv = server(V15, true);
        let a = [pooler("host=a port=6432 user=p")];
        for by_superuser in [false, true] {
            let locked = locked_by(&db(), LockMethod::AllowConnections, by_superuser);
            assert_eq!(locked.proof.matches, by_superuser);
            let again = lock_recording(
                &locked,
                LockMethod::AllowConnections,
                &srv,
                &me_on(&srv),
                &a,
            )
            .unwrap();
            let writes_proof = again
                .change
                .statements
                .iter()
                .any(|s| s.contains("SET pgkick.lock_proof"));
            assert_eq!(writes_proof, by_superuser);
            assert_eq!(again.change.proven, Some(by_superuser));
            assert_eq!(
                apply(&locked, &again.change.statements).proof.matches,
                by_superuser
            );
        }
    }

    #[test]
    fn an_unproven_record_gives_login_back_only_where_its_writer_could() {
        // (superuser, replication, server) -> given back without a proof?
        let cases = [
            (false, false, V15, true),
            (false, true, V15, false),
            (false, true, V16, true),
            (true, false, V15, false),
            (true, false, V16, false),
            (true, true, V16, false),
        ];
        for (superuser, replication, version, unproven_ok) in cases {
            let role = with_role(role(true), superuser, replication);
            for proven in [false, true] {
                let locked = locked_by(&role, LockMethod::AllowConnections, proven);
                let srv = server(version, true);
                let plan = unlock(&locked, &srv, &BTreeMap::new(), &me_on(&srv)).unwrap();
                let what = format!("{superuser} {replication} {version} proven={proven}");
                let login = plan
                    .change
                    .statements
                    .contains(&"ALTER ROLE \"bob\" LOGIN;".into());
                assert_eq!(login, proven || unproven_ok, "{what}");
                let undone = not_restored(&plan);
                if login {
                    assert!(undone.is_empty(), "{what}: {undone:?}");
                } else {
                    assert_eq!(
                        undone,
                        [(
                            "LOGIN".to_string(),
                            vec!["ALTER ROLE \"bob\" LOGIN;".to_string()]
                        )],
                        "{what}"
                    );
                    assert!(!plan.change.left_undone().is_empty(), "{what}");
                }
                // The record goes either way: the comment before the lock is back.
                assert!(unproven(&plan.change.statements)
                    .last()
                    .unwrap()
                    .starts_with("COMMENT ON ROLE \"bob\" IS NULL"));
            }
        }
    }

    #[test]
    fn an_unproven_record_grants_as_another_role_only_when_the_owner_could() {
        let srv = server(V15, true);
        for (proven, superuser, owner_can_become, given_back) in [
            (false, false, true, true),
            (false, false, false, false),
            (true, false, false, true),
            (false, true, true, false),
            (true, true, true, false),
        ] {
            let locked = locked_by(&chain(), LockMethod::RevokeConnect, proven);
            let mut roles = plain_roles(ALL_ROLES);
            roles.insert(
                "a".into(),
                RoleFacts {
                    is_superuser: superuser,
                    owner_can_become,
                },
            );
            let plan = unlock(&locked, &srv, &roles, &me_on(&srv)).unwrap();
            let what = format!("proven={proven} superuser={superuser} member={owner_can_become}");
            let set_role_a = plan.change.statements.contains(&"SET ROLE \"a\";".into());
            assert_eq!(set_role_a, given_back, "{what}");
            let undone = not_restored(&plan);
            assert_eq!(undone.is_empty(), given_back, "{what}: {undone:?}");
            for (_, statements) in &undone {
                assert_eq!(statements[0], "SET ROLE \"a\";", "{what}");
            }
            // Grants by the owner always come back, each step checked on its own.
            assert!(plan
                .steps
                .iter()
                .any(|s| s.gives_back.as_ref().is_some_and(|e| e.grantor == "owner")));
            assert!(plan
                .steps
                .iter()
                .filter(|s| s.statements.iter().any(|t| t.starts_with("GRANT")))
                .all(|s| s.gives_back.is_some()));
        }
    }

    #[test]
    fn before_9_5_reopening_needs_a_proof() {
        for proven in [false, true] {
            let srv = server(V9_4, true);
            let mut locked = after_lock(&db(), LockMethod::AllowConnections, &srv);
            locked.proof.matches = proven;
            let plan = unlock(&locked, &srv, &BTreeMap::new(), &me_on(&srv)).unwrap();
            let update = "UPDATE pg_catalog.pg_database SET datallowconn = true WHERE oid = 16384;";
            assert_eq!(ddl(&plan).contains(&update), proven);
            assert_eq!(not_restored(&plan).is_empty(), proven);
        }
    }

    #[test]
    fn a_saved_comment_that_is_a_record_is_never_put_back() {
        let srv = server(V15, true);
        let mut locked = locked_by(&role(true), LockMethod::AllowConnections, true);
        let mut saved = Saved::decode(locked.comment.as_deref(), locked.label())
            .unwrap()
            .unwrap();
        saved.prior.comment = Some("pgkick-lock v1 {\"method\":\"nologin\"}".into());
        locked.comment = Some(saved.encode());
        let plan = unlock(&locked, &srv, &BTreeMap::new(), &me_on(&srv)).unwrap();
        assert!(plan
            .change
            .statements
            .contains(&"COMMENT ON ROLE \"bob\" IS NULL;".into()));
        assert_eq!(not_restored(&plan).len(), 1);
    }

    #[test]
    fn unlock_removes_the_proof_when_it_can_and_says_so_when_not() {
        let locked = locked_by(&db(), LockMethod::AllowConnections, true);
        let srv = server(V15, true);
        let plan = unlock(&locked, &srv, &BTreeMap::new(), &me_on(&srv)).unwrap();
        assert_eq!(
            plan.change.statements.last().unwrap(),
            "ALTER DATABASE \"app\" RESET pgkick.lock_proof;"
        );
        assert_eq!(
            apply(&locked, &plan.change.statements).proof,
            Proof::default()
        );
        let srv = server(V15, false);
        let plan = unlock(&locked, &srv, &BTreeMap::new(), &me_on(&srv)).unwrap();
        assert!(!plan
            .change
            .statements
            .iter()
            .any(|s| s.contains("lock_proof")));
        assert_eq!(
            plan.change.status,
            Status::Unlocked {
                notes: vec![Note::ProofLeft]
            }
        );
        assert!(plan.change.left_undone().is_empty());
    }

    /// A proven record (a superuser's lock) on an object opened by hand: closed again with the
    /// recorded method, the first saved state kept (the superuser's run read it).
    #[test]
    fn a_proven_record_on_an_open_object_locks_it_again() {
        let srv = server(V15, true);
        for (method, object) in [
            (LockMethod::AllowConnections, db()),
            (LockMethod::ConnectionLimit, db()),
            (LockMethod::RevokeConnect, db()),
            (LockMethod::AllowConnections, role(true)),
        ] {
            let locked = after_lock(&object, method, &srv);
            assert!(locked.proof.matches);
            // Undone by hand, the record left in place.
            let opened = Object {
                comment: locked.comment.clone(),
                proof: locked.proof,
                ..object.clone()
            };
            let plan = lock(&opened, LockMethod::AllowConnections, &srv, &me_on(&srv)).unwrap();
            assert_eq!(plan.change.status, Status::Relocked, "{method:?}");
            let again = apply(&opened, &plan.change.statements);
            assert_eq!(again.facts, locked.facts, "{method:?}");
            assert_eq!(
                again.comment, locked.comment,
                "{method:?}: the first record stays"
            );
            // Still closed: nothing to do.
            let plan = lock(&again, LockMethod::AllowConnections, &srv, &me_on(&srv)).unwrap();
            assert!(matches!(plan.change.status, Status::AlreadyLocked { .. }));
            assert!(plan.change.statements.is_empty());
        }
    }

    /// `object` with a record its commenter wrote (unproven), saying it was locked with
    /// `method` and that before the lock it was as `prior` says.
    fn with_forged_record(object: &Object, method: &str, prior: Prior) -> Object {
        let saved = Saved {
            method: method.into(),
            locked_by: "postgres".into(),
            locked_at: "2026-11-30T03:00:00Z".parse().unwrap(),
            pgkick_version: "0.1.0".into(),
            prior,
            poolers: vec![pooler("host=evil port=6432 user=postgres")],
        };
        Object {
            comment: Some(saved.encode()),
            proof: Proof::default(),
            ..object.clone()
        }
    }

    #[test]
    fn an_unproven_record_on_an_open_object_is_not_trusted() {
        // A CREATEROLE role's record on an open REPLICATION role (15), and an owner's on her
        // open database, each saying the object was closed before "the lock".
        let open_role = with_role(role(true), false, true);
        let forged_role = with_forged_record(
            &open_role,
            NOLOGIN,
            Prior {
                comment: Some("pgkick-lock v1 {\"method\":\"nologin\"}".into()),
                rolcanlogin: Some(false),
                ..Prior::default()
            },
        );
        let forged_db = with_forged_record(
            &db(),
            "connection-limit",
            Prior {
                comment: Some("the app's database".into()),
                owner: Some("owner".into()),
                datallowconn: Some(false),
                datconnlimit: Some(0),
                acl: Some(Vec::new()),
                rolcanlogin: None,
            },
        );
        for superuser in [true, false] {
            let srv = server(V15, superuser);
            for (open, forged, comment) in [
                (&open_role, &forged_role, None),
                (&db(), &forged_db, Some("the app's database")),
            ] {
                let what = format!("{} superuser={superuser}", forged.label());
                let plan = lock(forged, LockMethod::AllowConnections, &srv, &me_on(&srv))
                    .unwrap_or_else(|e| panic!("{what}: {e:#}"));
                assert_eq!(plan.change.status, Status::Relocked, "{what}");
                assert_eq!(plan.change.proven, Some(superuser), "{what}");
                // Written as a fresh lock writes it: the method asked for, the state now, the
                // record's previous comment only when it is not itself a record, no pooler
                // of the forger's.
                let record = record_of(&plan);
                let fresh = record_of(&lock_plan(open, LockMethod::AllowConnections, &srv));
                assert_eq!(record.method, fresh.method, "{what}");
                assert_eq!(record.locked_by, "alice", "{what}");
                assert!(record.poolers.is_empty(), "{what}");
                assert_eq!(
                    record.prior,
                    Prior {
                        comment: comment.map(String::from),
                        ..fresh.prior
                    },
                    "{what}"
                );
                // And unlock gives back exactly what was there before this lock.
                let locked = apply(forged, &plan.change.statements);
                assert_eq!(locked.proof.matches, superuser, "{what}");
                let plan = unlock_plan(&locked, &srv, ALL_ROLES);
                let unlocked = apply(&locked, &plan.change.statements);
                assert_eq!(unlocked.comment.as_deref(), comment, "{what}");
                // (Without a proof, a replication role's LOGIN is left to a person.)
                if superuser || open.kind == Kind::Database {
                    assert_eq!(unlocked.facts, open.facts, "{what}: {plan:?}");
                    assert!(plan.change.left_undone().is_empty(), "{what}: {plan:?}");
                }
            }
        }
    }

    #[test]
    fn an_unproven_record_with_a_method_pgkick_does_not_know_is_judged_by_the_method_asked() {
        let srv = server(V15, true);
        let forged = with_forged_record(
            &role(true),
            "allow-connections",
            Prior {
                rolcanlogin: Some(false),
                ..Prior::default()
            },
        );
        let plan = lock_plan(&forged, LockMethod::AllowConnections, &srv);
        assert_eq!(plan.change.status, Status::Relocked);
        assert_eq!(ddl(&plan), ["ALTER ROLE \"bob\" NOLOGIN;"]);
        assert_eq!(record_of(&plan).prior.rolcanlogin, Some(true));
        // Closed by the method asked for: the record stays as it is.
        let closed = with_forged_record(&role(false), "allow-connections", Prior::default());
        let plan = lock_plan(&closed, LockMethod::AllowConnections, &srv);
        assert!(matches!(
            plan.change.status,
            Status::AlreadyLocked {
                other_method: Some(_)
            }
        ));
        assert!(plan.change.statements.is_empty());
    }

    #[test]
    fn an_unproven_record_on_a_closed_object_is_kept() {
        // Nothing to close: lock changes nothing, and unlock later does only what the
        // record's writer could have done.
        let srv = server(V15, true);
        let forged = with_forged_record(
            &with_role(role(false), false, true),
            NOLOGIN,
            Prior {
                rolcanlogin: Some(true),
                ..Prior::default()
            },
        );
        let plan = lock(&forged, LockMethod::AllowConnections, &srv, &me_on(&srv)).unwrap();
        assert_eq!(
            plan.change.status,
            Status::AlreadyLocked { other_method: None }
        );
        assert!(plan.change.statements.is_empty());
        assert_eq!(plan.change.proven, Some(false));
    }
}
