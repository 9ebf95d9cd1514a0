"""The README's snippets are real: its gate definitions parse, its settings exist, its
commands exist, and its Makefile targets are there."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.main import get_command

from orchestrator.cli import app
from orchestrator.definition import parse_definition
from orchestrator.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def test_every_json_snippet_is_a_valid_gate_definition() -> None:
    snippets = blocks("json")
    assert snippets
    for snippet in snippets:
        parse_definition(snippet)


def test_documented_settings_are_the_real_ones() -> None:
    documented = set(re.findall(r"`ORCHESTRATOR_([A-Z_]+)`", README))
    real = {name.upper() for name in Settings.model_fields}
    assert documented == real


def test_documented_commands_exist() -> None:
    commands = set(get_command(app).commands)  # type: ignore[attr-defined]
    documented = set(re.findall(r"^orchestrator (\w+)", "\n".join(blocks("text")), re.M))
    assert documented and documented <= commands


def test_the_two_commands_are_make_targets() -> None:
    (sh,) = blocks("sh")[:1]
    targets = re.findall(r"^make (\w+)", sh, re.M)
    makefile = (ROOT / "Makefile").read_text()
    assert targets == ["demo", "check"]
    for target in targets:
        assert re.search(rf"^{target}:", makefile, re.M)
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make check" in ci


def test_example_gates_are_valid() -> None:
    for path in (ROOT / "examples").glob("*gate*.json"):
        parse_definition(json.dumps(json.loads(path.read_text())))
