//! One server's part of a run: the command's pipeline on the server a [`Part`] names.
//! (`Part` itself lives in `ops/mod.rs`, below the pipelines that take it.)

use anyhow::Result;

use super::{conninfo, drop, list, lock, signal, Part};
use crate::error::ExitStatus;
use crate::plan::Command;

pub fn run(command: &Command, part: &Part<'_>) -> Result<ExitStatus> {
    match command {
        Command::List(opts) => list::run(opts, part),
        Command::Signal(opts) => signal::run(opts, part),
        Command::DropReady(opts) => drop::run(opts, part),
        Command::Lock(opts) => lock::run_lock(opts, part),
        Command::Unlock(opts) => lock::run_unlock(opts, part),
        Command::Conninfo { connect } => conninfo::run(*connect, part),
    }
}
