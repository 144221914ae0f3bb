//! The server's notices and warnings (`NOTICE`, `WARNING`) on pgkick's connections, kept for
//! the code that must know what the server said about its last statement (a GRANT that
//! grants nothing only warns). rust-postgres hands each notice to a callback; the synchronous
//! client drives its connection on the thread that runs the statement, so the notices of a
//! statement arrive on that thread, and each thread keeps its own.

use std::cell::RefCell;

thread_local! {
    static NOTICES: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// At most this many notices are kept per thread (the oldest go first): nothing reads more
/// than the last statement's, and a chatty server must not grow pgkick's memory.
const KEEP: usize = 64;

/// The connection's notice callback: keeps `SEVERITY: message`.
pub fn record(notice: postgres::error::DbError) {
    NOTICES.with(|n| {
        let mut n = n.borrow_mut();
        if n.len() == KEEP {
            n.remove(0);
        }
        n.push(format!("{}: {}", notice.severity(), notice.message()));
    });
}

/// The notices kept on this thread since the last call, oldest first.
pub fn take() -> Vec<String> {
    NOTICES.with(|n| std::mem::take(&mut *n.borrow_mut()))
}
