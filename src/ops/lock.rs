//! lock and unlock (and `lock --list`): connect, pause the poolers and lock (or unlock and
//! resume them), record, report. What a database's change did on its poolers, and the
//! backends terminated so that a pause could complete, travel beside the change (an
//! [`Entry`]).

use anyhow::Result;

use super::entry::Entry;
use super::{find, pooling, Context, Part};
use crate::error::ExitStatus;
use crate::lock::{self, Targets};
use crate::output::Printer;
use crate::plan::{Lock, Pause, Unlock};
use crate::signal::Report;

/// `lock`: lock the databases and roles (pausing the databases on the poolers first), or with
/// --list show what is locked.
pub fn run_lock(opts: &Lock, part: &Part<'_>) -> Result<ExitStatus> {
    let (member, printer) = (part.member, part.printer);
    let trail = part.log.trail(&member.settings);
    let mut ctx = Context::open(member, printer, &trail)?;
    let server = ctx.server()?;
    if opts.list {
        printer.print(&lock::list(&mut ctx.client, &server)?)?;
        return Ok(ExitStatus::Success);
    }
    crate::interrupt::install()?;
    if opts.dry_run {
        let how = lock::How {
            method: opts.method,
            lock_timeout: opts.lock_timeout,
            dry_run: true,
        };
        let changes = lock::lock(&mut ctx.client, &server, &opts.targets, how, &[])?;
        report(&mut ctx, changes.into_iter().map(Entry::of).collect(), true)?;
        pooling::print_pause_plan(&opts.pause, &opts.targets.dbs, printer)?;
        return Ok(ExitStatus::Success);
    }
    let how = lock::How {
        method: opts.method,
        lock_timeout: opts.lock_timeout,
        dry_run: false,
    };
    let (entries, terminated) = pause_and_lock(&mut ctx, &opts.targets, how, &opts.pause, false)?;
    // The backends terminated so that a pause could complete are acted on too: audited (and
    // reported beside their database's change).
    if !terminated.is_empty() {
        let warning = trail.sessions(&mut ctx.client, &terminated)?;
        ctx.warn(warning);
    }
    report(&mut ctx, entries, false)?;
    find::note_hidden_holders(&mut ctx, &opts.targets.dbs, None)?;
    Ok(ExitStatus::Success)
}

/// `unlock`: give back what the lock changed, then resume the databases on the poolers named.
/// Exit 3 when a pooler stayed paused or something the record asked for was not given back.
pub fn run_unlock(opts: &Unlock, part: &Part<'_>) -> Result<ExitStatus> {
    let (member, printer) = (part.member, part.printer);
    let trail = part.log.trail(&member.settings);
    let mut ctx = Context::open(member, printer, &trail)?;
    let server = ctx.server()?;
    crate::interrupt::install()?;
    let changes = lock::unlock(
        &mut ctx.client,
        &server,
        &opts.targets,
        opts.dry_run,
        opts.lock_timeout,
    )?;
    if opts.dry_run {
        pooling::print_resume_plan(&changes, &opts.poolers, printer)?;
        report(&mut ctx, changes.into_iter().map(Entry::of).collect(), true)?;
        return Ok(ExitStatus::Success);
    }
    let mut entries: Vec<Entry> = changes.into_iter().map(Entry::of).collect();
    // The server side is unlocked whatever the poolers say; one not resumed is exit 3, and
    // so is anything the record asked for that unlock did not give back.
    let resumed = pooling::resume(&mut entries, &opts.poolers, member.params.password, printer);
    let undone = warn_left_undone(printer, &entries);
    report(&mut ctx, entries, false)?;
    Ok(if resumed && !undone {
        ExitStatus::Success
    } else {
        ExitStatus::Partial
    })
}

/// lock and terminate --lock: pause the databases on the poolers, then lock them, recording
/// the pauses with the lock; a lock that fails resumes what was paused. With `note`, each
/// change is noted on stderr before what was done on the poolers. Returns the entries and the
/// pooler backends terminated so that a pause could complete.
pub fn pause_and_lock(
    ctx: &mut Context<'_>,
    targets: &Targets,
    how: lock::How,
    pause: &Pause,
    note: bool,
) -> Result<(Vec<Entry>, Vec<Report>)> {
    let pauses = pooling::pause(ctx, &targets.dbs, pause)?;
    let server = ctx.server()?;
    let changes = match lock::lock(&mut ctx.client, &server, targets, how, &pauses.entries()) {
        Ok(changes) => changes,
        Err(e) => return Err(pauses.release_on(e)),
    };
    if note {
        for change in &changes {
            ctx.printer
                .note(&format!("database {}: {}", change.name, change.status));
        }
    }
    let mut entries: Vec<Entry> = changes.into_iter().map(Entry::of).collect();
    pauses.attach(&mut entries, ctx.printer);
    Ok((entries, pauses.terminated))
}

/// unlock: one warning for each thing a change did not give back, with the statements that
/// would (to run by hand once the reason is dealt with). True when there was any.
fn warn_left_undone(printer: &Printer, entries: &[Entry]) -> bool {
    let mut any = false;
    for change in entries.iter().map(|e| &e.change) {
        for note in change.left_undone() {
            any = true;
            let lock::Note::NotRestored { statements, .. } = note else {
                continue;
            };
            let run = if statements.is_empty() {
                String::new()
            } else {
                format!("; to give it back: {}", statements.join(" "))
            };
            printer.warn(&format!("{} \"{}\": {note}{run}", change.kind, change.name));
        }
    }
    any
}

/// What lock or unlock did; with `dry_run`, also the statements each change would run. The
/// audit records are written first, and an error writing them is returned once the changes
/// are shown.
fn report(ctx: &mut Context<'_>, entries: Vec<Entry>, dry_run: bool) -> Result<()> {
    let changes: Vec<lock::Change> = entries.iter().map(|e| e.change.clone()).collect();
    let audited = ctx.trail.changes(&mut ctx.client, &changes, dry_run);
    ctx.printer.print(&entries)?;
    if dry_run {
        statements(ctx.printer, &changes)?;
    }
    ctx.warn(audited?);
    Ok(())
}

/// --dry-run of lock, unlock and terminate --lock: the statements each change would run.
pub fn statements(printer: &Printer, changes: &[lock::Change]) -> Result<()> {
    for change in changes.iter().filter(|c| !c.statements.is_empty()) {
        printer.dry_run_sql(&change.statements.join("\n"))?;
    }
    Ok(())
}
