"""A counting HTTP proxy: what really crossed the wire to DynamoDB Local.

It runs in its own process (so it does not compete with the handler for the GIL), forwards
every request unchanged to one upstream over keep-alive connections, and logs one record
per request: the `X-Amz-Target` operation (else the method and path, e.g. an S3 GET), whether
the body carries a `ConditionExpression`, whether it asks for `ConsistentRead`, the response
status, the request and response body sizes in bytes, and the `ConsumedCapacity` units the
response reports (when the request asked for them). Bodies are not kept.

With `--capacity INDEXES` the proxy turns every request's `ReturnConsumedCapacity` (pynamodb
asks TOTAL on every call) into INDEXES before forwarding it, and records the units DynamoDB
reports for the base table and for each index apart (DynamoDB Local does not check request
signatures, so the rewritten body is accepted; the caller's parser ignores the extra detail).
`GET /__bench__/log?since=N` returns the records from N on.

    python -m bench.proxy --upstream http://127.0.0.1:8000
    {"port": 41234}          <- first line on stdout, then it serves until terminated
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import subprocess
import sys
import threading
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from orchestrator.local.dynamodb_local import end_process

CONTROL = "/__bench__/"
_HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "content-length"}
)


@dataclass(frozen=True)
class Record:
    """One request seen by the proxy."""

    operation: str
    conditional: bool
    consistent: bool
    status: int
    request_bytes: int = 0
    """The request body as sent (a DynamoDB request's JSON; nothing for a GET)."""
    response_bytes: int = 0
    capacity_units: float | None = None
    """`ConsumedCapacity.CapacityUnits` from the response (None: not asked for, or absent)."""
    capacity: dict[str, float] | None = None
    """With `--capacity INDEXES`: units by where they were spent, "table" and each index's
    name (None: not reported)."""

    @classmethod
    def from_json(cls, data: list[Any]) -> Record:
        units = data[6] if len(data) > 6 else None
        detail = data[7] if len(data) > 7 else None
        return cls(
            str(data[0]),
            bool(data[1]),
            bool(data[2]),
            int(data[3]),
            int(data[4]) if len(data) > 4 else 0,
            int(data[5]) if len(data) > 5 else 0,
            float(units) if units is not None else None,
            {str(k): float(v) for k, v in detail.items()} if isinstance(detail, dict) else None,
        )


# region server (the proxy process)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream: str, capacity: str | None = None) -> None:
        self.capacity = capacity
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.records: list[list[Any]] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: with Nagle's algorithm on, the second waits for
    # the client's delayed ACK (40 ms on Linux) on every kept-alive request.
    disable_nagle_algorithm = True
    server: _Server
    _upstream: http.client.HTTPConnection | None = None

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: one line per request would cost more than the forwarding

    def finish(self) -> None:
        super().finish()
        if self._upstream is not None:
            self._upstream.close()
            self._upstream = None

    def do_GET(self) -> None:
        if self.path.startswith(CONTROL):
            self._control()
        else:
            self._forward()

    def do_POST(self) -> None:
        self._forward()

    def _control(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        since = int(query.get("since", ["0"])[0])
        with self.server.lock:
            records = self.server.records[since:]
            total = len(self.server.records)
        data = json.dumps({"records": records, "next": total}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.server.capacity and b'"ReturnConsumedCapacity"' in body:
            params = json.loads(body)
            params["ReturnConsumedCapacity"] = self.server.capacity
            body = json.dumps(params).encode()
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers["Content-Length"] = str(len(body))
        status, reason, response_headers, data = self._send_upstream(body, headers)
        self.send_response(status, reason)
        for key, value in response_headers:
            if key.lower() not in _HOP_BY_HOP and key.lower() not in ("date", "server"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self._record(body, status, data)

    def _send_upstream(
        self, body: bytes, headers: dict[str, str]
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        for attempt in (1, 2):  # a kept-alive upstream connection may have been closed
            if self._upstream is None:
                self._upstream = http.client.HTTPConnection(
                    self.server.upstream_host, self.server.upstream_port, timeout=60
                )
            try:
                self._upstream.request(self.command, self.path, body=body, headers=headers)
                response = self._upstream.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException):
                self._upstream.close()
                self._upstream = None
                if attempt == 2:
                    raise
                continue
            if response.will_close:
                self._upstream.close()
                self._upstream = None
            return response.status, response.reason, response.getheaders(), data
        raise AssertionError("unreachable")

    def _record(self, body: bytes, status: int, response: bytes) -> None:
        target = self.headers.get("X-Amz-Target", "")
        operation = target.rpartition(".")[2] or f"{self.command} {self.path}"
        try:
            params = json.loads(body) if body else {}
        except ValueError:
            params = {}
        if not isinstance(params, dict):
            params = {}
        record = [
            operation,
            "ConditionExpression" in params,
            params.get("ConsistentRead") is True,
            status,
            len(body),
            len(response),
            _capacity_units(response) if "ReturnConsumedCapacity" in params else None,
            _capacity_detail(response) if self.server.capacity else None,
        ]
        with self.server.lock:
            self.server.records.append(record)


def _capacity_units(response: bytes) -> float | None:
    """`ConsumedCapacity.CapacityUnits` of a DynamoDB response, if it reports them."""
    if b'"ConsumedCapacity"' not in response:
        return None
    try:
        consumed = json.loads(response).get("ConsumedCapacity")
    except (ValueError, AttributeError):
        return None
    units = consumed.get("CapacityUnits") if isinstance(consumed, dict) else None
    return float(units) if isinstance(units, int | float) else None


def _capacity_detail(response: bytes) -> dict[str, float] | None:
    """Units by table and index from a `ReturnConsumedCapacity: INDEXES` response."""
    if b'"ConsumedCapacity"' not in response:
        return None
    try:
        consumed = json.loads(response).get("ConsumedCapacity")
    except (ValueError, AttributeError):
        return None
    if isinstance(consumed, list):  # BatchGetItem, BatchWriteItem: one per table
        consumed = consumed[0] if consumed else None
    if not isinstance(consumed, dict):
        return None
    detail: dict[str, float] = {}
    table = consumed.get("Table", {}).get("CapacityUnits")
    if isinstance(table, int | float):
        detail["table"] = float(table)
    for kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        for name, spent in (consumed.get(kind) or {}).items():
            units = spent.get("CapacityUnits") if isinstance(spent, dict) else None
            if isinstance(units, int | float):
                detail[str(name)] = float(units)
    return detail


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--capacity", choices=["INDEXES"], help="ask for units per index")
    args = parser.parse_args(argv)
    server = _Server(args.upstream, args.capacity)
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C when run by hand
        server.serve_forever(poll_interval=0.2)


# endregion
# region client (the bench process)


class CountingProxy:
    """Starts the proxy process in front of `upstream`; reads its log."""

    def __init__(self, upstream: str, capacity: str | None = None) -> None:
        self.upstream = upstream
        self.capacity = capacity
        self._process: subprocess.Popen[str] | None = None
        self.url = ""
        self._offset = 0

    def start(self) -> str:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.proxy",
                "--upstream",
                self.upstream,
                *(["--capacity", self.capacity] if self.capacity else []),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        self._process = process
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("the counting proxy did not start")
        self.url = f"http://127.0.0.1:{json.loads(line)['port']}"
        return self.url

    def stop(self) -> None:
        if self._process is not None:
            end_process(self._process)
            if self._process.stdout is not None:
                self._process.stdout.close()
            self._process = None

    def __enter__(self) -> CountingProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def records(self, since: int = 0) -> tuple[list[Record], int]:
        """Records from `since` on, and the index after the last one."""
        with urllib.request.urlopen(f"{self.url}{CONTROL}log?since={since}", timeout=60) as reply:
            data = json.loads(reply.read())
        return [Record.from_json(r) for r in data["records"]], int(data["next"])

    def mark(self) -> None:
        """Start a new window: `window()` returns what came after this call."""
        _, self._offset = self.records(self._offset)

    def window(self) -> list[Record]:
        """Records since the last `mark()` (and marks again)."""
        found, self._offset = self.records(self._offset)
        return found


# endregion

if __name__ == "__main__":
    main()
