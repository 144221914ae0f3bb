//! PgBouncer's admin console (`--pgbouncer CONNINFO`): pausing a database on every pooler in
//! front of the server before a lock, resuming it after unlock, and telling which pooler
//! client is behind a server session.
//!
//! The admin console is the virtual database `pgbouncer` of the pooler. It is not PostgreSQL:
//! it speaks only the simple query protocol (so everything here goes through
//! `simple_query`), takes no bind parameters, and names a database as one word, written here
//! always as a double-quoted identifier (`PAUSE "my db"`, a `"` doubled), which PgBouncer
//! accepts for any name. Its connection string follows libpq's conventions like `-d`'s
//! (`.pgpass`, the PG* variables, the service file), resolved by `conn` as a separate
//! connection to database `pgbouncer`; pgkick's `-h/-p/-U` do not apply to it.
//!
//! - `PAUSE db` answers only once every server connection of the database is released and
//!   closed: in transaction pooling, once the transactions in flight have ended. Clients of
//!   the database wait in the pooler meanwhile (until `query_wait_timeout`, 120 s by default),
//!   instead of failing. [`pause_all`] bounds that wait (`--pause-timeout`) and, when it runs
//!   out, has the caller terminate the backends of the server connections that keep the pause
//!   from completing (state `active`: linked to a client, i.e. a transaction is open).
//! - `RESUME db` lets the queued clients go on. PgBouncer answers `database ... is not
//!   paused` for a database that is not; unlock reports that as `not_paused`.
//! - `--pgbouncer-disable`: after the pause, `DISABLE db` (new clients are refused) and
//!   `KILL db` (the waiting clients are disconnected); unlock runs `ENABLE db`, then `RESUME`.
//!
//! What was done is recorded with the lock (`lock::PoolerEntry`: the connection string
//! without its password, and the action), so unlock from anywhere undoes it.

mod show;

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Result};
use postgres::SimpleQueryMessage;
use postgres_protocol::escape::escape_identifier;
use serde::Serialize;

pub use show::{links, pool_is_logging_in, PoolerLink, ServerConn, ShowRow};

use crate::conn;
use crate::error::{self, Usage};
use crate::lock::{PoolerAction, PoolerEntry};

/// The admin console's database name.
pub const ADMIN_DATABASE: &str = "pgbouncer";

/// How many times a pause that does not complete has its blockers terminated before pgkick
/// gives up on it.
const UNBLOCK_ROUNDS: u32 = 3;

/// How long PAUSE waits for a database's pools to finish logging in server connections (see
/// [`show::pool_is_logging_in`]) before it is sent anyway.
const LOGINS_SETTLE: Duration = Duration::from_secs(2);

/// One `--pgbouncer` value.
#[derive(Debug, Clone)]
pub struct Pooler {
    /// As given; may hold a password, so it is never shown or written down.
    conninfo: String,
    /// The connection string without password or dbname, with the user, host and port it
    /// resolves to filled in: its name in messages, output and the lock record, and enough
    /// to reach it again from another machine (with that machine's `.pgpass`).
    pub label: String,
}

impl Pooler {
    /// Checks the value (a conninfo string or a URI) and resolves it. A value that does not
    /// parse or resolve (a plain name, an unknown keyword, an unclosed quote, a bad sslmode)
    /// is a usage error, as a bad `-d` is: the plan finds it before anything connects.
    pub fn parse(conninfo: &str) -> Result<Pooler> {
        let usage = |e: anyhow::Error| Usage(format!("--pgbouncer: {}", error::one_line(&e)));
        let mut opts = conn::parse_connection_string(conninfo)
            .map_err(usage)?
            .ok_or_else(|| {
                Usage(format!(
                    "--pgbouncer {:?} is not a connection string: give a conninfo \
                     string (\"host=... port=6432 user=...\") or a postgresql:// URI for \
                     the pooler's admin console",
                    conn::mask_passwords(conninfo)
                ))
            })?;
        let settings = resolve(conninfo).map_err(usage)?;
        opts.remove("password");
        opts.remove("dbname");
        opts.entry("user".into())
            .or_insert_with(|| settings.user.clone());
        if let [target] = &settings.targets[..] {
            if !opts.contains_key("host") && !opts.contains_key("hostaddr") {
                opts.insert("host".into(), target.host.text());
            }
            opts.entry("port".into())
                .or_insert_with(|| target.port.to_string());
        }
        Ok(Pooler {
            conninfo: conninfo.to_string(),
            label: conn::render_conninfo(&opts),
        })
    }

    /// The connection settings of the admin console.
    pub fn settings(&self) -> Result<conn::Settings> {
        resolve(&self.conninfo)
    }

