"""`orchestrator schema`: prints the checked-in schema/gate.schema.json, or writes it."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from orchestrator.cli import app

ROOT = Path(__file__).resolve().parents[2]


def test_schema_prints_the_checked_in_schema() -> None:
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0, result.output
    assert result.stdout == (ROOT / "schema" / "gate.schema.json").read_text(encoding="utf-8")


def test_schema_writes_a_file(tmp_path: Path) -> None:
    target = tmp_path / "gate.schema.json"
    result = CliRunner().invoke(app, ["schema", "--output", str(target)])
    assert result.exit_code == 0, result.output
    assert target.read_text(encoding="utf-8") == (ROOT / "schema" / "gate.schema.json").read_text(
        encoding="utf-8"
    )
