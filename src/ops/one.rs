//! One server's part of a run: the command's pipeline on the server `member` names, printing
//! through `printer`; `gate` decides whether the targets cancel and terminate found there may
//! be signalled, and `log` is the run's audit log.

use anyhow::Result;

use super::guard::Gate;
use super::{conninfo, drop, list, lock, signal};
use crate::audit;
use crate::error::ExitStatus;
use crate::fleet::Member;
use crate::output::Printer;
use crate::plan::Command;

pub fn run(
    command: &Command,
    member: &Member,
    printer: &Printer,
    (gate, log): (&dyn Gate, &audit::Log),
) -> Result<ExitStatus> {
    match command {
        Command::List(opts) => list::run(opts, member, printer),
        Command::Signal(opts) => signal::run(opts, member, printer, (gate, log)),
        Command::DropReady(opts) => drop::run(opts, member, printer, (gate, log)),
        Command::Lock(opts) => lock::run_lock(opts, member, printer, log),
        Command::Unlock(opts) => lock::run_unlock(opts, member, printer, log),
        Command::Conninfo { connect } => conninfo::run(*connect, member, printer),
    }
}
