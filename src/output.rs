//! Everything pgkick shows: tables, JSON, JSON lines, notes, progress and the confirmation
//! prompt. Actions return data; this module alone decides how it looks.
//!
//! Results go to stdout; notes, warnings, progress and prompts go to stderr, so that
//! `--json | jq` always reads clean JSON.
//!
//! Much of what is shown comes from people with fewer rights than the operator (query text,
//! database and role names, lock records in comments, error messages quoting them), so
//! nothing reaches the terminal raw: every table cell, tree line, note, warning, prompt and
//! block of dry-run text passes through [`inert`] here, and JSON through [`inert_json`].

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::{self, BufRead, IsTerminal, Write};
use std::time::Duration;

use chrono::{DateTime, Utc};
use comfy_table::{ContentArrangement, ContentLineStyle, LineStyle, Row, Table, TableStyle};
use serde::Serialize;

use crate::chain::{Line, Node};
use crate::cli::{OutputArgs, OutputFormat};
use crate::error::ExitStatus;
use crate::session::{PreparedBlocker, Session};
use crate::signal::Report;

/// Narrowest terminal a table is fitted to; below it, the width is taken as unknown.
const MIN_FIT_WIDTH: u16 = 40;

/// Longest query text shown in a table when the width is unknown (output not a terminal).
const PIPED_QUERY_CHARS: usize = 80;

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

pub struct Printer {
    format: OutputFormat,
    quiet: bool,
    stdout_tty: bool,
    stderr_tty: bool,
    progress_shown: std::cell::Cell<bool>,
    /// The server's label: the `server` field of every JSON object.
    server: Option<String>,
    /// One server of many: results are kept (see `fleet`) and printed once for all.
    captured: Option<RefCell<Captured>>,
    /// Nothing at all is shown, not even warnings (the fleet's counting pass).
    silent: bool,
}

/// What one server of many would have printed on stdout, kept to be printed with the others.
#[derive(Default)]
pub struct Captured {
    /// One per `print`.
    pub tables: Vec<CapturedTable>,
    /// Dry-run statements, lock-chain trees: shown after the results, under the server's name.
    pub blocks: Vec<Block>,
}

pub struct CapturedTable {
    headers: Vec<&'static str>,
    noun: (&'static str, &'static str),
    cut_last: bool,
    rows: Vec<Vec<String>>,
    /// Each item as one JSON object, `server` first.
    json: Vec<String>,
}

pub struct Block {
    text: String,
    /// With JSON output this text goes to stderr, as it would for one server.
    stderr_with_json: bool,
}

/// One server's part of a run over many.
pub struct ServerOutput {
    pub label: String,
    pub captured: Captured,
    pub ended: Ended,
}

/// How one server's part of a run over many ended.
pub enum Ended {
    Done(ExitStatus),
    /// Skipped, and why (--each-host, target_session_attrs).
    Skipped(String),
    /// Failed, and why (unreachable, refused, an error mid-run).
    Failed(String),
}

impl ServerOutput {
    /// A server that failed with nothing captured.
    pub fn failed(label: &str, why: String) -> ServerOutput {
        ServerOutput {
            label: label.to_string(),
            captured: Captured::default(),
            ended: Ended::Failed(why),
        }
    }
}

/// An item with its server's label as its first field.
#[derive(Serialize)]
struct WithServer<'a, T: Serialize> {
    #[serde(skip_serializing_if = "Option::is_none")]
    server: Option<&'a str>,
    #[serde(flatten)]
    item: &'a T,
}

/// Password prompts of servers handled in parallel, one at a time; and what was typed for
/// each (host:port, user), since a run over many servers with --max or a prompt connects to each
/// twice (it counts, then acts) and a person types each password once.
static TYPED: std::sync::Mutex<std::collections::BTreeMap<(String, String), String>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

impl Printer {
    pub fn new(args: &OutputArgs) -> Printer {
        Printer {
            format: args.format(),
            quiet: args.quiet,
            stdout_tty: io::stdout().is_terminal(),
            stderr_tty: io::stderr().is_terminal(),
            progress_shown: std::cell::Cell::new(false),
            server: None,
            captured: None,
            silent: false,
        }
    }

