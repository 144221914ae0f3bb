//! Terminal output is inert: text pgkick reads (query text, database and role names, lock
//! records, error messages) reaches a terminal with its control characters escaped, psql's
//! way (`\x1B`, `\u009B`), in tables, trees, dry-run statements, notes, warnings and errors;
//! JSON keeps the exact text.

use std::time::Duration;

use crate::fakepg::{Ask, FakePg};
use crate::harness::*;

/// The issue's attack, at the start of a query: retitle the terminal, clear the screen, print
/// fake output in red; and an 8-bit CSI (C1), which some terminals obey too.
const HOSTILE: &str = "/* \x1b]0;title\x07 \x1b[2J \x1b[1;31mFAKE OUTPUT\x1b[0m \u{9b}2J */";
/// How a table or a tree shows it.
const HOSTILE_SHOWN: &str = r"/* \x1B]0;title\x07 \x1B[2J \x1B[1;31mFAKE OUTPUT\x1B[0m \u009B2J */";

/// No byte of `text` is one a terminal acts on: ESC, BEL, CR, C1 (UTF-8 encoded).
fn assert_inert(what: &str, text: &str) {
    for c in ['\x1b', '\x07', '\r', '\u{9b}', '\u{85}'] {
        assert!(
            !text.contains(c),
            "{what} carries {c:?} to the terminal:\n{text:?}"
        );
    }
}

/// A database whose name clears the screen on a line of its own, with table `t` (one row)
/// in it; a role whose name retitles the terminal and ends the line, with rights on `t`.
struct Hostile {
    db: String,
    db_shown: String,
    role: String,
    role_shown: String,
}

fn hostile(server: &Server, prefix: &str) -> Hostile {
    let base = unique_name(prefix);
    let db = format!("{base}\n\x1b[2J");
    let role = format!("{base}\x1b]0;r\x07\n");
    server.sql(&format!("CREATE DATABASE {}", ident(&db)));
    server.sql(&format!("CREATE ROLE {} LOGIN", ident(&role)));
    server
        .connect(&db)
        .batch_execute(&format!(
            "CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 0); \
             GRANT ALL ON t TO {}",
            ident(&role)
        ))
        .unwrap();
    Hostile {
        db_shown: format!(r"{base}\x0A\x1B[2J"),
        role_shown: format!(r"{base}\x1B]0;r\x07\x0A"),
        db,
        role,
    }
}

fn drop_hostile(server: &Server, h: &Hostile) {
    // DROP DATABASE ... WITH (FORCE) is 13 and later: end the sessions by hand.
    let mut client = server.connect(SUPERUSER);
    let gone = wait_until(Duration::from_secs(10), || {
        client
            .query_one(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                  WHERE datname = $1",
                &[&h.db],
            )
            .map(|r| r.get::<_, i64>(0) == 0)
            .unwrap_or(false)
    });
    assert!(gone, "sessions still in {:?}", h.db);
    server.sql(&format!("DROP DATABASE {}", ident(&h.db)));
    server.sql(&format!("DROP ROLE {}", ident(&h.role)));
}

/// The lines of a table's body that name `pid` (one per row: a name with a newline in it must
/// not break its row).
fn rows_of(stdout: &str, pid: i32) -> Vec<&str> {
    stdout
        .lines()
        .filter(|l| l.split('|').any(|c| c.trim() == pid.to_string()))
        .collect()
}

