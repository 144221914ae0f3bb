//! The command-line contract: every flag pgkick accepts, in one place.
//!
//! Only clap types live here; the values they parse into (`State`, `ClientMatch`,
//! `LockMethod`, `AuditDestination`, ...) belong to the modules that use them, and `plan`
//! turns these types into the typed plan that nothing after it sees past. Values are
//! parsed into typed form by clap's value parsers (durations, regexes, addresses, states), so
//! a malformed value is a usage error (exit 2) reported before any connection is made. Help text, man page and completions are all
//! generated from these definitions.

use std::net::IpAddr;
use std::time::Duration;

use clap::{ArgAction, ArgGroup, Args, Parser, Subcommand};

use crate::audit::{AuditDestination, Facility};
use crate::filter::{ClientMatch, State};
use crate::lock::LockMethod;
use crate::output::OutputFormat;

/// List, cancel and terminate PostgreSQL sessions; lock databases and roles against new
/// connections.
#[derive(Debug, Parser)]
#[command(
    name = "pgkick",
    version,
    disable_help_flag = true,
    after_help = crate::error::ExitStatus::help_text(),
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub conn: ConnArgs,

    #[command(flatten)]
    pub fleet: FleetArgs,

    #[command(flatten)]
    pub output: OutputArgs,

    /// Print help (-? as in psql; -h is the host)
    #[arg(short = '?', long, action = ArgAction::Help, global = true)]
    pub help: Option<bool>,

    #[command(subcommand)]
    pub command: Command,
}

/// Connection options, named as psql names them. Accepted before or after the subcommand.
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Connection options")]
pub struct ConnArgs {
    /// Database server host or socket directory [env: PGHOST]
    #[arg(short = 'h', long = "host", global = true, value_name = "HOSTNAME")]
    pub host: Option<String>,

    /// Database server port [env: PGPORT]; a comma-separated list for several hosts
    #[arg(short = 'p', long = "port", global = true, value_name = "PORT",
          value_parser = parse_ports)]
    pub port: Option<String>,

    /// Database user name [env: PGUSER]
    #[arg(short = 'U', long = "username", global = true, value_name = "USERNAME")]
    pub username: Option<String>,

    /// Database to connect to: a name, a key=value conninfo string or a postgresql:// URI
    /// [env: PGDATABASE; default: postgres]. Repeat it to act on several servers at once
    /// (all on the same side of the subcommand): each value is one server, the other options
    /// fill in what it leaves out
    #[arg(short = 'd', long = "dbname", global = true, value_name = "DBNAME")]
    pub dbnames: Vec<String>,

    /// Never prompt for a password
    #[arg(
        short = 'w',
        long = "no-password",
        global = true,
        conflicts_with = "password"
    )]
    pub no_password: bool,

    /// Prompt for a password before connecting
    #[arg(short = 'W', long = "password", global = true)]
    pub password: bool,
}

/// Many servers at once: where the list comes from and how many are handled together.
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Connection options")]
pub struct FleetArgs {
    /// Read servers from FILE (- for standard input), one per line in the forms -d takes;
    /// blank lines and lines starting with # are ignored
    #[arg(long, global = true, value_name = "FILE")]
    pub servers: Option<std::path::PathBuf>,

    /// Act on every host of a multi-host value (host=a,b,c), not only the first that works;
    /// with target_session_attrs, the hosts that do not match are reported as skipped
    #[arg(long, global = true)]
    pub each_host: bool,

    /// Handle at most N servers at a time (1: one after another)
    #[arg(long, global = true, value_name = "N", default_value_t = 32,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: u16,
}

/// How results are printed.
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Output options")]
pub struct OutputArgs {
    /// Output format
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,

    /// Shorthand for --output json
    #[arg(long, global = true)]
    pub json: bool,

