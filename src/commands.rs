//! One function per subcommand: turns the parsed command line into calls to the actions and
//! hands their results to the printer. Returns the exit code for outcomes that are not errors
//! (0, or 3 for partial); errors carry their own (see `error`).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::chain;
use crate::cli::{
    Cli, Command, ConnArgs, FilterArgs, GuardArgs, LockArgs, LockMethod, UnlockArgs, WaitArgs,
};
use crate::error::{code, Refused, Usage};
use crate::filter::{Filter, LockChain};
use crate::output::Printer;
use crate::server::Server;
use crate::session::{self, Matched, Session};
use crate::signal::{self, Action, Outcome, Report};
use crate::{conn, interrupt, lock};

pub fn run(cli: Cli) -> Result<u8> {
    let printer = Printer::new(&cli.output);
    match &cli.command {
        Command::List(args) => list(&cli.conn, &printer, &args.filter, args.tree),
        Command::Cancel(args) => signal_sessions(
            &cli.conn,
            &printer,
            SignalPlan {
                action: Action::Cancel,
                filter: &args.filter,
                guard: &args.guard,
                wait: &args.wait,
                cancel_first: None,
                lock_first: None,
            },
        ),
        Command::Terminate(args) => signal_sessions(
            &cli.conn,
            &printer,
            SignalPlan {
                action: Action::Terminate,
                filter: &args.filter,
                guard: &args.guard,
                wait: &args.wait,
                cancel_first: args.cancel_first.then_some(args.grace),
                lock_first: args.lock.then_some(LockFirst {
                    method: args.method,
                    lock_timeout: args.lock_timeout,
                }),
            },
        ),
        Command::Lock(args) => lock_databases_or_roles(&cli.conn, &printer, args),
        Command::Unlock(args) => unlock_databases_or_roles(&cli.conn, &printer, args),
    }
}

/// What cancel or terminate was asked to do.
struct SignalPlan<'a> {
    action: Action,
    filter: &'a FilterArgs,
    guard: &'a GuardArgs,
    wait: &'a WaitArgs,
    /// terminate --cancel-first: the grace period.
    cancel_first: Option<Duration>,
    lock_first: Option<LockFirst>,
}

/// terminate --lock: lock the --db databases before terminating their sessions.
struct LockFirst {
    method: LockMethod,
    lock_timeout: Duration,
}

/// Connects and detects the server: the first statement of lock and unlock.
fn connect(args: &ConnArgs) -> Result<(postgres::Client, Server)> {
    let mut client = conn::connect(args)?;
    let server = Server::detect(&mut client)?;
    Ok((client, server))
}

/// Connects and finds the filter's sessions. On PostgreSQL 13 and later one statement finds
/// them and tells the server's version (the rows carry it); an older server rejects that
/// statement, and is then detected first.
fn connect_and_find(
    args: &ConnArgs,
    filter: &Filter,
    printer: &Printer,
) -> Result<(postgres::Client, Server, Matched)> {
    let mut client = conn::connect(args)?;
    let (server, matched) = match session::probe(&mut client, filter)? {
        Some(matched) => (matched.server.unwrap_or_else(Server::probe), matched),
        None => {
            let server = Server::detect(&mut client)?;
            filter.check_server(&server).map_err(Usage)?;
            let matched = session::find(&mut client, &server, filter)?;
            (server, matched)
        }
    };
    warn_hidden_from_query(&matched, printer);
    warn_lock_chain_limits(filter, &server, &matched, printer);
    Ok((client, server, matched))
}

/// What pgkick cannot tell about lock chains on this server or for this role.
fn warn_lock_chain_limits(filter: &Filter, server: &Server, matched: &Matched, printer: &Printer) {
    if filter.chain.blocked_for.is_some() && !server.has_waitstart() {
        printer.note(&format!(
            "PostgreSQL {} has no pg_locks.waitstart: --blocked-for takes a wait to have \
             started when the waiting query did (query_start), which can overstate it",
            server.version_text()
        ));
    }
    let hidden_in_chains = matched
        .sessions
        .iter()
        .filter(|s| !s.details_visible() && (s.is_blocked() || s.is_blocking()))
        .count();
    if hidden_in_chains > 0 && !filter.chain.is_empty() {
        let durations = if server.has_waitstart() {
            ""
        } else {
            ", nor how long they have waited"
        };
        printer.warn(&format!(
            "{hidden_in_chains} session(s) in lock chains hide their details from this role: \
             pgkick sees from the lock manager whom they wait on and hold up, but not their \
             state or query{durations}; grant pg_read_all_stats to pgkick's role to see them"
        ));
    }
}

