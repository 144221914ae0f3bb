//! `pgkick lock` / `pgkick unlock` / `terminate --lock`: who can still connect, the state saved
//! in the cluster, exact restoration, hostile names, concurrency, lock_timeout, the drop
//! workflow.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use postgres::NoTls;

use crate::harness::*;

const METHODS: [&str; 3] = ["allow-connections", "connection-limit", "revoke-connect"];

/// Everything lock may touch on a database, as the superuser sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct DbState {
    allow_connections: bool,
    connection_limit: i32,
    /// `grantor|grantee|privilege|grantable`, sorted.
    acl: Vec<String>,
    comment: Option<String>,
}

fn db_state(server: &Server, db: &str) -> DbState {
    let row = server
        .connect(SUPERUSER)
        .query_one(
            "SELECT d.datallowconn, d.datconnlimit, \
                    ARRAY(SELECT pg_get_userbyid(a.grantor) || '|' || \
                                 CASE WHEN a.grantee = 0 THEN '-' \
                                      ELSE pg_get_userbyid(a.grantee)::text END || '|' || \
                                 a.privilege_type || '|' || a.is_grantable \
                            FROM aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a \
                           ORDER BY 1), \
                    shobj_description(d.oid, 'pg_database') \
               FROM pg_database d WHERE d.datname::text = $1",
            &[&db],
        )
        .unwrap_or_else(|e| panic!("read state of database {db:?}: {e}"));
    DbState {
        allow_connections: row.get(0),
        connection_limit: row.get(1),
        acl: row.get(2),
        comment: row.get(3),
    }
}

/// Can `user` open a new connection to `db`?
fn can_connect(server: &Server, db: &str, user: &str) -> bool {
    let mut config = postgres::Config::new();
    config
        .host_path(server.sock_dir())
        .port(server.port())
        .user(user)
        .dbname(db)
        .application_name("lock-probe")
        .connect_timeout(Duration::from_secs(10));
    config.connect(NoTls).is_ok()
}

fn pgkick_lock(server: &Server, user: &str, args: &[&str]) -> Output {
    run(server.pgkick_as(user).args(["lock", "--json"]).args(args))
}

fn pgkick_unlock(server: &Server, user: &str, args: &[&str]) -> Output {
    run(server.pgkick_as(user).args(["unlock", "--json"]).args(args))
}

/// The `status` of each change in a successful JSON answer.
fn statuses(out: &Output) -> Vec<String> {
    assert_eq!(
        out.code, 0,
        "exit {}\n{}\n{}",
        out.code, out.stdout, out.stderr
    );
    out.json()
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {}", out.stdout))
        .iter()
        .map(|c| c["status"].as_str().unwrap().to_string())
        .collect()
}

