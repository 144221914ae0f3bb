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
use super::plan::{Me, ObjectPlan};
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
    mut plan: impl FnMut(&mut Transaction<'_>, &Me, &Object) -> Result<ObjectPlan>,
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
/// ACL holds the entry afterwards. A statement the server refuses, a GRANT that grants
/// nothing (the grantor lacks the grant option: the server only warns), or one the server
/// answered with a warning even though the entry is there, is undone to the savepoint and
/// comes back as a note with the server's words (see [`give_back_failure`]); a lock timeout
/// still fails the run.
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
    // After a refused statement the transaction cannot be read until the rollback below.
    let granted = failure.is_some() || catalog::connect_acl(tx, object.oid)?.contains(entry);
    let Some(why) = give_back_failure(failure, granted, crate::conn::notices::take()) else {
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

/// Why a give-back step is not a success: the server's words when it refused a statement
/// (`refused`), when the entry is not in the ACL afterwards (`granted` false), or when the
/// server said anything while running the statements (`notices`): a GRANT or REVOKE that
/// warns is not a clean restore, whatever the ACL shows. Every notice counts, whatever its
/// severity: the severity's name is translated by the server's `lc_messages`, and a plain
/// GRANT says nothing when it works. None: given back.
fn give_back_failure(
    refused: Option<String>,
    granted: bool,
    notices: Vec<String>,
) -> Option<String> {
    let said = notices.join("; ");
    match (refused, granted, said.is_empty()) {
        (Some(words), _, true) => Some(words),
        (Some(words), _, false) => Some(format!("{words} ({said})")),
        (None, false, true) => Some("the server granted nothing".into()),
        (None, false, false) => Some(format!("the server granted nothing: {said}")),
        (None, true, false) => Some(format!(
            "the server warned, so pgkick undid it to be checked by hand: {said}"
        )),
        (None, true, true) => None,
    }
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

#[cfg(test)]
mod tests {
    use super::give_back_failure;

    #[test]
    fn a_give_back_the_server_warned_about_is_not_a_success() {
        let warned = || vec!["WARNING: no privileges were granted for \"app\"".to_string()];
        assert_eq!(give_back_failure(None, true, Vec::new()), None);
        // Granted, but with a warning: not called done.
        assert_eq!(
            give_back_failure(None, true, warned()).as_deref(),
            Some(
                "the server warned, so pgkick undid it to be checked by hand: WARNING: no \
                 privileges were granted for \"app\""
            )
        );
        assert_eq!(
            give_back_failure(None, false, warned()).as_deref(),
            Some("the server granted nothing: WARNING: no privileges were granted for \"app\"")
        );
        assert_eq!(
            give_back_failure(None, false, Vec::new()).as_deref(),
            Some("the server granted nothing")
        );
        assert_eq!(
            give_back_failure(Some("permission denied".into()), false, Vec::new()).as_deref(),
            Some("permission denied")
        );
        // A localized severity counts as much as WARNING.
        assert!(give_back_failure(None, true, vec!["WARNUNG: x".into()]).is_some());
    }
}
