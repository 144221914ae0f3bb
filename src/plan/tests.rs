//! The plan, without a server: every usage check there is, over one server and many, and
//! what the command line becomes.

use super::*;
use clap::Parser;

use crate::conn::PasswordPolicy;

#[test]
fn dbname_flags_are_counted_on_both_sides() {
    let args = |v: &[&str]| -> Vec<std::ffi::OsString> {
        v.iter().map(std::ffi::OsString::from).collect()
    };
    let n = dbname_flags(&args(&[
        "pgkick",
        "-d",
        "a",
        "list",
        "--dbname",
        "b",
        "--dbname=c",
        "-dd",
        "-wd",
        "-qWdx",
        "-wUd",
        "--",
        "-d",
    ]));
    assert_eq!(n, 6);
    assert_eq!(dbname_flags(&args(&["pgkick", "list", "--db", "x"])), 0);
}

/// The plan of `pgkick ARGS`, with no environment, no home and no file read.
fn plan_of(args: &[&str]) -> Result<Plan> {
    let mut argv = vec!["pgkick"];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(&argv).expect("clap accepts it");
    let argv: Vec<OsString> = argv.iter().map(OsString::from).collect();
    Plan::from_cli_with(cli, &argv, &|p| {
        conn::Settings::resolve_with(p, &|_| None, None)
    })
}

fn status_of(args: &[&str]) -> crate::error::ExitStatus {
    match plan_of(args) {
        Ok(_) => crate::error::ExitStatus::Success,
        Err(e) => crate::error::exit_status(&e),
    }
}

fn two_servers<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["-d", "host=a", "-d", "host=b"];
    all.extend_from_slice(args);
    all
}

#[test]
fn every_usage_error_is_found_by_the_plan_over_one_server_or_two() {
    use crate::error::ExitStatus::{Refused, Usage};
    let cases: [(&[&str], crate::error::ExitStatus, &str); 8] = [
        (
            &["list", "--tree", "--json"],
            Usage,
            "--tree is a table view",
        ),
        (
            &["terminate", "--db", "x", "--pgbouncer", "host=p"],
            Usage,
            "needs --lock",
        ),
        (
            &["lock", "--role", "r", "--pgbouncer", "host=p"],
            Usage,
            "give --db NAME",
        ),
        (
            &["unlock", "--role", "r", "--pgbouncer", "host=p"],
            Usage,
            "give --db NAME",
        ),
        (
            &["lock", "--db", "x", "--pgbouncer", "pgbouncer-host"],
            Usage,
            "not a connection string",
        ),
        (&["-W", "cancel", "--db", "x", "--every", "5s"], Usage, "-W"),
        (&["terminate", "--yes"], Refused, "no filter given"),
        (
            &["-d", "hots=x", "list"],
            Usage,
            "invalid connection option",
        ),
    ];
    for (args, status, words) in cases {
        for args in [args.to_vec(), two_servers(args)] {
            let err = plan_of(&args)
                .err()
                .unwrap_or_else(|| panic!("{args:?} planned"));
            assert_eq!(crate::error::exit_status(&err), status, "{args:?}: {err:#}");
            assert!(err.to_string().contains(words), "{args:?}: {err:#}");
        }
    }
    // What only a run over many servers refuses.
    for args in [
        two_servers(&["cancel", "--db", "x", "--every", "5s"]),
        two_servers(&["conninfo"]),
        vec!["--each-host", "-d", "host=a,b", "conninfo"],
    ] {
        assert_eq!(status_of(&args), Usage, "{args:?}");
    }
    // -d on both sides of the subcommand.
    assert_eq!(status_of(&["-d", "host=a", "list", "-d", "host=b"]), Usage);
    // A bad line in a fleet's values.
    let err = plan_of(&["-d", "host=a", "-d", "host='x", "list"])
        .err()
        .unwrap();
    assert!(err.to_string().starts_with("-d value 2: "), "{err:#}");
}

