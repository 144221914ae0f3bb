//! The typed session filter and the SQL it compiles to.
//!
//! `Filter::select` is pure: given the server version it returns SQL text over
//! pg_stat_activity plus bind parameters, and never puts a value into the text. Repeated
//! values of one flag become one array parameter (`= ANY($n)`), so the statement does not grow
//! with the number of values. `--query` regexes are applied by pgkick to the rows the server
//! returns (Rust regex syntax, validated before connecting); a session whose query text the
//! server hides from pgkick's role never matches a `--query` filter.
//!
//! The columns the statement selects, and the names they go by, are `columns`'s;
//! running the statement and reading its rows is `activity::find`'s.

use std::net::IpAddr;
use std::time::Duration;

use regex::Regex;

use crate::cli::FilterArgs;
use crate::columns::{name, Columns, DEFAULT_BACKEND_TYPE, NO_LOCK_COLUMNS, SERVER_FACTS};
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
    fn blocker_side(&self) -> bool {
        self.blocking || self.root_blocker || !self.blocks.is_empty()
    }
}

/// The lock graph, computed in the statement that finds the sessions, from the same single
/// scan of pg_stat_activity (a second scan would cost as much as the rest of the statement).
/// `pg_blocking_pids` takes the lock manager's partition locks, so it is called only for
/// sessions that wait for a lock (and for sessions whose wait event the server hides from
/// pgkick's role, when pg_locks, which every role can read, shows them waiting). pg_locks is
/// read once, and only when someone is blocked.
/// - `sa`: every row of pg_stat_activity, with `pgkick_blocked_by` (sorted, without
///   duplicates; 0 is a prepared transaction), null when the session does not wait;
/// - `g(pid, blocked_by, query_start)`: the waiting sessions;
/// - `e(waiter, blocker)`: the edges;
/// - `wt(pid, wait_start)`: when each blocked session began to wait: pg_locks.waitstart where
///   the server has it (14+; read through to_jsonb so that the statement is the same on 13,
///   for which the first statement of a run is written), otherwise its query_start;
/// - `pb(gid, database, owner, prepared, waiters)`: the prepared transactions holding a lock
///   that a session blocked by pid 0 waits for;
/// - `nd(pid, blocking, wait_start)`: one row per session in a chain, joined to the sessions
///   once (a lookup in `e` and `wt` per session would cost rows × waiters).
///
/// Each is materialized (explicitly from 12, always before): an inlined `wt` would be
/// aggregated again for every row that looks it up.
fn lock_graph(server: &Server, cols: &Columns) -> String {
    let pid = cols.pid;
    let m = if server.has_materialized_cte() {
        "MATERIALIZED "
    } else {
        ""
    };
    let lock_object = |l: &str| {
        format!(
            "({l}.locktype, {l}.database, {l}.relation, {l}.page, {l}.tuple, {l}.virtualxid, \
             {l}.transactionid, {l}.classid, {l}.objid, {l}.objsubid)"
        )
    };
    format!(
        "sa AS {m}(SELECT a.*, CASE WHEN {wet} = 'Lock' OR (a.backend_start IS NULL \
         AND {pid} IN (SELECT l.pid FROM pg_catalog.pg_locks l WHERE NOT l.granted)) \
         THEN ARRAY(SELECT DISTINCT b.pid \
         FROM pg_catalog.unnest(pg_catalog.pg_blocking_pids({pid})) AS b(pid) ORDER BY 1) END \
         AS pgkick_blocked_by FROM pg_catalog.pg_stat_activity a), \
         g AS {m}(SELECT a.pid, a.pgkick_blocked_by AS blocked_by, a.query_start FROM sa a \
         WHERE a.pgkick_blocked_by IS NOT NULL), \
         e AS {m}(SELECT g.pid AS waiter, b.pid AS blocker \
         FROM g, pg_catalog.unnest(g.blocked_by) AS b(pid)), \
         lk AS {m}(SELECT l.* FROM pg_catalog.pg_locks l WHERE EXISTS (SELECT 1 FROM e)), \
         wt AS {m}(SELECT g.pid, CASE \
         WHEN pg_catalog.bool_or((pg_catalog.to_jsonb(l) -> 'waitstart') IS NOT NULL) \
         THEN COALESCE(pg_catalog.min((pg_catalog.to_jsonb(l) ->> 'waitstart')::timestamptz), \
         pg_catalog.now()) \
         ELSE pg_catalog.min(g.query_start) END AS wait_start \
         FROM g LEFT JOIN lk l ON l.pid = g.pid AND NOT l.granted \
         WHERE pg_catalog.cardinality(g.blocked_by) > 0 GROUP BY g.pid), \
         pb AS {m}(SELECT p.gid, p.database::text AS database, p.owner::text AS owner, \
         p.prepared, ARRAY(SELECT DISTINCT w.pid FROM lk w \
         JOIN e ON e.waiter = w.pid AND e.blocker = 0 \
         JOIN lk h ON h.virtualtransaction = x.virtualtransaction AND h.granted \
         AND {h} IS NOT DISTINCT FROM {w} \
         WHERE NOT w.granted ORDER BY 1) AS waiters \
         FROM pg_catalog.pg_prepared_xacts p JOIN lk x ON x.locktype = 'transactionid' \
         AND x.pid IS NULL AND x.transactionid = p.transaction \
         WHERE EXISTS (SELECT 1 FROM e WHERE e.blocker = 0)), \
         nd AS {m}(SELECT COALESCE(bl.pid, wt.pid) AS pid, bl.blocking, wt.wait_start \
         FROM (SELECT e.blocker AS pid, \
         pg_catalog.array_agg(DISTINCT e.waiter ORDER BY e.waiter) AS blocking \
         FROM e GROUP BY e.blocker) AS bl FULL JOIN wt ON wt.pid = bl.pid)",
        wet = cols.wait_event_type,
        h = lock_object("h"),
        w = lock_object("w"),
    )
}

