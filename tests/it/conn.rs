//! Connecting against real servers: the errors users hit (too many clients, no socket, wrong
//! password, no password with -w, a server that never answers) and the libpq sources of a
//! password and of settings (PGPASSWORD, .pgpass and its permission check, PGSERVICEFILE),
//! and the application_name pgkick's session carries.

use std::fs;
use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::*;

/// Waits until the server has exactly `n` client backends besides `watcher`'s own, and
/// no more client processes than those: a backend leaves pg_stat_activity just before it
/// frees its slot, and has freed it once its process is gone.
fn wait_for_client_backends(server: &Server, watcher: &mut postgres::Client, n: i64) {
    let counted = wait_until(Duration::from_secs(10), || {
        let row = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
                &[],
            )
            .expect("count client backends");
        row.get::<_, i64>(0) == n && server.client_processes().len() as i64 == n + 1
    });
    assert!(
        counted,
        "never {n} client backends; client processes: {:?}",
        server.client_processes()
    );
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn conn_too_many_clients_explains_the_reserved_slots() {
    let server = Server::start_with(&[
        ("max_connections", "5"),
        ("superuser_reserved_connections", "1"),
        // PostgreSQL 10 and 11 want max_wal_senders below max_connections.
        ("max_wal_senders", "0"),
    ]);
    let role = server.create_role("crowd", "");
    let mut watcher = server.connect(SUPERUSER);
    wait_for_client_backends(&server, &mut watcher, 0);
    // With the watcher, 4 of the 5 slots are taken: only the superusers' reserved one is left.
    let held: Vec<Session> = (0..3)
        .map(|i| Session::idle(&server, "postgres", &role, &format!("filler-{i}")))
        .collect();
    server.kick(["list", "--json"]).user(&role).fails_with(&[
        "reserved",
        "superuser_reserved_connections",
        "pgkick needs one",
    ]);
    // The superuser still gets the reserved slot, and sees the sessions that fill the server.
    let out = run(server.pgkick().args(["list", "--json", "--user", &role]));
    let mut pids = listed(&out);
    pids.sort();
    let mut want: Vec<i64> = held.iter().map(|s| i64::from(s.pid)).collect();
    want.sort();
    assert_eq!(pids, want);

    // Every slot taken: even the superuser is turned away, with the same advice.
    wait_for_client_backends(&server, &mut watcher, 3);
    let _last = Session::idle(&server, "postgres", SUPERUSER, "filler-su");
    server.kick(["list", "--json"]).fails_with(&[
        "too many clients already",
        "superuser_reserved_connections",
        "pgkick needs one",
    ]);
}

#[test]
fn conn_missing_socket_names_the_path_tried() {
    let server = Server::start();
    let socket = server
        .sock_dir()
        .join(format!(".s.PGSQL.{}", server.port()));
    server.stop_immediate();
    server.kick(["list", "--json"]).fails_with(&[
        &format!("connection to server on socket \"{}\"", socket.display()),
        "No such file or directory",
        "Is the server running locally",
    ]);
    // The same through a conninfo host that does not exist at all.
    server
        .kick(["-d", "host=/nonexistent/pgkick port=6543", "list"])
        .fails_with(&["\"/nonexistent/pgkick/.s.PGSQL.6543\""]);
}

#[test]
fn conn_timeout_when_the_server_never_answers() {
    // A listener that accepts TCP connections (into its backlog) and never speaks.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().unwrap().port();
    let server = Server::shared();
    let started = Instant::now();
    let out = run(bare_pgkick(server).args([
        "-h",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "-d",
        "connect_timeout=2 sslmode=disable",
        "list",
    ]));
    assert_fails_with(&out, &["timed out after 2s", "connect_timeout"]);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    drop(silent);
}

/// A server whose TCP connections need a SCRAM password, and a role that has one.
fn password_server() -> (Server, String) {
    let server = Server::start_with(&LOG_CONNECTIONS);
    let role = unique_name("pwuser");
    server.sql(&format!(
        "SET password_encryption = 'scram-sha-256'; \
         CREATE ROLE \"{role}\" LOGIN PASSWORD 'right horse battery'"
    ));
    set_hba(&server, "host all all 127.0.0.1/32 scram-sha-256\n");
    (server, role)
}

