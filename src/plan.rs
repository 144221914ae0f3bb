//! The plan: the command line turned once, before anything connects, into typed and checked
//! options (ripgrep's `LowArgs → HiArgs`, cargo's `ops::*Options`).
//!
//! [`Plan::from_cli`] resolves the servers (each `-d`, the `--servers` file, `--each-host`,
//! each server's connection settings), the filter, the poolers, the audit configuration, the
//! password policy and the output, and makes every usage check there is: a usage error is
//! exit 2 before anything connects, over one server or many. Nothing after it sees a clap
//! type or the raw arguments; the pipelines in `ops` take the plan's types.

use std::ffi::OsString;
use std::time::Duration;

use anyhow::Result;

use crate::audit;
use crate::cli::{self, Cli};
use crate::conn::{self, Params, PasswordPolicy};
use crate::error::{Refused, Usage};
use crate::filter::{Filter, LockChain};
use crate::fleet::{self, Member, Source};
use crate::lock::{LockMethod, Targets};
use crate::output;
use crate::pgbouncer::Pooler;
use crate::signal::Action;

/// Everything a run does, decided.
pub struct Plan {
    pub servers: Servers,
    pub output: output::Options,
    pub command: Command,
}

/// The servers of the run.
pub enum Servers {
    /// One server: the flags and PG* alone, or one `-d` with one host.
    One(Box<Member>),
    /// Several (`-d` repeated, `--servers`, `--each-host`), each once.
    Many {
        members: Vec<Member>,
        /// `--jobs`: at most this many at a time.
        jobs: usize,
        /// `--each-host`: a host that does not match target_session_attrs is skipped.
        each_host: bool,
    },
}

/// What the run does on each server.
pub enum Command {
    List(List),
    /// cancel, and terminate without --lock.
    Signal(Signal),
    /// terminate --lock: the drop-ready workflow.
    DropReady(DropReady),
    Lock(Lock),
    Unlock(Unlock),
    /// pgkick conninfo; with `connect`, also connects.
    Conninfo {
        connect: bool,
    },
}

/// `list`.
pub struct List {
    pub filter: Filter,
    /// --tree: the lock chains as a tree (table output only).
    pub tree: bool,
    /// --pgbouncer: the poolers whose clients are shown behind their server sessions.
    pub poolers: Vec<Pooler>,
}

/// The guards of cancel and terminate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guard {
    /// --all: act on every session when no filter is given.
    pub all: bool,
    /// --max N.
    pub max: Option<usize>,
    /// --yes: do not ask on a terminal (always, in watch mode).
    pub yes: bool,
    /// --dry-run.
    pub dry_run: bool,
}

/// --wait and --wait-timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait {
    pub wait: bool,
    pub timeout: Duration,
}

/// --every and --rounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watch {
    pub every: Duration,
    pub rounds: Option<u64>,
}

/// cancel, and terminate.
pub struct Signal {
    pub action: Action,
    pub filter: Filter,
    pub guard: Guard,
    pub wait: Wait,
    /// terminate --cancel-first: the grace period between cancel and terminate.
    pub cancel_first: Option<Duration>,
    /// --every: rounds, until SIGINT, SIGTERM or --rounds.
    pub watch: Option<Watch>,
    pub audit: audit::Config,
}

impl Signal {
    /// The signal sent first: cancel with --cancel-first, else the action itself.
    pub fn first_action(&self) -> Action {
        if self.cancel_first.is_some() {
            Action::Cancel
        } else {
            self.action
        }
    }
}

/// --pgbouncer where the databases are paused before a lock.
pub struct Pause {
    pub poolers: Vec<Pooler>,
    /// --pause-timeout.
    pub timeout: Duration,
    /// --pgbouncer-disable.
    pub disable: bool,
}

/// terminate --lock.
pub struct DropReady {
    /// What terminate does: the action is always terminate, and there are no rounds.
    pub signal: Signal,
    pub method: LockMethod,
    pub lock_timeout: Duration,
    /// --rollback-prepared.
    pub rollback_prepared: bool,
    pub pause: Pause,
}

/// `lock`.
pub struct Lock {
    pub targets: Targets,
    pub method: LockMethod,
    pub dry_run: bool,
    /// --list: show the locks recorded in the cluster instead.
    pub list: bool,
    pub lock_timeout: Duration,
    pub audit: audit::Config,
    pub pause: Pause,
}

