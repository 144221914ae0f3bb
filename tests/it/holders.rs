//! Drop-ready means drop-ready: `terminate --lock --wait` exits 0 only when DROP DATABASE would
//! succeed. Each thing besides a session that keeps a database from being dropped is created
//! for real (a prepared transaction, a slot kept active by a real `pg_recvlogical`, a
//! subscription), the drop workflow must exit 3 and name it with its fix, and the fix must make
//! the workflow exit 0 and a real DROP DATABASE succeed.
//!
//! All scenarios run one after the other on one private server: creating a logical slot waits
//! for every running transaction of the cluster, prepared ones included, so a slot scenario
//! must never run beside a prepared transaction.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::harness::*;

const CONF: &[(&str, &str)] = &[
    ("wal_level", "logical"),
    ("max_prepared_transactions", "5"),
    ("max_replication_slots", "10"),
    ("max_wal_senders", "10"),
];

fn drop_workflow(server: &Server, user: &str, db: &str, extra: &[&str]) -> Output {
    run(server
        .pgkick_as(user)
        .args(["terminate", "--json", "--db", db, "--lock", "--wait"])
        .args(["--wait-timeout", "10s", "--yes"])
        .args(extra))
}

/// The report's objects whose outcome is `outcome`.
fn with_outcome(out: &Output, outcome: &str) -> Vec<Value> {
    out.json()
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {}", out.stdout))
        .iter()
        .filter(|o| o["outcome"] == outcome)
        .cloned()
        .collect()
}

/// DROP DATABASE as the superuser: Ok, or the server's message and detail.
fn drop_database(server: &Server, db: &str) -> Result<(), String> {
    server
        .connect(SUPERUSER)
        .batch_execute(&format!("DROP DATABASE \"{db}\""))
        .map_err(|e| match e.as_db_error() {
            Some(d) => format!("{} {}", d.message(), d.detail().unwrap_or_default()),
            None => e.to_string(),
        })
}

fn prepare(server: &Server, db: &str, user: &str, gid: &str) {
    let mut c = server.connect_as(db, user, "preparer");
    c.batch_execute(&format!(
        "BEGIN; CREATE TABLE \"{}\" (i int); PREPARE TRANSACTION '{}'",
        unique_name("t"),
        gid.replace('\'', "''")
    ))
    .unwrap();
}

fn prepared_gids(server: &Server, db: &str) -> Vec<String> {
    server
        .connect(SUPERUSER)
        .query(
            "SELECT gid FROM pg_prepared_xacts WHERE database::text = $1 ORDER BY gid",
            &[&db],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// `--rollback-prepared` refuses to get into `db`, closed by someone else: exit 1, one line,
/// the database and its prepared transaction `gid` as they were.
fn rollback_prepared_stays_out(server: &Server, db: &str, gid: &str) {
    let before = db_state(server, db);
    let out = drop_workflow(server, SUPERUSER, db, &["--rollback-prepared"]);
    assert_eq!(out.code, 1, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("not because of a pgkick lock"),
        "{}",
        out.stderr
    );
    assert_eq!(db_state(server, db), before);
    assert_eq!(prepared_gids(server, db), [gid]);
}

/// Keeps trying to connect to a database as a role (from a thread) until stopped; counts the
/// connections that got in.
struct Knocker {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<usize>>,
}

/// Knocking threads: enough that one is starting up whenever the database lets anyone in.
const KNOCKERS: usize = 4;

impl Knocker {
    fn start(server: &Server, db: &str, user: &str) -> Knocker {
        let stop = Arc::new(AtomicBool::new(false));
        let config = server.config(db, user, "knocker");
        let threads = (0..KNOCKERS)
            .map(|_| {
                let (config, stopped) = (config.clone(), Arc::clone(&stop));
                std::thread::spawn(move || {
                    let mut got_in = 0;
                    while !stopped.load(Ordering::Relaxed) {
                        if config.connect(postgres::NoTls).is_ok() {
                            got_in += 1;
                        }
                    }
                    got_in
                })
            })
            .collect();
        Knocker { stop, threads }
    }

    fn stop(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.threads.into_iter().map(|t| t.join().unwrap()).sum()
    }
}

fn unlock(server: &Server, db: &str) {
    let out = run(server.pgkick().args(["unlock", "--db", db]));
    assert_eq!(out.code, 0, "unlock: {}", out.stderr);
}

/// pg_recvlogical: the server's own, else Debian's newest client.
fn pg_recvlogical(server: &Server) -> PathBuf {
    let own = server.bindir().join("pg_recvlogical");
    if own.is_file() {
        return own;
    }
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin/pg_recvlogical");
            bin.is_file().then_some((major, bin))
        })
        .collect();
    debian.sort();
    debian
        .pop()
        .map(|(_, p)| p)
        .expect("pg_recvlogical not found (Debian's postgresql-client package has it)")
}

