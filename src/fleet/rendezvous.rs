//! The guards of a fleet run in one pass: every server finds its targets and stops at the
//! gate, on the connection it found them on; once all have come (or ended before the gate),
//! the caller counts them together (--max), asks once on a terminal, and lets them all go on,
//! or none. Each server then acts as a run on one server does, with the statements of one.
//!
//! This needs every server's connection open at once, so it is used when the servers fit in
//! `--jobs`; with more, `ops::many` counts in a pass of its own first. What a server brings
//! to the gate (`A`: its targets, and the names it has no database or role of) is the
//! caller's.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use anyhow::Result;

/// What the caller decided, for every server waiting at the gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go on; `asked`: a person confirmed (so the targets are matched again before the
    /// signal, as on one server).
    Go { asked: bool },
    /// Stop: refused, not confirmed, or the caller gave up.
    Stop,
}

/// Where one server stands.
#[derive(Debug, Clone)]
enum Seat<A> {
    /// Not at the gate yet.
    Coming,
    /// At the gate with what it found.
    Waiting(A),
    /// Ended without coming to the gate (it failed, or had nothing to guard).
    Left,
}

struct State<A> {
    seats: Vec<Seat<A>>,
    verdict: Option<Verdict>,
}

/// Shared by the servers of one run and the caller.
pub struct Rendezvous<A> {
    state: Mutex<State<A>>,
    changed: Condvar,
}

/// How long a wait lasts before it looks again (the caller's wait ends on an interrupt).
const LOOK: Duration = Duration::from_millis(50);

/// The gate's refusal, for a server told to stop: the caller reports the run's own reason.
#[derive(Debug)]
pub struct Stopped;

impl std::fmt::Display for Stopped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stopped at the guard of the run")
    }
}
impl std::error::Error for Stopped {}

impl<A: Clone> Rendezvous<A> {
    pub fn new(servers: usize) -> Arc<Rendezvous<A>> {
        Arc::new(Rendezvous {
            state: Mutex::new(State {
                seats: vec![Seat::Coming; servers],
                verdict: None,
            }),
            changed: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State<A>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until something changes, or [`LOOK`] has passed.
    fn wait_a_moment<'a>(&self, state: MutexGuard<'a, State<A>>) -> MutexGuard<'a, State<A>> {
        self.changed
            .wait_timeout(state, LOOK)
            .unwrap_or_else(|e| e.into_inner())
            .0
    }

    /// Server `index` ended; if it never came to the gate, it is no longer waited for.
    pub fn leave(&self, index: usize) {
        let mut state = self.lock();
        if matches!(state.seats[index], Seat::Coming) {
            state.seats[index] = Seat::Left;
            self.changed.notify_all();
        }
    }

    /// [`Rendezvous::leave`] for server `index` when the returned value is dropped.
    pub fn leaving(self: &Arc<Self>, index: usize) -> Leaving<A> {
        Leaving {
            rendezvous: Arc::clone(self),
            index,
        }
    }

    /// Waits until every server is at the gate or gone: each one's targets (`None` for one
    /// gone). `None` when `give_up` says so first (an interrupt).
    pub fn wait_for_all(&self, give_up: impl Fn() -> bool) -> Option<Vec<Option<A>>> {
        let mut state = self.lock();
        while state.seats.iter().any(|s| matches!(s, Seat::Coming)) {
            if give_up() {
                return None;
            }
            state = self.wait_a_moment(state);
        }
        Some(
            state
                .seats
                .iter()
                .map(|s| match s {
                    Seat::Waiting(found) => Some(found.clone()),
                    _ => None,
                })
                .collect(),
        )
    }

    /// Lets every waiting server go on, or stops them all.
    pub fn decide(&self, verdict: Verdict) {
        self.lock().verdict = Some(verdict);
        self.changed.notify_all();
    }

    /// Server `index` is at the gate with `targets`: waits for the verdict.
    fn arrive(&self, index: usize, found: A) -> Verdict {
        let mut state = self.lock();
        state.seats[index] = Seat::Waiting(found);
        self.changed.notify_all();
        loop {
            if let Some(verdict) = state.verdict {
                return verdict;
            }
            state = self.wait_a_moment(state);
        }
    }
}

/// Leaves the rendezvous when dropped (see [`Rendezvous::leaving`]).
pub struct Leaving<A: Clone> {
    rendezvous: Arc<Rendezvous<A>>,
    index: usize,
}

impl<A: Clone> Drop for Leaving<A> {
    fn drop(&mut self) {
        self.rendezvous.leave(self.index);
    }
}

/// The gate of server `index` of a run guarded in one pass.
pub struct Seated<A: Clone> {
    rendezvous: Arc<Rendezvous<A>>,
    index: usize,
}

impl<A: Clone> Seated<A> {
    pub fn new(rendezvous: &Arc<Rendezvous<A>>, index: usize) -> Seated<A> {
        Seated {
            rendezvous: Arc::clone(rendezvous),
            index,
        }
    }
}

impl<A: Clone> Seated<A> {
    /// This server found `found`: waits for the verdict over every server. An error stops
    /// this server's part (nothing was signalled anywhere).
    pub fn arrive_with(&self, found: A) -> Result<()> {
        match self.rendezvous.arrive(self.index, found) {
            Verdict::Go { .. } => Ok(()),
            Verdict::Stop => Err(Stopped.into()),
        }
    }

    /// Whether a person was asked for every server: the verdict is given once every server
    /// has come, so it is this server's too.
    pub fn asked(&self) -> bool {
        matches!(
            self.rendezvous.lock().verdict,
            Some(Verdict::Go { asked: true })
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    #[test]
    fn every_server_waits_for_the_verdict_and_a_gone_one_is_not_waited_for() {
        let rv = Rendezvous::<Vec<u8>>::new(3);
        let mut waiting = Vec::new();
        for index in [0, 2] {
            let gate = Seated::new(&rv, index);
            waiting.push(thread::spawn(move || {
                let result = gate.arrive_with(Vec::new()).map(|_| gate.asked());
                result.map_err(|e| e.to_string())
            }));
        }
        rv.leave(1);
        let seen = rv.wait_for_all(|| false).expect("all came");
        assert_eq!(seen, vec![Some(Vec::new()), None, Some(Vec::new())]);
        rv.decide(Verdict::Go { asked: true });
        for w in waiting {
            assert_eq!(w.join().unwrap(), Ok(true));
        }
    }

    #[test]
    fn a_server_whose_part_panics_is_not_waited_for() {
        let rv = Rendezvous::<Vec<u8>>::new(1);
        let r = Arc::clone(&rv);
        let died = thread::spawn(move || {
            let _leave = r.leaving(0);
            panic!("a server's part panicked");
        });
        assert!(died.join().is_err());
        assert_eq!(rv.wait_for_all(|| false).expect("all came").len(), 1);
    }

    #[test]
    fn a_stop_refuses_at_every_gate_and_giving_up_ends_the_wait() {
        let rv = Rendezvous::<Vec<u8>>::new(2);
        assert!(rv.wait_for_all(|| true).is_none(), "nobody came yet");
        let gate = Seated::new(&rv, 0);
        let waiter = thread::spawn(move || gate.arrive_with(Vec::new()).is_err());
        rv.leave(1);
        rv.wait_for_all(|| false).expect("all came");
        rv.decide(Verdict::Stop);
        assert!(waiter.join().unwrap());
        // A server that leaves after the gate (it acted) changes nothing.
        rv.leave(0);
    }
}