    /// Print nothing but errors (the exit status tells the outcome)
    #[arg(short = 'q', long, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the sessions that match the filters
    ///
    /// The table's columns: pid; database; user; application (application_name); client
    /// (address:port, `local` for a unix socket, or with --pgbouncer the pooler's client
    /// behind the connection); state (pg_stat_activity.state, or the backend type of a
    /// backend that is no client); for (how long it has been in that state: since
    /// state_change, or query_start); wait (what it waits for, wait_event_type:wait_event,
    /// e.g. Lock:relation or Client:ClientRead); lock chain (`by 12,13`: the pids whose locks
    /// it waits for, `prepared 'gid'` for a prepared transaction; `blocks 14`: the pids
    /// waiting for it); query (the current query, or the last one when idle; shortened when
    /// the output is no terminal). cancel and terminate print the same columns after an
    /// outcome column. --json prints every column of pg_stat_activity pgkick reads, by name
    List(ListArgs),
    /// Cancel the current query of the matching sessions (pg_cancel_backend)
    Cancel(CancelArgs),
    /// Terminate the matching sessions (pg_terminate_backend)
    Terminate(TerminateArgs),
    /// Keep new connections out of databases, or stop roles from logging in
    Lock(LockArgs),
    /// Undo exactly what `pgkick lock` changed
    Unlock(UnlockArgs),
    /// Show where pgkick would connect and where each setting comes from, without connecting
    ///
    /// Resolves the connection exactly as the other commands do (flags, the -d conninfo string
    /// or URI, the PG* variables, the service file, the defaults) and prints each setting with
    /// its source, the hosts in the order they are tried, and whether a password was found and
    /// where (PGPASSWORD, a .pgpass line, the connection string). The password itself is never
    /// printed. With --json, one object: settings (name, value, source, from, file), hosts,
    /// password (found, source, from, file, line, prompt), warnings and, with --connect,
    /// connection.
    Conninfo(ConninfoArgs),
}

#[derive(Debug, Args)]
pub struct ConninfoArgs {
    /// Also connect, and report the server version, the address used, whether TLS is in use
    /// and the authenticated user
    #[arg(long)]
    pub connect: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub filter: FilterArgs,

    /// Show the lock chains as an indented tree: each root blocker, then the sessions waiting
    /// on it with how long they have waited (table output only)
    #[arg(long, help_heading = "Output options")]
    pub tree: bool,

    #[command(flatten)]
    pub poolers: PoolerArgs,
}

#[derive(Debug, Args)]
pub struct CancelArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    #[command(flatten)]
    pub guard: GuardArgs,
    #[command(flatten)]
    pub wait: WaitArgs,
    #[command(flatten)]
    pub watch: WatchArgs,
    #[command(flatten)]
    pub audit: AuditArgs,
}

#[derive(Debug, Args)]
pub struct TerminateArgs {
    #[command(flatten)]
    pub filter: FilterArgs,
    #[command(flatten)]
    pub guard: GuardArgs,
    #[command(flatten)]
    pub wait: WaitArgs,
    #[command(flatten)]
    pub watch: WatchArgs,
    #[command(flatten)]
    pub audit: AuditArgs,

    /// Cancel the sessions' queries first, wait --grace, then terminate only the sessions
    /// that still match the filters
    #[arg(long, help_heading = "Action options")]
    pub cancel_first: bool,

    /// How long --cancel-first waits between cancel and terminate
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "5s",
          requires = "cancel_first", help_heading = "Action options")]
    pub grace: Duration,

    /// Lock the --db databases against new connections before terminating their sessions;
    /// then report everything else that keeps DROP DATABASE from succeeding (prepared
    /// transactions, active logical slots, subscriptions, other backends): exit 0 only when
    /// nothing is left
    #[arg(
        long,
        requires = "db",
        conflicts_with = "every",
        help_heading = "Action options"
    )]
    pub lock: bool,

    /// With --lock: roll back the prepared transactions of the locked databases (each in its
    /// own database, through a connection opened before the lock; into a database pgkick's
    /// lock keeps closed already, by opening it for that connection alone), so that DROP
    /// DATABASE can succeed; without it they are only reported
    #[arg(long, requires = "lock", help_heading = "Action options")]
    pub rollback_prepared: bool,

    /// How --lock keeps new connections out
    #[arg(long, value_enum, default_value_t = LockMethod::AllowConnections, requires = "lock",
          help_heading = "Action options")]
    pub method: LockMethod,

    /// Give up a lock whose DDL waits this long behind other transactions
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10s",
          help_heading = "Action options")]
    pub lock_timeout: Duration,

    #[command(flatten)]
    pub pause: PauseArgs,
}

