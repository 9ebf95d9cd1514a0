"""Answers to CodePipeline through boto3, with botocore's standard retry mode."""

from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator import aws
from orchestrator.exceptions import ReporterUnavailable
from orchestrator.ports import Delivery

if TYPE_CHECKING:
    from mypy_boto3_codepipeline import CodePipelineClient

    from orchestrator.model import Answer


def codepipeline_client(region: str | None = None, attempts: int = 5) -> CodePipelineClient:
    """A CodePipeline client; the endpoint follows AWS_ENDPOINT_URL_CODEPIPELINE if set."""
    import boto3

    config = aws.client_config(attempts=attempts, connect_timeout=3, read_timeout=10)
    return boto3.client("codepipeline", region_name=region, config=config)


class CodePipelineReporter:
    """Reporter on a boto3 CodePipeline client."""

    def __init__(self, client: CodePipelineClient) -> None:
        self._client = client

    def report(self, job_id: str, answer: Answer) -> Delivery:
        from botocore.exceptions import BotoCoreError, ClientError

        operation, params = answer.to_request(job_id)
        try:
            getattr(self._client, operation)(**params)
        except ClientError as exc:
            # Codes that are answers, not faults: the job was answered or is gone.
            code = aws.error_code(exc)
            if code == "InvalidJobStateException":
                return Delivery.ALREADY_ANSWERED
            if code == "JobNotFoundException":
                return Delivery.JOB_NOT_FOUND
            raise ReporterUnavailable(
                f"job {job_id}: {operation} failed ({aws.describe(exc)})"
            ) from None
        except BotoCoreError as exc:
            raise ReporterUnavailable(
                f"job {job_id}: {operation} failed ({aws.describe(exc)})"
            ) from None
        return Delivery.ACCEPTED
