//! `pgkick list`: filters, exclusions that always hold, output formats, usage errors.

use std::time::Duration;

use crate::harness::*;

fn list(server: &Server, args: &[&str]) -> Output {
    run(server.pgkick().arg("list").arg("--json").args(args))
}

/// A database with sessions of two users in every state, over the socket and TCP.
struct Scene {
    db: String,
    alice: String,
    bob: String,
    idle: Session,
    in_xact: Session,
    aborted: Session,
    active: Session,
    tcp: Session,
}

fn scene(server: &Server, prefix: &str) -> Scene {
    let db = server.create_db(prefix);
    let alice = server.create_role("alice", "");
    let bob = server.create_role("bob", "");
    Scene {
        idle: Session::idle(server, &db, &alice, "rails"),
        in_xact: Session::idle_in_transaction(server, &db, &bob, "sidekiq"),
        aborted: Session::idle_in_transaction_aborted(server, &db, &bob, "sidekiq"),
        active: Session::active(server, &db, &alice, "worker", "SELECT pg_sleep(60)"),
        tcp: Session::idle_tcp(server, &db, &bob, "rails"),
        db,
        alice,
        bob,
    }
}

#[test]
fn list_filters_select_exactly_the_matching_sessions() {
    let server = Server::shared();
    let s = scene(server, "list_filters");
    let other_db = server.create_db("list_bystander");
    let _bystander = Session::idle(server, &other_db, &s.alice, "rails");
    let db = s.db.as_str();

    let all = set(&[
        s.idle.pid,
        s.in_xact.pid,
        s.aborted.pid,
        s.active.pid,
        s.tcp.pid,
    ]);
    assert_eq!(pids(&list(server, &["--db", db])), all);

    let (idle_pid, tcp_pid, active_pid) = (
        s.idle.pid.to_string(),
        s.tcp.pid.to_string(),
        s.active.pid.to_string(),
    );
    let cases: Vec<(Vec<&str>, Vec<i32>)> = vec![
        (vec!["--user", &s.alice], vec![s.idle.pid, s.active.pid]),
        (vec!["--app", "sidekiq"], vec![s.in_xact.pid, s.aborted.pid]),
        (
            vec!["--app", "sidekiq", "--app", "worker"],
            vec![s.in_xact.pid, s.aborted.pid, s.active.pid],
        ),
        (vec!["--state", "idle"], vec![s.idle.pid, s.tcp.pid]),
        (vec!["--state", "idle-in-transaction"], vec![s.in_xact.pid]),
        (
            vec!["--state", "idle-in-transaction-aborted"],
            vec![s.aborted.pid],
        ),
        (vec!["--state", "active"], vec![s.active.pid]),
        (
            vec!["--client", "local", "--state", "idle"],
            vec![s.idle.pid],
        ),
        (vec!["--client", "127.0.0.1"], vec![s.tcp.pid]),
        (
            vec![
                "--client",
                "127.0.0.0/8",
                "--client",
                "local",
                "--user",
                &s.bob,
            ],
            vec![s.in_xact.pid, s.aborted.pid, s.tcp.pid],
        ),
        (vec!["--client", "10.0.0.0/8"], vec![]),
        (
            vec!["--pid", &idle_pid, "--pid", &tcp_pid],
            vec![s.idle.pid, s.tcp.pid],
        ),
        (vec!["--query", "pg_sleep\\(\\d+\\)"], vec![s.active.pid]),
        (vec!["--query", "(?i)^select 1/0"], vec![s.aborted.pid]),
        (
            vec!["--exclude-user", &s.bob],
            vec![s.idle.pid, s.active.pid],
        ),
        (
            vec!["--exclude-app", "rails", "--exclude-app", "worker"],
            vec![s.in_xact.pid, s.aborted.pid],
        ),
        (
            vec!["--exclude-pid", &active_pid, "--user", &s.alice],
            vec![s.idle.pid],
        ),
        (vec!["--exclude-db", db], vec![]),
        (
            vec!["--user", &s.alice, "--state", "idle-in-transaction"],
            vec![],
        ),
        (vec!["--backend-age", "1h"], vec![]),
        (vec!["--xact-age", "1h"], vec![]),
    ];
    for (args, expected) in cases {
        let mut argv = vec!["--db", db];
        argv.extend(&args);
        assert_eq!(pids(&list(server, &argv)), set(&expected), "{args:?}");
    }
}

