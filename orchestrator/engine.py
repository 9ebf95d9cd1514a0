"""The pure engine: given a run's state, its definition, the time and the signals that
reached the run from outside (a cancel, approvers' decisions, steps' claims), advance the run.

It imports neither boto3 nor pynamodb (tests/architecture checks it). Steps are polled
through their `poll()` method (which may do I/O through `ctx.services`); everything else is
arithmetic on `RunState`, a state per node (step, group, guard, hook), keyed by name.

One call of `advance()`, in a fixed order:

1. the steps, depth first: every due step of every active branch is polled; a sequence moves
   on as soon as a step is over (so one call can finish several), a `parallel` group ends
   when all its branches are done (or fails, abandoning the rest, as soon as one fails), an
   `any` group when one is done (or fails when all have failed); `when` may skip a step;
   an `advisory` step's failure is recorded and the gate goes on;
2. every due guard: a violation fails the gate (`on_violation: fail`) or holds it (`hold`);
   once the steps are all over, every guard is polled again, in this call, and must pass:
   the gate succeeds only in a call in which every guard passed;
3. after a failure, the `on_failure` hooks, one at a time, each poll claimed once (duplicate
   deliveries never run a hook twice); the run fails when they are over.

A call stops early when the budget's `time_left()` (real seconds left in this invocation)
drops below its `reserve`: what it did is kept, the rest is due at once.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from jmespath.exceptions import JMESPathError
from pydantic import ValidationError

from orchestrator.durations import format_duration
from orchestrator.exceptions import FailureType
from orchestrator.expressions import TemplateError, search, truthy
from orchestrator.model import (
    Control,
    Failure,
    NodeStatus,
    RunState,
    RunStatus,
    Signals,
    StepState,
)
from orchestrator.steps import Done, Failed, Outcome, Pending, Step, StepContext
from orchestrator.steps._rules import deciding, first_poll, measure
from orchestrator.text import counted, format_instant
from orchestrator.tree import GROUPS, AnyOf, Group, Parallel, Sequence, levels, walk

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from orchestrator.definition import GateDefinition
    from orchestrator.services import ServiceClients
    from orchestrator.tree import Guard, Node

_T = TypeVar("_T")

MAX_OUTPUT_BYTES = 122_880
"""CodePipeline's limit on the total size of one action's output variables."""

LAST_ANSWER_BY = 24 * 3600 - 300
"""Seconds after a run's start by which it must be over (CodePipeline ends actions at 24h)."""

HOOK_CLAIM_LEASE = 960.0
"""Real seconds after which a hook's claimed poll with no outcome is given up for lost: the
delivery that claimed it stopped (a Lambda invocation lasts at most 15 minutes)."""

_RUNNING, _DONE, _FAILED = NodeStatus.RUNNING, NodeStatus.DONE, NodeStatus.FAILED


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
        steps=[
            StepState(name=node.name, kind=node.kind, depth=level)
            for node, level in levels(definition.steps)
        ],
        guards=[StepState(name=g.name, kind=g.step.kind) for g in definition.guards],
        hooks=[StepState(name=h.name, kind=h.step.kind) for h in definition.on_failure],
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
    run = _copy(state)
    if run.status is not RunStatus.RUNNING:
        return run
    if _shape(run) != _definition_shape(definition):
        return _fail(
            run,
            now(),
            "the gate definition changed while the run was in progress",
            FailureType.CONFIGURATION_ERROR,
        )
    return _Tick(definition, run, now, budget, services, claim, signals or Signals()).advance()


class _Stop(Exception):
    """Ends a call early: the budget is spent (`timed_out` False) or the gate's deadline
    passed (True)."""

    def __init__(self, timed_out: bool = False) -> None:
        self.timed_out = timed_out


