//! What both statements (`statement`, without the lock graph, and `graph`, with it) write
//! alike: the session's columns the rows carry, and the restriction of a recheck to its
//! targets. Neither statement's module uses the other's.

use crate::columns::{name, Columns};
use crate::filter::Filter;
use crate::sql::{Param, Query};

use super::needs::Rows;

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
        Rows::Pid => format!("{} AS {}", cols.pid, name::PID),
    }
}

/// `pid = ANY($n)`: a recheck looks only at its targets.
pub(super) fn only_pids(cols: &Columns, q: &mut Query, pids: &[i32]) -> String {
    let p = q.bind(Param::Int4Array(pids.to_vec()));
    format!("{} = ANY({p}::int4[])", cols.pid)
}
