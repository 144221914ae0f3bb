//! The statements of every combination of needs, per server version that changes them, and
//! the reading of their rows. Their behaviour is checked against real servers in tests/it.

use std::cell::RefCell;
use std::collections::BTreeSet;

use super::needs::{Needs, Rows};
use super::*;
use crate::filter::tests::filter;
use crate::sql::{Param, Query};

/// Every version family whose SQL differs: 9.0/9.1 (procpid), 9.2–9.5 (state, waiting), 9.6
/// (wait events, pg_blocking_pids), 10 (backend_type, read from the function), 11 (parallel
/// workers told apart), 12 (MATERIALIZED), 13 (leader_pid), 14 (pg_locks.waitstart), 18.
const VERSIONS: [i32; 10] = [
    90124, 90524, 90624, 100023, 110000, 120000, 130000, 140000, 170000, 180000,
];

/// The families whose lock graph's SQL differs: 9.6 (the view, CTEs materialized without
/// saying so, no waitstart), 10 (the function, parallel workers are background workers), 11–12
/// (parallel workers; MATERIALIZED from 12), 13 (leader_pid), 14+ (pg_locks.waitstart).
const GRAPH_VERSIONS: [i32; 7] = [90624, 100023, 110000, 120000, 130000, 140000, 180000];

fn server(v: i32) -> Server {
    Server::version(v)
}

/// The first statement of `pgkick list ARGS` on a server of version `v`.
fn first(args: &[&str], v: i32) -> Query {
    let f = filter(args);
    build(&f, &server(v), Needs::first(&f, &server(v), false), None)
}

/// The statement with the lock graph and the prepared transactions, as it follows a first
/// statement that said something waits and a prepared transaction exists.
fn graph(args: &[&str], v: i32) -> Query {
    let f = filter(args);
    build(&f, &server(v), Needs::graph(true), None)
}

/// Every combination of needs a run sends to a server (the graph after a statement that
/// said something waits only where a statement can say so: 9.6+).
fn all_needs(f: &Filter, s: &Server) -> Vec<(&'static str, Needs)> {
    let mut all = vec![
        ("first", Needs::first(f, s, false)),
        ("first --tree", Needs::first(f, s, true)),
        ("later", Needs::later(f, s)),
        ("recheck", Needs::recheck(f, s)),
    ];
    if s.has_blocking_pids() {
        all.push(("graph after waits", Needs::graph(true)));
        all.push(("graph, no prepared transactions", Needs::graph(false)));
    }
    all
}

