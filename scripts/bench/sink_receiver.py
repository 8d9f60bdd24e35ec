"""A webhook sink receiver for the delivery benchmark (BENCHMARKS.md, issue 8): answers 200 to every POST,
counts the check-ins of each batch (`checkins` array of punchd.checkins.v1), and records when the first and the
last request arrived. Prints "PORT <n>" once listening; GET /stats answers
{"requests", "checkins", "first", "last"} (times: time.monotonic() of this process, seconds).
"""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

stats = {"requests": 0, "checkins": 0, "first": None, "last": None}
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def _send(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(n)) if n else {}
        now = time.monotonic()
        with lock:
            stats["requests"] += 1
            stats["checkins"] += len(body.get("checkins", []))
            stats["first"] = stats["first"] or now
            stats["last"] = now
        self._send(b'{"ok": true}')

    def do_GET(self):
        with lock:
            body = json.dumps({**stats, "now": time.monotonic()}).encode()
        self._send(body)


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"PORT {server.server_address[1]}", flush=True)
server.serve_forever()
