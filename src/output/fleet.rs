//! Many servers: what each server would have printed is kept ([`Captured`]) and printed once
//! for all, each row naming its server; with JSON lines, each server's as it finishes.

use std::io::{self, Write};

use serde::Serialize;

use super::inert::{inert, inert_lines, json_text};
use super::table::rows_table;
use super::{OutputFormat, Printer};
use crate::error::ExitStatus;

/// What one server of many would have printed on stdout, kept to be printed with the others.
#[derive(Default)]
pub struct Captured {
    /// One per `print`.
    pub tables: Vec<CapturedTable>,
    /// Dry-run statements, lock-chain trees: shown after the results, under the server's name.
    pub blocks: Vec<Block>,
}

pub struct CapturedTable {
    pub(super) headers: Vec<&'static str>,
    pub(super) noun: (&'static str, &'static str),
    pub(super) cut_last: bool,
    pub(super) rows: Vec<Vec<String>>,
    /// Each item as one JSON object, `server` first.
    pub(super) json: Vec<String>,
}

pub struct Block {
    pub(super) text: String,
    /// With JSON output this text goes to stderr, as it would for one server.
    pub(super) stderr_with_json: bool,
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
}