/// The ACL shapes every method is tried on. Returns (database, a role that could connect
/// before the lock, or None when nobody but superusers could).
fn shapes(server: &Server) -> Vec<(&'static str, String, Option<String>)> {
    let mut out = Vec::new();

    let db = server.create_db("lock_default");
    let user = server.create_role("lock_user", "");
    out.push(("default NULL ACL", db, Some(user)));

    let db = server.create_db("lock_one_role");
    let user = server.create_role("lock_granted", "");
    server.sql(&format!(
        "REVOKE CONNECT ON DATABASE {d} FROM PUBLIC; GRANT CONNECT ON DATABASE {d} TO {u}",
        d = ident(&db),
        u = ident(&user)
    ));
    out.push(("PUBLIC revoked, one role granted", db, Some(user)));

    let db = server.create_db("lock_grant_option");
    let middle = server.create_role("lock_middle", "");
    let user = server.create_role("lock_sub", "");
    server.sql(&format!(
        "REVOKE CONNECT ON DATABASE {d} FROM PUBLIC; \
         GRANT CONNECT ON DATABASE {d} TO {m} WITH GRANT OPTION; \
         SET ROLE {m}; GRANT CONNECT ON DATABASE {d} TO {u}; RESET ROLE",
        d = ident(&db),
        m = ident(&middle),
        u = ident(&user)
    ));
    out.push((
        "a grant WITH GRANT OPTION and one by another grantor",
        db,
        Some(user),
    ));

    let db = server.create_db("lock_limit");
    let user = server.create_role("lock_user", "");
    server.sql(&format!("ALTER DATABASE {} CONNECTION LIMIT 7", ident(&db)));
    out.push(("connection limit 7", db, Some(user)));

    let db = server.create_db("lock_closed");
    server.sql(&format!(
        "ALTER DATABASE {} ALLOW_CONNECTIONS false",
        ident(&db)
    ));
    out.push(("already closed", db, None));

    let db = server.create_db("lock_comment");
    let user = server.create_role("lock_user", "");
    server.sql(&format!(
        "COMMENT ON DATABASE {} IS {}",
        ident(&db),
        literal(r#"it's the "old" comment \ with a backslash"#)
    ));
    out.push(("with a comment", db, Some(user)));
    out
}

fn every_shape_with(method: &str) {
    let server = Server::shared();
    for (shape, db, user) in shapes(server) {
        let before = db_state(server, &db);
        if let Some(user) = &user {
            assert!(
                can_connect(server, &db, user),
                "{shape}: {user} cannot connect before"
            );
        }
        let out = pgkick_lock(server, SUPERUSER, &["--db", &db, "--method", method]);
        assert_eq!(statuses(&out), ["locked"], "{method} on {shape}");
        let locked = db_state(server, &db);
        assert!(
            locked
                .comment
                .as_deref()
                .unwrap()
                .starts_with("pgkick-lock v1 {"),
            "{shape}: {locked:?}"
        );
        if let Some(user) = &user {
            assert!(
                !can_connect(server, &db, user),
                "{method} on {shape}: {user} got in"
            );
        }
        let superuser_gets_in = can_connect(server, &db, SUPERUSER);
        match method {
            "allow-connections" => assert!(!superuser_gets_in, "{shape}"),
            _ => assert_eq!(superuser_gets_in, before.allow_connections, "{shape}"),
        }
        match method {
            "allow-connections" => assert!(!locked.allow_connections),
            "connection-limit" => assert_eq!(locked.connection_limit, 0),
            _ => assert!(
                !locked.acl.iter().any(|e| e.contains("|CONNECT|")),
                "{shape}: {:?}",
                locked.acl
            ),
        }

        // Undone from "another machine": nothing local is needed.
        let out = run(server
            .pgkick()
            .env("HOME", TempDir::new("pgkick_other_home").path())
            .args(["unlock", "--json", "--db", &db]));
        assert_eq!(statuses(&out), ["unlocked"], "{method} on {shape}");
        assert_eq!(db_state(server, &db), before, "{method} on {shape}");
        if let Some(user) = &user {
            assert!(
                can_connect(server, &db, user),
                "{method} on {shape}: {user} still out"
            );
        }
    }
}

#[test]
fn lock_allow_connections_on_every_acl_shape() {
    every_shape_with("allow-connections");
}

#[test]
fn lock_connection_limit_on_every_acl_shape() {
    every_shape_with("connection-limit");
}

#[test]
fn lock_revoke_connect_on_every_acl_shape() {
    every_shape_with("revoke-connect");
}

#[test]
fn lock_role_nologin_and_back() {
    let server = Server::shared();
    let role = server.create_role("lock_login", "");
    let db = server.create_db("lock_role_db");
    server.sql(&format!(
        "COMMENT ON ROLE {} IS {}",
        ident(&role),
        literal("keep 'me' \\ please")
    ));
    let before = role_state(server, &role);
    assert!(can_connect(server, &db, &role));
    let out = pgkick_lock(server, SUPERUSER, &["--role", &role]);
    assert_eq!(statuses(&out), ["locked"]);
    assert!(!role_state(server, &role).0);
    assert!(!can_connect(server, &db, &role));
    let out = run(server
        .pgkick()
        .env("HOME", TempDir::new("pgkick_other_home").path())
        .args(["unlock", "--json", "--role", &role]));
    assert_eq!(statuses(&out), ["unlocked"]);
    assert_eq!(role_state(server, &role), before);
    assert!(can_connect(server, &db, &role));

    // A NOLOGIN role stays NOLOGIN.
    let nologin = unique_name("lock_nologin");
    server.sql(&format!("CREATE ROLE {} NOLOGIN", ident(&nologin)));
    let before = role_state(server, &nologin);
    assert_eq!(before, (false, None));
    assert_eq!(
        statuses(&pgkick_lock(server, SUPERUSER, &["--role", &nologin])),
        ["locked"]
    );
    assert_eq!(
        statuses(&pgkick_unlock(server, SUPERUSER, &["--role", &nologin])),
        ["unlocked"]
    );
    assert_eq!(role_state(server, &nologin), before);

    // pgkick's own role is refused.
    let out = pgkick_lock(server, SUPERUSER, &["--role", SUPERUSER]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("connected as it"), "{}", out.stderr);
    assert!(role_state(server, SUPERUSER).0);
}

#[test]
fn lock_by_a_non_superuser_owner_with_each_method() {
    let server = Server::shared();
    let owner = server.create_role("lock_owner", "");
    let user = server.create_role("lock_user", "");
    for method in METHODS {
        let db = unique_name("lock_owned");
        server.sql(&format!(
            "CREATE DATABASE {} OWNER {}",
            ident(&db),
            ident(&owner)
        ));
        let before = db_state(server, &db);
        let out = pgkick_lock(server, &owner, &["--db", &db, "--method", method]);
        assert_eq!(statuses(&out), ["locked"], "{method}");
        assert!(!can_connect(server, &db, &user), "{method}");
        assert_ne!(db_state(server, &db), before);
        let out = pgkick_unlock(server, &owner, &["--db", &db]);
        assert_eq!(statuses(&out), ["unlocked"], "{method}");
        assert_eq!(db_state(server, &db), before, "{method}");
        assert!(can_connect(server, &db, &user), "{method}");
    }
}

#[test]
fn lock_twice_then_unlock_once_restores_the_original() {
    let server = Server::shared();
    let db = server.create_db("lock_twice");
    server.sql(&format!("ALTER DATABASE {} CONNECTION LIMIT 3", ident(&db)));
    let before = db_state(server, &db);
    let out = pgkick_lock(
        server,
        SUPERUSER,
        &["--db", &db, "--method", "connection-limit"],
    );
    assert_eq!(statuses(&out), ["locked"]);
    let after_first = db_state(server, &db);
    let out = pgkick_lock(
        server,
        SUPERUSER,
        &["--db", &db, "--method", "connection-limit"],
    );
    assert_eq!(statuses(&out), ["already_locked"]);
    let out = pgkick_lock(server, SUPERUSER, &["--db", &db]);
    assert_eq!(statuses(&out), ["already_locked (connection-limit)"]);
    assert_eq!(
        db_state(server, &db),
        after_first,
        "a second lock changed something"
    );
    // terminate --lock on a database pgkick already locked.
    let session = Session::idle(server, &db, SUPERUSER, "still-here");
    let out = server
        .kick([
            "terminate",
            "--db",
            &db,
            "--lock",
            "--method",
            "connection-limit",
            "--wait",
            "--yes",
        ])
        .run();
    assert!(out.stderr.contains("already_locked"), "{}", out.stderr);
    assert!(!session.alive(server));
    assert_eq!(
        db_state(server, &db),
        after_first,
        "terminate --lock changed the lock"
    );
    let out = pgkick_unlock(server, SUPERUSER, &["--db", &db]);
    assert_eq!(statuses(&out), ["unlocked"]);
    assert_eq!(db_state(server, &db), before);
    // Nothing recorded: says so, changes nothing, exit 0.
    let out = pgkick_unlock(server, SUPERUSER, &["--db", &db]);
    assert_eq!(statuses(&out), ["not_locked"]);
    assert_eq!(db_state(server, &db), before);
}

#[test]
fn lock_dry_run_changes_nothing_and_shows_the_statements() {
    let server = Server::shared();
    let db = server.create_db("lock_dry");
    let before = db_state(server, &db);
    let out = pgkick_lock(server, SUPERUSER, &["--db", &db, "--dry-run"]);
    assert_eq!(statuses(&out), ["would_lock"]);
    let statements = out.json()[0]["statements"].clone();
    let text = statements.to_string();
    assert!(text.contains("ALLOW_CONNECTIONS false"), "{text}");
    assert!(text.contains("COMMENT ON DATABASE"), "{text}");
    assert_eq!(db_state(server, &db), before);

    assert_eq!(
        statuses(&pgkick_lock(server, SUPERUSER, &["--db", &db])),
        ["locked"]
    );
    let locked = db_state(server, &db);
    let out = pgkick_unlock(server, SUPERUSER, &["--db", &db, "--dry-run"]);
    assert_eq!(statuses(&out), ["would_unlock"]);
    assert!(out.json()[0]["statements"]
        .to_string()
        .contains("ALLOW_CONNECTIONS true"));
    assert_eq!(db_state(server, &db), locked);
    assert_eq!(
        statuses(&pgkick_unlock(server, SUPERUSER, &["--db", &db])),
        ["unlocked"]
    );
    assert_eq!(db_state(server, &db), before);
}

#[test]
fn lock_refuses_the_database_pgkick_is_connected_to() {
    let server = Server::shared();
    let db = server.create_db("lock_self");
    let before = db_state(server, &db);
    let out = server
        .kick(["-d", &db, "lock", "--db", &db])
        .status(1)
        .run();
    assert!(out.stderr.contains("-d"), "{}", out.stderr);
    assert!(out.stderr.contains(&db), "{}", out.stderr);
    assert_eq!(db_state(server, &db), before);
}

#[test]
fn lock_unknown_database_or_role_changes_nothing() {
    let server = Server::shared();
    let db = server.create_db("lock_known");
    let role = server.create_role("lock_known", "");
    let before = (db_state(server, &db), role_state(server, &role));
    let missing_db = unique_name("lock_missing_db");
    let missing_role = unique_name("lock_missing_role");
    for (args, named) in [
        (vec!["lock", "--db", &missing_db], &missing_db),
        (vec!["lock", "--db", &db, "--db", &missing_db], &missing_db),
        (
            vec!["lock", "--db", &db, "--role", &missing_role],
            &missing_role,
        ),
        (vec!["unlock", "--db", &missing_db], &missing_db),
        (
            vec!["unlock", "--role", &role, "--role", &missing_role],
            &missing_role,
        ),
    ] {
        let out = server.kick(&args).status(1).run();
        assert!(
            out.stderr.contains(&format!("\"{named}\" does not exist")),
            "{args:?}: {}",
            out.stderr
        );
        assert_eq!(
            (db_state(server, &db), role_state(server, &role)),
            before,
            "{args:?}"
        );
    }
}

/// Names that break naive quoting; each ends with a unique tag.
fn hostile_names(bystander_db: &str) -> Vec<String> {
    let tag = unique_name("h");
    let mut names = vec![
        format!("dq\"{tag}"),
        format!("it's {tag}"),
        format!("semi; DROP DATABASE {}; -- {tag}", ident(bystander_db)),
        format!("x\"; DROP DATABASE {}; --{tag}", ident(bystander_db)),
        format!("back\\slash\\'{tag}"),
        format!("$1 {tag}"),
        format!("%I %L %s {tag}"),
        format!("ünïcødé ✓ {tag}"),
    ];
    let mut long = format!("{tag}_é");
    while long.len() < 63 {
        long.push('x');
    }
    assert_eq!(long.len(), 63);
    names.push(long);
    names
}

#[test]
fn lock_hostile_names_act_on_exactly_that_object() {
    let server = Server::shared();
    let bystander_db = server.create_db("lk_by");
    let bystander_role = server.create_role("lk_by", "");
    let bystander_before = (
        db_state(server, &bystander_db),
        role_state(server, &bystander_role),
    );
    let bystander_session = Session::idle(server, &bystander_db, &bystander_role, "bystander");
    for name in hostile_names(&bystander_db) {
        server.sql(&format!("CREATE DATABASE {}", ident(&name)));
        server.sql(&format!("CREATE ROLE {} LOGIN", ident(&name)));
        assert!(db_exists(server, &name), "{name:?} was not created as is");
        let before = (db_state(server, &name), role_state(server, &name));
        for method in METHODS {
            let out = pgkick_lock(server, SUPERUSER, &["--db", &name, "--method", method]);
            assert_eq!(statuses(&out), ["locked"], "{name:?} {method}");
            assert_ne!(db_state(server, &name), before.0, "{name:?} {method}");
            let out = pgkick_unlock(server, SUPERUSER, &["--db", &name]);
            assert_eq!(statuses(&out), ["unlocked"], "{name:?} {method}");
        }
        let out = pgkick_lock(server, SUPERUSER, &["--role", &name]);
        assert_eq!(statuses(&out), ["locked"], "{name:?}");
        assert!(!role_state(server, &name).0, "{name:?}");
        let out = pgkick_unlock(server, SUPERUSER, &["--role", &name]);
        assert_eq!(statuses(&out), ["unlocked"], "{name:?}");
        assert_eq!((db_state(server, &name), role_state(server, &name)), before);

        // terminate --lock: that database's session goes, the bystander's stays.
        let victim = Session::idle(server, &name, &name, "victim");
        server
            .kick([
                "terminate",
                "--json",
                "--db",
                &name,
                "--lock",
                "--wait",
                "--yes",
            ])
            .run();
        assert!(!victim.alive(server), "{name:?}");
        assert!(!db_state(server, &name).allow_connections);
        let out = pgkick_unlock(server, SUPERUSER, &["--db", &name]);
        assert_eq!(statuses(&out), ["unlocked"], "{name:?}");
        assert_eq!(db_state(server, &name), before.0);

        assert!(bystander_session.alive(server), "{name:?}");
        assert_eq!(
            (
                db_state(server, &bystander_db),
                role_state(server, &bystander_role)
            ),
            bystander_before,
            "{name:?}"
        );
    }
}

#[test]
fn lock_list_shows_what_how_by_whom_since_when() {
    let server = Server::shared();
    let owner = server.create_role("lock_lister", "CREATEROLE");
    let db = unique_name("lock_listed");
    server.sql(&format!(
        "CREATE DATABASE {} OWNER {}",
        ident(&db),
        ident(&owner)
    ));
    let role = server.create_role("lock_listed", "");
    let out = pgkick_lock(server, &owner, &["--db", &db, "--method", "revoke-connect"]);
    assert_eq!(statuses(&out), ["locked"]);
    let out = pgkick_lock(server, SUPERUSER, &["--role", &role]);
    assert_eq!(statuses(&out), ["locked"]);

    let out = server.kick(["lock", "--list", "--json"]).run();
    let records = out.json();
    let find = |kind: &str, name: &str| {
        records
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["kind"] == kind && r["name"] == name)
            .unwrap_or_else(|| panic!("{kind} {name} not listed: {records}"))
            .clone()
    };
    let d = find("database", &db);
    assert_eq!(d["method"], "revoke-connect");
    assert_eq!(d["locked_by"], owner.as_str());
    let at: chrono::DateTime<chrono::Utc> = d["locked_at"].as_str().unwrap().parse().unwrap();
    assert!((chrono::Utc::now() - at).num_seconds().abs() < 120, "{at}");
    let r = find("role", &role);
    assert_eq!(r["method"], "nologin");
    assert_eq!(r["locked_by"], SUPERUSER);

    // The table too, for people.
    let out = server.kick(["lock", "--list"]).run();
    assert!(
        out.stdout.contains(&db) && out.stdout.contains("revoke-connect"),
        "{}",
        out.stdout
    );

    assert_eq!(
        statuses(&pgkick_unlock(server, &owner, &["--db", &db])),
        ["unlocked"]
    );
    assert_eq!(
        statuses(&pgkick_unlock(server, SUPERUSER, &["--role", &role])),
        ["unlocked"]
    );
    let out = run(server.pgkick().args(["lock", "--list", "--json"]));
    assert!(
        !out.stdout.contains(&db) && !out.stdout.contains(&role),
        "{}",
        out.stdout
    );
}

