"""Medians and ratios of scripts/bench/side-by-side.sh runs (the last block of runs.tsv, after its last '#' line).

Usage: python3 side_by_side_report.py runs.tsv
Prints a Markdown table per server (median requests/s, punches acknowledged/s, p50, p99, CPU µs per request,
peak RSS) and the ratios punchd / reference of throughput and of CPU per request, scenario by scenario.
"""

import statistics
import sys
from collections import defaultdict

lines = open(sys.argv[1]).read().splitlines()
last = max((i for i, l in enumerate(lines) if l.startswith("#")), default=-1)
header = lines[last] if last >= 0 else ""
runs = defaultdict(list)
for line in lines[last + 1:]:
    f = line.split("\t")
    if len(f) < 11:
        continue
    server, scenario = f[0], f[1]
    runs[(server, scenario)].append({
        "rps": float(f[3]), "pps": float(f[4]), "p50": float(f[5]), "p99": float(f[6]),
        "us": float(f[8]), "hwm": int(f[9]), "load1": float(f[10]),
    })

servers = sorted({s for s, _ in runs}, key=lambda s: (s == "reference", s))
scenarios = [s for s in ("polls", "attlog1", "attlog10", "attlog100", "attlog10dup") if any(k[1] == s for k in runs)]


def med(server, scenario, key):
    values = [r[key] for r in runs.get((server, scenario), [])]
    return statistics.median(values) if values else None


print(header)
print()
print("| server | scenario | runs | requests/s | punches/s | p50 ms | p99 ms | CPU µs/request | peak RSS MB | load1 |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
for server in servers:
    for scenario in scenarios:
        rs = runs.get((server, scenario))
        if not rs:
            continue
        loads = [r["load1"] for r in rs]
        print(f"| {server} | {scenario} | {len(rs)} | {med(server, scenario, 'rps'):,.0f} | "
              f"{med(server, scenario, 'pps'):,.0f} | {med(server, scenario, 'p50'):.2f} | "
              f"{med(server, scenario, 'p99'):.2f} | {med(server, scenario, 'us'):.0f} | "
              f"{med(server, scenario, 'hwm') / 1024:.0f} | {min(loads):.1f}–{max(loads):.1f} |")
print()
print("| scenario | server | throughput / reference | CPU per request / reference |")
print("|---|---|---:|---:|")
for scenario in scenarios:
    ref_rate = med("reference", scenario, "rps" if scenario == "polls" else "pps")
    ref_us = med("reference", scenario, "us")
    for server in servers:
        if server == "reference" or (server, scenario) not in runs or not ref_rate:
            continue
        rate = med(server, scenario, "rps" if scenario == "polls" else "pps")
        print(f"| {scenario} | {server} | {rate / ref_rate:.2f} | {med(server, scenario, 'us') / ref_us:.2f} |")
