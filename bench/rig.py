"""The bench's world: DynamoDB Local, the CodePipeline emulator, tables, the handler, gates.

Everything runs on loopback. The handler is the production one (`handler.build_app`), built
against whichever endpoints a section wants (direct, or through the counting proxy); its
JSON logs and metrics go to /dev/null, as cheap a sink as Lambda's stdout.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from orchestrator import handler
from orchestrator.clock import VirtualClock
from orchestrator.local.driver import LambdaContext
from orchestrator.local.dynamodb_local import DynamoDBLocal
from orchestrator.local.emulator import CodePipelineEmulator
from orchestrator.local.schema import create_table

if TYPE_CHECKING:
    from collections.abc import Callable

    from orchestrator.local.emulator import JobRecord

REGION = "us-east-1"
FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "benchkey",  # DynamoDB Local accepts only letters and digits here
    "AWS_SECRET_ACCESS_KEY": "bench-secret",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}
STEP_SECONDS = 300.0
IDLE_CHECK = 60.0  # ORCHESTRATOR_IDLE_CHECK_INTERVAL_SECONDS (its default)


def gate(steps: int, step: str = "5m") -> str:
    """A gate of `steps` wait steps, with an output variable so the last answer carries one."""
    return json.dumps(
        {
            "steps": [{"name": f"wait-{i}", "wait": step} for i in range(steps)],
            "outputs": {"RunId": "run.id"},
        }
    )


def v2_gate(steps: int, step: str = "5m") -> str:
    """The same timing in the v2 language: `steps` parallel groups of two waits each, and a
    guard (a python check that passes) polled every `step`, so it is due when the waits end."""
    return json.dumps(
        {
            "guards": [{"name": "quiet", "python": {"callable": "bench.rig:quiet"}, "every": step}],
            "steps": [
                {
                    "name": f"group-{i}",
                    "parallel": [
                        {"name": f"a-{i}", "wait": step},
                        {"name": f"b-{i}", "wait": step},
                    ],
                }
                for i in range(steps)
            ],
            "outputs": {"RunId": "run.id"},
        }
    )


def quiet(context: Any) -> Any:
    """The v2 gate's guard: a check that passes (its poll makes no AWS call)."""
    from orchestrator.steps.python import Finish

    return Finish({"quiet": True})


GATE = gate(5)
"""The gate most sections tick: five 5-minute waits (a typical bake-and-soak)."""


def isolate_environment() -> None:
    """Fake credentials, a fixed region, no profile: the bench never talks to real AWS."""
    for name in list(os.environ):
        if name.startswith(("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN")):
            del os.environ[name]
    os.environ.update(FAKE_AWS)
    os.environ.pop("ORCHESTRATOR_LOG_LEVEL", None)
    os.environ.pop("ORCHESTRATOR_IDLE_CHECK_INTERVAL_SECONDS", None)


def boto_config() -> Config:
    """What the handler's own clients use: botocore's standard retry mode."""
    return Config(
        retries={"mode": "standard", "max_attempts": 3}, connect_timeout=3, read_timeout=10
    )


