"""`validate` agrees with the Lambda: `#{...}` variables are stood in for and the gate is
checked; gates that cannot succeed are errors; suspicious ones are warnings (exit 0)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from tests.integration.test_cli import invoke
from tests.integration.test_cli_reference import lambda_action, pipeline_file

if TYPE_CHECKING:
    from pathlib import Path


def lines(output: str) -> list[str]:
    return [" ".join(line.split()) for line in output.splitlines()]


def gate(*steps: dict[str, Any], **rest: Any) -> str:
    return json.dumps({"steps": list(steps), **rest})


def test_a_gate_with_pipeline_variables_is_checked_with_stand_ins(tmp_path: Path) -> None:
    bad = gate(
        {"name": "notify", "http": {"url": "https://deploy/#{Build.Version}"}},
        {"name": "bake", "wait": "1h", "timeout": "30m"},
    )
    result = invoke("validate", pipeline_file(tmp_path, lambda_action("Gate", bad)))
    assert result.exit_code == 2, result.output
    assert "S0/Gate: steps[1].wait: 1h is not shorter than the step's timeout 30m" in (
        " ".join(result.output.split())
    )

    good = gate({"name": "notify", "http": {"url": "https://deploy/#{Build.Version}"}})
    result = invoke("validate", pipeline_file(tmp_path, lambda_action("Gate", good)))
    assert result.exit_code == 0, result.output
    assert (
        "S0/Gate: checked with stand-ins for CodePipeline variables: "
        "#{Build.Version} as 'pipeline-variable-1'"
    ) in lines(result.output)


def test_errors_only_the_stand_in_can_cause_are_warnings(tmp_path: Path) -> None:
    text = gate(
        {"name": "bake", "wait": "#{Vars.Bake}"},
        {"name": "probe", "http": {"url": "#{Vars.Url}"}},
    )
    result = invoke("validate", pipeline_file(tmp_path, lambda_action("Gate", text)))
    assert result.exit_code == 0, result.output
    refused = "warning: CodePipeline would refuse stages: 1; a pipeline has 2 to 50 stages"
    output = [line for line in lines(result.output) if line != refused]
    assert refused in lines(result.output)  # a one-stage pipeline: a warning, not an error
    assert output[0].endswith("valid pipeline (1 action)")
    assert output[1].startswith(
        "warning: S0/Gate: steps[0].wait: invalid duration 'pipeline-variable-1'"
    )
    assert output[1].endswith("(with a stand-in for #{Vars.Bake}: checked once it resolves)")
    assert output[2].startswith("warning: S0/Gate: steps[1].http.url: invalid URL")

    outside = '{"steps": [{"name": "bake", "wait": #{Vars.Seconds}}]}'
    result = invoke("validate", pipeline_file(tmp_path, lambda_action("Gate", outside)))
    assert result.exit_code == 0, result.output
    assert "warning: S0/Gate: UserParameters: not valid JSON" in result.output


def test_an_until_reading_what_http_does_not_have_is_a_warning(tmp_path: Path) -> None:
    text = gate({"name": "probe", "http": {"url": "https://x"}, "until": "bodyy.state == 'up'"})
    result = invoke("validate", pipeline_file(tmp_path, lambda_action("Gate", text)))
    assert result.exit_code == 0, result.output
    assert (
        "warning: S0/Gate: steps[0].until: \"bodyy.state == 'up'\" reads bodyy, which http's "
        "document does not have (it has: status, headers, body); it will be null"
    ) in lines(result.output)

    path = tmp_path / "gate.json"
    path.write_text(text)
    result = invoke("validate", str(path))
    assert result.exit_code == 0, result.output
    assert lines(result.output)[1].startswith("warning: steps[0].until:")


def test_a_reference_to_a_later_or_unknown_step_is_an_error(tmp_path: Path) -> None:
    text = gate(
        {"name": "a", "http": {"url": "https://x/${steps.b.body.id}"}},
        {"name": "b", "wait": "1m"},
        outputs={"Id": "steps.c.body"},
    )
    result = invoke("validate", pipeline_file(tmp_path, lambda_action("Gate", text)))
    assert result.exit_code == 2, result.output
    output = " ".join(result.output.split())
    assert "S0/Gate: steps[0].http.url: ${steps.b.body.id} names step 'b', a later step" in output
    assert "S0/Gate: outputs.Id: names step 'c', which the gate does not have (steps: a, b)" in (
        output
    )
