//! Processes that are not client sessions: background processes, walsenders (a real physical
//! standby, and physical and logical replication connections), autovacuum workers. pgkick never
//! targets them by default, whatever the server version (types added in 17 and 18 included);
//! `--backend-type` targets the ones that have a database on purpose, with the same permission
//! reporting as client sessions.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::*;

/// Every process the superuser sees that is not a client backend: pid -> backend_type.
fn non_client_backends(server: &Server) -> BTreeMap<i32, String> {
    server
        .connect("postgres")
        .query(
            "SELECT pid, backend_type FROM pg_stat_activity \
             WHERE backend_type IS DISTINCT FROM 'client backend'",
            &[],
        )
        .expect("read pg_stat_activity")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

/// Is `pid` still in pg_stat_activity with this backend type?
fn still_there(server: &Server, pid: i32, backend_type: &str) -> bool {
    server
        .connect("postgres")
        .query_opt(
            "SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND backend_type = $2",
            &[&pid, &backend_type],
        )
        .expect("read pg_stat_activity")
        .is_some()
}

/// Waits until the server's client sessions are `keep` alone: a connection this test just
/// closed (to read pg_stat_activity, or a pgkick run's) may still be on its way out, and
/// `terminate --all` would find it.
fn only_clients(server: &Server, keep: &[i32]) {
    let mut keep = keep.to_vec();
    keep.sort_unstable();
    let others = || -> Vec<i32> {
        server
            .connect("postgres")
            .query(
                "SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' \
                 AND pid <> pg_backend_pid() ORDER BY pid",
                &[],
            )
            .expect("read pg_stat_activity")
            .iter()
            .map(|r| r.get(0))
            .collect()
    };
    assert!(
        wait_until(Duration::from_secs(10), || others() == keep),
        "client sessions besides {keep:?}: {:?}",
        others()
    );
}

#[test]
fn terminate_all_leaves_every_background_process_running() {
    let server = Server::start();
    let db = server.create_db("bg");
    let client = Session::idle(&server, &db, SUPERUSER, "client");
    // Autovacuum workers come and go on their own; the other processes live as long as the
    // server.
    let before: BTreeMap<i32, String> = non_client_backends(&server)
        .into_iter()
        .filter(|(_, t)| t != "autovacuum worker")
        .collect();
    let types: Vec<&str> = before.values().map(String::as_str).collect();
    for expected in [
        "checkpointer",
        "walwriter",
        "background writer",
        "autovacuum launcher",
    ] {
        assert!(types.contains(&expected), "no {expected}: {before:?}");
    }
    if server.version_num() >= 180000 {
        // io_method = worker is the default from 18.
        assert!(types.contains(&"io worker"), "no io worker: {before:?}");
    }

    only_clients(&server, &[client.pid]);
    assert_eq!(
        server
            .kick(["terminate", "--all", "--yes", "--wait", "--json"])
            .outcomes(),
        expect(&[(client.pid, "terminated")])
    );
    assert!(!client.alive(&server));

    // Even asked for by type, a process without a database is never a target. (PostgreSQL 10
    // calls its logical replication launcher 'background worker', like its parallel workers,
    // and pgkick refuses that type there: covered in list.rs.)
    let mut asked = server.pgkick();
    asked.args(["terminate", "--all", "--yes", "--wait", "--json"]);
    for t in before.values() {
        if t != "background worker" || server.version_num() >= 110000 {
            asked.args(["--backend-type", t]);
        }
    }
    only_clients(&server, &[]);
    let out = run(&mut asked);
    assert_eq!((out.code, out.stdout.trim()), (0, "[]"), "{}", out.stderr);

    for (pid, backend_type) in &before {
        assert!(
            still_there(&server, *pid, backend_type),
            "{backend_type} {pid} is gone; now: {:?}",
            non_client_backends(&server)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Walsenders
// ---------------------------------------------------------------------------------------------

/// The pid of the primary's walsender for its standby, once the standby streams.
fn streaming_walsender(primary: &Server) -> i32 {
    let mut watcher = primary.connect("postgres");
    let mut pid = None;
    let streaming = wait_until(Duration::from_secs(20), || {
        pid = watcher
            .query_opt(
                "SELECT pid FROM pg_stat_replication WHERE state = 'streaming'",
                &[],
            )
            .expect("read pg_stat_replication")
            .map(|row| row.get(0));
        pid.is_some()
    });
    assert!(streaming, "the standby never streamed");
    pid.unwrap()
}

/// The psql that opens replication connections: on PATH, else beside the server binaries.
fn psql() -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("psql"))
            .find(|p| p.is_file())
    });
    on_path.unwrap_or_else(|| {
        panic!("no psql on PATH to open replication connections: run scripts/test, which installs postgresql-client")
    })
}