/// `--pgbouncer` where pgkick only reads the poolers or resumes them (list, unlock).
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "PgBouncer options")]
pub struct PoolerArgs {
    /// A PgBouncer in front of the server, as a conninfo string or URI for its admin console
    /// (database pgbouncer; libpq conventions, .pgpass included); repeat for each pooler.
    /// list: each server session of a pooler gains a `pooler` object (its client). unlock:
    /// RESUME the databases there (undoing what the lock record says was done on the same
    /// host, port and user); pgkick never connects to a pooler the record alone names, so a
    /// recorded pooler not given here stays paused (exit 3, with the command that resumes it)
    #[arg(long = "pgbouncer", value_name = "CONNINFO")]
    pub pgbouncer: Vec<String>,
}

/// `--pgbouncer` where pgkick pauses the databases on the poolers before locking them
/// (terminate --lock, lock).
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "PgBouncer options")]
pub struct PauseArgs {
    /// A PgBouncer in front of the server, as a conninfo string or URI for its admin console
    /// (database pgbouncer; libpq conventions, .pgpass included); repeat for each pooler.
    /// PAUSE the --db databases there before the lock, so their clients wait instead of
    /// failing; the lock records it and unlock resumes them
    #[arg(long = "pgbouncer", value_name = "CONNINFO")]
    pub pgbouncer: Vec<String>,

    /// How long PAUSE may wait for the transactions in flight; then the server backends that
    /// keep it from completing are terminated (keep it below PgBouncer's query_wait_timeout,
    /// 120s by default, or the queued clients fail)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10s",
          requires = "pgbouncer")]
    pub pause_timeout: Duration,

    /// After the pause, also DISABLE and KILL the databases on the poolers: their clients are
    /// refused at once instead of waiting (the drop workflow); unlock runs ENABLE and RESUME
    #[arg(long, requires = "pgbouncer")]
    pub pgbouncer_disable: bool,
}

/// Options that protect against acting on more than intended.
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Action options")]
pub struct GuardArgs {
    /// Act on every session when no filter is given (otherwise refused, exit 4)
    #[arg(long)]
    pub all: bool,

    /// Refuse (exit 4, nothing signalled) when more than N sessions match
    #[arg(long, value_name = "N")]
    pub max: Option<usize>,

    /// Do not ask for confirmation on a terminal
    #[arg(short = 'y', long)]
    pub yes: bool,

    /// Show the matched sessions and the SQL that would run; change nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Action options")]
pub struct WaitArgs {
    /// Wait until the signalled sessions are gone (terminate) or their queries stopped (cancel)
    #[arg(long)]
    pub wait: bool,

    /// How long --wait waits before reporting the sessions still there
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "30s")]
    pub wait_timeout: Duration,
}

/// --every: the watch mode of cancel and terminate.
#[derive(Debug, Args)]
#[command(next_help_heading = "Watch options")]
pub struct WatchArgs {
    /// Run the same match-and-act round every DURATION until SIGINT or SIGTERM (which end it
    /// after the current round; SIGHUP is ignored). Each round matches afresh, prints its own
    /// results and writes its own audit records; the guards apply to each round and nothing
    /// is ever asked. A round that fails (e.g. a lost connection) is reported and retried
    /// after 1s, 2s, 4s, ... up to DURATION. Exit 0 when every round succeeded, otherwise the
    /// highest status a round had
    #[arg(long, value_name = "DURATION", value_parser = parse_period)]
    pub every: Option<Duration>,

    /// With --every: stop after N rounds
    #[arg(long, value_name = "N", requires = "every",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub rounds: Option<u64>,
}

