//! The statement that finds sessions, assembled from what the run needs (`Needs`): the
//! session columns over pg_stat_activity and the filter's conditions, then only the parts
//! asked for. With the lock graph it is `graph`'s.
//!
//! Pure: SQL text over fixed fragments and `$n` placeholders, and the parameters. Rows come
//! back in no particular order (`activity` sorts them by pid): a sort in the server is one
//! more thing to plan.

use crate::columns::{self, name, Columns, SERVER_FACTS};
use crate::filter::Filter;
use crate::server::Server;
use crate::sql::{Param, Query};

use super::graph;
use super::needs::{Needs, Rows};

/// The statement for `needs`; with `only`, restricted to those pids (a recheck of targets).
pub fn build(filter: &Filter, server: &Server, needs: Needs, only: Option<&[i32]>) -> Query {
    if needs.graph && server.has_blocking_pids() {
        return graph::build(filter, server, needs, only);
    }
    let cols = Columns::scanned(server);
    let mut q = Query::default();
    let mut conds = filter.conditions(server, &cols, &mut q);
    if let Some(pids) = only {
        conds.push(only_pids(&cols, &mut q, pids));
    }
    let mut list = vec![select_list(filter, &cols, needs.rows)];
    if needs.waits && server.has_blocking_pids() {
        list.push(format!("{} AS {}", waits(), name::WAITS));
    }
    list.extend(facts(filter, server, needs, &mut q));
    q.sql = format!(
        "SELECT {} FROM {} WHERE {}",
        list.join(", "),
        columns::source(server),
        conds.join(" AND ")
    );
    q
}

/// The session's columns the rows carry.
pub(super) fn select_list(filter: &Filter, cols: &Columns, rows: Rows) -> String {
    match rows {
        Rows::Full => cols.select_list(),
        Rows::Identity if filter.queries.is_empty() => cols.identity_list(),
        Rows::Identity => format!(
            "{}, {} AS {}",
            cols.identity_list(),
            cols.query,
            name::QUERY
        ),
    }
}

/// `pid = ANY($n)`: a recheck looks only at its targets.
pub(super) fn only_pids(cols: &Columns, q: &mut Query, pids: &[i32]) -> String {
    let p = q.bind(Param::Int4Array(pids.to_vec()));
    format!("{} = ANY({p}::int4[])", cols.pid)
}

/// The server's facts and what holds the `--db` databases, as the needs ask.
pub(super) fn facts(filter: &Filter, server: &Server, needs: Needs, q: &mut Query) -> Vec<String> {
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

/// After a first statement that found nothing, what its rows would have told: the server's
/// facts, what holds the `--db` databases and which named databases and roles exist. `server`
/// is the one the statement is written for (the assumed one, when the first statement was
/// the probe: the server then answered it, so it has that statement's SQL).
pub fn facts_alone(filter: &Filter, server: &Server) -> Query {
    let mut q = Query::default();
    let needs = Needs {
        facts: true,
        held: !filter.dbs.is_empty(),
        names: true,
        ..Needs::first(filter, server, false)
    };
    let list = facts(filter, server, needs, &mut q);
    q.sql = format!("SELECT {}", list.join(", "));
    q
}

/// Whether any backend of the server waits for a heavyweight lock: the only time the lock
/// graph has something to show. Read from the backend status the statement's scan has
/// already taken (`pg_stat_get_backend_idset`, and each backend's wait event by its id),
/// without the graph's planning. A backend whose wait event the server hides from pgkick's
/// role counts only when the lock manager has a lock waiting (`pg_lock_status`, read only
/// then).
pub(super) fn waits() -> &'static str {
    "(SELECT pg_catalog.bool_or(w.t = 'Lock') \
     OR (pg_catalog.bool_or(w.t = '<insufficient privilege>') \
     AND EXISTS (SELECT 1 FROM pg_catalog.pg_lock_status() l WHERE NOT l.granted)) \
     FROM (SELECT pg_catalog.pg_stat_get_backend_wait_event_type(b.id) AS t \
     FROM pg_catalog.pg_stat_get_backend_idset() AS b(id)) AS w)"
}
