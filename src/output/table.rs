//! Tables: psql's look, fitted to the terminal (or with long query text cut when piped), and
//! what a row of each kind of result holds ([`Tabular`]).

use std::borrow::Cow;
use std::time::Duration;

use chrono::{DateTime, Utc};
use comfy_table::{ContentArrangement, ContentLineStyle, LineStyle, Row, Table, TableStyle};
use serde::Serialize;

use super::inert::inert_cell;
use crate::conn::report::Setting;
use crate::session::Session;
use crate::signal::Report;

/// Narrowest terminal a table is fitted to; below it, the width is taken as unknown.
const MIN_FIT_WIDTH: u16 = 40;

/// Longest query text shown in a table when the width is unknown (output not a terminal).
pub(super) const PIPED_QUERY_CHARS: usize = 80;

/// psql's look: `|` between columns, a `-+-` line under the header, nothing else.
const PSQL_STYLE: TableStyle = TableStyle::new()
    .header_lines(ContentLineStyle::none().junction('|'))
    .header_separator(LineStyle::none().fill('-').junction('+'))
    .content_lines(ContentLineStyle::none().junction('|'));

/// Something that can be shown as a table row as well as serialized.
pub trait Tabular: Serialize {
    /// Singular and plural of what a row is, for the table's footer.
    const NOUN: (&'static str, &'static str) = ("session", "sessions");
    /// Whether a table not fitted to a terminal cuts the last column (query text) short.
    const CUT_LAST_WHEN_PIPED: bool = true;
    fn headers() -> Vec<&'static str>;
    fn cells(&self, now: DateTime<Utc>) -> Vec<String>;
}

/// A table of rows under `headers`, fitted to the terminal width when `fit` (one line per
/// row, long text cut with "..."), otherwise with the last column shortened when `cut_last`.
/// Every cell is made [`inert`], line breaks and tabs included: a row is one line.
pub(super) fn rows_table(
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
    fit: bool,
    on_stderr: bool,
    cut_last: bool,
) -> Table {
    let mut table = Table::new();
    if on_stderr {
        table.use_stderr();
    }
    table.load_style(PSQL_STYLE);
    table.set_header(headers);
    // A terminal that reports no useful width (a pty without a window size says 0) is
    // treated like a pipe.
    let fit = fit && table.width().is_some_and(|w| w >= MIN_FIT_WIDTH);
    if fit {
        table.set_content_arrangement(ContentArrangement::Dynamic);
    } else {
        table.set_content_arrangement(ContentArrangement::Disabled);
    }
    for mut cells in rows {
        // Query text: its line breaks and indentation are spaces here, on a terminal too.
        if cut_last {
            if let Some(last) = cells.last_mut() {
                let max = if fit { usize::MAX } else { PIPED_QUERY_CHARS };
                *last = shorten(last, max);
            }
        }
        for cell in &mut cells {
            let escaped = match inert_cell(cell) {
                Cow::Owned(escaped) => Some(escaped),
                Cow::Borrowed(_) => None,
            };
            if let Some(escaped) = escaped {
                *cell = escaped;
            }
        }
        let mut row = Row::from(cells);
        row.max_height(1);
        table.add_row(row);
    }
    table
}

/// Collapses whitespace (query text is often multi-line) and cuts to `max` characters.
pub fn shorten(text: &str, max: usize) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let mut cut: String = flat.chars().take(max.saturating_sub(3)).collect();
    cut.push_str("...");
    cut
}

/// `1h02m`, `35s`, `2d04h`: compact, for tables and progress.
pub fn format_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        3600..=86399 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d{:02}h", s / 86400, (s % 86400) / 3600),
    }
}

pub(super) fn since(now: DateTime<Utc>, t: Option<DateTime<Utc>>) -> String {
    t.and_then(|t| (now - t).to_std().ok())
        .map(format_duration)
        .unwrap_or_default()
}