/// Accountability: why pgkick acted, and where the record of it goes.
#[derive(Debug, Args, Clone)]
#[command(next_help_heading = "Audit options")]
pub struct AuditArgs {
    /// Why this is done (e.g. a ticket number): written into every audit record and the
    /// --server-log line; sent to the server only as a bind parameter, never as SQL text
    #[arg(long, value_name = "TEXT", value_parser = parse_reason)]
    pub reason: Option<String>,

    /// Append one JSON line per session or object acted on, after the server answered: to a
    /// file, to `syslog` (the local syslog socket, /dev/log) or to `-` (stderr). The file must
    /// be a regular file (no symlink, FIFO or device) owned by the user running pgkick, not
    /// writable by group or others nor readable by others (0600 or 0640), in a directory of
    /// that user or root that no one else can write unless it has the sticky bit (like /tmp);
    /// a missing one is created with mode 0600. Each line is one atomic append, so concurrent
    /// runs never interleave. pgkick acts on nothing (exit 1) when it cannot write there or
    /// refuses the file, and says what to fix
    #[arg(long, value_name = "FILE|syslog|-", env = "PGKICK_AUDIT_LOG",
          value_parser = parse_audit_destination)]
    pub audit_log: Option<AuditDestination>,

    /// The syslog facility of --audit-log syslog
    #[arg(long, value_enum, value_name = "FACILITY", default_value_t = Facility::Authpriv,
          env = "PGKICK_AUDIT_FACILITY")]
    pub audit_facility: Facility,

    /// With --dry-run: write the records too, marked "dry_run": true (otherwise a dry run
    /// writes none)
    #[arg(long, requires = "dry_run")]
    pub audit_dry_run: bool,

    /// Also leave one LOG line per run in the server's log, next to its "terminating
    /// connection" lines: pgkick, the role, the reason and the pids ended (or the objects
    /// locked). When the role may not, pgkick says so once and goes on
    #[arg(long)]
    pub server_log: bool,
}

/// A -p value: a port, or libpq's comma-separated list of them (an empty entry means the
/// default). Checked here so that a typo is a usage error before anything connects.
fn parse_ports(s: &str) -> Result<String, String> {
    for port in s.split(',') {
        let port = port.trim();
        if port.is_empty() {
            continue;
        }
        match port.parse::<u32>() {
            Ok(1..=65535) => {}
            _ => {
                return Err(format!(
                    "'{port}' is not a port number: give a number from 1 to 65535 (or a \
                     comma-separated list, one per host)"
                ))
            }
        }
    }
    Ok(s.to_string())
}

fn parse_reason(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        return Err("the reason is empty".into());
    }
    Ok(s.to_string())
}

fn parse_audit_destination(s: &str) -> Result<AuditDestination, String> {
    Ok(match s {
        "" => return Err("the audit destination is empty".into()),
        "syslog" => AuditDestination::Syslog,
        "-" => AuditDestination::Stderr,
        path => AuditDestination::File(path.into()),
    })
}

/// A --every period: a duration above zero.
fn parse_period(s: &str) -> Result<Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err("the period must be longer than zero".into()),
        d => Ok(d),
    }
}

/// Filters shared by list, cancel and terminate. Repeating a flag ORs its values; different
/// flags AND.
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Filters (repeat a flag to OR its values; different flags AND)")]
#[command(group(ArgGroup::new("lock_chain").multiple(true)
    .args(["blocked", "blocking", "root_blocker", "blocks"])))]
pub struct FilterArgs {
    /// Database name
    #[arg(long, value_name = "NAME")]
    pub db: Vec<String>,

    /// User (role) name
    #[arg(long, value_name = "NAME")]
    pub user: Vec<String>,

    /// Exact application_name
    #[arg(long, value_name = "NAME")]
    pub app: Vec<String>,

    /// Client address: an IP address, a CIDR range, or `local` for unix-socket sessions
    #[arg(long, value_name = "ADDR|CIDR|local", value_parser = parse_client)]
    pub client: Vec<ClientMatch>,

