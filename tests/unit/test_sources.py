"""Reading referenced gate definitions from S3 and SSM: what each failure means (retry at the
next job, or a ConfigurationError naming the reference). The happy paths run against moto in
tests/integration/test_gate_reference.py."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import pytest
from botocore.exceptions import EndpointConnectionError

from orchestrator.event import Job
from orchestrator.exceptions import DefinitionError
from orchestrator.reference import parse_ref
from orchestrator.sources import DefinitionSources, SourceUnavailable
from tests.fakes import client_error

if TYPE_CHECKING:
    from orchestrator.artifacts import ArtifactContext
    from orchestrator.governance import Governance
    from orchestrator.services import HttpClient
    from orchestrator.targets import AwsTarget

JOB = Job.model_validate({"id": "job-1", "data": {"action_configuration": {}}})
S3_REF, SSM_REF = "s3://gates/prod.json", "ssm:/gates/prod"
S3_HINT = "the function may read only buckets listed in the stack's GateBucketArns"


class Failing:
    """An S3 or SSM client whose one call raises `error`."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def get_object(self, **params: Any) -> Any:
        raise self.error

    def get_parameter(self, **params: Any) -> Any:
        raise self.error


class FakeServices:
    def __init__(self, client: Failing) -> None:
        self.client = client

    @property
    def http(self) -> HttpClient:
        raise AssertionError("no HTTP here")

    @property
    def governance(self) -> Governance:
        raise AssertionError("no freezes or locks in this test")

    def aws(
        self, service: str, *, single_attempt: bool = False, target: AwsTarget | None = None
    ) -> Any:
        assert service in ("s3", "ssm")
        return self.client


def fetch(ref: str, error: Exception) -> None:
    no_artifacts = cast("ArtifactContext", None)  # not reached by s3:// and ssm: references
    DefinitionSources(FakeServices(Failing(error)), no_artifacts).fetch(JOB, parse_ref(ref))


@pytest.mark.parametrize(
    ("ref", "error", "message"),
    [
        (S3_REF, client_error("SlowDown", 503, "GetObject"), "unavailable (SlowDown)"),
        (S3_REF, client_error("InternalError", 500, "GetObject"), "unavailable (InternalError)"),
        (SSM_REF, client_error("ThrottlingException"), "unavailable (ThrottlingException)"),
        (S3_REF, EndpointConnectionError(endpoint_url="https://s3"), "S3 unreachable"),
        (SSM_REF, EndpointConnectionError(endpoint_url="https://ssm"), "SSM unreachable"),
    ],
)
def test_a_busy_or_unreachable_source_is_retried(ref: str, error: Exception, message: str) -> None:
    with pytest.raises(SourceUnavailable) as caught:
        fetch(ref, error)
    assert str(caught.value).startswith(f"gate {ref}: {message}")


@pytest.mark.parametrize(
    ("ref", "error", "message"),
    [
        (
            S3_REF,
            client_error("AccessDenied", 403, "GetObject"),
            f"access denied (AccessDenied); {S3_HINT}",
        ),
        (S3_REF, client_error("403", 403, "HeadObject"), f"access denied (403); {S3_HINT}"),
        (S3_REF, client_error("NoSuchKey", 404, "GetObject"), "not found (NoSuchKey)"),
        (SSM_REF, client_error("ParameterNotFound"), "not found (ParameterNotFound)"),
        (
            "s3://gates/prod.json?versionId=nope",
            client_error("InvalidArgument", 400, "GetObject"),
            "not found (InvalidArgument)",
        ),
        (SSM_REF, client_error("ValidationException"), "could not be read (ValidationException)"),
    ],
)
def test_anything_else_is_a_configuration_error_naming_the_reference(
    ref: str, error: Exception, message: str
) -> None:
    with pytest.raises(DefinitionError) as caught:
        fetch(ref, error)
    assert caught.value.errors == [f"gate {ref}: {message}"]
