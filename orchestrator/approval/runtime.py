"""What the approval step needs at notify time besides `ctx.services` and `ctx.claim`.

The endpoint's base URL and the signing key's secret ARN come from `Settings`, read when a
step notifies (once per step): the step kinds are built before any settings exist, and
`Services` carries AWS clients only. Tests install their own with `use()`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Runtime:
    """Where links point and what signs them (None: send no links)."""

    base_url: str | None = None
    secret_arn: str | None = None


_override: Runtime | None = None


def use(runtime: Runtime | None) -> None:
    """Install a runtime (tests); None goes back to the one built from settings."""
    global _override  # noqa: PLW0603 - the one per-process override, like handler.use()
    _override = runtime


def current() -> Runtime:
    """The installed runtime, or the one the environment's settings describe."""
    if _override is not None:
        return _override
    from orchestrator.settings import Settings

    settings = Settings()  # fields come from the environment
    return Runtime(settings.approval_url, settings.approval_secret_arn)