class _Tick:
    """One call of `advance()` on a copy of the run, changed in place."""

    def __init__(
        self,
        definition: GateDefinition,
        run: RunState,
        now: Callable[[], float],
        budget: Budget,
        services: ServiceClients | None,
        claim: Callable[[str, str, dict[str, Any]], bool] | None,
        signals: Signals,
    ) -> None:
        self.definition, self.run, self.now, self.budget = definition, run, now, budget
        self.services, self.claim, self.signals = services, claim, signals
        self.states = {state.name: state for state in run.steps}
        self.fresh: set[str] = set()
        """Guards that passed at a poll in this call."""

    def advance(self) -> RunState:
        run = self.run
        if run.failing is not None:
            return self._hooks()
        if self.signals.cancel_requested_by:
            message = f"cancelled by {self.signals.cancel_requested_by}"
            cancels = [c for c in self.signals.controls if c.action == "cancel"]
            cancel = cancels[-1] if cancels else None  # the newest (a retry spent the others)
            if cancel is not None and cancel.reason:
                message += f": {cancel.reason}"
            return self._failed(Failure(type=FailureType.JOB_FAILED, message=message), True)
        run.undelivered = sorted(
            f"{key.removesuffix('-failed')}: {value.get('error')}"
            for key, value in self.signals.claims.get("notify", {}).items()
            if key.endswith("-failed") and isinstance(value, dict)
        )
        self._controls()
        if run.paused is not None:
            return self._indexed()
        try:
            status, blocking = self._sequence(self.definition.steps)
            if status is _FAILED:
                assert blocking is not None and blocking.error is not None
                return self._failed(blocking.error)
            violation = self._guards(final=status is _DONE)
            if violation is not None:
                return self._failed(violation)
        except _Stop as stop:
            if stop.timed_out:
                message = f"gate timed out after {format_duration(self.definition.timeout)}"
                return self._failed(
                    Failure(type=FailureType.JOB_FAILED, message=message + self._where())
                )
            return self._indexed()
        if status is _DONE and all(g.name in self.fresh for g in self.definition.guards):
            return _finish(self.definition, self._indexed(), self.now(), self.signals.controls)
        return self._indexed()

    # region operators' controls

    def _controls(self) -> None:
        """Apply the operators' controls not applied yet (each once: a node remembers the
        controls it took); the latest pause or resume decides whether the run is paused."""
        run, at = self.run, self.now()
        nodes = {node.name: node for node in self.definition.nodes()}
        run.paused = None
        for control in self.signals.controls:
            why = control.reason or "no reason given"
            if control.action in ("pause", "resume"):
                run.paused = f"paused by {control.by}: {why}" if control.action == "pause" else None
                continue
            state = self.states.get(control.step or "")
            if state is None:
                continue
            applied = state.memo.setdefault("controls", [])
            if control.at in applied:
                continue
            if control.action == "skip" and not state.status.settled:
                node = nodes[state.name]
                if isinstance(node, Group):
                    self._abandon(node.children, at)
                self._settle(state, at, Done({"skipped_by": control.by, "reason": control.reason}))
                state.detail = f"skipped by {control.by}: {why}"
            elif control.action == "retry" and state.status is _FAILED:
                kept = state.memo.get("controls", [])
                state.status, state.started_at, state.finished_at = NodeStatus.PENDING, None, None
                state.error, state.result, state.next_check, state.eta = None, None, None, None
                state.memo = {"controls": kept}
                state.detail = f"retried by {control.by}: {why}"
            else:
                continue
            state.memo.setdefault("controls", []).append(control.at)

    # endregion
    # region steps and groups

    def _sequence(self, nodes: Iterable[Node]) -> tuple[NodeStatus, StepState | None]:
        """Advance nodes in order while they end: DONE when all are over (done, skipped or
        advisory), else the status and state of the first that is not."""
        for node in nodes:
            status = self._node(node)
            if status is not _DONE:
                return status, self.states[node.name]
        return _DONE, None

    def _node(self, node: Node) -> NodeStatus:
        state = self.states[node.name]
        if state.status is NodeStatus.PENDING:
            self._reach(node, state)
        if state.status is _RUNNING:
            if isinstance(node, Group):
                self._group(node, state)
            else:
                self._leaf(node, state, self.definition.step_timeout(node))
        if state.status in (_DONE, NodeStatus.SKIPPED) or (
            state.status is _FAILED and node.advisory
        ):
            return _DONE
        return _FAILED if state.status.settled else _RUNNING

    def _reach(self, node: Node, state: StepState, check_deadline: bool = True) -> None:
        """Start a node, or skip it when its `when` is false."""
        at = self.now()
        if check_deadline and at >= self.run.deadline:
            raise _Stop(timed_out=True)
        if node.when is not None:
            try:
                go = truthy(search(node.when, run_context(self.definition, self.run)))
            except JMESPathError as exc:
                message = f"step '{node.name}': when: {_first_line(exc)}"
                self._settle(state, at, Failed(message, FailureType.CONFIGURATION_ERROR))
                return
            if not go:
                state.status, state.finished_at = NodeStatus.SKIPPED, at
                state.detail = f"skipped: when {node.when!r} is false"
                return
        state.status, state.started_at = _RUNNING, at
        if isinstance(node, Group):
            state.next_check = at + node.timeout if node.timeout is not None else None
        else:
            state.next_check = first_poll(node, at)
            if state.next_check > at:
                state.detail = f"first poll at {format_instant(state.next_check, 'time')}"

    def _group(self, group: Group, state: StepState) -> None:
        at = self.now()
        assert state.started_at is not None
        if group.timeout is not None and at >= state.started_at + group.timeout:
            running = _names(s for s in self._states(group.children) if s.status is _RUNNING)
            self._abandon(group.children, at)
            message = f"group '{group.name}' timed out after {format_duration(group.timeout)}"
            self._settle(
                state, at, Failed(f"{message} (running: {running})" if running else message)
            )
            return
        children = group.children
        if isinstance(group, Sequence):
            status, blocking = self._sequence(children)
            if status is _FAILED:
                assert blocking is not None and blocking.error is not None
                self._settle(state, at, _failed(blocking.error))
            elif status is _DONE:
                self._settle(state, at, Done({"steps": self._statuses(children)}))
            return
        statuses: list[NodeStatus] = []
        for child in children:
            status = self._node(child)
            won = isinstance(group, AnyOf) and self.states[child.name].status is _DONE
            if won or (isinstance(group, Parallel) and status is _FAILED):
                self._abandon(children, at)
                child_state = self.states[child.name]
                if won:
                    result = {"winner": child.name, "branches": self._statuses(children)}
                    self._settle(state, at, Done(result))
                else:
                    assert child_state.error is not None
                    self._settle(state, at, _failed(child_state.error))
                return
            statuses.append(status)
        if isinstance(group, Parallel) and all(s is _DONE for s in statuses):
            self._settle(state, at, Done({"branches": self._statuses(children)}))
        elif isinstance(group, AnyOf) and all(self.states[c.name].status.settled for c in children):
            why = "; ".join(f"{c.name}: {self.states[c.name].detail}" for c in children)
            self._settle(state, at, Failed(f"no branch of '{group.name}' succeeded ({why})"))

    def _leaf(self, step: Step, state: StepState, timeout: float, hook: bool = False) -> None:
        """Poll a running step if it is due (or ask it what its passed timeout means)."""
        at = self.now()
        if not hook and at >= self.run.deadline:
            raise _Stop(timed_out=True)
        assert state.started_at is not None
        deadline = state.started_at + timeout
        timed_out = at >= deadline
        if not timed_out and state.next_check is not None and state.next_check > at:
            return
        if not timed_out and self.budget.time_left() < self.budget.reserve:
            raise _Stop
        ctx = self._context(step, at)
        outcome: Outcome
        if timed_out:
            # the step's own word on its timeout; None: the usual timeout failure
            late = _ask(step, ctx, lambda s: s.at_deadline(state, ctx), False)
            if late is None or isinstance(late, Pending):
                outcome = Failed(
                    f"step '{step.name}' timed out after {format_duration(timeout)}{_last(state)}"
                )
            else:
                outcome = late
        else:
            claimed = self._claim_hook_poll(step, state, ctx) if hook else None
            if claimed is not None:
                outcome, replayed = claimed
                if replayed:  # the claimant's poll, recorded: this run takes it as its own
                    state.polls += 1
                self._apply(step, state, outcome, at, deadline)
                return
            stand_in = deciding(step, state)  # an inconclusive check: people decide
            if stand_in is not None:
                outcome = _ask(stand_in, ctx, lambda s: s.poll(state, ctx), True)
                if isinstance(outcome, Pending):
                    why = state.memo["rules"]["inconclusive"]
                    outcome = replace(outcome, detail=f"{why}; {outcome.detail}")
                state.polls += 1
                self._apply(step, state, outcome, at, deadline)
                return
            outcome = _ask(step, ctx, lambda s: s.poll(state, ctx), True)
        state.polls += 1
        outcome = _retried(step, state, outcome, at)
        if not timed_out:
            outcome = measure(step, state, outcome, at)
        if hook and not timed_out and self.claim is not None:
            # before the run is written: a delivery whose write wins the race replays it
            self.claim(step.name, f"{_hook_key(self.run, state, -1)}-outcome", _recorded(outcome))
        self._apply(step, state, outcome, at, deadline)

    def _apply(
        self, step: Step, state: StepState, outcome: Outcome, at: float, deadline: float
    ) -> None:
        if isinstance(outcome, Pending):
            state.detail, state.eta = outcome.detail, outcome.eta
            wanted = outcome.next_check if outcome.next_check is not None else at + step.interval
            state.next_check = min(max(wanted, at), deadline, self.run.deadline)
        else:
            self._settle(state, at, outcome)

    def _settle(self, state: StepState, at: float, outcome: Done | Failed) -> None:
        state.finished_at, state.next_check, state.eta = at, None, None
        if isinstance(outcome, Done):
            state.status, state.result, state.detail = _DONE, outcome.result, "done"
        else:
            failure_type = outcome.failure_type or FailureType.JOB_FAILED
            state.status, state.detail = _FAILED, outcome.message
            state.error = Failure(type=failure_type, message=outcome.message)

    def _abandon(self, nodes: Iterable[Node], at: float) -> None:
        for state in self._states(nodes):
            if not state.status.settled:
                state.status, state.next_check, state.eta = NodeStatus.ABANDONED, None, None
                state.detail = "abandoned" + (f" (last: {state.detail})" if state.detail else "")

    def _states(self, nodes: Iterable[Node]) -> list[StepState]:
        return [self.states[node.name] for node in walk(list(nodes))]

    def _statuses(self, nodes: Iterable[Node]) -> dict[str, str]:
        return {node.name: self.states[node.name].status.value for node in nodes}

    def _context(self, step: Step, at: float) -> StepContext:
        return StepContext(
            self.run.run_id,
            at,
            run_context(self.definition, self.run, at),
            self.budget.time_left,
            self.services,
            decisions=self.signals.decisions.get(step.name, {}),
            claims=self.signals.claims.get(step.name, {}),
            claim=partial(self.claim, step.name) if self.claim is not None else None,
        )

    # endregion
    # region guards

    def _guards(self, final: bool) -> Failure | None:
        """Poll the due guards; the failure a violation means. Once the steps are over
        (`final`) and every guard passed at its last poll or is due, poll them all: the gate
        succeeds in a call where every guard passed (a held guard is waited for at its own
        `every`, not polled at every call)."""
        at = self.now()
        for guard, state in zip(self.definition.guards, self.run.guards, strict=True):
            if state.status is NodeStatus.PENDING:
                after = self.states[guard.after] if guard.after is not None else None
                if after is None or after.status.settled:
                    state.status, state.started_at = _RUNNING, at
                    state.next_check = first_poll(guard.step, at)
        final = final and all(state.passing is True or _due(state, at) for state in self.run.guards)
        for guard, state in zip(self.definition.guards, self.run.guards, strict=True):
            at = self.now()
            if state.status is not _RUNNING:
                continue
            if not (_due(state, at) or (final and guard.name not in self.fresh)):
                continue
            if at >= self.run.deadline:
                raise _Stop(timed_out=True)
            if self.budget.time_left() < self.budget.reserve:
                raise _Stop
            violation = self._guard(guard, state, at)
            if violation is not None:
                return violation
        return None

    def _guard(self, guard: Guard, state: StepState, at: float) -> Failure | None:
        step = guard.step
        ctx = self._context(step, at)
        outcome = _ask(step, ctx, lambda s: s.poll(state, ctx), True)
        state.polls += 1
        outcome = measure(step, state, _retried(step, state, outcome, at), at)
        wanted = at + step.interval
        if isinstance(outcome, Done):
            state.passing, state.result, state.error = True, outcome.result, None
            state.detail = "ok"
            self.fresh.add(guard.name)
            if outcome.valid_until is not None:
                wanted = min(wanted, outcome.valid_until)
        elif isinstance(outcome, Pending) and outcome.unobserved:
            state.passing, state.detail = None, f"not checked: {outcome.detail}"
            wanted = outcome.next_check if outcome.next_check is not None else wanted
        else:
            message = _unprefixed(
                outcome.message if isinstance(outcome, Failed) else outcome.detail, step.name
            )
            failure_type = outcome.failure_type if isinstance(outcome, Failed) else None
            failure = Failure(
                type=failure_type or FailureType.JOB_FAILED,
                message=f"guard '{guard.name}' violated: {message}",
            )
            if guard.on_violation == "fail" or failure_type is FailureType.CONFIGURATION_ERROR:
                state.passing, state.error, state.detail = False, failure, message
                return failure
            state.passing, state.error, state.detail = False, failure, f"held: {message}"
            if isinstance(outcome, Pending) and outcome.next_check is not None:
                wanted = outcome.next_check
        state.next_check = min(max(wanted, at), self.run.deadline)
        return None

    # endregion
    # region failure and hooks

    def _failed(self, failure: Failure, cancelled: bool = False) -> RunState:
        """The gate failed: run the hooks that apply (see `_hooks`), else fail the run."""
        run, at = self.run, self.now()
        for state in run.steps:
            if state.status is _RUNNING:
                state.status, state.next_check, state.eta = NodeStatus.ABANDONED, None, None
        for guard in run.guards:
            guard.next_check = None
        applicable = 0
        for hook, state in zip(self.definition.on_failure, run.hooks, strict=True):
            if cancelled and not hook.on_cancel:
                state.status = NodeStatus.SKIPPED
                state.detail = "not run: the gate was cancelled (no on_cancel)"
            else:
                applicable += 1
        if not applicable:
            return _fail(self._indexed(), at, failure.message, failure.type)
        run.failing = failure
        total = sum(
            hook.timeout
            for hook, state in zip(self.definition.on_failure, run.hooks, strict=True)
            if state.status is NodeStatus.PENDING
        )
        run.deadline = min(at + total, run.started_at + LAST_ANSWER_BY)
        return self._hooks()

    def _hooks(self) -> RunState:
        """Run the hooks in order, one at a time; fail the run once they are all over."""
        run = self.run
        assert run.failing is not None
        for index, (hook, state) in enumerate(
            zip(self.definition.on_failure, run.hooks, strict=True)
        ):
            run.step_index = len(run.steps) + 1 + index
            if state.status is NodeStatus.PENDING:
                if self.now() >= run.deadline:
                    state.status, state.detail = NodeStatus.SKIPPED, "not run: out of time"
                    continue
                self._reach(hook.step, state, check_deadline=False)
            if state.status is _RUNNING:
                assert state.started_at is not None
                timeout = min(hook.timeout, run.deadline - state.started_at)
                try:
                    self._leaf(hook.step, state, timeout, hook=True)
                except _Stop:
                    return run
            if state.status is _RUNNING:
                return run
        outcomes = ", ".join(
            f"{state.name} {_hook_outcome(state)}"
            for state in run.hooks
            if not state.detail.startswith("not run: the gate was cancelled")
        )
        failing, run.failing = run.failing, None
        return _fail(run, self.now(), f"{failing.message}; on_failure: {outcomes}", failing.type)

    def _claim_hook_poll(
        self, step: Step, state: StepState, ctx: StepContext
    ) -> tuple[Outcome, bool] | None:
        """Claim this poll of a hook once for all deliveries (None: go ahead and poll). A
        poll another delivery claimed gives its recorded outcome (True: count it as this
        run's poll), or waits for it, or after the lease is given up for lost."""
        if self.claim is None:
            return None  # the engine alone: nothing else can deliver this run
        key = _hook_key(self.run, state)
        held = ctx.claims.get(key)
        if isinstance(held, dict):
            recorded = ctx.claims.get(f"{key}-outcome")
            if isinstance(recorded, dict):
                return _replayed(recorded), True
            age = time.time() - float(held.get("at") or 0)
            if age < HOOK_CLAIM_LEASE:
                return Pending(f"running on another delivery (claimed {age:.0f}s ago)"), False
            lost = Failed(
                f"hook '{step.name}': outcome unknown: the delivery that ran it "
                f"{format_duration(age)} ago stopped before recording it"
            )
            return lost, False
        mine = secrets.token_hex(8)
        if not self.claim(step.name, key, {"at": time.time(), "by": mine}):
            return Pending("claiming its run (once for all deliveries)", next_check=ctx.now), False
        state.memo["claim"] = mine
        return None

    # endregion

    def _where(self) -> str:
        """Where a gate that timed out was: its running steps, or the guards it waited for."""
        running = [
            (state, node)
            for node in self.definition.nodes()
            if isinstance(node, Step) and (state := self.states[node.name]).status is _RUNNING
        ]
        if len(running) == 1:
            state, node = running[0]
            return f" at step '{node.name}'{_last(state)}"
        if running:
            return " at steps " + ", ".join(f"'{n.name}'{_last(s)}" for s, n in running)
        held = [g for g in self.run.guards if g.passing is False]
        if held:
            return " waiting for guards: " + ", ".join(f"{g.name} ({g.detail})" for g in held)
        return ""

    def _indexed(self) -> RunState:
        """The run with `step_index` at its first top-level step not over yet."""
        run = self.run
        run.step_index = next(
            (
                index
                for index, node in enumerate(self.definition.steps)
                if not self.states[node.name].status.settled
            ),
            len(self.definition.steps),
        )
        return run


