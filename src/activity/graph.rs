//! The statement with the lock graph: who waits on whom (`pg_catalog.pg_blocking_pids`),
//! since when, and the prepared transactions that block someone, computed in the statement
//! that finds the sessions from the same single scan of pg_stat_activity. Sent only after a
//! statement without it (`statement`) said that some backend waits for a lock
//! (`statement::waits`), and in the rechecks of a lock-chain filter's targets; so it never
//! carries the server's facts or what holds the `--db` databases, which that statement had.
//!
//! `pg_blocking_pids` takes the lock manager's partition locks, so it is called only for
//! sessions that wait for a lock (and for sessions whose wait event the server hides from
//! pgkick's role, when the lock manager shows them waiting). The lock manager's table is read
//! once, and only when someone is blocked.
//! - `sa`: every row of pg_stat_activity (with the view's `datname` and `usename`), and
//!   `pgkick_blocked_by` (as `pg_blocking_pids` answers: `activity` sorts it and drops the
//!   duplicates, which cost a sort per waiting session in the server; 0 is a prepared
//!   transaction), null when the session does not wait;
//! - `g(pid, blocked_by, query_start)`: the sessions blocked by someone;
//! - `e(waiter, blocker)`: the edges;
//! - `lk`: the lock manager's locks (from 14 the waiting ones, for their `waitstart`; every
//!   lock when prepared transactions are looked for);
//! - `wt(pid, wait_start)`: when each blocked session began to wait: its earliest
//!   `waitstart` where the server has it (14+), otherwise its query_start;
//! - `pb(gid, database, owner, prepared, waiters)`: the prepared transactions holding a lock
//!   that a session blocked by pid 0 waits for (only when the statement before said that a
//!   prepared transaction exists);
//! - `nd(pid, blocking, wait_start)`: one row per session in a chain, joined to the sessions
//!   once (a lookup in `e` and `wt` per session would cost rows × waiters).
//!
//! Each is materialized (explicitly from 12, always before): an inlined `wt` would be
//! aggregated again for every row that looks it up.

use crate::columns::{self, name, Columns};
use crate::filter::{older_than, Filter};
use crate::server::Server;
use crate::sql::Query;

use super::needs::{Needs, Rows};
use super::parts::{only_pids, select_list};

/// The graph's statement. `server` has pg_blocking_pids (9.6+).
pub fn build(filter: &Filter, server: &Server, needs: Needs, only: Option<&[i32]>) -> Query {
    // The rows of `sa` have pg_stat_activity's names, whatever they were read from.
    let cols = Columns::for_server(server);
    let mut q = Query::default();
    let mut conds = filter.conditions(server, &cols, &mut q);
    if let Some(pids) = only {
        conds.push(only_pids(&cols, &mut q, pids));
    }
    let prepared = needs.prepared && needs.rows == Rows::Full;
    let mut ctes = ctes(server, prepared);
    if !filter.chain.blocks.is_empty() {
        let p = q.bind(crate::sql::Param::Int4Array(filter.chain.blocks.clone()));
        ctes.push(format!(
            "reach(origin, pid) AS (SELECT o.pid, o.pid \
             FROM pg_catalog.unnest({p}::int4[]) AS o(pid) \
             UNION SELECT r.origin, b.pid FROM reach r JOIN g ON g.pid = r.pid, \
             pg_catalog.unnest(g.blocked_by) AS b(pid))"
        ));
    }
    chain_conditions(filter, &cols, &mut q, &mut conds);
    let recursive = if filter.chain.blocks.is_empty() {
        ""
    } else {
        "RECURSIVE "
    };
    let matched = if prepared {
        filter.prepared_conditions(&mut q).join(" AND ")
    } else {
        String::new()
    };
    let mut list = select_list(filter, &cols, needs.rows);
    if needs.rows == Rows::Full {
        list.push_str(&format!(
            ", a.pgkick_blocked_by AS {}, nd.blocking AS {}, nd.wait_start AS {}",
            name::BLOCKED_BY,
            name::BLOCKING,
            name::LOCK_WAIT_START,
        ));
    }
    if prepared {
        // The prepared transactions' rows: a gid, and whether the filters select them.
        list.push_str(&format!(
            ", NULL::text AS {}, NULL::bool AS {}",
            name::GID,
            name::MATCHED
        ));
    }
    let sessions = format!(
        "SELECT {list} FROM sa a LEFT JOIN nd ON nd.pid = {} WHERE {}",
        cols.pid,
        conds.join(" AND ")
    );
    let select = if !prepared {
        sessions
    } else {
        format!(
            "{sessions} UNION ALL SELECT 0, pb.database, pb.owner, NULL::text, NULL::inet, \
             NULL::int4, NULL::timestamptz, pb.prepared, NULL::timestamptz, NULL::timestamptz, \
             NULL::text, NULL::text, NULL::text, NULL::text, NULL::int4, NULL::text, NULL::oid, \
             NULL::int4[], pb.waiters, NULL::timestamptz, pb.gid, {matched} \
             FROM pb WHERE pg_catalog.cardinality(pb.waiters) > 0"
        )
    };
    q.sql = format!("WITH {recursive}{} {select}", ctes.join(", "));
    q
}

