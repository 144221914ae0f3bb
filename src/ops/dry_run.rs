//! What a dry run of cancel and terminate shows: a line that says what would happen, each
//! target's outcome by the rule the real run applies (`would_be_denied` for a session
//! pgkick's role may not signal), the lock chains the signal would break, and the statement
//! that finds the targets and the one that would send the signal, laid out over lines with
//! their parameters. Nothing here changes anything.

use anyhow::Result;

use super::Context;
use crate::activity::{self, needs::Needs};
use crate::chain;
use crate::filter::{Filter, LockChain};
use crate::session::Session;
use crate::signal::{self, Action, Outcome, Report};

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

/// What signalling `targets` would do to each, by the rule the real run applies (one
/// statement).
pub fn predict(ctx: &mut Context<'_>, action: Action, targets: &[Session]) -> Result<Vec<Report>> {
    let server = ctx.server()?;
    signal::predict(&mut ctx.client, &server, action, targets)
}

/// `3 sessions would be terminated, 1 would be denied (...); nothing was changed`.
pub fn summary(action: Action, reports: &[Report]) -> String {
    let count = |o: Outcome| reports.iter().filter(|r| r.outcome == o).count();
    let sessions = |n: usize| match n {
        1 => "1 session".to_string(),
        n => format!("{n} sessions"),
    };
    let done = match action {
        Action::Terminate => "terminated",
        Action::Cancel => "cancelled (their queries)",
    };
    if reports.is_empty() {
        return format!("no session matches: none would be {done}; nothing was changed");
    }
    let mut parts = vec![format!(
        "{} would be {done}",
        sessions(count(action.would()))
    )];
    let denied = count(Outcome::WouldBeDenied);
    if denied > 0 {
        parts.push(format!(
            "{denied} would be denied (pgkick's role may not {} {})",
            action.verb(),
            if denied == 1 { "it" } else { "them" }
        ));
    }
    let gone = count(Outcome::AlreadyGone);
    if gone > 0 {
        parts.push(format!("{gone} already gone"));
    }
    format!("{}; nothing was changed", parts.join(", "))
}

/// The statement that finds the targets, and the one that would signal them (none for no
/// target), each laid out over lines with its parameters.
pub fn statements(
    ctx: &mut Context<'_>,
    filter: &Filter,
    action: Action,
    targets: &[Session],
) -> Result<()> {
    let server = ctx.server()?;
    // With a lock-chain filter the targets are the graph's rows: its statement, as the run
    // sends it when something waits (with the prepared transactions' part, which it carries
    // when one exists).
    let needs = if filter.chain.is_empty() || !server.has_blocking_pids() {
        Needs::later(filter, &server)
    } else {
        Needs::graph(true)
    };
    let find = activity::build(filter, &server, needs, None);
    ctx.printer
        .dry_run_text("the statement that finds the targets:", &find.display())?;
    if targets.is_empty() {
        return Ok(());
    }
    let query = signal::signal_query(&server, action, targets);
    Ok(ctx.printer.dry_run_sql(&query.display())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reports(outcomes: &[Outcome]) -> Vec<Report> {
        outcomes
            .iter()
            .map(|&outcome| Report {
                session: Session::default(),
                outcome,
            })
            .collect()
    }

    #[test]
    fn the_summary_says_what_would_happen_in_one_line() {
        use Outcome::*;
        assert_eq!(
            summary(Action::Terminate, &[]),
            "no session matches: none would be terminated; nothing was changed"
        );
        assert_eq!(
            summary(
                Action::Terminate,
                &reports(&[WouldTerminate, WouldTerminate, WouldBeDenied])
            ),
            "2 sessions would be terminated, 1 would be denied (pgkick's role may not \
             terminate it); nothing was changed"
        );
        assert_eq!(
            summary(Action::Cancel, &reports(&[WouldCancel, AlreadyGone])),
            "1 session would be cancelled (their queries), 1 already gone; nothing was changed"
        );
    }
}