pub(super) fn text(v: &Option<String>) -> String {
    v.clone().unwrap_or_default()
}

impl Tabular for Session {
    fn headers() -> Vec<&'static str> {
        vec![
            "pid",
            "database",
            "user",
            "application",
            "client",
            "state",
            "for",
            "wait",
            "lock chain",
            "query",
        ]
    }

    fn cells(&self, now: DateTime<Utc>) -> Vec<String> {
        let client = match (self.client_addr, self.client_port) {
            (_, Some(-1)) => "local".to_string(),
            (Some(addr), Some(port)) => format!("{addr}:{port}"),
            (Some(addr), None) => addr.to_string(),
            (None, _) => String::new(),
        };
        // list --pgbouncer: the pooler's client stands behind a pooled backend.
        let client = match &self.pooler {
            Some(Some(link)) => match &link.client {
                Some(c) => format!(
                    "{}:{} via pooler",
                    c.addr.as_deref().unwrap_or_default(),
                    c.port.map(|p| p.to_string()).unwrap_or_default()
                ),
                None => "pooler (idle in pool)".to_string(),
            },
            _ => client,
        };
        let wait = match (&self.wait_event_type, &self.wait_event) {
            (Some(t), Some(e)) => format!("{t}:{e}"),
            (Some(t), None) => t.clone(),
            _ => String::new(),
        };
        let state = match (&self.state, &self.backend_type) {
            (Some(s), _) => s.clone(),
            (None, Some(b)) if b != crate::columns::DEFAULT_BACKEND_TYPE => b.clone(),
            _ => String::new(),
        };
        vec![
            self.pid.to_string(),
            text(&self.datname),
            text(&self.usename),
            text(&self.application_name),
            client,
            state,
            since(now, self.state_change.or(self.query_start)),
            wait,
            lock_chain(self),
            text(&self.query),
        ]
    }
}

/// `by 12,13; blocks 14`: whom the session waits on (a prepared transaction by its gid) and
/// who waits on it.
fn lock_chain(s: &Session) -> String {
    let pids = |v: &[i32]| {
        v.iter()
            .map(|p| match p {
                0 if !s.blocked_by_prepared.is_empty() => s
                    .blocked_by_prepared
                    .iter()
                    .map(|g| format!("prepared '{g}'"))
                    .collect::<Vec<_>>()
                    .join(","),
                0 => "a prepared transaction".to_string(),
                p => p.to_string(),
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut parts = Vec::new();
    if let Some(by) = s.blocked_by.as_deref().filter(|b| !b.is_empty()) {
        parts.push(format!("by {}", pids(by)));
    }
    if let Some(blocking) = s.blocking.as_deref().filter(|b| !b.is_empty()) {
        parts.push(format!("blocks {}", pids(blocking)));
    }
    parts.join("; ")
}

impl Tabular for Report {
    fn headers() -> Vec<&'static str> {
        let mut h = vec!["outcome"];
        h.extend(Session::headers());
        h
    }

    fn cells(&self, now: DateTime<Utc>) -> Vec<String> {
        let mut c = vec![self.outcome.as_str().to_string()];
        c.extend(self.session.cells(now));
        c
    }
}

/// terminate --lock's JSON array (as tables, sessions and holders print apart).
impl Tabular for crate::holders::Entry {
    fn headers() -> Vec<&'static str> {
        Report::headers()
    }

    fn cells(&self, now: DateTime<Utc>) -> Vec<String> {
        match self {
            crate::holders::Entry::Session(r) => r.cells(now),
            crate::holders::Entry::Holder(h) => {
                let mut cells = vec![String::new(); Report::headers().len()];
                cells[0] = h.outcome.as_str().to_string();
                if let Some(last) = cells.last_mut() {
                    *last = h.what();
                }
                cells
            }
        }
    }
}

impl Tabular for crate::holders::Holder {
    const NOUN: (&'static str, &'static str) = ("holder", "holders");
    fn headers() -> Vec<&'static str> {
        vec!["outcome", "database", "pid", "holder", "fix"]
    }
    fn cells(&self, _now: DateTime<Utc>) -> Vec<String> {
        vec![
            self.outcome.as_str().to_string(),
            self.datname.clone(),
            self.pid.map(|p| p.to_string()).unwrap_or_default(),
            self.what(),
            self.fix.clone(),
        ]
    }
}