/// The graph's CTEs (see the module's documentation).
fn ctes(server: &Server, prepared: bool) -> Vec<String> {
    let scanned = Columns::scanned(server);
    let pid = scanned.pid;
    let m = if server.has_materialized_cte() {
        "MATERIALIZED "
    } else {
        ""
    };
    // Read from the function, the rows get the view's names for the database and the role.
    let names = if server.has_backend_type() {
        format!(
            ", {} AS datname, {} AS usename",
            scanned.datname, scanned.usename
        )
    } else {
        String::new()
    };
    let mut ctes = vec![
        format!(
            "sa AS {m}(SELECT a.*{names}, CASE WHEN {wet} = 'Lock' OR (a.backend_start IS NULL \
             AND {pid} IN (SELECT l.pid FROM pg_catalog.pg_lock_status() l \
             WHERE NOT l.granted)) \
             THEN pg_catalog.pg_blocking_pids({pid}) END AS pgkick_blocked_by FROM {source})",
            wet = scanned.wait_event_type,
            source = columns::source(server),
        ),
        format!(
            "g AS {m}(SELECT a.pid, a.pgkick_blocked_by AS blocked_by, a.query_start FROM sa a \
             WHERE pg_catalog.cardinality(a.pgkick_blocked_by) > 0)"
        ),
        format!(
            "e AS {m}(SELECT g.pid AS waiter, b.pid AS blocker \
             FROM g, pg_catalog.unnest(g.blocked_by) AS b(pid))"
        ),
    ];
    if prepared {
        ctes.push(format!(
            "lk AS {m}(SELECT l.* FROM pg_catalog.pg_lock_status() l \
             WHERE EXISTS (SELECT 1 FROM e))"
        ));
    } else if server.has_waitstart() {
        ctes.push(format!(
            "lk AS {m}(SELECT l.pid, l.granted, l.waitstart FROM pg_catalog.pg_lock_status() l \
             WHERE NOT l.granted AND EXISTS (SELECT 1 FROM e))"
        ));
    }
    ctes.push(if server.has_waitstart() {
        format!(
            "wt AS {m}(SELECT g.pid, \
             COALESCE(pg_catalog.min(l.waitstart), pg_catalog.min(g.query_start)) AS wait_start \
             FROM g LEFT JOIN lk l ON l.pid = g.pid AND NOT l.granted GROUP BY g.pid)"
        )
    } else {
        format!("wt AS {m}(SELECT g.pid, g.query_start AS wait_start FROM g)")
    });
    if prepared {
        let lock_object = |l: &str| {
            format!(
                "({l}.locktype, {l}.database, {l}.relation, {l}.page, {l}.tuple, \
                 {l}.virtualxid, {l}.transactionid, {l}.classid, {l}.objid, {l}.objsubid)"
            )
        };
        ctes.push(format!(
            "pb AS {m}(SELECT p.gid, d.datname::text AS database, \
             NULLIF(pg_catalog.pg_get_userbyid(p.ownerid)::text, \
             'unknown (OID=' || p.ownerid::text || ')') AS owner, \
             p.prepared, ARRAY(SELECT DISTINCT w.pid FROM lk w \
             JOIN e ON e.waiter = w.pid AND e.blocker = 0 \
             JOIN lk h ON h.virtualtransaction = x.virtualtransaction AND h.granted \
             AND {h} IS NOT DISTINCT FROM {w} \
             WHERE NOT w.granted ORDER BY 1) AS waiters \
             FROM pg_catalog.pg_prepared_xact() p \
             LEFT JOIN pg_catalog.pg_database d ON d.oid = p.dbid \
             JOIN lk x ON x.locktype = 'transactionid' \
             AND x.pid IS NULL AND x.transactionid = p.transaction \
             WHERE EXISTS (SELECT 1 FROM e WHERE e.blocker = 0))",
            h = lock_object("h"),
            w = lock_object("w"),
        ));
    }
    ctes.push(format!(
        "nd AS {m}(SELECT COALESCE(bl.pid, wt.pid) AS pid, bl.blocking, wt.wait_start \
         FROM (SELECT e.blocker AS pid, \
         pg_catalog.array_agg(DISTINCT e.waiter ORDER BY e.waiter) AS blocking \
         FROM e GROUP BY e.blocker) AS bl FULL JOIN wt ON wt.pid = bl.pid)"
    ));
    ctes
}

/// The lock-chain filters as conditions on a session row `a` of `sa` joined to `nd`.
fn chain_conditions(filter: &Filter, cols: &Columns, q: &mut Query, conds: &mut Vec<String>) {
    let pid = cols.pid;
    let chain = &filter.chain;
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
