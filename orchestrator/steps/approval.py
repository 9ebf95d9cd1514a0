"""`approval`: wait until enough approvers say yes; one no from an approver fails the gate.

    {"name": "prod-signoff", "timeout": "8h",
     "approval": {"approvers": ["arn:aws:iam::111122223333:role/Releasers",
                                "arn:aws:sts::111122223333:assumed-role/Admins/*"],
                  "required": 2, "message": "Ship build 42 to production?",
                  "notify": {"sns": "arn:aws:sns:eu-west-1:111122223333:approvals",
                             "webhook": "https://hooks.slack.com/services/..."}}}

Decisions are recorded in the runs table from outside the tick (`orchestrator approve|reject`,
the page after an OIDC sign-in, Slack buttons, or bearer links where a step allows them) and
reach the step as `ctx.decisions`; only those of identities matching `approvers` (or the
`groups`) count, never the pipeline execution's initiator when `exclude_initiator` is set
(`orchestrator.approval.decide.tally`). The result is `{"approved_by": [...], "comments":
[...]}` (comments in the same order), plus `"approved_by_timeout": true` when the step's
timeout passed with `"on_timeout": "approve"`.

When it starts, the step keeps its policy in its memo (approvers, groups, required, the links
mode, on_timeout, and the initiator when it is excluded): that is what the CLI, the page and
Slack check against, as they only have the run's state, not its definition.

The notification goes out once per step, even when two deliveries of a job poll at the
same moment: it is claimed with the store's once-per-key write (`ctx.claim`) under
`notify` in the step's claims before it is sent (a claim that cannot be made yet, because
the run is not stored yet, is tried again at the next tick). It is at most once: if sending
fails, the CLI still works.
"""

from __future__ import annotations

import logging
import re
import secrets
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticKnownError

from orchestrator.approval.decide import Tally, initiator_of, tally_memo
from orchestrator.approval.principals import (
    approver_error,
    initiator_identities,
    is_exact,
    normalize,
)
from orchestrator.durations import format_duration
from orchestrator.exceptions import FailureType
from orchestrator.steps._base import Done, Failed, Outcome, Pending, Step, StepContext
from orchestrator.targets import Target, acted_as

if TYPE_CHECKING:
    from orchestrator.approval.runtime import Runtime
    from orchestrator.model import StepState

log = logging.getLogger("orchestrator")

NOTIFY_KEY = "notify"
ACTION_LIMIT = 24 * 3600.0
"""CodePipeline ends a Lambda invoke action after 24 hours: no link outlives that."""
MAX_CLAIM_ATTEMPTS = 5
_SNS_TOPIC = re.compile(r"arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?")
_GROUP = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_GROUPS = 10
MAX_REQUIRED = 50


def _templated(value: str) -> bool:
    return "${" in value


