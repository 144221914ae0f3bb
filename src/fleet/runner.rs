//! Runs one piece of work per server on at most `jobs` threads, and hands each result to the
//! caller's thread as it arrives.
//!
//! The queue holds the servers not yet started; a worker takes the next one when it is free,
//! so at most `jobs` connections are open and at most `jobs` results are in flight, whatever
//! the number of servers. After SIGINT or SIGTERM (see `interrupt`) no further server is
//! started; the servers already running stop at their next check and report, and after
//! [`STOP_GRACE`] the caller stops waiting for one that cannot (a connection attempt that is
//! still timing out).

use std::collections::VecDeque;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::interrupt;

/// How long, after an interrupt, the results of servers already running are waited for.
pub const STOP_GRACE: Duration = Duration::from_secs(3);

/// How often the caller's thread looks for an interrupt while it waits.
const POLL: Duration = Duration::from_millis(50);

/// Runs `work` on every item, at most `jobs` at a time, calling `done(index, result)` on the
/// caller's thread as each finishes. Returns the indices of the items that did not finish
/// (after an interrupt), in order.
pub fn run<I, O>(
    items: Vec<I>,
    jobs: usize,
    work: Arc<dyn Fn(I) -> O + Send + Sync>,
    mut done: impl FnMut(usize, O),
) -> Vec<usize>
where
    I: Send + 'static,
    O: Send + 'static,
{
    let n = items.len();
    let queue: Arc<Mutex<VecDeque<(usize, I)>>> =
        Arc::new(Mutex::new(items.into_iter().enumerate().collect()));
    let (tx, rx) = mpsc::channel::<(usize, O)>();
    for _ in 0..jobs.clamp(1, n.max(1)) {
        let queue = Arc::clone(&queue);
        let tx = tx.clone();
        let work = Arc::clone(&work);
        // Detached: a worker stuck in a connection attempt must not hold up the exit.
        std::thread::spawn(move || loop {
            if interrupt::received().is_some() {
                return;
            }
            let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
            let Some((i, item)) = next else { return };
            if tx.send((i, work(item))).is_err() {
                return;
            }
        });
    }
    drop(tx);
    let mut finished = vec![false; n];
    let mut stop_by: Option<Instant> = None;
    loop {
        match rx.recv_timeout(POLL) {
            Ok((i, out)) => {
                finished[i] = true;
                done(i, out);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if interrupt::received().is_some() {
            let by = *stop_by.get_or_insert_with(|| Instant::now() + STOP_GRACE);
            if Instant::now() >= by {
                break;
            }
        }
    }
    (0..n).filter(|&i| !finished[i]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn every_item_once_and_never_more_than_jobs_at_a_time() {
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let (r, m) = (Arc::clone(&running), Arc::clone(&most));
        let work = Arc::new(move |i: usize| {
            let now = r.fetch_add(1, Ordering::SeqCst) + 1;
            m.fetch_max(now, Ordering::SeqCst);
            // Long enough for the workers to overlap.
            std::thread::sleep(Duration::from_millis(20));
            r.fetch_sub(1, Ordering::SeqCst);
            i * 10
        });
        let mut seen = Vec::new();
        let left = run((0..12).collect(), 3, work, |i, out| seen.push((i, out)));
        assert!(left.is_empty());
        seen.sort();
        assert_eq!(seen, (0..12).map(|i| (i, i * 10)).collect::<Vec<_>>());
        assert!(most.load(Ordering::SeqCst) <= 3);
    }

    #[test]
    fn one_job_is_one_after_another() {
        let order = Arc::new(Mutex::new(Vec::new()));
        let o = Arc::clone(&order);
        let work = Arc::new(move |i: usize| o.lock().unwrap().push(i));
        run((0..5).collect(), 1, work, |_, _| {});
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn no_items_no_threads() {
        let work = Arc::new(|i: usize| i);
        assert!(run(Vec::new(), 4, work, |_, _| panic!("no item")).is_empty());
    }
}
