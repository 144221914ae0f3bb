//! Hardening (issue 7): hostile input, faults, interruptions, races and load, against real
//! servers. pgkick must fail safe: never hang, never act on an object or session it was not
//! pointed at, never leave a half-done lock.
//!
//! - Hostile input: names with quotes, backslashes, semicolons, comment markers, `$1`, `%I`,
//!   newlines, case and whitespace variants of a bystander's name, names longer than 63 bytes,
//!   invalid UTF-8 arguments, and seeded random filter values, through every subcommand.
//!   (`lock.rs` covers hostile names for lock, unlock and terminate --lock.)
//! - Faults: the server stops during `cancel --wait` and during the `--cancel-first` grace
//!   period; connection refused; a server that accepts and never answers.
//! - Interruptions: SIGINT and SIGTERM during a wait, during the grace period (also after
//!   `--lock`), and Ctrl-C at the confirmation prompt (through a pty made by `script`).
//! - Races: the signalling statement, run by hand with a stale identity (a reused pid, a wrong
//!   backend_start or role), leaves the live session alone.
//! - Load: 1000 sessions; 50 clients reconnecting as fast as they can during
//!   `terminate --lock --wait`, three runs.
//!
//! Everything connects over the unix socket or 127.0.0.1 only.

use std::ffi::OsStr;
use std::io::Read;
use std::net::TcpListener;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use postgres::types::Type;
use postgres::NoTls;

use crate::harness::*;

/// Ends a stubborn session (its Drop would otherwise wait for the swallowed cancel).
fn end(server: &Server, session: Session) {
    server.sql(&format!("SELECT pg_terminate_backend({})", session.pid));
    assert!(wait_until(Duration::from_secs(10), || !session.alive(server)));
}

fn sessions_in(server: &Server, db: &str) -> i64 {
    server
        .connect(SUPERUSER)
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname::text = $1",
            &[&db],
        )
        .unwrap()
        .get(0)
}

// ---------------------------------------------------------------------------------------------
// A pgkick process running in the background
// ---------------------------------------------------------------------------------------------

/// A pgkick child whose stdout and stderr are collected by threads, so it never blocks on a
/// full pipe.
struct Running {
    child: Child,
    started: Instant,
    stdout: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

/// How a background pgkick ended.
struct Finished {
    status: ExitStatus,
    /// From start to exit.
    elapsed: Duration,
    stdout: String,
    stderr: String,
}

impl Finished {
    /// The exit code; panics if pgkick was killed by a signal instead of exiting.
    fn code(&self) -> i32 {
        self.status.code().unwrap_or_else(|| {
            panic!(
                "pgkick was killed by signal {:?} instead of exiting\n{}",
                self.status.signal(),
                self.stderr
            )
        })
    }
}

fn collect(mut pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        let _ = tx.send(String::from_utf8_lossy(&bytes).into_owned());
    });
    rx
}

fn spawn(cmd: &mut Command) -> Running {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    Running {
        stdout: collect(child.stdout.take().unwrap()),
        stderr: collect(child.stderr.take().unwrap()),
        child,
        started: Instant::now(),
    }
}

impl Running {
    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill has no memory-safety preconditions; the child is ours and not reaped.
        let rc = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(rc, 0, "kill: {}", std::io::Error::last_os_error());
    }

    /// Waits up to `deadline` for the exit; kills pgkick and fails the test if it hangs.
    fn finish(mut self, deadline: Duration) -> Finished {
        let limit = Instant::now() + deadline;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() >= limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "pgkick still running after {deadline:?}\n--- stderr\n{}",
                    self.stderr
                        .recv_timeout(Duration::from_secs(5))
                        .unwrap_or_default()
                );
            }
            thread::sleep(Duration::from_millis(10));
        };
        let elapsed = self.started.elapsed();
        Finished {
            status,
            elapsed,
            stdout: self.stdout.recv_timeout(Duration::from_secs(5)).unwrap(),
            stderr: self.stderr.recv_timeout(Duration::from_secs(5)).unwrap(),
        }
    }
}

/// pgkick with its own application_name, so a test can watch what its session is doing.
fn tagged_pgkick(server: &Server) -> (Command, String) {
    let app = unique_name("pgkick_watched");
    let mut cmd = server.pgkick();
    cmd.env("PGAPPNAME", &app);
    (cmd, app)
}

/// Waits until the session with application_name `app` has last run a statement that starts
/// with `prefix` (and, with `idle`, has finished it).
/// Waits until pgkick's session (application_name `app`) has run an empty query, the
/// liveness check pgkick makes every second of a grace period.
fn wait_for_liveness_check(server: &Server, app: &str) {
    let mut watcher = server.connect(SUPERUSER);
    let seen = wait_until(Duration::from_secs(15), || {
        watcher
            .query_opt(
                "SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND query = ''",
                &[&app],
            )
            .ok()
            .flatten()
            .is_some()
    });
    assert!(seen, "pgkick ({app}) never checked the connection");
}

