//! The audit trail: who ended which session or locked which object, why, and what it was.
//!
//! `--audit-log` writes one JSON object per session or object acted on, as one line:
//! - to a file, opened `O_APPEND` as [`file`] describes: only a private regular file of the
//!   user running pgkick (no symlink, FIFO or other user's file), in a directory no one else
//!   can replace it in; a missing one is created `O_EXCL` with mode 0600. Each line goes out
//!   in a single `write(2)`, so lines of concurrent pgkick runs never interleave;
//! - to `syslog`: one datagram per record on the local syslog socket (`/dev/log`, or the
//!   socket `PGKICK_SYSLOG_SOCKET` names), in the format glibc's syslog(3) sends, with the
//!   `--audit-facility` (default authpriv) and severity notice;
//! - to `-`: stderr.
//!
//! The destination is opened before pgkick connects, so a destination that cannot be written
//! stops the run (exit 1) before anything is signalled or locked. Records are written after
//! the server answered, for what was done; a dry run writes records (marked `dry_run`) only
//! with `--audit-dry-run`.
//!
//! `--server-log` leaves one line in the server's log per run, at level LOG: what was done
//! (the pids ended, the objects locked), the role and the reason. The reason and the rest of
//! the text reach the server only as bind parameters of `set_config` in a transaction, read
//! back by a fixed `DO` block's `RAISE LOG`; no statement text ever contains them.
//!
//! The record's fields (documented in README.md and the man page): `time`, `pgkick_version`,
//! `os_user`, `host`, `current_user`, `session_user`, `server`, `server_addr`, `command`,
//! `args` (passwords in connection strings masked), `reason`, `dry_run`, `round` (--every),
//! `session` (the pg_stat_activity row as matched) or `object` (kind, name, method, prior
//! state, statements), and `outcome`.

use std::cell::{Cell, RefCell};
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use postgres::types::Type;
use serde::Serialize;

use crate::conn;
use crate::lock::{Change, Status};
use crate::session::Session;
use crate::signal::{Outcome, Report};

mod file;

/// The local syslog socket.
const SYSLOG_SOCKET: &str = "/dev/log";
/// Overrides [`SYSLOG_SOCKET`] (tests bind their own datagram socket; also for containers
/// that mount the host's socket elsewhere).
pub const SYSLOG_SOCKET_VAR: &str = "PGKICK_SYSLOG_SOCKET";
/// Syslog severity of every record: notice.
const SEVERITY_NOTICE: u8 = 5;

/// Sets the two transaction-local settings the `DO` block reads: the reason (`$1`) and what
/// was done (`$2`).
pub const SERVER_LOG_SET: &str = "SELECT pg_catalog.set_config('pgkick.reason', $1, true), \
     pg_catalog.set_config('pgkick.done', $2, true)";
/// Writes the server-log line. Fixed text: everything variable comes from the settings.
pub const SERVER_LOG_RAISE: &str = "DO $pgkick$ BEGIN RAISE LOG 'pgkick: % by role % \
     (session user %); %', pg_catalog.current_setting('pgkick.done'), current_user, \
     session_user, CASE WHEN pg_catalog.current_setting('pgkick.reason') = '' \
     THEN 'no reason given' \
     ELSE 'reason: ' || pg_catalog.current_setting('pgkick.reason') END; END $pgkick$";

/// One audit record.
#[derive(Debug, Serialize)]
pub struct Record<'a> {
    /// When the record was written: after the server answered.
    pub time: DateTime<Utc>,
    pub pgkick_version: &'static str,
    /// The operating-system user and host running pgkick.
    pub os_user: Option<&'a str>,
    pub host: Option<&'a str>,
    /// The PostgreSQL role pgkick acted as, and the one it logged in as.
    pub current_user: Option<&'a str>,
    pub session_user: Option<&'a str>,
    /// Where pgkick was told to connect: `host:port` (several joined by `,`), `/database`.
    pub server: &'a str,
    /// The address the server answered on, as it says (`inet_server_addr`, `:port`); None
    /// over a unix socket.
    pub server_addr: Option<&'a str>,
    pub command: &'a str,
    /// pgkick's arguments, passwords in connection strings masked.
    pub args: &'a [String],
    pub reason: Option<&'a str>,
    pub dry_run: bool,
    /// The round of `--every`, from 1; None without it.
    pub round: Option<u64>,
    /// The session as it was matched (pg_stat_activity's columns).
    pub session: Option<&'a Session>,
    /// The database or role locked or unlocked.
    pub object: Option<Object<'a>>,
    /// The session's outcome, or the object's status.
    pub outcome: String,
}

