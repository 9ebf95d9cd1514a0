"""The job context the handler uses: each part adds its own run-context documents.

Parts (one module each): `pipeline` (`pipeline_context.PipelineContext`, from
GetJobDetails), `artifacts` (`artifacts.ArtifactContext`: input artifacts read with the job's
credentials; output artifacts written on success).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.definition import GateDefinition
    from orchestrator.event import Job
    from orchestrator.model import RunState
    from orchestrator.ports import JobContext


class CompositeJobContext:
    """JobContext made of parts, asked in order."""

    def __init__(self, parts: list[JobContext]) -> None:
        self._parts = parts

    def gather(self, job: Job, definition: GateDefinition, state: RunState) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for part in self._parts:
            found.update(part.gather(job, definition, state))
        return found

    def finish(self, job: Job, definition: GateDefinition, state: RunState) -> None:
        for part in self._parts:
            part.finish(job, definition, state)

    def identify(self, job: Job) -> dict[str, Any] | None:
        for part in self._parts:
            found = part.identify(job)
            if found is not None:
                return found
        return None
