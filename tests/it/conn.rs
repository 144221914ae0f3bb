//! Connecting against real servers: the errors users hit (too many clients, no socket, wrong
//! password, no password with -w, a server that never answers) and the libpq sources of a
//! password and of settings (PGPASSWORD, .pgpass and its permission check, PGSERVICEFILE),
//! and the application_name pgkick's session carries; require_auth and channel_binding
//! refusing a server's request before a password is sent (against the fake listener of
//! `fakepg.rs`, which records what it is sent, and real servers); passwords kept out of audit
//! records, errors and pooler labels; the prompt naming its server.

use std::fs;
use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::fakepg::{Ask, FakePg};
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
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_one_line(&out.stderr, &["definition of service \"nope\" not found"]);
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

// ---------------------------------------------------------------------------------------------
// require_auth and channel_binding: checked before a password is sent
// ---------------------------------------------------------------------------------------------

/// pgkick connecting to `fake` with `conninfo` (and the fake's host and port) for `list`.
fn kick_fake(fake: &FakePg, conninfo: &str) -> Output {
    run(bare_pgkick(Server::shared()).args([
        "-d",
        &format!("{} user=victim password=s3cret {conninfo}", fake.conninfo()),
        "list",
    ]))
}

#[test]
fn conn_require_auth_refuses_a_request_before_answering_it() {
    let refused = |req: &str, reason: &str| {
        format!("authentication method requirement \"{req}\" failed: {reason}")
    };
    // (server's request, require_auth, the refusal); over TLS-or-plain (prefer: the fake
    // declines TLS, so the plain attempt is the one watched) and plain only.
    let cases = [
        (
            Ask::Cleartext,
            "scram-sha-256",
            "server requested a cleartext password",
        ),
        (
            Ask::Cleartext,
            "!password",
            "server requested a cleartext password",
        ),
        (
            Ask::Cleartext,
            "none",
            "server requested a cleartext password",
        ),
        (
            Ask::Cleartext,
            "md5,scram-sha-256",
            "server requested a cleartext password",
        ),
        (
            Ask::Md5,
            "scram-sha-256",
            "server requested a hashed password",
        ),
        (Ask::Md5, "!md5", "server requested a hashed password"),
        (
            Ask::Scram,
            "password",
            "server requested SASL authentication",
        ),
        (
            Ask::Nothing,
            "scram-sha-256",
            "server did not complete authentication",
        ),
        (
            Ask::Nothing,
            "!none",
            "server did not complete authentication",
        ),
    ];
    for (ask, require, reason) in cases {
        for sslmode in ["prefer", "disable"] {
            let fake = FakePg::start(ask);
            let out = kick_fake(&fake, &format!("require_auth={require} sslmode={sslmode}"));
            let what = format!("{ask:?} {require} {sslmode}");
            assert_eq!(out.code, 1, "{what}: {}", out.stderr);
            assert_one_line(
                &out.stderr,
                &[
                    &format!(
                        "connection to server at \"127.0.0.1\", port {}",
                        fake.port()
                    ),
                    &refused(require, reason),
                ],
            );
            let visits = fake.visits();
            assert!(
                visits.iter().any(|v| v.param("user") == Some("victim")),
                "{what}: the fake never got the startup: {visits:?}"
            );
            assert_eq!(fake.answers(), Vec::<String>::new(), "{what}");
        }
    }

    // What require_auth allows is answered: the fake hears the password (so the checks above
    // could have failed).
    for (ask, require, answer) in [
        (Ask::Cleartext, "password", "s3cret"),
        (Ask::Cleartext, "!md5,!scram-sha-256", "s3cret"),
        (Ask::Md5, "md5", "md5"),
    ] {
        let fake = FakePg::start(ask);
        let out = kick_fake(&fake, &format!("require_auth={require}"));
        assert_eq!(out.code, 1, "{}", out.stderr);
        assert!(
            out.stderr.contains("fake server: authentication refused"),
            "{}",
            out.stderr
        );
        let answers = fake.answers();
        assert_eq!(answers.len(), 1, "{require}: {answers:?}");
        assert!(answers[0].starts_with(answer), "{require}: {answers:?}");
    }
}

#[test]
fn conn_a_require_auth_refusal_ends_the_connection_as_in_libpq() {
    // libpq gives up at the refusal: no other host, and no sslmode retry, gets the password.
    let first = FakePg::start(Ask::Cleartext);
    let second = FakePg::start(Ask::Cleartext);
    let out = run(bare_pgkick(Server::shared()).args([
        "-d",
        &format!(
            "host=127.0.0.1,127.0.0.1 port={},{} user=victim password=s3cret sslmode=allow \
             require_auth=scram-sha-256",
            first.port(),
            second.port()
        ),
        "list",
    ]));
    assert_fails_with(&out, &["server requested a cleartext password"]);
    assert_eq!(first.answers(), Vec::<String>::new());
    assert!(
        second.visits().is_empty(),
        "the second host was tried: {:?}",
        second.visits()
    );
    // An invalid value is refused before connecting.
    let fake = FakePg::start(Ask::Cleartext);
    let out = kick_fake(&fake, "require_auth=password,!md5");
    // Like every bad connection option, a usage error found before connecting.
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_one_line(&out.stderr, &["cannot be mixed with non-negative methods"]);
    assert!(fake.visits().is_empty());
}

