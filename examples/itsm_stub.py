"""A stand-in change-management API for the demo: change 42 is approved on the 3rd poll.

    python examples/itsm_stub.py [--port 8765] [--approve-after 3] [--reject]
                                 [--any-port] [--port-file PATH]

`--any-port` listens on a free port when `--port` is taken; `--port-file` receives the port
once the stub listens (how `make demo` knows it started, and where).

GET /api/change/<id> answers `{"id": "CHG<n>", "state": "pending" | "approved" | "rejected",
"polls": <count>}`. A change is named by its number or by the id the API gives it (`42` or
`CHG42`, as an action that passes on `#{Change.ChangeId}` does): both are polls of the same
change. Any other path is a 404.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

_CHANGE = re.compile(r"/api/change/(?:CHG)?([0-9]{1,12})")


class ItsmStub(ThreadingHTTPServer):
    """The API's server; `polls` counts the GETs of each change, by its number."""

    polls: dict[str, int]


def make_server(port: int, approve_after: int, reject: bool) -> ItsmStub:
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = _CHANGE.fullmatch(self.path)
            if found is None:
                self.send_error(404)
                return
            number = found.group(1)
            with lock:
                server.polls[number] = count = server.polls.get(number, 0) + 1
            done = "rejected" if reject else "approved"
            state = done if count >= approve_after else "pending"
            body = json.dumps({"id": f"CHG{number}", "state": state, "polls": count}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # quiet
            return

    server = ItsmStub(("127.0.0.1", port), Handler)
    server.polls = {}
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--approve-after", type=int, default=3)
    parser.add_argument("--reject", action="store_true")
    parser.add_argument("--any-port", action="store_true", help="a free port if --port is taken")
    parser.add_argument("--port-file", type=Path, help="write the port here once listening")
    args = parser.parse_args()
    try:
        server = make_server(args.port, args.approve_after, args.reject)
    except OSError as exc:
        if not args.any_port:
            parser.exit(1, f"itsm_stub: cannot listen on 127.0.0.1:{args.port}: {exc.strerror}\n")
        server = make_server(0, args.approve_after, args.reject)
    port = server.server_address[1]
    print(f"itsm_stub: change-management API on http://127.0.0.1:{port}", flush=True)
    if args.port_file is not None:
        args.port_file.write_text(str(port))
    server.serve_forever()


if __name__ == "__main__":
    main()
