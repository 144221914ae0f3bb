#!/usr/bin/env python3
"""pgkick against the psql one-liners it replaces, on a throwaway server (issue 6).

Started by bench/run, which builds pgkick, starts the server and passes its coordinates in the
environment (BENCH_PGKICK, BENCH_PSQL, BENCH_HOST, BENCH_PORT, BENCH_LOG, BENCH_OUT). Idle
sessions are opened by this process itself: a raw PostgreSQL startup packet over the unix
socket (trust authentication) costs a file descriptor, not a psql process.

Every comparison is paired: in each iteration both commands run back to back against the same
state (the order alternates), and the ratio pgkick/psql of that iteration is kept. Medians and
min-max are over those ratios, which cancels most of the noise of a small, shared machine.
"""

import argparse
import datetime
import json
import os
import platform
import re
import resource
import selectors
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

DB = "benchdb"
IDLE_APP = "bench_idle"
NO_MATCH_APP = "bench_no_such_app"
CTL_APP = "bench_ctl"
LOOPBACK = "127.0.0.1"  # the only address this benchmark ever uses


# --- a minimal PostgreSQL wire client (protocol 3.0, trust authentication) ---------------------

class PgError(Exception):
    pass


def startup_packet(user: str, db: str, app: str) -> bytes:
    body = struct.pack("!i", 196608)
    for k, v in (("user", user), ("database", db), ("application_name", app)):
        body += k.encode() + b"\0" + v.encode() + b"\0"
    body += b"\0"
    return struct.pack("!i", len(body) + 4) + body


class Wire:
    """One connection: startup, simple queries, and reading until ReadyForQuery."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = b""

    def _message(self):
        while True:
            if len(self.buf) >= 5:
                kind = self.buf[0:1]
                (length,) = struct.unpack("!i", self.buf[1:5])
                if len(self.buf) >= 1 + length:
                    body = self.buf[5:1 + length]
                    self.buf = self.buf[1 + length:]
                    return kind, body
            chunk = self.sock.recv(65536)
            if not chunk:
                raise PgError("connection closed by the server")
            self.buf += chunk

    def until_ready(self):
        """Reads until ReadyForQuery; returns the DataRow values (text) seen on the way."""
        rows, error = [], None
        while True:
            kind, body = self._message()
            if kind == b"Z":
                if error:
                    raise PgError(error)
                return rows
            if kind == b"E":
                fields = dict((f[0:1], f[1:].decode()) for f in body.split(b"\0") if f)
                error = fields.get(b"M", "error")
            elif kind == b"R":
                (code,) = struct.unpack("!i", body[:4])
                if code != 0:
                    raise PgError(f"the server wants authentication (code {code}); use trust")
            elif kind == b"D":
                (n,) = struct.unpack("!h", body[:2])
                pos, row = 2, []
                for _ in range(n):
                    (ln,) = struct.unpack("!i", body[pos:pos + 4])
                    pos += 4
                    if ln < 0:
                        row.append(None)
                    else:
                        row.append(body[pos:pos + ln].decode())
                        pos += ln
                rows.append(row)

    def send_query(self, sql: str):
        data = sql.encode() + b"\0"
        self.sock.sendall(b"Q" + struct.pack("!i", len(data) + 4) + data)

    def query(self, sql: str):
        self.send_query(sql)
        return self.until_ready()

    def close(self):
        try:
            self.sock.sendall(b"X\0\0\0\4")
        except OSError:
            pass
        self.sock.close()


class Server:
    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.path = os.path.join(host, f".s.PGSQL.{port}")

    def connect(self, db: str, app: str, user: str = "postgres") -> Wire:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.path)
        s.sendall(startup_packet(user, db, app))
        w = Wire(s)
        w.until_ready()
        return w

    def open_idle(self, n: int, db: str = DB, batch: int = 100):
        """Opens n idle sessions, `batch` startups in flight at once; each has run one query,
        so pg_stat_activity shows a realistic `query` text. Returns (sessions, seconds)."""
        t0 = time.perf_counter()
        sessions = []
        for start in range(0, n, batch):
            socks = []
            for _ in range(min(batch, n - start)):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(self.path)
                s.sendall(startup_packet("postgres", db, IDLE_APP))
                socks.append(Wire(s))
            for w in socks:
                w.until_ready()
                w.send_query("SELECT 'an idle application session'::text AS bench")
            for w in socks:
                w.until_ready()
            sessions.extend(socks)
        return sessions, time.perf_counter() - t0


class EndWatcher(threading.Thread):
    """Records when each session's socket reaches end-of-file, i.e. when its backend exited:
    the server's own view of how long ending the backends took."""

    def __init__(self, sessions):
        super().__init__(daemon=True)
        self.sessions = sessions
        self.ends = []
        self.t0 = None
        self.done = threading.Event()

    def run(self):
        sel = selectors.DefaultSelector()
        for w in self.sessions:
            sel.register(w.sock, selectors.EVENT_READ)
        left = len(self.sessions)
        deadline = time.perf_counter() + 120
        while left and time.perf_counter() < deadline:
            for key, _ in sel.select(timeout=0.5):
                try:
                    data = key.fileobj.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    self.ends.append(time.perf_counter())
                    sel.unregister(key.fileobj)
                    left -= 1
        sel.close()
        self.done.set()


def close_all(sessions):
    for w in sessions:
        w.close()


# --- running commands ----------------------------------------------------------------------

