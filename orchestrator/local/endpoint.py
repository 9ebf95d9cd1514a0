"""The approval endpoint on loopback, as a Lambda function URL would call it.

`EndpointServer(handler)` turns each HTTP request into a payload-2.0 event for `handler`
(`orchestrator.approval.web.handler`, or a function of the same shape) and its answer back
into HTTP. `plain_http(handler)` says `x-forwarded-proto: http` to it, so the sign-in's
redirect URI (taken from the request's Host) is the loopback server's own http:// URL; a
real function URL says https. Used by `orchestrator run --approvals` and the tests.
"""

from __future__ import annotations

import base64
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Self


class Loopback:
    """A threaded HTTP server on 127.0.0.1 (a free port), served from a daemon thread."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], path: str = "") -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{path}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EndpointServer(Loopback):
    """A function URL stand-in: each request becomes a payload-2.0 event for `handler`."""

    def __init__(self, handler: Callable[[dict[str, Any], Any], dict[str, Any]]) -> None:
        self.events: list[dict[str, Any]] = []
        outer = self

        class Request(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                event = {
                    "version": "2.0",
                    "routeKey": "$default",
                    "rawPath": url.path,
                    "rawQueryString": url.query,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                    "requestContext": {
                        "http": {
                            "method": self.command,
                            "path": url.path,
                            "protocol": "HTTP/1.1",
                            "sourceIp": self.client_address[0],
                            "userAgent": self.headers.get("User-Agent", ""),
                        },
                        "requestId": str(uuid.uuid4()),
                        "timeEpoch": int(time.time() * 1000),
                    },
                    # Function URLs base64-encode bodies that are not text (forms included).
                    "body": base64.b64encode(raw).decode() if raw else None,
                    "isBase64Encoded": bool(raw),
                }
                outer.events.append(event)
                response = handler(event, None)
                body = str(response.get("body", "")).encode()
                self.send_response(int(response["statusCode"]))
                for name, value in dict(response.get("headers", {})).items():
                    self.send_header(str(name), str(value))
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = _serve

            def log_message(self, format: str, *args: object) -> None:
                return

        super().__init__(Request, "/")


def plain_http(
    handler: Callable[[dict[str, Any], Any], dict[str, Any]],
) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """`handler`, told the request came over plain http (this server is no TLS front)."""

    def call(event: dict[str, Any], context: Any) -> dict[str, Any]:
        headers = {**event.get("headers", {}), "x-forwarded-proto": "http"}
        return handler({**event, "headers": headers}, context)

    return call
