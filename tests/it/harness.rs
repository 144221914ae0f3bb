//! Throwaway PostgreSQL servers and client sessions for the integration tests.
//!
//! A [`Server`] is a real postmaster started from the PostgreSQL server binaries
//! (`PGKICK_PG_BINDIR`, else the newest `/usr/lib/postgresql/*/bin`) in its own temp dir, with its
//! own unix socket and TCP port. It is started through a small bash watchdog whose stdin is a pipe
//! held by this process: when the pipe closes (the `Server` is dropped, or the test process exits
//! or is killed) the watchdog shuts the postmaster down fast and deletes the dir. Under root the
//! server runs as the OS user `PGKICK_TEST_OS_USER` (default `postgres`).
//!
//! A [`Session`] is a client connection held open in a given state (idle, idle in transaction,
//! active, ...), remembering its backend pid and start time so tests can tell whether pgkick
//! ended it.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::Read;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use postgres::{Client, NoTls};

/// The database superuser every server is initialised with.
pub const SUPERUSER: &str = "postgres";

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// A name no other test in this process (or another test process) uses: `{prefix}_{pid}_{n}`.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = format!("{prefix}_{}_{n}", std::process::id());
    assert!(
        name.len() <= 63,
        "name {name:?} is longer than PostgreSQL's 63-byte limit"
    );
    name
}

/// (datallowconn, datconnlimit, comment) of a database: its lock state and pgkick's record.
pub fn db_state(server: &Server, db: &str) -> (bool, i32, Option<String>) {
    let row = server
        .connect(SUPERUSER)
        .query_one(
            "SELECT datallowconn, datconnlimit, shobj_description(oid, 'pg_database') \
               FROM pg_database WHERE datname::text = $1",
            &[&db],
        )
        .unwrap_or_else(|e| panic!("state of database {db:?}: {e}"));
    (row.get(0), row.get(1), row.get(2))
}

/// A fresh database with a table `t (id int PRIMARY KEY, v int)` holding one row (1, 0): for
/// sessions that block one another on that row.
pub fn table_with_t(server: &Server, prefix: &str) -> String {
    let db = server.create_db(prefix);
    server
        .connect(&db)
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY, v int); INSERT INTO t VALUES (1, 0)")
        .unwrap();
    db
}

/// A prepared transaction (with a unique gid) that updated t's row in `db` (see
/// [`table_with_t`]) and so holds its lock; the gid, and the session that prepared it (idle
/// now, holding nothing: keep it or drop it).
pub fn prepared_update_of_t(server: &Server, db: &str, app: &str) -> (String, Session) {
    let gid = unique_name("pgkick_gid");
    let mut session = Session::idle(server, db, SUPERUSER, app);
    session.execute(&format!(
        "BEGIN; UPDATE t SET v = v + 1 WHERE id = 1; PREPARE TRANSACTION '{gid}'"
    ));
    (gid, session)
}

/// A directory in the temp dir, removed with everything in it when dropped: a HOME with
/// dotfiles, a scratch dir. `{prefix}_{pid}_{n}`, so parallel tests never share one.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let dir = std::env::temp_dir().join(unique_name(prefix));
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        TempDir(dir)
    }

    /// Writes `name` in the dir with permissions `mode`; returns its path.
    pub fn write(&self, name: &str, text: &str, mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.0.join(name);
        fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
        path
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Poll `cond` every 20 ms up to `timeout`; returns whether it became true.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------------------------------------
// Environment: binaries and the OS user
// ---------------------------------------------------------------------------------------------

fn bindir() -> &'static Path {
    static BINDIR: OnceLock<PathBuf> = OnceLock::new();
    BINDIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("PGKICK_PG_BINDIR") {
            let dir = PathBuf::from(dir);
            assert!(
                dir.join("initdb").is_file() && dir.join("postgres").is_file(),
                "PGKICK_PG_BINDIR={} has no initdb/postgres",
                dir.display()
            );
            return dir;
        }
        let mut found: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let major = e.file_name().to_str()?.parse::<u32>().ok()?;
                let bin = e.path().join("bin");
                bin.join("initdb").is_file().then_some((major, bin))
            })
            .collect();
        found.sort();
        match found.pop() {
            Some((_, bin)) => bin,
            None => {
                panic!("no PostgreSQL server binaries: run scripts/test, or set PGKICK_PG_BINDIR")
            }
        }
    })
}

/// The unprivileged OS user the server runs as when the tests run as root.
struct OsUser {
    name: String,
    uid: u32,
    gid: u32,
}

fn os_user() -> Option<&'static OsUser> {
    static USER: OnceLock<Option<OsUser>> = OnceLock::new();
    USER.get_or_init(|| {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return None;
        }
        let name = std::env::var("PGKICK_TEST_OS_USER").unwrap_or_else(|_| "postgres".into());
        let id = |flag: &str| -> Option<u32> {
            let out = Command::new("id").arg(flag).arg(&name).output().ok()?;
            if !out.status.success() {
                return None;
            }
            String::from_utf8_lossy(&out.stdout).trim().parse().ok()
        };
        match (id("-u"), id("-g")) {
            (Some(uid), Some(gid)) => Some(OsUser { name, uid, gid }),
            _ => panic!(
                "the tests run as root, so the server must run as OS user {name:?}, which does \
                 not exist: run scripts/test, or create the OS user {name}"
            ),
        }
    })
    .as_ref()
}

/// A command for a server binary, run as the unprivileged OS user when we are root.
/// `setpriv` execs the program directly, so the child's pid is the program's own.
fn server_command(program: &Path) -> Command {
    let mut cmd = match os_user() {
        None => Command::new(program),
        Some(user) if Path::new("/usr/bin/setpriv").exists() || which("setpriv") => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={}", user.uid))
                .arg(format!("--regid={}", user.gid))
                .arg("--init-groups")
                .arg("--")
                .arg(program);
            c
        }
        Some(user) => {
            let mut c = Command::new("runuser");
            c.args(["-u", &user.name, "--"]).arg(program);
            c
        }
    };
    remove_pg_env(&mut cmd);
    cmd
}

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|p| p.join(program).is_file()))
        .unwrap_or(false)
}

fn remove_pg_env(cmd: &mut Command) {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            cmd.env_remove(key);
        }
    }
}

fn chown_to_os_user(path: &Path) {
    if let Some(user) = os_user() {
        std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid))
            .unwrap_or_else(|e| panic!("chown {} to {}: {e}", path.display(), user.name));
    }
}

