"""A real HTTP server on loopback that answers from a script (the last answer repeats)."""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator


class StubServer:
    def __init__(self, script: list[tuple[int, Any]]) -> None:
        self.script = list(script)
        self.hits = 0
        self.hang = threading.Event()
        self._lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if stub.hang.is_set():
                    stub.hang.wait(0)  # keep the connection open without answering
                    threading.Event().wait(30)
                    return
                with stub._lock:
                    stub.hits += 1
                    status, body = stub.script.pop(0) if len(stub.script) > 1 else stub.script[0]
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> StubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()


@contextmanager
def stub_server(script: list[tuple[int, Any]]) -> Iterator[StubServer]:
    with StubServer(script) as server:
        yield server
