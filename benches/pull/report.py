#!/usr/bin/env python3
"""Turn the pull benchmark's JSON files (benches/pull/run.sh writes them to $WORK) into the markdown report.

Also checks that both clients read the same log: the same count and the same first and last punch (PIN, time,
verify mode, punch state); a mismatch is printed in the report and makes the exit status 1.
"""

import argparse
import json
import os
import platform
import subprocess
import sys


def load(work, name):
    with open(os.path.join(work, name)) as f:
        return json.load(f)


def command_output(*argv):
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "?"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def pyzk_version():
    try:
        from importlib.metadata import version

        return version("pyzk")
    except Exception:  # depends on the machine
        return "?"


def ms(value):
    return "%.1f ms" % value if value < 1000 else "%.2f s" % (value / 1000.0)


def spread(summary):
    return "%s (min %s, max %s)" % (ms(summary["median_ms"]), ms(summary["min_ms"]), ms(summary["max_ms"]))


def hyperfine_by_name(data):
    """hyperfine's results by command name, in milliseconds: median, min, max."""
    out = {}
    for result in data["results"]:
        out[result["command"]] = {
            "median_ms": result["median"] * 1000.0,
            "min_ms": result["min"] * 1000.0,
            "max_ms": result["max"] * 1000.0,
            "cpu_ms": (result["user"] + result["system"]) * 1000.0,
        }
    return out


