"""`lock`: take a named lease for this pipeline execution, waiting while another holds it.

    {"name": "take-prod", "lock": {"name": "prod-eu", "mode": "sequential", "hold": "4h"}}
    {"name": "take-prod", "lock": "prod-eu"}            (sequential, held at most 1h)

The lease is owned by the pipeline execution (`pipelineExecutionId`, from the run context's
`pipeline` document: GetJobDetails, once per run), not by the gate: it outlives the gate, so
the deployment actions after it are covered, until an `unlock` step of the same execution
(in a later gate) ends it, or `hold` has passed since it was taken, or an operator forces it
(`orchestrator unlock NAME --force --reason ...`). An execution that holds the lock already
is done at once (and its lease renewed for `hold`).

While another execution holds it, the step waits in line: `sequential` in order of arrival;
`latest` takes the place of everyone waiting, who fail "superseded by execution X". A waiter
that stops polling (its gate failed or timed out) leaves the line after `max(10m, 4 x every)`
without a poll. The summary says where the step stands:
`waiting for prod-eu: held by execution 1b2c… since 09:14:02Z, position 2 of 3`.

Result: `{"lock", "execution", "since", "expires"}` (instants in RFC 3339). The queue and the
lease live in the runs table (`orchestrator.governance`, race-safe conditional writes); a
store that cannot be reached is tried again at the next poll.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, field_validator

from orchestrator.durations import format_duration
from orchestrator.exceptions import FailureType, TransientError
from orchestrator.governance import (
    Claimant,
    Held,
    Lease,
    LockMode,
    Superseded,
    Waiting,
    name_error,
)
from orchestrator.steps._base import Done, Duration, Failed, Outcome, Pending, Step, StepContext
from orchestrator.text import format_instant

if TYPE_CHECKING:
    from orchestrator.model import StepState

MAX_HOLD = 30 * 86400.0
MIN_GRACE = 600.0


def _shorthand(value: object) -> object:
    """`"lock": "prod-eu"` is `"lock": {"name": "prod-eu"}`."""
    return {"name": value} if isinstance(value, str) else value


def check_lock_name(value: str) -> str:
    """A lock's name, or a `${...}` template of one (checked again once rendered)."""
    why = None if "${" in value else name_error(value)
    if why is not None:
        raise ValueError(why)
    return value


class LockSpec(BaseModel):
    """Which lock, how to wait for it, how long a lease lasts at most."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    mode: LockMode = LockMode.SEQUENTIAL
    hold: Duration = 3600.0

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_lock_name(value)

    @field_validator("hold")
    @classmethod
    def _hold(cls, value: float) -> float:
        if value > MAX_HOLD:
            raise ValueError(f"at most {format_duration(MAX_HOLD)}")
        return value


class LockStep(Step):
    """Hold `lock.name` for this pipeline execution; wait in line while another holds it."""

    kind: ClassVar[str] = "lock"
    default_every: ClassVar[float] = 30.0

    lock: Annotated[LockSpec, BeforeValidator(_shorthand)]

    def reads_pipeline(self) -> bool:
        return True  # the lease belongs to the pipeline execution

    def poll(self, state: StepState, ctx: StepContext) -> Outcome:
        spec = self.lock
        claimant = claimant_of(self.name, ctx)
        if isinstance(claimant, Failed):
            return claimant
        assert ctx.services is not None, "the engine was run without services"
        grace = max(MIN_GRACE, 4 * self.interval)
        try:
            verdict = ctx.services.governance.acquire(
                spec.name, claimant, spec.mode, spec.hold, grace, ctx.now
            )
        except TransientError as exc:
            return Pending(f"{exc}; retrying")  # the message names the lock
        if isinstance(verdict, Superseded):
            return Failed(
                f"step '{self.name}': superseded by execution {verdict.by} "
                f"(waiting for {spec.name}, mode latest)"
            )
        if isinstance(verdict, Held):
            return Done(_result(spec.name, verdict.lease))
        return Pending(waiting_detail(spec.name, verdict))


def claimant_of(step: str, ctx: StepContext) -> Claimant | Failed:
    """This run's pipeline execution, from the run context's `pipeline` document."""
    pipeline: Any = ctx.run.get("pipeline")
    execution = pipeline.get("pipelineExecutionId") if isinstance(pipeline, dict) else None
    if not isinstance(execution, str) or not execution:
        return Failed(
            f"step '{step}': no pipeline execution id (GetJobDetails gave no "
            "pipelineContext.pipelineExecutionId): a lock belongs to a pipeline execution",
            FailureType.CONFIGURATION_ERROR,
        )
    name = pipeline.get("pipelineName")
    return Claimant(execution, ctx.run_id, name if isinstance(name, str) else None)


def waiting_detail(lock: str, waiting: Waiting) -> str:
    """`waiting for prod-eu: held by execution X since 09:14:02Z, position 2 of 3`."""
    where = f"position {waiting.position} of {waiting.waiting}"
    holder = waiting.holder
    if holder is not None:
        by = f"execution {holder.execution}" + (f" ({holder.pipeline})" if holder.pipeline else "")
        return f"waiting for {lock}: held by {by} since {_clock(holder.since)}, {where}"
    first = waiting.first
    ahead = f"execution {first.execution} is first in line" if first else "free"
    return f"waiting for {lock}: {ahead}, {where}"


def _result(lock: str, lease: Lease) -> dict[str, Any]:
    return {
        "lock": lock,
        "execution": lease.execution,
        "since": format_instant(lease.since, "iso"),
        "expires": format_instant(lease.expires, "iso"),
    }


def _clock(at: float) -> str:
    return format_instant(at, "time")
