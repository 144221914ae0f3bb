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
//! The files: this one (what a holder is, and the fix each names), `statement.rs` (the one
//! statement that reads them, and its rows), `starting.rs` (backends still starting into a
//! database), `rollback.rs` (`--rollback-prepared`).
//!
//! [`PreparedRollback`] handles `--rollback-prepared`: `ROLLBACK PREPARED` must run in the
//! prepared transaction's own database, and once `ALLOW_CONNECTIONS false` is set nobody can
//! connect to it, so its connections are opened before the lock and closed at the end.

use std::collections::BTreeSet;

use postgres_protocol::escape::escape_identifier;
use serde::Serialize;

use crate::shell::word as shell_word;
use crate::signal::Report;

mod rollback;
mod starting;
mod statement;

pub use rollback::{rollback_statement, PreparedRollback};
pub use starting::{wait_for_starting, STARTING_WAIT};
pub use statement::{find, find_prepared, find_without_backends, held_without_backends};

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
/// that nobody can connect to it now, and how to get in. For a prepared transaction that is
/// the same command with --rollback-prepared, unless this run `rolled_back` already tried it
/// (and the server refused): then only by hand, after an unlock.
pub fn locked_out(holders: &mut [Holder], rolled_back: bool) {
    for h in holders.iter_mut() {
        let db = shell_word(&h.datname);
        let closed = format!(
            "the lock keeps everyone out of \"{}\" now, superusers included",
            h.datname
        );
        match h.outcome {
            Kind::PreparedTransaction if !rolled_back => {
                h.fix = format!(
                    "run the same command again with --rollback-prepared ({closed}; \
                     --rollback-prepared lets its own connection in for a moment), or pgkick \
                     unlock --db {db} and run {} (or COMMIT PREPARED) in it{}",
                    rollback_statement(h.gid.as_deref().unwrap_or_default()),
                    prepared_by(h)
                )
            }
            Kind::PreparedTransaction | Kind::Subscription => {
                h.fix
                    .push_str(&format!("; {closed}: pgkick unlock --db {db} first"));
            }
            _ => {}
        }
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

/// `; it was prepared by role "o"`, or nothing when pgkick's role cannot see by whom.
fn prepared_by(h: &Holder) -> String {
    h.owner
        .as_deref()
        .map(|o| format!("; it was prepared by role \"{o}\""))
        .unwrap_or_default()
}

/// How to clear a holder, naming the statement or the pgkick flag.
pub(super) fn fix(h: &Holder) -> String {
    let db = &h.datname;
    match h.outcome {
        Kind::PreparedTransaction => format!(
            "run {} (or COMMIT PREPARED) in database \"{db}\", or let pgkick terminate --db \
             {} --lock --rollback-prepared do it{}",
            rollback_statement(h.gid.as_deref().unwrap_or_default()),
            shell_word(db),
            prepared_by(h)
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

#[cfg(test)]
mod tests {
    use super::starting::starting_query;
    use super::statement::*;
    use super::*;
    use crate::server::Server;
    use crate::sql::Param;

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