impl Tabular for crate::lock::Change {
    const NOUN: (&'static str, &'static str) = ("object", "objects");
    fn headers() -> Vec<&'static str> {
        vec!["kind", "name", "method", "status"]
    }
    fn cells(&self, _now: DateTime<Utc>) -> Vec<String> {
        vec![
            self.kind.to_string(),
            self.name.clone(),
            text(&self.method),
            self.status.to_string(),
        ]
    }
}

impl Tabular for crate::lock::Record {
    const NOUN: (&'static str, &'static str) = ("lock", "locks");
    fn headers() -> Vec<&'static str> {
        vec![
            "kind",
            "name",
            "method",
            "locked_by",
            "locked_at",
            "for",
            "proof",
            "poolers",
        ]
    }
    fn cells(&self, now: DateTime<Utc>) -> Vec<String> {
        vec![
            self.kind.to_string(),
            self.name.clone(),
            text(&self.method),
            text(&self.locked_by),
            self.locked_at
                .map(|t| t.format("%Y-%m-%d %H:%M:%SZ").to_string())
                .unwrap_or_default(),
            since(now, self.locked_at),
            // Without a proof, every other column is only what the record claims.
            if self.proven { "proven" } else { "unproven" }.to_string(),
            self.poolers
                .iter()
                .map(|p| format!("{} ({})", p.pooler, p.action.as_str()))
                .collect::<Vec<_>>()
                .join(", "),
        ]
    }
}

/// `pgkick conninfo`: one row per connection setting.
impl Tabular for Setting {
    const NOUN: (&'static str, &'static str) = ("setting", "settings");
    /// Where a setting came from is the point of the report: never cut short.
    const CUT_LAST_WHEN_PIPED: bool = false;

    fn headers() -> Vec<&'static str> {
        vec!["setting", "value", "source"]
    }

    fn cells(&self, _now: DateTime<Utc>) -> Vec<String> {
        vec![
            self.name.clone(),
            self.value.clone(),
            self.describe_source(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shorten_flattens_and_cuts() {
        assert_eq!(shorten("SELECT\n  1", 80), "SELECT 1");
        assert_eq!(shorten("abcdefghij", 6), "abc...");
        assert_eq!(shorten("ééééé", 5), "ééééé");
    }

    #[test]
    fn tables_escape_every_cell_and_flatten_query_text() {
        let rows = vec![vec![
            "db\n\x1b[2J".to_string(),
            "app\tname".to_string(),
            "SELECT\n  1 /* \x1b]0;t\x07 */".to_string(),
        ]];
        for fit in [false, true] {
            let table =
                rows_table(vec!["db", "app", "query"], rows.clone(), fit, false, true).to_string();
            assert!(!table.contains(['\x1b', '\x07', '\t']), "{table:?}");
            let row = table.lines().nth(2).unwrap_or_default();
            assert!(row.contains(r"db\x0A\x1B[2J"), "{table}");
            assert!(row.contains(r"app\x09name"), "{table}");
            assert!(row.contains(r"SELECT 1 /* \x1B]0;t\x07 */"), "{table}");
            assert_eq!(table.lines().count(), 3, "{table}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(format_duration(Duration::from_secs(35)), "35s");
        assert_eq!(format_duration(Duration::from_secs(62)), "1m02s");
        assert_eq!(format_duration(Duration::from_secs(3720)), "1h02m");
        assert_eq!(
            format_duration(Duration::from_secs(2 * 86400 + 4 * 3600)),
            "2d04h"
        );
    }
}