/// A session of the hostile role holds a row lock after a hostile query; a superuser's UPDATE
/// of the row waits on it, so both are in a lock chain: `list` (table, tree, JSON), a dry run
/// of terminate, and the same on a terminal show the text escaped, and JSON keeps it exact.
#[test]
fn escapes_tables_trees_and_dry_runs_show_hostile_text_escaped() {
    let server = Server::shared();
    let h = hostile(server, "esc_list");
    let mut holder = Session::idle_in_transaction(server, &h.db, &h.role, "esc-holder");
    holder.execute(&format!("{HOSTILE} UPDATE t SET v = v + 1 WHERE id = 1"));
    let waiter = Session::waiting(
        server,
        &h.db,
        SUPERUSER,
        "esc-waiter",
        "UPDATE t SET v = v + 1 WHERE id = 1",
    );
    let exact_query: String = server
        .connect(SUPERUSER)
        .query_one(
            "SELECT query FROM pg_stat_activity WHERE pid = $1",
            &[&holder.pid],
        )
        .unwrap()
        .get(0);
    assert!(exact_query.starts_with(HOSTILE), "{exact_query:?}");

    // The table: each session one row, every hostile cell escaped.
    let out = server.kick(["list", "--db", &h.db]).run();
    assert_inert("list", &out.stdout);
    let rows = rows_of(&out.stdout, holder.pid);
    assert_eq!(rows.len(), 1, "{}", out.stdout);
    for shown in [HOSTILE_SHOWN, &h.db_shown, &h.role_shown] {
        assert!(rows[0].contains(shown), "{shown} not in {:?}", rows[0]);
    }
    assert_eq!(rows_of(&out.stdout, waiter.pid).len(), 1, "{}", out.stdout);
    assert_eq!(out.stdout.lines().count(), 5, "{}", out.stdout);

    // The tree: the holder, the waiter under it, the footer.
    let out = server.kick(["list", "--tree", "--db", &h.db]).run();
    assert_inert("list --tree", &out.stdout);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    assert!(lines[0].starts_with(&holder.pid.to_string()), "{lines:?}");
    for shown in [HOSTILE_SHOWN, &h.db_shown, &h.role_shown] {
        assert!(lines[0].contains(shown), "{shown} not in {:?}", lines[0]);
    }
    assert!(lines[1].contains(&h.db_shown), "{lines:?}");

    // A dry run: the table and the statement's parameters; nothing is signalled.
    let out = server.kick(["terminate", "--dry-run", "--db", &h.db]).run();
    assert_inert("terminate --dry-run", &out.stdout);
    assert!(out.stdout.contains(HOSTILE_SHOWN), "{}", out.stdout);
    assert!(
        out.stdout.contains(r"\x1B[2J") && out.stdout.contains("-- $"),
        "{}",
        out.stdout
    );
    assert!(holder.alive(server) && waiter.alive(server));

    // JSON and JSON lines keep the exact text, in JSON escapes.
    for format in ["json", "jsonl"] {
        let out = server
            .kick(["list", "--output", format, "--db", &h.db])
            .run();
        assert_inert(format, &out.stdout);
        let rows = match format {
            "json" => out.json().as_array().unwrap().clone(),
            _ => out.jsonl(),
        };
        let row = rows
            .iter()
            .find(|r| r["pid"] == holder.pid)
            .unwrap_or_else(|| panic!("holder not listed: {}", out.stdout));
        assert_eq!(row["query"], exact_query.as_str(), "{format}");
        assert_eq!(row["datname"], h.db.as_str(), "{format}");
        assert_eq!(row["usename"], h.role.as_str(), "{format}");
    }

    // On a terminal: the table fitted to its width, and JSON pretty-printed.
    for args in [&["list"][..], &["list", "--json"][..]] {
        let mut cmd = server.pgkick();
        cmd.args(args).args(["--db", &h.db]);
        let screen = Terminal::start(&cmd).finish(Duration::from_secs(30));
        assert_eq!(screen.code, 0, "{args:?}: {}", screen.stdout);
        assert!(
            screen.stdout.contains(&holder.pid.to_string()),
            "{args:?}: {}",
            screen.stdout
        );
        for sequence in ["\x1b[2J", "\x1b]0;", "\x1b[1;31m", "\u{9b}", "\x07"] {
            assert!(
                !screen.stdout.contains(sequence),
                "{args:?} sent {sequence:?} to the terminal: {:?}",
                screen.stdout
            );
        }
        if args.len() == 1 {
            assert!(screen.stdout.contains(r"\x1B[2J"), "{}", screen.stdout);
        }
    }

    // The confirmation prompt's table, on stderr; answered no, nothing is signalled.
    let mut cmd = server.pgkick();
    cmd.args(["terminate", "--db", &h.db]);
    let mut terminal = Terminal::start(&cmd);
    terminal.wait_for("[y/N]");
    terminal.type_keys(b"n\r");
    let screen = terminal.finish(Duration::from_secs(30));
    assert_eq!(screen.code, 4, "{}", screen.stdout);
    assert!(screen.stdout.contains(r"\x1B[2J"), "{}", screen.stdout);
    for sequence in ["\x1b[2J", "\x1b]0;", "\x1b[1;31m", "\u{9b}", "\x07"] {
        assert!(
            !screen.stdout.contains(sequence),
            "the prompt sent {sequence:?} to the terminal: {:?}",
            screen.stdout
        );
    }
    assert!(holder.alive(server) && waiter.alive(server));

    drop(waiter);
    drop(holder);
    drop_hostile(server, &h);
}