def _hook_key(run: RunState, state: StepState, shift: int = 0) -> str:
    """The claim key of a hook's poll (its number in the run's attempt)."""
    polls = state.polls + shift
    return f"on_failure-{polls}" if run.attempt == 1 else f"on_failure-{run.attempt}-{polls}"


def resume(definition: GateDefinition, run: RunState, at: float) -> RunState:
    """A failed run, resumed by a retry of the pipeline's action: the steps that were over
    stay over, the failed (and abandoned) ones start again, the deadline restarts, the hooks
    may run again (claimed anew)."""
    resumed = _copy(run)
    failed_at = [
        s.name
        for s in resumed.steps
        if s.status is _FAILED and s.kind not in GROUPS and s.error is not None
    ]
    for state in resumed.steps:
        if state.status in (_FAILED, NodeStatus.ABANDONED, _RUNNING):
            kept = {k: v for k, v in state.memo.items() if k in ("invocations", "controls")}
            state.status, state.started_at, state.finished_at = NodeStatus.PENDING, None, None
            state.next_check, state.eta, state.error, state.result = None, None, None, None
            state.memo, state.detail = kept, ""
    for state in (*resumed.guards, *resumed.hooks):
        state.status, state.started_at, state.finished_at = NodeStatus.PENDING, None, None
        state.next_check, state.eta, state.error, state.passing = None, None, None, None
        state.memo, state.detail, state.polls = {}, "", 0
    where = f" at step '{failed_at[0]}'" if failed_at else ""
    resumed.attempt += 1
    resumed.note = f"resumed after failure{where} (attempt {resumed.attempt})"
    resumed.status, resumed.failure, resumed.failing, resumed.ended_at = (
        RunStatus.RUNNING,
        None,
        None,
        None,
    )
    resumed.started_at, resumed.deadline = at, at + definition.timeout
    return resumed