    /// Labels every JSON object with `server`.
    pub fn for_server(mut self, label: &str) -> Printer {
        self.server = Some(label.to_string());
        self
    }

    /// One server of many: keeps the results for [`Printer::print_fleet`], names the server in
    /// notes and warnings, shows no progress and asks nothing.
    pub fn capturing(args: &OutputArgs, label: &str) -> Printer {
        let mut p = Printer::new(args).for_server(label);
        p.captured = Some(RefCell::new(Captured::default()));
        p
    }

    /// Shows nothing at all: the fleet's pass that only counts the targets.
    pub fn silent(args: &OutputArgs, label: &str) -> Printer {
        let mut p = Printer::capturing(args, label);
        p.silent = true;
        p.quiet = true;
        p
    }

    /// What a capturing printer kept.
    pub fn into_captured(self) -> Captured {
        self.captured.map(RefCell::into_inner).unwrap_or_default()
    }

    fn labelled<'a, T: Serialize>(&'a self, item: &'a T) -> WithServer<'a, T> {
        WithServer {
            server: self.server.as_deref(),
            item,
        }
    }

    /// `pgkick: ` and, for one server of many, its name.
    fn prefix(&self) -> String {
        match (&self.captured, &self.server) {
            (Some(_), Some(label)) => format!("pgkick: {label}: "),
            _ => "pgkick: ".to_string(),
        }
    }

    pub fn is_json(&self) -> bool {
        self.format != OutputFormat::Table
    }

    /// Prints results on stdout in the chosen format. Nothing with --quiet.
    pub fn print<T: Tabular>(&self, items: &[T]) -> io::Result<()> {
        if self.quiet {
            return Ok(());
        }
        if let Some(captured) = &self.captured {
            let now = Utc::now();
            let json = match self.format {
                OutputFormat::Table => Vec::new(),
                _ => items
                    .iter()
                    .map(|i| json_text(&self.labelled(i), false))
                    .collect::<Result<_, _>>()?,
            };
            captured.borrow_mut().tables.push(CapturedTable {
                headers: T::headers(),
                noun: T::NOUN,
                cut_last: T::CUT_LAST_WHEN_PIPED,
                rows: items.iter().map(|i| i.cells(now)).collect(),
                json,
            });
            return Ok(());
        }
        let mut out = io::BufWriter::new(io::stdout().lock());
        match self.format {
            OutputFormat::Table => {
                let table = self.table(items, self.stdout_tty, false);
                writeln!(out, "{table}")?;
                let n = items.len();
                let noun = if n == 1 { T::NOUN.0 } else { T::NOUN.1 };
                writeln!(out, "({n} {noun})")?;
            }
            OutputFormat::Json => {
                let items: Vec<_> = items.iter().map(|i| self.labelled(i)).collect();
                writeln!(out, "{}", json_text(&items, self.stdout_tty)?)?;
            }
            OutputFormat::Jsonl => {
                for item in items {
                    writeln!(out, "{}", json_text(&self.labelled(item), false)?)?;
                }
            }
        }
        out.flush()
    }

    /// A table of `items`, fitted to the terminal width when `fit` (one line per row, long
    /// text cut with "..."), otherwise with query text shortened.
    fn table<T: Tabular>(&self, items: &[T], fit: bool, on_stderr: bool) -> Table {
        let now = Utc::now();
        let rows = items.iter().map(|i| i.cells(now)).collect();
        rows_table(T::headers(), rows, fit, on_stderr, T::CUT_LAST_WHEN_PIPED)
    }
}

