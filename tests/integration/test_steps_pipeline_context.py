"""`${pipeline.*}` end to end: GetJobDetails, asked of the emulator once per run and only when
the definition reads the pipeline document, feeds templates and outputs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from tests.integration.test_steps_rig import Recorder, StepsRig, steps_rig

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def rig(table_name: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[StepsRig]:
    with steps_rig(table_name, moto_endpoint, monkeypatch) as built:
        yield built


def gate(url: str, path: str = "${pipeline.pipelineName}/${pipeline.stage.name}") -> Any:
    return {
        "steps": [
            {"name": "bake", "wait": "3m", "every": "1m"},
            {"name": "notify", "http": {"url": f"{url}/deploys/{path}"}},
        ],
        "outputs": {
            "Pipeline": "pipeline.pipelineName",
            "Execution": "pipeline.pipelineExecutionId",
        },
    }


def test_pipeline_fields_fill_templates_and_outputs_with_one_call(rig: StepsRig) -> None:
    with Recorder() as server:
        result = rig.run(gate(server.url), pipeline_name="shop", stage_name="Prod")
    assert result.status == "Succeeded", result.failure_message
    execution = result.output_variables["Execution"]
    assert result.output_variables == {"Pipeline": "shop", "Execution": execution}
    assert len(execution) == 36  # the emulator's pipeline execution id, the same every round
    assert [path for path, _ in server.requests] == ["/deploys/shop/Prod"]
    assert result.rounds >= 2
    assert rig.job_details_calls() == 1


def test_a_definition_without_pipeline_asks_once_for_its_first_job(rig: StepsRig) -> None:
    """Only which execution's action the run is (resume on retry): once per run."""
    result = rig.run({"steps": [{"name": "bake", "wait": "3m", "every": "1m"}]})
    assert result.status == "Succeeded", result.failure_message
    assert result.rounds >= 2
    assert rig.job_details_calls() == 1


def test_an_unknown_pipeline_field_fails_naming_the_template(rig: StepsRig) -> None:
    with Recorder() as server:
        result = rig.run(gate(server.url, "${pipeline.stage.nickname}"))
    assert result.status == "Failed"
    assert result.failure_message == (
        "step 'notify': ${pipeline.stage.nickname} is null in the run context"
    )
    assert server.requests == []


@pytest.mark.parametrize("mode", ["sequential", "concurrent"])
def test_repeated_deliveries_ask_only_for_the_first_job(rig: StepsRig, mode: str) -> None:
    with Recorder() as server:
        result = rig.run(gate(server.url), duplicates=mode, concurrency=3)
    assert result.status == "Succeeded", result.failure_message
    assert result.output_variables["Pipeline"] == "local-pipeline"
    # A repeated delivery re-sends the recorded answer; deliveries at the same moment of the
    # first job may each ask before one of them writes the run (at most one per copy).
    copies = 1 if mode == "sequential" else 3
    assert 1 <= rig.job_details_calls() <= copies
