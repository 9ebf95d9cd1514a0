"""Who may decide: IAM principal ARNs, and the approver patterns they are matched against.

A principal is the ARN STS GetCallerIdentity returns (the CLI), or the exact approver ARN a
signed link was minted for (the endpoint). Approver patterns are ARNs where `*` matches any
run of characters (nothing else is special; matching is case-sensitive).

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


def normalize(arn: str) -> str:
    """The principal as recorded: surrounding space removed, an IAM role's path dropped."""
    arn = arn.strip()
    role = _ROLE.fullmatch(arn)
    if role is not None and "*" not in arn:
        return f"arn:{role['partition']}:iam::{role['account']}:role/{role['role']}"
    return arn


def aliases(principal: str) -> list[str]:
    """The names a principal answers to: itself and, for a role session, its role."""
    principal = normalize(principal)
    names = [principal]
    session = _ASSUMED_ROLE.fullmatch(principal)
    if session is not None:
        names.append(f"arn:{session['partition']}:iam::{session['account']}:role/{session['role']}")
    return names


def is_exact(pattern: str) -> bool:
    """True for an approver given as one ARN (links are minted only for those)."""
    return "*" not in pattern and not pattern.startswith(RESERVED_PREFIX)


def matches(principal: str, patterns: Iterable[str]) -> bool:
    """Whether `principal` is one of the approvers `patterns` describe."""
    if not principal or principal.startswith(RESERVED_PREFIX):
        return False
    names = aliases(principal)
    for pattern in patterns:
        compiled = _compile(normalize(pattern))
        if any(compiled.fullmatch(name) for name in names):
            return True
    return False


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)