#[test]
fn lock_concurrent_processes_never_corrupt_the_saved_state() {
    let server = Server::shared();
    let db = server.create_db("lock_race");
    let granted = server.create_role("lock_race", "");
    server.sql(&format!(
        "REVOKE CONNECT ON DATABASE {d} FROM PUBLIC; \
         GRANT CONNECT ON DATABASE {d} TO {g} WITH GRANT OPTION",
        d = ident(&db),
        g = ident(&granted)
    ));
    let before = db_state(server, &db);
    for method in ["revoke-connect", "connection-limit"] {
        for _round in 0..4 {
            let spawn = |verb: &str| {
                server
                    .pgkick()
                    .args([verb, "--json", "--db", &db])
                    .args(if verb == "lock" {
                        vec!["--method", method]
                    } else {
                        vec![]
                    })
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            };
            let finish = |child: std::process::Child| {
                let out = child.wait_with_output().unwrap();
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
                json[0]["status"].as_str().unwrap().to_string()
            };
            let (a, b) = (spawn("lock"), spawn("lock"));
            let mut got = [finish(a), finish(b)];
            got.sort();
            assert_eq!(got, ["already_locked", "locked"]);
            let (a, b, c) = (spawn("unlock"), spawn("lock"), spawn("unlock"));
            for child in [a, b, c] {
                finish(child);
            }
            // Whatever the interleaving, one more unlock gives back the original.
            pgkick_unlock(server, SUPERUSER, &["--db", &db]);
            assert_eq!(db_state(server, &db), before, "{method}");
        }
    }
}

