//! The pipelines: each command as its own sequence of stages over one connection context.
//!
//! - `list.rs`, `signal.rs` (cancel, terminate, --every), `drop.rs` (terminate --lock, the
//!   drop-ready workflow), `lock.rs` (lock, unlock, --list), `conninfo.rs`: one per command,
//!   each deciding its exit status where it ends;
//! - the stages they share: `context.rs` (the connection context every stage takes),
//!   `find.rs` (the sessions, with what pgkick cannot see), `guard.rs` (targets, gate,
//!   confirmation, recheck), `act.rs` (signal, grace, wait, audit), `dry_run.rs`;
//! - `pooling.rs`: the pipelines' side of --pgbouncer; `entry.rs`: what lock and unlock
//!   report for one database or role (the change, its pooler steps, what was terminated);
//! - [`Part`] (here): what one server's part of a run works with, taken by every pipeline;
//!   `one.rs`: one server's part of a run (the command's pipeline); `many.rs`: a run over
//!   many servers, with the guards over all of them.
//!
//! A pipeline returns an `ExitStatus` for outcomes that are not errors (success, partial);
//! errors carry their own (see `error`). Nothing here sees a clap type: the plan's types are
//! what the pipelines take.

mod act;
mod conninfo;
mod context;
mod drop;
mod dry_run;
mod entry;
mod find;
mod guard;
mod list;
mod lock;
mod many;
mod names;
mod one;
mod pooling;
mod signal;

use std::sync::Arc;

use anyhow::Result;

pub use context::Context;
use guard::Gate;

use crate::audit;
use crate::error::ExitStatus;
use crate::fleet::Member;
use crate::output::Printer;
use crate::plan::{Command, Plan, Servers};

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

/// Runs the plan: the audit log opened once (pgkick acts on nothing when it cannot write
/// there), then the command on the one server, or on each of many.
pub fn run(plan: Plan) -> Result<ExitStatus> {
    let log = match audit_config(&plan.command) {
        Some(config) => audit::Log::open(config)?,
        None => audit::Log::none(),
    };
    match &plan.servers {
        Servers::One(member) => {
            let printer = Printer::new(plan.output).for_server(&member.label);
            let part = Part {
                member,
                printer: &printer,
                gate: &guard::OneServer,
                log: &log,
                unknown: names::Policy::One,
            };
            one::run(&plan.command, &part)
        }
        Servers::Many { .. } => many::run(&Arc::new(plan), &Arc::new(log)),
    }
}

/// The audit configuration of the command, if it writes records.
fn audit_config(command: &Command) -> Option<&audit::Config> {
    match command {
        Command::Signal(s) => Some(&s.audit),
        Command::DropReady(d) => Some(&d.signal.audit),
        Command::Lock(l) => Some(&l.audit),
        Command::Unlock(u) => Some(&u.audit),
        Command::List(_) | Command::Conninfo { .. } => None,
    }
}
