"""The `pipeline` run-context document: where in which pipeline execution the gate runs.

The job event has no pipeline name or execution id; `GetJobDetails(jobId)` does, in
`jobDetails.data.pipelineContext`:

    {"pipelineName", "stage": {"name"}, "action": {"name", "actionExecutionId"},
     "pipelineArn", "pipelineExecutionId"}

so `${pipeline.pipelineName}`, `${pipeline.stage.name}`, `${pipeline.pipelineExecutionId}`
work in step fields and `pipeline.stage.name` in outputs. It costs a CodePipeline call, so
it is made only for a definition that mentions `pipeline`, and only once per run: the
document is kept in the run state. Only `pipelineContext` is kept from the response (it
also carries the job's artifact credentials).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from orchestrator import aws, expressions
from orchestrator.exceptions import FailureType, GateFailed, TransientError

if TYPE_CHECKING:
    from mypy_boto3_codepipeline import CodePipelineClient

    from orchestrator.definition import GateDefinition
    from orchestrator.event import Job
    from orchestrator.model import RunState

KEY = "pipeline"
# `pipeline` as a top-level name of a JMESPath expression (not `steps.x.pipeline`, not 'pipeline').
_MENTION = re.compile(r"(?<![\w.'\"`@])pipeline\b")


def mentions_pipeline(definition: GateDefinition) -> bool:
    """Whether any `${...}` template or output expression reads the pipeline document, or a
    step needs it anyway (an approval's notice names the pipeline)."""
    if any(step.reads_pipeline() for step in definition.steps):
        return True
    found = [
        *(
            e
            for step in definition.steps
            for e in expressions.placeholders(step.model_dump(mode="json"))
        ),
        *definition.outputs.values(),
    ]
    return any(_MENTION.search(expression) for expression in found)


class PipelineContext:
    """JobContext part adding `pipeline` (GetJobDetails) to runs whose definition uses it."""

    def __init__(self, client: CodePipelineClient | None = None, region: str | None = None) -> None:
        self._client = client
        self._region = region

    def gather(self, job: Job, definition: GateDefinition, state: RunState) -> dict[str, Any]:
        if KEY in state.context or not mentions_pipeline(definition):
            return {}
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            details = self._codepipeline().get_job_details(jobId=job.id)
        except ClientError as exc:
            code = aws.describe(exc)
            if aws.classify(exc) is aws.AwsFault.DENIED:
                raise GateFailed(
                    f"job {job.id}: GetJobDetails refused ({code}); the function's role needs "
                    "codepipeline:GetJobDetails on '*'",
                    FailureType.PERMISSION_ERROR,
                ) from None
            # Anything else, even "not found", is CodePipeline's: the job id is its own.
            raise TransientError(f"job {job.id}: GetJobDetails failed ({code})") from None
        except BotoCoreError as exc:
            reason = aws.describe(exc)
            raise TransientError(f"job {job.id}: GetJobDetails failed ({reason})") from None
        found = details.get("jobDetails", {}).get("data", {}).get("pipelineContext")
        return {KEY: dict(found) if isinstance(found, dict) else {}}

    def finish(self, job: Job, definition: GateDefinition, state: RunState) -> None:
        return None

    def _codepipeline(self) -> CodePipelineClient:
        if self._client is None:
            from orchestrator.reporter import codepipeline_client

            self._client = codepipeline_client(self._region)
        return self._client
