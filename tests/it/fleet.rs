//! Many servers at once: `-d` repeated, `--servers`, `--each-host`; one report naming each
//! server, one exit status, guards over the whole run.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::fakepg::{Ask, FakePg};
use crate::harness::{
    assert_usage, bare_pgkick, set_hba, unique_name, wait_until, Output, Server, Session, Terminal,
    SUPERUSER, SWALLOWS_CANCEL,
};

/// `-d` value naming a server by its socket directory and port.
fn value(server: &Server) -> String {
    format!(
        "host={} port={}",
        server.sock_dir().display(),
        server.port()
    )
}

/// How pgkick labels a server reached through its socket directory.
fn label(server: &Server) -> String {
    format!("{}:{}", server.sock_dir().display(), server.port())
}

/// `-d` for each server.
fn dbnames(servers: &[&Server]) -> Vec<String> {
    servers
        .iter()
        .flat_map(|s| ["-d".to_string(), value(s)])
        .collect()
}

/// server label -> pids of the objects on stdout (a JSON array or JSON lines) that have one.
fn by_server(items: &[serde_json::Value]) -> BTreeMap<String, BTreeSet<i64>> {
    let mut map: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    for item in items {
        let server = item["server"].as_str().expect("server field").to_string();
        let entry = map.entry(server).or_default();
        if let Some(pid) = item["pid"].as_i64() {
            entry.insert(pid);
        }
    }
    map
}

/// A report of a run over `sessions`' servers: each server once, with its session, whose
/// outcome is `outcome`.
fn assert_reported(reports: &[serde_json::Value], sessions: &[(&Server, &Session)], outcome: &str) {
    assert_eq!(reports.len(), sessions.len(), "{reports:?}");
    let want = sessions
        .iter()
        .map(|(server, s)| (label(server), BTreeSet::from([i64::from(s.pid)])))
        .collect();
    assert_eq!(by_server(reports), want);
    assert!(
        reports.iter().all(|r| r["outcome"] == outcome),
        "{reports:?}"
    );
}

fn array(out: &Output) -> Vec<serde_json::Value> {
    out.json().as_array().expect("a JSON array").clone()
}

fn create_db_everywhere(servers: &[&Server], prefix: &str) -> String {
    let db = unique_name(prefix);
    for s in servers {
        s.sql(&format!("CREATE DATABASE \"{db}\""));
    }
    db
}

fn allows_connections(server: &Server, db: &str) -> bool {
    server
        .connect(SUPERUSER)
        .query_one(
            "SELECT datallowconn FROM pg_database WHERE datname::text = $1",
            &[&db],
        )
        .unwrap()
        .get(0)
}

