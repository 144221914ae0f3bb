//! `pgkick cancel` and `pgkick terminate`: what happens on the server, guards, permissions.

use std::time::Duration;

use crate::harness::*;

#[test]
fn terminate_ends_exactly_the_matched_sessions() {
    let server = Server::shared();
    let db = server.create_db("term_exact");
    let role = server.create_role("term", "");
    let idle = Session::idle(server, &db, &role, "app");
    let in_xact = Session::idle_in_transaction(server, &db, &role, "app");
    let tcp_in_xact = Session::idle_in_transaction(server, &db, SUPERUSER, "app");
    let active = Session::active(server, &db, &role, "app", "SELECT pg_sleep(60)");
    let other_db = server.create_db("term_bystander");
    let bystander = Session::idle_in_transaction(server, &other_db, &role, "app");

    // No terminal: no prompt, even without --yes.
    assert_eq!(
        server
            .kick([
                "terminate",
                "--json",
                "--db",
                &db,
                "--state",
                "idle-in-transaction",
                "--user",
                &role,
            ])
            .outcomes(),
        expect(&[(in_xact.pid, "terminated")])
    );
    assert!(wait_until(Duration::from_secs(5), || !in_xact.alive(server)));
    for s in [&idle, &tcp_in_xact, &active, &bystander] {
        assert!(s.alive(server), "{} was not matched but is gone", s.pid);
    }

    // --wait returns once they are gone.
    assert_eq!(
        server
            .kick(["terminate", "--json", "--wait", "--db", &db])
            .outcomes(),
        expect(&[
            (idle.pid, "terminated"),
            (tcp_in_xact.pid, "terminated"),
            (active.pid, "terminated")
        ])
    );
    for s in [&idle, &tcp_in_xact, &active] {
        assert!(!s.alive(server), "{} survived terminate --wait", s.pid);
    }
    // The client sees the FATAL 57P01, or just the connection closing.
    assert!(
        matches!(active.query_result(Duration::from_secs(5)), Some(Err(_))),
        "the active query was not ended"
    );
    assert!(bystander.alive(server));
}

#[test]
fn cancel_stops_the_query_and_keeps_the_connection() {
    let server = Server::shared();
    let db = server.create_db("cancel");
    let active = Session::active(server, &db, SUPERUSER, "app", "SELECT pg_sleep(60)");
    let idle = Session::idle(server, &db, SUPERUSER, "app");
    assert_eq!(
        server
            .kick(["cancel", "--json", "--wait", "--db", &db, "--state", "active",])
            .outcomes(),
        expect(&[(active.pid, "cancelled")])
    );
    assert_eq!(
        active.query_result(Duration::from_secs(5)),
        Some(Err("57014".into()))
    );
    assert!(active.alive(server), "cancel must keep the connection");
    assert!(idle.alive(server));
}

