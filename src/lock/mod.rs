//! lock / unlock: keep new connections out of databases, or stop roles from logging in, and
//! give back exactly what was there.
//!
//! # Layout
//! - `mod.rs` (this file): the entry points, what they return ([`Change`], its [`Status`]),
//!   and the contract below.
//! - `frame.rs`: the one transaction every run is: lock_timeout, lookups, advisory locks,
//!   running the planned statements, commit or (dry run) rollback.
//! - `catalog.rs`: what the catalog says about a database or role ([`catalog::Object`]), read
//!   inside that transaction.
//! - `plan.rs`: the pure planner: catalog state + method + server version in, statements and
//!   a typed [`Status`] out; no I/O, so every case is a unit test.
//! - `record.rs`: the saved-state record (the comment), its codec, and `lock --list`.
//! - `window.rs`: a moment's opening into a database pgkick closed, for
//!   `terminate --lock --rollback-prepared` to connect.
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
//! are kept. A database locked with `--pgbouncer` also has
//! `"poolers":[{"pooler":"host=... port=6432 user=...","action":"pause"}]` (action `pause` or
//! `disable`; the connection string never holds a password): what unlock undoes on the
//! `--pgbouncer` poolers it is given that are the same host, port and user; unlock never
//! connects to a pooler on the record's word (see "A record is a claim" below). The field
//! is left out when there are none, and a record without it reads as one with none, so
//! records written before it existed are read as they always were; a lock that finds a record
//! already there adds the poolers it paused to it and keeps the rest. For roles, `method` is `nologin` and `prior` holds `comment` and `rolcanlogin`.
//! The previous comment is saved and put back by unlock (`COMMENT ... IS NULL` if there was
//! none). `lock --list` reads these comments from `pg_shdescription`.
//!
//! # A record is a claim
//! Whoever may comment on the object can write a record: a database's owner, a role's
//! CREATEROLE administrator (from 16: with ADMIN OPTION on it). So the record is proven only
//! when a setting only a superuser can write names it (`proof.rs`; a superuser's lock writes
//! it), and unlock of an unproven record does only what a writer of the comment could have
//! done itself (`plan.rs` has the rules); the rest is reported with the statements that would
//! do it, and the run exits 3. `lock --list` says which records are proven. A record on an
//! object that is open again is closed again by lock (`relocked`), so that `already_locked`
//! always means locked; only a proven one keeps its saved state (see below).
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
//!   a superuser; otherwise that grant is not given back (exit 3). Each grant runs in a
//!   savepoint and is checked against the ACL afterwards: a GRANT the server refuses, or one
//!   that grants nothing and only warns, is reported with the server's words (exit 3) while
//!   the rest of the unlock goes through.
//! - roles: `LOGIN` only if the role could log in before the lock.
//!
//! Locking an object that already carries a record keeps the first saved state (status
//! `already_locked`, or `already_locked (<method>)` when it was locked with another method),
//! so one unlock restores the state before the first lock. If the object is open again (the
//! lock undone by hand, or a record written on an open object), a proven record's object is
//! closed again with the recorded method, keeping the first saved state; an unproven record is
//! replaced as a fresh lock would write it (the method asked for, the state now, its previous
//! comment unless that is a pgkick text). Both are reported `relocked`. Unlocking an object
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

use std::fmt;
use std::time::Duration;

use anyhow::Result;
use serde::{Serialize, Serializer};

use crate::server::Server;

mod catalog;
mod frame;
mod plan;
mod proof;
mod record;
pub mod window;

pub use record::{list, PoolerAction, PoolerEntry, Record};

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
    pub status: Status,
    /// The lock method recorded for the object (the one just used, or the earlier one).
    pub method: Option<String>,
    /// The statements run (or, with dry_run, that would run), in order.
    pub statements: Vec<String>,
    /// The poolers the record names: after lock, those it holds now; at unlock, those it held
    /// (what unlock resumes).
    #[serde(skip)]
    pub recorded_poolers: Vec<PoolerEntry>,
    /// The saved state before the first lock (what unlock gives back), as recorded in the
    /// object's comment; None when the object carries no record. For audit records.
    #[serde(skip)]
    pub prior: Option<serde_json::Value>,
    /// Whether the record is proven (see `proof.rs`): after lock, whether the record it left
    /// is; at unlock, whether the one it undid was. None when there is no record.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proven: Option<bool>,
}

