//! Least privilege, live: what each kind of non-superuser role can do with pgkick, and what is
//! reported as `permission_denied` (exit 3, the other targets still acted on). Every case is
//! checked on the server (sessions alive or gone, queries running or cancelled), not only on
//! pgkick's report.
//!
//! Covered elsewhere: a pg_signal_backend member terminating all but a superuser's sessions,
//! and a plain role terminating its own sessions (`signal.rs`); a database owner locking and
//! unlocking its database (`lock.rs`); walsenders and autovacuum workers (`backends.rs`).

use std::time::Duration;

use crate::harness::*;

const SLEEP: &str = "SELECT pg_sleep(60)";

/// Cancelled: the query ended with 57014 and the connection is still there.
fn assert_cancelled(server: &Server, s: &Session) {
    assert_eq!(
        s.query_result(Duration::from_secs(5)),
        Some(Err("57014".into())),
        "the query of {} was not cancelled",
        s.pid
    );
    assert!(s.alive(server), "cancel ended the connection of {}", s.pid);
}

/// Untouched: still connected and, for an active session, its query still running.
fn assert_untouched(server: &Server, s: &Session) {
    assert!(s.alive(server), "session {} is gone", s.pid);
    assert_eq!(
        s.query_result(Duration::ZERO),
        None,
        "the query of {} stopped",
        s.pid
    );
}

#[test]
fn pg_signal_backend_member_cancels_any_non_superuser_query_never_a_superusers() {
    let server = Server::shared();
    let db = server.create_db("priv_member");
    let kicker = server.create_role("kicker", "IN ROLE pg_signal_backend");
    let alice = server.create_role("alice", "");
    let su = Session::active(server, &db, SUPERUSER, "admin", SLEEP);
    let a = Session::active(server, &db, &alice, "app", SLEEP);

    // list works, and shows every session (details hidden: no pg_read_all_stats).
    let out = run(server
        .pgkick_as(&kicker)
        .args(["list", "--json", "--db", &db]));
    assert_eq!(pids(&out), set(&[su.pid, a.pid]));

    assert_eq!(
        server
            .kick(["cancel", "--json", "--db", &db, "--wait"])
            .user(&kicker)
            .status(3)
            .outcomes(),
        expect(&[(su.pid, "permission_denied"), (a.pid, "cancelled")])
    );
    assert_cancelled(server, &a);
    assert_untouched(server, &su);

    // Only superuser sessions matched: nothing acted on, every one reported, exit 3.
    assert_eq!(
        server
            .kick([
                "terminate",
                "--json",
                "--db",
                &db,
                "--user",
                SUPERUSER,
                "--yes",
            ])
            .user(&kicker)
            .status(3)
            .outcomes(),
        expect(&[(su.pid, "permission_denied")])
    );
    assert_untouched(server, &su);
}

#[test]
fn database_owner_has_no_signal_rights_over_other_users_sessions() {
    let server = Server::shared();
    let owner = server.create_role("owner", "");
    let alice = server.create_role("alice", "");
    let db = unique_name("priv_owned");
    server.sql(&format!("CREATE DATABASE \"{db}\" OWNER \"{owner}\""));
    let own = Session::idle(server, &db, &owner, "own");
    let a = Session::idle_in_transaction(server, &db, &alice, "app");
    let su = Session::idle(server, &db, SUPERUSER, "admin");

    let out =
        run(server
            .pgkick_as(&owner)
            .args(["terminate", "--json", "--db", &db, "--yes", "--wait"]));
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert_eq!(
        outcomes(&out),
        expect(&[
            (own.pid, "terminated"),
            (a.pid, "permission_denied"),
            (su.pid, "permission_denied")
        ])
    );
    assert!(!own.alive(server));
    assert!(a.alive(server) && su.alive(server));

    // terminate --lock: the owner may lock its database (new connections are refused), but
    // the sessions already inside stay, reported as permission_denied.
    let out =
        run(server
            .pgkick_as(&owner)
            .args(["terminate", "--json", "--db", &db, "--lock", "--yes"]));
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(a.alive(server) && su.alive(server));
    let allowed: bool = server
        .connect("postgres")
        .query_one(
            "SELECT datallowconn FROM pg_database WHERE datname = $1",
            &[&db],
        )
        .unwrap()
        .get(0);
    assert!(!allowed, "the owner's --lock did not lock {db}");
    server.kick(["unlock", "--db", &db]).user(&owner).run();
    let _back = Session::idle(server, &db, &alice, "back");
}

