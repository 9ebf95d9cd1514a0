"""What every step kind is: a pydantic model of its definition that knows how to poll itself.

A step kind is one module in this package with one `Step` subclass. The engine calls
`poll()` whenever the step is due and acts on the outcome; it never looks inside a kind.

    Pending  not done yet: check again at `next_check` (default: now + `every`)
    Done     finished; `result` is what later steps and outputs see at steps.<name>
    Failed   the gate fails with `message`
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from orchestrator import expressions
from orchestrator.durations import parse_duration

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from orchestrator.exceptions import FailureType
    from orchestrator.model import StepState
    from orchestrator.services import ServiceClients


def _duration(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"invalid duration {value!r} (use e.g. '30s', '10m', '1h30m', 'PT1H')")
    seconds = parse_duration(value) if isinstance(value, str) else float(value)
    if not math.isfinite(seconds):
        raise ValueError("invalid duration: must be a finite number of seconds")
    if seconds <= 0:
        raise ValueError(f"invalid duration {value!r}: must be positive")
    return seconds


Duration = Annotated[float, BeforeValidator(_duration)]
"""Seconds, written in a definition as '30s', '1h30m', 'PT1H30M' (or a number of seconds)."""


_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _step_name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError(f"invalid step name {value!r}: use 1 to 64 of A-Z a-z 0-9 _ -")
    return value


@dataclass(frozen=True)
class Pending:
    """Not done yet. `eta`, when known, lets the progress bar move between polls.

    `unobserved`: the check could not be made at all (the service it asks was unavailable),
    as opposed to a check that was made and said "not yet". A guard (see engine.py) counts
    the second as a violation and keeps its last verdict on the first."""

    detail: str
    next_check: float | None = None
    eta: float | None = None
    unobserved: bool = False
    error: bool = False
    """The poll met an error (no response, HTTP 5xx, throttling, a query error): what a
    step's `error_limit` counts (an unobserved poll is an error too)."""

    @property
    def erred(self) -> bool:
        return self.error or self.unobserved


@dataclass(frozen=True)
class Done:
    """The step finished with `result`. `valid_until`: when what it found stops holding,
    if known (a window's closing): a guard is polled again by then."""

    result: Any
    valid_until: float | None = None


@dataclass(frozen=True)
class Failed:
    """The step failed. `retryable` failures are retried when the step has a `retry`."""

    message: str
    failure_type: FailureType | None = None
    retryable: bool = False
    by_condition: bool = False
    """The step's failing condition held (`fail_if` true, an alarm in ALARM): what a step's
    `failure_limit` counts."""


Outcome = Pending | Done | Failed


@dataclass
class StepContext:
    """What a step sees while polling.

    `now` is the gate's clock (virtual in rehearsals); `time_left()` is *real* seconds left
    for I/O in this invocation: a poll must not block longer than that.
    """

    run_id: str
    now: float
    run: Mapping[str, Any]
    time_left: Callable[[], float]
    services: ServiceClients | None = field(default=None)
    decisions: Mapping[str, Any] = field(default_factory=dict)
    """Approvers' decisions on this step, by principal (written outside the tick)."""
    claims: Mapping[str, Any] = field(default_factory=dict)
    """This step's once-per-key records, by key (what `claim` wrote, on earlier ticks)."""
    claim: Callable[[str, dict[str, Any]], bool] | None = None
    """Record `value` under `key` in this step's claims, once: True for the one caller
    that wrote it; False when it was there already, or the run is not stored yet (its first
    tick), or the store is unavailable. Seen in `claims` from the next tick on. None when
    there is no store (the engine alone)."""


class Retry(BaseModel):
    """Retry errors worth retrying: `attempts` in all, waiting `backoff`, doubling each time."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attempts: int = Field(default=3, ge=1, le=20)
    backoff: Duration = 10.0

    def delay(self, failures: int) -> float:
        return float(self.backoff * 2 ** max(0, failures - 1))


class Step(BaseModel):
    """Fields every step has; each kind adds its own and implements `poll`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ClassVar[str]
    default_every: ClassVar[float] = 30.0
    not_a_guard: ClassVar[str | None] = "it is not a check that can be polled again and again"
    """Why the kind cannot be a guard, for the validator's message; None for the kinds that
    can (a check polled again and again, with no side effect, for as long as the gate runs)."""

    name: Annotated[str, AfterValidator(_step_name)]
    every: Duration | None = None
    timeout: Duration | None = None
    retry: Retry | None = None
    when: expressions.Expression | None = None
    """Evaluated over the run context when the step is reached: false skips it."""
    advisory: bool = False
    """A failure is recorded and reported but does not fail the gate."""
    hold: Duration | None = None
    """Opt-in, like the gate's `hold` but only while this step (guard, hook) runs: an
    invocation whose next poll is due within this long waits for it in-process."""

    @model_validator(mode="after")
    def _templates_compile(self) -> Step:
        try:
            expressions.check_templates(self.model_dump(mode="json", exclude={"name"}))
        except expressions.TemplateError as exc:
            raise ValueError(str(exc)) from None
        return self

    def rendered(self, context: Mapping[str, Any]) -> Step:
        """This step with every `${...}` substituted from the run context."""
        raw = self.model_dump(mode="json", exclude_unset=True)
        if not expressions.placeholders(raw):
            return self
        return type(self).model_validate(expressions.render(raw, context))

    def reads_pipeline(self) -> bool:
        """Whether polling needs the run context's `pipeline` document even when no
        `${...}` names it (GetJobDetails is asked only for runs that need it)."""
        return False

    def at_deadline(self, state: StepState, ctx: StepContext) -> Outcome | None:
        """What the step's own timeout means when it passes (None: the gate fails saying the
        step timed out). The approval step settles decisions that came in since its last
        poll, then fails or approves as its `on_timeout` says."""
        return None

    @property
    def interval(self) -> float:
        return self.every if self.every is not None else self.default_every

    def poll(self, state: StepState, ctx: StepContext) -> Outcome:
        """Check the step once; must return within `ctx.time_left()` seconds."""
        raise NotImplementedError
