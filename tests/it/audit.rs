//! The audit trail, live: `--audit-log` records checked field by field against what the
//! server showed, `--server-log` lines read from the server's own log, a hostile `--reason`,
//! concurrent writers, destinations that cannot be written, what else may be at the file's
//! path (symlinks, FIFOs, other users' files and directories), and the `--every` watch mode.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::harness::*;

/// A reason built to break out of anything it could be spliced into: quotes, dollar quotes
/// (pgkick's own tag included), a comment end, a statement separator, a newline, non-ASCII.
const HOSTILE: &str = "INC-7 it's \"quoted\" $$ $pgkick$ */ '); DROP TABLE canary; -- \
                       $$; DROP TABLE canary; $$\nsecond line: ünïcødé ✓ 日本";

/// A file path in a temp dir of its own, removed with it.
struct Scratch {
    at: PathBuf,
    _dir: TempDir,
}

impl Scratch {
    fn new(prefix: &str) -> Scratch {
        let dir = TempDir::new(prefix);
        // Whatever the umask: pgkick refuses a log in a directory others can write.
        chmod(dir.path(), 0o755);
        Scratch {
            at: dir.path().join("audit.log"),
            _dir: dir,
        }
    }
    fn path(&self) -> &str {
        self.at.to_str().unwrap()
    }
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

/// The permission bits of what is at `path`.
fn mode_of(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// pgkick's effective uid: the tests run it as themselves.
fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Another OS user to own files (`nobody`), when the tests run as root and can chown to it.
/// Only a developer's machine may skip those cases: with `CI` set, not being root fails.
fn other_user() -> Option<u32> {
    if euid() != 0 {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the audit tests as root: the cases of another user's files and \
             directories are the attacks they defend against, and are never skipped there"
        );
        eprintln!(
            "not root: the cases of another user's files and directories are skipped (CI runs \
             them as root)"
        );
        return None;
    }
    let out = Command::new("id").args(["-u", "nobody"]).output().unwrap();
    assert!(out.status.success(), "no OS user nobody");
    Some(
        String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap(),
    )
}

/// A pipe whose buffer is already full (of dots): a process given its write end stops at its
/// first write until the read end is read.
fn full_pipe() -> (fs::File, std::os::fd::OwnedFd) {
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two new descriptors into `fds`, each then owned exactly once; fcntl
    // and write get a descriptor of ours and a buffer with its length.
    unsafe {
        assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC), 0);
        let flags = libc::fcntl(fds[1], libc::F_GETFL);
        libc::fcntl(fds[1], libc::F_SETFL, flags | libc::O_NONBLOCK);
        let dots = [b'.'; 4096];
        while libc::write(fds[1], dots.as_ptr().cast(), dots.len()) > 0 {}
        libc::fcntl(fds[1], libc::F_SETFL, flags);
        (fs::File::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))
    }
}

/// Every line of an audit file, each parsed as one JSON object (a torn line fails here).
fn records(path: &Path) -> Vec<Value> {
    let text = fs::read_to_string(path).unwrap_or_default();
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "the last record is cut: {text:?}"
    );
    text.lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not a whole JSON line ({e}): {l:?}"))
        })
        .collect()
}

/// The records about sessions, by pid.
fn by_pid(records: &[Value]) -> std::collections::BTreeMap<i64, Value> {
    records
        .iter()
        .map(|r| {
            (
                r["session"]["pid"].as_i64().expect("a session record"),
                r.clone(),
            )
        })
        .collect()
}

/// What pg_stat_activity shows of a session now, in the record's field names.
fn activity(server: &Server, pid: i32) -> Value {
    let row = server
        .connect(SUPERUSER)
        .query_one(
            "SELECT datname::text, usename::text, application_name, host(client_addr), state, \
                    query, backend_start \
               FROM pg_stat_activity WHERE pid = $1",
            &[&pid],
        )
        .unwrap();
    let start: DateTime<Utc> = row.get(6);
    serde_json::json!({
        "pid": pid,
        "datname": row.get::<_, Option<String>>(0),
        "usename": row.get::<_, Option<String>>(1),
        "application_name": row.get::<_, Option<String>>(2),
        "client_addr": row.get::<_, Option<String>>(3),
        "state": row.get::<_, Option<String>>(4),
        "query": row.get::<_, Option<String>>(5),
        "backend_start": start.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    })
}

/// Each field of `expected` as the record's session has it (timestamps compared as times).
fn assert_session_as_seen(record: &Value, expected: &Value) {
    for (field, want) in expected.as_object().unwrap() {
        let got = &record["session"][field];
        if field == "backend_start" {
            let parse = |v: &Value| v.as_str().unwrap().parse::<DateTime<Utc>>().unwrap();
            assert_eq!(parse(got), parse(want), "backend_start of {record}");
        } else {
            assert_eq!(got, want, "{field} of {record}");
        }
    }
}

fn os_user() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn host_name() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

