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

from orchestrator.expressions import Expression, reads, search, truthy
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
from orchestrator.steps._rules import Measured
from orchestrator.targets import acted_as
from orchestrator.text import bounded, clip, counted, json_or_text

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


class HttpStep(Measured, Step):
    """Poll `http.url` every `every` until `until` (default: a 2xx status); `fail_if` fails."""

    kind: ClassVar[str] = "http"
    not_a_guard: ClassVar[str | None] = None
    document_roots: ClassVar[tuple[str, ...]] = ("status", "headers", "body")
    """What `until` and `fail_if` see (and the result): checked by `orchestrator validate`."""

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
            headers = resolve_headers(self.http.headers, services, (ctx.run_id, self.name))
        except SecretUnavailable as exc:
            polled = counted(state.polls + 1, "time")
            return Pending(f"{exc}; retrying (polled {polled})", unobserved=True)
        except SecretUnreadable as exc:
            return Failed(f"step '{self.name}': {exc}", exc.failure_type)
        hidden = [headers[k] for k, v in self.http.headers.items() if isinstance(v, SecretRef)]
        for ref in self.http.headers.values():
            if isinstance(ref, SecretRef):
                acted_as(state, ref.acting_as(ctx.run_id, self.name))
        try:
            response = services.http.request(
                self.http.method,
                self.http.url,
                headers,
                data.encode() if data is not None else None,
                timeout,
            )
        except HttpError as exc:
            polled = counted(state.polls + 1, "time")
            return Pending(f"no response ({exc}); retrying (polled {polled})", error=True)
        document = redact(
            {
                "status": response.status,
                "headers": response.headers,
                "body": _decode(response.body, response.headers.get("content-type", "")),
            },
            hidden,
        )
        if response.status >= 500:
            polled = counted(state.polls + 1, "time")
            return Pending(f"HTTP {response.status}; retrying (polled {polled})", error=True)
        if self.fail_if is not None and truthy(search(self.fail_if, document)):
            return Failed(
                f"step '{self.name}': fail_if is true ({self.fail_if}); HTTP {response.status}",
                by_condition=True,
            )
        value = search(self.until, document) if self.until is not None else None
        done = truthy(value) if self.until is not None else 200 <= response.status < 300
        if done:
            return Done(_bounded(document))
        what = "until" if self.until is not None else "a 2xx status"
        why = f": {_why(self.until, value, document)}" if self.until is not None else ""
        return Pending(
            f"waiting for {what} (polled {counted(state.polls + 1, 'time')}, "
            f"last HTTP {response.status}){why}"
        )


MAX_SHOWN_CHARS = 80
"""How much of a value the summary shows of what `until` read."""


def _why(until: str, value: Any, document: dict[str, Any]) -> str:
    """What `until` evaluated to and what it read, e.g. `until is null: body is text/html`
    or `until false: body.state is "running"` (the document is redacted; values clipped)."""
    said = "until false" if value is False else f"until is {_shown(value)}"
    paths = reads(until)
    if not paths:
        return said
    return f"{said}: {_at(paths[0], document)}"


def _at(path: tuple[str, ...], document: dict[str, Any]) -> str:
    """The value at `path` in the response document, or where the path stops."""
    current: Any = document
    for depth, key in enumerate(path):
        where = ".".join(path[:depth]) or "the response"
        if isinstance(current, str) and depth == 1 and path[0] == "body":
            kind = document["headers"].get("content-type", "") or "text"
            return f"body is {clip(kind.split(';')[0].strip(), 40)}, not JSON"
        if not isinstance(current, dict):
            return f"{where} is {_type(current)}, not an object"
        if key not in current:
            return f"{where} has no {clip(key, 40)!r}"
        current = current[key]
    return f"{'.'.join(path)} is {_shown(current)}"


def _shown(value: Any) -> str:
    return "null" if value is None else clip(json.dumps(value), MAX_SHOWN_CHARS)


def _type(value: Any) -> str:
    return {list: "a list", str: "a string", bool: "a boolean"}.get(type(value), "a number")


def _decode(raw: bytes, content_type: str) -> Any:
    text = raw.decode("utf-8", errors="replace")
    if "json" in content_type or text[:1] in ("{", "["):
        return json_or_text(text)
    return text


def _bounded(document: dict[str, Any]) -> dict[str, Any]:
    """Keep results small enough for the run's DynamoDB item."""
    return {**document, "body": bounded(document["body"], MAX_RESULT_BODY_CHARS)}