def run_cmd(argv, stdout=subprocess.DEVNULL):
    """Runs argv; returns (seconds, exit code, stderr text)."""
    dt, rc, err, _ = run_timed(argv, stdout)
    return dt, rc, err


def run_timed(argv, stdout=subprocess.DEVNULL):
    """Runs argv; returns (wall seconds, exit code, stderr text, CPU seconds). The CPU time is
    the process's own user + system time, with that of the children it waited for (the psql
    processes of a shell loop or of xargs), from wait4: no other process's."""
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdout=stdout, stderr=err, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(p.pid, 0)
        dt = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        return dt, p.returncode, err.read().decode(errors="replace"), usage.ru_utime + usage.ru_stime


def peak_rss_kib(argv):
    """Peak RSS of argv as /usr/bin/time -v reports it. (wait4's ru_maxrss is no use from
    Python: a child's high-water mark starts at the forking parent's size.)"""
    p = subprocess.run(["/usr/bin/time", "-v", *argv], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True, check=True)
    return int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1))


def proxy_stats(stats_file, pos):
    """What the delaying proxy saw of the connections that closed since `pos`."""
    time.sleep(0.1)  # the proxy writes a connection's line when it sees the close
    with open(stats_file, encoding="utf-8") as f:
        f.seek(pos)
        conns = [json.loads(line) for line in f if line.strip()]
    return {"connections": len(conns), "flights": sum(c["flights"] for c in conns),
            "bytes": sum(c["c2s_bytes"] + c["s2c_bytes"] for c in conns)}


class Log:
    """Reads the server log (log_min_duration_statement = 0, log_line_prefix '%a|') for the
    statements one application sent since `mark`, and the server's time for each: the
    extended protocol logs its parse (parse analysis and rewrite), bind (planning) and execute
    steps separately, a simple query one duration for all three."""

    LINE = re.compile(r"^([^|\n]*)\|[^\n]*?LOG:  duration: ([0-9.]+) ms  "
                      r"(statement|parse|bind|execute)[^:\n]*: ([^\n]*)", re.M)

    def __init__(self, path: str):
        self.path = path
        self.pos = 0

    def mark(self):
        self.pos = os.path.getsize(self.path)

    def parsed(self, app: str):
        """[{kind, parse, bind, execute, ms}] in order, one per statement. The backend logs
        each step when it ends, so every line is there once the client has exited."""
        with open(self.path, "rb") as f:
            f.seek(self.pos)
            text = f.read().decode(errors="replace")
        out = []
        for m in self.LINE.finditer(text):
            if m.group(1) != app:
                continue
            step, ms, sql = m.group(3), float(m.group(2)), m.group(4)
            if step in ("parse", "statement") or not out or out[-1].get("execute") is not None:
                out.append({"kind": classify(sql), "parse": 0.0, "bind": 0.0, "execute": None})
            if step == "statement":
                out[-1].update(parse=None, bind=None, execute=ms)
            else:
                out[-1][step] = ms
        for st in out:
            st["ms"] = sum(st[k] or 0.0 for k in ("parse", "bind", "execute"))
        return out

    def statements(self, app: str):
        """[(kind, server ms: parse + bind + execute)] in order."""
        return [(st["kind"], st["ms"]) for st in self.parsed(app)]

    def count(self, app: str) -> int:
        return len(self.statements(app))


def classify(sql: str) -> str:
    if "GREATEST(1," in sql:
        return "wait"
    if "pg_terminate_backend" in sql or "pg_cancel_backend" in sql:
        return "signal"
    if "generate_subscripts" in sql:
        return "poll"
    if "pg_blocking_pids" in sql:
        return "graph"
    if "pg_stat_get_activity" in sql or "pg_stat_activity" in sql:
        return "count" if "count(*)" in sql else "select"
    if "server_version_num" in sql:
        return "detect"
    return sql[:40]


def summary(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "n": len(values)}


def fmt(s, unit="", digits=2):
    if not s:
        return "-"
    f = f"{{:.{digits}f}}"
    return f"{f.format(s['median'])}{unit} ({f.format(s['min'])}-{f.format(s['max'])})"


# --- the benchmark ---------------------------------------------------------------------------