fn run_checked(cmd: &mut Command, what: &str) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {cmd:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Delete `pgkick-it-<pid>-*` dirs left in the temp dir by test processes that are gone
/// (only possible if a watchdog itself was killed).
fn sweep_stale_dirs() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("pgkick-it-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// One `initdb` per test process; every server starts from a copy of it.
///
/// initdb runs under a bash reaper that, once initdb has finished, waits for its stdin (a pipe
/// held in a static) to close at process exit and then deletes the template dir.
fn template_data_dir() -> &'static Path {
    static TEMPLATE: OnceLock<(PathBuf, Mutex<Child>)> = OnceLock::new();
    let (data, _reaper) = TEMPLATE.get_or_init(|| {
        let base = std::env::temp_dir().join(format!("pgkick-it-{}-template", std::process::id()));
        sweep_stale_dirs();
        let _ = fs::remove_dir_all(&base);
        fs::create_dir_all(&base).unwrap_or_else(|e| panic!("mkdir {}: {e}", base.display()));
        chown_to_os_user(&base);
        let data = base.join("data");
        let log = base.join("initdb.log");
        let initdb = server_command(&bindir().join("initdb"));
        let mut reaper = Command::new("bash");
        reaper
            .arg("-c")
            .arg(
                r#"trap '' PIPE; base=$1; shift
                "$@" </dev/null >"$base/initdb.log" 2>&1; echo "$?"; exec >/dev/null
                read -r _; rm -rf -- "$base""#,
            )
            .arg("pgkick-it-template")
            .arg(&base)
            .arg(initdb.get_program())
            .args(initdb.get_args())
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                SUPERUSER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0);
        for (key, _) in initdb.get_envs() {
            reaper.env_remove(key);
        }
        let mut reaper = reaper.spawn().expect("cannot start bash");
        let mut status = String::new();
        BufReader::new(reaper.stdout.take().unwrap())
            .read_line(&mut status)
            .expect("read initdb's exit status");
        assert!(
            status.trim() == "0",
            "initdb failed (exit {}):\n{}",
            status.trim(),
            fs::read_to_string(&log).unwrap_or_default()
        );
        (data, Mutex::new(reaper))
    });
    data
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("cannot find a free TCP port")
        .port()
}

fn conf_quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}