/// A locked or unlocked object in a record.
#[derive(Debug, Serialize)]
pub struct Object<'a> {
    pub kind: &'a str,
    pub name: &'a str,
    pub method: Option<&'a str>,
    /// The state saved before the first lock, which unlock gives back.
    pub prior: Option<&'a serde_json::Value>,
    pub statements: &'a [String],
}

impl<'a> Object<'a> {
    fn of(change: &'a Change) -> Object<'a> {
        Object {
            kind: change.kind,
            name: &change.name,
            method: change.method.as_deref(),
            prior: change.prior.as_ref(),
            statements: &change.statements,
        }
    }
}

/// What the server says about pgkick's session, read once per connection.
#[derive(Debug, Default, Clone)]
struct Who {
    current_user: Option<String>,
    session_user: Option<String>,
    server_addr: Option<String>,
}

/// An opened destination.
enum Sink {
    File {
        file: File,
        path: PathBuf,
    },
    Syslog {
        socket: UnixDatagram,
        path: PathBuf,
        facility: Facility,
    },
    Stderr,
}

impl Sink {
    fn open(dest: &AuditDestination, facility: Facility) -> Result<Sink> {
        Ok(match dest {
            AuditDestination::File(path) => Sink::File {
                file: file::open_append(path)?,
                path: path.clone(),
            },
            AuditDestination::Syslog => {
                let path = std::env::var_os(SYSLOG_SOCKET_VAR)
                    .filter(|p| !p.is_empty())
                    .map_or_else(|| PathBuf::from(SYSLOG_SOCKET), PathBuf::from);
                let socket = UnixDatagram::unbound()
                    .and_then(|s| s.connect(&path).map(|()| s))
                    .with_context(|| {
                        format!(
                            "cannot reach the syslog socket {} for the audit log; nothing was \
                             done",
                            path.display()
                        )
                    })?;
                Sink::Syslog {
                    socket,
                    path,
                    facility,
                }
            }
            AuditDestination::Stderr => Sink::Stderr,
        })
    }

    fn name(&self) -> String {
        match self {
            Sink::File { path, .. } => path.display().to_string(),
            Sink::Syslog { path, .. } => format!("syslog ({})", path.display()),
            Sink::Stderr => "stderr".into(),
        }
    }

    /// Writes one record: a single write(2) of the whole line, or one datagram.
    fn write(&self, json: &str) -> io::Result<()> {
        match self {
            Sink::File { file, .. } => {
                let line = format!("{json}\n");
                let written = (&*file).write(line.as_bytes())?;
                if written != line.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        format!("only {written} of {} bytes written", line.len()),
                    ));
                }
                Ok(())
            }
            Sink::Syslog {
                socket, facility, ..
            } => {
                let message = syslog_message(*facility, chrono::Local::now(), json);
                socket.send(message.as_bytes()).map(|_| ())
            }
            // Most often a terminal: DEL and C1 (which serde_json leaves as they are) in JSON
            // escapes too, decoding to the very same text.
            Sink::Stderr => io::stderr()
                .lock()
                .write_all(format!("{}\n", crate::output::inert_json(json.to_string())).as_bytes()),
        }
    }
}

/// One syslog message as glibc's syslog(3) sends it to the local socket:
/// `<PRI>Mmm dd hh:mm:ss pgkick[pid]: message`.
pub fn syslog_message(facility: Facility, now: DateTime<chrono::Local>, message: &str) -> String {
    format!(
        "<{}>{} pgkick[{}]: {message}",
        u32::from(facility.code()) * 8 + u32::from(SEVERITY_NOTICE),
        now.format("%b %e %H:%M:%S"),
        std::process::id()
    )
}

/// The `server` label: where pgkick was told to connect.
pub fn server_label(settings: &conn::Settings) -> String {
    let hosts: Vec<String> = settings
        .targets
        .iter()
        .map(conn::Target::host_port)
        .collect();
    format!("{}/{}", hosts.join(","), settings.dbname)
}