#[test]
fn conn_channel_binding_require_sends_no_password_without_it() {
    for ask in [Ask::Cleartext, Ask::Md5, Ask::Scram] {
        let fake = FakePg::start(ask);
        let out = kick_fake(&fake, "channel_binding=require");
        assert_eq!(out.code, 1, "{ask:?}: {}", out.stderr);
        assert!(out.stderr.contains("channel binding"), "{}", out.stderr);
        assert!(!fake.visits().is_empty());
        assert_eq!(fake.answers(), Vec::<String>::new(), "{ask:?}");
    }
}

#[test]
fn conn_require_auth_against_real_servers() {
    // Trust: `none` lets the server in unasked, over the socket and over TCP; a required
    // method is not met by it.
    let server = Server::shared();
    let sock = server.sock_dir().display().to_string();
    let port = server.port().to_string();
    for host in [sock.as_str(), "127.0.0.1"] {
        let conninfo = |req: &str| format!("host={host} port={port} require_auth={req}");
        listed(&run(bare_pgkick(server).args([
            "-U",
            SUPERUSER,
            "-d",
            &conninfo("none"),
            "list",
            "--json",
        ])));
        let out = run(bare_pgkick(server).args([
            "-U",
            SUPERUSER,
            "-d",
            &conninfo("scram-sha-256"),
            "list",
        ]));
        assert_fails_with(
            &out,
            &[
                "authentication method requirement \"scram-sha-256\" failed: server did not \
               complete authentication",
            ],
        );
    }

    // SCRAM, over the socket (relayed) and TCP: required and met, or ruled out.
    let (server, role) = password_server();
    let data = server.data_dir().join("pg_hba.conf");
    fs::write(
        &data,
        format!(
            "local all {role} scram-sha-256\nlocal all all trust\n\
             host all all 127.0.0.1/32 scram-sha-256\n"
        ),
    )
    .unwrap();
    reload(&server);
    let sock = server.sock_dir().display().to_string();
    for host in [sock.as_str(), "127.0.0.1"] {
        for sslmode in ["prefer", "disable"] {
            let list = |req: &str| {
                run(bare_pgkick(&server)
                    .env("PGPASSWORD", "right horse battery")
                    .args(["-h", host, "-p", &server.port().to_string(), "-U", &role])
                    .args(["-d", &format!("require_auth={req} sslmode={sslmode}")])
                    .args(["list", "--json"]))
            };
            listed(&list("scram-sha-256"));
            listed(&list("!password,!md5"));
            assert_fails_with(
                &list("password"),
                &[
                    "authentication method requirement \"password\" failed: server requested \
                   SASL authentication",
                ],
            );
        }
    }
}