def _copy(run: RunState) -> RunState:
    """A deep copy to advance (the input is not modified): a dump validated again, a third
    of `model_copy(deep=True)`'s time (copy.deepcopy walks pydantic's internals too)."""
    return RunState.model_validate(run.model_dump())


def _recorded(outcome: Outcome) -> dict[str, Any]:
    """A hook poll's outcome as its claimant records it (see `_replayed`)."""
    if isinstance(outcome, Done):
        return {"done": True, "result": outcome.result}
    if isinstance(outcome, Failed):
        kind = outcome.failure_type.value if outcome.failure_type else None
        return {"failed": outcome.message, "type": kind}
    return {"pending": outcome.detail, "next_check": outcome.next_check}


def _replayed(recorded: dict[str, Any]) -> Outcome:
    if recorded.get("done"):
        return Done(recorded.get("result"))
    if "failed" in recorded:
        kind = recorded.get("type")
        return Failed(str(recorded["failed"]), FailureType(kind) if kind else None)
    later = recorded.get("next_check")
    return Pending(str(recorded.get("pending", "")), float(later) if later is not None else None)


def _due(state: StepState, at: float) -> bool:
    return state.next_check is None or state.next_check <= at


def _retried(step: Step, state: StepState, outcome: Outcome, at: float) -> Outcome:
    """A retryable failure of a step with `retry` becomes a pending retry, until the attempts
    are spent."""
    if not (isinstance(outcome, Failed) and outcome.retryable and step.retry is not None):
        return outcome
    failures = int(state.memo.get("failures", 0)) + 1
    state.memo["failures"] = failures
    if failures < step.retry.attempts:
        delay = step.retry.delay(failures)
        return Pending(
            f"{outcome.message}; retry {failures}/"
            f"{step.retry.attempts - 1} in {format_duration(delay)}",
            next_check=at + delay,
            unobserved=True,
        )
    return Failed(
        f"{outcome.message} (gave up after {counted(failures, 'attempt')})",
        outcome.failure_type,
    )


