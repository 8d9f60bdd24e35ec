"""Load for punchd's JSON webhook source (BENCHMARKS.md, issue 9): POST batches of events to
/api/v1/sources/webhook over keep-alive connections and report events per second.

Usage: python3 webhook_load.py HOST:PORT TOKEN EVENTS BATCH THREADS [FIRST]
Events are user 1..500 punching one second apart from 2026-11-02T00:00:00+03:00 (+FIRST seconds), device
BENCHWH01. Prints one JSON object: events sent, inserted, duplicates, errors, seconds, events_per_s.
"""

import http.client
import json
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

host, token, total, batch, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
first = int(sys.argv[6]) if len(sys.argv) > 6 else 0
zone = timezone(timedelta(hours=3))
start = datetime(2026, 11, 2, tzinfo=zone)
bodies = []
for b in range(0, total, batch):
    events = [{"user_id": str((first + n) % 500 + 1),
               "time": (start + timedelta(seconds=first + n)).isoformat(),
               "type": "IN" if n % 2 == 0 else "OUT"} for n in range(b, min(b + batch, total))]
    bodies.append(json.dumps({"device_id": "BENCHWH01", "events": events}).encode())
totals = {"inserted": 0, "duplicates": 0, "errors": 0, "failed_requests": 0}
lock = threading.Lock()


def work(mine):
    conn = http.client.HTTPConnection(host)
    for body in mine:
        conn.request("POST", "/api/v1/sources/webhook", body,
                     {"Content-Type": "application/json", "X-Device-Token": token})
        r = conn.getresponse()
        data = r.read()
        with lock:
            if r.status != 200:
                totals["failed_requests"] += 1
                continue
            answer = json.loads(data)
            totals["inserted"] += answer.get("inserted", 0)
            totals["duplicates"] += answer.get("duplicates", 0)
            totals["errors"] += len(answer.get("errors", []))


t0 = time.perf_counter()
workers = [threading.Thread(target=work, args=(bodies[i::threads],)) for i in range(threads)]
for w in workers:
    w.start()
for w in workers:
    w.join()
seconds = time.perf_counter() - t0
print(json.dumps({"events": total, "batch": batch, "threads": threads, **totals, "seconds": round(seconds, 3),
                  "events_per_s": round(total / seconds)}))
