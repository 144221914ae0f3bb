//! `--every`: cancel or terminate in rounds, until SIGINT or SIGTERM or `--rounds`.
//!
//! This file owns the schedule and what a round's end means for the loop; the round itself is
//! the caller's (the same match-and-act that one run does). Rounds start every period, the
//! next one counted from the start of the last. A round that fails at runtime (a lost
//! connection, a server restarting) is reported and the next one comes sooner, after 1s, 2s,
//! 4s, ... but never later than the period. A round a guard refuses (`--max`) is reported and
//! the loop goes on. A usage error ends it, and so does a first round that finds a --db or
//! --user name the server has none of (a typo in a cron line fails at once, not every
//! period; a database dropped while the loop runs is a failed round like any other). SIGINT and SIGTERM end the loop between rounds at
//! once, or the round they arrive in once it has reported what it did.

use std::time::{Duration, Instant};

use anyhow::Result;

use crate::error::{self, ExitStatus};
use crate::interrupt;
use crate::output::Printer;

/// How often the wait between rounds looks for SIGINT and SIGTERM.
const WAKE: Duration = Duration::from_millis(50);

/// The first retry after a failed round.
const FIRST_RETRY: Duration = Duration::from_secs(1);

/// How long to wait after `failures` failed rounds in a row (from 1): doubling from
/// [`FIRST_RETRY`], at most `every`.
pub fn backoff(failures: u32, every: Duration) -> Duration {
    FIRST_RETRY
        .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
        .min(every)
}

/// Runs `round(n)` for n = 1, 2, ... every `every`, at most `rounds` times. Returns success
/// when every round succeeded, otherwise the highest status a round had (runtime for a round
/// that failed, partial, refused); a usage error is returned as it is.
pub fn run(
    every: Duration,
    rounds: Option<u64>,
    printer: &Printer,
    mut round: impl FnMut(u64) -> Result<ExitStatus>,
) -> Result<ExitStatus> {
    interrupt::install()?;
    interrupt::ignore_hangup()?;
    let mut status = ExitStatus::Success;
    let mut worse = |s: ExitStatus| {
        if s.code() > status.code() {
            status = s;
        }
    };
    let mut failures = 0;
    let mut n = 0;
    loop {
        n += 1;
        let started = Instant::now();
        let pause = match round(n) {
            Ok(done) => {
                failures = 0;
                worse(done);
                every.saturating_sub(started.elapsed())
            }
            Err(e) => match error::exit_status(&e) {
                ExitStatus::Usage => return Err(e),
                ExitStatus::Runtime if n == 1 && error::is_missing(&e) => return Err(e),
                ExitStatus::Sigint | ExitStatus::Sigterm => break,
                ExitStatus::Refused => {
                    failures = 0;
                    printer.warn(&format!("round {n}: {}", error::one_line(&e)));
                    worse(ExitStatus::Refused);
                    every.saturating_sub(started.elapsed())
                }
                failed => {
                    failures += 1;
                    let retry = backoff(failures, every);
                    printer.warn(&format!(
                        "round {n} failed: {}; next round in {}",
                        error::one_line(&e),
                        humantime::format_duration(retry)
                    ));
                    worse(failed);
                    retry
                }
            },
        };
        if rounds.is_some_and(|r| n >= r) || !wait(pause) {
            break;
        }
    }
    if let Some(signal) = interrupt::received() {
        let name = if signal == libc::SIGTERM {
            "SIGTERM"
        } else {
            "SIGINT"
        };
        printer.note(&format!("{name}: stopped after round {n}"));
    }
    Ok(status)
}

/// Waits `pause`; false when SIGINT or SIGTERM came first (or had already come).
fn wait(pause: Duration) -> bool {
    let deadline = Instant::now() + pause;
    loop {
        if interrupt::received().is_some() {
            return false;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        std::thread::sleep(left.min(WAKE));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Refused, Usage};
    use crate::output::{Options, OutputFormat};

    fn printer() -> Printer {
        Printer::new(Options {
            format: OutputFormat::Jsonl,
            quiet: true,
        })
    }

    #[test]
    fn backoff_doubles_up_to_the_period() {
        let every = Duration::from_secs(10);
        let waits: Vec<u64> = (1..=6).map(|f| backoff(f, every).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 10, 10]);
        assert_eq!(
            backoff(1, Duration::from_millis(5)),
            Duration::from_millis(5)
        );
        assert_eq!(
            backoff(u32::MAX, Duration::MAX),
            Duration::from_secs(1 << 16)
        );
    }

    #[test]
    fn every_round_runs_and_the_worst_status_is_kept() {
        let tick = Duration::from_millis(1);
        let mut seen = Vec::new();
        let status = run(tick, Some(5), &printer(), |n| {
            seen.push(n);
            match n {
                2 => Err(anyhow::anyhow!("connection lost")),
                3 => Err(Refused("3 sessions match, more than --max 2".into()).into()),
                4 => Ok(ExitStatus::Partial),
                _ => Ok(ExitStatus::Success),
            }
        })
        .unwrap();
        assert_eq!(
            seen,
            [1, 2, 3, 4, 5],
            "a failed or refused round does not end the loop"
        );
        assert_eq!(status, ExitStatus::Refused);
        let status = run(tick, Some(3), &printer(), |_| Ok(ExitStatus::Success)).unwrap();
        assert_eq!(status, ExitStatus::Success);
    }

    #[test]
    fn a_name_missing_in_the_first_round_ends_the_loop_but_not_later() {
        let mut rounds = 0;
        let err = run(Duration::from_millis(1), Some(5), &printer(), |_| {
            rounds += 1;
            Err(crate::error::Missing("--db typo".into()).into())
        })
        .unwrap_err();
        assert_eq!(rounds, 1);
        assert_eq!(error::exit_status(&err), ExitStatus::Runtime);
        let mut rounds = 0;
        let status = run(Duration::from_millis(1), Some(3), &printer(), |n| {
            rounds += 1;
            match n {
                1 => Ok(ExitStatus::Success),
                _ => Err(crate::error::Missing("--db gone".into()).into()),
            }
        })
        .unwrap();
        assert_eq!(rounds, 3, "a database dropped later is a failed round");
        assert_eq!(status, ExitStatus::Runtime);
    }

    #[test]
    fn a_usage_error_ends_the_loop() {
        let mut rounds = 0;
        let err = run(Duration::from_millis(1), Some(5), &printer(), |_| {
            rounds += 1;
            Err(Usage("--query needs PostgreSQL 9.2".into()).into())
        })
        .unwrap_err();
        assert_eq!(rounds, 1);
        assert_eq!(error::exit_status(&err), ExitStatus::Usage);
    }
}
