"""Notifications for a gate's outcomes: `"notify": {"webhook", "sns", "on": [...]}`.

    events(before, after)   what a committed tick changed that someone may want to hear of:
                            succeeded, failed, timed_out, waiting_for_approval,
                            guard_violated, skipped, resumed (each once per run and key)
    send(...)               a Slack-compatible message to the webhook (its URL may come from
                            a secret reference), plain text to the SNS topic

The tick sends them after its write succeeded, so only the delivery whose conditional write
recorded the change sends: duplicate deliveries never send twice (a process that dies
between the write and the send loses the message: at most once). A failed delivery never
changes the gate; it is logged and, while the run goes on, recorded in its claims
(`notify|<event>-failed`) so that the next summary says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from orchestrator.model import NodeStatus, RunState, RunStatus
from orchestrator.secrets import SecretRef  # noqa: TC001 - pydantic needs it at run time
from orchestrator.text import clip

if TYPE_CHECKING:
    from orchestrator.services import ServiceClients

Event = Literal[
    "failed",
    "succeeded",
    "waiting_for_approval",
    "guard_violated",
    "timed_out",
    "resumed",
    "skipped",
]
EVENTS: tuple[str, ...] = Event.__args__  # type: ignore[attr-defined]
_SNS_TOPIC = re.compile(r"arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?")


class GateNotify(BaseModel):
    """Where a gate's notifications go and which events are sent."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    webhook: str | SecretRef | None = None
    sns: str | None = None
    on: list[Event] = Field(default_factory=lambda: list(EVENTS), min_length=1)  # type: ignore[arg-type]

    @field_validator("sns")
    @classmethod
    def _topic(cls, value: str | None) -> str | None:
        if value is not None and not _SNS_TOPIC.fullmatch(value):
            raise ValueError(f"invalid SNS topic ARN {value!r}")
        return value

    @field_validator("webhook")
    @classmethod
    def _url(cls, value: str | SecretRef | None) -> str | SecretRef | None:
        if isinstance(value, str) and not value.startswith(("https://", "http://")):
            raise ValueError("invalid webhook URL: must start with https:// or http://")
        return value

    @model_validator(mode="after")
    def _somewhere(self) -> GateNotify:
        if self.webhook is None and self.sns is None:
            raise ValueError("notify needs a webhook, an sns topic, or both")
        return self


@dataclass(frozen=True)
class Notice:
    """One event of one run."""

    key: str
    event: str
    summary: str
    step: str | None = None


def events(before: RunState | None, after: RunState, summary: str) -> list[Notice]:
    """What changed between the stored run and the one just written (`before` None: the
    run's first write), as notices; `summary` is the answer's."""
    found: list[Notice] = []
    was = {s.name: s for s in (*before.steps, *before.guards)} if before else {}
    ended = before is None or before.status is RunStatus.RUNNING
    failing_now = after.failing is not None and (before is None or before.failing is None)
    if (
        after.status is RunStatus.FAILED and ended and (before is None or before.failing is None)
    ) or failing_now:
        failure = after.failing or after.failure
        assert failure is not None
        event = "timed_out" if "timed out after" in failure.message else "failed"
        found.append(Notice(event, event, failure.message))
    if after.status is RunStatus.SUCCEEDED and ended:
        found.append(Notice("succeeded", "succeeded", summary))
    for state in after.steps:
        old = was.get(state.name)
        skipped = state.status is NodeStatus.SKIPPED or _skipped_by(state)
        if skipped and (old is None or not (old.status is NodeStatus.SKIPPED or _skipped_by(old))):
            found.append(Notice(f"skipped:{state.name}", "skipped", state.detail, state.name))
        waiting = state.status is NodeStatus.RUNNING and "approvers" in state.memo
        if waiting and (old is None or "approvers" not in old.memo):
            found.append(
                Notice(
                    f"waiting_for_approval:{state.name}",
                    "waiting_for_approval",
                    state.detail or "waiting for approval",
                    state.name,
                )
            )
    for state in after.guards:
        old = was.get(state.name)
        if state.passing is False and (old is None or old.passing is not False):
            found.append(
                Notice(f"guard_violated:{state.name}", "guard_violated", state.detail, state.name)
            )
    if before is not None and before.paused is not None and after.paused is None:
        found.append(Notice(f"resumed:{before.paused}", "resumed", summary))
    if before is not None and after.attempt > before.attempt:  # a retry of the action
        found.append(Notice(f"resumed:attempt-{after.attempt}", "resumed", summary))
    return found


