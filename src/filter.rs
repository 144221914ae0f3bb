//! The typed session filter and the conditions it compiles to.
//!
//! `Filter::conditions` is pure: given the server version it returns SQL conditions over a row
//! of pg_stat_activity plus bind parameters, and never puts a value into the text. Repeated
//! values of one flag become one array parameter (`= ANY($n)`), so the statement does not grow
//! with the number of values. `--query` regexes are applied by pgkick to the rows the server
//! returns (Rust regex syntax, validated before connecting); a session whose query text the
//! server hides from pgkick's role never matches a `--query` filter.
//!
//! The columns a statement selects, and the names they go by, are `columns`'s; the statement
//! (with the lock graph and its filters when the run needs them), running it and reading its
//! rows are `activity`'s.

use std::net::IpAddr;
use std::time::Duration;

use regex::Regex;

use crate::columns::{Columns, DEFAULT_BACKEND_TYPE};
use crate::server::Server;
use crate::session::Session;
use crate::sql::{Param, Query};

/// Ages longer than this (1000 years) are taken as this: every session is younger.
const MAX_AGE_MICROS: i64 = 1000 * 36525 * 24 * 3600 * 10_000;

/// A validated filter. Built from the command line once; nothing after this point looks at
/// command-line strings.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub dbs: Vec<String>,
    pub users: Vec<String>,
    pub apps: Vec<String>,
    pub clients: Vec<ClientMatch>,
    pub states: Vec<State>,
    pub queries: Vec<Regex>,
    pub pids: Vec<i32>,
    /// Repeated ages OR together, so only the shortest matters.
    pub query_age: Option<Duration>,
    pub xact_age: Option<Duration>,
    pub state_age: Option<Duration>,
    pub backend_age: Option<Duration>,
    /// Empty means `client backend` (servers 10 and later).
    pub backend_types: Vec<String>,
    pub exclude_dbs: Vec<String>,
    pub exclude_users: Vec<String>,
    pub exclude_apps: Vec<String>,
    pub exclude_pids: Vec<i32>,
    /// The lock-chain filters (see `LockChain`).
    pub chain: LockChain,
}

/// The lock-chain filters: which part a session plays in the server's lock graph
/// (`pg_catalog.pg_blocking_pids`). All that are set must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LockChain {
    /// Waits for a lock that someone holds or waits for.
    pub blocked: bool,
    /// Someone waits for it.
    pub blocking: bool,
    /// Someone waits for it, and it does not wait for a lock itself.
    pub root_blocker: bool,
    /// Upstream of one of these pids: what they wait on, directly or through a chain.
    pub blocks: Vec<i32>,
    /// With `blocked`: its own wait is older; with the blocker-side filters: a session waiting
    /// on it directly has waited longer. Repeated values OR, so only the shortest matters.
    pub blocked_for: Option<Duration>,
}

impl LockChain {
    pub fn is_empty(&self) -> bool {
        !self.blocked && !self.blocking && !self.root_blocker && self.blocks.is_empty()
    }

    /// --blocking, --root-blocker or --blocks: the filters about what a session holds up.
    pub(crate) fn blocker_side(&self) -> bool {
        self.blocking || self.root_blocker || !self.blocks.is_empty()
    }
}

/// `now() - d`, with `d` bound as a parameter. Capped at 1000 years, which no session is older
/// than: beyond some 6000 years `now() - interval` leaves timestamptz's range and the server
/// fails the statement.
pub(crate) fn older_than(q: &mut Query, d: Duration) -> String {
    let micros = i64::try_from(d.as_micros())
        .unwrap_or(i64::MAX)
        .min(MAX_AGE_MICROS);
    let p = q.bind(Param::Int8(micros));
    format!("pg_catalog.now() - {p}::int8 * interval '1 microsecond'")
}

impl Filter {
    /// The database names the filter gives (--db, --exclude-db), each once, in order: each
    /// must exist, or the filter cannot mean what it says.
    pub fn named_dbs(&self) -> Vec<String> {
        once_each(self.dbs.iter().chain(&self.exclude_dbs))
    }

    /// The role names the filter gives (--user, --exclude-user), each once, in order.
    pub fn named_users(&self) -> Vec<String> {
        once_each(self.users.iter().chain(&self.exclude_users))
    }