#[test]
fn plain_role_signals_its_own_sessions_and_those_of_roles_it_is_member_of() {
    let server = Server::shared();
    let db = server.create_db("priv_plain");
    let me = server.create_role("me", "");
    let team = server.create_role("team", "");
    let other = server.create_role("other", "");
    server.sql(&format!("GRANT \"{team}\" TO \"{me}\""));
    let mine = Session::active(server, &db, &me, "app", SLEEP);
    let teams = Session::active(server, &db, &team, "app", SLEEP);
    let theirs = Session::active(server, &db, &other, "app", SLEEP);

    assert_eq!(
        server
            .kick(["cancel", "--json", "--db", &db, "--wait"])
            .user(&me)
            .status(3)
            .outcomes(),
        expect(&[
            (mine.pid, "cancelled"),
            (teams.pid, "cancelled"),
            (theirs.pid, "permission_denied")
        ])
    );
    assert_cancelled(server, &mine);
    assert_cancelled(server, &teams);
    assert_untouched(server, &theirs);

    // Only others' sessions matched: all reported, none acted on.
    assert_eq!(
        server
            .kick([
                "terminate",
                "--json",
                "--db",
                &db,
                "--user",
                &other,
                "--yes",
            ])
            .user(&me)
            .status(3)
            .outcomes(),
        expect(&[(theirs.pid, "permission_denied")])
    );
    assert_untouched(server, &theirs);
}

#[test]
fn without_pg_read_all_stats_hidden_sessions_match_no_state_query_or_age_filter() {
    let server = Server::shared();
    let db = server.create_db("priv_hidden");
    let me = server.create_role("me", "");
    let other = server.create_role("other", "");
    let mine = Session::active(server, &db, &me, "app", SLEEP);
    let theirs = Session::active(server, &db, &other, "app", SLEEP);
    let theirs_in_xact = Session::idle_in_transaction(server, &db, &other, "app");
    let list = |args: &[&str]| {
        run(server
            .pgkick_as(&me)
            .args(["list", "--json", "--db", &db])
            .args(args))
    };

    // list works and shows everyone; others' details are hidden.
    let out = list(&[]);
    assert_eq!(pids(&out), set(&[mine.pid, theirs.pid, theirs_in_xact.pid]));
    for row in out.json().as_array().unwrap() {
        if row["pid"] == mine.pid {
            assert_eq!(row["query"], SLEEP);
            assert_eq!(row["state"], "active");
        } else {
            assert_eq!(row["query"], "<insufficient privilege>", "{row}");
            assert_eq!(row["usename"], other.as_str());
            for hidden in ["state", "backend_start", "query_start", "backend_type"] {
                assert!(row[hidden].is_null(), "{hidden} is not null: {row}");
            }
        }
    }

    // Filters on hidden columns match only what the role can see; --query says so.
    assert_eq!(pids(&list(&["--state", "active"])), set(&[mine.pid]));
    assert_eq!(pids(&list(&["--state", "idle-in-transaction"])), set(&[]));
    assert_eq!(pids(&list(&["--backend-age", "0"])), set(&[mine.pid]));
    assert_eq!(pids(&list(&["--xact-age", "0"])), set(&[mine.pid]));
    let out = list(&["--query", "pg_sleep"]);
    assert_eq!(pids(&out), set(&[mine.pid]));
    assert!(out.stderr.contains("pg_read_all_stats"), "{}", out.stderr);
    let out = list(&["--query", "insufficient"]);
    assert_eq!(pids(&out), set(&[]), "--query matched the placeholder text");

    // Acting with those filters touches only the role's own session: exit 0.
    assert_eq!(
        server
            .kick(["cancel", "--json", "--db", &db, "--state", "active", "--wait",])
            .user(&me)
            .outcomes(),
        expect(&[(mine.pid, "cancelled")])
    );
    assert_cancelled(server, &mine);
    let out = run(server.pgkick_as(&me).args([
        "terminate",
        "--json",
        "--db",
        &db,
        "--query",
        "pg_sleep",
        "--yes",
    ]));
    // (The role's own session, idle now, still shows its last query.)
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(outcomes(&out), expect(&[(mine.pid, "terminated")]));
    assert!(out.stderr.contains("pg_read_all_stats"), "{}", out.stderr);
    assert!(wait_until(Duration::from_secs(5), || !mine.alive(server)));
    assert_untouched(server, &theirs);
    assert!(theirs_in_xact.alive(server));
}

