//! The committed shell completions (`completions/`) and man page (`man/pgkick.1`), generated
//! from the clap definitions in `cli.rs`.
//!
//! Compiled only for tests. `cargo test docs` renders every file and fails when the committed
//! copy differs from what the code produces, so CI catches a flag added without regenerating;
//! `PGKICK_UPDATE_DOCS=1 cargo test docs` writes them. The prose the man page needs beyond the
//! flags (JSON fields, environment, files, exit status) lives here, next to the code that
//! renders it.

use std::path::{Path, PathBuf};

use clap::{Command, CommandFactory};
use clap_complete::Shell;
use clap_mangen::Man;
use roff::{bold, italic, roman, Inline, Roff};

use crate::cli::Cli;
use crate::error::ExitStatus;
use crate::holders;
use crate::session::Session;
use crate::signal::Outcome;

/// The environment variable that makes the test rewrite the files instead of comparing.
const UPDATE_VAR: &str = "PGKICK_UPDATE_DOCS";

/// Each shell's completion script, relative to the repository root.
const COMPLETIONS: [(Shell, &str); 5] = [
    (Shell::Bash, "completions/pgkick.bash"),
    (Shell::Zsh, "completions/_pgkick"),
    (Shell::Fish, "completions/pgkick.fish"),
    (Shell::Elvish, "completions/pgkick.elv"),
    (Shell::PowerShell, "completions/_pgkick.ps1"),
];

const MAN_PAGE: &str = "man/pgkick.1";

/// The README: its outcome and exit-status tables are rendered from code (the rest is prose,
/// some of it checked against the code by the tests below).
const README: &str = "README.md";

/// The help heading `cli.rs` gives the filter flags; they get one FILTERS section of their own
/// rather than a copy under each of list, cancel and terminate.
const FILTERS_HEADING_PREFIX: &str = "Filters";

const DESCRIPTION: &[&str] = &[
    "pgkick lists the sessions of a PostgreSQL server (pg_stat_activity), cancels their \
     queries (pg_cancel_backend) or terminates them (pg_terminate_backend), chosen by filters. \
     It can also keep new connections out of databases and stop roles from logging in \
     (lock), and undo exactly that (unlock).",
    "pgkick connects the way psql does: the same -h, -p, -U, -d and -w/-W flags, a -d value \
     that may be a key=value connection string or a postgresql:// URI, the PG* environment \
     variables, the connection service file, the password file and TLS with libpq's sslmode \
     meanings. It never acts on its own session, on sessions without a database (background \
     workers) or on parallel workers.",
    "The lock-chain filters (--blocked, --blocking, --root-blocker, --blocks, --blocked-for) \
     follow the server's pg_blocking_pids(), computed in the same statement that finds the \
     sessions and only for sessions that wait for a lock. A prepared transaction holding a \
     lock others wait for is reported (its gid, and ROLLBACK PREPARED) but never signalled; \
     when a filter selects one, cancel and terminate exit 3. list --tree shows the chains.",
    "cancel and terminate refuse to act on every session unless --all is given, refuse when \
     more sessions match than --max allows, ask for confirmation on a terminal unless -y is \
     given, and with -n only show what they would do.",
];

const JSON_OUTPUT: &[&str] = &[
    "With --json (or --output json) pgkick prints one JSON array; with --output jsonl one \
     JSON object per line. Each object is one session, with pg_stat_activity's column names:",
];

/// (field, meaning) of each session object.
const JSON_FIELDS: &[(&str, &str)] = &[
    ("pid", "process ID of the backend"),
    ("datname", "database"),
    ("usename", "role"),
    ("application_name", "application_name the client set"),
    (
        "client_addr",
        "client IP address; null for unix-socket sessions",
    ),
    (
        "client_port",
        "client TCP port; -1 for unix-socket sessions",
    ),
    ("backend_start", "when the session connected"),
    (
        "xact_start",
        "when the current transaction started; null outside a transaction",
    ),
    ("query_start", "when the current (or last) query started"),
    ("state_change", "when the state last changed"),
    (
        "wait_event_type",
        "what kind of event the session waits for",
    ),
    ("wait_event", "the event the session waits for"),
    (
        "state",
        "active, idle, idle in transaction, idle in transaction (aborted), fastpath function \
         call or disabled",
    ),
    (
        "backend_type",
        "e.g. client backend (PostgreSQL 10 and later)",
    ),
    (
        "leader_pid",
        "the parallel group leader (PostgreSQL 13 and later)",
    ),
    ("query", "text of the current (or last) query"),
    (
        "blocked_by",
        "the pids this session waits on for a lock, as pg_blocking_pids() reports them \
         (sorted, without duplicates; a parallel group shows as its leader; 0 is a prepared \
         transaction, see blocked_by_prepared); empty when it does not wait; null before \
         PostgreSQL 9.6",
    ),
    (
        "blocking",
        "the pids waiting on this session (the sessions whose blocked_by holds its pid); null \
         before PostgreSQL 9.6",
    ),
    (
        "lock_wait_start",
        "when the session began to wait for its lock: pg_locks.waitstart from PostgreSQL 14, \
         before 14 its query_start (which can be earlier); null when it is not blocked",
    ),
    (
        "blocked_by_prepared",
        "the gids of the prepared transactions it waits on: they are no sessions, cannot be \
         signalled and are ended by ROLLBACK PREPARED (or COMMIT PREPARED) in their database",
    ),
];

const JSON_NOTES: &[&str] = &[
    "Timestamps are RFC 3339 in UTC. A field is null when the server has no value for it: an \
     older server without the column, or a session whose details the server hides from \
     pgkick's role.",
    "cancel and terminate print the same objects with one more field, outcome:",
];

