"""Artifacts end to end: the handler, called by the CodePipeline emulator, reading input
artifacts and writing output artifacts in moto server's S3, with IAM authentication on.

moto accepts any keys unless told otherwise; here it checks every S3 request against IAM
(`/moto-api/reset-auth`), so only the job's STS credentials (an assumed role allowed on
the artifact bucket) work: the function's own (ambient) keys are refused.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import urllib.request
import uuid
import zipfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.exceptions import ClientError

from orchestrator import _log, handler
from orchestrator.clock import VirtualClock
from orchestrator.local.driver import ActionResult, LambdaContext, run_action
from orchestrator.local.emulator import CodePipelineEmulator
from tests.http_stub import stub_server

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

ACCOUNT = "123456789012"


def trusting(user: str) -> str:
    """A trust policy letting `user` assume the role (standing in for CodePipeline)."""
    principal = {"AWS": f"arn:aws:iam::{ACCOUNT}:user/{user}"}
    statement = {"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def zip_of(files: Mapping[str, bytes | str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def unzip(data: bytes) -> dict[str, str]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name).decode() for name in archive.namelist()}


def set_auth(endpoint: str, count: str) -> str:
    """moto checks IAM after `count` more requests ('0': from now on, 'inf': never)."""
    request = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth",
        data=count.encode(),
        method="POST",
        headers={"Content-Type": "text/plain"},
    )
    with urllib.request.urlopen(request) as response:
        previous: str = json.load(response)["PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"]
    return previous


@dataclass
class Store:
    """The artifact bucket, a bucket the job may not use, the KMS key and the job's keys."""

    endpoint: str
    bucket: str
    other_bucket: str
    kms_key: str
    admin: Any  # S3 client of an IAM user allowed everything: the test's own uploads
    iam: Any
    roles: list[str]
    admin_keys: tuple[str, str]

    def job_credentials(self, role: str | None = None) -> dict[str, str]:
        """Fresh STS keys of a role allowed to get and put objects in `bucket` only."""
        role = role or self.roles[0]
        sts = boto3.client(
            "sts",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.admin_keys[0],
            aws_secret_access_key=self.admin_keys[1],
        )
        found = sts.assume_role(
            RoleArn=f"arn:aws:iam::{ACCOUNT}:role/{role}", RoleSessionName="codepipeline-job"
        )["Credentials"]
        return {
            "accessKeyId": found["AccessKeyId"],
            "secretAccessKey": found["SecretAccessKey"],
            "sessionToken": found["SessionToken"],
        }

    def artifact(self, name: str, key: str, bucket: str | None = None) -> dict[str, Any]:
        location = {"bucketName": bucket or self.bucket, "objectKey": key}
        return {"name": name, "revision": None, "location": {"type": "S3", "s3Location": location}}

    def put(self, key: str, data: bytes, bucket: str | None = None) -> None:
        self.admin.put_object(Bucket=bucket or self.bucket, Key=key, Body=data)

    def get(self, key: str) -> bytes:
        body = self.admin.get_object(Bucket=self.bucket, Key=key)["Body"]
        with body:
            data: bytes = body.read()
        return data