/// A real logical replication client: pg_recvlogical streaming slot `slot` of `db` through
/// pgoutput, exiting when its connection ends (--no-loop). Killed on drop.
struct Recvlogical(Child);

impl Recvlogical {
    fn start(server: &Server, db: &str, slot: &str, publication: &str) -> Recvlogical {
        let child = Command::new(pg_recvlogical(server))
            .arg("-h")
            .arg(server.sock_dir())
            .args(["-p", &server.port().to_string(), "-U", SUPERUSER, "-d", db])
            .args(["--slot", slot, "--create-slot", "--start", "--no-loop"])
            .args(["-P", "pgoutput", "-o", "proto_version=1"])
            .arg("-o")
            .arg(format!("publication_names={publication}"))
            .args(["-f", "/dev/null"])
            .env_remove("PGHOST")
            .env_remove("PGPORT")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pg_recvlogical");
        Recvlogical(child)
    }
}

impl Drop for Recvlogical {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn slot_active(server: &Server, slot: &str) -> bool {
    server
        .connect(SUPERUSER)
        .query_one(
            "SELECT coalesce(bool_or(active), false) FROM pg_replication_slots \
             WHERE slot_name::text = $1",
            &[&slot],
        )
        .unwrap()
        .get(0)
}

#[test]
fn drop_ready_reports_every_holder_and_its_fix_clears_it() {
    let server = &Server::start_with(CONF);

    // --- An active logical slot, kept active by a real pg_recvlogical ---------------------
    let db = server.create_db("hold_slot");
    let slot = unique_name("slot");
    server
        .connect(&db)
        .batch_execute("CREATE PUBLICATION p FOR ALL TABLES")
        .unwrap();
    let _recv = Recvlogical::start(server, &db, &slot, "p");
    assert!(
        wait_until(Duration::from_secs(30), || slot_active(server, &slot)),
        "pg_recvlogical never made slot {slot} active"
    );
    let idle = Session::idle(server, &db, SUPERUSER, "app");
    let out = drop_workflow(server, SUPERUSER, &db, &[]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert!(!idle.alive(server), "the client session was not terminated");
    let slots = with_outcome(&out, "replication_slot");
    assert_eq!(slots.len(), 1, "{}", out.stdout);
    assert_eq!(slots[0]["slot_name"], slot.as_str());
    assert_eq!(slots[0]["datname"], db.as_str());
    let walsender = slots[0]["pid"].as_i64().expect("the slot's active pid");
    let backends = with_outcome(&out, "still_present");
    assert!(
        backends
            .iter()
            .any(|b| b["pid"].as_i64() == Some(walsender) && b["backend_type"] == "walsender"),
        "the walsender is not reported: {}",
        out.stdout
    );
    assert!(out.stderr.contains(&slot), "{}", out.stderr);
    assert!(
        out.stderr.contains("--backend-type walsender"),
        "{}",
        out.stderr
    );
    let err = drop_database(server, &db).unwrap_err();
    assert!(err.contains("replication slot"), "{err}");
    // The fix it names: end the walsender (pg_recvlogical exits with its connection).
    let out = drop_workflow(server, SUPERUSER, &db, &["--backend-type", "walsender"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    drop_database(server, &db).unwrap();

    // --- A real subscription: its apply worker is a backend in the database ---------------
    let pubdb = server.create_db("hold_pub");
    let subdb = server.create_db("hold_subw");
    let subslot = unique_name("subslot");
    let mut publisher = server.connect(&pubdb);
    publisher
        .batch_execute("CREATE TABLE t (i int PRIMARY KEY); CREATE PUBLICATION pub FOR TABLE t")
        .unwrap();
    // In a statement of its own: a slot cannot be made in a transaction that wrote.
    publisher
        .batch_execute(&format!(
            "SELECT pg_create_logical_replication_slot('{subslot}', 'pgoutput')"
        ))
        .unwrap();
    drop(publisher);
    // One server as publisher and subscriber: the slot is made first (CREATE SUBSCRIPTION
    // would wait for itself creating it).
    let mut subscriber = server.connect(&subdb);
    subscriber
        .batch_execute("CREATE TABLE t (i int PRIMARY KEY)")
        .unwrap();
    subscriber
        .batch_execute(&format!(
            "CREATE SUBSCRIPTION s CONNECTION 'host={} port={} user={SUPERUSER} dbname={pubdb}' \
             PUBLICATION pub WITH (create_slot = false, slot_name = '{subslot}', \
             copy_data = false)",
            server.sock_dir().display(),
            server.port()
        ))
        .unwrap();
    drop(subscriber);
    let apply_worker = || -> Option<i32> {
        server
            .connect(SUPERUSER)
            .query_one(
                "SELECT max(pid) FROM pg_stat_subscription WHERE subname = 's'",
                &[],
            )
            .unwrap()
            .get(0)
    };
    assert!(
        wait_until(Duration::from_secs(30), || apply_worker().is_some()
            && slot_active(server, &subslot)),
        "the subscription's apply worker never started streaming"
    );
    let worker = apply_worker().unwrap();
    let out = drop_workflow(server, SUPERUSER, &subdb, &[]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(with_outcome(&out, "subscription")[0]["subname"], "s");
    assert!(
        with_outcome(&out, "still_present")
            .iter()
            .any(|b| b["pid"].as_i64() == Some(i64::from(worker))),
        "the apply worker {worker} is not reported: {}",
        out.stdout
    );
    // The publisher's side: the slot its walsender keeps active.
    let out = drop_workflow(server, SUPERUSER, &pubdb, &[]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(
        with_outcome(&out, "replication_slot")[0]["slot_name"],
        subslot.as_str()
    );
    // Disabling the subscription stops its worker: the workflow waits for it to leave, and
    // only the subscription itself is left.
    unlock(server, &subdb);
    server
        .connect(&subdb)
        .batch_execute("ALTER SUBSCRIPTION s DISABLE")
        .unwrap();
    let out = drop_workflow(server, SUPERUSER, &subdb, &[]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert!(
        with_outcome(&out, "still_present").is_empty(),
        "{}",
        out.stdout
    );
    assert_eq!(with_outcome(&out, "subscription").len(), 1);
    unlock(server, &subdb);
    server
        .connect(&subdb)
        .batch_execute("ALTER SUBSCRIPTION s SET (slot_name = NONE)")
        .unwrap();
    server
        .connect(&subdb)
        .batch_execute("DROP SUBSCRIPTION s")
        .unwrap();
    let out = drop_workflow(server, SUPERUSER, &subdb, &[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    drop_database(server, &subdb).unwrap();
    // The publisher's slot is inactive now: DROP DATABASE drops it.
    let out = drop_workflow(server, SUPERUSER, &pubdb, &[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    drop_database(server, &pubdb).unwrap();

    // --- A subscription, created without connecting ---------------------------------------
    let db = server.create_db("hold_sub");
    let sub = unique_name("sub");
    server
        .connect(&db)
        .batch_execute(&format!(
            "CREATE SUBSCRIPTION \"{sub}\" CONNECTION 'host=/nonexistent dbname=x' \
             PUBLICATION p WITH (connect = false)"
        ))
        .unwrap();
    let out = drop_workflow(server, SUPERUSER, &db, &[]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    let subs = with_outcome(&out, "subscription");
    assert_eq!(subs.len(), 1, "{}", out.stdout);
    assert_eq!(subs[0]["subname"], sub.as_str());
    assert!(
        out.stderr
            .contains(&format!("ALTER SUBSCRIPTION \"{sub}\" DISABLE"))
            && out.stderr.contains("SET (slot_name = NONE)")
            && out.stderr.contains("DROP SUBSCRIPTION"),
        "{}",
        out.stderr
    );
    let err = drop_database(server, &db).unwrap_err();
    assert!(err.contains("subscription"), "{err}");
    // The fix it names, in that database (unlocked for it).
    unlock(server, &db);
    server
        .connect(&db)
        .batch_execute(&format!(
            "ALTER SUBSCRIPTION \"{sub}\" DISABLE; \
             ALTER SUBSCRIPTION \"{sub}\" SET (slot_name = NONE); \
             DROP SUBSCRIPTION \"{sub}\""
        ))
        .unwrap();
    let out = drop_workflow(server, SUPERUSER, &db, &[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    drop_database(server, &db).unwrap();

    // --- A prepared transaction -----------------------------------------------------------
    let db = server.create_db("hold_prep");
    let gid = "deploy 'v2'";
    prepare(server, &db, SUPERUSER, gid);
    let idle = Session::idle(server, &db, SUPERUSER, "app");
    // list --db notes it: no session row shows it.
    let out = run(server.pgkick().args(["list", "--db", &db]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains("prepared transaction 'deploy 'v2''"),
        "{}",
        out.stderr
    );
    let out = drop_workflow(server, SUPERUSER, &db, &[]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert!(!idle.alive(server));
    assert_eq!(
        outcomes_of_sessions(&out),
        expect(&[(idle.pid, "terminated")])
    );
    let prepared = with_outcome(&out, "prepared_transaction");
    assert_eq!(prepared.len(), 1, "{}", out.stdout);
    assert_eq!(prepared[0]["gid"], gid);
    assert_eq!(prepared[0]["datname"], db.as_str());
    assert!(
        out.stderr.contains("ROLLBACK PREPARED 'deploy ''v2'''")
            && out
                .stderr
                .contains("run the same command again with --rollback-prepared"),
        "the fix names the statement and the rerun that does it: {}",
        out.stderr
    );
    let err = drop_database(server, &db).unwrap_err();
    assert!(err.contains("prepared transaction"), "{err}");
    let locked = db_state(server, &db);
    assert!(!locked.0, "locked with ALLOW_CONNECTIONS false");
    // The rerun with --rollback-prepared gets into the database its lock keeps closed, with
    // no unlock first. Its dry run shows how, and changes nothing.
    let out = drop_workflow(
        server,
        SUPERUSER,
        &db,
        &["--rollback-prepared", "--dry-run"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "ALTER DATABASE \"{db}\" CONNECTION LIMIT 0;\nALTER DATABASE \"{db}\" \
             ALLOW_CONNECTIONS true;\nALTER DATABASE \"{db}\" ALLOW_CONNECTIONS false;\n\
             ALTER DATABASE \"{db}\" CONNECTION LIMIT -1;"
        )),
        "{}",
        out.stderr
    );
    assert_eq!(db_state(server, &db), locked);
    assert_eq!(prepared_gids(server, &db), [gid]);
    // Everyone else stays out throughout: a role that may connect keeps trying while it runs.
    let outsider = server.create_role("hold_outsider", "");
    let knocking = Knocker::start(server, &db, &outsider);
    let out = drop_workflow(server, SUPERUSER, &db, &["--rollback-prepared"]);
    let got_in = knocking.stop();
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(got_in, 0, "a connection got into the locked database");
    assert_eq!(with_outcome(&out, "rolled_back")[0]["gid"], gid);
    assert!(prepared_gids(server, &db).is_empty());
    // Still locked, exactly as before (the record and the limit too), and exit 0 kept its
    // promise: the drop succeeds.
    assert_eq!(db_state(server, &db), locked);
    drop_database(server, &db).unwrap();

    // --- A database closed by someone else stays closed: --rollback-prepared says it
    //     cannot get in, and changes nothing ---------------------------------------------
    let db = server.create_db("hold_shut");
    prepare(server, &db, SUPERUSER, "shut");
    server.sql(&format!("ALTER DATABASE \"{db}\" ALLOW_CONNECTIONS false"));
    rollback_prepared_stays_out(server, &db, "shut");
    // Nor does a record that does not say pgkick closed it (as a database owner may write).
    let forged = "pgkick-lock v1 {\"method\":\"allow-connections\",\"locked_by\":\"x\",\
                  \"locked_at\":\"2026-01-01T00:00:00Z\",\"pgkick_version\":\"0.1.0\",\
                  \"prior\":{\"comment\":null,\"datallowconn\":false,\"datconnlimit\":-1}}";
    server.sql(&format!("COMMENT ON DATABASE \"{db}\" IS '{forged}'"));
    rollback_prepared_stays_out(server, &db, "shut");
    server.sql(&format!(
        "COMMENT ON DATABASE \"{db}\" IS NULL; ALTER DATABASE \"{db}\" ALLOW_CONNECTIONS true"
    ));
    server
        .connect(&db)
        .batch_execute("ROLLBACK PREPARED 'shut'")
        .unwrap();
    let out = drop_workflow(server, SUPERUSER, &db, &[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    drop_database(server, &db).unwrap();

    // --- --rollback-prepared: dry run shows it, the real run does it ----------------------
    let db = server.create_db("hold_rb");
    prepare(server, &db, SUPERUSER, "a");
    prepare(server, &db, SUPERUSER, "b\\c");
    let idle = Session::idle(server, &db, SUPERUSER, "app");
    let out = drop_workflow(
        server,
        SUPERUSER,
        &db,
        &["--rollback-prepared", "--dry-run"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(with_outcome(&out, "would_roll_back").len(), 2);
    assert!(
        out.stderr.contains("ROLLBACK PREPARED 'a';")
            && out.stderr.contains(r"ROLLBACK PREPARED E'b\\c';"),
        "{}",
        out.stderr
    );
    assert_eq!(prepared_gids(server, &db), ["a", "b\\c"]);
    assert!(idle.alive(server));
    let out = drop_workflow(server, SUPERUSER, &db, &["--rollback-prepared"]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    let rolled: Vec<_> = with_outcome(&out, "rolled_back")
        .iter()
        .map(|h| h["gid"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(rolled, ["a", "b\\c"]);
    assert!(prepared_gids(server, &db).is_empty());
    assert!(!idle.alive(server));
    drop_database(server, &db).unwrap();

    // --- A non-superuser owner sees the prepared transaction too, and may not roll back a
    //     superuser's ----------------------------------------------------------------------
    let owner = server.create_role("hold_owner", "");
    let db = server.create_db("hold_own");
    server.sql(&format!("ALTER DATABASE \"{db}\" OWNER TO \"{owner}\""));
    prepare(server, &db, SUPERUSER, "su");
    let out = drop_workflow(server, &owner, &db, &[]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert_eq!(with_outcome(&out, "prepared_transaction")[0]["gid"], "su");
    // The rerun gets in as the owner too (through one connection slot: a limit of 0 keeps
    // every non-superuser out, the owner included), and the server refuses to roll back the
    // superuser's transaction; the lock is as it was.
    let locked = db_state(server, &db);
    let out = drop_workflow(server, &owner, &db, &["--rollback-prepared"]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert!(
        out.stderr.contains("ROLLBACK PREPARED failed"),
        "{}",
        out.stderr
    );
    assert_eq!(prepared_gids(server, &db), ["su"]);
    assert_eq!(db_state(server, &db), locked);
    unlock(server, &db);
    server
        .connect(&db)
        .batch_execute("ROLLBACK PREPARED 'su'")
        .unwrap();
    let out = drop_workflow(server, &owner, &db, &[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    drop_database(server, &db).unwrap();
}

/// pid -> outcome of the session objects (those with a `usename` key) of a report.
fn outcomes_of_sessions(out: &Output) -> std::collections::BTreeMap<i64, String> {
    out.json()
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o.get("usename").is_some())
        .map(|o| {
            (
                o["pid"].as_i64().unwrap(),
                o["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// A template database: DROP DATABASE refuses it whoever asks ("cannot drop a template
/// database"), so the workflow exits 3 and names the fix; after it, exit 0 and the drop works.
#[test]
fn drop_ready_reports_a_template_database() {
    let server = Server::shared();
    let db = server.create_db("hold_template");
    server.sql(&format!("ALTER DATABASE \"{db}\" IS_TEMPLATE true"));
    let idle = Session::idle(server, &db, SUPERUSER, "app");
    let out = drop_workflow(server, SUPERUSER, &db, &[]);
    assert_eq!(out.code, 3, "{}\n{}", out.stdout, out.stderr);
    assert!(!idle.alive(server), "the client session was not terminated");
    let template = with_outcome(&out, "template_database");
    assert_eq!(template.len(), 1, "{}", out.stdout);
    assert_eq!(template[0]["datname"], db.as_str());
    assert!(
        out.stderr
            .contains(&format!("ALTER DATABASE \"{db}\" IS_TEMPLATE false")),
        "{}",
        out.stderr
    );
    let err = drop_database(server, &db).unwrap_err();
    assert!(err.contains("cannot drop a template database"), "{err}");

    // The fix it names, from another database (nobody can connect to this one now).
    server.sql(&format!("ALTER DATABASE \"{db}\" IS_TEMPLATE false"));
    let out = drop_workflow(server, SUPERUSER, &db, &[]);
    assert_eq!(out.code, 0, "{}\n{}", out.stdout, out.stderr);
    drop_database(server, &db).unwrap();
}