def _ask(
    step: Step, ctx: StepContext, question: Callable[[Step], _T], retryable: bool
) -> _T | Failed:
    """Ask the step, its `${...}` rendered, a question (poll, or what its deadline means);
    templating errors and the step's own exceptions become failures naming it (`retryable`
    or not)."""
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


def _failed(failure: Failure) -> Failed:
    return Failed(failure.message, failure.type)


def _unprefixed(message: str, name: str) -> str:
    return message.removeprefix(f"step '{name}': ")


def _hook_outcome(state: StepState) -> str:
    if state.status is _DONE:
        return "done"
    if state.status is _FAILED:
        return f"failed ({_unprefixed(state.detail, state.name)})"
    return state.detail or state.status.value


def _shape(run: RunState) -> tuple[list[str], list[str], list[str]]:
    return (
        [s.name for s in run.steps],
        [s.name for s in run.guards],
        [s.name for s in run.hooks],
    )


def _definition_shape(definition: GateDefinition) -> tuple[list[str], list[str], list[str]]:
    return (
        [node.name for node in definition.nodes()],
        [g.name for g in definition.guards],
        [h.name for h in definition.on_failure],
    )


def _names(states: Iterable[StepState]) -> str:
    return ", ".join(state.name for state in states)


def next_due(run: RunState) -> float | None:
    """When the run next needs a poll (None when it is over): its earliest due step, group
    deadline, guard or hook."""
    if run.status is not RunStatus.RUNNING:
        return None
    if run.paused is not None:
        return run.started_at  # read the run at every job: a resume is seen at once
    due = [
        state.next_check
        for state in (*run.steps, *run.guards, *run.hooks)
        if state.status is _RUNNING and state.next_check is not None
    ]
    if run.failing is not None and not any(h.status is _RUNNING for h in run.hooks):
        due.append(run.started_at)  # the next hook starts at once
    return min(min(due, default=run.started_at), run.deadline)


