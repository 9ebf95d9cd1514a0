"""The rig the step-library tests share: the Lambda handler driven by the CodePipeline
emulator, state in DynamoDB Local, AWS services on moto's server (or a local peer).

Each `test_steps_<kind>.py` builds it with `steps_rig(...)` in a fixture of its own; this
module holds no tests.
"""

from __future__ import annotations

import json
import urllib.request
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from tests.http_stub import Loopback, QuietHandler
from tests.rig import Rig, gate_rig

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pytest

# botocore's per-service variables: AWS_ENDPOINT_URL_ + the service id, spaces as "_".
SERVICES = ("CLOUDWATCH", "SFN", "LAMBDA", "SECRETS_MANAGER", "SSM")


StepsRig = Rig


@contextmanager
def steps_rig(
    table: str,
    moto_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    endpoints: dict[str, str] | None = None,
) -> Iterator[Rig]:
    """The rig, with every step service on moto unless `endpoints` says otherwise."""
    for service in SERVICES:
        monkeypatch.setenv(f"AWS_ENDPOINT_URL_{service}", moto_endpoint)
    for service, url in (endpoints or {}).items():
        monkeypatch.setenv(f"AWS_ENDPOINT_URL_{service}", url)
    with gate_rig(table, monkeypatch) as rig:
        yield rig


@contextmanager
def moto_config(endpoint: str, config: dict[str, Any], restore: dict[str, Any]) -> Iterator[None]:
    """Set moto's server-wide configuration (POST /moto-api/config) for one test."""

    def post(body: dict[str, Any]) -> None:
        request = urllib.request.Request(
            f"{endpoint}/moto-api/config", data=json.dumps(body).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    post(config)
    try:
        yield
    finally:
        post(restore)


class Recorder(Loopback):
    """A loopback HTTP server answering 200 {"ok": true} and recording each request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        recorder = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                recorder.requests.append((self.path, dict(self.headers.items())))
                self.reply(200, b'{"ok": true}')

        super().__init__(Handler)
