//! pgkick: list, cancel and terminate PostgreSQL sessions; lock databases and roles.
//!
//! The only place that prints errors and picks the process exit code. Errors quote what
//! pgkick was given or read (names, server messages), so they reach stderr made inert.

mod activity;
mod audit;
mod chain;
mod cli;
mod columns;
mod commands;
mod conn;
mod conninfo;
#[cfg(test)]
mod docs;
mod error;
mod filter;
mod fleet;
mod holders;
mod interrupt;
mod lock;
mod output;
mod pgbouncer;
mod pooling;
#[cfg(test)]
mod proptests;
mod server;
mod session;
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
    match fleet::run(cli) {
        Ok(status) => ExitCode::from(status),
        Err(err) if error::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("pgkick: {}", output::inert(&error::one_line(&err)));
            ExitCode::from(error::exit_status(&err))
        }
    }
}

/// --help and --version print as clap prints them; a usage error becomes one line on stderr
/// and exit 2.
fn clap_exit(err: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match err.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = err.print();
            ExitCode::SUCCESS
        }
        _ => {
            let text = err.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            let msg = first.trim_start_matches("error: ");
            eprintln!("pgkick: {} (see pgkick --help)", output::inert(msg));
            ExitCode::from(error::ExitStatus::Usage)
        }
    }
}
