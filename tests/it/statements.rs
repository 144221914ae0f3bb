//! What a run sends, counted in the server's log (`log_statement = all`): one statement when
//! nothing waits, whatever it matches, and the lock graph's statement after it only when
//! something waits (also for a lock-chain filter or `--tree`), with the prepared transactions
//! only when one exists; rechecks that carry only what they compare. The output is the same
//! either way.

use std::collections::BTreeSet;

use crate::harness::*;

/// A private server that logs every statement with its application name.
fn logging_server(two_phase: bool) -> Server {
    Server::start_with(&[
        ("log_statement", "all"),
        ("log_line_prefix", "%a|"),
        (
            "max_prepared_transactions",
            if two_phase { "5" } else { "0" },
        ),
    ])
}

/// What an older server rejects the first statement for (it is written for 13 and later, 14
/// with the lock graph), and pgkick then sends: the version detect. Left out of the counts,
/// which are of what the run asked for.
const DETECT: &str = "SELECT pg_catalog.current_setting('server_version_num')";

/// The statements pgkick sent since `mark`, in order, but for the version detect.
fn sent(server: &Server, mark: &LogMark) -> Vec<String> {
    mark.since(server)
        .lines()
        .filter(|l| l.starts_with("pgkick|"))
        .filter_map(|l| {
            l.split_once("LOG:  execute <unnamed>: ")
                .or_else(|| l.split_once("LOG:  statement: "))
                .map(|(_, sql)| sql.to_string())
        })
        .filter(|sql| !sql.starts_with(DETECT))
        .collect()
}

/// What the server's own `pg_blocking_pids` says, sorted and without duplicates.
fn blocking_pids(server: &Server, pid: i32) -> Vec<i64> {
    server
        .connect(SUPERUSER)
        .query_one(
            "SELECT ARRAY(SELECT DISTINCT b::int8 FROM unnest(pg_blocking_pids($1)) b ORDER BY 1)",
            &[&pid],
        )
        .unwrap()
        .get(0)
}

fn row(json: &serde_json::Value, pid: i32) -> serde_json::Value {
    json.as_array()
        .unwrap()
        .iter()
        .find(|r| r["pid"] == pid)
        .unwrap_or_else(|| panic!("pid {pid} not in {json}"))
        .clone()
}

