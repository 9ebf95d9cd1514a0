"""`lambda`: invoke a function once (RequestResponse) and keep what it returns.

    {"name": "check", "lambda": {"function": "release-checks",
                                 "payload": {"run": "${run.id}", "env": "prod"}}}

Result: the function's response, parsed as JSON (or the text when it is not JSON). A
function error (`X-Amz-Function-Error`) fails the gate with the function's `errorType` and
`errorMessage`. Throttling and Lambda's own 5xx fail the step *retryably*: give the step a
`retry` and they are tried again later; nothing else is retried by the step.

Once per attempt, even when deliveries race. Before invoking, the delivery claims the
attempt with the store's once-per-key write (`invoke-<n>` in the step's claims); a
delivery that finds it claimed waits for the claimant's outcome, which the claimant also
records (`result-<n>`) before writing the run, so it survives a claimant whose write of
the run loses the race. The claim carries a random id that the run's memo keeps, so a claim
written but reported as failed (its response lost) is recognised as the run's own at the
next tick, which then invokes. A claim with no outcome after `CLAIM_LEASE_SECONDS` of real time
belongs to an invocation that died: the step fails saying the function may have run. On
the run's first tick nothing can be claimed yet (the run is not stored), so a gate that
starts with a `lambda` step invokes on its second tick.

With `role_arn` and `region` (`orchestrator.targets`) the function is another account's, or
region's. The role is assumed before the attempt is claimed: while STS is unavailable the step
waits (nothing was invoked); a role that is refused fails the step.

Invoking is still not idempotent: botocore re-sends nothing (the client makes a single
attempt), but a response that never arrives (the client reads for at most 60 s, so keep
these functions quick; start a `state_machine` for long work) fails the step saying the
function may have run, and each `retry` invokes again. Make the function idempotent where
that matters, e.g. keyed on `${run.id}` in the payload.
"""

from __future__ import annotations

import json
import secrets
import time
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from orchestrator import aws
from orchestrator.exceptions import FailureType
from orchestrator.steps._base import Done, Failed, Outcome, Pending, Step, StepContext
from orchestrator.targets import RoleError, Target, acted_as, as_whom, role_outcome
from orchestrator.text import bounded, clip, json_or_text

if TYPE_CHECKING:
    from botocore.exceptions import ClientError
    from mypy_boto3_lambda import LambdaClient

    from orchestrator.model import StepState
    from orchestrator.targets import AwsTarget

CLAIM_LEASE_SECONDS = 16 * 60.0
"""Real seconds after which a claim without an outcome was abandoned: the orchestrator's
own function runs for 15 minutes at most."""
CLAIM_RECHECK_SECONDS = 10.0
MAX_RESULT_CHARS = 64_000
MAX_ERROR_CHARS = 1000


