"""`wait`: done once a fixed time has passed since the step started (a bake timer)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from orchestrator.durations import format_duration
from orchestrator.steps._base import Done, Duration, Outcome, Pending, Step, StepContext
from orchestrator.text import format_instant

if TYPE_CHECKING:
    from orchestrator.model import StepState


class WaitStep(Step):
    """`{"name": "bake", "wait": "10m"}`"""

    kind: ClassVar[str] = "wait"
    not_a_guard: ClassVar[str | None] = "a wait is a timer, not a check"

    wait: Duration

    def poll(self, state: StepState, ctx: StepContext) -> Outcome:
        assert state.started_at is not None
        end = state.started_at + self.wait
        if ctx.now >= end:
            return Done({"waited_seconds": round(ctx.now - state.started_at, 3)})
        return Pending(
            detail=f"waiting {format_duration(self.wait)} (until {_clock(end)})",
            next_check=end,
            eta=end,
        )


def _clock(at: float) -> str:
    return format_instant(at, "time")