fn wait_for_statement(server: &Server, app: &str, prefix: &str, idle: bool) {
    let mut watcher = server.connect(SUPERUSER);
    let seen = wait_until(Duration::from_secs(15), || {
        watcher
            .query_opt(
                "SELECT 1 FROM pg_stat_activity WHERE application_name = $1 \
                   AND left(query, length($2)) = $2 AND (NOT $3 OR state = 'idle')",
                &[&app, &prefix, &idle],
            )
            .ok()
            .flatten()
            .is_some()
    });
    assert!(seen, "pgkick ({app}) never ran {prefix:?}");
}

/// The signalling statement (`SELECT t.i, CASE ...`) and the polling one (`SELECT t.i FROM`).
const SIGNAL_PREFIX: &str = "SELECT t.i, CASE";
const POLL_PREFIX: &str = "SELECT t.i FROM";

// ---------------------------------------------------------------------------------------------
// Hostile input
// ---------------------------------------------------------------------------------------------

/// Names that break naive quoting, and near-misses of the bystander's names.
fn hostile_names(bystander: &str) -> Vec<String> {
    let tag = unique_name("hh");
    vec![
        format!("dq\"{tag}"),
        format!("it's {tag}"),
        format!("semi; DROP DATABASE {}; -- {tag}", ident(bystander)),
        format!("x'); DROP ROLE {}; /* {tag}", ident(bystander)),
        format!("back\\slash\\'{tag}\\"),
        format!("$1 $$ {tag}"),
        format!("%I %L %s {tag}"),
        format!("new\nline {tag}"),
        format!("-dash {tag}"),
        format!("ünïcødé ✓ {tag}"),
        // Near-misses: must never reach the bystander.
        format!(" {bystander}"),
        bystander.to_uppercase(),
    ]
}

/// application_name keeps only printable ASCII (others become '?') and 63 bytes.
fn app_name_survives(name: &str) -> bool {
    name.len() <= 63 && name.bytes().all(|b| (32..127).contains(&b))
}

#[test]
fn hardening_hostile_names_through_list_cancel_and_terminate() {
    let server = Server::shared();
    let bystander = server.create_db("hb_by");
    server.sql(&format!("CREATE ROLE {} LOGIN", ident(&bystander)));
    let bystander_session = Session::idle(server, &bystander, &bystander, &bystander);
    let by_pid = i64::from(bystander_session.pid);

    for name in hostile_names(&bystander) {
        server.sql(&format!("CREATE DATABASE {}", ident(&name)));
        server.sql(&format!("CREATE ROLE {} LOGIN", ident(&name)));
        let app = if app_name_survives(&name) {
            name.clone()
        } else {
            "plain".to_string()
        };
        let victim = Session::active(server, &name, &name, &app, "SELECT pg_sleep(60)");
        let v = i64::from(victim.pid);
        let list =
            |args: &[&str]| listed(&run(server.pgkick().args(["list", "--json"]).args(args)));
        // `--flag=value`, so that a name starting with '-' stays a value.
        let db = format!("--db={name}");
        let user = format!("--user={name}");
        assert_eq!(list(&[&db]), [v], "{name:?}");
        assert_eq!(list(&[&user]), [v], "{name:?}");
        if app_name_survives(&name) {
            assert_eq!(list(&[&format!("--app={name}")]), [v], "{name:?}");
        } else {
            assert_eq!(list(&[&format!("--app={name}")]), [0i64; 0], "{name:?}");
        }
        for exclude in ["--exclude-db", "--exclude-user"] {
            let out = list(&[&db, &format!("{exclude}={name}")]);
            assert!(out.is_empty(), "{name:?} {exclude}: {out:?}");
        }
        assert!(list(&[&db, &format!("--exclude-app={app}")]).is_empty());
        // The bystander is never among what a hostile value selects, and exclusions keep it.
        let out = list(&[
            &format!("--exclude-db={name}"),
            &format!("--exclude-user={name}"),
            &format!("--app={bystander}"),
        ]);
        assert_eq!(out, [by_pid], "{name:?}");

        // Without `=`, a name starting with '-' is refused as a usage error, not taken as a flag.
        if name.starts_with('-') {
            let out = server.kick(["terminate", "--db", &name]).status(2).run();
            assert!(out.stderr.contains("'--db <NAME>'"), "{}", out.stderr);
            assert!(victim.alive(server));
        }

        let out = server
            .kick(["cancel", "--json", "--wait", &db, &user])
            .run();
        assert_eq!(
            outcomes_of(&out.stdout),
            expect(&[(victim.pid, "cancelled")])
        );
        assert_eq!(
            victim.query_result(Duration::from_secs(5)),
            Some(Err("57014".into())),
            "{name:?}"
        );
        let out = server
            .kick(["terminate", "--json", "--wait", &db, &user])
            .run();
        assert_eq!(
            outcomes_of(&out.stdout),
            expect(&[(victim.pid, "terminated")])
        );
        assert!(!victim.alive(server), "{name:?}");

        assert!(bystander_session.alive(server), "{name:?}");
        assert!(db_exists(server, &bystander), "{name:?}");
        assert!(role_state(server, &bystander).0, "{name:?}");
    }
}

