"""The seams between the tick and the outside world, as Protocols.

Production implementations: `orchestrator.store.dynamodb.DynamoRunStore` (RunStore),
`orchestrator.reporter.CodePipelineReporter` (Reporter), `orchestrator.job_context`
(JobContext: pipeline context and artifacts) and `orchestrator.sources.DefinitionSources`
(DefinitionSource: referenced gates). Unit tests use honest in-memory fakes (tests/fakes.py).
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from orchestrator.definition import GateDefinition
    from orchestrator.event import Job
    from orchestrator.model import Answer, Control, RunRecord, RunState, RunStatus, RunSummary
    from orchestrator.reference import Fetched, GateRef


class RunStore(Protocol):
    """Where runs live."""

    def load(self, run_id: str) -> RunRecord | None:
        """The run, read consistently; None if unknown. Raises StoreUnavailable."""
        ...

    def save(
        self, record: RunRecord, expected_version: int | None, *, clear_cancel: bool = False
    ) -> None:
        """Write the run if its stored version is `expected_version` (None: must not exist);
        `clear_cancel`: remove its cancel request too (a retry resumed a cancelled run).

        Raises ConflictError when another writer got there first, StoreUnavailable on faults.
        """
        ...

    def put_definition(self, key: str, document: str, expires_at: int) -> None:
        """Keep a pinned definition (canonical JSON) under its sha256 `key` until
        `expires_at` (epoch seconds) at least. Raises StoreUnavailable."""
        ...

    def load_definition(self, key: str) -> str | None:
        """The pinned definition stored under `key`; None if absent. Raises StoreUnavailable."""
        ...

    def request_cancel(self, run_id: str, who: str) -> bool:
        """Mark a running run for cancellation; False if it is unknown or already over."""
        ...

    def record_decision(
        self, run_id: str, step: str, principal: str, decision: dict[str, Any]
    ) -> bool:
        """Record one principal's decision on a step of a running run, at most once.

        False if the run is unknown or over, or this principal already decided this step
        (with another value: finding exactly this value there, e.g. when the write was
        applied but its response lost, is True).
        """
        ...

    def claim(self, run_id: str, step: str, key: str, value: dict[str, Any]) -> bool:
        """Record a step's once-per-key claim on a running run (`StepContext.claim`), with
        `record_decision`'s semantics, in the run's claims rather than its decisions."""
        ...

    def link_execution(self, key: str, run_id: str, expires_at: int) -> str:
        """Name `run_id` the run of a pipeline execution's action (`key`), unless one is
        named already; the run named (resume on retry). Raises StoreUnavailable."""
        ...

    def relink_execution(self, key: str, run_id: str, expires_at: int) -> None:
        """Name `run_id` the run of `key` from now on (a retry that starts over)."""
        ...

    def record_control(self, run_id: str, control: Control) -> bool:
        """Add an operator's control to a running run's audit (once; never by a tick):
        False if the run is unknown or over."""
        ...

    def recent(self, status: RunStatus | None, limit: int) -> list[RunSummary]:
        """Most recently updated runs, newest first, optionally in one status (no scans)."""
        ...


class JobContext(Protocol):
    """Adds run-context documents that come from the job, not from steps (once per run)."""

    def gather(self, job: Job, definition: GateDefinition, state: RunState) -> dict[str, Any]:
        """Documents to add to `state.context` (e.g. "pipeline", "artifacts"); {} if none.

        Called before each advance; return only what is missing. Raises TerminalError when
        the job cannot go on (e.g. an artifact is missing), TransientError to retry later.
        """
        ...

    def finish(self, job: Job, definition: GateDefinition, state: RunState) -> None:
        """Called once a run succeeded, before the final answer (e.g. output artifacts)."""
        ...

    def identify(self, job: Job) -> dict[str, Any] | None:
        """The job's pipeline document (GetJobDetails' pipelineContext: pipeline, stage,
        action, execution), for a job without a token (None: not known here). Raises
        TransientError to retry later."""
        ...


class DefinitionSource(Protocol):
    """Reads referenced gate definitions (artifact files, S3 objects, SSM parameters)."""

    def fetch(self, job: Job, ref: GateRef) -> Fetched:
        """The document's bytes and version. Raises DefinitionError (ConfigurationError)
        naming the reference when it cannot be read, TransientError to retry later."""
        ...


class NoJobContext:
    """The JobContext that adds nothing."""

    def gather(self, job: Job, definition: GateDefinition, state: RunState) -> dict[str, Any]:
        return {}

    def finish(self, job: Job, definition: GateDefinition, state: RunState) -> None:
        return None

    def identify(self, job: Job) -> dict[str, Any] | None:
        return None


class Delivery(enum.Enum):
    """What CodePipeline made of an answer."""

    ACCEPTED = "ACCEPTED"
    ALREADY_ANSWERED = "ALREADY_ANSWERED"
    JOB_NOT_FOUND = "JOB_NOT_FOUND"


class Reporter(Protocol):
    """Answers jobs."""

    def report(self, job_id: str, answer: Answer) -> Delivery:
        """Send the answer; raise ReporterUnavailable when CodePipeline cannot be reached."""
        ...