class NotifyTargets(Target):
    """Where the "approval needed" message goes: an SNS topic, a webhook, or both. The topic
    is published to as the function's role in its region, or as `role_arn` in `region`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sns: str | None = None
    webhook: str | None = None
    slack_buttons: bool = False
    """Slack interactive buttons in the webhook message (the endpoint's /slack proves who
    clicked), instead of links."""

    @field_validator("sns")
    @classmethod
    def _topic_arn(cls, value: str | None) -> str | None:
        if value is not None and not (_SNS_TOPIC.fullmatch(value) or _templated(value)):
            raise ValueError(f"invalid SNS topic ARN {value!r}")
        return value

    @field_validator("webhook")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not (
            value.startswith(("https://", "http://")) or _templated(value)
        ):
            raise ValueError("invalid webhook URL: must start with https:// or http://")
        return value

    @model_validator(mode="after")
    def _at_least_one(self) -> NotifyTargets:
        if self.sns is None and self.webhook is None:
            raise ValueError("notify needs 'sns', 'webhook' or both")
        return self


def _count(value: object) -> object:
    """`required`: a number 1..50, or (with `groups`) a number 1..50 per group name."""
    counts = value if isinstance(value, dict) else {None: value}
    for group, count in counts.items():
        where = f"group {group!r}: " if group is not None else ""
        if isinstance(count, bool) or not isinstance(count, int):
            if group is None:
                return value  # pydantic says what is wrong with it
            raise ValueError(f"{where}expected a number of approvals")
        if count < 1:
            if group is None:
                raise PydanticKnownError("greater_than_equal", {"ge": 1})
            raise ValueError(f"{where}needs at least 1 approval")
        if count > MAX_REQUIRED:
            raise ValueError(f"{where}at most {MAX_REQUIRED} approvals")
    return value


def _check_patterns(patterns: list[str]) -> list[str]:
    for pattern in patterns:
        why = None if _templated(pattern) else approver_error(pattern)
        if why is not None:
            raise ValueError(f"invalid approver {pattern!r}: {why}")
    return patterns


def _distinct_exact(patterns: list[str]) -> int | None:
    """How many identities the patterns name, if every one is exact (None otherwise)."""
    if all(is_exact(p) and not _templated(p) for p in patterns):
        return len({normalize(p) for p in patterns})
    return None


class ApprovalSpec(BaseModel):
    """Who decides, how many must approve, what they are asked, whom to tell, and what a
    link alone may do, whether the initiator is excluded, what a timeout means."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    approvers: list[str] | None = Field(default=None, min_length=1, max_length=50)
    groups: dict[str, list[str]] | None = Field(default=None, min_length=1, max_length=MAX_GROUPS)
    required: Annotated[int | dict[str, int], BeforeValidator(_count)] = 1
    links: Literal["signed-in", "bearer"] = "signed-in"
    exclude_initiator: bool = False
    on_timeout: Literal["reject", "approve"] = "reject"
    message: str = Field(default="Approval required", min_length=1, max_length=2000)
    notify: NotifyTargets | None = None

    @field_validator("approvers")
    @classmethod
    def _patterns(cls, value: list[str] | None) -> list[str] | None:
        return _check_patterns(value) if value is not None else None

    @field_validator("groups")
    @classmethod
    def _group_patterns(cls, value: dict[str, list[str]] | None) -> dict[str, list[str]] | None:
        for name, patterns in (value or {}).items():
            if not _GROUP.fullmatch(name):
                raise ValueError(f"invalid group name {name!r}: use 1 to 64 of A-Z a-z 0-9 _ -")
            if not 1 <= len(patterns) <= 50:
                raise ValueError(f"group {name!r}: list 1 to 50 approvers")
            _check_patterns(patterns)
        return value

    @field_validator("required")
    @classmethod
    def _required_fits(
        cls, value: int | dict[str, int], info: ValidationInfo
    ) -> int | dict[str, int]:
        groups, approvers = info.data.get("groups"), info.data.get("approvers")
        if groups is None:
            if isinstance(value, dict):
                raise ValueError("expected a number (a number per group goes with 'groups')")
            distinct = _distinct_exact(approvers) if approvers is not None else None
            if distinct is not None and value > distinct:
                raise ValueError(
                    f"required is {value} but only {distinct} distinct approvers are listed"
                )
            return value
        if not isinstance(value, dict):
            raise ValueError("with 'groups', an object: how many approvals each group gives")
        unknown = sorted(set(value) - set(groups))
        if unknown:
            raise ValueError(f"names no group: {', '.join(unknown)}")
        for name, patterns in groups.items():
            distinct = _distinct_exact(patterns)
            if distinct is not None and value.get(name, 1) > distinct:
                raise ValueError(
                    f"group {name!r} needs {value.get(name, 1)} but lists only {distinct} "
                    "distinct approvers"
                )
        return value

    @field_validator("links")
    @classmethod
    def _bearer_alone(cls, value: str, info: ValidationInfo) -> str:
        if value == "bearer" and (
            info.data.get("required", 1) != 1 or info.data.get("groups") is not None
        ):
            raise ValueError(
                "'bearer' needs required 1 and no groups: a link proves nobody, so it cannot "
                "tell approvers apart"
            )
        return value

    @model_validator(mode="after")
    def _approvers_or_groups(self) -> ApprovalSpec:
        if (self.approvers is None) == (self.groups is None):
            raise ValueError("give either 'approvers' (a list) or 'groups' (lists by name)")
        return self

    def everyone(self) -> list[str]:
        """Every approver pattern, in order, once (the groups' patterns, for groups)."""
        if self.approvers is not None:
            return list(self.approvers)
        return list(dict.fromkeys(p for patterns in (self.groups or {}).values() for p in patterns))

    def counts(self) -> int | dict[str, int]:
        """Approvals needed: a number, or (groups) a number per group, each 1 unless given."""
        if self.groups is None:
            return self.required
        given = self.required if isinstance(self.required, dict) else {}
        return {name: given.get(name, 1) for name in self.groups}

    def total(self) -> int:
        """Approvals needed in all."""
        counts = self.counts()
        return counts if isinstance(counts, int) else sum(counts.values())