@pytest.fixture
def store(moto_endpoint: str, table_name: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", moto_endpoint)
    suffix = uuid.uuid4().hex[:10]
    bucket, other = f"artifacts-{suffix}", f"elsewhere-{suffix}"
    s3 = boto3.client("s3")
    for name in (bucket, other):
        s3.create_bucket(Bucket=name)
    kms_key = boto3.client("kms").create_key()["KeyMetadata"]["KeyId"]
    iam = boto3.client("iam", endpoint_url=moto_endpoint)
    admin_user = f"admin-{suffix}"
    iam.create_user(UserName=admin_user)
    everything = {"Effect": "Allow", "Action": "*", "Resource": "*"}
    iam.put_user_policy(
        UserName=admin_user,
        PolicyName="all",
        PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [everything]}),
    )
    keys = iam.create_access_key(UserName=admin_user)["AccessKey"]
    admin_keys = (keys["AccessKeyId"], keys["SecretAccessKey"])
    roles = [f"artifacts-a-{suffix}", f"artifacts-b-{suffix}"]
    artifacts_only = {
        "Effect": "Allow",
        "Action": ["s3:GetObject", "s3:PutObject"],
        "Resource": f"arn:aws:s3:::{bucket}/*",
    }
    for role in roles:
        iam.create_role(RoleName=role, AssumeRolePolicyDocument=trusting(admin_user))
        iam.put_role_policy(
            RoleName=role,
            PolicyName="artifacts",
            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [artifacts_only]}),
        )
    admin = boto3.client("s3", aws_access_key_id=admin_keys[0], aws_secret_access_key=admin_keys[1])
    admin_iam = boto3.client(
        "iam",
        endpoint_url=moto_endpoint,
        aws_access_key_id=admin_keys[0],
        aws_secret_access_key=admin_keys[1],
    )
    previous = set_auth(moto_endpoint, "0")
    try:
        yield Store(moto_endpoint, bucket, other, kms_key, admin, admin_iam, roles, admin_keys)
    finally:
        set_auth(moto_endpoint, previous)


class Rig:
    def __init__(self, emulator: CodePipelineEmulator, clock: VirtualClock, table: str) -> None:
        self.emulator, self.clock, self.table = emulator, clock, table
        self.logs = io.StringIO()

    def run(self, definition: Any, **kwargs: Any) -> ActionResult:
        configuration = {"FunctionName": "orchestrator", "UserParameters": json.dumps(definition)}
        kwargs.setdefault("reinvoke_delay", 1.0)
        return run_action(
            self.emulator, handler.lambda_handler, configuration, clock=self.clock, **kwargs
        )

    def all_items(self) -> list[dict[str, Any]]:
        """Runs and pinned definitions (not the links from executions' actions to runs)."""
        items: list[dict[str, Any]] = boto3.client("dynamodb").scan(TableName=self.table)["Items"]
        return [i for i in items if not i["run_id"]["S"].startswith("execution#")]


