//! The committed bash completion (`completions/pgkick.bash`), loaded in a real bash: it offers
//! the subcommands and each subcommand's flags. (That the file matches the clap definitions is
//! checked by the unit test in `src/docs.rs`.)

use std::path::PathBuf;
use std::process::Command;

use crate::harness::{run, Output};

/// Runs clap_complete's `_pgkick` function as bash would for the command line `words`, the
/// last word being the one under the cursor; returns the offered completions.
fn complete(words: &[&str]) -> Vec<String> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("completions/pgkick.bash");
    assert!(script.is_file(), "{} is missing", script.display());
    let program = r#"source "$1"; shift
        COMP_WORDS=("$@"); COMP_CWORD=$(( $# - 1 ))
        COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
        _pgkick pgkick "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
        printf '%s\n' "${COMPREPLY[@]}""#;
    let out: Output = run(Command::new("bash")
        .arg("--norc")
        .arg("--noprofile")
        .arg("-c")
        .arg(program)
        .arg("pgkick-completion")
        .arg(&script)
        .args(words));
    assert_eq!(out.code, 0, "bash failed: {}", out.stderr);
    out.stdout
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// The subcommands as `pgkick --help` lists them (clap renders that list from its
/// definitions), without clap's own `help`.
fn subcommands() -> Vec<String> {
    let out = run(Command::new(env!("CARGO_BIN_EXE_pgkick")).arg("--help"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let commands = out
        .stdout
        .split_once("\nCommands:\n")
        .unwrap_or_else(|| panic!("no Commands: in --help\n{}", out.stdout))
        .1;
    let names: Vec<String> = commands
        .lines()
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| *name != "help")
        .map(str::to_string)
        .collect();
    assert!(names.len() >= 6, "{names:?}");
    names
}

#[test]
fn completions_bash_offers_the_subcommands() {
    let offered = complete(&["pgkick", ""]);
    let subs = subcommands();
    assert!(subs.iter().any(|s| s == "conninfo"), "{subs:?}");
    for sub in &subs {
        assert!(
            offered.iter().any(|o| o == sub),
            "{sub} not offered: {offered:?}"
        );
    }
    let offered = complete(&["pgkick", "te"]);
    assert_eq!(offered, vec!["terminate"]);
}

#[test]
fn completions_bash_offers_each_subcommands_flags() {
    let offered = complete(&["pgkick", "terminate", "--ca"]);
    assert_eq!(offered, vec!["--cancel-first"]);
    let offered = complete(&["pgkick", "list", "--exclude-"]);
    for flag in [
        "--exclude-db",
        "--exclude-user",
        "--exclude-app",
        "--exclude-pid",
    ] {
        assert!(offered.iter().any(|o| o == flag), "{flag}: {offered:?}");
    }
    let offered = complete(&["pgkick", "terminate", "--root"]);
    assert_eq!(offered, vec!["--root-blocker"]);
    let offered = complete(&["pgkick", "list", "--tr"]);
    assert_eq!(offered, vec!["--tree"]);
    // Connection flags are global: offered after the subcommand too.
    let offered = complete(&["pgkick", "cancel", "--no-pa"]);
    assert_eq!(offered, vec!["--no-password"]);
    // Flags of other subcommands are not.
    assert!(complete(&["pgkick", "list", "--cancel"]).is_empty());
}

#[test]
fn completions_bash_offers_enum_values() {
    let offered = complete(&["pgkick", "list", "--state", "idle-in"]);
    assert_eq!(
        offered,
        vec!["idle-in-transaction", "idle-in-transaction-aborted"]
    );
    let offered = complete(&["pgkick", "lock", "--method", "conn"]);
    assert_eq!(offered, vec!["connection-limit"]);
}
