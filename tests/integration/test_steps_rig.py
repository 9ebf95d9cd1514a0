"""The rig the step-library tests share: the Lambda handler driven by the CodePipeline
emulator, state in DynamoDB Local, AWS services on moto's server (or a local peer).

Each `test_steps_<kind>.py` builds it with `steps_rig(...)` in a fixture of its own; this
module holds no tests.
"""

from __future__ import annotations

import io
import json
import urllib.request
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import boto3

from orchestrator import _log, handler
from orchestrator.clock import VirtualClock
from orchestrator.local.driver import ActionResult, run_action
from orchestrator.local.emulator import CodePipelineEmulator
from tests.http_stub import Loopback, QuietHandler

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pytest

# botocore's per-service variables: AWS_ENDPOINT_URL_ + the service id, spaces as "_".
SERVICES = ("CLOUDWATCH", "SFN", "LAMBDA", "SECRETS_MANAGER", "SSM")


class StepsRig:
    """One warm function, one emulator, one runs table."""

    def __init__(
        self, emulator: CodePipelineEmulator, clock: VirtualClock, table: str, logs: io.StringIO
    ) -> None:
        self.emulator, self.clock, self.table, self.logs = emulator, clock, table, logs

    def run(self, definition: Any, **kwargs: Any) -> ActionResult:
        params = definition if isinstance(definition, str) else json.dumps(definition)
        configuration = {"FunctionName": "orchestrator", "UserParameters": params}
        kwargs.setdefault("reinvoke_delay", 1.0)
        return run_action(
            self.emulator, handler.lambda_handler, configuration, clock=self.clock, **kwargs
        )

    def aws(self, service: str) -> Any:
        """A boto3 client on the same endpoints the function uses (to set up and inspect)."""
        factory: Any = boto3.client
        return factory(service)

    def items(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = boto3.client("dynamodb").scan(TableName=self.table)["Items"]
        return found

    def job_details_calls(self) -> int:
        """GetJobDetails requests the emulator received (bodies with only a jobId)."""
        return sum(1 for body in self.emulator.requests if set(json.loads(body)) == {"jobId"})


@contextmanager
def steps_rig(
    table: str,
    moto_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    endpoints: dict[str, str] | None = None,
) -> Iterator[StepsRig]:
    """The rig, with every step service on moto unless `endpoints` says otherwise."""
    for service in SERVICES:
        monkeypatch.setenv(f"AWS_ENDPOINT_URL_{service}", moto_endpoint)
    for service, url in (endpoints or {}).items():
        monkeypatch.setenv(f"AWS_ENDPOINT_URL_{service}", url)
    clock = VirtualClock(speed=600)
    logs = io.StringIO()
    _log.unconfigure()
    _log.configure("DEBUG", logs)
    with CodePipelineEmulator(clock) as emulator:
        monkeypatch.setenv("AWS_ENDPOINT_URL_CODEPIPELINE", emulator.endpoint_url)
        handler.use(handler.build_app(clock, logs))
        try:
            yield StepsRig(emulator, clock, table, logs)
        finally:
            handler.use(None)
            _log.unconfigure()


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
