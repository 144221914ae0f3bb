//! The acting stages of cancel and terminate: send the signal, --cancel-first's grace period,
//! --wait, and the audit records of what was done; and the exit status that the outcomes
//! mean.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use super::Context;
use crate::error::ExitStatus;
use crate::filter::Filter;
use crate::interrupt;
use crate::plan::Signal;
use crate::session::Session;
use crate::signal::{self, Action, Outcome, Report};

/// Signals `targets` (with --cancel-first, cancels them).
pub fn signal(ctx: &mut Context<'_>, opts: &Signal, targets: &[Session]) -> Result<Vec<Report>> {
    let server = ctx.server()?;
    signal::signal(&mut ctx.client, &server, opts.first_action(), targets)
}

/// After the signal: --cancel-first's grace period (then the cancelled sessions that still
/// match `filter` are terminated), then --wait for every one of `reports`. Whatever stops it
/// (an interrupt, the server going away) comes after signals went out: the caller reports what
/// was done before it returns the error.
pub fn grace_and_wait(
    ctx: &mut Context<'_>,
    opts: &Signal,
    filter: &Filter,
    reports: &mut [Report],
) -> Result<()> {
    let finished = (|| -> Result<()> {
        if let Some(grace) = opts.cancel_first {
            terminate_after_grace(ctx, filter, reports, grace)?;
        }
        if opts.wait.wait {
            let what = match opts.action {
                Action::Terminate => "waiting for sessions to end",
                Action::Cancel => "waiting for queries to stop",
            };
            let server = ctx.server()?;
            let printer = ctx.printer;
            let until = signal::Until {
                action: opts.action,
                timeout: opts.wait.timeout,
            };
            signal::wait(
                &mut ctx.client,
                &server,
                until,
                reports,
                &mut |remaining, left| {
                    interrupt::check()?;
                    printer.progress(what, remaining, left);
                    Ok(())
                },
            )?;
        }
        Ok(())
    })();
    ctx.printer.progress("", 0, Duration::ZERO);
    finished
}

/// --cancel-first, after the cancel: wait the grace period, then terminate the cancelled
/// sessions that still match the filter; the others keep their connection (and their
/// `cancelled` outcome).
fn terminate_after_grace(
    ctx: &mut Context<'_>,
    filter: &Filter,
    reports: &mut [Report],
    grace: Duration,
) -> Result<()> {
    let deadline = Instant::now() + grace;
    let mut next_check = Instant::now() + Duration::from_secs(1);
    loop {
        interrupt::check()?;
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        // A server that goes away is noticed now, not at the end of the grace period.
        if Instant::now() >= next_check {
            ctx.client
                .is_valid(Duration::from_secs(5))
                .context("lost the server during the grace period")?;
            next_check = Instant::now() + Duration::from_secs(1);
        }
        ctx.printer
            .progress("grace period after cancel", reports.len(), left);
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
    ctx.printer.progress("", 0, Duration::ZERO);

    let server = ctx.server()?;
    let cancelled: Vec<Session> = reports
        .iter()
        .filter(|r| r.outcome == Outcome::Cancelled)
        .map(|r| r.session.clone())
        .collect();
    let still_matching = crate::activity::recheck(&mut ctx.client, &server, filter, &cancelled)?;
    let to_terminate: Vec<Session> = cancelled
        .into_iter()
        .filter(|c| still_matching.iter().any(|s| s.same_backend(c)))
        .collect();
    let terminated = signal::signal(&mut ctx.client, &server, Action::Terminate, &to_terminate)?;
    for t in terminated {
        if let Some(report) = reports
            .iter_mut()
            .find(|r| r.session.same_backend(&t.session))
        {
            report.outcome = t.outcome;
        }
    }
    Ok(())
}

/// The audit records of what was signalled (and the --server-log line).
pub fn audit(ctx: &mut Context<'_>, reports: &[Report]) -> Result<()> {
    let warning = ctx.trail.sessions(&mut ctx.client, reports)?;
    ctx.warn(warning);
    Ok(())
}

/// Partial when a prepared transaction was selected (it cannot be signalled) or a session's
/// outcome is a failure, else success.
pub fn status(prepared_selected: bool, reports: &[Report]) -> ExitStatus {
    if prepared_selected || reports.iter().any(|r| r.outcome.is_failure()) {
        ExitStatus::Partial
    } else {
        ExitStatus::Success
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(outcome: Outcome) -> Report {
        Report {
            session: Session::default(),
            outcome,
        }
    }

    #[test]
    fn partial_when_a_session_was_not_signalled_or_a_prepared_transaction_was_selected() {
        use Outcome::*;
        assert_eq!(status(false, &[]), ExitStatus::Success);
        assert_eq!(
            status(false, &[report(Terminated), report(AlreadyGone)]),
            ExitStatus::Success
        );
        for failed in [PermissionDenied, StillPresent, StillRunning] {
            assert_eq!(
                status(false, &[report(Terminated), report(failed)]),
                ExitStatus::Partial,
                "{failed:?}"
            );
        }
        assert_eq!(status(true, &[report(Cancelled)]), ExitStatus::Partial);
        // A session that no longer matched after the prompt was not acted on: not a failure.
        assert_eq!(
            status(false, &[report(NoLongerMatches)]),
            ExitStatus::Success
        );
    }
}