#[test]
fn guards_refuse_and_change_nothing() {
    let server = Server::shared();
    let db = server.create_db("guards");
    let a = Session::idle(server, &db, SUPERUSER, "app");
    let b = Session::idle(server, &db, SUPERUSER, "app");

    // No filter at all (exclusions alone do not count): refused before anything happens.
    for args in [
        &["terminate"][..],
        &["cancel"],
        &["terminate", "--exclude-user", "x"],
    ] {
        let out = server.kick(args).status(4).run();
        assert!(out.stderr.contains("--all"), "{}", out.stderr);
    }
    // More than --max.
    let out = server
        .kick(["terminate", "--db", &db, "--max", "1"])
        .status(4)
        .run();
    assert!(out.stderr.contains("--max 1"), "{}", out.stderr);
    // --max at the count is fine in a dry run; the dry run shows targets and SQL.
    let out = server
        .kick(["terminate", "--db", &db, "--max", "2", "--dry-run"])
        .run();
    assert!(out.stdout.contains("would_terminate"), "{}", out.stdout);
    assert!(
        out.stdout.contains("pg_catalog.pg_terminate_backend"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains(&a.pid.to_string()) && out.stdout.contains(&b.pid.to_string()));
    // JSON dry run: stdout stays JSON, the SQL goes to stderr.
    let out = run(server
        .pgkick()
        .args(["cancel", "--json", "-n", "--db", &db]));
    assert_eq!(
        outcomes(&out),
        expect(&[(a.pid, "would_cancel"), (b.pid, "would_cancel")])
    );
    assert!(
        out.stderr.contains("pg_catalog.pg_cancel_backend"),
        "{}",
        out.stderr
    );
    assert!(
        a.alive(server) && b.alive(server),
        "a guard or dry run changed something"
    );
}

#[test]
fn terminate_all_spares_its_own_session_and_non_client_backends() {
    let server = Server::start();
    let db = server.create_db("all");
    let s1 = Session::idle(&server, &db, SUPERUSER, "x");
    let s2 = Session::idle_in_transaction(&server, "postgres", SUPERUSER, "y");
    let out = server
        .kick(["terminate", "--all", "--yes", "--wait", "--json"])
        .run();
    assert_eq!(
        outcomes(&out),
        expect(&[(s1.pid, "terminated"), (s2.pid, "terminated")])
    );
    assert!(
        !out.stdout.contains("pgkick\""),
        "pgkick terminated itself: {}",
        out.stdout
    );
    // Background processes still run: the server still accepts connections and has them.
    let mut c = server.connect("postgres");
    if server.version_num() >= 100000 {
        let n: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type IN \
                 ('checkpointer', 'walwriter', 'autovacuum launcher')",
                &[],
            )
            .unwrap()
            .get(0);
        assert_eq!(n, 3);
    }
}

#[test]
fn cancel_first_terminates_a_session_that_swallows_cancel_and_spares_one_that_stopped() {
    let server = Server::shared();
    let db = server.create_db("cancel_first");
    let stubborn = Session::active(server, &db, SUPERUSER, "stubborn", SWALLOWS_CANCEL);
    let polite = Session::active(server, &db, SUPERUSER, "polite", "SELECT pg_sleep(60)");
    assert_eq!(
        server
            .kick([
                "terminate",
                "--json",
                "--db",
                &db,
                "--state",
                "active",
                "--cancel-first",
                "--grace",
                "1s",
                "--wait",
            ])
            .outcomes(),
        expect(&[(stubborn.pid, "terminated"), (polite.pid, "cancelled")])
    );
    assert!(!stubborn.alive(server), "the stubborn session survived");
    assert_eq!(
        polite.query_result(Duration::from_secs(5)),
        Some(Err("57014".into()))
    );
    assert!(
        polite.alive(server),
        "the session whose query stopped lost its connection"
    );
}

#[test]
fn cancel_wait_reports_a_query_that_keeps_running() {
    let server = Server::shared();
    let db = server.create_db("cancel_stubborn");
    let stubborn = Session::active(server, &db, SUPERUSER, "stubborn", SWALLOWS_CANCEL);
    assert_eq!(
        server
            .kick([
                "cancel",
                "--json",
                "--db",
                &db,
                "--wait",
                "--wait-timeout",
                "1s",
            ])
            .status(3)
            .outcomes(),
        expect(&[(stubborn.pid, "still_running")])
    );
    assert!(stubborn.alive(server));
    let out = run(server
        .pgkick()
        .args(["terminate", "--db", &db, "--wait", "-q"]));
    assert_eq!((out.code, out.stdout.as_str()), (0, ""), "{}", out.stderr);
    assert!(!stubborn.alive(server));
}

