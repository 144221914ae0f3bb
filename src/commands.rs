//! One function per subcommand: turns the parsed command line into calls to the actions and
//! hands their results to the printer. Returns the exit status for outcomes that are not
//! errors (success, or partial); errors carry their own (see `error`).
//!
//! Each function works on one server, the one `conn` names; `fleet` runs them over many.

use std::collections::BTreeSet;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use postgres_protocol::escape::escape_identifier;

use crate::activity::{self, Matched};
use crate::chain;
use crate::cli::{
    Cli, Command, ConnArgs, GuardArgs, ListArgs, LockArgs, PauseArgs, UnlockArgs, WaitArgs,
    WatchArgs,
};
use crate::error::{ExitStatus, Refused, Usage};
use crate::filter::{Filter, LockChain};
use crate::lock::LockMethod;
use crate::output::Printer;
use crate::server::Server;
use crate::session::Session;
use crate::signal::{self, Action, Outcome, Report};
use crate::{audit, conn, holders, interrupt, lock, pgbouncer, pooling, watch};

/// Runs the command on the one server `conn` names, printing through `printer`; `gate`
/// decides whether the targets cancel and terminate found may be signalled.
pub fn run_on(
    cli: &Cli,
    conn: &ConnArgs,
    printer: &Printer,
    gate: &dyn Gate,
) -> Result<ExitStatus> {
    match &cli.command {
        Command::List(args) => list(conn, printer, args),
        Command::Cancel(args) => signal_in_rounds(
            conn,
            printer,
            &args.watch,
            SignalPlan {
                action: Action::Cancel,
                filter: Filter::from_args(&args.filter),
                guard: &args.guard,
                wait: &args.wait,
                cancel_first: None,
                lock_first: None,
                trail: &audit::Trail::open(&args.audit, "cancel", conn, args.guard.dry_run)?,
                gate,
            },
        ),
        Command::Terminate(args) => signal_in_rounds(
            conn,
            printer,
            &args.watch,
            SignalPlan {
                action: Action::Terminate,
                filter: Filter::from_args(&args.filter),
                guard: &args.guard,
                wait: &args.wait,
                cancel_first: args.cancel_first.then_some(args.grace),
                lock_first: if args.lock {
                    Some(LockFirst {
                        method: args.method,
                        lock_timeout: args.lock_timeout,
                        rollback_prepared: args.rollback_prepared,
                        pause: &args.pause,
                        poolers: pooling::parse(&args.pause.pgbouncer)?,
                    })
                } else if !args.pause.pgbouncer.is_empty() {
                    return Err(Usage("--pgbouncer on terminate needs --lock".into()).into());
                } else {
                    None
                },
                trail: &audit::Trail::open(&args.audit, "terminate", conn, args.guard.dry_run)?,
                gate,
            },
        ),
        Command::Lock(args) => lock_databases_or_roles(
            conn,
            printer,
            args,
            &audit::Trail::open(&args.audit, "lock", conn, args.dry_run)?,
        ),
        Command::Unlock(args) => unlock_databases_or_roles(
            conn,
            printer,
            args,
            &audit::Trail::open(&args.audit, "unlock", conn, args.dry_run)?,
        ),
        Command::Conninfo(args) => conninfo(conn, printer, args.connect),
    }
}

/// Decides whether the targets cancel or terminate found on a server may be signalled: the
/// --max guard of one server ([`OneServer`]), or the guards of a run over many (`fleet`).
pub trait Gate: Sync {
    /// An error refuses. `Ok(None)` lets every target be signalled; `Ok(Some(allowed))` only
    /// the targets that are among `allowed` (what was counted and confirmed for this server).
    fn approve(&self, targets: &[Session], guard: &GuardArgs) -> Result<Option<Vec<Session>>>;

    /// After `approve`: a person confirmed the targets (the run over many servers asked), so
    /// they are matched again before the signal, as after this server's own prompt.
    fn asked(&self) -> bool {
        false
    }
}

/// The guard of a run on one server: --max.
pub struct OneServer;

impl Gate for OneServer {
    fn approve(&self, targets: &[Session], guard: &GuardArgs) -> Result<Option<Vec<Session>>> {
        if let Some(max) = guard.max {
            if targets.len() > max {
                return Err(Refused(format!(
                    "{} sessions match, more than --max {max}; nothing was signalled",
                    targets.len()
                ))
                .into());
            }
        }
        Ok(None)
    }
}

