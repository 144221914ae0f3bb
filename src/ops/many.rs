//! A run over many servers: the command on every server of the plan, in parallel, with one
//! report and one exit status.
//!
//! Each server runs the command exactly as a run on one server does (`one::run`), through a
//! printer that keeps its results (`Printer::capturing`); they are printed once at the end,
//! each row naming its server. The guards hold over the whole run: for cancel and terminate
//! with --max, or asking on a terminal, every server finds its targets and waits at the gate
//! on its connection (`fleet::Rendezvous`); once all have come, the run refuses or asks once,
//! and all go on or none. With more servers than `--jobs` (their connections cannot all stay
//! open), a counting pass comes first that only finds the targets (`signal::count`), and each
//! server then acts only on what was counted.

use std::cell::RefCell;
use std::sync::{mpsc, Arc};

use anyhow::Result;

use super::guard::{capitalized, Gate, Targets};
use super::{names, one, signal};
use crate::activity::Unknown;
use crate::audit;
use crate::conn::NotTargetSession;
use crate::error::{self, ExitStatus, Interrupted, Refused};
use crate::fleet::{runner, Member, Rendezvous, Seated, Verdict};
use crate::interrupt;
use crate::output::{Ended, Printer, ServerOutput};
use crate::plan::{Command, Guard, Plan, Servers};
use crate::session::Session;
use crate::signal::Action;

/// What a server brings to the gate of the run: its targets, and the names its filter gives
/// that it has no database or role of.
#[derive(Clone, Default)]
struct Found {
    targets: Vec<Session>,
    unknown: Vec<Unknown>,
}

impl From<Targets> for Found {
    fn from(t: Targets) -> Found {
        Found {
            targets: t.sessions,
            unknown: t.unknown,
        }
    }
}

/// The gate of server `index` of a run guarded in one pass: it waits for the verdict.
impl Gate for Seated<Found> {
    fn approve(&self, found: &Targets, _guard: &Guard) -> Result<Option<Vec<Session>>> {
        self.arrive_with(Found {
            targets: found.sessions.clone(),
            unknown: found.unknown.clone(),
        })
        .map(|()| None)
    }

    fn asked(&self) -> bool {
        Seated::asked(self)
    }
}

/// The acting pass's gate: what was counted and confirmed for this server (`None` when the
/// run had no counting pass).
struct Allowed(Option<Vec<Session>>);

impl Gate for Allowed {
    fn approve(&self, _found: &Targets, _guard: &Guard) -> Result<Option<Vec<Session>>> {
        Ok(self.0.clone())
    }
}

/// How the guards of the run are kept, when the command has any to keep over all servers:
/// --max, a question on a terminal, and the --db and --user names, which must each exist on
/// some server before any server acts (a typo is refused, as on one server).
struct Guards {
    guard: Guard,
    action: Action,
    /// Ask once on a terminal.
    ask: bool,
}

fn guards(command: &Command, printer: &Printer) -> Option<Guards> {
    let signal = match command {
        Command::Signal(s) => s,
        Command::DropReady(d) => &d.signal,
        _ => return None,
    };
    let guard = signal.guard;
    let ask = !guard.yes && !guard.dry_run && printer.interactive();
    let names = !signal.filter.named_dbs().is_empty() || !signal.filter.named_users().is_empty();
    (guard.max.is_some() || ask || names).then_some(Guards {
        guard,
        action: signal.action,
        ask,
    })
}

