//! How one try of one address fails: what `attempts.rs` records, `timeout.rs` gives when
//! connect_timeout runs out, and `explain.rs` puts in words.

use std::time::Duration;

/// One failed try of one address.
pub(super) enum TryError {
    Pg(postgres::Error),
    Timeout(Duration),
    /// The session does not have the target_session_attrs property.
    Attrs(&'static str),
    /// require_auth refused the server's authentication request, unanswered; libpq's words.
    Refused(String),
    /// Reaching the server to relay a plain attempt under require_auth.
    Io(std::io::Error),
}