fn process_gone(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        // "pid (comm) S ..." — comm may contain spaces, so look after the last ')'.
        Ok(stat) => {
            stat.rsplit(')')
                .next()
                .map(|rest| rest.trim_start().starts_with('Z'))
                != Some(false)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------------------------

/// A throwaway PostgreSQL server. Dropping it shuts it down (fast) and removes its dir.
pub struct Server {
    dir: PathBuf,
    data: PathBuf,
    port: u16,
    postmaster_pid: i32,
    version_num: i32,
    /// The watchdog; its stdin is the pipe that keeps the server alive.
    watchdog: Child,
    keepalive: Option<ChildStdin>,
}

/// Where a new server's data directory comes from.
enum DataSource {
    /// A copy of the initdb template made once per test process.
    Template,
    /// A base backup of a running server, set up to stream from it.
    BaseBackup { sock_dir: PathBuf, port: u16 },
}

enum StartError {
    PortTaken(String),
    Other(String),
}

impl Server {
    /// One server shared by all tests in the process (started on first use). Tests on it must
    /// only touch their own databases/roles (use unique names) and never `--all`.
    pub fn shared() -> &'static Server {
        static SHARED: OnceLock<Server> = OnceLock::new();
        SHARED.get_or_init(Server::start)
    }

    /// A private server (for tests that use --all, shut the server down, change config, etc.).
    pub fn start() -> Server {
        Server::start_with(&[])
    }

    /// A private server with extra `postgresql.conf` settings (they win over the defaults).
    pub fn start_with(conf: &[(&str, &str)]) -> Server {
        Server::start_from(&DataSource::Template, conf)
    }

    /// A physical standby of this server (pg_basebackup -R, streaming), run and cleaned up like
    /// any other; it is ready once it accepts connections. `None` when this build of the
    /// server binaries has no pg_basebackup (the npm builds).
    pub fn start_standby(&self) -> Option<Server> {
        bindir().join("pg_basebackup").is_file().then(|| {
            Server::start_from(
                &DataSource::BaseBackup {
                    sock_dir: self.dir.clone(),
                    port: self.port,
                },
                &[],
            )
        })
    }

    fn start_from(source: &DataSource, conf: &[(&str, &str)]) -> Server {
        static N: AtomicUsize = AtomicUsize::new(0);
        let mut last = String::new();
        for _attempt in 0..5 {
            let n = N.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!("pgkick-it-{}-{n}", std::process::id()));
            match Server::try_start(dir, source, conf) {
                Ok(server) => return server,
                Err(StartError::PortTaken(log)) => last = log,
                Err(StartError::Other(msg)) => panic!("{msg}"),
            }
        }
        panic!("PostgreSQL could not bind a TCP port after 5 attempts; last log:\n{last}");
    }

    fn try_start(
        dir: PathBuf,
        source: &DataSource,
        conf: &[(&str, &str)],
    ) -> Result<Server, StartError> {
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        let data = dir.join("data");
        let port = free_port();

        // The watchdog owns the dir from here on. Once told "go" it starts the postmaster and
        // reports its pid, then waits for its stdin to close (Drop, or this process exiting for
        // any reason, even SIGKILL) to shut the postmaster down fast and delete the dir. If stdin
        // closes before "go" (a panic while preparing), it only deletes the dir.
        let postgres = server_command(&bindir().join("postgres"));
        let mut watchdog = Command::new("bash");
        watchdog
            .arg("-c")
            .arg(
                r#"trap '' PIPE; dir=$1; shift
                if ! read -r _; then rm -rf -- "$dir"; exit; fi
                "$@" </dev/null >>"$dir/server.log" 2>&1 & pg=$!
                echo "$pg"; exec >/dev/null
                read -r _
                kill -INT "$pg" 2>/dev/null; wait "$pg"
                rm -rf -- "$dir""#,
            )
            .arg("pgkick-it-watchdog")
            .arg(&dir)
            .arg(postgres.get_program())
            .args(postgres.get_args())
            .arg("-D")
            .arg(&data)
            .arg("-p")
            .arg(port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            // Its own process group: a Ctrl-C on the test run must not kill it before it cleans up.
            .process_group(0);
        for (key, _) in postgres.get_envs() {
            watchdog.env_remove(key);
        }
        let mut watchdog = watchdog.spawn().expect("cannot start bash");
        let mut keepalive = watchdog.stdin.take();

        fs::create_dir_all(dir.join("home")).expect("mkdir home");
        chown_to_os_user(&dir);
        match source {
            DataSource::Template => run_checked(
                Command::new("cp")
                    .arg("-a")
                    .arg(template_data_dir())
                    .arg(&data),
                "copying the initdb template",
            ),
            DataSource::BaseBackup { sock_dir, port } => run_checked(
                server_command(&bindir().join("pg_basebackup"))
                    .arg("-D")
                    .arg(&data)
                    .args(["-R", "-X", "stream", "-c", "fast", "-h"])
                    .arg(sock_dir)
                    .arg("-p")
                    .arg(port.to_string())
                    .args(["-U", SUPERUSER]),
                "pg_basebackup of the primary",
            ),
        }
        let mut settings: Vec<(String, String)> = [
            ("listen_addresses", "127.0.0.1".to_string()),
            (
                "unix_socket_directories",
                dir.to_str().expect("utf-8 temp dir").to_string(),
            ),
            ("fsync", "off".into()),
            ("synchronous_commit", "off".into()),
            ("full_page_writes", "off".into()),
            ("max_connections", "200".into()),
            ("shared_buffers", "32MB".into()),
            ("log_min_messages", "warning".into()),
            ("logging_collector", "off".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        settings.extend(conf.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let mut conf_file = fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .expect("open postgresql.conf");
        writeln!(conf_file, "\n# pgkick integration tests").unwrap();
        for (key, value) in &settings {
            writeln!(conf_file, "{key} = {}", conf_quote(value)).unwrap();
        }
        drop(conf_file);

        writeln!(keepalive.as_mut().unwrap(), "go").expect("start the watchdog");
        let mut line = String::new();
        BufReader::new(watchdog.stdout.take().unwrap())
            .read_line(&mut line)
            .expect("read the watchdog's report");
        let child_pid: u32 = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("watchdog said {line:?}"));

        let mut server = Server {
            dir,
            data,
            port,
            postmaster_pid: child_pid as i32,
            version_num: 0,
            watchdog,
            keepalive,
        };

        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last_error: String;
        let mut client = loop {
            match server
                .config(SUPERUSER, SUPERUSER, "pgkick-it")
                .connect(NoTls)
            {
                Ok(client) => break client,
                Err(e) => last_error = e.to_string(),
            }
            if process_gone(child_pid) {
                let log = server.log();
                return Err(
                    if log.contains("could not bind")
                        || log.contains("could not create any TCP/IP sockets")
                    {
                        StartError::PortTaken(log)
                    } else {
                        StartError::Other(format!(
                        "PostgreSQL exited during startup (last connect error: {last_error}); log:\n{log}"
                    ))
                    },
                );
            }
            if Instant::now() >= deadline {
                return Err(StartError::Other(format!(
                    "PostgreSQL not ready after {READY_TIMEOUT:?} (last connect error: {last_error}); log:\n{}",
                    server.log()
                )));
            }
            thread::sleep(Duration::from_millis(50));
        };
        let row = client
            .query_one("SELECT current_setting('server_version_num')::int", &[])
            .expect("query server_version_num");
        server.version_num = row.get(0);
        // Whatever ran the binary (setpriv execs; runuser may not), postmaster.pid names the postmaster.
        if let Some(pid) = fs::read_to_string(server.data.join("postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next().and_then(|l| l.trim().parse().ok()))
        {
            server.postmaster_pid = pid;
        }
        Ok(server)
    }

    pub fn sock_dir(&self) -> &Path {
        &self.dir
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    pub fn data_dir(&self) -> &Path {
        &self.data
    }
    pub fn bindir(&self) -> &Path {
        bindir()
    }
    /// `server_version_num`, e.g. 150008.
    pub fn version_num(&self) -> i32 {
        self.version_num
    }
    pub fn pid_of_postmaster(&self) -> i32 {
        self.postmaster_pid
    }
    /// The server's stderr (logging_collector is off).
    /// The server's processes that serve a client connection (their title shows the client:
    /// `postgres: user db [local] idle`, `... 127.0.0.1(5432) ...`), including backends that
    /// have left pg_stat_activity but not yet exited, so still hold their connection slot.
    pub fn client_processes(&self) -> Vec<i32> {
        let Ok(entries) = fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                // "pid (comm) S ppid ...": comm may contain spaces, so look after the last ')'.
                let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                let ppid = stat
                    .rsplit(')')
                    .next()
                    .and_then(|rest| rest.split_whitespace().nth(1))
                    .and_then(|p| p.parse::<i32>().ok());
                if ppid != Some(self.postmaster_pid) {
                    return false;
                }
                let title = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let title = String::from_utf8_lossy(&title);
                title.contains(" [local] ") || title.contains(" 127.0.0.1(")
            })
            .collect()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }
    pub fn log(&self) -> String {
        fs::read(self.log_path())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// SIGQUIT to the postmaster: immediate shutdown. The dir stays until the `Server` is dropped.
    pub fn stop_immediate(&self) {
        // SAFETY: kill has no memory-safety preconditions.
        let rc = unsafe { libc::kill(self.postmaster_pid, libc::SIGQUIT) };
        assert_eq!(
            rc,
            0,
            "kill -QUIT {}: {}",
            self.postmaster_pid,
            std::io::Error::last_os_error()
        );
        let pid = self.postmaster_pid as u32;
        assert!(
            wait_until(STOP_TIMEOUT, || process_gone(pid)),
            "postmaster {pid} still running after SIGQUIT"
        );
    }

    pub fn config(&self, db: &str, user: &str, app: &str) -> postgres::Config {
        let mut config = postgres::Config::new();
        config
            .host_path(&self.dir)
            .port(self.port)
            .user(user)
            .dbname(db)
            .application_name(app)
            .connect_timeout(Duration::from_secs(10));
        config
    }

    /// Superuser client on the unix socket to database `db`.
    pub fn connect(&self, db: &str) -> Client {
        self.connect_as(db, SUPERUSER, "pgkick-it")
    }

    /// Client as `user` to `db` with application_name `app`, over the unix socket.
    pub fn connect_as(&self, db: &str, user: &str, app: &str) -> Client {
        self.config(db, user, app)
            .connect(NoTls)
            .unwrap_or_else(|e| {
                panic!(
                    "connect as {user} to {db} on {}: {}",
                    self.dir.display(),
                    describe(&e)
                )
            })
    }

    /// Client as `user` to `db` with application_name `app`, over TCP 127.0.0.1.
    pub fn connect_tcp(&self, db: &str, user: &str, app: &str) -> Client {
        let mut config = postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(self.port)
            .user(user)
            .dbname(db)
            .application_name(app)
            .connect_timeout(Duration::from_secs(10));
        config.connect(NoTls).unwrap_or_else(|e| {
            panic!(
                "connect as {user} to {db} on 127.0.0.1:{}: {}",
                self.port,
                describe(&e)
            )
        })
    }

    /// Run SQL as superuser in the `postgres` database; panics with the error.
    pub fn sql(&self, sql: &str) {
        self.connect(SUPERUSER)
            .batch_execute(sql)
            .unwrap_or_else(|e| panic!("SQL failed: {}\n{sql}", describe(&e)));
    }

    /// A fresh database with a unique name built from `prefix`; returns its name.
    pub fn create_db(&self, prefix: &str) -> String {
        let name = unique_name(prefix);
        self.sql(&format!("CREATE DATABASE \"{name}\""));
        name
    }

    /// A fresh LOGIN role with a unique name built from `prefix` and extra attributes
    /// (e.g. "SUPERUSER", or ""); returns its name.
    pub fn create_role(&self, prefix: &str, attrs: &str) -> String {
        let name = unique_name(prefix);
        self.sql(&format!("CREATE ROLE \"{name}\" LOGIN {attrs}"));
        name
    }

    /// The pgkick binary with `-h <sock_dir> -p <port> -U postgres`, PG* variables removed,
    /// HOME set to a dir of this server's, stdin null.
    pub fn pgkick(&self) -> Command {
        self.pgkick_as(SUPERUSER)
    }

    /// Like [`Server::pgkick`], connecting as `user`.
    pub fn pgkick_as(&self, user: &str) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pgkick"));
        remove_pg_env(&mut cmd);
        cmd.env("HOME", self.dir.join("home"))
            .arg("-h")
            .arg(&self.dir)
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-U")
            .arg(user)
            .stdin(Stdio::null());
        cmd
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Closing the pipe makes the watchdog shut the server down and delete the dir.
        stop_watchdog(&mut self.keepalive, &mut self.watchdog);
    }
}

/// Closes a watchdog's pipe (it then stops what it watches) and waits for it to exit.
fn stop_watchdog(keepalive: &mut Option<ChildStdin>, watchdog: &mut Child) {
    drop(keepalive.take());
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < deadline {
        match watchdog.try_wait() {
            Ok(Some(_)) | Err(_) => return,
            Ok(None) => thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{e}: {db}"),
        None => format!("{e}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Running pgkick
// ---------------------------------------------------------------------------------------------

/// What a finished command did.
#[derive(Debug)]
pub struct Output {
    /// The exit code, or 128 + signal number if it was killed by a signal.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Run a Command to completion and capture its output. Panics if it can't start.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    Output {
        code: out
            .status
            .code()
            .unwrap_or_else(|| 128 + out.status.signal().unwrap_or(0)),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl Output {
    /// stdout parsed as one JSON value; panics with stdout and stderr if it isn't.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}); exit {}\n--- stdout\n{}\n--- stderr\n{}",
                self.code, self.stdout, self.stderr
            )
        })
    }

    /// stdout parsed as JSON lines (one value per non-empty line).
    pub fn jsonl(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| {
                    panic!(
                        "line {l:?} is not JSON ({e})\n--- stdout\n{}\n--- stderr\n{}",
                        self.stdout, self.stderr
                    )
                })
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// A pgkick run and the status it must end with
// ---------------------------------------------------------------------------------------------

/// One pgkick run against a server and the exit status it must end with (0 unless told),
/// in the manner of just's `Test`: `server.kick(["terminate", "--json", "--db", &db])
/// .user(&role).status(3).outcomes()`. A wrong status fails with the whole command line,
/// stdout and stderr.
pub struct Kick<'a> {
    server: &'a Server,
    user: String,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    status: i32,
}

impl Server {
    /// pgkick with `args`, connecting as the superuser; see [`Kick`].
    pub fn kick<I, S>(&self, args: I) -> Kick<'_>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        Kick {
            server: self,
            user: SUPERUSER.to_string(),
            args: args.into_iter().map(|a| a.as_ref().to_owned()).collect(),
            env: Vec::new(),
            status: 0,
        }
    }
}

impl Kick<'_> {
    /// Connect as `user` instead of the superuser.
    pub fn user(mut self, user: &str) -> Self {
        self.user = user.to_string();
        self
    }

    /// More arguments.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// The exit status the run must end with.
    pub fn status(mut self, code: i32) -> Self {
        self.status = code;
        self
    }

    /// Runs pgkick and checks its exit status.
    pub fn run(self) -> Output {
        let mut cmd = self.server.pgkick_as(&self.user);
        cmd.args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        let out = run(&mut cmd);
        assert_eq!(
            out.code, self.status,
            "exit {} instead of {}: pgkick {:?}\n--- stdout\n{}\n--- stderr\n{}",
            out.code, self.status, self.args, out.stdout, out.stderr
        );
        out
    }

    /// Runs pgkick (give it `--json`), checks its exit status, and decodes the outcomes.
    pub fn outcomes(self) -> BTreeMap<i64, String> {
        outcomes(&self.run())
    }

    /// Runs pgkick, which must fail (exit 1 unless told otherwise) with one line on stderr,
    /// `pgkick: ...`, containing every one of `needles`.
    pub fn fails_with(mut self, needles: &[&str]) -> Output {
        if self.status == 0 {
            self.status = 1;
        }
        let out = self.run();
        assert_one_line(&out.stderr, needles);
        out
    }
}

/// stderr is one line, `pgkick: ...`, containing every one of `needles`.
pub fn assert_one_line(stderr: &str, needles: &[&str]) {
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "not one line: {stderr:?}"
    );
    assert!(stderr.starts_with("pgkick: "), "{stderr:?}");
    for needle in needles {
        assert!(stderr.contains(needle), "stderr lacks {needle:?}: {stderr}");
    }
}

/// A usage error clap found: stderr starts with `pgkick: ` and its first line holds every one
/// of `needles` (clap's suggestions and tips follow on the next lines).
pub fn assert_usage(stderr: &str, needles: &[&str]) {
    let first = stderr.lines().next().unwrap_or_default();
    assert!(first.starts_with("pgkick: "), "{stderr:?}");
    for needle in needles {
        assert!(
            first.contains(needle),
            "first line lacks {needle:?}: {stderr}"
        );
    }
}

/// pgkick failed with exit 1 and one line on stderr containing every one of `needles`.
pub fn assert_fails_with(out: &Output, needles: &[&str]) {
    assert_eq!(
        out.code, 1,
        "expected exit 1\n--- stdout\n{}\n--- stderr\n{}",
        out.stdout, out.stderr
    );
    assert_one_line(&out.stderr, needles);
}

// ---------------------------------------------------------------------------------------------
// On a terminal
// ---------------------------------------------------------------------------------------------

/// A command running on a pseudo-terminal (util-linux `script`), 250 columns wide, so pgkick
/// asks for confirmation as it would a person: wait for text on the screen, type, finish.
pub struct Terminal {
    child: Child,
    screen: Receiver<String>,
    seen: String,
}

/// A shell word for `script -c`.
fn sh_quote(arg: &OsStr) -> String {
    format!("'{}'", arg.to_string_lossy().replace('\'', "'\\''"))
}

impl Terminal {
    /// Starts `cmd` (its program, arguments and environment) on a new terminal.
    pub fn start(cmd: &Command) -> Terminal {
        let mut line = String::from("stty cols 250 rows 50; exec");
        for word in [cmd.get_program()].into_iter().chain(cmd.get_args()) {
            line.push(' ');
            line.push_str(&sh_quote(word));
        }
        let mut script = Command::new("script");
        script
            .args(["-qefc", &line, "/dev/null"])
            .env("SHELL", "/bin/sh");
        for (key, value) in cmd.get_envs() {
            match value {
                Some(v) => script.env(key, v),
                None => script.env_remove(key),
            };
        }
        let mut child = script
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("util-linux `script` is needed for the terminal tests");
        // The screen, as it arrives, chunk by chunk.
        let mut stdout = child.stdout.take().unwrap();
        let (tx, screen) = mpsc::channel();
        thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0
                    || tx
                        .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                        .is_err()
                {
                    break;
                }
            }
        });
        Terminal {
            child,
            screen,
            seen: String::new(),
        }
    }

    /// Waits (up to 15 s) until `needle` is on the screen; returns the screen so far.
    pub fn wait_for(&mut self, needle: &str) -> String {
        self.wait_for_times(needle, 1)
    }

    /// Waits (up to 15 s) until `needle` has been shown `times` times; returns the screen.
    pub fn wait_for_times(&mut self, needle: &str, times: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        while self.seen.matches(needle).count() < times {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.screen.recv_timeout(left) {
                Ok(chunk) => self.seen.push_str(&chunk),
                Err(_) => panic!("{needle:?} never shown; screen:\n{}", self.seen),
            }
        }
        self.seen.clone()
    }

    /// Types `keys` (b"y\r", b"\x03" for Ctrl-C).
    pub fn type_keys(&mut self, keys: &[u8]) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(keys).unwrap();
        stdin.flush().unwrap();
    }

    /// Waits (up to `timeout`) for the command to exit: its exit code, and the whole screen
    /// as stdout.
    pub fn finish(mut self, timeout: Duration) -> Output {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!("still running after {timeout:?}; screen:\n{}", self.seen);
            }
            // Reading the screen meanwhile is also what keeps the terminal from filling up.
            if let Ok(chunk) = self.screen.recv_timeout(Duration::from_millis(10)) {
                self.seen.push_str(&chunk);
            }
        };
        // The rest of the screen: the reader ends at the terminal's end of file.
        while let Ok(chunk) = self.screen.recv_timeout(Duration::from_secs(5)) {
            self.seen.push_str(&chunk);
        }
        Output {
            code: status
                .code()
                .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
            stdout: self.seen,
            stderr: String::new(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Configuration, the server log, and pgkick without the harness's connection flags
// ---------------------------------------------------------------------------------------------

/// Settings that make the server log every connection with the client host and, once the
/// session has set it, the application_name in front: `host=127.0.0.1 app= LOG:  connection
/// authorized: ... SSL enabled (...)`, `host=[local] app=pgkick LOG:  disconnection: ...`.
pub const LOG_CONNECTIONS: [(&str, &str); 3] = [
    ("log_connections", "on"),
    ("log_disconnections", "on"),
    ("log_line_prefix", "host=%h app=%a "),
];

/// The pgkick binary with no connection flags at all: PG* variables removed, HOME set to the
/// server's home dir (for ~/.pgpass, ~/.pg_service.conf, ~/.postgresql/), stdin null.
pub fn bare_pgkick(server: &Server) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pgkick"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            cmd.env_remove(key);
        }
    }
    cmd.env("HOME", home(server)).stdin(Stdio::null());
    cmd
}

