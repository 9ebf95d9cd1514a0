"""AWS CDK support (the `cdk` extra: aws-cdk-lib; tooling, not in the Lambda package).

`Orchestrator` is the construct that deploys what template.yaml deploys (the functions, the
runs table, the queue, the topic, the signing key, the alarms, the two roles), its IAM
statements built from orchestrator/cdk/permissions.py, the source template.yaml's are
generated from. `gate_action(...)` (also `GateAction`) returns a CodePipeline
`LambdaInvokeAction` whose gate is checked while the app is synthesized, so a broken gate
fails `cdk synth`, not the pipeline: examples/cdk/app.py deploys an orchestrator and puts a
gate on its function between staging and production.

`Orchestrator` is imported on first use: `orchestrator.cdk.permissions` (pure data, which
`make template` reads) does not start aws-cdk-lib's node process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orchestrator.cdk.gate_action import GateAction, GateActionError, gate_action, gate_parameters

if TYPE_CHECKING:
    from orchestrator.cdk.construct import Orchestrator, OrchestratorError

__all__ = [
    "GateAction",
    "GateActionError",
    "Orchestrator",
    "OrchestratorError",
    "gate_action",
    "gate_parameters",
]

_LAZY = frozenset({"Orchestrator", "OrchestratorError"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from orchestrator.cdk import construct

        return getattr(construct, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