/// The guard that needs no server: a filter, or --all.
pub fn refuse_unfiltered(filter: &Filter, guard: &GuardArgs, action: Action) -> Result<()> {
    if filter.selects_everything() && !guard.all {
        return Err(Refused(format!(
            "no filter given: this would {} every session; add a filter such as --db NAME, \
             or --all to mean every session",
            action.verb()
        ))
        .into());
    }
    Ok(())
}

/// What cancel or terminate was asked to do: the typed request, built from the command line
/// once; nothing after it looks at command-line strings.
#[derive(Clone)]
struct SignalPlan<'a> {
    action: Action,
    /// The typed filter, built from the command line once.
    filter: Filter,
    guard: &'a GuardArgs,
    wait: &'a WaitArgs,
    /// terminate --cancel-first: the grace period.
    cancel_first: Option<Duration>,
    lock_first: Option<LockFirst<'a>>,
    /// Where the records of what was done go (--audit-log, --server-log).
    trail: &'a audit::Trail,
    gate: &'a dyn Gate,
}

impl SignalPlan<'_> {
    /// The signal sent first: cancel with --cancel-first, else the action itself.
    fn first_action(&self) -> Action {
        if self.cancel_first.is_some() {
            Action::Cancel
        } else {
            self.action
        }
    }
}

/// terminate --lock: lock the --db databases before terminating their sessions.
#[derive(Clone)]
struct LockFirst<'a> {
    method: LockMethod,
    lock_timeout: Duration,
    /// --rollback-prepared.
    rollback_prepared: bool,
    /// --pgbouncer: pause the databases on the poolers before the lock.
    pause: &'a PauseArgs,
    /// The poolers --pgbouncer names, parsed once for every round and server.
    poolers: Vec<pgbouncer::Pooler>,
}

/// Resolves the connection settings, shows their warnings (an unsafe password file) and
/// connects, asking for a password on the terminal as psql would.
fn open(args: &ConnArgs, printer: &Printer) -> Result<conn::Connected> {
    let settings = conn::Settings::resolve(args)?;
    for w in &settings.warnings {
        printer.warn(w);
    }
    connect_with(&settings, args, printer)
}

/// Connects with resolved settings, asking for a password as -W/-w and the terminal allow.
fn connect_with(
    settings: &conn::Settings,
    args: &ConnArgs,
    printer: &Printer,
) -> Result<conn::Connected> {
    connect_reading(settings, args, &mut |user: &str, host_port: &str| {
        printer.read_password(user, host_port)
    })
}

/// Like [`connect_with`], a password that must be typed read by `read`.
pub(crate) fn connect_reading(
    settings: &conn::Settings,
    args: &ConnArgs,
    read: conn::ReadPassword<'_>,
) -> Result<conn::Connected> {
    let prompt = if args.password {
        conn::Prompt::Before(read)
    } else if args.no_password {
        conn::Prompt::Never
    } else if std::io::stdin().is_terminal() {
        conn::Prompt::WhenNeeded(read)
    } else {
        conn::Prompt::NoTerminal
    };
    conn::connect(settings, prompt)
}

/// pgkick conninfo: the settings and their sources; with `connect`, the session too. When
/// connecting fails, the report is still printed before the error.
fn conninfo(args: &ConnArgs, printer: &Printer, connect: bool) -> Result<ExitStatus> {
    let settings = conn::Settings::resolve(args)?;
    let mut report = conn::report::Report::new(&settings, args);
    let mut failure = None;
    if connect {
        match connect_with(&settings, args, printer)
            .and_then(|mut connected| conn::report::Connection::query(&mut connected))
        {
            Ok(session) => report.connection = Some(session),
            Err(e) => failure = Some(e),
        }
    }
    printer.print_report(&report, &report.settings, &report.lines())?;
    match failure {
        Some(e) => Err(e),
        None => Ok(ExitStatus::Success),
    }
}

/// Connects and detects the server: the first statement of lock and unlock.
fn connect(args: &ConnArgs, printer: &Printer) -> Result<(postgres::Client, Server)> {
    let mut client = open(args, printer)?.client;
    let server = Server::detect(&mut client)?;
    Ok((client, server))
}