/// A table of rows under `headers`, fitted to the terminal width when `fit` (one line per
/// row, long text cut with "..."), otherwise with the last column shortened when `cut_last`.
/// Every cell is made [`inert`], line breaks and tabs included: a row is one line.
fn rows_table(
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

impl Printer {
    /// Prints one report on stdout: one JSON object (one line with jsonl), or in table format
    /// `rows` as a table followed by `lines` of text. Nothing with --quiet.
    pub fn print_report<T: Serialize, R: Tabular>(
        &self,
        report: &T,
        rows: &[R],
        lines: &[String],
    ) -> io::Result<()> {
        if self.quiet {
            return Ok(());
        }
        let mut out = io::BufWriter::new(io::stdout().lock());
        match self.format {
            OutputFormat::Table => {
                writeln!(out, "{}", self.table(rows, self.stdout_tty, false))?;
                for line in lines {
                    writeln!(out, "{}", inert(line))?;
                }
            }
            OutputFormat::Json => {
                writeln!(out, "{}", json_text(report, self.stdout_tty)?)?;
            }
            OutputFormat::Jsonl => {
                writeln!(out, "{}", json_text(report, false)?)?;
            }
        }
        out.flush()
    }

    /// The SQL a --dry-run would send: after the table on stdout, or on stderr with JSON
    /// output so that stdout stays valid JSON.
    pub fn dry_run_sql(&self, sql: &str) -> io::Result<()> {
        if self.quiet {
            return Ok(());
        }
        self.dry_run_block(&format!(
            "-- dry run: nothing was changed. The statement that would run:\n{sql}\n"
        ))
    }

    /// A block of --dry-run text: after the table on stdout, or on stderr with JSON output.
    fn dry_run_block(&self, text: &str) -> io::Result<()> {
        if self.keep_block(text, true) {
            return Ok(());
        }
        self.write_block(text, true)
    }

    /// A block of text after the tables on stdout, or (`stderr_with_json`) on stderr with
    /// JSON output, which keeps stdout JSON. Its lines are made [`inert`]: statements quote
    /// names as they are (a line break inside quotes stays one), and the terminal sees them
    /// escaped.
    fn write_block(&self, text: &str, stderr_with_json: bool) -> io::Result<()> {
        let text = inert_lines(text);
        if self.is_json() && stderr_with_json {
            io::stderr().write_all(text.as_bytes())
        } else {
            let mut out = io::stdout().lock();
            out.write_all(b"\n")?;
            out.write_all(text.as_bytes())?;
            out.flush()
        }
    }

    /// `list --tree`: the lock chains on stdout, with a footer like the table's.
    pub fn print_tree(&self, lines: &[Line<'_>]) -> io::Result<()> {
        if self.quiet {
            return Ok(());
        }
        let mut text = tree_text(lines, Utc::now());
        let heads = lines.iter().filter(|l| l.depth == 0).count();
        let chained = lines.iter().any(|l| l.depth > 0);
        if chained {
            let noun = if heads == 1 { "chain" } else { "chains" };
            text.push_str(&format!("({heads} lock {noun})\n"));
        } else {
            let noun = if heads == 1 { "session" } else { "sessions" };
            text.push_str(&format!("(no lock chains; {heads} {noun})\n"));
        }
        if self.keep_block(&text, false) {
            return Ok(());
        }
        let mut out = io::stdout().lock();
        out.write_all(inert_lines(&text).as_bytes())?;
        out.flush()
    }

    /// --dry-run of terminate or cancel with lock-chain filters: the chains the action would
    /// break, after the table on stdout, or on stderr with JSON output.
    pub fn dry_run_chains(&self, lines: &[Line<'_>]) -> io::Result<()> {
        if self.quiet || lines.is_empty() {
            return Ok(());
        }
        self.dry_run_block(&format!(
            "-- dry run: the lock chains this would break:\n{}",
            tree_text(lines, Utc::now())
        ))
    }

    /// One server of many: keeps `text` to show under the server's name; false otherwise.
    fn keep_block(&self, text: &str, stderr_with_json: bool) -> bool {
        let Some(captured) = &self.captured else {
            return false;
        };
        captured.borrow_mut().blocks.push(Block {
            text: text.to_string(),
            stderr_with_json,
        });
        true
    }

    /// A note for people (stderr), not shown with --quiet.
    pub fn note(&self, msg: &str) {
        if !self.quiet {
            self.clear_progress();
            eprintln!("{}", inert(&format!("{}{msg}", self.prefix())));
        }
    }

    /// A warning (stderr), shown even with --quiet.
    pub fn warn(&self, msg: &str) {
        if self.silent {
            return;
        }
        self.clear_progress();
        eprintln!("{}", inert(&format!("{}warning: {msg}", self.prefix())));
    }

    /// Progress of a wait, on stderr, only on a terminal and without --quiet; `remaining` 0
    /// clears the line.
    pub fn progress(&self, what: &str, remaining: usize, left: Duration) {
        if self.quiet || !self.stderr_tty || self.captured.is_some() {
            return;
        }
        if remaining == 0 {
            self.clear_progress();
            return;
        }
        let noun = if remaining == 1 {
            "session"
        } else {
            "sessions"
        };
        eprint!(
            "\r\x1b[2Kpgkick: {}: {remaining} {noun} remaining, {} left",
            inert(what),
            format_duration(left)
        );
        let _ = io::stderr().flush();
        self.progress_shown.set(true);
    }

    fn clear_progress(&self) {
        if self.progress_shown.replace(false) {
            eprint!("\r\x1b[2K");
        }
    }

    /// True when a person can answer a prompt: stdin and stderr are terminals.
    pub fn interactive(&self) -> bool {
        self.captured.is_none() && io::stdin().is_terminal() && self.stderr_tty
    }

    /// Asks for `user`'s password on the terminal, without echo: psql's prompt, with the
    /// server it is for (`host:port`), since one run may reach servers and poolers.
    pub fn read_password(&self, user: &str, host_port: &str) -> anyhow::Result<String> {
        self.clear_progress();
        let mut typed = TYPED.lock().unwrap_or_else(|e| e.into_inner());
        // Keyed by where it goes: a pooler of the same server asks for its own.
        let key = match (&self.captured, &self.server) {
            (Some(_), Some(_)) => Some((host_port.to_string(), user.to_string())),
            _ => None,
        };
        if let Some(password) = key.as_ref().and_then(|k| typed.get(k)) {
            return Ok(password.clone());
        }
        let prompt = format!("Password for user {user} on {host_port}: ");
        let password = rpassword::prompt_password(inert(&prompt).as_ref())
            .map_err(|e| anyhow::anyhow!("could not read the password from the terminal: {e}"))?;
        if let Some(key) = key {
            typed.insert(key, password.clone());
        }
        Ok(password)
    }

    /// Shows `items` on stderr and asks `question`; true only for an explicit yes.
    pub fn confirm<T: Tabular>(&self, items: &[T], question: &str) -> io::Result<bool> {
        let table = self.table(items, true, true);
        eprintln!("{table}");
        ask(question)
    }
}

/// Many servers: everything is printed once, with each row naming its server.
impl Printer {
    /// The results of every server: one table per kind of row with a server column (or one
    /// JSON array), then each server's statements and trees under its name. JSON lines are
    /// printed per server as each finishes ([`Printer::print_server_lines`]).
    pub fn print_fleet(&self, outputs: &[ServerOutput]) -> io::Result<()> {
        if self.quiet || self.format == OutputFormat::Jsonl {
            return Ok(());
        }
        let mut out = io::BufWriter::new(io::stdout().lock());
        let tables = || outputs.iter().flat_map(|o| o.captured.tables.iter());
        if self.format == OutputFormat::Json {
            let items: Vec<&str> = tables()
                .flat_map(|t| t.json.iter().map(String::as_str))
                .collect();
            if self.stdout_tty && !items.is_empty() {
                writeln!(out, "[\n  {}\n]", items.join(",\n  "))?;
            } else {
                writeln!(out, "[{}]", items.join(","))?;
            }
        } else {
            let mut kinds: Vec<&CapturedTable> = Vec::new();
            for t in tables() {
                if !kinds.iter().any(|k| k.headers == t.headers) {
                    kinds.push(t);
                }
            }
            // A server column when there is more than one server.
            let named = outputs.len() > 1;
            let servers = outputs
                .iter()
                .filter(|o| !matches!(o.ended, Ended::Failed(_)))
                .count();
            let on = if servers == 1 { "server" } else { "servers" };
            for kind in kinds {
                let mut rows = Vec::new();
                for o in outputs {
                    for t in o
                        .captured
                        .tables
                        .iter()
                        .filter(|t| t.headers == kind.headers)
                    {
                        rows.extend(t.rows.iter().map(|r| {
                            let mut row = if named {
                                vec![o.label.clone()]
                            } else {
                                Vec::new()
                            };
                            row.extend(r.iter().cloned());
                            row
                        }));
                    }
                }
                let mut headers = if named { vec!["server"] } else { Vec::new() };
                headers.extend(&kind.headers);
                let n = rows.len();
                let table = rows_table(headers, rows, self.stdout_tty, false, kind.cut_last);
                writeln!(out, "{table}")?;
                let noun = if n == 1 { kind.noun.0 } else { kind.noun.1 };
                writeln!(out, "({n} {noun} on {servers} {on})")?;
            }
        }
        out.flush()?;
        for o in outputs {
            for block in &o.captured.blocks {
                let text = format!("-- server {}\n{}", inert(&o.label), block.text);
                self.write_block(&text, block.stderr_with_json)?;
            }
        }
        Ok(())
    }

    /// JSON lines: one server's objects as soon as it has finished, then an object with
    /// `server` and `error` (or `skipped`) when it failed (or was skipped). What is printed
    /// is not kept, so memory does not grow with the number of servers.
    pub fn print_server_lines(&self, output: &mut ServerOutput) -> io::Result<()> {
        if self.format != OutputFormat::Jsonl {
            return Ok(());
        }
        let captured = std::mem::take(&mut output.captured);
        let mut out = io::BufWriter::new(io::stdout().lock());
        if !self.quiet {
            for t in &captured.tables {
                for line in &t.json {
                    writeln!(out, "{line}")?;
                }
            }
        }
        /// A server that failed or was skipped, as one JSON line.
        #[derive(Serialize)]
        struct Status<'a> {
            server: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            error: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            skipped: Option<&'a str>,
        }
        let (error, skipped) = match &output.ended {
            Ended::Done(_) => (None, None),
            Ended::Failed(why) => (Some(why.as_str()), None),
            Ended::Skipped(why) => (None, Some(why.as_str())),
        };
        if error.is_some() || skipped.is_some() {
            let status = Status {
                server: &output.label,
                error,
                skipped,
            };
            writeln!(out, "{}", json_text(&status, false)?)?;
        }
        out.flush()?;
        for block in &captured.blocks {
            if !self.quiet {
                let label = inert(&output.label);
                eprint!("-- server {label}\n{}", inert_lines(&block.text));
            }
        }
        Ok(())
    }

    /// One server of many failed: one line on stderr naming it, shown even with --quiet.
    pub fn server_failed(&self, label: &str, cause: &str) {
        self.clear_progress();
        eprintln!("{}", inert(&format!("pgkick: {label}: {cause}")));
    }

    /// Many servers: shows every server's targets on stderr, grouped by server, and asks
    /// `question` once; true only for an explicit yes.
    pub fn confirm_fleet<T: Tabular>(
        &self,
        groups: &[(String, Vec<T>)],
        question: &str,
    ) -> io::Result<bool> {
        let now = Utc::now();
        let rows = groups
            .iter()
            .flat_map(|(label, items)| {
                items.iter().map(move |i| {
                    let mut row = vec![label.clone()];
                    row.extend(i.cells(now));
                    row
                })
            })
            .collect();
        let mut headers = vec!["server"];
        headers.extend(T::headers());
        eprintln!(
            "{}",
            rows_table(headers, rows, true, true, T::CUT_LAST_WHEN_PIPED)
        );
        ask(question)
    }
}

/// Asks `question` on stderr; true only for an explicit yes on stdin.
fn ask(question: &str) -> io::Result<bool> {
    eprint!("{} [y/N] ", inert(question));
    io::stderr().flush()?;
    let mut answer = String::new();
    io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim().to_lowercase().as_str(), "y" | "yes"))
}

