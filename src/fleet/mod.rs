//! Many servers at once: the same command on every server of the run, in parallel, with one
//! report and one exit status.
//!
//! - `servers.rs`: which servers (`-d` repeated, `--servers FILE`, `--each-host`), each once,
//!   and their labels;
//! - `runner.rs`: at most `--jobs` servers at a time, each on its own thread;
//! - `rendezvous.rs`: the guards in one pass, every server waiting at the gate.
//!
//! Each server runs the command exactly as a run on one server does (`commands::run_on`),
//! through a printer that keeps its results (`Printer::capturing`); they are printed once at
//! the end, each row naming its server. The guards hold over the whole run: for cancel and
//! terminate with --max, or asking on a terminal, every server finds its targets and waits at
//! the gate on its connection; once all have come, the run refuses or asks once, and all go
//! on or none. With more servers than `--jobs` (their connections cannot all stay open), a
//! counting pass that stops before anything is signalled comes first, and each server then
//! acts only on what was counted.
//!
//! A run that names one server (no `-d` or one, no `--servers`, one host) is the one-server
//! run, with its messages and exit statuses unchanged; only the `server` field is added to
//! its JSON objects.

mod rendezvous;
mod runner;
mod servers;

use std::sync::{mpsc, Arc, Mutex};

use anyhow::Result;

use crate::cli::{Cli, Command, GuardArgs};
use crate::commands::{self, Gate, OneServer};
use crate::conn::NotTargetSession;
use crate::error::{self, ExitStatus, Interrupted, Refused, Usage};
use crate::filter::Filter;
use crate::interrupt;
use crate::output::{Ended, Printer, ServerOutput};
use crate::session::Session;
use crate::signal::Action;
use rendezvous::{Rendezvous, Seated, Verdict};

pub use servers::Server;

/// Runs the command line: on one server as always, or on each of many.
pub fn run(cli: Cli) -> Result<ExitStatus> {
    let servers = which_servers(&cli)?;
    let Some(servers) = servers else {
        let mut conn = cli.conn.clone();
        conn.dbname = conn.dbnames.first().cloned();
        let server = servers::single(conn);
        let printer = Printer::new(cli.output.options()).for_server(&server.label);
        return commands::run_on(&cli, &server.conn, &printer, &OneServer);
    };
    let every = match &cli.command {
        Command::Cancel(a) => a.watch.every.is_some(),
        Command::Terminate(a) => a.watch.every.is_some(),
        _ => false,
    };
    if every {
        return Err(Usage(
            "--every runs on one server: give one -d (one pgkick --every per server), or \
             run the fleet from cron"
                .into(),
        )
        .into());
    }
    if matches!(cli.command, Command::Conninfo(_)) {
        return Err(Usage(
            "conninfo shows one server: give at most one -d, and no --servers or --each-host"
                .into(),
        )
        .into());
    }
    many(cli, servers)
}

/// `None` for a run on one server; otherwise the servers, each once. A value that does not
/// resolve is a usage error, found before anything connects.
fn which_servers(cli: &Cli) -> Result<Option<Vec<Server>>> {
    let fleet = &cli.fleet;
    let given = servers::dbname_flags(&std::env::args_os().collect::<Vec<_>>());
    if given > cli.conn.dbnames.len() {
        return Err(Usage(
            "-d is given both before and after the subcommand, and only one side would be \
             used: give every -d on the same side"
                .into(),
        )
        .into());
    }
    let mut values: Vec<(servers::Source, String)> = cli
        .conn
        .dbnames
        .iter()
        .enumerate()
        .map(|(i, v)| (servers::Source::Flag(i + 1), v.clone()))
        .collect();
    let mut file = String::new();
    if let Some(path) = &fleet.servers {
        let text = if path.as_os_str() == "-" {
            file = "standard input".into();
            std::io::read_to_string(std::io::stdin())
                .map_err(|e| Usage(format!("--servers -: cannot read standard input: {e}")))?
        } else {
            file = path.display().to_string();
            std::fs::read_to_string(path)
                .map_err(|e| Usage(format!("--servers {file}: cannot read it: {e}")))?
        };
        let listed = servers::file_values(&text);
        if listed.is_empty() && values.is_empty() {
            let name = path.display();
            return Err(Usage(format!("--servers {name}: no servers listed")).into());
        }
        values.extend(listed);
    }
    if values.len() <= 1 && !fleet.each_host && fleet.servers.is_none() {
        return Ok(None);
    }
    if values.is_empty() {
        // --each-host over the flags and PG* alone.
        values.push((servers::Source::Flag(1), String::new()));
    }
    let mut base = cli.conn.clone();
    base.dbnames.clear();
    let servers = servers::plan(&base, &values, fleet.each_host, &file, &|c| {
        crate::conn::Settings::resolve(c)
    })?;
    if servers.len() == 1 && fleet.servers.is_none() {
        return Ok(None);
    }
    Ok(Some(servers))
}