/// Every outcome, in the order the documentation lists them.
const OUTCOMES: [Outcome; 10] = [
    Outcome::Cancelled,
    Outcome::Terminated,
    Outcome::AlreadyGone,
    Outcome::PermissionDenied,
    Outcome::StillPresent,
    Outcome::StillRunning,
    Outcome::NoLongerMatches,
    Outcome::WouldCancel,
    Outcome::WouldTerminate,
    Outcome::WouldBeDenied,
];

/// What an outcome means, for the man page and the README (flag names in backticks). A new
/// outcome fails to compile here until it is documented.
fn outcome_meaning(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Cancelled => {
            "the query was cancelled (with `--cancel-first`: the session no longer matched \
             after the grace period and kept its connection)"
        }
        Outcome::Terminated => "the session was terminated",
        Outcome::AlreadyGone => "the session ended before pgkick could signal it",
        Outcome::PermissionDenied => "pgkick's role may not signal this session",
        Outcome::StillPresent => "terminated, but still there when `--wait` timed out",
        Outcome::StillRunning => {
            "cancelled, but the same query was still running when `--wait` timed out"
        }
        Outcome::NoLongerMatches => {
            "the session matched, but no longer matched the filters once the confirmation \
             prompt was answered (a lock chain that resolved, for one); it was not signalled"
        }
        Outcome::WouldCancel => "dry run (`-n`): the query would be cancelled",
        Outcome::WouldTerminate => "dry run (`-n`): the session would be terminated",
        Outcome::WouldBeDenied => {
            "dry run (`-n`): pgkick's role may not signal this session, by the rule the real \
             run applies (it would be `permission_denied`)"
        }
    }
}

/// (outcome, meaning) for the man page.
fn outcome_definitions() -> Vec<(String, String)> {
    OUTCOMES
        .iter()
        .map(|o| (o.as_str().to_string(), outcome_meaning(*o).replace('`', "")))
        .collect()
}

/// (code, meaning) for the man page.
fn exit_status_definitions() -> Vec<(String, String)> {
    ExitStatus::ALL
        .iter()
        .map(|s| (s.code().to_string(), s.meaning().replace('`', "")))
        .collect()
}

/// A Markdown table with a header row.
fn markdown_table(header: [&str; 2], rows: impl IntoIterator<Item = (String, String)>) -> String {
    let mut table = format!("| {} | {} |\n| --- | --- |\n", header[0], header[1]);
    for (term, text) in rows {
        table.push_str(&format!("| {term} | {text} |\n"));
    }
    table
}

/// The README's outcome table.
fn readme_outcomes() -> String {
    markdown_table(
        ["outcome", "meaning"],
        OUTCOMES
            .iter()
            .map(|o| (format!("`{}`", o.as_str()), outcome_meaning(*o).to_string())),
    )
}

/// The README's exit-status table.
fn readme_exit_status() -> String {
    markdown_table(
        ["code", "meaning"],
        ExitStatus::ALL
            .iter()
            .map(|s| (s.code().to_string(), s.meaning().to_string())),
    )
}

/// The README tables rendered from code, each found as the first table after a line that
/// starts with its marker.
fn readme_tables() -> [(&'static str, String); 2] {
    [
        ("`cancel` and `terminate` add `outcome`", readme_outcomes()),
        ("## Exit status", readme_exit_status()),
    ]
}

/// `readme` with the table after each marker replaced by the rendered one.
fn splice_readme(readme: &str) -> String {
    let mut lines: Vec<String> = readme.lines().map(str::to_string).collect();
    for (marker, table) in readme_tables() {
        let at = lines
            .iter()
            .position(|l| l.starts_with(marker))
            .unwrap_or_else(|| panic!("README.md has no line starting with {marker:?}"));
        let start = at
            + lines[at..]
                .iter()
                .position(|l| l.starts_with('|'))
                .unwrap_or_else(|| panic!("README.md has no table after {marker:?}"));
        let end = start
            + lines[start..]
                .iter()
                .position(|l| !l.starts_with('|'))
                .unwrap_or(lines.len() - start);
        lines.splice(start..end, table.lines().map(str::to_string));
    }
    lines.iter().map(|l| format!("{l}\n")).collect()
}

const HOLDER_NOTES: &[&str] = &[
    "terminate --lock adds, after the sessions, one object for each thing that still keeps a \
     locked database from being dropped, with the fields outcome, datname, pid, backend_type, \
     gid, owner, slot_name, subname and fix (null where they do not apply). Its outcome is one \
     of:",
];

/// Every holder outcome, in the order the man page lists them.
const HOLDER_OUTCOMES: [holders::Kind; 8] = [
    holders::Kind::TemplateDatabase,
    holders::Kind::PreparedTransaction,
    holders::Kind::ReplicationSlot,
    holders::Kind::Subscription,
    holders::Kind::Backend,
    holders::Kind::NotVisible,
    holders::Kind::RolledBack,
    holders::Kind::WouldRollBack,
];

const AUDIT_RECORDS: &[&str] = &[
    "--audit-log writes one JSON object per line, for each session or object acted on, after \
     the server answered. Every record has the fields time, pgkick_version, os_user, host, \
     current_user, session_user, server (host:port/database as pgkick was told), server_addr \
     (null over a unix socket), command, args (passwords in connection strings masked), \
     reason, dry_run, round (--every), session (the session as matched, with the fields \
     above) or object (kind, name, method, prior: the state saved before the first lock, \
     statements), and outcome (the session's outcome or the object's status).",
    "--server-log writes one line per run at level LOG: pgkick: terminated pids ... by role \
     ... (session user ...); reason: .... The reason travels only as a bind parameter.",
];

/// The PGBOUNCER section: what --pgbouncer does, records and adds to the JSON.
const PGBOUNCER: &[&str] = &[
    "--pgbouncer CONNINFO names the admin console of a PgBouncer in front of the server (a \
     conninfo string or URI; libpq conventions and .pgpass apply; the database is always \
     pgbouncer; -h, -p and -U do not apply to it). terminate --lock and lock run PAUSE for each \
     --db database on every pooler before the lock, so its clients wait instead of failing; \
     before each PAUSE pgkick waits up to 2 s for the pooler's server logins to the database \
     to finish (PgBouncer counts a login that PAUSE closes as a failed one, and would then \
     refuse clients after RESUME); PAUSE waits at most --pause-timeout for the transactions \
     in flight, then the server backends of the pooler's active connections to the database \
     are terminated (lock lists them under terminated in its JSON). \
     --pgbouncer-disable adds DISABLE and KILL. If the lock is not recorded (an error, an \
     unknown database on a pooler, SIGINT, SIGTERM) what was paused is resumed.",
    "The lock record names each pooler (its connection string without password) and the \
     action, pause or disable; unlock runs ENABLE (after disable) and RESUME on those poolers \
     and on any --pgbouncer given to it (ENABLE there too when SHOW DATABASES says the \
     database is disabled), and exits 3 when one cannot be reached, with the \
     server side unlocked. Each database's change in the JSON of lock and unlock has poolers: \
     pooler, status (paused, disabled, already_paused, resumed, not_paused, failed) and error.",
    "list --pgbouncer adds pooler to every session: null, or pooler (the connection string), \
     state (the server connection's state in the pooler) and client (addr, port, user, \
     application_name of the client it serves; null when idle in the pool). It joins SHOW \
     SERVERS (remote_pid, link) with SHOW CLIENTS (ptr); application_name is null before \
     PgBouncer 1.18.",
];

/// What a holder outcome means, for the man page. A new kind fails to compile here until it
/// is documented.
fn holder_meaning(kind: holders::Kind) -> &'static str {
    use holders::Kind;
    match kind {
        Kind::PreparedTransaction => {
            "a prepared transaction (gid, owner): ROLLBACK PREPARED in that database, or \
             --rollback-prepared"
        }
        Kind::ReplicationSlot => {
            "an active logical replication slot (slot_name; pid is its walsender)"
        }
        Kind::Subscription => "a subscription defined in the database (subname)",
        Kind::TemplateDatabase => {
            "the database is a template (IS_TEMPLATE true), which DROP DATABASE refuses: ALTER \
             DATABASE ... IS_TEMPLATE false"
        }
        Kind::Backend => {
            "another backend in the database (pid, backend_type): a session the filters did \
             not match, a walsender, a replication or background worker"
        }
        Kind::NotVisible => "a catalog pgkick's role may not read, so it cannot tell what it holds",
        Kind::RolledBack => "a prepared transaction --rollback-prepared rolled back",
        Kind::WouldRollBack => "-n: a prepared transaction --rollback-prepared would roll back",
    }
}