    /// Whether this pooler is the one a lock record names as `label`: the same host (or
    /// hostaddr), port and user, however either was spelled. The record's text is only
    /// compared, never connected to: it is written by whoever may comment on the database.
    pub fn is(&self, label: &str) -> bool {
        match (PoolerId::of(&self.label), PoolerId::of(label)) {
            (Some(mine), Some(recorded)) => mine == recorded,
            _ => self.label == label,
        }
    }
}

/// Where a pooler's admin console is and who logs in there, as a label names it.
#[derive(Debug, PartialEq, Eq)]
struct PoolerId {
    host: Option<String>,
    hostaddr: Option<String>,
    port: Option<String>,
    user: Option<String>,
}

impl PoolerId {
    /// A label's place and user (labels always name them); None when it does not parse.
    fn of(label: &str) -> Option<PoolerId> {
        let opts = conn::parse_connection_string(label).ok()??;
        let get = |k: &str| opts.get(k).cloned();
        Some(PoolerId {
            host: get("host"),
            hostaddr: get("hostaddr"),
            port: get("port"),
            user: get("user"),
        })
    }
}

fn resolve(conninfo: &str) -> Result<conn::Settings> {
    let args = conn::Params {
        dbname: Some(conninfo.to_string()),
        ..conn::Params::default()
    };
    conn::Settings::resolve_for_database(&args, ADMIN_DATABASE)
}

/// A session on a pooler's admin console.
pub struct Admin {
    pub label: String,
    client: postgres::Client,
}

impl Admin {
    pub fn new(label: &str, client: postgres::Client) -> Admin {
        Admin {
            label: label.to_string(),
            client,
        }
    }

    /// `SHOW <what>`, its rows by column name.
    pub fn show(&mut self, what: &str) -> Result<Vec<ShowRow>> {
        let messages = self
            .client
            .simple_query(&format!("SHOW {what}"))
            .map_err(|e| self.error(&format!("SHOW {what}"), e))?;
        Ok(messages
            .iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(row) => Some(ShowRow(
                    row.columns()
                        .iter()
                        .enumerate()
                        .map(|(i, c)| (c.name().to_string(), row.get(i).map(str::to_string)))
                        .collect(),
                )),
                _ => None,
            })
            .collect())
    }

    /// The database's row of SHOW DATABASES (an empty one when the pooler has none).
    pub fn database(&mut self, database: &str) -> Result<ShowRow> {
        Ok(self
            .show("DATABASES")?
            .into_iter()
            .find(|row| row.get("name") == Some(database))
            .unwrap_or_default())
    }

    /// What unlock undoes on a pooler the lock record does not name: ENABLE too when SHOW
    /// DATABASES says the database is disabled (`--pgbouncer-disable`, or by hand), else
    /// RESUME only.
    pub fn undo_needed(&mut self, database: &str) -> Result<PoolerAction> {
        Ok(PoolerAction::asked(
            self.database(database)?.flag("disabled"),
        ))
    }

    /// `<verb> "<database>"`.
    pub fn command(&mut self, verb: &str, database: &str) -> Result<()> {
        let text = format!("{verb} {}", escape_identifier(database));
        self.client
            .simple_query(&text)
            .map(drop)
            .map_err(|e| self.error(&text, e))
    }

    fn error(&self, what: &str, e: postgres::Error) -> anyhow::Error {
        let msg = match e.as_db_error() {
            Some(db) => db.message().to_string(),
            None => e.to_string(),
        };
        anyhow!("pooler {}: {what}: {msg}", self.label)
    }

    /// Undoes `action` for `database`: ENABLE (after disable), then RESUME.
    pub fn undo(&mut self, database: &str, action: PoolerAction) -> Step {
        let mut step = Step::new(&self.label, database, "resumed");
        let result = (|| -> Result<()> {
            for verb in action.before_resume() {
                self.command(verb, database)?;
            }
            match self.command("RESUME", database) {
                Err(e) if e.to_string().ends_with("is not paused") => {
                    step.status = "not_paused";
                    Ok(())
                }
                other => other,
            }
        })();
        match result {
            Ok(()) => step,
            Err(e) => Step::failure(&self.label, database, format!("{e:#}")),
        }
    }
}

/// What pgkick did on one pooler for one database, for the output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Step {
    pub pooler: String,
    #[serde(skip)]
    pub database: String,
    /// `paused`, `disabled`, `already_paused` (lock); `resumed`, `not_paused`, `failed`
    /// (unlock).
    pub status: &'static str,
    /// Why it failed.
    pub error: Option<String>,
}

impl Step {
    pub fn new(pooler: &str, database: &str, status: &'static str) -> Step {
        Step {
            pooler: pooler.to_string(),
            database: database.to_string(),
            status,
            error: None,
        }
    }

