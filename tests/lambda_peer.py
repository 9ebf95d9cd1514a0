"""A local server speaking Lambda's Invoke REST API, for `lambda` steps over real sockets.

moto can invoke without docker only through its "simple" backend, which always succeeds
(it cannot return a function error). So test functions live here instead:
`POST /2015-03-31/functions/{name}/invocations`, `X-Amz-Function-Error` on a function
error, `x-amzn-ErrorType` on an API error, with AWS_ENDPOINT_URL_LAMBDA pointed at it: a
real peer for botocore, not a mock of our code.
"""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from tests.http_stub import Loopback, QuietHandler

if TYPE_CHECKING:
    from collections.abc import Callable

PREFIX = "/2015-03-31/functions/"


class LambdaPeer(Loopback):
    """Functions by name, each `payload -> (status, extra headers, body)`; records every call."""

    def __init__(self, functions: dict[str, Callable[[Any], tuple[int, dict[str, str], Any]]]):
        self.functions = functions
        self.calls: list[tuple[str, Any, str]] = []
        self._lock = threading.Lock()
        peer = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                payload = json.loads(self.body() or b"null")
                name = unquote(self.path.removeprefix(PREFIX).split("/invocations")[0])
                kind = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
                with peer._lock:
                    peer.calls.append((name, payload, kind))
                function = peer.functions.get(name)
                if not self.path.startswith(PREFIX) or function is None:
                    status, headers, body = (
                        404,
                        {"x-amzn-ErrorType": "ResourceNotFoundException"},
                        {"Type": "User", "message": f"Function not found: {name}"},
                    )
                else:
                    status, headers, body = function(payload)
                self.reply(status, json.dumps(body).encode(), headers)

        super().__init__(Handler)


def checks(payload: Any) -> tuple[int, dict[str, str], Any]:
    """A healthy function that echoes the run it was invoked for."""
    return 200, {"X-Amz-Executed-Version": "$LATEST"}, {"healthy": True, "run": payload["run"]}