#[test]
fn pg_read_all_stats_member_sees_everything_but_signals_only_its_own() {
    let server = Server::shared();
    let db = server.create_db("priv_stats");
    let watcher = server.create_role("watcher", "IN ROLE pg_read_all_stats");
    let alice = server.create_role("alice", "");
    let own = Session::idle(server, &db, &watcher, "own");
    let a = Session::active(server, &db, &alice, "app", SLEEP);
    let su = Session::idle_in_transaction(server, &db, SUPERUSER, "admin");
    let list = |args: &[&str]| {
        run(server
            .pgkick_as(&watcher)
            .args(["list", "--json", "--db", &db])
            .args(args))
    };

    let out = list(&[]);
    assert_eq!(pids(&out), set(&[own.pid, a.pid, su.pid]));
    assert!(
        !out.stderr.contains("pg_read_all_stats"),
        "needless hint: {}",
        out.stderr
    );
    for row in out.json().as_array().unwrap() {
        assert_ne!(row["query"], "<insufficient privilege>", "{row}");
        assert_eq!(row["backend_type"], "client backend", "{row}");
        assert!(row["backend_start"].is_string(), "{row}");
    }
    let out = list(&["--query", "pg_sleep"]);
    assert_eq!(pids(&out), set(&[a.pid]));
    assert!(!out.stderr.contains("pg_read_all_stats"), "{}", out.stderr);
    assert_eq!(
        pids(&list(&["--state", "idle-in-transaction"])),
        set(&[su.pid])
    );

    // Seeing is not signalling.
    assert_eq!(
        server
            .kick(["terminate", "--json", "--db", &db, "--yes", "--wait"])
            .user(&watcher)
            .status(3)
            .outcomes(),
        expect(&[
            (own.pid, "terminated"),
            (a.pid, "permission_denied"),
            (su.pid, "permission_denied")
        ])
    );
    assert!(!own.alive(server));
    assert_untouched(server, &a);
    assert!(su.alive(server));
}

/// The dry run of an RDS-style admin (CREATEROLE, pg_signal_backend, no superuser) tells the
/// truth about the provider's superuser session: `would_be_denied`, by the rule the real run
/// applies (which then reports it `permission_denied`). It leads with a line that says so,
/// and shows the statement that finds the targets and the one that would act, over lines.
#[test]
fn a_dry_run_predicts_what_the_real_run_may_not_signal() {
    let server = Server::shared();
    let db = server.create_db("priv_dry");
    let admin = server.create_role("rds_admin", "CREATEROLE IN ROLE pg_signal_backend");
    let provider = server.create_role("rdsadmin", "SUPERUSER");
    let app = server.create_role("app", "");
    let su = Session::idle(server, &db, &provider, "provider");
    let a = Session::idle(server, &db, &app, "app");

    let out = server
        .kick(["terminate", "--db", &db, "--dry-run"])
        .user(&admin)
        .run();
    let first = out.stdout.lines().next().unwrap_or_default();
    assert_eq!(
        first,
        "-- dry run: 1 session would be terminated, 1 would be denied (pgkick's role may not \
         terminate it); nothing was changed",
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("-- dry run: the statement that finds the targets:\nSELECT ")
            && out.stdout.contains("\nFROM pg_catalog.")
            && out.stdout.contains(
                "-- dry run: nothing was changed. The statement that would run:\nSELECT t.i,\n"
            ),
        "{}",
        out.stdout
    );
    let json = server
        .kick(["terminate", "--db", &db, "--dry-run", "--json"])
        .user(&admin)
        .run();
    assert_eq!(
        outcomes(&json),
        expect(&[(su.pid, "would_be_denied"), (a.pid, "would_terminate")])
    );
    assert!(
        json.stderr
            .contains("\n-- dry run: 1 session would be terminated"),
        "{}",
        json.stderr
    );
    assert!(su.alive(server) && a.alive(server), "a dry run signalled");

    // The real run agrees.
    let real = server
        .kick(["terminate", "--db", &db, "--yes", "--json"])
        .user(&admin)
        .status(3)
        .run();
    assert_eq!(
        outcomes(&real),
        expect(&[(su.pid, "permission_denied"), (a.pid, "terminated")])
    );
    assert!(su.alive(server));

    // Nothing matched: the line says so, the finding statement is shown, no signal statement.
    let none = server
        .kick(["terminate", "--db", &db, "--app", "nobody", "--dry-run"])
        .user(&admin)
        .run();
    assert!(
        none.stdout
            .starts_with("-- dry run: no session matches: none would be terminated"),
        "{}",
        none.stdout
    );
    assert!(!none.stdout.contains("would run"), "{}", none.stdout);
}