#[test]
fn hardening_names_longer_than_63_bytes_never_reach_the_truncated_object() {
    let server = Server::shared();
    let mut name = unique_name("hl");
    while name.len() < 63 {
        name.push('x');
    }
    server.sql(&format!("CREATE DATABASE {}", ident(&name)));
    server.sql(&format!("CREATE ROLE {} LOGIN", ident(&name)));
    let session = Session::idle(server, &name, &name, "long");
    let before = (db_state(server, &name), role_state(server, &name));
    // PostgreSQL itself would cut these to the 63-byte name.
    for long in [
        format!("{name}y"),
        format!("{name}é"),
        format!("{name}{name}"),
    ] {
        let list =
            |args: &[&str]| listed(&run(server.pgkick().args(["list", "--json"]).args(args)));
        let (db, user) = (format!("--db={long}"), format!("--user={long}"));
        assert!(list(&[&db]).is_empty(), "{long:?} matched the 63-byte name");
        assert!(
            list(&[&user]).is_empty(),
            "{long:?} matched the 63-byte name"
        );
        for exclude in ["--exclude-db", "--exclude-user"] {
            let pids = list(&["--db", &name, &format!("{exclude}={long}")]);
            assert_eq!(pids, [i64::from(session.pid)], "{exclude} {long:?}");
        }
        for args in [
            vec!["terminate", "--json", "--wait"],
            vec!["terminate", "--json", "--lock", "--wait"],
            vec!["cancel", "--json"],
        ] {
            // A name no database has: a typo for cancel and terminate, refused (exit 1)
            // before anything is signalled or locked.
            let out = run(server.pgkick().args(&args).arg(format!("--db={long}")));
            assert_eq!(out.code, 1, "{args:?}: {}", out.stderr);
            assert_one_line(
                &out.stderr,
                &[
                    "the server has no database of that name",
                    "nothing was signalled",
                ],
            );
        }
        for (verb, flag) in [
            ("lock", "--db"),
            ("lock", "--role"),
            ("unlock", "--db"),
            ("unlock", "--role"),
        ] {
            server
                .kick([verb, flag, &long])
                .status(1)
                .fails_with(&["does not exist", "nothing was changed"]);
        }
        assert!(session.alive(server), "{long:?}");
        assert_eq!(
            (db_state(server, &name), role_state(server, &name)),
            before,
            "{long:?}"
        );
    }
}

/// Where an argument with invalid UTF-8 is tried: each option that takes a name or a
/// pattern, before its value (fleet.rs tries them over two servers).
pub const INVALID_UTF8_OPTIONS: [&[&str]; 13] = [
    &["list", "--db"],
    &["list", "--user"],
    &["list", "--app"],
    &["list", "--exclude-db"],
    &["list", "--query"],
    &["cancel", "--db"],
    &["terminate", "--yes", "--db"],
    &["terminate", "--yes", "--lock", "--db"],
    &["lock", "--db"],
    &["lock", "--role"],
    &["unlock", "--db"],
    &["unlock", "--role"],
    &["list", "-d"],
];

#[test]
fn hardening_invalid_utf8_arguments_are_usage_errors() {
    let server = Server::shared();
    let db = server.create_db("hu");
    let session = Session::idle(server, &db, SUPERUSER, "utf8");
    let before = db_state(server, &db);
    let bad: [&[u8]; 3] = [b"\xff\xfe", b"ok\xffname", b"\xc3("];
    for bytes in bad {
        for case in INVALID_UTF8_OPTIONS {
            let out = run(server
                .pgkick()
                .arg("--json")
                .args(case)
                .arg(OsStr::from_bytes(bytes))
                .args(["--db", &db]));
            assert_eq!(out.code, 2, "{case:?} {bytes:?}: {}", out.stderr);
            assert_usage(&out.stderr, &["invalid UTF-8"]);
            assert!(out.stdout.is_empty(), "{}", out.stdout);
        }
        // A valid value next to an invalid one: still refused, nothing done.
        let mut value = db.as_bytes().to_vec();
        value.extend_from_slice(bytes);
        server
            .kick(["terminate", "--yes", "--db", &db, "--db"])
            .args([OsStr::from_bytes(&value)])
            .status(2)
            .run();
    }
    assert!(session.alive(server));
    assert_eq!(db_state(server, &db), before);
}