def hold(definition: GateDefinition, run: RunState) -> float | None:
    """How long an invocation may wait in-process for the run's next polls: the longest of
    the gate's `hold` and the `hold` of every step, guard and hook running now (None: answer
    at once, as always once the run is over)."""
    if run.status is not RunStatus.RUNNING:
        return None
    running = {s.name for s in (*run.steps, *run.guards, *run.hooks) if s.status is _RUNNING}
    steps = (
        *walk(definition.steps),
        *(guard.step for guard in definition.guards),
        *(hook.step for hook in definition.on_failure),
    )
    holds = [
        definition.hold,
        *(s.hold for s in steps if isinstance(s, Step) and s.name in running),
    ]
    return max((h for h in holds if h is not None), default=None)


def percent(run: RunState, now: float) -> int:
    """Progress for the console: steps over, plus running steps' shares of their ETAs."""
    if run.status is RunStatus.SUCCEEDED:
        return 100
    leaves = [state for state in run.steps if state.kind not in GROUPS]
    score = 0.0
    for state in leaves:
        if state.status.settled:
            score += 1.0
        elif state.eta is not None and state.started_at is not None:
            span = state.eta - state.started_at
            fraction = (now - state.started_at) / span if span > 0 else 1.0
            score += min(max(fraction, 0.0), 1.0)
    return max(0, min(99, int(score / max(len(leaves), 1) * 100)))