#[test]
fn lock_timeout_gives_up_and_changes_nothing() {
    let server = Server::shared();
    let db = server.create_db("lock_wait");
    let before = db_state(server, &db);

    // A DDL on the same catalog row, not committed.
    let mut blocker = server.connect(SUPERUSER);
    blocker
        .batch_execute(&format!(
            "BEGIN; ALTER DATABASE {} CONNECTION LIMIT 5",
            ident(&db)
        ))
        .unwrap();
    let out = server
        .kick(["lock", "--db", &db, "--lock-timeout", "1s"])
        .status(1)
        .run();
    assert!(
        out.stderr.contains("gave up after 1s") && out.stderr.contains(&db),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("nothing was changed"), "{}", out.stderr);
    blocker.batch_execute("ROLLBACK").unwrap();
    assert_eq!(db_state(server, &db), before);

    // Another pgkick's advisory lock, held.
    let oid: u32 = blocker
        .query_one("SELECT oid FROM pg_database WHERE datname = $1", &[&db])
        .unwrap()
        .get(0);
    blocker
        .batch_execute(&format!(
            "BEGIN; SELECT pg_advisory_xact_lock({}, {})",
            0x706b_6462, oid as i32
        ))
        .unwrap();
    let out = server
        .kick([
            "lock",
            "--db",
            &db,
            "--method",
            "revoke-connect",
            "--lock-timeout",
            "1s",
        ])
        .status(1)
        .run();
    assert!(out.stderr.contains("gave up after 1s"), "{}", out.stderr);
    blocker.batch_execute("ROLLBACK").unwrap();
    assert_eq!(db_state(server, &db), before);
}

