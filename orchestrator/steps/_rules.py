"""Measurement rules: how a polled check decides on evidence rather than on one sample.

A kind whose polls judge a condition (`until` / `fail_if`, or its own, like alarms) takes
these fields by inheriting `Measured` (`class HttpStep(Measured, Step)`); the engine applies
them to every poll's outcome (`engine.measure`), the same for steps and guards:

    initial_delay    the first poll only after this long            (Argo: initialDelay)
    stable_for       `until` held on every poll for this long        (Azure: minimum duration
                                                                      for steady results)
    successes        `until` held on N polls in a row                (Argo: consecutiveSuccessLimit)
    failure_limit    `fail_if` may be true N times before it fails   (Argo: failureLimit)
    error_limit      N errors in a row are tolerated, one more fails (Argo: consecutiveErrorLimit)
    max_polls        after N polls with nothing settled: inconclusive (Argo: count, inconclusive)
    on_inconclusive  "fail", or "approve": ask `approvers` to decide, with the evidence

A kind tells the engine what a poll was: `Done` (its `until` held), `Failed(by_condition=
True)` (its `fail_if` held), `Pending(error=True)` or `Pending(unobserved=True)` (an error),
any other `Pending` (nothing settled).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from orchestrator.durations import format_duration
from orchestrator.steps._base import Done, Duration, Failed, Outcome, Pending, Step
from orchestrator.text import clip, counted

if TYPE_CHECKING:
    from orchestrator.model import StepState


class Measured(BaseModel):
    """The measurement rules' fields (see the module's docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    initial_delay: Duration | None = None
    stable_for: Duration | None = None
    successes: int | None = Field(default=None, ge=1, le=1000)
    failure_limit: int = Field(default=0, ge=0, le=1000)
    error_limit: int | None = Field(default=None, ge=0, le=1000)
    max_polls: int | None = Field(default=None, ge=1, le=10_000)
    on_inconclusive: Literal["fail", "approve"] = "fail"
    approvers: list[str] = Field(default_factory=list, max_length=50)
    """Who decides an inconclusive check (`on_inconclusive: "approve"`): principals as an
    approval step takes them (docs/APPROVALS.md)."""

    @model_validator(mode="after")
    def _inconclusive(self) -> Measured:
        if self.on_inconclusive == "approve" and not self.approvers:
            raise ValueError('on_inconclusive "approve" needs approvers: who decides')
        if self.approvers and self.on_inconclusive != "approve":
            raise ValueError('approvers are for on_inconclusive "approve"')
        if self.on_inconclusive == "approve" and self.max_polls is None:
            raise ValueError('on_inconclusive "approve" needs max_polls: when to ask')
        return self

    @property
    def measured(self) -> bool:
        """Whether any rule differs from a single sample's verdict (today's behaviour)."""
        return bool(
            self.initial_delay
            or self.stable_for
            or self.successes
            or self.failure_limit
            or self.error_limit is not None
            or self.max_polls
        )


