"""What the approval step needs at notify time besides `ctx.services`.

The runs store (to claim the notification exactly once), the endpoint's base URL and the
signing key's secret ARN come from `Settings`, read when a step first notifies and cached
per distinct value: the step kinds are built before any settings exist, and `Services`
carries AWS clients only. Tests install their own with `use()`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator.ports import RunStore


@dataclass(frozen=True)
class Runtime:
    """The store, and where links point and what signs them (None: send no links)."""

    store: RunStore
    base_url: str | None = None
    secret_arn: str | None = None


_override: Runtime | None = None
_built: dict[tuple[str, str | None, str | None, str | None], Runtime] = {}
_lock = threading.Lock()


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
    key = (
        settings.table_name,
        settings.region,
        settings.approval_url,
        settings.approval_secret_arn,
    )
    with _lock:
        found = _built.get(key)
        if found is None:
            from state.dynamodb import DynamoRunStore, bind_model

            store = DynamoRunStore(bind_model(settings.table_name, settings.region))
            found = _built[key] = Runtime(
                store, settings.approval_url, settings.approval_secret_arn
            )
        return found
