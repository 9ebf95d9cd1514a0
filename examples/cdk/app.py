"""An AWS CDK app: the orchestrator, and a V2 pipeline with its gate between staging and
production.

    Orchestrator stack:  the `Orchestrator` construct (what template.yaml deploys)
    GatedPipeline stack: Source (S3) -> DeployStaging (CloudFormation)
                         -> Gate (a Lambda invoke action on the orchestrator's function)
                         -> DeployProduction (CloudFormation, given the gate's HealthStatus)

The gate is examples/gates/release.yaml, kept in the source artifact and referenced with the
stage's args; `gate_action` checks it with those args while the app is synthesized, so a
broken gate fails `cdk synth`. The functions' code is the package `make build` writes
(build/orchestrator-lambda.zip), so build it first:

    pip install 'codepipeline-orchestrator[cdk]'
    make build
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

from orchestrator.cdk import Orchestrator, gate_action

GATE_FILE = Path(__file__).resolve().parents[1] / "gates" / "release.yaml"
"""The gate file as the source artifact carries it (at gates/release.yaml)."""


class OrchestratorStack(cdk.Stack):
    """The orchestrator, with the outputs template.yaml's stack has."""

    def __init__(
        self,
        scope: cdk.App,
        construct_id: str,
        *,
        code: lambda_.Code | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        # Every template.yaml parameter is a keyword here (docs/DEPLOY.md): e.g.
        # state_machine_arns=[...] lets gate steps start those state machines, and only those.
        self.orchestrator = Orchestrator(self, "Orchestrator", code=code, reserved_concurrency=20)
        outputs = {
            "FunctionName": self.orchestrator.function.function_name,
            "RunsTableName": self.orchestrator.table.table_name,
            "NotificationTopicArn": self.orchestrator.notification_topic.topic_arn,
            "ApprovalEndpointUrl": self.orchestrator.approval_url.url,
        }
        for name, value in outputs.items():
            cdk.CfnOutput(self, name, value=value)


class PipelineStack(cdk.Stack):
    """The pipeline, its source bucket, and the gate between the two deployments."""

    def __init__(
        self,
        scope: cdk.App,
        construct_id: str,
        *,
        function: lambda_.IFunction | None = None,
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
        if function is None:  # an orchestrator deployed apart (template.yaml), by its name
            function = lambda_.Function.from_function_name(
                self, "Orchestrator", orchestrator_function
            )
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


def app(outdir: str | None = None, code: lambda_.Code | None = None) -> cdk.App:
    """The app, its two stacks added (tests synthesize it into `outdir`, with their own
    `code`)."""
    found = cdk.App(outdir=outdir, analytics_reporting=False)
    orchestrator = OrchestratorStack(
        found,
        "Orchestrator",
        code=code,
        synthesizer=cdk.DefaultStackSynthesizer(generate_bootstrap_version_rule=False),
    )
    PipelineStack(
        found,
        "GatedPipeline",
        function=orchestrator.orchestrator.function,
        synthesizer=cdk.DefaultStackSynthesizer(generate_bootstrap_version_rule=False),
    )
    return found


if __name__ == "__main__":
    app().synth()
