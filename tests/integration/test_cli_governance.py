"""`orchestrator freeze|unfreeze|freezes|locks|unlock` through typer's CliRunner: the caller's
identity from STS (moto's, `arn:aws:sts::123456789012:user/moto`), the records in DynamoDB
Local, read back through the same Governance the function uses."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.governance import Claimant, Governance, LockMode
from orchestrator.store.dynamodb import DynamoRunStore, bind_model
from orchestrator.store.governance import DynamoGovernanceStore
from orchestrator.text import format_instant

if TYPE_CHECKING:
    from pathlib import Path

MOTO = "arn:aws:sts::123456789012:user/moto"
runner = CliRunner()


def cli(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture
def shared(
    dynamodb: Any,
    table_name: str,
    moto_endpoint: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> list[str]:
    """Every command on the session's DynamoDB Local (AWS_ENDPOINT_URL_DYNAMODB) and STS on
    moto's server."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto_endpoint)
    return ["--table", table_name, "--data-dir", str(tmp_path)]


@pytest.fixture
def governance(table_name: str) -> Governance:
    return Governance(DynamoGovernanceStore(bind_model(table_name)))


def test_freeze_records_the_sts_identity_the_reason_and_the_end(
    shared: list[str], governance: Governance
) -> None:
    until = time.time() + 3 * 86400
    stamp = format_instant(until, "iso")
    result = cli("freeze", "payments", "--reason", "quarter end", "--until", stamp, *shared)
    assert result.exit_code == 0, result.output
    assert f"payments is frozen by {MOTO} since " in result.output
    assert ": quarter end" in result.output
    assert "windows that name it close at their next poll" in result.output
    on = governance.active("payments", time.time())
    assert on is not None
    assert (on.by, on.reason) == (MOTO, "quarter end")
    assert on.until == pytest.approx(int(until))  # the instant, to the second
    assert governance.active("payments", until + 1) is None  # ends by itself


def test_unfreeze_is_audited_and_freezes_lists_who_set_and_lifted(
    shared: list[str], governance: Governance
) -> None:
    assert cli("freeze", "payments", "--reason", "incident 42", *shared).exit_code == 0
    assert (
        cli("freeze", "checkout", "--reason", "load test", "--until", "4h", *shared).exit_code == 0
    )
    listed = cli("freezes", "--json", *shared)
    assert listed.exit_code == 0, listed.output
    by_name = {f["name"]: f for f in json.loads(listed.output)}
    assert sorted(by_name) == ["checkout", "payments"]
    assert by_name["payments"]["on"] is True
    assert by_name["payments"]["current"]["by"] == MOTO
    lifted = cli("unfreeze", "payments", "--reason", "resolved", *shared)
    assert lifted.exit_code == 0, lifted.output
    assert f"payments lifted by {MOTO}: resolved (it was frozen by {MOTO} since " in lifted.output
    assert governance.active("payments", time.time()) is None
    document = {f["name"]: f for f in json.loads(cli("freezes", "--json", *shared).output)}
    payments = document["payments"]
    assert payments["on"] is False and payments["current"] is None
    trail = [(e["action"], e["by"], e["reason"]) for e in payments["history"]]
    assert trail == [("set", MOTO, "incident 42"), ("lifted", MOTO, "resolved")]
    table = cli("freezes", "--history", *shared)
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0].startswith(f"checkout: on, frozen by {MOTO} since ")
    assert lines[0].endswith(": load test") and " until " in lines[0]
    assert lines[1].startswith(f"payments: lifted by {MOTO} at ")
    assert f": resolved (was frozen by {MOTO} since " in lines[1]
    assert lines[1].endswith(": incident 42)")
    events = [line for line in lines[2:] if line.startswith("payments: ")]
    assert events[0].startswith(f"payments: set by {MOTO} at ")
    assert events[0].endswith(": incident 42")
    assert events[1].startswith(f"payments: lifted by {MOTO} at ")
    assert events[1].endswith(": resolved")
    again = cli("unfreeze", "payments", *shared)
    assert again.exit_code == 1
    assert "payments is not frozen: nothing to lift" in again.output


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["freeze", "pay ments", "--reason", "r"], "invalid name 'pay ments'"),
        (["freeze", "payments", "--reason", "  "], "give a reason"),
        (["freeze", "payments"], "Missing option '--reason'"),
        (["freeze", "payments", "--reason", "r", "--until", "2020-01-01T00:00Z"], "has passed"),
        (["freeze", "payments", "--reason", "r", "--until", "2030-01-01T00:00"], "no time zone"),
        (["freeze", "payments", "--reason", "r", "--until", "soon"], "give an instant"),
        (["unlock", "prod-eu", "--reason", "r"], "add --force"),
        (["unlock", "prod-eu", "--force"], "give a reason"),
    ],
)
def test_bad_input_exits_2_saying_what_is_wrong(
    shared: list[str], governance: Governance, args: list[str], expected: str
) -> None:
    result = cli(*args, *shared)
    assert result.exit_code == 2, result.output
    assert expected in " ".join(result.output.split())  # rich wraps the usage box
    assert "Traceback" not in result.output
    assert governance.freezes() == [] and governance.locks() == []