/// The `pg_catalog` objects a statement names.
fn catalog_objects(sql: &str) -> BTreeSet<String> {
    let re = regex::Regex::new(r"pg_catalog\.(\w+)").unwrap();
    re.captures_iter(sql).map(|c| c[1].to_string()).collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// Values that must never appear in SQL text.
const HOSTILE: &str = "x'; DROP DATABASE postgres; --";

#[test]
fn values_travel_only_as_parameters() {
    let f = filter(&[
        "--db",
        HOSTILE,
        "--user",
        HOSTILE,
        "--app",
        HOSTILE,
        "--exclude-db",
        HOSTILE,
        "--exclude-user",
        HOSTILE,
        "--exclude-app",
        HOSTILE,
        "--backend-type",
        HOSTILE,
    ]);
    for v in [
        80400, 90100, 90200, 90500, 90600, 100000, 130000, 140000, 180000,
    ] {
        let s = server(v);
        for (what, needs) in all_needs(&f, &s) {
            let q = build(&f, &s, needs, Some(&[1, 2]));
            assert!(!q.sql.contains("DROP"), "{v} {what}: {}", q.sql);
            let hostile = q
                .params
                .iter()
                .filter(|p| matches!(p, Param::TextArray(a) if a == &[HOSTILE]))
                .count();
            // Six flags, --backend-type from 10, --db once more for what holds the
            // databases, and the prepared transactions' database and owner conditions
            // (none here: without lock-chain flags no prepared transaction matches). The
            // databases and roles named are looked up by the same parameters, one each.
            let expected = 6
                + usize::from(v >= 100000)
                + usize::from(needs.held)
                + 2 * usize::from(needs.names);
            assert_eq!(hostile, expected, "{v} {what}");
        }
    }
}

/// The most characters the first statement of a run may have, per version family, for the
/// filters of `the_first_statement_never_carries_the_lock_graph` (the longest is `--user`'s,
/// with the roles looked up). Measured when set (BENCHMARKS.md, issue 20): a statement that
/// grows past it costs every run its parsing and planning in every new backend.
fn longest_first(v: i32) -> usize {
    if v >= 100000 {
        2_400
    } else {
        2_000
    }
}

/// `SELECT` keywords in a statement: its own and each subquery's (each one planned).
fn selects(sql: &str) -> usize {
    sql.matches("SELECT ").count()
}

#[test]
fn the_first_statement_never_carries_the_lock_graph() {
    // A tripwire: the first statement of list, cancel and terminate, with or without
    // lock-chain flags or --tree, names exactly these catalog objects, scans the sessions
    // once, has exactly these subqueries and no CTE, union or lock-graph column. Whatever a
    // feature adds to it, every run pays for in every new backend: add it here only with a
    // measurement (BENCHMARKS.md).
    let waits = [
        "pg_stat_get_backend_idset",
        "pg_stat_get_backend_wait_event_type",
        "pg_lock_status",
        "pg_prepared_xact",
        "bool_or",
    ];
    let held = ["pg_prepared_xact", "pg_get_replication_slots"];
    // Whether the roles named exist (--user, --exclude-user); the databases named are found
    // in pg_database. Measured in BENCHMARKS.md.
    let roles = ["unnest", "octet_length", "to_regrole", "quote_ident"];
    for v in [
        90624, 100023, 110000, 120000, 130000, 140000, 170000, 180000,
    ] {
        let function = v >= 100000;
        let scan: &[&str] = if function {
            &[
                "pg_stat_get_activity",
                "pg_database",
                "pg_get_userbyid",
                "pg_backend_pid",
                "pg_stat_get_wal_senders",
            ]
        } else {
            &["pg_stat_activity", "pg_backend_pid"]
        };
        for (args, tree) in [
            (&[][..], false),
            (&["--db", "d"], false),
            (&["--user", "u", "--app", "a", "--state", "idle"], false),
            (
                &["--query", "x", "--client", "local", "--query-age", "1m"],
                false,
            ),
            (
                &["--pid", "7", "--exclude-db", "e", "--xact-age", "1h"],
                false,
            ),
            (&["--db", "d"], true),
            (&["--blocked", "--db", "d"], false),
            (
                &["--root-blocker", "--blocks", "7", "--blocked-for", "1m"],
                false,
            ),
        ] {
            let f = filter(args);
            let needs = Needs::first(&f, &server(v), tree);
            assert!(!needs.graph && !needs.prepared, "{v} {args:?}");
            let q = build(&f, &server(v), needs, None);
            let what = format!("{v} {args:?} tree={tree}: {}", q.sql);
            for banned in [
                "pg_blocking_pids",
                "WITH ",
                "UNION",
                "pg_locks",
                "nd.",
                "MATERIALIZED",
                "AS blocked_by",
                "AS gid",
                "reach",
            ] {
                assert!(!q.sql.contains(banned), "{banned} in {what}");
            }
            // pg_stat_activity is scanned once, whatever it is read from.
            let (once, never) = if function {
                (
                    "pg_catalog.pg_stat_get_activity(NULL) a",
                    "pg_stat_activity",
                )
            } else {
                ("pg_catalog.pg_stat_activity a", "pg_stat_get_activity")
            };
            assert_eq!(q.sql.matches(once).count(), 1, "{what}");
            assert_eq!(
                q.sql.matches("pg_stat_activity").count()
                    + q.sql.matches("pg_stat_get_activity").count(),
                1,
                "{what}"
            );
            assert!(!q.sql.contains(never), "{what}");
            let mut expected = set(scan);
            expected.extend(set(&waits));
            expected.insert("current_setting".into());
            let db = args.contains(&"--db");
            let user = args.contains(&"--user");
            let named_dbs = usize::from(!f.named_dbs().is_empty());
            if db {
                expected.extend(set(&held));
            }
            if db || named_dbs > 0 {
                // What holds them, and which exist, are found in pg_database.
                expected.insert("pg_database".into());
            }
            if user {
                expected.extend(set(&roles));
            }
            // A lock-chain filter's first statement reads only the pid: no role's name.
            if needs.rows == Rows::Pid && !user {
                expected.remove("pg_get_userbyid");
            }
            assert_eq!(needs.rows == Rows::Pid, !f.chain.is_empty(), "{what}");
            if args.iter().any(|a| a.ends_with("-age")) {
                expected.insert("now".into());
            }
            assert_eq!(catalog_objects(&q.sql), expected, "{what}");
            // The statement; its one-row part, whether anything waits (the aggregate, the lock
            // manager's rows, the prepared transactions'); the hidden walsender test (10+);
            // with --db what holds the databases (prepared transactions, logical slots); the
            // names looked up.
            let expected_selects =
                1 + 3 + usize::from(function) + 2 * usize::from(db) + named_dbs + usize::from(user);
            assert_eq!(selects(&q.sql), expected_selects, "{what}");
            assert!(
                q.sql.len() <= longest_first(v),
                "{} characters, more than {}: {what}",
                q.sql.len(),
                longest_first(v)
            );
            // One row even when no session matches: the sessions left joined to the one-row
            // part, which tells whether anything waits.
            assert!(
                q.sql.contains(" FROM (SELECT CASE WHEN ")
                    && q.sql.contains(
                        " END AS waits FROM pg_catalog.pg_stat_get_backend_idset() \
                                       AS b(id)) AS o LEFT JOIN "
                    ),
                "{what}"
            );
            // Later in a run: no facts, no holders, no names, and never the graph.
            let n = Needs::later(&f, &server(v));
            assert!(!n.graph && !n.prepared && n.waits, "{what}");
            let later = build(&f, &server(v), n, None);
            assert!(!later.sql.contains("current_setting") && !later.sql.contains("held_in_dbs"));
            assert!(!later.sql.contains("known_"), "{v}: {}", later.sql);
            assert!(
                !later.sql.contains("pg_blocking_pids"),
                "{v}: {}",
                later.sql
            );
            if f.chain.is_empty() {
                // Nothing to learn from a run that matches nobody: the sessions alone.
                assert!(
                    later.sql.contains(" AS b(id)) AS waits FROM "),
                    "{v}: {}",
                    later.sql
                );
                assert!(!later.sql.contains(" AS o "), "{v}: {}", later.sql);
            } else {
                assert!(later.sql.contains(" AS b(id)) AS o LEFT JOIN "), "{v}");
            }
        }
    }
    // Before 9.6 nothing tells a lock chain: no waits either.
    for v in [90124, 90524] {
        let q = first(&[], v);
        assert!(!q.sql.contains("pg_blocking_pids") && !q.sql.contains("AS waits"));
        assert!(!q.sql.contains("AS blocked_by"), "{v}: {}", q.sql);
        assert_eq!(q.sql.matches("pg_catalog.pg_stat_activity a").count(), 1);
        // Still one row whatever matches (the facts come from it).
        assert!(
            q.sql.contains(" FROM (SELECT 1) AS o LEFT JOIN "),
            "{v}: {}",
            q.sql
        );
        let later = build(
            &filter(&[]),
            &server(v),
            Needs::later(&filter(&[]), &server(v)),
            None,
        );
        assert!(
            later
                .sql
                .contains(" FROM pg_catalog.pg_stat_activity a WHERE "),
            "{v}"
        );
    }
}

#[test]
fn the_graph_statement_per_version_family() {
    // Each variant the graph's statement has (with or without the prepared transactions; it
    // never carries the facts, which the statement before it had), per version family.
    for v in GRAPH_VERSIONS {
        let s = server(v);
        for args in [
            &[][..],
            &["--db", "d"],
            &["--blocked", "--db", "d"],
            &["--root-blocker", "--db", "d", "--blocked-for", "1m"],
            &["--backend-type", "walsender", "--blocks", "7"],
        ] {
            let f = filter(args);
            for prepared in [true, false] {
                let q = build(&f, &s, Needs::graph(prepared), None);
                let what = format!("{v} {args:?} prepared={prepared}: {}", q.sql);
                assert!(q.sql.starts_with("WITH "), "{what}");
                assert_eq!(
                    q.sql.matches("pg_catalog.pg_blocking_pids(").count(),
                    1,
                    "{what}"
                );
                let scan = if v >= 100000 {
                    "pg_catalog.pg_stat_get_activity(NULL) a LEFT JOIN pg_catalog.pg_database d"
                } else {
                    "FROM pg_catalog.pg_stat_activity a)"
                };
                assert_eq!(q.sql.matches(scan).count(), 1, "{what}");
                assert_eq!(
                    q.sql.matches("pg_stat_activity").count()
                        + q.sql.matches("pg_stat_get_activity").count(),
                    1,
                    "{what}"
                );
                for never in [
                    "server_version_num",
                    "held_in_dbs",
                    "known_",
                    "AS waits",
                    "current_setting",
                ] {
                    assert!(!q.sql.contains(never), "{never} in {what}");
                }
                assert_eq!(q.sql.contains("MATERIALIZED"), v >= 120000, "{what}");
                assert_eq!(q.sql.contains("waitstart"), v >= 140000, "{what}");
                assert_eq!(q.sql.contains("pg_prepared_xact"), prepared, "{what}");
                assert_eq!(q.sql.contains("UNION ALL"), prepared, "{what}");
                assert_eq!(q.sql.contains("AS gid"), prepared, "{what}");
                let every_lock = "(SELECT l.* FROM pg_catalog.pg_lock_status() l";
                let waiting_locks = "(SELECT l.pid, l.granted, l.waitstart \
                                     FROM pg_catalog.pg_lock_status() l WHERE NOT l.granted";
                assert_eq!(q.sql.contains(every_lock), prepared, "{what}");
                assert_eq!(
                    q.sql.contains(waiting_locks),
                    !prepared && v >= 140000,
                    "{what}"
                );
                if !prepared && v < 140000 {
                    assert!(!q.sql.contains("lk AS"), "{what}");
                }
                assert_eq!(
                    q.sql.contains("WITH RECURSIVE"),
                    args.contains(&"--blocks"),
                    "{what}"
                );
                if args.contains(&"--backend-type") && v >= 100000 {
                    let workers = if v >= 110000 {
                        "a.backend_type IS DISTINCT FROM 'parallel worker'"
                    } else {
                        "a.backend_type IS DISTINCT FROM 'background worker'"
                    };
                    assert!(q.sql.contains(workers), "{what}");
                }
                assert_eq!(q.sql.contains("a.leader_pid"), v >= 130000, "{what}");
                // 14 and later share their text.
                if v >= 140000 {
                    assert_eq!(
                        q.sql,
                        build(&f, &server(140000), Needs::graph(prepared), None).sql
                    );
                }
            }
        }
    }
}

#[test]
fn needs_follow_the_run() {
    let s = server(150000);
    let plain = filter(&["--db", "d"]);
    let n = Needs::first(&plain, &s, false);
    assert!(!n.graph && n.waits && n.facts && n.held && n.rows == Rows::Full);
    assert!(!Needs::first(&filter(&[]), &s, false).held);
    assert!(!n.asks_graph && n.one_row());
    // --tree and the lock-chain filters ask for the graph: it follows when something waits.
    let n = Needs::first(&plain, &s, true);
    assert!(
        !n.graph && !n.prepared && n.waits && n.asks_graph,
        "--tree asks for the graph"
    );
    let chained = filter(&["--blocked"]);
    let n = Needs::first(&chained, &s, false);
    assert!(!n.graph && n.waits && n.asks_graph);
    let n = Needs::later(&plain, &s);
    assert!(!n.facts && !n.held && n.waits && !n.graph && !n.one_row());
    // Before 9.6 a later find tells nothing but the sessions: no row without one.
    assert!(!Needs::later(&plain, &server(90524)).one_row());
    let n = Needs::later(&chained, &s);
    assert!(!n.graph && n.waits && n.asks_graph && n.one_row());
    let n = Needs::recheck(&plain, &s);
    assert!(n.rows == Rows::Identity && !n.graph && !n.waits && !n.prepared && !n.facts);
    let n = Needs::recheck(&chained, &s);
    assert!(
        n.graph && !n.prepared,
        "the chain filters still hold at a recheck"
    );
    // Before 9.6: no graph, whatever asks.
    let old = server(90524);
    let n = Needs::first(&chained, &old, true);
    assert!(!n.graph && !n.asks_graph && !n.waits);
    assert!(!Needs::first(&plain, &old, false).waits);
    assert!(!Needs::graph(false).prepared && Needs::graph(true).prepared);
    // The graph carries nothing of a first statement's.
    for prepared in [true, false] {
        let n = Needs::graph(prepared);
        assert!(n.graph && !n.facts && !n.held && !n.names && !n.waits && !n.one_row());
    }
}

#[test]
fn with_db_the_first_statement_tells_whether_something_holds_those_databases() {
    let q = first(&["--db", "d"], 150000);
    assert!(q.sql.contains(
        "(EXISTS (SELECT 1 FROM pg_catalog.pg_prepared_xact() x \
         JOIN pg_catalog.pg_database d ON d.oid = x.dbid \
         WHERE d.datname::text = ANY($2::text[]))"
    ));
    assert!(q
        .sql
        .contains("WHERE d.datname::text = ANY($2::text[]) AND s.active)) AS held_in_dbs"));
    assert_eq!(q.params[1], Param::TextArray(vec!["d".into()]));
    assert!(!first(&[], 150000).sql.contains("held_in_dbs"));
    // Before 10 every logical slot holds; before 9.4 there are none.
    assert!(first(&["--db", "d"], 90624)
        .sql
        .contains("WHERE d.datname::text = ANY($2::text[]) AND true)"));
    assert!(!first(&["--db", "d"], 90124)
        .sql
        .contains("pg_get_replication_slots"));
    // Once, in the one-row part; the graph's statement that may follow has it not at all.
    assert_eq!(q.sql.matches("AS held_in_dbs").count(), 1, "{}", q.sql);
    assert_eq!(q.sql.matches("AS server_version_num").count(), 1);
    let q = graph(&["--db", "d"], 150000);
    assert!(!q.sql.contains("held_in_dbs") && !q.sql.contains("server_version_num"));
}

#[test]
fn default_is_client_backends_without_own_session_null_datname_or_workers() {
    let q = first(&[], 170000);
    assert!(q.sql.contains(
        ") AS o LEFT JOIN (pg_catalog.pg_stat_get_activity(NULL) a \
         LEFT JOIN pg_catalog.pg_database d ON d.oid = a.datid) ON"
    ));
    assert!(q.sql.contains("a.pid <> pg_catalog.pg_backend_pid()"));
    assert!(q.sql.contains("d.datname::text IS NOT NULL"));
    assert!(q.sql.contains(
        "(a.backend_type = 'client backend' OR (a.backend_type IS NULL \
         AND a.backend_start IS NULL AND a.usesysid IS NOT NULL \
         AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_get_wal_senders() w \
         WHERE w.pid = a.pid)))"
    ));
    assert!(q.params.is_empty(), "{:?}", q.params);
    // A client backend is never a parallel worker and shows no leader_pid: with the default
    // the two conditions about workers would hold of every row.
    assert!(!q.sql.contains("parallel worker") && !q.sql.contains("leader_pid ="));
    let q = first(
        &[
            "--backend-type",
            "walsender",
            "--backend-type",
            "client backend",
        ],
        170000,
    );
    assert!(q
        .sql
        .contains("a.backend_type IS DISTINCT FROM 'parallel worker'"));
    assert!(q
        .sql
        .contains("(a.leader_pid IS NULL OR a.leader_pid = a.pid)"));
    assert!(q
        .sql
        .contains("(a.backend_type = ANY($1::text[]) OR (a.backend_type IS NULL"));
    // With --db the database's condition implies the row has one.
    assert!(!first(&["--db", "d"], 170000)
        .sql
        .contains("d.datname::text IS NOT NULL"));
    // The role's name as the view has it: null for a role that no longer exists.
    assert!(q.sql.contains(
        "NULLIF(pg_catalog.pg_get_userbyid(a.usesysid)::text, \
         'unknown (OID=' || a.usesysid::text || ')') AS usename"
    ));
}

#[test]
fn version_families() {
    let f = &["--state", "idle"];
    // 9.0 / 9.1: procpid, current_query, state derived, no wait events, no backend_type.
    let q = first(f, 90124);
    assert!(q.sql.contains("a.procpid AS pid"));
    assert!(q.sql.contains("a.current_query AS query"));
    assert!(q.sql.contains("WHEN '<IDLE>' THEN 'idle'"));
    assert!(q.sql.contains("a.waiting"));
    assert!(!q.sql.contains("a.backend_type"));
    assert!(!q.sql.contains("a.state "));
    assert!(q
        .sql
        .contains(") AS o LEFT JOIN pg_catalog.pg_stat_activity a ON"));
    assert_eq!(q.params, vec![Param::TextArray(vec!["idle".into()])]);
    // 9.2 - 9.5: pid, state, waiting.
    let q = first(f, 90524);
    assert!(q.sql.contains("a.pid AS pid") && q.sql.contains("a.state = ANY($1::text[])"));
    assert!(q.sql.contains("a.waiting") && !q.sql.contains("a.wait_event_type"));
    // 9.6: wait events, still no backend_type, still the view (its inner joins).
    let q = first(f, 90624);
    assert!(q.sql.contains("a.wait_event_type") && !q.sql.contains("a.backend_type"));
    assert!(q
        .sql
        .contains("a.datname::text AS datname, a.usename::text AS usename"));
    assert!(q
        .sql
        .contains(") AS o LEFT JOIN pg_catalog.pg_stat_activity a ON"));
    // 10 - 12: backend_type, no leader_pid, read from the function.
    let q = first(f, 120000);
    assert!(q.sql.contains("a.backend_type") && !q.sql.contains("a.leader_pid"));
    assert!(q.sql.contains("NULL::int4 AS leader_pid"));
    assert!(q.sql.contains("d.datname::text AS datname"));
    assert!(q.sql.contains("pg_catalog.pg_stat_get_activity(NULL) a"));
    // 13+: leader_pid; the first statement of a run is written for 13 and serves every later
    // version.
    let q = first(f, 130000);
    assert!(q.sql.contains("a.leader_pid AS leader_pid"));
    for v in [140000, 170000, 180000] {
        assert_eq!(q.sql, first(f, v).sql, "{v}");
    }
    let assumed = Server::assumed_for_probe();
    let fl = filter(f);
    assert_eq!(
        build(&fl, &assumed, Needs::first(&fl, &assumed, false), None).sql,
        q.sql
    );
}

#[test]
fn repeated_flags_or_and_different_flags_and() {
    let q = first(
        &[
            "--db", "a", "--db", "b", "--user", "u", "--pid", "7", "--pid", "8",
        ],
        150000,
    );
    assert!(q.sql.contains("d.datname::text = ANY($1::text[])"));
    assert!(q
        .sql
        .contains("'unknown (OID=' || a.usesysid::text || ')') = ANY($2::text[])"));
    assert!(q.sql.contains("a.pid = ANY($3::int4[])"));
    assert_eq!(q.params[0], Param::TextArray(vec!["a".into(), "b".into()]));
    assert_eq!(q.params[2], Param::Int4Array(vec![7, 8]));
}

#[test]
fn clients_and_ages() {
    let q = first(
        &[
            "--client",
            "local",
            "--client",
            "10.0.0.0/8",
            "--query-age",
            "10m",
            "--query-age",
            "5m",
            "--xact-age",
            "1h30m",
        ],
        150000,
    );
    assert!(q
        .sql
        .contains("(a.client_port = -1 OR a.client_addr <<= ANY($1::text[]::inet[]))"));
    assert_eq!(q.params[0], Param::TextArray(vec!["10.0.0.0/8".into()]));
    // Repeated ages OR: the shortest wins.
    assert_eq!(q.params[1], Param::Int8(300_000_000));
    assert!(q
        .sql
        .contains("a.query_start < pg_catalog.now() - $2::int8 * interval '1 microsecond'"));
    assert!(q.sql.contains("a.state IS DISTINCT FROM 'idle'"));
    assert_eq!(q.params[2], Param::Int8(5_400_000_000));
}

#[test]
fn exclusions_keep_rows_with_nulls() {
    let q = first(
        &["--exclude-user", "postgres", "--exclude-pid", "42"],
        150000,
    );
    assert!(q.sql.contains("|| ')') = ANY($1::text[]), false)"));
    assert!(q
        .sql
        .contains("NOT COALESCE(NULLIF(pg_catalog.pg_get_userbyid"));
    assert!(q.sql.contains("NOT (a.pid = ANY($2::int4[]))"));
    let q = first(&["--exclude-user", "postgres"], 90624);
    assert!(q
        .sql
        .contains("NOT COALESCE(a.usename::text = ANY($1::text[]), false)"));
}

#[test]
fn parallel_workers_on_10_are_background_workers() {
    let q = first(&["--backend-type", "logical replication launcher"], 100023);
    assert!(q
        .sql
        .contains("a.backend_type IS DISTINCT FROM 'background worker'"));
    let q = first(&["--backend-type", "logical replication launcher"], 110000);
    assert!(q
        .sql
        .contains("a.backend_type IS DISTINCT FROM 'parallel worker'"));
}

#[test]
fn backend_type_needs_10() {
    let q = first(&["--backend-type", "walsender"], 100000);
    assert_eq!(q.params[0], Param::TextArray(vec!["walsender".into()]));
    assert!(
        !q.sql.contains("a.backend_type IS NULL"),
        "hidden sessions are taken for client backends only"
    );
}

#[test]
fn the_lock_graph_is_computed_in_the_statement_that_finds_the_sessions() {
    let q = graph(&["--db", "d"], 150000);
    // One scan of pg_stat_activity serves the sessions and the lock graph, and the graph is
    // joined to them once.
    assert_eq!(
        q.sql
            .matches("pg_catalog.pg_stat_get_activity(NULL)")
            .count(),
        1
    );
    assert!(q
        .sql
        .contains("FROM sa a LEFT JOIN nd ON nd.pid = a.pid WHERE"));
    // One call, in the CTE whose rows are the sessions waiting for a lock (or hidden ones
    // that the lock manager shows waiting).
    assert_eq!(q.sql.matches("pg_catalog.pg_blocking_pids(").count(), 1);
    assert!(q.sql.contains(
        "CASE WHEN a.wait_event_type = 'Lock' OR (a.backend_start IS NULL \
         AND a.pid IN (SELECT l.pid FROM pg_catalog.pg_lock_status() l WHERE NOT l.granted)) \
         THEN pg_catalog.pg_blocking_pids(a.pid) END AS pgkick_blocked_by"
    ));
    // Read from the function, the rows keep the view's names.
    assert!(q
        .sql
        .contains("sa AS MATERIALIZED (SELECT a.*, d.datname::text AS datname, NULLIF("));
    // The lock manager's table is read only when someone is blocked; every lock when
    // prepared transactions are looked for.
    assert!(q.sql.contains(
        "lk AS MATERIALIZED (SELECT l.* FROM pg_catalog.pg_lock_status() l \
         WHERE EXISTS (SELECT 1 FROM e))"
    ));
    assert!(q.sql.contains("UNION ALL SELECT 0, pb.database, pb.owner,"));
    assert!(q.sql.contains("AS blocked_by") && q.sql.contains("AS blocking"));
    // Without lock-chain flags nothing is added to the sessions' conditions, and no
    // prepared transaction matches.
    assert!(!q.sql.contains("reach") && !q.sql.starts_with("WITH RECURSIVE"));
    assert!(q.sql.contains("pb.gid, false FROM pb"));
    // After a statement that said the server can have no prepared transaction: no `pb`,
    // and only the waiting locks.
    let f = filter(&["--db", "d"]);
    let q = build(&f, &server(150000), Needs::graph(false), None);
    assert!(!q.sql.contains("pg_prepared_xact") && !q.sql.contains("UNION"));
    assert!(q.sql.contains(
        "lk AS MATERIALIZED (SELECT l.pid, l.granted, l.waitstart \
         FROM pg_catalog.pg_lock_status() l WHERE NOT l.granted AND EXISTS (SELECT 1 FROM e))"
    ));
    assert!(!q.sql.contains("held_in_dbs") && !q.sql.contains("server_version_num"));
}

#[test]
fn lock_graph_version_families() {
    // 9.6: the view, every CTE materialized without saying so, wait start from query_start.
    let q = graph(&[], 90624);
    assert!(q.sql.contains("FROM pg_catalog.pg_stat_activity a)"));
    assert!(!q.sql.contains("MATERIALIZED") && !q.sql.contains("waitstart"));
    assert!(q
        .sql
        .contains("wt AS (SELECT g.pid, g.query_start AS wait_start FROM g)"));
    assert!(q.sql.contains("sa AS (SELECT a.*, CASE"));
    // 10, 11: the function; still no MATERIALIZED.
    for v in [100023, 110000] {
        let q = graph(&[], v);
        assert!(q
            .sql
            .contains("FROM pg_catalog.pg_stat_get_activity(NULL) a LEFT JOIN"));
        assert!(!q.sql.contains("MATERIALIZED"), "{v}");
    }
    // 12, 13: MATERIALIZED, no waitstart.
    for v in [120000, 130000] {
        let q = graph(&[], v);
        assert!(
            q.sql.contains("sa AS MATERIALIZED") && !q.sql.contains("waitstart"),
            "{v}"
        );
    }
    // 14+: pg_locks.waitstart, read directly; the same text up to 18.
    let q = graph(&[], 140000);
    assert!(q.sql.contains(
        "COALESCE(pg_catalog.min(l.waitstart), pg_catalog.min(g.query_start)) AS wait_start"
    ));
    assert_eq!(q.sql, graph(&[], 180000).sql);
    let f = filter(&["--root-blocker", "--blocks", "7", "--blocked-for", "1m"]);
    let on = |v| build(&f, &server(v), Needs::graph(true), None).sql;
    assert_eq!(on(140000), on(180000));
    // The probe (written for 13) with a lock-chain filter or --tree is the first statement
    // of 13 to 18: the graph follows once the server is known.
    let assumed = Server::assumed_for_probe();
    for tree in [true, false] {
        let probe = build(&f, &assumed, Needs::first(&f, &assumed, tree), None).sql;
        for v in [130000, 140000, 180000] {
            assert_eq!(
                probe,
                build(&f, &server(v), Needs::first(&f, &server(v), tree), None).sql
            );
        }
    }
}

#[test]
fn lock_chain_filters_and_their_parameters() {
    let args = [
        "--blocked",
        "--blocks",
        "7",
        "--blocks",
        "8",
        "--blocked-for",
        "2m",
        "--blocked-for",
        "1m",
    ];
    let q = graph(&args, 170000);
    assert!(q.sql.starts_with("WITH RECURSIVE "));
    assert!(q
        .sql
        .contains("reach(origin, pid) AS (SELECT o.pid, o.pid FROM pg_catalog.unnest($1::int4[])"));
    assert_eq!(q.params[0], Param::Int4Array(vec![7, 8]));
    assert!(q
        .sql
        .contains("pg_catalog.cardinality(a.pgkick_blocked_by) > 0"));
    assert!(q
        .sql
        .contains("EXISTS (SELECT 1 FROM reach r WHERE r.pid = a.pid AND r.origin <> a.pid)"));
    // --blocked-for: the shortest; on the waiting side for --blocked, on the blocking side
    // for --blocks.
    assert!(q
        .sql
        .contains("nd.wait_start < pg_catalog.now() - $2::int8"));
    assert!(q
        .sql
        .contains("WHERE e.blocker = a.pid AND w.wait_start < pg_catalog.now() - $3::int8"));
    assert_eq!(q.params[1], Param::Int8(60_000_000));
    // --blocked never selects a prepared transaction: it waits for nothing.
    assert!(q.sql.contains("pb.gid, false FROM pb"));

    let root = graph(&["--root-blocker", "--db", "d"], 170000);
    assert!(root.sql.contains(
        "nd.blocking IS NOT NULL AND \
         COALESCE(pg_catalog.cardinality(a.pgkick_blocked_by), 0) = 0"
    ));
    assert!(root
        .sql
        .contains("pb.gid, true AND pb.database = ANY($2::text[]) FROM pb"));
    let with_state = graph(
        &["--root-blocker", "--state", "idle-in-transaction"],
        170000,
    );
    assert!(with_state.sql.contains("pb.gid, false FROM pb"));
}

#[test]
fn a_recheck_carries_only_what_it_compares() {
    for v in VERSIONS {
        let s = server(v);
        let f = filter(&["--db", "d"]);
        let q = build(&f, &s, Needs::recheck(&f, &s), Some(&[7, 8]));
        let pid = if v < 90200 { "a.procpid" } else { "a.pid" };
        assert!(
            q.sql.starts_with(&format!(
            "SELECT {pid} AS pid, a.backend_start AS backend_start, a.usesysid AS usesysid FROM "
        )),
            "{v}: {}",
            q.sql
        );
        assert!(
            q.sql.ends_with(&format!("{pid} = ANY($2::int4[])")),
            "{v}: {}",
            q.sql
        );
        assert_eq!(q.params.last(), Some(&Param::Int4Array(vec![7, 8])));
        for absent in [
            "pg_blocking_pids",
            "waits",
            "current_setting",
            "held_in_dbs",
            "AS query",
        ] {
            assert!(!q.sql.contains(absent), "{v}: {absent}");
        }
        // --query is judged on the rows: their query text comes along.
        let f = filter(&["--db", "d", "--query", "x"]);
        let q = build(&f, &s, Needs::recheck(&f, &s), Some(&[7]));
        assert!(
            q.sql.contains("AS usesysid, ") && q.sql.contains(" AS query FROM"),
            "{v}"
        );
    }
    // The lock-chain filters hold at a recheck too: the graph, without the prepared
    // transactions or the graph's columns.
    let f = filter(&["--blocking"]);
    let s = server(170000);
    let q = build(&f, &s, Needs::recheck(&f, &s), Some(&[7]));
    assert!(q.sql.contains("pg_catalog.pg_blocking_pids(a.pid)"));
    assert!(q.sql.contains(
        "SELECT a.pid AS pid, a.backend_start AS backend_start, a.usesysid AS usesysid \
         FROM sa a LEFT JOIN nd"
    ));
    assert!(!q.sql.contains("pg_prepared_xact") && !q.sql.contains("AS lock_wait_start"));
}

/// A session's row whose every column is its type's default but its pid (1), and that
/// records the names read.
#[derive(Default)]
struct Recorder(RefCell<BTreeSet<String>>);

impl Row for Recorder {
    fn col<T: postgres::types::FromSqlOwned + Default + 'static>(&self, name: &str) -> Result<T> {
        self.0.borrow_mut().insert(name.to_string());
        let mut value = T::default();
        if name == name::PID {
            if let Some(pid) = (&mut value as &mut dyn std::any::Any).downcast_mut::<Option<i32>>()
            {
                *pid = Some(1);
            }
        }
        Ok(value)
    }
}