    /// Session state, dashed or as pg_stat_activity spells it ("idle in transaction")
    #[arg(long, value_enum, value_name = "STATE")]
    pub state: Vec<State>,

    /// Regular expression (Rust regex syntax) searched for in the query text
    #[arg(long, value_name = "REGEX", value_parser = parse_regex)]
    pub query: Vec<regex::Regex>,

    /// Process ID
    #[arg(long, value_name = "PID")]
    pub pid: Vec<i32>,

    /// Current query started more than DURATION ago (sessions not idle), e.g. 90s, 10m, 1h30m
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub query_age: Vec<Duration>,

    /// Transaction open for longer than DURATION
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub xact_age: Vec<Duration>,

    /// In its current state for longer than DURATION (e.g. idle for an hour)
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub state_age: Vec<Duration>,

    /// Connected for longer than DURATION
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub backend_age: Vec<Duration>,

    /// Backend type, as pg_stat_activity.backend_type names it [default: client backend]
    #[arg(long, value_name = "TYPE")]
    pub backend_type: Vec<String>,

    /// Leave out sessions in this database
    #[arg(long, value_name = "NAME")]
    pub exclude_db: Vec<String>,

    /// Leave out sessions of this user
    #[arg(long, value_name = "NAME")]
    pub exclude_user: Vec<String>,

    /// Leave out sessions with this application_name
    #[arg(long, value_name = "NAME")]
    pub exclude_app: Vec<String>,

    /// Leave out this process ID
    #[arg(long, value_name = "PID")]
    pub exclude_pid: Vec<i32>,

    /// Waiting for a lock that another session (or a prepared transaction) holds or waits
    /// for, as pg_blocking_pids() tells (PostgreSQL 9.6 and later)
    #[arg(long)]
    pub blocked: bool,

    /// Holding up at least one session that waits for a lock
    #[arg(long)]
    pub blocking: bool,

    /// Holding up others while not waiting for a lock itself: the head of a lock chain, the
    /// session to end in a pile-up
    #[arg(long)]
    pub root_blocker: bool,

    /// The sessions PID waits on, directly or through a chain of waiting sessions (never PID
    /// itself)
    #[arg(long, value_name = "PID")]
    pub blocks: Vec<i32>,

    /// With --blocked: waiting for its lock for longer than DURATION; with --blocking,
    /// --root-blocker or --blocks: keeping a session waiting on it directly for longer than
    /// DURATION. The wait starts at pg_locks.waitstart on PostgreSQL 14 and later; before 14
    /// it is taken from the waiting query's query_start, which can overstate it
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "lock_chain")]
    pub blocked_for: Vec<Duration>,
}

#[derive(Debug, Args)]
pub struct LockArgs {
    /// Database to lock (repeatable)
    #[arg(long, value_name = "NAME", required_unless_present_any = ["role", "list"])]
    pub db: Vec<String>,

    /// Role to stop from logging in: ALTER ROLE ... NOLOGIN (repeatable)
    #[arg(long, value_name = "NAME")]
    pub role: Vec<String>,

    /// How databases are locked
    #[arg(long, value_enum, default_value_t = LockMethod::AllowConnections)]
    pub method: LockMethod,

    /// Show the statements; change nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,

    /// Show what pgkick has locked in this cluster: what, how, by whom, since when
    #[arg(long, conflicts_with_all = ["db", "role", "dry_run"])]
    pub list: bool,

    /// Give up when the DDL waits this long behind other transactions
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10s")]
    pub lock_timeout: Duration,

    #[command(flatten)]
    pub audit: AuditArgs,

    #[command(flatten)]
    pub pause: PauseArgs,
}

#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// Database to unlock (repeatable)
    #[arg(long, value_name = "NAME", required_unless_present = "role")]
    pub db: Vec<String>,

    /// Role to unlock (repeatable)
    #[arg(long, value_name = "NAME")]
    pub role: Vec<String>,

    /// Show the statements; change nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,

    /// Give up when the DDL waits this long behind other transactions
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "10s")]
    pub lock_timeout: Duration,

    #[command(flatten)]
    pub audit: AuditArgs,

    #[command(flatten)]
    pub poolers: PoolerArgs,
}