/// The fields every record of a run has, whatever it acted on.
fn assert_run_fields(record: &Value, server: &Server, command: &str, role: &str, reason: &str) {
    assert_eq!(record["command"], command, "{record}");
    assert_eq!(record["reason"], reason, "{record}");
    assert_eq!(record["current_user"], role, "{record}");
    assert_eq!(record["session_user"], role, "{record}");
    assert_eq!(record["os_user"], os_user().as_str(), "{record}");
    assert_eq!(record["host"], host_name().as_str(), "{record}");
    assert_eq!(
        record["server"],
        format!("{}:{}/postgres", server.sock_dir().display(), server.port()).as_str(),
        "{record}"
    );
    assert!(record["server_addr"].is_null(), "a unix socket: {record}");
    assert_eq!(record["pgkick_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(record["dry_run"], false, "{record}");
    assert!(record["round"].is_null(), "{record}");
    let time: DateTime<Utc> = record["time"].as_str().unwrap().parse().unwrap();
    assert!((Utc::now() - time).num_seconds().abs() < 120, "{record}");
}

#[test]
fn audit_terminate_records_every_outcome_with_the_session_as_matched() {
    // A private server, for a prepared transaction.
    let server = &Server::start_with(&[("max_prepared_transactions", "2")]);
    let db = server.create_db("audit_term");
    let kicker = server.create_role("kicker", "IN ROLE pg_signal_backend, pg_read_all_stats");
    let alice = server.create_role("alice", "");
    let mut preparer = server.connect(&db);
    preparer
        .batch_execute("BEGIN; PREPARE TRANSACTION 'audit_held'")
        .unwrap();
    drop(preparer);
    let ended = Session::idle(server, &db, &alice, "report");
    let refused = Session::idle(server, &db, SUPERUSER, "admin");
    let leaving = Session::idle(server, &db, &alice, "leaving");
    let seen: Vec<Value> = [ended.pid, refused.pid, leaving.pid]
        .iter()
        .map(|&pid| activity(server, pid))
        .collect();
    let file = Scratch::new("audit_term");

    // Between matching and signalling, pgkick notes on stderr the prepared transaction that
    // holds the --db database. Its stderr is a pipe filled to the brim: it stops at that
    // note, and `leaving` ends meanwhile, matched but not yet signalled: already_gone.
    let (mut stderr, full) = full_pipe();
    let app = unique_name("audit_kicker");
    let mut cmd = server.pgkick_as(&kicker);
    cmd.env("PGAPPNAME", &app)
        .args(["-d", "dbname=postgres password=hunter2"])
        .args(["terminate", "--db", &db, "--reason", "INC-42"])
        .args(["--audit-log", file.path()])
        .stdout(Stdio::null())
        .stderr(full);
    let mut kick = cmd.spawn().unwrap();
    drop(cmd);
    let mut watcher = server.connect(SUPERUSER);
    // The statement that found the prepared transaction is done, and pgkick writes its note.
    let noting = wait_until(Duration::from_secs(20), || {
        watcher
            .query_opt(
                "SELECT 1 FROM pg_stat_activity WHERE application_name = $1 \
                   AND state = 'idle' AND query LIKE '%pg_prepared_xacts%' \
                   AND query NOT LIKE '%pg_stat_activity%'",
                &[&app],
            )
            .unwrap()
            .is_some()
    });
    assert!(noting, "pgkick never looked for what holds the database");
    let leaving_pid = leaving.pid;
    drop(leaving);
    assert!(wait_until(Duration::from_secs(10), || {
        watcher
            .query_opt(
                "SELECT 1 FROM pg_stat_activity WHERE pid = $1",
                &[&leaving_pid],
            )
            .unwrap()
            .is_none()
    }));
    let mut text = Vec::new();
    stderr.read_to_end(&mut text).unwrap();
    let status = kick.wait().unwrap();
    let text = String::from_utf8_lossy(&text);
    let said = text.trim_start_matches('.');
    assert!(said.contains("audit_held"), "the note on stderr: {said}");
    assert_eq!(
        status.code(),
        Some(3),
        "permission_denied is partial: {said}"
    );
    assert!(wait_until(Duration::from_secs(10), || !ended.alive(server)));
    assert!(refused.alive(server));

    let records = records(&file.at);
    let by_pid = by_pid(&records);
    assert_eq!(
        by_pid.len(),
        3,
        "one record per matched session: {records:?}"
    );
    for (session, outcome) in seen
        .iter()
        .zip(["terminated", "permission_denied", "already_gone"])
    {
        let record = &by_pid[&session["pid"].as_i64().unwrap()];
        assert_run_fields(record, server, "terminate", &kicker, "INC-42");
        assert_session_as_seen(record, session);
        assert_eq!(record["outcome"], outcome, "{record}");
        assert!(record["object"].is_null());
    }
    // The arguments, with the password of the connection string masked.
    let args: Vec<&str> = records[0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        args.contains(&"dbname=postgres password=******"),
        "{args:?}"
    );
    assert!(
        args.windows(2).any(|w| w == ["--db", db.as_str()]),
        "{args:?}"
    );
    let text = fs::read_to_string(&file.at).unwrap();
    assert!(!text.contains("hunter2"), "{text}");
    let mode = fs::metadata(&file.at).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the audit file is created private");
}

#[test]
fn audit_cancel_record_and_a_hostile_reason_verbatim_in_the_file_and_the_server_log() {
    let server = Server::shared();
    let db = server.create_db("audit_cancel");
    server
        .connect(&db)
        .batch_execute("CREATE TABLE canary ()")
        .unwrap();
    let s = Session::active(server, &db, SUPERUSER, "batch", "SELECT pg_sleep(60)");
    let seen = activity(server, s.pid);
    let file = Scratch::new("audit_cancel");

    let out = run(server.pgkick().args([
        "cancel",
        "--json",
        "--yes",
        "--db",
        &db,
        "--app",
        "batch",
        "--reason",
        HOSTILE,
        "--audit-log",
        file.path(),
        "--server-log",
    ]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(outcomes(&out), expect(&[(s.pid, "cancelled")]));
    assert_eq!(
        s.query_result(Duration::from_secs(10)),
        Some(Err("57014".into()))
    );
    assert!(s.alive(server), "cancel keeps the connection");

    let records = records(&file.at);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_run_fields(&records[0], server, "cancel", SUPERUSER, HOSTILE);
    assert_session_as_seen(&records[0], &seen);
    assert_eq!(records[0]["session"]["state"], "active");
    assert_eq!(records[0]["session"]["query"], "SELECT pg_sleep(60)");
    assert_eq!(records[0]["outcome"], "cancelled");

    // The server's log has the line, the reason verbatim (PostgreSQL indents each further
    // line of a message with a tab), and the reason ran nowhere: the canary is still there.
    let line = format!(
        "LOG:  pgkick: cancelled pids {} by role postgres (session user postgres); reason: {}",
        s.pid,
        HOSTILE.replace('\n', "\n\t")
    );
    assert!(
        wait_until(Duration::from_secs(10), || server.log().contains(&line)),
        "{line:?} not in the server log:\n{}",
        server.log()
    );
    let canary = server
        .connect(&db)
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relname = 'canary'",
            &[],
        )
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(canary, 1, "the reason was run as SQL");
}

#[test]
fn audit_lock_and_unlock_record_the_object_and_its_prior_state() {
    let server = Server::shared();
    let db = server.create_db("audit_lock");
    let role = server.create_role("audit_nologin", "");
    server.sql(&format!("ALTER DATABASE \"{db}\" CONNECTION LIMIT 7"));
    let file = Scratch::new("audit_lock");
    let audited = |cmd: &[&str]| {
        let out = run(server.pgkick().args(cmd).args([
            "--reason",
            "maintenance window",
            "--audit-log",
            file.path(),
        ]));
        assert_eq!(out.code, 0, "{cmd:?}: {}", out.stderr);
    };

    audited(&[
        "lock",
        "--db",
        &db,
        "--method",
        "connection-limit",
        "--role",
        &role,
    ]);
    let limit = |server: &Server| -> i32 {
        server
            .connect(SUPERUSER)
            .query_one(
                "SELECT datconnlimit FROM pg_database WHERE datname = $1",
                &[&db],
            )
            .unwrap()
            .get(0)
    };
    assert_eq!(limit(server), 0);
    assert!(!role_state(server, &role).0, "the role is NOLOGIN");
    let locked = records(&file.at);
    assert_eq!(locked.len(), 2, "{locked:?}");
    let object = |r: &Value, kind: &str| r["object"]["kind"] == kind;
    let database = locked.iter().find(|r| object(r, "database")).unwrap();
    assert_run_fields(database, server, "lock", SUPERUSER, "maintenance window");
    assert!(database["session"].is_null());
    assert_eq!(database["outcome"], "locked");
    assert_eq!(database["object"]["name"], db.as_str());
    assert_eq!(database["object"]["method"], "connection-limit");
    let prior = &database["object"]["prior"];
    assert_eq!(prior["datconnlimit"], 7, "{prior}");
    assert_eq!(prior["datallowconn"], true, "{prior}");
    assert_eq!(prior["owner"], SUPERUSER, "{prior}");
    assert!(prior["comment"].is_null(), "{prior}");
    let statements = database["object"]["statements"].as_array().unwrap();
    assert_eq!(
        statements[0],
        format!("ALTER DATABASE \"{db}\" CONNECTION LIMIT 0;").as_str()
    );
    let nologin = locked.iter().find(|r| object(r, "role")).unwrap();
    assert_eq!(nologin["outcome"], "locked");
    assert_eq!(nologin["object"]["name"], role.as_str());
    assert_eq!(nologin["object"]["method"], "nologin");
    assert_eq!(nologin["object"]["prior"]["rolcanlogin"], true);

    audited(&["unlock", "--db", &db, "--role", &role]);
    assert_eq!(limit(server), 7, "unlock gave the limit back");
    assert!(role_state(server, &role).0);
    let all = records(&file.at);
    assert_eq!(all.len(), 4, "records are appended: {all:?}");
    let database = all[2..].iter().find(|r| object(r, "database")).unwrap();
    assert_run_fields(database, server, "unlock", SUPERUSER, "maintenance window");
    assert_eq!(database["outcome"], "unlocked");
    assert_eq!(
        database["object"]["prior"], *prior,
        "the state unlock gave back"
    );
    assert_eq!(
        database["object"]["statements"][0],
        format!("ALTER DATABASE \"{db}\" CONNECTION LIMIT 7;").as_str()
    );
    let login = all[2..].iter().find(|r| object(r, "role")).unwrap();
    assert_eq!(login["outcome"], "unlocked");
}

#[test]
fn audit_dry_run_writes_records_only_when_asked() {
    let server = Server::shared();
    let db = server.create_db("audit_dry");
    let s = Session::idle(server, &db, SUPERUSER, "app");
    let file = Scratch::new("audit_dry");
    let dry = [
        "terminate",
        "--dry-run",
        "--db",
        &db,
        "--audit-log",
        file.path(),
    ];

    let out = run(server.pgkick().args(dry));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        !file.at.exists(),
        "a dry run writes no record, nor creates the file"
    );

    let out = run(server.pgkick().args(dry).arg("--audit-dry-run"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let records = records(&file.at);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["dry_run"], true);
    assert_eq!(records[0]["outcome"], "would_terminate");
    assert_eq!(records[0]["session"]["pid"], s.pid);
    assert!(s.alive(server));

    // `-`: the same record on stderr, as one line of its own; stdout keeps the results.
    let out = run(server
        .pgkick()
        .args([
            "terminate",
            "--json",
            "--dry-run",
            "--audit-dry-run",
            "--db",
            &db,
        ])
        .args(["--audit-log", "-"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(outcomes(&out), expect(&[(s.pid, "would_terminate")]));
    let on_stderr: Vec<Value> = out
        .stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert_eq!(on_stderr.len(), 1, "{}", out.stderr);
    assert_eq!(on_stderr[0]["session"]["pid"], s.pid);
    assert_eq!(on_stderr[0]["dry_run"], true);
}

#[test]
fn audit_destination_that_cannot_be_written_stops_the_run_before_anything_is_signalled() {
    let server = Server::shared();
    let db = server.create_db("audit_unwritable");
    let s = Session::idle(server, &db, SUPERUSER, "app");
    let dir = Scratch::new("audit_dir");
    fs::create_dir(&dir.at).unwrap();
    let missing = dir.at.join("no/such/dir/audit.log");
    let locked = Scratch::new("audit_locked");
    for dest in [missing.to_str().unwrap(), dir.path()] {
        for command in [&["terminate", "--db", &db][..], &["lock", "--db", &db]] {
            let out = run(server.pgkick().args(command).args(["--audit-log", dest]));
            assert_eq!(out.code, 1, "{command:?} {dest}: {}", out.stderr);
            assert_eq!(out.stderr.lines().count(), 1, "{}", out.stderr);
            assert!(
                out.stderr.contains("cannot open the audit log"),
                "{}",
                out.stderr
            );
        }
    }
    // No syslog socket where pgkick is told to look.
    let out = run(server
        .pgkick()
        .args(["terminate", "--db", &db, "--audit-log", "syslog"])
        .env("PGKICK_SYSLOG_SOCKET", locked.path()));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains("cannot reach the syslog socket"),
        "{}",
        out.stderr
    );
    assert!(s.alive(server), "nothing was signalled");
    let datconnlimit: i32 = server
        .connect(SUPERUSER)
        .query_one(
            "SELECT datconnlimit FROM pg_database WHERE datname = $1",
            &[&db],
        )
        .unwrap()
        .get(0);
    assert_eq!(datconnlimit, -1, "nothing was locked");
    let _ = fs::remove_dir(&dir.at);
}

#[test]
fn audit_syslog_gets_one_datagram_per_record_from_the_environment_setting() {
    let server = Server::shared();
    let db = server.create_db("audit_syslog");
    let s = Session::idle(server, &db, SUPERUSER, "app");
    let socket_path = Scratch::new("audit_syslog.sock");
    let socket = UnixDatagram::bind(&socket_path.at).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();

    let out = run(server
        .pgkick()
        .args([
            "terminate",
            "--yes",
            "--db",
            &db,
            "--audit-facility",
            "local3",
        ])
        .env("PGKICK_AUDIT_LOG", "syslog")
        .env("PGKICK_SYSLOG_SOCKET", socket_path.path()));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let mut buf = vec![0u8; 65536];
    let n = socket.recv(&mut buf).expect("a datagram");
    let message = String::from_utf8_lossy(&buf[..n]).into_owned();
    // local3 (19) * 8 + notice (5); then "Mmm dd hh:mm:ss pgkick[pid]: " and the record.
    assert!(message.starts_with("<157>"), "{message}");
    let (head, json) = message.split_once("]: ").unwrap();
    assert!(head.contains(" pgkick["), "{message}");
    let record: Value = serde_json::from_str(json).unwrap();
    assert_eq!(record["session"]["pid"], s.pid);
    assert_eq!(record["outcome"], "terminated");
    assert!(record["reason"].is_null());
}

#[test]
fn audit_four_concurrent_runs_create_one_private_file_and_append_whole_lines() {
    let server = Server::shared();
    let db = server.create_db("audit_concurrent");
    // Long query texts make long records.
    let long = format!("SELECT pg_sleep(60) /* {} */", "x".repeat(900));
    let sessions: Vec<Session> = (0..4)
        .map(|_| Session::active(server, &db, SUPERUSER, "app", &long))
        .collect();
    let file = Scratch::new("audit_concurrent");
    // The file does not exist yet: the writers also race to create it (O_CREAT|O_EXCL, and
    // the losers open what the winner made).
    let rounds = 25;
    let writers = 4;
    let children: Vec<Child> = (0..writers)
        .map(|_| {
            server
                .pgkick()
                .args([
                    "terminate",
                    "--dry-run",
                    "--audit-dry-run",
                    "--quiet",
                    "--db",
                    &db,
                ])
                .args(["--every", "1ms", "--rounds", &rounds.to_string()])
                .args(["--audit-log", file.path()])
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut w in children {
        assert!(w.wait().unwrap().success());
    }
    let records = records(&file.at);
    assert_eq!(records.len(), writers * rounds * sessions.len());
    for r in &records {
        assert_eq!(r["session"]["query"].as_str().unwrap().len(), long.len());
        assert_eq!(r["outcome"], "would_terminate");
    }
    let meta = fs::metadata(&file.at).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o600, "created private");
    assert_eq!(meta.uid(), euid(), "created for the user running pgkick");
}

#[test]
fn audit_server_log_refused_is_said_once_and_the_run_goes_on() {
    let server = Server::shared();
    let db = server.create_db("audit_nolang");
    server
        .connect(&db)
        .batch_execute("REVOKE USAGE ON LANGUAGE plpgsql FROM PUBLIC")
        .unwrap();
    let kicker = server.create_role("kicker", "IN ROLE pg_signal_backend");
    let alice = server.create_role("alice", "");
    let a = Session::idle(server, &db, &alice, "app");
    let b = Session::idle(server, &db, &alice, "app");
    let out = run(server
        .pgkick_as(&kicker)
        .args([
            "-d",
            &db,
            "terminate",
            "--json",
            "--db",
            &db,
            "--app",
            "app",
        ])
        .arg("--server-log"));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        outcomes(&out),
        expect(&[(a.pid, "terminated"), (b.pid, "terminated")])
    );
    assert_eq!(
        out.stderr
            .matches("--server-log: the server did not take")
            .count(),
        1,
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("permission denied for language plpgsql"),
        "{}",
        out.stderr
    );
}

// ---------------------------------------------------------------------------------------------
// What is at the file's path: pgkick, often root, appends only to a private regular file of
// its own user, in a directory no one else can replace it in
// ---------------------------------------------------------------------------------------------

/// What a refused run must leave alone: a session running a query, and its database unlocked.
struct Bystander<'a> {
    server: &'a Server,
    db: String,
    session: Session,
}

impl<'a> Bystander<'a> {
    fn new(server: &'a Server, prefix: &str) -> Bystander<'a> {
        let db = server.create_db(prefix);
        let session = Session::active(server, &db, SUPERUSER, "bystander", "SELECT pg_sleep(600)");
        Bystander {
            server,
            db,
            session,
        }
    }

    /// cancel, terminate and lock, each with `--audit-log path`: each exits 1 within seconds
    /// (a run still going after 20s is killed and fails the test), with one line on stderr
    /// naming the path and holding each of `said`; and nothing was done.
    fn refused(&self, path: &Path, said: &[&str]) {
        let dest = path.to_str().unwrap();
        for command in [
            &["cancel", "--yes", "--db", &self.db][..],
            &["terminate", "--yes", "--db", &self.db],
            &["lock", "--db", &self.db],
        ] {
            let started = Instant::now();
            let (code, stderr) = Watching::start(
                self.server
                    .pgkick()
                    .args(command)
                    .args(["--audit-log", dest])
                    .stdin(Stdio::null()),
            )
            .finish(Duration::from_secs(20));
            let took = started.elapsed();
            assert_eq!(code, 1, "{command:?} --audit-log {dest}: {stderr}");
            assert!(took < Duration::from_secs(10), "{command:?} took {took:?}");
            assert_eq!(stderr.lines().count(), 1, "{stderr}");
            let line = stderr.trim_end();
            assert!(
                line.starts_with(&format!("pgkick: cannot open the audit log {dest}: "))
                    && line.ends_with("; nothing was done"),
                "{line}"
            );
            for words in said {
                assert!(line.contains(words), "{words:?} not in: {line}");
            }
        }
        self.untouched();
    }

    /// The session still runs its query (neither cancelled nor terminated), and its database
    /// is not locked.
    fn untouched(&self) {
        assert_eq!(
            self.session.query_result(Duration::ZERO),
            None,
            "the query ended"
        );
        let row = self
            .server
            .connect(SUPERUSER)
            .query_one(
                "SELECT a.state, a.query, d.datallowconn, d.datconnlimit \
                   FROM pg_stat_activity a JOIN pg_database d ON d.oid = a.datid \
                  WHERE a.pid = $1",
                &[&self.session.pid],
            )
            .unwrap();
        assert_eq!(row.get::<_, Option<String>>(0).as_deref(), Some("active"));
        assert_eq!(
            row.get::<_, Option<String>>(1).as_deref(),
            Some("SELECT pg_sleep(600)")
        );
        assert!(row.get::<_, bool>(2), "the database was locked");
        assert_eq!(row.get::<_, i32>(3), -1, "the database was locked");
    }

    /// A dry run that writes its record to `path`: exit 0.
    fn audited_dry_run(&self, path: &Path) {
        let out = run(self
            .server
            .pgkick()
            .args([
                "terminate",
                "--dry-run",
                "--audit-dry-run",
                "--db",
                &self.db,
            ])
            .args(["--audit-log", path.to_str().unwrap()]));
        assert_eq!(out.code, 0, "{}", out.stderr);
    }
}

/// The record a dry run of [`Bystander::audited_dry_run`] leaves.
fn assert_dry_run_record(record: &Value, by: &Bystander<'_>) {
    assert_eq!(record["session"]["pid"], by.session.pid, "{record}");
    assert_eq!(record["outcome"], "would_terminate", "{record}");
}

#[test]
fn audit_log_symlink_is_refused_and_neither_its_target_nor_a_dangling_ones_is_written() {
    let server = Server::shared();
    let by = Bystander::new(server, "audit_symlink");
    let file = Scratch::new("audit_symlink");
    let elsewhere = TempDir::new("audit_symlink_target");
    let target = elsewhere.write("precious", "precious\n", 0o600);
    std::os::unix::fs::symlink(&target, &file.at).unwrap();
    by.refused(
        &file.at,
        &["is a symbolic link, which pgkick does not follow"],
    );
    assert_eq!(fs::read_to_string(&target).unwrap(), "precious\n");

    // A dangling link: root would create its target.
    fs::remove_file(&file.at).unwrap();
    let missing = elsewhere.path().join("created-by-root");
    std::os::unix::fs::symlink(&missing, &file.at).unwrap();
    by.refused(&file.at, &["is a symbolic link"]);
    assert!(
        fs::symlink_metadata(&missing).is_err(),
        "the target was created"
    );
}

#[test]
fn audit_log_fifo_is_refused_at_once_and_its_reader_gets_nothing() {
    let server = Server::shared();
    let by = Bystander::new(server, "audit_fifo");
    let file = Scratch::new("audit_fifo");
    let name = std::ffi::CString::new(file.path()).unwrap();
    // SAFETY: mkfifo reads the NUL-terminated path only.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
    // No reader: an open that waits for one would block pgkick forever.
    by.refused(&file.at, &["is a FIFO (named pipe), not a regular file"]);

    // A reader: the open returns, and what was opened is refused all the same.
    let mut reader = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&file.at)
        .unwrap();
    by.refused(&file.at, &["is a FIFO"]);
    let mut got = [0u8; 65536];
    match reader.read(&mut got) {
        Ok(n) => assert_eq!(
            n,
            0,
            "the reader got {:?}",
            String::from_utf8_lossy(&got[..n])
        ),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "{e}"),
    }
}

#[test]
fn audit_log_that_is_a_socket_or_a_device_is_refused() {
    let server = Server::shared();
    let by = Bystander::new(server, "audit_special");
    let file = Scratch::new("audit_socket");
    let _listener = std::os::unix::net::UnixListener::bind(&file.at).unwrap();
    by.refused(&file.at, &["is a socket, not a regular file"]);
    by.refused(
        Path::new("/dev/null"),
        &["is a character device, not a regular file"],
    );
}

#[test]
fn audit_log_of_another_user_or_open_to_others_is_refused_with_the_fix() {
    let server = Server::shared();
    let by = Bystander::new(server, "audit_exposed");
    let earlier = "{\"earlier\":true}\n";
    if let Some(nobody) = other_user() {
        let file = Scratch::new("audit_theirs");
        fs::write(&file.at, earlier).unwrap();
        chmod(&file.at, 0o644);
        std::os::unix::fs::chown(&file.at, Some(nobody), None).unwrap();
        let p = file.path();
        by.refused(
            &file.at,
            &[
                &format!("is owned by uid {nobody} (nobody), not by root who runs pgkick"),
                &format!("chown root {p} && chmod 600 {p}"),
            ],
        );
        assert_eq!(fs::read_to_string(&file.at).unwrap(), earlier);
        assert_eq!(mode_of(&file.at), 0o644);
    }
    for (mode, lets) in [
        (0o644, "its mode 0644 lets others read the records"),
        (0o620, "its mode 0620 lets its group rewrite the records"),
        (0o602, "its mode 0602 lets others rewrite the records"),
    ] {
        let file = Scratch::new("audit_exposed");
        fs::write(&file.at, earlier).unwrap();
        chmod(&file.at, mode);
        by.refused(&file.at, &[lets, &format!("chmod 600 {}", file.path())]);
        assert_eq!(fs::read_to_string(&file.at).unwrap(), earlier);
        assert_eq!(mode_of(&file.at), mode, "left as it was");
    }

    // A second name of a private file of ours: a link planted in a shared directory could
    // make root append to any file of root's on the same file system.
    let file = Scratch::new("audit_hardlink");
    let elsewhere = TempDir::new("audit_hardlink_target");
    let target = elsewhere.write("precious", "precious\n", 0o600);
    fs::hard_link(&target, &file.at).unwrap();
    by.refused(&file.at, &["it has 2 hard links"]);
    assert_eq!(fs::read_to_string(&target).unwrap(), "precious\n");
}

#[test]
fn audit_log_private_files_of_ours_are_appended_to() {
    let server = Server::shared();
    let by = Bystander::new(server, "audit_private");
    for mode in [0o600, 0o640] {
        let file = Scratch::new("audit_private");
        fs::write(&file.at, "{\"earlier\":true}\n").unwrap();
        chmod(&file.at, mode);
        by.audited_dry_run(&file.at);
        let records = records(&file.at);
        assert_eq!(records.len(), 2, "{mode:o}: {records:?}");
        assert_eq!(records[0]["earlier"], true, "appended after what was there");
        assert_dry_run_record(&records[1], &by);
        assert_eq!(mode_of(&file.at), mode, "left as it was");
    }
    by.untouched();
}

#[test]
fn audit_log_directory_others_can_write_is_refused_unless_sticky() {
    let server = Server::shared();
    let by = Bystander::new(server, "audit_dir_mode");
    for mode in [0o777, 0o775, 0o757] {
        let dir = TempDir::new("audit_dir_open");
        chmod(dir.path(), mode);
        let path = dir.path().join("audit.log");
        by.refused(
            &path,
            &[
                &format!("its directory {} (mode {mode:04o})", dir.path().display()),
                "has no sticky bit",
                &format!("chmod go-w {}", dir.path().display()),
            ],
        );
        assert!(fs::symlink_metadata(&path).is_err(), "{mode:o}: created");
    }
    if let Some(nobody) = other_user() {
        // Its owner could remove or replace the log whatever the mode.
        let dir = TempDir::new("audit_dir_theirs");
        chmod(dir.path(), 0o755);
        std::os::unix::fs::chown(dir.path(), Some(nobody), None).unwrap();
        let path = dir.path().join("audit.log");
        by.refused(&path, &[&format!("is owned by uid {nobody} (nobody)")]);
        assert!(fs::symlink_metadata(&path).is_err(), "created");
    }

    // Sticky, like /tmp: others cannot remove or rename a file of ours in it.
    let dir = TempDir::new("audit_dir_sticky");
    chmod(dir.path(), 0o1777);
    let path = dir.path().join("audit.log");
    by.audited_dry_run(&path);
    let records = records(&path);
    assert_eq!(records.len(), 1, "{records:?}");
    assert_dry_run_record(&records[0], &by);
    let meta = fs::metadata(&path).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o600, "created private");
    assert_eq!(meta.uid(), euid(), "created for the user running pgkick");
}

/// The directory's whole path is checked from `/`, as OpenSSH's safe_path does: a directory
/// on the way that another user owns or may write (without the sticky bit) could be renamed
/// or replaced, and a symbolic link on the way that another user planted (in a sticky
/// directory like /tmp anyone may) could send root's appends anywhere. Root's own links
/// (Debian's /var/run -> /run) and root's own directories in a sticky one are fine.
#[test]
fn audit_log_directory_path_is_checked_from_the_root() {
    let server = Server::shared();
    let by = Bystander::new(server, "audit_dir_path");
    // Like /tmp: writable by everyone, sticky.
    let shared = TempDir::new("audit_dir_path");
    chmod(shared.path(), 0o1777);
    let mine = shared.path().join("mine");
    fs::create_dir(&mine).unwrap();
    chmod(&mine, 0o700);

    // A directory on the way that others can write, without the sticky bit: refused, even
    // though the file's own directory is root's and private.
    let open = shared.path().join("open");
    fs::create_dir_all(open.join("private")).unwrap();
    chmod(&open, 0o777);
    chmod(&open.join("private"), 0o700);
    let path = open.join("private/audit.log");
    by.refused(
        &path,
        &[
            &format!("the directory {} on its path (mode 0777)", open.display()),
            "has no sticky bit",
            &format!("chmod go-w {}", open.display()),
        ],
    );
    assert!(fs::symlink_metadata(&path).is_err(), "created");

    if let Some(nobody) = other_user() {
        // A link another user planted in the sticky directory, aimed at a private directory
        // of root's: root would write where they chose.
        let planted = shared.path().join("planted");
        std::os::unix::fs::symlink(&mine, &planted).unwrap();
        std::os::unix::fs::lchown(&planted, Some(nobody), None).unwrap();
        by.refused(
            &planted.join("audit.log"),
            &[&format!(
                "{} on its path is a symbolic link owned by uid {nobody} (nobody)",
                planted.display()
            )],
        );
        assert!(
            fs::symlink_metadata(mine.join("audit.log")).is_err(),
            "the link's target was written"
        );

        // A directory on the way that another user owns: they may rename what is in it.
        let theirs = shared.path().join("theirs");
        fs::create_dir_all(theirs.join("private")).unwrap();
        chmod(&theirs, 0o755);
        std::os::unix::fs::chown(&theirs, Some(nobody), None).unwrap();
        let path = theirs.join("private/audit.log");
        by.refused(
            &path,
            &[&format!(
                "the directory {} on its path is owned by uid {nobody} (nobody)",
                theirs.display()
            )],
        );
        assert!(fs::symlink_metadata(&path).is_err(), "created");
    }

    // Root's own directory in the sticky one, directly and through root's own link.
    let ours = shared.path().join("ours");
    std::os::unix::fs::symlink("mine", &ours).unwrap();
    for path in [mine.join("audit.log"), ours.join("audit.log")] {
        by.audited_dry_run(&path);
    }
    let records = records(&mine.join("audit.log"));
    assert_eq!(records.len(), 2, "{records:?}");
    for record in &records {
        assert_dry_run_record(record, &by);
    }
    by.untouched();
}

// ---------------------------------------------------------------------------------------------
// --every
// ---------------------------------------------------------------------------------------------

/// A pgkick running in the background, its stdout read line by line as it comes.
struct Watching {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

impl Watching {
    fn start(cmd: &mut Command) -> Watching {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let (tx, stderr) = mpsc::channel();
        let mut pipe = child.stderr.take().unwrap();
        thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            let _ = tx.send(text);
        });
        Watching {
            child,
            lines,
            stderr,
        }
    }

    /// The next JSON line on stdout.
    fn next(&self) -> Value {
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(30))
            .expect("a result line from pgkick");
        serde_json::from_str(&line).unwrap()
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill has no memory-safety preconditions; the child is ours and not reaped.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }

    /// Waits for the exit: its code (panics if killed by a signal) and stderr.
    fn finish(mut self, within: Duration) -> (i32, String) {
        let deadline = Instant::now() + within;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("pgkick still running after {within:?}");
            }
            thread::sleep(Duration::from_millis(10));
        };
        let stderr = self.stderr.recv_timeout(Duration::from_secs(5)).unwrap();
        let code = status
            .code()
            .unwrap_or_else(|| panic!("killed by a signal: {status:?}\n{stderr}"));
        (code, stderr)
    }
}