/// A small deterministic generator, so a failure can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// A hostile value: fragments that break quoting, and random unicode.
    fn value(&mut self) -> String {
        const PIECES: [&str; 18] = [
            "'",
            "''",
            "\"",
            "\\",
            ";",
            "--",
            "/*",
            "*/",
            "$1",
            "$$",
            "%I",
            "%s",
            "\n",
            "\t",
            " ",
            "DROP DATABASE postgres",
            "ü",
            "✓",
        ];
        let mut s = String::new();
        for _ in 0..1 + self.below(6) {
            if self.below(3) == 0 {
                let c = char::from_u32(1 + self.below(0x2FFF) as u32).unwrap_or('x');
                s.push(c);
            } else {
                s.push_str(PIECES[self.below(PIECES.len() as u64) as usize]);
            }
        }
        s
    }
}

#[test]
fn hardening_random_filter_values_run_on_the_server_and_match_nothing_else() {
    let server = Server::shared();
    let db = server.create_db("hr");
    let session = Session::idle(server, &db, SUPERUSER, "random");
    let mut rng = Rng(0x5eed_1234_abcd_0007);
    for round in 0..40 {
        let mut args: Vec<String> = vec!["list".into(), "--json".into()];
        for flag in [
            "db",
            "user",
            "app",
            "backend-type",
            "exclude-db",
            "exclude-user",
            "exclude-app",
        ] {
            for _ in 0..rng.below(3) {
                args.push(format!("--{flag}={}", rng.value()));
            }
        }
        if rng.below(2) == 0 {
            let net = if rng.below(2) == 0 {
                format!(
                    "{}.{}.{}.{}/{}",
                    rng.below(256),
                    rng.below(256),
                    rng.below(256),
                    rng.below(256),
                    rng.below(33)
                )
            } else {
                format!(
                    "{:x}::{:x}/{}",
                    rng.below(0xffff),
                    rng.below(0xffff),
                    rng.below(129)
                )
            };
            args.push(format!("--client={net}"));
        }
        for flag in ["query-age", "xact-age", "state-age", "backend-age"] {
            if rng.below(3) == 0 {
                args.push(format!("--{flag}={}s", rng.below(100_000_000)));
            }
        }
        args.push(format!("--pid={}", rng.next() as i32));
        args.push(format!("--exclude-pid={}", rng.next() as i32));
        // Narrowed to our database: whatever the random values, they must not widen it.
        let narrowed = [&args[..], &["--db".to_string(), db.clone()]].concat();
        let out = server.kick(&narrowed).run();
        let pids = listed(&out);
        assert!(
            pids.is_empty() || pids == [i64::from(session.pid)],
            "round {round}: {pids:?}"
        );
        // As a dry run of terminate: same filter, a statement the server accepted, no target
        // but our session at most. A random database or role name exists nowhere: then the
        // run refuses it as a typo, having asked the server in that very statement.
        let mut dry = narrowed.clone();
        dry[0] = "terminate".into();
        dry.push("-n".into());
        let names_a_stranger = args.iter().any(|a| {
            ["--db=", "--user=", "--exclude-db=", "--exclude-user="]
                .iter()
                .any(|f| a.starts_with(f))
        });
        if names_a_stranger {
            let out = server.kick(&dry).status(1).run();
            assert_one_line(&out.stderr, &["of that name", "nothing was signalled"]);
        } else {
            let out = server.kick(&dry).run();
            assert!(
                out.stderr.contains("pg_catalog.pg_terminate_backend"),
                "{}",
                out.stderr
            );
        }
    }
    // With our session's own values the random exclusions are the only thing that can hide it.
    let out = run(server
        .pgkick()
        .args(["list", "--json", "--db", &db, "--app", "random", "--pid"])
        .arg(session.pid.to_string()));
    assert_eq!(listed(&out), [i64::from(session.pid)]);
    assert!(session.alive(server));
}

/// An age longer than any session has existed matches nothing; it is not a server error.
#[test]
fn hardening_huge_ages_match_nothing_rather_than_fail() {
    let server = Server::shared();
    let db = server.create_db("hage");
    let session = Session::idle_in_transaction(server, &db, SUPERUSER, "old");
    for age in ["18446744073709551615", "10000y", "300000y"] {
        for flag in ["--query-age", "--xact-age", "--state-age", "--backend-age"] {
            let out = server
                .kick(["list", "--json", "--db", &db, flag, age])
                .run();
            assert!(listed(&out).is_empty(), "{flag} {age}");
        }
    }
    assert!(session.alive(server));
}

// ---------------------------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------------------------

