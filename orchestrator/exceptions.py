"""Errors of the orchestrator, split by what the caller must do about them.

    OrchestratorError
    ├── TerminalError                 trying again cannot help; a job gets PutJobFailureResult
    │   │                             with the error's `failure_type` (a FailureType)
    │   ├── DefinitionError           ConfigurationError: the gate definition is invalid
    │   ├── UnknownTokenError         JobFailed: the continuation token is not ours, or expired
    │   ├── GateFailed                JobFailed: fail_if, a step or gate timeout, a cancel
    │   ├── expressions.TemplateError  a `${...}` is invalid or null (also a ValueError)
    │   ├── secrets.SecretUnreadable  see SecretError
    │   ├── targets.RoleDenied        STS refused a step's role (PermissionError, mostly)
    │   └── approval.links.BadLink    an approval link that is malformed or not ours
    ├── TransientError                try again later; never fails the gate while time remains
    │   ├── StoreUnavailable          DynamoDB could not be read or written
    │   ├── ReporterUnavailable       CodePipeline could not be answered
    │   ├── services.HttpError        no HTTP response (refused, timed out, too large)
    │   ├── artifacts.ArtifactStoreUnavailable   S3 busy or unreachable (job artifacts)
    │   ├── sources.SourceUnavailable            S3 or SSM busy or unreachable (gate files)
    │   ├── secrets.SecretUnavailable            see SecretError
    │   ├── targets.RoleUnavailable              STS busy or unreachable (a step's role)
    │   └── approval.links.KeyUnavailable        the approval signing key could not be read
    ├── secrets.SecretError           a secret reference could not be resolved, as either
    │   ├── SecretUnreadable          a TerminalError: denied, missing, not what it says
    │   └── SecretUnavailable         a TransientError: Secrets Manager or SSM busy or down
    └── ConflictError                 another delivery advanced the run first

Classes outside this module live beside the code that raises them, under the names shown.
This module imports only the standard library: everything else may import it.
"""

from __future__ import annotations

import enum


class FailureType(enum.Enum):
    """CodePipeline's FailureDetails.type values: what a TerminalError reports."""

    JOB_FAILED = "JobFailed"
    CONFIGURATION_ERROR = "ConfigurationError"
    PERMISSION_ERROR = "PermissionError"
    REVISION_OUT_OF_SYNC = "RevisionOutOfSync"
    REVISION_UNAVAILABLE = "RevisionUnavailable"
    SYSTEM_UNAVAILABLE = "SystemUnavailable"


class OrchestratorError(Exception):
    """Base class of every error raised on purpose by the orchestrator."""


class TerminalError(OrchestratorError):
    """An error that ends the gate: the job is answered with a failure."""

    failure_type: FailureType = FailureType.JOB_FAILED


class DefinitionError(TerminalError):
    """The gate definition (UserParameters) is invalid; `errors` lists `path: reason` lines."""

    failure_type = FailureType.CONFIGURATION_ERROR

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("; ".join(errors))


class UnknownTokenError(TerminalError):
    """The continuation token is garbled, forged, stale or belongs to an expired run."""


class GateFailed(TerminalError):
    """The gate decided to fail: a fail_if condition, a timeout, a cancel, a step error."""

    def __init__(self, message: str, failure_type: FailureType = FailureType.JOB_FAILED) -> None:
        self.failure_type = failure_type
        super().__init__(message)


class TransientError(OrchestratorError):
    """A fault worth retrying at the next tick; the gate goes on."""


class StoreUnavailable(TransientError):
    """The run store (DynamoDB) could not be read or written."""


class ConflictError(OrchestratorError):
    """Another delivery of the same job advanced the run first (conditional write lost)."""


class ReporterUnavailable(TransientError):
    """CodePipeline could not be answered after retries."""
