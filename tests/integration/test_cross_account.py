"""Cross-account and cross-region steps (issue 17), seen on the wire.

The function runs as ever (the handler, the emulator, DynamoDB Local); its AWS calls go
through `tests/aws_wire.py`'s recording proxy to moto's server (and to the Lambda peer).
moto keeps one world per account and maps an assumed role's access key to the role's
account, so alarms, state machines and secrets made in the target account (222233334444,
eu-west-1) exist only for a client holding the role's credentials: a step that did not act
as the role would find nothing. The proxy shows each call's access key id and region in its
SigV4 scope, and answers AssumeRole with STS's own errors where a test says so (moto does
not enforce trust policies).
"""

from __future__ import annotations

import datetime
import json
import uuid
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from orchestrator.services import Services
from orchestrator.targets import Target
from tests.aws_wire import WireProxy
from tests.integration.test_steps_rig import Recorder, StepsRig, moto_config, steps_rig
from tests.lambda_peer import LambdaPeer, checks

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from orchestrator.local.driver import ActionResult

ROLE = "arn:aws:iam::222233334444:role/gate-reader"
EXTERNAL_ID = "release-gates-7f3a"
REGION = "eu-west-1"
TARGET = {"role_arn": ROLE, "external_id": EXTERNAL_ID, "region": REGION}
OWN_KEY = "testingkey"  # tests/conftest.py's FAKE_AWS: the function's own credentials


@pytest.fixture
def wire(moto_endpoint: str) -> Iterator[WireProxy]:
    with WireProxy(moto_endpoint) as proxy:
        yield proxy


@pytest.fixture
def peer() -> Iterator[LambdaPeer]:
    with LambdaPeer({"checks": checks}) as server:
        yield server


@pytest.fixture
def peer_wire(peer: LambdaPeer) -> Iterator[WireProxy]:
    with WireProxy(peer.url) as proxy:
        yield proxy


@pytest.fixture
def rig(
    table_name: str,
    moto_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    wire: WireProxy,
    peer_wire: WireProxy,
) -> Iterator[StepsRig]:
    endpoints = {service: wire.url for service in ("STS", "CLOUDWATCH", "SFN", "SECRETS_MANAGER")}
    endpoints["LAMBDA"] = peer_wire.url
    on = {"stepfunctions": {"execute_state_machine": True}}
    off = {"stepfunctions": {"execute_state_machine": False}}
    with (
        moto_config(moto_endpoint, on, off),
        steps_rig(table_name, moto_endpoint, monkeypatch, endpoints) as built,
    ):
        yield built


def in_target_account(moto_endpoint: str, service: str) -> Any:
    """A client of the target account in its region (the test assumes the role itself,
    straight at moto: the proxy sees only the function's calls)."""
    sts = boto3.client("sts", endpoint_url=moto_endpoint)
    found = sts.assume_role(RoleArn=ROLE, RoleSessionName="test-setup")["Credentials"]
    factory: Any = boto3.client
    return factory(
        service,
        endpoint_url=moto_endpoint,
        region_name=REGION,
        aws_access_key_id=found["AccessKeyId"],
        aws_secret_access_key=found["SecretAccessKey"],
        aws_session_token=found["SessionToken"],
    )


def make_alarms(moto_endpoint: str, prefix: str) -> None:
    cloudwatch = in_target_account(moto_endpoint, "cloudwatch")
    for suffix in ("api", "db"):
        cloudwatch.put_metric_alarm(
            AlarmName=prefix + suffix,
            Namespace="Shop",
            MetricName="Errors",
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=5,
            ComparisonOperator="GreaterThanThreshold",
        )
        cloudwatch.set_alarm_state(AlarmName=prefix + suffix, StateValue="OK", StateReason="ok")


def summaries(result: ActionResult) -> list[str]:
    return [
        job.answer["params"].get("executionDetails", {}).get("summary", "")
        for job in result.jobs
        if job.answer
    ]


def assumed_key(wire: WireProxy, run_id: str, step: str) -> str:
    """The one AssumeRole the function made for this step of this run: its request said
    what the issue asks (role, external id, a traceable session, an hour), and the access
    key moto gave back is the one every call of the step is signed with."""
    calls = [c for c in wire.assume_role_calls() if c.answered_by_proxy is None]
    assert len(calls) == 1, calls
    (call,) = calls
    assert (call.access_key, call.region, call.session_token) == (OWN_KEY, "us-east-1", False)
    assert call.param("RoleArn") == ROLE
    assert call.param("ExternalId") == EXTERNAL_ID
    assert call.param("RoleSessionName") == f"{run_id}-{step}"
    assert call.param("DurationSeconds") == "3600"
    return signing_keys(wire)


def signing_keys(wire: WireProxy) -> str:
    keys = {c.access_key for c in wire.calls if c.service != "sts"}
    assert len(keys) == 1, keys
    (key,) = keys
    assert key.startswith("ASIA") and key != OWN_KEY  # temporary credentials, not ours
    return key


