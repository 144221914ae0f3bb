//! `--pgbouncer`: maintenance windows behind a real PgBouncer (transaction pooling) that the
//! application never notices, pauses held back by open transactions, the pooler state in the
//! lock record, interrupted locks, errors that change nothing, and `list`'s pooler clients.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use postgres::{Client, SimpleQueryMessage};

use crate::harness::*;

/// The first column of the first row of a simple query.
fn simple_value(client: &mut Client, sql: &str) -> String {
    client
        .simple_query(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e:?}"))
        .into_iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r.get(0).unwrap_or_default().to_string()),
            _ => None,
        })
        .expect("a row")
}

/// A client of `db` through the pooler with a transaction open (so it holds a server
/// connection), and that backend's pid.
fn in_transaction(bouncer: &Pgbouncer, db: &str, app: &str) -> (Client, i64) {
    let mut client = bouncer.connect(db, app);
    client.batch_execute("BEGIN").unwrap();
    let pid = simple_value(&mut client, "SELECT pg_backend_pid()")
        .parse()
        .unwrap();
    (client, pid)
}

/// A database with pgbench's tables, and a PgBouncer serving it.
fn bench_db(server: &Server) -> (String, Pgbouncer) {
    let db = server.create_db("pgb");
    let mut init = Command::new(PGBENCH);
    init.args(["-i", "-q", "-s", "1", "-h"])
        .arg(server.sock_dir())
        .args(["-p", &server.port().to_string(), "-U", SUPERUSER, &db])
        .stdin(Stdio::null());
    let out = run(&mut init);
    assert_eq!(out.code, 0, "pgbench -i: {}", out.stderr);
    let bouncer = Pgbouncer::start(server, &[&db]);
    (db, bouncer)
}

/// pgbench through the pooler: `clients` clients for `seconds`.
fn pgbench(bouncer: &Pgbouncer, db: &str, clients: u32, seconds: u32) -> Child {
    Command::new(PGBENCH)
        .args(["-n", "-c", &clients.to_string(), "-j", "2", "-T"])
        .arg(seconds.to_string())
        .arg("-h")
        .arg(bouncer.sock_dir())
        .args(["-p", &bouncer.port().to_string(), "-U", SUPERUSER, db])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start pgbench")
}

/// pgbench ended with exit 0, no aborted client and no failed transaction.
fn assert_pgbench_clean(child: Child) {
    let out = child.wait_with_output().expect("wait for pgbench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "pgbench failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        !stdout.contains("aborted") && !stderr.contains("aborted"),
        "{stdout}\n{stderr}"
    );
    assert!(!stderr.contains("error"), "{stderr}");
    if let Some(line) = stdout
        .lines()
        .find(|l| l.starts_with("number of failed transactions"))
    {
        assert!(line.contains(": 0 "), "{line}");
    }
    assert!(
        stdout.contains("number of transactions actually processed"),
        "{stdout}"
    );
}

/// `terminate --db DB --lock --wait --yes --json --pgbouncer <bouncer>` and `extra`.
fn terminate_through<'a>(
    server: &'a Server,
    bouncer: &Pgbouncer,
    db: &str,
    extra: &[&str],
) -> Kick<'a> {
    server
        .kick([
            "terminate",
            "--db",
            db,
            "--lock",
            "--wait",
            "--yes",
            "--json",
        ])
        .args(["--pgbouncer", &bouncer.conninfo()])
        .args(extra)
}

/// A fresh database on the shared server and a PgBouncer serving it.
fn pooled_db() -> (&'static Server, String, Pgbouncer) {
    let server = Server::shared();
    let db = server.create_db("pgb");
    let bouncer = Pgbouncer::start(server, &[&db]);
    (server, db, bouncer)
}

/// The lock record of `db`, as `lock --list --json` shows it.
fn record_of(server: &Server, db: &str) -> Option<serde_json::Value> {
    let list = server.kick(["lock", "--list", "--json"]).run().json();
    list.as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == db)
        .cloned()
}

