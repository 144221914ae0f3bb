//! One server's part of a run: the command's pipeline on the server a [`Part`] names.

use anyhow::Result;

use super::guard::Gate;
use super::{conninfo, drop, list, lock, names, signal};
use crate::audit;
use crate::error::ExitStatus;
use crate::fleet::Member;
use crate::output::Printer;
use crate::plan::Command;

/// What one server's part of a run works with: the server's member of the plan, the printer
/// (capturing, over many servers), the gate that decides whether the targets cancel and
/// terminate find there may be signalled, the run's audit log, and what becomes of a name
/// the filter gives that the server has none of.
pub struct Part<'a> {
    pub member: &'a Member,
    pub printer: &'a Printer,
    pub gate: &'a dyn Gate,
    pub log: &'a audit::Log,
    /// What becomes of a --db or --user name the server has none of.
    pub unknown: names::Policy<'a>,
}

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
