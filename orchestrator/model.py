"""The run's persisted state and the answers given to CodePipeline, as plain pydantic models.

These are data only: the engine (`engine.py`) decides how they change, the store
(`orchestrator/store/`) persists them, the reporter sends `Answer`s.
"""

from __future__ import annotations

import enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from orchestrator.exceptions import FailureType  # noqa: TC001 - pydantic needs it at run time
from orchestrator.text import clip


class RunStatus(enum.Enum):
    """Where a run is: RUNNING until it SUCCEEDED or FAILED."""

    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class Failure(BaseModel):
    """Why a run (or a step) failed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: FailureType
    message: str


class NodeStatus(enum.Enum):
    """Where a step, group, guard or hook is."""

    PENDING = "pending"  # not reached yet
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"  # its `when` was false (or a hook not run after a cancel)
    ABANDONED = "abandoned"  # its group ended without it (a parallel sibling failed, `any` won)

    @property
    def settled(self) -> bool:
        return self not in (NodeStatus.PENDING, NodeStatus.RUNNING)


class StepState(BaseModel):
    """What one node (step, group, guard, hook) has done so far. `memo` is the step kind's own
    persisted scratch space."""

    model_config = ConfigDict(extra="forbid")

    name: str = ""
    kind: str = ""
    status: NodeStatus = NodeStatus.PENDING
    depth: int = 0
    """How many groups the node is in (for drawing the tree)."""
    started_at: float | None = None
    finished_at: float | None = None
    polls: int = 0
    next_check: float | None = None
    detail: str = ""
    eta: float | None = None
    result: Any = None
    memo: dict[str, Any] = Field(default_factory=dict)
    error: Failure | None = None
    """Why it failed (an advisory step's failure stays here; a guard's last violation)."""
    passing: bool | None = None
    """A guard's verdict at its last poll that observed anything (None: not polled yet)."""


class RunState(BaseModel):
    """The whole progress of one gate run; what the engine reads and returns."""

    model_config = ConfigDict(extra="forbid")

    run_id: str
    started_at: float
    deadline: float
    status: RunStatus = RunStatus.RUNNING
    step_index: int = 0
    """The first top-level step (or group) not over yet (v1 runs kept only this)."""
    steps: list[StepState]
    """Every step and group of the definition, depth first."""
    guards: list[StepState] = Field(default_factory=list)
    hooks: list[StepState] = Field(default_factory=list)
    outputs: dict[str, str] | None = None
    failure: Failure | None = None
    failing: Failure | None = None
    """The gate failed and its on_failure hooks are running; `failure` once they are over."""
    paused: str | None = None
    """Why nothing is polled (`orchestrator pause`): 'paused by ... : reason'."""
    attempt: int = 1
    """1, then 2, 3... each time a retry of the pipeline's action resumed the run."""
    note: str | None = None
    """Said with the run's summary: how it was resumed or restarted."""
    digest: str | None = None
    """The sha256 of the definition the run started with (a retry with another restarts)."""
    undelivered: list[str] = Field(default_factory=list)
    """Notifications that could not be delivered ('failed: webhook: HTTP 500')."""
    ended_at: float | None = None
    context: dict[str, Any] = Field(default_factory=dict)
    """Run-context documents gathered once per run (pipeline, artifacts), for `${...}`."""

    @model_validator(mode="before")
    @classmethod
    def _from_v1(cls, data: Any) -> Any:
        """A run written before node states (v1: a sequence and `step_index`) gets them:
        steps before the index are done, the one at it running (failed if the run failed)."""
        if not isinstance(data, dict) or not isinstance(data.get("steps"), list):
            return data
        steps = data["steps"]
        if all(not isinstance(s, dict) or "status" in s for s in steps):
            return data
        index = int(data.get("step_index") or 0)
        failed = data.get("status") == RunStatus.FAILED.value
        upgraded: list[Any] = []
        for position, step in enumerate(steps):
            if isinstance(step, dict) and "status" not in step:
                if step.get("finished_at") is not None or position < index:
                    status = NodeStatus.DONE
                elif position == index and failed:
                    status = NodeStatus.FAILED
                elif position == index and step.get("started_at") is not None:
                    status = NodeStatus.RUNNING
                else:
                    status = NodeStatus.PENDING
                upgraded.append({**step, "status": status.value})
            else:
                upgraded.append(step)
        return {**data, "steps": upgraded}