/// Waits until the pooler has `n` clients of `db` waiting (queued behind the pause).
fn wait_for_queued(bouncer: &Pgbouncer, db: &str, n: i64) {
    assert!(
        wait_until(Duration::from_secs(10), || bouncer
            .pool_count(db, "cl_waiting")
            >= n),
        "fewer than {n} clients queued: {:?}",
        bouncer.show("POOLS")
    );
}

/// Waits until the pool of `db` has `servers` server connections and none logging in: the
/// load has all the connections it needs, so the pooler logs in nothing more.
///
/// A test's load should be there before pgkick comes. A server login that begins in the
/// instant between pgkick's look at SHOW POOLS and its PAUSE is closed by the PAUSE, and
/// PgBouncer (1.18 and today) then takes the pool for failing and refuses clients after
/// RESUME: that is PgBouncer's, which pgkick narrows (it waits for logins in progress) but
/// cannot close, and a test that starts pgbench at the moment pgkick comes meets it now and
/// then.
fn wait_for_logins_over(bouncer: &Pgbouncer, db: &str, servers: i64) {
    let count = || {
        ["sv_active", "sv_idle", "sv_used"]
            .iter()
            .map(|c| bouncer.pool_count(db, c))
            .sum::<i64>()
    };
    assert!(
        wait_until(Duration::from_secs(10), || count() >= servers
            && bouncer.pool_count(db, "sv_login") == 0),
        "the load never had its {servers} server connections: {:?}",
        bouncer.show("POOLS")
    );
}

/// Unlocks through the pooler and times how long a client takes to be served again.
fn unlock_and_time_first_query(
    server: &Server,
    bouncer: &Pgbouncer,
    db: &str,
    apps: &mut [Client],
) -> Duration {
    server
        .kick(["unlock", "--db", db, "--pgbouncer", &bouncer.conninfo()])
        .run();
    let unlocked = Instant::now();
    for app in apps.iter_mut() {
        assert_eq!(simple_value(app, "SELECT 1"), "1");
    }
    let mut fresh = bouncer.connect(db, "after-unlock");
    assert_eq!(simple_value(&mut fresh, "SELECT 2"), "2");
    unlocked.elapsed()
}

#[test]
fn pgbouncer_maintenance_window_no_client_sees_an_error() {
    let server = Server::shared();
    let (db, bouncer) = bench_db(server);
    let mut apps: Vec<Client> = (0..2)
        .map(|i| bouncer.connect(&db, &format!("app-{i}")))
        .collect();
    for app in &mut apps {
        assert_eq!(simple_value(app, "SELECT 1"), "1");
    }
    let bench = pgbench(&bouncer, &db, 4, 6);
    // pgbench's four clients run at once: four server connections, and no login after them.
    wait_for_logins_over(&bouncer, &db, 4);

    let out = terminate_through(server, &bouncer, &db, &[]).run();
    assert!(
        out.stderr.contains("paused"),
        "no pause reported: {}",
        out.stderr
    );
    // The window: the pooler holds its clients, nothing is connected to the database.
    assert!(bouncer.paused(&db));
    wait_for_queued(&bouncer, &db, 1);
    assert_eq!(sessions_in(server, &db), 0);
    assert_eq!(bouncer.pool_count(&db, "sv_active"), 0);

    let took = unlock_and_time_first_query(server, &bouncer, &db, &mut apps);
    assert!(took < Duration::from_secs(2), "served again after {took:?}");
    assert!(!bouncer.paused(&db));
    assert_pgbench_clean(bench);
}

#[test]
fn pgbouncer_pause_timeout_terminates_an_open_transaction() {
    let server = Server::shared();
    let (db, bouncer) = bench_db(server);
    let (mut stuck, pid) = in_transaction(&bouncer, &db, "stuck-in-transaction");

    let started = Instant::now();
    let outcomes = terminate_through(server, &bouncer, &db, &["--pause-timeout", "1s"]).outcomes();
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(
        outcomes.get(&pid).map(String::as_str),
        Some("terminated"),
        "{outcomes:?}"
    );
    assert!(bouncer.paused(&db));
    assert_eq!(sessions_in(server, &db), 0);
    // The transaction's client lost its backend.
    assert!(stuck.simple_query("SELECT 1").is_err());
    server
        .kick(["unlock", "--db", &db, "--pgbouncer", &bouncer.conninfo()])
        .run();
    assert!(!bouncer.paused(&db));
}

