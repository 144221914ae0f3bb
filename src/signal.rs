//! Cancel and terminate matched sessions, and wait for them: returns each session's outcome,
//! never prints.
//!
//! A target is identified by (pid, backend_start, usesysid), so a pid that a new connection
//! reuses between match and signal is never hit. All targets are signalled by one statement,
//! whatever their number; a target pgkick's role may not signal is reported as
//! `permission_denied` without being tried (the server's rule, evaluated in SQL), so that one
//! refusal does not abort the statement for the others.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;

use crate::columns::Columns;
use crate::server::Server;
use crate::session::Session;
use crate::sql::{Param, Query};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Cancel,
    Terminate,
}

impl Action {
    fn function(self) -> &'static str {
        match self {
            Action::Cancel => "pg_catalog.pg_cancel_backend",
            Action::Terminate => "pg_catalog.pg_terminate_backend",
        }
    }
    fn done(self) -> Outcome {
        match self {
            Action::Cancel => Outcome::Cancelled,
            Action::Terminate => Outcome::Terminated,
        }
    }
    pub fn would(self) -> Outcome {
        match self {
            Action::Cancel => Outcome::WouldCancel,
            Action::Terminate => Outcome::WouldTerminate,
        }
    }
    pub fn verb(self) -> &'static str {
        match self {
            Action::Cancel => "cancel",
            Action::Terminate => "terminate",
        }
    }
}

/// What happened to one matched session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// pg_cancel_backend was sent (with --wait: and the query stopped). With --cancel-first:
    /// the session no longer matched the filters after the grace period and kept its
    /// connection.
    Cancelled,
    /// pg_terminate_backend was sent (with --wait: and the session is gone).
    Terminated,
    /// The session had ended before pgkick signalled it.
    AlreadyGone,
    /// pgkick's role may not signal this session (e.g. a superuser's, for a non-superuser).
    PermissionDenied,
    /// Terminated, but still in pg_stat_activity when --wait timed out.
    StillPresent,
    /// Cancelled, but the same query was still running when --wait timed out.
    StillRunning,
    /// Matched, but no longer matched the filters when pgkick was about to signal it (after a
    /// confirmation prompt: e.g. it stopped blocking others); not signalled.
    NoLongerMatches,
    /// --dry-run.
    WouldCancel,
    WouldTerminate,
    /// --dry-run: pgkick's role may not signal this session, by the rule the real run
    /// applies (`permission_denied` there).
    WouldBeDenied,
}

impl Outcome {
    /// Outcomes that make the exit status 3 (partial).
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Outcome::PermissionDenied | Outcome::StillPresent | Outcome::StillRunning
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Cancelled => "cancelled",
            Outcome::Terminated => "terminated",
            Outcome::AlreadyGone => "already_gone",
            Outcome::PermissionDenied => "permission_denied",
            Outcome::StillPresent => "still_present",
            Outcome::StillRunning => "still_running",
            Outcome::NoLongerMatches => "no_longer_matches",
            Outcome::WouldCancel => "would_cancel",
            Outcome::WouldTerminate => "would_terminate",
            Outcome::WouldBeDenied => "would_be_denied",
        }
    }

    fn parse(s: &str) -> Option<Outcome> {
        [
            Outcome::Cancelled,
            Outcome::Terminated,
            Outcome::AlreadyGone,
            Outcome::PermissionDenied,
            Outcome::WouldCancel,
            Outcome::WouldTerminate,
            Outcome::WouldBeDenied,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
}

/// A session and what happened to it.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    #[serde(flatten)]
    pub session: Session,
    pub outcome: Outcome,
}

/// The targets as parallel arrays, and the derived table `t(i, pid, backend_start, usesysid,
/// query_start)` over them; `generate_subscripts` works on every server version.
fn targets_table(targets: &[Session], q: &mut Query) -> String {
    let pids = q.bind(Param::Int4Array(targets.iter().map(|s| s.pid).collect()));
    let starts = q.bind(Param::TimestamptzArray(
        targets.iter().map(|s| s.backend_start).collect(),
    ));
    let roles = q.bind(Param::OidArray(
        targets.iter().map(|s| s.usesysid).collect(),
    ));
    let query_starts = q.bind(Param::TimestamptzArray(
        targets.iter().map(|s| s.query_start).collect(),
    ));
    format!(
        "(SELECT i, ({pids}::int4[])[i] AS pid, ({starts}::timestamptz[])[i] AS backend_start, \
         ({roles}::oid[])[i] AS usesysid, ({query_starts}::timestamptz[])[i] AS query_start \
         FROM pg_catalog.generate_subscripts({pids}::int4[], 1) AS i) AS t"
    )
}

