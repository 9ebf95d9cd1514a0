"""The embedded store's server: started once per data folder, shared by later commands,
stopped by `orchestrator local stop`, never confused with someone else's process; and
`orchestrator run` ended by SIGTERM leaves nothing behind but that recorded server."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.local import dynamodb_local

if TYPE_CHECKING:
    from collections.abc import Iterator

runner = CliRunner()


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


@pytest.fixture
def data_dir(tmp_path: Path, aws_env: None) -> Iterator[Path]:
    """A data folder for the embedded store; its server is stopped afterwards, whatever
    the test did."""
    data = tmp_path / "data"
    yield data
    dynamodb_local.stop_shared(data)


def servers_on(data: Path) -> set[int]:
    """The pids of every process whose command line names the folder's DynamoDB data."""
    where = str((data / "dynamodb").resolve())
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            args = dynamodb_local._command_line(int(entry.name))
            if args and "DynamoDBLocal.jar" in " ".join(args) and where in args:
                found.add(int(entry.name))
    return found


def test_a_second_command_reuses_the_server_and_local_stop_ends_it(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = invoke("runs", "--data-dir", str(data_dir))
    assert first.exit_code == 0, first.output
    record = dynamodb_local.read_record(data_dir)
    assert record is not None and dynamodb_local.is_ours(record)
    assert servers_on(data_dir) == {record.pid}

    def no_jvm(*args: object) -> int:
        raise AssertionError("a second JVM was started")

    monkeypatch.setattr(dynamodb_local, "_spawn_detached", no_jvm)
    second = invoke("runs", "--data-dir", str(data_dir))
    assert second.exit_code == 0, second.output
    assert dynamodb_local.read_record(data_dir) == record
    shown = invoke("local", "status", "--data-dir", str(data_dir))
    assert shown.exit_code == 0 and f"pid {record.pid}" in shown.output

    stopped = invoke("local", "stop", "--data-dir", str(data_dir))
    assert stopped.exit_code == 0 and f"pid {record.pid}" in stopped.output
    assert dynamodb_local._command_line(record.pid) is None
    assert servers_on(data_dir) == set()
    assert dynamodb_local.read_record(data_dir) is None
    assert invoke("local", "status", "--data-dir", str(data_dir)).exit_code == 1
    again = invoke("local", "stop", "--data-dir", str(data_dir))
    assert again.exit_code == 0 and "was not running" in again.output


def test_a_stale_record_is_replaced_and_a_foreign_pid_left_alone(data_dir: Path) -> None:
    """The recorded pid is alive but is not DynamoDB Local (this test's own process), and
    the recorded port is open: neither is signalled nor connected to."""
    data_dir.mkdir(parents=True)
    with socket.socket() as foreign:
        foreign.bind(("127.0.0.1", 0))
        foreign.listen()
        foreign.setblocking(False)
        port = foreign.getsockname()[1]
        stale = {"pid": os.getpid(), "port": port, "db_path": "x", "started_at": 0}
        (data_dir / dynamodb_local.RECORD_NAME).write_text(json.dumps(stale))
        result = invoke("runs", "--data-dir", str(data_dir))
        assert result.exit_code == 0, result.output
        with pytest.raises(BlockingIOError):
            foreign.accept()  # nobody connected to the foreign port
    record = dynamodb_local.read_record(data_dir)
    assert record is not None and record.pid != os.getpid() and record.port != port
    assert dynamodb_local.is_ours(record)

    # A dead pid: the server was killed (a reboot, `kill -9`); the next command starts anew.
    os.kill(record.pid, signal.SIGKILL)
    dynamodb_local._signal_and_wait(record.pid)  # gone (reaped when it was our child)
    assert invoke("runs", "--data-dir", str(data_dir)).exit_code == 0
    replaced = dynamodb_local.read_record(data_dir)
    assert replaced is not None and replaced.pid != record.pid
    assert servers_on(data_dir) == {replaced.pid}


def test_sigterm_to_run_stops_what_it_started_but_the_recorded_server(
    data_dir: Path, tmp_path: Path
) -> None:
    path = tmp_path / "gate.json"
    path.write_text(json.dumps({"steps": [{"name": "bake", "wait": "8h"}]}))
    env = {**os.environ, "ORCHESTRATOR_IDLE_CHECK_INTERVAL_SECONDS": "0"}
    command = [sys.executable, "-m", "orchestrator.cli", "run", str(path), "--json"]
    command += ["--speed", "10", "--reinvoke-delay", "1s", "--data-dir", str(data_dir)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as process:
        assert process.stdout is not None
        for line in process.stdout:
            if json.loads(line)["event"] == "round":
                break
        else:
            pytest.fail("the run ended before its first round")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 128 + signal.SIGTERM  # it went through its exits
    record = dynamodb_local.read_record(data_dir)
    assert record is not None and dynamodb_local.is_ours(record)
    assert servers_on(data_dir) == {record.pid}  # the shared, recorded server only
    assert invoke("local", "stop", "--data-dir", str(data_dir)).exit_code == 0
    assert servers_on(data_dir) == set()
