//! The planner: from an object's catalog state (comment included), the method and the server,
//! the statements lock or unlock runs and the status it reports. No I/O: the transaction frame
//! reads the catalog and runs what comes out, so every method × prior state × server version
//! is a unit test here and the live tests only confirm that the server agrees.

use std::collections::BTreeSet;

use anyhow::{bail, Result};
use chrono::{DateTime, Utc};
use postgres_protocol::escape::{escape_identifier, escape_literal};

use super::catalog::{AclEntry, Facts, Object};
use super::record::{PoolerEntry, Prior, Saved};
use super::LockMethod;
use super::{Change, Kind, Note, Status};
use crate::server::Server;

/// The method name recorded for roles.
const NOLOGIN: &str = "nologin";

/// Who runs pgkick and when, for the record.
pub struct Me {
    pub user: String,
    pub now: DateTime<Utc>,
}

/// What to do to one object: its change (status and statements) and checks to run after.
#[derive(Debug)]
pub struct Plan {
    pub change: Change,
    /// After the statements: every CONNECT entry must be gone (revoke-connect).
    pub check_no_connect: bool,
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
pub fn lock(object: &Object, method: LockMethod, server: &Server, me: &Me) -> Result<Plan> {
    lock_recording(object, method, server, me, &[])
}

/// Locks `object` with `method` (roles: always NOLOGIN), unless it already carries a record,
/// recording `poolers` (what `--pgbouncer` did for this database) in the record; a record
/// there already keeps its saved state and gains the poolers it did not name.
pub fn lock_recording(
    object: &Object,
    method: LockMethod,
    server: &Server,
    me: &Me,
    poolers: &[PoolerEntry],
) -> Result<Plan> {
    let wanted_method = match object.kind {
        Kind::Database => method_name(method),
        Kind::Role => NOLOGIN,
    };
    let mut change = Change {
        kind: object.kind.as_str(),
        name: object.name.clone(),
        status: Status::Locked,
        method: Some(wanted_method.to_string()),
        statements: Vec::new(),
        recorded_poolers: poolers.to_vec(),
        poolers: Vec::new(),
        terminated: Vec::new(),
        prior: None,
    };
    if let Some(mut saved) = saved(object)? {
        change.prior = Some(serde_json::to_value(&saved.prior)?);
        change.status = Status::AlreadyLocked {
            other_method: (saved.method != wanted_method).then(|| saved.method.clone()),
        };
        change.method = Some(saved.method.clone());
        let new: Vec<&PoolerEntry> = poolers
            .iter()
            .filter(|p| !saved.poolers.iter().any(|s| s.pooler == p.pooler))
            .collect();
        if !new.is_empty() {
            saved.poolers.extend(new.into_iter().cloned());
            change
                .statements
                .push(comment_statement(object, Some(&saved.encode())));
        }
        change.recorded_poolers = saved.poolers;
        return Ok(Plan {
            change,
            check_no_connect: false,
        });
    }
    let q = quoted(object);
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
                        let g = entry.grantee_sql();
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
        poolers: poolers.to_vec(),
    };
    change.prior = Some(serde_json::to_value(&saved.prior)?);
    change
        .statements
        .push(comment_statement(object, Some(&saved.encode())));
    Ok(Plan {
        change,
        check_no_connect,
    })
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

/// The roles whose existence [`unlock`] needs to know: the grantees and grantors of the
/// entries it would grant again.
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
/// it. `existing_roles`: which of [`roles_unlock_would_grant`] still exist.
pub fn unlock(object: &Object, server: &Server, existing_roles: &BTreeSet<String>) -> Result<Plan> {
    let mut change = Change {
        kind: object.kind.as_str(),
        name: object.name.clone(),
        status: Status::NotLocked,
        method: None,
        statements: Vec::new(),
        recorded_poolers: Vec::new(),
        poolers: Vec::new(),
        terminated: Vec::new(),
        prior: None,
    };
    let Some(saved) = saved(object)? else {
        return Ok(Plan {
            change,
            check_no_connect: false,
        });
    };
    change.prior = Some(serde_json::to_value(&saved.prior)?);
    change.method = Some(saved.method.clone());
    change.recorded_poolers = saved.poolers.clone();
    let q = quoted(object);
    let prior = &saved.prior;
    let mut notes: Vec<Note> = Vec::new();
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
                    .find(|role| !existing_roles.contains(*role));
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
                    change.statements.push(grant);
                } else {
                    change
                        .statements
                        .push(format!("SET ROLE {};", escape_identifier(&entry.grantor)));
                    change.statements.push(grant);
                    change.statements.push("RESET ROLE;".into());
                }
            }
            notes.extend(dropped.into_iter().map(Note::RoleDropped));
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
        .push(comment_statement(object, prior.comment.as_deref()));
    change.status = Status::Unlocked { notes };
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
    //! The "unlock restores exactly" matrix: every method × prior state × server version.
    //! `after_lock` stands in for the server: it applies what lock's statements do, so that
    //! unlock is planned from the state a real lock leaves.

    use super::*;

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
            facts: Facts::Role {
                can_login,
                is_self: false,
            },
        }
    }

    fn lock_plan(object: &Object, method: LockMethod, server: &Server) -> Plan {
        lock(object, method, server, &me()).unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// The statements before the final COMMENT.
    fn ddl(plan: &Plan) -> Vec<&str> {
        let statements = &plan.change.statements;
        assert!(
            statements
                .last()
                .is_some_and(|s| s.starts_with("COMMENT ON ")),
            "{statements:?}"
        );
        statements[..statements.len() - 1]
            .iter()
            .map(String::as_str)
            .collect()
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
    fn record_of(plan: &Plan) -> Saved {
        let last = plan.change.statements.last().unwrap();
        let literal = last
            .split_once(" IS ")
            .and_then(|(_, v)| v.strip_suffix(';'))
            .unwrap();
        Saved::decode(Some(&unliteral(literal)), plan_label(plan))
            .unwrap()
            .unwrap()
    }

    fn plan_label(plan: &Plan) -> super::super::Label<'_> {
        let kind = if plan.change.kind == "role" {
            Kind::Role
        } else {
            Kind::Database
        };
        super::super::Label(kind, &plan.change.name)
    }

    fn unlock_plan(object: &Object, server: &Server, existing: &[&str]) -> Plan {
        let existing = existing.iter().map(|r| r.to_string()).collect();
        unlock(object, server, &existing).unwrap_or_else(|e| panic!("{e:#}"))
    }

    fn error(result: Result<Plan>) -> String {
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
        let unlocked = unlock(&locked, &srv, &BTreeSet::new()).unwrap();
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
            let err = error(unlock(&object, &srv, &BTreeSet::new()));
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
                    let Ok(plan) = lock(prior, method, srv, &me()) else {
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
                plan.change.statements.last().unwrap(),
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
            plan.change.statements.last().unwrap(),
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
            plan.change.statements.last().unwrap(),
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
            let err = error(unlock(&object, &srv, &BTreeSet::new()));
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
}