/// The guards of cancel and terminate, when the command is one.
fn signal_guard(cli: &Cli) -> Option<(&GuardArgs, Filter, Action)> {
    match &cli.command {
        Command::Cancel(a) => Some((&a.guard, Filter::from_args(&a.filter), Action::Cancel)),
        Command::Terminate(a) => Some((&a.guard, Filter::from_args(&a.filter), Action::Terminate)),
        _ => None,
    }
}

/// The counting pass stops here: the targets are known, nothing was signalled.
#[derive(Debug)]
struct Counted;

impl std::fmt::Display for Counted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("targets counted")
    }
}
impl std::error::Error for Counted {}

/// The counting pass's gate: keeps the targets and stops the run.
#[derive(Default)]
struct Count(Mutex<Option<Vec<Session>>>);

impl Gate for Count {
    fn approve(&self, targets: &[Session], _guard: &GuardArgs) -> Result<Option<Vec<Session>>> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(targets.to_vec());
        Err(Counted.into())
    }
}

/// The acting pass's gate: what was counted and confirmed for this server (`None` when the
/// run had no counting pass).
struct Allowed(Option<Vec<Session>>);

impl Gate for Allowed {
    fn approve(&self, _targets: &[Session], _guard: &GuardArgs) -> Result<Option<Vec<Session>>> {
        Ok(self.0.clone())
    }
}

