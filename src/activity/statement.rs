//! The statement that finds sessions without the lock graph, assembled from what the run
//! needs (`Needs`): the session columns over pg_stat_activity and the filter's conditions,
//! then only the parts asked for. (The one with the lock graph is `graph`'s.)
//!
//! When it carries something besides the sessions (whether anything waits for a lock, the
//! server's facts, what holds the `--db` databases, which named databases and roles exist), it
//! returns a row even when no session matches: the sessions are left joined, on the filter's
//! conditions, to a one-row part `o` (the aggregate that tells whether anything waits, or
//! `SELECT 1`), and a row whose pid is null is no session. A run that matches nothing learns
//! all of it from its one statement. Measured in a new backend (BENCHMARKS.md, issue 20), the
//! join costs the server about 0.05 ms more than a `WHERE`; a second statement for a run that
//! matched nothing cost a round trip and about 1 ms.
//!
//! Pure: SQL text over fixed fragments and `$n` placeholders, and the parameters. Rows come
//! back in no particular order (`activity` sorts them by pid): a sort in the server is one
//! more thing to plan.

use crate::columns::{self, name, Columns, SERVER_FACTS};
use crate::filter::Filter;
use crate::server::Server;
use crate::sql::{Param, Query};

use super::needs::Needs;
use super::parts::{only_pids, select_list};

/// The statement for `needs` (without the graph); with `only`, restricted to those pids (a
/// recheck of targets).
pub fn build(filter: &Filter, server: &Server, needs: Needs, only: Option<&[i32]>) -> Query {
    let cols = Columns::scanned(server);
    let mut q = Query::default();
    let mut conds = filter.conditions(server, &cols, &mut q);
    if let Some(pids) = only {
        conds.push(only_pids(&cols, &mut q, pids));
    }
    let mut list = vec![select_list(filter, &cols, needs.rows)];
    let waits = needs.waits && server.has_blocking_pids();
    if waits && needs.one_row() {
        list.push(format!("o.{0} AS {0}", name::WAITS));
    } else if waits {
        list.push(format!("({}) AS {}", waits_select(), name::WAITS));
    }
    list.extend(facts(filter, server, needs, &mut q));
    q.sql = if needs.one_row() {
        // The one-row part: whether anything waits (an aggregate: one row whatever it reads).
        let one = if waits {
            format!("({})", waits_select())
        } else {
            "(SELECT 1)".to_string()
        };
        format!(
            "SELECT {} FROM {one} AS o LEFT JOIN {} ON {}",
            list.join(", "),
            source_joined(server),
            conds.join(" AND ")
        )
    } else {
        format!(
            "SELECT {} FROM {} WHERE {}",
            list.join(", "),
            columns::source(server),
            conds.join(" AND ")
        )
    };
    q
}

/// The rows `a` (and `d`) as the right side of a join.
fn source_joined(server: &Server) -> String {
    let source = columns::source(server);
    if source.contains(" JOIN ") {
        format!("({source})")
    } else {
        source.to_string()
    }
}

/// The server's facts and what holds the `--db` databases, as the needs ask.
fn facts(filter: &Filter, server: &Server, needs: Needs, q: &mut Query) -> Vec<String> {
    let mut list = Vec::new();
    if needs.facts {
        list.push(SERVER_FACTS.to_string());
    }
    if needs.held && !filter.dbs.is_empty() {
        let p = q.bind(Param::TextArray(filter.dbs.clone()));
        list.push(format!(
            "{} AS {}",
            crate::holders::held_without_backends(server, &p),
            name::HELD_IN_DBS
        ));
    }
    if needs.names {
        list.extend(known_names(filter, q));
    }
    list
}

/// Of the databases and roles the filter names, those that exist: one scan of pg_database
/// with the names as a parameter, and each role looked up by `to_regrole` (a name longer
/// than an identifier can be exists as no role, whatever it would be cut to).
fn known_names(filter: &Filter, q: &mut Query) -> Vec<String> {
    let mut list = Vec::new();
    let dbs = filter.named_dbs();
    if !dbs.is_empty() {
        let p = q.bind(Param::TextArray(dbs));
        list.push(format!(
            "ARRAY(SELECT m.datname::text FROM pg_catalog.pg_database m \
             WHERE m.datname::text = ANY({p}::text[])) AS {}",
            name::KNOWN_DBS
        ));
    }
    let users = filter.named_users();
    if !users.is_empty() {
        let p = q.bind(Param::TextArray(users));
        list.push(format!(
            "ARRAY(SELECT n FROM pg_catalog.unnest({p}::text[]) AS n \
             WHERE pg_catalog.octet_length(n) <= 63 \
             AND pg_catalog.to_regrole(pg_catalog.quote_ident(n)) IS NOT NULL) AS {}",
            name::KNOWN_ROLES
        ));
    }
    list
}

/// Whether any backend of the server waits for a heavyweight lock, the only time the lock
/// graph has something to show: 0 when none does, 1 when one does, 2 when one does and a
/// prepared transaction exists (which the graph then looks for among the blockers; whether
/// one exists is read only when something waits). Read from the backend status the
/// statement's scan has already taken (`pg_stat_get_backend_idset`, and each backend's wait
/// event by its id), without the graph's planning; an aggregate, so one row whatever it
/// reads (the statement's one-row part `o`, or a scalar subquery). A backend whose wait event the server hides
/// from pgkick's role counts only when the lock manager has a lock waiting (`pg_lock_status`,
/// read only then).
pub(super) fn waits_select() -> String {
    format!(
        "SELECT CASE WHEN \
     pg_catalog.bool_or(pg_catalog.pg_stat_get_backend_wait_event_type(b.id) = 'Lock') \
     OR (pg_catalog.bool_or(pg_catalog.pg_stat_get_backend_wait_event_type(b.id) \
     = '<insufficient privilege>') \
     AND EXISTS (SELECT 1 FROM pg_catalog.pg_lock_status() l WHERE NOT l.granted)) \
     THEN CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_prepared_xact()) THEN 2 ELSE 1 END \
     ELSE 0 END AS {} FROM pg_catalog.pg_stat_get_backend_idset() AS b(id)",
        name::WAITS
    )
}