def _skipped_by(state: Any) -> bool:
    return isinstance(state.result, dict) and "skipped_by" in state.result


def message(notice: Notice, run_id: str, pipeline: dict[str, Any] | None) -> dict[str, Any]:
    """The Slack-compatible webhook body: what happened, where, why, and a console link."""
    where = _where(pipeline)
    title = f"Gate {notice.event.replace('_', ' ')}" + (f": {notice.step}" if notice.step else "")
    lines = [f"*{_esc(title)}*", _esc(clip(notice.summary, 2500))]
    if where:
        lines.append(_esc(where))
    link = console_link(pipeline)
    if link:
        lines.append(f"<{link}|Open the pipeline execution>")
    lines.append(f"run `{run_id}`")
    text = "\n".join(lines)
    return {"text": text, "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]}


def plain(notice: Notice, run_id: str, pipeline: dict[str, Any] | None) -> tuple[str, str]:
    """The SNS subject and message."""
    subject = clip(f"Gate {notice.event.replace('_', ' ')}: {_pipeline_name(pipeline)}", 100)
    body = [notice.summary, _where(pipeline), console_link(pipeline) or "", f"run {run_id}"]
    return subject, "\n".join(line for line in body if line)


def console_link(pipeline: dict[str, Any] | None) -> str | None:
    """The pipeline execution in the CodePipeline console."""
    if not pipeline:
        return None
    name, execution = pipeline.get("pipelineName"), pipeline.get("pipelineExecutionId")
    arn = str(pipeline.get("pipelineArn") or "")
    region = arn.split(":")[3] if arn.count(":") >= 5 else None
    if not (name and execution and region):
        return None
    return (
        f"https://{region}.console.aws.amazon.com/codesuite/codepipeline/pipelines/"
        f"{name}/executions/{execution}/timeline?region={region}"
    )


def send(
    notice: Notice,
    run_id: str,
    notify: GateNotify,
    pipeline: dict[str, Any] | None,
    services: ServiceClients,
    timeout: float,
) -> list[str]:
    """Post to the webhook and publish to the topic; what failed (no URL ever named)."""
    from orchestrator import aws
    from orchestrator.secrets import SecretError, resolve
    from orchestrator.services import post_json

    errors: list[str] = []
    if notify.webhook is not None:
        try:
            url = (
                notify.webhook
                if isinstance(notify.webhook, str)
                else resolve(notify.webhook, services)
            )
        except SecretError as exc:
            errors.append(f"webhook: {exc}")
        else:
            error = post_json(services.http, url, message(notice, run_id, pipeline), timeout)
            if error is not None:
                errors.append(f"webhook: {error}")
    if notify.sns is not None:
        from botocore.exceptions import BotoCoreError, ClientError

        subject, text = plain(notice, run_id, pipeline)
        try:
            services.aws("sns").publish(TopicArn=notify.sns, Subject=subject, Message=text)
        except (ClientError, BotoCoreError) as exc:
            errors.append(f"sns: {aws.describe(exc)}")
    return errors


def _where(pipeline: dict[str, Any] | None) -> str:
    if not pipeline:
        return ""
    stage = (pipeline.get("stage") or {}).get("name")
    action = (pipeline.get("action") or {}).get("name")
    parts = [
        f"pipeline {pipeline.get('pipelineName')}",
        f"stage {stage}" if stage else "",
        f"action {action}" if action else "",
        f"execution {pipeline.get('pipelineExecutionId')}",
    ]
    return ", ".join(part for part in parts if part)


def _pipeline_name(pipeline: dict[str, Any] | None) -> str:
    return str((pipeline or {}).get("pipelineName") or "a pipeline")


def _esc(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
