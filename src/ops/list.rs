//! list: find the sessions, link them to their pooler clients (--pgbouncer), print them as a
//! table, JSON or a lock-chain tree, and note what else holds the --db databases.

use anyhow::Result;

use super::Part;
use super::{find, names, pooling, Context};
use crate::audit;
use crate::chain;
use crate::error::{ExitStatus, Usage};
use crate::output::prepared_message;
use crate::plan::List;
use crate::session::PreparedBlocker;

pub fn run(opts: &List, part: &Part<'_>) -> Result<ExitStatus> {
    let (member, printer) = (part.member, part.printer);
    let log = audit::Log::none();
    let trail = log.trail(&member.settings);
    let mut ctx = Context::open(member, printer, &trail)?;
    let mut matched = find::first(&mut ctx, &opts.filter, opts.tree)?;
    names::check(
        &mut ctx,
        std::mem::take(&mut matched.unknown),
        false,
        &part.unknown,
    )?;
    pooling::link_sessions(
        &mut matched.sessions,
        &opts.poolers,
        member.params.password,
        printer,
    )?;
    // No facts, no row: the probe's statement ran, which only servers with pg_blocking_pids
    // answer (13 and later).
    if let Some(server) = ctx
        .known_server()
        .filter(|s| opts.tree && !s.has_blocking_pids())
    {
        return Err(Usage(format!(
            "--tree needs pg_blocking_pids(), which PostgreSQL has from 9.6; the server is {}",
            server.version_text()
        ))
        .into());
    }
    // The prepared transactions worth a word: selected, or blocking a listed session.
    let shown: Vec<PreparedBlocker> = matched
        .prepared
        .iter()
        .filter(|p| {
            p.matched
                || p.blocking
                    .iter()
                    .any(|w| matched.sessions.iter().any(|s| s.pid == *w))
        })
        .cloned()
        .collect();
    for p in &shown {
        printer.note(&prepared_message(p));
    }
    if opts.tree {
        printer.print_tree(&chain::forest(&matched.sessions, &shown, None))?;
    } else {
        printer.print(&matched.sessions)?;
    }
    find::note_hidden_holders(&mut ctx, &opts.filter.dbs, matched.held_in_dbs)?;
    Ok(ExitStatus::Success)
}
