"""`http`: poll a URL until a JMESPath condition over the response holds.

The document the conditions see, and the step's result, is
`{"status": int, "headers": {lower-case name: value}, "body": JSON or text}`.
A network error or a 5xx is retried at the next poll; it never fails the gate by itself
(the step's `timeout` does). A header value may be a secret reference (`orchestrator.secrets`),
resolved at each poll and never kept: the result holds the response only, with any echo of
a secret value replaced by `***`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from orchestrator.expressions import Expression, search, truthy
from orchestrator.secrets import (
    SecretRef,
    SecretUnavailable,
    SecretUnreadable,
    redact,
    resolve_headers,
)
from orchestrator.services import HttpError
from orchestrator.steps._base import (
    Done,
    Duration,
    Failed,
    Outcome,
    Pending,
    Step,
    StepContext,
)
from orchestrator.text import bounded, json_or_text

if TYPE_CHECKING:
    from orchestrator.model import StepState

MAX_RESULT_BODY_CHARS = 64_000


class HttpRequest(BaseModel):
    """The request to send at each poll."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    headers: dict[str, str | SecretRef] = Field(default_factory=dict)
    body: Any = None
    request_timeout: Duration = 10.0

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        # A templated URL is checked once rendered (rendering validates the step again).
        if not value.startswith(("http://", "https://", "${")):
            raise ValueError(f"invalid URL {value!r}: must start with http:// or https://")
        return value


class HttpStep(Step):
    """Poll `http.url` every `every` until `until` (default: a 2xx status); `fail_if` fails."""

    kind: ClassVar[str] = "http"

    http: HttpRequest
    until: Expression | None = None
    fail_if: Expression | None = None

    def poll(self, state: StepState, ctx: StepContext) -> Outcome:
        timeout = min(self.http.request_timeout, max(ctx.time_left(), 0.1))
        body = self.http.body
        data = None if body is None else (body if isinstance(body, str) else json.dumps(body))
        services = ctx.services
        assert services is not None, "the engine was run without services"
        try:
            headers = resolve_headers(self.http.headers, services)
        except SecretUnavailable as exc:
            return Pending(f"{exc}; retrying (polled {state.polls + 1} times)")
        except SecretUnreadable as exc:
            return Failed(f"step '{self.name}': {exc}", exc.failure_type)
        hidden = [headers[k] for k, v in self.http.headers.items() if isinstance(v, SecretRef)]
        try:
            response = services.http.request(
                self.http.method,
                self.http.url,
                headers,
                data.encode() if data is not None else None,
                timeout,
            )
        except HttpError as exc:
            return Pending(f"no response ({exc}); retrying (polled {state.polls + 1} times)")
        document = redact(
            {
                "status": response.status,
                "headers": response.headers,
                "body": _decode(response.body, response.headers.get("content-type", "")),
            },
            hidden,
        )
        if response.status >= 500:
            return Pending(f"HTTP {response.status}; retrying (polled {state.polls + 1} times)")
        if self.fail_if is not None and truthy(search(self.fail_if, document)):
            return Failed(
                f"step '{self.name}': fail_if is true ({self.fail_if}); HTTP {response.status}"
            )
        done = (
            truthy(search(self.until, document))
            if self.until is not None
            else 200 <= response.status < 300
        )
        if done:
            return Done(_bounded(document))
        what = "until" if self.until is not None else "a 2xx status"
        return Pending(
            f"waiting for {what} (polled {state.polls + 1} times, last HTTP {response.status})"
        )


def _decode(raw: bytes, content_type: str) -> Any:
    text = raw.decode("utf-8", errors="replace")
    if "json" in content_type or text[:1] in ("{", "["):
        return json_or_text(text)
    return text


def _bounded(document: dict[str, Any]) -> dict[str, Any]:
    """Keep results small enough for the run's DynamoDB item."""
    return {**document, "body": bounded(document["body"], MAX_RESULT_BODY_CHARS)}
