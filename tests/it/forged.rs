//! A lock record is a claim, not an authority: forged records written by roles that may only
//! comment on an object (a database's owner, a CREATEROLE role) never make a superuser's
//! unlock send its password somewhere, widen a role, take on another role, or put a record
//! back; and the genuine cases (a superuser's lock of a replication or superuser role, an
//! owner's lock of her own database, a CREATEROLE admin with no superuser) still give back
//! exactly what was there.

use serde_json::json;

use crate::fakepg::{Ask, FakePg};
use crate::harness::*;

/// `pgkick-lock v1 <json>`.
/// A fresh unprivileged role, alice, and a fresh database she owns (so she may comment on it).
fn forger_and_her_database(server: &Server) -> (String, String) {
    let alice = server.create_role("forger", "");
    let db = unique_name("alicedb");
    server.sql(&format!(
        "CREATE DATABASE {} OWNER {}",
        ident(&db),
        ident(&alice)
    ));
    (alice, db)
}

fn record_text(record: &serde_json::Value) -> String {
    format!("pgkick-lock v1 {record}")
}

/// Runs `sql` as `role` (SET ROLE from the superuser: the privilege checks are the role's).
fn as_role(server: &Server, role: &str, sql: &str) {
    server.sql(&format!("SET ROLE {}; {sql}; RESET ROLE", ident(role)));
}

/// Whether `role` may run `sql` itself (tried in a transaction that is rolled back).
fn role_may(server: &Server, role: &str, sql: &str) -> bool {
    let mut client = server.connect(SUPERUSER);
    let mut tx = client.transaction().unwrap();
    tx.batch_execute(&format!("SET ROLE {}", ident(role)))
        .unwrap();
    let ok = tx.batch_execute(sql).is_ok();
    drop(tx);
    ok
}

fn lock_list_entry(server: &Server, kind: &str, name: &str) -> serde_json::Value {
    let list = server.kick(["lock", "--list", "--json"]).run().json();
    list.as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == kind && r["name"] == name)
        .unwrap_or_else(|| panic!("{kind} {name} not listed: {list}"))
        .clone()
}

fn connection_limit(server: &Server, db: &str) -> i32 {
    server
        .connect(SUPERUSER)
        .query_one(
            "SELECT datconnlimit FROM pg_database WHERE datname::text = $1",
            &[&db],
        )
        .unwrap()
        .get(0)
}

/// An owner's forged record names a pooler (a listener of hers) for unlock to resume: a
/// superuser's unlock never connects there, whatever holds its password: PGPASSWORD, a `*`
/// line in .pgpass, or both.
#[test]
fn forged_pooler_in_a_record_never_gets_a_password() {
    let server = Server::shared();
    let fake = FakePg::start(Ask::Cleartext);
    for (source, env_password, pgpass) in [
        ("PGPASSWORD and .pgpass", true, true),
        ("PGPASSWORD only", true, false),
        (".pgpass only", false, true),
    ] {
        let (alice, db) = forger_and_her_database(server);
        let pooler = format!(
            "host=127.0.0.1 port={} user={SUPERUSER} sslmode=disable",
            fake.port()
        );
        let forged = json!({
            "method": "connection-limit", "locked_by": SUPERUSER,
            "locked_at": "2026-11-30T03:00:00Z", "pgkick_version": "0.1.0",
            "prior": {"comment": null, "owner": alice, "datallowconn": true,
                      "datconnlimit": -1, "acl": []},
            "poolers": [{"pooler": pooler, "action": "pause"}]
        });
        as_role(
            server,
            &alice,
            &format!(
                "ALTER DATABASE {d} CONNECTION LIMIT 0; COMMENT ON DATABASE {d} IS {}",
                literal(&record_text(&forged)),
                d = ident(&db)
            ),
        );

        // lock --list shows the claim, and that nothing proves it.
        let listed = lock_list_entry(server, "database", &db);
        assert_eq!(listed["locked_by"], SUPERUSER, "{listed}");
        assert_eq!(listed["proven"], false, "{listed}");

        // A HOME of its own: with a .pgpass holding a `*` line, or with none at all.
        let home = TempDir::new("pgkick_forged_home");
        if pgpass {
            home.write(".pgpass", "*:*:*:*:pgpass-secret\n", 0o600);
        }
        for dry_run in [true, false] {
            let mut kick = server
                .kick(["unlock", "--db", &db, "--json"])
                .env("HOME", home.path());
            if env_password {
                kick = kick.env("PGPASSWORD", "env-secret");
            }
            if dry_run {
                kick = kick.args(["--dry-run"]);
            } else {
                kick = kick.status(3);
            }
            let out = kick.run();
            assert!(
                fake.visits().is_empty(),
                "{source}: pgkick connected to the forged pooler"
            );
            if !dry_run {
                assert!(
                    out.stderr.contains(&format!("port={}", fake.port()))
                        && out.stderr.contains("still paused")
                        && out.stderr.contains("not proven"),
                    "{source}: {}",
                    out.stderr
                );
            }
        }
        assert!(fake.answers().is_empty(), "{source}");
        // The server side is what the owner could have done herself: the limit is back.
        assert_eq!(connection_limit(server, &db), -1, "{source}");
    }
}

