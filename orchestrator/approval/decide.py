"""Deciding an approval step from outside the tick, and counting the decisions in.

`decide()` is what the CLI, the page and Slack share. It accepts a decision only for a
running run whose *current* step is an approval step that has started (its policy is then in
the step's memo: approvers or groups, the links mode, the initiator), from an identity those
approvers allow, proven the way it claims (`via`), that did not start the pipeline execution
when the step excludes its initiator, and at most once per identity (the store's conditional
write). The step counts decisions with `tally()`, which applies the approver and initiator
checks again: a decision written around these checks is still ignored.

    via     who proved the identity             identity forms it may record
    cli     STS GetCallerIdentity               arn:
    oidc    an OIDC sign-in on the page         email:, oidc:
    slack   a signed Slack button click         slack:
    link    the bearer of a signed link         the link's approver (steps with links "bearer")
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from orchestrator.approval.principals import RESERVED_PREFIX, form, matches, normalize
from orchestrator.model import NodeStatus, RunRecord, RunStatus, StepState
from orchestrator.tree import GROUPS

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping, Sequence

    from orchestrator.ports import RunStore

KIND = "approval"
MAX_COMMENT_CHARS = 1000
_FORMS_BY_VIA = {"cli": ("arn",), "oidc": ("email", "oidc"), "slack": ("slack",)}
"""The identity forms each way of proving an identity can vouch for."""


class Refusal(enum.Enum):
    """Why a decision is not taken."""

    UNKNOWN_RUN = "unknown run"
    NO_SUCH_STEP = "no such step"
    NOT_APPROVER = "not an approver"
    RUN_OVER = "run over"
    NOT_WAITING = "step not waiting"
    ALREADY_DECIDED = "already decided"
    INVALID = "invalid"
    SELF_APPROVAL = "started the pipeline execution"
    SIGN_IN_REQUIRED = "sign-in required"

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
    Refusal.SELF_APPROVAL: 403,
    Refusal.SIGN_IN_REQUIRED: 403,
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
    """Decisions from outside the approvers."""
    excluded: list[str] = field(default_factory=list)
    """Decisions by the pipeline execution's initiator (steps with exclude_initiator)."""
    missing: dict[str, int] = field(default_factory=dict)
    """Approvals still needed, by group ("" for the plain `approvers` form); 0 when met."""

    @property
    def approved(self) -> bool:
        met = not any(self.missing.values()) if self.missing else True
        return self.rejected_by is None and len(self.approved_by) >= self.required and met

    def needs(self) -> str:
        """What is still missing, by group: "1 from security, 2 from sre" ("" if nothing)."""
        return ", ".join(f"{n} from {g}" for g, n in self.missing.items() if g and n)


def tally(
    decisions: Mapping[str, Any],
    approvers: Sequence[str] | Mapping[str, Sequence[str]],
    required: int | Mapping[str, int],
    excluded: Collection[str] = (),
) -> Tally:
    """Count decisions by time: the first reject, or enough approvals, settles it.

    `approvers` is a list of patterns with `required` a number, or groups of patterns by
    name with `required` a number per group (a group left out needs 1). A person counts
    once, in one group: the step is approved as soon as the approvals so far can be
    assigned, one group each among the groups that list them, to meet every group's number.
    Decisions by an identity in `excluded` (the initiator) never count.
    """
    groups = dict(approvers) if isinstance(approvers, dict) else {"": list(approvers)}
    needed = (
        {"": required}
        if isinstance(required, int)
        else {g: int(required.get(g, 1)) for g in groups}
    )
    everyone = [pattern for patterns in groups.values() for pattern in patterns]
    result = Tally(sum(needed.values()), missing=dict(needed))
    ordered = sorted(
        ((p, d) for p, d in decisions.items() if not p.startswith(RESERVED_PREFIX)),
        key=lambda item: (_at(item[1]), item[0]),
    )
    for principal, decision in ordered:
        if not isinstance(decision, dict) or not matches(principal, everyone):
            result.ignored.append(principal)
            continue
        if normalize(principal) in excluded:
            result.excluded.append(principal)
            continue
        comment = str(decision.get("comment") or "")
        if decision.get("decision") == "reject":
            return Tally(
                result.required, result.approved_by, result.comments, principal, comment,
                result.ignored, result.excluded, result.missing,
            )  # fmt: skip
        if decision.get("decision") == "approve":
            result.approved_by.append(principal)
            result.comments.append(comment)
            result.missing.update(_missing(result.approved_by, groups, needed))
            if result.approved:
                break
    return result


def _missing(
    people: Sequence[str], groups: Mapping[str, Sequence[str]], needed: Mapping[str, int]
) -> dict[str, int]:
    """Approvals each group still needs, with each person assigned to at most one group so
    that as many seats as possible are filled (a bipartite matching: people to seats)."""
    seats = [g for g, n in needed.items() for _ in range(n)]
    fits = [[i for i, g in enumerate(seats) if matches(p, groups[g])] for p in people]
    holder: dict[int, int] = {}  # seat -> person

    def place(person: int, seen: set[int]) -> bool:
        for seat in fits[person]:
            if seat not in seen:
                seen.add(seat)
                if seat not in holder or place(holder[seat], seen):
                    holder[seat] = person
                    return True
        return False

    for person in range(len(people)):
        place(person, set())
    return {g: n - sum(1 for s in holder if seats[s] == g) for g, n in needed.items()}