/// The aliases of a statement's select list: its own (`name AS alias` at the top level of
/// its first `SELECT`, after any CTE), not its subqueries' or CTEs'.
fn aliases(sql: &str) -> BTreeSet<String> {
    // The depth in parentheses before each byte.
    let mut depth = 0i32;
    let depths: Vec<i32> = sql
        .bytes()
        .map(|c| {
            let d = depth;
            depth += i32::from(c == b'(') - i32::from(c == b')');
            d
        })
        .collect();
    let at_top = |word: &str, from: usize| {
        sql.match_indices(word)
            .map(|(i, _)| i)
            .find(|&i| i >= from && depths[i] == 0)
    };
    let start = at_top("SELECT ", 0).expect("a top-level SELECT") + "SELECT ".len();
    let end = at_top(" FROM ", start).expect("its FROM");
    let re = regex::Regex::new(r" AS (\w+)").unwrap();
    re.captures_iter(&sql[start..end])
        .filter(|c| depths[start + c.get(0).unwrap().start()] == 0)
        .map(|c| c[1].to_string())
        .collect()
}

#[test]
fn every_alias_of_the_select_list_is_read_and_every_name_read_is_an_alias() {
    for v in VERSIONS {
        let s = server(v);
        for args in [
            &["--db", "d"][..],
            &["--query", "x"],
            &["--blocked"],
            &["--user", "u", "--exclude-db", "e"],
            &["--root-blocker", "--db", "d"],
        ] {
            let f = filter(args);
            for (what, needs) in all_needs(&f, &s) {
                let q = build(&f, &s, needs, None);
                let row = Recorder::default();
                if needs.rows == Rows::Identity {
                    rows::identity(&row, !f.queries.is_empty()).unwrap();
                } else {
                    let m = read(&f, std::slice::from_ref(&row), needs, Some(s)).unwrap();
                    assert_eq!(m.rows, 1, "{v} {args:?} {what}: the row is a session's");
                    if needs.graph && needs.prepared && s.has_blocking_pids() {
                        rows::prepared(&row, String::new()).unwrap();
                    }
                }
                assert_eq!(
                    row.0.into_inner(),
                    aliases(&q.sql),
                    "{v} {args:?} {what}: {}",
                    q.sql
                );
            }
        }
    }
}

