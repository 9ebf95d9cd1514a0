"""Secret references: resolution, caching, error messages that name the reference and never
the value, and `http` headers that use them (through the engine)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from pydantic import ValidationError

from orchestrator import engine
from orchestrator.definition import parse_definition
from orchestrator.exceptions import FailureType, TerminalError, TransientError
from orchestrator.model import RunStatus
from orchestrator.secrets import (
    SecretCache,
    SecretError,
    SecretRef,
    SecretUnavailable,
    SecretUnreadable,
    cache_for,
    resolve,
)
from orchestrator.services import HttpResponse
from orchestrator.targets import AwsTarget, RoleDenied, RoleUnavailable
from tests.fakes import ManualClock, client_error

if TYPE_CHECKING:
    from orchestrator.governance import Governance

VALUE = "CANARY-unit-5e1f"


class FakeSecretsManager:
    def __init__(self, secrets: dict[str, str]) -> None:
        self.secrets = secrets
        self.reads = 0
        self.errors: list[Exception] = []

    def get_secret_value(self, SecretId: str) -> dict[str, Any]:
        self.reads += 1
        if self.errors:
            raise self.errors.pop(0)
        if SecretId not in self.secrets:
            raise client_error("ResourceNotFoundException", operation="GetSecretValue")
        return {"Name": SecretId, "SecretString": self.secrets[SecretId]}


class FakeSsm:
    def __init__(self, parameters: dict[str, str]) -> None:
        self.parameters = parameters
        self.calls: list[tuple[str, bool]] = []

    def get_parameter(self, Name: str, WithDecryption: bool) -> dict[str, Any]:
        self.calls.append((Name, WithDecryption))
        if Name not in self.parameters:
            raise client_error("ParameterNotFound", operation="GetParameter")
        return {"Parameter": {"Name": Name, "Type": "SecureString", "Value": self.parameters[Name]}}


class RecordingHttp:
    """Records the headers it gets; with `echo`, answers with them (as httpbin does)."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []
        self.echo = False

    def request(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None, timeout: float
    ) -> HttpResponse:
        self.headers.append(dict(headers))
        if self.echo:
            answer = {"headers": headers, "note": f"you sent {headers.get('Authorization')}"}
            reply = {"content-type": "application/json", "x-echo": str(headers)}
            return HttpResponse(200, reply, json.dumps(answer).encode())
        return HttpResponse(200, {"content-type": "application/json"}, b'{"ok": true}')


class Services:
    def __init__(self, manager: FakeSecretsManager, ssm: FakeSsm | None = None) -> None:
        self.clients = {"secretsmanager": manager, "ssm": ssm or FakeSsm({})}
        self.http = RecordingHttp()
        self.targets: list[AwsTarget | None] = []
        self.role_error: Exception | None = None

    @property
    def governance(self) -> Governance:
        raise AssertionError("no freezes or locks in this test")

    def aws(
        self, service: str, *, single_attempt: bool = False, target: AwsTarget | None = None
    ) -> Any:
        self.targets.append(target)
        if self.role_error is not None and target is not None:
            raise self.role_error
        return self.clients[service]


def test_references_are_validated() -> None:
    assert str(SecretRef(secret="s", json_key="k")) == "secret 's' (key 'k')"
    assert str(SecretRef(parameter="/p")) == "parameter '/p'"
    for bad in ({}, {"secret": "s", "parameter": "/p"}, {"parameter": "/p", "json_key": "k"}):
        with pytest.raises(ValidationError):
            SecretRef.model_validate(bad)


def test_values_plain_json_keys_and_parameters_resolve_with_decryption() -> None:
    manager = FakeSecretsManager({"plain": VALUE, "doc": json.dumps({"token": VALUE, "n": 7})})
    ssm = FakeSsm({"/itsm/token": VALUE})
    services = Services(manager, ssm)
    assert resolve(SecretRef(secret="plain"), services) == VALUE
    assert resolve(SecretRef(secret="doc", json_key="token"), services) == VALUE
    assert resolve(SecretRef(secret="doc", json_key="n"), services) == "7"
    assert resolve(SecretRef(parameter="/itsm/token"), services) == VALUE
    assert ssm.calls == [("/itsm/token", True)]


