"""A Frappe HR stand-in for the delivery benchmarks (BENCHMARKS.md, issue 8): answers the Employee Checkin method
(both paths of frappe-hr.md §2: hrms.… and erpnext.…) with 200 and a new document name after LATENCY_MS
milliseconds (default 20, a WAN round trip to a hosted site), to an empty probe body as well. Every other request is
404 (so `sinks add` keeps terminal local time, as for a site whose System Settings the API user may not read).
It enforces nothing else: the behaviour Frappe documents is tested by the contract server in
crates/punchd/tests/it/frappe_contract.rs; this one only measures how throughput scales with the sink's concurrency.

Prints "PORT <n>" once listening; GET /stats answers {"requests", "checkins", "in_flight_max", "first", "last"}
(times: time.monotonic() of this process, seconds). Threads: one per connection (ThreadingHTTPServer), so
requests in flight are limited by punchd's concurrency, not by this server.
"""

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LATENCY = int(os.environ.get("LATENCY_MS", "20")) / 1000.0
METHODS = (
    "/api/method/hrms.hr.doctype.employee_checkin.employee_checkin.add_log_based_on_employee_field",
    "/api/method/erpnext.hr.doctype.employee_checkin.employee_checkin.add_log_based_on_employee_field",
)
stats = {"requests": 0, "checkins": 0, "in_flight": 0, "in_flight_max": 0, "first": None, "last": None}
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # The status line and headers go out in one write and the body in another: with Nagle's algorithm on, the
    # body waits for the client's delayed ACK (≈ 40 ms on Linux) on every keep-alive request, which measured the
    # stub, not punchd (BENCHMARKS.md, Frappe concurrency).
    disable_nagle_algorithm = True

    def log_message(self, *a):
        pass

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(n) or b"{}") if n else {}
        if self.path not in METHODS:
            self._send(404, {"exc_type": "DoesNotExistError"})
            return
        with lock:
            stats["in_flight"] += 1
            stats["in_flight_max"] = max(stats["in_flight_max"], stats["in_flight"])
        time.sleep(LATENCY)
        now = time.monotonic()
        with lock:
            stats["in_flight"] -= 1
            stats["requests"] += 1
            seq = stats["requests"]
            if body.get("employee_field_value"):
                stats["checkins"] += 1
                stats["first"] = stats["first"] or now
                stats["last"] = now
        self._send(200, {"message": {"name": f"EMP-CKIN-BENCH-{seq:09d}", "doctype": "Employee Checkin"}})

    def do_GET(self):
        if self.path == "/stats":
            with lock:
                self._send(200, dict(stats))
            return
        self._send(404, {"exc_type": "DoesNotExistError"})


server = ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("PORT", "0"))), Handler)
server.daemon_threads = True
print(f"PORT {server.server_address[1]}", flush=True)
server.serve_forever()