/// The join condition that finds a target's own backend and no other.
fn same_session(cols: &Columns) -> String {
    format!(
        "{pid} = t.pid AND a.backend_start IS NOT DISTINCT FROM t.backend_start \
         AND a.usesysid IS NOT DISTINCT FROM t.usesysid",
        pid = cols.pid
    )
}

/// The server's rule for who may signal whom, as an SQL condition on `a`: superusers may
/// signal anyone; others may signal non-superuser sessions of roles whose privileges they
/// have, or any non-superuser session as members of pg_signal_backend (9.6+); from 18,
/// members of pg_signal_autovacuum_worker may signal autovacuum workers. Processes without a
/// role are left to superusers.
fn may_signal(server: &Server) -> String {
    let signal_backend = if server.has_pg_signal_backend() {
        " OR pg_catalog.pg_has_role('pg_signal_backend', 'USAGE')"
    } else {
        ""
    };
    let no_role = if server.has_pg_signal_autovacuum_worker() {
        "a.backend_type = 'autovacuum worker' \
         AND pg_catalog.pg_has_role('pg_signal_autovacuum_worker', 'USAGE')"
    } else {
        "false"
    };
    format!(
        "(pg_catalog.current_setting('is_superuser') = 'on' OR CASE \
         WHEN a.usesysid IS NULL THEN {no_role} \
         WHEN NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r \
           WHERE r.oid = a.usesysid AND NOT r.rolsuper) THEN false \
         ELSE pg_catalog.pg_has_role(a.usesysid, 'USAGE'){signal_backend} END)"
    )
}

/// The one statement that signals every target and says what happened to each.
pub fn signal_query(server: &Server, action: Action, targets: &[Session]) -> Query {
    outcome_query(server, action, targets, false)
}

/// The statement a dry run sends instead: the signal statement's rule for each target, with
/// the signal left out (`would_*`, `would_be_denied`, `already_gone`).
fn predict_query(server: &Server, action: Action, targets: &[Session]) -> Query {
    outcome_query(server, action, targets, true)
}

fn outcome_query(server: &Server, action: Action, targets: &[Session], dry_run: bool) -> Query {
    let cols = Columns::for_server(server);
    let mut q = Query::default();
    let t = targets_table(targets, &mut q);
    let act = if dry_run {
        format!(
            "WHEN NOT {may} THEN '{denied}' ELSE '{would}'",
            may = may_signal(server),
            denied = Outcome::WouldBeDenied.as_str(),
            would = action.would().as_str(),
        )
    } else {
        format!(
            "WHEN NOT {may} THEN 'permission_denied' WHEN {func}({pid}) THEN '{done}' \
             ELSE 'already_gone'",
            may = may_signal(server),
            func = action.function(),
            pid = cols.pid,
            done = action.done().as_str(),
        )
    };
    q.sql = format!(
        "SELECT t.i, CASE WHEN {pid} IS NULL THEN 'already_gone' {act} END AS outcome \
         FROM {t} LEFT JOIN {backends} ON {same} ORDER BY t.i",
        backends = crate::columns::backends(server),
        pid = cols.pid,
        same = same_session(&cols),
    );
    q
}

/// --dry-run: what signalling the targets would do to each, by the rule the real run applies
/// (one statement, nothing signalled).
pub fn predict(
    client: &mut postgres::Client,
    server: &Server,
    action: Action,
    targets: &[Session],
) -> Result<Vec<Report>> {
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    let rows = predict_query(server, action, targets)
        .run(client)
        .with_context(|| format!("could not tell whom pgkick's role may {}", action.verb()))?;
    let outcomes = read_outcomes(&rows, targets.len())?;
    Ok(targets
        .iter()
        .zip(outcomes)
        .map(|(s, outcome)| Report {
            session: s.clone(),
            outcome,
        })
        .collect())
}

/// Signals every target; one statement whatever their number. Should the server refuse the
/// statement anyway (its permission rule differs from the one pgkick knows), the targets are
/// signalled one by one so that each refusal stays with its own session.
pub fn signal(
    client: &mut postgres::Client,
    server: &Server,
    action: Action,
    targets: &[Session],
) -> Result<Vec<Report>> {
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    let q = signal_query(server, action, targets);
    let outcomes = match q.run(client) {
        Ok(rows) => read_outcomes(&rows, targets.len())?,
        Err(e) if is_permission_error(&e) => {
            let mut outcomes = Vec::with_capacity(targets.len());
            for target in targets {
                let one = signal_query(server, action, std::slice::from_ref(target));
                outcomes.push(match one.run(client) {
                    Ok(rows) => read_outcomes(&rows, 1)?[0],
                    Err(e) if is_permission_error(&e) => Outcome::PermissionDenied,
                    Err(e) => return Err(e).context(format!("could not {}", action.verb())),
                });
            }
            outcomes
        }
        Err(e) => return Err(e).context(format!("could not {} sessions", action.verb())),
    };
    Ok(targets
        .iter()
        .zip(outcomes)
        .map(|(s, outcome)| Report {
            session: s.clone(),
            outcome,
        })
        .collect())
}

