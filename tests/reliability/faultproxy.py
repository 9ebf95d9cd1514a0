"""A fault-injecting HTTP proxy in front of DynamoDB Local.

Clients reach DynamoDB through the proxy (`AWS_ENDPOINT_URL_DYNAMODB=proxy.endpoint_url`).
Each request draws one fate from seeded probabilities:

    throttle        400 ProvisionedThroughputExceededException or ThrottlingException
                    (JSON 1.0, as DynamoDB sends them); not forwarded
    server_error    500 InternalServerError or 503 ServiceUnavailable; not forwarded
    timeout         held past the client's read timeout, then dropped; not forwarded
    lost_response   forwarded and applied, then the response is lost (the connection is
                    closed, or held past the read timeout): the client's retry of a
                    conditional write meets a *genuine* ConditionalCheckFailedException
    (otherwise)     forwarded and answered

Conditional-check failures are never forged: a forged one says "another writer won" when
none did, which DynamoDB never says. They are produced for real, by lost responses and by
concurrent deliveries racing, and counted as they pass (`conditional_check_failed`).

Every exchange that reached DynamoDB Local is offered to the `observers` (operation,
request, status, response), so a test can keep the history of writes that were applied.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
from collections import Counter, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

FAULT_KINDS = ("throttle", "server_error", "timeout", "lost_response")
CONTENT_TYPE = "application/x-amz-json-1.0"
_THROTTLES = (
    "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
    "com.amazon.coral.availability#ThrottlingException",
)
_SERVER_ERRORS = (
    (500, "com.amazonaws.dynamodb.v20120810#InternalServerError"),
    (503, "com.amazon.coral.availability#ServiceUnavailableException"),
)
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass(frozen=True)
class Exchange:
    """One request that DynamoDB Local answered (whether or not the client saw the answer)."""

    operation: str
    request: dict[str, Any]
    status: int
    response: dict[str, Any]


class FaultProxy:
    """A threaded HTTP proxy on 127.0.0.1 that injects DynamoDB faults; a context manager."""

    def __init__(
        self,
        upstream: str,
        *,
        throttle: float = 0.0,
        server_error: float = 0.0,
        timeout: float = 0.0,
        lost_response: float = 0.0,
        hang_seconds: float = 2.0,
        seed: int | None = None,
    ) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.hang_seconds = hang_seconds
        self.counts: Counter[str] = Counter()
        self.observers: list[Callable[[Exchange], None]] = []
        self._rates: dict[str, float] = {}
        self._plans: dict[str, deque[str]] = {}
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._local = threading.local()
        self.set_rates(
            throttle=throttle,
            server_error=server_error,
            timeout=timeout,
            lost_response=lost_response,
        )
        self._server = _Server(("127.0.0.1", 0), _Handler, self)
        self.endpoint_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="dynamodb-fault-proxy",
            daemon=True,
        )

    # -- configuration -------------------------------------------------------------------

    def set_rates(self, **rates: float) -> None:
        """Change the probabilities (kinds not named keep theirs); they must sum to <= 1."""
        unknown = sorted(set(rates) - set(FAULT_KINDS))
        if unknown:
            raise ValueError(f"unknown fault kinds: {unknown}")
        merged = {**self._rates, **rates}
        if any(not 0.0 <= p <= 1.0 for p in merged.values()) or sum(merged.values()) > 1.0:
            raise ValueError("fault probabilities must be in [0, 1] and sum to at most 1")
        with self._lock:
            self._rates = merged

    @property
    def injected(self) -> dict[str, int]:
        """Faults injected so far, by kind (zero kinds included)."""
        with self._lock:
            return {kind: self.counts[kind] for kind in FAULT_KINDS}

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> str:
        self._thread.start()
        return self.endpoint_url

    def stop(self) -> None:
        """Release held requests, stop serving and close the socket."""
        self._released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> FaultProxy:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- the work --------------------------------------------------------------------------

    def plan(self, operation: str, *fates: str) -> None:
        """Give the next requests of `operation` these fates (a kind, or "none"), in order,
        before any random draw."""
        unknown = sorted(set(fates) - {*FAULT_KINDS, "none"})
        if unknown:
            raise ValueError(f"unknown fates: {unknown}")
        with self._lock:
            self._plans.setdefault(operation, deque()).extend(fates)

    def draw(self, operation: str) -> str | None:
        """The fate of one request: a fault kind, or None to forward it untouched."""
        with self._lock:
            self.counts["requests"] += 1
            planned = self._plans.get(operation)
            if planned:
                fate = planned.popleft()
                if fate == "none":
                    return None
                self.counts[fate] += 1
                self.counts[f"{fate}:{operation}"] += 1
                return fate
            roll = self._rng.random()
            for kind in FAULT_KINDS:
                chance = self._rates.get(kind, 0.0)
                if roll < chance:
                    self.counts[kind] += 1
                    self.counts[f"{kind}:{operation}"] += 1
                    return kind
                roll -= chance
            return None

    def pick(self, choices: tuple[Any, ...]) -> Any:
        with self._lock:
            return self._rng.choice(choices)

    def hang(self) -> None:
        """Hold the request past the client's read timeout (or until the proxy stops)."""
        self._released.wait(self.hang_seconds)

    def forward(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any, bytes]:
        """Send the request to DynamoDB Local on this thread's connection; one reconnect."""
        for attempt in (1, 2):
            connection: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
            if connection is None:
                connection = http.client.HTTPConnection(*self._upstream, timeout=30)
                self._local.conn = connection
            try:
                connection.request("POST", path, body=body, headers=headers)
                response = connection.getresponse()
                return response.status, response.getheaders(), response.read()
            except (http.client.HTTPException, OSError):
                connection.close()
                self._local.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close_connection(self) -> None:
        """Close this thread's connection to DynamoDB Local (its client went away)."""
        connection: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if connection is not None:
            connection.close()
            self._local.conn = None

    def observe(self, operation: str, body: bytes, status: int, data: bytes) -> None:
        try:
            response = json.loads(data) if data else {}
        except ValueError:
            response = {}
        if str(response.get("__type", "")).endswith("ConditionalCheckFailedException"):
            with self._lock:
                self.counts["conditional_check_failed"] += 1
        if not self.observers:
            return
        try:
            request = json.loads(body) if body else {}
        except ValueError:
            request = {}
        exchange = Exchange(operation, request, status, response)
        for observer in list(self.observers):
            observer(exchange)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], proxy: FaultProxy
    ) -> None:
        self.proxy = proxy
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as botocore expects
    disable_nagle_algorithm = True  # headers and body go out in two writes
    server: _Server

    def handle(self) -> None:
        try:
            super().handle()
        finally:
            self.server.proxy.close_connection()

    def do_POST(self) -> None:
        proxy = self.server.proxy
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        operation = (self.headers.get("X-Amz-Target") or "").rpartition(".")[2]
        fate = proxy.draw(operation)
        if fate == "throttle":
            self._reply(400, {"__type": proxy.pick(_THROTTLES), "message": "Rate exceeded"})
            return
        if fate == "server_error":
            status, kind = proxy.pick(_SERVER_ERRORS)
            self._reply(status, {"__type": kind, "message": "injected server error"})
            return
        if fate == "timeout":
            self._drop(proxy)
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        try:
            status, upstream_headers, data = proxy.forward(self.path, headers, body)
        except (http.client.HTTPException, OSError):
            self._reply(502, {"__type": "BadGateway", "message": "DynamoDB Local unreachable"})
            return
        proxy.observe(operation, body, status, data)
        if fate == "lost_response":
            if proxy.pick((True, False)):
                self._drop(proxy)
            else:
                self.close_connection = True  # closed with no answer at all
            return
        self.send_response(status)
        for key, value in upstream_headers:
            if key.lower() not in _HOP_BY_HOP:
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _drop(self, proxy: FaultProxy) -> None:
        proxy.hang()
        self.close_connection = True

    def _reply(self, status: int, payload: dict[str, str]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", "fault-proxy")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return  # request lines only would be noise; bodies are never logged