impl Change {
    /// Adds `note` to an unlock's notes.
    fn note(&mut self, note: Note) {
        if let Status::Unlocked { notes } | Status::WouldUnlock { notes } = &mut self.status {
            notes.push(note);
        }
    }

    /// What unlock left undone that a person must see to (exit 3): notes that say so, with
    /// the statements that would finish the job.
    pub fn left_undone(&self) -> Vec<&Note> {
        match &self.status {
            Status::Unlocked { notes } => notes.iter().filter(|n| n.is_undone()).collect(),
            _ => Vec::new(),
        }
    }
}

/// What happened to one object. Shown (and serialized) as `locked`, `already_locked`,
/// `already_locked (<recorded method>)`, `relocked`, `would_relock`, `would_lock`,
/// `unlocked`, `not_locked`,
/// `would_unlock`; unlocked and would_unlock add their notes in parentheses, `; `-separated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Locked,
    /// A dry run's Locked.
    WouldLock,
    /// The object already carries a record, kept as it is. `other_method`: the recorded method
    /// when it is not the one asked for.
    AlreadyLocked {
        other_method: Option<String>,
    },
    /// The object carries a record but was open again (undone by hand, or a record written on
    /// an open object): closed again, with the recorded method and the first saved state when
    /// the record is proven, as a fresh lock otherwise.
    Relocked,
    /// A dry run's Relocked.
    WouldRelock,
    Unlocked {
        notes: Vec<Note>,
    },
    /// A dry run's Unlocked.
    WouldUnlock {
        notes: Vec<Note>,
    },
    /// No record: nothing to give back.
    NotLocked,
}

/// Something unlock did not give back, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Note {
    /// connection-limit: the limit is no longer 0; someone set it after the lock.
    LimitSetAfterLock(i32),
    /// revoke-connect: a saved entry names a role dropped since the lock.
    RoleDropped(String),
    /// Something unlock did not give back, the statements that would (empty when there are
    /// none to run), and why: a record that is not proven asks for more than its writer could
    /// do, or the server refused (or granted nothing).
    NotRestored {
        what: String,
        statements: Vec<String>,
        why: String,
    },
    /// The proof setting stays on the object: only a superuser can remove it (it proves
    /// nothing once its record is gone).
    ProofLeft,
}

impl Note {
    /// Whether the note means unlock is incomplete (exit 3).
    pub fn is_undone(&self) -> bool {
        matches!(self, Note::NotRestored { .. })
    }
}

impl Status {
    /// What a dry run reports for a change planned with this status.
    fn dry_run(self) -> Status {
        match self {
            Status::Locked => Status::WouldLock,
            Status::Relocked => Status::WouldRelock,
            Status::Unlocked { notes } => Status::WouldUnlock { notes },
            other => other,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (word, notes) = match self {
            Status::Locked => ("locked", &[][..]),
            Status::WouldLock => ("would_lock", &[][..]),
            Status::AlreadyLocked { other_method: None } => ("already_locked", &[][..]),
            Status::AlreadyLocked {
                other_method: Some(method),
            } => return write!(f, "already_locked ({method})"),
            Status::Relocked => ("relocked", &[][..]),
            Status::WouldRelock => ("would_relock", &[][..]),
            Status::Unlocked { notes } => ("unlocked", &notes[..]),
            Status::WouldUnlock { notes } => ("would_unlock", &notes[..]),
            Status::NotLocked => ("not_locked", &[][..]),
        };
        f.write_str(word)?;
        if !notes.is_empty() {
            let notes: Vec<String> = notes.iter().map(Note::to_string).collect();
            write!(f, " ({})", notes.join("; "))?;
        }
        Ok(())
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Note::LimitSetAfterLock(limit) => {
                write!(f, "connection limit left at {limit}, set after the lock")
            }
            Note::RoleDropped(role) => write!(
                f,
                "CONNECT not given back for role \"{role}\", dropped since the lock"
            ),
            Note::NotRestored { what, why, .. } => write!(f, "{what} not given back: {why}"),
            Note::ProofLeft => write!(
                f,
                "the setting {} stays: only a superuser can remove it",
                proof::SETTING
            ),
        }
    }
}