/// The password prompt names the user as given (`-U`), escaped.
#[test]
fn escapes_the_password_prompt_names_a_hostile_user_escaped() {
    let server = Server::shared();
    let fake = FakePg::start(Ask::Cleartext);
    let mut cmd = bare_pgkick(server);
    cmd.args([
        "-W",
        "-U",
        "\x1b]0;pwned\x07\x1b[2Jmallory",
        "-d",
        &fake.conninfo(),
    ])
    .arg("list");
    let mut terminal = Terminal::start(&cmd);
    terminal.wait_for("Password");
    terminal.type_keys(b"x\r");
    let screen = terminal.finish(Duration::from_secs(30));
    assert!(
        screen.stdout.contains(r"\x1B]0;pwned\x07\x1B[2Jmallory"),
        "{}",
        screen.stdout
    );
    for sequence in ["\x1b[2J", "\x1b]0;", "\x07"] {
        assert!(
            !screen.stdout.contains(sequence),
            "the prompt sent {sequence:?} to the terminal: {:?}",
            screen.stdout
        );
    }
}

/// A database owner can write any comment, a forged pgkick lock record included: its
/// `locked_by` reaches `lock --list`'s table escaped, and its JSON exact.
#[test]
fn escapes_a_forged_lock_record_is_listed_escaped() {
    let server = Server::shared();
    let db = server.create_db("esc_record");
    let record = r#"pgkick-lock v1 {"method":"revoke-connect","locked_by":"\u001b]0;pwned\u0007\u001b[2Jmallory\nroot","locked_at":"2026-01-02T03:04:05Z","pgkick_version":"0.1.0","prior":{"comment":null}}"#;
    server.sql(&format!(
        "COMMENT ON DATABASE {} IS {}",
        ident(&db),
        literal(record)
    ));

    let out = server.kick(["lock", "--list"]).run();
    assert_inert("lock --list", &out.stdout);
    let rows: Vec<&str> = out.stdout.lines().filter(|l| l.contains(&db)).collect();
    assert_eq!(rows.len(), 1, "{}", out.stdout);
    assert!(
        rows[0].contains(r"\x1B]0;pwned\x07\x1B[2Jmallory\x0Aroot"),
        "{:?}",
        rows[0]
    );

    let out = server.kick(["lock", "--list", "--json"]).run();
    assert_inert("lock --list --json", &out.stdout);
    let records = out.json();
    let listed = records
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == db.as_str())
        .unwrap_or_else(|| panic!("{db} not listed: {records}"));
    assert_eq!(listed["locked_by"], "\x1b]0;pwned\x07\x1b[2Jmallory\nroot");

    server.sql(&format!("DROP DATABASE {}", ident(&db)));
}

/// Errors, warnings, notes and usage errors that carry a hostile name: one line on stderr,
/// escaped.
#[test]
fn escapes_errors_notes_and_warnings_show_hostile_names_escaped() {
    let server = Server::shared();

    // An error naming a database that does not exist.
    let missing = format!("\x1b[2J\x1b]0;t\x07{}", unique_name("esc_missing"));
    let out = server
        .kick(["lock", "--db", &missing])
        .fails_with(&[r"\x1B[2J\x1B]0;t\x07esc_missing", "does not exist"]);
    assert_inert("lock's error", &out.stderr);

    // A usage error quoting the argument (clap itself leaves out C0 and ESC sequences, but
    // not C1).
    let out = server
        .kick(["list", "--no-such-flag\u{9b}2J\x1b[2J"])
        .status(2)
        .run();
    assert!(
        out.stderr.starts_with("pgkick: ") && out.stderr.contains(r"--no-such-flag\u009B2J"),
        "{}",
        out.stderr
    );
    assert_inert("a usage error", &out.stderr);

    // A note naming the database each change locked, and the dry run of a lock.
    let h = hostile(server, "esc_note");
    let out = server.kick(["lock", "--dry-run", "--db", &h.db]).run();
    assert_inert("lock --dry-run", &out.stdout);
    assert!(out.stdout.contains(r"\x1B[2J"), "{}", out.stdout);
    let out = server
        .kick(["terminate", "--lock", "--yes", "--db", &h.db])
        .run();
    assert_inert("terminate --lock's notes", &out.stderr);
    assert!(
        out.stderr
            .contains(&format!("database {}: locked", h.db_shown)),
        "{}",
        out.stderr
    );
    server.kick(["unlock", "--db", &h.db]).run();

    // Many servers: the one that fails is named on one line of stderr (its label carries the
    // database name), and in JSON lines exactly.
    let sock = server.sock_dir().display().to_string();
    let port = server.port().to_string();
    let bad = format!(
        "host={sock} port={port} dbname='{}'",
        missing.replace('\\', "\\\\").replace('\'', "\\'")
    );
    let good = format!("host={sock} port={port} dbname=postgres");
    let mut cmd = bare_pgkick(server);
    cmd.args(["-U", SUPERUSER, "-d", &bad, "-d", &good, "list"]);
    let out = run(&mut cmd);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert_inert("a failed server's line", &out.stderr);
    assert!(
        out.stderr.contains(r"\x1B[2J\x1B]0;t\x07esc_missing"),
        "{}",
        out.stderr
    );
    let mut cmd = bare_pgkick(server);
    cmd.args([
        "-U", SUPERUSER, "-d", &bad, "-d", &good, "list", "--output", "jsonl",
    ]);
    let out = run(&mut cmd);
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert_inert("JSON lines of a failed server", &out.stdout);
    let failed = out
        .jsonl()
        .into_iter()
        .find(|l| l.get("error").is_some())
        .unwrap_or_else(|| panic!("no error line: {}", out.stdout));
    assert!(
        failed["server"].as_str().unwrap().contains(&missing),
        "{failed}"
    );

    drop_hostile(server, &h);
}

