"""The CodePipeline job event (`event["CodePipeline.job"]`) as typed, frozen models.

Artifact credentials are `SecretStr` from the moment they are parsed: `repr()`, `str()`
and `model_dump()` never show them. Unknown fields are ignored (AWS may add some).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, populate_by_name=True, extra="ignore")


class S3Location(_Wire):
    bucket_name: str = Field(alias="bucketName")
    object_key: str = Field(alias="objectKey")


class ArtifactLocation(_Wire):
    type: str = "S3"
    s3_location: S3Location = Field(alias="s3Location")


class Artifact(_Wire):
    name: str
    revision: str | None = None
    location: ArtifactLocation


class ArtifactCredentials(_Wire):
    access_key_id: SecretStr = Field(alias="accessKeyId")
    secret_access_key: SecretStr = Field(alias="secretAccessKey")
    session_token: SecretStr = Field(alias="sessionToken")


class EncryptionKey(_Wire):
    id: str
    type: str = "KMS"


class ActionConfiguration(_Wire):
    function_name: str | None = Field(default=None, alias="FunctionName")
    user_parameters: str | None = Field(default=None, alias="UserParameters")


class JobData(_Wire):
    action_configuration: ActionConfiguration
    input_artifacts: list[Artifact] = Field(default_factory=list, alias="inputArtifacts")
    output_artifacts: list[Artifact] = Field(default_factory=list, alias="outputArtifacts")
    artifact_credentials: ArtifactCredentials | None = Field(
        default=None, alias="artifactCredentials"
    )
    continuation_token: str | None = Field(default=None, alias="continuationToken")
    encryption_key: EncryptionKey | None = Field(default=None, alias="encryptionKey")


class Job(_Wire):
    """One CodePipeline job: what the Lambda function must answer."""

    id: str
    account_id: str | None = Field(default=None, alias="accountId")
    data: JobData

    @property
    def user_parameters(self) -> str | None:
        return self.data.action_configuration.user_parameters

    @property
    def continuation_token(self) -> str | None:
        return self.data.continuation_token

    @classmethod
    def from_event(cls, event: Any) -> Job:
        """Parse the Lambda event; raise ValueError (without echoing values) when malformed."""
        if not isinstance(event, dict) or not isinstance(event.get("CodePipeline.job"), dict):
            raise ValueError("not a CodePipeline job event: 'CodePipeline.job' is missing")
        raw = dict(event["CodePipeline.job"])
        data = raw.get("data")
        if isinstance(data, dict):
            data = dict(data)
            action = data.get("actionConfiguration")
            configuration = action.get("configuration") if isinstance(action, dict) else None
            data["action_configuration"] = configuration if isinstance(configuration, dict) else {}
            raw["data"] = data
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            fields = ", ".join(".".join(str(p) for p in e["loc"]) or "job" for e in exc.errors())
            raise ValueError(f"malformed CodePipeline job event ({fields})") from None


def job_id_of(event: Any) -> str | None:
    """The job id, if the event has a readable one (even when the rest is malformed)."""
    try:
        job_id = event["CodePipeline.job"]["id"]
    except (TypeError, KeyError):
        return None
    return job_id if isinstance(job_id, str) and job_id else None