#[test]
fn hardening_server_stops_during_cancel_wait() {
    let server = Server::start();
    let db = server.create_db("hf_wait");
    let stubborn = Session::active(&server, &db, SUPERUSER, "stubborn", SWALLOWS_CANCEL);
    let (mut cmd, app) = tagged_pgkick(&server);
    let running = spawn(cmd.args([
        "cancel",
        "--json",
        "--db",
        &db,
        "--wait",
        "--wait-timeout",
        "20s",
    ]));
    wait_for_statement(&server, &app, POLL_PREFIX, false);
    let stopped = Instant::now();
    server.stop_immediate();
    let done = running.finish(Duration::from_secs(15));
    let after_stop = stopped.elapsed();
    assert_eq!(done.code(), 1, "{}\n{}", done.stdout, done.stderr);
    assert_one_line(&done.stderr, &["lost the server while waiting"]);
    assert!(after_stop < Duration::from_secs(5), "{after_stop:?}");
    // What was already done is reported.
    assert_eq!(
        outcomes_of(&done.stdout),
        expect(&[(stubborn.pid, "cancelled")])
    );
}

#[test]
fn hardening_server_stops_during_the_cancel_first_grace_period() {
    let server = Server::start();
    let db = server.create_db("hf_grace");
    let stubborn = Session::active(&server, &db, SUPERUSER, "stubborn", SWALLOWS_CANCEL);
    let (mut cmd, app) = tagged_pgkick(&server);
    let running = spawn(cmd.args([
        "terminate",
        "--json",
        "--db",
        &db,
        "--cancel-first",
        "--grace",
        "10s",
        "--wait",
        "--wait-timeout",
        "20s",
    ]));
    wait_for_statement(&server, &app, SIGNAL_PREFIX, true);
    // The session shows idle a moment before pgkick has the cancel's result; its first
    // liveness check of the grace period proves that it has.
    wait_for_liveness_check(&server, &app);
    let stopped = Instant::now();
    server.stop_immediate();
    let done = running.finish(Duration::from_secs(20));
    let after_stop = stopped.elapsed();
    assert_eq!(
        done.code(),
        1,
        "{:?} {}\n{}",
        after_stop,
        done.stdout,
        done.stderr
    );
    assert_one_line(&done.stderr, &["lost the server during the grace period"]);
    assert_eq!(
        outcomes_of(&done.stdout),
        expect(&[(stubborn.pid, "cancelled")])
    );
    // Noticed within a couple of seconds, not at the end of the 10 s grace period.
    assert!(after_stop < Duration::from_secs(4), "{after_stop:?}");
}

#[test]
fn hardening_connection_refused_fails_fast() {
    // A port nobody listens on: bind, read the port, close.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = Server::shared();
    for args in [
        &["list"][..],
        &["terminate", "--db", "x", "--wait"],
        &["lock", "--db", "x"],
    ] {
        let started = Instant::now();
        let out = run(bare_pgkick(server)
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args));
        assert_eq!(out.code, 1, "{args:?}: {}", out.stderr);
        assert_one_line(&out.stderr, &["127.0.0.1", "refused"]);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }
}

#[test]
fn hardening_connect_timeout_bounds_every_subcommand() {
    // Accepts connections into its backlog and never speaks; sslmode left at its default
    // (prefer), so the SSL request is what goes unanswered.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().unwrap().port().to_string();
    let server = Server::shared();
    let runs: Vec<_> = [
        &["list"][..],
        &["cancel", "--db", "x", "--wait"],
        &["terminate", "--db", "x", "--lock", "--wait", "--yes"],
        &["lock", "--db", "x"],
        &["unlock", "--role", "x"],
    ]
    .into_iter()
    .map(|args| {
        let mut cmd = bare_pgkick(server);
        cmd.args(["-h", "127.0.0.1", "-p", &port, "-d", "connect_timeout=2"])
            .args(args);
        (args, spawn(&mut cmd))
    })
    .collect();
    for (args, running) in runs {
        let done = running.finish(Duration::from_secs(15));
        assert_eq!(done.code(), 1, "{args:?}: {}", done.stderr);
        assert_one_line(&done.stderr, &["timed out after 2s"]);
        assert!(
            done.elapsed >= Duration::from_millis(1900) && done.elapsed < Duration::from_secs(5),
            "{args:?}: {:?}",
            done.elapsed
        );
    }
    drop(silent);
}

// ---------------------------------------------------------------------------------------------
// Interruptions
// ---------------------------------------------------------------------------------------------

fn signal_name(sig: i32) -> &'static str {
    if sig == libc::SIGTERM {
        "SIGTERM"
    } else {
        "SIGINT"
    }
}