fn is_permission_error(e: &postgres::Error) -> bool {
    e.code() == Some(&postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
}

fn read_outcomes(rows: &[postgres::Row], expected: usize) -> Result<Vec<Outcome>> {
    let outcomes = rows
        .iter()
        .map(|r| {
            let text: String = r.try_get(1)?;
            Outcome::parse(&text).with_context(|| format!("unexpected outcome {text:?}"))
        })
        .collect::<Result<Vec<_>>>()?;
    anyhow::ensure!(
        outcomes.len() == expected,
        "the server returned {} outcomes for {expected} sessions",
        outcomes.len()
    );
    Ok(outcomes)
}

/// How many times `wait` polls before it lets the server wait (PostgreSQL 14+).
const POLLS_BEFORE_SERVER_WAIT: usize = 2;

/// How a wait is going, for progress display: sessions remaining, time left.
pub type Progress<'a> = dyn FnMut(usize, Duration) -> Result<()> + 'a;

/// What [`wait`] waits for: the sessions `action` signalled to be done with it, for at most
/// `timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Until {
    pub action: Action,
    pub timeout: Duration,
}

/// Waits until every session reported `done` is gone (terminate) or has stopped running the
/// query it was cancelled in (cancel), up to `timeout`. Those still there at the end get
/// `StillPresent` / `StillRunning`. The statements sent depend on time, not on the number of
/// sessions: from PostgreSQL 14 the server itself waits (`pg_terminate_backend(pid, timeout)`)
/// in slices of at most a second; otherwise pgkick polls.
/// `progress` is called between statements; an error from it (an interrupt) ends the wait.
pub fn wait(
    client: &mut postgres::Client,
    server: &Server,
    until: Until,
    reports: &mut [Report],
    progress: &mut Progress<'_>,
) -> Result<()> {
    let Until { action, timeout } = until;
    let deadline = Instant::now() + timeout;
    let mut pending: Vec<usize> = (0..reports.len())
        .filter(|&i| reports[i].outcome == action.done())
        .collect();
    let server_side = action == Action::Terminate && server.has_terminate_timeout();
    // pg_terminate_backend(pid, timeout) looks at a backend only every 100 ms, while an idle
    // backend is gone a few milliseconds after its signal: look twice (after 5 and 15 ms)
    // before leaving the wait to the server.
    let mut polls = 0;
    let mut pause = Duration::from_millis(5);
    if !pending.is_empty() {
        std::thread::sleep(pause.min(timeout));
        pause *= 2;
    }
    while !pending.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        let server_side = server_side && polls >= POLLS_BEFORE_SERVER_WAIT;
        polls += 1;
        progress(pending.len(), left)?;
        let targets: Vec<Session> = pending
            .iter()
            .map(|&i| reports[i].session.clone())
            .collect();
        let slice = left.min(Duration::from_secs(1));
        let server_side = server_side && !left.is_zero();
        let q = if server_side {
            wait_query(server, &targets, slice)
        } else {
            still_there_query(server, action, &targets)
        };
        let asked = Instant::now();
        let rows = q.run(client).context("lost the server while waiting")?;
        // A server-side wait that returned before its slice ran out timed nobody out: its
        // `false` rows are backends that exited after the statement's snapshot ("PID is not a
        // PostgreSQL backend process"), so they are gone too.
        let within_slice = server_side && asked.elapsed() + Duration::from_millis(5) < slice;
        let mut still = Vec::with_capacity(rows.len());
        for row in rows {
            let ended = server_side && (within_slice || row.try_get::<_, bool>(1)?);
            if !ended {
                let i: i32 = row.try_get(0)?;
                still.push(pending[usize::try_from(i - 1)?]);
            }
        }
        pending = still;
        if pending.is_empty() || left.is_zero() {
            break;
        }
        if !server_side {
            std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
            pause = (pause * 2).min(Duration::from_millis(200));
        }
    }
    let late = match action {
        Action::Cancel => Outcome::StillRunning,
        Action::Terminate => Outcome::StillPresent,
    };
    for i in pending {
        reports[i].outcome = late;
    }
    progress(0, Duration::ZERO)?;
    Ok(())
}

