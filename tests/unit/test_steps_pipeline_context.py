"""The `pipeline` run-context document: asked of CodePipeline only when a definition uses it,
once per run, keeping only `pipelineContext` (the response also holds artifact keys)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, cast

import pytest

from orchestrator import engine
from orchestrator.definition import GateDefinition, parse_definition
from orchestrator.event import Job
from orchestrator.exceptions import FailureType, GateFailed, TransientError
from orchestrator.pipeline_context import PipelineContext, mentions_pipeline, needs_trigger
from tests.fakes import client_error

if TYPE_CHECKING:
    from mypy_boto3_codepipeline import CodePipelineClient

CONTEXT = {
    "pipelineName": "shop",
    "stage": {"name": "Prod"},
    "action": {"name": "Gate", "actionExecutionId": "a-1"},
    "pipelineArn": "arn:aws:codepipeline:us-east-1:123456789012:shop",
    "pipelineExecutionId": "e-1",
}


class FakeCodePipeline:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.errors: list[Exception] = []
        self.execution_calls: list[tuple[str, str]] = []
        self.execution_errors: list[Exception] = []

    def get_job_details(self, jobId: str) -> dict[str, Any]:
        self.calls.append(jobId)
        if self.errors:
            raise self.errors.pop(0)
        data = {"pipelineContext": CONTEXT, "artifactCredentials": {"secretAccessKey": "KEY"}}
        return {"jobDetails": {"id": jobId, "data": data}}

    def get_pipeline_execution(self, pipelineName: str, pipelineExecutionId: str) -> dict[str, Any]:
        self.execution_calls.append((pipelineName, pipelineExecutionId))
        if self.execution_errors:
            raise self.execution_errors.pop(0)
        trigger = {
            "triggerType": "StartPipelineExecution",
            "triggerDetail": "arn:aws:iam::1:user/a",
        }
        return {
            "pipelineExecution": {"pipelineExecutionId": pipelineExecutionId, "trigger": trigger}
        }

    def client(self) -> CodePipelineClient:
        """This fake as the boto3 client it stands in for (the one call it has)."""
        return cast("CodePipelineClient", self)


def gate(step: dict[str, Any], outputs: dict[str, str] | None = None) -> GateDefinition:
    steps = [{"name": "s", **step}]
    return parse_definition(json.dumps({"steps": steps, "outputs": outputs or {}}))


JOB = Job.model_validate({"id": "job-1", "data": {"action_configuration": {}}})


@pytest.mark.parametrize(
    ("definition", "mentioned"),
    [
        (gate({"http": {"url": "https://x/${pipeline.pipelineName}"}}), True),
        (gate({"lambda": {"function": "f", "payload": {"e": "${pipeline}"}}}), True),
        (gate({"wait": "1m"}, {"Stage": "pipeline.stage.name"}), True),
        (gate({"wait": "1m"}, {"Both": "join('/', [pipeline.pipelineName, run.id])"}), True),
        (
            parse_definition(
                json.dumps(
                    {
                        "steps": [
                            {"name": "a", "wait": "1m"},
                            {"name": "s", "http": {"url": "https://x/${steps.a.pipeline}"}},
                        ]
                    }
                )
            ),
            False,
        ),
        (gate({"http": {"url": "https://x/pipeline.html"}}), False),
        (gate({"wait": "1m"}, {"Name": "'pipeline'"}), False),
    ],
)
def test_only_definitions_that_read_pipeline_need_it(
    definition: GateDefinition, mentioned: bool
) -> None:
    assert mentions_pipeline(definition) is mentioned


def test_asks_once_and_keeps_only_the_pipeline_context() -> None:
    client = FakeCodePipeline()
    part = PipelineContext(client.client())
    definition = gate({"wait": "1m"}, {"Stage": "pipeline.stage.name"})
    state = engine.start(definition, "run-1", 0.0)
    found = part.gather(JOB, definition, state)
    assert found == {"pipeline": CONTEXT} and client.calls == ["job-1"]
    state = state.model_copy(update={"context": found})
    assert part.gather(JOB, definition, state) == {}
    assert part.gather(JOB, gate({"wait": "1m"}), engine.start(gate({"wait": "1m"}), "r", 0)) == {}
    assert client.calls == ["job-1"]


def test_faults_are_transient_except_a_refusal() -> None:
    client = FakeCodePipeline()
    part = PipelineContext(client.client())
    definition = gate({"wait": "1m"}, {"Stage": "pipeline.stage.name"})
    state = engine.start(definition, "run-1", 0.0)
    client.errors.append(client_error("ThrottlingException", operation="GetJobDetails"))
    with pytest.raises(TransientError, match=r"GetJobDetails failed \(ThrottlingException\)"):
        part.gather(JOB, definition, state)
    client.errors.append(client_error("AccessDeniedException", 400, "GetJobDetails"))
    with pytest.raises(GateFailed) as caught:
        part.gather(JOB, definition, state)
    assert caught.value.failure_type is FailureType.PERMISSION_ERROR


EXCLUDING = {"approval": {"approvers": ["arn:aws:iam::1:user/b"], "exclude_initiator": True}}


@pytest.mark.parametrize(
    ("definition", "needed"),
    [
        (gate(EXCLUDING), True),
        (gate({"wait": "1m"}, {"Who": "pipeline.trigger.detail"}), True),
        (gate({"http": {"url": "https://x/${pipeline.trigger.type}"}}), True),
        (gate({"approval": {"approvers": ["arn:aws:iam::1:user/b"]}}), False),
        (gate({"wait": "1m"}, {"Stage": "pipeline.stage.name"}), False),
        (gate({"wait": "1m"}, {"T": "steps.s.pipeline.trigger"}), False),
    ],
)
def test_only_definitions_that_exclude_the_initiator_or_read_the_trigger_need_it(
    definition: GateDefinition, needed: bool
) -> None:
    assert needs_trigger(definition) is needed
    if needed:
        assert mentions_pipeline(definition)


def test_the_trigger_joins_the_pipeline_document_once() -> None:
    client = FakeCodePipeline()
    part = PipelineContext(client.client())
    definition = gate(EXCLUDING)
    state = engine.start(definition, "run-1", 0.0)
    found = part.gather(JOB, definition, state)
    trigger = {"type": "StartPipelineExecution", "detail": "arn:aws:iam::1:user/a"}
    assert found == {"pipeline": {**CONTEXT, "trigger": trigger}}
    assert client.execution_calls == [("shop", "e-1")]
    state = state.model_copy(update={"context": found})
    assert part.gather(JOB, definition, state) == {}
    assert client.execution_calls == [("shop", "e-1")]
    plain = gate({"wait": "1m"}, {"Stage": "pipeline.stage.name"})
    assert "trigger" not in part.gather(JOB, plain, engine.start(plain, "r", 0.0))["pipeline"]
    assert client.execution_calls == [("shop", "e-1")]


def test_get_pipeline_execution_faults_are_transient_except_a_refusal() -> None:
    client = FakeCodePipeline()
    part = PipelineContext(client.client())
    definition = gate(EXCLUDING)
    state = engine.start(definition, "run-1", 0.0)
    client.execution_errors.append(
        client_error("PipelineExecutionNotFoundException", operation="GetPipelineExecution")
    )
    with pytest.raises(TransientError, match=r"GetPipelineExecution failed"):
        part.gather(JOB, definition, state)
    client.execution_errors.append(
        client_error("AccessDeniedException", 400, "GetPipelineExecution")
    )
    with pytest.raises(GateFailed) as caught:
        part.gather(JOB, definition, state)
    assert caught.value.failure_type is FailureType.PERMISSION_ERROR
    assert "codepipeline:GetPipelineExecution on pipeline shop" in str(caught.value)