# region each kind, as the role, in the region


def test_alarms_are_read_in_the_target_account_with_one_assume_role(
    rig: StepsRig, wire: WireProxy, moto_endpoint: str
) -> None:
    prefix = f"shop-{uuid.uuid4().hex[:8]}-"
    make_alarms(moto_endpoint, prefix)
    step = {"name": "quiet", "alarms": {"prefix": prefix, "for": "3m"}, "every": "1m", **TARGET}
    result = rig.run({"steps": [step], "outputs": {"N": "length(steps.quiet.alarms)"}})
    assert result.status == "Succeeded", result.failure_message
    assert result.output_variables == {"N": "2"}  # the target account's alarms
    run_id = result.jobs[0].job_id
    key = assumed_key(wire, run_id, "quiet")
    reads = wire.of("monitoring", "DescribeAlarms")
    assert len(reads) >= 2  # polled over several jobs: one AssumeRole for all of them
    assert all((c.region, c.access_key, c.session_token) == (REGION, key, True) for c in reads)
    own = boto3.client("cloudwatch", endpoint_url=moto_endpoint, region_name=REGION)
    assert own.describe_alarms(AlarmNamePrefix=prefix)["MetricAlarms"] == []  # not ours


def test_a_state_machine_is_started_in_the_target_account(
    rig: StepsRig, wire: WireProxy, moto_endpoint: str
) -> None:
    sfn = in_target_account(moto_endpoint, "stepfunctions")
    definition = {
        "StartAt": "Report",
        "States": {"Report": {"Type": "Pass", "Result": {"verdict": "green"}, "End": True}},
    }
    arn = sfn.create_state_machine(
        name=f"smoke-{uuid.uuid4().hex[:8]}",
        definition=json.dumps(definition),
        roleArn="arn:aws:iam::222233334444:role/sfn",
    )["stateMachineArn"]
    assert ":eu-west-1:222233334444:" in arn
    step = {"name": "smoke", "state_machine": {"arn": arn}, "every": "10s", **TARGET}
    result = rig.run({"steps": [step], "outputs": {"Verdict": "steps.smoke.output.verdict"}})
    assert result.status == "Succeeded", result.failure_message
    assert result.output_variables == {"Verdict": "green"}
    key = assumed_key(wire, result.jobs[0].job_id, "smoke")
    calls = wire.of("states")
    assert {c.operation for c in calls} >= {"StartExecution", "DescribeExecution"}
    assert all((c.region, c.access_key) == (REGION, key) for c in calls)
    (execution,) = sfn.list_executions(stateMachineArn=arn)["executions"]
    assert execution["status"] == "SUCCEEDED"


def test_a_function_is_invoked_as_the_role_in_the_region(
    rig: StepsRig, wire: WireProxy, peer_wire: WireProxy, peer: LambdaPeer
) -> None:
    step = {"name": "check", "lambda": {"function": "checks", "payload": {"run": "${run.id}"}}}
    gate = {"steps": [{"name": "bake", "wait": "1m"}, {**step, **TARGET}]}
    result = rig.run({**gate, "outputs": {"Healthy": "steps.check.healthy"}})
    assert result.status == "Succeeded", result.failure_message
    run_id = result.jobs[0].job_id
    assert len(peer.calls) == 1
    (invoke,) = peer_wire.calls
    (assumed,) = wire.assume_role_calls()
    assert assumed.param("RoleSessionName") == f"{run_id}-check"
    assert (invoke.service, invoke.region, invoke.session_token) == ("lambda", REGION, True)
    assert invoke.access_key.startswith("ASIA") and invoke.access_key != OWN_KEY


def test_a_secret_is_read_in_the_target_account(
    rig: StepsRig, wire: WireProxy, moto_endpoint: str
) -> None:
    manager = in_target_account(moto_endpoint, "secretsmanager")
    name = f"itsm-{uuid.uuid4().hex[:8]}"
    manager.create_secret(Name=name, SecretString="Bearer target-account-token-1f2e")
    with Recorder() as itsm:
        header = {"secret": name, **TARGET}
        step = {"name": "itsm", "http": {"url": itsm.url, "headers": {"Authorization": header}}}
        result = rig.run({"steps": [step]})
    assert result.status == "Succeeded", result.failure_message
    assert itsm.requests[0][1]["Authorization"] == "Bearer target-account-token-1f2e"
    key = assumed_key(wire, result.jobs[0].job_id, "itsm")
    (read,) = wire.of("secretsmanager")
    assert (read.operation, read.region, read.access_key) == ("GetSecretValue", REGION, key)


