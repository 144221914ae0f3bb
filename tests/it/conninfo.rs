//! `pgkick conninfo`: the connection pgkick would make and where each setting came from.
//!
//! First PostgreSQL's own URI test replayed through it: every case of libpq's
//! `src/interfaces/libpq/t/001_uri.pl`, with the options libpq derives from the URI or the
//! error it gives, must come out the same, except in the rows that say why pgkick differs.
//! Then the sources (flags, environment, service file, `.pgpass` line), the password never
//! being printed, and `--connect` against a real server.

use std::process::{Command, Stdio};

use serde_json::Value;

use crate::harness::*;

/// pgkick with nothing but the given environment: no PG* variables, a HOME without any
/// `.pgpass`, `.pg_service.conf` or `.postgresql/`.
fn clean_pgkick(env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pgkick"));
    cmd.env_clear()
        .env("HOME", "/nonexistent/pgkick-conninfo-home")
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    cmd
}

/// `pgkick -d <dbname> conninfo --json` in a clean environment plus `env`.
fn conninfo(dbname: &str, env: &[(&str, &str)]) -> Output {
    run(clean_pgkick(env).args(["-d", dbname, "conninfo", "--json"]))
}

/// The report's row for `name`, if it has one.
fn setting<'a>(report: &'a Value, name: &str) -> Option<&'a Value> {
    report["settings"]
        .as_array()
        .expect("settings")
        .iter()
        .find(|s| s["name"] == name)
}

/// What libpq's test expects for one URI: its stdout (the options that differ from the
/// defaults, then `(local)` or `(inet)`), or its stderr (the error, without the program name).
type Libpq = Result<&'static str, &'static str>;