#[test]
fn audit_every_round_ends_the_sessions_that_appeared_since_the_last() {
    let server = Server::shared();
    let db = server.create_db("audit_every");
    let file = Scratch::new("audit_every");
    let first = Session::idle(server, &db, SUPERUSER, "app");
    let watching = Watching::start(
        server
            .pgkick()
            .args(["terminate", "--output", "jsonl", "--db", &db])
            .args(["--every", "1s", "--rounds", "3", "--audit-log", file.path()]),
    );
    let mut ended = vec![watching.next()];
    let second = Session::idle(server, &db, SUPERUSER, "app");
    ended.push(watching.next());
    let third = Session::idle(server, &db, SUPERUSER, "app");
    ended.push(watching.next());
    let (code, stderr) = watching.finish(Duration::from_secs(30));
    assert_eq!(code, 0, "{stderr}");
    let pids: Vec<i32> = [&first, &second, &third].iter().map(|s| s.pid).collect();
    for (line, pid) in ended.iter().zip(&pids) {
        assert_eq!(
            (&line["pid"], &line["outcome"]),
            (&(*pid).into(), &"terminated".into())
        );
    }
    for s in [&first, &second, &third] {
        assert!(wait_until(Duration::from_secs(10), || !s.alive(server)));
    }
    // Each round wrote its own record, numbered.
    let rounds: Vec<(i64, i64)> = records(&file.at)
        .iter()
        .map(|r| {
            (
                r["session"]["pid"].as_i64().unwrap(),
                r["round"].as_i64().unwrap(),
            )
        })
        .collect();
    let expected: Vec<(i64, i64)> = pids.iter().map(|&p| i64::from(p)).zip(1..).collect();
    assert_eq!(rounds, expected);
}