/// A client that reconnects every ~20 ms until told to stop, like a connection pool.
fn reconnecting_client(
    server: &Server,
    db: &str,
    user: &str,
    stop: Arc<AtomicBool>,
) -> thread::JoinHandle<()> {
    let mut config = postgres::Config::new();
    config
        .host_path(server.sock_dir())
        .port(server.port())
        .user(user)
        .dbname(db)
        .application_name("reconnecting")
        .connect_timeout(Duration::from_secs(5));
    thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            if let Ok(mut client) = config.connect(NoTls) {
                let _ = client.batch_execute("SELECT pg_sleep(0.02)");
                drop(client);
            }
            thread::sleep(Duration::from_millis(20));
        }
    })
}

#[test]
fn lock_terminate_then_drop_database_with_clients_reconnecting() {
    let server = Server::shared();
    let db = server.create_db("lock_drop");
    let user = server.create_role("lock_pool", "");
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| reconnecting_client(server, &db, &user, stop.clone()))
        .collect();
    let idle = [
        Session::idle(server, &db, &user, "rails"),
        Session::idle_in_transaction(server, &db, &user, "sidekiq"),
    ];
    let mut admin = server.connect(SUPERUSER);
    let drop_sql = format!("DROP DATABASE {}", ident(&db));
    assert!(
        admin.batch_execute(&drop_sql).is_err(),
        "dropdb succeeded with sessions"
    );

    server
        .kick(["terminate", "--db", &db, "--lock", "--wait", "--yes"])
        .run();
    for s in &idle {
        assert!(!s.alive(server));
    }
    let dropped = admin.batch_execute(&drop_sql);
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    dropped.unwrap_or_else(|e| panic!("dropdb after terminate --lock --wait: {e}"));
    assert!(!db_exists(server, &db));
}