/// `now() - d`, with `d` bound as a parameter. Capped at 1000 years, which no session is older
/// than: beyond some 6000 years `now() - interval` leaves timestamptz's range and the server
/// fails the statement.
fn older_than(q: &mut Query, d: Duration) -> String {
    let micros = i64::try_from(d.as_micros())
        .unwrap_or(i64::MAX)
        .min(MAX_AGE_MICROS);
    let p = q.bind(Param::Int8(micros));
    format!("pg_catalog.now() - {p}::int8 * interval '1 microsecond'")
}

impl Filter {
    pub fn from_args(args: &FilterArgs) -> Filter {
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

    /// The SELECT over pg_stat_activity for this filter, ordered by pid. The `--query`
    /// regexes are not in it: apply `matches_query` to each returned session.
    pub fn select(&self, server: &Server) -> Query {
        let cols = Columns::for_server(server);
        let mut q = Query::default();
        let mut conds = cols.always(server);
        if server.has_backend_type() {
            let types = if self.backend_types.is_empty() {
                vec![DEFAULT_BACKEND_TYPE.to_string()]
            } else {
                self.backend_types.clone()
            };
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
            let p = q.bind(Param::TextArray(types));
            conds.push(format!("(a.backend_type = ANY({p}::text[]){hidden})"));
        }
        self.push_conditions(server, &cols, &mut q, &mut conds);
        if !server.has_blocking_pids() {
            let facts = self.server_facts(server, &mut q);
            q.sql = format!(
                "SELECT {}, {NO_LOCK_COLUMNS}, {facts} \
                 FROM pg_catalog.pg_stat_activity a WHERE {} ORDER BY 1",
                cols.select_list(),
                conds.join(" AND ")
            );
            return q;
        }
        let mut ctes = lock_graph(server, &cols);
        if !self.chain.blocks.is_empty() {
            let p = q.bind(Param::Int4Array(self.chain.blocks.clone()));
            ctes.push_str(&format!(
                ", reach(origin, pid) AS (SELECT o.pid, o.pid \
                 FROM pg_catalog.unnest({p}::int4[]) AS o(pid) \
                 UNION SELECT r.origin, b.pid FROM reach r JOIN g ON g.pid = r.pid, \
                 pg_catalog.unnest(g.blocked_by) AS b(pid))"
            ));
        }
        self.push_chain_conditions(&cols, &mut q, &mut conds);
        let prepared_matched = self.prepared_conditions(&mut q).join(" AND ");
        let facts = self.server_facts(server, &mut q);
        // A session outside any chain gets nulls (4 bytes each on the wire; `session` reads
        // them as empty arrays in `activity`). With nobody blocked, the join to `nd` would still hash every
        // session, so then (and only when no lock-chain filter asks, since those match nothing
        // without a chain) a second branch without it serves the rows instead: each branch is
        // gated by a one-time test of `e`.
        let conds = conds.join(" AND ");
        let sessions = |join: &str, columns: &str, gate: &str| {
            format!(
                "SELECT {list}, a.pgkick_blocked_by AS {blocked_by}, {columns}, \
                 NULL::text AS {gid}, NULL::bool AS {matched}, {facts} \
                 FROM sa a{join} WHERE {conds}{gate}",
                list = cols.select_list(),
                blocked_by = name::BLOCKED_BY,
                gid = name::GID,
                matched = name::MATCHED,
            )
        };
        let join = format!(" LEFT JOIN nd ON nd.pid = {}", cols.pid);
        let lock_columns = |blocking: &str, wait_start: &str| {
            format!(
                "{blocking} AS {}, {wait_start} AS {}",
                name::BLOCKING,
                name::LOCK_WAIT_START
            )
        };
        let graph_columns = &lock_columns("nd.blocking", "nd.wait_start");
        let mut branches = Vec::new();
        if self.chain.is_empty() {
            branches.push(sessions(
                &join,
                graph_columns,
                " AND EXISTS (SELECT 1 FROM e)",
            ));
            branches.push(sessions(
                "",
                &lock_columns("NULL::int4[]", "NULL::timestamptz"),
                " AND NOT EXISTS (SELECT 1 FROM e)",
            ));
        } else {
            branches.push(sessions(&join, graph_columns, ""));
        }
        branches.push(format!(
            "SELECT 0, pb.database, pb.owner, NULL::text, NULL::inet, NULL::int4, \
             NULL::timestamptz, pb.prepared, NULL::timestamptz, NULL::timestamptz, NULL::text, \
             NULL::text, NULL::text, NULL::text, NULL::int4, NULL::text, NULL::oid, \
             NULL::int4[], pb.waiters, NULL::timestamptz, pb.gid, {prepared_matched}, \
             {facts} FROM pb WHERE pg_catalog.cardinality(pb.waiters) > 0"
        ));
        q.sql = format!(
            "WITH RECURSIVE {ctes} {} ORDER BY 1",
            branches.join(" UNION ALL ")
        );
        q
    }

    /// The lock-chain filters as conditions on a session row `a` of `sa` joined to `nd`.
    fn push_chain_conditions(&self, cols: &Columns, q: &mut Query, conds: &mut Vec<String>) {
        let pid = cols.pid;
        let chain = &self.chain;
        let blocked = "pg_catalog.cardinality(a.pgkick_blocked_by) > 0";
        let blocking = "nd.blocking IS NOT NULL";
        if chain.blocked {
            conds.push(blocked.into());
        }
        if chain.blocking {
            conds.push(blocking.into());
        }
        if chain.root_blocker {
            conds.push(format!(
                "{blocking} AND COALESCE(pg_catalog.cardinality(a.pgkick_blocked_by), 0) = 0"
            ));
        }
        if !chain.blocks.is_empty() {
            conds.push(format!(
                "EXISTS (SELECT 1 FROM reach r WHERE r.pid = {pid} AND r.origin <> {pid})"
            ));
        }
        if let Some(d) = chain.blocked_for {
            if chain.blocked {
                let since = older_than(q, d);
                conds.push(format!("nd.wait_start < {since}"));
            }
            if chain.blocker_side() {
                let since = older_than(q, d);
                conds.push(format!(
                    "nd.blocking IS NOT NULL AND EXISTS (SELECT 1 FROM e \
                     JOIN wt w ON w.pid = e.waiter \
                     WHERE e.blocker = {pid} AND w.wait_start < {since})"
                ));
            }
        }
    }

    /// The server's facts every row carries, then `held_in_dbs`: with `--db`, how many
    /// prepared transactions and active logical slots those databases have (which no session
    /// row shows), so that the caller needs another statement only when there are any, or when
    /// no row came back; null without `--db`.
    fn server_facts(&self, server: &Server, q: &mut Query) -> String {
        let held = if self.dbs.is_empty() {
            "NULL::int8".to_string()
        } else {
            let p = q.bind(Param::TextArray(self.dbs.clone()));
            crate::holders::count_without_backends(server, &p)
        };
        format!("{SERVER_FACTS}, {held} AS {}", name::HELD_IN_DBS)
    }

    /// Whether a prepared transaction that blocks someone (a row of `pb`) matches: only the
    /// lock-chain filters and those a prepared transaction has values for (database, owner,
    /// age of its transaction) can select one; any other filter leaves it out, and so does a
    /// filter without lock-chain flags (it asks for sessions, not blockers).
    fn prepared_conditions(&self, q: &mut Query) -> Vec<String> {
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
        any_text(q, conds, "a.datname::text", &self.dbs);
        any_text(q, conds, "a.usename::text", &self.users);
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
        none_text(q, conds, "a.datname::text", &self.exclude_dbs);
        none_text(q, conds, "a.usename::text", &self.exclude_users);
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
mod tests {
    use super::*;
    use std::str::FromStr;

    fn filter(args: &[&str]) -> Filter {
        use clap::Parser;
        let mut argv = vec!["pgkick", "list"];
        argv.extend_from_slice(args);
        let cli = crate::cli::Cli::try_parse_from(argv).unwrap();
        match cli.command {
            crate::cli::Command::List(l) => Filter::from_args(&l.filter),
            _ => unreachable!(),
        }
    }

    /// Values that must never appear in SQL text.
    const HOSTILE: &str = "x'; DROP DATABASE postgres; --";

    #[test]
    fn values_travel_only_as_parameters() {
        let f = filter(&[
            "--db",
            HOSTILE,
            "--user",
            HOSTILE,
            "--app",
            HOSTILE,
            "--exclude-db",
            HOSTILE,
            "--exclude-user",
            HOSTILE,
            "--exclude-app",
            HOSTILE,
            "--backend-type",
            HOSTILE,
        ]);
        for v in [
            80400, 90100, 90200, 90500, 90600, 100000, 130000, 140000, 180000,
        ] {
            let q = f.select(&Server::version(v));
            assert!(!q.sql.contains("DROP"), "{v}: {}", q.sql);
            let hostile = q
                .params
                .iter()
                .filter(|p| matches!(p, Param::TextArray(a) if a == &[HOSTILE]))
                .count();
            // --db's values twice: the filter, and the count of what holds those databases.
            assert_eq!(hostile, if v >= 100000 { 8 } else { 7 }, "{v}");
        }
    }

    #[test]
    fn with_db_the_rows_count_what_holds_those_databases() {
        let q = filter(&["--db", "d"]).select(&Server::version(150000));
        assert!(q.sql.contains(
            "(SELECT pg_catalog.count(*) FROM pg_catalog.pg_prepared_xacts x \
             WHERE x.database::text = ANY("
        ));
        assert!(q
            .sql
            .contains("WHERE d.datname::text = ANY($3::text[]) AND s.active)"));
        assert!(q.sql.contains(") AS held_in_dbs"));
        let q = filter(&[]).select(&Server::version(150000));
        assert!(q.sql.contains("NULL::int8 AS held_in_dbs"));
        let q = filter(&["--db", "d"]).select(&Server::version(90100));
        assert!(!q.sql.contains("pg_replication_slots"), "{}", q.sql);
    }

    #[test]
    fn default_is_client_backends_without_own_session_null_datname_or_workers() {
        let q = filter(&[]).select(&Server::version(170000));
        assert!(q.sql.contains("a.pid <> pg_catalog.pg_backend_pid()"));
        assert!(q.sql.contains("a.datname IS NOT NULL"));
        assert!(q
            .sql
            .contains("a.backend_type IS DISTINCT FROM 'parallel worker'"));
        assert!(q
            .sql
            .contains("(a.leader_pid IS NULL OR a.leader_pid = a.pid)"));
        assert!(q.sql.contains(
            "(a.backend_type = ANY($1::text[]) OR (a.backend_type IS NULL \
             AND a.backend_start IS NULL AND a.usesysid IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_get_wal_senders() w \
             WHERE w.pid = a.pid)))"
        ));
        assert_eq!(
            q.params,
            vec![Param::TextArray(vec!["client backend".into()])]
        );
    }

    #[test]
    fn version_families() {
        let f = filter(&["--state", "idle"]);
        // 9.0 / 9.1: procpid, current_query, state derived, no wait events, no backend_type.
        let q = f.select(&Server::version(90124));
        assert!(q.sql.contains("a.procpid AS pid"));
        assert!(q.sql.contains("a.current_query AS query"));
        assert!(q.sql.contains("WHEN '<IDLE>' THEN 'idle'"));
        assert!(q.sql.contains("a.waiting"));
        assert!(!q.sql.contains("a.backend_type"));
        assert!(!q.sql.contains("a.state "));
        assert_eq!(q.params, vec![Param::TextArray(vec!["idle".into()])]);
        // 9.2 - 9.5: pid, state, waiting.
        let q = f.select(&Server::version(90524));
        assert!(q.sql.contains("a.pid AS pid") && q.sql.contains("a.state = ANY($1::text[])"));
        assert!(q.sql.contains("a.waiting") && !q.sql.contains("a.wait_event_type"));
        // 9.6: wait events, still no backend_type.
        let q = f.select(&Server::version(90624));
        assert!(q.sql.contains("a.wait_event_type") && !q.sql.contains("a.backend_type"));
        // 10 - 12: backend_type, no leader_pid.
        let q = f.select(&Server::version(120000));
        assert!(q.sql.contains("a.backend_type") && !q.sql.contains("a.leader_pid"));
        assert!(q.sql.contains("NULL::int4 AS leader_pid"));
        // 13+: leader_pid.
        let q = f.select(&Server::version(130000));
        assert!(q.sql.contains("a.leader_pid AS leader_pid"));
    }

    #[test]
    fn repeated_flags_or_and_different_flags_and() {
        let f = filter(&[
            "--db", "a", "--db", "b", "--user", "u", "--pid", "7", "--pid", "8",
        ]);
        let q = f.select(&Server::version(150000));
        assert!(q.sql.contains("a.datname::text = ANY($2::text[])"));
        assert!(q.sql.contains("a.usename::text = ANY($3::text[])"));
        assert!(q.sql.contains("a.pid = ANY($4::int4[])"));
        assert_eq!(q.params[1], Param::TextArray(vec!["a".into(), "b".into()]));
        assert_eq!(q.params[3], Param::Int4Array(vec![7, 8]));
    }

    #[test]
    fn clients_and_ages() {
        let f = filter(&[
            "--client",
            "local",
            "--client",
            "10.0.0.0/8",
            "--query-age",
            "10m",
            "--query-age",
            "5m",
            "--xact-age",
            "1h30m",
        ]);
        let q = f.select(&Server::version(150000));
        assert!(q
            .sql
            .contains("(a.client_port = -1 OR a.client_addr <<= ANY($2::text[]::inet[]))"));
        assert_eq!(q.params[1], Param::TextArray(vec!["10.0.0.0/8".into()]));
        // Repeated ages OR: the shortest wins.
        assert_eq!(q.params[2], Param::Int8(300_000_000));
        assert!(q
            .sql
            .contains("a.query_start < pg_catalog.now() - $3::int8 * interval '1 microsecond'"));
        assert!(q.sql.contains("a.state IS DISTINCT FROM 'idle'"));
        assert_eq!(q.params[3], Param::Int8(5_400_000_000));
    }

    #[test]
    fn exclusions_keep_rows_with_nulls() {
        let f = filter(&["--exclude-user", "postgres", "--exclude-pid", "42"]);
        let q = f.select(&Server::version(150000));
        assert!(q
            .sql
            .contains("NOT COALESCE(a.usename::text = ANY($2::text[]), false)"));
        assert!(q.sql.contains("NOT (a.pid = ANY($3::int4[]))"));
        assert!(f.selects_everything(), "exclusions alone do not narrow");
        assert!(!filter(&["--db", "x"]).selects_everything());
    }

    #[test]
    fn parallel_workers_on_10_are_background_workers() {
        let q = filter(&[]).select(&Server::version(100023));
        assert!(q
            .sql
            .contains("a.backend_type IS DISTINCT FROM 'background worker'"));
        let f = filter(&["--backend-type", "background worker"]);
        assert!(f.check_server(&Server::version(100023)).is_err());
        assert!(f.check_server(&Server::version(110000)).is_ok());
    }

    #[test]
    fn backend_type_needs_10() {
        let f = filter(&["--backend-type", "walsender"]);
        assert!(f.check_server(&Server::version(90624)).is_err());
        assert!(f.check_server(&Server::version(100000)).is_ok());
        let q = f.select(&Server::version(100000));
        assert_eq!(q.params[0], Param::TextArray(vec!["walsender".into()]));
        assert!(
            !q.sql.contains("a.backend_type IS NULL"),
            "hidden sessions are taken for client backends only"
        );
    }

    #[test]
    fn lock_chains_are_computed_in_the_same_statement_and_only_for_lock_waits() {
        let q = filter(&["--db", "d"]).select(&Server::version(150000));
        // One call, in the CTE whose rows are the sessions waiting for a lock (or hidden ones
        // that pg_locks shows waiting).
        assert_eq!(q.sql.matches("pg_catalog.pg_blocking_pids(").count(), 1);
        assert!(q.sql.contains(
            "CASE WHEN a.wait_event_type = 'Lock' OR (a.backend_start IS NULL \
             AND a.pid IN (SELECT l.pid FROM pg_catalog.pg_locks l WHERE NOT l.granted)) \
             THEN ARRAY(SELECT DISTINCT b.pid \
             FROM pg_catalog.unnest(pg_catalog.pg_blocking_pids(a.pid))"
        ));
        // pg_locks is read only when someone is blocked.
        assert!(q.sql.contains(
            "lk AS MATERIALIZED (SELECT l.* FROM pg_catalog.pg_locks l \
             WHERE EXISTS (SELECT 1 FROM e))"
        ));
        // One scan of pg_stat_activity serves the sessions and the lock graph, and the graph
        // is joined to them once.
        assert!(q
            .sql
            .contains("FROM sa a LEFT JOIN nd ON nd.pid = a.pid WHERE"));
        // With nobody blocked the rows come from a branch without the join.
        assert!(q
            .sql
            .contains("AND EXISTS (SELECT 1 FROM e) UNION ALL SELECT"));
        assert!(q
            .sql
            .contains("AND NOT EXISTS (SELECT 1 FROM e) UNION ALL SELECT 0,"));
        let chained = filter(&["--blocked"]).select(&Server::version(150000));
        assert!(!chained.sql.contains("NOT EXISTS (SELECT 1 FROM e)"));
        assert_eq!(q.sql.matches("pg_catalog.pg_stat_activity").count(), 1);
        assert!(!filter(&[])
            .select(&Server::version(110000))
            .sql
            .contains("MATERIALIZED"));
        assert!(q.sql.contains("AS blocked_by") && q.sql.contains("AS blocking"));
        // Without lock-chain flags nothing is added to the sessions' conditions, and no
        // prepared transaction matches.
        assert!(!q.sql.contains("reach"));
        assert!(q.sql.contains("pb.gid, false,"));
        // The first statement of a run is written for 13 and must serve every later version.
        let f = filter(&["--root-blocker", "--blocks", "7", "--blocked-for", "1m"]);
        assert_eq!(
            f.select(&Server::version(130000)).sql,
            f.select(&Server::version(180000)).sql
        );
    }

    #[test]
    fn lock_chain_filters_and_their_parameters() {
        let f = filter(&[
            "--blocked",
            "--blocks",
            "7",
            "--blocks",
            "8",
            "--blocked-for",
            "2m",
            "--blocked-for",
            "1m",
        ]);
        assert!(!f.selects_everything());
        let q = f.select(&Server::version(170000));
        assert!(q.sql.contains(
            "reach(origin, pid) AS (SELECT o.pid, o.pid FROM pg_catalog.unnest($2::int4[])"
        ));
        assert_eq!(q.params[1], Param::Int4Array(vec![7, 8]));
        assert!(q
            .sql
            .contains("pg_catalog.cardinality(a.pgkick_blocked_by) > 0"));
        assert!(q
            .sql
            .contains("EXISTS (SELECT 1 FROM reach r WHERE r.pid = a.pid AND r.origin <> a.pid)"));
        // --blocked-for: the shortest; on the waiting side for --blocked, on the blocking
        // side for --blocks.
        assert!(q
            .sql
            .contains("nd.wait_start < pg_catalog.now() - $3::int8"));
        assert!(q
            .sql
            .contains("WHERE e.blocker = a.pid AND w.wait_start < pg_catalog.now() - $4::int8"));
        assert_eq!(q.params[2], Param::Int8(60_000_000));
        // --blocked never selects a prepared transaction: it waits for nothing.
        assert!(q.sql.contains("pb.gid, false,"));

        let root = filter(&["--root-blocker", "--db", "d"]).select(&Server::version(170000));
        assert!(root.sql.contains(
            "nd.blocking IS NOT NULL AND \
             COALESCE(pg_catalog.cardinality(a.pgkick_blocked_by), 0) = 0"
        ));
        assert!(root
            .sql
            .contains("pb.gid, true AND pb.database = ANY($3::text[]),"));
        let with_state = filter(&["--root-blocker", "--state", "idle-in-transaction"]);
        assert!(with_state
            .select(&Server::version(170000))
            .sql
            .contains("pb.gid, false,"));
    }

    #[test]
    fn lock_chains_need_9_6() {
        let f = filter(&["--blocking"]);
        let err = f.check_server(&Server::version(90524)).unwrap_err();
        assert!(err.contains("9.6") && err.contains("9.5.24"), "{err}");
        assert!(f.check_server(&Server::version(90600)).is_ok());
        let q = filter(&[]).select(&Server::version(90524));
        assert!(!q.sql.contains("pg_blocking_pids"));
        assert!(q.sql.contains("NULL::int4[] AS blocked_by"));
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
