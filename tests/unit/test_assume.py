"""`orchestrator.assume`: what is asked of STS, what its refusals mean, how long credentials
are kept. The STS client is a fake answering as boto3's does (a dict, or a ClientError); the
wire-level proof against moto is tests/integration/test_cross_account.py."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any, cast

import pytest
from botocore.exceptions import EndpointConnectionError

from orchestrator import assume
from orchestrator.assume import DURATION_SECONDS, MAX_SESSIONS, RoleSessions
from orchestrator.aws import client_config
from orchestrator.exceptions import FailureType
from orchestrator.targets import AwsTarget, RoleDenied, RoleUnavailable
from tests.fakes import client_error

if TYPE_CHECKING:
    from mypy_boto3_sts import STSClient

ROLE = "arn:aws:iam::222233334444:role/gate-reader"
T0 = datetime.datetime(2027, 1, 1, 12, 0, tzinfo=datetime.UTC)
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"


class FakeSts:
    """AssumeRole answering with fresh credentials for an hour, or the next scripted error."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.requests: list[dict[str, Any]] = []
        self.errors: list[Exception] = []

    def assume_role(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        if self.errors:
            raise self.errors.pop(0)
        n = len(self.requests)
        expires = self.clock.now() + datetime.timedelta(seconds=request["DurationSeconds"])
        return {
            "Credentials": {
                "AccessKeyId": f"ASIAFAKE{n:08d}",
                "SecretAccessKey": f"{SECRET}{n}",
                "SessionToken": f"token-{n}-" + "x" * 40,
                "Expiration": expires,
            }
        }


class Clock:
    def __init__(self) -> None:
        self.at = T0

    def now(self) -> datetime.datetime:
        return self.at


def sessions() -> tuple[RoleSessions, FakeSts, Clock]:
    clock = Clock()
    sts = FakeSts(clock)
    roles = RoleSessions("us-east-1", now=clock.now, sts=lambda: cast("STSClient", sts))
    return roles, sts, clock


def target(step: str = "quiet", external_id: str | None = None) -> AwsTarget:
    return AwsTarget(ROLE, external_id, "eu-west-1", f"run-1-{step}")


def get(roles: RoleSessions, to: AwsTarget, service: str = "cloudwatch") -> Any:
    return roles.client(service, to, client_config(), False)


def test_one_assume_role_per_session_for_every_client_and_call() -> None:
    roles, sts, _ = sessions()
    first = get(roles, target(external_id="release-gates"))
    assert get(roles, target(external_id="release-gates")) is first
    get(roles, target(external_id="release-gates"), "stepfunctions")
    assert sts.requests == [
        {
            "RoleArn": ROLE,
            "RoleSessionName": "run-1-quiet",
            "DurationSeconds": DURATION_SECONDS,
            "ExternalId": "release-gates",
        }
    ]
    assert first.meta.region_name == "eu-west-1"
    get(roles, target("smoke"))  # another step: its own session, for CloudTrail
    assert [r["RoleSessionName"] for r in sts.requests] == ["run-1-quiet", "run-1-smoke"]
    assert "ExternalId" not in sts.requests[1]


def test_credentials_are_refreshed_before_they_expire_not_before() -> None:
    roles, sts, clock = sessions()
    get(roles, target())
    clock.at = T0 + datetime.timedelta(minutes=44)
    get(roles, target())
    assert len(sts.requests) == 1
    clock.at = T0 + datetime.timedelta(minutes=46)  # inside botocore's 15-minute window
    get(roles, target())
    assert len(sts.requests) == 2
    get(roles, target())
    assert len(sts.requests) == 2


def test_a_failed_refresh_in_the_last_minutes_raises_before_the_call() -> None:
    roles, sts, clock = sessions()
    get(roles, target())
    sts.errors = [client_error("Throttling", 400, "AssumeRole")]
    clock.at = T0 + datetime.timedelta(minutes=52)  # mandatory refresh: 8 minutes left
    with pytest.raises(RoleUnavailable, match="STS unavailable"):
        get(roles, target())
    get(roles, target())  # STS back: refreshed
    assert len(sts.requests) == 3


def test_a_failed_refresh_with_time_left_keeps_the_current_credentials() -> None:
    roles, sts, clock = sessions()
    get(roles, target())
    sts.errors = [client_error("Throttling", 400, "AssumeRole")]
    clock.at = T0 + datetime.timedelta(minutes=47)  # advisory refresh: 13 minutes left
    get(roles, target())  # no error: botocore keeps the current credentials for now
    assert len(sts.requests) == 2


def test_at_most_max_sessions_are_kept() -> None:
    roles, sts, _ = sessions()
    for n in range(MAX_SESSIONS + 1):
        get(roles, target(f"s{n}"))
    get(roles, target(f"s{MAX_SESSIONS}"))  # the most recent: still kept
    assert len(sts.requests) == MAX_SESSIONS + 1
    get(roles, target("s0"))  # the least recently used went first
    assert len(sts.requests) == MAX_SESSIONS + 2


@pytest.mark.parametrize(
    ("error", "kind", "failure_type", "message"),
    [
        (
            client_error("AccessDenied", 403, "AssumeRole"),
            RoleDenied,
            FailureType.PERMISSION_ERROR,
            f"cannot assume role {ROLE} (AccessDenied): its trust policy must allow "
            "sts:AssumeRole to this function's role with the condition sts:ExternalId equal "
            "to the step's external_id, and this function's role needs sts:AssumeRole on it "
            "(the stack's AssumableRoleArns parameter); see docs/DEPLOY.md",
        ),
        (
            client_error("ValidationError", 400, "AssumeRole"),
            RoleDenied,
            FailureType.CONFIGURATION_ERROR,
            f"cannot assume role {ROLE} (ValidationError)",
        ),
        (
            client_error("RegionDisabledException", 403, "AssumeRole"),
            RoleDenied,
            FailureType.CONFIGURATION_ERROR,
            f"cannot assume role {ROLE} (RegionDisabledException): STS is not activated in "
            "the function's region for the role's account (IAM account settings)",
        ),
        (
            client_error("Throttling", 400, "AssumeRole"),
            RoleUnavailable,
            None,
            f"role {ROLE}: STS unavailable (Throttling)",
        ),
        (
            client_error("InternalFailure", 500, "AssumeRole"),
            RoleUnavailable,
            None,
            f"role {ROLE}: STS unavailable (InternalFailure)",
        ),
        (
            EndpointConnectionError(endpoint_url="https://sts.us-east-1.amazonaws.com"),
            RoleUnavailable,
            None,
            f"role {ROLE}: STS unreachable (EndpointConnectionError)",
        ),
    ],
)
def test_sts_errors_mean_what_the_step_must_do(
    error: Exception,
    kind: type[Exception],
    failure_type: FailureType | None,
    message: str | None,
) -> None:
    roles, sts, _ = sessions()
    sts.errors = [error]
    with pytest.raises(kind) as caught:
        get(roles, target(external_id="release-gates"))
    if message is not None:
        assert str(caught.value) == message
    if isinstance(caught.value, RoleDenied):
        assert caught.value.failure_type is failure_type
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    get(roles, target(external_id="release-gates"))  # a failure is not kept: asked again
    assert len(sts.requests) == 2


def test_without_an_external_id_the_message_says_so() -> None:
    roles, sts, _ = sessions()
    sts.errors = [client_error("AccessDenied", 403, "AssumeRole")]
    with pytest.raises(RoleDenied, match="with no sts:ExternalId condition: the step gives no"):
        get(roles, target())


def test_credentials_never_reach_a_message_or_the_target() -> None:
    roles, _, _ = sessions()
    get(roles, target())
    assert SECRET not in repr(target()) and SECRET not in str(target())
    assert SECRET not in repr(vars(roles))  # held inside botocore's credentials only
    assert assume.DURATION_SECONDS <= 3600  # role chaining's limit
