//! Property tests: whatever the filter values and whatever the sessions, the SQL pgkick sends
//! is built from fixed fragments and `$n` placeholders only.
//!
//! For arbitrary command-line values (quotes, backslashes, `$1`, `%I`, comment markers,
//! statement separators, any NUL-free unicode; any pid, duration, address or network) and for
//! every server version family, the statement text
//! - is the same as for a filter of the same shape with harmless values (so no value can be
//!   in it),
//! - contains no statement separator, comment marker, backslash, double quote or non-ASCII
//!   character,
//! - has placeholders `$1..$n` for exactly its n parameters, each cast to its parameter's type,
//! - carries every value in its parameters.
//!
//! The same holds for the signalling and waiting statements with arbitrary target sessions.
//! That the statements are accepted by a real server is checked by the integration tests
//! (`tests/it/hardening.rs`), which run them.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use clap::Parser;
use proptest::prelude::*;

use crate::cli::{Cli, Command};
use crate::filter::Filter;
use crate::server::Server;
use crate::session::Session;
use crate::signal::{signal_query, still_there_query, Action};
use crate::sql::{Param, Query};

/// One of every version family whose SQL differs.
const VERSIONS: [i32; 8] = [90100, 90200, 90600, 100000, 110000, 130000, 140000, 180000];

const CENTURY: i64 = 100 * 366 * 24 * 3600 * 1_000_000;

/// Fragments that break naive quoting or escaping.
const HOSTILE: [&str; 16] = [
    "'",
    "''",
    "\"",
    "\\",
    "\\'",
    ";",
    "--",
    "/*",
    "*/",
    "$1",
    "$$",
    "%I",
    "%L %s",
    "E'\\x'",
    "x'; DROP DATABASE postgres; --",
    "\u{2028}",
];

fn text_value() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        3 => proptest::sample::select(&HOSTILE[..]).prop_map(str::to_string),
        2 => "[^\u{0}]{0,6}",
        1 => Just("client backend".to_string()),
    ];
    proptest::collection::vec(piece, 0..5).prop_map(|v| v.concat())
}

fn texts() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(text_value(), 0..3)
}

fn client() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => Just("local".to_string()),
        3 => (any::<[u8; 4]>(), 0u8..=32)
            .prop_map(|(a, p)| format!("{}/{p}", IpAddr::from(a))),
        2 => (any::<[u8; 16]>(), 0u8..=128)
            .prop_map(|(a, p)| format!("{}/{p}", IpAddr::from(a))),
        1 => any::<[u8; 4]>().prop_map(|a| IpAddr::from(a).to_string()),
    ]
}

fn duration() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u64>().prop_map(|s| s.to_string()),
        (0u64..1_000_000).prop_map(|s| format!("{s}s")),
        (0u64..10_000, 0u64..60).prop_map(|(h, m)| format!("{h}h{m}m")),
        (0u64..100_000).prop_map(|ms| format!("{ms}ms")),
    ]
}

const STATES: [&str; 6] = [
    "active",
    "idle",
    "idle-in-transaction",
    "idle-in-transaction-aborted",
    "fastpath",
    "disabled",
];