/// Seconds since the latest of the sessions' backend, transaction, query and state starts,
/// by the server's clock, for the youngest of `pids`.
fn youngest_age(server: &Server, pids: &[i32]) -> f64 {
    server
        .connect(SUPERUSER)
        .query_one(
            "SELECT extract(epoch FROM clock_timestamp() - max(greatest(backend_start, \
                    xact_start, query_start, state_change)))::float8 \
               FROM pg_stat_activity WHERE pid = ANY($1)",
            &[&pids],
        )
        .expect("read the sessions' ages")
        .get(0)
}

#[test]
fn list_ages_compare_with_the_server_clock() {
    let server = Server::shared();
    let db = server.create_db("list_ages");
    let role = server.create_role("ages", "");
    let in_xact = Session::idle_in_transaction(server, &db, &role, "a");
    let active = Session::active(server, &db, &role, "b", "SELECT pg_sleep(60)");
    let idle = Session::idle(server, &db, &role, "c");
    // Older than 1 s by the server's clock, which pgkick compares with.
    let old = [in_xact.pid, active.pid, idle.pid];
    assert!(
        wait_until(Duration::from_secs(10), || youngest_age(server, &old) > 1.0),
        "the sessions never got older than 1 s"
    );

    let only = |args: &[&str]| {
        let mut argv = vec!["--db", db.as_str()];
        argv.extend_from_slice(args);
        pids(&list(server, &argv))
    };
    // A session younger than 1 s for all the runs: one that outlives them (a slow machine) is
    // replaced and the runs repeated.
    let (fresh, runs) = (0..5)
        .find_map(|_| {
            let fresh = Session::idle(server, &db, &role, "d");
            let runs = [
                only(&["--xact-age", "1s"]),
                only(&["--query-age", "1s"]),
                only(&["--state-age", "1s", "--state", "idle"]),
                only(&["--backend-age", "1s"]),
                only(&["--backend-age", "1h", "--backend-age", "1s"]),
            ];
            (youngest_age(server, &[fresh.pid]) < 1.0).then_some((fresh, runs))
        })
        .expect("no session stayed younger than 1 s for five list runs");
    let [xact, query, state, backend, repeated] = runs;
    assert_eq!(xact, set(&[in_xact.pid, active.pid]));
    // An idle session's last query is not a current query.
    assert_eq!(query, set(&[in_xact.pid, active.pid]));
    assert_eq!(state, set(&[idle.pid]));
    assert_eq!(backend, set(&[in_xact.pid, active.pid, idle.pid]));
    assert_eq!(repeated.len(), 3, "repeated ages OR");
    assert!(!only(&[]).is_empty() && only(&["--pid", &fresh.pid.to_string()]).len() == 1);
}

#[test]
fn list_never_shows_its_own_session_null_datname_rows_or_parallel_workers() {
    let server = Server::start();
    // pgkick's own connection has application_name pgkick.
    assert_eq!(pids(&list(&server, &["--app", "pgkick"])), set(&[]));
    // Background processes without a database (checkpointer, walwriter, ...).
    if server.version_num() >= 100000 {
        for kind in [
            "checkpointer",
            "walwriter",
            "autovacuum launcher",
            "background writer",
        ] {
            assert_eq!(
                pids(&list(&server, &["--backend-type", kind])),
                set(&[]),
                "{kind}"
            );
        }
    }

    // A real parallel query: the leader is listed, its workers never are. Forcing a
    // single-copy Gather makes a worker run the whole (sleeping) plan, so it lives for as long
    // as the query, whatever the planner's costs.
    let db = server.create_db("parallel");
    let force = if server.version_num() >= 160000 {
        "debug_parallel_query"
    } else {
        "force_parallel_mode"
    };
    server
        .connect(&db)
        .batch_execute(&format!(
            "CREATE FUNCTION nap(float8) RETURNS boolean LANGUAGE plpgsql PARALLEL SAFE \
             AS 'BEGIN PERFORM pg_sleep($1); RETURN true; END'; \
             ALTER DATABASE {db} SET {force} = on; \
             ALTER DATABASE {db} SET parallel_setup_cost = 0; \
             ALTER DATABASE {db} SET parallel_tuple_cost = 0;"
        ))
        .unwrap();
    let leader = Session::active(&server, &db, SUPERUSER, "leader", "SELECT nap(60)");
    // PostgreSQL 10 calls its parallel workers 'background worker'.
    let worker_type = if server.version_num() >= 110000 {
        "parallel worker"
    } else {
        "background worker"
    };
    let mut watcher = server.connect("postgres");
    let workers_seen = wait_until(Duration::from_secs(10), || {
        let n: i64 = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 \
                 AND backend_type = $2",
                &[&db, &worker_type],
            )
            .unwrap()
            .get(0);
        n > 0
    });
    assert!(
        workers_seen,
        "the parallel query started no worker; leader: {:?}; server log:\n{}",
        leader.query_result(Duration::ZERO),
        server.log()
    );
    assert_eq!(pids(&list(&server, &["--db", &db])), set(&[leader.pid]));
    let asked =
        run(server
            .pgkick()
            .args(["list", "--json", "--db", &db, "--backend-type", worker_type]));
    if server.version_num() >= 110000 {
        assert_eq!(pids(&asked), set(&[]));
    } else {
        assert_eq!(asked.code, 2, "{}", asked.stderr);
    }
}