/// Sends `sig` and expects a prompt, orderly exit: 128 + signal, the report on stdout.
fn interrupt(running: Running, sig: i32) -> Finished {
    let sent = Instant::now();
    running.signal(sig);
    let done = running.finish(Duration::from_secs(10));
    assert!(
        sent.elapsed() < Duration::from_secs(2),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(done.code(), 128 + sig, "{}", done.stderr);
    // Notes of what was done (e.g. "database x: locked"), then the one-line error.
    let last = done.stderr.trim_end().lines().last().unwrap_or_default();
    assert_eq!(
        last,
        format!("pgkick: interrupted by {}", signal_name(sig)),
        "{}",
        done.stderr
    );
    assert!(
        done.stderr.lines().all(|l| l.starts_with("pgkick: ")),
        "{}",
        done.stderr
    );
    done
}

#[test]
fn hardening_interrupt_during_cancel_wait() {
    let server = Server::shared();
    let db = server.create_db("hi_wait");
    let stubborn = Session::active(server, &db, SUPERUSER, "stubborn", SWALLOWS_CANCEL);
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let (mut cmd, app) = tagged_pgkick(server);
        let running = spawn(cmd.args([
            "cancel",
            "--json",
            "--db",
            &db,
            "--wait",
            "--wait-timeout",
            "20s",
        ]));
        wait_for_statement(server, &app, POLL_PREFIX, false);
        let done = interrupt(running, sig);
        assert_eq!(
            outcomes_of(&done.stdout),
            expect(&[(stubborn.pid, "cancelled")]),
            "{}",
            signal_name(sig)
        );
        assert!(stubborn.alive(server));
    }
    end(server, stubborn);
}

#[test]
fn hardening_interrupt_during_the_grace_period_terminates_nothing() {
    let server = Server::shared();
    let db = server.create_db("hi_grace");
    let stubborn = Session::active(server, &db, SUPERUSER, "stubborn", SWALLOWS_CANCEL);
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let (mut cmd, app) = tagged_pgkick(server);
        let running = spawn(cmd.args([
            "terminate",
            "--json",
            "--db",
            &db,
            "--cancel-first",
            "--grace",
            "10s",
            "--wait",
        ]));
        wait_for_statement(server, &app, SIGNAL_PREFIX, true);
        let done = interrupt(running, sig);
        assert_eq!(
            outcomes_of(&done.stdout),
            expect(&[(stubborn.pid, "cancelled")])
        );
        assert!(stubborn.alive(server), "terminated although interrupted");
    }
    end(server, stubborn);
}

#[test]
fn hardening_interrupt_after_lock_keeps_the_lock_recorded_for_unlock() {
    let server = Server::shared();
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let db = server.create_db("hi_lock");
        let before = db_state(server, &db);
        let stubborn = Session::active(server, &db, SUPERUSER, "stubborn", SWALLOWS_CANCEL);
        let (mut cmd, app) = tagged_pgkick(server);
        let running = spawn(cmd.args([
            "terminate",
            "--json",
            "--db",
            &db,
            "--lock",
            "--cancel-first",
            "--grace",
            "10s",
            "--wait",
            "--yes",
        ]));
        wait_for_statement(server, &app, SIGNAL_PREFIX, true);
        let done = interrupt(running, sig);
        assert_eq!(
            outcomes_of(&done.stdout),
            expect(&[(stubborn.pid, "cancelled")])
        );
        assert!(stubborn.alive(server));
        end(server, stubborn);

        // The lock committed before the interrupt and is on record.
        assert!(!db_state(server, &db).0, "datallowconn still true");
        let out = server.kick(["lock", "--list", "--json"]).run();
        let listed = out.json();
        assert!(
            listed
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["kind"] == "database"
                    && r["name"] == db.as_str()
                    && r["method"] == "allow-connections"),
            "{listed}"
        );
        let out = server.kick(["unlock", "--json", "--db", &db]).run();
        assert_eq!(out.json()[0]["status"], "unlocked");
        assert_eq!(db_state(server, &db), before);
    }
}

#[test]
fn hardening_ctrl_c_at_the_confirmation_prompt_signals_nothing() {
    let server = Server::shared();
    let db = server.create_db("hi_prompt");
    let victim = Session::idle(server, &db, SUPERUSER, "victim");
    let mut cmd = server.pgkick();
    cmd.args(["terminate", "--db", &db]);

    // Ctrl-C: the terminal sends SIGINT; nothing was done yet, so pgkick just ends (130).
    let mut terminal = Terminal::start(&cmd);
    let shown = terminal.wait_for("[y/N]");
    assert!(shown.contains(&victim.pid.to_string()), "{shown}");
    terminal.type_keys(b"\x03");
    let out = terminal.finish(Duration::from_secs(20));
    assert_eq!(out.code, 130, "{}", out.stdout);
    assert!(victim.alive(server), "signalled after Ctrl-C at the prompt");

    // "n": refused, exit 4, nothing signalled.
    let mut terminal = Terminal::start(&cmd);
    terminal.wait_for("[y/N]");
    terminal.type_keys(b"n\r");
    let out = terminal.finish(Duration::from_secs(20));
    assert_eq!(out.code, 4, "{}", out.stdout);
    assert!(victim.alive(server));

    // "y": terminated.
    let mut terminal = Terminal::start(&cmd);
    terminal.wait_for("[y/N]");
    terminal.type_keys(b"y\r");
    let out = terminal.finish(Duration::from_secs(20));
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(wait_until(Duration::from_secs(5), || !victim.alive(server)));
}