class Control(BaseModel):
    """One operator's control of a run, as `orchestrator skip|pause|resume|retry|cancel`
    recorded it: what, on which step, by whom (the caller's identity), when, why."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action: Literal["skip", "pause", "resume", "retry", "cancel"]
    by: str
    at: float
    reason: str = ""
    step: str | None = None


class Signals(BaseModel):
    """What reaches a run from outside the tick's own writes, each held once, here.

    Written straight into the run's item (never by the tick's conditional update, so a
    write meanwhile survives) and handed to the engine with the state it advances.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    cancel_requested_by: str | None = None
    """Who asked to cancel (`orchestrator cancel`): the next tick fails the gate."""
    decisions: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Per step name, per principal: {"decision", "comment", "at"} (approvals)."""
    claims: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Per step name, per key: a step's once-per-key records (`StepContext.claim`), e.g. the
    lambda step's invocation claims and outcomes, the approval's notification."""
    controls: list[Control] = Field(default_factory=list)
    """Operators' controls (skip, pause, resume, retry, cancel), oldest first: the audit."""


class Pin(BaseModel):
    """Which definition a referenced run uses, fixed on its first tick.

    `definition` is the sha256 of the expanded definition, the key it is stored under
    (once, beside the runs: `RunStore.put_definition`); `sha256` is that of the source as
    read, what `sha256sum` says of the file. The args it was expanded with are the run
    context's `args` (in the run's state).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str
    version: str | None = None
    sha256: str
    definition: str


class AnswerKind(enum.Enum):
    """The three answers a job can get."""

    IN_PROGRESS = "IN_PROGRESS"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class Answer(BaseModel):
    """One answer to one job: PutJobSuccessResult (with or without a token) or a failure."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: AnswerKind
    run_id: str
    summary: str
    token: str | None = None
    percent: int | None = None
    outputs: dict[str, str] | None = None
    failure_type: FailureType | None = None

    def to_request(self, job_id: str) -> tuple[str, dict[str, Any]]:
        """The CodePipeline operation and its parameters for this answer."""
        if self.kind is AnswerKind.FAILED:
            assert self.failure_type is not None
            return "put_job_failure_result", {
                "jobId": job_id,
                "failureDetails": {
                    "type": self.failure_type.value,
                    "message": _clip(self.summary, 5000),
                    "externalExecutionId": self.run_id,
                },
            }
        details: dict[str, Any] = {
            "summary": _clip(self.summary, 2048),
            "externalExecutionId": self.run_id,
        }
        params: dict[str, Any] = {"jobId": job_id, "executionDetails": details}
        if self.kind is AnswerKind.IN_PROGRESS:
            assert self.token is not None
            params["continuationToken"] = self.token
            if self.percent is not None:
                details["percentComplete"] = self.percent
        else:
            details["percentComplete"] = 100
            if self.outputs:
                params["outputVariables"] = self.outputs
        return "put_job_success_result", params


class RunRecord(BaseModel):
    """A run as stored: its state plus the bookkeeping that makes ticks idempotent.

    `version` guards conditional writes; `nonce` is the part of the current continuation
    token that only the table knows (`prev_nonce`: the one this write replaced);
    `last_job_id`/`last_answer` let a repeated delivery of the job that last advanced the
    run get the very same answer again.
    """

    model_config = ConfigDict(extra="forbid")

    version: int
    nonce: str | None
    prev_nonce: str | None = None
    state: RunState
    last_job_id: str
    last_answer: Answer
    created_at: float
    updated_at: float
    expires_at: int
    signals: Signals = Field(default_factory=Signals)
    """Read with the run; never written by the tick (see Signals)."""
    pin: Pin | None = None
    """Set for a referenced gate: written with the run's first write, never changed."""

    @property
    def run_id(self) -> str:
        return self.state.run_id


class RunSummary(BaseModel):
    """A run as listed by `orchestrator runs` (what the status index projects)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    run_id: str
    status: RunStatus
    created_at: float
    updated_at: float
    summary: str


def _clip(text: str, limit: int) -> str:
    return clip(text or "-", limit)