/// Runs the plan's command on each of `members`, at most `jobs` at a time (`each_host`:
/// a host that does not match target_session_attrs is skipped, not failed).
pub fn run(plan: &Arc<Plan>, log: &Arc<audit::Log>) -> Result<ExitStatus> {
    let Servers::Many {
        members,
        jobs,
        each_host,
    } = &plan.servers
    else {
        unreachable!("a run over many servers has many");
    };
    let (members, jobs, each_host) = (members.as_slice(), *jobs, *each_host);
    let printer = Printer::new(plan.output);
    // One slot per server: how its part is let through the guards, and how it ended.
    let mut slots: Vec<Slot> = members
        .iter()
        .map(|member| Slot {
            member: member.clone(),
            gate: Box::new(Allowed(None)),
            ended: None,
            unknown: Vec::new(),
        })
        .collect();
    let mut seated = None;
    match guards(&plan.command, &printer) {
        // Every server's connection can stay open at the gate: one pass.
        Some(guards) if members.len() <= jobs => {
            let rendezvous = Rendezvous::new(members.len());
            for (i, slot) in slots.iter_mut().enumerate() {
                slot.gate = Box::new(Seated::new(&rendezvous, i));
            }
            seated = Some((rendezvous, guards));
        }
        // More servers than --jobs: a counting pass first, then the acting pass on what was
        // counted (each server connected to twice).
        Some(guards) => {
            let mut found = Vec::new();
            for (slot, counted) in slots.iter_mut().zip(count(plan, members, jobs)?) {
                match counted {
                    Ok(f) => found.push(Some(f)),
                    Err(e) => {
                        slot.ended = Some(ServerOutput::failed(&slot.member.label, e));
                        found.push(None);
                    }
                }
            }
            decide(&printer, members, &found, &guards)?;
            for (slot, counted) in slots.iter_mut().zip(found) {
                slot.gate = Box::new(Allowed(counted.map(|f| f.targets)));
            }
        }
        None => {}
    }
    if seated.is_none() {
        interrupt::install()?;
    }
    let mut todo = Vec::new();
    for (i, slot) in slots.iter_mut().enumerate() {
        match &mut slot.ended {
            Some(out) => report(&printer, out),
            None => {
                let gate = std::mem::replace(&mut slot.gate, Box::new(Allowed(None)));
                todo.push((i, slot.member.clone(), gate));
            }
        }
    }
    let work_plan = Arc::clone(plan);
    let work_log = Arc::clone(log);
    let rendezvous = seated.as_ref().map(|(r, _)| Arc::clone(r));
    let work = Arc::new(
        move |(i, member, gate): (usize, Member, Box<dyn Gate + Send>)| {
            // Left however the server's part ends, a panic included, so the gate never waits
            // for a server that is gone.
            let _leave = rendezvous.as_ref().map(|r| r.leaving(i));
            (
                i,
                part(&work_plan, &member, gate.as_ref(), &work_log, each_host),
            )
        },
    );
    let (tx, rx) = mpsc::channel();
    let running = std::thread::spawn(move || {
        runner::run(todo, jobs, work, |_, out| {
            let _ = tx.send(out);
        })
    });
    if let Some((rendezvous, guards)) = &seated {
        // Before the verdict nothing was signalled anywhere, and a signal still ends pgkick
        // at once (as at a one-server prompt).
        let decided = match rendezvous.wait_for_all(|| interrupt::received().is_some()) {
            Some(found) => decide(&printer, members, &found, guards),
            None => interrupt::check().map(|()| false),
        };
        match decided.and_then(|asked| interrupt::install().map(|()| asked)) {
            Ok(asked) => rendezvous.decide(Verdict::Go { asked }),
            Err(e) => {
                rendezvous.decide(Verdict::Stop);
                return Err(e);
            }
        }
    }
    for (i, (mut out, unknown)) in rx {
        report(&printer, &mut out);
        slots[i].ended = Some(out);
        slots[i].unknown = unknown;
    }
    // What the runner gave up on after an interrupt.
    let _ = running.join();
    for slot in slots.iter_mut().filter(|s| s.ended.is_none()) {
        let mut out = ServerOutput::failed(
            &slot.member.label,
            "interrupted before it finished; what it did is unknown".into(),
        );
        report(&printer, &mut out);
        slot.ended = Some(out);
    }
    // Those that found their sessions (the gate has refused any such name of cancel and
    // terminate already; list says so here).
    let nowhere = names::unknown_everywhere(
        slots
            .iter()
            .filter(|s| {
                matches!(
                    s.ended,
                    Some(ServerOutput {
                        ended: Ended::Done(_),
                        ..
                    })
                )
            })
            .map(|s| s.unknown.as_slice()),
    );
    let outputs: Vec<ServerOutput> = slots.into_iter().filter_map(|s| s.ended).collect();
    printer.print_fleet(&outputs)?;
    if let Some(signal) = interrupt::received() {
        return Err(Interrupted { signal }.into());
    }
    if !nowhere.is_empty() {
        // A name no server has: list says so. Cancel and terminate were refused at the gate
        // when no server had it there; this is a name that went missing after a counting
        // pass (dropped before the acting pass), still no "nothing to do".
        if matches!(plan.command, Command::List(_)) {
            for u in &nowhere {
                printer.warn(&format!("{u}, on none of the servers"));
            }
        } else {
            return Err(names::refusal(&nowhere).context("on none of the servers"));
        }
    }
    Ok(exit_status(outputs.iter().map(|o| &o.ended)))
}

/// One server of the run as it goes.
struct Slot {
    member: Member,
    /// How its part is let through the guards of the run.
    gate: Box<dyn Gate + Send>,
    /// How its part ended, once it has.
    ended: Option<ServerOutput>,
    /// The names its filter gives that it has no database or role of.
    unknown: Vec<Unknown>,
}

