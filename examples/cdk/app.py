"""An AWS CDK app: a V2 pipeline with the orchestrator's gate between staging and production.

    Source (S3) -> DeployStaging (CloudFormation) -> Gate (the orchestrator, Lambda invoke)
                -> DeployProduction (CloudFormation, given the gate's HealthStatus output)

The gate is examples/gates/release.yaml, kept in the source artifact and referenced with the
stage's args; `gate_action` checks it with those args while the app is synthesized, so a
broken gate fails `cdk synth`. Deploy the orchestrator first (template.yaml, docs/DEPLOY.md):
this app only names its function.

    pip install 'codepipeline-orchestrator[cdk]'
    cdk synth --app "python examples/cdk/app.py"
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_codepipeline as codepipeline
from aws_cdk import aws_codepipeline_actions as actions
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3

from orchestrator.cdk import gate_action

GATE_FILE = Path(__file__).resolve().parents[1] / "gates" / "release.yaml"
"""The gate file as the source artifact carries it (at gates/release.yaml)."""


class PipelineStack(cdk.Stack):
    """The pipeline, its source bucket, and the gate between the two deployments."""

    def __init__(
        self,
        scope: cdk.App,
        construct_id: str,
        *,
        orchestrator_function: str = "orchestrator",
        staging_url: str = "https://staging.example.com/health",
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        bucket = s3.Bucket(
            self,
            "SourceBucket",
            versioned=True,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
        )
        source = codepipeline.Artifact("SourceArtifact")
        function = lambda_.Function.from_function_name(self, "Orchestrator", orchestrator_function)
        pipeline = codepipeline.Pipeline(
            self,
            "Pipeline",
            pipeline_type=codepipeline.PipelineType.V2,
            execution_mode=codepipeline.ExecutionMode.QUEUED,
            restart_execution_on_update=False,
        )
        pipeline.add_stage(
            stage_name="Source",
            actions=[
                actions.S3SourceAction(
                    action_name="Source",
                    bucket=bucket,
                    bucket_key="source.zip",
                    output=source,
                    trigger=actions.S3Trigger.NONE,
                )
            ],
        )
        pipeline.add_stage(stage_name="DeployStaging", actions=[_deploy(source, "staging")])
        pipeline.add_stage(
            stage_name="Gate",
            actions=[
                gate_action(
                    action_name="Gate",
                    function=function,
                    reference="SourceArtifact::gates/release.yaml",
                    args={"stage": "staging", "url": staging_url},
                    gate_file=GATE_FILE,
                    inputs=[source],
                    variables_namespace="Gate",
                )
            ],
        )
        pipeline.add_stage(
            stage_name="DeployProduction",
            actions=[_deploy(source, "production", {"HealthStatus": "#{Gate.HealthStatus}"})],
        )


def _deploy(
    source: codepipeline.Artifact, stage: str, extra: dict[str, str] | None = None
) -> actions.CloudFormationCreateUpdateStackAction:
    return actions.CloudFormationCreateUpdateStackAction(
        action_name=f"Deploy-{stage}",
        stack_name=f"example-app-{stage}",
        template_path=source.at_path("app.yaml"),
        admin_permissions=False,
        parameter_overrides={"Stage": stage, **(extra or {})},
    )


def app(outdir: str | None = None) -> cdk.App:
    """The app, its stack added (tests synthesize it into `outdir`)."""
    found = cdk.App(outdir=outdir, analytics_reporting=False)
    PipelineStack(
        found,
        "GatedPipeline",
        synthesizer=cdk.DefaultStackSynthesizer(generate_bootstrap_version_rule=False),
    )
    return found


if __name__ == "__main__":
    app().synth()
