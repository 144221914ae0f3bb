//! Lock-chain trees (`list --tree`, the chains a dry run would break): each head, then what
//! waits on it, drawn with branches as `tree` and `pstree` draw them.

use std::io::{self, Write};

use chrono::{DateTime, Utc};

use super::inert::{inert, inert_lines};
use super::table::{shorten, since, text, PIPED_QUERY_CHARS};
use super::Printer;
use crate::chain::{Line, Node};
use crate::session::PreparedBlocker;

impl Printer {
    /// `list --tree`: the lock chains on stdout, with a footer like the table's.
    pub fn print_tree(&self, lines: &[Line<'_>]) -> io::Result<()> {
        if self.quiet {
            return Ok(());
        }
        let mut text = tree_text(lines, Utc::now());
        let heads = lines.iter().filter(|l| l.depth == 0).count();
        let chained = lines.iter().any(|l| l.depth > 0);
        if chained {
            let noun = if heads == 1 { "chain" } else { "chains" };
            text.push_str(&format!("({heads} lock {noun})\n"));
        } else {
            let noun = if heads == 1 { "session" } else { "sessions" };
            text.push_str(&format!("(no lock chains; {heads} {noun})\n"));
        }
        if self.keep_block(&text, false) {
            return Ok(());
        }
        let mut out = io::stdout().lock();
        out.write_all(inert_lines(&text).as_bytes())?;
        out.flush()
    }

    /// --dry-run of terminate or cancel with lock-chain filters: the chains the action would
    /// break, after the table on stdout, or on stderr with JSON output.
    pub fn dry_run_chains(&self, lines: &[Line<'_>]) -> io::Result<()> {
        if self.quiet || lines.is_empty() {
            return Ok(());
        }
        self.dry_run_block(&format!(
            "-- dry run: the lock chains this would break:\n{}",
            tree_text(lines, Utc::now())
        ))
    }
}

/// One line of a lock-chain tree, without its indentation, made [`inert`] (a name with a line
/// break in it stays on its line).
fn tree_label(line: &Line<'_>, now: DateTime<Utc>) -> String {
    let label = match line.node {
        Node::Prepared(p) => {
            let age = since(now, p.prepared);
            format!(
                "prepared transaction '{}' (database {}, owner {}, prepared {age} ago): \
                 cannot be signalled; ROLLBACK PREPARED ends it",
                p.gid,
                text(&p.database),
                text(&p.owner),
            )
        }
        Node::Session(s) => {
            let mut label = format!("{} ", s.pid);
            if s.is_blocked() {
                let wait = match (&s.wait_event_type, &s.wait_event) {
                    (Some(t), Some(e)) => format!(" {t}:{e}"),
                    _ => String::new(),
                };
                match s.lock_wait_start {
                    Some(t) => label.push_str(&format!("waiting {}{wait}", since(now, Some(t)))),
                    None => label.push_str(&format!("waiting{wait}")),
                }
            } else {
                label.push_str(&format!(
                    "{} {}",
                    s.state.as_deref().unwrap_or("(state hidden)"),
                    since(now, s.state_change.or(s.query_start))
                ));
            }
            if !line.unlisted_blockers.is_empty() {
                let by: Vec<String> = line
                    .unlisted_blockers
                    .iter()
                    .map(|p| p.to_string())
                    .collect();
                label.push_str(&format!(" (also waits on {}, not listed)", by.join(",")));
            }
            label.push_str(&format!("  {}/{}", text(&s.datname), text(&s.usename)));
            if line.repeated {
                label.push_str("  (shown above)");
            } else if let Some(q) = &s.query {
                label.push_str(&format!("  {}", shorten(q, PIPED_QUERY_CHARS)));
            }
            label.trim_end().to_string()
        }
    };
    inert(&label).into_owned()
}

/// The lines of a lock-chain tree, indented by depth.
pub fn tree_text(lines: &[Line<'_>], now: DateTime<Utc>) -> String {
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        out.push_str(&tree_prefix(lines, i));
        out.push_str(&tree_label(line, now));
        out.push('\n');
    }
    out
}

/// The branches before line `i` of a tree listed depth first, as `tree` and `pstree` draw
/// them: `├─ ` for a node with a sibling below it, `└─ ` for the last one, and for each
/// ancestor a `│  ` column while that ancestor has siblings still to come.
fn tree_prefix(lines: &[Line<'_>], i: usize) -> String {
    // Whether another node at `depth` follows line `i` under the same parent: the next line
    // at `depth` or shallower is at `depth`.
    let continues =
        |depth: usize| lines[i + 1..].iter().map(|l| l.depth).find(|&d| d <= depth) == Some(depth);
    let depth = lines[i].depth;
    let mut prefix = String::new();
    for ancestor in 1..depth {
        prefix.push_str(if continues(ancestor) { "│  " } else { "   " });
    }
    if depth > 0 {
        prefix.push_str(if continues(depth) {
            "├─ "
        } else {
            "└─ "
        });
    }
    prefix
}

/// How a prepared transaction that blocks sessions is reported: it is no session, and only
/// `ROLLBACK PREPARED` (or `COMMIT PREPARED`) ends it.
pub fn prepared_message(p: &PreparedBlocker) -> String {
    let waiters: Vec<String> = p.blocking.iter().map(|w| w.to_string()).collect();
    format!(
        "prepared transaction '{}' (database {}, owner {}) blocks {}; it is not a session and \
         cannot be signalled: end it with ROLLBACK PREPARED '{}' (or COMMIT PREPARED) in \
         database {}",
        p.gid,
        text(&p.database),
        text(&p.owner),
        waiters.join(", "),
        p.gid.replace('\'', "''"),
        text(&p.database),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trees_are_drawn_with_branches_for_siblings() {
        let p = PreparedBlocker::default();
        // a -> (b -> (c -> d), e), f -> g
        let depths = [0, 1, 2, 3, 1, 0, 1];
        let lines: Vec<Line<'_>> = depths
            .iter()
            .map(|&depth| Line {
                depth,
                node: Node::Prepared(&p),
                repeated: false,
                unlisted_blockers: Vec::new(),
            })
            .collect();
        let prefixes: Vec<String> = (0..lines.len()).map(|i| tree_prefix(&lines, i)).collect();
        assert_eq!(
            prefixes,
            ["", "├─ ", "│  └─ ", "│     └─ ", "└─ ", "", "└─ "]
        );
    }
}
