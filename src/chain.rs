//! Lock chains as a forest: who waits on whom, arranged for `list --tree` and for the
//! `--dry-run` of terminate. Pure: built from rows the finding statement already returned.
//!
//! Nodes are sessions and prepared transactions (pid 0 in `pg_blocking_pids`, told apart by
//! gid). A session waiting on several blockers appears under each of them; the second time
//! it is marked `repeated` and its own waiters are not shown again.

use std::collections::BTreeSet;

use crate::session::{PreparedBlocker, Session};

/// One node of a lock chain.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Node<'a> {
    Session(&'a Session),
    Prepared(&'a PreparedBlocker),
}

/// A line of the tree: its depth (0 for a chain's head) and its node.
#[derive(Debug, Clone, PartialEq)]
pub struct Line<'a> {
    pub depth: usize,
    pub node: Node<'a>,
    /// Already shown above (a session waiting on several blockers); its waiters are not
    /// repeated.
    pub repeated: bool,
    /// Its blockers that are not in the tree (not listed, e.g. another database's sessions).
    pub unlisted_blockers: Vec<i32>,
}

/// The chains among `sessions` and `prepared`: each head (a node nobody listed blocks, that
/// blocks someone listed or waits on someone unlisted), then what waits on it, depth first, in
/// pid order. `heads`, when given, keeps only the chains those pids head. Sessions outside any
/// chain are left out, unless no chain exists: then every session is a line of depth 0.
pub fn forest<'a>(
    sessions: &'a [Session],
    prepared: &'a [PreparedBlocker],
    heads: Option<&[i32]>,
) -> Vec<Line<'a>> {
    let listed: BTreeSet<i32> = sessions.iter().map(|s| s.pid).collect();
    let in_chain = |s: &Session| s.is_blocked() || s.is_blocking();
    let unlisted = |s: &Session| -> Vec<i32> {
        s.blocked_by
            .iter()
            .flatten()
            .copied()
            .filter(|&b| !listed.contains(&b) && b != 0)
            .collect()
    };
    let blocked_by_listed_prepared = |s: &Session| {
        s.blocked_by_prepared
            .iter()
            .any(|gid| prepared.iter().any(|p| &p.gid == gid))
    };
    let mut drawn = Drawn::default();

    if heads.is_none() {
        for p in prepared {
            // A prepared transaction the filters chose heads its chain even when none of its
            // waiters is listed (list --root-blocker).
            if p.matched || p.blocking.iter().any(|w| listed.contains(w)) {
                drawn.lines.push(Line {
                    depth: 0,
                    node: Node::Prepared(p),
                    repeated: false,
                    unlisted_blockers: Vec::new(),
                });
                for s in sessions.iter().filter(|s| p.blocking.contains(&s.pid)) {
                    waiters_of(s, 1, sessions, &mut drawn, &unlisted);
                }
            }
        }
    }
    let is_head = |s: &Session| match heads {
        Some(h) => h.contains(&s.pid),
        None => {
            in_chain(s)
                && !s
                    .blocked_by
                    .iter()
                    .flatten()
                    .any(|b| listed.contains(b) && *b != s.pid)
                && !blocked_by_listed_prepared(s)
        }
    };
    for s in sessions.iter().filter(|s| is_head(s)) {
        if !drawn.shown.contains(&s.pid) {
            waiters_of(s, 0, sessions, &mut drawn, &unlisted);
        }
    }
    // Left: sessions in cycles of listed sessions (every one waits on another).
    if heads.is_none() {
        for s in sessions.iter().filter(|s| in_chain(s)) {
            if !drawn.shown.contains(&s.pid) {
                waiters_of(s, 0, sessions, &mut drawn, &unlisted);
            }
        }
    }
    if drawn.lines.is_empty() && heads.is_none() {
        return sessions
            .iter()
            .map(|s| Line {
                depth: 0,
                node: Node::Session(s),
                repeated: false,
                unlisted_blockers: Vec::new(),
            })
            .collect();
    }
    drawn.lines
}

