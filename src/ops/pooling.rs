//! The pipelines' side of `--pgbouncer`: connects to the poolers with the run's password
//! policy, pauses the databases before a lock (terminating, through the server, the backends
//! that keep a pause from completing), resumes them after unlock, and links `list`'s sessions
//! to their pooler clients. What the admin console says and does is `pgbouncer`; this file
//! only wires it to the connection context and the printer.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use postgres_protocol::escape::escape_identifier;

use super::entry::Entry;
use super::Context as Ctx;
use crate::activity;
use crate::conn::PasswordPolicy;
use crate::filter::Filter;
use crate::interrupt;
use crate::lock::{self, PoolerAction};
use crate::output::{inert, Printer};
use crate::pgbouncer::{self, Admin, Connections, Paused, Pooler, PoolerLink, Step};
use crate::plan::Pause;
use crate::server::Server;
use crate::session::Session;
use crate::shell;
use crate::signal::{self, Action, Report};

/// A session on the pooler's admin console.
fn connect(pooler: &Pooler, policy: PasswordPolicy, printer: &Printer) -> Result<Admin> {
    let mut sessions = connect_n(pooler, policy, printer, 1)?;
    Ok(sessions.remove(0))
}

/// `n` sessions on the pooler's admin console; a password typed for the first serves the
/// others, so it is asked for once.
fn connect_n(
    pooler: &Pooler,
    policy: PasswordPolicy,
    printer: &Printer,
    n: usize,
) -> Result<Vec<Admin>> {
    let settings = pooler.settings()?;
    for w in &settings.warnings {
        printer.warn(w);
    }
    let mut typed: Option<String> = None;
    let mut read = |user: &str, host_port: &str| -> Result<String> {
        if let Some(password) = &typed {
            return Ok(password.clone());
        }
        let password = printer.read_password(user, host_port)?;
        typed = Some(password.clone());
        Ok(password)
    };
    (0..n)
        .map(|_| {
            let connected = crate::conn::connect_asking(&settings, policy, &mut read)
                .with_context(|| format!("could not reach pooler {}", pooler.label))?;
            Ok(Admin::new(&pooler.label, connected.client))
        })
        .collect()
}

/// What `pause` did: the pauses, and the sessions it terminated to complete them.
pub struct Pauses {
    pub paused: Option<Paused>,
    pub terminated: Vec<Report>,
}

impl Pauses {
    /// What the lock records.
    pub fn entries(&self) -> Vec<lock::PoolerEntry> {
        self.paused
            .as_ref()
            .map(Paused::entries)
            .unwrap_or_default()
    }

    /// After the lock: each database's pooler steps, and the backends terminated so that its
    /// pause could complete, beside its change; a note for each step.
    pub fn attach(&self, entries: &mut [Entry], printer: &Printer) {
        let Some(paused) = &self.paused else {
            return;
        };
        for entry in entries.iter_mut().filter(|e| e.change.kind == "database") {
            let name = entry.change.name.clone();
            entry.poolers = paused.steps(&name);
            for step in &entry.poolers {
                printer.note(&step.line());
            }
            entry.terminated = self
                .terminated
                .iter()
                .filter(|r| r.session.datname.as_deref() == Some(name.as_str()))
                .cloned()
                .collect();
        }
    }

    /// The lock did not happen: resume what was paused; the error says whether that worked.
    pub fn release_on(self, e: anyhow::Error) -> anyhow::Error {
        let Some(paused) = self.paused else {
            return e;
        };
        match paused.release().first() {
            Some(failed) => e.context(format!(
                "and the pause could not be undone: {}",
                failed.line()
            )),
            None => e.context("what pgkick paused on the poolers was resumed"),
        }
    }
}

/// PAUSE (with `--pgbouncer-disable`, also DISABLE and KILL) the databases on every pooler.
/// Every pooler is reached before anything is paused.
pub fn pause(ctx: &mut Ctx<'_>, dbs: &[String], opts: &Pause) -> Result<Pauses> {
    if opts.poolers.is_empty() {
        return Ok(Pauses {
            paused: None,
            terminated: Vec::new(),
        });
    }
    let (printer, policy) = (ctx.printer, ctx.member.params.password);
    let mut connections = Vec::new();
    for pooler in &opts.poolers {
        let [waiter, monitor]: [Admin; 2] = connect_n(pooler, policy, printer, 2)
            .context("nothing was changed")?
            .try_into()
            .unwrap_or_else(|_| unreachable!("connect_n gives n sessions"));
        connections.push(Connections { waiter, monitor });
    }
    let action = PoolerAction::asked(opts.disable);
    let server = ctx.server()?;
    let mut unblocker = Unblocker {
        client: &mut ctx.client,
        server: &server,
        printer,
        terminated: Vec::new(),
    };
    let result = pgbouncer::pause_all(connections, dbs, action, opts.timeout, &mut unblocker);
    printer.progress("", 0, Duration::ZERO);
    Ok(Pauses {
        paused: Some(result?),
        terminated: unblocker.terminated,
    })
}