/// Command-line arguments of `pgkick list`, every value in `--flag=value` form so that values
/// starting with `-` stay values.
#[derive(Debug, Clone)]
struct FilterArgv {
    text: Vec<(&'static str, Vec<String>)>,
    clients: Vec<String>,
    states: Vec<&'static str>,
    queries: Vec<String>,
    pids: Vec<i32>,
    exclude_pids: Vec<i32>,
    ages: Vec<(&'static str, Vec<String>)>,
    /// --blocks pids, and --blocked-for durations (given only with --blocks, which they need).
    blocks: Vec<i32>,
    blocked_for: Vec<String>,
}

impl FilterArgv {
    fn argv(&self) -> Vec<String> {
        let mut argv = vec!["pgkick".to_string(), "list".to_string()];
        let mut push = |flag: &str, v: &str| argv.push(format!("--{flag}={v}"));
        for (flag, values) in self.text.iter().chain(&self.ages) {
            for v in values {
                push(flag, v);
            }
        }
        for v in &self.clients {
            push("client", v);
        }
        for v in &self.states {
            push("state", v);
        }
        for v in &self.queries {
            push("query", v);
        }
        for v in &self.pids {
            push("pid", &v.to_string());
        }
        for v in &self.exclude_pids {
            push("exclude-pid", &v.to_string());
        }
        for v in &self.blocks {
            push("blocks", &v.to_string());
        }
        if !self.blocks.is_empty() {
            for v in &self.blocked_for {
                push("blocked-for", v);
            }
        }
        argv
    }

    /// The same shape with harmless values: same flags, same number of values, `local`
    /// kept apart from networks, `client backend` kept (it selects a fixed SQL fragment).
    fn neutral(&self) -> FilterArgv {
        let mut n = self.clone();
        for (_, values) in &mut n.text {
            for v in values {
                if v != "client backend" {
                    *v = "v".into();
                }
            }
        }
        for (_, values) in &mut n.ages {
            for v in values {
                *v = "1s".into();
            }
        }
        for c in &mut n.clients {
            if c != "local" {
                *c = "10.0.0.0/8".into();
            }
        }
        for p in n
            .pids
            .iter_mut()
            .chain(&mut n.exclude_pids)
            .chain(&mut n.blocks)
        {
            *p = 1;
        }
        for v in &mut n.blocked_for {
            *v = "1s".into();
        }
        n
    }

    fn filter(&self) -> Filter {
        let cli = Cli::try_parse_from(self.argv())
            .unwrap_or_else(|e| panic!("{:?} was refused: {e}", self.argv()));
        match cli.command {
            Command::List(l) => crate::plan::filter(&l.filter),
            _ => unreachable!(),
        }
    }

    fn text_values(&self) -> impl Iterator<Item = &String> {
        self.text
            .iter()
            .flat_map(|(_, v)| v)
            .chain(&self.queries)
            .chain(&self.clients)
    }
}

fn filter_argv() -> impl Strategy<Value = FilterArgv> {
    let text = (
        texts(),
        texts(),
        texts(),
        texts(),
        texts(),
        texts(),
        texts(),
    )
        .prop_map(|(db, user, app, bt, xdb, xuser, xapp)| {
            vec![
                ("db", db),
                ("user", user),
                ("app", app),
                ("backend-type", bt),
                ("exclude-db", xdb),
                ("exclude-user", xuser),
                ("exclude-app", xapp),
            ]
        });
    let ages =
        proptest::collection::vec(proptest::collection::vec(duration(), 0..3), 4).prop_map(|v| {
            ["query-age", "xact-age", "state-age", "backend-age"]
                .into_iter()
                .zip(v)
                .collect::<Vec<_>>()
        });
    (
        text,
        proptest::collection::vec(client(), 0..4),
        proptest::collection::vec(proptest::sample::select(&STATES[..]), 0..3),
        proptest::collection::vec(text_value().prop_map(|s| regex::escape(&s)), 0..2),
        proptest::collection::vec(any::<i32>(), 0..4),
        proptest::collection::vec(any::<i32>(), 0..3),
        ages,
        proptest::collection::vec(any::<i32>(), 0..3),
        proptest::collection::vec(duration(), 0..3),
    )
        .prop_map(
            |(text, clients, states, queries, pids, exclude_pids, ages, blocks, blocked_for)| {
                FilterArgv {
                    text,
                    clients,
                    states,
                    queries,
                    pids,
                    exclude_pids,
                    ages,
                    blocks,
                    blocked_for,
                }
            },
        )
}

/// The placeholders of `q`, each with the type it is cast to: `$3::int8` -> (3, "int8").
fn placeholders(q: &Query) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut rest = q.sql.as_str();
    while let Some(at) = rest.find('$') {
        rest = &rest[at + 1..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        assert!(
            !digits.is_empty(),
            "a '$' that is not a placeholder: {}",
            q.sql
        );
        rest = &rest[digits.len()..];
        let cast = rest.strip_prefix("::").unwrap_or_else(|| {
            panic!("placeholder ${digits} without a cast: {}", q.sql);
        });
        let ty: String = cast
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '[' || *c == ']')
            .collect();
        found.push((digits.parse().unwrap(), ty));
    }
    found
}

fn cast_of(p: &Param) -> &'static str {
    match p {
        Param::TextArray(_) => "text[]",
        Param::Int4Array(_) => "int4[]",
        Param::Int8(_) => "int8",
        Param::TimestamptzArray(_) => "timestamptz[]",
        Param::OidArray(_) => "oid[]",
    }
}

/// Placeholders `$1..$n` for exactly the n parameters, each cast to its parameter's type; no
/// text that could end the statement, start a comment or escape a quote.
fn assert_well_formed(q: &Query) {
    let used = placeholders(q);
    let numbers: BTreeSet<usize> = used.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        numbers,
        (1..=q.params.len()).collect::<BTreeSet<_>>(),
        "placeholders do not match the {} parameters: {}",
        q.params.len(),
        q.sql
    );
    for (n, ty) in &used {
        assert_eq!(
            ty,
            cast_of(&q.params[n - 1]),
            "${n} is cast to {ty} but is {:?}",
            q.params[n - 1]
        );
    }
    assert!(q.sql.is_ascii(), "non-ASCII SQL: {}", q.sql);
    for fragment in [";", "--", "/*", "\\", "\"", "%", "\0"] {
        assert!(
            !q.sql.contains(fragment),
            "SQL contains {fragment:?}: {}",
            q.sql
        );
    }
}

