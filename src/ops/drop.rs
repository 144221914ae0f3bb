//! terminate --lock, the drop-ready workflow: find and guard the targets, then show what would
//! happen (--dry-run) or ask, open --rollback-prepared's connections, pause the poolers and
//! lock, terminate everything that is in the databases now, wait, record, and report with
//! everything else that keeps DROP DATABASE from succeeding. Exit 0 only when nothing does.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context as _, Result};
use postgres_protocol::escape::escape_identifier;

use super::guard;
use super::lock::{pause_and_lock, statements};
use super::Part;
use super::{act, dry_run, find, pooling, Context};
use crate::error::ExitStatus;
use crate::filter::Filter;
use crate::holders::{self, Holder, Kind};
use crate::interrupt;
use crate::lock::{self, LockMethod};
use crate::output::Printer;
use crate::plan::DropReady;
use crate::session::Session;
use crate::signal::{Outcome, Report};

/// terminate --lock on one server.
pub fn run(opts: &DropReady, part: &Part<'_>) -> Result<ExitStatus> {
    let (printer, gate) = (part.printer, part.gate);
    let trail = part.log.trail(&part.member.settings);
    let mut ctx = Context::open(part.member, printer, &trail)?;
    let signal = &opts.signal;
    let found = guard::targets(&mut ctx, &signal.filter, &part.unknown)?;
    let allowed = gate.approve(&found, &signal.guard)?;
    if signal.guard.dry_run {
        return show_plan(&mut ctx, opts, &found.sessions);
    }
    guard::confirm(&ctx, signal.action, &found.sessions, &signal.guard)?;
    interrupt::install()?;
    let mut filter = signal.filter.clone();
    // --rollback-prepared: into each database with prepared transactions before the lock
    // keeps everyone out; these connections are neither targets nor holders until closed.
    let rollback = if opts.rollback_prepared {
        let opened = open_rollback(&mut ctx, &filter.dbs, opts.lock_timeout)?;
        filter.exclude_pids.extend(opened.pids());
        Some(opened)
    } else {
        None
    };
    let mut locked = lock_then_find(&mut ctx, &filter, opts)?;
    let targets = guard::allowed_only(std::mem::take(&mut locked.targets), &allowed);
    // The pooler backends terminated to complete a pause are reported (and waited for) like
    // any other.
    let mut reports = std::mem::take(&mut locked.unblocked);
    reports.extend(act::signal(&mut ctx, signal, &targets)?);
    let finished = act::grace_and_wait(&mut ctx, signal, &filter, &mut reports);
    reports.sort_by_key(|r| r.session.pid);
    if let Err(e) = act::audit(&mut ctx, &reports) {
        printer.print(&reports)?;
        return Err(e);
    }
    // What else keeps the databases from being dropped.
    let held = finished.and_then(|()| what_holds(&mut ctx, &filter.dbs, &reports, rollback, opts));
    let mut held = match held {
        Ok(held) => held,
        Err(e) => {
            printer.print(&reports)?;
            return Err(e);
        }
    };
    if opts.method == LockMethod::AllowConnections {
        holders::locked_out(&mut held, opts.rollback_prepared);
    }
    warn_what_holds(printer, &reports, &held);
    let status = status(&locked, &found, &reports, &held);
    print_entries(printer, reports, held)?;
    Ok(status)
}

/// Exit 0 only when DROP DATABASE would succeed now: no backend was still starting, nothing
/// holds a database, and every session was signalled (and left, with --wait).
fn status(
    locked: &Locked,
    found: &guard::Targets,
    reports: &[Report],
    held: &[Holder],
) -> ExitStatus {
    if locked.still_starting || held.iter().any(Holder::holds) {
        ExitStatus::Partial
    } else {
        act::status(found.prepared_selected, reports)
    }
}

/// What the lock left to terminate.
struct Locked {
    /// Everything in the databases that matches once they are locked.
    targets: Vec<Session>,
    /// The pooler backends terminated to complete a pause.
    unblocked: Vec<Report>,
    /// Some backend was still starting into a database (then not a target).
    still_starting: bool,
}

