#!/usr/bin/env python3
"""pgkick over a fleet: 8 throwaway servers with 20 idle sessions each (issues 13 and 20).

Started by bench/fleet, which builds pgkick and finds the server binaries and psql; it passes
BENCH_PGKICK, BENCH_BINDIR, BENCH_PSQL and BENCH_OUT in the environment. Measures, each as the
median of several runs:

- peers (issue 20), paired in rotating order: `pgkick -d S1 ... -d SN list --db benchdb
  --json` against `xargs -P N` running the psql one-liner once per server and against a
  sequential `for` loop of it; wall and CPU (wait4: the process and the children it waited
  for) of each, and the server time (log_min_duration_statement) of their statements;

- `list --json` across every server vs on one server: ratio of wall times (goal <= 2.0);
- `terminate --wait --yes` across every server vs the slowest of the single-server runs
  (goal <= 1.5), refilling the idle sessions before each run;
- the statements pgkick sends to each server (log_min_duration_statement = 0, application
  pgkick), in
  the single-server run and in the fleet run (goal: the same);
- peak RSS of pgkick across every server (/usr/bin/time -v; goal <= 32 MiB).

Servers are kept small: shared_buffers 16MB, max_connections 80, fsync off, unix
sockets only. Sessions are opened with bench.py's raw wire client (a file descriptor each).
"""

import importlib.util
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("bench", os.path.join(HERE, "bench.py"))
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)

SERVERS = int(os.environ.get("BENCH_FLEET_SERVERS", "8"))
SESSIONS = int(os.environ.get("BENCH_FLEET_SESSIONS", "20"))
RUNS = int(os.environ.get("BENCH_FLEET_RUNS", "5"))
# Paired iterations of the peers' comparison.
PEER_RUNS = int(os.environ.get("BENCH_FLEET_PEER_RUNS", "15"))
# Which parts run: peers, list, terminate, linked (all by default).
PARTS = set(os.environ.get("BENCH_FLEET_PARTS", "peers,list,terminate,linked").split(","))
# One way, per chunk: a round trip over the delayed link costs twice this.
DELAY_MS = int(os.environ.get("BENCH_FLEET_DELAY_MS", "10"))
APP = bench.IDLE_APP


def as_server_user(argv):
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


def free_port(base=[41000]):
    import socket
    while True:
        base[0] += 1
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", base[0])) != 0:
                return base[0]


def start_servers(bindir, root):
    template = os.path.join(root, "template")
    subprocess.run(as_server_user([f"{bindir}/initdb", "-D", template, "-U", "postgres",
                                   "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"]),
                   check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(template, "postgresql.conf"), "a") as f:
        f.write("shared_buffers = 16MB\nmax_connections = 80\nfsync = off\n"
                "listen_addresses = '127.0.0.1'\nlog_min_duration_statement = 0\n"
                "log_line_prefix = '%a|'\n"
                "log_connections = off\nlog_disconnections = off\n")
    servers = []
    for i in range(SERVERS):
        d = os.path.join(root, f"s{i}")
        os.mkdir(d)
        shutil.copytree(template, os.path.join(d, "data"), symlinks=True)
        port = free_port()
        with open(os.path.join(d, "data", "postgresql.conf"), "a") as f:
            f.write(f"unix_socket_directories = '{d}'\nport = {port}\n")
        subprocess.run(["chown", "-R", "postgres:postgres", d] if os.geteuid() == 0 else ["true"],
                       check=True)
        os.chmod(os.path.join(d, "data"), 0o700)
        subprocess.run(as_server_user([f"{bindir}/pg_ctl", "-D", os.path.join(d, "data"), "-l",
                                       os.path.join(d, "log"), "-w", "-t", "60", "start"]),
                       check=True, stdout=subprocess.DEVNULL)
        servers.append({"dir": d, "port": port, "server": bench.Server(d, port)})
    for s in servers:
        ctl = s["server"].connect("postgres", "bench_ctl")
        ctl.query(f"CREATE DATABASE {bench.DB}")
        ctl.close()
    return servers