/// The tree drawn so far: the pids shown, and the lines.
#[derive(Default)]
struct Drawn<'a> {
    shown: BTreeSet<i32>,
    lines: Vec<Line<'a>>,
}

/// `s` at `depth`, then, the first time it is shown, the listed sessions waiting on it.
fn waiters_of<'a>(
    s: &'a Session,
    depth: usize,
    sessions: &'a [Session],
    drawn: &mut Drawn<'a>,
    unlisted: &dyn Fn(&Session) -> Vec<i32>,
) {
    let repeated = !drawn.shown.insert(s.pid);
    drawn.lines.push(Line {
        depth,
        node: Node::Session(s),
        repeated,
        unlisted_blockers: unlisted(s),
    });
    if repeated {
        return;
    }
    for w in sessions
        .iter()
        .filter(|w| w.pid != s.pid && w.blocked_by.as_ref().is_some_and(|b| b.contains(&s.pid)))
    {
        waiters_of(w, depth + 1, sessions, drawn, unlisted);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(pid: i32, blocked_by: &[i32], blocking: &[i32]) -> Session {
        Session {
            pid,
            blocked_by: Some(blocked_by.to_vec()),
            blocking: Some(blocking.to_vec()),
            ..Default::default()
        }
    }

    fn shape(lines: &[Line<'_>]) -> Vec<(usize, i32, bool)> {
        lines
            .iter()
            .map(|l| match l.node {
                Node::Session(s) => (l.depth, s.pid, l.repeated),
                Node::Prepared(_) => (l.depth, 0, l.repeated),
            })
            .collect()
    }

    /// A idle in transaction; B waits on A; C (ALTER TABLE) on A and B; D behind C; E alone.
    fn pile_up() -> Vec<Session> {
        vec![
            session(1, &[], &[2, 3]),
            session(2, &[1], &[3]),
            session(3, &[1, 2], &[4]),
            session(4, &[3], &[]),
            session(5, &[], &[]),
        ]
    }

    #[test]
    fn the_pile_up_is_one_tree_headed_by_its_root() {
        let s = pile_up();
        let lines = forest(&s, &[], None);
        assert_eq!(
            shape(&lines),
            vec![
                (0, 1, false),
                (1, 2, false),
                (2, 3, false),
                (3, 4, false),
                (1, 3, true),
            ]
        );
    }

    #[test]
    fn without_chains_every_session_is_shown() {
        let s = vec![session(5, &[], &[]), session(6, &[], &[])];
        assert_eq!(
            shape(&forest(&s, &[], None)),
            vec![(0, 5, false), (0, 6, false)]
        );
    }

    #[test]
    fn a_blocker_not_listed_leaves_its_waiter_at_the_top() {
        let s = vec![session(2, &[99], &[3]), session(3, &[2], &[])];
        let lines = forest(&s, &[], None);
        assert_eq!(shape(&lines), vec![(0, 2, false), (1, 3, false)]);
        assert_eq!(lines[0].unlisted_blockers, vec![99]);
    }

    #[test]
    fn prepared_transactions_head_their_chains() {
        let mut w = session(7, &[0], &[8]);
        w.blocked_by_prepared = vec!["gid1".into()];
        let s = vec![w, session(8, &[7], &[])];
        let p = vec![PreparedBlocker {
            gid: "gid1".into(),
            blocking: vec![7],
            ..Default::default()
        }];
        assert_eq!(
            shape(&forest(&s, &p, None)),
            vec![(0, 0, false), (1, 7, false), (2, 8, false)]
        );
    }

    #[test]
    fn chosen_heads_and_cycles() {
        let s = pile_up();
        assert_eq!(
            shape(&forest(&s, &[], Some(&[2]))),
            vec![(0, 2, false), (1, 3, false), (2, 4, false)]
        );
        let cycle = vec![session(1, &[2], &[2]), session(2, &[1], &[1])];
        assert_eq!(
            shape(&forest(&cycle, &[], None)),
            vec![(0, 1, false), (1, 2, false), (2, 1, true)]
        );
    }
}