/// The guards over the whole run, from what every server found (`None`: it could not be
/// counted): a --db or --user name no server has, --max over all of them together, then one
/// question on a terminal; true when it was asked. An error refuses, and nothing was
/// signalled anywhere.
fn decide(
    printer: &Printer,
    members: &[Member],
    found: &[Option<Found>],
    guards: &Guards,
) -> Result<bool> {
    let nowhere = names::unknown_everywhere(found.iter().flatten().map(|f| f.unknown.as_slice()));
    if !nowhere.is_empty() {
        return Err(names::refusal(&nowhere).context("on none of the servers"));
    }
    let groups: Vec<(String, Vec<Session>)> = members
        .iter()
        .zip(found)
        .filter_map(|(member, f)| Some((member.label.clone(), f.as_ref()?.targets.clone())))
        .filter(|(_, t)| !t.is_empty())
        .collect();
    let total: usize = groups.iter().map(|(_, t)| t.len()).sum();
    let on = match groups.len() {
        1 => "1 server".to_string(),
        n => format!("{n} servers"),
    };
    if let Some(max) = guards.guard.max.filter(|&max| total > max) {
        return Err(Refused(format!(
            "{total} sessions match on {on}, more than --max {max}; nothing was signalled"
        ))
        .into());
    }
    if guards.ask && total > 0 {
        let verb = capitalized(guards.action.verb());
        let question = match total {
            1 => format!("{verb} this session?"),
            n => format!("{verb} these {n} sessions on {on}?"),
        };
        if !printer.confirm_fleet(&groups, &question)? {
            return Err(Refused("not confirmed; nothing was signalled".into()).into());
        }
        return Ok(true);
    }
    Ok(false)
}

/// What the counting pass found on a server, or why (one line) it could not be counted.
type CountResult = Result<Found, String>;

/// The counting pass, on every server: each finds its targets and changes nothing.
fn count(plan: &Arc<Plan>, members: &[Member], jobs: usize) -> Result<Vec<CountResult>> {
    let mut counted: Vec<Option<CountResult>> = (0..members.len()).map(|_| None).collect();
    let work_plan = Arc::clone(plan);
    let work = Arc::new(move |member: Member| -> CountResult {
        let signal = match &work_plan.command {
            Command::Signal(s) => s,
            Command::DropReady(d) => &d.signal,
            _ => return Ok(Found::default()),
        };
        let printer = Printer::silent(work_plan.output, &member.label);
        signal::count(signal, &member, &printer)
            .map(Found::from)
            .map_err(|e| error::one_line(&e))
    });
    runner::run(members.to_vec(), jobs, work, |i, r| {
        counted[i] = Some(r);
    });
    if let Some(signal) = interrupt::received() {
        return Err(Interrupted { signal }.into());
    }
    Ok(counted
        .into_iter()
        .map(|c| c.unwrap_or_else(|| Ok(Found::default())))
        .collect())
}

/// One server's part of the run.
fn part(
    plan: &Plan,
    member: &Member,
    gate: &dyn Gate,
    log: &audit::Log,
    each_host: bool,
) -> (ServerOutput, Vec<Unknown>) {
    let printer = Printer::capturing(plan.output, &member.label);
    let unknown = RefCell::new(Vec::new());
    let part = super::Part {
        member,
        printer: &printer,
        gate,
        log,
        unknown: names::Policy::Many(&unknown),
    };
    let result = one::run(&plan.command, &part);
    let ended = match result {
        Ok(status) => Ended::Done(status),
        Err(e) if e.chain().any(|c| c.is::<NotTargetSession>()) && each_host => {
            Ended::Skipped(error::one_line(&e))
        }
        Err(e) => Ended::Failed(error::one_line(&e)),
    };
    let output = ServerOutput {
        label: member.label.clone(),
        captured: printer.into_captured(),
        ended,
    };
    (output, unknown.into_inner())
}

/// As each server finishes: its failure (or skip) on stderr, its JSON lines on stdout.
fn report(printer: &Printer, out: &mut ServerOutput) {
    match &out.ended {
        Ended::Failed(e) => printer.server_failed(&out.label, e),
        Ended::Skipped(why) => printer.note(&format!("{}: skipped: {why}", out.label)),
        Ended::Done(_) => {}
    }
    if let Err(e) = printer.print_server_lines(out) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            printer.server_failed(&out.label, &format!("could not print: {e}"));
        }
    }
}

/// 0 when every server succeeded (or was skipped), 1 when none did, 3 otherwise.
fn exit_status<'a>(ended: impl IntoIterator<Item = &'a Ended>) -> ExitStatus {
    let ended: Vec<&Ended> = ended.into_iter().collect();
    let failed = ended
        .iter()
        .filter(|e| matches!(e, Ended::Failed(_)))
        .count();
    if !ended.is_empty() && failed == ended.len() {
        ExitStatus::Runtime
    } else if failed > 0
        || ended
            .iter()
            .any(|e| matches!(e, Ended::Done(s) if *s != ExitStatus::Success))
    {
        ExitStatus::Partial
    } else {
        ExitStatus::Success
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_status_over_servers() {
        use Ended::*;
        let why = String::new;
        assert_eq!(
            exit_status(&[Done(ExitStatus::Success), Skipped(why())]),
            ExitStatus::Success
        );
        assert_eq!(
            exit_status(&[Done(ExitStatus::Success), Failed(why())]),
            ExitStatus::Partial
        );
        assert_eq!(
            exit_status(&[Done(ExitStatus::Partial), Done(ExitStatus::Success)]),
            ExitStatus::Partial
        );
        assert_eq!(
            exit_status(&[Failed(why()), Failed(why())]),
            ExitStatus::Runtime
        );
    }
}
