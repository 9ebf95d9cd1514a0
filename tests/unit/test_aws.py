"""The one AWS error table and the one client configuration, on real botocore objects."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
    ResponseStreamingError,
)

from orchestrator import __version__, aws
from orchestrator.aws import AwsFault
from tests.architecture.test_imports import imports_of

THROTTLED, UNAVAILABLE, DENIED = AwsFault.THROTTLED, AwsFault.UNAVAILABLE, AwsFault.DENIED
NOT_FOUND, INVALID = AwsFault.NOT_FOUND, AwsFault.INVALID


def answer(code: str | None, status: int | None = 400) -> ClientError:
    """A ClientError as botocore raises it for a service's error response."""
    response: Any = {"Error": {"Message": "m"}}  # keys missing as a service may leave them
    if code is not None:
        response["Error"]["Code"] = code
    if status is not None:
        response["ResponseMetadata"] = {"HTTPStatusCode": status, "RequestId": "r"}
    return ClientError(response, "Operation")


@pytest.mark.parametrize(
    ("code", "status", "fault"),
    [
        # by code, whatever the status
        ("ThrottlingException", 400, THROTTLED),
        ("Throttling", 400, THROTTLED),  # CloudWatch
        ("SlowDown", 503, THROTTLED),  # S3
        ("TooManyRequestsException", 429, THROTTLED),
        ("EC2ThrottledException", 502, THROTTLED),  # Lambda
        ("InternalError", 500, UNAVAILABLE),
        ("ServiceUnavailable", 503, UNAVAILABLE),
        ("ResourceNotReadyException", 502, UNAVAILABLE),  # Lambda: being updated
        ("AccessDeniedException", 400, DENIED),
        ("AccessDenied", 403, DENIED),
        ("InvalidAccessKeyId", 403, DENIED),
        ("AuthorizationError", 403, DENIED),  # SNS
        ("NoSuchKey", 404, NOT_FOUND),
        ("NoSuchBucket", 404, NOT_FOUND),
        ("ParameterNotFound", 400, NOT_FOUND),  # SSM: a 400
        ("ResourceNotFoundException", 400, NOT_FOUND),  # Secrets Manager: a 400
        ("StateMachineDoesNotExist", 400, NOT_FOUND),
        ("404", 404, NOT_FOUND),  # S3 HEAD: no body
        ("ValidationException", 400, INVALID),
        ("InvalidParameterValueException", 400, INVALID),
        ("ExecutionAlreadyExists", 400, INVALID),
        # by pattern
        ("Throttled", 400, THROTTLED),  # SNS
        ("RequestThrottledSomething", 400, THROTTLED),
        ("EC2AccessDeniedException", 502, DENIED),  # Lambda: a 502 no retry mends
        # by status, for codes the table does not know
        ("SomethingNew", 429, THROTTLED),
        ("SomethingNew", 500, UNAVAILABLE),
        ("SomethingNew", 503, UNAVAILABLE),
        ("ENILimitReachedException", 502, UNAVAILABLE),  # Lambda: capacity, may pass
        ("SomethingNew", 401, DENIED),
        ("SomethingNew", 403, DENIED),
        ("SomethingNew", 404, NOT_FOUND),
        ("SomethingNew", 400, INVALID),
        ("SomethingNew", 409, INVALID),
        (None, 503, UNAVAILABLE),
        (None, None, INVALID),
    ],
)
def test_a_service_answer_is_classified_by_code_then_pattern_then_status(
    code: str | None, status: int | None, fault: AwsFault
) -> None:
    assert aws.classify(answer(code, status)) is fault


@pytest.mark.parametrize(
    ("code", "status", "fault"),
    [
        # The sites' own rules disagreed on these; the table settles each once.
        ("RequestTimeout", 400, UNAVAILABLE),  # S3: transient (secrets called it a bad read)
        ("ExpiredToken", 400, DENIED),  # a refusal of our keys (artifacts' view)
        ("ExpiredTokenException", 400, DENIED),
        ("KMSAccessDeniedException", 502, DENIED),  # refused, not an outage (lambda retried)
        ("KMS.AccessDeniedException", 403, DENIED),
        ("Forbidden", 403, DENIED),
        ("SomethingNew", 429, THROTTLED),  # 429 is throttling everywhere now
        ("SomethingNew", 403, DENIED),  # secrets and alarms ignored the status
        ("InvalidArgument", 400, INVALID),  # S3's generic refusal (sources reads it itself)
    ],
)
def test_codes_the_call_sites_disagreed_on(code: str, status: int, fault: AwsFault) -> None:
    assert aws.classify(answer(code, status)) is fault


@pytest.mark.parametrize(
    "error",
    [
        EndpointConnectionError(endpoint_url="https://s3"),
        ConnectTimeoutError(endpoint_url="https://s3"),
        ReadTimeoutError(endpoint_url="https://s3"),
        ConnectionClosedError(endpoint_url="https://s3"),
        ResponseStreamingError(error="cut"),
        NoCredentialsError(),
        OSError("reading the body failed"),
    ],
)
def test_no_answer_is_unavailable(error: Exception) -> None:
    assert aws.classify(error) is UNAVAILABLE
    assert aws.error_code(error) == "" and aws.http_status(error) == 0
    assert aws.describe(error) == type(error).__name__


def test_only_throttled_and_unavailable_are_transient() -> None:
    assert {fault for fault in AwsFault if fault.transient} == {THROTTLED, UNAVAILABLE}


def test_messages_name_the_code_or_the_exception_class_never_the_text() -> None:
    error = answer("AccessDenied", 403)
    assert (aws.error_code(error), aws.http_status(error), aws.describe(error)) == (
        "AccessDenied",
        403,
        "AccessDenied",
    )
    assert aws.describe(answer(None, 500)) == "error"
    assert aws.describe(ReadTimeoutError(endpoint_url="https://secret.example/?t=1")) == (
        "ReadTimeoutError"
    )


def test_a_lost_answer_may_have_taken_effect_a_refused_connection_not() -> None:
    assert aws.may_have_taken_effect(ReadTimeoutError(endpoint_url="https://lambda"))
    assert aws.may_have_taken_effect(ConnectionClosedError(endpoint_url="https://lambda"))
    assert not aws.may_have_taken_effect(EndpointConnectionError(endpoint_url="https://lambda"))
    assert not aws.may_have_taken_effect(ConnectTimeoutError(endpoint_url="https://lambda"))
    assert not aws.may_have_taken_effect(answer("ServiceException", 500))


def test_every_client_counts_total_attempts_and_names_us(monkeypatch: pytest.MonkeyPatch) -> None:
    # botocore-stubs type Config's parameters, not the attributes it keeps them in.
    config: Any = aws.client_config(attempts=2, connect_timeout=3, read_timeout=10)
    assert config.retries == {"mode": "standard", "total_max_attempts": 2}
    assert (config.connect_timeout, config.read_timeout) == (3, 10)
    assert config.user_agent_extra == f"codepipeline-orchestrator/{__version__}"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = boto3.client("sns", region_name="eu-west-1", config=aws.client_config())
    built: Any = client.meta.config
    assert built.retries == {"mode": "standard", "total_max_attempts": 3}
    assert f"codepipeline-orchestrator/{__version__}" in built.user_agent_extra


def test_the_module_loads_no_aws_sdk_until_it_is_used() -> None:
    tops = {name.split(".")[0] for name in imports_of("orchestrator.aws")}
    assert not tops & {"boto3", "botocore"}, tops
