"""The "approval needed" message: plain text for SNS, Slack-compatible JSON for a webhook.

Both say the same thing: what is asked, of whom, until when, the approve/reject links of
each approver given as an exact ARN, and the CLI commands. Links are bearer capabilities
(one use each), so the message is sent once and kept nowhere: not in the run's item, not
in the logs. A webhook URL is a secret too (Slack's are): errors never name it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from orchestrator import aws
from orchestrator.services import post_json
from orchestrator.targets import RoleError, as_whom
from orchestrator.text import format_instant

if TYPE_CHECKING:
    from orchestrator.approval.links import Button, Link
    from orchestrator.services import ServiceClients
    from orchestrator.targets import AwsTarget

MAX_BUTTON_ROWS = 20  # Slack allows 50 blocks per message; each approver takes two


@dataclass(frozen=True)
class Notice:
    """What the message is about."""

    run_id: str
    step: str
    message: str
    approvers: list[str]
    required: int
    expires: float | None = None
    links: list[Link] = field(default_factory=list)
    pipeline: str | None = None
    groups: dict[str, list[str]] | None = None
    """Approver groups by name (then `required_by_group` says how many of each)."""
    required_by_group: dict[str, int] | None = None
    on_timeout: str = "reject"
    """What happens when `expires` passes without a decision: "reject" or "approve"."""
    buttons: list[Button] = field(default_factory=list)
    """Slack interactive buttons (the step's `slack_buttons`): shown instead of the links."""


def subject(notice: Notice) -> str:
    """An SNS subject: printable ASCII, one line, under 100 characters."""
    raw = f"Approval needed: step '{notice.step}' of run {notice.run_id}"
    clean = "".join(c if 32 <= ord(c) < 127 else "?" for c in raw)
    return clean[:99]


def text(notice: Notice) -> str:
    """The plain-text message (SNS), also the webhook's fallback `text`."""
    where = f" of pipeline {notice.pipeline}" if notice.pipeline else ""
    needed = f"{notice.required} approval{'s' if notice.required != 1 else ''}"
    lines = [
        f"Approval needed: {notice.message}",
        f"Run {notice.run_id}{where}, step '{notice.step}': {needed} from "
        f"{', '.join(notice.approvers)}.",
    ]
    if notice.groups:
        counts = notice.required_by_group or {}
        each = [f"{counts.get(g, 1)} from {g} ({', '.join(p)})" for g, p in notice.groups.items()]
        needs = ", ".join(each)
        lines[1] = f"Run {notice.run_id}{where}, step '{notice.step}': {needs} (one group each)."
    if notice.expires is not None:
        lines.append(f"Decide before {_when(notice.expires)}.")
        lines.append(
            "Without a decision by then, the step is approved by timeout."
            if notice.on_timeout == "approve"
            else "Without enough approvals by then, the gate fails."
        )
    if notice.links:
        lines.append("")
        for link in notice.links:
            lines.append(f"{link.decision.capitalize()} as {link.principal}: {link.url}")
    lines += ["", "Or with the CLI, as your AWS identity:", *_commands(notice)]
    return "\n".join(lines)


def slack(notice: Notice) -> dict[str, Any]:
    """The webhook body: Slack's `text` + `blocks` (also read by most chat webhooks)."""
    context = f"Run `{_esc(notice.run_id)}`"
    if notice.pipeline:
        context += f" of pipeline *{_esc(notice.pipeline)}*"
    context += f" · {notice.required} of {_esc(', '.join(notice.approvers))}"
    if notice.expires is not None:
        context += f" · decide before {_when(notice.expires)}"
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": f"Approval needed: {notice.step}"[:150]},
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": _esc(notice.message)[:3000]}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": context[:3000]}]},
    ]
    if notice.buttons:
        # Slack posts a click to the endpoint's /slack path, signed: the clicker is proven
        # there (`slack:<user id>`), so one pair of buttons serves every approver.
        blocks.append({"type": "actions", "elements": [_action(b) for b in notice.buttons]})
        notice = replace(notice, links=[])
    by_principal: dict[str, list[Link]] = {}
    for link in notice.links:
        by_principal.setdefault(link.principal, []).append(link)
    for principal, links in list(by_principal.items())[:MAX_BUTTON_ROWS]:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _esc(principal)}})
        blocks.append({"type": "actions", "elements": [_button(link) for link in links]})
    commands = "\n".join(f"`{_esc(c.strip())}`" for c in _commands(notice))
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": commands}]})
    return {"text": _esc(text(notice)), "blocks": blocks}


def send(
    notice: Notice,
    sns_topic: str | None,
    webhook: str | None,
    services: ServiceClients,
    timeout: float,
    sns_target: AwsTarget | None = None,
) -> list[str]:
    """Publish to the topic (as `sns_target`'s role, in its region, when given) and post to
    the webhook; returns what failed (empty: all sent)."""
    errors: list[str] = []
    if sns_topic:
        from botocore.exceptions import BotoCoreError, ClientError

        fifo: dict[str, Any] = {}
        if sns_topic.endswith(".fifo"):  # FIFO topics need a group; the id dedupes too
            fifo["MessageGroupId"] = notice.run_id
            fifo["MessageDeduplicationId"] = f"{notice.run_id}:{notice.step}"[:128]
        try:
            services.aws("sns", target=sns_target).publish(
                TopicArn=sns_topic, Subject=subject(notice), Message=text(notice), **fifo
            )
        except RoleError as exc:
            errors.append(f"sns: {exc}")
        except (ClientError, BotoCoreError) as exc:
            errors.append(f"sns: {aws.describe(exc)}{as_whom(sns_target)}")
    if webhook:
        error = post_json(services.http, webhook, slack(notice), timeout)
        if error is not None:
            errors.append(f"webhook: {error}")
    return errors


def _commands(notice: Notice) -> list[str]:
    base = f"{notice.run_id} --step {notice.step}"
    return [
        f'  orchestrator approve {base} --comment "..."',
        f'  orchestrator reject {base} --comment "why"',
    ]


def _button(link: Link) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": link.decision.capitalize()},
        "url": link.url,
        "style": "primary" if link.decision == "approve" else "danger",
    }
    return button


def _action(button: Button) -> dict[str, Any]:
    """An interactive button: `action_id` is the decision, `value` the signed claim."""
    action: dict[str, Any] = {
        "type": "button",
        "action_id": button.decision,
        "text": {"type": "plain_text", "text": button.decision.capitalize()},
        "value": button.value,
        "style": "primary" if button.decision == "approve" else "danger",
    }
    if button.decision == "reject":  # one click fails the gate: ask first
        action["confirm"] = {
            "title": {"type": "plain_text", "text": "Reject?"},
            "text": {"type": "plain_text", "text": "The gate fails at its next check."},
            "confirm": {"type": "plain_text", "text": "Reject"},
            "deny": {"type": "plain_text", "text": "Cancel"},
            "style": "danger",
        }
    return action


def _esc(value: str) -> str:
    """Slack mrkdwn escaping: &, < and > only."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _when(epoch: float) -> str:
    return format_instant(epoch, "minutes")