/// The JSON form is the text form: scripts compare these strings.
impl Serialize for Status {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A database or a role.
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
}

/// `database "x"`, for messages.
#[derive(Clone, Copy)]
struct Label<'a>(Kind, &'a str);

impl fmt::Display for Label<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} \"{}\"", self.0.as_str(), self.1)
    }
}

/// How a run locks: the method, how long its DDL may wait behind other transactions, and
/// whether it only shows the statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct How {
    pub method: LockMethod,
    pub lock_timeout: Duration,
    pub dry_run: bool,
}

/// Locks the targets; see the module documentation. Each database's record also says what
/// was done to `poolers` for it (`--pgbouncer`), in the same transaction as the lock itself.
pub fn lock(
    client: &mut postgres::Client,
    server: &Server,
    targets: &Targets,
    how: How,
    poolers: &[PoolerEntry],
) -> Result<Vec<Change>> {
    let How {
        method,
        lock_timeout,
        dry_run,
    } = how;
    frame::in_one_transaction(client, targets, dry_run, lock_timeout, |_tx, me, object| {
        let poolers = match object.kind {
            Kind::Database => poolers,
            Kind::Role => &[],
        };
        plan::lock_recording(object, method, server, me, poolers)
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
    frame::in_one_transaction(client, targets, dry_run, lock_timeout, |tx, me, object| {
        let named = plan::roles_unlock_would_grant(object)?;
        let roles = match &object.facts {
            catalog::Facts::Database { owner, .. } => {
                catalog::role_facts(tx, &named, owner, server)?
            }
            catalog::Facts::Role { .. } => Default::default(),
        };
        plan::unlock(object, server, &roles, me)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_serialize_to_the_documented_strings() {
        let notes = vec![
            Note::LimitSetAfterLock(5),
            Note::RoleDropped("a \"b\"".into()),
        ];
        let cases = [
            (Status::Locked, "locked"),
            (Status::WouldLock, "would_lock"),
            (
                Status::AlreadyLocked { other_method: None },
                "already_locked",
            ),
            (
                Status::AlreadyLocked {
                    other_method: Some("revoke-connect".into()),
                },
                "already_locked (revoke-connect)",
            ),
            (Status::Unlocked { notes: vec![] }, "unlocked"),
            (
                Status::Unlocked {
                    notes: notes.clone(),
                },
                "unlocked (connection limit left at 5, set after the lock; CONNECT not given \
                 back for role \"a \"b\"\", dropped since the lock)",
            ),
            (
                Status::WouldUnlock { notes },
                "would_unlock (connection limit left at 5, set \
             after the lock; CONNECT not given back for role \"a \"b\"\", dropped since the lock)",
            ),
            (Status::NotLocked, "not_locked"),
        ];
        for (status, text) in cases {
            assert_eq!(status.to_string(), text);
            assert_eq!(
                serde_json::to_value(&status).unwrap(),
                serde_json::Value::String(text.into())
            );
        }
    }

    #[test]
    fn a_dry_run_says_would_only_for_changes() {
        assert_eq!(Status::Locked.dry_run(), Status::WouldLock);
        let notes = vec![Note::LimitSetAfterLock(3)];
        assert_eq!(
            Status::Unlocked {
                notes: notes.clone()
            }
            .dry_run(),
            Status::WouldUnlock { notes }
        );
        assert_eq!(Status::NotLocked.dry_run(), Status::NotLocked);
        let already = Status::AlreadyLocked {
            other_method: Some("connection-limit".into()),
        };
        assert_eq!(already.clone().dry_run(), already);
    }
}

/// How `lock` keeps new connections out of a database (a `--method` value).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum LockMethod {
    /// ALTER DATABASE ... ALLOW_CONNECTIONS false: keeps everyone out, superusers included
    AllowConnections,
    /// ALTER DATABASE ... CONNECTION LIMIT 0: keeps out everyone but superusers
    ConnectionLimit,
    /// REVOKE CONNECT from PUBLIC and from every role granted CONNECT by name
    RevokeConnect,
}
