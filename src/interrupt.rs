//! SIGINT and SIGTERM while pgkick waits: noted, then turned into an `Interrupted` error at the
//! next check, so the run stops between statements, reports what it already did, and exits
//! 130 or 143. Before `install` (e.g. at the confirmation prompt, when nothing has been done
//! yet) the default action applies and the signal ends pgkick at once.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::error::Interrupted;

static RECEIVED: OnceLock<Arc<AtomicUsize>> = OnceLock::new();

/// Starts noting SIGINT and SIGTERM instead of dying on them. Registers the handlers once
/// however often it is called (`--every` runs many rounds in one process).
pub fn install() -> Result<()> {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    if INSTALLED.get().is_some() {
        return Ok(());
    }
    let flag = RECEIVED.get_or_init(|| Arc::new(AtomicUsize::new(0)));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_usize(sig, Arc::clone(flag), sig as usize)?;
    }
    let _ = INSTALLED.set(());
    Ok(())
}

/// `--every`: SIGHUP (a closed terminal, a supervisor's reload) is ignored rather than fatal.
pub fn ignore_hangup() -> Result<()> {
    static IGNORED: OnceLock<Arc<AtomicBool>> = OnceLock::new();
    if IGNORED.get().is_some() {
        return Ok(());
    }
    let noted = IGNORED.get_or_init(|| Arc::new(AtomicBool::new(false)));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(noted))?;
    Ok(())
}

/// The signal received since `install`, if any.
pub fn received() -> Option<i32> {
    let sig = RECEIVED.get()?.load(Ordering::SeqCst);
    (sig != 0).then_some(sig as i32)
}

/// Fails with `Interrupted` once a signal has arrived.
pub fn check() -> Result<()> {
    match received() {
        Some(signal) => Err(Interrupted { signal }.into()),
        None => Ok(()),
    }
}

/// A wait polled until a deadline, with pauses that double from `first` up to `cap`, and
/// stopped by SIGINT or SIGTERM between polls.
pub struct Backoff {
    deadline: Instant,
    pause: Duration,
    cap: Duration,
}

impl Backoff {
    pub fn new(within: Duration, first: Duration, cap: Duration) -> Backoff {
        Backoff {
            deadline: Instant::now() + within,
            pause: first,
            cap,
        }
    }

    /// The time left before the deadline.
    pub fn left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// Sleeps the next pause (never past the deadline) unless a signal has arrived (then
    /// `Interrupted`); false, without sleeping, once the deadline has passed.
    pub fn sleep(&mut self) -> Result<bool> {
        let left = self.left();
        if left.is_zero() {
            return Ok(false);
        }
        check()?;
        std::thread::sleep(self.pause.min(left));
        self.pause = (self.pause * 2).min(self.cap);
        Ok(true)
    }
}
