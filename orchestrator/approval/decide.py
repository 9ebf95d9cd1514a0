"""Deciding an approval step from outside the tick, and counting the decisions in.

`decide()` is what the CLI and the endpoint share. It accepts a decision only for a running
run whose *current* step is an approval step that has started (its approvers are then in
the step's memo), from a principal those approvers allow, and at most once per principal
(the store's conditional write). The step counts decisions with `tally()`, which applies the
approver check again: a decision written around these checks is still ignored.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orchestrator.approval.principals import RESERVED_PREFIX, matches
from orchestrator.model import RunRecord, RunStatus, StepState

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from orchestrator.ports import RunStore

KIND = "approval"
MAX_COMMENT_CHARS = 1000


class Refusal(enum.Enum):
    """Why a decision is not taken."""

    UNKNOWN_RUN = "unknown run"
    NO_SUCH_STEP = "no such step"
    NOT_APPROVER = "not an approver"
    RUN_OVER = "run over"
    NOT_WAITING = "step not waiting"
    ALREADY_DECIDED = "already decided"
    INVALID = "invalid"

    @property
    def status(self) -> int:
        """The HTTP status the endpoint answers with."""
        return _STATUS[self]


_STATUS = {
    Refusal.UNKNOWN_RUN: 404,
    Refusal.NO_SUCH_STEP: 404,
    Refusal.NOT_APPROVER: 403,
    Refusal.RUN_OVER: 409,
    Refusal.NOT_WAITING: 409,
    Refusal.ALREADY_DECIDED: 409,
    Refusal.INVALID: 400,
}


class Refused(Exception):
    """A decision that was not recorded; the message says why, for the person deciding."""

    def __init__(self, refusal: Refusal, message: str) -> None:
        super().__init__(message)
        self.refusal = refusal


@dataclass(frozen=True)
class Tally:
    """The decisions on one step, in the order they were made, as far as they count."""

    required: int
    approved_by: list[str] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    rejected_by: str | None = None
    reason: str = ""
    ignored: list[str] = field(default_factory=list)

    @property
    def approved(self) -> bool:
        return self.rejected_by is None and len(self.approved_by) >= self.required


def tally(decisions: Mapping[str, Any], approvers: Sequence[str], required: int) -> Tally:
    """Count decisions by time: the first reject, or `required` approvals, settles it."""
    result = Tally(required)
    ordered = sorted(
        ((p, d) for p, d in decisions.items() if not p.startswith(RESERVED_PREFIX)),
        key=lambda item: (_at(item[1]), item[0]),
    )
    for principal, decision in ordered:
        if not isinstance(decision, dict) or not matches(principal, approvers):
            result.ignored.append(principal)
            continue
        comment = str(decision.get("comment") or "")
        if decision.get("decision") == "reject":
            return Tally(required, result.approved_by, result.comments, principal, comment)
        if decision.get("decision") == "approve":
            result.approved_by.append(principal)
            result.comments.append(comment)
            if result.approved:
                break
    return result


def waiting_step(record: RunRecord, step: str | None) -> StepState:
    """The approval step a decision is for (default: the current step); raises Refused."""
    state = record.state
    if state.status is not RunStatus.RUNNING:
        raise Refused(Refusal.RUN_OVER, f"run {state.run_id} is over ({state.status.value})")
    current = state.steps[state.step_index] if state.step_index < len(state.steps) else None
    name = step if step is not None else (current.name if current else "")
    found = next((s for s in state.steps if s.name == name), None)
    if found is None:
        raise Refused(Refusal.NO_SUCH_STEP, f"run {state.run_id} has no step '{name}'")
    if found.kind != KIND:
        raise Refused(Refusal.NOT_WAITING, f"step '{name}' is not an approval step")
    if found is not current or found.finished_at is not None or "approvers" not in found.memo:
        where = f"the current step is '{current.name}'" if current else "no step is current"
        raise Refused(Refusal.NOT_WAITING, f"step '{name}' is not waiting for decisions ({where})")
    return found


def check(record: RunRecord, step: str | None, principal: str) -> StepState:
    """The step, if `principal` may decide it now; raises Refused otherwise."""
    found = waiting_step(record, step)
    approvers = [str(p) for p in found.memo.get("approvers", [])]
    if not matches(principal, approvers):
        raise Refused(
            Refusal.NOT_APPROVER,
            f"{principal} is not an approver of step '{found.name}' "
            f"(approvers: {', '.join(approvers)})",
        )
    earlier = record.signals.decisions.get(found.name, {}).get(principal)
    if earlier is not None:
        raise Refused(
            Refusal.ALREADY_DECIDED,
            f"{principal} already decided step '{found.name}' ({earlier.get('decision')})",
        )
    return found


def decide(
    store: RunStore,
    run_id: str,
    step: str | None,
    principal: str,
    decision: str,
    comment: str,
    at: float,
    via: str,
    source_ip: str | None = None,
) -> tuple[StepState, Tally]:
    """Record one decision; returns the step and its tally with the decision counted in."""
    if decision not in ("approve", "reject"):
        raise Refused(Refusal.INVALID, f"unknown decision {decision!r}")
    if len(comment) > MAX_COMMENT_CHARS:
        raise Refused(Refusal.INVALID, f"comment longer than {MAX_COMMENT_CHARS} characters")
    record = store.load(run_id)
    if record is None:
        raise Refused(Refusal.UNKNOWN_RUN, f"run {run_id} is not in the runs table")
    found = check(record, step, principal)
    entry: dict[str, Any] = {"decision": decision, "comment": comment, "at": at, "via": via}
    if source_ip:
        entry["source_ip"] = source_ip
    if not store.record_decision(run_id, found.name, principal, entry):
        # Lost to a concurrent decision by the same principal, or the run ended meanwhile.
        again = store.load(run_id)
        if again is None:
            raise Refused(Refusal.UNKNOWN_RUN, f"run {run_id} is not in the runs table")
        check(again, found.name, principal)
        raise Refused(Refusal.RUN_OVER, f"run {run_id} did not take the decision")
    decisions = {**record.signals.decisions.get(found.name, {}), principal: entry}
    memo = found.memo
    counted = tally(decisions, [str(p) for p in memo["approvers"]], int(memo.get("required", 1)))
    return found, counted


def _at(decision: Any) -> float:
    try:
        return float(decision.get("at", 0.0))
    except (AttributeError, TypeError, ValueError):
        return 0.0