def test_values_are_cached_per_services_object_for_the_ttl() -> None:
    clock = ManualClock(0.0)
    manager = FakeSecretsManager({"s": VALUE})
    cache = SecretCache(ttl=300, clock=clock.now)
    services = Services(manager)
    for _ in range(3):
        assert cache.resolve(SecretRef(secret="s"), services) == VALUE
    assert manager.reads == 1
    clock.t += 301
    cache.resolve(SecretRef(secret="s"), services)
    assert manager.reads == 2
    assert VALUE not in repr(vars(cache))  # held as SecretStr
    assert cache_for(services) is cache_for(services)
    assert cache_for(services) is not cache_for(Services(manager))


@pytest.mark.parametrize(
    ("ref", "code", "failure_type", "transient", "message"),
    [
        (
            SecretRef(secret="gone"),
            None,
            FailureType.CONFIGURATION_ERROR,
            False,
            "secret 'gone': not found (ResourceNotFoundException)",
        ),
        (
            SecretRef(secret="doc", json_key="nope"),
            None,
            FailureType.CONFIGURATION_ERROR,
            False,
            "secret 'doc' (key 'nope'): the secret has no such key",
        ),
        (
            SecretRef(secret="plain", json_key="token"),
            None,
            FailureType.CONFIGURATION_ERROR,
            False,
            "secret 'plain' (key 'token'): the secret is not a JSON object",
        ),
        (
            SecretRef(secret="plain"),
            "AccessDeniedException",
            FailureType.PERMISSION_ERROR,
            False,
            "secret 'plain': access denied (AccessDeniedException)",
        ),
        (
            SecretRef(secret="plain"),
            "ThrottlingException",
            None,
            True,
            "secret 'plain': unavailable (ThrottlingException)",
        ),
        (  # a refusal of our credentials, as the artifacts code always said ("could not be
            # read", a ConfigurationError, here before the one table)
            SecretRef(secret="plain"),
            "ExpiredTokenException",
            FailureType.PERMISSION_ERROR,
            False,
            "secret 'plain': access denied (ExpiredTokenException)",
        ),
        (
            SecretRef(parameter="/gone"),
            None,
            FailureType.CONFIGURATION_ERROR,
            False,
            "parameter '/gone': not found (ParameterNotFound)",
        ),
    ],
)
def test_errors_name_the_reference_never_the_value(
    ref: SecretRef,
    code: str | None,
    failure_type: FailureType | None,
    transient: bool,
    message: str,
) -> None:
    manager = FakeSecretsManager({"plain": VALUE, "doc": json.dumps({"token": VALUE})})
    if code is not None:
        manager.errors.append(client_error(code, operation="GetSecretValue"))
    with pytest.raises(SecretError) as caught:
        resolve(ref, Services(manager))
    error = caught.value
    found_type = error.failure_type if isinstance(error, SecretUnreadable) else None
    assert (str(error), found_type) == (message, failure_type)
    assert isinstance(error, SecretUnavailable if transient else SecretUnreadable)
    assert isinstance(error, TransientError if transient else TerminalError)


def _http_gate(headers: dict[str, Any]) -> Any:
    step = {"name": "itsm", "http": {"url": "https://itsm.example/c/1", "headers": headers}}
    return parse_definition(json.dumps({"steps": [step], "outputs": {"S": "steps.itsm.status"}}))