/// Terminates the backends that hold a pause back, through pgkick's server connection.
struct Unblocker<'a> {
    client: &'a mut postgres::Client,
    server: &'a Server,
    printer: &'a Printer,
    terminated: Vec<Report>,
}

impl pgbouncer::Pausing for Unblocker<'_> {
    fn tick(&mut self, pooler: &str, database: &str, left: Duration) -> Result<()> {
        interrupt::check()?;
        self.printer.progress(
            &format!("waiting for PAUSE of \"{database}\" on pooler {pooler}"),
            1,
            left,
        );
        Ok(())
    }

    fn unblock(&mut self, database: &str, pids: &[i32]) -> Result<()> {
        // Only backends of this server and database: a pooler may front other servers.
        let filter = Filter {
            dbs: vec![database.to_string()],
            pids: pids.to_vec(),
            ..Filter::default()
        };
        let sessions = activity::find(self.client, self.server, &filter)?.sessions;
        for s in &sessions {
            self.printer.warn(&format!(
                "terminating pid {} ({}): its open transaction keeps the pause of database \
                 \"{database}\" from completing within --pause-timeout",
                s.pid,
                s.application_name.as_deref().unwrap_or_default()
            ));
        }
        let reports = signal::signal(self.client, self.server, Action::Terminate, &sessions)?;
        self.terminated.extend(reports);
        Ok(())
    }
}

/// After unlock: undo on each `--pgbouncer` pooler what the lock recorded for each database
/// there (RESUME, and ENABLE first after `--pgbouncer-disable`), and RESUME the databases on
/// the `--pgbouncer` poolers the record does not name (ENABLE too when the pooler says
/// disabled). A pooler the record names but the operator did not is never connected to: the
/// record is text anyone who may comment on the database can write, and connecting would send
/// pgkick's password where that text says. It is reported (`still_paused`) with the command
/// that resumes it. False when a pooler was left paused, could not be reached or refused.
pub fn resume(
    entries: &mut [Entry],
    given: &[Pooler],
    policy: PasswordPolicy,
    printer: &Printer,
) -> bool {
    let mut admins: BTreeMap<String, Result<Admin, String>> = BTreeMap::new();
    let mut all_ok = true;
    for entry in entries.iter_mut().filter(|e| e.change.kind == "database") {
        let change = &entry.change;
        for undo in to_undo(change, given) {
            let step = match undo {
                Undo::NotNamed(label) => Step::not_named(
                    &label,
                    &change.name,
                    how_to_resume(&change.name, &label, change.proven == Some(true)),
                ),
                Undo::On(pooler, action) => {
                    let admin = admins.entry(pooler.label.clone()).or_insert_with(|| {
                        connect(pooler, policy, printer).map_err(|e| format!("{e:#}"))
                    });
                    match admin {
                        Ok(admin) => {
                            match action.map_or_else(|| admin.undo_needed(&change.name), Ok) {
                                Ok(action) => admin.undo(&change.name, action),
                                Err(e) => {
                                    Step::failure(&pooler.label, &change.name, format!("{e:#}"))
                                }
                            }
                        }
                        Err(e) => Step::failure(&pooler.label, &change.name, e.clone()),
                    }
                }
            };
            entry.poolers.push(step);
        }
        for step in &entry.poolers {
            if step.failed() {
                all_ok = false;
                printer.warn(&step.line());
            } else {
                printer.note(&step.line());
            }
        }
    }
    all_ok
}

/// What unlock does on one pooler for one database.
enum Undo<'a> {
    /// Reach this `--pgbouncer` pooler and undo there what the record says was done
    /// (`None`: not recorded; what to undo is looked up on the pooler).
    On(&'a Pooler, Option<PoolerAction>),
    /// A recorded pooler no `--pgbouncer` names: not reached.
    NotNamed(String),
}