@dataclass
class Stack:
    """DynamoDB Local and the emulator, with raw boto3 clients for setup and checks."""

    clock: VirtualClock = field(default_factory=lambda: VirtualClock(1.0))
    dynamodb_local: DynamoDBLocal = field(default_factory=DynamoDBLocal)
    emulator: CodePipelineEmulator | None = None
    _sink: Any = None

    def __enter__(self) -> Stack:
        isolate_environment()
        self.dynamodb_local.start()
        self.emulator = CodePipelineEmulator(self.clock, region=REGION)
        self.emulator.start()
        self._sink = open(os.devnull, "w")
        return self

    def __exit__(self, *exc: object) -> None:
        handler.use(None)
        if self.emulator is not None:
            self.emulator.stop()
        self.dynamodb_local.stop()
        if self._sink is not None:
            self._sink.close()

    @property
    def dynamodb_url(self) -> str:
        return self.dynamodb_local.endpoint_url

    @property
    def codepipeline_url(self) -> str:
        assert self.emulator is not None
        return self.emulator.endpoint_url

    def fresh_emulator(self) -> CodePipelineEmulator:
        """Replace the emulator (its job and request logs grow with every tick)."""
        if self.emulator is not None:
            self.emulator.stop()
        self.emulator = CodePipelineEmulator(self.clock, region=REGION)
        self.emulator.start()
        return self.emulator

    def dynamodb(self) -> Any:
        """A raw client straight to DynamoDB Local (setup and checks, never the hot path)."""
        return boto3.client("dynamodb", endpoint_url=self.dynamodb_url, config=boto_config())

    def codepipeline(self) -> Any:
        return boto3.client(
            "codepipeline", endpoint_url=self.codepipeline_url, config=boto_config()
        )

    def new_table(self) -> str:
        name = f"bench-{uuid.uuid4().hex[:10]}"
        create_table(self.dynamodb(), name)
        return name

    def install_handler(
        self, table: str, dynamodb_url: str | None = None, codepipeline_url: str | None = None
    ) -> None:
        """Build the production handler against these endpoints (direct by default)."""
        os.environ["ORCHESTRATOR_TABLE_NAME"] = table
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = dynamodb_url or self.dynamodb_url
        os.environ["AWS_ENDPOINT_URL_CODEPIPELINE"] = codepipeline_url or self.codepipeline_url
        handler.use(None)
        handler.use(handler.build_app(self.clock, self._sink))

    def job(
        self,
        token: str | None = None,
        definition: str = GATE,
        input_artifacts: list[dict[str, Any]] | None = None,
    ) -> JobRecord:
        """A job whose UserParameters are `definition` (inline, or a reference)."""
        assert self.emulator is not None
        return self.emulator.create_job(
            {"FunctionName": "orchestrator", "UserParameters": definition},
            continuation_token=token,
            input_artifacts=input_artifacts,
        )

    def item(self, table: str, run_id: str) -> dict[str, Any]:
        found: dict[str, Any] = self.dynamodb().get_item(
            TableName=table, Key={"run_id": {"S": run_id}}, ConsistentRead=True
        )["Item"]
        return found


def tick(job: JobRecord) -> float:
    """Deliver the job's event to the handler once; the handler's wall time in seconds."""
    context = LambdaContext(300.0)
    started = time.perf_counter()
    result = handler.lambda_handler(job.event, context)
    elapsed = time.perf_counter() - started
    if not result.get("answered"):
        raise RuntimeError(f"the handler did not answer job {job.job_id}: {result}")
    return elapsed


def token_of(job: JobRecord) -> str | None:
    """The continuation token the job was answered with (None: the gate ended)."""
    if job.answer is None:
        raise RuntimeError(f"job {job.job_id} has no answer")
    if job.answer["operation"] != "PutJobSuccessResult":
        raise RuntimeError(f"job {job.job_id} failed: {job.answer['params']}")
    token = job.answer["params"].get("continuationToken")
    return token if isinstance(token, str) else None


KINDS = ("first", "advance", "idle", "stale", "last")
"""Tick kinds, in the order a run meets them: first; (advance, idle, stale) per step; last."""


def walk(
    stack: Stack,
    steps: int,
    on_tick: Callable[[str, int, JobRecord], float | None],
    user_parameters: str | None = None,
    input_artifacts: list[dict[str, Any]] | None = None,
) -> str:
    """Drive one run of `gate(steps)` through every kind of tick; return its run id.

    `on_tick(kind, step, job)` delivers the job (and may time it). Clock moves between
    ticks make each one what its kind says: `advance` is due; `idle` follows at once (fresh
    hints, nothing due); `stale` comes 61 s later (hints too old to trust, nothing due yet).
    `user_parameters` (and the jobs' `input_artifacts`) may name another gate of `steps`
    waits of STEP_SECONDS, e.g. a reference to one.
    """
    definition = user_parameters or gate(steps)
    first = stack.job(definition=definition, input_artifacts=input_artifacts)
    on_tick("first", 0, first)
    token = token_of(first)
    for step in range(1, steps):
        stack.clock.advance(STEP_SECONDS + 1 if step == 1 else STEP_SECONDS - IDLE_CHECK + 5)
        for kind, move in (("advance", 0.0), ("idle", 0.0), ("stale", IDLE_CHECK + 1)):
            stack.clock.advance(move)
            job = stack.job(token, definition, input_artifacts)
            on_tick(kind, step, job)
            token = token_of(job)
    stack.clock.advance(STEP_SECONDS - IDLE_CHECK + 5)
    last = stack.job(token, definition, input_artifacts)
    on_tick("last", steps, last)
    if token_of(last) is not None:
        raise RuntimeError("the last tick did not end the gate")
    return first.job_id