def test_http_headers_get_the_value_and_nothing_keeps_it() -> None:
    definition = _http_gate(
        {"Authorization": {"secret": "doc", "json_key": "token"}, "Accept": "application/json"}
    )
    services = Services(FakeSecretsManager({"doc": json.dumps({"token": VALUE})}))
    clock = ManualClock()
    budget = engine.Budget(lambda: 60.0, reserve=1.0)
    state = engine.start(definition, "r1", clock.now())
    state = engine.advance(definition, state, clock.now, budget, services)
    assert state.status is RunStatus.SUCCEEDED
    assert services.http.headers == [{"Authorization": VALUE, "Accept": "application/json"}]
    assert VALUE not in state.model_dump_json()
    assert VALUE not in definition.model_dump_json()


def test_an_unresolvable_header_fails_naming_header_and_reference() -> None:
    definition = _http_gate({"X-Token": {"parameter": "/missing"}})
    services = Services(FakeSecretsManager({}))
    clock = ManualClock()
    budget = engine.Budget(lambda: 60.0, reserve=1.0)
    state = engine.start(definition, "r1", clock.now())
    state = engine.advance(definition, state, clock.now, budget, services)
    assert state.failure is not None
    assert state.failure.type is FailureType.CONFIGURATION_ERROR
    assert state.failure.message == (
        "step 'itsm': header 'X-Token': parameter '/missing': not found (ParameterNotFound)"
    )
    assert services.http.headers == []


def test_a_server_echoing_the_secret_does_not_put_it_into_the_result() -> None:
    definition = _http_gate({"Authorization": {"secret": "plain"}, "Accept": "text/plain"})
    services = Services(FakeSecretsManager({"plain": VALUE}))
    services.http.echo = True
    clock = ManualClock()
    budget = engine.Budget(lambda: 60.0, reserve=1.0)
    state = engine.start(definition, "r1", clock.now())
    state = engine.advance(definition, state, clock.now, budget, services)
    assert state.status is RunStatus.SUCCEEDED
    result = state.steps[0].result
    assert result["body"] == {
        "headers": {"Authorization": "***", "Accept": "text/plain"},
        "note": "you sent ***",
    }
    assert VALUE not in state.model_dump_json()


ROLE = "arn:aws:iam::222233334444:role/itsm-reader"


def test_a_reference_with_a_role_is_read_as_that_role_in_its_region() -> None:
    definition = _http_gate(
        {"Authorization": {"secret": "plain", "role_arn": ROLE, "region": "eu-west-1"}}
    )
    services = Services(FakeSecretsManager({"plain": VALUE}))
    clock = ManualClock()
    budget = engine.Budget(lambda: 60.0, reserve=1.0)
    state = engine.start(definition, "r1", clock.now())
    state = engine.advance(definition, state, clock.now, budget, services)
    assert state.status is RunStatus.SUCCEEDED
    assert services.targets == [AwsTarget(ROLE, None, "eu-west-1", "r1-itsm")]
    assert state.steps[0].memo["acted_as"]["role_arn"] == ROLE
    assert str(SecretRef(secret="s", role_arn=ROLE, region="eu-west-1")) == (
        f"secret 's' as role {ROLE} in eu-west-1"
    )


def test_a_role_that_cannot_be_assumed_is_a_secret_error_naming_both() -> None:
    ref = SecretRef(secret="s", role_arn=ROLE)
    services = Services(FakeSecretsManager({"s": VALUE}))
    services.role_error = RoleDenied(f"cannot assume role {ROLE} (AccessDenied)")
    with pytest.raises(SecretUnreadable) as denied:
        resolve(ref, services)
    assert str(denied.value) == (
        f"secret 's' as role {ROLE}: cannot assume role {ROLE} (AccessDenied)"
    )
    assert denied.value.failure_type is FailureType.PERMISSION_ERROR
    services.role_error = RoleUnavailable(f"role {ROLE}: STS unavailable (Throttling)")
    with pytest.raises(SecretUnavailable, match="STS unavailable"):
        resolve(ref, services)
    services.role_error = None
    assert resolve(ref, services) == VALUE  # nothing was cached from the failures
