//! Backends still starting into a database: in the ProcArray, where DROP DATABASE counts
//! them, before pg_stat_activity shows them.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::interrupt::Backoff;
use crate::sql::{Param, Query};

/// How long [`wait_for_starting`] waits: as long as DROP DATABASE waits for other backends
/// to leave (`CountOtherDBBackends`).
pub const STARTING_WAIT: Duration = Duration::from_secs(5);

/// The backends starting into the databases `dbs` that pg_stat_activity does not show yet.
///
/// `InitPostgres` takes a `RowExclusiveLock` on the database object (`pg_locks`, locktype
/// `object`) before it reads `datallowconn`, the connection limit and the CONNECT privilege,
/// and holds it until its startup transaction ends, after the backend has appeared in
/// pg_stat_activity (`pgstat_bestart`). A backend that passed those checks before a lock
/// committed is in the database without being in pg_stat_activity yet, and only this lock
/// tells.
pub(super) fn starting_query(dbs: &[String]) -> Query {
    let mut q = Query::default();
    let d = q.bind(Param::TextArray(dbs.to_vec()));
    q.sql = format!(
        "SELECT l.pid FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_database d \
         ON l.classid = 'pg_catalog.pg_database'::pg_catalog.regclass::pg_catalog.oid \
         AND l.objid = d.oid \
         WHERE l.locktype = 'object' AND l.database = 0 AND l.mode = 'RowExclusiveLock' \
         AND l.granted AND l.pid <> pg_catalog.pg_backend_pid() \
         AND d.datname::text = ANY({d}::text[]) \
         AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity a \
         WHERE a.pid = l.pid AND a.datid = d.oid) ORDER BY 1"
    );
    q
}

/// After a lock has committed: waits, up to `within`, until every backend that was starting
/// into `dbs` has either appeared in pg_stat_activity or gone, so that a search for the
/// sessions in `dbs` finds those that got in just before the lock. Backends that begin to
/// start later read the lock and are refused (or, with a method that lets them in, are not
/// waited for: they keep coming). Returns the pids still starting at the end.
pub fn wait_for_starting(
    client: &mut postgres::Client,
    dbs: &[String],
    within: Duration,
) -> Result<Vec<i32>> {
    if dbs.is_empty() {
        return Ok(Vec::new());
    }
    let q = starting_query(dbs);
    let pids = |client: &mut postgres::Client| -> Result<BTreeSet<i32>> {
        let rows = q
            .run(client)
            .context("could not read which backends are starting into the databases")?;
        rows.iter().map(|r| Ok(r.try_get::<_, i32>(0)?)).collect()
    };
    let first = pids(client)?;
    let mut backoff = Backoff::new(within, Duration::from_millis(2), Duration::from_millis(100));
    let mut still = first.clone();
    while !still.is_empty() && backoff.sleep()? {
        still = pids(client)?.intersection(&first).copied().collect();
    }
    Ok(still.into_iter().collect())
}
