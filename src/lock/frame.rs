//! The one transaction every lock or unlock run is: `SET LOCAL lock_timeout`, look every target
//! up (an unknown one fails the run before anything changes), take
//! `pg_advisory_xact_lock(<kind key>, <oid>)` for each object in oid order, read the catalog
//! only after that, plan, run the statements, check, COMMIT; a dry run plans and rolls back.

use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use postgres::error::SqlState;
use postgres::types::Type;
use postgres::Transaction;

use super::catalog::{self, Object};
use super::plan::{Me, Plan};
use super::{Change, Kind, Label, Note, Targets};

/// `pg_advisory_xact_lock(key, oid)` first keys: "pkdb" and "pkrl".
const ADVISORY_KEY_DATABASE: i32 = 0x706b_6462;
const ADVISORY_KEY_ROLE: i32 = 0x706b_726c;

pub(super) fn advisory_key(kind: Kind) -> i32 {
    match kind {
        Kind::Database => ADVISORY_KEY_DATABASE,
        Kind::Role => ADVISORY_KEY_ROLE,
    }
}

/// Runs `plan` for every target in one transaction; see the module documentation. `plan` may
/// read more of the catalog through the transaction it is given.
pub fn in_one_transaction(
    client: &mut postgres::Client,
    targets: &Targets,
    dry_run: bool,
    lock_timeout: Duration,
    mut plan: impl FnMut(&mut Transaction<'_>, &Me, &Object) -> Result<Plan>,
) -> Result<Vec<Change>> {
    let mut tx = client
        .transaction()
        .context("could not start a transaction")?;
    set_lock_timeout(&mut tx, lock_timeout)?;
    // A superuser can prove what it writes (proof.rs): the proof names this transaction.
    let row = tx
        .query_one(
            "SELECT session_user::text, pg_catalog.now(), \
                    CASE WHEN pg_catalog.current_setting('is_superuser') = 'on' \
                         THEN pg_catalog.txid_current() % 4294967296 END",
            &[],
        )
        .context("could not read the session user")?;
    let me = Me {
        user: row.get(0),
        now: row.get(1),
        proof_xid: row.get(2),
    };

    // Every name must exist before anything is touched.
    let mut wanted: Vec<(Kind, String, u32)> = Vec::new();
    for (kind, names) in [(Kind::Database, &targets.dbs), (Kind::Role, &targets.roles)] {
        for name in names {
            if wanted.iter().any(|(k, n, _)| *k == kind && n == name) {
                continue;
            }
            let oid = catalog::resolve(&mut tx, kind, name)?.ok_or_else(|| {
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
                    (&advisory_key(*kind), Type::INT4),
                    (&(*oid as i32), Type::INT4),
                ],
            )
            .map_err(|e| sql_error(e, Label(*kind, name), lock_timeout))?;
        }
    }

    let mut plans = Vec::new();
    for (kind, name, oid) in &wanted {
        let object = catalog::read(&mut tx, *kind, name, *oid)?;
        plans.push((plan(&mut tx, &me, &object)?, object));
    }
    if dry_run {
        tx.rollback().context("could not roll back")?;
        return Ok(plans
            .into_iter()
            .map(|(p, _)| Change {
                status: p.change.status.dry_run(),
                ..p.change
            })
            .collect());
    }
    for (plan, object) in &mut plans {
        for step in &plan.steps {
            match &step.gives_back {
                None => {
                    for statement in &step.statements {
                        tx.batch_execute(statement)
                            .map_err(|e| sql_error(e, object.label(), lock_timeout))?;
                    }
                }
                Some(entry) => {
                    if let Some(note) = give_back(&mut tx, object, step, entry, lock_timeout)? {
                        plan.change.note(note);
                    }
                }
            }
        }
        if plan.check_no_connect {
            let left = catalog::connect_acl(&mut tx, object.oid)?;
            if !left.is_empty() {
                let holders: Vec<String> = left.iter().map(|e| e.grantee_sql()).collect();
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

/// Runs the statements of `step`, which give `entry` back, in a savepoint, and checks that the
/// ACL holds the entry afterwards. A statement the server refuses, or a GRANT that grants
/// nothing (the grantor lacks the grant option: the server only warns), is undone to the
/// savepoint and comes back as a note with the server's words; a lock timeout still fails
/// the run.
fn give_back(
    tx: &mut Transaction<'_>,
    object: &Object,
    step: &super::plan::Step,
    entry: &catalog::AclEntry,
    lock_timeout: Duration,
) -> Result<Option<Note>> {
    tx.batch_execute("SAVEPOINT pgkick_give_back")
        .context("could not set a savepoint")?;
    crate::conn::notices::take();
    let mut failure = None;
    for statement in &step.statements {
        if let Err(e) = tx.batch_execute(statement) {
            if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) {
                return Err(sql_error(e, object.label(), lock_timeout));
            }
            failure = Some(server_words(&e));
            break;
        }
    }
    if failure.is_none() && !catalog::connect_acl(tx, object.oid)?.contains(entry) {
        let warned = crate::conn::notices::take().join("; ");
        failure = Some(if warned.is_empty() {
            "the server granted nothing".to_string()
        } else {
            format!("the server granted nothing: {warned}")
        });
    }
    let Some(why) = failure else {
        tx.batch_execute("RELEASE SAVEPOINT pgkick_give_back")
            .context("could not release a savepoint")?;
        return Ok(None);
    };
    tx.batch_execute("ROLLBACK TO SAVEPOINT pgkick_give_back")
        .context("could not roll back to a savepoint")?;
    Ok(Some(Note::NotRestored {
        what: format!(
            "CONNECT for {} by \"{}\"",
            entry.grantee_sql(),
            entry.grantor
        ),
        statements: step.statements.clone(),
        why,
    }))
}

/// The server's message (and hint) of an error.
fn server_words(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.hint() {
            Some(hint) => format!("{} ({hint})", db.message()),
            None => db.message().to_string(),
        },
        None => e.to_string(),
    }
}

/// A postgres error while acting on `what`, as one sentence.
pub(super) fn sql_error(
    e: postgres::Error,
    what: Label<'_>,
    lock_timeout: Duration,
) -> anyhow::Error {
    if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) {
        return anyhow!(
            "gave up after {} waiting for a lock on {what} held by another transaction; \
             nothing was changed",
            humantime::format_duration(lock_timeout)
        );
    }
    anyhow!("{what}: {}; nothing was changed", server_words(&e))
}

/// `SET LOCAL lock_timeout` for the rest of `tx`.
pub(super) fn set_lock_timeout(tx: &mut Transaction<'_>, lock_timeout: Duration) -> Result<()> {
    let ms = lock_timeout.as_millis().clamp(1, i32::MAX as u128);
    tx.batch_execute(&format!("SET LOCAL lock_timeout = {ms}"))
        .context("could not set lock_timeout")
}