#[test]
fn statements_the_lock_graph_only_when_something_waits() {
    let server = logging_server(false);
    let db = table_with_t(&server, "stmts");
    let idle: Vec<Session> = (0..3)
        .map(|_| Session::idle(&server, &db, SUPERUSER, "stmts-idle"))
        .collect();
    let idle_pids: BTreeSet<i64> = idle.iter().map(|s| i64::from(s.pid)).collect();
    let list = |args: &[&str]| {
        let mark = LogMark::now(&server);
        let out = run(server
            .pgkick()
            .args(["list", "--json", "--db", &db])
            .args(args));
        (out, sent(&server, &mark))
    };

    // Nothing waits: one statement, without the graph; the lock fields as always.
    let (out, statements) = list(&[]);
    // --tree (a table): flat, from the same one statement.
    let mark = LogMark::now(&server);
    let tree = run(server.pgkick().args(["list", "--db", &db, "--tree"]));
    let tree_statements = sent(&server, &mark);
    assert_eq!(tree.code, 0, "{}", tree.stderr);
    assert_eq!(tree_statements.len(), 1, "{tree_statements:#?}");
    assert!(!tree_statements[0].contains("pg_blocking_pids"));
    for pid in &idle_pids {
        assert!(tree.stdout.contains(&pid.to_string()), "{}", tree.stdout);
    }
    // A lock-chain filter when nothing waits: nothing to select, and no graph to plan.
    for chain in [&["--blocked"][..], &["--root-blocker"], &["--blocking"]] {
        let (none, statements) = list(chain);
        assert_eq!(none.json(), serde_json::json!([]), "{chain:?}");
        assert_eq!(none.code, 0, "{chain:?}");
        assert_eq!(statements.len(), 1, "{chain:?}: {statements:#?}");
        assert!(!statements[0].contains("pg_blocking_pids"), "{chain:?}");
    }
    assert_eq!(pids(&out), idle_pids);
    assert_eq!(statements.len(), 1, "{statements:#?}");
    assert!(
        !statements[0].contains("pg_blocking_pids"),
        "{}",
        statements[0]
    );
    let quiet = out.json();
    for r in quiet.as_array().unwrap() {
        assert_eq!(r["blocked_by"], serde_json::json!([]), "{r}");
        assert_eq!(r["blocking"], serde_json::json!([]), "{r}");
        assert_eq!(r["lock_wait_start"], serde_json::Value::Null, "{r}");
        assert_eq!(r["blocked_by_prepared"], serde_json::json!([]), "{r}");
    }

    // A session of another database waits: the graph's statement follows, and says the same
    // of these sessions.
    let other = table_with_t(&server, "stmts_other");
    let mut other_holder = Session::idle_in_transaction(&server, &other, SUPERUSER, "stmts-oh");
    other_holder.execute("UPDATE t SET v = v + 1 WHERE id = 1");
    let _other_waiter = Session::waiting(
        &server,
        &other,
        SUPERUSER,
        "stmts-ow",
        "UPDATE t SET v = 0 WHERE id = 1",
    );
    let (out, statements) = list(&[]);
    assert_eq!(statements.len(), 2, "{statements:#?}");
    assert!(!statements[0].contains("pg_blocking_pids"));
    assert!(
        statements[1].contains("pg_blocking_pids"),
        "{}",
        statements[1]
    );
    assert!(
        !statements[1].contains("pg_prepared_xact"),
        "a server without prepared transactions is not asked for them: {}",
        statements[1]
    );
    assert_eq!(out.json(), quiet);

    // A wait among the listed sessions: blocked_by and blocking as the server says.
    let mut holder = Session::idle_in_transaction(&server, &db, SUPERUSER, "stmts-holder");
    holder.execute("UPDATE t SET v = v + 1 WHERE id = 1");
    let waiter = Session::waiting(
        &server,
        &db,
        SUPERUSER,
        "stmts-waiter",
        "UPDATE t SET v = 0 WHERE id = 1",
    );
    let (out, statements) = list(&[]);
    assert_eq!(statements.len(), 2, "{statements:#?}");
    let json = out.json();
    let w = row(&json, waiter.pid);
    assert_eq!(
        w["blocked_by"],
        serde_json::json!(blocking_pids(&server, waiter.pid))
    );
    assert_eq!(w["blocked_by"], serde_json::json!([holder.pid]));
    assert!(w["lock_wait_start"].is_string(), "{w}");
    let h = row(&json, holder.pid);
    assert_eq!(h["blocking"], serde_json::json!([waiter.pid]));
    assert_eq!(h["blocked_by"], serde_json::json!([]));

    // A lock-chain filter: the statement that says something waits, then the graph (it was
    // one statement when the graph came first; now a run where nothing waits is one).
    let (out, statements) = list(&["--blocked"]);
    assert_eq!(pids(&out), set(&[waiter.pid]));
    assert_eq!(statements.len(), 2, "{statements:#?}");
    assert!(!statements[0].contains("pg_blocking_pids"));
    assert!(statements[1].contains("pg_blocking_pids"));
    assert!(
        !statements[1].contains("pg_prepared_xact"),
        "{}",
        statements[1]
    );
}

#[test]
fn statements_a_run_that_matches_nothing_sends_one() {
    // Whatever it matches, a run where nothing waits learns the server, what holds the --db
    // databases and which names exist from its one statement (a row even without a session).
    let server = logging_server(true);
    let db = table_with_t(&server, "stmts_none");
    let _idle = Session::idle(&server, &db, SUPERUSER, "stmts-none-idle");
    let none = ["--app", "no-such-app"];
    for (args, json) in [
        (&["list", "--json", "--db", &db][..], true),
        (&["list", "--json", "--blocked"], true),
        (&["list", "--db", &db, "--tree"], false),
        (&["terminate", "--yes", "--json", "--db", &db], true),
    ] {
        let mark = LogMark::now(&server);
        let out = run(server.pgkick().args(args).args(none));
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
        if json {
            assert_eq!(out.json(), serde_json::json!([]), "{args:?}");
        } else {
            assert_eq!(out.stdout, "(no lock chains; 0 sessions)\n", "{args:?}");
        }
        let statements = sent(&server, &mark);
        assert_eq!(statements.len(), 1, "{args:?}: {statements:#?}");
        assert!(!statements[0].contains("pg_blocking_pids"), "{args:?}");
    }
    // A name that matches nothing is still told apart from nothing to do, from the same
    // statement.
    let mark = LogMark::now(&server);
    let out = run(server
        .pgkick()
        .args(["list", "--json", "--db", "stmts_no_such_db"]));
    assert!(
        out.stderr
            .contains("--db stmts_no_such_db: the server has no database of that name"),
        "{}",
        out.stderr
    );
    assert_eq!(sent(&server, &mark).len(), 1);
}