def _asks(step: StepState) -> bool:
    """An approval step, or a check whose inconclusive result people decide (its memo then
    holds what an approval's does)."""
    rules = step.memo.get("rules")
    return step.kind == KIND or (isinstance(rules, dict) and "inconclusive" in rules)


def waiting_step(record: RunRecord, step: str | None) -> StepState:
    """The approval step a decision is for (default: the current step); raises Refused."""
    state = record.state
    if state.status is not RunStatus.RUNNING:
        raise Refused(Refusal.RUN_OVER, f"run {state.run_id} is over ({state.status.value})")
    every = [*state.steps, *state.hooks]
    waiting = [s for s in every if _asks(s) and s.status is NodeStatus.RUNNING]
    running = [s for s in every if s.status is NodeStatus.RUNNING and s.kind not in GROUPS]
    if step is None and len(waiting) > 1:
        names = ", ".join(f"'{s.name}'" for s in waiting)
        raise Refused(
            Refusal.NO_SUCH_STEP, f"run {state.run_id} waits at {names}: say which (--step)"
        )
    current = waiting[0] if waiting else (running[0] if running else None)
    name = step if step is not None else (current.name if current else "")
    found = next((s for s in every if s.name == name), None)
    if found is None:
        raise Refused(Refusal.NO_SUCH_STEP, f"run {state.run_id} has no step '{name}'")
    if not _asks(found):
        raise Refused(Refusal.NOT_WAITING, f"step '{name}' is not an approval step")
    if found.status is not NodeStatus.RUNNING or "approvers" not in found.memo:
        names = ", ".join(f"'{s.name}'" for s in running)
        where = f"running: {names}" if running else "no step is running"
        raise Refused(Refusal.NOT_WAITING, f"step '{name}' is not waiting for decisions ({where})")
    return found


def check(
    record: RunRecord,
    step: str | None,
    principal: str,
    via: str | None = None,
    also: Collection[str] = (),
) -> StepState:
    """The step, if `principal`, proven `via` (None: not deciding yet, e.g. a confirmation
    page), may decide it now; raises Refused otherwise. `also` are other identities proven
    for the same person at the same time (an OIDC sign-in's subject and e-mail address)."""
    found = waiting_step(record, step)
    memo = found.memo
    principal = normalize(principal)
    if via == "link" and memo.get("links", "signed-in") != "bearer":
        raise Refused(
            Refusal.SIGN_IN_REQUIRED,
            f"step '{found.name}' takes decisions from signed-in approvers only: "
            "a link alone cannot decide it",
        )
    forms = _FORMS_BY_VIA.get(via or "")
    if forms is not None and form(principal) not in forms:
        raise Refused(Refusal.INVALID, f"{principal} cannot be proven by {via}")
    approvers = [str(p) for p in memo.get("approvers", [])]
    if not matches(principal, approvers):
        raise Refused(
            Refusal.NOT_APPROVER,
            f"{principal} is not an approver of step '{found.name}' "
            f"(approvers: {', '.join(approvers)})",
        )
    initiator = initiator_of(found)
    if any(normalize(i) in initiator for i in (principal, *also)):
        raise Refused(
            Refusal.SELF_APPROVAL,
            f"{principal} started this pipeline execution and cannot decide step "
            f"'{found.name}' (exclude_initiator): ask another approver",
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
    also: Collection[str] = (),
) -> tuple[StepState, Tally]:
    """Record one decision; returns the step and its tally with the decision counted in.

    The entry, under the identity, holds the decision, the comment, the time, how the
    identity was proven (`via`) and the source IP when known."""
    if decision not in ("approve", "reject"):
        raise Refused(Refusal.INVALID, f"unknown decision {decision!r}")
    if len(comment) > MAX_COMMENT_CHARS:
        raise Refused(Refusal.INVALID, f"comment longer than {MAX_COMMENT_CHARS} characters")
    principal = normalize(principal)  # one key per identity: e-mail addresses in lower case
    record = store.load(run_id)
    if record is None:
        raise Refused(Refusal.UNKNOWN_RUN, f"run {run_id} is not in the runs table")
    found = check(record, step, principal, via, also)
    entry: dict[str, Any] = {"decision": decision, "comment": comment, "at": at, "via": via}
    if source_ip:
        entry["source_ip"] = source_ip
    if not store.record_decision(run_id, found.name, principal, entry):
        # Lost to a concurrent decision by the same principal, or the run ended meanwhile.
        again = store.load(run_id)
        if again is None:
            raise Refused(Refusal.UNKNOWN_RUN, f"run {run_id} is not in the runs table")
        check(again, found.name, principal, via, also)
        raise Refused(Refusal.RUN_OVER, f"run {run_id} did not take the decision")
    decisions = {**record.signals.decisions.get(found.name, {}), principal: entry}
    return found, tally_memo(decisions, found)


def tally_memo(decisions: Mapping[str, Any], step: StepState) -> Tally:
    """`tally()` with the policy the step keeps in its memo."""
    memo = step.memo
    groups = memo.get("groups")
    approvers = groups if isinstance(groups, dict) else [str(p) for p in memo["approvers"]]
    required = memo.get("required", 1)
    return tally(decisions, approvers, required, initiator_of(step))


def initiator_of(step: StepState) -> frozenset[str]:
    """The identities of the pipeline execution's initiator, when the step excludes them."""
    initiator = step.memo.get("initiator")
    found = initiator.get("identities", []) if isinstance(initiator, dict) else []
    return frozenset(normalize(str(i)) for i in found)


def _at(decision: Any) -> float:
    try:
        return float(decision.get("at", 0.0))
    except (AttributeError, TypeError, ValueError):
        return 0.0