#[test]
fn conn_passwords_from_env_pgpass_and_service_file() {
    let (server, role) = password_server();
    let port = server.port().to_string();
    let tcp = |cmd: &mut Command| -> Output {
        run(cmd.args([
            "-h",
            "127.0.0.1",
            "-p",
            &port,
            "-U",
            &role,
            "list",
            "--json",
        ]))
    };

    // Wrong PGPASSWORD: one line naming the failure and where to fix it.
    let out = tcp(bare_pgkick(&server).env("PGPASSWORD", "wrong"));
    assert_fails_with(
        &out,
        &[
            &format!("password authentication failed for user \"{role}\""),
            "127.0.0.1",
        ],
    );
    let out = tcp(bare_pgkick(&server).env("PGPASSWORD", "right horse battery"));
    listed(&out);

    // No password anywhere, -w: fails at once, without prompting.
    let started = Instant::now();
    let out = tcp(bare_pgkick(&server).arg("-w"));
    assert_fails_with(&out, &["requires a password", "-w forbids prompting"]);
    assert!(!out.stderr.contains("Password for user"));
    assert!(started.elapsed() < Duration::from_secs(10));
    // Nor without -w when stdin is not a terminal.
    let out = tcp(&mut bare_pgkick(&server));
    assert_fails_with(&out, &["requires a password", "not a terminal"]);

    // ~/.pgpass, private: used.
    let pgpass = home(&server).join(".pgpass");
    let line = format!("127.0.0.1:{port}:postgres:{role}:right horse battery\n");
    write_file(&pgpass, &format!("# test\n{line}"), 0o600, None);
    listed(&tcp(&mut bare_pgkick(&server)));
    // A wrong password from the file names the file.
    write_file(
        &pgpass,
        &format!("127.0.0.1:{port}:postgres:{role}:stale\n"),
        0o600,
        None,
    );
    let out = tcp(&mut bare_pgkick(&server));
    assert_fails_with(
        &out,
        &[
            "password authentication failed",
            &pgpass.display().to_string(),
        ],
    );
    // Readable by others: ignored, with libpq's warning.
    write_file(&pgpass, &line, 0o644, None);
    let out = tcp(&mut bare_pgkick(&server));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "pgkick: warning: password file \"{}\" has group or world access",
            pgpass.display()
        )),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("requires a password"), "{}", out.stderr);
    fs::remove_file(&pgpass).unwrap();

    // PGPASSFILE names another file.
    let other = server.sock_dir().join("other.pgpass");
    write_file(&other, &line, 0o600, None);
    listed(&tcp(bare_pgkick(&server).env("PGPASSFILE", &other)));

    // A service in PGSERVICEFILE supplies host, port, user and password.
    let services = server.sock_dir().join("services.conf");
    write_file(
        &services,
        &format!(
            "[elsewhere]\nhost=/nonexistent\n\n[pgkick_test]\nhost=127.0.0.1\nport={port}\n\
             user={role}\npassword=right horse battery\ndbname=postgres\n"
        ),
        0o644,
        None,
    );
    let out = run(bare_pgkick(&server)
        .env("PGSERVICEFILE", &services)
        .env("PGSYSCONFDIR", "/nonexistent")
        .args(["-d", "service=pgkick_test", "list", "--json"]));
    listed(&out);
    let out = run(bare_pgkick(&server)
        .env("PGSERVICEFILE", &services)
        .env("PGSERVICE", "pgkick_test")
        .env("PGSYSCONFDIR", "/nonexistent")
        .args(["list", "--json"]));
    listed(&out);
    let out = run(bare_pgkick(&server)
        .env("PGSERVICEFILE", &services)
        .env("PGSYSCONFDIR", "/nonexistent")
        .args(["-d", "service=nope", "list"]));
    assert_fails_with(&out, &["definition of service \"nope\" not found"]);
}

#[test]
fn conn_application_name_is_pgkick_unless_set() {
    let server = Server::start_with(&LOG_CONNECTIONS);
    // The disconnection line is written when the backend exits, just after pgkick does.
    let disconnected_as = |app: &str, mark: &LogMark| {
        let prefix = format!("host=[local] app={app} ");
        wait_until(Duration::from_secs(10), || {
            mark.since(&server)
                .lines()
                .any(|l| l.starts_with(&prefix) && l.contains("disconnection:"))
        })
    };
    let mark = LogMark::now(&server);
    listed(&run(server.pgkick().args(["list", "--json"])));
    assert!(
        disconnected_as("pgkick", &mark),
        "no session named pgkick in the log:\n{}",
        mark.since(&server)
    );

    let mark = LogMark::now(&server);
    listed(&run(server
        .pgkick()
        .env("PGAPPNAME", "nightly-cleanup")
        .args(["list", "--json"])));
    assert!(
        disconnected_as("nightly-cleanup", &mark),
        "PGAPPNAME not used:\n{}",
        mark.since(&server)
    );

    let mark = LogMark::now(&server);
    listed(&run(server.pgkick().args([
        "-d",
        "application_name=from-conninfo",
        "list",
        "--json",
    ])));
    assert!(
        disconnected_as("from-conninfo", &mark),
        "application_name= not used:\n{}",
        mark.since(&server)
    );
}
