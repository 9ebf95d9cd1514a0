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

A definition whose approval excludes the initiator of the pipeline execution (or that
reads `pipeline.trigger`) also gets `pipeline.trigger`, `{"type", "detail"}`: the
execution's `trigger.triggerType` and `trigger.triggerDetail` from
`GetPipelineExecution(pipelineName, pipelineExecutionId)`, asked once, with the rest.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from orchestrator import aws
from orchestrator.exceptions import FailureType, GateFailed, TransientError

if TYPE_CHECKING:
    from mypy_boto3_codepipeline import CodePipelineClient

    from orchestrator.definition import GateDefinition
    from orchestrator.event import Job
    from orchestrator.model import RunState

KEY = "pipeline"
# `pipeline` as a top-level name of a JMESPath expression (not `steps.x.pipeline`, not 'pipeline').
_MENTION = re.compile(r"(?<![\w.'\"`@])pipeline\b")
_TRIGGER = re.compile(r"(?<![\w.'\"`@])pipeline\.trigger\b")
TRIGGER = "trigger"


def mentions_pipeline(definition: GateDefinition) -> bool:
    """Whether any `${...}` template or output expression reads the pipeline document, or a
    step needs it anyway (an approval's notice names the pipeline)."""
    if definition.notify is not None or any(
        step.reads_pipeline() for step in definition.all_steps()
    ):
        return True  # a notification names the pipeline and links to its execution
    return any(_MENTION.search(expression) for expression in definition.templates)


def needs_trigger(definition: GateDefinition) -> bool:
    """Whether the run needs the execution's trigger: an approval step excludes the
    initiator, or an expression reads `pipeline.trigger`."""
    if any(getattr(getattr(s, "approval", None), "exclude_initiator", False) is True
           for s in definition.all_steps()):  # fmt: skip
        return True
    return any(_TRIGGER.search(expression) for expression in definition.templates)


class PipelineContext:
    """JobContext part adding `pipeline` (GetJobDetails) to runs whose definition uses it."""

    def __init__(self, client: CodePipelineClient | None = None, region: str | None = None) -> None:
        self._client = client
        self._region = region

    def identify(self, job: Job) -> dict[str, Any] | None:
        """The pipeline document of a run's first job: which execution's action it is."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            details = self._codepipeline().get_job_details(jobId=job.id)
        except (ClientError, BotoCoreError) as exc:
            raise _wrapped(exc, job, "GetJobDetails", "'*'") from None
        found = details.get("jobDetails", {}).get("data", {}).get("pipelineContext")
        return dict(found) if isinstance(found, dict) else {}

    def gather(self, job: Job, definition: GateDefinition, state: RunState) -> dict[str, Any]:
        if not mentions_pipeline(definition):
            return {}
        if KEY in state.context:
            document = state.context[KEY]
            if not needs_trigger(definition) or TRIGGER in document:
                return {}
            return {KEY: {**document, TRIGGER: self._trigger(job, document)}}
        document = self.identify(job) or {}
        if needs_trigger(definition):
            document[TRIGGER] = self._trigger(job, document)
        return {KEY: document}

    def _trigger(self, job: Job, document: dict[str, Any]) -> dict[str, Any]:
        """The execution's trigger, `{"type", "detail"}` (None for what CodePipeline omits)."""
        from botocore.exceptions import BotoCoreError, ClientError

        name, execution = document.get("pipelineName"), document.get("pipelineExecutionId")
        if not isinstance(name, str) or not isinstance(execution, str):
            raise GateFailed(
                f"job {job.id}: GetJobDetails names no pipeline execution, so its initiator "
                "cannot be known",
                FailureType.CONFIGURATION_ERROR,
            )
        try:
            found = self._codepipeline().get_pipeline_execution(
                pipelineName=name, pipelineExecutionId=execution
            )
        except (ClientError, BotoCoreError) as exc:
            raise _wrapped(exc, job, "GetPipelineExecution", f"pipeline {name}") from None
        trigger = found.get("pipelineExecution", {}).get("trigger", {})
        return {"type": trigger.get("triggerType"), "detail": trigger.get("triggerDetail")}

    def finish(self, job: Job, definition: GateDefinition, state: RunState) -> None:
        return None

    def _codepipeline(self) -> CodePipelineClient:
        if self._client is None:
            from orchestrator.reporter import codepipeline_client

            self._client = codepipeline_client(self._region)
        return self._client


def _wrapped(exc: Exception, job: Job, operation: str, resource: str) -> Exception:
    """A refusal fails the gate (the role lacks the permission); anything else, even "not
    found", is CodePipeline's (the ids are its own): try again."""
    from botocore.exceptions import ClientError

    reason = aws.describe(exc)
    if isinstance(exc, ClientError) and aws.classify(exc) is aws.AwsFault.DENIED:
        return GateFailed(
            f"job {job.id}: {operation} refused ({reason}); the function's role needs "
            f"codepipeline:{operation} on {resource}",
            FailureType.PERMISSION_ERROR,
        )
    return TransientError(f"job {job.id}: {operation} failed ({reason})")
