"""`state_machine`: start a Step Functions execution and wait for it to end.

    {"name": "smoke", "state_machine": {"arn": "arn:aws:states:...:stateMachine:smoke",
                                        "input": {"env": "prod", "run": "${run.id}"}}}

The execution's name is derived from the run id and the step name, so however many times a
job is delivered (or delivered at once), there is one execution per step per run: a second
StartExecution with the same name is Step Functions' own idempotent start, or an
`ExecutionAlreadyExists` that means "already started". Its ARN is remembered in the step's
memo; later polls only DescribeExecution. Standard workflows only (Express workflows have
no DescribeExecution and no idempotent start).

Result: `{"execution_arn", "name", "status": "SUCCEEDED", "output": parsed JSON}`.
FAILED, TIMED_OUT and ABORTED fail the gate naming the execution, its error and cause.
A throttled or unreachable Step Functions (or STS) is retried at the next poll. With
`role_arn` and `region` (`orchestrator.targets`) the state machine is another account's, or
region's: give the region the ARN names.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from orchestrator import aws
from orchestrator.durations import format_duration
from orchestrator.exceptions import FailureType
from orchestrator.steps._base import Done, Failed, Outcome, Pending, Step, StepContext
from orchestrator.steps._rules import Measured
from orchestrator.targets import RoleError, Target, acted_as, as_whom, role_outcome
from orchestrator.text import clip, json_or_text, too_large

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

    from orchestrator.model import StepState

MAX_NAME = 80
MAX_CAUSE_CHARS = 1000
MAX_OUTPUT_CHARS = 64_000
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_ARN = re.compile(r"arn:[^:]+:states:[^:]*:[^:]*:stateMachine:[^:]+(:[^:]+)?")


def execution_name(run_id: str, step: str) -> str:
    """The execution's name: `<run id>-<step>`, or a shortened form with a hash (<= 80 chars)."""
    plain = f"{run_id}-{step}"
    safe = _UNSAFE.sub("-", plain)
    if safe == plain and len(safe) <= MAX_NAME:
        return safe
    digest = hashlib.sha256(f"{run_id}\0{step}".encode()).hexdigest()[:16]
    return f"{safe[: MAX_NAME - len(digest) - 1]}-{digest}"


class StateMachineCall(BaseModel):
    """Which state machine to start, and with what input."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    arn: str
    input: Any = Field(default_factory=dict)

    @field_validator("arn")
    @classmethod
    def _state_machine_arn(cls, value: str) -> str:
        if "${" not in value and not _ARN.fullmatch(value):
            raise ValueError(f"invalid state machine ARN {value!r}")
        return value


class StateMachineStep(Measured, Target, Step):
    """Start `state_machine.arn` once per run; done when the execution succeeds."""

    kind: ClassVar[str] = "state_machine"
    not_a_guard: ClassVar[str | None] = (
        "its execution is started once per run: polling it again would not check anything "
        "new; check its effect with http or alarms"
    )

    state_machine: StateMachineCall

    def poll(self, state: StepState, ctx: StepContext) -> Outcome:
        from botocore.exceptions import BotoCoreError, ClientError

        assert ctx.services is not None, "the engine was run without services"
        target = self.acting_as(ctx.run_id, self.name)
        try:
            client = ctx.services.aws("stepfunctions", target=target)
        except RoleError as exc:
            return role_outcome(self.name, exc)
        acted_as(state, target)
        attempt = int((ctx.run.get("run") or {}).get("attempt") or 1)
        # a run resumed after a failure starts a new execution (names are unique for 90 days)
        name = execution_name(ctx.run_id, self.name if attempt == 1 else f"{self.name}-{attempt}")
        arn = state.memo.get("execution_arn")
        doing = f"execution {arn}"
        try:
            if not isinstance(arn, str):
                doing = f"starting {self.state_machine.arn}"
                arn = self._start(client, name)
                state.memo["execution_arn"] = arn
                doing = f"execution {arn}"
            execution = client.describe_execution(executionArn=arn)
        except ClientError as exc:
            fault, code = aws.classify(exc), aws.describe(exc)
            if fault.transient:
                return Pending(f"Step Functions unavailable ({code}); retrying", unobserved=True)
            failure = (
                FailureType.PERMISSION_ERROR
                if fault is aws.AwsFault.DENIED
                else FailureType.CONFIGURATION_ERROR
            )
            return Failed(f"step '{self.name}': {doing}: {code}{as_whom(target)}", failure)
        except BotoCoreError as exc:
            return Pending(
                f"Step Functions unreachable ({type(exc).__name__}); retrying", unobserved=True
            )
        status = str(execution.get("status", ""))
        if status == "SUCCEEDED":
            return Done(
                {
                    "execution_arn": arn,
                    "name": name,
                    "status": status,
                    "output": _output(execution.get("output")),
                }
            )
        if status in ("FAILED", "TIMED_OUT", "ABORTED"):
            error = execution.get("error") or "no error given"
            cause = _clip(str(execution.get("cause") or "no cause given"))
            return Failed(f"step '{self.name}': execution {arn} {status}: {error}: {cause}")
        running = ctx.now - (state.started_at if state.started_at is not None else ctx.now)
        return Pending(f"execution {name} {status or 'RUNNING'} for {format_duration(running)}")

    def _start(self, client: SFNClient, name: str) -> str:
        from botocore.exceptions import ClientError

        machine = self.state_machine.arn
        try:
            response = client.start_execution(
                stateMachineArn=machine, name=name, input=json.dumps(self.state_machine.input)
            )
        except ClientError as exc:
            if aws.error_code(exc) != "ExecutionAlreadyExists":
                raise
            # Started by another delivery of this job (or by a tick whose write was lost).
            prefix, _, machine_name = machine.partition(":stateMachine:")
            return f"{prefix}:execution:{machine_name.split(':')[0]}:{name}"
        return str(response["executionArn"])


def _output(raw: Any) -> Any:
    if not isinstance(raw, str):
        return None
    if len(raw) > MAX_OUTPUT_CHARS:
        return too_large(len(raw))
    return json_or_text(raw)


def _clip(text: str) -> str:
    return clip(text, MAX_CAUSE_CHARS)
