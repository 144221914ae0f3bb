//! Everything pgkick shows: the [`Printer`], which knows the output format and where each
//! kind of text goes, and the rooms that render it: `table.rs` (tables and what a row of each
//! result is), `tree.rs` (lock-chain trees), `prompt.rs` (confirmation and password prompts),
//! `fleet.rs` (the results of many servers, printed once), `inert.rs` (control characters made
//! harmless). Actions return data; this module alone decides how it looks.
//!
//! Results go to stdout; notes, warnings, progress and prompts go to stderr, so that
//! `--json | jq` always reads clean JSON.
//!
//! Much of what is shown comes from people with fewer rights than the operator (query text,
//! database and role names, lock records in comments, error messages quoting them), so
//! nothing reaches the terminal raw: every table cell, tree line, note, warning, prompt and
//! block of dry-run text passes through [`inert`], and JSON through `inert::json_text`.

mod fleet;
mod inert;
mod prompt;
mod table;
mod tree;

use std::cell::RefCell;
use std::io::{self, IsTerminal, Write};
use std::time::Duration;

use chrono::Utc;
use comfy_table::Table;
use serde::Serialize;

use fleet::{Block, CapturedTable};
pub use fleet::{Captured, Ended, ServerOutput};
pub use inert::inert;
pub(crate) use inert::inert_json;
use inert::{inert_lines, inert_sql, json_text};
use table::rows_table;
pub use table::{format_duration, Tabular};
pub use tree::prepared_message;

/// How results are printed (`--output`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// A table fitted to the terminal
    Table,
    /// One JSON array
    Json,
    /// One JSON object per line
    Jsonl,
}

/// What the command line asks of the output: the format, and --quiet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub format: OutputFormat,
    pub quiet: bool,
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

/// An item with its server's label as its first field.
#[derive(Serialize)]
struct WithServer<'a, T: Serialize> {
    #[serde(skip_serializing_if = "Option::is_none")]
    server: Option<&'a str>,
    #[serde(flatten)]
    item: &'a T,
}

impl Printer {
    pub fn new(options: Options) -> Printer {
        Printer {
            format: options.format,
            quiet: options.quiet,
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
    pub fn capturing(options: Options, label: &str) -> Printer {
        let mut p = Printer::new(options).for_server(label);
        p.captured = Some(RefCell::new(Captured::default()));
        p
    }

    /// Shows nothing at all: the fleet's pass that only counts the targets.
    pub fn silent(options: Options, label: &str) -> Printer {
        let mut p = Printer::capturing(options, label);
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

    /// The line a --dry-run leads with, what would happen in a sentence: before the table on
    /// stdout, or on stderr with JSON output so that stdout stays valid JSON.
    pub fn dry_run_summary(&self, line: &str) -> io::Result<()> {
        if self.quiet {
            return Ok(());
        }
        let text = format!("-- dry run: {line}\n");
        if self.keep_block(&text, true) {
            return Ok(());
        }
        if self.is_json() {
            io::stderr().write_all(inert_lines(&text).as_bytes())
        } else {
            let mut out = io::stdout().lock();
            out.write_all(inert_lines(&text).as_bytes())?;
            out.flush()
        }
    }

    /// The SQL a --dry-run would send: after the table on stdout, or on stderr with JSON
    /// output so that stdout stays valid JSON.
    pub fn dry_run_sql(&self, sql: &str) -> io::Result<()> {
        self.dry_run_text("nothing was changed. The statement that would run:", sql)
    }

    /// A block of --dry-run text under its `heading`: after the table on stdout, or on
    /// stderr with JSON output.
    pub fn dry_run_text(&self, heading: &str, text: &str) -> io::Result<()> {
        if self.quiet {
            return Ok(());
        }
        self.dry_run_block(&format!("-- dry run: {heading}\n{}\n", inert_sql(text)))
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
}