/// A replication connection held open by psql (whose stdin is a pipe we hold): a walsender
/// on the server. `database` makes it a logical replication connection (`replication=database`),
/// whose walsender has a datname; otherwise a physical one (`replication=true`), which has none.
struct ReplicationConn {
    psql: Child,
    stdin: Option<ChildStdin>,
    /// The walsender's pid.
    pid: i32,
}

impl ReplicationConn {
    fn open(server: &Server, user: &str, database: Option<&str>) -> ReplicationConn {
        let app = unique_name("walsender");
        let replication = match database {
            Some(db) => format!("replication=database dbname={db}"),
            None => "replication=true".to_string(),
        };
        let conninfo = format!(
            "host={} port={} user={user} application_name={app} {replication}",
            server.sock_dir().display(),
            server.port()
        );
        let mut cmd = Command::new(psql());
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PG") {
                cmd.env_remove(key);
            }
        }
        let mut psql = cmd
            .args(["-X", "-q", &conninfo])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start psql");
        let stdin = psql.stdin.take();
        let mut watcher = server.connect("postgres");
        let mut pid = 0;
        let shown = wait_until(Duration::from_secs(10), || {
            if let Some(row) = watcher
                .query_opt(
                    "SELECT pid FROM pg_stat_activity \
                     WHERE application_name = $1 AND backend_type = 'walsender'",
                    &[&app],
                )
                .expect("read pg_stat_activity")
            {
                pid = row.get(0);
            }
            pid != 0 || matches!(psql.try_wait(), Ok(Some(_)))
        });
        if pid == 0 {
            let _ = psql.kill();
            let out = psql.wait_with_output().expect("psql's output");
            panic!(
                "no walsender for {conninfo:?} (shown: {shown}); psql said: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        ReplicationConn { psql, stdin, pid }
    }
}

