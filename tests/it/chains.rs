//! Lock chains: `--blocked`, `--blocking`, `--root-blocker`, `--blocks`, `--blocked-for`, the
//! `blocked_by`/`blocking` fields, `list --tree`, and ending a pile-up, on real lock waits.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::harness::*;

/// The pids of `list --json --db DB ARGS...` (as `user` when given).
fn listed(server: &Server, db: &str, args: &[&str]) -> BTreeSet<i64> {
    let mut cmd = server.pgkick();
    cmd.args(["list", "--json", "--db", db]).args(args);
    pids(&run(&mut cmd))
}

/// What the server's own `pg_blocking_pids` says, sorted and without duplicates.
fn blocking_pids(server: &Server, pid: i32) -> Vec<i64> {
    let row = server
        .connect(SUPERUSER)
        .query_one(
            "SELECT ARRAY(SELECT DISTINCT b::int8 FROM unnest(pg_blocking_pids($1)) b ORDER BY 1)",
            &[&pid],
        )
        .unwrap();
    row.get(0)
}

fn ints(v: &serde_json::Value) -> Vec<i64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect()
}

/// Seconds since `pid` began to wait for its lock, as the server sees it (pg_locks.waitstart
/// from 14, else query_start, as pgkick approximates).
fn waited(server: &Server, pid: i32) -> f64 {
    let sql = if server.version_num() >= 140000 {
        "SELECT extract(epoch FROM clock_timestamp() - min(waitstart))::float8 \
           FROM pg_locks WHERE pid = $1 AND NOT granted"
    } else {
        "SELECT extract(epoch FROM clock_timestamp() - query_start)::float8 \
           FROM pg_stat_activity WHERE pid = $1"
    };
    let row = server.connect(SUPERUSER).query_one(sql, &[&pid]).unwrap();
    row.get::<_, Option<f64>>(0).unwrap_or(0.0)
}