def same_records(ours, theirs):
    """pyzk has no time zone either; compare PIN, local time, verify mode and punch state."""
    keys = ("pin", "time", "verify_mode", "punch_state")
    if ours["count"] != theirs["count"]:
        return "counts differ: ours %d, pyzk %d" % (ours["count"], theirs["count"])
    for end in ("first", "last"):
        a, b = ours[end], theirs[end]
        if (a is None) != (b is None) or (a and any(a[k] != b[k] for k in keys)):
            return "%s punch differs: ours %s, pyzk %s" % (end, a, b)
    return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", required=True)
    parser.add_argument("--runs", type=int, required=True)
    parser.add_argument("--punches", type=int, required=True)
    parser.add_argument("--users", type=int, required=True)
    parser.add_argument("--comm-key", type=int, required=True)
    parser.add_argument("--sim-cpu", required=True)
    parser.add_argument("--client-cpu", required=True)
    parser.add_argument("--load-before", required=True)
    parser.add_argument("--load-after", required=True)
    parser.add_argument("--busy-before", default="?")
    parser.add_argument("--others", default="?")
    parser.add_argument("--transports", nargs="+", required=True)
    args = parser.parse_args()

    problems = []
    lines = []
    add = lines.append
    add("### Pull: %s punches, ours against pyzk %s on the same simulator" % (format(args.punches, ","), pyzk_version()))
    add("")
    add("Median of %d runs after a warm-up. Simulator (`punchd simulate pull`, zk8 profile, %d users, comm key %d) "
        "pinned to core %s; every client pinned to core %s." % (args.runs, args.users, args.comm_key, args.sim_cpu,
                                                                args.client_cpu))
    add("")
    add("| transport | measure | ours | pyzk | pyzk / ours |")
    add("|---|---|---|---|---|")
    for transport in args.transports:
        ours = load(args.work, "ours-%s.json" % transport)
        pyzk = load(args.work, "pyzk-%s.json" % transport)
        processes = hyperfine_by_name(load(args.work, "hyperfine-%s.json" % transport))
        problem = same_records(ours["records"], pyzk["records"])
        if problem:
            problems.append("%s: %s" % (transport, problem))
        sim_ours = load(args.work, "sim-ours-%s.json" % transport)["cpu_ms_per_download"]
        sim_pyzk = load(args.work, "sim-pyzk-%s.json" % transport)["cpu_ms_per_download"]
        t = transport.upper()
        ours_ms, pyzk_ms = ours["time"]["median_ms"], pyzk["time"]["median_ms"]
        add("| %s | **library wall**: connect + read log + disconnect | %s | %s | **%.0f×** |"
            % (t, spread(ours["time"]), spread(pyzk["time"]), pyzk_ms / ours_ms))
        add("| %s | library CPU (client process, all threads) | %s | %s | %.0f× |"
            % (t, ms(ours["cpu"]["median_ms"]), ms(pyzk["cpu"]["median_ms"]),
               pyzk["cpu"]["median_ms"] / ours["cpu"]["median_ms"]))
        add("| %s | simulator CPU per download (mean) | %s | %s | |" % (t, ms(sim_ours), ms(sim_pyzk)))
        add("| %s | waiting: library wall − client CPU − simulator CPU | %s | %s | |"
            % (t, ms(max(0.0, ours_ms - ours["cpu"]["median_ms"] - sim_ours)),
               ms(max(0.0, pyzk_ms - pyzk["cpu"]["median_ms"] - sim_pyzk))))
        wait_ours = load(args.work, "sim-ours-%s.json" % transport)["runqueue_wait_ms_per_download"]
        wait_pyzk = load(args.work, "sim-pyzk-%s.json" % transport)["runqueue_wait_ms_per_download"]
        add("| %s | of which waiting for a core held by other work: client (median) + simulator (mean) | %s + %s | %s + %s | |"
            % (t, ms(ours["runqueue_wait"]["median_ms"]), ms(wait_ours), ms(pyzk["runqueue_wait"]["median_ms"]),
               ms(wait_pyzk)))
        add("| %s | process wall: `punchd pull --format csv` / `python3 pyzk_pull.py` | %s | %s | %.0f× |"
            % (t, spread(processes["punchd pull"]), spread(processes["pyzk"]),
               processes["pyzk"]["median_ms"] / processes["punchd pull"]["median_ms"]))
        add("| %s | process CPU, user + sys (mean) | %s | %s | %.0f× |"
            % (t, ms(processes["punchd pull"]["cpu_ms"]), ms(processes["pyzk"]["cpu_ms"]),
               processes["pyzk"]["cpu_ms"] / processes["punchd pull"]["cpu_ms"]))
        add("| %s | pyzk wall inside `read_with_buffer` (users + log transfer) | | %s | |"
            % (t, spread(pyzk["read_with_buffer"])))
    add("")
    add("Downloaded log: %s bytes (raw, 40-byte records), %s punches; first and last punch identical in both clients: %s."
        % (format(load(args.work, "ours-tcp.json")["raw_bytes"], ","), format(args.punches, ","),
           "no, see below" if problems else "yes"))
    for problem in problems:
        add("")
        add("**MISMATCH** %s" % problem)
    ingest = load(args.work, "ingest.json")
    add("")
    add("### Ingest of the pulled batch (one delivery of %s punches, fresh SQLite store, %s)"
        % (format(ingest["punches"], ","), ingest["durability"]))
    add("")
    add("| batch | wall per batch | punches/s (median wall) | CPU per batch (all threads) | waiting for a core |")
    add("|---|---|---|---|---|")
    for name, key in (("first ingest (all new)", "fresh"), ("same batch again (all duplicates)", "duplicates")):
        add("| %s | %s | %s | %s | %s |" % (name, spread(ingest[key]["time"]),
                                            format(round(ingest[key]["punches_per_s"]), ","),
                                            ms(ingest[key]["cpu"]["median_ms"]),
                                            ms(ingest[key]["runqueue_wait"]["median_ms"])))
    add("")
    add("### Machine")
    add("")
    add("- %s cores, %s; %s" % (command_output("nproc"), cpu_model(), command_output("uname", "-sr")))
    add("- %s; Python %s, pyzk %s; %s" % (command_output("rustc", "--version"), platform.python_version(),
                                                    pyzk_version(), command_output("hyperfine", "--version")))
    add("- commit %s%s" % (command_output("git", "rev-parse", "--short", "HEAD"),
                          " (with uncommitted changes)" if command_output("git", "status", "--porcelain", "--",
                                                                           "crates", "benches") else ""))
    add("- load average (1/5/15 min) before: %s; after: %s" % (args.load_before, args.load_after))
    add("- cores busy with other work in the second before the clients started (simulator idle): %s"
        % args.busy_before)
    add("- CPU taken by other work (not the simulator or the clients) while the benchmark ran: %s" % args.others)
    print("\n".join(lines))
    if problems:
        sys.exit(1)


if __name__ == "__main__":
    main()