#[test]
fn rows_are_read_in_pid_order_with_the_lock_columns_the_statement_had() {
    let f = filter(&[]);
    let s = server(150000);
    let m = read::<Recorder>(&f, &[], Needs::later(&f, &s), None).unwrap();
    assert_eq!(m.server, None);
    assert_eq!(m.held_in_dbs, None);
    // Without the graph the sessions of a server with pg_blocking_pids are in no chain ([]),
    // before 9.6 nobody can tell (null).
    let row = Recorder::default();
    let m = read(
        &f,
        std::slice::from_ref(&row),
        Needs::later(&f, &s),
        Some(s),
    )
    .unwrap();
    assert_eq!(m.sessions[0].blocked_by, Some(vec![]));
    assert_eq!(m.sessions[0].blocking, Some(vec![]));
    assert!(!m.waits);
    let old = server(90524);
    let m = read(
        &f,
        std::slice::from_ref(&row),
        Needs::later(&f, &old),
        Some(old),
    )
    .unwrap();
    assert_eq!(m.sessions[0].blocked_by, None);
}

#[test]
fn the_first_statement_tells_which_named_databases_and_roles_exist() {
    let f = filter(&["--db", "a", "--exclude-db", "b", "--db", "a", "--user", "u"]);
    let q = build(
        &f,
        &server(150000),
        Needs::first(&f, &server(150000), false),
        None,
    );
    assert!(
        q.sql.contains("AS known_dbs") && q.sql.contains("AS known_roles"),
        "{}",
        q.sql
    );
    assert!(q
        .params
        .contains(&Param::TextArray(vec!["a".into(), "b".into()])));
    assert!(q.params.contains(&Param::TextArray(vec!["u".into()])));
    // Nothing named, nothing looked up.
    let none = filter(&["--app", "x"]);
    let q = build(
        &none,
        &server(150000),
        Needs::first(&none, &server(150000), false),
        None,
    );
    assert!(!q.sql.contains("known_"), "{}", q.sql);
    // They come in the one-row part, so a run whose names match no session learns them from
    // the same statement.
    let q = build(
        &f,
        &server(150000),
        Needs::first(&f, &server(150000), false),
        None,
    );
    assert!(
        q.sql
            .contains(" AS o LEFT JOIN (pg_catalog.pg_stat_get_activity(NULL) a"),
        "{}",
        q.sql
    );
}

