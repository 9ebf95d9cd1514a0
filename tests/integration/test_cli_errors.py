"""The CLI on bad input and unreachable services: one clear message and an exit status, never
a traceback (exit 2: the input is wrong; exit 1: a service cannot be reached). And run ids
given by their start, as `runs` shows them cut to the terminal's width."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.model import Answer, AnswerKind, RunRecord, RunState, RunStatus, StepState
from orchestrator.store.dynamodb import DynamoRunStore, bind_model
from tests.integration.test_approval_cli import MOTO, Gate

if TYPE_CHECKING:
    from pathlib import Path

runner = CliRunner()
GATE = '{"steps": [{"name": "w", "wait": "1m", "x": "%s"}]}'


def cli(*args: str) -> Any:
    """catch_exceptions=False: a traceback fails the test instead of becoming exit 1."""
    return runner.invoke(app, list(args), catch_exceptions=False)


def one_message(result: Any, code: int, *parts: str) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and len(result.output.splitlines()) <= 4
    for part in parts:
        assert part in result.output, result.output


# region bad input: exit 2


@pytest.mark.parametrize(
    ("name", "data", "says"),
    [
        ("latin1.json", (GATE % "café").encode("latin-1"), "not UTF-8 text (byte 48"),
        ("utf16.json", (GATE % "x").encode("utf-16"), "a UTF-16 byte-order mark"),
        ("ff.yaml", b"steps:\n- name: w\n  wait: 1m\n  x: \xff\n", "not UTF-8 text (byte 33"),
    ],
    ids=["latin-1", "utf-16", "0xff"],
)
def test_a_file_that_is_not_utf8_is_invalid_not_a_traceback(
    tmp_path: Path, name: str, data: bytes, says: str
) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    one_message(cli("validate", str(path)), 2, f"{path}: invalid", says, "save it as UTF-8")
    ran = cli("run", str(path), "--json", "--data-dir", str(tmp_path))
    assert ran.exit_code == 2, ran.output
    (event,) = [json.loads(line) for line in ran.output.splitlines()]
    assert event["event"] == "invalid" and says in event["errors"][0]


def nested(levels: int) -> str:
    return "[" * levels + "]" * levels


def test_deeply_nested_documents_are_invalid_not_a_traceback(tmp_path: Path) -> None:
    deep = nested(100_000)  # 200 KB of nested arrays
    gate = '{"steps": [{"name": "h", "http": {"url": "https://example.com", "body": %s}}]}'
    step = "steps:\n- name: h\n  http:\n    url: https://example.com\n    body: %s\n"
    lambda_invoke = {"category": "Invoke", "owner": "AWS", "provider": "Lambda", "version": "1"}
    action = {"name": "A", "actionTypeId": lambda_invoke, "configuration": {"FunctionName": "f"}}
    pipeline = {"pipeline": {"name": "p", "stages": [{"name": "S", "actions": [action]}]}}
    files = {
        "gate.json": gate % deep,
        "gate.yaml": step % deep,
        "pipeline.json": json.dumps(pipeline).replace('"f"}', f'"f", "X": {deep}}}'),
    }
    for name, content in files.items():
        path = tmp_path / name
        path.write_text(content)
        one_message(cli("validate", str(path)), 2, f"{path}: invalid", "nested too deeply")
        ran = cli("run", str(path), "--data-dir", str(tmp_path))
        one_message(ran, 2, "nested too deeply")
    # parsed, but deeper than a gate may be: the pipeline loader bounds it as the Lambda does
    path = tmp_path / "deeper.json"
    path.write_text(json.dumps(pipeline).replace('"f"}', f'"f", "X": {nested(900)}}}'))
    one_message(cli("validate", str(path)), 2, "nested more than 64 levels deep")


# endregion
# region unreachable DynamoDB: exit 1 naming the endpoint


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://127.0.0.1:1",  # loopback: the CLI creates the table there first
        "http://0.0.0.0:1",  # any other host: the store's own read fails
    ],
)
def test_an_unreachable_dynamodb_is_named_not_a_traceback(
    endpoint: str, moto_endpoint: str, aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto_endpoint)  # approve asks STS who you are
    commands = [
        ["status", "run-1"],
        ["runs"],
        ["cancel", "run-1", "--by", "me"],
        ["approve", "run-1"],
        ["reject", "run-1", "--comment", "no"],
    ]
    for command in commands:
        result = cli(*command, "--dynamodb-endpoint", endpoint, "--table", "t")
        one_message(result, 1, f"cannot reach DynamoDB at {endpoint}", "Could not connect")


def test_an_unreachable_sts_is_named_not_a_traceback(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:1")
    for command in (["approve", "run-1"], ["reject", "run-1", "--comment", "no"]):
        result = cli(*command, "--dynamodb-endpoint", "http://127.0.0.1:1")
        one_message(
            result,
            1,
            "cannot tell who you are: STS GetCallerIdentity failed (EndpointConnectionError",
            'Could not connect to the endpoint URL: "http://127.0.0.1:1/"',
        )


# endregion
# region run ids by their start


def record(run_id: str, updated_at: float) -> RunRecord:
    state = RunState(
        run_id=run_id,
        started_at=1.0,
        deadline=2.0,
        status=RunStatus.RUNNING,
        steps=[StepState(name="bake", kind="wait")],
    )
    answer = Answer(kind=AnswerKind.IN_PROGRESS, run_id=run_id, summary="baking", token="t")
    return RunRecord(
        version=1,
        nonce="n",
        state=state,
        last_job_id="j",
        last_answer=answer,
        created_at=1.0,
        updated_at=updated_at,
        expires_at=2**40,
    )


def test_a_unique_start_of_a_run_id_names_the_run(table_name: str, tmp_path: Path) -> None:
    store = DynamoRunStore(bind_model(table_name))
    ids = ["5f0c1a2b-aaaa-1111", "5f0c1a2b-aaaa-2222", "9e8d7c6b-bbbb-3333", "7a7a", "7a7a-2"]
    for index, run_id in enumerate(ids):
        store.save(record(run_id, 100.0 + index), None)
    shared = ["--table", table_name, "--data-dir", str(tmp_path)]

    found = cli("status", "9e8d", "--json", *shared)
    assert found.exit_code == 0, found.output
    assert json.loads(found.output)["run_id"] == "9e8d7c6b-bbbb-3333"
    shown = cli("status", "5f0c1a2b-aaaa-2", *shared)
    assert shown.exit_code == 0 and "run 5f0c1a2b-aaaa-2222: RUNNING" in shown.output
    exact = cli("status", "7a7a", "--json", *shared)  # an id that starts another is itself
    assert json.loads(exact.output)["run_id"] == "7a7a"

    ambiguous = cli("status", "5f0c", *shared)
    assert ambiguous.exit_code == 2
    assert f"run id '5f0c' is ambiguous: 2 runs in table {table_name}" in ambiguous.output
    assert "5f0c1a2b-aaaa-1111" in ambiguous.output and "5f0c1a2b-aaaa-2222" in ambiguous.output
    assert "9e8d" not in ambiguous.output
    unknown = cli("status", "0000", *shared)
    assert unknown.exit_code == 1
    assert f"run 0000 is not in the runs table ({table_name})" in unknown.output

    cancelled = cli("cancel", "9e8d7", "--by", "alice", *shared)
    assert cancelled.exit_code == 0, cancelled.output
    assert "cancel of 9e8d7c6b-bbbb-3333 requested by alice" in cancelled.output
    after = store.load("9e8d7c6b-bbbb-3333")
    assert after is not None and after.signals.cancel_requested_by == "alice"
    assert cli("cancel", "5f0c", "--by", "alice", *shared).exit_code == 2
    assert cli("cancel", "0000", "--by", "alice", *shared).exit_code == 1


def test_approve_and_reject_take_the_start_of_a_run_id(
    gate: Gate, table_name: str, tmp_path: Path
) -> None:
    shared = ["--table", table_name, "--data-dir", str(tmp_path)]
    gate.start([MOTO])
    approved = cli("approve", gate.run_id[:8], "--comment", "lgtm", *shared)
    assert approved.exit_code == 0, approved.output
    assert f"approve of step 'signoff' of run {gate.run_id} recorded for {MOTO}" in approved.output
    assert gate.decisions()[MOTO]["decision"] == "approve"
    unknown = cli("reject", "zz" + gate.run_id[:8], "--comment", "no", *shared)
    assert unknown.exit_code == 1 and f"run zz{gate.run_id[:8]} is not in the" in unknown.output
    assert gate.decisions()[MOTO]["decision"] == "approve"


# endregion
