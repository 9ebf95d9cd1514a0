"""An approval notice names the pipeline it waits in: the real handler driven by the
CodePipeline emulator (whose GetJobDetails answers `pipelineContext.pipelineName`), state in
DynamoDB Local, the notice sent to a local chat webhook."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.integration.test_approval_rig import ALICE, Webhook
from tests.rig import Rig, gate_rig

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def rig(table_name: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    with gate_rig(table_name, monkeypatch) as built:
        yield built


def test_the_notice_names_the_pipeline(rig: Rig) -> None:
    with Webhook() as webhook:
        gate = {
            "steps": [
                {"name": "bake", "wait": "1m"},
                {
                    "name": "signoff",
                    "timeout": "2m",
                    "approval": {
                        # Reading the pipeline document makes the run fetch it (GetJobDetails).
                        "approvers": [ALICE],
                        "message": "Ship to ${pipeline.stage.name}?",
                        "notify": {"webhook": webhook.url},
                    },
                },
            ]
        }
        result = rig.run(gate, pipeline_name="shop-checkout", stage_name="Prod")
    assert result.status == "Failed"  # nobody approved before the step's timeout
    (body,) = webhook.bodies
    assert "Approval needed: Ship to Prod?" in body["text"]
    assert "of pipeline shop-checkout" in body["text"]
    context = [e["text"] for b in body["blocks"] if b["type"] == "context" for e in b["elements"]]
    assert any("of pipeline *shop-checkout*" in text for text in context), context


def test_the_notice_names_the_pipeline_even_when_no_template_reads_it(rig: Rig) -> None:
    with Webhook() as webhook:
        approval = {"approvers": [ALICE], "message": "Ship?", "notify": {"webhook": webhook.url}}
        gate = {"steps": [{"name": "signoff", "timeout": "1m", "approval": approval}]}
        result = rig.run(gate, pipeline_name="shop-checkout", stage_name="Prod")
    assert result.status == "Failed"
    (body,) = webhook.bodies
    assert "of pipeline shop-checkout" in body["text"]
    assert rig.job_details_calls() == 1  # once per run, not per tick