struct Case {
    uri: &'static str,
    env: &'static [(&'static str, &'static str)],
    libpq: Libpq,
    /// Where pgkick deliberately does otherwise: what it gives instead, and why.
    pgkick_differs: Option<(Libpq, &'static str)>,
}

const fn same(uri: &'static str, libpq: Libpq) -> Case {
    Case {
        uri,
        env: &[],
        libpq,
        pgkick_differs: None,
    }
}

const SYSTEM_ROOTS: &[(&str, &str)] = &[("PGSSLROOTCERT", "system")];

/// PostgreSQL's src/interfaces/libpq/t/001_uri.pl (PostgreSQL 16 and later), case by case, in
/// its order. A value equal to libpq's default is not printed by its test program, so
/// `sslmode=verify-full` under `PGSSLROOTCERT=system` is written here as derived.
const LIBPQ_URI_CASES: &[Case] = &[
    same(
        "postgresql://uri-user:secret@host:12345/db",
        Ok("user='uri-user' password='secret' dbname='db' host='host' port='12345' (inet)"),
    ),
    same(
        "postgresql://uri-user@host:12345/db",
        Ok("user='uri-user' dbname='db' host='host' port='12345' (inet)"),
    ),
    same(
        "postgresql://uri-user@host/db",
        Ok("user='uri-user' dbname='db' host='host' (inet)"),
    ),
    same(
        "postgresql://host:12345/db",
        Ok("dbname='db' host='host' port='12345' (inet)"),
    ),
    same("postgresql://host/db", Ok("dbname='db' host='host' (inet)")),
    same(
        "postgresql://uri-user@host:12345/",
        Ok("user='uri-user' host='host' port='12345' (inet)"),
    ),
    same(
        "postgresql://uri-user@host/",
        Ok("user='uri-user' host='host' (inet)"),
    ),
    same("postgresql://uri-user@", Ok("user='uri-user' (local)")),
    same(
        "postgresql://host:12345/",
        Ok("host='host' port='12345' (inet)"),
    ),
    same(
        "postgresql://host:12345",
        Ok("host='host' port='12345' (inet)"),
    ),
    same("postgresql://host/db", Ok("dbname='db' host='host' (inet)")),
    same("postgresql://host/", Ok("host='host' (inet)")),
    same("postgresql://host", Ok("host='host' (inet)")),
    same("postgresql://", Ok("(local)")),
    same(
        "postgresql://?hostaddr=127.0.0.1",
        Ok("hostaddr='127.0.0.1' (inet)"),
    ),
    same(
        "postgresql://example.com?hostaddr=63.1.2.4",
        Ok("host='example.com' hostaddr='63.1.2.4' (inet)"),
    ),
    same("postgresql://%68ost/", Ok("host='host' (inet)")),
    same(
        "postgresql://host/db?user=uri-user",
        Ok("user='uri-user' dbname='db' host='host' (inet)"),
    ),
    same(
        "postgresql://host/db?user=uri-user&port=12345",
        Ok("user='uri-user' dbname='db' host='host' port='12345' (inet)"),
    ),
    same(
        "postgresql://host/db?u%73er=someotheruser&port=12345",
        Ok("user='someotheruser' dbname='db' host='host' port='12345' (inet)"),
    ),
    same(
        "postgresql://host/db?u%7aer=someotheruser&port=12345",
        Err("invalid URI query parameter: \"uzer\""),
    ),
    same(
        "postgresql://host:12345?user=uri-user",
        Ok("user='uri-user' host='host' port='12345' (inet)"),
    ),
    same(
        "postgresql://host?user=uri-user",
        Ok("user='uri-user' host='host' (inet)"),
    ),
    same("postgresql://host?", Ok("host='host' (inet)")),
    same(
        "postgresql://[::1]:12345/db",
        Ok("dbname='db' host='::1' port='12345' (inet)"),
    ),
    same("postgresql://[::1]/db", Ok("dbname='db' host='::1' (inet)")),
    same(
        "postgresql://[2001:db8::1234]/",
        Ok("host='2001:db8::1234' (inet)"),
    ),
    same(
        "postgresql://[200z:db8::1234]/",
        Ok("host='200z:db8::1234' (inet)"),
    ),
    same("postgresql://[::1]", Ok("host='::1' (inet)")),
    same("postgres://", Ok("(local)")),
    same("postgres:///", Ok("(local)")),
    same("postgres:///db", Ok("dbname='db' (local)")),
    same(
        "postgres://uri-user@/db",
        Ok("user='uri-user' dbname='db' (local)"),
    ),
    same(
        "postgres://?host=/path/to/socket/dir",
        Ok("host='/path/to/socket/dir' (local)"),
    ),
    same(
        "postgresql://host?uzer=",
        Err("invalid URI query parameter: \"uzer\""),
    ),
    Case {
        uri: "postgre://",
        env: &[],
        libpq: Err("missing \"=\" after \"postgre://\" in connection info string"),
        pgkick_differs: Some((
            Ok("dbname='postgre://' (local)"),
            "libpq's test hands the string to PQconninfoParse, which takes anything as a \
             conninfo string; psql and pgkick pass -d through PQconnectdbParams' dbname, \
             which expands only a URI or a string containing '=' and otherwise takes it as a \
             database name (recognized_connection_string), exactly as psql -d postgre:// does",
        )),
    },
    same(
        "postgres://[::1",
        Err(
            "end of string reached when looking for matching \"]\" in IPv6 host address in \
             URI: \"postgres://[::1\"",
        ),
    ),
    same(
        "postgres://[]",
        Err("IPv6 host address may not be empty in URI: \"postgres://[]\""),
    ),
    same(
        "postgres://[::1]z",
        Err(
            "unexpected character \"z\" at position 17 in URI (expected \":\" or \"/\"): \
             \"postgres://[::1]z\"",
        ),
    ),
    same(
        "postgresql://host?zzz",
        Err("missing key/value separator \"=\" in URI query parameter: \"zzz\""),
    ),
    same(
        "postgresql://host?value1&value2",
        Err("missing key/value separator \"=\" in URI query parameter: \"value1\""),
    ),
    same(
        "postgresql://host?key=key=value",
        Err("extra key/value separator \"=\" in URI query parameter: \"key\""),
    ),
    same(
        "postgres://host?dbname=%XXfoo",
        Err("invalid percent-encoded token: \"%XXfoo\""),
    ),
    same(
        "postgresql://a%00b",
        Err("forbidden value %00 in percent-encoded value: \"a%00b\""),
    ),
    same(
        "postgresql://%zz",
        Err("invalid percent-encoded token: \"%zz\""),
    ),
    same(
        "postgresql://%1",
        Err("invalid percent-encoded token: \"%1\""),
    ),
    same(
        "postgresql://%",
        Err("invalid percent-encoded token: \"%\""),
    ),
    same("postgres://@host", Ok("host='host' (inet)")),
    same("postgres://host:/", Ok("host='host' (inet)")),
    same("postgres://:12345/", Ok("port='12345' (local)")),
    same(
        "postgres://otheruser@?host=/no/such/directory",
        Ok("user='otheruser' host='/no/such/directory' (local)"),
    ),
    same(
        "postgres://otheruser@/?host=/no/such/directory",
        Ok("user='otheruser' host='/no/such/directory' (local)"),
    ),
    same(
        "postgres://otheruser@:12345?host=/no/such/socket/path",
        Ok("user='otheruser' host='/no/such/socket/path' port='12345' (local)"),
    ),
    same(
        "postgres://otheruser@:12345/db?host=/path/to/socket",
        Ok("user='otheruser' dbname='db' host='/path/to/socket' port='12345' (local)"),
    ),
    same(
        "postgres://:12345/db?host=/path/to/socket",
        Ok("dbname='db' host='/path/to/socket' port='12345' (local)"),
    ),
    same(
        "postgres://:12345?host=/path/to/socket",
        Ok("host='/path/to/socket' port='12345' (local)"),
    ),
    same(
        "postgres://%2Fvar%2Flib%2Fpostgresql/dbname",
        Ok("dbname='dbname' host='/var/lib/postgresql' (local)"),
    ),
    Case {
        uri: "postgresql://host?sslmode=disable",
        env: SYSTEM_ROOTS,
        libpq: Ok("host='host' sslmode='disable' (inet)"),
        pgkick_differs: Some((
            Err(
                "weak sslmode \"disable\" may not be used with sslrootcert=system (use \
                 \"verify-full\")",
            ),
            "libpq's test only parses the URI; connecting, libpq refuses this combination \
             with the same words (connectOptions2), and conninfo reports what connecting \
             would do",
        )),
    },
    Case {
        uri: "postgresql://host?sslmode=prefer",
        env: SYSTEM_ROOTS,
        libpq: Ok("host='host' sslmode='prefer' (inet)"),
        pgkick_differs: Some((
            Err(
                "weak sslmode \"prefer\" may not be used with sslrootcert=system (use \
                 \"verify-full\")",
            ),
            "as for sslmode=disable above",
        )),
    },
    Case {
        uri: "postgresql://host?sslmode=verify-full",
        env: SYSTEM_ROOTS,
        libpq: Ok("host='host' sslmode='verify-full' (inet)"),
        pgkick_differs: None,
    },
];

/// Cases beyond 001_uri.pl, with what libpq's conninfo_uri_parse gives for them: the two
/// parsing bugs pgkick had (an empty query string or a trailing '&' refused; an empty port
/// stored as a value), and the options keyword.
const MORE_URI_CASES: &[Case] = &[
    same(
        "postgresql://127.0.0.1:5432?",
        Ok("host='127.0.0.1' port='5432' (inet)"),
    ),
    same(
        "postgresql://127.0.0.1:5432/?",
        Ok("host='127.0.0.1' port='5432' (inet)"),
    ),
    same(
        "postgresql://host/db?user=u&",
        Ok("user='u' dbname='db' host='host' (inet)"),
    ),
    same(
        "postgresql://host?&",
        Err("missing key/value separator \"=\" in URI query parameter: \"\""),
    ),
    same(
        "postgresql://host?user=u&&port=1",
        Err("missing key/value separator \"=\" in URI query parameter: \"\""),
    ),
    same(
        "postgresql://host:/db",
        Ok("dbname='db' host='host' (inet)"),
    ),
    same(
        "postgresql:///db?options=-c%20statement_timeout%3D5s",
        Ok("dbname='db' options='-c statement_timeout=5s' (local)"),
    ),
    same(
        "postgresql://h1:,h2:5433/db",
        Ok("dbname='db' host='h1,h2' port=',5433' (inet)"),
    ),
];

/// The options the table compares (each must come from the -d value exactly when libpq
/// derives it); the password only as present or not.
const COMPARED: [&str; 7] = [
    "user", "dbname", "host", "port", "hostaddr", "sslmode", "options",
];

/// Checks pgkick's report for `uri` against `expected`; returns a description of the first
/// mismatch.
fn check(uri: &str, env: &[(&str, &str)], expected: Libpq) -> Result<(), String> {
    let out = conninfo(uri, env);
    let expected = match expected {
        Err(message) => {
            return if out.code == 2
                && out.stderr.trim_end().lines().count() == 1
                && out.stderr.trim_end() == format!("pgkick: {message}")
            {
                Ok(())
            } else {
                Err(format!(
                    "expected the error {message:?}, got exit {} with stderr {:?} and stdout \
                     {:?}",
                    out.code, out.stderr, out.stdout
                ))
            };
        }
        Ok(options) => options,
    };
    if out.code != 0 {
        return Err(format!("exit {}: {}", out.code, out.stderr.trim_end()));
    }
    let report = out.json();
    let pairs = regex::Regex::new(r"(\w+)='([^']*)'").unwrap();
    let want: Vec<(&str, &str)> = pairs
        .captures_iter(expected)
        .map(|c| (c.get(1).unwrap().as_str(), c.get(2).unwrap().as_str()))
        .collect();
    for key in COMPARED {
        let row = setting(&report, key);
        // libpq's test program parses its argument alone; here it is the -d value.
        let from_uri = row.filter(|r| {
            r["source"] == "uri"
                || r["source"] == "conninfo"
                || (r["source"] == "flag" && r["from"] == "-d")
        });
        match want.iter().find(|(k, _)| *k == key) {
            Some((_, value)) => match from_uri {
                Some(r) if r["value"] == *value => {}
                _ => {
                    return Err(format!(
                        "{key}: expected {value:?} from the URI, got {row:?}"
                    ))
                }
            },
            None => {
                if let Some(r) = from_uri {
                    return Err(format!("{key}: expected no value from -d, got {r}"));
                }
            }
        }
    }
    let password = &report["password"];
    let want_password = want.iter().any(|(k, _)| *k == "password");
    let got_password = password["found"] == true && password["source"] == "uri";
    if want_password != got_password {
        return Err(format!("password expected {want_password}, got {password}"));
    }
    let local = expected.ends_with("(local)");
    if report["hosts"][0]["socket"] != local {
        return Err(format!(
            "expected {}, got the host {}",
            if local { "a unix socket" } else { "TCP" },
            report["hosts"][0]
        ));
    }
    Ok(())
}

fn check_table(cases: &[Case]) {
    let mut failures = Vec::new();
    for case in cases {
        let expected = match case.pgkick_differs {
            Some((pgkick, why)) => {
                assert!(!why.is_empty(), "{}: a difference needs a reason", case.uri);
                pgkick
            }
            None => case.libpq,
        };
        if let Err(e) = check(case.uri, case.env, expected) {
            failures.push(format!("{} (libpq: {:?}): {e}", case.uri, case.libpq));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn conninfo_agrees_with_libpqs_own_uri_test() {
    assert!(LIBPQ_URI_CASES.len() >= 60, "{}", LIBPQ_URI_CASES.len());
    check_table(LIBPQ_URI_CASES);
}

#[test]
fn conninfo_agrees_with_libpq_on_empty_queries_and_ports() {
    check_table(MORE_URI_CASES);
}

#[test]
fn conninfo_names_the_source_of_each_setting() {
    let home = TempDir::new("pgkick-conninfo-home");
    let service_file = home.write(
        ".pg_service.conf",
        "[nightly]\nhost=svc-host\ndbname=svc-db\napplication_name=svc-app\n",
        0o644,
    );
    home.write(
        ".pgpass",
        "# a comment\nother:*:*:*:nope\nsvc-host:6000:svc-db:cron-user:secret-from-pgpass\n",
        0o600,
    );
    let home_dir = home.path().to_str().unwrap();
    let out = run(clean_pgkick(&[
        ("HOME", home_dir),
        ("PGSERVICE", "nightly"),
        ("PGUSER", "cron-user"),
        ("PGHOST", "env-host"),
        ("PGCONNECT_TIMEOUT", "7"),
    ])
    .args(["-p", "6000", "conninfo", "--json"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let report = out.json();
    let row = |name: &str| setting(&report, name).unwrap_or_else(|| panic!("no {name}"));
    assert_eq!(row("port")["source"], "flag");
    assert_eq!(row("port")["from"], "-p");
    assert_eq!(row("host")["value"], "svc-host", "the service beats PGHOST");
    assert_eq!(row("host")["source"], "service");
    assert_eq!(row("host")["from"], "nightly");
    assert_eq!(row("host")["file"], service_file.to_str().unwrap());
    assert_eq!(row("application_name")["source"], "service");
    assert_eq!(row("service")["source"], "env");
    assert_eq!(row("service")["from"], "PGSERVICE");
    assert_eq!(row("user")["source"], "env");
    assert_eq!(row("user")["from"], "PGUSER");
    assert_eq!(row("connect_timeout")["value"], "7");
    assert_eq!(row("sslmode")["source"], "default");
    assert_eq!(row("sslmode")["value"], "prefer");
    let password = &report["password"];
    assert_eq!(password["found"], true);
    assert_eq!(password["source"], "pgpass");
    assert_eq!(password["line"], 3);
    assert_eq!(
        password["file"],
        home.path().join(".pgpass").to_str().unwrap()
    );
    assert_eq!(report["hosts"][0]["pgpass_line"], 3);
    assert!(!out.stdout.contains("secret-from-pgpass"), "{}", out.stdout);

    // The table says the same in words.
    let out = run(clean_pgkick(&[
        ("HOME", home_dir),
        ("PGSERVICE", "nightly"),
        ("PGUSER", "cron-user"),
    ])
    .args(["-p", "6000", "conninfo"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    for needle in [
        "flag -p",
        "environment variable PGUSER",
        &format!("service file (service nightly, {})", service_file.display()),
        &format!(
            "password: found, from password file {} line 3",
            home.path().join(".pgpass").display()
        ),
        "host: svc-host port 6000",
    ] {
        assert!(
            out.stdout.contains(needle),
            "{needle:?} not in:\n{}",
            out.stdout
        );
    }
    assert!(!out.stdout.contains("secret-from-pgpass"), "{}", out.stdout);
}

#[test]
fn conninfo_never_prints_a_password() {
    let home = TempDir::new("pgkick-conninfo-home");
    home.write(".pgpass", "*:*:*:*:pw-in-pgpass\n", 0o600);
    home.write(".pg_service.conf", "[s]\npassword=pw-in-service\n", 0o644);
    let home_dir = home.path().to_str().unwrap();
    // (arguments, environment, the password, the source conninfo must name)
    type PasswordCase<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: [PasswordCase; 5] = [
        (
            &["-d", "postgresql://u:pw-in-uri@h/db"],
            &[],
            "pw-in-uri",
            "uri",
        ),
        (
            &["-d", "host=h password='pw in conninfo'"],
            &[],
            "pw in conninfo",
            "conninfo",
        ),
        (&[], &[("PGPASSWORD", "pw-in-env")], "pw-in-env", "env"),
        (&["-d", "service=s"], &[], "pw-in-service", "service"),
        (&["-h", "h"], &[], "pw-in-pgpass", "pgpass"),
    ];
    for (args, env, secret, source) in cases {
        let mut env = env.to_vec();
        env.push(("HOME", home_dir));
        for format in [&["--json"][..], &["--output", "jsonl"], &[]] {
            let out = run(clean_pgkick(&env).args(args).arg("conninfo").args(format));
            assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
            for text in [&out.stdout, &out.stderr] {
                assert!(
                    !text.contains(secret),
                    "{args:?} {format:?} printed it:\n{text}"
                );
                assert!(!text.contains("pw-in-"), "{args:?} {format:?}:\n{text}");
            }
            if format == ["--json"] {
                assert_eq!(out.json()["password"]["source"], source, "{args:?}");
            }
        }
    }
}

#[test]
fn conninfo_errors_never_print_a_password() {
    for uri in [
        "postgresql://u:pw-secret@[::1",
        "postgresql://u:pw-secret%zz@h",
        "postgresql://h?password=pw-secret%zz",
    ] {
        let out = conninfo(uri, &[]);
        assert_eq!(out.code, 2, "{uri}: {}", out.stderr);
        assert_eq!(out.stderr.trim_end().lines().count(), 1, "{}", out.stderr);
        assert!(!out.stderr.contains("pw-secret"), "{uri}: {}", out.stderr);
    }
}

#[test]
fn conninfo_refuses_bad_input() {
    let out = run(clean_pgkick(&[]).args(["conninfo", "--bogus"]));
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_usage(&out.stderr, &["unexpected argument '--bogus' found"]);
    let out = run(clean_pgkick(&[]).args(["-d", "hots=x", "conninfo"]));
    assert_eq!(out.code, 2);
    assert_eq!(
        out.stderr.trim_end(),
        "pgkick: invalid connection option \"hots\""
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn conninfo_connect_reports_the_session() {
    let server = Server::shared();
    // Over the unix socket, with the harness's flags.
    let out = run(server.pgkick().args(["conninfo", "--connect", "--json"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    let c = &out.json()["connection"];
    assert_eq!(c["server_version_num"], server.version_num());
    assert_eq!(c["current_user"], SUPERUSER);
    assert_eq!(c["session_user"], SUPERUSER);
    assert_eq!(c["tls"], false);
    assert_eq!(c["address"], Value::Null);
    let socket = server
        .sock_dir()
        .join(format!(".s.PGSQL.{}", server.port()));
    assert_eq!(
        c["connected_to"],
        format!("server on socket \"{}\"", socket.display())
    );

    // Over TCP, with the URI forms libpq accepts and pgkick used to refuse: an empty query
    // string, and an empty port that leaves PGPORT in force.
    let port = server.port().to_string();
    for uri in [
        format!("postgresql://{SUPERUSER}@127.0.0.1:{port}?"),
        format!("postgresql://{SUPERUSER}@127.0.0.1:{port}/postgres?application_name=x&"),
        format!("postgresql://{SUPERUSER}@127.0.0.1:/postgres"),
    ] {
        let out = run(clean_pgkick(&[("PGPORT", &port)]).args([
            "-d",
            &uri,
            "conninfo",
            "--connect",
            "--json",
        ]));
        assert_eq!(out.code, 0, "{uri}: {}", out.stderr);
        let c = &out.json()["connection"];
        assert_eq!(c["address"], "127.0.0.1", "{uri}");
        assert_eq!(c["port"], server.port(), "{uri}");
        assert_eq!(
            c["connected_to"],
            format!("server at \"127.0.0.1\", port {port}"),
            "{uri}"
        );
        assert_eq!(c["current_user"], SUPERUSER);
    }

    // The table names the same things.
    let out = run(server.pgkick().args(["conninfo", "--connect"]));
    assert_eq!(out.code, 0, "{}", out.stderr);
    for needle in [
        "connected to: server on socket",
        "TLS: no",
        "user: postgres",
    ] {
        assert!(out.stdout.contains(needle), "{needle:?}:\n{}", out.stdout);
    }
}

#[test]
fn conninfo_connect_failure_still_reports_the_settings() {
    let server = Server::shared();
    // A port nothing listens on, in the server's socket directory.
    let out = run(clean_pgkick(&[])
        .args(["-h", server.sock_dir().to_str().unwrap(), "-p", "1"])
        .args(["conninfo", "--connect", "--json"]));
    assert_eq!(out.code, 1, "{}", out.stderr);
    let report = out.json();
    assert_eq!(setting(&report, "port").unwrap()["value"], "1");
    assert!(report.get("connection").is_none());
    assert_eq!(out.stderr.trim_end().lines().count(), 1, "{}", out.stderr);
    assert!(out.stderr.contains(".s.PGSQL.1"), "{}", out.stderr);
}
