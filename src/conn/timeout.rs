//! connect_timeout for a whole attempt: TCP connect, TLS handshake and authentication.
//!
//! rust-postgres' own connect_timeout bounds only the TCP connect, so the attempt runs in a
//! thread and the caller stops waiting for it when the time is up.

use std::sync::mpsc;
use std::time::Duration;

use super::try_error::TryError;

/// Runs one attempt (`go`: connect, TLS, authenticate) in a thread so that connect_timeout
/// bounds all of it, as libpq's does, not only the TCP connect.
pub(super) fn run_with_timeout(
    timeout: Option<Duration>,
    go: impl FnOnce() -> Result<postgres::Client, TryError> + Send + 'static,
) -> Result<postgres::Client, TryError> {
    let Some(timeout) = timeout else {
        return go();
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(go());
    });
    match rx.recv_timeout(timeout) {
        Ok(result) => result,
        // The thread is left to finish or fail on its own; its client, if any, is dropped.
        Err(_) => Err(TryError::Timeout(timeout)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listener that never accepts: the kernel completes the TCP handshake, the server never
    /// says a word, so only the timeout ends the attempt.
    #[test]
    fn the_timeout_bounds_a_server_that_never_answers() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut cfg = postgres::Config::new();
        cfg.host("127.0.0.1")
            .port(listener.local_addr().unwrap().port())
            .user("u");
        let timeout = Duration::from_millis(200);
        let go = move || cfg.connect(postgres::NoTls).map_err(TryError::Pg);
        match run_with_timeout(Some(timeout), go) {
            Err(TryError::Timeout(d)) => assert_eq!(d, timeout),
            Err(_) => panic!("expected a timeout, got another error"),
            Ok(_) => panic!("expected a timeout, got a session"),
        }
    }
}