def test_locks_shows_holders_and_queues_and_a_forced_unlock_is_audited(
    shared: list[str], governance: Governance
) -> None:
    now = time.time()
    for who in ("exec-a", "exec-b", "exec-c"):
        governance.acquire(
            "prod-eu", Claimant(who, f"run-{who}", "shop"), LockMode.SEQUENTIAL, 3600, 600, now
        )
    listed = cli("locks", *shared)
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert lines[0].startswith("prod-eu: held by execution exec-a (shop) since ")
    assert ", lease ends " in lines[0]
    assert lines[1].startswith("  1. waiting: execution exec-b (shop), sequential, since ")
    assert lines[2].startswith("  2. waiting: execution exec-c (shop), sequential, since ")
    document = json.loads(cli("locks", "--json", *shared).output)
    assert [d["held_by"] for d in document] == ["exec-a"]
    assert [w["execution"] for w in document[0]["queue"]] == ["exec-b", "exec-c"]
    forced = cli("unlock", "prod-eu", "--force", "--reason", "exec-a is stuck", *shared)
    assert forced.exit_code == 0, forced.output
    assert "prod-eu taken from execution exec-a (held since " in forced.output
    assert f"by {MOTO}: exec-a is stuck" in forced.output
    record = governance.lock("prod-eu")
    assert record is not None and record.holder is None
    event = record.history[-1]
    assert (event.action, event.execution, event.by, event.reason) == (
        "forced",
        "exec-a",
        MOTO,
        "exec-a is stuck",
    )
    history = cli("locks", "--history", *shared)
    assert f"prod-eu: forced (exec-a) by {MOTO} at " in history.output
    again = cli("unlock", "prod-eu", "--force", "--reason", "again", *shared)
    assert again.exit_code == 1 and "prod-eu is not held: nothing to unlock" in again.output


def test_nothing_to_list_says_so(shared: list[str]) -> None:
    assert cli("freezes", *shared).output.strip() == "no freezes"
    assert cli("locks", *shared).output.strip() == "no locks"


def test_freezes_and_locks_are_no_runs(
    shared: list[str], governance: Governance, table_name: str
) -> None:
    assert cli("freeze", "payments", "--reason", "r", *shared).exit_code == 0
    governance.acquire("prod-eu", Claimant("e", "r"), LockMode.SEQUENTIAL, 60, 600, time.time())
    runs = cli("runs", "--json", *shared)
    assert runs.exit_code == 0 and json.loads(runs.output) == []
    store = DynamoRunStore(bind_model(table_name))
    assert store.load("freeze#payments") is None and store.load("lock#prod-eu") is None
    status = cli("status", "freeze#payments", *shared)
    assert status.exit_code == 1 and "is not in the runs table" in status.output


def test_an_unreachable_table_is_one_line_not_a_traceback(
    moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, aws_env: None
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto_endpoint)
    from orchestrator.local.dynamodb_local import free_port

    endpoint = f"http://127.0.0.1:{free_port()}"
    args = ["--table", "t", "--data-dir", str(tmp_path), "--dynamodb-endpoint", endpoint]
    for command in (["freeze", "payments", "--reason", "r"], ["locks"], ["freezes"]):
        result = cli(*command, *args)
        assert result.exit_code == 1, result.output
        assert result.output.startswith(f"cannot reach DynamoDB at {endpoint}")
        assert "Traceback" not in result.output
