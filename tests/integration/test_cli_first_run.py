"""A first run of the CLI: --version, --help for every option, validate --json, timeouts
within AWS's limits, rehearsal times labelled as such."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from typer.core import TyperArgument, TyperGroup
from typer.main import get_command
from typer.testing import CliRunner

from orchestrator import __version__
from orchestrator.cli import app

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
runner = CliRunner()


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"orchestrator {__version__}"


def commands(group: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """Every command and group under `group`, with the words that reach it."""
    found = [(path, group)]
    if isinstance(group, TyperGroup):
        for name, command in group.commands.items():
            found += commands(command, (*path, name))
    return found


def test_every_option_has_help_and_flags_read_as_flags() -> None:
    walked = commands(get_command(app))
    assert len(walked) >= 8  # the group, run, validate, status, runs, cancel, approve, reject
    missing = []
    for path, command in walked:
        result = invoke(*path, "--help")
        assert result.exit_code == 0, path
        assert "<bool>" not in result.output, path
        for param in command.params:
            if not isinstance(param, TyperArgument) and not (param.help or "").strip():
                missing.append(f"{' '.join(path)} {param.opts[0]}")
    assert missing == []


def test_validate_json(tmp_path: Path) -> None:
    ok = invoke("validate", "--json", str(EXAMPLES / "change-gate.json"))
    assert ok.exit_code == 0
    document = json.loads(ok.output)
    assert document["file"].endswith("change-gate.json")
    assert document["valid"] is True and document["errors"] == []
    assert any("fits inline" in note for note in document["notes"])

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"steps": [{"name": "a", "wait": "soon"}]}))
    result = invoke("validate", "--json", str(bad))
    assert result.exit_code == 2
    document = json.loads(result.output)
    assert document["valid"] is False
    assert any("steps[0].wait: invalid duration 'soon'" in e for e in document["errors"])


@pytest.mark.parametrize(
    ("option", "value", "said"),
    [
        ("--lambda-timeout", "16m", "Lambda's maximum function timeout (15 minutes)"),
        ("--reply-timeout", "21m", "CodePipeline's 20 minutes"),
        ("--action-timeout", "25h", "CodePipeline's 24-hour limit"),
        ("--lambda-timeout", "0s", "more than 0s"),
    ],
)
def test_timeouts_beyond_aws_limits_are_refused(
    option: str, value: str, said: str, tmp_path: Path
) -> None:
    gate = tmp_path / "gate.json"  # were the option taken, a second's rehearsal: exit 0
    gate.write_text(json.dumps({"steps": [{"name": "bake", "wait": "1s"}]}))
    result = runner.invoke(app, ["run", str(gate), option, value, "--data-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert option in result.output
    assert said in " ".join(result.output.replace("│", " ").split())


def test_rehearsal_times_are_labelled(dynamodb: Any, table_name: str, tmp_path: Path) -> None:
    shared = ["--table", table_name, "--data-dir", str(tmp_path)]
    gate = tmp_path / "gate.json"
    gate.write_text(json.dumps({"steps": [{"name": "bake", "wait": "2h"}]}))
    result = invoke("run", str(gate), "--speed", "7200", "--reinvoke-delay", "10m", *shared)
    assert result.exit_code == 0, result.output
    (run_id,) = result.output.rsplit("run ids: ", 1)[1].split()

    shown = invoke("status", run_id, *shared)
    assert shown.exit_code == 0, shown.output
    assert "(rehearsal clock, 7200x real time)" in shown.output
    assert " ago " not in shown.output  # virtual: no age against this machine's clock
    as_json = json.loads(invoke("status", run_id, "--json", *shared).output)
    assert as_json["rehearsal_speed"] == 7200

    listed = invoke("runs", *shared)
    assert "rehearsal clock" in listed.output

    real = tmp_path / "real.json"
    real.write_text(json.dumps({"steps": [{"name": "now", "wait": "1s"}]}))
    result = invoke("run", str(real), "--reinvoke-delay", "1s", *shared)
    assert result.exit_code == 0, result.output
    (real_id,) = result.output.rsplit("run ids: ", 1)[1].split()
    shown = invoke("status", real_id, *shared)
    assert "rehearsal clock" not in shown.output and " ago " in shown.output


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_demo_installs_the_cli_extra_only(tmp_path: Path) -> None:
    """`make -n` (what make would run) on a fresh venv: demo, then check."""

    def dry_run(target: str) -> str:
        return subprocess.run(
            ["make", "-n", target, f"VENV={tmp_path / 'venv'}"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    demo = dry_run("demo")
    assert "pip install -q -e '.[cli]'" in demo
    assert ".[dev]" not in demo
    assert "bootstrap.sh --demo" in demo
    for step in ("setup: creating the virtual environment", "setup: installing the orchestrator"):
        assert step in demo
    assert "pip install -q -e '.[dev]'" in dry_run("check")


def test_the_demo_stub_moves_off_a_busy_port_and_says_where(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        stub = [sys.executable, str(EXAMPLES / "itsm_stub.py"), "--port", str(taken)]

        refused = subprocess.run(stub, capture_output=True, text=True, timeout=30, check=False)
        assert refused.returncode == 1
        assert f"cannot listen on 127.0.0.1:{taken}" in refused.stderr

        port_file = tmp_path / "port"
        process = subprocess.Popen(
            [*stub, "--any-port", "--port-file", str(port_file)], stdout=subprocess.DEVNULL
        )
        try:
            for _ in range(300):
                if port_file.exists() and port_file.read_text():
                    break
                assert process.poll() is None, "the stub ended"
                time.sleep(0.05)
            port = int(port_file.read_text())
            assert port != taken
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/change/42") as response:
                assert json.load(response)["id"] == "CHG42"
        finally:
            process.terminate()
            process.wait(timeout=10)