/// pgkick connecting over TCP to `host` (127.0.0.1 or localhost) as `user`, with `conninfo`
/// as its -d value, running `list --json`.
pub fn pgkick_tcp(server: &Server, host: &str, user: &str, conninfo: &str) -> Command {
    let mut cmd = bare_pgkick(server);
    cmd.args(["-h", host, "-p", &server.port().to_string(), "-U", user]);
    if !conninfo.is_empty() {
        cmd.args(["-d", conninfo]);
    }
    cmd.args(["list", "--json"]);
    cmd
}

/// The HOME pgkick gets from the harness.
pub fn home(server: &Server) -> PathBuf {
    server.sock_dir().join("home")
}

/// Re-reads the server's configuration files and returns once new connections see them
/// (pg_conf_load_time changed: the postmaster finished reloading, pg_hba.conf and the SSL
/// context included, before forking the backend that reports it).
pub fn reload(server: &Server) {
    let load_time = || -> String {
        server
            .connect(SUPERUSER)
            .query_one("SELECT pg_conf_load_time()::text", &[])
            .expect("pg_conf_load_time")
            .get(0)
    };
    let before = load_time();
    server.sql("SELECT pg_reload_conf()");
    assert!(
        wait_until(Duration::from_secs(10), || load_time() != before),
        "the server did not reload its configuration; log:\n{}",
        server.log()
    );
}