#[test]
fn one_server_or_many_each_once() {
    let Servers::One(member) = plan_of(&["-h", "h", "-p", "5433", "list"]).unwrap().servers else {
        panic!("not one server");
    };
    assert_eq!(member.label, "h:5433");
    assert_eq!(member.params.host.as_deref(), Some("h"));
    assert_eq!(member.settings.targets[0].port, 5433);
    let plan = plan_of(&[
        "-d", "host=a", "-d", "host=b", "-d", "host=a", "--jobs", "3", "list",
    ])
    .unwrap();
    let Servers::Many { members, jobs, .. } = plan.servers else {
        panic!("not many");
    };
    let labels: Vec<&str> = members.iter().map(|m| m.label.as_str()).collect();
    assert_eq!(labels, ["a:5432", "b:5432"]);
    assert_eq!(jobs, 3);
    // One value that names one server is a run on one server.
    assert!(matches!(
        plan_of(&["-d", "host=a", "list"]).unwrap().servers,
        Servers::One(_)
    ));
}

#[test]
fn the_command_line_becomes_typed_options() {
    let plan = plan_of(&[
        "--json",
        "terminate",
        "--db",
        "shop",
        "--query-age",
        "10m",
        "--query-age",
        "1m",
        "--cancel-first",
        "--grace",
        "3s",
        "--wait",
        "--max",
        "5",
        "--reason",
        "INC-7",
        "--audit-log",
        "-",
    ])
    .unwrap();
    assert_eq!(plan.output.format, output::OutputFormat::Json);
    let Command::Signal(s) = plan.command else {
        panic!("not terminate");
    };
    assert_eq!(s.action, Action::Terminate);
    assert_eq!(s.first_action(), Action::Cancel);
    assert_eq!(s.cancel_first, Some(Duration::from_secs(3)));
    assert_eq!(
        s.filter.query_age,
        Some(Duration::from_secs(60)),
        "the shortest"
    );
    assert_eq!(s.guard.max, Some(5));
    assert!(s.wait.wait && s.watch.is_none());
    assert_eq!(s.audit.destination, Some(audit::AuditDestination::Stderr));
    assert_eq!(s.audit.reason.as_deref(), Some("INC-7"));
    assert_eq!(s.audit.command, "terminate");
    assert_eq!(s.audit.args[0], "--json");

    // A dry run writes records only with --audit-dry-run; --server-log never.
    let Command::Signal(s) = plan_of(&[
        "cancel",
        "--db",
        "x",
        "-n",
        "--audit-log",
        "-",
        "--server-log",
    ])
    .unwrap()
    .command
    else {
        panic!("not cancel");
    };
    assert!(s.audit.destination.is_none() && !s.audit.server_log);

    // Rounds never ask: --yes, and no password prompt.
    let plan = plan_of(&["cancel", "--db", "x", "--every", "1s", "--rounds", "2"]).unwrap();
    let Servers::One(member) = &plan.servers else {
        panic!("not one server");
    };
    assert_eq!(member.params.password, PasswordPolicy::Never);
    let Command::Signal(s) = plan.command else {
        panic!("not cancel");
    };
    assert!(s.guard.yes);
    assert_eq!(
        s.watch,
        Some(Watch {
            every: Duration::from_secs(1),
            rounds: Some(2)
        })
    );

    // terminate --lock is the drop-ready workflow, its poolers parsed once.
    let Command::DropReady(d) = plan_of(&[
        "terminate",
        "--db",
        "shop",
        "--lock",
        "--rollback-prepared",
        "--pgbouncer",
        "host=p port=6432 user=admin",
        "--pgbouncer",
        "host=p port=6432 user=admin",
    ])
    .unwrap()
    .command
    else {
        panic!("not terminate --lock");
    };
    assert!(d.rollback_prepared);
    assert_eq!(d.method, LockMethod::AllowConnections);
    assert_eq!(d.pause.poolers.len(), 1, "the same pooler twice is one");
    assert_eq!(d.signal.filter.dbs, ["shop"]);
}