/// (outcome, meaning) of each holder, for the man page.
fn holder_definitions() -> Vec<(&'static str, &'static str)> {
    HOLDER_OUTCOMES
        .iter()
        .map(|k| (k.as_str(), holder_meaning(*k)))
        .collect()
}

const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "PGHOST",
        "host name, IP address or unix socket directory (a comma-separated list is tried in \
         order)",
    ),
    ("PGPORT", "port number (default 5432)"),
    (
        "PGUSER",
        "role name (default: the operating-system user name)",
    ),
    (
        "PGPASSWORD",
        "password (prefer the password file: other users may see the environment)",
    ),
    (
        "PGDATABASE",
        "database to connect to (default postgres); pgkick's filters choose the sessions of \
         every database whatever this is",
    ),
    (
        "PGCONNECT_TIMEOUT",
        "seconds to wait for each host (default 30; 0 waits indefinitely)",
    ),
    ("PGPASSFILE", "the password file (default ~/.pgpass)"),
    ("PGSERVICE", "the connection service to use"),
    (
        "PGSERVICEFILE",
        "the service file (default ~/.pg_service.conf)",
    ),
    (
        "PGSYSCONFDIR",
        "directory holding the system-wide pg_service.conf",
    ),
    (
        "PGAPPNAME",
        "application_name of pgkick's session (default pgkick)",
    ),
    (
        "PGSSLMODE",
        "disable, allow, prefer (default), require, verify-ca or verify-full, as libpq means \
         them: require encrypts but verifies nothing (unless a root certificate file exists), \
         verify-ca also checks the certificate chain, verify-full also the host name",
    ),
    (
        "PGSSLROOTCERT",
        "file of trusted root certificates (default ~/.postgresql/root.crt), or system for the \
         operating system's",
    ),
    (
        "PGSSLCERT",
        "client certificate (default ~/.postgresql/postgresql.crt)",
    ),
    (
        "PGSSLKEY",
        "its private key (default ~/.postgresql/postgresql.key)",
    ),
    (
        "NO_COLOR",
        "when set to a non-empty value, no colours in the output",
    ),
    (
        "PGKICK_AUDIT_LOG",
        "the --audit-log destination (a file, syslog or -), so that a cron line stays short",
    ),
    ("PGKICK_AUDIT_FACILITY", "the --audit-facility"),
    (
        "PGKICK_SYSLOG_SOCKET",
        "the syslog socket --audit-log syslog writes to, instead of /dev/log",
    ),
];

const ENVIRONMENT_NOTE: &str = "The other variables libpq reads (PGOPTIONS, PGSSLNEGOTIATION, \
     PGTARGETSESSIONATTRS, ...) are honoured too. Options given with -d, -h, -p and -U take \
     precedence over the service file, which takes precedence over the environment.";

