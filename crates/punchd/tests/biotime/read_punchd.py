"""Read punchd's BioTime-compatible API with pybiotime's own client (BioTimeClient).

Usage: python3 read_punchd.py URL USERNAME PASSWORD AUTH STATE_JSON
AUTH is token or jwt; STATE_JSON is the read_new state from an earlier run ("" for none).
Prints one JSON object: {"terminals": [sn...], "all": [[id, emp_code, punch_time, punch_state, terminal_sn], ...],
"new": [...same, from read_new...], "state": {...}}.
"""

import json
import sys

from pybiotime import BioTimeClient, JWTAuth, TokenAuth


def row(t):
    return [t.id, t.emp_code, t.punch_time.strftime("%Y-%m-%d %H:%M:%S"), str(t.punch_state), t.terminal_sn]


def main() -> None:
    url, user, password, auth, state = sys.argv[1:6]
    auth = (JWTAuth if auth == "jwt" else TokenAuth)(user, password)
    with BioTimeClient(url, auth=auth, page_size=2) as client:
        terminals = [t.sn for t in client.terminals.list()]
        everything = [row(t) for t in client.transactions.list(order_by="id")]
        result = client.transactions.read_new(json.loads(state) if state else None)
        out = {
            "terminals": terminals,
            "all": everything,
            "new": [row(t) for t in result.transactions],
            "state": result.state,
        }
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