impl Drop for ReplicationConn {
    fn drop(&mut self) {
        // End of input ends psql; kill it only if it does not go.
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !matches!(self.psql.try_wait(), Ok(None)) {
                return;
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = self.psql.kill();
        let _ = self.psql.wait();
    }
}

#[test]
fn walsenders_are_never_targeted_by_default_and_can_be_on_purpose() {
    let server = Server::start();
    let db = server.create_db("wal");
    // A non-superuser replication role, so that a non-superuser may signal its walsender.
    let replicator = server.create_role("replicator", "REPLICATION");
    // A real physical standby where this build has pg_basebackup; replication connections
    // (below) make walsenders on every version.
    let standby = server.start_standby();
    let standby_walsender = standby.as_ref().map(|_| streaming_walsender(&server));
    let physical = ReplicationConn::open(&server, SUPERUSER, None);
    let logical_su = ReplicationConn::open(&server, SUPERUSER, Some(&db));
    let logical_rep = ReplicationConn::open(&server, &replicator, Some(&db));
    let client = Session::idle(&server, &db, SUPERUSER, "client");

    let mut walsenders = vec![physical.pid, logical_su.pid, logical_rep.pid];
    walsenders.extend(standby_walsender);
    let all_alive = |what: &str| {
        for &pid in &walsenders {
            assert!(
                still_there(&server, pid, "walsender"),
                "{what}: walsender {pid} is gone"
            );
        }
    };

    // Not targeted by default: not by --db (the logical ones have that datname), not by --all.
    assert_eq!(
        server
            .kick(["terminate", "--db", &db, "--yes", "--wait", "--json"])
            .outcomes(),
        expect(&[(client.pid, "terminated")])
    );
    all_alive("terminate --db");
    only_clients(&server, &[]);
    let out = run(server
        .pgkick()
        .args(["terminate", "--all", "--yes", "--wait", "--json"]));
    assert_eq!((out.code, out.stdout.trim()), (0, "[]"), "{}", out.stderr);
    all_alive("terminate --all");

    // A pg_signal_backend member without pg_read_all_stats sees no backend_type at all: the
    // walsender of a non-superuser must still not be taken for a client session.
    let kicker = server.create_role("kicker", "IN ROLE pg_signal_backend");
    only_clients(&server, &[]);
    let out =
        run(server
            .pgkick_as(&kicker)
            .args(["terminate", "--all", "--yes", "--wait", "--json"]));
    assert_eq!((out.code, out.stdout.trim()), (0, "[]"), "{}", out.stderr);
    all_alive("terminate --all by a pg_signal_backend member");

    // Asked for by type: the logical walsenders are listed (they have a database); the
    // physical ones never are (no database).
    let out = run(server
        .pgkick()
        .args(["list", "--json", "--backend-type", "walsender"]));
    assert_eq!(pids(&out), set(&[logical_su.pid, logical_rep.pid]));
    for row in out.json().as_array().unwrap() {
        assert_eq!(row["backend_type"], "walsender");
        assert_eq!(row["datname"], db.as_str());
    }

    // On purpose, as a non-superuser who may signal non-superuser sessions and sees their
    // types: the superuser's walsender is permission_denied (exit 3), the replicator's goes.
    let watcher = server.create_role(
        "kicker_stats",
        "IN ROLE pg_signal_backend, pg_read_all_stats",
    );
    let terminate_walsenders = [
        "terminate",
        "--backend-type",
        "walsender",
        "--db",
        &db,
        "--yes",
        "--wait",
        "--json",
    ];
    assert_eq!(
        server
            .kick(terminate_walsenders)
            .user(&watcher)
            .status(3)
            .outcomes(),
        expect(&[
            (logical_su.pid, "permission_denied"),
            (logical_rep.pid, "terminated")
        ])
    );
    assert!(still_there(&server, logical_su.pid, "walsender"));
    assert!(!still_there(&server, logical_rep.pid, "walsender"));

    // And as the superuser: exit 0, terminated.
    assert_eq!(
        server.kick(terminate_walsenders).outcomes(),
        expect(&[(logical_su.pid, "terminated")])
    );
    assert!(!still_there(&server, logical_su.pid, "walsender"));

    // The physical walsenders were never touched, and the standby still streams.
    assert!(still_there(&server, physical.pid, "walsender"));
    if let Some(walsender_pid) = standby_walsender {
        assert!(still_there(&server, walsender_pid, "walsender"));
        let streaming: i64 = server
            .connect("postgres")
            .query_one(
                "SELECT count(*) FROM pg_stat_replication WHERE pid = $1 AND state = 'streaming'",
                &[&walsender_pid],
            )
            .unwrap()
            .get(0);
        assert_eq!(streaming, 1, "the standby stopped streaming");
    }
}

// ---------------------------------------------------------------------------------------------
// Autovacuum workers
// ---------------------------------------------------------------------------------------------

/// A server whose autovacuum wakes every second and then crawls (cost limit 1, 100 ms delay),
/// and a table with enough dead rows to need it: an autovacuum worker shows up within seconds
/// and stays. Returns the worker's pid and its database, or `None` if none appeared in 20 s.
fn slow_autovacuum_worker(server: &Server) -> Option<(i32, String)> {
    let db = server.create_db("autovac");
    server
        .connect(&db)
        .batch_execute(
            "CREATE TABLE dead AS SELECT g AS id, 0 AS n FROM generate_series(1, 20000) g; \
             UPDATE dead SET n = n + 1; UPDATE dead SET n = n + 1; UPDATE dead SET n = n + 1;",
        )
        .unwrap();
    let mut watcher = server.connect("postgres");
    let mut found = None;
    wait_until(Duration::from_secs(20), || {
        found = watcher
            .query(
                "SELECT pid, datname::text FROM pg_stat_activity \
                 WHERE backend_type = 'autovacuum worker' AND datname = $1 ORDER BY pid LIMIT 1",
                &[&db],
            )
            .expect("read pg_stat_activity")
            .first()
            .map(|r| (r.get(0), r.get(1)));
        found.is_some()
    });
    found
}

const SLOW_AUTOVACUUM: [(&str, &str); 5] = [
    ("autovacuum_naptime", "1"),
    ("autovacuum_vacuum_cost_delay", "100"),
    ("autovacuum_vacuum_cost_limit", "1"),
    ("autovacuum_vacuum_threshold", "50"),
    ("autovacuum_vacuum_scale_factor", "0.01"),
];

/// An autovacuum worker has a database (and, from 18, a permission of its own,
/// pg_signal_autovacuum_worker), so only the backend_type filter keeps it out.
///
/// Whether the server starts a worker within 20 s is up to its scheduler, not pgkick: if none
/// appears the test says so and asserts nothing about workers (it has, on every version so far;
/// the server being unreachable still fails the test).
#[test]
fn autovacuum_workers_are_never_targeted_by_default() {
    let server = Server::start_with(&SLOW_AUTOVACUUM);
    let Some((worker, db)) = slow_autovacuum_worker(&server) else {
        eprintln!(
            "no autovacuum worker appeared within 20 s on {}: nothing to assert",
            server.version_num()
        );
        return;
    };
    let client = Session::idle(&server, &db, SUPERUSER, "client");
    for args in [
        &["terminate", "--all", "--yes", "--wait", "--json"][..],
        &["terminate", "--db", &db, "--yes", "--wait", "--json"],
    ] {
        let out = server.kick(args).run();
        assert!(
            !outcomes(&out).contains_key(&i64::from(worker)),
            "{args:?} targeted the autovacuum worker: {}",
            out.stdout
        );
        assert!(
            still_there(&server, worker, "autovacuum worker"),
            "{args:?}: autovacuum worker {worker} is gone"
        );
    }
    assert!(!client.alive(&server));

    // On purpose: a non-superuser pg_signal_backend member may not (it has no role; from 18
    // it takes pg_signal_autovacuum_worker); the superuser may.
    let kicker = server.create_role("kicker", "IN ROLE pg_signal_backend, pg_read_all_stats");
    let on_purpose = ["terminate", "--backend-type", "autovacuum worker", "--db"];
    assert_eq!(
        server
            .kick(on_purpose)
            .user(&kicker)
            .args([&db, "--yes", "--json"])
            .status(3)
            .outcomes(),
        expect(&[(worker, "permission_denied")])
    );
    assert!(still_there(&server, worker, "autovacuum worker"));
    if server.version_num() >= 180000 {
        server.sql(&format!(
            "GRANT pg_signal_autovacuum_worker TO \"{kicker}\""
        ));
        assert_eq!(
            server
                .kick(on_purpose)
                .user(&kicker)
                .args([&db, "--yes", "--wait", "--json"])
                .outcomes(),
            expect(&[(worker, "terminated")])
        );
    } else {
        assert_eq!(
            server
                .kick(on_purpose)
                .args([&db, "--yes", "--wait", "--json"])
                .outcomes(),
            expect(&[(worker, "terminated")])
        );
    }
    assert!(!still_there(&server, worker, "autovacuum worker"));
}