const FILES: &[(&str, &str)] = &[
    (
        "~/.pgpass",
        "passwords, one hostname:port:database:username:password line each; ignored with a \
         warning unless its permissions are u=rw (0600) or less",
    ),
    (
        "~/.pg_service.conf",
        "connection services: [name] sections of keyword=value lines",
    ),
    (
        "$PGSYSCONFDIR/pg_service.conf",
        "system-wide connection services (default directory /etc/postgresql-common)",
    ),
    (
        "~/.postgresql/root.crt",
        "trusted root certificates for verifying the server",
    ),
    (
        "~/.postgresql/postgresql.crt, ~/.postgresql/postgresql.key",
        "client certificate and key, sent when the certificate file exists; the key must not \
         be readable by group or others",
    ),
];

/// The completion script for `shell`.
pub fn completion(shell: Shell) -> String {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "pgkick", &mut out);
    String::from_utf8(out).expect("completion scripts are UTF-8")
}

/// Whether `script`, clap_complete's script for `shell`, offers `sub` as a subcommand of
/// pgkick: the line each shell's generator writes for it, not a mere substring (`--list` and
/// `unlock` contain `list` and `lock`).
#[cfg(test)]
fn offers_subcommand(shell: Shell, script: &str, sub: &str) -> bool {
    let line = match shell {
        Shell::Bash => format!("pgkick,{sub})"),
        Shell::Zsh => format!("'{sub}:"),
        Shell::Fish => format!("__fish_pgkick_needs_command\" -f -a \"{sub}\""),
        Shell::Elvish => format!("cand {sub} '"),
        Shell::PowerShell => format!("[CompletionResult]::new('{sub}', '{sub}'"),
        _ => unreachable!("no completion file for {shell}"),
    };
    script.contains(&line)
}

/// Roff text of a part clap_mangen renders, with roff's apostrophe preamble removed (the page
/// has it once, at the top).
fn part(render: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> String {
    let mut out = Vec::new();
    render(&mut out).expect("rendering to memory cannot fail");
    let text = String::from_utf8(out).expect("roff output is UTF-8");
    text.lines()
        .filter(|l| !l.starts_with(".ie \\n(.g .ds Aq") && !l.starts_with(".el .ds Aq"))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn roff_part(roff: &Roff) -> String {
    part(|w| roff.to_writer(w))
}

/// `.SH` sections of an options rendering, split: (heading as clap_mangen wrote it, body).
fn option_sections(man: &Man) -> Vec<(String, String)> {
    let text = part(|w| man.render_options_section(w));
    let mut sections: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(heading) = line.strip_prefix(".SH ") {
            sections.push((heading.trim_matches('"').to_string(), String::new()));
        } else if let Some((_, body)) = sections.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    sections
}

/// The help heading whose upper-case form clap_mangen printed, or `None` for OPTIONS.
fn heading_of<'a>(cmd: &'a Command, printed: &str) -> Option<&'a str> {
    cmd.get_arguments()
        .filter_map(|a| a.get_help_heading())
        .find(|h| h.to_uppercase() == printed)
}

/// A definition list: `.TP`, the term in bold, its description.
fn definitions(roff: &mut Roff, items: &[(impl AsRef<str>, impl AsRef<str>)]) {
    for (term, text) in items {
        roff.control("TP", []);
        roff.text([bold(term.as_ref())]);
        roff.text([roman(text.as_ref())]);
    }
}

fn paragraphs(roff: &mut Roff, texts: &[&str]) {
    for (i, text) in texts.iter().enumerate() {
        if i > 0 {
            roff.control("PP", []);
        }
        roff.text([roman(*text)]);
    }
}

/// A subcommand as its own page would see it: named `pgkick NAME`, without clap's automatic
/// help flag (pgkick's --help is global).
fn subcommand(root: &Command, name: &str) -> Command {
    root.find_subcommand(name)
        .unwrap_or_else(|| panic!("no subcommand {name}"))
        .clone()
        .bin_name(format!("pgkick {name}"))
        .disable_help_flag(true)
}