def test_orchestrator_run_shows_the_role_a_step_acted_as(
    dynamodb: Any,
    table_name: str,
    tmp_path: Path,
    wire: WireProxy,
    moto_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from orchestrator.cli import app

    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", wire.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH", wire.url)
    prefix = f"shop-{uuid.uuid4().hex[:8]}-"
    make_alarms(moto_endpoint, prefix)
    gate = tmp_path / "gate.json"
    step = {"name": "quiet", "alarms": {"prefix": prefix}, **TARGET}
    gate.write_text(json.dumps({"steps": [step]}))
    shared = ["--table", table_name, "--data-dir", str(tmp_path)]
    shown = CliRunner().invoke(app, ["run", str(gate), "--speed", "600", *shared])
    assert shown.exit_code == 0, shown.output
    (session,) = [c.param("RoleSessionName") for c in wire.assume_role_calls()]
    assert session is not None and session.endswith("-quiet")
    assert f"step 'quiet' acted as {ROLE} in {REGION} (role session {session})" in " ".join(
        shown.output.split()
    )
    as_json = CliRunner().invoke(app, ["run", str(gate), "--json", *shared])
    (event,) = [e for e in map(json.loads, as_json.output.splitlines()) if e["event"] == "acted_as"]
    assert (event["step"], event["role_arn"], event["region"]) == ("quiet", ROLE, REGION)
    assert event["session"] == f"{event['run_id']}-quiet"


# endregion

# region the cache, refusals, outages


def test_credentials_are_refreshed_before_expiry_by_the_same_client(
    wire: WireProxy, monkeypatch: pytest.MonkeyPatch, aws_env: None
) -> None:
    """One AssumeRole per credentials' lifetime however many calls; 15 minutes before they
    expire, one more, and the client already handed out signs with the new keys."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", wire.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_CLOUDWATCH", wire.url)
    offset = datetime.timedelta()

    def clock() -> datetime.datetime:
        return datetime.datetime.now(datetime.UTC) + offset

    services = Services(region="us-east-1", credentials_clock=clock)
    target = Target(role_arn=ROLE, region=REGION).acting_as("run-1", "quiet")
    client = services.aws("cloudwatch", target=target)
    for _ in range(3):
        assert services.aws("cloudwatch", target=target) is client
        client.describe_alarms()
    assert len(wire.assume_role_calls()) == 1
    first = signing_keys(wire)
    offset = datetime.timedelta(minutes=46)  # 14 minutes left: botocore refreshes
    assert services.aws("cloudwatch", target=target) is client
    assert len(wire.assume_role_calls()) == 2
    # moto's clock did not move: the new credentials expire an hour after *its* now.
    offset = datetime.timedelta()
    client.describe_alarms()
    client.describe_alarms()
    assert len(wire.assume_role_calls()) == 2
    keys = [c.access_key for c in wire.of("monitoring")]
    assert keys[:3] == [first] * 3 and keys[3:] == [keys[3]] * 2 and keys[3] != first


def test_a_denied_assume_role_fails_the_gate_naming_the_role(
    rig: StepsRig, wire: WireProxy
) -> None:
    wire.fail_assume_role("denied")
    step = {"name": "quiet", "alarms": {"prefix": "shop-"}, **TARGET}
    result = rig.run({"steps": [{"name": "bake", "wait": "1m"}, step]})
    assert result.status == "Failed" and result.failure_type == "PermissionError"
    assert result.failure_message == (
        f"step 'quiet': cannot assume role {ROLE} (AccessDenied): its trust policy must allow "
        "sts:AssumeRole to this function's role with the condition sts:ExternalId equal to "
        "the step's external_id, and this function's role needs sts:AssumeRole on it (the "
        "stack's AssumableRoleArns parameter); see docs/DEPLOY.md"
    )
    assert [c.answered_by_proxy for c in wire.assume_role_calls()] == ["denied"]
    assert wire.of("monitoring") == []  # nothing was called with anything else


def test_an_sts_outage_defers_ticks_without_losing_progress(
    rig: StepsRig, wire: WireProxy, moto_endpoint: str
) -> None:
    """Two ticks' worth of STS faults (botocore tries three times per tick): the gate stays
    at its second step, answered in progress, then passes; the first step never reruns."""
    prefix = f"shop-{uuid.uuid4().hex[:8]}-"
    make_alarms(moto_endpoint, prefix)
    wire.fail_assume_role(*["unavailable"] * 3, *["throttled"] * 3)
    step = {"name": "quiet", "alarms": {"prefix": prefix}, "every": "1m", **TARGET}
    result = rig.run({"steps": [{"name": "bake", "wait": "1m"}, step]})
    assert result.status == "Succeeded", result.failure_message
    seen = summaries(result)
    waiting = [i for i, s in enumerate(seen) if "STS unavailable" in s]
    assert [seen[i] for i in waiting[:1]] == [
        f"step 2/2 'quiet': role {ROLE}: STS unavailable (ServiceUnavailable); retrying"
    ]
    assert any("STS unavailable (Throttling); retrying" in s for s in seen)
    assert not any(s.startswith("step 1/2") for s in seen[waiting[0] :])
    assert [c.answered_by_proxy for c in wire.assume_role_calls()] == [
        *["unavailable"] * 3,
        *["throttled"] * 3,
        None,
    ]


# endregion
