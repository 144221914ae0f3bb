//! (tests only) The shape of `src/` kept as it is meant: the modules import one another in one
//! direction (no cycle), and no file holds more than a room should.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Test-only files: they may reach anywhere.
const TEST_FILES: [&str; 5] = [
    "activity/tests.rs",
    "plan/tests.rs",
    "conn/testutil.rs",
    "docs.rs",
    "proptests.rs",
];

/// Lines of code (not blank, not comments, before the tests) a file may hold.
const MAX_CODE_LINES: usize = 600;

fn sources() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&root, &mut files);
    files
        .into_iter()
        .map(|p| {
            let rel = p
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (rel, std::fs::read_to_string(&p).unwrap())
        })
        .filter(|(rel, _)| !TEST_FILES.contains(&rel.as_str()))
        .collect()
}

/// The code of a file before its tests, without comments.
fn code(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let mut all = text.lines().peekable();
    while let Some(line) = all.next() {
        if line.trim() == "#[cfg(test)]" && all.peek().is_some_and(|next| next.contains("mod ")) {
            break;
        }
        let line = line.split("//").next().unwrap_or_default();
        if !line.trim().is_empty() {
            lines.push(line);
        }
    }
    lines
}

/// The top-level module a file belongs to (`ops/list.rs` is `ops`).
fn module(rel: &str) -> String {
    rel.split('/')
        .next()
        .unwrap()
        .trim_end_matches(".rs")
        .to_string()
}

/// Which top-level modules each one names (`crate::x`, `use crate::{x, y}`).
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let sources = sources();
    let modules: BTreeSet<String> = sources.iter().map(|(rel, _)| module(rel)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (rel, text) in &sources {
        let from = module(rel);
        let code = code(text).join("\n");
        let mut named = BTreeSet::new();
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                let group = &group[..group.find('}').unwrap_or(group.len())];
                for part in group.split(',') {
                    named.insert(part.trim().split("::").next().unwrap_or("").to_string());
                }
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                named.insert(name);
            }
        }
        let edges = graph.entry(from.clone()).or_default();
        edges.extend(
            named
                .into_iter()
                .filter(|m| *m != from && modules.contains(m)),
        );
    }
    graph
}

/// A cycle through `start`, if there is one.
fn cycle_from(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    fn visit(
        graph: &BTreeMap<String, BTreeSet<String>>,
        at: &str,
        start: &str,
        path: &mut Vec<String>,
        seen: &mut BTreeSet<String>,
    ) -> bool {
        for next in graph.get(at).into_iter().flatten() {
            if next == start {
                path.push(next.clone());
                return true;
            }
            if seen.insert(next.clone()) {
                path.push(next.clone());
                if visit(graph, next, start, path, seen) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![start.to_string()];
    visit(graph, start, start, &mut path, &mut BTreeSet::new()).then_some(path)
}

#[test]
fn the_modules_import_one_another_without_a_cycle() {
    let graph = graph();
    assert!(
        graph.contains_key("ops") && graph["ops"].contains("plan"),
        "{graph:?}"
    );
    for module in graph.keys() {
        if let Some(cycle) = cycle_from(&graph, module) {
            panic!("a module cycle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn no_file_holds_more_than_a_room_should() {
    let big: Vec<String> = sources()
        .iter()
        .map(|(rel, text)| (rel, code(text).len()))
        .filter(|(_, n)| *n > MAX_CODE_LINES)
        .map(|(rel, n)| format!("{rel}: {n} lines of code"))
        .collect();
    assert!(big.is_empty(), "split these: {big:?}");
}