def summary(definition: GateDefinition, run: RunState) -> str:
    """One line for executionDetails.summary / failureDetails.message."""
    if run.status is RunStatus.FAILED:
        assert run.failure is not None
        return run.failure.message
    states = {state.name: state for state in run.steps}
    steps = [node for node in definition.nodes() if isinstance(node, Step)]
    total = len(steps)
    if run.status is RunStatus.SUCCEEDED:
        elapsed = (run.ended_at or run.started_at) - run.started_at
        done = "1 step" if total == 1 else f"all {total} steps"
        exceptions = _exceptions(steps, states)
        verb = "over" if exceptions else "done"
        return f"{done} {verb} in {format_duration(elapsed)}{exceptions}{_guarded(run)}"
    if run.note is not None and run.status is RunStatus.RUNNING:
        return f"{_summary(definition, run)} ({run.note})"
    return _summary(definition, run)


def _summary(definition: GateDefinition, run: RunState) -> str:
    states = {state.name: state for state in run.steps}
    steps = [node for node in definition.nodes() if isinstance(node, Step)]
    total = len(steps)
    if run.paused is not None:
        return f"{run.paused} (nothing is polled until `orchestrator resume`)"
    if run.failing is not None:
        hook = next((h for h in run.hooks if not h.status.settled), None)
        doing = (
            f"running on_failure '{hook.name}': {hook.detail or 'starting'}"
            if hook
            else "on_failure over"
        )
        return f"failed: {run.failing.message}; {doing}"
    over = sum(1 for node in steps if states[node.name].status.settled)
    if over == total:
        text = f"all {counted(total, 'step')} over; waiting for the guards"
    elif not definition.grouped:
        index = min(run.step_index, len(definition.steps) - 1)
        node = definition.steps[index]
        detail = states[node.name].detail or "starting"
        text = f"step {index + 1}/{total} '{node.name}': {detail}"
    else:
        running = [
            f"{label} ({states[node.name].detail or 'starting'})"
            for node, label in _labels(definition)
            if states[node.name].status is _RUNNING
        ]
        text = f"{over}/{total} steps over; running: {', '.join(running) or '-'}"
    return text + _guarded(run)


