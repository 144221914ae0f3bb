//! pgkick: list, cancel and terminate PostgreSQL sessions; lock databases and roles.
//!
//! The only place that prints errors and picks the process exit code. Errors quote what
//! pgkick was given or read (names, server messages), so they reach stderr made inert.

mod activity;
mod audit;
mod chain;
mod cli;
mod columns;
mod conn;
#[cfg(test)]
mod docs;
mod error;
mod filter;
mod fleet;
mod holders;
mod interrupt;
#[cfg(test)]
mod layout;
mod lock;
mod ops;
mod output;
mod pgbouncer;
mod plan;
#[cfg(test)]
mod proptests;
mod server;
mod session;
mod shell;
mod signal;
mod sql;
mod watch;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return clap_exit(err),
    };
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    match plan::Plan::from_cli(cli, &argv).and_then(ops::run) {
        Ok(status) => ExitCode::from(status),
        Err(err) if error::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("pgkick: {}", output::inert(&error::one_line(&err)));
            ExitCode::from(error::exit_status(&err))
        }
    }
}

/// --help and --version print on stdout and exit 0, as clap prints them. A usage error is
/// clap's whole message (with its suggestions, possible values and tips) after pgkick's
/// prefix, on stderr, and exit 2; so is help asked for by nothing (bare `pgkick`), as clap,
/// git and dropdb do.
fn clap_exit(err: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = err.print();
            ExitCode::SUCCESS
        }
        kind => {
            let text = err.render().to_string();
            let text = match kind {
                ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => text,
                _ => format!("pgkick: {}", text.trim_start_matches("error: ")),
            };
            for line in text.trim_end().lines() {
                eprintln!("{}", output::inert(line));
            }
            ExitCode::from(error::ExitStatus::Usage)
        }
    }
}
