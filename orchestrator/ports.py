"""The seams between the tick and the outside world, as Protocols.

Production implementations: `state.dynamodb.DynamoRunStore` and
`orchestrator.reporter.CodePipelineReporter`. Unit tests use honest in-memory fakes.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from orchestrator.model import Answer, RunRecord, RunStatus, RunSummary


class RunStore(Protocol):
    """Where runs live."""

    def load(self, run_id: str) -> RunRecord | None:
        """The run, read consistently; None if unknown. Raises StoreUnavailable."""
        ...

    def save(self, record: RunRecord, expected_version: int | None) -> None:
        """Write the run if its stored version is `expected_version` (None: must not exist).

        Raises ConflictError when another writer got there first, StoreUnavailable on faults.
        """
        ...

    def request_cancel(self, run_id: str, who: str) -> bool:
        """Mark a running run for cancellation; False if it is unknown or already over."""
        ...

    def recent(self, status: RunStatus | None, limit: int) -> list[RunSummary]:
        """Most recently updated runs, newest first, optionally in one status (no scans)."""
        ...


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
