"""Serve pybiotime's FakeBioTime over HTTP on 127.0.0.1 for punchd's BioTime tests.

Usage: python3 fake_server.py [--version 9.5] [--page-size 10] [--preload N]
Prints "PORT <n>" once listening. Every request except /_control/* is handed to FakeBioTime.handle
unchanged (as an httpx.Request), so the fake's own behaviour and quirks are what punchd sees.

Control endpoints (JSON body) let a test change the fake between runs:
  POST /_control/terminal      {"sn": ..., "alias": ...}
  POST /_control/transaction   {"emp_code": ..., "punch_time": "YYYY-MM-DD HH:MM:SS", "terminal_sn": ...,
                                "punch_state": "0", "upload_time": "..."}   -> the stored row
  POST /_control/fail_next     {"status": 503, "method": "GET", "path": "/iclock/api/transactions/"}
  POST /_control/restore       {"next_id": 1, "keep": 0}  -> a restored database: the first `keep`
                                transactions stay, ids restart at next_id
  POST /_control/expire_tokens {}  -> every token issued so far is forgotten (as after a server restart)
  POST /_control/jwt_lifetime  {"seconds": 2}
  POST /_control/insert_during_paging {"after_page": 1, "transaction": {...as /_control/transaction...}}
                             -> once the fake has answered that page of the transactions, the punch is added
                                (as a punch arriving while a client pages: rows shift, the next page repeats one)
  POST /_control/employee      {"emp_code": ..., "first_name": ..., "last_name": ...,
                                "department": {"code": ..., "name": ...}, "area": {"code": ..., "name": ...},
                                "hire_date": "YYYY-MM-DD"}  -> the new employee's id (department and area are
                                created as given; both optional)
  GET  /_control/requests      -> the requests the fake saw: [[method, path, params, authorization], ...]
"""

import argparse
import json
import sys
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
from pybiotime.testing import FakeBioTime

FORMAT = "%Y-%m-%d %H:%M:%S"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--version", default="9.5")
    parser.add_argument("--page-size", type=int, default=10)
    parser.add_argument("--username", default="api")
    parser.add_argument("--password", default="secret")
    parser.add_argument("--preload", type=int, default=0,
                        help="start with N transactions (10 terminals, 500 employees, one punch a second "
                             "from 2026-11-02 00:00:00) for benchmarks")
    args = parser.parse_args()
    fake = FakeBioTime(username=args.username, password=args.password, version=args.version,
                       default_page_size=args.page_size)
    if args.preload:
        from datetime import timedelta
        for t in range(10):
            fake.add_terminal(sn=f"BENCH{t:05}")
        start = datetime(2026, 11, 2)
        for n in range(args.preload):
            fake.add_transaction(emp_code=str(n % 500 + 1), punch_time=start + timedelta(seconds=n),
                                 terminal_sn=f"BENCH{n % 10:05}", punch_state=str(n % 2))

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):  # quiet
            pass

        def _body(self) -> bytes:
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n else b""

        def _send(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _control(self, body: bytes) -> None:
            data = json.loads(body) if body else {}
            path = self.path.split("?")[0]
            out = {}
            if path == "/_control/terminal":
                out = fake.add_terminal(**data)
            elif path == "/_control/transaction":
                data["punch_time"] = datetime.strptime(data["punch_time"], FORMAT)
                if data.get("upload_time"):
                    data["upload_time"] = datetime.strptime(data["upload_time"], FORMAT)
                out = fake.add_transaction(**data)
            elif path == "/_control/employee":
                dept = data.pop("department", None) or {"code": "1", "name": "Department"}
                area = data.pop("area", None)
                dept_id = fake.add_department(code=dept["code"], name=dept["name"])
                area_ids = [fake.add_area(code=area["code"], name=area["name"])] if area else []
                out = fake.add_employee(department_id=dept_id, area_ids=area_ids, **data)
            elif path == "/_control/fail_next":
                fake.fail_next(data["status"], method=data.get("method", "GET"), path=data.get("path", "/"))
            elif path == "/_control/restore":
                fake.transactions = fake.transactions[: data.get("keep", 0)]
                fake._next_id = data.get("next_id", 1)
            elif path == "/_control/expire_tokens":
                fake.tokens.clear()
            elif path == "/_control/jwt_lifetime":
                fake.jwt_lifetime = float(data["seconds"])
            elif path == "/_control/insert_during_paging":
                t = data["transaction"]
                t["punch_time"] = datetime.strptime(t["punch_time"], FORMAT)
                if t.get("upload_time"):
                    t["upload_time"] = datetime.strptime(t["upload_time"], FORMAT)
                page = str(data.get("after_page", 1))

                def hook(request, t=t, page=page):
                    if request.path == "/iclock/api/transactions/" and request.params.get("page", "1") == page:
                        fake.add_transaction(**t)
                        fake.after_request = None

                fake.after_request = hook
            elif path == "/_control/requests":
                out = [[r.method, r.path, r.params, r.authorization] for r in fake.requests]
            else:
                self._send(404, b"{}", "application/json")
                return
            self._send(200, json.dumps(out, default=str).encode(), "application/json")

        def _handle(self) -> None:
            body = self._body()
            if self.path.startswith("/_control/"):
                self._control(body)
                return
            host = self.headers.get("Host", "127.0.0.1")
            request = httpx.Request(self.command, f"http://{host}{self.path}",
                                    headers=dict(self.headers.items()), content=body)
            response = fake.handle(request)
            self._send(response.status_code, response.content,
                       response.headers.get("Content-Type", "application/json"))

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
