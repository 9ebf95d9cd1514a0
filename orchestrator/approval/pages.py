"""The endpoint's HTML pages. Every value is escaped; no script, no external resource."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

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


def _facts(claim: LinkClaim, message: str) -> str:
    rows = [
        ("Run", claim.run_id),
        ("Step", claim.step),
        ("Asked", message),
        ("Deciding as", claim.principal),
        ("Link valid until", _when(claim.expires)),
    ]
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows if v)
    return f"<dl>{items}</dl>"


def confirm(claim: LinkClaim, message: str, token: str) -> str:
    """The page a GET shows: what will be decided, and the form whose POST decides it."""
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
    intro = (
        f"<p>You are about to <strong>{_e(verb)}</strong> this step. Nothing has been "
        "recorded yet: only the button below records it, once.</p>"
    )
    return _page(f"{verb.capitalize()} step '{claim.step}'?", intro + _facts(claim, message) + form)


def recorded(claim: LinkClaim, summary: str) -> str:
    """The page after a POST that recorded the decision."""
    body = (
        f"<p>Recorded: <strong>{_e(claim.decision)}</strong> by {_e(claim.principal)}. "
        f"{_e(summary)}</p><p>The gate takes it into account at its next check. "
        "This link cannot be used again.</p>"
    )
    return _page("Decision recorded", body)


def refused(title: str, reason: str) -> str:
    """A page that explains why nothing was recorded."""
    return _page(title, f"<p>{_e(reason)}</p><p>Nothing was recorded.</p>")


def _when(epoch: float) -> str:
    return format_instant(epoch, "seconds")
