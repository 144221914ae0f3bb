//! (tests only) The shape of `src/` kept as it is meant: the modules import one another in one
//! direction (no cycle among the top-level modules, nor among the files of any folder), and no
//! file holds more than a room should.
//!
//! The sources are read the way the compiler would see them without `cfg(test)`: comments and
//! the insides of literals blanked, every `#[cfg(test)]` item (an inline `mod tests { .. }`
//! by its braces, a `mod testutil;` by its line) left out. Every `crate::`, `super::` and
//! `self::` path, with its whole use tree (`crate::{a::{b, c}, d::E}`), is resolved to the
//! module it names, and a name a module imports (`pub use context::Context`) to where it
//! comes from, so `super::Context` in `ops/list.rs` is an arrow to `ops/context.rs`.

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

/// Lines of code (not blank, not comments, not tests) a file may hold.
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

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// The source with comments left out and the insides of string and char literals emptied,
/// line breaks kept.
fn lexed(text: &str) -> String {
    let s = text.as_bytes();
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        if rest.starts_with(b"//") {
            while i < s.len() && s[i] != b'\n' {
                i += 1;
            }
        } else if rest.starts_with(b"/*") {
            let mut depth = 0;
            while i < s.len() {
                if s[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if s[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if s[i] == b'\n' {
                        out.push(b'\n');
                    }
                    i += 1;
                }
            }
        } else if s[i] == b'r'
            && (i == 0 || !is_ident(s[i - 1]) || s[i - 1] == b'b')
            && rest[1..]
                .iter()
                .position(|&c| c != b'#')
                .map(|n| rest[1 + n])
                == Some(b'"')
        {
            // A raw string: r"..", r#".."#, br#".."#.
            let hashes = rest[1..].iter().take_while(|&&c| c == b'#').count();
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            i += 2 + hashes;
            while i < s.len() && !s[i..].starts_with(&close) {
                i += 1;
            }
            i += close.len();
            out.extend_from_slice(b"\"\"");
        } else if s[i] == b'"' {
            i += 1;
            while i < s.len() && s[i] != b'"' {
                i += if s[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.extend_from_slice(b"\"\"");
        } else if s[i] == b'\'' && char_literal_len(rest).is_some() {
            i += char_literal_len(rest).unwrap();
            out.extend_from_slice(b"' '");
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The length of the char literal `rest` starts with (`'{'`, `'\''`, `'\u{7f}'`), or none
/// for a lifetime (`'a`).
fn char_literal_len(rest: &[u8]) -> Option<usize> {
    if rest.get(1) == Some(&b'\\') {
        let end = rest[3..].iter().position(|&c| c == b'\'')?;
        return Some(3 + end + 1);
    }
    let ch = std::str::from_utf8(&rest[1..rest.len().min(6)])
        .or_else(|e| std::str::from_utf8(&rest[1..1 + e.valid_up_to()]))
        .ok()?
        .chars()
        .next()?;
    let after = 1 + ch.len_utf8();
    (rest.get(after) == Some(&b'\'')).then_some(after + 1)
}

/// Lexed source without its `#[cfg(test)]` items: an item with a body up to its matching
/// brace, one without (`mod testutil;`, `use ..;`) up to its semicolon.
fn without_tests(code: &str) -> String {
    const MARK: &str = "#[cfg(test)]";
    let mut out = String::new();
    let mut rest = code;
    while let Some(at) = rest.find(MARK) {
        out.push_str(&rest[..at]);
        let s = rest.as_bytes();
        let mut i = at + MARK.len();
        let mut depth = 0usize;
        while i < s.len() {
            match s[i] {
                b'(' | b'[' => depth += 1,
                b')' | b']' => depth = depth.saturating_sub(1),
                b';' if depth == 0 => break,
                b'{' if depth == 0 => {
                    let mut braces = 0usize;
                    while i < s.len() {
                        match s[i] {
                            b'{' => braces += 1,
                            b'}' => {
                                braces -= 1;
                                if braces == 0 {
                                    break;
                                }
                            }
                            _ => {}
                        }
                        i += 1;
                    }
                    break;
                }
                _ => {}
            }
            i += 1;
        }
        rest = &rest[(i + 1).min(rest.len())..];
    }
    out.push_str(rest);
    out
}

/// The lines of code of a file, without comments and tests.
fn code(text: &str) -> Vec<String> {
    without_tests(&lexed(text))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// The module a file is (`ops/list.rs` is `[ops, list]`, `ops/mod.rs` is `[ops]`, `main.rs`
/// the crate root `[]`).
fn module_of(rel: &str) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .trim_end_matches(".rs")
        .split('/')
        .map(str::to_string)
        .collect();
    if matches!(parts.last().map(String::as_str), Some("mod" | "main")) {
        parts.pop();
    }
    parts
}

/// A path the parser read: where it leads, and the name it is known by where it is imported.
struct Leaf {
    path: Vec<String>,
    name: Option<String>,
}

/// Reads a use tree from `s[*i..]` onto `prefix` (`a::{b::C, d as e, self}`, `x::*`).
/// `crate`, `super` and `self` move the prefix as the compiler would.
fn tree(s: &[u8], i: &mut usize, mut prefix: Vec<String>, out: &mut Vec<Leaf>) {
    let skip_ws = |i: &mut usize| {
        while *i < s.len() && s[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    loop {
        skip_ws(i);
        match s.get(*i) {
            Some(b'{') => {
                *i += 1;
                loop {
                    skip_ws(i);
                    match s.get(*i) {
                        Some(b'}') => {
                            *i += 1;
                            return;
                        }
                        None => return,
                        _ => {}
                    }
                    let before = *i;
                    tree(s, i, prefix.clone(), out);
                    skip_ws(i);
                    if s.get(*i) == Some(&b',') {
                        *i += 1;
                    } else if *i == before {
                        return;
                    }
                }
            }
            Some(b'*') => {
                *i += 1;
                out.push(Leaf {
                    path: prefix,
                    name: None,
                });
                return;
            }
            _ => {}
        }
        let start = *i;
        while *i < s.len() && is_ident(s[*i]) {
            *i += 1;
        }
        let ident = String::from_utf8_lossy(&s[start..*i]).into_owned();
        match ident.as_str() {
            "" => return,
            "crate" => prefix.clear(),
            "super" => {
                prefix.pop();
            }
            "self" => {}
            _ => prefix.push(ident),
        }
        skip_ws(i);
        if s[*i..].starts_with(b"::") {
            *i += 2;
            continue;
        }
        let mut name = prefix.last().cloned();
        if s[*i..].starts_with(b"as") && s.get(*i + 2).is_some_and(|c| !is_ident(*c)) {
            *i += 2;
            skip_ws(i);
            let start = *i;
            while *i < s.len() && is_ident(s[*i]) {
                *i += 1;
            }
            name = Some(String::from_utf8_lossy(&s[start..*i]).into_owned());
        }
        out.push(Leaf { path: prefix, name });
        return;
    }
}

/// Where a word starts in `code`: not inside another word or after `::`.
fn words<'c>(code: &'c str, word: &'c str) -> impl Iterator<Item = usize> + 'c {
    code.match_indices(word)
        .map(|(at, _)| at)
        .filter(move |&at| {
            let before = &code.as_bytes()[..at];
            let after = code.as_bytes().get(at + word.len());
            !before.last().is_some_and(|&c| is_ident(c) || c == b':')
                && !after.is_some_and(|&c| is_ident(c))
        })
}

/// One file read for the graph: which module it is, the paths it names, and the names its
/// `use` lines bring in (a name to the path it stands for).
struct File {
    module: Vec<String>,
    paths: Vec<Vec<String>>,
    imports: BTreeMap<String, Vec<String>>,
}

fn read(rel: &str, text: &str, modules: &BTreeSet<Vec<String>>) -> File {
    let module = module_of(rel);
    let code = without_tests(&lexed(text));
    let s = code.as_bytes();
    let mut paths = Vec::new();
    for keyword in ["crate", "super", "self"] {
        for at in words(&code, keyword) {
            if !s[at + keyword.len()..].starts_with(b"::") {
                continue;
            }
            let mut leaves = Vec::new();
            tree(s, &mut { at }, module.clone(), &mut leaves);
            paths.extend(leaves.into_iter().map(|l| l.path));
        }
    }
    let mut imports = BTreeMap::new();
    for at in words(&code, "use") {
        let mut leaves = Vec::new();
        let mut i = at + "use".len();
        while s.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        let first: String = code[i..]
            .bytes()
            .take_while(|&c| is_ident(c))
            .map(char::from)
            .collect();
        let mut child = module.clone();
        child.push(first.clone());
        let prefix = if ["crate", "super", "self"].contains(&first.as_str()) {
            module.clone()
        } else if modules.contains(&child) {
            // `use context::Context` in a folder's mod.rs: a child module.
            module.clone()
        } else {
            continue; // another crate
        };
        tree(s, &mut i, prefix, &mut leaves);
        for leaf in leaves {
            if let Some(name) = leaf.name {
                imports.insert(name, leaf.path.clone());
            }
            paths.push(leaf.path);
        }
    }
    File {
        module,
        paths,
        imports,
    }
}

/// The arrows between modules: for each folder (`""` for `src/` itself), which of its
/// modules names which.
type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn graph_of(sources: &[(String, String)]) -> Graph {
    let modules: BTreeSet<Vec<String>> = sources.iter().map(|(rel, _)| module_of(rel)).collect();
    let files: Vec<File> = sources
        .iter()
        .map(|(rel, text)| read(rel, text, &modules))
        .collect();
    let imports: BTreeMap<&Vec<String>, &BTreeMap<String, Vec<String>>> =
        files.iter().map(|f| (&f.module, &f.imports)).collect();
    // `super::Context` is `context::Context` where `super` imports it from there.
    let resolve = |mut path: Vec<String>| {
        for _ in 0..8 {
            let known = (0..=path.len())
                .rev()
                .find(|&k| modules.contains(&path[..k]))
                .unwrap_or(0);
            match (path.get(known), imports.get(&path[..known].to_vec())) {
                (Some(name), Some(names)) if names.contains_key(name) => {
                    let mut to = names[name].clone();
                    if to == path[..=known] {
                        break;
                    }
                    to.extend_from_slice(&path[known + 1..]);
                    path = to;
                }
                _ => break,
            }
        }
        path
    };
    let mut graph = Graph::new();
    for file in &files {
        for path in &file.paths {
            let to = resolve(path.clone());
            let common = file.module.iter().zip(&to).take_while(|(a, b)| a == b);
            let k = common.count();
            if k >= file.module.len() || k >= to.len() || !modules.contains(&to[..=k]) {
                continue;
            }
            graph
                .entry(file.module[..k].join("/"))
                .or_default()
                .entry(file.module[k].clone())
                .or_default()
                .insert(to[k].clone());
        }
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

/// Every cycle's description (one per module it goes through).
fn cycles(graph: &Graph) -> Vec<String> {
    let mut found = Vec::new();
    for (folder, arrows) in graph {
        for module in arrows.keys() {
            if let Some(cycle) = cycle_from(arrows, module) {
                found.push(format!("in src/{folder}: {}", cycle.join(" -> ")));
            }
        }
    }
    found
}

#[test]
fn the_modules_import_one_another_without_a_cycle() {
    let graph = graph_of(&sources());
    assert!(graph[""]["ops"].contains("plan"), "{graph:?}");
    assert!(graph["ops"]["list"].contains("context"), "{graph:?}");
    let found = cycles(&graph);
    assert!(found.is_empty(), "module cycles: {found:#?}");
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

#[cfg(test)]
mod checker {
    //! The checker itself, on small made-up trees: it must be able to fail.

    use super::*;

    fn found(files: &[(&str, &str)]) -> Vec<String> {
        let sources: Vec<(String, String)> = files
            .iter()
            .map(|(rel, text)| (rel.to_string(), text.to_string()))
            .collect();
        cycles(&graph_of(&sources))
    }

    #[test]
    fn a_cycle_through_a_nested_group() {
        let files = [
            ("a.rs", "use crate::{x::{y}, b::{c::D, e}};\n"),
            ("b/mod.rs", "mod c;\n"),
            ("b/c.rs", "pub fn f() { crate::a::g() }\n"),
            ("x.rs", ""),
        ];
        assert_eq!(
            found(&files),
            ["in src/: a -> b -> a", "in src/: b -> a -> b"]
        );
    }

    #[test]
    fn a_cycle_between_siblings_through_super() {
        let files = [
            ("f/mod.rs", "mod p;\nmod q;\n"),
            ("f/p.rs", "use super::q::Q;\n"),
            (
                "f/q.rs",
                "use super::super::f::{self as me};\nfn g() { me::p::h() }\n",
            ),
        ];
        // `me::p` is not followed (an alias of a module), `super::{p}` would be:
        assert!(found(&files).is_empty());
        let files = [
            ("f/mod.rs", "mod p;\nmod q;\n"),
            ("f/p.rs", "use super::q::Q;\n"),
            ("f/q.rs", "use super::{p};\n"),
        ];
        assert_eq!(
            found(&files),
            ["in src/f: p -> q -> p", "in src/f: q -> p -> q"]
        );
    }

    #[test]
    fn a_cycle_through_a_name_the_parent_imports() {
        let files = [
            ("f/mod.rs", "mod p;\nmod q;\npub use q::Q;\n"),
            ("f/p.rs", "use super::Q;\n"),
            ("f/q.rs", "fn g() { self::super::p::h() }\n"),
        ];
        assert_eq!(
            found(&files),
            ["in src/f: p -> q -> p", "in src/f: q -> p -> q"]
        );
    }

    #[test]
    fn a_cycle_after_a_test_module_line_and_a_test_block() {
        let files = [
            (
                "a.rs",
                "#[cfg(test)] mod testutil;\n#[cfg(test)]\nmod tests { fn f() { let _ = '{'; crate::c::x(); } }\nuse crate::b;\n",
            ),
            ("b.rs", "// crate::c\nconst S: &str = \"crate::c::{\";\nuse crate::a;\n"),
            ("c.rs", "use crate::a;\n"),
        ];
        assert_eq!(
            found(&files),
            ["in src/: a -> b -> a", "in src/: b -> a -> b"]
        );
    }

    #[test]
    fn tests_comments_and_literals_are_not_code() {
        let text = "fn a() {}\n// note\n#[cfg(test)]\nmod tests {\n    fn b() { \"}\"; }\n}\nfn c<'a>(x: &'a str) -> char { '}' }\n";
        assert_eq!(
            code(text),
            ["fn a() {}", "fn c<'a>(x: &'a str) -> char { ' ' }"]
        );
    }
}