/// A client idle in a transaction holds the pause back while pgbench runs: the pause completes
/// after --pause-timeout by terminating its backend, and no other client sees an error.
#[test]
fn pgbouncer_pause_timeout_then_no_client_sees_an_error() {
    let server = Server::shared();
    let (db, bouncer) = bench_db(server);
    let mut app = bouncer.connect(&db, "app-idle");
    assert_eq!(simple_value(&mut app, "SELECT 1"), "1");
    let (_stuck, _pid) = in_transaction(&bouncer, &db, "stuck-in-transaction");
    let bench = pgbench(&bouncer, &db, 2, 6);
    // Both pgbench clients served: three server connections (one held by the open
    // transaction).
    wait_for_logins_over(&bouncer, &db, 3);
    terminate_through(server, &bouncer, &db, &["--pause-timeout", "1s"]).outcomes();
    let took = unlock_and_time_first_query(server, &bouncer, &db, std::slice::from_mut(&mut app));
    assert!(took < Duration::from_secs(2), "served again after {took:?}");
    assert_pgbench_clean(bench);
}

#[test]
fn pgbouncer_unlock_resumes_only_the_recorded_poolers_it_is_told_to_reach() {
    let (server, db, bouncer) = pooled_db();
    let conninfo = bouncer.conninfo();
    let locked = server
        .kick(["lock", "--db", &db, "--json", "--pgbouncer", &conninfo])
        .run()
        .json();
    assert_eq!(locked[0]["poolers"][0]["status"], "paused", "{locked}");
    assert!(bouncer.paused(&db));

    let record = record_of(server, &db).expect("a lock record");
    assert_eq!(record["poolers"][0]["pooler"], conninfo.as_str());
    assert_eq!(record["poolers"][0]["action"], "pause");

    // Another machine, no --pgbouncer: the record is only read, the pooler never reached.
    // The server side is unlocked, the pooler stays paused, and exit 3 says what resumes it.
    let elsewhere = TempDir::new("pgkick-it-home");
    let out = server
        .kick(["unlock", "--db", &db, "--json"])
        .env("HOME", elsewhere.path())
        .status(3)
        .run();
    let unlocked = out.json();
    assert_eq!(unlocked[0]["status"], "unlocked", "{unlocked}");
    assert_eq!(
        unlocked[0]["poolers"][0]["status"], "still_paused",
        "{unlocked}"
    );
    assert!(bouncer.paused(&db));
    let command = out
        .stderr
        .split("resume it with: ")
        .nth(1)
        .and_then(|rest| rest.lines().next())
        .unwrap_or_else(|| panic!("no command in: {}", out.stderr));
    assert_eq!(
        command,
        format!("pgkick unlock --db {db} --pgbouncer '{conninfo}'"),
        "{}",
        out.stderr
    );

    // That command, as printed: the pooler is resumed.
    let resumed = server
        .kick(["unlock", "--db", &db, "--json", "--pgbouncer", &conninfo])
        .env("HOME", elsewhere.path())
        .run()
        .json();
    assert_eq!(resumed[0]["poolers"][0]["status"], "resumed", "{resumed}");
    assert!(!bouncer.paused(&db));
    let mut client = bouncer.connect(&db, "after");
    assert_eq!(simple_value(&mut client, "SELECT 1"), "1");
    drop(client);

    // Named in another spelling (a URI): the same pooler, undone as the record says.
    server
        .kick([
            "lock",
            "--db",
            &db,
            "--pgbouncer",
            &conninfo,
            "--pgbouncer-disable",
        ])
        .run();
    assert!(bouncer.paused(&db) && bouncer.disabled(&db));
    let uri = format!(
        "postgresql://{SUPERUSER}@{}:{}/pgbouncer?application_name=another",
        bouncer.sock_dir().display().to_string().replace('/', "%2F"),
        bouncer.port()
    );
    unlock_resumes_only(server, &db, &uri);
    assert!(!bouncer.paused(&db) && !bouncer.disabled(&db));
}