/// A CREATEROLE role (or, from 16, one with ADMIN OPTION) comments a forged nologin record on
/// a REPLICATION role it may not give LOGIN to: a superuser's unlock leaves it NOLOGIN (exit
/// 3, the statement named), on every version where the forger could not do it itself.
#[test]
fn forged_record_on_a_replication_role_never_gives_it_login() {
    let server = Server::shared();
    let forger = server.create_role("forger_cr", "CREATEROLE");
    let dormant = unique_name("repl_dormant");
    server.sql(&format!(
        "CREATE ROLE {r} NOLOGIN REPLICATION; GRANT {r} TO {f} WITH ADMIN OPTION",
        r = ident(&dormant),
        f = ident(&forger)
    ));
    let forged = json!({
        "method": "nologin", "locked_by": SUPERUSER,
        "locked_at": "2026-11-30T03:00:00Z", "pgkick_version": "0.1.0",
        "prior": {"comment": null, "rolcanlogin": true}
    });
    as_role(
        server,
        &forger,
        &format!(
            "COMMENT ON ROLE {} IS {}",
            ident(&dormant),
            literal(&record_text(&forged))
        ),
    );
    let forger_could = role_may(
        server,
        &forger,
        &format!("ALTER ROLE {} LOGIN", ident(&dormant)),
    );
    assert_eq!(
        forger_could,
        server.version_num() >= 160000,
        "the rule pgkick follows"
    );
    let out = server
        .kick(["unlock", "--role", &dormant, "--json"])
        .status(if forger_could { 0 } else { 3 })
        .run();
    let (can_login, comment) = role_state(server, &dormant);
    assert_eq!(can_login, forger_could, "{}", out.stderr);
    assert_eq!(comment, None, "the record is gone either way");
    if !forger_could {
        assert!(
            out.stderr.contains(&format!(
                "to give it back: ALTER ROLE {} LOGIN;",
                ident(&dormant)
            )),
            "{}",
            out.stderr
        );
    }

    // A superuser role's comment can only be a superuser's, but without a proof it may be an
    // old one (written before the role became a superuser): never LOGIN on a claim.
    let root = unique_name("su_dormant");
    server.sql(&format!(
        "CREATE ROLE {r} NOLOGIN SUPERUSER; COMMENT ON ROLE {r} IS {}",
        literal(&record_text(&forged)),
        r = ident(&root)
    ));
    let out = server.kick(["unlock", "--role", &root]).status(3).run();
    assert!(
        out.stderr
            .contains(&format!("ALTER ROLE {} LOGIN;", ident(&root))),
        "{}",
        out.stderr
    );
    assert!(!role_state(server, &root).0);
}

