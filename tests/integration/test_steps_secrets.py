"""Secret references end to end: values from Secrets Manager and SSM on moto reach the HTTP
server as headers, and nowhere else: not the logs, the table, CodePipeline or the answers."""

from __future__ import annotations

import json
import logging
import uuid
from typing import TYPE_CHECKING, Any

import pytest

from tests.integration.test_steps_rig import Recorder, StepsRig, steps_rig

if TYPE_CHECKING:
    from collections.abc import Iterator

    from orchestrator.local.driver import ActionResult


@pytest.fixture
def rig(table_name: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[StepsRig]:
    with steps_rig(table_name, moto_endpoint, monkeypatch) as built:
        yield built


def gate(url: str, headers: dict[str, Any]) -> dict[str, Any]:
    return {
        "steps": [
            {"name": "bake", "wait": "1m"},
            {"name": "itsm", "http": {"url": f"{url}/change/42", "headers": headers}},
        ],
        "outputs": {"Status": "steps.itsm.status", "Ok": "steps.itsm.body.ok"},
    }


def put_secrets(rig: StepsRig) -> tuple[dict[str, Any], dict[str, str]]:
    """A JSON secret and a SecureString, holding fresh canaries; their references."""
    suffix = uuid.uuid4().hex[:8]
    canaries = {"token": f"CANARY-sm-{suffix}-7f3a", "key": f"CANARY-ssm-{suffix}-91bd"}
    secret = rig.aws("secretsmanager").create_secret(
        Name=f"itsm/{suffix}", SecretString=json.dumps({"token": canaries["token"], "user": "bot"})
    )
    parameter = f"/itsm/{suffix}/key"
    rig.aws("ssm").put_parameter(Name=parameter, Value=canaries["key"], Type="SecureString")
    headers = {
        "Authorization": {"secret": secret["ARN"], "json_key": "token"},
        "X-Api-Key": {"parameter": parameter},
        "Accept": "application/json",
    }
    return headers, canaries


def assert_nowhere(rig: StepsRig, results: list[ActionResult], caplog: Any, secrets: Any) -> None:
    haystacks = {
        "logs": rig.logs.getvalue() + caplog.text,
        "items": json.dumps(rig.items()),
        "requests to CodePipeline": "\n".join(rig.emulator.requests),
        "answers": json.dumps([job.answer for result in results for job in result.jobs]),
    }
    assert "answered" in haystacks["logs"]  # the logs were captured at all
    for where, text in haystacks.items():
        for secret in secrets:
            assert secret not in text, f"a secret leaked into {where}"


@pytest.mark.parametrize("mode", ["none", "sequential", "concurrent"])
def test_secret_headers_reach_the_server_and_nothing_else(
    rig: StepsRig, caplog: pytest.LogCaptureFixture, mode: str
) -> None:
    caplog.set_level(logging.INFO)  # every logger at INFO (botocore's DEBUG prints bodies)
    headers, canaries = put_secrets(rig)
    with Recorder() as itsm:
        result = rig.run(gate(itsm.url, headers), duplicates=mode, concurrency=3)
    assert result.status == "Succeeded", result.failure_message
    assert result.output_variables == {"Status": "200", "Ok": "true"}
    assert itsm.requests, "the HTTP server was never called"
    for path, received in itsm.requests:
        assert path == "/change/42"
        assert received["Authorization"] == canaries["token"]
        assert received["X-Api-Key"] == canaries["key"]
    assert_nowhere(rig, [result], caplog, canaries.values())


def test_a_missing_secret_fails_naming_the_reference_not_a_value(
    rig: StepsRig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    headers, canaries = put_secrets(rig)
    missing = f"itsm/missing-{uuid.uuid4().hex[:8]}"
    headers["X-Other"] = {"secret": missing}
    with Recorder() as itsm:
        result = rig.run(gate(itsm.url, headers))
    assert result.status == "Failed" and result.failure_type == "ConfigurationError"
    assert result.failure_message == (
        f"step 'itsm': header 'X-Other': secret '{missing}': not found (ResourceNotFoundException)"
    )
    assert itsm.requests == []
    assert_nowhere(rig, [result], caplog, canaries.values())


def test_a_missing_json_key_fails_without_echoing_the_secret(rig: StepsRig) -> None:
    headers, canaries = put_secrets(rig)
    secret = headers["Authorization"]["secret"]
    headers["Authorization"] = {"secret": secret, "json_key": "password"}
    with Recorder() as itsm:
        result = rig.run(gate(itsm.url, headers))
    assert result.status == "Failed" and result.failure_type == "ConfigurationError"
    assert result.failure_message == (
        f"step 'itsm': header 'Authorization': secret '{secret}' (key 'password'): "
        "the secret has no such key"
    )
    assert all(canary not in (result.failure_message or "") for canary in canaries.values())