/// Which targets are still there: for terminate, the same backend; for cancel, the same
/// backend still active in the same query. Returns the 1-based target indexes.
pub fn still_there_query(server: &Server, action: Action, targets: &[Session]) -> Query {
    let cols = Columns::for_server(server);
    let mut q = Query::default();
    let t = targets_table(targets, &mut q);
    let running = match action {
        Action::Terminate => String::new(),
        Action::Cancel => format!(
            " AND {state} = 'active' AND a.query_start IS NOT DISTINCT FROM t.query_start",
            state = cols.state
        ),
    };
    q.sql = format!(
        "SELECT t.i FROM {t} JOIN {backends} ON {same}{running} ORDER BY t.i",
        backends = crate::columns::backends(server),
        same = same_session(&cols),
    );
    q
}

/// PostgreSQL 14+: terminate again with a timeout, which makes the server wait for each
/// backend to exit; the whole statement is bounded by `slice`. Returns, for each target still
/// there, its 1-based index and whether it exited in time.
///
/// The call stays in the top-level select list: there it runs only for joined rows. In a
/// WHERE clause the planner could push it down to the scan of pg_stat_activity and signal
/// every backend.
fn wait_query(server: &Server, targets: &[Session], slice: Duration) -> Query {
    let cols = Columns::for_server(server);
    let mut q = Query::default();
    let t = targets_table(targets, &mut q);
    let ms = q.bind(Param::Int8(
        i64::try_from(slice.as_millis()).unwrap_or(i64::MAX).max(1),
    ));
    q.sql = format!(
        "SELECT t.i, pg_catalog.pg_terminate_backend({pid}, GREATEST(1, {ms}::int8 - \
         (EXTRACT(EPOCH FROM pg_catalog.clock_timestamp() - pg_catalog.statement_timestamp()) \
         * 1000)::int8)) AS ended \
         FROM {t} JOIN {backends} ON {same} ORDER BY t.i",
        backends = crate::columns::backends(server),
        same = same_session(&cols),
        pid = cols.pid,
    );
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(pid: i32) -> Session {
        Session {
            pid,
            datname: Some("d".into()),
            usename: Some("u".into()),
            usesysid: Some(10),
            ..Default::default()
        }
    }

    #[test]
    fn one_statement_for_any_number_of_targets() {
        let few = signal_query(&Server::version(150000), Action::Terminate, &[session(1)]);
        let many: Vec<Session> = (1..=1000).map(session).collect();
        let lots = signal_query(&Server::version(150000), Action::Terminate, &many);
        assert_eq!(few.sql, lots.sql, "the text does not grow with the targets");
        assert_eq!(lots.params.len(), 4);
        assert_eq!(
            lots.params[0],
            Param::Int4Array((1..=1000).collect::<Vec<i32>>())
        );
    }

    #[test]
    fn signal_functions_are_schema_qualified_and_identity_checked() {
        let q = signal_query(&Server::version(150000), Action::Cancel, &[session(1)]);
        assert!(q.sql.contains("pg_catalog.pg_cancel_backend(a.pid)"));
        assert!(q
            .sql
            .contains("a.backend_start IS NOT DISTINCT FROM t.backend_start"));
        assert!(q
            .sql
            .contains("pg_catalog.pg_has_role('pg_signal_backend', 'USAGE')"));
        let q = signal_query(&Server::version(90100), Action::Terminate, &[session(1)]);
        assert!(q.sql.contains("pg_catalog.pg_terminate_backend(a.procpid)"));
        assert!(!q.sql.contains("pg_signal_backend"));
        let q = signal_query(&Server::version(180000), Action::Terminate, &[session(1)]);
        assert!(q.sql.contains("pg_signal_autovacuum_worker"));
    }

    #[test]
    fn cancel_wait_checks_the_query_not_just_the_session() {
        let q = still_there_query(&Server::version(150000), Action::Cancel, &[session(1)]);
        assert!(q.sql.contains("a.state = 'active'"));
        assert!(q
            .sql
            .contains("a.query_start IS NOT DISTINCT FROM t.query_start"));
        let q = still_there_query(&Server::version(150000), Action::Terminate, &[session(1)]);
        assert!(!q.sql.contains("'active'"));
    }

    #[test]
    fn server_side_wait_is_bounded_by_the_slice() {
        let q = wait_query(
            &Server::version(140000),
            &[session(1)],
            Duration::from_millis(800),
        );
        assert!(q
            .sql
            .contains("SELECT t.i, pg_catalog.pg_terminate_backend(a.pid, GREATEST(1, $5::int8"));
        assert!(
            !q.sql.contains("WHERE"),
            "the call must stay in the select list"
        );
        assert_eq!(q.params[4], Param::Int8(800));
    }
}