#[test]
fn conn_conninfo_shows_require_auth_and_its_source() {
    let server = Server::shared();
    let setting = |out: &Output| -> (String, String) {
        let json = out.json();
        let row = json["settings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "require_auth")
            .unwrap_or_else(|| panic!("no require_auth in {json}"))
            .clone();
        (
            row["value"].as_str().unwrap().to_string(),
            row["source"].as_str().unwrap().to_string(),
        )
    };
    let out =
        run(bare_pgkick(server).args(["-d", "require_auth=scram-sha-256", "conninfo", "--json"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(setting(&out), ("scram-sha-256".into(), "conninfo".into()));
    let out = run(bare_pgkick(server)
        .env("PGREQUIREAUTH", "!password")
        .args(["conninfo", "--json"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(setting(&out), ("!password".into(), "env".into()));
}

// ---------------------------------------------------------------------------------------------
// Passwords never written: audit args, errors, pooler labels; the prompt names its server
// ---------------------------------------------------------------------------------------------

#[test]
fn conn_audit_args_hide_every_spelling_of_the_password() {
    let server = Server::shared();
    let db = server.create_db("maskargs");
    let s = Session::idle(server, &db, SUPERUSER, "masked");
    let sock = server.sock_dir().display().to_string();
    let uri = format!(
        "postgresql:///postgres?host={}&port={}&user={SUPERUSER}&pass%77ord=hunter2XYZ",
        sock.replace('/', "%2F"),
        server.port()
    );
    for dbname in [
        vec!["-d".to_string(), uri.clone()],
        vec![format!("--dbname={uri}")],
        vec![format!("-d{uri}")],
        vec![
            "-d".to_string(),
            format!(
                "host={sock} port={} user={SUPERUSER} password = 'hunter2\\'XYZ' \
                 password=hunter2XYZ",
                server.port()
            ),
        ],
    ] {
        let out = run(bare_pgkick(server)
            .args(&dbname)
            .args(["terminate", "--dry-run", "--audit-dry-run", "--db", &db])
            .args(["--audit-log", "-"]));
        assert_eq!(out.code, 0, "{dbname:?}: {}", out.stderr);
        let record: serde_json::Value = out
            .stderr
            .lines()
            .find_map(|l| serde_json::from_str(l).ok())
            .unwrap_or_else(|| panic!("no record: {}", out.stderr));
        assert_eq!(record["session"]["pid"], s.pid);
        let args: Vec<&str> = record["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        let text = args.join(" ");
        assert!(!out.stderr.contains("hunter2"), "{}", out.stderr);
        assert!(!out.stdout.contains("hunter2"), "{}", out.stdout);
        assert!(text.contains("******"), "{text}");
        assert!(text.contains("terminate"), "{text}");
        assert!(
            !text.contains("*******"),
            "the mask has a fixed length: {text}"
        );
    }
}

#[test]
fn conn_errors_and_pooler_labels_never_show_the_password() {
    let server = Server::shared();
    // A URI that does not parse: neither the password nor its length in the message.
    let out =
        run(bare_pgkick(server).args(["-d", "postgresql://u:much-longer-secret@[::1", "list"]));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(!out.stderr.contains("secret"), "{}", out.stderr);
    assert!(!out.stderr.contains("*******"), "{}", out.stderr);
    let out = run(bare_pgkick(server).args(["-d", "host=h password=my secret", "list"]));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(!out.stderr.contains("secret"), "{}", out.stderr);

    // A pooler named with a percent-encoded password key: libpq's password (the pooler is
    // sent it), and not in its label.
    let fake = FakePg::start(Ask::Cleartext);
    let pooler = format!(
        "postgresql://127.0.0.1:{}/pgbouncer?user=admin&pass%77ord=poolerXYZ&sslmode=disable",
        fake.port()
    );
    let out = run(server.pgkick().args(["list", "--pgbouncer", &pooler]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("pooler"), "{}", out.stderr);
    assert!(!out.stderr.contains("poolerXYZ"), "{}", out.stderr);
    assert_eq!(fake.answers(), vec!["poolerXYZ".to_string()]);
    // A value that is not a connection string but looks like one.
    let out = run(server.pgkick().args([
        "list",
        "--pgbouncer",
        "postgresql+psycopg://admin:poolerXYZ@127.0.0.1:6432/pgbouncer",
    ]));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(!out.stderr.contains("poolerXYZ"), "{}", out.stderr);
}

/// `-W` with `terminate --lock --rollback-prepared`: the connection into the database to roll
/// back its prepared transaction is a second connection to the same server as the same user,
/// and the password typed for the first serves it (a second prompt would keep the database
/// open while a person types).
#[test]
fn conn_a_typed_password_serves_the_run_s_other_connections() {
    let mut conf = LOG_CONNECTIONS.to_vec();
    conf.push(("max_prepared_transactions", "4"));
    let server = Server::start_with(&conf);
    let role = unique_name("pwsuper");
    server.sql(&format!(
        "SET password_encryption = 'scram-sha-256'; \
         CREATE ROLE \"{role}\" LOGIN SUPERUSER PASSWORD 'right horse battery'"
    ));
    set_hba(&server, "host all all 127.0.0.1/32 scram-sha-256\n");
    let db = table_with_t(&server, "pw_rollback");
    let (gid, _preparer) = prepared_update_of_t(&server, &db, "pw-preparer");
    let port = server.port().to_string();
    let mut cmd = bare_pgkick(&server);
    cmd.args(["-h", "127.0.0.1", "-p", &port, "-U", &role, "-W"])
        .args([
            "terminate",
            "--lock",
            "--rollback-prepared",
            "--wait",
            "--yes",
        ])
        .args(["--db", &db]);
    let mut terminal = Terminal::start(&cmd);
    terminal.wait_for(&format!("Password for user {role} on 127.0.0.1:{port}: "));
    terminal.type_keys(b"right horse battery\r");
    let out = terminal.finish(Duration::from_secs(30));
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert_eq!(
        out.stdout.matches("Password for user").count(),
        1,
        "{}",
        out.stdout
    );
    let left: i64 = server
        .connect("postgres")
        .query_one(
            "SELECT count(*) FROM pg_prepared_xacts WHERE gid = $1",
            &[&gid],
        )
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "the prepared transaction was not rolled back");
    assert!(!db_state(&server, &db).0, "the database is not locked");
}

#[test]
fn conn_the_password_prompt_names_the_server() {
    let (server, role) = password_server();
    let port = server.port().to_string();
    let mut cmd = bare_pgkick(&server);
    cmd.args(["-h", "127.0.0.1", "-p", &port, "-U", &role, "list"]);
    let mut terminal = Terminal::start(&cmd);
    terminal.wait_for(&format!("Password for user {role} on 127.0.0.1:{port}: "));
    terminal.type_keys(b"right horse battery\r");
    let out = terminal.finish(Duration::from_secs(20));
    assert_eq!(out.code, 0, "{}", out.stdout);
    assert_eq!(
        out.stdout.matches("Password for user").count(),
        1,
        "{}",
        out.stdout
    );
}
