"""A real HTTP server on loopback that answers from a script (the last answer repeats)."""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

from orchestrator.local.endpoint import Loopback

__all__ = ["Loopback", "QuietHandler", "RoutedStub", "StubServer", "stub_server"]

if TYPE_CHECKING:
    from collections.abc import Iterator


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that logs nothing and answers with `reply`."""

    def reply(
        self,
        status: int,
        body: bytes,
        headers: dict[str, str] | None = None,
        content_type: str | None = "application/json",
    ) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def log_message(self, format: str, *args: object) -> None:
        return


class StubServer(Loopback):
    """Answers GETs from a script of (status, JSON body); the last answer repeats."""

    def __init__(self, script: list[tuple[int, Any]]) -> None:
        self.script = list(script)
        self.hits = 0
        self._lock = threading.Lock()
        stub = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                with stub._lock:
                    stub.hits += 1
                    status, body = stub.script.pop(0) if len(stub.script) > 1 else stub.script[0]
                self.reply(status, json.dumps(body).encode())

        super().__init__(Handler)


@contextmanager
def stub_server(script: list[tuple[int, Any]]) -> Iterator[StubServer]:
    with StubServer(script) as server:
        yield server


class RoutedStub(Loopback):
    """Answers GETs and POSTs by path, each path from its own script of (status, JSON body)
    (the last answer repeats); counts requests by (method, path)."""

    def __init__(self, routes: dict[str, list[tuple[int, Any]]]) -> None:
        self.routes = {path: list(script) for path, script in routes.items()}
        self.hits: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        stub = self

        class Handler(QuietHandler):
            def answer(self) -> None:
                self.body()
                with stub._lock:
                    key = (self.command, self.path)
                    stub.hits[key] = stub.hits.get(key, 0) + 1
                    script = stub.routes.get(self.path) or [(404, {"unknown": self.path})]
                    status, body = script.pop(0) if len(script) > 1 else script[0]
                self.reply(status, json.dumps(body).encode())

            do_GET = do_POST = answer

        super().__init__(Handler)

    def count(self, path: str, method: str = "GET") -> int:
        with self._lock:
            return self.hits.get((method, path), 0)