/// Finds the filter's sessions again, later in a run.
fn find(
    client: &mut postgres::Client,
    server: &Server,
    filter: &Filter,
    printer: &Printer,
) -> Result<Matched> {
    let matched = session::find(client, server, filter)?;
    warn_hidden_from_query(&matched, printer);
    Ok(matched)
}

fn warn_hidden_from_query(matched: &Matched, printer: &Printer) {
    if matched.hidden_from_query_filter > 0 {
        printer.warn(&format!(
            "{} session(s) hide their query text from this role, so --query cannot match \
             them; grant pg_read_all_stats to see every query",
            matched.hidden_from_query_filter
        ));
    }
}

fn list(conn: &ConnArgs, printer: &Printer, args: &FilterArgs, tree: bool) -> Result<u8> {
    if tree && printer.is_json() {
        return Err(Usage(
            "--tree is a table view; JSON output already carries blocked_by and blocking".into(),
        )
        .into());
    }
    let filter = Filter::from_args(args);
    let (_client, server, matched) = connect_and_find(conn, &filter, printer)?;
    if tree && !server.has_blocking_pids() {
        return Err(Usage(format!(
            "--tree needs pg_blocking_pids(), which PostgreSQL has from 9.6; the server is {}",
            server.version_text()
        ))
        .into());
    }
    for p in &matched.prepared {
        let blocks_listed = p
            .blocking
            .iter()
            .any(|w| matched.sessions.iter().any(|s| s.pid == *w));
        if p.matched || blocks_listed {
            printer.note(&crate::output::prepared_message(p));
        }
    }
    if tree {
        let prepared: Vec<_> = matched
            .prepared
            .iter()
            .filter(|p| {
                p.matched
                    || p.blocking
                        .iter()
                        .any(|w| matched.sessions.iter().any(|s| s.pid == *w))
            })
            .cloned()
            .collect();
        printer.print_tree(&chain::forest(&matched.sessions, &prepared, None))?;
    } else {
        printer.print(&matched.sessions)?;
    }
    Ok(code::SUCCESS)
}