#[test]
fn pgbouncer_interrupted_lock_leaves_no_pooler_paused() {
    let (server, db, bouncer) = pooled_db();
    let (mut stuck, _) = in_transaction(&bouncer, &db, "holds-the-pause");

    let mut cmd = server.pgkick();
    cmd.args([
        "lock",
        "--db",
        &db,
        "--pause-timeout",
        "60s",
        "--pgbouncer",
        &bouncer.conninfo(),
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let child = cmd.spawn().expect("start pgkick");
    assert!(
        wait_until(Duration::from_secs(10), || bouncer.paused(&db)),
        "the pause never began"
    );
    // SAFETY: kill has no memory-safety preconditions; the pid is our child's.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert_one_line(&stderr, &["interrupted", "resumed"]);
    assert!(!bouncer.paused(&db));
    assert_eq!(record_of(server, &db), None);
    // The transaction it waited for is untouched.
    assert_eq!(simple_value(&mut stuck, "SELECT 2"), "2");
    stuck.batch_execute("COMMIT").unwrap();
}

#[test]
fn pgbouncer_errors_are_one_line_and_change_nothing() {
    let server = Server::shared();
    let db = server.create_db("pgb");
    let good = Pgbouncer::start(server, &[&db]);
    let other = Pgbouncer::start(server, &[]);
    let not_locked = |out: &Output| {
        assert_eq!(record_of(server, &db), None, "{}", out.stderr);
        assert!(!good.paused(&db));
    };

    // The second pooler does not know the database: the first is resumed.
    let out = server
        .kick(["lock", "--db", &db, "--pgbouncer", &good.conninfo()])
        .args(["--pgbouncer", &other.conninfo()])
        .fails_with(&["pooler", "PAUSE", "resumed"]);
    not_locked(&out);

    // A login the pooler refuses.
    let refused = format!(
        "host={} port={} user=nobody_here",
        good.sock_dir().display(),
        good.port()
    );
    let out = server
        .kick(["lock", "--db", &db, "--pgbouncer", &refused])
        .fails_with(&["could not reach pooler", "nobody_here"]);
    not_locked(&out);

    // Nothing listening.
    let out = server
        .kick(["terminate", "--db", &db, "--lock", "--yes"])
        .args(["--pgbouncer", "host=127.0.0.1 port=1 connect_timeout=2"])
        .fails_with(&["could not reach pooler", "host=127.0.0.1 port=1"]);
    not_locked(&out);

    // Not a connection string, and --pgbouncer without --lock: usage errors.
    server
        .kick(["lock", "--db", &db, "--pgbouncer", "pgbouncer-host"])
        .status(2)
        .fails_with(&["not a connection string"]);
    server
        .kick(["terminate", "--db", &db, "--pgbouncer", &good.conninfo()])
        .status(2)
        .fails_with(&["needs --lock"]);

    // A pooler gone at unlock: the server side is unlocked, exit 3.
    let good_conninfo = good.conninfo();
    server
        .kick(["lock", "--db", &db, "--pgbouncer", &good_conninfo])
        .run();
    drop(good);
    let out = server
        .kick([
            "unlock",
            "--db",
            &db,
            "--json",
            "--pgbouncer",
            &good_conninfo,
        ])
        .status(3)
        .run();
    let unlocked = out.json();
    assert_eq!(unlocked[0]["status"], "unlocked", "{unlocked}");
    assert_eq!(unlocked[0]["poolers"][0]["status"], "failed", "{unlocked}");
    assert!(
        out.stderr.contains("could not reach pooler"),
        "{}",
        out.stderr
    );
}

#[test]
fn pgbouncer_disable_refuses_clients_until_unlock() {
    let (server, db, bouncer) = pooled_db();
    let mut app = bouncer.connect(&db, "killed");
    assert_eq!(simple_value(&mut app, "SELECT 1"), "1");
    let out = terminate_through(server, &bouncer, &db, &["--pgbouncer-disable"]).run();
    assert!(out.stderr.contains("disabled"), "{}", out.stderr);
    assert!(bouncer.disabled(&db));
    assert!(app.simple_query("SELECT 1").is_err(), "KILL closes clients");
    assert!(
        bouncer_refuses(&bouncer, &db),
        "a new client is refused at once"
    );
    server
        .kick(["unlock", "--db", &db, "--pgbouncer", &bouncer.conninfo()])
        .run();
    assert!(!bouncer.disabled(&db) && !bouncer.paused(&db));
    let mut client = bouncer.connect(&db, "after");
    assert_eq!(simple_value(&mut client, "SELECT 1"), "1");
    drop(client);

    // Disabled and paused by hand, so no record names the pooler: unlock --pgbouncer looks,
    // and enables it as well as resuming it.
    let mut admin = bouncer.connect("pgbouncer", "by-hand");
    let quoted = format!("\"{db}\"");
    admin
        .simple_query(&format!("PAUSE {quoted}"))
        .expect("PAUSE");
    admin
        .simple_query(&format!("DISABLE {quoted}"))
        .expect("DISABLE");
    assert!(bouncer.disabled(&db) && bouncer.paused(&db));
    let unlocked = server
        .kick([
            "unlock",
            "--db",
            &db,
            "--json",
            "--pgbouncer",
            &bouncer.conninfo(),
        ])
        .run()
        .json();
    assert_eq!(unlocked[0]["status"], "not_locked", "{unlocked}");
    assert_eq!(unlocked[0]["poolers"][0]["status"], "resumed", "{unlocked}");
    assert!(!bouncer.disabled(&db) && !bouncer.paused(&db));
    let mut client = bouncer.connect(&db, "after-by-hand");
    assert_eq!(simple_value(&mut client, "SELECT 2"), "2");
}

fn bouncer_refuses(bouncer: &Pgbouncer, db: &str) -> bool {
    match bouncer.try_connect(db, "refused") {
        Err(_) => true,
        Ok(mut c) => c.simple_query("SELECT 1").is_err(),
    }
}

#[test]
fn pgbouncer_list_links_busy_server_sessions_to_their_clients() {
    let (server, db, bouncer) = pooled_db();
    let (mut busy, pid) = in_transaction(&bouncer, &db, "web-1");
    let _direct = Session::idle(server, &db, SUPERUSER, "direct");

    let list = server
        .kick([
            "list",
            "--db",
            &db,
            "--json",
            "--pgbouncer",
            &bouncer.conninfo(),
        ])
        .run()
        .json();
    let sessions = list.as_array().unwrap();
    let linked = sessions
        .iter()
        .find(|s| s["pid"] == pid)
        .unwrap_or_else(|| panic!("{list}"));
    let pooler = &linked["pooler"];
    assert_eq!(pooler["pooler"], bouncer.conninfo().as_str(), "{list}");
    assert_eq!(pooler["state"], "active");
    assert_eq!(pooler["client"]["application_name"], "web-1", "{list}");
    assert_eq!(pooler["client"]["user"], SUPERUSER);
    assert_eq!(pooler["client"]["addr"], "unix");
    assert!(pooler["client"]["port"].is_i64());
    let direct = sessions
        .iter()
        .find(|s| s["application_name"] == "direct")
        .unwrap_or_else(|| panic!("{list}"));
    assert!(direct["pooler"].is_null() && direct.get("pooler").is_some());

    let plain = server.kick(["list", "--db", &db, "--json"]).run().json();
    assert!(plain[0].get("pooler").is_none(), "{plain}");
    busy.batch_execute("COMMIT").unwrap();
}

#[test]
fn pgbouncer_lock_twice_and_dry_runs_keep_one_pause() {
    let (server, db, bouncer) = pooled_db();
    let conninfo = bouncer.conninfo();
    let dry = server
        .kick(["lock", "--db", &db, "--dry-run", "--pgbouncer", &conninfo])
        .run();
    assert!(
        dry.stdout.contains(&format!("PAUSE \"{db}\";")),
        "{}",
        dry.stdout
    );
    let dry = server
        .kick(["lock", "--db", &db, "--dry-run", "--pgbouncer", &conninfo])
        .args(["--pgbouncer-disable"])
        .run();
    assert!(
        dry.stdout.contains(&format!(
            "-- on pooler {conninfo}:\nPAUSE \"{db}\";\nDISABLE \"{db}\";\nKILL \"{db}\";"
        )),
        "{}",
        dry.stdout
    );
    assert!(!bouncer.paused(&db) && !bouncer.disabled(&db));

    server
        .kick(["lock", "--db", &db, "--pgbouncer", &conninfo])
        .run();
    let again = server
        .kick(["lock", "--db", &db, "--json", "--pgbouncer", &conninfo])
        .run()
        .json();
    assert_eq!(again[0]["status"], "already_locked", "{again}");
    assert_eq!(
        again[0]["poolers"][0]["status"], "already_paused",
        "{again}"
    );
    assert!(bouncer.paused(&db));
    // A second lock that fails leaves the first one's pause alone.
    server
        .kick(["lock", "--db", &db, "--role", "no_such_role_here"])
        .args(["--pgbouncer", &conninfo])
        .fails_with(&["does not exist"]);
    assert!(bouncer.paused(&db));

    // Without --pgbouncer the dry run says the pooler would not be reached.
    let dry = server.kick(["unlock", "--db", &db, "--dry-run"]).run();
    assert!(
        dry.stdout.contains("not reached") && !dry.stdout.contains("RESUME"),
        "{}",
        dry.stdout
    );
    let dry = server
        .kick(["unlock", "--db", &db, "--dry-run", "--pgbouncer", &conninfo])
        .run();
    assert!(
        dry.stdout.contains(&format!("RESUME \"{db}\";")),
        "{}",
        dry.stdout
    );
    assert!(bouncer.paused(&db));
    unlock_resumes_only(server, &db, &conninfo);
    assert!(!bouncer.paused(&db));
    // Nothing recorded any more; a pooler given to unlock is resumed anyway, and says so.
    let again = server
        .kick(["unlock", "--db", &db, "--json", "--pgbouncer", &conninfo])
        .run()
        .json();
    assert_eq!(again[0]["status"], "not_locked", "{again}");
    assert_eq!(again[0]["poolers"][0]["status"], "not_paused", "{again}");
}

#[test]
fn pgbouncer_passwords_come_from_pgpass_and_never_reach_the_record() {
    let server = Server::shared();
    let db = server.create_db("pgb");
    let secret = "s3cret-pooler-pw";
    let bouncer = Pgbouncer::start_with(server, &[&db], Some(secret));
    let conninfo = bouncer.conninfo();

    // The password in the connection string: used, never written down.
    let with_password = format!("{conninfo} password={secret}");
    let out = server
        .kick(["lock", "--db", &db, "--pgbouncer", &with_password])
        .run();
    assert!(!out.stdout.contains(secret) && !out.stderr.contains(secret));
    assert!(bouncer.paused(&db));
    let record = record_of(server, &db).expect("a lock record");
    assert!(!record.to_string().contains(secret), "{record}");
    assert_eq!(record["poolers"][0]["pooler"], conninfo.as_str());

    // Another HOME without the password: the server side is unlocked, the pooler is not
    // resumed, exit 3.
    let bare = TempDir::new("pgkick-it-home");
    let out = server
        .kick(["unlock", "--db", &db, "--json", "--pgbouncer", &conninfo])
        .env("HOME", bare.path())
        .status(3)
        .run();
    assert_eq!(out.json()[0]["status"], "unlocked", "{}", out.stdout);
    assert!(out.stderr.contains("requires a password"), "{}", out.stderr);
    assert!(bouncer.paused(&db));
    assert_eq!(record_of(server, &db), None);

    // With a .pgpass there, unlock --pgbouncer resumes it.
    let home = TempDir::new("pgkick-it-home");
    home.write(
        ".pgpass",
        &format!("*:{}:pgbouncer:{SUPERUSER}:{secret}\n", bouncer.port()),
        0o600,
    );
    let out = server
        .kick(["unlock", "--db", &db, "--json", "--pgbouncer", &conninfo])
        .env("HOME", home.path())
        .run();
    assert_eq!(
        out.json()[0]["poolers"][0]["status"],
        "resumed",
        "{}",
        out.stdout
    );
    assert!(!bouncer.paused(&db));

    // On a terminal with no .pgpass: pgkick opens two sessions on the pooler (one waits on
    // PAUSE), and asks for the password once.
    let mut cmd = server.pgkick();
    cmd.args(["lock", "--db", &db, "--pgbouncer", &conninfo])
        .env("HOME", bare.path());
    let mut terminal = Terminal::start(&cmd);
    terminal.wait_for("Password for user");
    terminal.type_keys(format!("{secret}\r").as_bytes());
    let out = terminal.finish(Duration::from_secs(20));
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert_eq!(
        out.stdout.matches("Password for user").count(),
        1,
        "{}",
        out.stdout
    );
    assert!(bouncer.paused(&db));
    server
        .kick(["unlock", "--db", &db, "--pgbouncer", &with_password])
        .run();
    assert!(!bouncer.paused(&db));
}

#[test]
fn pgbouncer_lock_reports_and_audits_the_backend_it_terminates_for_a_pause() {
    let (server, db, bouncer) = pooled_db();
    let (_stuck, pid) = in_transaction(&bouncer, &db, "stuck-for-lock");
    let dir = TempDir::new("pgkick-it-audit");
    let log = dir.path().join("audit.jsonl");
    let out = server
        .kick([
            "lock",
            "--db",
            &db,
            "--pause-timeout",
            "1s",
            "--reason",
            "PGB-1",
            "--json",
        ])
        .args(["--pgbouncer", &bouncer.conninfo()])
        .args([std::ffi::OsStr::new("--audit-log"), log.as_os_str()])
        .run();
    assert!(
        out.stderr.contains(&format!("terminating pid {pid}")),
        "{}",
        out.stderr
    );
    assert!(bouncer.paused(&db));
    let changes = out.json();
    let terminated = changes[0]["terminated"].as_array().expect("terminated");
    assert_eq!(terminated.len(), 1, "{changes}");
    assert_eq!(terminated[0]["pid"], pid, "{changes}");
    assert_eq!(terminated[0]["outcome"], "terminated", "{changes}");
    assert_eq!(terminated[0]["application_name"], "stuck-for-lock");
    assert!(wait_until(Duration::from_secs(5), || sessions_in(
        server, &db
    ) == 0));
    let text = std::fs::read_to_string(&log).unwrap();
    let records: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let record = records
        .iter()
        .find(|r| r["session"]["pid"] == pid)
        .unwrap_or_else(|| panic!("no record of pid {pid}: {text}"));
    assert_eq!(record["outcome"], "terminated", "{record}");
    assert_eq!(record["reason"], "PGB-1", "{record}");
    server
        .kick(["unlock", "--db", &db, "--pgbouncer", &bouncer.conninfo()])
        .run();
    assert!(!bouncer.paused(&db));
}

/// `unlock --db db --pgbouncer pooler` resumes that one pooler, and names no other.
fn unlock_resumes_only(server: &Server, db: &str, pooler: &str) {
    let unlocked = server
        .kick(["unlock", "--db", db, "--json", "--pgbouncer", pooler])
        .run()
        .json();
    let poolers = unlocked[0]["poolers"].as_array().unwrap();
    assert_eq!(poolers.len(), 1, "{unlocked}");
    assert_eq!(poolers[0]["status"], "resumed", "{unlocked}");
}