/// pgkick with `stdin` as its standard input.
fn run_with_stdin(server: &Server, args: &[String], stdin: &str) -> Output {
    let mut cmd = server.pgkick();
    cmd.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start pgkick");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Output {
        code: out.status.code().unwrap_or(128),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Three servers, one of them stopped: list, terminate, lock and unlock act on the two live
/// ones as on one server, the dead one is one line on stderr (and an error object in JSON
/// lines), and the run exits 3; with every server dead, 1. `--max` counts the targets of all
/// servers and refuses before anything is signalled anywhere.
#[test]
fn fleet_acts_on_live_servers_and_reports_the_dead_one() {
    let (a, b, dead) = (Server::start(), Server::start(), Server::start());
    let db = create_db_everywhere(&[&a, &b, &dead], "fleet");
    dead.stop_immediate();
    let sa = Session::idle(&a, &db, SUPERUSER, "fleet");
    let sb = Session::idle(&b, &db, SUPERUSER, "fleet");
    let all = dbnames(&[&a, &b, &dead]);

    // One server: the same run as ever, with the server field added.
    let one = a.kick(["list", "--json", "--db", &db]).run();
    assert_eq!(
        by_server(&array(&one)),
        BTreeMap::from([(label(&a), BTreeSet::from([i64::from(sa.pid)]))])
    );

    let list = a
        .kick(["list", "--json", "--db", &db])
        .args(&all)
        .status(3)
        .run();
    let want = BTreeMap::from([
        (label(&a), BTreeSet::from([i64::from(sa.pid)])),
        (label(&b), BTreeSet::from([i64::from(sb.pid)])),
    ]);
    assert_eq!(by_server(&array(&list)), want);
    let lines: Vec<&str> = list.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{}", list.stderr);
    assert!(
        lines[0].starts_with(&format!("pgkick: {}: ", label(&dead))),
        "{}",
        list.stderr
    );

    // JSON lines: the dead server is an object with server and error.
    let jsonl = a
        .kick(["list", "--output", "jsonl", "--db", &db])
        .args(&all)
        .status(3)
        .run()
        .jsonl();
    let errors: Vec<&serde_json::Value> =
        jsonl.iter().filter(|o| o.get("error").is_some()).collect();
    assert_eq!(errors.len(), 1, "{jsonl:?}");
    assert_eq!(errors[0]["server"], label(&dead).as_str());

    // The table names the server of each row.
    let table = a.kick(["list", "--db", &db]).args(&all).status(3).run();
    let header = table.stdout.lines().next().unwrap();
    assert!(
        header.trim_start().starts_with("server"),
        "{}",
        table.stdout
    );
    assert!(
        table.stdout.contains("(2 sessions on 2 servers)"),
        "{}",
        table.stdout
    );

    // --max counts every server's targets together: 2 > 1, nothing signalled anywhere.
    let refused = a
        .kick(["terminate", "--yes", "--max", "1", "--db", &db])
        .args(dbnames(&[&a, &b]))
        .status(4)
        .fails_with(&["2 sessions match on 2 servers", "--max 1"]);
    assert!(refused.stdout.is_empty(), "{}", refused.stdout);
    assert!(sa.alive(&a) && sb.alive(&b));

    // On a terminal: every server's targets, grouped by server, and one question.
    let (pa, pb) = (
        Session::idle(&a, "postgres", SUPERUSER, "prompted"),
        Session::idle(&b, "postgres", SUPERUSER, "prompted"),
    );
    let mut cmd = a.pgkick();
    cmd.args(["terminate", "--app", "prompted"])
        .args(dbnames(&[&a, &b]));
    let mut terminal = Terminal::start(&cmd);
    let shown = terminal.wait_for("[y/N]");
    assert_eq!(shown.matches("[y/N]").count(), 1, "{shown}");
    assert!(
        shown.contains("Terminate these 2 sessions on 2 servers?"),
        "{shown}"
    );
    for (server, session) in [(&a, &pa), (&b, &pb)] {
        let row = format!("{} | {}", label(server), session.pid);
        assert!(shown.contains(&row), "{shown}");
    }
    terminal.type_keys(b"n\r");
    assert_eq!(terminal.finish(Duration::from_secs(20)).code, 4);
    assert!(pa.alive(&a) && pb.alive(&b));
    let mut terminal = Terminal::start(&cmd);
    terminal.wait_for("[y/N]");
    terminal.type_keys(b"y\r");
    let out = terminal.finish(Duration::from_secs(20));
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert!(wait_until(Duration::from_secs(5), || !pa.alive(&a) && !pb.alive(&b)));

    let lock = a
        .kick(["lock", "--json", "--db", &db])
        .args(&all)
        .status(3)
        .run();
    let locked: BTreeSet<String> = array(&lock)
        .iter()
        .map(|c| c["server"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(locked, BTreeSet::from([label(&a), label(&b)]));
    assert!(!allows_connections(&a, &db) && !allows_connections(&b, &db));
    let records = a
        .kick(["lock", "--list", "--json"])
        .args(&all)
        .status(3)
        .run();
    let listed: BTreeSet<(String, String)> = array(&records)
        .iter()
        .map(|r| {
            (
                r["server"].as_str().unwrap().into(),
                r["name"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        BTreeSet::from([(label(&a), db.clone()), (label(&b), db.clone())])
    );

    // --dry-run: each server's statement under its name, nothing signalled.
    let dry = a
        .kick(["terminate", "--dry-run", "--db", &db])
        .args(dbnames(&[&a, &b]))
        .run();
    for server in [&a, &b] {
        let shown = format!("-- server {}\n-- dry run", label(server));
        assert!(dry.stdout.contains(&shown), "{}", dry.stdout);
    }
    assert!(sa.alive(&a) && sb.alive(&b));

    let terminate = a
        .kick([
            "terminate",
            "--json",
            "--yes",
            "--wait",
            "--max",
            "2",
            "--db",
            &db,
        ])
        .args(&all)
        .status(3)
        .run();
    assert_reported(&array(&terminate), &[(&a, &sa), (&b, &sb)], "terminated");
    assert!(!sa.alive(&a) && !sb.alive(&b));

    a.kick(["unlock", "--json", "--db", &db])
        .args(&all)
        .status(3)
        .run();
    assert!(allows_connections(&a, &db) && allows_connections(&b, &db));

    // Nothing reachable: exit 1.
    let nowhere = a
        .kick(["list", "--json"])
        .args(dbnames(&[&dead]))
        .args(["-d", "host=/nonexistent-pgkick port=1"])
        .status(1)
        .run();
    assert_eq!(nowhere.stderr.lines().count(), 2, "{}", nowhere.stderr);
}

/// `--each-host` over a multi-host value acts on every host, where without it only the first
/// that works is used; with target_session_attrs=primary a standby is skipped, not failed.
#[test]
fn each_host_acts_on_every_host_and_skips_a_standby() {
    let servers = [Server::start(), Server::start(), Server::start()];
    let app = unique_name("eachhost");
    let sessions: Vec<Session> = servers
        .iter()
        .map(|s| Session::idle(s, "postgres", SUPERUSER, &app))
        .collect();
    let hosts: Vec<String> = servers
        .iter()
        .map(|s| s.sock_dir().display().to_string())
        .collect();
    let ports: Vec<String> = servers.iter().map(|s| s.port().to_string()).collect();
    let multi = format!("host={} port={}", hosts.join(","), ports.join(","));
    let first = &servers[0];

    let only_first = first
        .kick(["list", "--json", "--app", &app, "-d", &multi])
        .run();
    assert_eq!(array(&only_first).len(), 1);

    let every = first
        .kick(["list", "--json", "--each-host", "--app", &app, "-d", &multi])
        .run();
    let want: BTreeMap<String, BTreeSet<i64>> = servers
        .iter()
        .zip(&sessions)
        .map(|(s, session)| (label(s), BTreeSet::from([i64::from(session.pid)])))
        .collect();
    assert_eq!(by_server(&array(&every)), want);

    let Some(standby) = first.start_standby() else {
        eprintln!("no pg_basebackup in this build: the standby case is not run");
        return;
    };
    let pair = format!(
        "host={},{} port={},{} target_session_attrs=primary",
        hosts[0],
        standby.sock_dir().display(),
        ports[0],
        standby.port()
    );
    let out = first
        .kick([
            "list",
            "--output",
            "jsonl",
            "--each-host",
            "--app",
            &app,
            "-d",
            &pair,
        ])
        .run();
    let lines = out.jsonl();
    let skipped: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|o| o.get("skipped").is_some())
        .collect();
    assert_eq!(skipped.len(), 1, "{lines:?}");
    assert_eq!(skipped[0]["server"], label(&standby).as_str());
    assert_eq!(
        by_server(
            &lines[..]
                .iter()
                .filter(|o| o.get("pid").is_some())
                .cloned()
                .collect::<Vec<_>>()
        ),
        BTreeMap::from([(label(first), BTreeSet::from([i64::from(sessions[0].pid)]))])
    );
    assert!(lines.iter().all(|o| o.get("error").is_none()), "{lines:?}");
}

/// `--servers -`: comments and blank lines are skipped, the same server twice is acted on
/// once, and a bad line is a usage error naming it, before anything connects.
#[test]
fn servers_from_stdin_with_comments_duplicates_and_a_bad_line() {
    let (a, b) = (Server::start(), Server::start());
    let db = create_db_everywhere(&[&a, &b], "servers");
    let sa = Session::idle(&a, &db, SUPERUSER, "fleet");
    let sb = Session::idle(&b, &db, SUPERUSER, "fleet");
    let args: Vec<String> = [
        "terminate",
        "--json",
        "--yes",
        "--db",
        &db,
        "--servers",
        "-",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();

    let bad = format!("# shards\n{}\n\nhost='unterminated\n", value(&a));
    let out = run_with_stdin(&a, &args, &bad);
    assert_eq!(out.code, 2, "{out:?}");
    assert!(
        out.stderr.contains("standard input line 4"),
        "{}",
        out.stderr
    );
    assert!(
        sa.alive(&a) && sb.alive(&b),
        "a bad line must stop the run before it connects"
    );

    a.kick(["list", "--servers", "/nonexistent-pgkick-servers"])
        .status(2)
        .fails_with(&["--servers /nonexistent-pgkick-servers: cannot read it"]);

    let good = format!(
        "# shards\n\n{a}\n   # the same server again, spelled another way\n  {a} dbname=postgres  \n{b}\n",
        a = value(&a),
        b = value(&b)
    );
    let out = run_with_stdin(&a, &args, &good);
    assert_eq!(out.code, 0, "{out:?}");
    let reports = out.json().as_array().unwrap().clone();
    assert_reported(&reports, &[(&a, &sa), (&b, &sb)], "terminated");

    // -W on a terminal: each server is connected to once (its targets wait at the gate for
    // the one question), and the password is asked once per server.
    let role = unique_name("fleetpw");
    for server in [&a, &b] {
        server.sql(&format!(
            "SET password_encryption = 'scram-sha-256'; \
             CREATE ROLE \"{role}\" SUPERUSER LOGIN PASSWORD 'fleet horse'"
        ));
        server.sql("ALTER SYSTEM SET log_connections = on");
        set_hba(server, "host all all 127.0.0.1/32 scram-sha-256\n");
    }
    let (pa, pb) = (
        Session::idle(&a, "postgres", SUPERUSER, "pw"),
        Session::idle(&b, "postgres", SUPERUSER, "pw"),
    );
    let mut cmd = bare_pgkick(&a);
    cmd.args(["-W", "-U", &role, "terminate", "--app", "pw"]);
    for server in [&a, &b] {
        cmd.args(["-d", &format!("host=127.0.0.1 port={}", server.port())]);
    }
    let mut terminal = Terminal::start(&cmd);
    for n in 1..=2 {
        terminal.wait_for_times("Password for user", n);
        terminal.type_keys(b"fleet horse\r");
    }
    terminal.wait_for("[y/N]");
    terminal.type_keys(b"y\r");
    let out = terminal.finish(Duration::from_secs(10));
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert_eq!(
        out.stdout.matches("Password for user").count(),
        2,
        "{}",
        out.stdout
    );
    assert!(wait_until(Duration::from_secs(5), || !pa.alive(&a) && !pb.alive(&b)));
    let authorized = format!("connection authorized: user={role} ");
    for server in [&a, &b] {
        assert_eq!(
            server.log().matches(&authorized).count(),
            1,
            "{}",
            server.log()
        );
    }

    // With more servers than --jobs, the targets are counted in a pass of their own, then
    // acted on: the guards hold all the same.
    let (qa, qb) = (
        Session::idle(&a, "postgres", SUPERUSER, "jobs1"),
        Session::idle(&b, "postgres", SUPERUSER, "jobs1"),
    );
    a.kick([
        "--jobs",
        "1",
        "terminate",
        "--yes",
        "--app",
        "jobs1",
        "--max",
        "1",
    ])
    .args(dbnames(&[&a, &b]))
    .status(4)
    .fails_with(&["2 sessions match on 2 servers", "--max 1"]);
    assert!(qa.alive(&a) && qb.alive(&b));
}

/// Ctrl-C while every server waits: pgkick stops promptly, exits 130, and still reports what
/// it did on each server.
#[test]
fn ctrl_c_stops_every_server_and_reports_what_was_done_where() {
    let (a, b) = (Server::start(), Server::start());
    let db = create_db_everywhere(&[&a, &b], "ctrlc");
    let sa = Session::active(&a, &db, SUPERUSER, "stubborn", SWALLOWS_CANCEL);
    let sb = Session::active(&b, &db, SUPERUSER, "stubborn", SWALLOWS_CANCEL);
    let app = unique_name("pgkick_fleet");
    let mut cmd = a.pgkick();
    cmd.env("PGAPPNAME", &app)
        .args(["cancel", "--json", "--wait", "--wait-timeout", "60s"])
        .args(["--db", &db])
        .args(dbnames(&[&a, &b]))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = cmd.spawn().expect("start pgkick");
    // Both servers are past the cancel and polling for the query to stop.
    for server in [&a, &b] {
        let mut watcher = server.connect(SUPERUSER);
        let polling = wait_until(Duration::from_secs(15), || {
            watcher
                .query_opt(
                    "SELECT 1 FROM pg_stat_activity WHERE application_name = $1 \
                       AND left(query, 15) = 'SELECT t.i FROM'",
                    &[&app],
                )
                .ok()
                .flatten()
                .is_some()
        });
        assert!(polling, "pgkick never polled {}", label(server));
    }
    let sent = Instant::now();
    // SAFETY: kill has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let out = child.wait_with_output().unwrap();
    assert!(
        sent.elapsed() < Duration::from_secs(3),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(out.status.code(), Some(130));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let reports: Vec<serde_json::Value> = serde_json::from_str(&stdout).expect("JSON");
    assert_reported(&reports, &[(&a, &sa), (&b, &sb)], "cancelled");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.trim_end().ends_with("pgkick: interrupted by SIGINT"),
        "{stderr}"
    );
    assert!(sa.alive(&a) && sb.alive(&b));
    // Ended here: their Drop would wait for the swallowed cancel.
    for (server, session) in [(&a, sa), (&b, sb)] {
        server.sql(&format!("SELECT pg_terminate_backend({})", session.pid));
        assert!(wait_until(Duration::from_secs(10), || !session.alive(server)));
    }
}

/// Every usage error there is for one server is one over two as well: exit 2, its message
/// on the first line of stderr, found before connecting. The two servers are fakes that
/// record every connection: none may reach them (and a connection would fail, exit 1).
#[test]
fn fleet_usage_errors_exit_2_before_connecting() {
    use std::ffi::{OsStr, OsString};
    use std::os::unix::ffi::OsStrExt;

    let (a, b) = (FakePg::start(Ask::Cleartext), FakePg::start(Ask::Cleartext));
    let fleet = [
        "-d".to_string(),
        format!("{} user=u sslmode=disable", a.conninfo()),
        "-d".to_string(),
        format!("{} user=u sslmode=disable", b.conninfo()),
    ];
    let also_a = format!("{} require_auth=password,!md5", a.conninfo());
    let secret_uri = "postgresql://u:much-longer-secret@[::1";
    // (arguments after the fleet's, a phrase of the message); a password must never show.
    let mut cases: Vec<(Vec<OsString>, &str)> = [
        // The plan's own checks.
        (&["list", "--tree", "--json"][..], "--tree is a table view"),
        (
            &["terminate", "--db", "x", "--pgbouncer", "host=p"],
            "needs --lock",
        ),
        (
            &["lock", "--role", "r", "--pgbouncer", "host=p"],
            "give --db NAME",
        ),
        (
            &["unlock", "--role", "r", "--pgbouncer", "host=p"],
            "give --db NAME",
        ),
        (
            &["-W", "cancel", "--db", "x", "--every", "5s"],
            "cannot prompt for a password",
        ),
        (
            &["cancel", "--db", "x", "--every", "5s"],
            "--every runs on one server",
        ),
        (&["conninfo"], "conninfo shows one server"),
        (
            &["list", "-d", "host=/nonexistent-pgkick-c"],
            "both before and after",
        ),
        // A connection value that does not resolve (fleet/servers.rs names which one).
        (
            &["-d", "sslmode=verify-everything", "list"],
            "-d value 3: invalid sslmode value",
        ),
        (
            &["-d", "service=nope", "list"],
            "definition of service \"nope\" not found",
        ),
        (
            &["-d", &also_a, "list"],
            "cannot be mixed with non-negative methods",
        ),
        (
            &["-d", secret_uri, "list"],
            "-d value 3: end of string reached",
        ),
        (
            &["-d", "host=h password=my secret", "list"],
            "missing \"=\" after the value",
        ),
        // --pgbouncer values that are not a pooler's connection string.
        (
            &["lock", "--db", "x", "--pgbouncer", "pgbouncer-host"],
            "not a connection string",
        ),
        (
            &["lock", "--db", "x", "--pgbouncer", "hots=x"],
            "invalid connection option \"hots\"",
        ),
        (
            &["lock", "--db", "x", "--pgbouncer", "host='p"],
            "unterminated quoted string",
        ),
        (
            &["unlock", "--db", "x", "--pgbouncer", "host=p sslmode=no"],
            "invalid sslmode value",
        ),
        (
            &[
                "terminate",
                "--db",
                "x",
                "--lock",
                "--pgbouncer",
                secret_uri,
            ],
            "end of string",
        ),
        // clap's errors.
        (&["termiante"], "unrecognized subcommand 'termiante'"),
        (&["frobnicate"], "unrecognized subcommand 'frobnicate'"),
        (&["list", "--dbb", "x"], "unexpected argument '--dbb' found"),
        (
            &["list", "--output", "yaml"],
            "invalid value 'yaml' for '--output <OUTPUT>'",
        ),
        (&["-p", "abc", "list"], "'abc' is not a port number"),
        (
            &["-p", "5432,70000", "list"],
            "'70000' is not a port number",
        ),
        (
            &["list", "--state", "sleepy"],
            "invalid value 'sleepy' for '--state <STATE>'",
        ),
        (&["list", "--query-age", "10x"], "'10x' is not a duration"),
        (
            &["list", "--query", "(unclosed"],
            "invalid regular expression",
        ),
        (
            &["list", "--pid", "abc"],
            "invalid value 'abc' for '--pid <PID>'",
        ),
        (
            &["list", "--client", "not-an-address"],
            "is not an IP address",
        ),
        (
            &["terminate", "--grace", "5s"],
            "required arguments were not provided",
        ),
        (
            &["list", "--db", "x", "--blocked-for", "1m"],
            "required arguments were not provided",
        ),
    ]
    .into_iter()
    .map(|(args, says)| (args.iter().map(OsString::from).collect(), says))
    .collect();
    // Invalid UTF-8 in each argument hardening.rs tries on one server.
    for option in crate::hardening::INVALID_UTF8_OPTIONS {
        let mut args: Vec<OsString> = option.iter().map(OsString::from).collect();
        args.push(OsStr::from_bytes(b"ok\xffname").to_owned());
        cases.push((args, "invalid UTF-8"));
    }
    for (args, says) in &cases {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pgkick"));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PG") {
                cmd.env_remove(key);
            }
        }
        cmd.env("HOME", "/nonexistent-pgkick-home")
            .env("PGSYSCONFDIR", "/nonexistent-pgkick-sysconf")
            .args(&fleet)
            .args(args)
            .stdin(Stdio::null());
        let out = crate::harness::run(&mut cmd);
        assert_eq!(out.code, 2, "{args:?}: {}", out.stderr);
        assert_usage(&out.stderr, &[says]);
        assert!(!out.stderr.contains("secret"), "{args:?}: {}", out.stderr);
        assert!(!out.stderr.contains("*******"), "{args:?}: {}", out.stderr);
        assert!(out.stdout.is_empty(), "{args:?}: {}", out.stdout);
    }
    for fake in [&a, &b] {
        assert!(
            fake.visits().is_empty(),
            "a server was reached: {:?}",
            fake.visits()
        );
    }
}

/// A database that one server of the fleet has and another does not: a note for the other,
/// the sessions ended where it exists, exit 0. A database no server has: exit 1.
#[test]
fn fleet_a_database_missing_on_some_servers_is_a_note_on_none_an_error() {
    let a = Server::shared();
    let b = Server::start();
    let db = unique_name("fleet_only_a");
    a.sql(&format!("CREATE DATABASE \"{db}\""));
    let session = Session::idle(a, &db, SUPERUSER, "fleet-only-a");
    let out = a
        .kick(["terminate", "--yes", "--json", "--db", &db])
        .args(dbnames(&[a, &b]))
        .run();
    assert_reported(&array(&out), &[(a, &session)], "terminated");
    assert!(
        out.stderr.contains(&format!(
            "pgkick: {}: --db {db}: the server has no database of that name",
            label(&b)
        )),
        "{}",
        out.stderr
    );
    // On none of them.
    let out = a
        .kick(["terminate", "--yes", "--db", &format!("{db}_typo")])
        .args(dbnames(&[a, &b]))
        .status(1)
        .run();
    assert!(
        out.stderr.contains("on none of the servers")
            && out
                .stderr
                .contains("the server has no database of that name")
            && out.stderr.contains(&format!("did you mean {db}?")),
        "{}",
        out.stderr
    );
    // Beside a name that matches: the typo is refused before any server acts, as on one
    // server, in one pass (the servers fit in --jobs) and with a counting pass (they do not).
    let session = Session::idle(a, &db, SUPERUSER, "fleet-beside-a-typo");
    for jobs in ["8", "1"] {
        let out = a
            .kick(["--jobs", jobs, "terminate", "--yes", "--db", &db, "--db"])
            .args([format!("{db}_typo")])
            .args(dbnames(&[a, &b]))
            .status(1)
            .run();
        assert!(
            out.stderr.contains("on none of the servers")
                && out.stderr.contains("nothing was signalled"),
            "--jobs {jobs}: {}",
            out.stderr
        );
        assert!(
            session.alive(a),
            "--jobs {jobs}: the session on {db} was terminated before the typo refused the run"
        );
    }
}
