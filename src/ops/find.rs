//! The find stage: the filter's sessions on the server, with what pgkick cannot see or tell
//! said on stderr, and the note about what else holds the `--db` databases.

use anyhow::Result;

use super::Context;
use crate::activity::{self, Matched};
use crate::error::Usage;
use crate::filter::Filter;
use crate::holders;
use crate::server::Server;

/// The first find on a new connection (with `tree`, with the lock chains). On PostgreSQL 13
/// and later (14 for the lock chains) the first statement finds the sessions and tells the
/// server's facts (the rows carry them); an older server rejects that statement, and is then
/// detected first.
pub fn first(ctx: &mut Context<'_>, filter: &Filter, tree: bool) -> Result<Matched> {
    let matched = match activity::probe(&mut ctx.client, filter, tree)? {
        Some(matched) => {
            ctx.learn(matched.server);
            matched
        }
        None => {
            let server = ctx.server()?;
            filter.check_server(&server).map_err(Usage)?;
            activity::first(&mut ctx.client, &server, filter, tree)?
        }
    };
    warn_hidden_from_query(ctx, &matched);
    if let Some(server) = ctx.known_server() {
        warn_lock_chain_limits(ctx, filter, &server, &matched);
    }
    Ok(matched)
}

/// The filter's sessions again, later in a run.
pub fn again(ctx: &mut Context<'_>, filter: &Filter) -> Result<Matched> {
    let server = ctx.server()?;
    let matched = activity::find(&mut ctx.client, &server, filter)?;
    warn_hidden_from_query(ctx, &matched);
    Ok(matched)
}

fn warn_hidden_from_query(ctx: &Context<'_>, matched: &Matched) {
    if matched.hidden_from_query_filter > 0 {
        ctx.printer.warn(&format!(
            "{} session(s) hide their query text from this role, so --query cannot match \
             them; grant pg_read_all_stats to see every query",
            matched.hidden_from_query_filter
        ));
    }
}

/// What pgkick cannot tell about lock chains on this server or for this role.
fn warn_lock_chain_limits(ctx: &Context<'_>, filter: &Filter, server: &Server, matched: &Matched) {
    if filter.chain.blocked_for.is_some() && !server.has_waitstart() {
        ctx.printer.note(&format!(
            "PostgreSQL {} has no pg_locks.waitstart: --blocked-for takes a wait to have \
             started when the waiting query did (query_start), which can overstate it",
            server.version_text()
        ));
    }
    let hidden_in_chains = matched
        .sessions
        .iter()
        .filter(|s| !s.details_visible() && (s.is_blocked() || s.is_blocking()))
        .count();
    if hidden_in_chains > 0 && !filter.chain.is_empty() {
        let durations = if server.has_waitstart() {
            ""
        } else {
            ", nor how long they have waited"
        };
        ctx.printer.warn(&format!(
            "{hidden_in_chains} session(s) in lock chains hide their details from this role: \
             pgkick sees from the lock manager whom they wait on and hold up, but not their \
             state or query{durations}; grant pg_read_all_stats to pgkick's role to see them"
        ));
    }
}

/// list, cancel, terminate (without --lock) and lock with --db: a note on stderr for what no
/// session row shows but holds the databases: prepared transactions (they keep their locks
/// and hold back VACUUM) and active logical slots. `held` is whether the statement that found
/// the sessions saw any (None: it could not tell): with false no other statement is needed.
pub fn note_hidden_holders(
    ctx: &mut Context<'_>,
    dbs: &[String],
    held: Option<bool>,
) -> Result<()> {
    if dbs.is_empty() || held == Some(false) {
        return Ok(());
    }
    let server = ctx.server()?;
    for h in holders::find_without_backends(&mut ctx.client, &server, dbs)? {
        ctx.printer.note(&h.note());
    }
    Ok(())
}