class Bench:
    def __init__(self, args):
        self.args = args
        self.pgkick = os.environ["BENCH_PGKICK"]
        self.psql = os.environ["BENCH_PSQL"]
        self.server = Server(os.environ["BENCH_HOST"], int(os.environ["BENCH_PORT"]))
        self.log = Log(os.environ["BENCH_LOG"])
        self.ctl = self.server.connect("postgres", CTL_APP)
        self.results = {}

    # connection flags for both tools; via the proxy when `port` is given
    def conn(self, tcp_port=None):
        if tcp_port:
            return ["-h", LOOPBACK, "-p", str(tcp_port), "-U", "postgres"]
        return ["-h", self.server.host, "-p", str(self.server.port), "-U", "postgres"]

    def pgkick_list(self, tcp_port=None, app=None):
        more = ["--app", app] if app else []
        return [self.pgkick, *self.conn(tcp_port), "list", "--db", DB, *more, "--json"]

    def psql_list(self, tcp_port=None, app=None):
        """The one-liner issue 20 compares with: the same sessions' main columns, plain rows.
        With `app`, only that application's (a run that matches nothing, with NO_MATCH_APP)."""
        more = f" AND application_name = '{app}'" if app else ""
        sql = ("SELECT pid, datname, usename, application_name, client_addr, state, query "
               f"FROM pg_stat_activity WHERE datname = '{DB}' AND pid <> pg_backend_pid()"
               + more)
        return [self.psql, "-X", "-At", *self.conn(tcp_port), "-d", "postgres", "-c", sql]

    def pgkick_blocked(self):
        return [self.pgkick, *self.conn(), "list", "--db", DB, "--blocked", "--json"]

    def psql_blocked(self):
        """The hand-written lock-chain query issue 20 compares with."""
        sql = ("SELECT pid, usename, application_name, state, query, pg_blocking_pids(pid) "
               f"FROM pg_stat_activity WHERE datname = '{DB}' AND wait_event_type = 'Lock'")
        return [self.psql, "-X", "-At", *self.conn(), "-d", "postgres", "-c", sql]

    def pgkick_terminate(self, tcp_port=None):
        return [self.pgkick, *self.conn(tcp_port), "terminate", "--db", DB, "--wait", "--yes",
                "--json"]

    def psql_terminate(self, tcp_port=None):
        psql = " ".join([self.psql, "-X", "-At", *self.conn(tcp_port), "-d", "postgres"])
        kill = (f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = '{DB}' AND pid <> pg_backend_pid()")
        left = f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{DB}'"
        script = (f'{psql} -c "{kill}" >/dev/null && '
                  f'while [ "$({psql} -c "{left}")" != 0 ]; do :; done')
        return ["bash", "-c", script]

    def remaining(self):
        return int(self.ctl.query(
            f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{DB}'")[0][0])

    def settle(self):
        """Waits until no session of the bench database is left (between iterations)."""
        deadline = time.time() + 60
        while self.remaining() and time.time() < deadline:
            time.sleep(0.05)
        if self.remaining():
            raise SystemExit("sessions of the bench database did not go away")

    # 1. list ------------------------------------------------------------------------------

    def run_paired(self, argvs, rows_of, expect_rows, iterations, stats_file=None):
        """Runs pgkick's and psql's command of `argvs` alternately, `iterations` times each,
        and keeps per run: wall and CPU seconds of the process, the rows it printed, and the
        server's parse, bind and execute time of each statement it sent, and the load average
        before and after."""
        rows = []
        load_start = os.getloadavg()
        for i in range(iterations):
            pair = {}
            for tool in (("pgkick", "psql") if i % 2 == 0 else ("psql", "pgkick")):
                stats_pos = os.path.getsize(stats_file) if stats_file else 0
                with tempfile.TemporaryFile() as out:
                    self.log.mark()
                    dt, rc, err, cpu = run_timed(argvs[tool], stdout=out)
                    out.seek(0)
                    got = rows_of[tool](out.read())
                if rc != 0 or (expect_rows is not None and got != expect_rows):
                    raise SystemExit(f"{tool}: exit {rc}, {got} rows for {expect_rows}: {err}")
                parsed = self.log.parsed(tool)
                pair[tool] = {"s": dt, "cpu_s": cpu, "rows": got, "statements": len(parsed),
                              "server_ms": sum(st["ms"] for st in parsed),
                              "statement_ms": [(st["kind"], st["ms"]) for st in parsed],
                              "steps": parsed}
                if stats_file:
                    pair[tool]["proxy"] = proxy_stats(stats_file, stats_pos)
            pair["ratio"] = pair["pgkick"]["s"] / pair["psql"]["s"]
            pair["cpu_ratio"] = pair["pgkick"]["cpu_s"] / pair["psql"]["cpu_s"]
            pair["server_ratio"] = pair["pgkick"]["server_ms"] / pair["psql"]["server_ms"]
            rows.append(pair)
        res = self.pairs_summary(rows)
        res["loadavg"] = {"start": load_start, "end": os.getloadavg()}
        for k in ("cpu_ratio", "server_ratio"):
            res[k] = summary([r[k] for r in rows])
        for t in ("pgkick", "psql"):
            res[f"{t}_cpu_s"] = summary([r[t]["cpu_s"] for r in rows])
            res[f"{t}_server_ms"] = summary([r[t]["server_ms"] for r in rows])
            for step in ("parse", "bind", "execute"):
                res[f"{t}_{step}_ms"] = summary(
                    [sum(st[step] or 0.0 for st in r[t]["steps"]) for r in rows])
        if stats_file:
            res["pgkick_flights"] = summary([r["pgkick"]["proxy"]["flights"] for r in rows])
            res["psql_flights"] = summary([r["psql"]["proxy"]["flights"] for r in rows])
        res["iterations"] = rows
        return res

    @staticmethod
    def json_rows(out):
        return len(json.loads(out or b"[]"))

    @staticmethod
    def text_rows(out):
        return len(out.splitlines())

    def bench_list(self, n, iterations, tcp_port=None, key="list", stats_file=None,
                   no_match_key=None):
        """list over n idle sessions; with `no_match_key`, also a run that matches none of
        them (--app NO_MATCH_APP), kept under that key."""
        sessions, opened = self.server.open_idle(n)
        try:
            res = self.run_paired(
                {"pgkick": self.pgkick_list(tcp_port), "psql": self.psql_list(tcp_port)},
                {"pgkick": self.json_rows, "psql": self.text_rows}, n, iterations, stats_file)
            if no_match_key:
                none = self.run_paired(
                    {"pgkick": self.pgkick_list(tcp_port, NO_MATCH_APP),
                     "psql": self.psql_list(tcp_port, NO_MATCH_APP)},
                    {"pgkick": self.json_rows, "psql": self.text_rows}, 0, iterations,
                    stats_file)
                none.update(sessions=n)
                self.results[no_match_key] = none
        finally:
            close_all(sessions)
            self.settle()
        res.update(sessions=n, open_s=opened)
        self.results[key] = res
        return res

    def bench_blocked(self, n_waiting, iterations):
        """list --blocked against the hand-written pg_blocking_pids query, n_waiting sessions
        queued behind one holder idle in transaction (the pile-up of `open_pile_up`)."""
        self.ensure_table()
        holder, waiters = self.open_pile_up(n_waiting)
        try:
            res = self.run_paired(
                {"pgkick": self.pgkick_blocked(), "psql": self.psql_blocked()},
                {"pgkick": self.json_rows, "psql": self.text_rows}, n_waiting, iterations)
        finally:
            holder.query("ROLLBACK")
            close_all([holder, *waiters])
            self.settle()
        res.update(waiting=n_waiting)
        self.results["blocked"] = res
        return res

    def ensure_table(self):
        db = self.server.connect(DB, CTL_APP)
        db.query("CREATE TABLE IF NOT EXISTS bench_t (id int PRIMARY KEY, v int); "
                 "INSERT INTO bench_t VALUES (1, 0) ON CONFLICT DO NOTHING")
        db.close()

    # 2. terminate -------------------------------------------------------------------------

    def terminate_once(self, tool, n, tcp_port=None, stats_file=None):
        sessions, opened = self.server.open_idle(n)
        watcher = EndWatcher(sessions)
        argv = self.pgkick_terminate(tcp_port) if tool == "pgkick" else self.psql_terminate(tcp_port)
        stats_pos = os.path.getsize(stats_file) if stats_file else 0
        self.log.mark()
        watcher.start()
        t0 = time.perf_counter()
        out = tempfile.TemporaryFile()
        dt, rc, err, cpu = run_timed(argv, stdout=out)
        watcher.done.wait(60)
        out.seek(0)
        body = out.read()
        if rc != 0:
            raise SystemExit(f"{tool} terminate: exit {rc}: {err}")
        if tool == "pgkick":
            reports = json.loads(body)
            outcomes = {}
            for r in reports:
                outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
            if outcomes.get("terminated") != n:
                raise SystemExit(f"pgkick terminate: outcomes {outcomes} for {n} sessions")
        if len(watcher.ends) != n:
            raise SystemExit(f"{tool} terminate: only {len(watcher.ends)} of {n} backends ended")
        server_s = max(watcher.ends) - t0
        first_s = min(watcher.ends) - t0
        left_after = self.remaining()
        stmts = self.log.statements(tool)
        res = {"s": dt, "cpu_s": cpu, "server_end_s": server_s, "first_end_s": first_s,
               "statements": len(stmts), "statement_ms": stmts,
               "server_ms": sum(ms for _, ms in stmts), "left_after": left_after,
               "open_s": opened}
        if stats_file:
            res["proxy"] = proxy_stats(stats_file, stats_pos)
        close_all(sessions)
        self.settle()
        return res

    def terminate_lock_once(self, n):
        """The drop workflow (terminate --lock --wait, which also reads what else holds the
        database) over n idle sessions: its statements, which must not grow with n. Unlocks
        afterwards."""
        sessions, _ = self.server.open_idle(n)
        try:
            self.log.mark()
            _, rc, err = run_cmd([self.pgkick, *self.conn(), "terminate", "--db", DB, "--lock",
                                  "--wait", "--yes", "--json"])
            if rc:
                raise SystemExit(f"pgkick terminate --lock: exit {rc}: {err}")
            stmts = self.log.statements("pgkick")
        finally:
            _, rc, err = run_cmd([self.pgkick, *self.conn(), "unlock", "--db", DB])
            close_all(sessions)
            self.settle()
        if rc:
            raise SystemExit(f"pgkick unlock: exit {rc}: {err}")
        return stmts

    def bench_terminate(self, n, iterations, tcp_port=None, stats_file=None, key=None):
        key = key or f"terminate_{n}"
        rows = []
        for i in range(iterations):
            pair = {}
            for tool in (("pgkick", "psql") if i % 2 == 0 else ("psql", "pgkick")):
                pair[tool] = self.terminate_once(tool, n, tcp_port, stats_file)
            pair["ratio"] = pair["pgkick"]["s"] / pair["psql"]["s"]
            pair["cpu_ratio"] = pair["pgkick"]["cpu_s"] / pair["psql"]["cpu_s"]
            rows.append(pair)
            if self.args.verbose:
                print(f"    {key} #{i}: pgkick {pair['pgkick']['s']:.3f}s "
                      f"(server {pair['pgkick']['server_end_s']:.3f}s, "
                      f"{pair['pgkick']['statements']} stmts)  psql {pair['psql']['s']:.3f}s "
                      f"(server {pair['psql']['server_end_s']:.3f}s)", file=sys.stderr)
        res = self.pairs_summary(rows)
        res["cpu_ratio"] = summary([r["cpu_ratio"] for r in rows])
        for t in ("pgkick", "psql"):
            res[f"{t}_cpu_s"] = summary([r[t]["cpu_s"] for r in rows])
            res[f"{t}_server_ms"] = summary([r[t]["server_ms"] for r in rows])
        res["pgkick_server_end_s"] = summary([r["pgkick"]["server_end_s"] for r in rows])
        res["psql_server_end_s"] = summary([r["psql"]["server_end_s"] for r in rows])
        res["pgkick_minus_server_end_s"] = summary(
            [r["pgkick"]["s"] - r["pgkick"]["server_end_s"] for r in rows])
        res["open_s"] = summary([r[t]["open_s"] for r in rows for t in ("pgkick", "psql")])
        ms = lambda stmts, kind: sum(d or 0 for k, d in stmts if k == kind)  # noqa: E731
        for t in ("pgkick", "psql"):
            res[f"{t}_signal_ms"] = summary([ms(r[t]["statement_ms"], "signal") for r in rows])
        res["pgkick_wait_ms"] = summary([ms(r["pgkick"]["statement_ms"], "wait")
                                         + ms(r["pgkick"]["statement_ms"], "poll") for r in rows])
        if stats_file:
            res["pgkick_flights"] = summary([r["pgkick"]["proxy"]["flights"] for r in rows])
            res["psql_flights"] = summary([r["psql"]["proxy"]["flights"] for r in rows])
            res["psql_connections"] = summary([r["psql"]["proxy"]["connections"] for r in rows])
        res.update(sessions=n, iterations=rows)
        self.results[key] = res
        return res

    @staticmethod
    def pairs_summary(rows):
        return {
            "ratio": summary([r["ratio"] for r in rows]),
            "pgkick_s": summary([r["pgkick"]["s"] for r in rows]),
            "psql_s": summary([r["psql"]["s"] for r in rows]),
            "pgkick_statements": summary([r["pgkick"]["statements"] for r in rows]),
            "psql_statements": summary([r["psql"]["statements"] for r in rows]),
        }

    # 3. statements per command, 4. peak RSS -------------------------------------------------

    def statements_and_rss(self, counts, rss_runs):
        """Statements per command for each session count, and (at the largest count) the peak
        RSS of list, pgkick and psql, each the largest of `rss_runs` runs."""
        out = {}
        for n in counts:
            sessions, _ = self.server.open_idle(n)
            entry = {}
            try:
                self.log.mark()
                _, rc, err = run_cmd(self.pgkick_list())
                if rc:
                    raise SystemExit(f"pgkick list: {err}")
                entry["list"] = self.log.statements("pgkick")
                self.log.mark()
                _, rc, err = run_cmd([self.pgkick, *self.conn(), "cancel", "--db", DB, "--yes",
                                      "--json"])
                if rc:
                    raise SystemExit(f"pgkick cancel: {err}")
                entry["cancel"] = self.log.statements("pgkick")
                if n == max(counts):
                    entry["peak_rss_kib"] = {
                        "pgkick": max(peak_rss_kib(self.pgkick_list()) for _ in range(rss_runs)),
                        "psql": max(peak_rss_kib(self.psql_list()) for _ in range(rss_runs)),
                    }
            finally:
                close_all(sessions)
                self.settle()
            entry["terminate_wait"] = self.terminate_once("pgkick", n)["statement_ms"]
            entry["terminate_lock_wait"] = self.terminate_lock_once(n)
            entry["terminate_wait_psql_baseline"] = self.terminate_once("psql", n)["statement_ms"]
            out[str(n)] = entry
        self.results["statements"] = out
        return out

    # 6. lock chains (issue 12) -----------------------------------------------------------

    def open_pile_up(self, n_waiting):
        """The issue's pile-up, n_waiting sessions deep: a holder idle in transaction after an
        UPDATE, one ALTER TABLE waiting on it, and n_waiting - 1 SELECTs queued behind the
        ALTER. Returns (holder, waiters) once pg_stat_activity shows all of them waiting."""
        holder = self.server.connect(DB, "bench_holder")
        holder.query("BEGIN; UPDATE bench_t SET v = v + 1 WHERE id = 1")
        waiters = []
        alter = self.server.connect(DB, "bench_waiter")
        alter.send_query("ALTER TABLE bench_t ADD COLUMN IF NOT EXISTS extra int")
        waiters.append(alter)
        self.wait_for_lock_waits(1)
        for _ in range(n_waiting - 1):
            w = self.server.connect(DB, "bench_waiter")
            w.send_query("SELECT count(*) FROM bench_t")
            waiters.append(w)
        self.wait_for_lock_waits(n_waiting)
        return holder, waiters

    def wait_for_lock_waits(self, n):
        deadline = time.time() + 60
        while time.time() < deadline:
            got = int(self.ctl.query(
                f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{DB}' "
                "AND wait_event_type = 'Lock'")[0][0])
            if got == n:
                return
            time.sleep(0.02)
        raise SystemExit(f"expected {n} sessions waiting for a lock")

    def server_ms(self, argv, expect_rows):
        """Runs one pgkick command; returns (wall s, [server ms of each statement])."""
        with tempfile.TemporaryFile() as out:
            self.log.mark()
            dt, rc, err = run_cmd(argv, stdout=out)
            out.seek(0)
            data = json.loads(out.read() or b"[]")
        if rc != 0 or (expect_rows is not None and len(data) != expect_rows):
            raise SystemExit(f"{argv}: exit {rc}, {len(data)} rows for {expect_rows}: {err}")
        self.last_rows = len(data)
        return dt, [ms for _, ms in self.log.statements("pgkick")]

    def bench_locks(self, iterations, n_idle, n_waiting):
        """Server time of the statement that finds the sessions, now that it computes the lock
        graph: with n_idle sessions of which none waits, paired against the build before
        issue 12 (BENCH_PGKICK_BASE) when given; then with n_waiting sessions waiting."""
        base = os.environ.get("BENCH_PGKICK_BASE")
        db = self.server.connect(DB, CTL_APP)
        db.query("CREATE TABLE IF NOT EXISTS bench_t (id int PRIMARY KEY, v int); "
                 "INSERT INTO bench_t VALUES (1, 0) ON CONFLICT DO NOTHING")
        db.close()
        res = {"base_binary": base}
        binaries = [("pgkick", self.pgkick)] + ([("base", base)] if base else [])

        def paired(argv_of, expect_rows):
            rows = []
            for i in range(iterations):
                order = binaries if i % 2 == 0 else binaries[::-1]
                pair = {}
                for name, binary in order:
                    dt, ms = self.server_ms(argv_of(binary), expect_rows)
                    pair[name] = {"s": dt, "statements": len(ms), "statement_ms": ms,
                                  "rows": self.last_rows}
                rows.append(pair)
            out = {name: {"server_ms": summary([sum(r[name]["statement_ms"]) for r in rows]),
                          "wall_s": summary([r[name]["s"] for r in rows]),
                          "statements": summary([r[name]["statements"] for r in rows])}
                   for name, _ in binaries}
            if len(binaries) > 1:
                out["ratio_server_ms"] = summary(
                    [sum(r["pgkick"]["statement_ms"]) / sum(r["base"]["statement_ms"])
                     for r in rows])
            out["iterations"] = rows
            return out

        list_all = lambda b: [b, *self.conn(), "list", "--db", DB, "--json"]  # noqa: E731
        sessions, _ = self.server.open_idle(n_idle)
        try:
            res["idle"] = paired(list_all, n_idle)
        finally:
            close_all(sessions)
            self.settle()
        holder, waiters = self.open_pile_up(n_waiting)
        try:
            res["waiting"] = paired(list_all, n_waiting + 1)
            binaries[:] = binaries[:1]
            res["waiting_root_blocker"] = paired(
                lambda b: [b, *self.conn(), "list", "--db", DB, "--root-blocker", "--json"], 1)
            # Not checked against n_waiting: one run saw 199 of the 200 (see BENCHMARKS.md);
            # the rows of each run are kept.
            res["waiting_blocked_for"] = paired(
                lambda b: [b, *self.conn(), "list", "--db", DB, "--blocked", "--blocked-for",
                           "1ms", "--json"], None)
        finally:
            holder.query("ROLLBACK")
            close_all([holder, *waiters])
            self.settle()
        self.results["locks"] = res
        return res

    # 4b. startup --------------------------------------------------------------------------

    def startup(self, iterations):
        rows = []
        for i in range(iterations):
            pair = {}
            for tool in (("pgkick", "psql") if i % 2 == 0 else ("psql", "pgkick")):
                binary = self.pgkick if tool == "pgkick" else self.psql
                dt, rc, _ = run_cmd([binary, "--version"])
                pair[tool] = {"s": dt, "statements": 0}
            pair["ratio"] = pair["pgkick"]["s"] / pair["psql"]["s"]
            rows.append(pair)
        res = self.pairs_summary(rows)
        del res["pgkick_statements"], res["psql_statements"]
        res["pgkick_peak_rss_kib"] = peak_rss_kib([self.pgkick, "--version"])
        res["psql_peak_rss_kib"] = peak_rss_kib([self.psql, "--version"])
        # What `psql` costs on Debian, where /usr/bin/psql is a Perl wrapper (pg_wrapper).
        wrapper = shutil.which("psql")
        if wrapper and os.path.realpath(wrapper) != os.path.realpath(self.psql):
            res["psql_on_path"] = wrapper
            res["psql_on_path_s"] = summary([run_cmd([wrapper, "--version"])[0]
                                             for _ in range(iterations)])
        res["iterations"] = rows
        self.results["version_startup"] = res
        return res

    # 5. slow link -------------------------------------------------------------------------

    def slow_link(self, n_list, n_term, iterations, delay_ms):
        with socket.socket() as s:
            s.bind((LOOPBACK, 0))
            port = s.getsockname()[1]
        stats = tempfile.NamedTemporaryFile(prefix="bench-proxy-", suffix=".jsonl", delete=False)
        stats.close()
        proxy = subprocess.Popen(
            [sys.executable, os.path.join(os.path.dirname(__file__), "delay_proxy.py"),
             str(port), str(self.server.port), str(delay_ms), stats.name],
            stdout=subprocess.PIPE, text=True)
        try:
            if proxy.stdout.readline().strip() != "ready":
                raise SystemExit("the delaying proxy did not start")
            # The round trip the link adds, as a client sees it: one empty query.
            t = []
            w = Wire(socket.create_connection((LOOPBACK, port)))
            w.sock.sendall(startup_packet("postgres", "postgres", CTL_APP))
            w.until_ready()
            for _ in range(10):
                t0 = time.perf_counter()
                w.query("")
                t.append(time.perf_counter() - t0)
            w.close()
            rtt = statistics.median(t)
            lst = self.bench_list(n_list, iterations, tcp_port=port, key="slow_list",
                                  stats_file=stats.name, no_match_key="slow_list_no_match")
            term = self.bench_terminate(n_term, iterations, tcp_port=port, stats_file=stats.name,
                                        key="slow_terminate")
            self.results["slow_link"] = {"delay_ms_each_way": delay_ms, "measured_rtt_s": rtt}
            return rtt, lst, term
        finally:
            proxy.terminate()
            proxy.wait()
            os.unlink(stats.name)

    # machine ------------------------------------------------------------------------------

    def machine(self):
        cpu = "?"
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo", encoding="utf-8") as f:
            mem_kib = int(f.readline().split()[1])
        version = self.ctl.query("SELECT version()")[0][0]
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        commit = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--", "src",
                                "Cargo.toml", "Cargo.lock"],
                               capture_output=True, text=True).stdout.strip()
        m = {
            "nproc": os.cpu_count(), "cpu": cpu, "mem_gib": round(mem_kib / 1048576, 1),
            "kernel": platform.release(), "postgres": version,
            "psql": subprocess.run([self.psql, "--version"], capture_output=True,
                                   text=True).stdout.strip(),
            "pgkick": subprocess.run([self.pgkick, "--version"], capture_output=True,
                                     text=True).stdout.strip(),
            "commit": commit + ("+uncommitted changes in src" if dirty else ""),
            "binary": self.pgkick,
            "python": platform.python_version(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        self.results["machine"] = m
        return m


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=15, help="paired iterations (default 15)")
    ap.add_argument("--big-iterations", type=int, default=15,
                    help="paired iterations of terminate on 1000 sessions (default 9)")
    ap.add_argument("--slow-iterations", type=int, default=9,
                    help="paired iterations over the slow link (default 9)")
    ap.add_argument("--delay-ms", type=float, default=10.0,
                    help="delay per direction of the slow link (default 10)")
    ap.add_argument("--quick", action="store_true", help="3 iterations of everything")
    ap.add_argument("--only", default="",
                    help="comma-separated subset of "
                    "list,blocked,terminate,statements,startup,slow,locks")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.iterations = args.big_iterations = args.slow_iterations = 3
    only = set(filter(None, args.only.split(",")))
    want = lambda part: not only or part in only  # noqa: E731

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))

    b = Bench(args)
    b.ctl.query(f"DROP DATABASE IF EXISTS {DB}")
    b.ctl.query(f"CREATE DATABASE {DB}")
    m = b.machine()
    print(f"machine: {m['nproc']} x {m['cpu']}, {m['mem_gib']} GiB, Linux {m['kernel']}")
    print(f"server:  {m['postgres']}")
    print(f"pgkick:  {m['pgkick']} at {m['commit']}; {m['psql']}")
    t_start = time.perf_counter()
    step = lambda s: print(f"[{time.perf_counter() - t_start:6.1f}s] {s}", file=sys.stderr, flush=True)  # noqa: E731

    lines = []
    if want("startup"):
        step("startup: --version")
        r = b.startup(max(args.iterations, 30) if not args.quick else 3)
        extra = ""
        if "psql_on_path_s" in r:
            extra = f"; {r['psql_on_path']} (Perl wrapper) {fmt(r['psql_on_path_s'], 's', 4)}"
        lines.append(("4b --version startup", fmt(r["ratio"]),
                      f"pgkick {fmt(r['pgkick_s'], 's', 4)}; psql {fmt(r['psql_s'], 's', 4)}"
                      + extra))
    def server_detail(r):
        return (f"server: pgkick {fmt(r['pgkick_server_ms'], 'ms', 2)} "
                f"(parse {fmt(r['pgkick_parse_ms'], '', 2)}, bind {fmt(r['pgkick_bind_ms'], '', 2)}, "
                f"execute {fmt(r['pgkick_execute_ms'], '', 2)}) in "
                f"{fmt(r['pgkick_statements'], '', 0)} statement(s), psql "
                f"{fmt(r['psql_server_ms'], 'ms', 2)}, ratio {fmt(r['server_ratio'])}; CPU ratio "
                f"{fmt(r['cpu_ratio'])} (pgkick {fmt(r['pgkick_cpu_s'], 's', 4)}, psql "
                f"{fmt(r['psql_cpu_s'], 's', 4)})")

    if want("list"):
        step("list: 200 sessions")
        r = b.bench_list(200, args.iterations, no_match_key="list_no_match")
        lines.append(("1  list --json, 200 sessions", fmt(r["ratio"]),
                      f"pgkick {fmt(r['pgkick_s'], 's', 4)}; psql {fmt(r['psql_s'], 's', 4)}; "
                      + server_detail(r)))
        r = b.results["list_no_match"]
        lines.append(("1a list --json matching none of 200", fmt(r["ratio"]),
                      f"pgkick {fmt(r['pgkick_s'], 's', 4)}; psql {fmt(r['psql_s'], 's', 4)}; "
                      + server_detail(r)))
    if want("blocked"):
        step("list --blocked: 200 sessions queued behind one holder")
        r = b.bench_blocked(200, args.iterations)
        lines.append(("1b list --blocked --json, 200 waiting", fmt(r["ratio"]),
                      f"pgkick {fmt(r['pgkick_s'], 's', 4)}; psql {fmt(r['psql_s'], 's', 4)}; "
                      + server_detail(r)))
    if want("terminate"):
        for n, it in ((10, args.iterations), (300, args.iterations), (1000, args.big_iterations)):
            step(f"terminate --wait: {n} sessions x {it}")
            r = b.bench_terminate(n, it)
            lines.append((f"2  terminate --wait, {n} sessions", fmt(r["ratio"]),
                          f"pgkick {fmt(r['pgkick_s'], 's', 3)}, last backend gone after "
                          f"{fmt(r['pgkick_server_end_s'], 's', 3)}, in statements: signal "
                          f"{fmt(r['pgkick_signal_ms'], 'ms', 0)} + wait "
                          f"{fmt(r['pgkick_wait_ms'], 'ms', 0)}; psql+poll "
                          f"{fmt(r['psql_s'], 's', 3)}, last gone after "
                          f"{fmt(r['psql_server_end_s'], 's', 3)}, signal "
                          f"{fmt(r['psql_signal_ms'], 'ms', 0)}; server time (all statements) "
                          f"pgkick {fmt(r['pgkick_server_ms'], 'ms', 1)}, psql "
                          f"{fmt(r['psql_server_ms'], 'ms', 1)}; CPU ratio {fmt(r['cpu_ratio'])}"))
    if want("statements"):
        step("statements per command: 10, 300, 1000 sessions; peak RSS of list at 1000")
        st = b.statements_and_rss([10, 300, 1000], 5)
        kinds = lambda stmts: len(stmts)  # noqa: E731
        per = "; ".join(f"{n}: list {kinds(e['list'])}, cancel {kinds(e['cancel'])}, "
                        f"terminate --wait {kinds(e['terminate_wait'])}, "
                        f"terminate --lock --wait {kinds(e['terminate_lock_wait'])}"
                        f" (psql+poll {kinds(e['terminate_wait_psql_baseline'])})"
                        for n, e in st.items())
        lines.append(("3  statements per pgkick run", "-", per))
        rss = st["1000"]["peak_rss_kib"]
        lines.append(("4  peak RSS, list 1000 sessions", f"{rss['pgkick'] / 1024:.1f} MiB",
                      f"psql {rss['psql'] / 1024:.1f} MiB (/usr/bin/time -v, largest of 5)"))
    if want("slow"):
        step(f"slow link: {args.delay_ms} ms each way")
        rtt, lst, term = b.slow_link(200, 300, args.slow_iterations, args.delay_ms)
        lines.append((f"5  slow link (RTT {rtt * 1000:.1f} ms): list 200", fmt(lst["ratio"]),
                      f"pgkick {fmt(lst['pgkick_s'], 's', 3)}, {fmt(lst['pgkick_flights'], '', 0)}"
                      f" flights; psql {fmt(lst['psql_s'], 's', 3)}, "
                      f"{fmt(lst['psql_flights'], '', 0)} flights"))
        none = b.results["slow_list_no_match"]
        lines.append((f"5  slow link: list matching none of 200", fmt(none["ratio"]),
                      f"pgkick {fmt(none['pgkick_s'], 's', 3)}, "
                      f"{fmt(none['pgkick_flights'], '', 0)} flights in "
                      f"{fmt(none['pgkick_statements'], '', 0)} statement(s); psql "
                      f"{fmt(none['psql_s'], 's', 3)}, {fmt(none['psql_flights'], '', 0)} flights"))
        lines.append((f"5  slow link: terminate --wait 300", fmt(term["ratio"]),
                      f"pgkick {fmt(term['pgkick_s'], 's', 3)} = "
                      f"{term['pgkick_s']['median'] / rtt:.1f} RTT, "
                      f"{fmt(term['pgkick_flights'], '', 0)} flights; psql+poll "
                      f"{fmt(term['psql_s'], 's', 3)}, {fmt(term['psql_flights'], '', 0)} flights "
                      f"over {fmt(term['psql_connections'], '', 0)} connections"))
    if want("locks"):
        step("lock chains: 1000 sessions none waiting, then 200 waiting")
        r = b.bench_locks(args.iterations, 1000, 200)
        idle, waiting = r["idle"], r["waiting"]
        base = ""
        if "base" in idle:
            base = (f"; before issue 12 {fmt(idle['base']['server_ms'], 'ms', 2)}, "
                    f"ratio {fmt(idle['ratio_server_ms'])}")
        lines.append(("6  list, 1000 sessions, none waiting: server time",
                      fmt(idle["pgkick"]["server_ms"], "ms", 2), "pgkick" + base))
        base = ""
        if "base" in waiting:
            base = (f"; before issue 12 (no lock columns) "
                    f"{fmt(waiting['base']['server_ms'], 'ms', 2)}")
        lines.append(("6  list, 200 waiting + holder: server time",
                      fmt(waiting["pgkick"]["server_ms"], "ms", 2), "pgkick" + base))
        for key, label in (("waiting_root_blocker", "--root-blocker"),
                           ("waiting_blocked_for", "--blocked --blocked-for 1ms")):
            lines.append((f"6  list {label}, 200 waiting",
                          fmt(r[key]["pgkick"]["server_ms"], "ms", 2),
                          f"statements {fmt(r[key]['pgkick']['statements'], '', 0)}, rows "
                          f"{fmt(summary([i['pgkick']['rows'] for i in r[key]['iterations']]), '', 0)}"))
    counts = []
    for key, res in b.results.items():
        if isinstance(res, dict) and "iterations" in res:
            counts += [it["pgkick"]["statements"] for it in res["iterations"]
                       if it["pgkick"].get("statements")]
    if counts:
        b.results["pgkick_statements_all_runs"] = {"min": min(counts), "max": max(counts),
                                                   "runs": len(counts)}
        lines.append(("3  statements, every pgkick run above", "-",
                      f"{min(counts)} to {max(counts)} over {len(counts)} runs"))
    step("done")
    b.results["total_s"] = time.perf_counter() - t_start

    print()
    print("ratio = pgkick / psql per paired iteration: median (min-max)")
    w = max(len(x[0]) for x in lines) if lines else 10
    for name, ratio, detail in lines:
        print(f"{name:<{w}}  {ratio:<22}  {detail}")

    out = os.environ.get("BENCH_OUT")
    if out:
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "w", encoding="utf-8") as f:
            json.dump(b.results, f, indent=1, default=str)
            f.write("\n")
        print(f"\nraw results: {out}")
    b.ctl.close()


if __name__ == "__main__":
    main()
