//! The guard stages of cancel and terminate: the targets found, what cannot be signalled or
//! seen, the gate (--max, or a fleet's guards), the confirmation on a terminal, and the
//! recheck of what still matches after a person answered.

use anyhow::Result;

use super::{find, names, Context};
use crate::activity::Unknown;
use crate::error::Refused;
use crate::filter::Filter;
use crate::output::prepared_message;
use crate::plan::Guard;
use crate::session::Session;
use crate::signal::{Action, Outcome, Report};

/// Decides whether the targets cancel or terminate found on a server may be signalled: the
/// --max guard of one server ([`OneServer`]), or the guards of a run over many (`many`).
pub trait Gate: Sync {
    /// An error refuses. `Ok(None)` lets every target be signalled; `Ok(Some(allowed))` only
    /// the targets that are among `allowed` (what was counted and confirmed for this server).
    fn approve(&self, found: &Targets, guard: &Guard) -> Result<Option<Vec<Session>>>;

    /// After `approve`: a person confirmed the targets (the run over many servers asked), so
    /// they are matched again before the signal, as after this server's own prompt.
    fn asked(&self) -> bool {
        false
    }
}

/// The guard of a run on one server: --max.
pub struct OneServer;

impl Gate for OneServer {
    fn approve(&self, found: &Targets, guard: &Guard) -> Result<Option<Vec<Session>>> {
        let targets = &found.sessions;
        if let Some(max) = guard.max.filter(|&max| targets.len() > max) {
            return Err(Refused(format!(
                "{} sessions match, more than --max {max}; nothing was signalled",
                targets.len()
            ))
            .into());
        }
        Ok(None)
    }
}

/// What the find stage of cancel and terminate found.
pub struct Targets {
    pub sessions: Vec<Session>,
    /// Prepared transactions the filters select: reported, never signalled (exit 3).
    pub prepared_selected: bool,
    /// Whether something else holds the --db databases, from the first statement.
    pub held_in_dbs: Option<bool>,
    /// The names the filter gives that the server has no database or role of (on one
    /// server, cancel and terminate have refused already).
    pub unknown: Vec<Unknown>,
}

/// The targets: the filter's sessions, with a warning for each selected prepared transaction
/// (it cannot be signalled) and for sessions that hide their details; a name the filter gives
/// that the server has none of stops the run on one server (see `names`). Changes nothing.
pub fn targets(
    ctx: &mut Context<'_>,
    filter: &Filter,
    unknown: &names::Policy<'_>,
) -> Result<Targets> {
    let mut matched = find::first(ctx, filter, false)?;
    let unknown = names::check(ctx, std::mem::take(&mut matched.unknown), true, unknown)?;
    let unsignallable: Vec<_> = matched.prepared.iter().filter(|p| p.matched).collect();
    for p in &unsignallable {
        ctx.printer.warn(&prepared_message(p));
    }
    let hidden = matched
        .sessions
        .iter()
        .filter(|s| !s.details_visible())
        .count();
    if hidden > 0 {
        ctx.printer.warn(&format!(
            "{hidden} matched session(s) hide their details from this role: their state, \
             query and backend type are unknown to pgkick (one could be another role's \
             parallel worker); grant pg_read_all_stats to pgkick's role to see them"
        ));
    }
    Ok(Targets {
        prepared_selected: !unsignallable.is_empty(),
        held_in_dbs: matched.held_in_dbs,
        sessions: matched.sessions,
        unknown,
    })
}

/// Asks on a terminal (unless --yes) whether to act on `targets`; true when a person was
/// asked (and said yes). A no refuses: nothing was signalled.
pub fn confirm(
    ctx: &Context<'_>,
    action: Action,
    targets: &[Session],
    guard: &Guard,
) -> Result<bool> {
    if guard.yes || !ctx.printer.interactive() || targets.is_empty() {
        return Ok(false);
    }
    let question = match targets.len() {
        1 => format!("{} this session?", capitalized(action.verb())),
        n => format!("{} these {n} sessions?", capitalized(action.verb())),
    };
    if !ctx.printer.confirm(targets, &question)? {
        return Err(Refused("not confirmed; nothing was signalled".into()).into());
    }
    Ok(true)
}

/// After a person answered: which targets still match (a lock chain may have resolved
/// meanwhile), and the others as `no_longer_matches`.
pub fn recheck(
    ctx: &mut Context<'_>,
    filter: &Filter,
    targets: Vec<Session>,
) -> Result<(Vec<Session>, Vec<Report>)> {
    let server = ctx.server()?;
    let still = crate::activity::recheck(&mut ctx.client, &server, filter, &targets)?;
    let (keep, gone): (Vec<Session>, Vec<Session>) = targets
        .into_iter()
        .partition(|t| still.iter().any(|s| s.same_backend(t)));
    Ok((keep, with_outcome(&gone, Outcome::NoLongerMatches)))
}

/// `targets` less those the gate did not allow (`None`: all allowed).
pub fn allowed_only(targets: Vec<Session>, allowed: &Option<Vec<Session>>) -> Vec<Session> {
    match allowed {
        Some(allowed) => targets
            .into_iter()
            .filter(|t| allowed.iter().any(|a| a.same_backend(t)))
            .collect(),
        None => targets,
    }
}

/// Reports of `sessions`, each with `outcome`.
pub fn with_outcome(sessions: &[Session], outcome: Outcome) -> Vec<Report> {
    sessions
        .iter()
        .map(|s| Report {
            session: s.clone(),
            outcome,
        })
        .collect()
}

/// `Terminate` for `terminate`.
pub fn capitalized(word: &str) -> String {
    let mut c = word.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}