    /// True when nothing narrows the selection (exclusions alone do not): cancel and
    /// terminate then need --all.
    pub fn selects_everything(&self) -> bool {
        self.dbs.is_empty()
            && self.users.is_empty()
            && self.apps.is_empty()
            && self.clients.is_empty()
            && self.states.is_empty()
            && self.queries.is_empty()
            && self.pids.is_empty()
            && self.query_age.is_none()
            && self.xact_age.is_none()
            && self.state_age.is_none()
            && self.backend_age.is_none()
            && self.backend_types.is_empty()
            && self.chain.is_empty()
    }

    /// Problems only the server version reveals.
    pub fn check_server(&self, server: &Server) -> Result<(), String> {
        if !self.chain.is_empty() && !server.has_blocking_pids() {
            return Err(format!(
                "--blocked, --blocking, --root-blocker and --blocks need pg_blocking_pids(), \
                 which PostgreSQL has from 9.6; the server is {}",
                server.version_text()
            ));
        }
        if !self.backend_types.is_empty() && !server.has_backend_type() {
            return Err(format!(
                "--backend-type needs PostgreSQL 10 or later; the server is {}",
                server.version_text()
            ));
        }
        if !server.has_parallel_worker_type()
            && self.backend_types.iter().any(|t| t == "background worker")
        {
            return Err(format!(
                "PostgreSQL {} lists parallel workers as 'background worker', and pgkick never \
                 targets parallel workers; from PostgreSQL 11 the two are told apart",
                server.version_text()
            ));
        }
        Ok(())
    }

    /// The filter's conditions on a row `a` of pg_stat_activity, with their parameters added
    /// to `q`: the ones that always hold (`Columns::always`), the backend types, then the
    /// flags' own. The lock-chain filters are not among them (they are conditions on the lock
    /// graph, `activity::graph`), nor the `--query` regexes: apply `matches_query` to each row.
    pub fn conditions(&self, server: &Server, cols: &Columns, q: &mut Query) -> Vec<String> {
        let types = if self.backend_types.is_empty() {
            vec![DEFAULT_BACKEND_TYPE.to_string()]
        } else {
            self.backend_types.clone()
        };
        let workers_possible = types.iter().any(|t| t != DEFAULT_BACKEND_TYPE);
        let mut conds = cols.always(server, workers_possible);
        if !self.dbs.is_empty() {
            // `datname = ANY(--db)` below holds only of rows with a database.
            let has_db = format!("{} IS NOT NULL", cols.datname);
            conds.retain(|c| *c != has_db);
        }
        if server.has_backend_type() {
            // The server hides backend_type (with everything but datname, usename,
            // application_name) from roles without pg_read_all_stats; such a session with a
            // role is taken to be a client backend rather than silently dropped, unless it is
            // a walsender: a logical replication connection has a database and a role, and
            // pg_stat_get_wal_senders() shows every walsender's pid to every role.
            let hidden = if types.iter().any(|t| t == DEFAULT_BACKEND_TYPE) {
                " OR (a.backend_type IS NULL AND a.backend_start IS NULL AND a.usesysid IS NOT NULL \
                 AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_get_wal_senders() w \
                 WHERE w.pid = a.pid))"
            } else {
                ""
            };
            // The default is pgkick's own constant, not a value from the command line.
            let types = if types == [DEFAULT_BACKEND_TYPE] {
                format!("'{DEFAULT_BACKEND_TYPE}'")
            } else {
                format!("ANY({}::text[])", q.bind(Param::TextArray(types)))
            };
            conds.push(format!("(a.backend_type = {types}{hidden})"));
        }
        self.push_conditions(server, cols, q, &mut conds);
        conds
    }