class LambdaCall(BaseModel):
    """The function to invoke and its payload (any JSON; `${...}` templated)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    function: str = Field(min_length=1, max_length=170)
    payload: Any = Field(default_factory=dict)


class LambdaStep(Target, Step):
    """Invoke `lambda.function` with `lambda.payload`; done with its response."""

    model_config = ConfigDict(validate_by_name=True, serialize_by_alias=True)

    kind: ClassVar[str] = "lambda"
    not_a_guard: ClassVar[str | None] = (
        "its invocation is claimed once per run (so that duplicates never invoke it twice): "
        "polling it again would not check anything new; check its effect with http or alarms"
    )

    lambda_: LambdaCall = Field(alias="lambda")

    def poll(self, state: StepState, ctx: StepContext) -> Outcome:
        attempt = int(state.memo.get("invocations", 0))
        claim_key, result_key = f"invoke-{attempt}", f"result-{attempt}"
        recorded = ctx.claims.get(result_key)
        if isinstance(recorded, dict):  # claimed, invoked and recorded by another delivery
            state.memo["invocations"] = attempt + 1
            return _replayed(recorded)
        assert ctx.services is not None, "the engine was run without services"
        target = self.acting_as(ctx.run_id, self.name)
        try:  # before the claim: a role that cannot be had invokes nothing
            client = ctx.services.aws("lambda", single_attempt=True, target=target)
        except RoleError as exc:
            return role_outcome(self.name, exc)
        acted_as(state, target)
        if ctx.claim is not None:
            held = ctx.claims.get(claim_key)
            if isinstance(held, dict) and held.get("by") != state.memo.get("claim"):
                return self._held(held, ctx)
            # Not held, or held by this run's own earlier tick, whose claim was written but
            # reported as failed (its response was lost) and which therefore did not invoke.
            if not isinstance(held, dict):
                state.memo["claim"] = secrets.token_hex(8)
                claimed = {"at": time.time(), "by": state.memo["claim"]}
                if not ctx.claim(claim_key, claimed):
                    return Pending(
                        f"claiming the invocation of {self.lambda_.function}",
                        next_check=ctx.now + CLAIM_RECHECK_SECONDS,
                    )
        outcome = self._invoke(client, target)
        state.memo["invocations"] = attempt + 1
        if ctx.claim is not None:
            ctx.claim(result_key, _recorded(outcome))
        return outcome

    def _held(self, held: dict[str, Any], ctx: StepContext) -> Outcome:
        """Another delivery claimed this attempt and has not recorded its outcome yet."""
        function = self.lambda_.function
        age = time.time() - float(held.get("at", 0.0))
        if age < CLAIM_LEASE_SECONDS:
            return Pending(
                f"another delivery is invoking {function}",
                next_check=ctx.now + CLAIM_RECHECK_SECONDS,
            )
        return Failed(
            f"step '{self.name}': the invocation of {function} claimed {age:.0f}s ago never "
            "recorded an outcome; the function may have run"
        )

    def _invoke(self, client: LambdaClient, target: AwsTarget | None) -> Done | Failed:
        from botocore.exceptions import BotoCoreError, ClientError

        function = self.lambda_.function
        try:
            response = client.invoke(
                FunctionName=function,
                InvocationType="RequestResponse",
                Payload=json.dumps(self.lambda_.payload).encode(),
            )
        except ClientError as exc:
            return self._client_error(function, exc, target)
        except BotoCoreError as exc:
            if aws.may_have_taken_effect(exc):  # the function may have run: not retried
                return Failed(
                    f"step '{self.name}': no response from function {function} "
                    f"({type(exc).__name__}); it may have run"
                )
            return Failed(
                f"step '{self.name}': could not reach Lambda to invoke {function} "
                f"({type(exc).__name__})",
                retryable=True,
            )
        stream = response.get("Payload")
        raw = stream.read() if stream is not None else b""
        if stream is not None and hasattr(stream, "close"):
            stream.close()
        body = _decode(raw)
        if response.get("FunctionError"):
            return Failed(f"step '{self.name}': function {function} failed: {_error(body)}")
        return Done(_bounded(body))

    def _client_error(self, function: str, exc: ClientError, target: AwsTarget | None) -> Failed:
        fault, code = aws.classify(exc), aws.describe(exc)
        message = _clip(str(exc.response.get("Error", {}).get("Message", "")))
        text = f"step '{self.name}': invoking {function}{as_whom(target)}: {code}" + (
            f" ({message})" if message else ""
        )
        if fault.transient:
            return Failed(text, retryable=True)
        if fault is aws.AwsFault.DENIED:
            return Failed(text, FailureType.PERMISSION_ERROR)
        return Failed(text, FailureType.CONFIGURATION_ERROR)


def _recorded(outcome: Done | Failed) -> dict[str, Any]:
    if isinstance(outcome, Done):
        return {"result": outcome.result}
    kind = outcome.failure_type.value if outcome.failure_type is not None else None
    return {"failed": outcome.message, "failure_type": kind, "retryable": outcome.retryable}


def _replayed(recorded: dict[str, Any]) -> Done | Failed:
    if "failed" not in recorded:
        return Done(recorded.get("result"))
    kind = recorded.get("failure_type")
    return Failed(
        str(recorded["failed"]),
        FailureType(kind) if kind else None,
        retryable=bool(recorded.get("retryable")),
    )


def _decode(raw: bytes) -> Any:
    text = raw.decode("utf-8", errors="replace")
    return json_or_text(text) if text else None


def _error(body: Any) -> str:
    if isinstance(body, dict):
        kind = body.get("errorType") or "Error"
        message = body.get("errorMessage") or "no error message"
        return _clip(f"{kind}: {message}")
    return _clip(str(body) if body is not None else "no error message")


def _clip(text: str) -> str:
    return clip(text, MAX_ERROR_CHARS)


def _bounded(body: Any) -> Any:
    """Keep results small enough for the run's DynamoDB item."""
    return bounded(body, MAX_RESULT_CHARS)
