//! What lock or unlock reports for one database or role: the catalog's [`lock::Change`],
//! with what pgkick did on its poolers and the backends it terminated so that a pause could
//! complete beside it. Its own file because the lock pipeline and the pooler wiring both
//! fill it in.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::lock;
use crate::output::Tabular;
use crate::pgbouncer::Step;
use crate::signal::Report;

/// One database or role locked or unlocked, as reported.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    #[serde(flatten)]
    pub change: lock::Change,
    /// What pgkick did on each pooler for this database (`--pgbouncer`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub poolers: Vec<Step>,
    /// `lock --pgbouncer`: the backends of this database terminated so that a pause could
    /// complete (`--pause-timeout`), each with its outcome.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub terminated: Vec<Report>,
}

impl Entry {
    pub fn of(change: lock::Change) -> Entry {
        Entry {
            change,
            poolers: Vec::new(),
            terminated: Vec::new(),
        }
    }
}

/// As the change shows.
impl Tabular for Entry {
    const NOUN: (&'static str, &'static str) = lock::Change::NOUN;
    const CUT_LAST_WHEN_PIPED: bool = lock::Change::CUT_LAST_WHEN_PIPED;
    fn headers() -> Vec<&'static str> {
        lock::Change::headers()
    }
    fn cells(&self, now: DateTime<Utc>) -> Vec<String> {
        self.change.cells(now)
    }
}