fn signal_sessions(conn: &ConnArgs, printer: &Printer, plan: SignalPlan<'_>) -> Result<u8> {
    let SignalPlan {
        action,
        filter: args,
        guard,
        wait,
        cancel_first,
        lock_first,
    } = plan;
    let filter = Filter::from_args(args);
    if filter.selects_everything() && !guard.all {
        return Err(Refused(format!(
            "no filter given: this would {} every session; add a filter such as --db NAME, \
             or --all to mean every session",
            action.verb()
        ))
        .into());
    }
    let (mut client, mut server, matched) = connect_and_find(conn, &filter, printer)?;
    // Prepared transactions the filters select: reported, never signalled (exit 3).
    let unsignallable: Vec<_> = matched.prepared.iter().filter(|p| p.matched).collect();
    for p in &unsignallable {
        printer.warn(&crate::output::prepared_message(p));
    }
    let partial_before = !unsignallable.is_empty();
    let targets = matched.sessions;
    let hidden = targets.iter().filter(|s| !s.details_visible()).count();
    if hidden > 0 {
        printer.warn(&format!(
            "{hidden} matched session(s) hide their details from this role: their state, \
             query and backend type are unknown to pgkick (one could be another role's \
             parallel worker); grant pg_read_all_stats to pgkick's role to see them"
        ));
    }

    if let Some(max) = guard.max {
        if targets.len() > max {
            return Err(Refused(format!(
                "{} sessions match, more than --max {max}; nothing was signalled",
                targets.len()
            ))
            .into());
        }
    }
    if guard.dry_run {
        if let Some(plan) = &lock_first {
            let changes = lock::lock(
                &mut client,
                &server,
                &lock::Targets {
                    dbs: filter.dbs.clone(),
                    roles: Vec::new(),
                },
                plan.method,
                true,
                plan.lock_timeout,
            )?;
            print_statements(printer, &changes)?;
        }
        let reports = with_outcome(&targets, action.would());
        printer.print(&reports)?;
        if !filter.chain.is_empty() {
            print_chains_to_break(&mut client, &server, &targets, printer)?;
        }
        let first = if cancel_first.is_some() {
            Action::Cancel
        } else {
            action
        };
        printer.dry_run_sql(&signal::signal_query(&server, first, &targets).display())?;
        return Ok(code::SUCCESS);
    }
    if targets.is_empty() && lock_first.is_none() {
        printer.print::<Report>(&[])?;
        return Ok(if partial_before {
            code::PARTIAL
        } else {
            code::SUCCESS
        });
    }
    let mut prompted = false;
    if !guard.yes && printer.interactive() && !targets.is_empty() {
        let question = match targets.len() {
            1 => format!("{} this session?", capitalized(action.verb())),
            n => format!("{} these {n} sessions?", capitalized(action.verb())),
        };
        if !printer.confirm(&targets, &question)? {
            return Err(Refused("not confirmed; nothing was signalled".into()).into());
        }
        prompted = true;
    }
    interrupt::install()?;
    // A person may take a while to answer: what matched then (a lock chain, above all) may
    // have resolved since. Only the targets that still match are signalled.
    let mut stale = Vec::new();
    let targets = match &lock_first {
        None if prompted => {
            let still = session::find(&mut client, &server, &filter)?.sessions;
            let (keep, gone): (Vec<Session>, Vec<Session>) = targets
                .into_iter()
                .partition(|t| still.iter().any(|s| s.same_backend(t)));
            stale = with_outcome(&gone, Outcome::NoLongerMatches);
            keep
        }
        None => targets,
        Some(plan) => {
            // Locked first, so that clients reconnecting in a loop cannot get back in; then
            // everything in the databases that matches now is a target.
            let changes = lock::lock(
                &mut client,
                &server,
                &lock::Targets {
                    dbs: filter.dbs.clone(),
                    roles: Vec::new(),
                },
                plan.method,
                false,
                plan.lock_timeout,
            )?;
            for change in &changes {
                printer.note(&format!("database {}: {}", change.name, change.status));
            }
            let matched = find(&mut client, &server, &filter, printer)?;
            server = matched.server.unwrap_or(server);
            matched.sessions
        }
    };

    let first = if cancel_first.is_some() {
        Action::Cancel
    } else {
        action
    };
    let mut reports = signal::signal(&mut client, &server, first, &targets)?;
    // From here on signals have been sent: whatever stops the run (an interrupt, the server
    // going away) still reports what was already done before the error.
    let finished = (|| -> Result<()> {
        if let Some(grace) = cancel_first {
            terminate_after_grace(&mut client, &server, &filter, &mut reports, grace, printer)?;
        }
        if wait.wait {
            let what = match action {
                Action::Terminate => "waiting for sessions to end",
                Action::Cancel => "waiting for queries to stop",
            };
            signal::wait(
                &mut client,
                &server,
                action,
                &mut reports,
                wait.wait_timeout,
                &mut |remaining, left| {
                    interrupt::check()?;
                    printer.progress(what, remaining, left);
                    Ok(())
                },
            )?;
        }
        Ok(())
    })();
    printer.progress("", 0, Duration::ZERO);
    reports.extend(stale);
    reports.sort_by_key(|r| r.session.pid);
    printer.print(&reports)?;
    finished?;
    let status = exit_status(&reports);
    Ok(if partial_before {
        code::PARTIAL
    } else {
        status
    })
}

/// --dry-run with lock-chain filters: the chains headed by the targets, with the sessions
/// waiting in them (found by one more statement: every blocked session).
fn print_chains_to_break(
    client: &mut postgres::Client,
    server: &Server,
    targets: &[Session],
    printer: &Printer,
) -> Result<()> {
    let blocked = Filter {
        chain: LockChain {
            blocked: true,
            ..LockChain::default()
        },
        ..Filter::default()
    };
    let mut sessions = session::find(client, server, &blocked)?.sessions;
    for t in targets {
        if !sessions.iter().any(|s| s.pid == t.pid) {
            sessions.push(t.clone());
        }
    }
    sessions.sort_by_key(|s| s.pid);
    let heads: Vec<i32> = targets.iter().map(|t| t.pid).collect();
    let mut lines = chain::forest(&sessions, &[], Some(&heads));
    // Targets that hold nobody up (e.g. --blocked alone) make no chain to break.
    lines.retain(|l| l.depth > 0 || matches!(l.node, chain::Node::Session(s) if s.is_blocking()));
    Ok(printer.dry_run_chains(&lines)?)
}

