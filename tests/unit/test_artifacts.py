"""Artifacts against an honest in-memory S3: what is read, what is written, every bad case."""

from __future__ import annotations

import io
import json
import uuid
import zipfile
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from orchestrator.artifacts import ArtifactContext, ArtifactStoreUnavailable, Limits
from orchestrator.artifacts_report import build_zip, gate_report, is_safe_name, references
from orchestrator.definition import GateDefinition, validate_definition
from orchestrator.event import ArtifactCredentials, Job
from orchestrator.exceptions import DefinitionError, FailureType, GateFailed
from orchestrator.model import AnswerKind, RunState, RunStatus, StepState
from orchestrator.services import Services
from orchestrator.tick import Ticker
from tests.events import load_event
from tests.fakes import ManualClock, MemoryStore, RecordingReporter, ScriptedHttp, json_response

BUCKET = "artifact-bucket"


class Body(io.BytesIO):
    """A streaming body that remembers being closed."""


class FakeS3:
    """Objects in a dict; errors as botocore raises them; every call recorded."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}
        self.errors: dict[tuple[str, str], tuple[str, int]] = {}
        self.gets: list[str] = []
        self.puts: list[dict[str, Any]] = []
        self.bodies: list[Body] = []

    def _fail(self, bucket: str, key: str, operation: str) -> None:
        if (bucket, key) in self.errors:
            code, status = self.errors[(bucket, key)]
            response: Any = {
                "Error": {"Code": code},
                "ResponseMetadata": {"HTTPStatusCode": status},
            }
            raise ClientError(response, operation)

    def get_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
        self.gets.append(Key)
        self._fail(Bucket, Key, "GetObject")
        if (Bucket, Key) not in self.objects:
            self.errors[(Bucket, Key)] = ("NoSuchKey", 404)
            self._fail(Bucket, Key, "GetObject")
        body = Body(self.objects[(Bucket, Key)])
        self.bodies.append(body)
        return {"Body": body, "ContentLength": len(body.getvalue())}

    def put_object(self, **params: Any) -> dict[str, Any]:
        self._fail(params["Bucket"], params["Key"], "PutObject")
        self.puts.append(params)
        self.objects[(params["Bucket"], params["Key"])] = params["Body"]
        return {}


class Factory:
    """Client factory recording which credentials each client was built with."""

    def __init__(self, s3: FakeS3) -> None:
        self.s3 = s3
        self.keys: list[str] = []

    def __call__(self, credentials: ArtifactCredentials) -> FakeS3:
        self.keys.append(credentials.access_key_id.get_secret_value())
        return self.s3


def zip_of(files: dict[str, bytes | str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def artifact(name: str, key: str | None = None, bucket: str = BUCKET) -> dict[str, Any]:
    location = {"bucketName": bucket, "objectKey": key or f"{name}.zip"}
    return {"name": name, "revision": None, "location": {"type": "S3", "s3Location": location}}


def make_job(
    definition: dict[str, Any],
    inputs: list[str] = (),  # type: ignore[assignment]
    outputs: list[str] = (),  # type: ignore[assignment]
    key_id: str = "ASIAJOBKEY1",
    token: str | None = None,
    encryption: bool = True,
) -> Job:
    event = load_event(
        actionConfiguration={
            "configuration": {"FunctionName": "f", "UserParameters": json.dumps(definition)}
        },
        inputArtifacts=[artifact(n) for n in inputs],
        outputArtifacts=[artifact(n) for n in outputs],
        artifactCredentials={
            "accessKeyId": key_id,
            "secretAccessKey": f"secret-of-{key_id}",
            "sessionToken": f"token-of-{key_id}",
        },
        continuationToken=token,
        encryptionKey=None if not encryption else {"id": "alias/artifacts", "type": "KMS"},
    )
    event["CodePipeline.job"]["id"] = str(uuid.uuid4())
    return Job.from_event(event)


def state_of(definition: GateDefinition, context: dict[str, Any] | None = None) -> RunState:
    steps = [StepState(name=s.name, kind=s.kind) for s in definition.steps]
    return RunState(
        run_id="run-1", started_at=0.0, deadline=1e9, steps=steps, context=context or {}
    )


URL_GATE = {
    "steps": [
        {"name": "h", "http": {"url": 'http://${artifacts.Build."outputs.json".Host}/health'}}
    ],
    "outputs": {"Version": 'artifacts.Build."version.txt"'},
}


@pytest.fixture
def s3() -> FakeS3:
    store = FakeS3()
    store.objects[(BUCKET, "Build.zip")] = zip_of(
        {
            "outputs.json": json.dumps({"Host": "api.internal:8080"}),
            "version.txt": "1.2.3\n",
            "big.bin": bytes(range(256)) * 10,
        }
    )
    return store


def gather(
    definition: dict[str, Any],
    s3: FakeS3,
    inputs: list[str] = ("Build",),  # type: ignore[assignment]
    outputs: list[str] = (),  # type: ignore[assignment]
    limits: Limits | None = None,
) -> dict[str, Any]:
    parsed = validate_definition(definition)
    context = ArtifactContext(limits=limits, client_factory=Factory(s3))
    return context.gather(make_job(definition, inputs, outputs), parsed, state_of(parsed))


def failure(definition: dict[str, Any], s3: FakeS3, **kwargs: Any) -> tuple[str, str]:
    with pytest.raises(GateFailed) as caught:
        gather(definition, s3, **kwargs)
    return caught.value.failure_type.value, str(caught.value)


# region what is read


def test_references_name_artifacts_and_files_wherever_the_run_context_is_read() -> None:
    definition = validate_definition(
        {
            "steps": [
                {"name": "h", "http": {"url": 'http://${artifacts.A."o.json".Host}/x'}},
                {"name": "w", "wait": "1m"},
            ],
            "outputs": {
                "V": 'artifacts.A."v.txt"',
                "I": 'artifacts.B."list.json"[0]',
                "M": "merge(artifacts.C, steps.h)",
                "F": "steps.h.body[?id == artifacts.Z]",  # relative to each element
            },
            "artifacts": {"R": {"files": {"copy.json": 'artifacts.D."cfg/app.json"'}}},
        }
    )
    wanted = references(definition)
    assert not wanted.everything
    assert wanted.files == {
        "A": {"o.json", "v.txt"},
        "B": {"list.json"},
        "C": None,
        "D": {"cfg/app.json"},
    }
    for whole in ("artifacts.A.*", "keys(artifacts)", "@", "artifacts"):
        other = validate_definition(
            {"steps": [{"name": "w", "wait": "1m"}], "outputs": {"X": whole}}
        )
        assert references(other).everything or references(other).files == {"A": None}
    plain = validate_definition(
        {"steps": [{"name": "w", "wait": "1m"}], "outputs": {"R": "run.id"}}
    )
    assert not references(plain)


def test_only_the_named_files_are_kept_json_parsed_and_text_as_strings(s3: FakeS3) -> None:
    factory = Factory(s3)
    parsed = validate_definition(URL_GATE)
    job = make_job(URL_GATE, ["Build", "Other"], key_id="ASIAFIRST")
    found = ArtifactContext(client_factory=factory).gather(job, parsed, state_of(parsed))
    assert found == {
        "artifacts": {
            "Build": {"outputs.json": {"Host": "api.internal:8080"}, "version.txt": "1.2.3\n"}
        }
    }
    assert s3.gets == ["Build.zip"] and factory.keys == ["ASIAFIRST"]
    assert all(body.closed for body in s3.bodies)


def test_nothing_is_read_without_references_or_when_the_run_already_has_them(s3: FakeS3) -> None:
    factory = Factory(s3)
    context = ArtifactContext(client_factory=factory)
    plain = {"steps": [{"name": "w", "wait": "1m"}]}
    parsed = validate_definition(plain)
    assert context.gather(make_job(plain, ["Build"]), parsed, state_of(parsed)) == {}
    gate = validate_definition(URL_GATE)
    done = state_of(gate, {"artifacts": {"Build": {}}})
    assert context.gather(make_job(URL_GATE, ["Build"]), gate, done) == {}
    assert factory.keys == [] and s3.gets == []


def test_an_undetermined_reference_reads_whole_artifacts_within_bounds(s3: FakeS3) -> None:
    s3.objects[(BUCKET, "Build.zip")] = zip_of({"a.txt": "A", "d/b.json": "[1]", "d/": ""})
    found = gather(
        {"steps": [{"name": "w", "wait": "1m"}], "outputs": {"K": "keys(artifacts)"}}, s3
    )
    assert found == {"artifacts": {"Build": {"a.txt": "A", "d/b.json": [1]}}}


# endregion
# region bad artifacts


def test_an_artifact_the_action_does_not_have_is_a_configuration_error(s3: FakeS3) -> None:
    definition = {"steps": [{"name": "w", "wait": "1m"}], "outputs": {"X": 'artifacts.Nope."a"'}}
    assert failure(definition, s3) == (
        "ConfigurationError",
        "input artifact 'Nope' is read by the definition but the action has none by that "
        "name (input artifacts: Build)",
    )
    assert failure(definition, s3, inputs=[])[1].endswith("(input artifacts: none)")


@pytest.mark.parametrize("name", ["../secret.json", "/etc/passwd", "a/../../b", "C:/x"])
def test_unsafe_file_names_in_references_are_refused(s3: FakeS3, name: str) -> None:
    definition = {
        "steps": [{"name": "w", "wait": "1m"}],
        "outputs": {"X": f'artifacts.Build."{name}"'},
    }
    assert failure(definition, s3) == (
        "ConfigurationError",
        f"input artifact 'Build': file name {name!r} is not a safe relative path "
        "(absolute or with '..')",
    )
    assert s3.gets == []


CONTENT_CASES: dict[str, tuple[dict[str, bytes | str], str]] = {
    "missing file": (
        {"readme.txt": "hi"},
        "input artifact 'Build' has no file 'outputs.json' (it has: readme.txt)",
    ),
    "not json": (
        {"outputs.json": "{oops", "version.txt": "1"},
        "input artifact 'Build' file 'outputs.json' is not valid JSON "
        "(Expecting property name enclosed in double quotes at line 1 column 2)",
    ),
    "NaN": (
        {"outputs.json": "[NaN]", "version.txt": "1"},
        "input artifact 'Build' file 'outputs.json' is not valid JSON (NaN is not JSON)",
    ),
    "binary": (
        {"outputs.json": "{}", "version.txt": b"\xff\xfe\x00"},
        "input artifact 'Build' file 'version.txt' is not UTF-8 text; only text and JSON "
        "files can be read",
    ),
    "zip bomb": (
        {"outputs.json": b"0" * (2 * 1024 * 1024), "version.txt": "1"},
        "input artifact 'Build' file 'outputs.json' is over the 1048576-byte limit for one "
        "file (uncompressed)",
    ),
}


@pytest.mark.parametrize("case", CONTENT_CASES)
def test_bad_content_fails_the_job_clearly(s3: FakeS3, case: str) -> None:
    files, message = CONTENT_CASES[case]
    s3.objects[(BUCKET, "Build.zip")] = zip_of(files)
    assert failure(URL_GATE, s3) == ("JobFailed", message)
    assert all(body.closed for body in s3.bodies)


def test_a_lying_size_header_cannot_make_a_read_unbounded(s3: FakeS3) -> None:
    data = bytearray(zip_of({"outputs.json": b"[" + b"1," * 5000 + b"1]", "version.txt": "1"}))
    # Claim 10 bytes in the central directory: zipfile reads at most that, then the CRC fails.
    at = data.find(b"PK\x01\x02")  # the first central directory entry: outputs.json
    data[at + 24 : at + 28] = (10).to_bytes(4, "little")
    s3.objects[(BUCKET, "Build.zip")] = bytes(data)
    kind, message = failure(URL_GATE, s3)
    assert kind == "JobFailed"
    assert message == (
        f"input artifact 'Build' at s3://{BUCKET}/Build.zip is not a readable zip file "
        "(Bad CRC-32 for file 'outputs.json')"
    )


def test_size_entry_and_kept_limits(s3: FakeS3) -> None:
    limits = Limits(max_download_bytes=4000, max_entries=3, max_kept_bytes=100)
    where = f"s3://{BUCKET}/Build.zip"
    s3.objects[(BUCKET, "Build.zip")] = b"x" * 4001
    assert failure(URL_GATE, s3, limits=limits) == (
        "JobFailed",
        f"input artifact 'Build' at {where} is over the 4000-byte download limit",
    )
    s3.objects[(BUCKET, "Build.zip")] = zip_of({f"f{i}.txt": "" for i in range(4)})
    assert failure(URL_GATE, s3, limits=limits) == (
        "JobFailed",
        f"input artifact 'Build' at {where} has 4 entries, over the limit of 3",
    )
    s3.objects[(BUCKET, "Build.zip")] = zip_of({"outputs.json": "{}", "version.txt": "v" * 120})
    assert failure(URL_GATE, s3, limits=limits) == (
        "JobFailed",
        "input artifacts: more than 100 bytes of content to keep (at input artifact 'Build' "
        "file 'version.txt'); read only the files you need, e.g. "
        'artifacts.Build."outputs.json"',
    )
    s3.objects[(BUCKET, "Build.zip")] = b"not a zip"
    assert failure(URL_GATE, s3) == (
        "JobFailed",
        f"input artifact 'Build' at {where} is not a readable zip file (File is not a zip file)",
    )


def test_unsafe_entries_are_refused_when_reading_a_whole_artifact(s3: FakeS3) -> None:
    s3.objects[(BUCKET, "Build.zip")] = zip_of({"ok.txt": "", "../evil.txt": "x"})
    definition = {"steps": [{"name": "w", "wait": "1m"}], "outputs": {"X": "artifacts.Build"}}
    assert failure(definition, s3) == (
        "JobFailed",
        "input artifact 'Build' has an unsafe entry name '../evil.txt' (absolute or with '..')",
    )


@pytest.mark.parametrize(
    ("code", "status", "kind", "message"),
    [
        ("AccessDenied", 403, "PermissionError", "access denied reading input artifact 'Build' at"),
        ("InvalidAccessKeyId", 403, "PermissionError", "access denied reading input artifact"),
        ("NoSuchKey", 404, "JobFailed", "reading input artifact 'Build' at"),
        ("InvalidObjectState", 400, "JobFailed", "reading input artifact 'Build' at"),
    ],
)
def test_s3_errors_name_the_bucket_and_key_never_the_keys(
    s3: FakeS3, code: str, status: int, kind: str, message: str
) -> None:
    s3.errors[(BUCKET, "Build.zip")] = (code, status)
    found_kind, found = failure(URL_GATE, s3)
    assert found_kind == kind and found.startswith(message)
    assert f"s3://{BUCKET}/Build.zip" in found and code in found
    assert "ASIAJOBKEY1" not in found and "secret-of" not in found and "token-of" not in found


def test_s3_faults_are_transient(s3: FakeS3) -> None:
    s3.errors[(BUCKET, "Build.zip")] = ("SlowDown", 503)
    with pytest.raises(ArtifactStoreUnavailable):
        gather(URL_GATE, s3)

    class Unreachable(FakeS3):
        def get_object(self, *, Bucket: str, Key: str) -> dict[str, Any]:
            raise EndpointConnectionError(endpoint_url="http://s3")

    with pytest.raises(ArtifactStoreUnavailable, match="EndpointConnectionError"):
        gather(URL_GATE, Unreachable())


def test_a_job_without_credentials_cannot_read() -> None:
    parsed = validate_definition(URL_GATE)
    event = load_event(
        actionConfiguration={"configuration": {"UserParameters": json.dumps(URL_GATE)}},
        inputArtifacts=[artifact("Build")],
        artifactCredentials=None,
    )
    with pytest.raises(GateFailed, match=r"^cannot read input artifact 'Build': the job carries"):
        ArtifactContext().gather(Job.from_event(event), parsed, state_of(parsed))


# endregion
# region definitions and output artifacts


def test_the_artifacts_section_is_validated_with_field_paths() -> None:
    base: dict[str, Any] = {"steps": [{"name": "w", "wait": "1m"}]}
    cases = {
        "artifacts.R.files: invalid file name '../x': use a relative path without '..' "
        "(e.g. 'report.json')": {"R": {"files": {"../x": "run"}}},
        "artifacts.R.files.a: invalid JMESPath expression '[[': Invalid jmespath "
        "expression: Incomplete expression:": {"R": {"files": {"a": "[["}}},
        "artifacts.R.extra: unknown field": {"R": {"files": {"a": "run"}, "extra": 1}},
        "artifacts: invalid output artifact name 'bad name': use A-Z a-z 0-9 _ -": {
            "bad name": {"files": {"a": "run"}}
        },
    }
    for message, section in cases.items():
        with pytest.raises(DefinitionError) as caught:
            validate_definition({**base, "artifacts": section})
        assert str(caught.value) == message
    assert not is_safe_name("a/./b") and is_safe_name("dir/file.json")


def test_declared_output_artifacts_must_be_the_actions(s3: FakeS3) -> None:
    definition = {
        "steps": [{"name": "w", "wait": "1m"}],
        "artifacts": {"Report": {"files": {"a.json": "run"}}},
    }
    assert failure(definition, s3, outputs=["Other"]) == (
        "ConfigurationError",
        "artifacts.Report: the action has no output artifact named 'Report' "
        "(output artifacts: Other)",
    )


def finished_state(definition: GateDefinition) -> RunState:
    state = state_of(definition, {"artifacts": {"Build": {"version.txt": "1.2.3"}}})
    for index, step in enumerate(state.steps):
        step.started_at, step.finished_at, step.polls = 60.0 * index, 60.0 * index + 30, 2
    state.steps[-1].result = {"approved_by": ["alice"], "comment": "ok"}
    state.status, state.ended_at, state.outputs = RunStatus.SUCCEEDED, 200.0, {"V": "1.2.3"}
    return state


def unzip(data: bytes) -> dict[str, str]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name).decode() for name in archive.namelist()}


def test_finish_writes_the_declared_files_and_the_default_report_with_kms(s3: FakeS3) -> None:
    raw = {
        "steps": [{"name": "w", "wait": "1m"}, {"name": "approve", "wait": "1m"}],
        "outputs": {"V": 'artifacts.Build."version.txt"'},
        "artifacts": {
            "Info": {"files": {"info.json": "{v: outputs.V, run: run.id}", "v.txt": "outputs.V"}}
        },
    }
    definition = validate_definition(raw)
    state = finished_state(definition)
    job = make_job(raw, ["Build"], ["Info", "Report"], key_id="ASIALATER")
    factory = Factory(s3)
    ArtifactContext(client_factory=factory).finish(job, definition, state)
    assert factory.keys == ["ASIALATER"]
    assert [p["Key"] for p in s3.puts] == ["Info.zip", "Report.zip"]
    for put in s3.puts:
        assert put["ServerSideEncryption"] == "aws:kms" and put["SSEKMSKeyId"] == "alias/artifacts"
        assert put["Bucket"] == BUCKET and put["ContentType"] == "application/zip"
    info = unzip(s3.puts[0]["Body"])
    assert json.loads(info["info.json"]) == {"v": "1.2.3", "run": "run-1"}
    assert info["v.txt"] == "1.2.3"
    report = unzip(s3.puts[1]["Body"])
    assert json.loads(report["outputs.json"]) == {"V": "1.2.3"}
    assert json.loads(report["gate-report.json"]) == gate_report(state)
    assert gate_report(state)["steps"][1] == {
        "name": "approve",
        "kind": "wait",
        "started_at": "1970-01-01T00:01:00Z",
        "finished_at": "1970-01-01T00:01:30Z",
        "polls": 2,
        "result": {"approved_by": ["alice"], "comment": "ok"},
        "approved_by": ["alice"],
    }
    # Idempotent: the same run writes the same bytes to the same keys; no KMS key, no SSE.
    first = [p["Body"] for p in s3.puts]
    ArtifactContext(client_factory=factory).finish(job, definition, state)
    assert [p["Body"] for p in s3.puts[2:]] == first
    plain = make_job(raw, ["Build"], ["Info"], encryption=False)
    ArtifactContext(client_factory=factory).finish(plain, definition, state)
    assert "ServerSideEncryption" not in s3.puts[-1]
    assert build_zip([("a", b"x")], 0.0) == build_zip([("a", b"x")], 0.0)


def test_finish_errors(s3: FakeS3) -> None:
    raw = {
        "steps": [{"name": "w", "wait": "1m"}],
        "artifacts": {"R": {"files": {"a": "abs(run.id)"}}},
    }
    definition = validate_definition(raw)
    context = ArtifactContext(client_factory=Factory(s3))
    with pytest.raises(GateFailed) as caught:
        context.finish(make_job(raw, [], ["R"]), definition, finished_state(definition))
    assert caught.value.failure_type is FailureType.CONFIGURATION_ERROR
    assert str(caught.value).startswith("artifacts.R.files.a: In function abs(), invalid type")
    s3.errors[(BUCKET, "Report.zip")] = ("AccessDenied", 403)
    with pytest.raises(GateFailed) as caught:
        context.finish(make_job(raw, [], ["Report"]), definition, finished_state(definition))
    assert (caught.value.failure_type, str(caught.value)) == (
        FailureType.PERMISSION_ERROR,
        f"access denied writing output artifact 'Report' to s3://{BUCKET}/Report.zip "
        "(AccessDenied)",
    )
    nothing = Factory(s3)
    ArtifactContext(client_factory=nothing).finish(
        make_job(raw), definition, finished_state(definition)
    )
    assert nothing.keys == []


# endregion
# region through the tick


def test_through_the_tick_read_once_written_at_the_end_with_each_jobs_keys(s3: FakeS3) -> None:
    raw = {**URL_GATE, "steps": [{"name": "w", "wait": "1m"}, *URL_GATE["steps"]]}
    factory = Factory(s3)
    http = ScriptedHttp([json_response(200, '{"ok": true}')])
    clock, store = ManualClock(), MemoryStore()
    reporter = RecordingReporter()
    ticker = Ticker(
        store,
        reporter,
        clock,
        services=Services(http=http),
        job_context=ArtifactContext(client_factory=factory),
    )
    first = make_job(raw, ["Build"], ["Report"], key_id="ASIAKEYONE")
    answer = ticker.handle(first, lambda: 30.0).answer
    assert answer.kind is AnswerKind.IN_PROGRESS
    assert "1.2.3" in store.items[first.id] and "secret-of" not in store.items[first.id]
    clock.t += 61
    second = make_job(raw, ["Build"], ["Report"], key_id="ASIAKEYTWO", token=answer.token)
    answer = ticker.handle(second, lambda: 30.0).answer
    assert answer.kind is AnswerKind.SUCCEEDED and answer.outputs == {"Version": "1.2.3\n"}
    assert http.requests == [("GET", "http://api.internal:8080/health")]
    assert s3.gets == ["Build.zip"]  # read once, by the first job
    assert factory.keys == ["ASIAKEYONE", "ASIAKEYTWO"]  # each job's own keys
    assert [p["Key"] for p in s3.puts] == ["Report.zip"]


# endregion


def test_the_documented_definitions_are_valid() -> None:
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "ARTIFACTS.md").read_text()
    blocks = [block.split("```", 1)[0] for block in text.split("```json\n")[1:]]
    assert len(blocks) == 2
    first, second = (validate_definition(json.loads(block)) for block in blocks)
    assert references(first).files == {
        "BuildOutput": {"outputs.json", "version.txt", "config/deploy.json"}
    }
    assert list(second.artifacts["ReportArtifact"].files) == [
        "deploy-info.json",
        "status.txt",
        "gate-report.json",
    ]