/// Paused on the poolers first, so that their clients wait instead of failing; locked next,
/// so that clients reconnecting in a loop cannot get back in; then everything in the
/// databases that matches now is a target, once the backends that were starting into them
/// have shown up.
fn lock_then_find(ctx: &mut Context<'_>, filter: &Filter, opts: &DropReady) -> Result<Locked> {
    let targets = lock::Targets {
        dbs: filter.dbs.clone(),
        roles: Vec::new(),
    };
    let how = lock::How {
        method: opts.method,
        lock_timeout: opts.lock_timeout,
        dry_run: false,
    };
    let (entries, unblocked) = pause_and_lock(ctx, &targets, how, &opts.pause, true)?;
    let changes: Vec<lock::Change> = entries.into_iter().map(|e| e.change).collect();
    let warning = ctx.trail.changes(&mut ctx.client, &changes, false)?;
    ctx.warn(warning);
    // Sessions that got in just before the lock are not in pg_stat_activity yet.
    let starting =
        holders::wait_for_starting(&mut ctx.client, &filter.dbs, holders::STARTING_WAIT)?;
    if !starting.is_empty() {
        ctx.printer.warn(&format!(
            "{} backend(s) (pid {}) got into the databases before the lock and were still \
             starting after {}s: they were not terminated; run the command again to end them",
            starting.len(),
            starting
                .iter()
                .map(i32::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            holders::STARTING_WAIT.as_secs()
        ));
    }
    let matched = find::again(ctx, filter)?;
    ctx.learn(matched.server);
    Ok(Locked {
        targets: matched.sessions,
        unblocked,
        still_starting: !starting.is_empty(),
    })
}

/// --rollback-prepared, before the lock: one connection into each database that has prepared
/// transactions. A database that pgkick's lock keeps closed already (an earlier run of this
/// command) is opened for just that connection (`lock::window`).
fn open_rollback(
    ctx: &mut Context<'_>,
    dbs: &[String],
    lock_timeout: Duration,
) -> Result<holders::PreparedRollback> {
    let server = ctx.server()?;
    let prepared = holders::find_prepared(&mut ctx.client, &server, dbs)?;
    let dbs: BTreeSet<String> = prepared
        .iter()
        .filter(|h| h.outcome == Kind::PreparedTransaction)
        .map(|h| h.datname.clone())
        .collect();
    holders::PreparedRollback::open(&dbs.into_iter().collect::<Vec<_>>(), |db| {
        let window =
            lock::window::open(&mut ctx.client, db, lock_timeout).context("--rollback-prepared")?;
        let client = ctx.connect_to(db).with_context(|| {
            format!(
                "--rollback-prepared: could not connect to database \"{db}\" to roll back its \
                 prepared transactions; nothing was changed"
            )
        });
        if let Some(window) = window {
            window.close(&mut ctx.client)?;
        }
        client
    })
}

/// After the terminations: rolls back prepared transactions (--rollback-prepared), closes
/// pgkick's connections into the databases, and reads what still holds them. With --wait,
/// waits up to --wait-timeout for holders that are on their way out (backends pgkick
/// signalled or closed, workers of disabled subscriptions); pgkick's own closed connections
/// are waited for in any case.
fn what_holds(
    ctx: &mut Context<'_>,
    dbs: &[String],
    reports: &[Report],
    rollback: Option<holders::PreparedRollback>,
    opts: &DropReady,
) -> Result<Vec<Holder>> {
    let server = ctx.server()?;
    let wait = opts.signal.wait;
    let reported: BTreeSet<i32> = reports.iter().map(|r| r.session.pid).collect();
    let mut rolled_back = Vec::new();
    let mut failed = Vec::new();
    let mut own = BTreeSet::new();
    if let Some(mut rollback) = rollback {
        own = rollback.pids();
        let mut found = holders::find_prepared(&mut ctx.client, &server, dbs)?;
        rollback.rollback(&mut found);
        rollback.close();
        (failed, rolled_back) = found.into_iter().partition(Holder::holds);
    }
    let exclude = holders::Exclude { pids: reported };
    let within = if wait.wait {
        wait.timeout
    } else {
        Duration::from_secs(5)
    };
    // Without --wait only pgkick's own connections are waited for.
    let ended: BTreeSet<i32> = reports
        .iter()
        .filter(|r| wait.wait && r.outcome == Outcome::Terminated)
        .map(|r| r.session.pid)
        .chain(own.iter().copied())
        .collect();
    let mut backoff =
        interrupt::Backoff::new(within, Duration::from_millis(5), Duration::from_millis(200));
    let held = loop {
        let held = holders::find(&mut ctx.client, &server, dbs, &exclude)?;
        let leaving = held
            .iter()
            .filter(|h| h.pid.is_some_and(|p| own.contains(&p)) || (wait.wait && h.leaving(&ended)))
            .count();
        if leaving == 0 || backoff.left().is_zero() {
            break held;
        }
        ctx.printer.progress(
            "waiting for what holds the databases",
            leaving,
            backoff.left(),
        );
        backoff.sleep()?;
    };
    ctx.printer.progress("", 0, Duration::ZERO);
    // A prepared transaction whose rollback failed keeps the server's reason in its fix.
    let held = held.into_iter().map(|h| {
        failed
            .iter()
            .find(|f| f.outcome == h.outcome && f.datname == h.datname && f.gid == h.gid)
            .map_or(h.clone(), |f| Holder {
                fix: f.fix.clone(),
                ..h
            })
    });
    rolled_back.extend(held);
    Ok(rolled_back)
}

/// One line on stderr for each session and holder still in a database.
fn warn_what_holds(printer: &Printer, reports: &[Report], held: &[Holder]) {
    for r in reports {
        let why = match r.outcome {
            Outcome::StillPresent => "it did not exit within --wait-timeout",
            Outcome::PermissionDenied => "pgkick's role may not terminate it",
            _ => continue,
        };
        printer.warn(&format!(
            "database \"{}\" is still held by {} pid {}: {why}",
            r.session.datname.as_deref().unwrap_or_default(),
            r.session
                .backend_type
                .as_deref()
                .unwrap_or(crate::columns::DEFAULT_BACKEND_TYPE),
            r.session.pid
        ));
    }
    for h in held {
        if h.holds() {
            printer.warn(&h.line());
        } else {
            printer.note(&h.line());
        }
    }
}

/// The report: in JSON one array, the sessions then the holders; as tables, the sessions,
/// then (when there are any) the holders with their fixes.
fn print_entries(printer: &Printer, reports: Vec<Report>, held: Vec<Holder>) -> Result<()> {
    if printer.is_json() {
        return Ok(printer.print(&holders::entries(reports, held))?);
    }
    printer.print(&reports)?;
    if held.is_empty() {
        return Ok(());
    }
    Ok(printer.print(&held)?)
}

/// --dry-run: a line that says what would happen (the lock, the sessions, what would still
/// hold the databases), the sessions and holders, the chains it would break, and the
/// statements; changes nothing.
fn show_plan(ctx: &mut Context<'_>, opts: &DropReady, targets: &[Session]) -> Result<ExitStatus> {
    let signal = &opts.signal;
    let dbs = &signal.filter.dbs;
    let server = ctx.server()?;
    let exclude = holders::Exclude {
        pids: targets.iter().map(|s| s.pid).collect(),
    };
    let mut held = holders::find(&mut ctx.client, &server, dbs, &exclude)?;
    if opts.rollback_prepared {
        for h in &mut held {
            if h.outcome == Kind::PreparedTransaction {
                h.outcome = Kind::WouldRollBack;
            }
        }
    }
    let how = lock::How {
        method: opts.method,
        lock_timeout: opts.lock_timeout,
        dry_run: true,
    };
    let lock_targets = lock::Targets {
        dbs: dbs.clone(),
        roles: Vec::new(),
    };
    let changes = lock::lock(&mut ctx.client, &server, &lock_targets, how, &[])?;
    let reports = dry_run::predict(ctx, signal.action, targets)?;
    let locks: Vec<String> = changes
        .iter()
        .map(|c| format!("database {}: {}", c.name, c.status))
        .collect();
    let holding = held.iter().filter(|h| h.holds()).count();
    let after = match holding {
        0 => String::new(),
        1 => "; 1 thing would still hold the databases (listed below)".into(),
        n => format!("; {n} things would still hold the databases (listed below)"),
    };
    let sessions = dry_run::summary(signal.action, &reports);
    let sessions = sessions.trim_end_matches("; nothing was changed");
    ctx.printer.dry_run_summary(&format!(
        "{}; {sessions}{after}; nothing was changed",
        locks.join(", ")
    ))?;
    ctx.trail.changes(&mut ctx.client, &changes, true)?;
    ctx.trail.planned_sessions(&reports)?;
    print_entries(ctx.printer, reports, held.clone())?;
    dry_run::chains_to_break(ctx, &signal.filter, targets)?;
    pooling::print_pause_plan(&opts.pause, dbs, ctx.printer)?;
    statements(ctx.printer, &changes)?;
    dry_run::statements(ctx, &signal.filter, signal.first_action(), targets)?;
    let mut opened = BTreeSet::new();
    for h in held.iter().filter(|h| h.outcome == Kind::WouldRollBack) {
        let db = escape_identifier(&h.datname);
        if opened.insert(&h.datname) {
            if let Some(window) = lock::window::would_open(&mut ctx.client, &h.datname)? {
                ctx.printer.dry_run_sql(&format!(
                    "-- database {db} is closed by pgkick's lock: opened for one connection, \
                     then closed again\n{};",
                    window.join(";\n")
                ))?;
            }
        }
        ctx.printer.dry_run_sql(&format!(
            "-- in database {db}:\n{};",
            holders::rollback_statement(h.gid.as_deref().unwrap_or_default())
        ))?;
    }
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Session;

    fn report(pid: i32, outcome: Outcome) -> Report {
        Report {
            session: Session {
                pid,
                ..Session::default()
            },
            outcome,
        }
    }

    fn holder(outcome: Kind) -> Holder {
        Holder {
            outcome,
            datname: "shop".into(),
            ..Holder::default()
        }
    }

    #[test]
    fn exit_0_only_when_nothing_is_left_in_the_databases() {
        let locked = |still_starting| Locked {
            targets: Vec::new(),
            unblocked: Vec::new(),
            still_starting,
        };
        let found = |prepared_selected| guard::Targets {
            sessions: Vec::new(),
            prepared_selected,
            held_in_dbs: None,
            unknown: Vec::new(),
        };
        let ended = [report(1, Outcome::Terminated)];
        let cases = [
            (false, false, &ended[..], Vec::new(), ExitStatus::Success),
            (true, false, &ended[..], Vec::new(), ExitStatus::Partial),
            (false, true, &ended[..], Vec::new(), ExitStatus::Partial),
            (
                false,
                false,
                &[report(1, Outcome::StillPresent)][..],
                Vec::new(),
                ExitStatus::Partial,
            ),
            (
                false,
                false,
                &ended[..],
                vec![holder(Kind::PreparedTransaction)],
                ExitStatus::Partial,
            ),
            (
                false,
                false,
                &ended[..],
                vec![holder(Kind::RolledBack)],
                ExitStatus::Success,
            ),
        ];
        for (starting, prepared, reports, held, want) in cases {
            let got = status(&locked(starting), &found(prepared), reports, &held);
            assert_eq!(got, want, "{starting} {prepared} {reports:?} {held:?}");
        }
    }
}
