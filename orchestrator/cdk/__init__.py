"""AWS CDK support (the `cdk` extra: aws-cdk-lib; tooling, not in the Lambda package).

`gate_action(...)` (also `GateAction`) returns a CodePipeline `LambdaInvokeAction` whose gate
is checked while the app is synthesized, so a broken gate fails `cdk synth`, not the pipeline:
examples/cdk/app.py puts one between staging and production.
"""

from __future__ import annotations

from orchestrator.cdk.gate_action import GateAction, GateActionError, gate_action, gate_parameters

__all__ = ["GateAction", "GateActionError", "gate_action", "gate_parameters"]
