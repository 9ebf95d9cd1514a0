"""Who may decide: identities, and the approver patterns they are matched against.

An identity is proven at decision time by one of the ways in:

    arn:...                     the caller's IAM identity, from STS GetCallerIdentity (the CLI)
    email:alice@example.com     a verified e-mail address from an OIDC sign-in (the page)
    oidc:<issuer>#<sub>         an OIDC subject from a sign-in (the page)
    slack:U0123ABCD             the user of a signed Slack button click

An approver pattern names one identity, in the same forms. `*` matches any run of characters
in ARN patterns (nothing else is special; case-sensitive) and as the whole local part of an
e-mail pattern, `email:*@example.com`; `oidc:` and `slack:` patterns are exact. E-mail
addresses compare case-insensitively (they are recorded in lower case). An identity only
ever matches a pattern of its own form.

Assumed-role sessions stay whole, `arn:aws:sts::111122223333:assumed-role/Deployers/alice`:
the session name is what tells two people of one role apart (IAM Identity Center puts the
user name there), so two sessions are two distinct approvers. Such a session also matches
patterns written for its role, `arn:aws:iam::111122223333:role/Deployers` (with or without
the role's path: role names are unique in an account whatever their path).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

RESERVED_PREFIX = "~"
"""Keys of the decisions map that are not principals (e.g. the notification claim)."""

_ASSUMED_ROLE = re.compile(
    r"arn:(?P<partition>[^:]+):sts::(?P<account>\d+):assumed-role/(?P<role>[^/]+)/.+"
)
_ROLE = re.compile(r"arn:(?P<partition>[^:]+):iam::(?P<account>\d+):role/(?:.*/)?(?P<role>[^/]+)")


FORMS = ("arn", "email", "oidc", "slack")
"""The identity forms, by prefix (`arn:...`, `email:...`, `oidc:...`, `slack:...`)."""

_EMAIL = re.compile(r"[^@\s*]+@[^@\s*]+")
_EMAIL_PATTERN = re.compile(r"(?:\*|[^@\s*]+)@[^@\s*]+")
_OIDC = re.compile(r"https?://[^#\s*]+#[^\s*]+")
_SLACK = re.compile(r"[UW][A-Z0-9]{2,30}")
_PERSON_TRIGGERS = ("StartPipelineExecution", "CreatePipeline", "ManualRollback")
"""Trigger types whose detail names the caller who started the execution."""


def form(identity: str) -> str | None:
    """The identity's form (`arn`, `email`, `oidc`, `slack`), or None for none of them."""
    prefix = identity.strip().partition(":")[0]
    return prefix if prefix in FORMS and ":" in identity else None


def normalize(identity: str) -> str:
    """The identity as recorded: surrounding space removed, an IAM role's path dropped, an
    e-mail address in lower case."""
    identity = identity.strip()
    if form(identity) == "email":
        return identity.lower()
    role = _ROLE.fullmatch(identity)
    if role is not None and "*" not in identity:
        return f"arn:{role['partition']}:iam::{role['account']}:role/{role['role']}"
    return identity


def approver_error(pattern: str) -> str | None:
    """Why `pattern` cannot name approvers (None when it can)."""
    kind, _, rest = pattern.partition(":")
    if pattern != pattern.strip() or form(pattern) is None:
        return "use arn:..., email:..., oidc:<issuer>#<sub> or slack:<user id>"
    if kind == "email" and not _EMAIL_PATTERN.fullmatch(rest):
        return "an e-mail address, or *@domain for anyone at that domain"
    if kind == "oidc" and not _OIDC.fullmatch(rest):
        return "oidc:<issuer URL>#<subject>, exactly (no '*')"
    if kind == "slack" and not _SLACK.fullmatch(rest):
        return "slack:<Slack user id>, e.g. slack:U0123ABCD (no '*')"
    return None


def aliases(principal: str) -> list[str]:
    """The names a principal answers to: itself and, for a role session, its role."""
    principal = normalize(principal)
    names = [principal]
    session = _ASSUMED_ROLE.fullmatch(principal)
    if session is not None:
        names.append(f"arn:{session['partition']}:iam::{session['account']}:role/{session['role']}")
    return names


def is_exact(pattern: str) -> bool:
    """True for an approver given as one identity (links are minted only for those)."""
    return "*" not in pattern and not pattern.startswith(RESERVED_PREFIX)


def matches(principal: str, patterns: Iterable[str]) -> bool:
    """Whether `principal` is one of the approvers `patterns` describe."""
    if not principal or principal.startswith(RESERVED_PREFIX):
        return False
    kind = form(principal)
    if kind is None or (kind == "email" and not _EMAIL.fullmatch(principal[6:])):
        return False
    names = aliases(principal)
    for written in patterns:
        pattern = normalize(written)
        if form(pattern) != kind:
            continue
        if kind == "arn":
            compiled = _compile(pattern)
            if any(compiled.fullmatch(name) for name in names):
                return True
        elif kind == "email" and pattern.startswith("email:*@"):
            if names[0].endswith(pattern[7:]) and "*" not in names[0]:
                return True
        elif "*" not in pattern and names[0] == pattern:
            return True
    return False


def first_match(identities: Iterable[str], patterns: Iterable[str]) -> str | None:
    """The first of one person's proven identities that `patterns` allow (e.g. an OIDC
    sign-in proves `oidc:<issuer>#<sub>` and, when verified, `email:<address>`)."""
    patterns = list(patterns)
    return next((normalize(i) for i in identities if matches(i, patterns)), None)


def initiator_identities(trigger_type: str | None, detail: str | None) -> list[str]:
    """The identities of whoever started a pipeline execution, from its trigger.

    Only a start by a caller names a person (`StartPipelineExecution`, `CreatePipeline`,
    `ManualRollback`: the detail is the caller's ARN). An assumed-role session whose name is
    an e-mail address (IAM Identity Center's usual form) also names that `email:` identity.
    A detail that is an e-mail address maps to `email:`. Anything else (a webhook, a source
    change, an EventBridge rule, a rollback by CodePipeline) names nobody: an empty list.
    """
    detail = (detail or "").strip()
    if trigger_type not in _PERSON_TRIGGERS or not detail:
        return []
    if detail.startswith("arn:") and (":iam::" in detail or ":sts::" in detail):
        found = [normalize(detail)]
        session = _ASSUMED_ROLE.fullmatch(detail)
        name = detail.rsplit("/", 1)[-1] if session is not None else ""
        if _EMAIL.fullmatch(name):
            found.append(f"email:{name.lower()}")
        return found
    if _EMAIL.fullmatch(detail):
        return [f"email:{detail.lower()}"]
    return []


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)