    /// Whether a prepared transaction that blocks someone (a row of `pb`) matches: only the
    /// lock-chain filters and those a prepared transaction has values for (database, owner,
    /// age of its transaction) can select one; any other filter leaves it out, and so does a
    /// filter without lock-chain flags (it asks for sessions, not blockers).
    pub(crate) fn prepared_conditions(&self, q: &mut Query) -> Vec<String> {
        let chain = &self.chain;
        let other = !self.apps.is_empty()
            || !self.clients.is_empty()
            || !self.states.is_empty()
            || !self.queries.is_empty()
            || !self.pids.is_empty()
            || self.query_age.is_some()
            || self.state_age.is_some()
            || self.backend_age.is_some()
            || !self.backend_types.is_empty();
        if chain.is_empty() || chain.blocked || other {
            return vec!["false".into()];
        }
        let mut conds = vec!["true".to_string()];
        if !chain.blocks.is_empty() {
            conds.push("EXISTS (SELECT 1 FROM reach r WHERE r.pid = ANY(pb.waiters))".into());
        }
        if let Some(d) = chain.blocked_for {
            let since = older_than(q, d);
            conds.push(format!(
                "EXISTS (SELECT 1 FROM wt w WHERE w.pid = ANY(pb.waiters) \
                 AND w.wait_start < {since})"
            ));
        }
        for (col, v) in [("pb.database", &self.dbs), ("pb.owner", &self.users)] {
            if !v.is_empty() {
                let p = q.bind(Param::TextArray(v.clone()));
                conds.push(format!("{col} = ANY({p}::text[])"));
            }
        }
        for (col, v) in [
            ("pb.database", &self.exclude_dbs),
            ("pb.owner", &self.exclude_users),
        ] {
            if !v.is_empty() {
                let p = q.bind(Param::TextArray(v.clone()));
                conds.push(format!("NOT COALESCE({col} = ANY({p}::text[]), false)"));
            }
        }
        if let Some(d) = self.xact_age {
            let since = older_than(q, d);
            conds.push(format!("pb.prepared < {since}"));
        }
        conds
    }

    /// The filter's own conditions (everything but the always-on ones and backend_type),
    /// with their parameters added to `q`.
    fn push_conditions(
        &self,
        server: &Server,
        cols: &Columns,
        q: &mut Query,
        conds: &mut Vec<String>,
    ) {
        let any_text = |q: &mut Query, conds: &mut Vec<String>, expr: &str, v: &[String]| {
            if !v.is_empty() {
                let p = q.bind(Param::TextArray(v.to_vec()));
                conds.push(format!("{expr} = ANY({p}::text[])"));
            }
        };
        any_text(q, conds, cols.datname, &self.dbs);
        any_text(q, conds, cols.usename, &self.users);
        any_text(q, conds, "a.application_name", &self.apps);
        let states: Vec<String> = self.states.iter().map(|s| s.as_pg().to_string()).collect();
        any_text(q, conds, cols.state, &states);

        if !self.clients.is_empty() {
            let mut alternatives = Vec::new();
            if self.clients.contains(&ClientMatch::Local) {
                alternatives.push("a.client_port = -1".to_string());
            }
            let nets: Vec<String> = self.clients.iter().filter_map(|c| c.to_inet()).collect();
            if !nets.is_empty() {
                let p = q.bind(Param::TextArray(nets));
                alternatives.push(format!("a.client_addr <<= ANY({p}::text[]::inet[])"));
            }
            conds.push(format!("({})", alternatives.join(" OR ")));
        }
        if !self.pids.is_empty() {
            let p = q.bind(Param::Int4Array(self.pids.clone()));
            conds.push(format!("{} = ANY({p}::int4[])", cols.pid));
        }

        let none_text = |q: &mut Query, conds: &mut Vec<String>, expr: &str, v: &[String]| {
            if !v.is_empty() {
                let p = q.bind(Param::TextArray(v.to_vec()));
                conds.push(format!("NOT COALESCE({expr} = ANY({p}::text[]), false)"));
            }
        };
        none_text(q, conds, cols.datname, &self.exclude_dbs);
        none_text(q, conds, cols.usename, &self.exclude_users);
        none_text(q, conds, "a.application_name", &self.exclude_apps);
        if !self.exclude_pids.is_empty() {
            let p = q.bind(Param::Int4Array(self.exclude_pids.clone()));
            conds.push(format!("NOT ({} = ANY({p}::int4[]))", cols.pid));
        }

        let older = |q: &mut Query, conds: &mut Vec<String>, col: &str, d: Duration| {
            let since = older_than(q, d);
            conds.push(format!("{col} < {since}"));
        };
        if let Some(d) = self.query_age {
            older(q, conds, "a.query_start", d);
            conds.push(format!("{} IS DISTINCT FROM 'idle'", cols.state));
        }
        if let Some(d) = self.xact_age {
            older(q, conds, "a.xact_start", d);
        }
        if let Some(d) = self.state_age {
            // Before 9.2 there is no state_change; query_start is the closest.
            let col = if server.has_state() {
                "a.state_change"
            } else {
                "a.query_start"
            };
            older(q, conds, col, d);
        }
        if let Some(d) = self.backend_age {
            older(q, conds, "a.backend_start", d);
        }
    }