#[test]
fn pg_signal_backend_member_terminates_all_but_superuser_sessions() {
    let server = Server::shared();
    let db = server.create_db("signal_member");
    let kicker = server.create_role("kicker", "IN ROLE pg_signal_backend");
    let alice = server.create_role("alice", "");
    let bob = server.create_role("bob", "");
    let su = Session::idle(server, &db, SUPERUSER, "admin");
    let a = Session::idle_in_transaction(server, &db, &alice, "app");
    let b = Session::active(server, &db, &bob, "app", "SELECT pg_sleep(60)");

    let out = server
        .kick(["terminate", "--json", "--db", &db, "--wait"])
        .user(&kicker)
        .status(3)
        .run();
    assert_eq!(
        outcomes(&out),
        expect(&[
            (su.pid, "permission_denied"),
            (a.pid, "terminated"),
            (b.pid, "terminated")
        ])
    );
    assert!(su.alive(server), "the superuser's session must survive");
    assert!(
        !a.alive(server) && !b.alive(server),
        "the others must be gone"
    );
    // Without pg_read_all_stats the details are hidden; pgkick says so.
    assert!(out.stderr.contains("pg_read_all_stats"), "{}", out.stderr);
}

#[test]
fn plain_role_signals_only_its_own_sessions() {
    let server = Server::shared();
    let db = server.create_db("signal_own");
    let me = server.create_role("me", "");
    let other = server.create_role("other", "");
    let mine = Session::idle(server, &db, &me, "app");
    let theirs = Session::idle(server, &db, &other, "app");
    assert_eq!(
        server
            .kick(["terminate", "--json", "--db", &db])
            .user(&me)
            .status(3)
            .outcomes(),
        expect(&[(mine.pid, "terminated"), (theirs.pid, "permission_denied")])
    );
    assert!(wait_until(Duration::from_secs(5), || !mine.alive(server)));
    assert!(theirs.alive(server));
    // Its own sessions' query text is visible; others' is not, and --query never matches it.
    let theirs_active = Session::active(server, &db, &other, "app", "SELECT pg_sleep(60)");
    let out = run(server
        .pgkick_as(&me)
        .args(["list", "--json", "--db", &db, "--query", "."]));
    assert_eq!(pids(&out), set(&[]));
    assert!(out.stderr.contains("pg_read_all_stats"), "{}", out.stderr);
    let out = run(server.pgkick_as(&me).args(["list", "--json", "--db", &db]));
    assert_eq!(pids(&out), set(&[theirs.pid, theirs_active.pid]));
    assert_eq!(out.json()[0]["query"], "<insufficient privilege>");
}

#[test]
fn a_session_that_ended_is_reported_not_an_error() {
    let server = Server::shared();
    let db = server.create_db("gone");
    let s = Session::idle(server, &db, SUPERUSER, "app");
    let pid = s.pid;
    drop(s);
    // The pid was matched by nobody; pgkick with --pid sees nothing and exits 0.
    assert!(wait_until(Duration::from_secs(5), || {
        pids(&run(server.pgkick().args([
            "list",
            "--json",
            "--pid",
            &pid.to_string(),
        ])))
        .is_empty()
    }));
    let out = run(server
        .pgkick()
        .args(["terminate", "--json", "--pid", &pid.to_string()]));
    assert_eq!((out.code, out.stdout.trim()), (0, "[]"), "{}", out.stderr);
}

/// Runs pgkick on a pseudo-terminal; once it asks, types `answer` (with `None`, waits for it to
/// finish without asking).
fn on_a_terminal(cmd: &std::process::Command, answer: Option<&str>) -> Output {
    let mut terminal = Terminal::start(cmd);
    if let Some(answer) = answer {
        terminal.wait_for("[y/N]");
        terminal.type_keys(answer.as_bytes());
    }
    terminal.finish(Duration::from_secs(30))
}

