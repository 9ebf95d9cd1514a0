"""What the approval step needs at notify time besides `ctx.services` and `ctx.claim`.

The endpoint's base URL and the signing key's secret ARN come from the `Settings` the
function was built with: `handler.build_app` installs them here, once per process (the step
kinds are defined before any settings exist, and `Services` carries clients only). Tests
install their own with `use()`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Runtime:
    """Where links point and what signs them (None: send no links)."""

    base_url: str | None = None
    secret_arn: str | None = None


_installed = Runtime()
_override: Runtime | None = None


def install(runtime: Runtime) -> None:
    """The runtime of this process, from the settings the app was built with."""
    global _installed  # noqa: PLW0603 - the one per-process value, like handler._app
    _installed = runtime


def use(runtime: Runtime | None) -> None:
    """Override the installed runtime (tests); None goes back to it."""
    global _override  # noqa: PLW0603 - the one per-process override, like handler.use()
    _override = runtime


def current() -> Runtime:
    """The override, else the installed runtime (no links until an app installs one)."""
    return _override if _override is not None else _installed