/// Replaces pg_hba.conf with `lines`, after a `local all all trust` line that keeps the
/// harness's own unix-socket connections working, and reloads.
pub fn set_hba(server: &Server, lines: &str) {
    let path = server.data_dir().join("pg_hba.conf");
    // Writing over the existing file keeps its owner (the server's OS user) and mode.
    fs::write(&path, format!("local all all trust\n{lines}"))
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    reload(server);
}

/// Writes `contents` to `path` with `mode`, owned by whoever owns `owner_like`.
pub fn write_file(path: &Path, contents: &str, mode: u32, owner_like: Option<&Path>) {
    fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
    if let Some(model) = owner_like {
        let meta = fs::metadata(model).expect("stat");
        std::os::unix::fs::chown(path, Some(meta.uid()), Some(meta.gid()))
            .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
    }
}

/// A position in the server log; what was logged after it.
pub struct LogMark(usize);

impl LogMark {
    pub fn now(server: &Server) -> LogMark {
        LogMark(server.log().len())
    }

    pub fn since(&self, server: &Server) -> String {
        server.log().get(self.0..).unwrap_or_default().to_string()
    }
}

/// Whether the last TCP connection authorized since `mark` was encrypted; `None` when no TCP
/// connection was authorized.
pub fn tcp_session_encrypted(server: &Server, mark: &LogMark) -> Option<bool> {
    mark.since(server)
        .lines()
        .rev()
        .find(|l| l.starts_with("host=127.0.0.1 ") && l.contains("connection authorized"))
        .map(|l| l.contains("SSL enabled"))
}

// ---------------------------------------------------------------------------------------------
// Reading pgkick's JSON
// ---------------------------------------------------------------------------------------------

/// The pids in a successful `--json` array of sessions or reports.
pub fn pids(out: &Output) -> BTreeSet<i64> {
    assert_eq!(
        out.code, 0,
        "exit {}\n--- stdout\n{}\n--- stderr\n{}",
        out.code, out.stdout, out.stderr
    );
    out.json()
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {}", out.stdout))
        .iter()
        .map(|s| s["pid"].as_i64().expect("pid"))
        .collect()
}

/// The pids of a successful `list --json`, sorted.
pub fn listed(out: &Output) -> Vec<i64> {
    pids(out).into_iter().collect()
}

pub fn set(pids: &[i32]) -> BTreeSet<i64> {
    pids.iter().map(|&p| i64::from(p)).collect()
}