/// `unlock`.
pub struct Unlock {
    pub targets: Targets,
    pub dry_run: bool,
    pub lock_timeout: Duration,
    pub audit: audit::Config,
    /// --pgbouncer: the poolers to resume on (the only ones unlock connects to).
    pub poolers: Vec<Pooler>,
}

impl Plan {
    /// The plan of the command line `cli`, parsed by clap from `argv` (the raw arguments,
    /// which only the usage checks clap cannot make and the audit records read).
    pub fn from_cli(cli: Cli, argv: &[OsString]) -> Result<Plan> {
        Plan::from_cli_with(cli, argv, &conn::Settings::resolve)
    }

    /// [`Plan::from_cli`] with `resolve` for the connection settings (tests resolve without
    /// the process's environment).
    fn from_cli_with(
        cli: Cli,
        argv: &[OsString],
        resolve: &dyn Fn(&Params) -> Result<conn::Settings>,
    ) -> Result<Plan> {
        let output = output_options(&cli.output);
        let mut params = conn_params(&cli.conn);
        let args: Vec<String> = argv
            .iter()
            .skip(1)
            // An argument that is not UTF-8 is recorded lossily, not a panic.
            .map(|a| conn::mask_passwords(&a.to_string_lossy()))
            .collect();
        let command = command(cli.command, &output, &args)?;
        if let Command::Signal(Signal { watch: Some(_), .. }) = &command {
            if params.password == PasswordPolicy::Before {
                return Err(Usage(
                    "--every cannot prompt for a password (-W): put it in ~/.pgpass or \
                     PGPASSWORD"
                        .into(),
                )
                .into());
            }
            // Rounds never ask for a password.
            params.password = PasswordPolicy::Never;
        }
        let servers = servers(&cli.conn, &cli.fleet, params, argv, resolve)?;
        if let Servers::Many { .. } = servers {
            match &command {
                Command::Signal(Signal { watch: Some(_), .. }) => {
                    return Err(Usage(
                        "--every runs on one server: give one -d (one pgkick --every per \
                         server), or run the fleet from cron"
                            .into(),
                    )
                    .into())
                }
                Command::Conninfo { .. } => {
                    return Err(Usage(
                        "conninfo shows one server: give at most one -d, and no --servers or \
                         --each-host"
                            .into(),
                    )
                    .into())
                }
                _ => {}
            }
        }
        Ok(Plan {
            servers,
            output,
            command,
        })
    }
}

fn output_options(args: &cli::OutputArgs) -> output::Options {
    output::Options {
        format: if args.json {
            output::OutputFormat::Json
        } else {
            args.output
        },
        quiet: args.quiet,
    }
}

/// The connection flags, without a `-d` value (each server has its own).
fn conn_params(args: &cli::ConnArgs) -> Params {
    Params {
        host: args.host.clone(),
        port: args.port.clone(),
        user: args.username.clone(),
        dbname: None,
        only_host: None,
        password: if args.password {
            PasswordPolicy::Before
        } else if args.no_password {
            PasswordPolicy::Never
        } else {
            PasswordPolicy::WhenNeeded
        },
    }
}

/// The filter of the filter flags: a repeated flag ORs its values; of the age flags, the
/// shortest counts (every longer one is implied by it).
pub fn filter(args: &cli::FilterArgs) -> Filter {
    Filter {
        dbs: args.db.clone(),
        users: args.user.clone(),
        apps: args.app.clone(),
        clients: args.client.clone(),
        states: args.state.clone(),
        queries: args.query.clone(),
        pids: args.pid.clone(),
        query_age: args.query_age.iter().min().copied(),
        xact_age: args.xact_age.iter().min().copied(),
        state_age: args.state_age.iter().min().copied(),
        backend_age: args.backend_age.iter().min().copied(),
        backend_types: args.backend_type.clone(),
        exclude_dbs: args.exclude_db.clone(),
        exclude_users: args.exclude_user.clone(),
        exclude_apps: args.exclude_app.clone(),
        exclude_pids: args.exclude_pid.clone(),
        chain: LockChain {
            blocked: args.blocked,
            blocking: args.blocking,
            root_blocker: args.root_blocker,
            blocks: args.blocks.clone(),
            blocked_for: args.blocked_for.iter().min().copied(),
        },
    }
}

/// The `--pgbouncer` values, checked before anything connects; the same pooler twice is
/// one.
fn poolers(values: &[String]) -> Result<Vec<Pooler>> {
    let mut poolers: Vec<Pooler> = Vec::new();
    for value in values {
        let pooler = Pooler::parse(value)?;
        if !poolers.iter().any(|p| p.label == pooler.label) {
            poolers.push(pooler);
        }
    }
    Ok(poolers)
}