/// Connects and finds the filter's sessions (with `tree`, with their lock chains). On
/// PostgreSQL 13 and later (14 for the lock chains) the first statement finds them and tells
/// the server's facts (the rows carry them: None when no row came back); an older server
/// rejects that statement, and is then detected first.
fn connect_and_probe(
    args: &ConnArgs,
    filter: &Filter,
    tree: bool,
    printer: &Printer,
) -> Result<(postgres::Client, Option<Server>, Matched)> {
    let mut client = open(args, printer)?.client;
    let (server, matched) = match activity::probe(&mut client, filter, tree)? {
        Some(matched) => (matched.server, matched),
        None => {
            let server = Server::detect(&mut client)?;
            filter.check_server(&server).map_err(Usage)?;
            let matched = activity::first(&mut client, &server, filter, tree)?;
            (Some(server), matched)
        }
    };
    warn_hidden_from_query(&matched, printer);
    if let Some(server) = &server {
        warn_lock_chain_limits(filter, server, &matched, printer);
    }
    Ok((client, server, matched))
}

/// `connect_and_probe` for the commands that act on the server whatever matched: when no row
/// told the server's facts, they are detected (one more statement, only then).
fn connect_and_find(
    args: &ConnArgs,
    filter: &Filter,
    printer: &Printer,
) -> Result<(postgres::Client, Server, Matched)> {
    let (mut client, server, matched) = connect_and_probe(args, filter, false, printer)?;
    let server = match server {
        Some(server) => server,
        None => Server::detect(&mut client)?,
    };
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
    let matched = activity::find(client, server, filter)?;
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

fn list(conn: &ConnArgs, printer: &Printer, list: &ListArgs) -> Result<ExitStatus> {
    let (args, tree) = (&list.filter, list.tree);
    if tree && printer.is_json() {
        return Err(Usage(
            "--tree is a table view; JSON output already carries blocked_by and blocking".into(),
        )
        .into());
    }
    let filter = Filter::from_args(args);
    let poolers = pooling::parse(&list.poolers.pgbouncer)?;
    let (mut client, server, mut matched) = connect_and_probe(conn, &filter, tree, printer)?;
    pooling::link_sessions(&mut matched.sessions, &poolers, conn, printer)?;
    // No facts, no row: the probe's statement ran, which only servers with pg_blocking_pids
    // answer (13 and later).
    if let Some(server) = server.filter(|s| tree && !s.has_blocking_pids()) {
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
    // With no row (so no facts) the server is detected only for the statement that looks
    // for what else holds the databases.
    let server = match server {
        Some(server) => server,
        None if filter.dbs.is_empty() => return Ok(ExitStatus::Success),
        None => Server::detect(&mut client)?,
    };
    note_hidden_holders(
        &mut client,
        &server,
        &filter.dbs,
        matched.held_in_dbs,
        printer,
    )?;
    Ok(ExitStatus::Success)
}

/// cancel and terminate: one run, or with --every one round after another. Rounds never ask
/// for confirmation or for a password.
fn signal_in_rounds(
    conn: &ConnArgs,
    printer: &Printer,
    watch: &WatchArgs,
    plan: SignalPlan<'_>,
) -> Result<ExitStatus> {
    let Some(every) = watch.every else {
        return signal_sessions(conn, printer, plan);
    };
    if conn.password {
        return Err(Usage(
            "--every cannot prompt for a password (-W): put it in ~/.pgpass or PGPASSWORD".into(),
        )
        .into());
    }
    let conn = ConnArgs {
        no_password: true,
        ..conn.clone()
    };
    let guard = GuardArgs {
        yes: true,
        ..plan.guard.clone()
    };
    watch::run(every, watch.rounds, printer, |round| {
        plan.trail.set_round(round);
        signal_sessions(
            &conn,
            printer,
            SignalPlan {
                guard: &guard,
                ..plan.clone()
            },
        )
    })
}

/// cancel and terminate on one server, in three steps: match and guard (nothing changes),
/// then either show the plan (--dry-run) or carry it out.
fn signal_sessions(conn: &ConnArgs, printer: &Printer, plan: SignalPlan<'_>) -> Result<ExitStatus> {
    let found = match_and_guard(conn, printer, &plan)?;
    if plan.guard.dry_run {
        show_plan(printer, &plan, found)
    } else {
        execute(conn, printer, &plan, found)
    }
}

/// What matching found on the server, and what the guards let through.
struct Found {
    client: postgres::Client,
    server: Server,
    filter: Filter,
    targets: Vec<Session>,
    /// Prepared transactions the filters select: reported, never signalled (exit 3).
    prepared_selected: bool,
    /// Whether something else holds the --db databases, from the first statement (see
    /// `Matched`).
    held_in_dbs: Option<bool>,
    /// The targets the gate allows (None: all of them).
    allowed: Option<Vec<Session>>,
}

impl Found {
    /// Success, or partial when a prepared transaction was selected.
    fn status_before(&self) -> ExitStatus {
        if self.prepared_selected {
            ExitStatus::Partial
        } else {
            ExitStatus::Success
        }
    }
}

/// The guards: a filter or --all, the matched sessions, what cannot be signalled or seen, and
/// the gate (--max, or a fleet's guards). Changes nothing.
fn match_and_guard(conn: &ConnArgs, printer: &Printer, plan: &SignalPlan<'_>) -> Result<Found> {
    let filter = plan.filter.clone();
    refuse_unfiltered(&filter, plan.guard, plan.action)?;
    let (mut client, server, matched) = connect_and_find(conn, &filter, printer)?;
    plan.trail.connected(&mut client)?;
    let unsignallable: Vec<_> = matched.prepared.iter().filter(|p| p.matched).collect();
    for p in &unsignallable {
        printer.warn(&crate::output::prepared_message(p));
    }
    let prepared_selected = !unsignallable.is_empty();
    let held_in_dbs = matched.held_in_dbs;
    let targets = matched.sessions;
    let hidden = targets.iter().filter(|s| !s.details_visible()).count();
    if hidden > 0 {
        printer.warn(&format!(
            "{hidden} matched session(s) hide their details from this role: their state, \
             query and backend type are unknown to pgkick (one could be another role's \
             parallel worker); grant pg_read_all_stats to pgkick's role to see them"
        ));
    }
    let allowed = plan.gate.approve(&targets, plan.guard)?;
    Ok(Found {
        client,
        server,
        filter,
        targets,
        prepared_selected,
        held_in_dbs,
        allowed,
    })
}

/// --dry-run: the sessions and what would happen to them, the lock's statements, the holders
/// and the chains it would break, and the statements; changes nothing.
fn show_plan(printer: &Printer, plan: &SignalPlan<'_>, found: Found) -> Result<ExitStatus> {
    let Found {
        mut client,
        server,
        filter,
        targets,
        ..
    } = found;
    let mut holders = Vec::new();
    if let Some(lock) = &plan.lock_first {
        let exclude = holders::Exclude {
            pids: targets.iter().map(|s| s.pid).collect(),
        };
        holders = holders::find(&mut client, &server, &filter.dbs, &exclude)?;
        if lock.rollback_prepared {
            for h in &mut holders {
                if h.outcome == holders::Kind::PreparedTransaction {
                    h.outcome = holders::Kind::WouldRollBack;
                }
            }
        }
        let changes = lock::lock(
            &mut client,
            &server,
            &lock::Targets {
                dbs: filter.dbs.clone(),
                roles: Vec::new(),
            },
            lock.method,
            true,
            lock.lock_timeout,
            &[],
        )?;
        plan.trail.changes(&mut client, &changes, true)?;
        pooling::print_pause_plan(&lock.poolers, &filter.dbs, lock.pause, printer)?;
        print_statements(printer, &changes)?;
    }
    let reports = with_outcome(&targets, plan.action.would());
    plan.trail.planned_sessions(&reports)?;
    if plan.lock_first.is_some() {
        print_entries(printer, reports, holders.clone())?;
    } else {
        printer.print(&reports)?;
    }
    if !filter.chain.is_empty() {
        print_chains_to_break(&mut client, &server, &targets, printer)?;
    }
    printer.dry_run_sql(&signal::signal_query(&server, plan.first_action(), &targets).display())?;
    for h in holders
        .iter()
        .filter(|h| h.outcome == holders::Kind::WouldRollBack)
    {
        printer.dry_run_sql(&format!(
            "-- in database {}:\n{};",
            escape_identifier(&h.datname),
            holders::rollback_statement(h.gid.as_deref().unwrap_or_default())
        ))?;
    }
    Ok(ExitStatus::Success)
}

/// Carries the plan out: asks on a terminal, locks first (terminate --lock), signals, waits,
/// records, and reports; for terminate --lock also what else still holds the databases.
fn execute(
    conn: &ConnArgs,
    printer: &Printer,
    plan: &SignalPlan<'_>,
    found: Found,
) -> Result<ExitStatus> {
    let status_before = found.status_before();
    let Found {
        mut client,
        mut server,
        mut filter,
        targets,
        held_in_dbs,
        allowed,
        ..
    } = found;
    let (action, guard, trail) = (plan.action, plan.guard, plan.trail);
    if plan.lock_first.is_none() {
        note_hidden_holders(&mut client, &server, &filter.dbs, held_in_dbs, printer)?;
        if targets.is_empty() {
            printer.print::<Report>(&[])?;
            return Ok(status_before);
        }
    }
    let mut prompted = plan.gate.asked();
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
    // --rollback-prepared: into each database with prepared transactions before the lock
    // keeps everyone out; these connections are neither targets nor holders until closed.
    let rollback = match &plan.lock_first {
        Some(lock) if lock.rollback_prepared => {
            let opened = open_rollback(&mut client, &server, &filter.dbs, conn, printer)?;
            filter.exclude_pids.extend(opened.pids());
            Some(opened)
        }
        _ => None,
    };
    // A person may take a while to answer: what matched then (a lock chain, above all) may
    // have resolved since. Only the targets that still match are signalled.
    let mut stale = Vec::new();
    let mut unblocked = Vec::new();
    let mut still_starting = false;
    let targets = match &plan.lock_first {
        None if prompted => {
            let still = activity::recheck(&mut client, &server, &filter, &targets)?;
            let (keep, gone): (Vec<Session>, Vec<Session>) = targets
                .into_iter()
                .partition(|t| still.iter().any(|s| s.same_backend(t)));
            stale = with_outcome(&gone, Outcome::NoLongerMatches);
            keep
        }
        None => targets,
        Some(lock) => {
            let (matched, terminated, late) =
                lock_then_find(&mut client, &server, &filter, lock, conn, trail, printer)?;
            unblocked = terminated;
            still_starting = late;
            server = matched.server.unwrap_or(server);
            matched.sessions
        }
    };
    let targets = match allowed {
        Some(allowed) => targets
            .into_iter()
            .filter(|t| allowed.iter().any(|a| a.same_backend(t)))
            .collect(),
        None => targets,
    };

    let mut reports = signal::signal(&mut client, &server, plan.first_action(), &targets)?;
    // The pooler backends terminated to complete a pause are reported like any other.
    reports.splice(0..0, unblocked);
    // From here on signals have been sent: whatever stops the run (an interrupt, the server
    // going away) still reports what was already done before the error.
    let finished = grace_and_wait(&mut client, &server, &filter, plan, &mut reports, printer);
    // Records for what was acted on: the sessions that no longer matched were not.
    if let Err(e) = trail
        .sessions(&mut client, &reports)
        .map(|w| warn(printer, w))
    {
        reports.extend(stale);
        printer.print(&reports)?;
        return Err(e);
    }
    reports.extend(stale);
    reports.sort_by_key(|r| r.session.pid);
    let Some(lock) = &plan.lock_first else {
        printer.print(&reports)?;
        finished?;
        return Ok(or_partial(status_before, &reports));
    };
    // terminate --lock: what else keeps the databases from being dropped.
    let held = finished.and_then(|()| {
        drop_holders(
            &mut client,
            &server,
            &filter.dbs,
            &reports,
            rollback,
            plan.wait,
            printer,
        )
    });
    let mut held = match held {
        Ok(held) => held,
        Err(e) => {
            printer.print(&reports)?;
            return Err(e);
        }
    };
    if lock.method == LockMethod::AllowConnections {
        holders::locked_out(&mut held);
    }
    report_what_holds(printer, &reports, &held);
    let status = if still_starting || held.iter().any(holders::Holder::holds) {
        ExitStatus::Partial
    } else {
        or_partial(status_before, &reports)
    };
    print_entries(printer, reports, held)?;
    Ok(status)
}

/// Partial when `before` is, else as the reports say.
fn or_partial(before: ExitStatus, reports: &[Report]) -> ExitStatus {
    if before == ExitStatus::Partial {
        before
    } else {
        exit_status(reports)
    }
}

/// --rollback-prepared, before the lock: one connection into each database that has prepared
/// transactions.
fn open_rollback(
    client: &mut postgres::Client,
    server: &Server,
    dbs: &[String],
    conn: &ConnArgs,
    printer: &Printer,
) -> Result<holders::PreparedRollback> {
    let prepared = holders::find_prepared(client, server, dbs)?;
    let dbs: BTreeSet<String> = prepared
        .iter()
        .filter(|h| h.outcome == holders::Kind::PreparedTransaction)
        .map(|h| h.datname.clone())
        .collect();
    holders::PreparedRollback::open(&dbs.into_iter().collect::<Vec<_>>(), |db| {
        let settings = conn::Settings::resolve_for_database(conn, db)?;
        Ok(connect_with(&settings, conn, printer)?.client)
    })
}

/// terminate --lock: paused on the poolers first, so that their clients wait instead of
/// failing; locked next, so that clients reconnecting in a loop cannot get back in; then
/// everything in the databases that matches now is a target, once the backends that were
/// starting into them have shown up. Returns those, the pooler backends terminated to complete
/// a pause, and whether some backend was still starting (then not a target).
fn lock_then_find(
    client: &mut postgres::Client,
    server: &Server,
    filter: &Filter,
    lock: &LockFirst<'_>,
    conn: &ConnArgs,
    trail: &audit::Trail,
    printer: &Printer,
) -> Result<(Matched, Vec<Report>, bool)> {
    let targets = lock::Targets {
        dbs: filter.dbs.clone(),
        roles: Vec::new(),
    };
    let (changes, terminated) = pause_and_lock(
        client,
        server,
        &lock.poolers,
        &targets,
        (lock.method, lock.lock_timeout),
        lock.pause,
        conn,
        printer,
        true,
    )?;
    warn(printer, trail.changes(client, &changes, false)?);
    // Sessions that got in just before the lock are not in pg_stat_activity yet.
    let starting = holders::wait_for_starting(client, &filter.dbs, holders::STARTING_WAIT)?;
    if !starting.is_empty() {
        printer.warn(&format!(
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
    let matched = find(client, server, filter, printer)?;
    Ok((matched, terminated, !starting.is_empty()))
}

/// lock and terminate --lock: pause the databases on the poolers, then lock them, recording
/// the pauses with the lock; a lock that fails resumes what was paused. With `note`, each
/// change is noted on stderr before what was done on the poolers. Returns the changes and the
/// pooler backends terminated so that a pause could complete.
#[allow(clippy::too_many_arguments)]
fn pause_and_lock(
    client: &mut postgres::Client,
    server: &Server,
    poolers: &[pgbouncer::Pooler],
    targets: &lock::Targets,
    (method, lock_timeout): (LockMethod, Duration),
    pause_args: &PauseArgs,
    conn: &ConnArgs,
    printer: &Printer,
    note: bool,
) -> Result<(Vec<lock::Change>, Vec<Report>)> {
    let pause = pooling::pause(
        client,
        server,
        poolers,
        &targets.dbs,
        pause_args,
        conn,
        printer,
    )?;
    let changes = lock::lock(
        client,
        server,
        targets,
        method,
        false,
        lock_timeout,
        &pause.entries(),
    );
    let mut changes = match changes {
        Ok(changes) => changes,
        Err(e) => return Err(pause.release_on(e)),
    };
    if note {
        for change in &changes {
            printer.note(&format!("database {}: {}", change.name, change.status));
        }
    }
    pause.attach(&mut changes, printer);
    Ok((changes, pause.terminated))
}

/// After the signal: --cancel-first's grace period, then --wait.
fn grace_and_wait(
    client: &mut postgres::Client,
    server: &Server,
    filter: &Filter,
    plan: &SignalPlan<'_>,
    reports: &mut [Report],
    printer: &Printer,
) -> Result<()> {
    let finished = (|| -> Result<()> {
        if let Some(grace) = plan.cancel_first {
            terminate_after_grace(client, server, filter, reports, grace, printer)?;
        }
        if plan.wait.wait {
            let what = match plan.action {
                Action::Terminate => "waiting for sessions to end",
                Action::Cancel => "waiting for queries to stop",
            };
            signal::wait(
                client,
                server,
                plan.action,
                reports,
                plan.wait.wait_timeout,
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
    finished
}

/// terminate --lock: one line on stderr for each session and holder still in a database.
fn report_what_holds(printer: &Printer, reports: &[Report], held: &[holders::Holder]) {
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

/// terminate --lock's report: in JSON one array, the sessions then the holders; as tables, the
/// sessions, then (when there are any) the holders with their fixes.
fn print_entries(
    printer: &Printer,
    reports: Vec<Report>,
    held: Vec<holders::Holder>,
) -> std::io::Result<()> {
    if printer.is_json() {
        return printer.print(&holders::entries(reports, held));
    }
    printer.print(&reports)?;
    if held.is_empty() {
        return Ok(());
    }
    printer.print(&held)
}

/// After terminate --lock: rolls back prepared transactions (--rollback-prepared), closes
/// pgkick's connections into the databases, and reads what still holds them. With --wait,
/// waits up to --wait-timeout for holders that are on their way out (backends pgkick
/// signalled or closed, workers of disabled subscriptions); pgkick's own closed connections
/// are waited for in any case.
fn drop_holders(
    client: &mut postgres::Client,
    server: &Server,
    dbs: &[String],
    reports: &[Report],
    rollback: Option<holders::PreparedRollback>,
    wait: &WaitArgs,
    printer: &Printer,
) -> Result<Vec<holders::Holder>> {
    let reported: BTreeSet<i32> = reports.iter().map(|r| r.session.pid).collect();
    let mut rolled_back = Vec::new();
    let mut failed = Vec::new();
    let mut own = BTreeSet::new();
    if let Some(mut rollback) = rollback {
        own = rollback.pids();
        let mut found = holders::find_prepared(client, server, dbs)?;
        rollback.rollback(&mut found);
        rollback.close();
        (failed, rolled_back) = found.into_iter().partition(holders::Holder::holds);
    }
    let exclude = holders::Exclude { pids: reported };
    let within = if wait.wait {
        wait.wait_timeout
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
        let held = holders::find(client, server, dbs, &exclude)?;
        let leaving = held
            .iter()
            .filter(|h| h.pid.is_some_and(|p| own.contains(&p)) || (wait.wait && h.leaving(&ended)))
            .count();
        if leaving == 0 || backoff.left().is_zero() {
            break held;
        }
        printer.progress(
            "waiting for what holds the databases",
            leaving,
            backoff.left(),
        );
        backoff.sleep()?;
    };
    printer.progress("", 0, Duration::ZERO);
    // A prepared transaction whose rollback failed keeps the server's reason in its fix.
    let held = held.into_iter().map(|h| {
        failed
            .iter()
            .find(|f| f.outcome == h.outcome && f.datname == h.datname && f.gid == h.gid)
            .map_or(h.clone(), |f| holders::Holder {
                fix: f.fix.clone(),
                ..h
            })
    });
    rolled_back.extend(held);
    Ok(rolled_back)
}

/// list, cancel, terminate (without --lock) and lock with --db: a note on stderr for what no
/// session row shows but holds the databases: prepared transactions (they keep their locks
/// and hold back VACUUM) and active logical slots. `held` is whether the statement that
/// found the sessions saw any: when it saw none, no other statement is needed.
fn note_hidden_holders(
    client: &mut postgres::Client,
    server: &Server,
    dbs: &[String],
    held: Option<bool>,
    printer: &Printer,
) -> Result<()> {
    if dbs.is_empty() || held == Some(false) {
        return Ok(());
    }
    for h in holders::find_without_backends(client, server, dbs)? {
        printer.note(&h.note());
    }
    Ok(())
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
    let mut sessions = activity::find(client, server, &blocked)?.sessions;
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

    let cancelled: Vec<Session> = reports
        .iter()
        .filter(|r| r.outcome == Outcome::Cancelled)
        .map(|r| r.session.clone())
        .collect();
    let still_matching = activity::recheck(client, server, filter, &cancelled)?;
    let to_terminate: Vec<Session> = cancelled
        .into_iter()
        .filter(|c| still_matching.iter().any(|s| s.same_backend(c)))
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

fn exit_status(reports: &[Report]) -> ExitStatus {
    if reports.iter().any(|r| r.outcome.is_failure()) {
        ExitStatus::Partial
    } else {
        ExitStatus::Success
    }
}

pub fn capitalized(word: &str) -> String {
    let mut c = word.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

fn lock_databases_or_roles(
    conn: &ConnArgs,
    printer: &Printer,
    args: &LockArgs,
    trail: &audit::Trail,
) -> Result<ExitStatus> {
    let poolers = pooling::parse(&args.pause.pgbouncer)?;
    pooling::check_databases(&poolers, &args.db)?;
    let (mut client, server) = connect(conn, printer)?;
    trail.connected(&mut client)?;
    if args.list {
        printer.print(&lock::list(&mut client, &server)?)?;
        return Ok(ExitStatus::Success);
    }
    let targets = lock::Targets {
        dbs: args.db.clone(),
        roles: args.role.clone(),
    };
    interrupt::install()?;
    if args.dry_run {
        let changes = lock::lock(
            &mut client,
            &server,
            &targets,
            args.method,
            true,
            args.lock_timeout,
            &[],
        )?;
        print_changes(printer, &changes, true, trail, &mut client)?;
        pooling::print_pause_plan(&poolers, &args.db, &args.pause, printer)?;
        return Ok(ExitStatus::Success);
    }
    let (changes, terminated) = pause_and_lock(
        &mut client,
        &server,
        &poolers,
        &targets,
        (args.method, args.lock_timeout),
        &args.pause,
        conn,
        printer,
        false,
    )?;
    // The backends terminated so that a pause could complete are acted on too: audited (and
    // reported with their database's change).
    if !terminated.is_empty() {
        warn(printer, trail.sessions(&mut client, &terminated)?);
    }
    print_changes(printer, &changes, false, trail, &mut client)?;
    note_hidden_holders(&mut client, &server, &args.db, None, printer)?;
    Ok(ExitStatus::Success)
}

fn unlock_databases_or_roles(
    conn: &ConnArgs,
    printer: &Printer,
    args: &UnlockArgs,
    trail: &audit::Trail,
) -> Result<ExitStatus> {
    let poolers = pooling::parse(&args.poolers.pgbouncer)?;
    pooling::check_databases(&poolers, &args.db)?;
    let (mut client, server) = connect(conn, printer)?;
    trail.connected(&mut client)?;
    let targets = lock::Targets {
        dbs: args.db.clone(),
        roles: args.role.clone(),
    };
    interrupt::install()?;
    let mut changes = lock::unlock(
        &mut client,
        &server,
        &targets,
        args.dry_run,
        args.lock_timeout,
    )?;
    if args.dry_run {
        print_changes(printer, &changes, true, trail, &mut client)?;
        pooling::print_resume_plan(&changes, &poolers, printer)?;
        return Ok(ExitStatus::Success);
    }
    // The server side is unlocked whatever the poolers say; one not resumed is exit 3, and
    // so is anything the record asked for that unlock did not give back.
    let resumed = pooling::resume(&mut changes, &poolers, conn, printer);
    let undone = warn_left_undone(printer, &changes);
    print_changes(printer, &changes, false, trail, &mut client)?;
    Ok(if resumed && !undone {
        ExitStatus::Success
    } else {
        ExitStatus::Partial
    })
}

/// unlock: one warning for each thing a change did not give back, with the statements that
/// would (to run by hand once the reason is dealt with). True when there was any.
fn warn_left_undone(printer: &Printer, changes: &[lock::Change]) -> bool {
    let mut any = false;
    for change in changes {
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

/// A warning from the audit trail (the server refused the --server-log line).
fn warn(printer: &Printer, warning: Option<String>) {
    if let Some(w) = warning {
        printer.warn(&w);
    }
}

/// What lock or unlock did; with --dry-run, also the statements each change would run. The
/// audit records are written first, and an error writing them is returned once the changes
/// are shown.
fn print_changes(
    printer: &Printer,
    changes: &[lock::Change],
    dry_run: bool,
    trail: &audit::Trail,
    client: &mut postgres::Client,
) -> Result<()> {
    let audited = trail.changes(client, changes, dry_run);
    printer.print(changes)?;
    if dry_run {
        print_statements(printer, changes)?;
    }
    warn(printer, audited?);
    Ok(())
}

/// --dry-run of lock, unlock and terminate --lock: the statements each change would run.
fn print_statements(printer: &Printer, changes: &[lock::Change]) -> Result<()> {
    for change in changes.iter().filter(|c| !c.statements.is_empty()) {
        printer.dry_run_sql(&change.statements.join("\n"))?;
    }
    Ok(())
}
