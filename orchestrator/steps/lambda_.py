"""`lambda`: invoke a function once (RequestResponse) and keep what it returns.

    {"name": "check", "lambda": {"function": "release-checks",
                                 "payload": {"run": "${run.id}", "env": "prod"}}}

Result: the function's response, parsed as JSON (or the text when it is not JSON). A
function error (`X-Amz-Function-Error`) fails the gate with the function's `errorType` and
`errorMessage`. Throttling and Lambda's own 5xx fail the step *retryably*: give the step a
`retry` and they are tried again later; nothing else is retried by the step.

Invoking is not idempotent. The function may run more than once for one step: botocore's
standard retry mode re-sends an Invoke that was throttled, got a 5xx or timed out reading
the response (the services' client reads for at most 20 s, so keep these functions quick;
start a `state_machine` for long work), a step `retry` invokes again, and two deliveries of
one job that arrive at the same moment both poll before one of them wins the write. Make the
function idempotent, e.g. keyed on `${run.id}` in the payload.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.model import FailureType
from orchestrator.steps._base import Done, Failed, Outcome, Step, StepContext

if TYPE_CHECKING:
    from orchestrator.model import StepState

MAX_RESULT_CHARS = 64_000
MAX_ERROR_CHARS = 1000
_THROTTLING = frozenset(
    {
        "TooManyRequestsException",
        "ThrottlingException",
        "EC2ThrottledException",
        "ResourceNotReadyException",
    }
)


class LambdaCall(BaseModel):
    """The function to invoke and its payload (any JSON; `${...}` templated)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    function: str = Field(min_length=1, max_length=170)
    payload: Any = Field(default_factory=dict)


class LambdaStep(Step):
    """Invoke `lambda.function` with `lambda.payload`; done with its response."""

    model_config = ConfigDict(validate_by_name=True, serialize_by_alias=True)

    kind: ClassVar[str] = "lambda"

    lambda_: LambdaCall = Field(alias="lambda")

    def poll(self, state: StepState, ctx: StepContext) -> Outcome:
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectionClosedError,
            ReadTimeoutError,
        )

        function = self.lambda_.function
        try:
            response = ctx.services.aws("lambda", single_attempt=True).invoke(
                FunctionName=function,
                InvocationType="RequestResponse",
                Payload=json.dumps(self.lambda_.payload).encode(),
            )
        except ClientError as exc:
            return self._client_error(function, dict(exc.response))
        except (ReadTimeoutError, ConnectionClosedError) as exc:
            # The request was sent: the function may have run. Not retried by the step.
            return Failed(
                f"step '{self.name}': no response from function {function} "
                f"({type(exc).__name__}); it may have run"
            )
        except BotoCoreError as exc:
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

    def _client_error(self, function: str, response: dict[str, Any]) -> Failed:
        code = str(response.get("Error", {}).get("Code", "")) or "error"
        message = _clip(str(response.get("Error", {}).get("Message", "")))
        status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        text = f"step '{self.name}': invoking {function}: {code}" + (
            f" ({message})" if message else ""
        )
        if code in _THROTTLING or status == 429 or status >= 500:
            return Failed(text, retryable=True)
        if "AccessDenied" in code or status == 403:
            return Failed(text, FailureType.PERMISSION_ERROR)
        return Failed(text, FailureType.CONFIGURATION_ERROR)


def _decode(raw: bytes) -> Any:
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text) if text else None
    except ValueError:
        return text


def _error(body: Any) -> str:
    if isinstance(body, dict):
        kind = body.get("errorType") or "Error"
        message = body.get("errorMessage") or "no error message"
        return _clip(f"{kind}: {message}")
    return _clip(str(body) if body is not None else "no error message")


def _clip(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def _bounded(body: Any) -> Any:
    """Keep results small enough for the run's DynamoDB item."""
    encoded = json.dumps(body)
    if len(encoded) > MAX_RESULT_CHARS:
        return f"<{len(encoded)} characters, too large to keep>"
    return body