/// A value that contains a character the fixed SQL never has cannot be in the SQL.
fn assert_absent(sql: &str, value: &str) {
    let distinctive = value
        .chars()
        .any(|c| !c.is_ascii() || "\\\";%/{}".contains(c));
    if distinctive {
        assert!(!sql.contains(value), "value {value:?} is in the SQL: {sql}");
    }
}

fn micros(arg: &str) -> i64 {
    let d: Duration = crate::cli::parse_duration(arg).unwrap();
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

fn timestamp() -> impl Strategy<Value = Option<DateTime<Utc>>> {
    proptest::option::of(
        (-2_000_000_000i64..8_000_000_000, 0u32..1_000_000)
            .prop_map(|(s, us)| Utc.timestamp_opt(s, us * 1000).unwrap()),
    )
}

fn session() -> impl Strategy<Value = Session> {
    (
        any::<i32>(),
        (text_value(), text_value(), text_value(), text_value()),
        (timestamp(), timestamp(), timestamp()),
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<[u8; 4]>()),
    )
        .prop_map(
            |(
                pid,
                (datname, usename, app, query),
                (backend_start, query_start, xact_start),
                usesysid,
                addr,
            )| Session {
                pid,
                datname: Some(datname),
                usename: Some(usename),
                application_name: Some(app),
                client_addr: addr.map(IpAddr::from),
                client_port: Some(5432),
                backend_start,
                xact_start,
                query_start,
                state_change: query_start,
                wait_event_type: None,
                wait_event: None,
                state: Some("active".into()),
                backend_type: Some("client backend".into()),
                leader_pid: None,
                query: Some(query),
                usesysid,
                ..Default::default()
            },
        )
}

/// The first statement of a run with this filter (never with the lock graph).
fn first_statement(filter: &Filter, server: &Server) -> crate::sql::Query {
    let needs = crate::activity::needs::Needs::first(filter, server, false);
    crate::activity::build(filter, server, needs, None)
}

/// The statements a run with this filter can send to find its sessions: the first, and (from
/// 9.6, when something waits) the lock graph's, with the prepared transactions.
fn find_statements(filter: &Filter, server: &Server) -> Vec<crate::sql::Query> {
    let mut all = vec![first_statement(filter, server)];
    if server.has_blocking_pids() {
        let needs = crate::activity::needs::Needs::graph(true);
        all.push(crate::activity::build(filter, server, needs, None));
    }
    all
}

fn neutral_session() -> Session {
    Session {
        pid: 1,
        ..Default::default()
    }
}

