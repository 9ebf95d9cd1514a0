"""Where referenced gate definitions are read: the production `DefinitionSource`.

    ArtifactName::path   a file in one of the job's input artifacts, with the job's own
                         artifactCredentials (orchestrator.artifacts); version: the revision
    s3://bucket/key      the function's role (template.yaml's GateBucketArns); version: the
                         object's VersionId, else its ETag
    ssm:NAME             the function's role (SsmParameterArns); version: the parameter's

A fetch happens once per run, on its first tick. A fault worth retrying (throttling, 5xx,
a timeout, no connection) is a TransientError: the job is answered in progress with nothing
persisted. Anything else is a DefinitionError (ConfigurationError) naming the reference.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from orchestrator import aws
from orchestrator.exceptions import DefinitionError, TerminalError, TransientError
from orchestrator.reference import MAX_REFERENCED_BYTES, Fetched

if TYPE_CHECKING:
    from orchestrator.artifacts import ArtifactContext
    from orchestrator.event import Job
    from orchestrator.reference import GateRef
    from orchestrator.services import ServiceClients

_HINT = {
    "s3": "the function may read only buckets listed in the stack's GateBucketArns",
    "ssm": "the function may read only parameters listed in the stack's SsmParameterArns",
}


class SourceUnavailable(TransientError):
    """The definition's source was busy or unreachable; the next job tries again."""


class DefinitionSources:
    """DefinitionSource for the three reference kinds."""

    def __init__(self, services: ServiceClients, artifacts: ArtifactContext) -> None:
        self._services = services
        self._artifacts = artifacts

    def fetch(self, job: Job, ref: GateRef) -> Fetched:
        try:
            if ref.kind == "artifact":
                return self._artifact(job, ref)
            if ref.kind == "s3":
                return self._s3(ref)
            return self._ssm(ref)
        except (TransientError, DefinitionError):
            raise
        except TerminalError as exc:  # e.g. the artifact code's GateFailed
            raise DefinitionError([f"gate {ref}: {exc}"]) from None

    def _artifact(self, job: Job, ref: GateRef) -> Fetched:
        data, revision = self._artifacts.read_file(
            job, ref.artifact, ref.path, MAX_REFERENCED_BYTES + 1
        )
        return Fetched(data, revision)

    def _s3(self, ref: GateRef) -> Fetched:
        from botocore.exceptions import BotoCoreError, ClientError

        pinned: dict[str, Any] = {"VersionId": ref.version_id} if ref.version_id else {}
        try:
            response = self._services.aws("s3").get_object(Bucket=ref.bucket, Key=ref.key, **pinned)
            body = response["Body"]
            try:
                data = body.read(MAX_REFERENCED_BYTES + 1)
            finally:
                body.close()
        except ClientError as exc:
            raise _client_error(ref, exc) from None
        except (BotoCoreError, OSError) as exc:
            raise SourceUnavailable(f"gate {ref}: S3 unreachable ({aws.describe(exc)})") from None
        version: str | None = response.get("VersionId")
        if not version or version == "null":
            version = str(response.get("ETag", "")).strip('"') or None
        return Fetched(data, version)

    def _ssm(self, ref: GateRef) -> Fetched:
        from botocore.exceptions import BotoCoreError, ClientError

        try:  # never decrypted: a gate is stored with its runs, so it must not be a secret
            response = self._services.aws("ssm").get_parameter(Name=ref.parameter)
        except ClientError as exc:
            raise _client_error(ref, exc) from None
        except (BotoCoreError, OSError) as exc:
            raise SourceUnavailable(f"gate {ref}: SSM unreachable ({aws.describe(exc)})") from None
        parameter = response.get("Parameter") or {}
        if parameter.get("Type") == "SecureString":
            raise DefinitionError(
                [
                    f"gate {ref}: a SecureString; a gate definition is stored with its runs, so "
                    'keep it in a String parameter and refer to secrets from it ({"parameter": '
                    '"/name"} in a header)'
                ]
            )
        version = parameter.get("Version")
        return Fetched(str(parameter.get("Value", "")).encode(), str(version) if version else None)


def _client_error(ref: GateRef, exc: Exception) -> SourceUnavailable | DefinitionError:
    fault, code = aws.classify(exc), aws.describe(exc)
    if fault.transient:
        return SourceUnavailable(f"gate {ref}: unavailable ({code})")
    if fault is aws.AwsFault.DENIED:
        return DefinitionError([f"gate {ref}: access denied ({code}); {_HINT[ref.kind]}"])
    # S3 answers a malformed VersionId (the one part of the reference it parses) with
    # InvalidArgument: no object has that version.
    if fault is aws.AwsFault.NOT_FOUND or code == "InvalidArgument":
        return DefinitionError([f"gate {ref}: not found ({code})"])
    return DefinitionError([f"gate {ref}: could not be read ({code})"])