#[test]
fn statements_the_prepared_blockers_only_when_a_prepared_transaction_exists() {
    // A server that can have prepared transactions, with none: the graph without them.
    let server = logging_server(true);
    let db = table_with_t(&server, "stmts_noprep");
    let mut holder = Session::idle_in_transaction(&server, &db, SUPERUSER, "stmts-np-holder");
    holder.execute("UPDATE t SET v = v + 1 WHERE id = 1");
    let waiter = Session::waiting(
        &server,
        &db,
        SUPERUSER,
        "stmts-np-waiter",
        "UPDATE t SET v = 0 WHERE id = 1",
    );
    for args in [&[][..], &["--blocked"], &["--blocking"]] {
        let mark = LogMark::now(&server);
        let out = run(server
            .pgkick()
            .args(["list", "--json", "--db", &db])
            .args(args));
        let statements = sent(&server, &mark);
        assert_eq!(statements.len(), 2, "{args:?}: {statements:#?}");
        assert!(statements[1].contains("pg_blocking_pids"), "{args:?}");
        assert!(
            !statements[1].contains("pg_prepared_xact") && !statements[1].contains("UNION"),
            "{args:?}: {}",
            statements[1]
        );
        let json = out.json();
        if args == ["--blocking"] {
            let h = row(&json, holder.pid);
            assert_eq!(h["blocking"], serde_json::json!([waiter.pid]), "{args:?}");
        } else {
            let w = row(&json, waiter.pid);
            assert_eq!(w["blocked_by"], serde_json::json!([holder.pid]), "{args:?}");
            assert_eq!(w["blocked_by_prepared"], serde_json::json!([]), "{args:?}");
        }
    }
}

#[test]
fn statements_a_prepared_transaction_that_blocks_is_reported_without_lock_chain_flags() {
    let server = logging_server(true);
    let db = table_with_t(&server, "stmts_prep");
    let (gid, _holder) = prepared_update_of_t(&server, &db, "stmts-prep");
    let waiter = Session::waiting(
        &server,
        &db,
        SUPERUSER,
        "stmts-pw",
        "UPDATE t SET v = 0 WHERE id = 1",
    );
    let mark = LogMark::now(&server);
    let out = run(server.pgkick().args(["list", "--json", "--db", &db]));
    let statements = sent(&server, &mark);
    // The first statement tells that something waits and that the database holds something
    // besides sessions; the graph's statement finds the prepared transaction; the holders'
    // statement describes it.
    assert_eq!(statements.len(), 3, "{statements:#?}");
    assert!(
        statements[1].contains("pg_prepared_xact"),
        "{}",
        statements[1]
    );
    let w = row(&out.json(), waiter.pid);
    assert_eq!(w["blocked_by"], serde_json::json!([0]));
    assert_eq!(w["blocked_by_prepared"], serde_json::json!([gid]));
    assert!(
        out.stderr.contains(&format!("ROLLBACK PREPARED '{gid}'")),
        "{}",
        out.stderr
    );
    server
        .connect(&db)
        .batch_execute(&format!("ROLLBACK PREPARED '{gid}'"))
        .unwrap();
}

#[test]
fn statements_a_recheck_carries_only_what_it_compares() {
    let server = logging_server(false);
    let db = server.create_db("stmts_recheck");
    let busy = Session::active(&server, &db, SUPERUSER, "stmts-busy", "SELECT pg_sleep(60)");
    let mark = LogMark::now(&server);
    let out = server
        .kick([
            "terminate",
            "--db",
            &db,
            "--app",
            "stmts-busy",
            "--cancel-first",
            "--grace",
            "200ms",
            "--yes",
            "--json",
        ])
        .run();
    // The cancel ends pg_sleep; the session, idle now, still matches after the grace period
    // (the recheck says so) and is terminated.
    assert_eq!(
        outcomes(&out),
        expect(&[(busy.pid, "terminated")]),
        "{}",
        out.stdout
    );
    let statements = sent(&server, &mark);
    let recheck = statements
        .iter()
        .find(|s| s.contains(" AS usesysid FROM") && !s.contains("AS query"))
        .unwrap_or_else(|| panic!("no recheck among {statements:#?}"));
    assert!(
        recheck.starts_with(
            "SELECT a.pid AS pid, a.backend_start AS backend_start, a.usesysid AS usesysid FROM"
        ),
        "{recheck}"
    );
    assert!(recheck.contains("a.pid = ANY($"), "{recheck}");
}
