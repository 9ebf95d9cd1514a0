"""The pure engine: given a run's state, its definition, the time and the signals that
reached the run from outside (a cancel, approvers' decisions, steps' claims), advance the run.

It imports neither boto3 nor pynamodb (tests/architecture checks it). Steps are polled
through their `poll()` method (which may do I/O through `ctx.services`); everything else is
arithmetic on `RunState`.

One call of `advance()` polls every step that is due, in order, moving on as steps finish,
and stops at the first step that is still pending, at a failure, at the end of the gate,
or when the budget's `time_left()` (real seconds left in this invocation) drops below its
`reserve`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from jmespath.exceptions import JMESPathError
from pydantic import ValidationError

from orchestrator.durations import format_duration
from orchestrator.exceptions import FailureType
from orchestrator.expressions import TemplateError
from orchestrator.model import Failure, RunState, RunStatus, Signals, StepState
from orchestrator.steps import Failed, Outcome, Pending, Step, StepContext
from orchestrator.text import counted, format_instant

if TYPE_CHECKING:
    from collections.abc import Callable

    from orchestrator.definition import GateDefinition
    from orchestrator.services import ServiceClients

_T = TypeVar("_T")

MAX_OUTPUT_BYTES = 122_880
"""CodePipeline's limit on the total size of one action's output variables."""


@dataclass(frozen=True)
class Budget:
    """Real time available to this invocation for step I/O."""

    time_left: Callable[[], float]
    reserve: float = 5.0


def start(definition: GateDefinition, run_id: str, now: float) -> RunState:
    """A new run, nothing polled yet."""
    return RunState(
        run_id=run_id,
        started_at=now,
        deadline=now + definition.timeout,
        steps=[StepState(name=step.name, kind=step.kind) for step in definition.steps],
    )


def advance(
    definition: GateDefinition,
    state: RunState,
    now: Callable[[], float],
    budget: Budget,
    services: ServiceClients | None = None,
    claim: Callable[[str, str, dict[str, Any]], bool] | None = None,
    signals: Signals | None = None,
) -> RunState:
    """Return the run advanced as far as it can go right now (the input is not modified).

    `signals` are what reached the run from outside (a cancel, approvers' decisions, the
    steps' claims); `claim(step, key, value)` is the store's once-per-key write into a
    step's claims (see `StepContext.claim`).
    """
    signals = signals or Signals()
    run = state.model_copy(deep=True)
    if run.status is not RunStatus.RUNNING:
        return run
    if [s.name for s in run.steps] != [s.name for s in definition.steps]:
        return _fail(
            run,
            now(),
            "the gate definition changed while the run was in progress",
            FailureType.CONFIGURATION_ERROR,
        )
    if signals.cancel_requested_by:
        return _fail(run, now(), f"cancelled by {signals.cancel_requested_by}")
    while run.step_index < len(definition.steps):
        at = now()
        step = definition.steps[run.step_index]
        step_state = run.steps[run.step_index]
        if at >= run.deadline:
            return _fail(
                run,
                at,
                f"gate timed out after {format_duration(definition.timeout)} "
                f"at step '{step.name}'{_last(step_state)}",
            )
        if step_state.started_at is None:
            step_state.started_at, step_state.next_check = at, at
        step_deadline = step_state.started_at + definition.step_timeout(step)
        timed_out = at >= step_deadline
        if not timed_out and step_state.next_check is not None and step_state.next_check > at:
            return run
        if not timed_out and budget.time_left() < budget.reserve:
            return run
        context = run_context(definition, run)
        ctx = StepContext(
            run.run_id,
            at,
            context,
            budget.time_left,
            services,
            decisions=signals.decisions.get(step.name, {}),
            claims=signals.claims.get(step.name, {}),
            claim=partial(claim, step.name) if claim is not None else None,
        )
        if timed_out:
            # the step's own word on its timeout; None: the usual timeout failure
            late = _ask(step, ctx, lambda s: s.at_deadline(step_state, ctx), False)  # noqa: B023
            if late is None or isinstance(late, Pending):
                return _fail(
                    run,
                    at,
                    f"step '{step.name}' timed out after "
                    f"{format_duration(definition.step_timeout(step))}{_last(step_state)}",
                )
            outcome: Outcome = late
        else:
            outcome = _ask(step, ctx, lambda s: s.poll(step_state, ctx), True)  # noqa: B023
        step_state.polls += 1
        if isinstance(outcome, Failed) and outcome.retryable and step.retry is not None:
            failures = int(step_state.memo.get("failures", 0)) + 1
            step_state.memo["failures"] = failures
            if failures < step.retry.attempts:
                delay = step.retry.delay(failures)
                outcome = Pending(
                    f"{outcome.message}; retry {failures}/"
                    f"{step.retry.attempts - 1} in {format_duration(delay)}",
                    next_check=at + delay,
                )
            else:
                outcome = Failed(
                    f"{outcome.message} (gave up after {counted(failures, 'attempt')})",
                    outcome.failure_type,
                )
        if isinstance(outcome, Pending):
            step_state.detail, step_state.eta = outcome.detail, outcome.eta
            wanted = outcome.next_check if outcome.next_check is not None else at + step.interval
            step_state.next_check = min(max(wanted, at), step_deadline, run.deadline)
            return run
        if isinstance(outcome, Failed):
            return _fail(run, at, outcome.message, outcome.failure_type or FailureType.JOB_FAILED)
        step_state.result = outcome.result
        step_state.finished_at, step_state.next_check = at, None
        step_state.detail, step_state.eta = "done", None
        run.step_index += 1
    return _finish(definition, run, now())


def _ask(
    step: Step, ctx: StepContext, question: Callable[[Step], _T], retryable: bool
) -> _T | Failed:
    """Ask the step, its `${...}` rendered, a question (poll, or what its deadline means),
    at once (B023: the callers' lambdas run before their loop moves on); templating errors
    and the step's own exceptions become failures naming it (`retryable` or not)."""
    try:
        rendered = step.rendered(ctx.run)
    except (TemplateError, ValidationError) as exc:
        return Failed(f"step '{step.name}': {_first_line(exc)}")
    try:
        return question(rendered)
    except Exception as exc:  # a step's bug must still end in an answer
        return Failed(f"step '{step.name}' raised {type(exc).__name__}: {exc}", retryable=retryable)


def _first_line(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        return f"{where}: {error['msg']}" if where else error["msg"]
    return str(exc).splitlines()[0]


def next_due(run: RunState) -> float | None:
    """When the run next needs a poll (None when it is over)."""
    if run.status is not RunStatus.RUNNING:
        return None
    if run.step_index >= len(run.steps):
        return run.started_at
    step_state = run.steps[run.step_index]
    due = step_state.next_check if step_state.next_check is not None else run.started_at
    return min(due, run.deadline)


def percent(run: RunState, now: float) -> int:
    """Progress for the console: finished steps, plus the current step's share of its ETA."""
    if run.status is RunStatus.SUCCEEDED:
        return 100
    total = len(run.steps)
    fraction = 0.0
    if run.step_index < total:
        current = run.steps[run.step_index]
        if current.eta is not None and current.started_at is not None:
            span = current.eta - current.started_at
            fraction = (now - current.started_at) / span if span > 0 else 1.0
    return max(0, min(99, int((run.step_index + min(max(fraction, 0.0), 1.0)) / total * 100)))


def summary(definition: GateDefinition, run: RunState) -> str:
    """One line for executionDetails.summary / failureDetails.message."""
    total = len(definition.steps)
    if run.status is RunStatus.FAILED:
        assert run.failure is not None
        return run.failure.message
    if run.status is RunStatus.SUCCEEDED:
        elapsed = (run.ended_at or run.started_at) - run.started_at
        done = "1 step" if total == 1 else f"all {total} steps"
        return f"{done} done in {format_duration(elapsed)}"
    step = definition.steps[run.step_index]
    detail = run.steps[run.step_index].detail or "starting"
    return f"step {run.step_index + 1}/{total} '{step.name}': {detail}"


def run_context(definition: GateDefinition, run: RunState) -> dict[str, Any]:
    """The document JMESPath expressions see: finished steps' results and the run."""
    steps = {
        step.name: state.result
        for step, state in zip(definition.steps, run.steps, strict=True)
        if state.finished_at is not None
    }
    started = format_instant(run.started_at, "iso")
    return {**run.context, "steps": steps, "run": {"id": run.run_id, "started_at": started}}


def _finish(definition: GateDefinition, run: RunState, at: float) -> RunState:
    from orchestrator.expressions import search

    context = run_context(definition, run)
    outputs: dict[str, str] = {}
    for name, expression in definition.outputs.items():
        try:
            value = search(expression, context)
        except JMESPathError as exc:  # e.g. a function given the wrong type at run time
            return _fail(run, at, f"outputs.{name}: {exc}", FailureType.CONFIGURATION_ERROR)
        outputs[name] = value if isinstance(value, str) else json.dumps(value)
    size = sum(len(k.encode()) + len(v.encode()) for k, v in outputs.items())
    if size > MAX_OUTPUT_BYTES:
        return _fail(
            run,
            at,
            f"output variables total {size} bytes, over CodePipeline's limit "
            f"of {MAX_OUTPUT_BYTES} bytes",
        )
    run.status, run.outputs, run.ended_at = RunStatus.SUCCEEDED, outputs, at
    return run


def fail(
    run: RunState, at: float, message: str, failure_type: FailureType = FailureType.JOB_FAILED
) -> RunState:
    """The run, failed (a copy)."""
    return _fail(run.model_copy(deep=True), at, message, failure_type)


def _fail(
    run: RunState, at: float, message: str, failure_type: FailureType = FailureType.JOB_FAILED
) -> RunState:
    run.status, run.ended_at = RunStatus.FAILED, at
    run.failure = Failure(type=failure_type, message=message)
    return run


def _last(step_state: StepState) -> str:
    return f" (last: {step_state.detail})" if step_state.detail else ""