fn many(cli: Cli, servers: Vec<Server>) -> Result<ExitStatus> {
    let printer = Printer::new(cli.output.options());
    let jobs = usize::from(cli.fleet.jobs);
    let mut gates: Vec<Box<dyn Gate + Send>> = Vec::new();
    let mut early: Vec<Option<ServerOutput>> = (0..servers.len()).map(|_| None).collect();
    let mut seated = None;
    let cli = Arc::new(cli);
    let guards = match signal_guard(&cli) {
        Some((guard, filter, action)) => {
            commands::refuse_unfiltered(&filter, guard, action)?;
            let ask = !guard.yes && !guard.dry_run && printer.interactive();
            (guard.max.is_some() || ask).then_some((guard, action, ask))
        }
        None => None,
    };
    match guards {
        // Every server's connection can stay open at the gate: one pass.
        Some(guards) if servers.len() <= jobs => {
            let rendezvous = Rendezvous::new(servers.len());
            for i in 0..servers.len() {
                gates.push(Box::new(Seated::new(&rendezvous, i)));
            }
            seated = Some((rendezvous, guards));
        }
        // More servers than --jobs: a counting pass first, then the acting pass on what was
        // counted (each server connected to twice).
        Some((guard, action, ask)) => {
            let counted = count(&cli, &servers, jobs)?;
            let mut targets = Vec::new();
            for (i, result) in counted.into_iter().enumerate() {
                match result {
                    Ok(t) => targets.push(Some(t)),
                    Err(e) => {
                        early[i] = Some(ServerOutput::failed(&servers[i].label, e));
                        targets.push(None);
                    }
                }
            }
            decide(&printer, &servers, &targets, guard, action, ask)?;
            gates.extend(
                targets
                    .into_iter()
                    .map(|t| Box::new(Allowed(t)) as Box<dyn Gate + Send>),
            );
        }
        None => gates.extend(
            servers
                .iter()
                .map(|_| Box::new(Allowed(None)) as Box<dyn Gate + Send>),
        ),
    }
    if seated.is_none() {
        interrupt::install()?;
    }
    let mut outputs: Vec<Option<ServerOutput>> = (0..servers.len()).map(|_| None).collect();
    let mut todo = Vec::new();
    for ((i, server), gate) in servers.iter().enumerate().zip(gates) {
        match early[i].take() {
            Some(mut out) => {
                report(&printer, &mut out);
                outputs[i] = Some(out);
            }
            None => todo.push((i, server.clone(), gate)),
        }
    }
    let indices: Vec<usize> = todo.iter().map(|(i, _, _)| *i).collect();
    let work_cli = Arc::clone(&cli);
    let rendezvous = seated.as_ref().map(|(r, _)| Arc::clone(r));
    let work = Arc::new(
        move |(i, server, gate): (usize, Server, Box<dyn Gate + Send>)| {
            // Left however the server's part ends, a panic included, so the gate never waits
            // for a server that is gone.
            let _leave = rendezvous.as_ref().map(|r| r.leaving(i));
            one(&work_cli, &server, gate.as_ref())
        },
    );
    let (tx, rx) = mpsc::channel();
    let running = std::thread::spawn(move || {
        runner::run(todo, jobs, work, |k, out| {
            let _ = tx.send((k, out));
        })
    });
    if let Some((rendezvous, (guard, action, ask))) = &seated {
        // Before the verdict nothing was signalled anywhere, and a signal still ends pgkick
        // at once (as at a one-server prompt).
        let decided = match rendezvous.wait_for_all(|| interrupt::received().is_some()) {
            Some(targets) => decide(&printer, &servers, &targets, guard, *action, *ask),
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
    for (k, mut out) in rx {
        report(&printer, &mut out);
        outputs[indices[k]] = Some(out);
    }
    let unfinished = running.join().unwrap_or_default();
    for k in unfinished {
        let i = indices[k];
        let mut out = ServerOutput::failed(
            &servers[i].label,
            "interrupted before it finished; what it did is unknown".into(),
        );
        report(&printer, &mut out);
        outputs[i] = Some(out);
    }
    let outputs: Vec<ServerOutput> = outputs.into_iter().flatten().collect();
    printer.print_fleet(&outputs)?;
    if let Some(signal) = interrupt::received() {
        return Err(Interrupted { signal }.into());
    }
    Ok(exit_status(outputs.iter().map(|o| &o.ended)))
}

/// The guards over the whole run, from every server's targets (`None`: it could not be
/// counted): --max over all of them together, then one question on a terminal; true when it
/// was asked. An error refuses, and nothing was signalled anywhere.
fn decide(
    printer: &Printer,
    servers: &[Server],
    targets: &[Option<Vec<Session>>],
    guard: &GuardArgs,
    action: Action,
    ask: bool,
) -> Result<bool> {
    let groups: Vec<(String, Vec<Session>)> = servers
        .iter()
        .zip(targets)
        .filter_map(|(server, t)| Some((server.label.clone(), t.clone()?)))
        .filter(|(_, t)| !t.is_empty())
        .collect();
    let total: usize = groups.iter().map(|(_, t)| t.len()).sum();
    let on = match groups.len() {
        1 => "1 server".to_string(),
        n => format!("{n} servers"),
    };
    if let Some(max) = guard.max.filter(|&max| total > max) {
        return Err(Refused(format!(
            "{total} sessions match on {on}, more than --max {max}; nothing was signalled"
        ))
        .into());
    }
    if ask && total > 0 {
        let verb = commands::capitalized(action.verb());
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

/// What the counting pass found on a server: its targets, or why (one line) it could not
/// be counted.
type CountResult = Result<Vec<Session>, String>;

/// The counting pass, on every server.
fn count(cli: &Arc<Cli>, servers: &[Server], jobs: usize) -> Result<Vec<CountResult>> {
    let mut counted: Vec<Option<CountResult>> = (0..servers.len()).map(|_| None).collect();
    let work_cli = Arc::clone(cli);
    let work = Arc::new(move |server: Server| -> CountResult {
        let gate = Count::default();
        let printer = Printer::silent(work_cli.output.options(), &server.label);
        let result = commands::run_on(&work_cli, &server.conn, &printer, &gate);
        let targets = gate.0.into_inner().unwrap_or_else(|e| e.into_inner());
        match (result, targets) {
            (_, Some(targets)) => Ok(targets),
            (Err(e), None) => Err(error::one_line(&e)),
            // Stopped before the guard: e.g. a lock-chain filter selected only a prepared
            // transaction. Nothing to signal there.
            (Ok(_), None) => Ok(Vec::new()),
        }
    });
    runner::run(servers.to_vec(), jobs, work, |i, r| {
        counted[i] = Some(r);
    });
    if let Some(signal) = interrupt::received() {
        return Err(Interrupted { signal }.into());
    }
    Ok(counted
        .into_iter()
        .map(|c| c.unwrap_or_else(|| Ok(Vec::new())))
        .collect())
}

/// One server's part of the run.
fn one(cli: &Cli, server: &Server, gate: &dyn Gate) -> ServerOutput {
    let printer = Printer::capturing(cli.output.options(), &server.label);
    let result = commands::run_on(cli, &server.conn, &printer, gate);
    let ended = match result {
        Ok(status) => Ended::Done(status),
        Err(e) if e.chain().any(|c| c.is::<NotTargetSession>()) && cli.fleet.each_host => {
            Ended::Skipped(error::one_line(&e))
        }
        Err(e) => Ended::Failed(error::one_line(&e)),
    };
    ServerOutput {
        label: server.label.clone(),
        captured: printer.into_captured(),
        ended,
    }
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