/// A forged revoke-connect record names grantors of the forger's choosing (a NOLOGIN
/// superuser role, a role the owner is no member of): unlock never takes on those roles. A
/// grant that only warns (the grantor has no grant option) is reported, not called done. A
/// saved comment that is itself a record is not put back.
#[test]
fn forged_acl_record_never_takes_on_a_role_it_does_not_need() {
    let server = Server::start_with(&[("log_statement", "all")]);
    let (alice, db) = forger_and_her_database(&server);
    let root = unique_name("su_nologin");
    let stranger = unique_name("stranger");
    let grantor = unique_name("granted_to_alice");
    let grantee = server.create_role("grantee", "");
    server.sql(&format!(
        "CREATE ROLE {root} NOLOGIN SUPERUSER; CREATE ROLE {stranger} NOLOGIN; \
         CREATE ROLE {grantor} NOLOGIN; GRANT {grantor} TO {alice}; \
         REVOKE CONNECT ON DATABASE {d} FROM PUBLIC",
        root = ident(&root),
        stranger = ident(&stranger),
        grantor = ident(&grantor),
        alice = ident(&alice),
        d = ident(&db)
    ));
    let entry =
        |grantor: &str| json!({"grantee": grantee, "grantor": grantor, "grant_option": false});
    let forged = json!({
        "method": "revoke-connect", "locked_by": SUPERUSER,
        "locked_at": "2026-11-30T03:00:00Z", "pgkick_version": "0.1.0",
        "prior": {"comment": "pgkick-lock v1 {\"method\":\"nologin\"}", "owner": alice,
                  "datallowconn": true, "datconnlimit": -1,
                  "acl": [entry(&root), entry(&stranger), entry(&grantor), entry(&alice)]}
    });
    as_role(
        &server,
        &alice,
        &format!(
            "COMMENT ON DATABASE {} IS {}",
            ident(&db),
            literal(&record_text(&forged))
        ),
    );
    let mark = LogMark::now(&server);
    let out = server
        .kick(["unlock", "--db", &db, "--json"])
        .status(3)
        .run();
    let log = mark.since(&server);
    for role in [&root, &stranger] {
        assert!(
            !log.contains(&format!("SET ROLE {}", ident(role))),
            "pgkick took on {role}:\n{log}"
        );
    }
    // alice may SET ROLE to the role granted to her, so the grant was tried as it; that role
    // has no grant option, so the server granted nothing (and only warned).
    assert!(
        log.contains(&format!("SET ROLE {}", ident(&grantor))),
        "{log}"
    );
    assert!(
        out.stderr.contains("granted nothing") && out.stderr.contains("no privileges"),
        "{}",
        out.stderr
    );
    // The owner's own grant is back, nothing else; the forged "previous comment" is not.
    let acl: Vec<String> = server
        .connect(SUPERUSER)
        .query(
            "SELECT pg_get_userbyid(a.grantor)::text FROM pg_database d, \
                    aclexplode(d.datacl) a \
              WHERE d.datname::text = $1 AND a.privilege_type = 'CONNECT' \
                AND a.grantee = (SELECT oid FROM pg_roles WHERE rolname::text = $2)",
            &[&db, &grantee],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(acl, std::slice::from_ref(&alice), "{}", out.stderr);
    let comment: Option<String> = server
        .connect(SUPERUSER)
        .query_one(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database \
              WHERE datname::text = $1",
            &[&db],
        )
        .unwrap()
        .get(0);
    assert_eq!(comment, None);
    assert!(
        out.stderr.contains("the previous comment not given back"),
        "{}",
        out.stderr
    );
}

/// The genuine cases: a superuser locks a replication role and a superuser role (the proof
/// lets unlock give LOGIN back); a CREATEROLE admin with no superuser locks and unlocks a role
/// it administers; lock --list tells proven from unproven.
#[test]
fn genuine_locks_of_privileged_roles_unlock_exactly() {
    let server = Server::shared();
    for attrs in ["REPLICATION", "SUPERUSER"] {
        let role = server.create_role("lock_privileged", attrs);
        server.kick(["lock", "--role", &role, "--json"]).run();
        assert!(!role_state(server, &role).0);
        assert_eq!(lock_list_entry(server, "role", &role)["proven"], true);
        let out = server
            .kick(["unlock", "--role", &role, "--json"])
            .env("HOME", TempDir::new("pgkick_other_home").path())
            .run();
        assert_eq!(out.json()[0]["status"], "unlocked", "{}", out.stdout);
        assert_eq!(role_state(server, &role), (true, None), "{attrs}");
        let left: i64 = server
            .connect(SUPERUSER)
            .query_one(
                "SELECT count(*) FROM pg_db_role_setting s JOIN pg_roles r \
                   ON r.oid = s.setrole WHERE r.rolname::text = $1",
                &[&role],
            )
            .unwrap()
            .get(0);
        assert_eq!(left, 0, "{attrs}: the proof is removed with the record");
    }

    // A managed-service admin: CREATEROLE, no superuser anywhere.
    let admin = server.create_role("rds_admin", "CREATEROLE");
    let app = unique_name("app_role");
    as_role(
        server,
        &admin,
        &format!("CREATE ROLE {} LOGIN", ident(&app)),
    );
    server.kick(["lock", "--role", &app]).user(&admin).run();
    assert!(!role_state(server, &app).0);
    assert_eq!(lock_list_entry(server, "role", &app)["proven"], false);
    server.kick(["unlock", "--role", &app]).user(&admin).run();
    assert_eq!(role_state(server, &app), (true, None));
}

/// A forged record on an open REPLICATION role, saying it could not log in before "the lock"
/// (and carrying a record as its previous comment): a superuser's lock closes the role but
/// does not take the record's word for the state before it, so its unlock gives LOGIN back.
/// Before 16 the forger could not take LOGIN away itself: trusting the record would have
/// let it do so through the superuser. From 16 (ADMIN OPTION) it could, and the same holds.
#[test]
fn forged_prior_state_on_an_open_role_is_not_kept_by_a_relock() {
    let server = Server::shared();
    let forger = server.create_role("forger_cr", "CREATEROLE");
    let repl = server.create_role("repl_open", "REPLICATION");
    server.sql(&format!(
        "GRANT {} TO {} WITH ADMIN OPTION",
        ident(&repl),
        ident(&forger)
    ));
    let forged = json!({
        "method": "nologin", "locked_by": SUPERUSER,
        "locked_at": "2026-11-30T03:00:00Z", "pgkick_version": "0.1.0",
        "prior": {"comment": "pgkick-lock v1 {\"method\":\"nologin\"}", "rolcanlogin": false}
    });
    // The forger may comment on the role on every major (CREATEROLE before 16, with ADMIN
    // OPTION from 16): the attack is possible everywhere.
    as_role(
        server,
        &forger,
        &format!(
            "COMMENT ON ROLE {} IS {}",
            ident(&repl),
            literal(&record_text(&forged))
        ),
    );
    assert_eq!(
        role_may(
            server,
            &forger,
            &format!("ALTER ROLE {} NOLOGIN", ident(&repl))
        ),
        server.version_num() >= 160000,
        "what the forger may do itself"
    );
    assert_eq!(lock_list_entry(server, "role", &repl)["proven"], false);

    let out = server.kick(["lock", "--role", &repl, "--json"]).run();
    let change = &out.json()[0];
    assert_eq!(change["status"], "relocked", "{}", out.stdout);
    assert_eq!(change["proven"], true, "{}", out.stdout);
    assert!(!role_state(server, &repl).0, "locked");
    assert_eq!(lock_list_entry(server, "role", &repl)["proven"], true);

    let out = server.kick(["unlock", "--role", &repl, "--json"]).run();
    assert_eq!(out.json()[0]["status"], "unlocked", "{}", out.stdout);
    // LOGIN back, and neither the forged record nor the record it saved as the previous
    // comment left behind.
    assert_eq!(role_state(server, &repl), (true, None), "{}", out.stderr);
}

/// (datallowconn, datconnlimit, the ACL's items in order) of a database.
fn db_catalog(server: &Server, db: &str) -> (bool, i32, Vec<String>) {
    let row = server
        .connect(SUPERUSER)
        .query_one(
            "SELECT datallowconn, datconnlimit, \
                    ARRAY(SELECT x::text FROM unnest(datacl) x ORDER BY 1) \
               FROM pg_database WHERE datname::text = $1",
            &[&db],
        )
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

/// A database's owner writes a record on her open database saying it was closed before "the
/// lock" (no connections allowed, limit 0, nobody granted CONNECT): a superuser's lock closes
/// it but takes the state before it from the catalog, so its unlock gives back the database
/// exactly as it was, whatever method either names. Exit 0 keeps its promise both times.
#[test]
fn forged_prior_state_on_an_open_database_is_not_kept_by_a_relock() {
    let server = Server::shared();
    for (recorded, method) in [
        ("connection-limit", "allow-connections"),
        ("revoke-connect", "revoke-connect"),
        ("allow-connections", "connection-limit"),
    ] {
        let (alice, db) = forger_and_her_database(server);
        let grantee = server.create_role("grantee", "");
        as_role(
            server,
            &alice,
            &format!(
                "REVOKE CONNECT ON DATABASE {d} FROM PUBLIC; \
                 GRANT CONNECT ON DATABASE {d} TO {g}; ALTER DATABASE {d} CONNECTION LIMIT 7",
                d = ident(&db),
                g = ident(&grantee)
            ),
        );
        let before = db_catalog(server, &db);
        let forged = json!({
            "method": recorded, "locked_by": SUPERUSER,
            "locked_at": "2026-11-30T03:00:00Z", "pgkick_version": "0.1.0",
            "prior": {"comment": "the shop", "owner": alice, "datallowconn": false,
                      "datconnlimit": 0, "acl": []}
        });
        as_role(
            server,
            &alice,
            &format!(
                "COMMENT ON DATABASE {} IS {}",
                ident(&db),
                literal(&record_text(&forged))
            ),
        );
        let what = format!("{recorded} record, lock --method {method}");
        let out = server
            .kick(["lock", "--db", &db, "--method", method, "--json"])
            .run();
        assert_eq!(
            out.json()[0]["status"],
            "relocked",
            "{what}: {}",
            out.stdout
        );
        assert_eq!(out.json()[0]["method"], method, "{what}: {}", out.stdout);
        assert_ne!(db_catalog(server, &db), before, "{what}: not locked");
        assert_eq!(lock_list_entry(server, "database", &db)["proven"], true);

        let out = server.kick(["unlock", "--db", &db, "--json"]).run();
        assert_eq!(
            out.json()[0]["status"],
            "unlocked",
            "{what}: {}",
            out.stdout
        );
        assert_eq!(db_catalog(server, &db), before, "{what}: {}", out.stderr);
        // The record's previous comment is one its writer could have set herself.
        assert_eq!(
            db_state(server, &db).2.as_deref(),
            Some("the shop"),
            "{what}"
        );
    }
}

/// The proof is a setting only a superuser can write: a database's owner and a CREATEROLE
/// role (with ADMIN OPTION) try to write the very value pgkick would check for their forged
/// records, and the server refuses them on every major; the records stay unproven, in
/// `lock --list` and for unlock. The same value written by a superuser proves the record,
/// so the forgers had the value right.
#[test]
fn a_forger_cannot_write_the_proof() {
    use sha2::{Digest, Sha256};
    let server = Server::shared();
    let proof_of = |kind: &str, name: &str, text: &str| -> String {
        let catalog = if kind == "database" {
            "(SELECT oid FROM pg_database WHERE datname::text = $1) \
             AND classoid = 'pg_database'::regclass"
        } else {
            "(SELECT oid FROM pg_authid WHERE rolname::text = $1) \
             AND classoid = 'pg_authid'::regclass"
        };
        let xmin: String = server
            .connect(SUPERUSER)
            .query_one(
                &format!("SELECT xmin::text FROM pg_shdescription WHERE objoid = {catalog}"),
                &[&name],
            )
            .unwrap()
            .get(0);
        let hex: String = Sha256::digest(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("v1:{xmin}:{hex}")
    };
    // `writer` sets the proof of its own record on `name` (a `kind`, commented `text`) as a
    // superuser's lock would: refused, and the record stays unproven. The statement, for the
    // superuser to show that the value was the right one.
    let refused_to = |writer: &str, kind: &str, name: &str, text: &str| -> String {
        let set = format!(
            "ALTER {} {} SET pgkick.lock_proof = {}",
            kind.to_uppercase(),
            ident(name),
            literal(&proof_of(kind, name, text))
        );
        assert!(!role_may(server, writer, &set), "{writer} wrote the proof");
        assert_eq!(lock_list_entry(server, kind, name)["proven"], false);
        set
    };

    // The owner's database: a connection-limit record on the database she closed herself.
    let (alice, db) = forger_and_her_database(server);
    let text = record_text(&json!({
        "method": "connection-limit", "locked_by": SUPERUSER,
        "locked_at": "2026-11-30T03:00:00Z", "pgkick_version": "0.1.0",
        "prior": {"comment": null, "owner": alice, "datallowconn": true,
                  "datconnlimit": -1, "acl": []}
    }));
    as_role(
        server,
        &alice,
        &format!(
            "ALTER DATABASE {d} CONNECTION LIMIT 0; COMMENT ON DATABASE {d} IS {}",
            literal(&text),
            d = ident(&db)
        ),
    );
    let set_db = refused_to(&alice, "database", &db, &text);

    // A replication role's CREATEROLE administrator: a nologin record that gives LOGIN back.
    let forger = server.create_role("forger_cr", "CREATEROLE");
    let repl = unique_name("repl_dormant");
    server.sql(&format!(
        "CREATE ROLE {r} NOLOGIN REPLICATION; GRANT {r} TO {f} WITH ADMIN OPTION",
        r = ident(&repl),
        f = ident(&forger)
    ));
    let text = record_text(&json!({
        "method": "nologin", "locked_by": SUPERUSER,
        "locked_at": "2026-11-30T03:00:00Z", "pgkick_version": "0.1.0",
        "prior": {"comment": null, "rolcanlogin": true}
    }));
    as_role(
        server,
        &forger,
        &format!("COMMENT ON ROLE {} IS {}", ident(&repl), literal(&text)),
    );
    let set_role = refused_to(&forger, "role", &repl, &text);

    // The same values, written by a superuser, prove the records: the forgers' were right.
    for (kind, name, set) in [("database", &db, &set_db), ("role", &repl, &set_role)] {
        server.sql(set);
        assert_eq!(lock_list_entry(server, kind, name)["proven"], true);
        server.sql(&format!(
            "ALTER {} {} RESET pgkick.lock_proof",
            kind.to_uppercase(),
            ident(name)
        ));
    }

    // unlock reads them as unproven: only what their writers could have done.
    let out = server.kick(["unlock", "--db", &db, "--json"]).run();
    assert_eq!(out.json()[0]["proven"], false, "{}", out.stdout);
    assert_eq!(connection_limit(server, &db), -1);
    let forger_could = server.version_num() >= 160000;
    let out = server
        .kick(["unlock", "--role", &repl, "--json"])
        .status(if forger_could { 0 } else { 3 })
        .run();
    assert_eq!(out.json()[0]["proven"], false, "{}", out.stdout);
    assert_eq!(role_state(server, &repl), (forger_could, None));
}
