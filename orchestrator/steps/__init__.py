"""Step kinds, one module each. A definition's step names its kind by the key it carries.

To add a kind: write `<kind>.py` with a `Step` subclass and list it in `KINDS`.
"""

from __future__ import annotations

import importlib

from orchestrator.expressions import Expression
from orchestrator.steps._base import (
    Done,
    Duration,
    Failed,
    Outcome,
    Pending,
    Retry,
    Step,
    StepContext,
)

KINDS: dict[str, str] = {
    "wait": "orchestrator.steps.wait:WaitStep",
    "http": "orchestrator.steps.http:HttpStep",
    "alarms": "orchestrator.steps.alarms:AlarmsStep",
    "state_machine": "orchestrator.steps.state_machine:StateMachineStep",
    "lambda": "orchestrator.steps.lambda_:LambdaStep",
    "python": "orchestrator.steps.python:PythonStep",
    "approval": "orchestrator.steps.approval:ApprovalStep",
    "window": "orchestrator.steps.window:WindowStep",
    "lock": "orchestrator.steps.lock:LockStep",
    "unlock": "orchestrator.steps.unlock:UnlockStep",
    "metrics": "orchestrator.steps.metrics:MetricsStep",
}
"""Kind key -> "module:Class". Modules are imported when a definition first uses the kind:
a cold start pays only for the kinds its gate has."""


def kind_class(kind: str) -> type[Step]:
    """The Step subclass for a kind key (KeyError if there is no such kind)."""
    module_name, _, class_name = KINDS[kind].partition(":")
    found: type[Step] = getattr(importlib.import_module(module_name), class_name)
    return found


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
    "kind_class",
]
