"""Sample `python` steps: plain functions of one `PythonContext`, shipped with the function.

    {"name": "window", "python": {"callable": "custom_steps:business_hours",
                                  "params": {"start": 9, "end": 17, "weekdays_only": true}}}
    {"name": "settle", "python": {"callable": "custom_steps:countdown", "params": {"polls": 3}}}

See docs/STEPS.md ("Your own python steps") for how to put this module in the package.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from orchestrator.steps.python import Fail, Finish, Wait

if TYPE_CHECKING:
    from orchestrator.steps.python import PythonContext


def business_hours(context: PythonContext) -> Wait | Finish | Fail:
    """Done inside the deployment window (UTC hours `start` to `end`, weekdays by default)."""
    params = context.params if isinstance(context.params, dict) else {}
    start, end = int(params.get("start", 9)), int(params.get("end", 17))
    weekdays_only = bool(params.get("weekdays_only", True))
    if not 0 <= start < end <= 24:
        return Fail(f"business_hours: invalid window {start}..{end} (hours, UTC)")
    now = datetime.fromtimestamp(context.now, UTC)
    if start <= now.hour < end and not (weekdays_only and now.weekday() >= 5):
        return Finish({"opened_at": now.isoformat().replace("+00:00", "Z")})
    opens = _next_opening(now, start, weekdays_only)
    return Wait(
        f"outside the deployment window; opens {opens:%a %H:%M}Z",
        check_again_in=(opens - now).total_seconds(),
    )


def countdown(context: PythonContext) -> Wait | Finish:
    """Done at the `polls`-th call; shows how `memo` carries state between polls."""
    wanted = int(context.params.get("polls", 3)) if isinstance(context.params, dict) else 3
    calls = int(context.memo.get("calls", 0)) + 1
    context.memo["calls"] = calls
    if calls >= wanted:
        return Finish({"calls": calls, "run": context.run_id})
    return Wait(f"call {calls} of {wanted}")


def _next_opening(now: datetime, start: int, weekdays_only: bool) -> datetime:
    day = now.replace(hour=start, minute=0, second=0, microsecond=0)
    if day <= now:
        day += timedelta(days=1)
    while weekdays_only and day.weekday() >= 5:
        day += timedelta(days=1)
    return day