fn session_strings(s: &Session) -> Vec<&str> {
    [&s.datname, &s.usename, &s.application_name, &s.query]
        .into_iter()
        .filter_map(|v| v.as_deref())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn filter_values_never_enter_the_sql(args in filter_argv()) {
        let filter = args.filter();
        let neutral = args.neutral().filter();
        for v in VERSIONS {
            let server = Server::version(v);
            let neutral_sql: Vec<String> =
                find_statements(&neutral, &server).into_iter().map(|q| q.sql).collect();
            // Each value must be in one of the statements (the lock-chain ones in the graph's).
            let all: Vec<Param> = find_statements(&filter, &server)
                .iter()
                .flat_map(|q| q.params.clone())
                .collect();
            for (i, q) in find_statements(&filter, &server).iter().enumerate() {
                assert_well_formed(q);
                prop_assert_eq!(&q.sql, &neutral_sql[i], "version {}", v);
                for value in args.text_values() {
                    assert_absent(&q.sql, value);
                }
            }
            let first = first_statement(&filter, &server);

            // Every value travels as a parameter, in order.
            let has = |p: Param| all.contains(&p);
            for (flag, values) in &args.text {
                if values.is_empty() || (*flag == "backend-type" && !server.has_backend_type()) {
                    continue;
                }
                if *flag == "backend-type" && *values == ["client backend"] {
                    // The default backend type alone is pgkick's own constant in the text, not
                    // a value from the command line: the same text as without the flag.
                    prop_assert!(
                        first.sql.contains("a.backend_type = 'client backend'"),
                        "{}: {}", v, first.sql
                    );
                    // (Another flag may carry the same value, as its own parameter.)
                    let elsewhere = args
                        .text
                        .iter()
                        .any(|(f, other)| *f != "backend-type" && other == values);
                    if !elsewhere {
                        prop_assert!(!has(Param::TextArray(values.clone())), "{}: {:?}", v, all);
                    }
                    continue;
                }
                prop_assert!(has(Param::TextArray(values.clone())), "{} {}: {:?}", v, flag, all);
            }
            let nets: Vec<String> = filter.clients.iter().filter_map(|c| c.to_inet()).collect();
            if !nets.is_empty() {
                prop_assert!(has(Param::TextArray(nets)), "{}: {:?}", v, all);
            }
            for pids in [&args.pids, &args.exclude_pids] {
                if !pids.is_empty() {
                    prop_assert!(has(Param::Int4Array(pids.clone())), "{}: {:?}", v, all);
                }
            }
            let chain_ages = (!args.blocks.is_empty() && server.has_blocking_pids())
                .then_some(("blocked-for", args.blocked_for.clone()));
            if !args.blocks.is_empty() && server.has_blocking_pids() {
                prop_assert!(has(Param::Int4Array(args.blocks.clone())), "{}: {:?}", v, all);
            }
            for (_, ages) in args.ages.iter().chain(chain_ages.iter()) {
                if let Some(shortest) = ages.iter().map(|a| micros(a)).min() {
                    // The shortest age, or, past any session's age, a cap of at least a
                    // century.
                    let carried = all.iter().any(|p| match p {
                        Param::Int8(m) => *m == shortest || (*m < shortest && *m >= CENTURY),
                        _ => false,
                    });
                    prop_assert!(carried, "{}: {} µs not in {:?}", v, shortest, all);
                }
            }
        }
    }

    #[test]
    fn signal_and_wait_statements_never_carry_session_data(
        targets in proptest::collection::vec(session(), 1..20),
    ) {
        let one = [neutral_session()];
        for v in VERSIONS {
            let server = Server::version(v);
            for action in [Action::Cancel, Action::Terminate] {
                for (q, fixed) in [
                    (signal_query(&server, action, &targets), signal_query(&server, action, &one)),
                    (
                        still_there_query(&server, action, &targets),
                        still_there_query(&server, action, &one),
                    ),
                ] {
                    assert_well_formed(&q);
                    prop_assert_eq!(&q.sql, &fixed.sql, "the text depends on the targets");
                    for s in &targets {
                        for value in session_strings(s) {
                            assert_absent(&q.sql, value);
                        }
                    }
                    prop_assert_eq!(
                        &q.params,
                        &vec![
                            Param::Int4Array(targets.iter().map(|s| s.pid).collect()),
                            Param::TimestamptzArray(targets.iter().map(|s| s.backend_start).collect()),
                            Param::OidArray(targets.iter().map(|s| s.usesysid).collect()),
                            Param::TimestamptzArray(targets.iter().map(|s| s.query_start).collect()),
                        ]
                    );
                }
            }
        }
    }

    /// The dry-run display of a statement: the text, then one `-- $n = value` comment line per
    /// parameter, so pasting it into psql cannot run anything but the statement.
    #[test]
    fn dry_run_display_keeps_values_in_comments(
        targets in proptest::collection::vec(session(), 0..5),
    ) {
        let q = signal_query(&Server::version(170000), Action::Terminate, &targets);
        let shown = q.display();
        // The statement over its lines (the same words as the text sent), then the values.
        let (statement, values) = shown.split_once(";\n").unwrap_or((&shown, ""));
        let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        prop_assert_eq!(words(statement), words(&q.sql));
        prop_assert!(!statement.lines().any(|l| l.starts_with("-- ")));
        for (i, line) in values.lines().enumerate() {
            let prefix = format!("-- ${} = ", i + 1);
            prop_assert!(line.starts_with(&prefix), "{:?}", line);
        }
        prop_assert_eq!(values.lines().count(), q.params.len());
    }
}

/// Ages far beyond any session's are still a valid statement on the server's side: the
/// parameter never exceeds what `int8 * interval` and `now() - interval` accept.
#[test]
fn huge_ages_stay_within_the_servers_interval_range() {
    let argv = ["pgkick", "list", "--query-age", "18446744073709551615"];
    let cli = Cli::try_parse_from(argv).unwrap();
    let Command::List(l) = cli.command else {
        unreachable!()
    };
    let q = first_statement(&crate::plan::filter(&l.filter), &Server::version(170000));
    let Some(Param::Int8(micros)) = q.params.iter().find(|p| matches!(p, Param::Int8(_))) else {
        panic!("no age parameter: {:?}", q.params)
    };
    // now() - 6000 years is still inside timestamptz's range (4713 BC).
    const SIX_THOUSAND_YEARS: i64 = 6000 * 366 * 24 * 3600 * 1_000_000;
    assert!(
        *micros <= SIX_THOUSAND_YEARS,
        "{micros} µs makes the server fail with 'interval out of range' or 'timestamp out of range'"
    );
}