/// --cancel-first, after the cancel: wait the grace period, then terminate the cancelled
/// sessions that still match the filter; the others keep their connection (and their
/// `cancelled` outcome).
fn terminate_after_grace(
    client: &mut postgres::Client,
    server: &Server,
    filter: &Filter,
    reports: &mut [Report],
    grace: Duration,
    printer: &Printer,
) -> Result<()> {
    let deadline = Instant::now() + grace;
    let mut next_check = Instant::now() + Duration::from_secs(1);
    loop {
        interrupt::check()?;
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        // A server that goes away is noticed now, not at the end of the grace period.
        if Instant::now() >= next_check {
            client
                .is_valid(Duration::from_secs(5))
                .context("lost the server during the grace period")?;
            next_check = Instant::now() + Duration::from_secs(1);
        }
        printer.progress("grace period after cancel", reports.len(), left);
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
    printer.progress("", 0, Duration::ZERO);

    let still_matching = session::find(client, server, filter)?.sessions;
    let to_terminate: Vec<Session> = reports
        .iter()
        .filter(|r| r.outcome == Outcome::Cancelled)
        .filter(|r| still_matching.iter().any(|s| s.same_backend(&r.session)))
        .map(|r| r.session.clone())
        .collect();
    let terminated = signal::signal(client, server, Action::Terminate, &to_terminate)?;
    for t in terminated {
        if let Some(report) = reports
            .iter_mut()
            .find(|r| r.session.same_backend(&t.session))
        {
            report.outcome = t.outcome;
        }
    }
    Ok(())
}

fn with_outcome(sessions: &[Session], outcome: Outcome) -> Vec<Report> {
    sessions
        .iter()
        .map(|s| Report {
            session: s.clone(),
            outcome,
        })
        .collect()
}

fn exit_status(reports: &[Report]) -> u8 {
    if reports.iter().any(|r| r.outcome.is_failure()) {
        code::PARTIAL
    } else {
        code::SUCCESS
    }
}

fn capitalized(word: &str) -> String {
    let mut c = word.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn lock_databases_or_roles(conn: &ConnArgs, printer: &Printer, args: &LockArgs) -> Result<u8> {
    let (mut client, server) = connect(conn)?;
    if args.list {
        printer.print(&lock::list(&mut client, &server)?)?;
        return Ok(code::SUCCESS);
    }
    let targets = lock::Targets {
        dbs: args.db.clone(),
        roles: args.role.clone(),
    };
    interrupt::install()?;
    let changes = lock::lock(
        &mut client,
        &server,
        &targets,
        args.method,
        args.dry_run,
        args.lock_timeout,
    )?;
    print_changes(printer, &changes, args.dry_run)?;
    Ok(code::SUCCESS)
}

fn unlock_databases_or_roles(conn: &ConnArgs, printer: &Printer, args: &UnlockArgs) -> Result<u8> {
    let (mut client, server) = connect(conn)?;
    let targets = lock::Targets {
        dbs: args.db.clone(),
        roles: args.role.clone(),
    };
    interrupt::install()?;
    let changes = lock::unlock(
        &mut client,
        &server,
        &targets,
        args.dry_run,
        args.lock_timeout,
    )?;
    print_changes(printer, &changes, args.dry_run)?;
    Ok(code::SUCCESS)
}

/// What lock or unlock did; with --dry-run, also the statements each change would run.
fn print_changes(printer: &Printer, changes: &[lock::Change], dry_run: bool) -> Result<()> {
    printer.print(changes)?;
    if dry_run {
        print_statements(printer, changes)?;
    }
    Ok(())
}

/// --dry-run of lock, unlock and terminate --lock: the statements each change would run.
fn print_statements(printer: &Printer, changes: &[lock::Change]) -> Result<()> {
    for change in changes.iter().filter(|c| !c.statements.is_empty()) {
        printer.dry_run_sql(&change.statements.join("\n"))?;
    }
    Ok(())
}