/// `--pgbouncer` acts on the --db databases: lock and unlock need some.
fn check_poolers_have_databases(poolers: &[Pooler], dbs: &[String]) -> Result<()> {
    if !poolers.is_empty() && dbs.is_empty() {
        return Err(Usage("--pgbouncer pauses the --db databases: give --db NAME".into()).into());
    }
    Ok(())
}

fn pause(args: &cli::PauseArgs) -> Result<Pause> {
    Ok(Pause {
        poolers: poolers(&args.pgbouncer)?,
        timeout: args.pause_timeout,
        disable: args.pgbouncer_disable,
    })
}

fn audit_config(
    args: &cli::AuditArgs,
    command: &'static str,
    dry_run: bool,
    argv: &[String],
) -> audit::Config {
    audit::Config {
        destination: args
            .audit_log
            .clone()
            .filter(|_| !dry_run || args.audit_dry_run),
        facility: args.audit_facility,
        dry_run_records: args.audit_dry_run,
        server_log: args.server_log && !dry_run,
        reason: args.reason.clone(),
        command,
        args: argv.to_vec(),
    }
}

fn guard(args: &cli::GuardArgs) -> Guard {
    Guard {
        all: args.all,
        max: args.max,
        yes: args.yes,
        dry_run: args.dry_run,
    }
}

fn wait(args: &cli::WaitArgs) -> Wait {
    Wait {
        wait: args.wait,
        timeout: args.wait_timeout,
    }
}

/// The guard that needs no server: a filter, or --all (exit 4, before connecting).
fn refuse_unfiltered(filter: &Filter, guard: &Guard, action: Action) -> Result<()> {
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

fn command(command: cli::Command, output: &output::Options, argv: &[String]) -> Result<Command> {
    Ok(match command {
        cli::Command::List(args) => {
            if args.tree && output.format != output::OutputFormat::Table {
                return Err(Usage(
                    "--tree is a table view; JSON output already carries blocked_by and \
                     blocking"
                        .into(),
                )
                .into());
            }
            Command::List(List {
                filter: filter(&args.filter),
                tree: args.tree,
                poolers: poolers(&args.poolers.pgbouncer)?,
            })
        }
        cli::Command::Cancel(args) => Command::Signal(signal(
            Action::Cancel,
            SignalArgs {
                filter: &args.filter,
                guard: &args.guard,
                wait: &args.wait,
                watch: &args.watch,
            },
            None,
            audit_config(&args.audit, "cancel", args.guard.dry_run, argv),
        )?),
        cli::Command::Terminate(args) => {
            let signal = signal(
                Action::Terminate,
                SignalArgs {
                    filter: &args.filter,
                    guard: &args.guard,
                    wait: &args.wait,
                    watch: &args.watch,
                },
                args.cancel_first.then_some(args.grace),
                audit_config(&args.audit, "terminate", args.guard.dry_run, argv),
            )?;
            if !args.lock {
                if !args.pause.pgbouncer.is_empty() {
                    return Err(Usage("--pgbouncer on terminate needs --lock".into()).into());
                }
                return Ok(Command::Signal(signal));
            }
            Command::DropReady(DropReady {
                signal,
                method: args.method,
                lock_timeout: args.lock_timeout,
                rollback_prepared: args.rollback_prepared,
                pause: pause(&args.pause)?,
            })
        }
        cli::Command::Lock(args) => {
            let pause = pause(&args.pause)?;
            check_poolers_have_databases(&pause.poolers, &args.db)?;
            Command::Lock(Lock {
                targets: Targets {
                    dbs: args.db,
                    roles: args.role,
                },
                method: args.method,
                dry_run: args.dry_run,
                list: args.list,
                lock_timeout: args.lock_timeout,
                audit: audit_config(&args.audit, "lock", args.dry_run, argv),
                pause,
            })
        }
        cli::Command::Unlock(args) => {
            let poolers = poolers(&args.poolers.pgbouncer)?;
            check_poolers_have_databases(&poolers, &args.db)?;
            Command::Unlock(Unlock {
                targets: Targets {
                    dbs: args.db,
                    roles: args.role,
                },
                dry_run: args.dry_run,
                lock_timeout: args.lock_timeout,
                audit: audit_config(&args.audit, "unlock", args.dry_run, argv),
                poolers,
            })
        }
        cli::Command::Conninfo(args) => Command::Conninfo {
            connect: args.connect,
        },
    })
}

/// The flags cancel and terminate share.
struct SignalArgs<'a> {
    filter: &'a cli::FilterArgs,
    guard: &'a cli::GuardArgs,
    wait: &'a cli::WaitArgs,
    watch: &'a cli::WatchArgs,
}