/// Backends holding the lock that startup takes on database `db` (`RowExclusiveLock` on the
/// database object), that is, past or at its connection checks and not yet done starting.
fn starting_into(server: &Server, db: &str) -> i64 {
    server
        .connect(SUPERUSER)
        .query_one(
            "SELECT count(*) FROM pg_locks l JOIN pg_database d ON l.objid = d.oid \
             WHERE l.locktype = 'object' AND l.classid = 'pg_database'::regclass \
             AND l.mode = 'RowExclusiveLock' AND l.granted AND d.datname = $1",
            &[&db],
        )
        .unwrap()
        .get(0)
}

/// A backend that passed its connection checks just before the lock committed is in the
/// database before pg_stat_activity shows it: a few milliseconds on a busy server, three
/// seconds here (`post_auth_delay` sleeps between the checks and `pgstat_bestart`).
/// terminate --lock waits for it to show up and ends it; before, it was missed, and on a
/// loaded CI machine it was then reported as a session the filters did not match.
#[test]
fn lock_terminate_ends_a_session_that_got_in_just_before_the_lock() {
    let server = Server::shared();
    let db = server.create_db("lock_late");
    let mut config = postgres::Config::new();
    config
        .host_path(server.sock_dir())
        .port(server.port())
        .user(SUPERUSER)
        .dbname(&db)
        .application_name("late")
        .options("-c post_auth_delay=3")
        .connect_timeout(Duration::from_secs(20));
    let late = thread::spawn(move || {
        let mut client = config.connect(NoTls).expect("the late session connects");
        client
            .batch_execute("SELECT pg_sleep(60)")
            .expect_err("the late session is terminated")
    });
    assert!(
        wait_until(Duration::from_secs(10), || starting_into(server, &db) == 1),
        "the late session never began to start"
    );
    let out = server
        .kick([
            "terminate",
            "--json",
            "--db",
            &db,
            "--lock",
            "--wait",
            "--yes",
        ])
        .run();
    let sessions = out.json();
    let sessions = sessions.as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{}", out.stdout);
    assert_eq!(sessions[0]["application_name"], "late", "{}", out.stdout);
    assert_eq!(sessions[0]["outcome"], "terminated", "{}", out.stdout);
    assert_eq!(sessions_in(server, &db), 0);
    let err = late.join().unwrap();
    assert!(
        err.code() == Some(&postgres::error::SqlState::ADMIN_SHUTDOWN) || err.is_closed(),
        "{err:?}"
    );
    let mut admin = server.connect(SUPERUSER);
    admin
        .batch_execute(&format!("DROP DATABASE {}", ident(&db)))
        .unwrap_or_else(|e| panic!("dropdb after terminate --lock --wait: {e}"));
}