/// What the `--server-log` line says was done: `terminated pids 12, 34`, `locked database
/// "app"`; None when nothing was.
pub fn server_log_done(verb: &str, what: &[String]) -> Option<String> {
    (!what.is_empty()).then(|| format!("{verb} {}", what.join(", ")))
}

/// What the command line asks of the audit trail, resolved once by the plan.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// Where records go; None when none are written (no --audit-log, or a dry run without
    /// --audit-dry-run).
    pub destination: Option<AuditDestination>,
    pub facility: Facility,
    /// --audit-dry-run: a dry run writes records too, marked `dry_run`.
    pub dry_run_records: bool,
    /// --server-log (never for a dry run).
    pub server_log: bool,
    pub reason: Option<String>,
    /// `cancel`, `terminate`, `lock` or `unlock`.
    pub command: &'static str,
    /// pgkick's arguments, passwords masked.
    pub args: Vec<String>,
}

/// The audit log of a run, opened once before anything connects (an error here means pgkick
/// must not act) and shared by every server of the run.
pub struct Log {
    sink: Option<Sink>,
    config: Config,
    os_user: Option<String>,
    host: Option<String>,
}

impl Log {
    /// Opens the destination, if records are written.
    pub fn open(config: &Config) -> Result<Log> {
        let sink = config
            .destination
            .as_ref()
            .map(|dest| Sink::open(dest, config.facility))
            .transpose()?;
        Ok(Log {
            sink,
            config: config.clone(),
            os_user: conn::os_user(),
            host: host_name(),
        })
    }

    /// No records and no --server-log line: what a run without auditing writes to.
    pub fn none() -> Log {
        Log {
            sink: None,
            config: Config::default(),
            os_user: None,
            host: None,
        }
    }

    /// The trail of one server's part of the run; `server` is its label for the records.
    pub fn trail(&self, server: &conn::Settings) -> Trail<'_> {
        Trail {
            log: self,
            server: if self.sink.is_some() {
                server_label(server)
            } else {
                String::new()
            },
            who: RefCell::default(),
            round: Cell::new(None),
            server_log_refused: Cell::new(false),
        }
    }
}

/// The audit trail of one server's part of a run: the log, the server's label, and the state
/// of the connection in use.
pub struct Trail<'a> {
    log: &'a Log,
    server: String,
    who: RefCell<Who>,
    round: Cell<Option<u64>>,
    server_log_refused: Cell<bool>,
}

