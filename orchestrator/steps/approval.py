"""`approval`: wait until enough approvers say yes; one no from an approver fails the gate.

    {"name": "prod-signoff", "timeout": "8h",
     "approval": {"approvers": ["arn:aws:iam::111122223333:role/Releasers",
                                "arn:aws:sts::111122223333:assumed-role/Admins/*"],
                  "required": 2, "message": "Ship build 42 to production?",
                  "notify": {"sns": "arn:aws:sns:eu-west-1:111122223333:approvals",
                             "webhook": "https://hooks.slack.com/services/..."}}}

Decisions are recorded in the runs table from outside the tick (`orchestrator approve|reject`,
or the endpoint's signed links) and reach the step as `ctx.decisions`; only those of
principals matching `approvers` count (`orchestrator.approval.decide.tally`). The result is
`{"approved_by": [...], "comments": [...]}` (comments in the same order).

When it starts, the step keeps its approvers in its memo: that is what the CLI and the
endpoint check against, as they only have the run's state, not its definition.

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
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from orchestrator.approval.decide import tally
from orchestrator.approval.principals import is_exact, normalize
from orchestrator.steps._base import Done, Failed, Outcome, Pending, Step, StepContext

if TYPE_CHECKING:
    from orchestrator.approval.runtime import Runtime
    from orchestrator.model import StepState

log = logging.getLogger("orchestrator")

NOTIFY_KEY = "notify"
ACTION_LIMIT = 24 * 3600.0
"""CodePipeline ends a Lambda invoke action after 24 hours: no link outlives that."""
MAX_CLAIM_ATTEMPTS = 5
_SNS_TOPIC = re.compile(r"arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?")


def _templated(value: str) -> bool:
    return "${" in value


class NotifyTargets(BaseModel):
    """Where the "approval needed" message goes: an SNS topic, a webhook, or both."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sns: str | None = None
    webhook: str | None = None

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


class ApprovalSpec(BaseModel):
    """Who decides, how many must approve, what they are asked, whom to tell."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    approvers: list[str] = Field(min_length=1, max_length=50)
    required: int = Field(default=1, ge=1, le=50)
    message: str = Field(default="Approval required", min_length=1, max_length=2000)
    notify: NotifyTargets | None = None

    @field_validator("approvers")
    @classmethod
    def _arn_patterns(cls, value: list[str]) -> list[str]:
        for pattern in value:
            arn = pattern.startswith("arn:") or _templated(pattern)
            if not arn or pattern != pattern.strip():
                raise ValueError(f"invalid approver {pattern!r}: use an IAM principal ARN ('*' ok)")
        return value

    @model_validator(mode="after")
    def _enough_approvers(self) -> ApprovalSpec:
        if all(is_exact(p) and not _templated(p) for p in self.approvers):
            distinct = len({normalize(p) for p in self.approvers})
            if self.required > distinct:
                raise ValueError(
                    f"required is {self.required} but only {distinct} distinct approvers are listed"
                )
        return self


class ApprovalStep(Step):
    """Pending until `approval.required` distinct approvers approved; a reject fails the gate."""

    kind: ClassVar[str] = "approval"

    approval: ApprovalSpec

    def reads_pipeline(self) -> bool:
        return self.approval.notify is not None  # the notice names the pipeline

    def poll(self, state: StepState, ctx: StepContext) -> Outcome:
        spec, memo = self.approval, state.memo
        if "approvers" not in memo:
            memo.update(
                approvers=list(spec.approvers),
                required=spec.required,
                message=spec.message,
                expires=self._expires(state),
            )
        counted = tally(ctx.decisions, spec.approvers, spec.required)
        if counted.rejected_by is not None:
            why = counted.reason or "no reason given"
            return Failed(f"step '{self.name}': rejected by {counted.rejected_by}: {why}")
        if counted.approved:
            return Done({"approved_by": counted.approved_by, "comments": counted.comments})
        again = False
        if spec.notify is not None and memo.get("notify") not in ("sent", "failed", "skipped"):
            again = self._notify(state, ctx)
        detail = f"waiting for approval: {len(counted.approved_by)}/{spec.required} approvals"
        if counted.approved_by:
            detail += f" ({', '.join(counted.approved_by)})"
        if memo.get("notify") == "failed":
            detail += f"; notification failed ({', '.join(memo.get('notify_errors', []))})"
        if counted.ignored:
            detail += f"; ignored {len(counted.ignored)} decision(s) from outside the approvers"
        return Pending(detail, next_check=ctx.now if again else None)

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
        exact = [normalize(p) for p in spec.approvers if is_exact(p)]
        if found.base_url and found.secret_arn and exact:
            try:
                key = links.KEYS.get(found.secret_arn, services.aws("secretsmanager"))
            except links.KeyUnavailable as exc:
                errors.append(f"links: {exc}")
            else:
                expires = float(state.memo["expires"])
                minted = links.mint(key, found.base_url, ctx.run_id, self.name, exact, expires)
        notice = notify.Notice(
            run_id=ctx.run_id,
            step=self.name,
            message=spec.message,
            approvers=list(spec.approvers),
            required=spec.required,
            expires=float(state.memo["expires"]) if self.timeout is not None else None,
            links=minted,
            pipeline=_pipeline_name(ctx.run),
        )
        assert spec.notify is not None
        timeout = min(10.0, max(ctx.time_left() - 1.0, 0.5))
        errors += notify.send(notice, spec.notify.sns, spec.notify.webhook, services, timeout)
        return errors


def _pipeline_name(run: Any) -> str | None:
    pipeline = run.get("pipeline") if hasattr(run, "get") else None
    # The run context's `pipeline` is GetJobDetails' pipelineContext (pipeline_context.py).
    name = pipeline.get("pipelineName") if isinstance(pipeline, dict) else None
    return name if isinstance(name, str) else None