/// What unlock undoes for a database's change: each pooler the lock record names, through the
/// `--pgbouncer` value that names the same pooler (or not at all), then each `--pgbouncer`
/// pooler the record does not name.
fn to_undo<'a>(change: &lock::Change, given: &'a [Pooler]) -> Vec<Undo<'a>> {
    let mut todo = Vec::new();
    let mut used = Vec::new();
    for entry in &change.recorded_poolers {
        match given.iter().position(|g| g.is(&entry.pooler)) {
            Some(i) => {
                used.push(i);
                todo.push(Undo::On(&given[i], Some(entry.action)));
            }
            None => todo.push(Undo::NotNamed(entry.pooler.clone())),
        }
    }
    for (i, g) in given.iter().enumerate() {
        if !used.contains(&i) {
            todo.push(Undo::On(g, None));
        }
    }
    todo
}

/// The command that resumes `database` on the recorded pooler `label`: unlock again, naming
/// it. An unproven record's pooler is the record writer's claim, so the operator is told to
/// check it first.
fn how_to_resume(database: &str, label: &str, proven: bool) -> String {
    let check = if proven {
        ""
    } else {
        " (the lock record that names this pooler is not proven: make sure it is yours \
         before you give it your password)"
    };
    format!(
        "the lock record says it was paused there, and pgkick connects only to the poolers \
         you name; resume it with: pgkick unlock --db {} --pgbouncer {}{check}",
        shell::word(database),
        shell::word(label)
    )
}

/// unlock --dry-run: the admin commands unlock would run.
pub fn print_resume_plan(
    changes: &[lock::Change],
    given: &[Pooler],
    printer: &Printer,
) -> Result<()> {
    for change in changes.iter().filter(|c| c.kind == "database") {
        let db = escape_identifier(&change.name);
        for undo in to_undo(change, given) {
            let text = match undo {
                Undo::On(pooler, action) => {
                    let enable = match action {
                        Some(action) => commands(action.before_resume(), &db),
                        None => format!("ENABLE {db}; -- if SHOW DATABASES says disabled\n"),
                    };
                    format!(
                        "-- on pooler {}:\n{enable}RESUME {db};",
                        inert(&pooler.label)
                    )
                }
                // The label is the record's, which whoever may comment on the database wrote:
                // a line break in it must not start a line of its own.
                Undo::NotNamed(label) => format!(
                    "-- pooler {} (named by the lock record, not by --pgbouncer): not \
                     reached; {db} stays paused there",
                    inert(&label)
                ),
            };
            printer.dry_run_sql(&text)?;
        }
    }
    Ok(())
}

/// lock --dry-run and terminate --lock --dry-run: the admin commands the lock would run.
pub fn print_pause_plan(opts: &Pause, dbs: &[String], printer: &Printer) -> Result<()> {
    let action = PoolerAction::asked(opts.disable);
    for pooler in &opts.poolers {
        let mut text = format!("-- on pooler {}:\n", inert(&pooler.label));
        for db in dbs {
            let db = escape_identifier(db);
            text.push_str(&format!("PAUSE {db};\n"));
            text.push_str(&commands(action.after_pause(), &db));
        }
        printer.dry_run_sql(text.trim_end())?;
    }
    Ok(())
}

/// `<verb> <db>;` and a newline, for each of `verbs`.
fn commands(verbs: &[&str], db: &str) -> String {
    verbs.iter().map(|verb| format!("{verb} {db};\n")).collect()
}

/// list --pgbouncer: each session that is a server connection of one of the poolers gets its
/// pooler and client; every other session gets `null`.
pub fn link_sessions(
    sessions: &mut [Session],
    poolers: &[Pooler],
    policy: PasswordPolicy,
    printer: &Printer,
) -> Result<()> {
    if poolers.is_empty() {
        return Ok(());
    }
    let mut links: BTreeMap<(i32, String), PoolerLink> = BTreeMap::new();
    for pooler in poolers {
        let mut admin = connect(pooler, policy, printer)?;
        let servers = admin.show("SERVERS")?;
        let clients = admin.show("CLIENTS")?;
        links.extend(pgbouncer::links(&pooler.label, &servers, &clients));
    }
    for s in sessions {
        let key = (s.pid, s.usename.clone().unwrap_or_default());
        s.pooler = Some(links.get(&key).cloned().map(Box::new));
    }
    Ok(())
}