def measure(step: Step, state: StepState, outcome: Outcome, at: float) -> Outcome:
    """A poll's outcome judged by the step's rules (a step without rules: as it is).

    Keeps its counts in `state.memo["rules"]`. A verdict not reached yet (the evidence is
    not enough, a failure or an error within its limit) is a Pending that is `unobserved`:
    a guard neither passes nor is violated by it."""
    if not isinstance(step, Measured) or not step.measured:
        return outcome
    memo: dict[str, Any] = state.memo.setdefault("rules", {})
    memo["polls"] = int(memo.get("polls", 0)) + 1
    if (isinstance(outcome, Pending) and outcome.erred) or (
        isinstance(outcome, Failed) and outcome.retryable
    ):
        _broken(memo)
        errors = memo["errors"] = int(memo.get("errors", 0)) + 1
        if step.error_limit is None:
            return outcome  # unlimited: the kind's own word (a retryable failure, a retry)
        what = outcome.detail if isinstance(outcome, Pending) else outcome.message
        what = _unprefixed(what, step.name)
        if errors > step.error_limit:
            return Failed(
                f"step '{step.name}': {counted(errors, 'error')} in a row, over its error_limit "
                f"{step.error_limit}; the last: {what}",
                outcome.failure_type if isinstance(outcome, Failed) else None,
            )
        return Pending(
            f"{what} (error {errors}/{step.error_limit} tolerated){_evidence(step, memo)}",
            next_check=outcome.next_check if isinstance(outcome, Pending) else None,
            unobserved=True,
        )
    memo["errors"] = 0
    if isinstance(outcome, Failed):
        if not outcome.by_condition:
            return outcome
        _broken(memo)
        times = memo["failures"] = int(memo.get("failures", 0)) + 1
        if times > step.failure_limit:
            more = f" ({counted(times, 'time')}, over its failure_limit)" if times > 1 else ""
            return Failed(outcome.message + more, outcome.failure_type, by_condition=True)
        return Pending(
            f"{_unprefixed(outcome.message, step.name)}: tolerated "
            f"{times}/{step.failure_limit}{_evidence(step, memo)}",
            unobserved=True,
        )
    if isinstance(outcome, Done):
        streak = memo["streak"] = int(memo.get("streak", 0)) + 1
        since = float(memo.setdefault("held_since", at))
        need = step.stable_for or 0.0
        if at - since >= need and streak >= (step.successes or 1):
            return outcome
        end = since + need
        return Pending(
            f"until held{_evidence(step, memo, at)}",
            next_check=min(at + step.interval, end) if at < end else None,
            eta=end if need else None,
            unobserved=True,
        )
    _broken(memo)
    if step.max_polls is not None and memo["polls"] >= step.max_polls:
        return inconclusive(step, state, outcome, at)
    return Pending(
        outcome.detail + _evidence(step, memo),
        next_check=outcome.next_check,
        eta=outcome.eta,
        unobserved=outcome.unobserved,
        error=outcome.error,
    )


def inconclusive(step: Step, state: StepState, outcome: Pending, at: float) -> Outcome:
    """After `max_polls` with nothing settled: fail, or hand the decision to people."""
    assert isinstance(step, Measured)
    memo: dict[str, Any] = state.memo["rules"]
    evidence = f"inconclusive after {counted(memo['polls'], 'poll')} (last: {outcome.detail})"
    if step.on_inconclusive == "fail":
        return Failed(f"step '{step.name}': {evidence}")
    memo["inconclusive"] = clip(evidence, 500)
    return Pending(f"{evidence}; asking {', '.join(step.approvers)}", next_check=at)


def deciding(step: Step, state: StepState) -> Step | None:
    """The approval standing in for an inconclusive step, while people decide (else None)."""
    memo = state.memo.get("rules")
    if not isinstance(step, Measured) or not isinstance(memo, dict):
        return None
    evidence = memo.get("inconclusive")
    if not isinstance(evidence, str):
        return None
    from orchestrator.steps import kind_class

    message = (
        f"'{step.name}' is {evidence}. Approve to count it as passed, reject to fail the gate."
    )
    return kind_class("approval").model_validate(
        {
            "name": step.name,
            "approval": {"approvers": step.approvers, "message": clip(message, 2000)},
        }
    )


def _broken(memo: dict[str, Any]) -> None:
    """A poll where `until` did not hold: the streak starts again."""
    memo["streak"] = 0
    memo.pop("held_since", None)


def _evidence(step: Measured, memo: dict[str, Any], at: float | None = None) -> str:
    """'until held 6m/10m (7 polls), fail_if 1/3' as far as the rules ask for it."""
    parts: list[str] = []
    if at is not None:
        since = float(memo.get("held_since", at))
        held = []
        if step.stable_for:
            held.append(f"{format_duration(at - since)}/{format_duration(step.stable_for)}")
        streak = int(memo.get("streak", 0))
        polls = f"{streak}/{step.successes} polls" if step.successes else counted(streak, "poll")
        parts.append(f" {' '.join(held)} ({polls})" if held else f" ({polls})")
    if step.failure_limit and memo.get("failures"):
        parts.append(f", fail_if {memo['failures']}/{step.failure_limit + 1}")
    return "".join(parts)


def _unprefixed(message: str, name: str) -> str:
    return message.removeprefix(f"step '{name}': ")


def first_poll(step: Step, at: float) -> float:
    """When a step (or guard) reached at `at` is first polled: after its `initial_delay`."""
    delay = step.initial_delay if isinstance(step, Measured) else None
    return at + (delay or 0.0)
