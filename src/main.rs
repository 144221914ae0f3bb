//! pgkick: list, cancel and terminate PostgreSQL sessions; lock databases and roles.
//!
//! The only place that prints errors and picks the exit code.

mod cli;
mod conn;
mod error;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match conn::connect(&cli.conn) {
        Ok(_) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("pgkick: {}", error::one_line(&err));
            ExitCode::from(error::exit_code(&err))
        }
    }
}
