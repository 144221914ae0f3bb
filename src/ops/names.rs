//! The databases and roles the filter names that do not exist (`--db myapp_prodution`): a
//! typo matches nothing, and must not pass for "nothing to do" in a deploy script. On one
//! server, cancel and terminate refuse (exit 1, nothing signalled) and list says so on
//! stderr, each with the closest existing name. One server of many notes them and goes on;
//! the run refuses or warns once for a name no server has (`many`).

use std::cell::RefCell;

use anyhow::{anyhow, Result};

use super::Context;
use crate::activity::{self, Unknown};

/// What one server's part does with unknown names.
pub enum Policy<'a> {
    /// A run on one server.
    One,
    /// One server of many: noted, and kept for the run's verdict.
    Many(&'a RefCell<Vec<Unknown>>),
}

/// After the first find: `unknown` on stderr (with the closest names), and for cancel and
/// terminate (`refuse`) on one server the error that stops the run before anything is
/// signalled.
pub fn check(
    ctx: &mut Context<'_>,
    mut unknown: Vec<Unknown>,
    refuse: bool,
    policy: &Policy<'_>,
) -> Result<()> {
    if unknown.is_empty() {
        return Ok(());
    }
    activity::suggest(&mut ctx.client, &mut unknown)?;
    match policy {
        Policy::Many(kept) => {
            for u in &unknown {
                ctx.printer.note(&u.to_string());
            }
            kept.borrow_mut().extend(unknown);
            Ok(())
        }
        Policy::One if refuse => Err(refusal(&unknown)),
        Policy::One => {
            for u in &unknown {
                ctx.printer.warn(&u.to_string());
            }
            Ok(())
        }
    }
}

/// The error of a run that would act while a name it was given means nothing.
pub fn refusal(unknown: &[Unknown]) -> anyhow::Error {
    let names: Vec<String> = unknown.iter().map(Unknown::to_string).collect();
    anyhow!("{}; nothing was signalled", names.join("; "))
}