/// The pile-up: A idle in transaction after UPDATE t; B's UPDATE of the same row waits
/// on A; C's ALTER TABLE waits on A and B; D's SELECT queues behind C. B has waited some two
/// seconds longer than C and D, so a --blocked-for between the two tells them apart.
#[test]
fn chains_pile_up_is_found_and_ended_at_its_root() {
    let server = Server::shared();
    let db = table_with_t(server, "chains_pile");
    let mut a = Session::idle_in_transaction(server, &db, SUPERUSER, "chain-a");
    a.execute("UPDATE t SET v = v + 1 WHERE id = 1");
    let b = Session::waiting(
        server,
        &db,
        SUPERUSER,
        "chain-b",
        "UPDATE t SET v = v + 1 WHERE id = 1",
    );
    assert!(
        wait_until(Duration::from_secs(20), || waited(server, b.pid) >= 2.0),
        "B's wait never reached 2 s"
    );
    let c = Session::waiting(
        server,
        &db,
        SUPERUSER,
        "chain-c",
        "ALTER TABLE t ADD COLUMN c int",
    );
    let d = Session::waiting(server, &db, SUPERUSER, "chain-d", "SELECT * FROM t");
    let bystander = Session::idle_in_transaction(server, &db, SUPERUSER, "chain-idle");
    let (a_pid, b_pid, c_pid, d_pid) = (a.pid, b.pid, c.pid, d.pid);

    // blocked_by is pg_blocking_pids; blocking is its inverse.
    let rows = run(server.pgkick().args(["list", "--json", "--db", &db])).json();
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 5);
    for row in rows {
        let pid = i32::try_from(row["pid"].as_i64().unwrap()).unwrap();
        assert_eq!(
            ints(&row["blocked_by"]),
            blocking_pids(server, pid),
            "{row}"
        );
        // Sorted as pgkick sorts it: by pid, which need not be the order the sessions
        // started in once the kernel's pids wrap around.
        let mut inverse: Vec<i64> = [a_pid, b_pid, c_pid, d_pid, bystander.pid]
            .into_iter()
            .filter(|&w| blocking_pids(server, w).contains(&i64::from(pid)))
            .map(i64::from)
            .collect();
        inverse.sort_unstable();
        assert_eq!(ints(&row["blocking"]), inverse, "{row}");
        assert_eq!(row["blocked_by_prepared"], serde_json::json!([]));
    }
    assert_eq!(blocking_pids(server, b_pid), vec![i64::from(a_pid)]);
    let mut a_and_b = vec![i64::from(a_pid), i64::from(b_pid)];
    a_and_b.sort_unstable();
    assert_eq!(blocking_pids(server, c_pid), a_and_b);
    assert_eq!(blocking_pids(server, d_pid), vec![i64::from(c_pid)]);

    // The filters, and their AND/OR rules.
    assert_eq!(
        listed(server, &db, &["--blocked"]),
        set(&[b_pid, c_pid, d_pid])
    );
    assert_eq!(
        listed(server, &db, &["--blocking"]),
        set(&[a_pid, b_pid, c_pid])
    );
    assert_eq!(listed(server, &db, &["--root-blocker"]), set(&[a_pid]));
    assert_eq!(
        listed(server, &db, &["--blocked", "--blocking"]),
        set(&[b_pid, c_pid])
    );
    assert_eq!(
        listed(
            server,
            &db,
            &["--root-blocker", "--state", "idle-in-transaction"]
        ),
        set(&[a_pid])
    );
    assert_eq!(
        listed(server, &db, &["--root-blocker", "--state", "active"]),
        set(&[])
    );
    let d_text = d_pid.to_string();
    let upstream_of_d = listed(server, &db, &["--blocks", &d_text]);
    assert!(
        upstream_of_d.contains(&i64::from(a_pid)),
        "{upstream_of_d:?}"
    );
    assert!(
        !upstream_of_d.contains(&i64::from(d_pid)),
        "{upstream_of_d:?}"
    );
    assert_eq!(upstream_of_d, set(&[a_pid, b_pid, c_pid]));
    let b_text = b_pid.to_string();
    assert_eq!(listed(server, &db, &["--blocks", &b_text]), set(&[a_pid]));
    assert_eq!(
        listed(server, &db, &["--blocks", &b_text, "--blocks", &d_text]),
        set(&[a_pid, b_pid, c_pid])
    );
    assert_eq!(
        listed(server, &db, &["--blocks", &d_text, "--root-blocker"]),
        set(&[a_pid])
    );

    // --blocked-for: a threshold between B's wait and C's and D's, with at least a second of
    // slack either way.
    let threshold = (waited(server, b_pid) + waited(server, d_pid)) / 2.0;
    let between = format!("{}ms", (threshold * 1000.0) as u64);
    assert_eq!(
        listed(server, &db, &["--blocked", "--blocked-for", &between]),
        set(&[b_pid])
    );
    assert_eq!(
        listed(server, &db, &["--blocked", "--blocked-for", "1ms"]),
        set(&[b_pid, c_pid, d_pid])
    );
    assert_eq!(
        listed(server, &db, &["--blocked", "--blocked-for", "1h"]),
        set(&[])
    );
    // Blocker side: A has kept B waiting long; B and C have kept someone waiting only briefly.
    assert_eq!(
        listed(server, &db, &["--blocking", "--blocked-for", &between]),
        set(&[a_pid])
    );
    assert_eq!(
        listed(server, &db, &["--blocking", "--blocked-for", "1ms"]),
        set(&[a_pid, b_pid, c_pid])
    );
    assert_eq!(
        listed(server, &db, &["--root-blocker", "--blocked-for", "1h"]),
        set(&[])
    );
    // Repeated, the shortest wins (OR).
    assert_eq!(
        listed(
            server,
            &db,
            &["--blocked", "--blocked-for", "1h", "--blocked-for", "1ms"]
        ),
        set(&[b_pid, c_pid, d_pid])
    );
    let alone = run(server
        .pgkick()
        .args(["list", "--db", &db, "--blocked-for", "1m"]));
    assert_eq!(alone.code, 2, "{}", alone.stderr);

    // A role that cannot see the sessions' details still sees the chain, and is told what it
    // cannot see.
    let watcher = server.create_role("chain_watch", "");
    let out =
        run(server
            .pgkick_as(&watcher)
            .args(["list", "--json", "--db", &db, "--root-blocker"]));
    assert_eq!(pids(&out), set(&[a_pid]));
    assert_eq!(out.json()[0]["query"], "<insufficient privilege>");
    assert!(
        out.stderr.contains("lock chains hide their details"),
        "{}",
        out.stderr
    );
    let out = run(server
        .pgkick_as(&watcher)
        .args(["list", "--json", "--db", &db, "--blocked"]));
    assert_eq!(pids(&out), set(&[b_pid, c_pid, d_pid]));

    // The table and the tree.
    let table = run(server.pgkick().args(["list", "--db", &db]));
    assert_eq!(table.code, 0, "{}", table.stderr);
    assert!(table.stdout.contains("lock chain"), "{}", table.stdout);
    assert!(
        table
            .stdout
            .contains(&format!("by {a_pid},{b_pid}; blocks {d_pid}")),
        "{}",
        table.stdout
    );
    let tree = run(server.pgkick().args(["list", "--tree", "--db", &db]));
    assert_eq!(tree.code, 0, "{}", tree.stderr);
    let lines: Vec<&str> = tree.stdout.lines().collect();
    assert!(
        lines[0].starts_with(&format!("{a_pid} idle in transaction")),
        "{}",
        tree.stdout
    );
    assert!(
        lines[1].starts_with(&format!("├─ {b_pid} waiting")),
        "{}",
        tree.stdout
    );
    assert!(
        lines[2].starts_with(&format!("│  └─ {c_pid} waiting")),
        "{}",
        tree.stdout
    );
    assert!(
        lines[3].starts_with(&format!("│     └─ {d_pid} waiting")),
        "{}",
        tree.stdout
    );
    assert!(
        lines[4].starts_with(&format!("└─ {c_pid} waiting")),
        "{}",
        tree.stdout
    );
    assert!(lines[4].contains("(shown above)"), "{}", tree.stdout);
    assert_eq!(lines[5], "(1 lock chain)");
    assert!(
        !tree.stdout.contains(&bystander.pid.to_string()),
        "{}",
        tree.stdout
    );
    let json_tree = run(server
        .pgkick()
        .args(["list", "--tree", "--json", "--db", &db]));
    assert_eq!(json_tree.code, 2, "{}", json_tree.stderr);

    // --dry-run shows the chain it would break, and signals nothing.
    let dry = run(server
        .pgkick()
        .args(["terminate", "--root-blocker", "--db", &db, "--dry-run"]));
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(dry.stdout.contains("would_terminate"), "{}", dry.stdout);
    let chain_part = dry
        .stdout
        .split("the lock chains this would break:")
        .nth(1)
        .unwrap_or_else(|| panic!("no chain shown:\n{}", dry.stdout));
    for pid in [a_pid, b_pid, c_pid, d_pid] {
        assert!(chain_part.contains(&pid.to_string()), "{pid}: {chain_part}");
    }
    // The statement shown is the one whose rows are the targets: the lock graph's.
    let find = dry
        .stdout
        .split("the statement that finds the targets:")
        .nth(1)
        .and_then(|rest| rest.split("-- dry run:").next())
        .unwrap_or_else(|| panic!("no statement shown:\n{}", dry.stdout));
    assert!(find.contains("pg_catalog.pg_blocking_pids("), "{find}");
    assert!(a.alive(server));

    // terminate --blocks D ends what holds D up, never D; with --root-blocker only the head.
    let dry = run(server.pgkick().args([
        "terminate",
        "--json",
        "--blocks",
        &d_text,
        "--root-blocker",
        "--dry-run",
    ]));
    assert_eq!(outcomes(&dry), expect(&[(a_pid, "would_terminate")]));

    // Ending the root ends the pile-up: only A is terminated, and B, C and D complete.
    let out = run(server.pgkick().args([
        "terminate",
        "--json",
        "--root-blocker",
        "--db",
        &db,
        "--wait",
        "--yes",
    ]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(outcomes(&out), expect(&[(a_pid, "terminated")]));
    assert!(!a.alive(server));
    for (name, s) in [("B", &b), ("C", &c), ("D", &d)] {
        assert_eq!(
            s.query_result(Duration::from_secs(20)),
            Some(Ok(())),
            "{name} ({}) did not complete after its root was terminated",
            s.pid
        );
        assert!(s.alive(server), "{name} lost its connection");
    }
    assert!(bystander.alive(server));
    assert_eq!(listed(server, &db, &["--blocked"]), set(&[]));
}

/// --cancel-first: a root whose transaction gives up its locks when its query is cancelled no
/// longer blocks anyone after the grace period, so it keeps its connection.
#[test]
fn chains_cancel_first_spares_a_root_that_stopped_blocking() {
    let server = Server::shared();
    let db = table_with_t(server, "chains_cancel");
    let root = Session::active(
        server,
        &db,
        SUPERUSER,
        "chain-root",
        "BEGIN; UPDATE t SET v = v + 1 WHERE id = 1; SELECT pg_sleep(60); COMMIT",
    );
    assert!(wait_until(Duration::from_secs(10), || {
        listed(
            server,
            &db,
            &["--pid", &root.pid.to_string(), "--state", "active"],
        ) == set(&[root.pid])
            && server
                .connect(SUPERUSER)
                .query_opt(
                    "SELECT 1 FROM pg_locks WHERE pid = $1 AND locktype = 'transactionid'",
                    &[&root.pid],
                )
                .unwrap()
                .is_some()
    }));
    let waiter = Session::waiting(
        server,
        &db,
        SUPERUSER,
        "chain-w",
        "UPDATE t SET v = 0 WHERE id = 1",
    );
    let out = run(server.pgkick().args([
        "terminate",
        "--json",
        "--root-blocker",
        "--db",
        &db,
        "--cancel-first",
        "--grace",
        "300ms",
        "--yes",
    ]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(outcomes(&out), expect(&[(root.pid, "cancelled")]));
    assert!(
        root.alive(server),
        "a root that stopped blocking was terminated"
    );
    assert_eq!(waiter.query_result(Duration::from_secs(20)), Some(Ok(())));
}

/// A prepared transaction holding the lock: reported with its gid, never signalled, exit 3.
#[test]
fn chains_prepared_transaction_blocker_cannot_be_signalled() {
    let server = Server::start_with(&[("max_prepared_transactions", "5")]);
    let db = table_with_t(&server, "chains_prep");
    let (gid, _holder) = prepared_update_of_t(&server, &db, "chain-prep");
    let w = Session::waiting(
        &server,
        &db,
        SUPERUSER,
        "chain-pw",
        "UPDATE t SET v = 0 WHERE id = 1",
    );
    let x = Session::waiting(
        &server,
        &db,
        SUPERUSER,
        "chain-px",
        "BEGIN; LOCK TABLE t; COMMIT",
    );

    let rows = run(server
        .pgkick()
        .args(["list", "--json", "--db", &db, "--blocked"]));
    assert_eq!(pids(&rows), set(&[w.pid, x.pid]));
    let json = rows.json();
    let row_w = json
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["pid"] == w.pid)
        .unwrap();
    assert_eq!(ints(&row_w["blocked_by"]), vec![0]);
    assert_eq!(row_w["blocked_by_prepared"], serde_json::json!([gid]));
    assert!(
        rows.stderr.contains(&format!("ROLLBACK PREPARED '{gid}'")),
        "{}",
        rows.stderr
    );
    let tree = run(server.pgkick().args(["list", "--tree", "--db", &db]));
    assert!(
        tree.stdout
            .starts_with(&format!("prepared transaction '{gid}'")),
        "{}",
        tree.stdout
    );
    assert!(
        tree.stdout.contains(&format!("\n├─ {} waiting", w.pid)),
        "{}",
        tree.stdout
    );

    let w_text = w.pid.to_string();
    for args in [vec!["--root-blocker"], vec!["--blocks", w_text.as_str()]] {
        let mut cmd = server.pgkick();
        cmd.args(["terminate", "--json", "--wait", "--yes"])
            .args(&args);
        let out = run(&mut cmd);
        assert_eq!(out.code, 3, "{args:?}: {}", out.stderr);
        assert_eq!(outcomes(&out), expect(&[]), "{args:?}");
        assert!(out.stderr.contains(&gid), "{}", out.stderr);
        assert!(out.stderr.contains("cannot be signalled"), "{}", out.stderr);
    }
    assert!(w.alive(&server) && x.alive(&server));
    assert!(
        w.query_result(Duration::ZERO).is_none(),
        "W stopped waiting"
    );
    // Filters a prepared transaction has no value for leave it out: nothing matches, exit 0.
    let out = run(server.pgkick().args([
        "terminate",
        "--json",
        "--yes",
        "--root-blocker",
        "--state",
        "idle-in-transaction",
    ]));
    assert_eq!(out.code, 0, "{}", out.stderr);

    server
        .connect(&db)
        .batch_execute(&format!("ROLLBACK PREPARED '{gid}'"))
        .unwrap();
    assert_eq!(w.query_result(Duration::from_secs(20)), Some(Ok(())));
    assert_eq!(x.query_result(Duration::from_secs(20)), Some(Ok(())));
}

/// With nothing matched no row carries the server's facts: what pgkick says about the server
/// is the real server's, never the version the first statement was written for (13).
#[test]
fn chains_nothing_matched_tells_nothing_invented_about_the_server() {
    let server = Server::shared();
    let db = server.create_db("chains_none");
    for verb in ["list", "terminate"] {
        let mut cmd = server.pgkick();
        cmd.args([verb, "--db", &db, "--blocked", "--blocked-for", "1m"]);
        if verb == "terminate" {
            cmd.arg("--yes");
        }
        let out = run(&mut cmd);
        assert_eq!(out.code, 0, "{verb}: {}", out.stderr);
        if server.version_num() / 10000 != 13 {
            assert!(
                !out.stderr.contains("PostgreSQL 13"),
                "{verb}: {}",
                out.stderr
            );
        }
    }
}

#[test]
fn chains_a_lock_chain_filter_is_checked_against_the_real_server() {
    // A lock-chain filter's first statement reads only the pid, so a server older than the
    // one it is written for (13) can answer it: what only the version reveals is still
    // refused before anything else is sent, as after a version detect.
    let server = Server::shared();
    let db = server.create_db("chains_checked");
    let out = run(server.pgkick().args([
        "list",
        "--json",
        "--db",
        &db,
        "--blocked",
        "--backend-type",
        "background worker",
    ]));
    if server.version_num() < 110000 {
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert!(
            out.stderr
                .contains("lists parallel workers as 'background worker'"),
            "{}",
            out.stderr
        );
    } else {
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert_eq!(out.json(), serde_json::json!([]));
    }
}