def stop_servers(bindir, servers):
    for s in servers:
        subprocess.run(as_server_user([f"{bindir}/pg_ctl", "-D", os.path.join(s["dir"], "data"),
                                       "-m", "immediate", "-w", "stop"]),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def value(s):
    return f"host={s['dir']} port={s['port']}"


def log_size(s):
    return os.path.getsize(os.path.join(s["dir"], "log"))


def statements_since(s, pos):
    """The kinds of statement pgkick sent to the server since `pos` (bench.py's reading of
    the log), the polls of --wait apart: how many polls a wait takes depends on how fast the
    server ends the sessions, not on pgkick."""
    log = bench.Log(os.path.join(s["dir"], "log"))
    log.pos = pos
    kinds = [k for k, _ in log.statements("pgkick")]
    return " ".join(k for k in kinds if k != "poll"), kinds.count("poll")


def fill(servers, sessions):
    """Closes what is left of each server's idle sessions and opens SESSIONS new ones."""
    for s in servers:
        bench.close_all(sessions.get(s["port"], []))
        sessions[s["port"]], _ = s["server"].open_idle(SESSIONS)


def timed(argv):
    dt, rc, err = bench.run_cmd(argv)
    if rc != 0:
        raise SystemExit(f"exit {rc}: {' '.join(argv)}\n{err}")
    return dt


def cpu_s(argv):
    """pgkick's own CPU time (user + system) for one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    timed(argv)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


PSQL_SQL = ("SELECT pid, datname, usename, application_name, client_addr, state, query "
            f"FROM pg_stat_activity WHERE datname = '{bench.DB}' AND pid <> pg_backend_pid()")


def peers(results, pgkick, psql, servers):
    """pgkick over every server against what an operator scripts today: xargs -P N psql and a
    sequential psql loop, each command run once per iteration in rotating order."""
    values = [value(s) for s in servers]
    conn = [f"{v} dbname=postgres" for v in values]
    cmds = {
        "pgkick": [pgkick, "-w", "-U", "postgres",
                   *[x for v in values for x in ("-d", v)], "list", "--db", bench.DB, "--json"],
        "xargs": ["bash", "-c", f'printf "%s\\n" "$@" | xargs -P {len(servers)} -I{{}} '
                  f'{psql} -X -At -w -U postgres -d {{}} -c "{PSQL_SQL}"', "_", *conn],
        "loop": ["bash", "-c", f'for s in "$@"; do {psql} -X -At -w -U postgres -d "$s" '
                 f'-c "{PSQL_SQL}" || exit 1; done', "_", *conn],
    }
    expect = {"pgkick": len(servers) * SESSIONS, "xargs": len(servers) * SESSIONS,
              "loop": len(servers) * SESSIONS}
    names = list(cmds)
    runs = []
    for i in range(PEER_RUNS):
        order = names[i % 3:] + names[:i % 3]
        run = {}
        for name in order:
            logs = [bench.Log(os.path.join(s["dir"], "log")) for s in servers]
            for log in logs:
                log.mark()
            with tempfile.TemporaryFile() as out:
                dt, rc, err, cpu = bench.run_timed(cmds[name], stdout=out)
                out.seek(0)
                body = out.read()
            rows = len(json.loads(body)) if name == "pgkick" else len(body.splitlines())
            if rc != 0 or rows != expect[name]:
                raise SystemExit(f"{name}: exit {rc}, {rows} rows for {expect[name]}: {err}")
            app = "pgkick" if name == "pgkick" else "psql"
            stmts = [st for log in logs for st in log.parsed(app)]
            run[name] = {"s": dt, "cpu_s": cpu, "statements": len(stmts),
                         "server_ms": sum(st["ms"] for st in stmts)}
        run["ratio_xargs"] = run["pgkick"]["s"] / run["xargs"]["s"]
        run["ratio_loop"] = run["pgkick"]["s"] / run["loop"]["s"]
        run["cpu_ratio_xargs"] = run["pgkick"]["cpu_s"] / run["xargs"]["cpu_s"]
        runs.append(run)
    med = lambda xs: statistics.median(xs)  # noqa: E731
    out = {"servers": len(servers), "sessions_per_server": SESSIONS, "runs": PEER_RUNS,
           "commands": cmds, "iterations": runs}
    for k in ("ratio_xargs", "ratio_loop", "cpu_ratio_xargs"):
        xs = [r[k] for r in runs]
        out[k] = {"median": med(xs), "min": min(xs), "max": max(xs)}
    for name in names:
        out[name] = {
            "wall_s": med([r[name]["s"] for r in runs]),
            "cpu_s": med([r[name]["cpu_s"] for r in runs]),
            "cpu_ms_per_server": med([r[name]["cpu_s"] for r in runs]) * 1000 / len(servers),
            "server_ms": med([r[name]["server_ms"] for r in runs]),
            "statements": med([r[name]["statements"] for r in runs]),
        }
    out["pgkick_peak_rss_kib"] = bench.peak_rss_kib(cmds["pgkick"])
    results["peers"] = out


def start_proxies(servers, root):
    """A delaying proxy (bench/delay_proxy.py) in front of each server: the fleet as it is
    in production, each server across a network link, not all on this machine's 2 cores."""
    proxies = []
    for s in servers:
        port = free_port()
        p = subprocess.Popen([sys.executable, os.path.join(HERE, "delay_proxy.py"), str(port),
                              str(s["port"]), str(DELAY_MS), os.path.join(root, "proxy.stats")],
                             stdout=subprocess.PIPE, text=True)
        if p.stdout.readline().strip() != "ready":
            raise SystemExit("a delaying proxy did not start")
        proxies.append((p, f"host=127.0.0.1 port={port} sslmode=disable"))
    return proxies


def linked(results, key, one, fleet, flt, servers, sessions):
    """list and terminate --wait over the delayed links, one server vs all of them."""
    single_list = [timed([*one, "list", "--json", *flt]) for _ in range(RUNS)]
    fleet_list = [timed([*fleet, "list", "--json", *flt]) for _ in range(RUNS)]
    singles, fleets = [], []
    for _ in range(RUNS):
        singles.append(timed([*one, "terminate", "--wait", "--yes", *flt]))
        fill(servers, sessions)
        fleets.append(timed([*fleet, "terminate", "--wait", "--yes", *flt]))
        fill(servers, sessions)
    results[key] = {
        "delay_ms_each_way": DELAY_MS,
        "list": {"single_s": single_list, "fleet_s": fleet_list,
                 "ratio": statistics.median(fleet_list) / statistics.median(single_list)},
        "terminate": {"single_s": singles, "fleet_s": fleets,
                      "ratio": statistics.median(fleets) / statistics.median(singles)}}


def main():
    pgkick, bindir = os.environ["BENCH_PGKICK"], os.environ["BENCH_BINDIR"]
    psql = os.environ.get("BENCH_PSQL", "psql")
    # A SIGTERM still stops the servers (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    root = tempfile.mkdtemp(prefix="pgkick-fleet-")
    os.chmod(root, 0o755)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    results = {"servers": SERVERS, "sessions_per_server": SESSIONS, "runs": RUNS}
    servers = []
    try:
        t0 = time.perf_counter()
        servers = start_servers(bindir, root)
        results["start_s"] = time.perf_counter() - t0
        listing = os.path.join(root, "servers.txt")
        with open(listing, "w") as f:
            f.write("# the benchmark's fleet\n" + "\n".join(value(s) for s in servers) + "\n")
        base = [pgkick, "-w", "-U", "postgres"]
        fleet = [*base, "--servers", listing]
        sessions = {}
        fill(servers, sessions)
        one = [*base, "-d", value(servers[0])]
        flt = ["--app", APP, "--db", bench.DB]
        if os.environ.get("BENCH_FLEET_HOLD"):
            # For a look by hand: the fleet stays up this many seconds.
            print(f"servers: {listing}", flush=True)
            time.sleep(float(os.environ["BENCH_FLEET_HOLD"]))

        if "peers" in PARTS:
            with open("/proc/loadavg") as f:
                results["loadavg_before_peers"] = f.read().split()[:3]
            peers(results, pgkick, psql, servers)
            with open("/proc/loadavg") as f:
                results["loadavg_after_peers"] = f.read().split()[:3]
        if not PARTS & {"list", "terminate", "linked"}:
            return report(results)
        single_list = [timed([*one, "list", "--json", *flt]) for _ in range(RUNS)]
        fleet_list = [timed([*fleet, "list", "--json", *flt]) for _ in range(RUNS)]
        seq_list = [timed([*fleet, "--jobs", "1", "list", "--json", *flt]) for _ in range(RUNS)]
        results["list"] = {"single_s": single_list, "fleet_s": fleet_list,
                           "sequential_s": seq_list,
                           "ratio": statistics.median(fleet_list) / statistics.median(single_list)}
        results["pgkick_cpu_s_list"] = cpu_s([*fleet, "list", "--json", *flt])
        with open("/proc/loadavg") as f:
            results["loadavg_before"] = f.read().split()[:3]

        pos = [log_size(s) for s in servers]
        timed([*one, "list", "--json", *flt])
        list_single = statements_since(servers[0], pos[0])[0]
        pos = [log_size(s) for s in servers]
        timed([*fleet, "list", "--json", *flt])
        results["list_statements_per_server"] = {
            "single": list_single,
            "fleet": sorted({statements_since(s, p)[0] for s, p in zip(servers, pos)})}
        rss = bench.peak_rss_kib([*fleet, "list", "--json", *flt])
        results["peak_rss_kib_list"] = rss

        # terminate --wait: each single server once per run, then the fleet.
        singles, fleets, stmts_single, stmts_fleet = [], [], [], []
        for _ in range(RUNS):
            per = []
            for s in servers:
                pos = log_size(s)
                per.append(timed([*base, "-d", value(s), "terminate", "--wait", "--yes", *flt]))
                stmts_single.append(statements_since(s, pos))
            singles.append(max(per))
            fill(servers, sessions)
            pos = {s["port"]: log_size(s) for s in servers}
            fleets.append(timed([*fleet, "terminate", "--wait", "--yes", *flt]))
            stmts_fleet += [statements_since(s, pos[s["port"]]) for s in servers]
            fill(servers, sessions)
        results["terminate"] = {
            "slowest_single_s": singles, "fleet_s": fleets,
            "ratio": statistics.median(fleets) / statistics.median(singles)}
        results["statements_per_server"] = {
            "single": sorted({k for k, _ in stmts_single}),
            "fleet": sorted({k for k, _ in stmts_fleet}),
            "polls_single": sorted({p for _, p in stmts_single}),
            "polls_fleet": sorted({p for _, p in stmts_fleet})}
        results["peak_rss_kib_terminate"] = bench.peak_rss_kib(
            [*fleet, "terminate", "--wait", "--yes", *flt])
        fill(servers, sessions)

        # --max over the fleet: every server waits at the gate on its own connection until
        # the targets of all are counted, so its statements are those of the run without it.
        pos = {s["port"]: log_size(s) for s in servers}
        cap = str(SERVERS * SESSIONS)
        guarded = timed([*fleet, "terminate", "--wait", "--yes", "--max", cap, *flt])
        results["terminate_max"] = {
            "fleet_s": guarded,
            "statements": sorted({statements_since(s, pos[s["port"]])[0] for s in servers})}
        fill(servers, sessions)

        proxies = start_proxies(servers, root)
        try:
            linked_file = os.path.join(root, "linked.txt")
            with open(linked_file, "w") as f:
                f.write("\n".join(v for _, v in proxies) + "\n")
            linked(results, "linked", [*base, "-d", proxies[0][1]],
                   [*base, "--servers", linked_file], flt, servers, sessions)
        finally:
            for p, _ in proxies:
                p.terminate()
                p.wait()
        for ws in sessions.values():
            bench.close_all(ws)
    finally:
        stop_servers(bindir, servers)
        shutil.rmtree(root, ignore_errors=True)

    return report(results)


def report(results):
    pe = results.get("peers")
    if pe:
        n = pe["servers"]
        print(f"peers: {n} servers x {pe['sessions_per_server']} idle sessions, "
              f"{pe['runs']} paired runs (medians)")
        for name in ("pgkick", "xargs", "loop"):
            r = pe[name]
            print(f"  {name:7} wall {r['wall_s'] * 1000:6.1f} ms, CPU {r['cpu_s'] * 1000:6.1f} ms "
                  f"({r['cpu_ms_per_server']:.2f} ms per server), server time "
                  f"{r['server_ms']:.1f} ms in {r['statements']:.0f} statements")
        for k, label in (("ratio_xargs", "pgkick / xargs -P"), ("ratio_loop", "pgkick / loop"),
                         ("cpu_ratio_xargs", "CPU pgkick / xargs -P")):
            r = pe[k]
            print(f"  {label:22} {r['median']:.2f} ({r['min']:.2f}-{r['max']:.2f})")
        print(f"  peak RSS of pgkick: {pe['pgkick_peak_rss_kib'] / 1024:.1f} MiB")
        if "loadavg_before_peers" in results:
            print(f"  load average before {' '.join(results['loadavg_before_peers'])}, after "
                  f"{' '.join(results.get('loadavg_after_peers', []))} on {os.cpu_count()} cores")
    if "list" in results:
        lst, term = results["list"], results["terminate"]
        print(f"servers: {SERVERS} x {SESSIONS} idle sessions, {RUNS} runs each (medians)")
        print(f"list --json:            one {statistics.median(lst['single_s'])*1000:.0f} ms, "
              f"fleet {statistics.median(lst['fleet_s'])*1000:.0f} ms, ratio {lst['ratio']:.2f} "
              f"(goal <= 2.0); --jobs 1: {statistics.median(lst['sequential_s'])*1000:.0f} ms; "
              f"pgkick's own CPU {results['pgkick_cpu_s_list']*1000:.0f} ms")
        print(f"terminate --wait --yes: slowest single "
              f"{statistics.median(term['slowest_single_s'])*1000:.0f} ms, fleet "
              f"{statistics.median(term['fleet_s'])*1000:.0f} ms, ratio {term['ratio']:.2f} "
              "(goal <= 1.5)")
        ln = results["linked"]
        for what in ("list", "terminate"):
            r = ln[what]
            print(f"over {DELAY_MS} ms links, {what}: one "
                  f"{statistics.median(r['single_s'])*1000:.0f} ms, fleet "
                  f"{statistics.median(r['fleet_s'])*1000:.0f} ms, ratio {r['ratio']:.2f}")
        ls = results["list_statements_per_server"]
        print(f"list statements/server: single [{ls['single']}], fleet {ls['fleet']}")
        sp = results["statements_per_server"]
        print(f"terminate statements:   single {sp['single']}, fleet {sp['fleet']} (besides "
              f"--wait's polls: single {sp['polls_single']}, fleet {sp['polls_fleet']})")
        tm = results["terminate_max"]
        print(f"terminate --max {SERVERS * SESSIONS}: {tm['fleet_s']*1000:.0f} ms, statements/server "
              f"{tm['statements']}")
        print(f"load average before: {' '.join(results['loadavg_before'])} on {os.cpu_count()} cores")
        print(f"peak RSS: list {results['peak_rss_kib_list']/1024:.1f} MiB, terminate "
              f"{results['peak_rss_kib_terminate']/1024:.1f} MiB (goal <= 32 MiB)")
    out = os.environ.get("BENCH_OUT")
    if out:
        with open(out, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1, default=str)
            f.write("\n")
        print(f"raw results: {out}")


if __name__ == "__main__":
    sys.exit(main())
