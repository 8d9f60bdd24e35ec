#!/usr/bin/env python3
"""pyzk side of the pull benchmark (benches/pull/run.sh): download a terminal's attendance log with the unmodified
pyzk library (PyPI `pyzk` 0.9, module `zk`), the same unit of work as the Rust driver: connect, get_attendance(),
disconnect.

Runs --runs timed downloads after --warmup untimed ones and prints one line `PYZK_PULL_JSON {...}` with the
median/min/max in milliseconds (wall and process CPU time), and the share of each run spent in pyzk's `read_with_buffer` (the buffered
1503/1504 transfer) and `get_users` (pyzk reads the users inside get_attendance to map uids), timed by wrapping those
two methods on the instance; what is left is pyzk's record parser. A download of any other count than --expect fails
(exit 1). Read-only: unlike tests/conformance/pyzk_matrix.py it never clears the log, so it is safe on a real
terminal too.

With --runs 1 --warmup 0 it is the process that hyperfine times (interpreter start and import included).
"""

import argparse
import json
import os
import statistics
import sys
import time

try:
    from zk import ZK
except ImportError as error:  # depends on the machine
    print("pyzk not importable (pip install pyzk): %s" % error, file=sys.stderr)
    sys.exit(2)


def timed(spent, name, method):
    """Wrap a bound method so that the seconds spent in it add up in spent[name]."""

    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            spent[name] += time.perf_counter() - started

    return wrapper


def runqueue_wait():
    """Seconds this process's threads spent runnable but waiting for a core (Linux schedstat; 0 elsewhere)."""
    total = 0
    try:
        for tid in os.listdir("/proc/self/task"):
            with open("/proc/self/task/%s/schedstat" % tid) as f:
                total += int(f.read().split()[1])
    except (OSError, IndexError, ValueError):
        return 0.0
    return total / 1e9


def download(args):
    """One connect + get_attendance + disconnect; returns (seconds, CPU seconds, spent by phase, records)."""
    spent = {"read_with_buffer": 0.0, "get_users": 0.0}
    cpu_started = time.process_time()
    wait_started = runqueue_wait()
    started = time.perf_counter()
    zk = ZK(
        args.host,
        port=args.port,
        timeout=args.timeout,
        password=args.comm_key,
        force_udp=args.udp,
        ommit_ping=True,
    )
    zk.read_with_buffer = timed(spent, "read_with_buffer", zk.read_with_buffer)
    zk.get_users = timed(spent, "get_users", zk.get_users)
    conn = zk.connect()
    try:
        records = conn.get_attendance()
    finally:
        conn.disconnect()
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    spent["runqueue_wait"] = runqueue_wait() - wait_started
    if len(records) != args.expect:
        print("read %d punches, expected %d" % (len(records), args.expect), file=sys.stderr)
        sys.exit(1)
    return elapsed, cpu, spent, records


def summary(seconds):
    ms = sorted(s * 1000.0 for s in seconds)
    return {
        "median_ms": statistics.median(ms) if ms else None,
        "min_ms": ms[0] if ms else None,
        "max_ms": ms[-1] if ms else None,
        "runs_ms": ms,
    }


def record_json(r):
    return {
        "uid": r.uid,
        "pin": r.user_id,
        "time": r.timestamp.isoformat(),
        "verify_mode": r.status,
        "punch_state": r.punch,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--udp", action="store_true")
    parser.add_argument("--comm-key", type=int, default=0)
    parser.add_argument("--timeout", type=int, default=10)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--expect", type=int, required=True)
    args = parser.parse_args()

    for _ in range(args.warmup):
        download(args)
    totals, cpu_times, waits, transfers, users = [], [], [], [], []
    records = []
    for _ in range(args.runs):
        elapsed, cpu, spent, records = download(args)
        totals.append(elapsed)
        cpu_times.append(cpu)
        waits.append(spent["runqueue_wait"])
        transfers.append(spent["read_with_buffer"])
        users.append(spent["get_users"])
    report = {
        "transport": "udp" if args.udp else "tcp",
        "punches": len(records),
        "records": {
            "count": len(records),
            "first": record_json(records[0]) if records else None,
            "last": record_json(records[-1]) if records else None,
        },
        "time": summary(totals),
        "cpu": summary(cpu_times),
        "runqueue_wait": summary(waits),
        "read_with_buffer": summary(transfers),
        "get_users": summary(users),
    }
    print("PYZK_PULL_JSON " + json.dumps(report))


if __name__ == "__main__":
    main()
