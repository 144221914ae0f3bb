#!/usr/bin/env python3
"""The --pgbouncer maintenance cycle with N clients queued in the pooler (issue 15).

Started by bench/pgbouncer, which builds pgkick and starts a server and a PgBouncer in front of
it, passing their coordinates in the environment (BENCH_PGKICK, BENCH_HOST, BENCH_PORT,
BENCH_PGB_HOST, BENCH_PGB_PORT, BENCH_OUT). One iteration, for N clients:

1. N clients connect through the pooler and run one query (not timed);
2. `pgkick lock --db benchdb --pgbouncer ...`: PAUSE on the pooler, then the lock (timed);
3. every client sends `SELECT 1`: they queue in the pooler (checked with SHOW POOLS);
4. `pgkick unlock --db benchdb`: the unlock, then RESUME of the recorded pooler (timed);
5. the time from the start of the unlock until the last queued client has its answer.

The clients are raw protocol connections from bench/bench.py's Wire, so N costs sockets, not
processes. Medians and min-max over the iterations.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import Server  # noqa: E402

DB = "benchdb"


def pgkick(env, *args):
    argv = [env["pgkick"], "-h", env["host"], "-p", env["port"], "-U", "postgres", *args]
    t0 = time.perf_counter()
    out = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    took = time.perf_counter() - t0
    if out.returncode != 0:
        sys.exit(f"pgkick {' '.join(args)} exited {out.returncode}: {out.stderr.strip()}")
    return took


def pools(admin, column):
    rows = admin.query("SHOW POOLS")
    # database, user, cl_active, cl_waiting, ...: read the header by position of SHOW POOLS.
    index = {"cl_active": 2, "cl_waiting": 3}[column]
    return sum(int(r[index]) for r in rows if r[0] == DB)


def one_cycle(env, pooler, n):
    clients = [pooler.connect(DB, f"bench_client_{i}") for i in range(n)]
    for c in clients:
        c.query("SELECT 1")
    lock_s = pgkick(env, "lock", "--db", DB, "--pgbouncer", env["conninfo"])
    for c in clients:
        c.send_query("SELECT 1")
    admin = pooler.connect("pgbouncer", "bench_admin")
    deadline = time.monotonic() + 30
    while pools(admin, "cl_waiting") < n:
        if time.monotonic() > deadline:
            sys.exit(f"only {pools(admin, 'cl_waiting')} of {n} clients queued")
    admin.close()
    t0 = time.perf_counter()
    unlock_s = pgkick(env, "unlock", "--db", DB)
    for c in clients:
        c.until_ready()
    served_s = time.perf_counter() - t0
    for c in clients:
        c.close()
    return {"lock_ms": lock_s * 1000, "unlock_ms": unlock_s * 1000,
            "all_served_ms": served_s * 1000}


def summary(values):
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", default="0,10,50,150",
                    help="comma-separated numbers of queued clients (default 0,10,50,150)")
    ap.add_argument("--iterations", type=int, default=7)
    ap.add_argument("-v", action="store_true", help="one line per iteration")
    args = ap.parse_args()
    env = {
        "pgkick": os.environ["BENCH_PGKICK"],
        "host": os.environ["BENCH_HOST"],
        "port": os.environ["BENCH_PORT"],
        "conninfo": f"host={os.environ['BENCH_PGB_HOST']} port={os.environ['BENCH_PGB_PORT']} "
                    "user=postgres",
    }
    pooler = Server(os.environ["BENCH_PGB_HOST"], int(os.environ["BENCH_PGB_PORT"]))
    deadline = time.monotonic() + 30
    while True:
        try:
            pooler.connect("pgbouncer", "bench_admin").close()
            break
        except OSError:
            if time.monotonic() > deadline:
                sys.exit("PgBouncer did not start")
            time.sleep(0.1)
    version = subprocess.run(["/usr/sbin/pgbouncer", "--version"], capture_output=True,
                             text=True).stdout.splitlines()[0]
    results = {"pgbouncer": version, "iterations": args.iterations, "runs": {}}
    print(f"{version}; {args.iterations} iterations per row; times in ms, median (min-max)")
    print(f"{'queued clients':>14} | {'lock (PAUSE + lock)':>22} | {'unlock (+ RESUME)':>20} "
          f"| {'last client served':>20}")
    for n in [int(x) for x in args.clients.split(",")]:
        runs = []
        for i in range(args.iterations):
            r = one_cycle(env, pooler, n)
            runs.append(r)
            if args.v:
                print(f"  n={n} #{i}: " + ", ".join(f"{k} {v:.1f}" for k, v in r.items()))
        results["runs"][n] = runs
        cells = []
        for key in ("lock_ms", "unlock_ms", "all_served_ms"):
            s = summary([r[key] for r in runs])
            cells.append(f"{s['median']:.1f} ({s['min']:.1f}-{s['max']:.1f})")
        print(f"{n:>14} | {cells[0]:>22} | {cells[1]:>20} | {cells[2]:>20}")
    with open(os.environ["BENCH_OUT"], "w") as f:
        json.dump(results, f, indent=1)
    print(f"raw numbers: {os.environ['BENCH_OUT']}")


if __name__ == "__main__":
    main()
