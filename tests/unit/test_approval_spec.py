"""The `approval` step's definition (validation, the documented example) and `tally()`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.approval.decide import tally
from orchestrator.definition import parse_definition
from orchestrator.exceptions import DefinitionError
from orchestrator.steps.approval import NOTIFY_KEY

ALICE = "arn:aws:iam::123456789012:user/alice"
BOB = "arn:aws:sts::123456789012:assumed-role/Releasers/bob"
MALLORY = "arn:aws:iam::123456789012:user/mallory"


@pytest.mark.parametrize(
    ("approval", "error"),
    [
        ({"approvers": []}, "approval.approvers: List should have at least 1 item"),
        ({"approvers": ["alice"]}, "invalid approver 'alice'"),
        ({"approvers": [ALICE], "required": 2}, "required is 2 but only 1 distinct approvers"),
        ({"approvers": [ALICE], "required": 0}, "required: Input should be greater than"),
        ({"approvers": [ALICE], "notify": {}}, "notify needs 'sns', 'webhook' or both"),
        ({"approvers": [ALICE], "notify": {"sns": "topic"}}, "invalid SNS topic ARN 'topic'"),
        ({"approvers": [ALICE], "notify": {"webhook": "ftp://x"}}, "invalid webhook URL"),
        ({"approvers": [ALICE], "colour": "red"}, "approval.colour: unknown field"),
    ],
)
def test_invalid_approval_steps_name_the_field(approval: dict[str, Any], error: str) -> None:
    with pytest.raises(DefinitionError) as raised:
        parse_definition(json.dumps({"steps": [{"name": "a", "approval": approval}]}))
    assert any(error in line for line in raised.value.errors), raised.value.errors


def test_patterns_allow_many_approvers_and_a_step_timeout_bounds_it() -> None:
    definition = parse_definition(
        json.dumps(
            {
                "steps": [
                    {
                        "name": "a",
                        "approval": {"approvers": ["arn:aws:iam::1:role/*"], "required": 3},
                        "timeout": "1h",
                    }
                ],
                "timeout": "2h",
            }
        )
    )
    assert definition.step_timeout(definition.steps[0]) == 3600
    with pytest.raises(DefinitionError, match="exceeds the gate's timeout"):
        parse_definition(
            json.dumps(
                {
                    "steps": [{"name": "a", "approval": {"approvers": [ALICE]}, "timeout": "3h"}],
                    "timeout": "2h",
                }
            )
        )


def test_tally_counts_in_time_order_and_stops_when_settled() -> None:
    approvers = [ALICE, "arn:aws:iam::123456789012:role/Releasers"]
    decisions = {
        BOB: {"decision": "approve", "comment": "b", "at": 1.0},
        ALICE: {"decision": "reject", "comment": "too late", "at": 2.0},
        NOTIFY_KEY: {"decision": "notify", "at": 0.0},
    }
    settled = tally(decisions, approvers, 1)
    assert settled.approved and settled.approved_by == [BOB] and settled.rejected_by is None
    rejected = tally(decisions, approvers, 2)
    assert not rejected.approved and rejected.rejected_by == ALICE
    assert rejected.reason == "too late"
    assert tally({MALLORY: {"decision": "approve"}}, approvers, 1).ignored == [MALLORY]


def test_the_documented_example_is_a_valid_gate() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "APPROVALS.md").read_text()
    example = docs.split("```json\n", 1)[1].split("```", 1)[0]
    definition = parse_definition(example)
    (step,) = [s for s in definition.steps if s.kind == "approval"]
    assert step.name == "prod-signoff"
