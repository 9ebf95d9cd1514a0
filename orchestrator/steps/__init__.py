"""Step kinds, one module each. A definition's step names its kind by the key it carries.

To add a kind: write `<kind>.py` with a `Step` subclass and list it in `KINDS`.
"""

from __future__ import annotations

from orchestrator.steps._base import (
    Done,
    Duration,
    Expression,
    Failed,
    Outcome,
    Pending,
    Retry,
    Step,
    StepContext,
)
from orchestrator.steps.alarms import AlarmsStep
from orchestrator.steps.approval import ApprovalStep
from orchestrator.steps.http import HttpStep
from orchestrator.steps.lambda_ import LambdaStep
from orchestrator.steps.python import PythonStep
from orchestrator.steps.state_machine import StateMachineStep
from orchestrator.steps.wait import WaitStep

KINDS: dict[str, type[Step]] = {
    kind.kind: kind
    for kind in (
        WaitStep,
        HttpStep,
        AlarmsStep,
        StateMachineStep,
        LambdaStep,
        PythonStep,
        ApprovalStep,
    )
}

__all__ = [
    "KINDS",
    # outcomes of a poll
    "Done",
    # field types for kinds
    "Duration",
    "Expression",
    "Failed",
    "Outcome",
    "Pending",
    "Retry",
    # the interface of a kind
    "Step",
    "StepContext",
]
