//! What a dry run of cancel and terminate shows beyond the targets: the lock chains the
//! signal would break, and the statement that would send it. Nothing here changes anything.

use anyhow::Result;

use super::Context;
use crate::chain;
use crate::filter::{Filter, LockChain};
use crate::session::Session;
use crate::signal::{self, Action};

/// With lock-chain filters: the chains headed by the targets, with the sessions waiting in
/// them (found by one more statement: every blocked session).
pub fn chains_to_break(ctx: &mut Context<'_>, filter: &Filter, targets: &[Session]) -> Result<()> {
    if filter.chain.is_empty() {
        return Ok(());
    }
    let server = ctx.server()?;
    let blocked = Filter {
        chain: LockChain {
            blocked: true,
            ..LockChain::default()
        },
        ..Filter::default()
    };
    let mut sessions = crate::activity::find(&mut ctx.client, &server, &blocked)?.sessions;
    for t in targets {
        if !sessions.iter().any(|s| s.pid == t.pid) {
            sessions.push(t.clone());
        }
    }
    sessions.sort_by_key(|s| s.pid);
    let heads: Vec<i32> = targets.iter().map(|t| t.pid).collect();
    let mut lines = chain::forest(&sessions, &[], Some(&heads));
    // Targets that hold nobody up (e.g. --blocked alone) make no chain to break.
    lines.retain(|l| l.depth > 0 || matches!(l.node, chain::Node::Session(s) if s.is_blocking()));
    Ok(ctx.printer.dry_run_chains(&lines)?)
}

/// The statement that would signal `targets`.
pub fn signal_statement(ctx: &mut Context<'_>, action: Action, targets: &[Session]) -> Result<()> {
    let server = ctx.server()?;
    let query = signal::signal_query(&server, action, targets);
    Ok(ctx.printer.dry_run_sql(&query.display())?)
}
