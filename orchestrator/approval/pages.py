"""The endpoint's HTML pages. Every value is escaped; no script, no external resource."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from orchestrator.approval.decide import MAX_COMMENT_CHARS
from orchestrator.approval.links import TOKEN_PARAM
from orchestrator.text import format_instant

if TYPE_CHECKING:
    from orchestrator.approval.links import LinkClaim

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;"
    "line-height:1.5}dt{font-weight:600}dd{margin:0 0 .5rem 0;word-break:break-all}"
    "textarea{width:100%;min-height:5rem}button{font-size:1rem;padding:.5rem 1.5rem}"
    ".approve{background:#1a7f37;color:#fff}.reject{background:#cf222e;color:#fff}"
    "a.button{display:inline-block;font-size:1rem;padding:.5rem 1.5rem;text-decoration:none;"
    "border-radius:3px}pre{background:#f6f8fa;padding:.5rem;white-space:pre-wrap}"
)


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex, nofollow">'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head>"
        f"<body><h1>{_e(title)}</h1>{body}</body></html>"
    )


def _facts(claim: LinkClaim, message: str, who: tuple[str, str] | None = None) -> str:
    rows = [
        ("Run", claim.run_id),
        ("Step", claim.step),
        ("Asked", message),
        who or ("", ""),
        ("Link valid until", _when(claim.expires)),
    ]
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows if k and v)
    return f"<dl>{items}</dl>"


def confirm(claim: LinkClaim, message: str, token: str, decider: str | None = None) -> str:
    """The page a GET shows to someone who may decide: what will be decided, as whom, and
    the form whose POST decides it. `decider`: the signed-in identity (None: the link's
    principal, for a bearer link)."""
    verb = claim.decision
    needs = "required" if verb == "reject" else ""
    label = "Why? (required)" if verb == "reject" else "Comment (optional)"
    form = (
        '<form method="post">'
        f'<input type="hidden" name="{_e(TOKEN_PARAM)}" value="{_e(token)}">'
        f'<p><label for="comment">{_e(label)}</label><br>'
        f'<textarea id="comment" name="comment" maxlength="{MAX_COMMENT_CHARS}" {needs}>'
        "</textarea></p>"
        f'<p><button class="{_e(verb)}" type="submit">{_e(verb.capitalize())}</button></p>'
        "</form>"
    )
    signed_in = (
        f'<p class="who">Signed in as <strong>{_e(decider)}</strong>.</p>' if decider else ""
    )
    intro = (
        f"<p>You are about to <strong>{_e(verb)}</strong> this step. Nothing has been "
        "recorded yet: only the button below records it, once.</p>"
    )
    who = ("Deciding as", decider or claim.principal)
    title = f"{verb.capitalize()} step '{claim.step}'?"
    return _page(title, signed_in + intro + _facts(claim, message, who) + form)


def sign_in(claim: LinkClaim, message: str, token: str, method: str = "GET") -> str:
    """The step a link invites to decide, for someone not signed in: a decision counts for
    the identity proven by signing in, not for whoever holds the link."""
    login = f"/login?{urlencode({TOKEN_PARAM: token})}"
    lead = (
        "<p>Nothing was recorded: sign in first.</p>"
        if method == "POST"
        else "<p>Sign in to decide. Nothing has been recorded yet.</p>"
    )
    body = (
        lead + _facts(claim, message) + "<p>Your decision counts for the identity you sign in "
        "with, whoever this link was sent to.</p>"
        f'<p><a class="button {_e(claim.decision)}" href="{_e(login)}">Sign in to decide</a></p>'
    )
    return _page(f"Step '{claim.step}' waits for a decision", body)


def not_configured(claim: LinkClaim, message: str) -> str:
    """The step, when this endpoint has no sign-in: decide with the CLI."""
    command = f"orchestrator {claim.decision} {claim.run_id} --step {claim.step}"
    if claim.decision == "reject":
        command += " --comment WHY"
    body = (
        _facts(claim, message) + "<p>Sign-in is not configured on this approval endpoint, so "
        "nothing can be decided from a link. Decide with the CLI, as your AWS identity:</p>"
        f"<pre>{_e(command)}</pre><p>Nothing was recorded.</p>"
    )
    return _page(f"Step '{claim.step}' waits for a decision", body)


def recorded(claim: LinkClaim, summary: str, decider: str | None = None) -> str:
    """The page after a POST that recorded the decision."""
    body = (
        f"<p>Recorded: <strong>{_e(claim.decision)}</strong> by {_e(decider or claim.principal)}. "
        f"{_e(summary)}</p><p>The gate takes it into account at its next check. "
        "Each approver decides a step once.</p>"
    )
    return _page("Decision recorded", body)


def refused(title: str, reason: str) -> str:
    """A page that explains why nothing was recorded."""
    return _page(title, f"<p>{_e(reason)}</p><p>Nothing was recorded.</p>")


def _when(epoch: float) -> str:
    return format_instant(epoch, "seconds")