/// cancel or terminate, checked: a filter or --all; in watch mode, nothing is ever asked.
fn signal(
    action: Action,
    args: SignalArgs<'_>,
    cancel_first: Option<Duration>,
    audit: audit::Config,
) -> Result<Signal> {
    let filter = filter(args.filter);
    let mut guard = guard(args.guard);
    refuse_unfiltered(&filter, &guard, action)?;
    let watch = args.watch.every.map(|every| Watch {
        every,
        rounds: args.watch.rounds,
    });
    if watch.is_some() {
        guard.yes = true;
    }
    Ok(Signal {
        action,
        filter,
        guard,
        wait: wait(args.wait),
        cancel_first,
        watch,
        audit,
    })
}

/// The servers: one, or each of many; a value that does not resolve is a usage error.
fn servers(
    conn_args: &cli::ConnArgs,
    fleet_args: &cli::FleetArgs,
    base: Params,
    argv: &[OsString],
    resolve: &dyn Fn(&Params) -> Result<conn::Settings>,
) -> Result<Servers> {
    if dbname_flags(argv) > conn_args.dbnames.len() {
        return Err(Usage(
            "-d is given both before and after the subcommand, and only one side would be \
             used: give every -d on the same side"
                .into(),
        )
        .into());
    }
    let mut values: Vec<(Source, String)> = conn_args
        .dbnames
        .iter()
        .enumerate()
        .map(|(i, v)| (Source::Flag(i + 1), v.clone()))
        .collect();
    let mut file = String::new();
    if let Some(path) = &fleet_args.servers {
        let text = if path.as_os_str() == "-" {
            file = "standard input".into();
            std::io::read_to_string(std::io::stdin())
                .map_err(|e| Usage(format!("--servers -: cannot read standard input: {e}")))?
        } else {
            file = path.display().to_string();
            std::fs::read_to_string(path)
                .map_err(|e| Usage(format!("--servers {file}: cannot read it: {e}")))?
        };
        let listed = fleet::file_values(&text);
        if listed.is_empty() && values.is_empty() {
            let name = path.display();
            return Err(Usage(format!("--servers {name}: no servers listed")).into());
        }
        values.extend(listed);
    }
    let one = |values: Vec<(Source, String)>| -> Result<Servers> {
        let params = Params {
            dbname: values.into_iter().next().map(|(_, v)| v),
            ..base.clone()
        };
        Ok(Servers::One(Box::new(fleet::single(params, resolve)?)))
    };
    if values.len() <= 1 && !fleet_args.each_host && fleet_args.servers.is_none() {
        return one(values);
    }
    if values.is_empty() {
        // --each-host over the flags and PG* alone.
        values.push((Source::Flag(1), String::new()));
    }
    let mut members = fleet::plan(&base, &values, fleet_args.each_host, &file, resolve)?;
    if members.len() == 1 && fleet_args.servers.is_none() {
        return Ok(Servers::One(Box::new(members.remove(0))));
    }
    Ok(Servers::Many {
        members,
        jobs: usize::from(fleet_args.jobs),
        each_host: fleet_args.each_host,
    })
}

/// How many times the raw command line gives `-d`/`--dbname` (before a `--`), in a cluster
/// of short flags too (`-wd`). clap keeps only the values on one side of the subcommand when
/// both have some; comparing with this count tells the run to refuse rather than act on some
/// of the servers.
fn dbname_flags(args: &[OsString]) -> usize {
    use clap::CommandFactory;
    // The short flags that take a value: in a cluster, the rest of the word is that value.
    let command = Cli::command();
    let valued: Vec<char> = command
        .get_arguments()
        .chain(command.get_subcommands().flat_map(|c| c.get_arguments()))
        .filter(|a| a.get_action().takes_values())
        .filter_map(clap::Arg::get_short)
        .collect();
    args.iter()
        .skip(1)
        .map(|a| a.to_string_lossy())
        .take_while(|a| a != "--")
        .filter(|a| {
            if *a == "--dbname" || a.starts_with("--dbname=") {
                return true;
            }
            let Some(cluster) = a.strip_prefix('-').filter(|c| !c.starts_with('-')) else {
                return false;
            };
            cluster
                .chars()
                .find(|c| valued.contains(c))
                .is_some_and(|c| c == 'd')
        })
        .count()
}

#[cfg(test)]
mod tests;