class ApprovalStep(Step):
    """Pending until enough distinct approvers approved; a reject fails the gate."""

    kind: ClassVar[str] = "approval"
    not_a_guard: ClassVar[str | None] = "an approval is decided once, not polled as a check"

    approval: ApprovalSpec

    @model_validator(mode="after")
    def _timeout_to_approve(self) -> ApprovalStep:
        if self.approval.on_timeout == "approve" and self.timeout is None:
            raise ValueError(
                "approval.on_timeout 'approve' needs the step's own 'timeout' (shorter than the "
                "gate's: the gate's deadline always fails the gate)"
            )
        return self

    def reads_pipeline(self) -> bool:
        # The notice names the pipeline; the initiator comes with the pipeline document.
        return self.approval.notify is not None or self.approval.exclude_initiator

    def poll(self, state: StepState, ctx: StepContext) -> Outcome:
        spec, memo = self.approval, state.memo
        if "approvers" not in memo:
            memo.update(
                approvers=spec.everyone(),
                required=spec.counts(),
                message=spec.message,
                expires=self._expires(state),
                links=spec.links,
                on_timeout=spec.on_timeout,
            )
            if spec.groups is not None:
                memo["groups"] = {name: list(p) for name, p in spec.groups.items()}
            if spec.exclude_initiator:
                trigger = _trigger(ctx.run)
                if trigger is None:
                    return Failed(
                        f"step '{self.name}': exclude_initiator needs the pipeline execution's "
                        "trigger (GetPipelineExecution), which this run does not have",
                        FailureType.CONFIGURATION_ERROR,
                    )
                kind, detail = trigger.get("type"), trigger.get("detail")
                memo["initiator"] = {
                    "type": kind,
                    "detail": detail,
                    "identities": initiator_identities(kind, detail),
                }
        counted = tally_memo(ctx.decisions, state)
        if counted.rejected_by is not None:
            why = counted.reason or "no reason given"
            return Failed(f"step '{self.name}': rejected by {counted.rejected_by}: {why}")
        if counted.approved:
            return Done({"approved_by": counted.approved_by, "comments": counted.comments})
        again = False
        if spec.notify is not None and memo.get("notify") not in ("sent", "failed", "skipped"):
            again = self._notify(state, ctx)
        return Pending(self._waiting(state, counted), next_check=ctx.now if again else None)

    def at_deadline(self, state: StepState, ctx: StepContext) -> Outcome:
        """What the step's timeout means: a reject or enough approvals that came in since the
        last poll still settle it; otherwise the gate fails (`on_timeout` "reject") or the
        step is approved by timeout ("approve")."""
        if "approvers" not in state.memo:
            outcome = self.poll(state, ctx)
            if not isinstance(outcome, Pending):
                return outcome
        counted = tally_memo(ctx.decisions, state)
        if counted.rejected_by is not None or counted.approved:
            return self.poll(state, ctx)
        after = format_duration(min(self.timeout or ACTION_LIMIT, ACTION_LIMIT))
        if state.memo.get("on_timeout", self.approval.on_timeout) == "approve":
            return Done(
                {
                    "approved_by": counted.approved_by,
                    "comments": counted.comments,
                    "approved_by_timeout": True,
                }
            )
        return Failed(
            f"step '{self.name}': approval timed out after {after} without a decision "
            f"({self._waiting(state, counted)}); on_timeout is 'reject'"
        )

    def _waiting(self, state: StepState, counted: Tally) -> str:
        memo = state.memo
        detail = f"waiting for approval: {len(counted.approved_by)}/{counted.required} approvals"
        if counted.approved_by:
            detail += f" ({', '.join(counted.approved_by)})"
        if counted.needs():
            detail += f"; needs {counted.needs()}"
        if memo.get("notify") == "failed":
            detail += f"; notification failed ({', '.join(memo.get('notify_errors', []))})"
        if counted.ignored:
            detail += f"; ignored {len(counted.ignored)} decision(s) from outside the approvers"
        if counted.excluded:
            detail += (
                f"; ignored {len(counted.excluded)} decision(s) by the pipeline execution's "
                "initiator"
            )
        initiator = memo.get("initiator")
        if isinstance(initiator, dict) and not initiator_of(state):
            detail += f"; initiator not known ({initiator.get('type')}): nobody excluded"
        return detail

    def _expires(self, state: StepState) -> float:
        assert state.started_at is not None
        return state.started_at + min(self.timeout or ACTION_LIMIT, ACTION_LIMIT)

    def _notify(self, state: StepState, ctx: StepContext) -> bool:
        """Claim and send the notification; True when the claim must be tried again soon."""
        memo = state.memo
        if NOTIFY_KEY in ctx.claims:  # another delivery claimed it: it sent the message
            memo["notify"] = "sent"
            return False
        if ctx.services is None or ctx.claim is None:
            memo["notify"] = "skipped"
            return False
        from orchestrator.approval import runtime

        found = runtime.current()
        # A value of its own: the store answers True to whoever finds exactly its value there.
        claim = {"decision": "notify", "comment": "", "at": ctx.now, "by": secrets.token_hex(8)}
        if not ctx.claim(NOTIFY_KEY, claim):
            attempts = int(memo.get("notify_attempts", 0)) + 1
            memo["notify_attempts"] = attempts
            if attempts >= MAX_CLAIM_ATTEMPTS:
                memo["notify"] = "skipped"
                log.warning("approval notification skipped", extra={"run_id": ctx.run_id})
                return False
            return True
        try:
            errors = self._send(state, ctx, found)
        except Exception as exc:  # claimed already: a failed message must not fail the gate
            errors = [f"unexpected {type(exc).__name__}"]
        memo["notify"] = "failed" if errors else "sent"
        if errors:
            memo["notify_errors"] = errors
            log.warning(
                "approval notification failed",
                extra={"run_id": ctx.run_id, "step": self.name, "errors": errors},
            )
        return False

    def _send(self, state: StepState, ctx: StepContext, found: Runtime) -> list[str]:
        from orchestrator.approval import links, notify

        services = ctx.services
        assert services is not None  # _notify sends nothing without them
        spec, errors = self.approval, []
        minted: list[links.Link] = []
        buttons: list[links.Button] = []
        exact = [normalize(p) for p in spec.everyone() if is_exact(p)]
        wants_buttons = spec.notify is not None and spec.notify.slack_buttons
        if found.base_url and found.secret_arn and (exact or wants_buttons):
            try:
                key = links.KEYS.get(found.secret_arn, services.aws("secretsmanager"))
            except links.KeyUnavailable as exc:
                errors.append(f"links: {exc}")
            else:
                expires = float(state.memo["expires"])
                minted = links.mint(key, found.base_url, ctx.run_id, self.name, exact, expires)
                if wants_buttons:
                    buttons = links.mint_buttons(key, ctx.run_id, self.name, expires)
        notice = notify.Notice(
            run_id=ctx.run_id,
            step=self.name,
            message=spec.message,
            approvers=spec.everyone(),
            required=spec.total(),
            expires=float(state.memo["expires"]) if self.timeout is not None else None,
            links=minted,
            pipeline=_pipeline_name(ctx.run),
            groups=dict(spec.groups) if spec.groups is not None else None,
            required_by_group=counts if isinstance(counts := spec.counts(), dict) else None,
            on_timeout=spec.on_timeout,
            buttons=buttons,
        )
        assert spec.notify is not None
        timeout = min(10.0, max(ctx.time_left() - 1.0, 0.5))
        target = spec.notify.acting_as(ctx.run_id, self.name) if spec.notify.sns else None
        sent = notify.send(notice, spec.notify.sns, spec.notify.webhook, services, timeout, target)
        if not any(error.startswith("sns:") for error in sent):
            acted_as(state, target)
        return errors + sent


def _pipeline_name(run: Any) -> str | None:
    pipeline = run.get("pipeline") if hasattr(run, "get") else None
    # The run context's `pipeline` is GetJobDetails' pipelineContext (pipeline_context.py).
    name = pipeline.get("pipelineName") if isinstance(pipeline, dict) else None
    return name if isinstance(name, str) else None


def _trigger(run: Any) -> dict[str, Any] | None:
    """The pipeline execution's trigger, `{"type", "detail"}` (pipeline_context.py adds it to
    the `pipeline` document for definitions with an approval that excludes its initiator)."""
    pipeline = run.get("pipeline") if hasattr(run, "get") else None
    trigger = pipeline.get("trigger") if isinstance(pipeline, dict) else None
    return trigger if isinstance(trigger, dict) else None