    /// The `--query` part of the filter, applied to a row the server returned. A session whose
    /// query text is hidden from pgkick's role never matches a `--query` filter.
    pub fn matches_query(&self, session: &Session) -> bool {
        if self.queries.is_empty() {
            return true;
        }
        if !session.details_visible() {
            return false;
        }
        let text = session.query.as_deref().unwrap_or("");
        self.queries.iter().any(|re| re.is_match(text))
    }
}

/// `names` without repeats, in their first order.
fn once_each<'a>(names: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for n in names {
        if !out.contains(n) {
            out.push(n.clone());
        }
    }
    out
}

// The filter's values (from --state and --client).

/// pg_stat_activity.state values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum State {
    Active,
    Idle,
    /// Also `idle in transaction`, as pg_stat_activity and pgkick's table spell it.
    #[value(alias = "idle in transaction")]
    IdleInTransaction,
    #[value(alias = "idle in transaction (aborted)")]
    IdleInTransactionAborted,
    #[value(alias = "fastpath function call", alias = "fastpath-function-call")]
    Fastpath,
    Disabled,
}

impl State {
    /// The text pg_stat_activity.state holds for this state.
    pub fn as_pg(self) -> &'static str {
        match self {
            State::Active => "active",
            State::Idle => "idle",
            State::IdleInTransaction => "idle in transaction",
            State::IdleInTransactionAborted => "idle in transaction (aborted)",
            State::Fastpath => "fastpath function call",
            State::Disabled => "disabled",
        }
    }
}

/// A --client value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMatch {
    /// Unix-socket sessions.
    Local,
    /// An address or a network, in PostgreSQL's inet text form.
    Network { addr: IpAddr, prefix: u8 },
}

impl ClientMatch {
    /// Text PostgreSQL's inet input accepts.
    pub fn to_inet(&self) -> Option<String> {
        match self {
            ClientMatch::Local => None,
            ClientMatch::Network { addr, prefix } => Some(format!("{addr}/{prefix}")),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::str::FromStr;

    /// The filter of `pgkick list ARGS`.
    pub(crate) fn filter(args: &[&str]) -> Filter {
        use clap::Parser;
        let mut argv = vec!["pgkick", "list"];
        argv.extend_from_slice(args);
        let cli = crate::cli::Cli::try_parse_from(argv).unwrap();
        match cli.command {
            crate::cli::Command::List(l) => crate::plan::filter(&l.filter),
            _ => unreachable!(),
        }
    }

    #[test]
    fn exclusions_alone_do_not_narrow() {
        let f = filter(&["--exclude-user", "postgres", "--exclude-pid", "42"]);
        assert!(f.selects_everything(), "exclusions alone do not narrow");
        assert!(!filter(&["--db", "x"]).selects_everything());
        assert!(!filter(&["--blocked"]).selects_everything());
    }

    #[test]
    fn parallel_workers_on_10_are_background_workers() {
        let f = filter(&["--backend-type", "background worker"]);
        assert!(f.check_server(&Server::version(100023)).is_err());
        assert!(f.check_server(&Server::version(110000)).is_ok());
    }

    #[test]
    fn backend_type_needs_10() {
        let f = filter(&["--backend-type", "walsender"]);
        assert!(f.check_server(&Server::version(90624)).is_err());
        assert!(f.check_server(&Server::version(100000)).is_ok());
    }

    #[test]
    fn lock_chains_need_9_6() {
        let f = filter(&["--blocking"]);
        let err = f.check_server(&Server::version(90524)).unwrap_err();
        assert!(err.contains("9.6") && err.contains("9.5.24"), "{err}");
        assert!(f.check_server(&Server::version(90600)).is_ok());
    }

    #[test]
    fn query_regex_never_matches_hidden_text() {
        let f = filter(&["--query", "insufficient|SELECT"]);
        let mut s = Session {
            pid: 1,
            datname: Some("d".into()),
            query: Some("<insufficient privilege>".into()),
            ..Default::default()
        };
        assert!(!f.matches_query(&s));
        s.backend_start = Some(chrono::DateTime::from_str("2026-01-01T00:00:00Z").unwrap());
        s.query = Some("SELECT 1".into());
        assert!(f.matches_query(&s));
        s.query = Some("UPDATE t".into());
        assert!(!f.matches_query(&s));
    }
}