    /// A step that failed, and why.
    pub fn failure(pooler: &str, database: &str, error: String) -> Step {
        Step {
            error: Some(error),
            ..Step::new(pooler, database, "failed")
        }
    }

    /// unlock: a pooler the lock record names that the operator did not name with
    /// `--pgbouncer`. pgkick never connects to a pooler on the strength of a record alone
    /// (its writer would choose where pgkick's password goes), so the database stays paused
    /// there; `how` says what resumes it.
    pub fn not_named(pooler: &str, database: &str, how: String) -> Step {
        Step {
            error: Some(how),
            ..Step::new(pooler, database, "still_paused")
        }
    }

    /// A step that leaves the pooler short of what was asked (exit 3).
    pub fn failed(&self) -> bool {
        matches!(self.status, "failed" | "still_paused")
    }

    /// One line for stderr.
    pub fn line(&self) -> String {
        let mut line = format!(
            "pooler {}: database \"{}\" {}",
            self.pooler,
            self.database,
            self.status.replace('_', " ")
        );
        if let Some(e) = &self.error {
            line.push_str(&format!(": {e}"));
        }
        line
    }
}

/// Two admin sessions on one pooler: one to wait on PAUSE, one to look and to undo.
pub struct Connections {
    pub waiter: Admin,
    pub monitor: Admin,
}

/// What the caller does while pauses are pending.
pub trait Pausing {
    /// Called about every 100 ms: fails to give up (an interrupt).
    fn tick(&mut self, pooler: &str, database: &str, left: Duration) -> Result<()>;
    /// Terminates these backends (the server connections keeping the pause of `database` from
    /// completing).
    fn unblock(&mut self, database: &str, pids: &[i32]) -> Result<()>;
}

/// The pauses in force: what lock records, and what is undone when the lock does not happen.
pub struct Paused {
    monitors: Vec<Admin>,
    /// What this run paused: undone when the lock does not happen.
    done: Vec<(usize, String)>,
    /// Paused already before this run (an earlier lock, or by hand): left alone.
    already: Vec<(usize, String)>,
    action: PoolerAction,
}

impl Paused {
    /// What the lock record keeps: one entry per pooler.
    pub fn entries(&self) -> Vec<PoolerEntry> {
        self.monitors
            .iter()
            .map(|m| PoolerEntry {
                pooler: m.label.clone(),
                action: self.action,
            })
            .collect()
    }

    /// What was done for `database`, for the output.
    pub fn steps(&self, database: &str) -> Vec<Step> {
        let status = match self.action {
            PoolerAction::Pause => "paused",
            PoolerAction::Disable => "disabled",
        };
        let done = self.done.iter().map(|d| (d, status));
        let already = self.already.iter().map(|d| (d, "already_paused"));
        done.chain(already)
            .filter(|((_, db), _)| db == database)
            .map(|((i, db), status)| Step::new(&self.monitors[*i].label, db, status))
            .collect()
    }

    /// Undoes every pause (the lock did not happen): the steps that failed.
    pub fn release(mut self) -> Vec<Step> {
        let mut failed = Vec::new();
        for (i, db) in std::mem::take(&mut self.done).into_iter().rev() {
            let step = self.monitors[i].undo(&db, self.action);
            if step.failed() {
                failed.push(step);
            }
        }
        failed
    }
}

/// PAUSEs every database on every pooler (and, for `Disable`, DISABLE and KILL them), each
/// pause bounded by `timeout` after which its blockers are terminated through `pausing`. On
/// any failure, what was paused is resumed before the error is returned.
pub fn pause_all(
    poolers: Vec<Connections>,
    databases: &[String],
    action: PoolerAction,
    timeout: Duration,
    pausing: &mut dyn Pausing,
) -> Result<Paused> {
    let mut waiters = Vec::new();
    let mut paused = Paused {
        monitors: Vec::new(),
        done: Vec::new(),
        already: Vec::new(),
        action,
    };
    for c in poolers {
        waiters.push(Some(c.waiter));
        paused.monitors.push(c.monitor);
    }
    let result = (|| -> Result<()> {
        for (i, waiter) in waiters.iter_mut().enumerate() {
            for db in databases {
                let row = paused.monitors[i].database(db)?;
                if row.flag("paused") {
                    paused.already.push((i, db.clone()));
                    continue;
                }
                let admin = waiter
                    .take()
                    .expect("the waiter comes back after each pause");
                settle_logins(&mut paused.monitors[i], &row, db, timeout, pausing)?;
                // Recorded before PAUSE is sent: a pause given up half-way is resumed too.
                paused.done.push((i, db.clone()));
                match pause(admin, &mut paused.monitors[i], db, timeout, pausing)? {
                    Ok(admin) => *waiter = Some(admin),
                    Err(refused) => {
                        // PgBouncer answered with an error: it paused nothing.
                        paused.done.pop();
                        return Err(refused);
                    }
                }
                for verb in action.after_pause() {
                    paused.monitors[i].command(verb, db)?;
                }
            }
        }
        Ok(())
    })();
    match result {
        Ok(()) => Ok(paused),
        Err(e) => {
            let failed = paused.release();
            if let Some(f) = failed.first() {
                bail!("{e:#}; and could not resume: {}", f.line());
            }
            Err(e.context(
                "nothing was changed on the server, and what pgkick paused on the poolers was \
                 resumed",
            ))
        }
    }
}