/// pid -> outcome from the JSON report of cancel or terminate on `stdout`.
pub fn outcomes_of(stdout: &str) -> BTreeMap<i64, String> {
    let json: serde_json::Value = serde_json::from_str(stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {stdout:?}"));
    json.as_array()
        .unwrap_or_else(|| panic!("not an array: {stdout}"))
        .iter()
        .map(|r| {
            (
                r["pid"].as_i64().unwrap(),
                r["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// pid -> outcome from the JSON report of cancel or terminate.
pub fn outcomes(out: &Output) -> BTreeMap<i64, String> {
    outcomes_of(&out.stdout)
}

/// The outcomes a test expects, in the form `outcomes` returns.
pub fn expect(pairs: &[(i32, &str)]) -> BTreeMap<i64, String> {
    pairs
        .iter()
        .map(|&(p, o)| (i64::from(p), o.to_string()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Catalog state
// ---------------------------------------------------------------------------------------------

/// An identifier in SQL text (tests build their fixtures with it).
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A string literal (standard_conforming_strings is on).
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// A PL/pgSQL loop that swallows cancels: only terminate ends it.
pub const SWALLOWS_CANCEL: &str = "DO $$ BEGIN LOOP BEGIN PERFORM pg_sleep(0.05); \
     EXCEPTION WHEN query_canceled THEN NULL; END; END LOOP; END $$";

pub fn db_exists(server: &Server, db: &str) -> bool {
    server
        .connect(SUPERUSER)
        .query_opt("SELECT 1 FROM pg_database WHERE datname::text = $1", &[&db])
        .unwrap()
        .is_some()
}

/// (rolcanlogin, comment) of a role.
pub fn role_state(server: &Server, role: &str) -> (bool, Option<String>) {
    let row = server
        .connect(SUPERUSER)
        .query_one(
            "SELECT rolcanlogin, shobj_description(oid, 'pg_authid') \
               FROM pg_roles WHERE rolname::text = $1",
            &[&role],
        )
        .unwrap_or_else(|e| panic!("read state of role {role:?}: {e}"));
    (row.get(0), row.get(1))
}

// ---------------------------------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------------------------------

/// A client session held open in a given state.
pub struct Session {
    /// The backend pid (`pg_backend_pid()`).
    pub pid: i32,
    backend_start: DateTime<Utc>,
    /// Idle sessions hold their client here; active ones on their thread.
    client: Option<Client>,
    active: Option<ActiveQuery>,
}

/// `Ok(())`, or `Err(SQLSTATE)` / `Err(message)`.
pub type QueryResult = Result<(), String>;

struct ActiveQuery {
    thread: Option<JoinHandle<()>>,
    cancel: postgres::CancelToken,
    result: Mutex<(Receiver<QueryResult>, Option<QueryResult>)>,
    /// Dropped to let the thread close the connection.
    release: Option<Sender<()>>,
}

fn open(client: &mut Client) -> (i32, DateTime<Utc>) {
    let row = client
        .query_one(
            "SELECT pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()",
            &[],
        )
        .expect("read own pid and backend_start");
    (row.get(0), row.get(1))
}

fn sqlstate_of(e: &postgres::Error) -> String {
    match e.code() {
        Some(state) => state.code().to_string(),
        None => e.to_string(),
    }
}

impl Session {
    fn held(mut client: Client) -> Session {
        let (pid, backend_start) = open(&mut client);
        Session {
            pid,
            backend_start,
            client: Some(client),
            active: None,
        }
    }

    /// A session sitting idle.
    pub fn idle(server: &Server, db: &str, user: &str, app: &str) -> Session {
        Session::held(server.connect_as(db, user, app))
    }

    /// An idle session over TCP 127.0.0.1.
    pub fn idle_tcp(server: &Server, db: &str, user: &str, app: &str) -> Session {
        Session::held(server.connect_tcp(db, user, app))
    }

    /// A session inside an open transaction (`BEGIN` and a query).
    pub fn idle_in_transaction(server: &Server, db: &str, user: &str, app: &str) -> Session {
        let mut session = Session::idle(server, db, user, app);
        session.client_batch("BEGIN; SELECT 1");
        session
    }

    /// A session inside a failed transaction (`BEGIN; SELECT 1/0`).
    pub fn idle_in_transaction_aborted(
        server: &Server,
        db: &str,
        user: &str,
        app: &str,
    ) -> Session {
        let mut session = Session::idle(server, db, user, app);
        session.client_batch("BEGIN");
        let client = session.client.as_mut().unwrap();
        assert!(
            client.batch_execute("SELECT 1/0").is_err(),
            "SELECT 1/0 did not fail"
        );
        session
    }

    /// Runs `sql` on an idle session's connection (e.g. to take locks inside its transaction).
    pub fn execute(&mut self, sql: &str) {
        self.client_batch(sql);
    }

    /// Runs `sql` on a background thread like [`Session::active`], and returns once
    /// pg_stat_activity shows the session waiting for a lock.
    pub fn waiting(server: &Server, db: &str, user: &str, app: &str, sql: &str) -> Session {
        let session = Session::active(server, db, user, app, sql);
        let mut watcher = server.connect(SUPERUSER);
        let waits = wait_until(Duration::from_secs(10), || {
            watcher
                .query_opt(
                    "SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'",
                    &[&session.pid],
                )
                .expect("read pg_stat_activity")
                .is_some()
        });
        assert!(
            waits,
            "session {} running {sql:?} never waited for a lock",
            session.pid
        );
        session
    }

    fn client_batch(&mut self, sql: &str) {
        let client = self
            .client
            .as_mut()
            .expect("an idle session holds its client");
        client
            .batch_execute(sql)
            .unwrap_or_else(|e| panic!("{sql}: {}", describe(&e)));
    }

    /// Runs `sql` (e.g. "SELECT pg_sleep(60)") on a background thread; returns once
    /// pg_stat_activity shows it active (or it has already finished).
    pub fn active(server: &Server, db: &str, user: &str, app: &str, sql: &str) -> Session {
        let mut client = server.connect_as(db, user, app);
        let (pid, backend_start) = open(&mut client);
        let cancel = client.cancel_token();
        let (result_tx, result_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let query = sql.to_string();
        let thread = thread::spawn(move || {
            let result = client.batch_execute(&query).map_err(|e| sqlstate_of(&e));
            let _ = result_tx.send(result);
            // Keep the connection open until the Session is dropped.
            let _ = release_rx.recv();
            drop(client);
        });
        let session = Session {
            pid,
            backend_start,
            client: None,
            active: Some(ActiveQuery {
                thread: Some(thread),
                cancel,
                result: Mutex::new((result_rx, None)),
                release: Some(release_tx),
            }),
        };
        let mut watcher = server.connect(SUPERUSER);
        let shown = wait_until(Duration::from_secs(10), || {
            let state: Option<String> = watcher
                .query_opt("SELECT state FROM pg_stat_activity WHERE pid = $1", &[&pid])
                .expect("read pg_stat_activity")
                .and_then(|r| r.get(0));
            state.as_deref() == Some("active") || session.query_result(Duration::ZERO).is_some()
        });
        assert!(
            shown,
            "session {pid} running {sql:?} never showed as active"
        );
        session
    }

    /// For idle sessions: runs `SELECT 1` on the session's own connection; whether it
    /// answered. pg_terminate_backend has signalled the backend by the time it returns, and a
    /// signalled backend ends instead of answering, so this tells at once (no waiting) that a
    /// session was spared.
    pub fn answers(&mut self) -> bool {
        self.client
            .as_mut()
            .expect("an idle session holds its client")
            .batch_execute("SELECT 1")
            .is_ok()
    }

    pub fn backend_start(&self) -> DateTime<Utc> {
        self.backend_start
    }

    /// Is this backend still in pg_stat_activity (same pid and same backend_start)?
    pub fn alive(&self, server: &Server) -> bool {
        server
            .connect(SUPERUSER)
            .query_opt(
                "SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND backend_start = $2",
                &[&self.pid, &self.backend_start],
            )
            .expect("read pg_stat_activity")
            .is_some()
    }

    /// For active sessions: the background query's result once it has finished (waiting up to
    /// `timeout`): `Ok(())`, or `Err(SQLSTATE)` (e.g. "57014" cancelled, "57P01" terminated), or
    /// `Err(message)` when the error carried no SQLSTATE (e.g. the connection was closed).
    /// `None` if it is still running, or this is not an active session.
    pub fn query_result(&self, timeout: Duration) -> Option<QueryResult> {
        let active = self.active.as_ref()?;
        let mut guard = active.result.lock().unwrap_or_else(|p| p.into_inner());
        if guard.1.is_none() {
            match guard.0.recv_timeout(timeout) {
                Ok(result) => guard.1 = Some(result),
                Err(RecvTimeoutError::Timeout) => return None,
                Err(RecvTimeoutError::Disconnected) => {
                    guard.1 = Some(Err("query thread panicked".into()))
                }
            }
        }
        guard.1.clone()
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let Some(active) = self.active.as_mut() else {
            return;
        };
        if active
            .result
            .get_mut()
            .map(|g| g.1.is_none())
            .unwrap_or(true)
        {
            let _ = active.cancel.cancel_query(NoTls);
        }
        drop(active.release.take());
        // Join with a timeout: a thread stuck on a dead server is left detached.
        if let Some(thread) = active.thread.take() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while !thread.is_finished() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(10));
            }
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Smoke tests of the harness itself
// ---------------------------------------------------------------------------------------------

fn state_of(server: &Server, pid: i32) -> Option<String> {
    server
        .connect(SUPERUSER)
        .query_opt("SELECT state FROM pg_stat_activity WHERE pid = $1", &[&pid])
        .expect("read pg_stat_activity")
        .and_then(|r| r.get(0))
}

#[test]
fn harness_starts_and_connects() {
    let server = Server::shared();
    assert!(
        server.version_num() >= 100000,
        "version {}",
        server.version_num()
    );
    let db = server.create_db("harness_db");
    let role = server.create_role("harness_role", "");
    let mut client = server.connect_as(&db, &role, "harness-app");
    let row = client
        .query_one("SELECT current_user::text, current_database()::text, current_setting('application_name')", &[])
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, String>(1)),
        (role.clone(), db.clone())
    );
    assert_eq!(row.get::<_, String>(2), "harness-app");
    let mut tcp = server.connect_tcp(&db, &role, "harness-tcp");
    let addr: Option<String> = tcp
        .query_one("SELECT host(inet_client_addr())", &[])
        .unwrap()
        .get(0);
    assert_eq!(addr.as_deref(), Some("127.0.0.1"));
    assert!(server
        .sock_dir()
        .join(format!(".s.PGSQL.{}", server.port()))
        .exists());
    assert!(server.data_dir().join("PG_VERSION").is_file());
    assert!(server.pid_of_postmaster() > 0);
}

#[test]
fn harness_sessions_have_states() {
    let server = Server::shared();
    let db = server.create_db("harness_states");
    let idle = Session::idle(server, &db, SUPERUSER, "harness-idle");
    let in_tx = Session::idle_in_transaction(server, &db, SUPERUSER, "harness-tx");
    let aborted = Session::idle_in_transaction_aborted(server, &db, SUPERUSER, "harness-aborted");
    let active = Session::active(
        server,
        &db,
        SUPERUSER,
        "harness-active",
        "SELECT pg_sleep(60)",
    );
    let tcp = Session::idle_tcp(server, &db, SUPERUSER, "harness-tcp");
    assert_eq!(state_of(server, idle.pid).as_deref(), Some("idle"));
    assert_eq!(
        state_of(server, in_tx.pid).as_deref(),
        Some("idle in transaction")
    );
    assert_eq!(
        state_of(server, aborted.pid).as_deref(),
        Some("idle in transaction (aborted)")
    );
    assert_eq!(state_of(server, active.pid).as_deref(), Some("active"));
    assert_eq!(state_of(server, tcp.pid).as_deref(), Some("idle"));
    assert!(active.query_result(Duration::ZERO).is_none());

    // Cancelling the query leaves the connection; terminating removes it.
    server.sql(&format!("SELECT pg_cancel_backend({})", active.pid));
    assert_eq!(
        active.query_result(Duration::from_secs(10)),
        Some(Err("57014".to_string()))
    );
    assert!(active.alive(server));
    server.sql(&format!("SELECT pg_terminate_backend({})", idle.pid));
    assert!(wait_until(Duration::from_secs(10), || !idle.alive(server)));
    assert!(in_tx.alive(server));
}

#[test]
fn harness_private_server_stops() {
    let server = Server::start_with(&[("max_connections", "20")]);
    let socket = server
        .sock_dir()
        .join(format!(".s.PGSQL.{}", server.port()));
    assert!(socket.exists());
    let mut client = server.connect(SUPERUSER);
    let max: String = client
        .query_one("SHOW max_connections", &[])
        .unwrap()
        .get(0);
    assert_eq!(max, "20");
    let dir = server.sock_dir().to_path_buf();
    drop(client);
    drop(server);
    assert!(!socket.exists(), "socket {} still there", socket.display());
    assert!(!dir.exists(), "dir {} still there", dir.display());
}

#[test]
fn harness_stop_immediate() {
    let server = Server::start();
    let session = Session::active(
        &server,
        SUPERUSER,
        SUPERUSER,
        "harness-quit",
        "SELECT pg_sleep(60)",
    );
    server.stop_immediate();
    assert!(session
        .query_result(Duration::from_secs(10))
        .unwrap()
        .is_err());
    assert!(!server
        .sock_dir()
        .join(format!(".s.PGSQL.{}", server.port()))
        .exists());
}

// ---------------------------------------------------------------------------------------------
// PgBouncer
// ---------------------------------------------------------------------------------------------

/// Debian's PgBouncer (package `pgbouncer`, installed by scripts/test).
pub const PGBOUNCER: &str = "/usr/sbin/pgbouncer";
/// pgbench, from the PostgreSQL client packages.
pub const PGBENCH: &str = "/usr/bin/pgbench";

/// A throwaway PgBouncer in front of a [`Server`], in transaction pooling, with its own temp
/// dir (ini, userlist, unix socket, log) and TCP port. Its admin console lets in the
/// superuser; authentication is `trust` (or `md5`, [`Pgbouncer::start_with`] a password) for
/// the users in its userlist (the superuser). Under
/// root it runs as the server's OS user. Started through a watchdog like the server's, so it
/// is stopped when the `Pgbouncer` is dropped or the test process goes away.
pub struct Pgbouncer {
    dir: TempDir,
    port: u16,
    /// The superuser's password on the pooler (`auth_type = md5`), if it has one.
    password: Option<String>,
    watchdog: Child,
    keepalive: Option<ChildStdin>,
}

impl Pgbouncer {
    /// A PgBouncer serving `dbs` of `server` (other names are unknown to it).
    pub fn start(server: &Server, dbs: &[&str]) -> Pgbouncer {
        Pgbouncer::start_with(server, dbs, None)
    }

    /// Like [`Pgbouncer::start`]; with a password, clients of the pooler (the admin console
    /// included) must give it (`auth_type = md5`); the pooler still logs in to the server
    /// with trust.
    pub fn start_with(server: &Server, dbs: &[&str], password: Option<&str>) -> Pgbouncer {
        assert!(
            Path::new(PGBOUNCER).is_file(),
            "{PGBOUNCER} is missing: run scripts/test (it installs Debian's pgbouncer), or \
             apt-get install pgbouncer"
        );
        let dir = TempDir::new("pgkick-it-pgbouncer");
        chown_to_os_user(dir.path());
        let port = free_port();
        let path = dir.path().to_str().expect("utf-8 temp dir").to_string();
        let mut ini = String::from("[databases]\n");
        for db in dbs {
            ini.push_str(&format!(
                "{db} = host={} port={} dbname={db}\n",
                server.sock_dir().display(),
                server.port()
            ));
        }
        ini.push_str(&format!(
            "[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir = {path}\n\
             auth_type = {auth}\nauth_file = {path}/userlist.txt\nadmin_users = {SUPERUSER}\n\
             pool_mode = transaction\nmax_client_conn = 200\ndefault_pool_size = 20\n\
             ignore_startup_parameters = extra_float_digits\nlogfile = {path}/pgbouncer.log\n",
            auth = if password.is_some() { "md5" } else { "trust" }
        ));
        let ini_path = dir.write("pgbouncer.ini", &ini, 0o644);
        dir.write(
            "userlist.txt",
            &format!("\"{SUPERUSER}\" \"{}\"\n", password.unwrap_or_default()),
            0o600,
        );
        for f in ["pgbouncer.ini", "userlist.txt"] {
            chown_to_os_user(&dir.path().join(f));
        }
        let program = server_command(Path::new(PGBOUNCER));
        let mut watchdog = Command::new("bash");
        watchdog
            .arg("-c")
            .arg(
                r#"trap '' PIPE; out=$1; shift
                "$@" </dev/null >>"$out" 2>&1 & pgb=$!
                read -r _
                kill -TERM "$pgb" 2>/dev/null; wait "$pgb""#,
            )
            .arg("pgkick-it-pgbouncer")
            .arg(dir.path().join("pgbouncer.out"))
            .arg(program.get_program())
            .args(program.get_args())
            .arg(&ini_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        let mut watchdog = watchdog.spawn().expect("cannot start bash");
        let keepalive = watchdog.stdin.take();
        let bouncer = Pgbouncer {
            dir,
            port,
            password: password.map(str::to_string),
            watchdog,
            keepalive,
        };
        assert!(
            wait_until(READY_TIMEOUT, || bouncer
                .try_connect(ADMIN_DB, "pgkick-it")
                .is_ok()),
            "PgBouncer not ready after {READY_TIMEOUT:?}; log:\n{}",
            bouncer.log()
        );
        bouncer
    }

    pub fn sock_dir(&self) -> &Path {
        self.dir.path()
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    /// Its log, and what it printed.
    pub fn log(&self) -> String {
        let read = |f: &str| fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
        format!("{}{}", read("pgbouncer.log"), read("pgbouncer.out"))
    }

    /// The `--pgbouncer` value for its admin console.
    pub fn conninfo(&self) -> String {
        format!(
            "host={} port={} user={SUPERUSER}",
            self.dir.path().display(),
            self.port
        )
    }

    /// A client of `db` through the pooler, or the error the pooler gives.
    pub fn try_connect(&self, db: &str, app: &str) -> Result<Client, postgres::Error> {
        let mut config = postgres::Config::new();
        config
            .host_path(self.dir.path())
            .port(self.port)
            .user(SUPERUSER)
            .dbname(db)
            .application_name(app)
            .connect_timeout(Duration::from_secs(10));
        if let Some(password) = &self.password {
            config.password(password);
        }
        config.connect(NoTls)
    }

    /// A client of `db` through the pooler, as the superuser, with application_name `app`.
    /// Use `simple_query` on it: in transaction pooling, the extended protocol's separate
    /// round trips may land on different server connections.
    pub fn connect(&self, db: &str, app: &str) -> Client {
        self.try_connect(db, app)
            .unwrap_or_else(|e| panic!("connect to {db} through PgBouncer: {}", describe(&e)))
    }

    /// `SHOW <what>` on the admin console, each row by column name.
    pub fn show(&self, what: &str) -> Vec<BTreeMap<String, String>> {
        let mut admin = self.connect(ADMIN_DB, "pgkick-it");
        admin
            .simple_query(&format!("SHOW {what}"))
            .unwrap_or_else(|e| panic!("SHOW {what}: {}", describe(&e)))
            .into_iter()
            .filter_map(|m| match m {
                postgres::SimpleQueryMessage::Row(row) => Some(
                    row.columns()
                        .iter()
                        .enumerate()
                        .map(|(i, c)| (c.name().to_string(), row.get(i).unwrap_or("").to_string()))
                        .collect(),
                ),
                _ => None,
            })
            .collect()
    }

    /// SHOW DATABASES' `paused` column for `db`.
    pub fn paused(&self, db: &str) -> bool {
        self.database_flag(db, "paused")
    }

    /// SHOW DATABASES' `disabled` column for `db`.
    pub fn disabled(&self, db: &str) -> bool {
        self.database_flag(db, "disabled")
    }

    fn database_flag(&self, db: &str, column: &str) -> bool {
        self.show("DATABASES")
            .iter()
            .find(|r| r.get("name").map(String::as_str) == Some(db))
            .unwrap_or_else(|| panic!("PgBouncer has no database {db}"))
            .get(column)
            .is_some_and(|v| v == "1")
    }

    /// SHOW POOLS' column `column` for `db`, summed over its users.
    pub fn pool_count(&self, db: &str, column: &str) -> i64 {
        self.show("POOLS")
            .iter()
            .filter(|r| r.get("database").map(String::as_str) == Some(db))
            .filter_map(|r| r.get(column)?.parse::<i64>().ok())
            .sum()
    }
}

const ADMIN_DB: &str = "pgbouncer";

impl Drop for Pgbouncer {
    fn drop(&mut self) {
        // A failing test shows what the pooler saw: which connection it closed, and why.
        if std::thread::panicking() {
            eprintln!("PgBouncer's log (port {}):\n{}", self.port, self.log());
        }
        stop_watchdog(&mut self.keepalive, &mut self.watchdog);
    }
}

/// Sessions of `db` on the server (client backends), as the superuser sees them. An
/// autovacuum worker is none: after a bulk load (`pgbench -i`) one may be analyzing the new
/// tables at any moment, and it is what DROP DATABASE ends by itself.
pub fn sessions_in(server: &Server, db: &str) -> i64 {
    server
        .connect(SUPERUSER)
        .query_one(
            "SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE datname = $1 \
               AND backend_type = 'client backend' AND pid <> pg_catalog.pg_backend_pid()",
            &[&db],
        )
        .expect("count sessions")
        .get(0)
}