#[test]
fn a_terminal_is_asked_and_a_no_changes_nothing() {
    let server = Server::shared();
    let db = server.create_db("prompt");
    let s = Session::idle(server, &db, SUPERUSER, "app");
    let mut cmd = server.pgkick();
    cmd.args(["terminate", "--db", &db]);

    let out = on_a_terminal(&cmd, Some("n\n"));
    assert_eq!(out.code, 4, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout.contains("Terminate this session? [y/N]"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(&s.pid.to_string()),
        "the targets are shown first: {}",
        out.stdout
    );
    assert!(s.alive(server), "declined, yet the session is gone");

    let out = on_a_terminal(&cmd, Some("y\n"));
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(wait_until(Duration::from_secs(5), || !s.alive(server)));

    // --yes does not ask, even on a terminal.
    let s = Session::idle(server, &db, SUPERUSER, "app");
    let mut cmd = server.pgkick();
    cmd.args(["terminate", "--yes", "--db", &db]);
    let out = on_a_terminal(&cmd, None);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert!(!out.stdout.contains("[y/N]"), "{}", out.stdout);
    assert!(wait_until(Duration::from_secs(5), || !s.alive(server)));
}

/// A typo'd --db or --user (or their --exclude- forms) matches nothing: cancel and terminate
/// refuse with the closest existing name (exit 1, nothing signalled), list says so on stderr,
/// and the existing names found in the same statement.
#[test]
fn typos_in_db_and_user_names_are_refused_with_the_closest_name() {
    let server = Server::shared();
    let db = server.create_db("myapp_production");
    let role = server.create_role("myapp_worker", "");
    let session = Session::idle(server, &db, &role, "typo-victim");
    let db_typo = db.replacen("production", "prodution", 1);
    let role_typo = role.replacen("worker", "wroker", 1);
    for (flag, typo, close) in [
        ("--db", db_typo.as_str(), db.as_str()),
        ("--user", role_typo.as_str(), role.as_str()),
        ("--exclude-db", db_typo.as_str(), db.as_str()),
        ("--exclude-user", role_typo.as_str(), role.as_str()),
    ] {
        let kind = if flag.ends_with("db") {
            "database"
        } else {
            "role"
        };
        for verb in ["cancel", "terminate"] {
            let out = server
                .kick([verb, "--yes", "--json", flag, typo])
                .args(if flag.starts_with("--exclude") {
                    vec!["--db", db.as_str()]
                } else {
                    vec![]
                })
                .status(1)
                .run();
            assert_one_line(
                &out.stderr,
                &[
                    &format!("{flag} {typo}: the server has no {kind} of that name"),
                    &format!("(did you mean {close}?)"),
                    "nothing was signalled",
                ],
            );
            assert!(out.stdout.is_empty(), "{}", out.stdout);
            assert!(session.alive(server), "{verb} {flag}");
        }
        // list: the sessions it finds, and a warning.
        let out = server.kick(["list", "--json", flag, typo]).run();
        assert!(
            out.stderr.contains(&format!(
                "warning: {flag} {typo}: the server has no {kind} of that name (did you mean \
                 {close}?)"
            )),
            "{}",
            out.stderr
        );
    }
    // A name far from every other: no suggestion. Two typos: both named.
    let out = server
        .kick([
            "terminate",
            "--yes",
            "--db",
            "zzqqxx_nothing_like_it",
            "--user",
            &role_typo,
        ])
        .status(1)
        .run();
    assert!(
        out.stderr
            .contains("--db zzqqxx_nothing_like_it: the server has no database of that name;")
            && out.stderr.contains(&format!("--user {role_typo}")),
        "{}",
        out.stderr
    );
    // terminate --lock: refused before the lock.
    server
        .kick(["terminate", "--yes", "--lock", "--db", &db_typo])
        .status(1)
        .fails_with(&[
            "the server has no database of that name",
            "nothing was signalled",
        ]);
    assert!(db_exists(server, &db) && session.alive(server));
    // --every: the first round's typo ends the loop at once (exit 1), not a failed round
    // retried every period for ever.
    let started = std::time::Instant::now();
    server
        .kick([
            "terminate",
            "--yes",
            "--every",
            "1s",
            "--rounds",
            "30",
            "--db",
            &db_typo,
        ])
        .status(1)
        .fails_with(&[
            "the server has no database of that name",
            "nothing was signalled",
        ]);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "the loop went on after the typo"
    );
    assert!(session.alive(server));
    // The right names still work, and say nothing of typos.
    let out = server
        .kick(["terminate", "--yes", "--json", "--db", &db, "--user", &role])
        .run();
    assert_eq!(outcomes(&out), expect(&[(session.pid, "terminated")]));
    assert!(!out.stderr.contains("no database"), "{}", out.stderr);
}