/// A lock chain that resolves while the confirmation prompt waits: the root that stopped
/// blocking is not terminated.
#[test]
fn hardening_a_chain_resolved_during_the_prompt_is_not_acted_on() {
    let server = Server::shared();
    let db = server.create_db("hi_prompt_chain");
    server
        .connect(&db)
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 0)")
        .unwrap();
    let mut root = Session::idle_in_transaction(server, &db, SUPERUSER, "root");
    root.execute("UPDATE t SET v = v + 1 WHERE id = 1");
    let waiter = Session::waiting(
        server,
        &db,
        SUPERUSER,
        "waiter",
        "UPDATE t SET v = 0 WHERE id = 1",
    );
    let mut cmd = server.pgkick();
    cmd.args(["terminate", "--json", "--root-blocker", "--db", &db]);
    let mut terminal = Terminal::start(&cmd);
    let shown = terminal.wait_for("[y/N]");
    assert!(shown.contains(&root.pid.to_string()), "{shown}");
    root.execute("COMMIT");
    assert_eq!(waiter.query_result(Duration::from_secs(10)), Some(Ok(())));
    terminal.type_keys(b"y\r");
    terminal.wait_for("no_longer_matches");
    let out = terminal.finish(Duration::from_secs(20));
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(
        root.alive(server),
        "a root that stopped blocking was terminated"
    );
}

// ---------------------------------------------------------------------------------------------
// Races
// ---------------------------------------------------------------------------------------------

/// The statement a dry run shows on stderr (with --json), without its parameter comments.
fn dry_run_statement(stderr: &str) -> String {
    let text = stderr
        .split_once("The statement that would run:\n")
        .unwrap_or_else(|| panic!("no statement in {stderr}"))
        .1;
    let sql = text
        .split_once("\n-- $1 = ")
        .unwrap_or_else(|| panic!("no parameters in {text}"))
        .0;
    sql.trim_end_matches(';').to_string()
}

type Identity = (i32, Option<DateTime<Utc>>, Option<u32>);

#[test]
fn hardening_a_stale_identity_never_signals_the_live_session() {
    let server = Server::shared();
    let db = server.create_db("hrace");
    let role = server.create_role("hrace", "");
    let mut first = Session::idle(server, &db, &role, "first");
    let oid: u32 = server
        .connect(SUPERUSER)
        .query_one(
            "SELECT oid FROM pg_roles WHERE rolname::text = $1",
            &[&role],
        )
        .unwrap()
        .get(0);

    // The exact statement pgkick would send for it.
    let out = server
        .kick(["terminate", "-n", "--json", "--pid"])
        .args([first.pid.to_string()])
        .run();
    assert_eq!(
        outcomes_of(&out.stdout),
        expect(&[(first.pid, "would_terminate")])
    );
    assert!(out.stderr.contains(&format!("-- $1 = '{{{}}}'", first.pid)));
    let sql = dry_run_statement(&out.stderr);

    let mut admin = server.connect(SUPERUSER);
    let statement = admin
        .prepare_typed(
            &sql,
            &[
                Type::INT4_ARRAY,
                Type::TIMESTAMPTZ_ARRAY,
                Type::OID_ARRAY,
                Type::TIMESTAMPTZ_ARRAY,
            ],
        )
        .unwrap_or_else(|e| panic!("the server refused the statement: {e}\n{sql}"));
    let mut signal = |targets: &[Identity]| -> Vec<String> {
        let pids: Vec<i32> = targets.iter().map(|t| t.0).collect();
        let starts: Vec<Option<DateTime<Utc>>> = targets.iter().map(|t| t.1).collect();
        let oids: Vec<Option<u32>> = targets.iter().map(|t| t.2).collect();
        let query_starts: Vec<Option<DateTime<Utc>>> = vec![None; targets.len()];
        admin
            .query(&statement, &[&pids, &starts, &oids, &query_starts])
            .unwrap()
            .iter()
            .map(|r| r.get::<_, String>(1))
            .collect()
    };
    let start = first.backend_start();
    let micro = chrono::Duration::microseconds(1);

    // The right pid with a wrong start time or role, or none: the session is left alone.
    let stale: [Identity; 5] = [
        (first.pid, Some(start - micro), Some(oid)),
        (first.pid, Some(start + micro), Some(oid)),
        (first.pid, None, Some(oid)),
        (first.pid, Some(start), Some(oid + 1)),
        (first.pid, Some(start), None),
    ];
    assert_eq!(signal(&stale), vec!["already_gone"; 5]);
    assert!(first.answers(), "a stale identity hit the live session");
    assert!(first.alive(server), "a stale identity hit the live session");

    // A pid reused by a newer session: the older identity with the new session's pid. (Real
    // pid reuse cannot be forced; this is the identity the statement would be given.)
    let old_start = first.backend_start();
    drop(first);
    let mut second = Session::idle(server, &db, &role, "second");
    assert!(second.backend_start() > old_start);
    assert_eq!(
        signal(&[(second.pid, Some(old_start), Some(oid))]),
        ["already_gone"]
    );
    assert!(second.answers(), "a reused pid was signalled");
    assert!(second.alive(server), "a reused pid was signalled");

    // The right identity, among stale ones: exactly that one is terminated.
    let right = (second.pid, Some(second.backend_start()), Some(oid));
    let outcomes = signal(&[stale[0], right, stale[3]]);
    assert_eq!(outcomes, ["already_gone", "terminated", "already_gone"]);
    assert!(wait_until(Duration::from_secs(5), || !second.alive(server)));
}

