"""Gates referenced from S3 and SSM, end to end: the handler reads them with the function's
own credentials from moto server, pins them in DynamoDB Local, and runs them to outputs."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from tests.rig import Rig, gate_rig

if TYPE_CHECKING:
    from collections.abc import Iterator

GATE = {
    "params": {"service": {"required": True}, "bake": {"default": "2m"}},
    "steps": [
        {"name": "bake", "wait": "${args.bake}"},
        {"name": "soak", "wait": "1m"},
    ],
    "outputs": {"Service": "args.service", "Soaked": "steps.soak.waited_seconds"},
}
CHANGED = {
    "params": {"service": {}, "bake": {"default": "1s"}},
    "steps": [{"name": "other", "wait": "1s"}],
    "outputs": {"Changed": "'yes'"},
}


@pytest.fixture
def rig(moto_endpoint: str, table_name: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SSM", moto_endpoint)
    with gate_rig(table_name, monkeypatch) as rig:
        yield rig


def changing(action: Any) -> tuple[list[str], Any]:
    """An on_job callback that runs `action` once, after the first job was answered."""
    done: list[str] = []

    def on_job(job: Any) -> None:
        if not done:
            action()
            done.append(job.job_id)

    return done, on_job


def pin_of(rig: Rig, run_id: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(rig.item(run_id)["pin"]["S"])
    return found


def test_a_gate_in_a_versioned_s3_bucket_is_pinned_to_the_version_read(rig: Rig) -> None:
    s3 = rig.aws("s3")
    bucket = f"gates-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    first = s3.put_object(Bucket=bucket, Key="prod.json", Body=json.dumps(GATE).encode())
    done, on_job = changing(
        lambda: s3.put_object(Bucket=bucket, Key="prod.json", Body=json.dumps(CHANGED).encode())
    )
    params = {"gate": f"s3://{bucket}/prod.json", "args": {"service": "checkout"}}
    result = rig.run(params, on_job=on_job)
    assert result.status == "Succeeded", result.failure_message
    assert done and result.output_variables["Service"] == "checkout"
    pin = pin_of(rig, result.jobs[0].job_id)
    assert pin["version"] == first["VersionId"] and pin["source"] == params["gate"]
    # a new run reads the new version
    again = rig.run(params)
    assert again.status == "Succeeded" and again.output_variables == {"Changed": "yes"}


def test_a_gate_pinned_by_version_id_in_the_reference(rig: Rig) -> None:
    s3 = rig.aws("s3")
    bucket = f"gates-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    old = s3.put_object(Bucket=bucket, Key="g.yaml", Body=b"steps: [{name: a, wait: 1s}]\n")
    s3.put_object(Bucket=bucket, Key="g.yaml", Body=b"steps: [{name: b, wait: soon}]\n")
    gate = f"s3://{bucket}/g.yaml?versionId={old['VersionId']}"
    result = rig.run({"gate": gate})
    assert result.status == "Succeeded" and result.output_variables == {}


def test_a_gate_in_an_ssm_parameter(rig: Rig) -> None:
    ssm = rig.aws("ssm")
    name = f"/gates/{uuid.uuid4().hex[:10]}"
    ssm.put_parameter(Name=name, Value=json.dumps(GATE), Type="String")
    done, on_job = changing(
        lambda: ssm.put_parameter(Name=name, Value=json.dumps(CHANGED), Overwrite=True)
    )
    result = rig.run(
        {"gate": f"ssm:{name}", "args": {"service": "cart", "bake": "90s"}}, on_job=on_job
    )
    assert result.status == "Succeeded", result.failure_message
    assert done and result.output_variables["Service"] == "cart"
    pin = pin_of(rig, result.jobs[0].job_id)
    assert pin["version"] == "1"
    state = json.loads(rig.item(result.jobs[0].job_id)["state"]["S"])
    assert state["context"]["args"] == {"service": "cart", "bake": "90s"}


def test_a_secure_string_is_refused_and_never_decrypted(rig: Rig) -> None:
    ssm = rig.aws("ssm")
    name = f"/gates/{uuid.uuid4().hex[:10]}"
    ssm.put_parameter(Name=name, Value=json.dumps(GATE), Type="SecureString")
    result = rig.run({"gate": f"ssm:{name}", "args": {"service": "x"}})
    assert result.status == "Failed" and result.failure_type == "ConfigurationError"
    assert result.failure_message is not None
    assert result.failure_message.startswith(f"gate ssm:{name}: a SecureString")
    assert "args.service" not in rig.logs.getvalue()  # the value was not read in clear
    assert rig.items() == []


@pytest.mark.parametrize(
    ("gate", "expected"),
    [
        ("s3://no-such-bucket-{u}/g.json", "not found (NoSuchBucket)"),
        ("s3://{bucket}/missing.json", "not found (NoSuchKey)"),
        ("ssm:/gates/missing-{u}", "not found (ParameterNotFound)"),
        ("s3://{bucket}/bad.yaml", "not valid YAML"),
    ],
)
def test_a_reference_that_cannot_be_read_is_a_configuration_error(
    rig: Rig, gate: str, expected: str
) -> None:
    s3 = rig.aws("s3")
    bucket = f"gates-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="bad.yaml", Body=b"steps: [\n")
    gate = gate.format(bucket=bucket, u=uuid.uuid4().hex[:8])
    result = rig.run({"gate": gate})
    assert result.status == "Failed" and result.failure_type == "ConfigurationError"
    assert result.failure_message is not None
    assert (
        result.failure_message.startswith(f"gate {gate}: ") and expected in result.failure_message
    )
    assert rig.items() == []


def test_an_unreachable_source_is_retried_and_nothing_is_persisted(
    table_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9")  # nothing listens there
    with gate_rig(table_name, monkeypatch) as rig:
        result = rig.run({"gate": "s3://gates/prod.json"}, action_timeout=1800.0)
        assert result.status == "Failed" and result.failure_type == "TimedOut", result
        summaries = [
            (job.answer or {}).get("params", {}).get("executionDetails", {}).get("summary", "")
            for job in result.jobs[:-1]
        ]
        assert summaries and all(
            s == "gate s3://gates/prod.json: S3 unreachable (EndpointConnectionError); "
            "will retry at the next check"
            for s in summaries
        ), summaries
        assert rig.items() == []
    items = boto3.client("dynamodb").scan(TableName=table_name)["Items"]
    assert [i for i in items if not i["run_id"]["S"].startswith("execution#")] == []
