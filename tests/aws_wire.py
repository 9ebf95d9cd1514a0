"""A recording proxy in front of an AWS endpoint (moto's server, the Lambda peer): what each
request was signed as, seen on the wire, and STS faults injected where STS would send them.

Every request is recorded as a `Call`: the service, region and access key id of its SigV4
`Credential=` scope, whether it carried a session token (`X-Amz-Security-Token`), and its
operation (from `X-Amz-Target`, the query protocol's `Action`, or the path's last part);
STS requests keep their parameters too (RoleArn, RoleSessionName, ExternalId...). Neither
a token nor a signature is kept: the token is a secret.

`fail_assume_role(*fates)` answers the next AssumeRole requests itself, in STS's own query
protocol XML, instead of forwarding them: "denied" (403 AccessDenied, what STS says when a
trust policy or the caller's policy refuses), "throttled" (400 Throttling) or
"unavailable" (503 ServiceUnavailable). moto does not enforce trust policies, so a denial
has to come from here; everything else reaches moto.
"""

from __future__ import annotations

import http.client
import re
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.http_stub import Loopback, QuietHandler

_SCOPE = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/]+)/([^/]+)/aws4_request")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}
_FAULTS = {
    "denied": (
        403,
        "Sender",
        "AccessDenied",
        "User: arn:aws:sts::123456789012:assumed-role/orchestrator/fn is not authorized to "
        "perform: sts:AssumeRole on resource: the role",
    ),
    "throttled": (400, "Sender", "Throttling", "Rate exceeded"),
    "unavailable": (503, "Receiver", "ServiceUnavailable", "Service unavailable"),
}


@dataclass(frozen=True)
class Call:
    """One request as signed: whose key, for which service, in which region, doing what."""

    service: str
    region: str
    access_key: str
    operation: str
    session_token: bool
    answered_by_proxy: str | None = None
    params: tuple[tuple[str, str], ...] = ()

    def param(self, name: str) -> str | None:
        return dict(self.params).get(name)


class WireProxy(Loopback):
    """Forwards every request to `upstream`, recording it; answers AssumeRole with a fault
    when told to. A context manager; `url` is what AWS_ENDPOINT_URL_<SERVICE> points at."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.calls: list[Call] = []
        self._faults: deque[str] = deque()
        self._lock = threading.Lock()
        proxy = self

        class Handler(QuietHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                proxy._handle(self)

            do_POST = do_PUT = do_DELETE = do_HEAD = do_GET

        super().__init__(Handler)

    def fail_assume_role(self, *fates: str) -> None:
        unknown = sorted(set(fates) - set(_FAULTS))
        assert not unknown, f"unknown fates: {unknown}"
        with self._lock:
            self._faults.extend(fates)

    def of(self, service: str, operation: str | None = None) -> list[Call]:
        """The calls to `service` (the signing name: monitoring, states, lambda, sts...)."""
        with self._lock:
            return [
                c
                for c in self.calls
                if c.service == service and (operation is None or c.operation == operation)
            ]

    def assume_role_calls(self) -> list[Call]:
        return self.of("sts", "AssumeRole")

    def _handle(self, handler: QuietHandler) -> None:
        body = handler.body()
        authorization = handler.headers.get("Authorization", "")
        scope = _SCOPE.search(authorization)
        access_key, region, service = scope.groups() if scope else ("", "", "")
        operation = _operation(handler.path, dict(handler.headers.items()), body)
        params: tuple[tuple[str, str], ...] = ()
        if service == "sts":
            parsed = parse_qs(body.decode("utf-8", errors="replace"))
            params = tuple(sorted((key, values[0]) for key, values in parsed.items()))
        fate: str | None = None
        with self._lock:
            if service == "sts" and operation == "AssumeRole" and self._faults:
                fate = self._faults.popleft()
            self.calls.append(
                Call(
                    service,
                    region,
                    access_key,
                    operation,
                    "X-Amz-Security-Token" in handler.headers,
                    fate,
                    params,
                )
            )
        if fate is not None:
            status, kind, code, message = _FAULTS[fate]
            xml = (
                '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
                f"<Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message>"
                "</Error><RequestId>wire-proxy</RequestId></ErrorResponse>"
            )
            handler.reply(status, xml.encode(), content_type="text/xml")
            return
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP_BY_HOP}
        connection = http.client.HTTPConnection(*self._upstream, timeout=30)
        try:
            connection.request(handler.command, handler.path, body=body, headers=headers)
            response = connection.getresponse()
            data = response.read()
            upstream_headers = response.getheaders()
            status = response.status
        finally:
            connection.close()
        handler.send_response(status)
        for key, value in upstream_headers:
            if key.lower() not in _HOP_BY_HOP:
                handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(data)


def _operation(path: str, headers: dict[str, Any], body: bytes) -> str:
    target = headers.get("X-Amz-Target") or headers.get("x-amz-target")
    if target:
        return str(target).rpartition(".")[2]
    if body[:7] == b"Action=" or b"&Action=" in body:
        found = parse_qs(body.decode("utf-8", errors="replace")).get("Action")
        if found:
            return found[0]
    return path.split("?", maxsplit=1)[0].rstrip("/").rpartition("/")[2]