// ---------------------------------------------------------------------------------------------
// Load
// ---------------------------------------------------------------------------------------------

const LOAD_SESSIONS: usize = 1000;
const RECONNECTING: usize = 50;

fn client_config(server: &Server, db: &str, app: &str) -> postgres::Config {
    let mut config = postgres::Config::new();
    config
        .host_path(server.sock_dir())
        .port(server.port())
        .user(SUPERUSER)
        .dbname(db)
        .application_name(app)
        .connect_timeout(Duration::from_secs(10));
    config
}

/// A client that reconnects as fast as it can (5 ms between attempts) until told to stop.
fn reconnecting(
    config: postgres::Config,
    stop: Arc<AtomicBool>,
    connects: Arc<AtomicUsize>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match config.connect(NoTls) {
                Ok(mut client) => {
                    connects.fetch_add(1, Ordering::Relaxed);
                    let _ = client.batch_execute("SELECT 1");
                    thread::sleep(Duration::from_millis(5));
                    drop(client);
                }
                Err(_) => thread::sleep(Duration::from_millis(5)),
            }
        }
    })
}

#[test]
fn hardening_load_1000_sessions_and_50_reconnecting_clients() {
    // Each client holds a socket and a few descriptors of its runtime.
    let server = Server::start_with(&[("max_connections", "1100")]);
    let db = server.create_db("hload");

    // 1000 idle sessions, opened by 20 threads.
    let config = client_config(&server, &db, "load");
    let clients: Vec<postgres::Client> = thread::scope(|s| {
        let handles: Vec<_> = (0..20)
            .map(|_| {
                let config = config.clone();
                s.spawn(move || {
                    (0..LOAD_SESSIONS / 20)
                        .map(|_| config.connect(NoTls).expect("connect"))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    assert_eq!(clients.len(), LOAD_SESSIONS);
    assert_eq!(sessions_in(&server, &db), LOAD_SESSIONS as i64);
    let started = Instant::now();
    let out = server
        .kick(["terminate", "--json", "--db", &db, "--wait", "--yes"])
        .run();
    let got = outcomes_of(&out.stdout);
    assert_eq!(got.len(), LOAD_SESSIONS);
    assert!(got.values().all(|o| o == "terminated"), "{got:?}");
    assert_eq!(sessions_in(&server, &db), 0);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    drop(clients);

    // 50 clients reconnecting as fast as they can; terminate --lock --wait must leave the
    // database empty, every run.
    for round in 0..3 {
        let stop = Arc::new(AtomicBool::new(false));
        let connects = Arc::new(AtomicUsize::new(0));
        let pool: Vec<_> = (0..RECONNECTING)
            .map(|_| {
                reconnecting(
                    client_config(&server, &db, "pool"),
                    stop.clone(),
                    connects.clone(),
                )
            })
            .collect();
        assert!(
            wait_until(Duration::from_secs(10), || connects.load(Ordering::Relaxed)
                > 200),
            "round {round}: the pool never got going"
        );
        let out = run(server.pgkick().args([
            "terminate",
            "--json",
            "--db",
            &db,
            "--lock",
            "--wait",
            "--wait-timeout",
            "20s",
            "--yes",
        ]));
        let left = sessions_in(&server, &db);
        stop.store(true, Ordering::Relaxed);
        for client in pool {
            client.join().unwrap();
        }
        assert_eq!(out.code, 0, "round {round}: {}", out.stderr);
        assert_eq!(
            left, 0,
            "round {round}: sessions left after terminate --lock --wait"
        );
        assert!(!db_state(&server, &db).0, "round {round}");
        let out = run(server.pgkick().args(["unlock", "--json", "--db", &db]));
        assert_eq!(out.json()[0]["status"], "unlocked", "round {round}");
        assert!(db_state(&server, &db).0, "round {round}");
    }
}
