//! Usage errors teach: clap's whole message (the suggestion, the possible values, the tip)
//! after pgkick's prefix, exit 2, before anything connects; bare `pgkick` is a usage error
//! too; `-?` is psql's help; `--state` takes pg_stat_activity's own spellings.

use crate::harness::*;

/// pgkick run with no server at all: usage errors never get as far as connecting.
fn usage(args: &[&str]) -> Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pgkick"));
    cmd.args(args)
        .env("PGHOST", "/nonexistent-pgkick-socket-dir")
        .stdin(std::process::Stdio::null());
    run(&mut cmd)
}

#[test]
fn usage_errors_keep_clap_s_suggestions_and_exit_2() {
    let cases: [(&[&str], &str); 5] = [
        (
            &["termiante"],
            "pgkick: unrecognized subcommand 'termiante'\n\n  tip: a similar subcommand exists: \
             'terminate'\n\nUsage: pgkick [OPTIONS] <COMMAND>\n\nFor more information, try \
             '--help'.\n",
        ),
        (
            &["list", "--dbb", "x"],
            "pgkick: unexpected argument '--dbb' found\n\n  tip: a similar argument exists: \
             '--db'\n\nUsage: pgkick list --db <NAME>\n\nFor more information, try '--help'.\n",
        ),
        (
            &["list", "--output", "yaml"],
            "pgkick: invalid value 'yaml' for '--output <OUTPUT>'\n  [possible values: table, \
             json, jsonl]\n\nFor more information, try '--help'.\n",
        ),
        (
            &["-p", "abc", "list"],
            "pgkick: invalid value 'abc' for '--port <PORT>': 'abc' is not a port number: give \
             a number from 1 to 65535 (or a comma-separated list, one per host)\n\nFor more \
             information, try '--help'.\n",
        ),
        (
            &["list", "--state", "sleepy"],
            "pgkick: invalid value 'sleepy' for '--state <STATE>'\n  [possible values: active, \
             idle, idle-in-transaction, idle-in-transaction-aborted, fastpath, disabled]\n\nFor \
             more information, try '--help'.\n",
        ),
    ];
    for (args, stderr) in cases {
        let out = usage(args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert_eq!(out.stderr, stderr, "{args:?}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    // A port list with a bad entry, and good ones (nothing listens there: exit 1, not 2).
    assert_eq!(usage(&["-p", "5432,70000", "list"]).code, 2);
    let hosts = ["-h", "/nonexistent-a,/nonexistent-b,/nonexistent-c"];
    assert_eq!(
        usage(&[&hosts[..], &["-p", "5432,,5433", "list"]].concat()).code,
        1
    );
    // A connection option libpq would refuse is malformed input too: exit 2 before
    // connecting, from the flags, -d or the environment alike.
    assert_eq!(usage(&["-d", "sslmode=verify-everything", "list"]).code, 2);
    assert_eq!(usage(&["-d", "hots=x", "list"]).code, 2);
}

#[test]
fn bare_pgkick_prints_help_on_stderr_and_exits_2_and_dash_question_mark_is_help() {
    let out = usage(&[]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    // The help itself (clap's short form), not an error line: the description first, then
    // the usage, every subcommand and the exit statuses.
    assert!(
        out.stderr.starts_with(
            "List, cancel and terminate PostgreSQL sessions; lock databases and roles against \
             new connections\n\nUsage: pgkick [OPTIONS] <COMMAND>\n"
        ),
        "{}",
        out.stderr
    );
    for sub in ["list", "cancel", "terminate", "lock", "unlock", "conninfo"] {
        assert!(
            out.stderr.contains(&format!("\n  {sub} ")),
            "{sub}: {}",
            out.stderr
        );
    }
    assert!(out.stderr.contains("Exit status:"), "{}", out.stderr);
    assert!(!out.stderr.contains("pgkick: "), "{}", out.stderr);
    assert!(
        out.stderr.contains("Usage: pgkick [OPTIONS] <COMMAND>")
            && out
                .stderr
                .contains("terminate  Terminate the matching sessions"),
        "{}",
        out.stderr
    );
    for args in [&["-?"][..], &["--help"], &["list", "-?"]] {
        let out = usage(args);
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        assert!(
            out.stdout.contains("Usage: pgkick"),
            "{args:?}: {}",
            out.stdout
        );
        assert!(out.stderr.is_empty(), "{args:?}: {}", out.stderr);
    }
}

#[test]
fn state_takes_pg_stat_activity_s_own_spellings() {
    let server = Server::shared();
    let db = server.create_db("usage_state");
    let role = server.create_role("usage_state", "");
    let session = Session::idle_in_transaction(server, &db, &role, "usage-state");
    for spelling in ["idle in transaction", "idle-in-transaction"] {
        let out = server
            .kick(["list", "--json", "--db", &db, "--state", spelling])
            .run();
        assert_eq!(pids(&out), set(&[session.pid]), "{spelling}");
    }
    for spelling in [
        "idle in transaction (aborted)",
        "fastpath function call",
        "fastpath-function-call",
    ] {
        let out = server
            .kick(["list", "--json", "--db", &db, "--state", spelling])
            .run();
        assert!(pids(&out).is_empty(), "{spelling}: {}", out.stdout);
    }
}

/// A `--pgbouncer` value that is not a pooler's connection string, whatever is wrong with it,
/// is a usage error found before connecting, as a bad `-d` is (fleet.rs has the same over
/// two servers). The server is a fake that records every connection: none may reach it.
#[test]
fn usage_a_malformed_pgbouncer_value_exits_2_before_connecting() {
    use crate::fakepg::{Ask, FakePg};
    let fake = FakePg::start(Ask::Cleartext);
    let server = format!("{} user=u sslmode=disable", fake.conninfo());
    for (command, value, says) in [
        ("lock", "pgbouncer-host", "is not a connection string"),
        (
            "lock",
            "hots=x",
            "--pgbouncer: invalid connection option \"hots\"",
        ),
        (
            "lock",
            "host='p port=6432",
            "--pgbouncer: unterminated quoted string",
        ),
        (
            "unlock",
            "host=p sslmode=sometimes",
            "--pgbouncer: invalid sslmode value",
        ),
        (
            "lock",
            "postgresql://a:much-longer-secret@[::1",
            "--pgbouncer: end of string",
        ),
    ] {
        let args = ["-d", &server, command, "--db", "x", "--pgbouncer", value];
        let out = usage(&args);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert_one_line(&out.stderr, &[says]);
        assert!(!out.stderr.contains("secret"), "{}", out.stderr);
    }
    assert!(fake.visits().is_empty(), "{:?}", fake.visits());
}