impl Trail<'_> {
    /// --every: the round the next records belong to.
    pub fn set_round(&self, round: u64) {
        self.round.set(Some(round));
    }

    /// Reads the roles of a new connection (only when records are written).
    pub fn connected(&self, client: &mut postgres::Client) -> Result<()> {
        if self.log.sink.is_none() {
            return Ok(());
        }
        let rows = client
            .query_typed(
                "SELECT current_user::text, session_user::text, \
                 pg_catalog.host(pg_catalog.inet_server_addr()) || ':' || \
                 pg_catalog.inet_server_port()",
                &[],
            )
            .context("could not read pgkick's role for the audit log; nothing was done")?;
        let row = rows
            .first()
            .context("the server returned no row for pgkick's role")?;
        *self.who.borrow_mut() = Who {
            current_user: row.get(0),
            session_user: row.get(1),
            server_addr: row.get(2),
        };
        Ok(())
    }

    /// The records of signalled sessions, and the --server-log line naming those ended.
    /// Returns a warning for stderr when the server refused the line (once per run).
    pub fn sessions(
        &self,
        client: &mut postgres::Client,
        reports: &[Report],
    ) -> Result<Option<String>> {
        self.write_sessions(reports, false)?;
        let mut ended = Vec::new();
        for outcome in [Outcome::Terminated, Outcome::Cancelled] {
            let pids: Vec<String> = reports
                .iter()
                .filter(|r| r.outcome == outcome)
                .map(|r| r.session.pid.to_string())
                .collect();
            let verb = match outcome {
                Outcome::Terminated => "terminated pids",
                _ => "cancelled pids",
            };
            ended.extend(server_log_done(verb, &pids));
        }
        Ok(self.log_on_server(client, &ended))
    }

    /// A dry run's records, with --audit-dry-run.
    pub fn planned_sessions(&self, reports: &[Report]) -> Result<()> {
        if self.log.config.dry_run_records {
            self.write_sessions(reports, true)?;
        }
        Ok(())
    }

    /// The records of locked or unlocked objects (dry-run records with --audit-dry-run), and
    /// the --server-log line naming those changed; a warning as `sessions` returns one.
    pub fn changes(
        &self,
        client: &mut postgres::Client,
        changes: &[Change],
        dry_run: bool,
    ) -> Result<Option<String>> {
        if dry_run && !self.log.config.dry_run_records {
            return Ok(None);
        }
        let who = self.who.borrow();
        for change in changes {
            self.write(&Record {
                object: Some(Object::of(change)),
                outcome: change.status.to_string(),
                ..self.record(&who, dry_run)
            })?;
        }
        if dry_run {
            return Ok(None);
        }
        let mut done = Vec::new();
        for verb in ["locked", "unlocked"] {
            let names: Vec<String> = changes
                .iter()
                .filter(|c| match c.status {
                    Status::Locked => verb == "locked",
                    Status::Unlocked { .. } => verb == "unlocked",
                    _ => false,
                })
                .map(|c| format!("{} \"{}\"", c.kind, c.name))
                .collect();
            done.extend(server_log_done(verb, &names));
        }
        Ok(self.log_on_server(client, &done))
    }

    fn write_sessions(&self, reports: &[Report], dry_run: bool) -> Result<()> {
        let who = self.who.borrow();
        for r in reports {
            self.write(&Record {
                session: Some(&r.session),
                outcome: r.outcome.as_str().to_string(),
                ..self.record(&who, dry_run)
            })?;
        }
        Ok(())
    }

    /// A record with the run's fields and neither session nor object.
    fn record<'s>(&'s self, who: &'s Who, dry_run: bool) -> Record<'s> {
        Record {
            time: Utc::now(),
            pgkick_version: env!("CARGO_PKG_VERSION"),
            os_user: self.log.os_user.as_deref(),
            host: self.log.host.as_deref(),
            current_user: who.current_user.as_deref(),
            session_user: who.session_user.as_deref(),
            server: &self.server,
            server_addr: who.server_addr.as_deref(),
            command: self.log.config.command,
            args: &self.log.config.args,
            reason: self.log.config.reason.as_deref(),
            dry_run,
            round: self.round.get(),
            session: None,
            object: None,
            outcome: String::new(),
        }
    }

    fn write(&self, record: &Record<'_>) -> Result<()> {
        let Some(sink) = &self.log.sink else {
            return Ok(());
        };
        let json = serde_json::to_string(record)?;
        sink.write(&json).with_context(|| {
            format!(
                "could not write the audit record of what was done to {}",
                sink.name()
            )
        })
    }

    /// The --server-log line for what was done, if anything was; when the server refuses
    /// it, a warning, once for the whole run (--every included).
    fn log_on_server(&self, client: &mut postgres::Client, done: &[String]) -> Option<String> {
        if !self.log.config.server_log || self.server_log_refused.get() || done.is_empty() {
            return None;
        }
        let reason = self.log.config.reason.as_deref().unwrap_or_default();
        let e = raise_log(client, reason, &done.join("; ")).err()?;
        // The server said no (a privilege, a setting): it will say so again, so once is
        // enough. A lost connection is not that; the next round may have the line again.
        let why = match e.as_db_error() {
            Some(db) => {
                self.server_log_refused.set(true);
                db.message().to_string()
            }
            None => e.to_string(),
        };
        Some(format!(
            "--server-log: the server did not take pgkick's log line ({why}); going on \
             without it"
        ))
    }
}

/// One transaction: the settings as bind parameters, then the fixed `DO` block.
fn raise_log(
    client: &mut postgres::Client,
    reason: &str,
    done: &str,
) -> Result<(), postgres::Error> {
    let mut tx = client.transaction()?;
    tx.query_typed(
        SERVER_LOG_SET,
        &[(&reason, Type::TEXT), (&done, Type::TEXT)],
    )?;
    tx.batch_execute(SERVER_LOG_RAISE)?;
    tx.commit()
}

/// The host name (gethostname), for records.
fn host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer and its length are passed together; gethostname writes within it.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Some(String::from_utf8_lossy(&buf[..end]).into_owned())
}

/// Where --audit-log writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditDestination {
    File(std::path::PathBuf),
    Syslog,
    Stderr,
}

