//! The databases and roles the filter names that do not exist (`--db myapp_prodution`): a
//! typo matches nothing, and must not pass for "nothing to do" in a deploy script. On one
//! server, cancel and terminate refuse (exit 1, nothing signalled) and list says so on
//! stderr, each with the closest existing name. One server of many notes them and goes on;
//! the run refuses or warns once for a name no server has (`many`).

use std::cell::RefCell;

use anyhow::Result;

use super::Context;
use crate::activity::{self, Unknown};
use crate::error::Missing;

/// What one server's part does with unknown names.
pub enum Policy<'a> {
    /// A run on one server.
    One,
    /// One server of many: noted, and kept for the run's verdict.
    Many(&'a RefCell<Vec<Unknown>>),
}

/// After the first find: `unknown` on stderr (with the closest names), and for cancel and
/// terminate (`refuse`) on one server the error that stops the run before anything is
/// signalled. Returns the unknown names (with their closest names), for the gate of a run
/// over many servers to refuse before any server acts.
pub fn check(
    ctx: &mut Context<'_>,
    mut unknown: Vec<Unknown>,
    refuse: bool,
    policy: &Policy<'_>,
) -> Result<Vec<Unknown>> {
    if unknown.is_empty() {
        return Ok(unknown);
    }
    activity::suggest(&mut ctx.client, &mut unknown)?;
    match policy {
        Policy::Many(kept) => {
            for u in &unknown {
                ctx.printer.note(&u.to_string());
            }
            kept.borrow_mut().extend(unknown.iter().cloned());
            Ok(unknown)
        }
        Policy::One if refuse => Err(refusal(&unknown)),
        Policy::One => {
            for u in &unknown {
                ctx.printer.warn(&u.to_string());
            }
            Ok(unknown)
        }
    }
}

/// Of the names each server that found its sessions has none of (one list per server), those
/// no server has, each once, in the order the first server gives them. Empty when no server
/// got that far.
pub fn unknown_everywhere<'a>(servers: impl IntoIterator<Item = &'a [Unknown]>) -> Vec<Unknown> {
    let servers: Vec<&[Unknown]> = servers.into_iter().collect();
    let mut out: Vec<Unknown> = Vec::new();
    for u in servers.first().copied().unwrap_or_default() {
        let same = |v: &Unknown| v.kind == u.kind && v.name == u.name;
        if servers.iter().all(|s| s.iter().any(same)) && !out.iter().any(same) {
            out.push(u.clone());
        }
    }
    out
}

/// The error of a run that would act while a name it was given means nothing (exit 1).
pub fn refusal(unknown: &[Unknown]) -> anyhow::Error {
    let names: Vec<String> = unknown.iter().map(Unknown::to_string).collect();
    Missing(format!("{}; nothing was signalled", names.join("; "))).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(name: &str) -> Unknown {
        Unknown {
            flag: "--db",
            name: name.into(),
            kind: "database",
            close: None,
        }
    }

    #[test]
    fn a_name_is_unknown_everywhere_only_when_every_server_lacks_it() {
        let a = [db("typo"), db("only_on_b")];
        let b = [db("typo")];
        let none: [Unknown; 0] = [];
        let names = |l: Vec<Unknown>| l.into_iter().map(|u| u.name).collect::<Vec<_>>();
        assert_eq!(names(unknown_everywhere([&a[..], &b[..]])), ["typo"]);
        assert_eq!(
            names(unknown_everywhere([&a[..], &none[..]])),
            Vec::<String>::new()
        );
        assert_eq!(names(unknown_everywhere([&a[..]])), ["typo", "only_on_b"]);
        assert!(unknown_everywhere(std::iter::empty()).is_empty());
        // The same name for a role is another name.
        let role = Unknown {
            flag: "--user",
            kind: "role",
            ..db("typo")
        };
        assert!(unknown_everywhere([&a[..], &[role][..]]).is_empty());
    }
}