def position(definition: GateDefinition, step_index: int) -> str:
    """Where a run is, from its `step_index` alone (what an idle tick knows, from the token)."""
    total = len(definition.steps)
    if step_index < total:
        node = definition.steps[step_index]
        return f"step {step_index + 1}/{total} '{node.name}'"
    hook = step_index - total - 1
    if 0 <= hook < len(definition.on_failure):
        return f"failed; running on_failure '{definition.on_failure[hook].name}'"
    return f"all {counted(total, 'step')} over; waiting for the guards"


def _exceptions(steps: list[Step], states: dict[str, StepState]) -> str:
    skipped = [s.name for s in steps if states[s.name].status is NodeStatus.SKIPPED]
    failed = [s.name for s in steps if states[s.name].status is _FAILED]
    parts = []
    if skipped:
        parts.append(f"skipped: {', '.join(skipped)}")
    if failed:
        parts.append(f"advisory failures: {', '.join(failed)}")
    return f" ({'; '.join(parts)})" if parts else ""


def _guarded(run: RunState) -> str:
    undelivered = f"; notify failed: {'; '.join(run.undelivered)}" if run.undelivered else ""
    if not run.guards:
        return undelivered
    shown = []
    for state in run.guards:
        if state.status is NodeStatus.PENDING:
            shown.append(f"{state.name} not started")
        elif state.passing is None:
            shown.append(
                f"{state.name} not checked ({state.detail.removeprefix('not checked: ')})"
                if state.polls
                else f"{state.name} not checked yet"
            )
        elif state.passing:
            shown.append(f"{state.name} ok")
        else:
            shown.append(f"{state.name} held ({state.detail.removeprefix('held: ')})")
    return "; guards: " + ", ".join(shown) + undelivered


def _labels(definition: GateDefinition) -> list[tuple[Step, str]]:
    """Each step with the sequences it is in: 'canary/probe'."""
    found: list[tuple[Step, str]] = []

    def visit(nodes: Iterable[Node], prefix: str) -> None:
        for node in nodes:
            if isinstance(node, Group):
                visit(
                    node.children, f"{prefix}{node.name}/" if isinstance(node, Sequence) else prefix
                )
            else:
                found.append((node, f"{prefix}{node.name}"))

    visit(definition.steps, "")
    return found


def run_context(
    definition: GateDefinition, run: RunState, at: float | None = None
) -> dict[str, Any]:
    """The document JMESPath expressions see: finished steps' results (null for skipped and
    failed ones), the run, and while hooks run, the failure."""
    steps = {
        state.name: state.result
        for state in run.steps
        if state.finished_at is not None and state.status is not NodeStatus.ABANDONED
    }
    started = format_instant(run.started_at, "iso")
    context = {
        **run.context,
        "steps": steps,
        "run": {
            "id": run.run_id,
            "started_at": started,
            "started": int(run.started_at),
            "attempt": run.attempt,
        },
    }
    if at is not None:  # the gate's clock at this poll, in epoch seconds (e.g. a query's "to")
        context["run"]["now"] = int(at)
    if run.failing is not None:
        context["failure"] = {"message": run.failing.message, "type": run.failing.type.value}
    return context


MAX_AUDIT_BYTES = 4096
"""The `AuditTrail` output's bound (its oldest controls are dropped to fit)."""


def _finish(
    definition: GateDefinition, run: RunState, at: float, controls: list[Control] | None = None
) -> RunState:
    context = run_context(definition, run)
    outputs: dict[str, str] = {}
    if controls:
        trail = [c.model_dump(mode="json", exclude_none=True) for c in controls]
        while len(json.dumps(trail)) > MAX_AUDIT_BYTES and len(trail) > 1:
            trail.pop(0)
        outputs["AuditTrail"] = json.dumps(trail)[:MAX_AUDIT_BYTES]
    for state in run.steps:  # skipped and advisory-failed steps say so
        if state.status is NodeStatus.SKIPPED:
            outputs[state.name] = "skipped"
        elif state.status is _FAILED and state.error is not None:
            outputs[state.name] = f"failed: {state.error.message}"
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
    return _fail(_copy(run), at, message, failure_type)


def _fail(
    run: RunState, at: float, message: str, failure_type: FailureType = FailureType.JOB_FAILED
) -> RunState:
    run.status, run.ended_at = RunStatus.FAILED, at
    run.failure = Failure(type=failure_type, message=message)
    return run


def _last(step_state: StepState) -> str:
    return f" (last: {step_state.detail})" if step_state.detail else ""