#[test]
fn list_output_formats() {
    let server = Server::shared();
    let db = server.create_db("list_formats");
    let role = server.create_role("fmt", "");
    let idle = Session::idle_tcp(server, &db, &role, "fmt-app");

    let json = list(server, &["--db", &db]).json();
    let row = &json[0];
    let fields = [
        "pid",
        "datname",
        "usename",
        "application_name",
        "client_addr",
        "client_port",
        "backend_start",
        "xact_start",
        "query_start",
        "state_change",
        "wait_event_type",
        "wait_event",
        "state",
        "backend_type",
        "leader_pid",
        "query",
    ];
    let keys: Vec<&str> = row
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    for f in fields {
        assert!(keys.contains(&f), "missing {f} in {row}");
    }
    assert_eq!(row["pid"], idle.pid);
    assert_eq!(row["datname"], db.as_str());
    assert_eq!(row["usename"], role.as_str());
    assert_eq!(row["application_name"], "fmt-app");
    assert_eq!(row["client_addr"], "127.0.0.1");
    assert_eq!(row["state"], "idle");
    assert_eq!(row["xact_start"], serde_json::Value::Null);
    let start = row["backend_start"].as_str().unwrap();
    let parsed = chrono::DateTime::parse_from_rfc3339(start).expect("RFC 3339");
    assert_eq!(parsed, idle.backend_start());

    let jsonl = run(server
        .pgkick()
        .args(["list", "--output", "jsonl", "--db", &db]));
    assert_eq!(jsonl.code, 0);
    let lines = jsonl.jsonl();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["pid"], idle.pid);

    let table = run(server.pgkick().args(["list", "--db", &db]));
    assert_eq!(table.code, 0, "{}", table.stderr);
    assert!(table.stdout.lines().next().unwrap().contains("pid"));
    assert!(table.stdout.contains(&idle.pid.to_string()));
    assert!(table.stdout.contains("(1 session)"));

    // Nothing matched: an empty result, exit 0.
    let none = run(server
        .pgkick()
        .args(["list", "--json", "--db", "no_such_db_here"]));
    assert_eq!((none.code, none.stdout.trim()), (0, "[]"));
    let none = run(server.pgkick().args(["list", "--db", "no_such_db_here"]));
    assert_eq!(none.code, 0);
    assert!(none.stdout.contains("(0 sessions)"));
}

#[test]
fn list_bad_input_is_a_usage_error_before_connecting() {
    // Nothing listens on port 1: reaching the server would be exit 1, not 2.
    for args in [
        &["list", "--state", "sleepy"][..],
        &["list", "--query-age", "10x"],
        &["list", "--query", "(unclosed"],
        &["list", "--pid", "abc"],
        &["list", "--client", "not-an-address"],
        &["terminate", "--grace", "5s"],
        &["frobnicate"],
    ] {
        let out = run(std::process::Command::new(env!("CARGO_BIN_EXE_pgkick"))
            .args(["-h", "127.0.0.1", "-p", "1"])
            .args(args));
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert_usage(&out.stderr, &[]);
        assert!(
            out.stderr.contains("For more information, try '--help'."),
            "{}",
            out.stderr
        );
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn list_runtime_errors_exit_1_with_one_line() {
    let out = run(std::process::Command::new(env!("CARGO_BIN_EXE_pgkick"))
        .env_remove("PGHOST")
        .args(["-h", "127.0.0.1", "-p", "1", "list"]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.starts_with("pgkick: "), "{}", out.stderr);
    assert_eq!(out.stderr.trim_end().lines().count(), 1, "{}", out.stderr);
}

#[test]
fn list_into_a_closed_pipe_is_not_an_error() {
    use std::process::Stdio;
    let server = Server::shared();
    let db = server.create_db("list_pipe");
    let _sessions: Vec<Session> = (0..5)
        .map(|_| Session::idle(server, &db, SUPERUSER, "pipe"))
        .collect();
    let mut child = server
        .pgkick()
        .args(["list", "--db", &db])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // like `| head -0`
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
