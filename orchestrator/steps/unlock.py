"""`unlock`: end this pipeline execution's lease on a lock (taken by a `lock` step earlier).

    {"name": "free-prod", "unlock": "prod-eu"}

Usually in a later gate of the same pipeline execution, after the deployment actions the
lease covered. It also takes the execution out of the lock's line if it still waits there
(an `unlock` among the steps run after a failure). It never fails the gate for the lock's
sake: an execution that holds no lease (it expired and another took it, an operator forced
it, or none was taken) is done all the same, and its result says so.

Result: `{"lock", "released": true|false, "held_for_seconds"?, "holder"?}`: `held_for_seconds`
when a lease ended, `holder` (the execution holding it) when another one does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import AfterValidator

from orchestrator.exceptions import TransientError
from orchestrator.steps._base import Done, Failed, Outcome, Pending, Step, StepContext
from orchestrator.steps.lock import check_lock_name, claimant_of

if TYPE_CHECKING:
    from orchestrator.model import StepState


class UnlockStep(Step):
    """End this execution's lease on the lock named by `unlock`."""

    kind: ClassVar[str] = "unlock"
    default_every: ClassVar[float] = 30.0

    unlock: Annotated[str, AfterValidator(check_lock_name)]

    def reads_pipeline(self) -> bool:
        return True  # the lease belongs to the pipeline execution

    def poll(self, state: StepState, ctx: StepContext) -> Outcome:
        claimant = claimant_of(self.name, ctx)
        if isinstance(claimant, Failed):
            return claimant
        assert ctx.services is not None, "the engine was run without services"
        try:
            release = ctx.services.governance.release(self.unlock, claimant.execution, ctx.now)
        except TransientError as exc:
            return Pending(f"{exc}; retrying")  # the message names the lock
        result: dict[str, Any] = {"lock": self.unlock, "released": release.released is not None}
        if release.released is not None:
            result["held_for_seconds"] = round(ctx.now - release.released.since, 3)
        if release.holder is not None:
            result["holder"] = release.holder.execution
        return Done(result)