/// `--audit-log -` writes its records to stderr, most often a terminal: a query with an 8-bit
/// CSI (C1) and DEL reaches it in JSON escapes, and the record still decodes to the exact text.
#[test]
fn escapes_audit_records_on_stderr_are_inert_and_exact() {
    let server = Server::shared();
    let db = server.create_db("esc_audit");
    let query = "SELECT pg_sleep(600) /* \u{9b}2J \x7f \u{85} */";
    let session = Session::active(server, &db, SUPERUSER, "esc-audit", query);
    let out = server
        .kick([
            "cancel",
            "--yes",
            "--pid",
            &session.pid.to_string(),
            "--audit-log",
            "-",
        ])
        .run();
    for c in ['\u{9b}', '\x7f', '\u{85}'] {
        assert!(
            !out.stderr.contains(c),
            "{c:?} reached stderr raw: {:?}",
            out.stderr
        );
    }
    let record: serde_json::Value = out
        .stderr
        .lines()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no record on stderr: {}", out.stderr));
    assert!(
        out.stderr.contains(r"\u009b2J \u007f \u0085"),
        "{}",
        out.stderr
    );
    assert_eq!(record["session"]["pid"], session.pid, "{record}");
    assert_eq!(record["session"]["query"], query, "{record}");
    assert_eq!(record["outcome"], "cancelled", "{record}");
}

/// A database name with a line break and a fake `--` line in it, and a forged record naming a
/// pooler whose label does the same: the dry runs of lock and unlock show them escaped, on
/// the line where they belong, never as a line of their own.
#[test]
fn escapes_dry_run_blocks_keep_hostile_names_on_their_line() {
    let server = Server::shared();
    let db = format!("{}\n-- fake line", unique_name("esc_block"));
    server.sql(&format!("CREATE DATABASE {}", ident(&db)));
    let fake_lines = |stdout: &str| -> Vec<String> {
        stdout
            .lines()
            .filter(|l| l.trim_start().starts_with("-- fake") || l.contains("fake\" "))
            .map(String::from)
            .collect()
    };

    let out = server.kick(["lock", "--dry-run", "--db", &db]).run();
    assert_eq!(
        fake_lines(&out.stdout),
        Vec::<String>::new(),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains(r"\x0A-- fake line"), "{}", out.stdout);

    let record = serde_json::json!({
        "method": "connection-limit", "locked_by": SUPERUSER,
        "locked_at": "2026-11-30T03:00:00Z", "pgkick_version": "0.1.0",
        "prior": {"comment": null, "owner": SUPERUSER, "datallowconn": true,
                  "datconnlimit": -1, "acl": []},
        "poolers": [{"pooler": "host=p port=6432 user=u\n-- fake pooler line", "action": "pause"}]
    });
    server.sql(&format!(
        "ALTER DATABASE {d} CONNECTION LIMIT 0; COMMENT ON DATABASE {d} IS {}",
        literal(&format!("pgkick-lock v1 {record}")),
        d = ident(&db)
    ));
    let out = server.kick(["unlock", "--dry-run", "--db", &db]).run();
    assert_eq!(
        fake_lines(&out.stdout),
        Vec::<String>::new(),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains(r"user=u\x0A-- fake pooler line"),
        "{}",
        out.stdout
    );
    server.sql(&format!("DROP DATABASE {}", ident(&db)));
}
