"""A stand-in change-management API for the demo: change 42 is approved on the 3rd poll.

    python examples/itsm_stub.py [--port 8765] [--approve-after 3] [--reject]

GET /api/change/<id> answers `{"id": "CHG<id>", "state": "pending" | "approved" | "rejected"}`.
"""

from __future__ import annotations

import argparse
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def make_server(port: int, approve_after: int, reject: bool) -> ThreadingHTTPServer:
    polls: dict[str, int] = {}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = self.path.strip("/").split("/")
            if len(parts) != 3 or parts[:2] != ["api", "change"]:
                self.send_error(404)
                return
            with lock:
                polls[parts[2]] = count = polls.get(parts[2], 0) + 1
            done = "rejected" if reject else "approved"
            state = done if count >= approve_after else "pending"
            body = json.dumps({"id": f"CHG{parts[2]}", "state": state, "polls": count}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # quiet
            return

    return ThreadingHTTPServer(("127.0.0.1", port), Handler)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--approve-after", type=int, default=3)
    parser.add_argument("--reject", action="store_true")
    args = parser.parse_args()
    make_server(args.port, args.approve_after, args.reject).serve_forever()


if __name__ == "__main__":
    main()