fn parse_client(s: &str) -> Result<ClientMatch, String> {
    if s.eq_ignore_ascii_case("local") {
        return Ok(ClientMatch::Local);
    }
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| format!("'{s}' is not an IP address, a CIDR range or 'local'"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) => match p.parse::<u8>() {
            Ok(n) if n <= max => n,
            _ => return Err(format!("'{p}' is not a prefix length from 0 to {max}")),
        },
    };
    Ok(ClientMatch::Network { addr, prefix })
}

fn parse_regex(s: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(s).map_err(|e| {
        // regex's message is several lines with a caret diagram; keep the last line.
        let msg = e.to_string();
        let last = msg
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        format!(
            "invalid regular expression: {}",
            last.trim().trim_start_matches("error: ")
        )
    })
}

/// Durations such as `90s`, `10m`, `1h30m`, `2 days`; a bare number means seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(t)
        .map_err(|e| format!("'{s}' is not a duration ({e}); use e.g. 90s, 10m, 1h30m"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("45").unwrap(), Duration::from_secs(45));
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-5s").is_err());
    }

    #[test]
    fn clients() {
        assert_eq!(parse_client("local").unwrap(), ClientMatch::Local);
        assert_eq!(
            parse_client("10.0.0.0/8").unwrap().to_inet().unwrap(),
            "10.0.0.0/8"
        );
        assert_eq!(
            parse_client("127.0.0.1").unwrap().to_inet().unwrap(),
            "127.0.0.1/32"
        );
        assert_eq!(parse_client("::1").unwrap().to_inet().unwrap(), "::1/128");
        assert!(parse_client("10.0.0.0/33").is_err());
        assert!(parse_client("example.com").is_err());
    }

    #[test]
    fn global_connection_flags_work_after_the_subcommand() {
        let cli = Cli::try_parse_from(["pgkick", "list", "-h", "/tmp", "-p", "5433", "--db", "x"])
            .unwrap();
        assert_eq!(cli.conn.host.as_deref(), Some("/tmp"));
        assert_eq!(cli.conn.port.as_deref(), Some("5433"));
        let cli = Cli::try_parse_from(["pgkick", "-U", "bob", "terminate", "--db", "x"]).unwrap();
        assert_eq!(cli.conn.username.as_deref(), Some("bob"));
    }

    #[test]
    fn audit_and_watch_flags_are_checked_by_clap() {
        let cli = Cli::try_parse_from([
            "pgkick",
            "terminate",
            "--db",
            "x",
            "--reason",
            "INC-1",
            "--audit-log",
            "syslog",
            "--every",
            "1s",
            "--rounds",
            "3",
        ])
        .unwrap();
        let Command::Terminate(t) = cli.command else {
            panic!("not terminate")
        };
        assert_eq!(t.audit.audit_log, Some(AuditDestination::Syslog));
        assert_eq!(t.audit.audit_facility, Facility::Authpriv);
        assert_eq!(t.watch.every, Some(Duration::from_secs(1)));
        for args in [
            &["pgkick", "cancel", "--db", "x", "--rounds", "3"][..],
            &["pgkick", "cancel", "--db", "x", "--every", "0s"],
            &[
                "pgkick",
                "terminate",
                "--db",
                "x",
                "--lock",
                "--every",
                "5s",
            ],
            &["pgkick", "lock", "--db", "x", "--audit-dry-run"],
            &["pgkick", "unlock", "--db", "x", "--reason", " "],
            &["pgkick", "cancel", "--db", "x", "--audit-log", ""],
        ] {
            let err = Cli::try_parse_from(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn bad_filter_values_are_usage_errors() {
        for args in [
            &["pgkick", "list", "--state", "sleepy"][..],
            &["pgkick", "list", "--query-age", "ten"],
            &["pgkick", "list", "--query", "("],
            &["pgkick", "list", "--pid", "abc"],
        ] {
            let err = Cli::try_parse_from(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }
}