@pytest.fixture
def rig(store: Store, table_name: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    clock = VirtualClock(speed=600)
    _log.unconfigure()
    with CodePipelineEmulator(clock) as emulator:
        monkeypatch.setenv("AWS_ENDPOINT_URL_CODEPIPELINE", emulator.endpoint_url)
        rig = Rig(emulator, clock, table_name)
        _log.configure("DEBUG", rig.logs)
        handler.use(handler.build_app(clock))
        try:
            yield rig
        finally:
            handler.use(None)
            _log.unconfigure()


BUILD = "in/build.zip"


def health_gate() -> dict[str, Any]:
    return {
        "steps": [
            {
                "name": "health",
                "http": {"url": 'http://${artifacts.BuildOutput."outputs.json".ApiHost}/health'},
                "until": "body.status == 'healthy'",
                "every": "30s",
            }
        ],
        "outputs": {
            "Version": 'artifacts.BuildOutput."version.txt"',
            "Status": "steps.health.body.status",
        },
        "artifacts": {
            "ReportArtifact": {
                "files": {
                    "deploy-info.json": "{status: steps.health.status, version: outputs.Version}"
                }
            }
        },
    }


def run_health_gate(rig: Rig, store: Store, credentials: dict[str, str]) -> ActionResult:
    """The health gate against a stub API whose address is in the build's outputs.json."""
    script = [(200, {"status": "deploying"}), (200, {"status": "healthy"})]
    deleted: list[str] = []

    def on_job(job: Any) -> None:
        # Once the run has its artifacts, the input goes away: later ticks must not need it.
        if not deleted:
            store.admin.delete_object(Bucket=store.bucket, Key=BUILD)
            deleted.append(job.job_id)

    with stub_server(script) as api:
        outputs = {"ApiHost": api.url.removeprefix("http://")}
        store.put(BUILD, zip_of({"outputs.json": json.dumps(outputs), "version.txt": "1.2.3"}))
        result = rig.run(
            health_gate(),
            input_artifacts=[store.artifact("BuildOutput", BUILD)],
            output_artifacts=[
                store.artifact("ReportArtifact", "out/report.zip"),
                store.artifact("GateReport", "out/gate.zip"),
            ],
            artifact_credentials=credentials,
            encryption_key={"id": store.kms_key, "type": "KMS"},
            on_job=on_job,
        )
        assert api.hits == 2
    assert deleted, "the gate ended in one job: the input was never removed"
    return result


def test_a_gate_reads_its_url_from_an_artifact_and_writes_reports_with_kms(
    rig: Rig, store: Store
) -> None:
    result = run_health_gate(rig, store, store.job_credentials())
    assert result.status == "Succeeded", result.failure_message
    assert result.output_variables == {"Version": "1.2.3", "Status": "healthy"}
    info = unzip(store.get("out/report.zip"))
    assert json.loads(info["deploy-info.json"]) == {"status": 200, "version": "1.2.3"}
    gate = unzip(store.get("out/gate.zip"))
    report = json.loads(gate["gate-report.json"])
    assert report["run_id"] == result.jobs[0].job_id and report["status"] == "SUCCEEDED"
    assert [s["name"] for s in report["steps"]] == ["health"]
    assert report["steps"][0]["polls"] == 2 and report["steps"][0]["finished_at"].endswith("Z")
    assert report["outputs"] == json.loads(gate["outputs.json"]) == result.output_variables
    for key in ("out/report.zip", "out/gate.zip"):
        head = store.admin.head_object(Bucket=store.bucket, Key=key)
        assert head["ServerSideEncryption"] == "aws:kms"
        assert head["SSEKMSKeyId"].endswith(store.kms_key)
    # The files read are kept with the run, so later ticks did without the deleted input.
    (item,) = rig.all_items()
    kept = json.loads(item["state"]["S"])["context"]["artifacts"]
    assert kept["BuildOutput"]["version.txt"] == "1.2.3"
    assert list(kept["BuildOutput"]) == ["outputs.json", "version.txt"]


def test_only_the_jobs_own_credentials_reach_the_artifacts_and_new_ones_replace_old(
    rig: Rig, store: Store
) -> None:
    # The function's (ambient) keys are refused by moto's IAM check...
    with pytest.raises(ClientError) as caught:
        boto3.client("s3").head_bucket(Bucket=store.bucket)
    assert caught.value.response["Error"]["Code"] in ("InvalidAccessKeyId", "403")
    store.put(BUILD, zip_of({"version.txt": "2.0.0"}))
    definition = {
        "steps": [{"name": "soak", "wait": "1m"}],
        "outputs": {"Version": 'artifacts.BuildOutput."version.txt"'},
    }
    config = {"FunctionName": "orchestrator", "UserParameters": json.dumps(definition)}
    artifacts: dict[str, Any] = {
        "input_artifacts": [store.artifact("BuildOutput", BUILD)],
        "output_artifacts": [store.artifact("GateReport", "out/rotated.zip")],
    }
    first_keys, second_keys = (
        store.job_credentials(store.roles[0]),
        store.job_credentials(store.roles[1]),
    )
    first = rig.emulator.create_job(config, artifact_credentials=first_keys, **artifacts)
    handler.lambda_handler(first.event, LambdaContext(60))
    assert first.answer is not None and "continuationToken" in first.answer["params"]
    # ...and the first job's keys stop working (its role loses access) before the next job.
    store.iam.delete_role_policy(RoleName=store.roles[0], PolicyName="artifacts")
    revoked = boto3.client(
        "s3",
        aws_access_key_id=first_keys["accessKeyId"],
        aws_secret_access_key=first_keys["secretAccessKey"],
        aws_session_token=first_keys["sessionToken"],
    )
    with pytest.raises(ClientError, match="AccessDenied"):
        revoked.put_object(Bucket=store.bucket, Key="probe", Body=b"")
    rig.clock.advance(61)
    token = first.answer["params"]["continuationToken"]
    second = rig.emulator.create_job(
        config, continuation_token=token, artifact_credentials=second_keys, **artifacts
    )
    handler.lambda_handler(second.event, LambdaContext(60))
    assert second.answer is not None, "no answer"
    params = second.answer["params"]
    assert second.answer["operation"] == "PutJobSuccessResult", params
    assert params["outputVariables"] == {"Version": "2.0.0"}
    assert json.loads(unzip(store.get("out/rotated.zip"))["outputs.json"]) == {"Version": "2.0.0"}


def test_the_job_keys_appear_nowhere(
    rig: Rig, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    credentials = store.job_credentials()  # before capturing: botocore logs STS's answer
    caplog.set_level(logging.DEBUG)
    # botocore's request lines too (the session's canary plugin keeps them at INFO).
    for name in ("botocore.endpoint", "botocore.auth"):
        caplog.set_level(logging.DEBUG, logger=name)
    result = run_health_gate(rig, store, credentials)
    assert result.status == "Succeeded", result.failure_message
    written = [store.get("out/report.zip"), store.get("out/gate.zip")]
    ours = [r.getMessage() for r in caplog.records if not r.name.startswith(("moto", "werkzeug"))]
    haystacks = {
        "our logs": rig.logs.getvalue(),
        "all logs but the S3 server's": "\n".join(ours),
        "items": json.dumps(rig.all_items()),
        "requests": "\n".join(rig.emulator.requests),
        "artifacts": "".join(repr(z) + json.dumps(unzip(z)) for z in written),
    }
    assert "input artifacts read" in haystacks["our logs"]
    assert any(r.name == "botocore.endpoint" for r in caplog.records)
    assert "x-amz-security-token" in haystacks["all logs but the S3 server's"].lower()
    for where, text in haystacks.items():
        for name, value in credentials.items():
            assert value not in text, f"{name} leaked into {where}"


# region bad artifacts: each with its exact failure type and message

GATE = {
    "steps": [{"name": "w", "wait": "1s"}],
    "outputs": {
        "Api": 'artifacts.BuildOutput."outputs.json".ApiHost',
        "Version": 'artifacts.BuildOutput."version.txt"',
    },
}
GOOD = {"outputs.json": '{"ApiHost": "h"}', "version.txt": "1"}
OVER_1MIB = "over the 1048576-byte limit for one file (uncompressed)"


def with_outputs(**outputs: str) -> dict[str, Any]:
    return {**GATE, "outputs": outputs}


BAD: dict[str, tuple[dict[str, Any], Any, str, str]] = {
    # id: (definition, zip content or raw bytes or None (no object), type, message)
    "unknown artifact": (
        with_outputs(X='artifacts.Missing."x.json"'),
        GOOD,
        "ConfigurationError",
        "input artifact 'Missing' is read by the definition but the action has none by "
        "that name (input artifacts: BuildOutput)",
    ),
    "missing file": (
        GATE,
        {"readme.txt": "hi", "version.txt": "1"},
        "JobFailed",
        "input artifact 'BuildOutput' has no file 'outputs.json' (it has: readme.txt, version.txt)",
    ),
    "not json": (
        GATE,
        {"outputs.json": "ApiHost=h", "version.txt": "1"},
        "JobFailed",
        "input artifact 'BuildOutput' file 'outputs.json' is not valid JSON (Expecting "
        "value at line 1 column 1)",
    ),
    "binary": (
        GATE,
        {"outputs.json": "{}", "version.txt": b"\x89PNG\r\n\x1a\n\xff"},
        "JobFailed",
        "input artifact 'BuildOutput' file 'version.txt' is not UTF-8 text; only text and "
        "JSON files can be read",
    ),
    "zip bomb": (
        GATE,
        {"outputs.json": b"\0" * (8 * 1024 * 1024), "version.txt": "1"},
        "JobFailed",
        f"input artifact 'BuildOutput' file 'outputs.json' is {OVER_1MIB}",
    ),
    "too many entries": (
        GATE,
        {**GOOD, **{f"f/{i}": "" for i in range(10_000)}},
        "JobFailed",
        "input artifact 'BuildOutput' at s3://{bucket}/in/bad.zip has 10002 entries, over "
        "the limit of 10000",
    ),
    "oversized download": (
        GATE,
        b"PK" + b"\0" * (20 * 1024 * 1024),
        "JobFailed",
        "input artifact 'BuildOutput' at s3://{bucket}/in/bad.zip is over the "
        "20971520-byte download limit",
    ),
    "not a zip": (
        GATE,
        b"this is not a zip",
        "JobFailed",
        "input artifact 'BuildOutput' at s3://{bucket}/in/bad.zip is not a readable zip "
        "file (File is not a zip file)",
    ),
    "traversal reference": (
        with_outputs(X='artifacts.BuildOutput."../../etc/passwd"'),
        GOOD,
        "ConfigurationError",
        "input artifact 'BuildOutput': file name '../../etc/passwd' is not a safe relative "
        "path (absolute or with '..')",
    ),
    "absolute reference": (
        with_outputs(X='artifacts.BuildOutput."/etc/passwd"'),
        GOOD,
        "ConfigurationError",
        "input artifact 'BuildOutput': file name '/etc/passwd' is not a safe relative path "
        "(absolute or with '..')",
    ),
    "traversal entry": (
        with_outputs(X="artifacts.BuildOutput"),
        {**GOOD, "../outside.txt": "x"},
        "JobFailed",
        "input artifact 'BuildOutput' has an unsafe entry name '../outside.txt' (absolute or "
        "with '..')",
    ),
    "too much to keep": (
        GATE,
        {"outputs.json": json.dumps({"ApiHost": "h" * 70_000}), "version.txt": "1"},
        "JobFailed",
        "input artifacts: more than 65536 bytes of content to keep (at input artifact "
        "'BuildOutput' file 'outputs.json'); read only the files you need, e.g. "
        'artifacts.BuildOutput."outputs.json"',
    ),
    "missing object": (
        GATE,
        None,
        "JobFailed",
        "reading input artifact 'BuildOutput' at s3://{bucket}/in/bad.zip failed: not found "
        "(NoSuchKey)",
    ),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_input_artifacts_fail_clearly(rig: Rig, store: Store, case: str) -> None:
    definition, content, kind, message = BAD[case]
    if content is not None:
        store.put("in/bad.zip", content if isinstance(content, bytes) else zip_of(content))
    result = rig.run(
        definition,
        input_artifacts=[store.artifact("BuildOutput", "in/bad.zip")],
        artifact_credentials=store.job_credentials(),
    )
    assert (result.status, result.failure_type) == ("Failed", kind)
    assert result.failure_message == message.format(bucket=store.bucket)


def test_access_denied_is_a_permission_error_naming_bucket_and_key(rig: Rig, store: Store) -> None:
    store.put("in/build.zip", zip_of(GOOD), bucket=store.other_bucket)
    credentials = store.job_credentials()
    result = rig.run(
        GATE,
        input_artifacts=[store.artifact("BuildOutput", "in/build.zip", store.other_bucket)],
        artifact_credentials=credentials,
    )
    assert (result.status, result.failure_type) == ("Failed", "PermissionError")
    assert result.failure_message == (
        f"access denied reading input artifact 'BuildOutput' at "
        f"s3://{store.other_bucket}/in/build.zip (AccessDenied)"
    )
    assert all(value not in (result.failure_message or "") for value in credentials.values())
    # Writing where the job may not: the run fails at its end, with the same type.
    store.put(BUILD, zip_of(GOOD))
    result = rig.run(
        GATE,
        input_artifacts=[store.artifact("BuildOutput", BUILD)],
        output_artifacts=[store.artifact("GateReport", "out/x.zip", store.other_bucket)],
        artifact_credentials=credentials,
    )
    assert (result.status, result.failure_type) == ("Failed", "PermissionError")
    assert result.failure_message == (
        f"access denied writing output artifact 'GateReport' to "
        f"s3://{store.other_bucket}/out/x.zip (AccessDenied)"
    )


def test_declared_output_artifacts_must_exist_on_the_action(rig: Rig, store: Store) -> None:
    definition = {**GATE, "artifacts": {"Report": {"files": {"a.json": "run"}}}}
    store.put(BUILD, zip_of(GOOD))
    result = rig.run(
        definition,
        input_artifacts=[store.artifact("BuildOutput", BUILD)],
        artifact_credentials=store.job_credentials(),
    )
    assert (result.status, result.failure_type) == ("Failed", "ConfigurationError")
    assert result.failure_message == (
        "artifacts.Report: the action has no output artifact named 'Report' "
        "(output artifacts: none)"
    )


# endregion


# region gates by reference (issue 11): the gate file in the source artifact


def big_gate(steps: int = 40) -> dict[str, Any]:
    """A parameterized gate of several kilobytes: far too big for UserParameters."""
    return {
        "params": {"service": {"required": True}, "stage": {"default": "prod"}},
        "steps": [{"name": f"bake-{index:02d}-{'x' * 50}", "wait": "1s"} for index in range(steps)],
        "outputs": {"Service": "args.service", "Stage": "args.stage", "Steps": "length(steps)"},
    }


def test_a_referenced_gate_in_the_source_artifact_runs_with_the_jobs_keys(
    rig: Rig, store: Store
) -> None:
    import yaml

    source = yaml.safe_dump(big_gate())
    assert len(source) > 3000
    store.put("in/source.zip", zip_of({"gates/prod.yaml": source, "README.md": "app"}))
    params = {"gate": "SourceArtifact::gates/prod.yaml", "args": {"service": "checkout"}}
    assert len(json.dumps(params)) < 90
    changed: list[str] = []

    def on_job(job: Any) -> None:
        # The repository moves on mid-run: the run keeps the definition it pinned.
        if not changed:
            store.put("in/source.zip", zip_of({"gates/prod.yaml": "steps: []\n"}))
            changed.append(job.job_id)

    result = rig.run(
        params,
        input_artifacts=[store.artifact("SourceArtifact", "in/source.zip")],
        artifact_credentials=store.job_credentials(),
        on_job=on_job,
    )
    assert result.status == "Succeeded", result.failure_message
    assert changed and result.rounds > 1
    assert result.output_variables == {"Service": "checkout", "Stage": "prod", "Steps": "40"}
    items = {item["run_id"]["S"]: item for item in rig.all_items()}
    run = items[result.jobs[0].job_id]
    pin = json.loads(run["pin"]["S"])
    assert pin["source"] == "SourceArtifact::gates/prod.yaml"
    assert pin["sha256"] == hashlib.sha256(source.encode()).hexdigest()
    assert json.loads(run["state"]["S"])["context"]["args"] == {
        "service": "checkout",
        "stage": "prod",
    }
    assert set(pin) == {"source", "version", "sha256", "definition"}
    stored = items[f"definition#{pin['definition']}"]
    assert len(stored["definition"]["S"]) > 3000
    # the run item rewritten on every tick does not carry the definition (its expressions)
    assert "length(steps)" in stored["definition"]["S"]
    assert "length(steps)" not in json.dumps(run)


@pytest.mark.parametrize(
    ("gate", "artifact", "expected"),
    [
        (
            "Missing::gates/prod.yaml",
            "SourceArtifact",
            "gate Missing::gates/prod.yaml: the action has no input artifact 'Missing' "
            "(its input artifacts: SourceArtifact)",
        ),
        (
            "SourceArtifact::gates/nope.yaml",
            "SourceArtifact",
            "gate SourceArtifact::gates/nope.yaml: input artifact 'SourceArtifact' has no file "
            "'gates/nope.yaml' (it has: gates/prod.yaml)",
        ),
        (
            "SourceArtifact::gates/prod.yaml",
            "SourceArtifact",
            "gate SourceArtifact::gates/prod.yaml: steps[0].wait: invalid duration 'soon'",
        ),
    ],
)
def test_a_bad_artifact_reference_is_a_configuration_error(
    rig: Rig, store: Store, gate: str, artifact: str, expected: str
) -> None:
    store.put("in/source.zip", zip_of({"gates/prod.yaml": "steps: [{name: a, wait: soon}]\n"}))
    result = rig.run(
        {"gate": gate},
        input_artifacts=[store.artifact(artifact, "in/source.zip")],
        artifact_credentials=store.job_credentials(),
    )
    assert result.status == "Failed" and result.failure_type == "ConfigurationError"
    assert result.failure_message is not None and result.failure_message.startswith(expected)
    assert rig.all_items() == []  # nothing pinned, no run


# endregion