#[test]
fn audit_every_stops_promptly_on_sigterm_and_ignores_sighup() {
    let server = Server::shared();
    let db = server.create_db("audit_sigterm");
    let s = Session::idle(server, &db, SUPERUSER, "app");
    let watching = Watching::start(server.pgkick().args([
        "terminate",
        "--output",
        "jsonl",
        "--db",
        &db,
        "--every",
        "1h",
    ]));
    let line = watching.next();
    assert_eq!(line["pid"], s.pid);
    assert_eq!(line["outcome"], "terminated");
    watching.signal(libc::SIGHUP);
    watching.signal(libc::SIGTERM);
    let started = Instant::now();
    let (code, stderr) = watching.finish(Duration::from_secs(10));
    assert_eq!(code, 0, "every round succeeded: {stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the wait was cut short"
    );
    assert!(
        stderr.contains("SIGTERM: stopped after round 1"),
        "{stderr}"
    );
}

#[test]
fn audit_every_applies_the_guards_to_each_round() {
    let server = Server::shared();
    let db = server.create_db("audit_guard");
    let a = Session::idle(server, &db, SUPERUSER, "app");
    let b = Session::idle(server, &db, SUPERUSER, "app");
    let out = run(server.pgkick().args([
        "terminate",
        "--db",
        &db,
        "--max",
        "1",
        "--every",
        "10ms",
        "--rounds",
        "2",
    ]));
    assert_eq!(out.code, 4, "{}", out.stderr);
    for round in 1..=2 {
        assert!(
            out.stderr.contains(&format!(
                "round {round}: 2 sessions match, more than --max 1"
            )),
            "{}",
            out.stderr
        );
    }
    assert!(a.alive(server) && b.alive(server), "nothing was signalled");
    let out = run(server
        .pgkick()
        .args(["cancel", "--every", "10ms", "--rounds", "1"]));
    assert_eq!(out.code, 4, "no filter without --all: {}", out.stderr);
}

#[test]
fn audit_every_reports_a_lost_server_and_keeps_going() {
    let server = Server::start();
    let s = Session::idle(&server, SUPERUSER, SUPERUSER, "app");
    let watching = Watching::start(
        server
            .pgkick()
            .args(["terminate", "--output", "jsonl", "--app", "app"])
            .args(["--every", "1s", "--rounds", "3"]),
    );
    assert_eq!(watching.next()["pid"], s.pid);
    server.stop_immediate();
    let (code, stderr) = watching.finish(Duration::from_secs(30));
    assert_eq!(code, 1, "{stderr}");
    for round in [2, 3] {
        assert!(
            stderr.contains(&format!("round {round} failed: ")),
            "{stderr}"
        );
    }
}