/// Syslog facilities fit for an audit trail.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Facility {
    Auth,
    #[default]
    Authpriv,
    Daemon,
    User,
    Local0,
    Local1,
    Local2,
    Local3,
    Local4,
    Local5,
    Local6,
    Local7,
}

impl Facility {
    /// The facility's number in the syslog protocol (RFC 5424 section 6.2.1).
    pub fn code(self) -> u8 {
        match self {
            Facility::Auth => 4,
            Facility::Authpriv => 10,
            Facility::Daemon => 3,
            Facility::User => 1,
            Facility::Local0 => 16,
            Facility::Local1 => 17,
            Facility::Local2 => 18,
            Facility::Local3 => 19,
            Facility::Local4 => 20,
            Facility::Local5 => 21,
            Facility::Local6 => 22,
            Facility::Local7 => 23,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn the_server_log_statements_hold_no_value_only_placeholders() {
        assert!(SERVER_LOG_SET.contains("pg_catalog.set_config('pgkick.reason', $1, true)"));
        assert!(SERVER_LOG_SET.contains("pg_catalog.set_config('pgkick.done', $2, true)"));
        // The DO block is fixed text reading the settings back, schema-qualified.
        assert_eq!(
            SERVER_LOG_RAISE
                .matches("pg_catalog.current_setting(")
                .count(),
            3
        );
        assert!(!SERVER_LOG_RAISE.contains("$1") && !SERVER_LOG_RAISE.contains("$2"));
        assert!(
            SERVER_LOG_RAISE.starts_with("DO $pgkick$ ") && SERVER_LOG_RAISE.ends_with(" $pgkick$")
        );
    }

    #[test]
    fn server_log_names_what_was_done() {
        assert_eq!(
            server_log_done("terminated pids", &["12".into(), "34".into()]).as_deref(),
            Some("terminated pids 12, 34")
        );
        assert_eq!(server_log_done("locked", &[]), None);
    }

    #[test]
    fn syslog_messages_carry_facility_severity_and_tag() {
        let now = chrono::Local.with_ymd_and_hms(2026, 3, 4, 5, 6, 7).unwrap();
        let msg = syslog_message(Facility::Authpriv, now, "{}");
        // authpriv (10) * 8 + notice (5) = 85; the day is space-padded as in RFC 3164.
        assert_eq!(
            msg,
            format!("<85>Mar  4 05:06:07 pgkick[{}]: {{}}", std::process::id())
        );
        assert!(syslog_message(Facility::Local3, now, "x").starts_with("<157>"));
    }

    #[test]
    fn the_server_label_names_every_host_port_and_the_database() {
        let mut settings = conn::Settings::resolve(&conn::Params {
            host: Some("db1,::1,/run/pg".into()),
            port: Some("5433".into()),
            dbname: Some("app".into()),
            user: Some("u".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            server_label(&settings),
            "db1:5433,[::1]:5433,/run/pg:5433/app"
        );
        settings.targets.truncate(1);
        assert_eq!(server_label(&settings), "db1:5433/app");
    }

    #[test]
    fn a_record_has_every_documented_field() {
        let who = Who::default();
        let log = Log {
            sink: None,
            config: Config {
                reason: Some("INC-1".into()),
                command: "terminate",
                args: vec!["terminate".into(), "--db".into(), "app".into()],
                ..Config::default()
            },
            os_user: Some("alice".into()),
            host: Some("cron1".into()),
        };
        let trail = Trail {
            log: &log,
            server: "/tmp:5432/postgres".into(),
            who: RefCell::default(),
            round: Cell::new(Some(2)),
            server_log_refused: Cell::new(false),
        };
        let session = Session {
            pid: 42,
            ..Default::default()
        };
        let record = Record {
            session: Some(&session),
            outcome: "terminated".into(),
            ..trail.record(&who, false)
        };
        let json = serde_json::to_value(&record).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut documented = [
            "time",
            "pgkick_version",
            "os_user",
            "host",
            "current_user",
            "session_user",
            "server",
            "server_addr",
            "command",
            "args",
            "reason",
            "dry_run",
            "round",
            "session",
            "object",
            "outcome",
        ];
        documented.sort();
        assert_eq!(keys, documented);
        assert_eq!(json["session"]["pid"], 42);
        assert_eq!(json["round"], 2);
        assert_eq!(json["reason"], "INC-1");
        assert!(json["object"].is_null());
    }
}