/// Text from outside as a terminal may show it: every control character, which could move
/// the cursor, clear the screen, retitle the window or fake output, is written out the way
/// psql writes it: C0 (except tab) and DEL as `\x1B`, C1 as `\u009B`. Backslashes stay as
/// they are (psql's choice too), so `\x1B` on the screen may also be those four characters
/// of text; JSON output keeps the exact text. Text with nothing to escape is not copied.
pub fn inert(text: &str) -> Cow<'_, str> {
    escaped(text, &['\t'])
}

/// A block of lines (dry-run statements, lock-chain trees): as [`inert`], keeping its line
/// breaks.
fn inert_lines(text: &str) -> Cow<'_, str> {
    escaped(text, &['\t', '\n'])
}

/// A table cell: as [`inert`], tab included, since its width is the terminal's to choose and
/// the columns would no longer line up.
fn inert_cell(text: &str) -> Cow<'_, str> {
    escaped(text, &[])
}

/// `text` with every control character (C0, DEL, C1) not in `keep` escaped.
fn escaped<'a>(text: &'a str, keep: &[char]) -> Cow<'a, str> {
    // The common case, checked a byte at a time: no C0, no DEL, and no 0xC2, the first byte
    // of every C1 character in UTF-8 (also of U+00A0..U+00BF, which the slower look sorts out).
    if !text.bytes().any(|b| b < 0x20 || b == 0x7f || b == 0xc2) {
        return Cow::Borrowed(text);
    }
    let shown = |c: char| !c.is_control() || keep.contains(&c);
    let Some(first) = text.find(|c: char| !shown(c)) else {
        return Cow::Borrowed(text);
    };
    let mut out = String::with_capacity(text.len() + 16);
    out.push_str(&text[..first]);
    for c in text[first..].chars() {
        match u32::from(c) {
            _ if shown(c) => out.push(c),
            n @ 0..=0x7f => _ = write!(out, "\\x{n:02X}"),
            n => _ = write!(out, "\\u{n:04X}"),
        }
    }
    Cow::Owned(out)
}

