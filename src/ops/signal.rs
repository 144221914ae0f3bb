//! cancel and terminate (without --lock): find the targets and guard them, then show what
//! would happen (--dry-run) or ask, recheck, signal, wait, record and report; with --every,
//! one round after another.

use anyhow::Result;

use super::guard;
use super::Part;
use super::{act, dry_run, find, names, Context};
use crate::audit;
use crate::error::ExitStatus;
use crate::fleet::Member;
use crate::output::Printer;
use crate::plan::Signal;
use crate::session::Session;
use crate::signal::Report;
use crate::watch;

/// cancel or terminate on one server: one run, or with --every one round after another
/// (rounds never ask for confirmation or for a password: the plan says so).
pub fn run(opts: &Signal, part: &Part<'_>) -> Result<ExitStatus> {
    let trail = part.log.trail(&part.member.settings);
    let Some(watch) = opts.watch else {
        return once(opts, part, &trail);
    };
    watch::run(watch.every, watch.rounds, part.printer, |round| {
        trail.set_round(round);
        once(opts, part, &trail)
    })
}

/// The counting pass of a fleet with --max, a confirmation or names to check: the targets on
/// this server (and the names it has none of), found and changed nothing.
pub fn count(opts: &Signal, member: &Member, printer: &Printer) -> Result<guard::Targets> {
    let log = audit::Log::none();
    let trail = log.trail(&member.settings);
    let mut ctx = Context::open(member, printer, &trail)?;
    // What it finds of unknown names the acting pass says.
    let unknown = std::cell::RefCell::new(Vec::new());
    let policy = names::Policy::Many(&unknown);
    guard::targets(&mut ctx, &opts.filter, &policy)
}

/// One run: find and guard (nothing changes), then show the plan or carry it out.
fn once(opts: &Signal, part: &Part<'_>, trail: &audit::Trail<'_>) -> Result<ExitStatus> {
    let (printer, gate) = (part.printer, part.gate);
    let mut ctx = Context::open(part.member, printer, trail)?;
    let found = guard::targets(&mut ctx, &opts.filter, &part.unknown)?;
    let allowed = gate.approve(&found, &opts.guard)?;
    if opts.guard.dry_run {
        return show_plan(&mut ctx, opts, found.sessions);
    }
    find::note_hidden_holders(&mut ctx, &opts.filter.dbs, found.held_in_dbs)?;
    if found.sessions.is_empty() {
        printer.print::<Report>(&[])?;
        return Ok(act::status(found.prepared_selected, &[]));
    }
    let asked = guard::confirm(&ctx, opts.action, &found.sessions, &opts.guard)?;
    crate::interrupt::install()?;
    // A person may take a while to answer: what matched then (a lock chain, above all) may
    // have resolved since. Only the targets that still match are signalled.
    let (targets, stale) = if asked || gate.asked() {
        guard::recheck(&mut ctx, &opts.filter, found.sessions)?
    } else {
        (found.sessions, Vec::new())
    };
    let targets = guard::allowed_only(targets, &allowed);
    let mut reports = act::signal(&mut ctx, opts, &targets)?;
    let finished = act::grace_and_wait(&mut ctx, opts, &opts.filter, &mut reports);
    // Records for what was acted on: the sessions that no longer matched were not.
    let audited = act::audit(&mut ctx, &reports);
    reports.extend(stale);
    reports.sort_by_key(|r| r.session.pid);
    printer.print(&reports)?;
    audited?;
    finished?;
    Ok(act::status(found.prepared_selected, &reports))
}

/// --dry-run: the sessions and what would happen to them, the chains it would break, and the
/// statement; changes nothing.
fn show_plan(ctx: &mut Context<'_>, opts: &Signal, targets: Vec<Session>) -> Result<ExitStatus> {
    let reports = dry_run::predict(ctx, opts.action, &targets)?;
    ctx.printer
        .dry_run_summary(&dry_run::summary(opts.action, &reports))?;
    ctx.trail.planned_sessions(&reports)?;
    ctx.printer.print(&reports)?;
    dry_run::chains_to_break(ctx, &opts.filter, &targets)?;
    dry_run::statements(ctx, &opts.filter, opts.first_action(), &targets)?;
    Ok(ExitStatus::Success)
}
