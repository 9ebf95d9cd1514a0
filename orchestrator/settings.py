"""Settings from the environment (prefix `ORCHESTRATOR_`), read once at the entry point.

AWS endpoints are not settings here: boto3 and pynamodb follow the standard
`AWS_ENDPOINT_URL_<SERVICE>` variables, for DynamoDB Local, moto or the emulator.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything the handler can be told."""

    model_config = SettingsConfigDict(env_prefix="ORCHESTRATOR_", extra="ignore")

    table_name: str = Field(description="The runs table (template.yaml's RunsTable).")
    region: str | None = Field(
        default=None, description="AWS region; default: AWS_REGION / AWS_DEFAULT_REGION."
    )
    ttl_days: float = Field(default=30, gt=0, description="Days a finished run is kept.")
    idle_check_interval_seconds: float = Field(
        default=60, ge=0, description="Longest an idle tick trusts its token without a read."
    )
    safety_margin_seconds: float = Field(
        default=10, ge=0, description="Real seconds kept before the Lambda timeout to answer."
    )
    reserve_seconds: float = Field(
        default=5, ge=0, description="Seconds kept back for the final write and report."
    )
    log_level: str = Field(default="INFO", description="Python logging level.")
    approval_url: str | None = Field(
        default=None,
        description="Base URL of the approval endpoint (template.yaml's ApprovalFunctionUrl); "
        "unset: approval messages carry no links, only the CLI commands.",
    )
    approval_secret_arn: str | None = Field(
        default=None,
        description="Secrets Manager ARN of the key that signs approval links "
        "(template.yaml's ApprovalSigningKey); read by ARN, cached in-process, never logged.",
    )
    oidc_issuer: str | None = Field(
        default=None,
        description="OpenID Connect issuer URL people sign in with on the approval page "
        "(unset: no sign-in; only the CLI and Slack can prove an identity).",
    )
    oidc_client_id: str | None = Field(
        default=None, description="The approval page's OIDC client id at that issuer."
    )
    oidc_client_secret_arn: str | None = Field(
        default=None,
        description="Secrets Manager ARN of the OIDC client secret; read by ARN, never logged.",
    )
    slack_signing_secret_arn: str | None = Field(
        default=None,
        description="Secrets Manager ARN of the Slack app's signing secret, which verifies "
        "button clicks posted to the endpoint's /slack path.",
    )
    metrics_namespace: str = Field(
        default="Orchestrator", description="CloudWatch namespace of the EMF metrics."
    )