/// The whole man page: pgkick's options, a section per subcommand with its options, one
/// FILTERS section, then JSON OUTPUT, ENVIRONMENT, FILES and EXIT STATUS.
pub fn man_page() -> String {
    let root = Cli::command();
    let man = Man::new(root.clone()).title("PGKICK");
    // roff's definition of \*(Aq, which its text uses for apostrophes; once, at the top.
    let mut page = String::from(".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n");
    page.push_str(&part(|w| man.render_title(w)));
    page.push_str(&part(|w| man.render_name_section(w)));
    page.push_str(&part(|w| man.render_synopsis_section(w)));

    let mut roff = Roff::new();
    roff.control("SH", ["DESCRIPTION"]);
    paragraphs(&mut roff, DESCRIPTION);
    page.push_str(&roff_part(&roff));

    for (heading, body) in option_sections(&man) {
        page.push_str(&roff_part(Roff::new().control("SH", [heading.as_str()])));
        page.push_str(&body);
    }

    let mut roff = Roff::new();
    roff.control("SH", ["COMMANDS"]);
    let names: Vec<String> = root
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    for sub in root.get_subcommands() {
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        roff.control("TP", []);
        roff.text([bold(format!("pgkick {}", sub.get_name()))]);
        roff.text([roman(about)]);
    }
    roff.control("PP", []);
    roff.text([roman(
        "Each is described in its own section below. Connection and output options may \
         be given before or after the command name.",
    )]);
    page.push_str(&roff_part(&roff));

    let mut filters: Option<(String, String)> = None;
    for name in &names {
        let sub = subcommand(&root, name);
        let sub_man = Man::new(sub.clone());
        let title = format!("PGKICK {}", name.to_uppercase());
        let mut roff = Roff::new();
        roff.control("SH", [title.as_str()]);
        page.push_str(&roff_part(&roff));
        // clap_mangen's synopsis, without its SYNOPSIS heading.
        page.push_str(
            &part(|w| sub_man.render_synopsis_section(w))
                .lines()
                .filter(|l| !l.starts_with(".SH"))
                .map(|l| format!("{l}\n"))
                .collect::<String>(),
        );
        let mut roff = Roff::new();
        roff.control("PP", []);
        let about = sub
            .get_long_about()
            .or_else(|| sub.get_about())
            .map(|a| a.to_string())
            .unwrap_or_default();
        roff.text([roman(about)]);
        page.push_str(&roff_part(&roff));
        for (printed, body) in option_sections(&sub_man) {
            let heading = heading_of(&sub, &printed).unwrap_or("Options");
            if heading.starts_with(FILTERS_HEADING_PREFIX) {
                let mut roff = Roff::new();
                roff.control("PP", []);
                roff.text([
                    roman("Takes the filters described under "),
                    bold("FILTERS"),
                    roman("."),
                ]);
                page.push_str(&roff_part(&roff));
                filters.get_or_insert((heading.to_string(), body));
                continue;
            }
            page.push_str(&roff_part(Roff::new().control("SS", [heading])));
            page.push_str(&body);
        }
    }

    let (filters_heading, filters_body) =
        filters.expect("list, cancel and terminate take the filters");
    let mut roff = Roff::new();
    roff.control("SH", ["FILTERS"]);
    roff.text([roman(format!(
        "{filters_heading}. Durations are written like 90s, 10m, 1h30m or 2days; a bare \
         number means seconds."
    ))]);
    page.push_str(&roff_part(&roff));
    page.push_str(&filters_body);

    let mut roff = Roff::new();
    roff.control("SH", ["JSON OUTPUT"]);
    paragraphs(&mut roff, JSON_OUTPUT);
    definitions(&mut roff, JSON_FIELDS);
    roff.control("PP", []);
    paragraphs(&mut roff, JSON_NOTES);
    definitions(&mut roff, &outcome_definitions());
    roff.control("PP", []);
    paragraphs(&mut roff, HOLDER_NOTES);
    definitions(&mut roff, &holder_definitions());

    roff.control("SH", ["AUDIT RECORDS"]);
    paragraphs(&mut roff, AUDIT_RECORDS);

    roff.control("SH", ["PGBOUNCER"]);
    paragraphs(&mut roff, PGBOUNCER);

    roff.control("SH", ["ENVIRONMENT"]);
    definitions(&mut roff, ENVIRONMENT);
    roff.control("PP", []);
    roff.text([roman(ENVIRONMENT_NOTE)]);

    roff.control("SH", ["FILES"]);
    definitions(&mut roff, FILES);

    roff.control("SH", ["EXIT STATUS"]);
    definitions(&mut roff, &exit_status_definitions());

    roff.control("SH", ["SEE ALSO"]);
    let see_also: Vec<Inline> = vec![
        bold("psql"),
        roman("(1), "),
        bold("pg_terminate_backend"),
        roman(" and "),
        bold("pg_stat_activity"),
        roman(" in the PostgreSQL documentation, "),
        italic("https://www.postgresql.org/docs/current/libpq-envars.html"),
    ];
    roff.text(see_also);
    page.push_str(&roff_part(&roff));
    page
}