/// Waits (up to [`LOGINS_SETTLE`]) until no pool of `database` is logging in a server
/// connection, so that PAUSE does not close one half-way: PgBouncer would take that for a
/// failing server and refuse clients after RESUME. What is left is the moment between this
/// look and PAUSE; a pool still logging in after the wait is paused anyway.
fn settle_logins(
    monitor: &mut Admin,
    row: &ShowRow,
    database: &str,
    timeout: Duration,
    pausing: &mut dyn Pausing,
) -> Result<()> {
    let started = Instant::now();
    let room = show::PoolRoom::of_database(row);
    while pool_is_logging_in(&monitor.show("POOLS")?, database, room)
        && started.elapsed() < LOGINS_SETTLE
    {
        pausing.tick(&monitor.label, database, timeout)?;
        thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// PAUSE on `admin`'s session, in a thread since PgBouncer answers only once the pause is
/// complete; `monitor` finds the blockers when `timeout` runs out. The inner error is
/// PgBouncer's refusal (nothing paused); the outer one leaves the pause pending.
fn pause(
    mut admin: Admin,
    monitor: &mut Admin,
    database: &str,
    timeout: Duration,
    pausing: &mut dyn Pausing,
) -> Result<Result<Admin>> {
    let (tx, rx) = mpsc::channel();
    let db = database.to_string();
    thread::spawn(move || {
        let result = admin.command("PAUSE", &db);
        let _ = tx.send((admin, result));
    });
    let mut deadline = Instant::now() + timeout;
    let mut rounds = 0;
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok((admin, result)) => return Ok(result.map(|()| admin)),
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                bail!(
                    "pooler {}: PAUSE {}: lost the session",
                    monitor.label,
                    escape_identifier(database)
                )
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        let left = deadline.saturating_duration_since(Instant::now());
        pausing.tick(&monitor.label, database, left)?;
        if !left.is_zero() {
            continue;
        }
        if rounds == UNBLOCK_ROUNDS {
            bail!(
                "pooler {}: PAUSE {} did not complete after terminating what held it {} times",
                monitor.label,
                escape_identifier(database),
                UNBLOCK_ROUNDS
            );
        }
        rounds += 1;
        let blockers: Vec<i32> = monitor
            .show("SERVERS")?
            .iter()
            .map(ServerConn::from_row)
            .filter(|s| s.blocks_pause_of(database))
            .filter_map(|s| s.remote_pid)
            .collect();
        if !blockers.is_empty() {
            pausing.unblock(database, &blockers)?;
        }
        deadline = Instant::now() + timeout.max(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_double_quoted_for_the_admin_console() {
        // The admin console reads a database name as SQL reads an identifier.
        assert_eq!(escape_identifier("app"), "\"app\"");
        assert_eq!(escape_identifier("My \"db\""), "\"My \"\"db\"\"\"");
    }

    #[test]
    fn the_label_leaves_out_the_password_and_fills_in_the_user() {
        let p =
            Pooler::parse("host=/tmp/pgb port=6432 user=admin password=secret dbname=x").unwrap();
        assert_eq!(p.label, "host=/tmp/pgb port=6432 user=admin");
        let p = Pooler::parse("postgresql://admin:secret@pgb.example:6432/pgbouncer").unwrap();
        assert_eq!(p.label, "host=pgb.example port=6432 user=admin");
        assert!(!p.label.contains("secret"));
        for (bad, says) in [
            ("pgb.example", "not a connection string"),
            ("hots=x", "invalid connection option \"hots\""),
            ("host='pgb port=6432", "unterminated quoted string"),
            ("host=pgb sslmode=sometimes", "sslmode"),
            ("postgresql://admin:secret@[::1", "secret"),
        ] {
            let err = Pooler::parse(bad).unwrap_err();
            assert_eq!(
                error::exit_status(&err),
                error::ExitStatus::Usage,
                "{bad}: {err:#}"
            );
            let line = error::one_line(&err);
            if bad.contains("secret") {
                assert!(!line.contains("secret"), "{line}");
            } else {
                assert!(line.contains(says), "{bad}: {line}");
            }
        }
    }
}
