"""The end-to-end rig: one warm function (the real handler), the CodePipeline emulator's
job loop, and a runs table in DynamoDB Local, all over real sockets."""

from __future__ import annotations

import io
import json
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import boto3

from orchestrator import _log, handler
from orchestrator.clock import VirtualClock
from orchestrator.local.driver import ActionResult, run_action
from orchestrator.local.emulator import CodePipelineEmulator

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pytest


class Rig:
    """Runs gates through the handler; `logs` holds the function's JSON logs and metrics."""

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

    def item(self, run_id: str) -> dict[str, Any]:
        found: dict[str, Any] = (
            boto3.client("dynamodb")
            .get_item(TableName=self.table, Key={"run_id": {"S": run_id}}, ConsistentRead=True)
            .get("Item", {})
        )
        return found

    def items(self) -> list[dict[str, Any]]:
        """The table's items but the links from pipeline executions' actions to their runs
        (`execution#...`, written on a run's first tick: `links()`)."""
        return [i for i in self.every_item() if not i["run_id"]["S"].startswith("execution#")]

    def links(self) -> list[dict[str, Any]]:
        return [i for i in self.every_item() if i["run_id"]["S"].startswith("execution#")]

    def every_item(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = boto3.client("dynamodb").scan(TableName=self.table)["Items"]
        return found

    def job_details_calls(self) -> int:
        """GetJobDetails requests the emulator received (bodies with only a jobId)."""
        return sum(1 for body in self.emulator.requests if set(json.loads(body)) == {"jobId"})


@contextmanager
def gate_rig(
    table: str, monkeypatch: pytest.MonkeyPatch, speed: float = 600, start: float | None = None
) -> Iterator[Rig]:
    """The rig on `table`, its clock `speed` times real time (from `start`, default now),
    logs captured at DEBUG."""
    clock = VirtualClock(speed=speed, start=start)
    logs = io.StringIO()
    _log.unconfigure()
    _log.configure("DEBUG", logs)
    with CodePipelineEmulator(clock) as emulator:
        monkeypatch.setenv("AWS_ENDPOINT_URL_CODEPIPELINE", emulator.endpoint_url)
        handler.use(handler.build_app(clock, logs))
        try:
            yield Rig(emulator, clock, table, logs)
        finally:
            handler.use(None)
            _log.unconfigure()