/// Every generated file: (path relative to the repository root, contents).
pub fn generated_files() -> Vec<(&'static str, String)> {
    let mut files: Vec<(&'static str, String)> = COMPLETIONS
        .iter()
        .map(|(shell, path)| (*path, completion(*shell)))
        .collect();
    files.push((MAN_PAGE, man_page()));
    let readme = std::fs::read_to_string(repo_root().join(README)).expect("read README.md");
    files.push((README, splice_readme(&readme)));
    files
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Writes `files` under `root` when updating; otherwise lists the ones whose committed copy
/// differs or is missing.
fn check_or_update(root: &Path, files: &[(&str, String)], update: bool) -> Vec<String> {
    let mut stale = Vec::new();
    for (path, contents) in files {
        let full = root.join(path);
        if update {
            if let Some(dir) = full.parent() {
                std::fs::create_dir_all(dir)
                    .unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
            }
            std::fs::write(&full, contents)
                .unwrap_or_else(|e| panic!("write {}: {e}", full.display()));
        } else if std::fs::read_to_string(&full).ok().as_deref() != Some(contents.as_str()) {
            stale.push(path.to_string());
        }
    }
    stale
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Tabular;

    /// What contributors read: how to build, test and package, and the design.
    const CONTRIBUTING: &str = "CONTRIBUTING.md";

    /// How many lines of the README a first screen shows: what pgkick is, how to install it
    /// and its first commands must be there.
    const FIRST_SCREEN_LINES: usize = 60;

    #[test]
    fn docs_committed_files_match_the_clap_definitions() {
        let update = std::env::var_os(UPDATE_VAR).is_some_and(|v| !v.is_empty() && v != "0");
        let stale = check_or_update(&repo_root(), &generated_files(), update);
        assert!(
            stale.is_empty(),
            "{} differ from the clap definitions and the contracts in code: run \
             {UPDATE_VAR}=1 cargo test docs to regenerate",
            stale.join(", ")
        );
    }

    #[test]
    fn docs_man_page_has_every_subcommand_filter_and_section() {
        let page = man_page();
        for section in [
            "NAME",
            "SYNOPSIS",
            "DESCRIPTION",
            "COMMANDS",
            "FILTERS",
            "\"JSON OUTPUT\"",
            "PGBOUNCER",
            "ENVIRONMENT",
            "FILES",
            "\"EXIT STATUS\"",
        ] {
            assert!(page.contains(&format!("\n.SH {section}\n")), "{section}");
        }
        let root = Cli::command();
        for sub in root.get_subcommands() {
            let title = format!(".SH \"PGKICK {}\"", sub.get_name().to_uppercase());
            assert!(page.contains(&title), "{title}");
            for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
                if let Some(long) = arg.get_long() {
                    // roff escapes dashes.
                    let flag = format!("\\-\\-{}", long.replace('-', "\\-"));
                    assert!(page.contains(&flag), "{} {flag}", sub.get_name());
                }
            }
        }
        for arg in root.get_arguments() {
            if let Some(long) = arg.get_long() {
                let flag = format!("\\-\\-{}", long.replace('-', "\\-"));
                assert!(page.contains(&flag), "{flag}");
            }
        }
        for (field, _) in JSON_FIELDS {
            assert!(page.contains(field), "{field}");
        }
        for var in ["PGSSLROOTCERT", "PGSERVICEFILE", "NO_COLOR", "~/.pgpass"] {
            assert!(page.contains(var), "{var}");
        }
        // One page: no references to per-subcommand pages.
        assert!(!page.contains("pgkick\\-list(1)"));
    }

    /// The subcommands a user types (clap's own `help` included), from the clap definitions.
    fn subcommand_names(root: &Command) -> Vec<String> {
        root.get_subcommands()
            .filter(|s| !s.is_hide_set())
            .map(|s| s.get_name().to_string())
            .collect()
    }

    /// pgkick's definitions without the subcommand `name`.
    fn without_subcommand(name: &str) -> Command {
        let root = Cli::command();
        let others: Vec<Command> = root
            .get_subcommands()
            .filter(|s| s.get_name() != name)
            .cloned()
            .collect();
        Command::new("pgkick")
            .disable_help_flag(true)
            .args(root.get_arguments().cloned())
            .subcommands(others)
    }

    #[test]
    fn docs_every_shell_completes_every_subcommand() {
        let root = Cli::command();
        let names = subcommand_names(&root);
        assert!(names.iter().any(|n| n == "conninfo"), "{names:?}");
        for (shell, _) in COMPLETIONS {
            let script = completion(shell);
            for sub in &names {
                assert!(
                    offers_subcommand(shell, &script, sub),
                    "{shell} lacks {sub}"
                );
            }
            assert!(script.contains("cancel-first"), "{shell}");
        }
    }

    /// The check above is not fooled by `--list`, `unlock` or a description: a script made
    /// without one subcommand fails it for that subcommand.
    #[test]
    fn docs_a_missing_subcommand_is_noticed() {
        for sub in subcommand_names(&Cli::command()) {
            if sub == "help" {
                continue;
            }
            for (shell, _) in COMPLETIONS {
                let mut cmd = without_subcommand(&sub);
                let mut out = Vec::new();
                clap_complete::generate(shell, &mut cmd, "pgkick", &mut out);
                let script = String::from_utf8(out).unwrap();
                assert!(
                    !offers_subcommand(shell, &script, &sub),
                    "{shell} still seems to offer {sub} without it"
                );
            }
        }
    }
    /// The keys `value` serializes to, in order.
    fn serialized_keys(value: &impl serde::Serialize) -> Vec<String> {
        let text = serde_json::to_string(value).unwrap();
        let object: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&text).unwrap();
        // The map is sorted by key; the text keeps the struct's order.
        let mut keys: Vec<String> = object.keys().cloned().collect();
        keys.sort_by_key(|k| text.find(&format!("\"{k}\":")));
        keys
    }

    fn session_keys() -> Vec<String> {
        serialized_keys(&Session::default())
    }

    #[test]
    fn docs_the_man_page_lists_every_json_field_of_a_session() {
        let documented: Vec<&str> = JSON_FIELDS.iter().map(|(f, _)| *f).collect();
        assert_eq!(documented, session_keys());
    }

    #[test]
    fn docs_the_readme_lists_every_json_field_of_a_session() {
        let documented = readme_first_column("### JSON schema");
        assert_eq!(documented, session_keys(), "README.md's JSON schema table");
    }

    /// The backticked words of the README from the line starting with `start` up to the
    /// first line after it that ends a sentence, flags left out.
    fn readme_names_in(start: &str) -> Vec<String> {
        let readme = std::fs::read_to_string(repo_root().join(README)).unwrap();
        let from = readme
            .find(start)
            .unwrap_or_else(|| panic!("README.md has no {start:?}"));
        let text = &readme[from + start.len()..];
        let sentence = &text[..text.find(". ").expect("a sentence")];
        sentence
            .split('`')
            .skip(1)
            .step_by(2)
            .filter(|w| !w.starts_with('-'))
            .map(str::to_string)
            .collect()
    }

    /// The first column of the README table that follows `marker`, split at commas.
    fn readme_first_column(marker: &str) -> Vec<String> {
        let readme = std::fs::read_to_string(repo_root().join(README)).unwrap();
        let after = readme
            .split_once(marker)
            .unwrap_or_else(|| panic!("README.md has no {marker:?}"))
            .1;
        after
            .lines()
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .skip(2)
            .flat_map(|row| {
                let first = row.split('|').nth(1).unwrap_or_default().to_string();
                first
                    .split(',')
                    .map(|f| f.trim().trim_matches('`').to_string())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn docs_the_readme_names_every_holder_outcome_and_field() {
        let mut named = readme_names_in("told apart by `outcome`:");
        named.sort();
        let mut kinds: Vec<&str> = HOLDER_OUTCOMES.iter().map(|k| k.as_str()).collect();
        kinds.sort();
        assert_eq!(named, kinds, "README.md's holder outcomes");

        // The fields as the man page lists them, which must be the ones a Holder serializes.
        let listed = HOLDER_NOTES[0]
            .split_once("with the fields ")
            .and_then(|(_, rest)| rest.split_once(" (null"))
            .expect("the man page lists the holder fields")
            .0;
        let keys: Vec<String> = listed
            .replace(" and ", ", ")
            .split(", ")
            .map(str::to_string)
            .collect();
        assert_eq!(
            readme_first_column("Every holder object has all of these fields"),
            keys,
            "README.md's holder fields and the man page's"
        );
        let serialized = serde_json::to_value(holders::Holder::default()).unwrap();
        let mut fields: Vec<String> = serialized.as_object().unwrap().keys().cloned().collect();
        let mut sorted = keys.clone();
        fields.sort();
        sorted.sort();
        assert_eq!(sorted, fields, "the man page's holder fields and Holder's");
    }

    /// The column headers of the session table (list; cancel and terminate put `outcome`
    /// before them).
    fn table_columns() -> Vec<String> {
        <Session as Tabular>::headers()
            .into_iter()
            .map(str::to_string)
            .collect()
    }

    /// The column names `list --help` describes: the items of "The table's columns: a; b (...);
    /// ...", each the words before its explanation in parentheses.
    fn help_columns(help: &str) -> Vec<String> {
        let help = help.split_whitespace().collect::<Vec<_>>().join(" ");
        let start = "The table's columns: ";
        let from = help
            .find(start)
            .unwrap_or_else(|| panic!("list --help has no {start:?}:\n{help}"));
        let mut items = Vec::new();
        let (mut depth, mut item) = (0, String::new());
        let mut chars = help[from + start.len()..].chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                ';' if depth == 0 => {
                    items.push(std::mem::take(&mut item));
                    continue;
                }
                '.' if depth == 0 && chars.peek().is_none_or(|n| *n == ' ') => break,
                _ => {}
            }
            item.push(c);
        }
        items.push(item);
        items
            .iter()
            .map(|i| i.split(" (").next().unwrap_or_default().trim().to_string())
            .collect()
    }

    #[test]
    fn docs_the_table_columns_are_described_in_the_readme_and_list_help() {
        let columns = table_columns();
        assert!(columns.iter().any(|c| c == "lock chain"), "{columns:?}");
        assert_eq!(
            readme_first_column("### Table columns"),
            columns,
            "README.md's table columns and src/output/table.rs's headers"
        );
        let mut cli = Cli::command();
        let help = cli
            .find_subcommand_mut("list")
            .expect("a list subcommand")
            .render_long_help()
            .to_string();
        assert_eq!(
            help_columns(&help),
            columns,
            "the columns list --help describes (src/cli.rs) and src/output/table.rs's headers"
        );
    }

    #[test]
    fn docs_help_columns_are_read_up_to_the_end_of_their_sentence() {
        let help = "List\n\nThe table's columns: pid; state (a; b.c); lock\n  chain (`by 1`). \
                    cancel and terminate";
        assert_eq!(help_columns(help), ["pid", "state", "lock chain"]);
    }

    /// The lines of a Markdown file outside fenced code blocks, with their line numbers (from
    /// 1), and whether each is inside a fence.
    fn markdown_lines(text: &str) -> Vec<(usize, &str, bool)> {
        let mut fenced = false;
        text.lines()
            .enumerate()
            .map(|(i, line)| {
                let fence = line.starts_with("```");
                if fence {
                    fenced = !fenced;
                }
                (i + 1, line, fenced || fence)
            })
            .collect()
    }

    /// (level, text) of each heading outside code blocks.
    fn headings(text: &str) -> Vec<(usize, String)> {
        markdown_lines(text)
            .into_iter()
            .filter(|(_, _, fenced)| !fenced)
            .filter_map(|(_, line, _)| {
                let level = line.chars().take_while(|c| *c == '#').count();
                let rest = line[level..].strip_prefix(' ')?;
                (level > 0).then(|| (level, rest.trim().to_string()))
            })
            .collect()
    }

    /// The anchor GitHub gives a heading: lower case, punctuation but `-` and `_` dropped,
    /// spaces as `-`.
    fn anchor(heading: &str) -> String {
        heading
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect()
    }

    /// Every `](#anchor)` link of a Markdown file outside code blocks.
    fn local_links(text: &str) -> Vec<String> {
        let prose: String = markdown_lines(text)
            .into_iter()
            .filter(|(_, _, fenced)| !fenced)
            .map(|(_, line, _)| format!("{line}\n"))
            .collect();
        prose
            .split("](#")
            .skip(1)
            .map(|rest| rest.split(')').next().unwrap_or_default().to_string())
            .collect()
    }

    fn read(path: &str) -> String {
        std::fs::read_to_string(repo_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn docs_anchors_are_made_as_github_makes_them() {
        assert_eq!(
            anchor("Running without superuser (RDS, Cloud SQL, Azure, ...)"),
            "running-without-superuser-rds-cloud-sql-azure-"
        );
        assert_eq!(
            anchor("What is reported as `permission_denied`"),
            "what-is-reported-as-permission_denied"
        );
        assert_eq!(
            anchor("What `scripts/test` installs or creates on the machine"),
            "what-scriptstest-installs-or-creates-on-the-machine"
        );
    }

    /// The README has a table of contents that lists every section after it, and every link
    /// to a heading, in the README and in CONTRIBUTING.md, leads to one.
    #[test]
    fn docs_the_readme_has_a_table_of_contents_whose_links_lead_to_headings() {
        let readme = read(README);
        let toc: Vec<String> = readme
            .split_once("\n## Contents\n")
            .expect("README.md has a ## Contents section")
            .1
            .lines()
            .skip_while(|l| l.is_empty())
            .take_while(|l| l.trim_start().starts_with("- ["))
            .map(|l| l.split("](#").nth(1).and_then(|r| r.strip_suffix(')')))
            .map(|a| a.expect("a table of contents entry is a link to a heading"))
            .map(str::to_string)
            .collect();
        let all = headings(&readme);
        let after_contents = all
            .iter()
            .skip_while(|(_, h)| h != "Contents")
            .skip(1)
            .filter(|(level, _)| *level == 2)
            .map(|(_, h)| anchor(h));
        for section in after_contents {
            assert!(
                toc.contains(&section),
                "the table of contents lacks {section}"
            );
        }
        for file in [README, CONTRIBUTING] {
            let text = read(file);
            let anchors: Vec<String> = headings(&text).iter().map(|(_, h)| anchor(h)).collect();
            let links = local_links(&text);
            assert!(!links.is_empty(), "{file} links to none of its headings");
            for link in links {
                assert!(anchors.contains(&link), "{file}: #{link} is no heading");
            }
        }
    }

    /// The first screen says how to install pgkick and shows its first commands; the filter
    /// reference comes before the recipes that use it.
    #[test]
    fn docs_the_readme_shows_pgkick_at_work_on_its_first_screen() {
        let readme = read(README);
        let lines = markdown_lines(&readme);
        let first_command = lines
            .iter()
            .find(|(_, line, fenced)| *fenced && line.starts_with("pgkick "))
            .expect("README.md shows a pgkick command")
            .0;
        assert!(
            first_command <= FIRST_SCREEN_LINES,
            "README.md's first pgkick command is on line {first_command}"
        );
        let screen: String = lines
            .iter()
            .take(FIRST_SCREEN_LINES)
            .map(|(_, line, _)| format!("{line}\n"))
            .collect();
        for needed in [
            "cargo install --locked",
            "\nscripts/demo ",
            "\nscripts/test ",
            "CONTRIBUTING.md",
        ] {
            assert!(
                screen.contains(needed),
                "README.md's first screen lacks {needed:?}"
            );
        }
        let at = |name: &str| {
            headings(&readme)
                .iter()
                .position(|(level, h)| *level == 2 && h == name)
                .unwrap_or_else(|| panic!("README.md has no ## {name}"))
        };
        assert!(at("Contents") < at("Filters"));
        assert!(
            at("Filters") < at("Recipes"),
            "the filters come after the recipes"
        );
    }

    /// Every `.rs` file under `src/`, relative to it, with `/` between directories.
    fn source_files() -> Vec<String> {
        fn walk(dir: &Path, rel: &str, out: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).expect("read a source directory") {
                let entry = entry.expect("a directory entry");
                let name = entry.file_name().to_string_lossy().into_owned();
                let path = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                if entry.path().is_dir() {
                    walk(&entry.path(), &path, out);
                } else if path.ends_with(".rs") {
                    out.push(path);
                }
            }
        }
        let mut files = Vec::new();
        walk(&repo_root().join("src"), "", &mut files);
        files.sort();
        files
    }

    /// CONTRIBUTING.md's module map names every file under `src/`: a top-level file by its
    /// path, a file in a directory by its path or by its name in the directory's entry.
    #[test]
    fn docs_contributing_maps_every_source_file() {
        let contributing = read(CONTRIBUTING);
        let design = contributing
            .split_once("\n## Design\n")
            .expect("CONTRIBUTING.md has a ## Design section")
            .1;
        let map = design
            .split("```")
            .nth(1)
            .expect("the module map, in a code block");
        // An entry is a line that starts with a path, and the lines that continue it.
        let mut entries: Vec<String> = Vec::new();
        for line in map.lines() {
            if line.starts_with("src/") || line.starts_with("tests/") {
                entries.push(line.to_string());
            } else if let Some(last) = entries.last_mut() {
                last.push(' ');
                last.push_str(line.trim());
            }
        }
        let words = |entry: &str| -> Vec<String> {
            entry
                .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.'))
                .map(str::to_string)
                .collect()
        };
        let files = source_files();
        assert!(files.iter().any(|f| f == "ops/list.rs"), "{files:?}");
        for rel in files {
            let named = match rel.rsplit_once('/') {
                None => map.contains(&format!("src/{rel}")),
                Some((dir, file)) => {
                    map.contains(&rel)
                        || entries.iter().any(|e| {
                            e.starts_with(&format!("src/{dir}/"))
                                && words(e).iter().any(|w| w == file)
                        })
                }
            };
            assert!(
                named,
                "CONTRIBUTING.md's module map does not name src/{rel}"
            );
        }
    }

    /// CONTRIBUTING.md says what each script does, so none goes unexplained.
    #[test]
    fn docs_contributing_names_every_script() {
        let contributing = read(CONTRIBUTING);
        let scripts = std::fs::read_dir(repo_root().join("scripts")).expect("scripts/");
        let mut names: Vec<String> = scripts
            .map(|e| e.expect("a directory entry").file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert!(names.iter().any(|n| n == "test"), "{names:?}");
        for name in names {
            assert!(
                contributing.contains(&format!("scripts/{name}")),
                "CONTRIBUTING.md does not name scripts/{name}"
            );
        }
    }

    #[test]
    fn docs_the_readme_tables_are_spliced_in_place() {
        let readme = "# x\n`cancel` and `terminate` add `outcome`, one of:\n\n| old |\n\ntext\n\
                      ## Exit status\n\n| a |\n| b |\nafter\n";
        let spliced = splice_readme(readme);
        assert!(spliced.contains(&format!("one of:\n\n{}\ntext", readme_outcomes())));
        assert!(spliced.contains(&format!(
            "## Exit status\n\n{}after\n",
            readme_exit_status()
        )));
        assert!(
            spliced.contains("| 143 | interrupted by SIGTERM |"),
            "{spliced}"
        );
        assert_eq!(splice_readme(&spliced), spliced);
    }

    #[test]
    fn docs_stale_files_are_reported_and_rewritten() {
        let dir = std::env::temp_dir().join(format!("pgkick-docs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let files = vec![("man/x.1", "new\n".to_string())];
        assert_eq!(check_or_update(&dir, &files, false), vec!["man/x.1"]);
        assert!(check_or_update(&dir, &files, true).is_empty());
        assert!(check_or_update(&dir, &files, false).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