/// JSON as printed. serde_json writes C0 characters as JSON escapes but DEL and C1 as they
/// are; those are escaped too (`\u009b`), so that JSON on a terminal is inert as well. Only
/// strings can hold them, and there an escape decodes to the very same text.
fn inert_json(json: String) -> String {
    if !json.bytes().any(|b| b == 0x7f || b == 0xc2) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if matches!(c, '\x7f'..='\u{9f}') {
            _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

/// `value` as JSON (pretty-printed when `pretty`), made inert.
fn json_text<T: Serialize + ?Sized>(value: &T, pretty: bool) -> serde_json::Result<String> {
    let json = if pretty {
        serde_json::to_string_pretty(value)?
    } else {
        serde_json::to_string(value)?
    };
    Ok(inert_json(json))
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

fn since(now: DateTime<Utc>, t: Option<DateTime<Utc>>) -> String {
    t.and_then(|t| (now - t).to_std().ok())
        .map(format_duration)
        .unwrap_or_default()
}

fn text(v: &Option<String>) -> String {
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

/// One line of a lock-chain tree, without its indentation, made [`inert`] (a name with a line
/// break in it stays on its line).
fn tree_label(line: &Line<'_>, now: DateTime<Utc>) -> String {
    let label = match line.node {
        Node::Prepared(p) => {
            let age = since(now, p.prepared);
            format!(
                "prepared transaction '{}' (database {}, owner {}, prepared {age} ago): \
                 cannot be signalled; ROLLBACK PREPARED ends it",
                p.gid,
                text(&p.database),
                text(&p.owner),
            )
        }
        Node::Session(s) => {
            let mut label = format!("{} ", s.pid);
            if s.is_blocked() {
                let wait = match (&s.wait_event_type, &s.wait_event) {
                    (Some(t), Some(e)) => format!(" {t}:{e}"),
                    _ => String::new(),
                };
                match s.lock_wait_start {
                    Some(t) => label.push_str(&format!("waiting {}{wait}", since(now, Some(t)))),
                    None => label.push_str(&format!("waiting{wait}")),
                }
            } else {
                label.push_str(&format!(
                    "{} {}",
                    s.state.as_deref().unwrap_or("(state hidden)"),
                    since(now, s.state_change.or(s.query_start))
                ));
            }
            if !line.unlisted_blockers.is_empty() {
                let by: Vec<String> = line
                    .unlisted_blockers
                    .iter()
                    .map(|p| p.to_string())
                    .collect();
                label.push_str(&format!(" (also waits on {}, not listed)", by.join(",")));
            }
            label.push_str(&format!("  {}/{}", text(&s.datname), text(&s.usename)));
            if line.repeated {
                label.push_str("  (shown above)");
            } else if let Some(q) = &s.query {
                label.push_str(&format!("  {}", shorten(q, PIPED_QUERY_CHARS)));
            }
            label.trim_end().to_string()
        }
    };
    inert(&label).into_owned()
}

/// The lines of a lock-chain tree, indented by depth.
pub fn tree_text(lines: &[Line<'_>], now: DateTime<Utc>) -> String {
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        out.push_str(&tree_prefix(lines, i));
        out.push_str(&tree_label(line, now));
        out.push('\n');
    }
    out
}

/// The branches before line `i` of a tree listed depth first, as `tree` and `pstree` draw
/// them: `├─ ` for a node with a sibling below it, `└─ ` for the last one, and for each
/// ancestor a `│  ` column while that ancestor has siblings still to come.
fn tree_prefix(lines: &[Line<'_>], i: usize) -> String {
    // Whether another node at `depth` follows line `i` under the same parent: the next line
    // at `depth` or shallower is at `depth`.
    let continues =
        |depth: usize| lines[i + 1..].iter().map(|l| l.depth).find(|&d| d <= depth) == Some(depth);
    let depth = lines[i].depth;
    let mut prefix = String::new();
    for ancestor in 1..depth {
        prefix.push_str(if continues(ancestor) { "│  " } else { "   " });
    }
    if depth > 0 {
        prefix.push_str(if continues(depth) {
            "├─ "
        } else {
            "└─ "
        });
    }
    prefix
}

/// How a prepared transaction that blocks sessions is reported: it is no session, and only
/// `ROLLBACK PREPARED` (or `COMMIT PREPARED`) ends it.
pub fn prepared_message(p: &PreparedBlocker) -> String {
    let waiters: Vec<String> = p.blocking.iter().map(|w| w.to_string()).collect();
    format!(
        "prepared transaction '{}' (database {}, owner {}) blocks {}; it is not a session and \
         cannot be signalled: end it with ROLLBACK PREPARED '{}' (or COMMIT PREPARED) in \
         database {}",
        p.gid,
        text(&p.database),
        text(&p.owner),
        waiters.join(", "),
        p.gid.replace('\'', "''"),
        text(&p.database),
    )
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trees_are_drawn_with_branches_for_siblings() {
        let p = PreparedBlocker::default();
        // a -> (b -> (c -> d), e), f -> g
        let depths = [0, 1, 2, 3, 1, 0, 1];
        let lines: Vec<Line<'_>> = depths
            .iter()
            .map(|&depth| Line {
                depth,
                node: Node::Prepared(&p),
                repeated: false,
                unlisted_blockers: Vec::new(),
            })
            .collect();
        let prefixes: Vec<String> = (0..lines.len()).map(|i| tree_prefix(&lines, i)).collect();
        assert_eq!(
            prefixes,
            ["", "├─ ", "│  └─ ", "│     └─ ", "└─ ", "", "└─ "]
        );
    }

    #[test]
    fn shorten_flattens_and_cuts() {
        assert_eq!(shorten("SELECT\n  1", 80), "SELECT 1");
        assert_eq!(shorten("abcdefghij", 6), "abc...");
        assert_eq!(shorten("ééééé", 5), "ééééé");
    }

    #[test]
    fn inert_escapes_every_control_character_but_tab() {
        // C0, psql's way; tab kept.
        assert_eq!(inert("a\x00b\x07c\x1b[2Jd"), r"a\x00b\x07c\x1B[2Jd");
        assert_eq!(inert("line\nnext\r"), r"line\x0Anext\x0D");
        assert_eq!(inert("a\tb"), "a\tb");
        // DEL, and C1 as psql writes it (U+009B is an 8-bit CSI).
        assert_eq!(inert("x\x7fy"), r"x\x7Fy");
        assert_eq!(
            inert("\u{80}\u{85}\u{9b}2J\u{9f}"),
            r"\u0080\u0085\u009B2J\u009F"
        );
        // The issue's attack.
        assert_eq!(
            inert("/* \x1b]0;title\x07 \x1b[2J \x1b[1;31mFAKE OUTPUT\x1b[0m */ SELECT 1"),
            r"/* \x1B]0;title\x07 \x1B[2J \x1B[1;31mFAKE OUTPUT\x1B[0m */ SELECT 1"
        );
    }

    #[test]
    fn inert_leaves_printable_text_alone_and_uncopied() {
        for text in [
            "",
            "SELECT * FROM t WHERE name = 'x'",
            // Multibyte characters, those starting with 0xC2 (U+00A0..U+00BF) included.
            "café ünïcødé 日本語 🐘 \u{a0}\u{a9}\u{bf} \u{100}",
            // Backslashes are text, as in psql.
            r"\x1B is four characters",
        ] {
            assert!(
                matches!(inert(text), Cow::Borrowed(t) if t == text),
                "{text:?}"
            );
        }
        // Neighbours of an escape keep their bytes.
        assert_eq!(inert("é\x1bé\u{9b}日"), r"é\x1Bé\u009B日");
        assert_eq!(inert("\u{a0}\u{85}\u{a0}"), "\u{a0}\\u0085\u{a0}");
        // Escaping twice changes nothing more: what is shown has no control characters.
        let once = inert("\x1b[2J\u{9b}\n").into_owned();
        assert_eq!(inert(&once), once);
    }

    #[test]
    fn cells_escape_tabs_and_blocks_keep_their_lines() {
        assert_eq!(inert_cell("a\tb\nc"), r"a\x09b\x0Ac");
        assert_eq!(inert_lines("a\tb\nc\r\x1b"), "a\tb\nc\\x0D\\x1B");
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
    fn json_keeps_the_exact_text_with_every_control_character_escaped() {
        let text = "a\x00\x07\x1b[2J\n\t\x7f\u{85}\u{9b}é\u{a0}日";
        for pretty in [false, true] {
            let json = json_text(&serde_json::json!({ "q": text }), pretty).unwrap();
            assert!(
                !json.chars().any(|c| c.is_control() && c != '\n'),
                "{json:?}"
            );
            assert!(
                json.contains(r"\u001b[2J") && json.contains(r"\u009b"),
                "{json}"
            );
            let back: serde_json::Value = serde_json::from_str(&json).unwrap();
            assert_eq!(back["q"], text);
        }
    }

    proptest::proptest! {
        /// Whatever the text: nothing a terminal acts on is left but tab, text without control
        /// characters is unchanged, and escaping again changes nothing.
        #[test]
        fn inert_leaves_no_control_character(text in "(\\PC|\\pC|\\x1b\\[|\\\\x){0,40}") {
            let shown = inert(&text);
            proptest::prop_assert!(!shown.chars().any(|c| c.is_control() && c != '\t'));
            if !text.chars().any(|c| c.is_control() && c != '\t') {
                proptest::prop_assert_eq!(&shown, &text);
            }
            proptest::prop_assert_eq!(&inert(&shown), &shown);
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