#[test]
fn a_first_statement_that_matches_nothing_still_tells_the_server() {
    // The row of the one-row part alone: its session columns null, its facts read.
    #[derive(Default)]
    struct NoSession(RefCell<BTreeSet<String>>);
    impl Row for NoSession {
        fn col<T: postgres::types::FromSqlOwned + Default + 'static>(
            &self,
            name: &str,
        ) -> Result<T> {
            self.0.borrow_mut().insert(name.to_string());
            Ok(T::default())
        }
    }
    let f = filter(&["--db", "nothing", "--user", "nobody"]);
    let s = server(150000);
    let row = NoSession::default();
    let m = read(
        &f,
        std::slice::from_ref(&row),
        Needs::first(&f, &s, false),
        None,
    )
    .unwrap();
    assert!(m.sessions.is_empty() && m.prepared.is_empty());
    assert_eq!(
        m.server,
        Some(Server {
            version_num: 0,
            is_superuser: false
        })
    );
    // Only what a row without a session has: no session column but its pid.
    assert_eq!(
        row.0.into_inner(),
        set(&[
            name::PID,
            name::SERVER_VERSION_NUM,
            name::IS_SUPERUSER,
            name::HELD_IN_DBS,
            name::WAITS,
            name::KNOWN_DBS,
            name::KNOWN_ROLES
        ])
    );
    // Known: none of them (the row's arrays are null).
    let unknown: Vec<&str> = m.unknown.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(unknown, ["nothing", "nobody"]);
    assert_eq!(m.rows, 0);
}

#[test]
fn a_close_name_is_one_or_two_slips_away() {
    let names: Vec<String> = ["myapp_production", "myapp_staging", "postgres"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        super::closest("myapp_prodution", &names).as_deref(),
        Some("myapp_production")
    );
    assert_eq!(
        super::closest("myapp_stagign", &names).as_deref(),
        Some("myapp_staging")
    );
    assert_eq!(
        super::closest("postgers", &names).as_deref(),
        Some("postgres")
    );
    assert_eq!(super::closest("billing", &names), None);
}
