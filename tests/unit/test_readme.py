"""The README's snippets are real: its gate definitions parse, its settings exist, its
commands exist, and its Makefile targets are there."""

from __future__ import annotations

import json
import re
from pathlib import Path

from typer.main import get_command

from orchestrator.cli import app
from orchestrator.definition import parse_definition
from orchestrator.reference import (
    Reference,
    check_inline_length,
    expand,
    load_document,
    read_user_parameters,
)
from orchestrator.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def test_every_json_snippet_is_valid_user_parameters() -> None:
    """Each is read as the function reads UserParameters: a gate, or a reference to one
    (whose file, when it is an example, expands with the snippet's args)."""
    snippets = blocks("json")
    assert snippets
    references = 0
    for snippet in snippets:
        spec = read_user_parameters(snippet)
        if isinstance(spec, Reference):
            references += 1
            check_inline_length(snippet)
            path = ROOT / "examples" / spec.ref.path
            expand(load_document(path.read_bytes(), path.name, str(path)), spec.arg_map, "")
    assert references == 1


def test_the_references_doc_snippets_are_real() -> None:
    doc = (ROOT / "docs" / "REFERENCES.md").read_text()
    (reference,) = re.findall(r"```json\n(.*?)```", doc, flags=re.DOTALL)
    spec = read_user_parameters(reference)
    assert isinstance(spec, Reference)
    (template,) = re.findall(r"```yaml\n(.*?)```", doc, flags=re.DOTALL)
    raw, args = expand(load_document(template.encode(), "g.yaml", "doc"), spec.arg_map, "doc")
    assert args["bake"] == "10m" and raw["steps"][1]["http"]["url"] == spec.arg_map["url"]
    commands = re.findall(r"^orchestrator (\w+)", doc, flags=re.M)
    assert set(commands) == {"validate", "run"}


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


SEPARATOR = re.compile(r"^\|(\s*:?-+:?\s*\|)+\s*$")


def broken_tables(text: str) -> list[str]:
    """Lines where a Markdown table does not start with its header and separator rows.

    A blank line inside a table ends it: the rows after it are no table, and render as a
    paragraph of pipes. Fenced code blocks are skipped.
    """
    problems, block, fenced = [], [], False
    for number, line in enumerate([*text.splitlines(), ""], start=1):
        if line.startswith("```"):
            fenced = not fenced
        if not fenced and line.lstrip().startswith("|"):
            block.append((number, line.strip()))
            continue
        if block and (len(block) < 2 or not SEPARATOR.match(block[1][1])):
            problems.append(f"line {block[0][0]}: {block[0][1][:60]}")
        block = []
    return problems


def test_broken_tables_are_found() -> None:
    table = "| a | b |\n| --- | ---: |\n| 1 | 2 |\n"
    assert broken_tables(table) == []
    assert broken_tables(f"```text\n| not | a table |\n```\n{table}") == []
    assert broken_tables(table.replace("| 1 |", "\n| 1 |")) == ["line 4: | 1 | 2 |"]


def test_every_markdown_table_has_its_rows_together() -> None:
    """No blank line inside a table, in the README or the docs."""
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        assert broken_tables(path.read_text()) == [], path.name


def test_the_reliability_doc_states_the_rendered_test_count() -> None:
    """A test count in docs/RELIABILITY.md is the one the README's rendered section shows."""
    rendered = README.split("<!-- reliability:start -->", 1)[1].split("<!-- reliability:end -->")[0]
    (passed,) = re.findall(r"(\d[\d,]*) tests passed", rendered)
    doc = (ROOT / "docs" / "RELIABILITY.md").read_text()
    for stated in re.findall(r"(\d[\d,]*) (?:reliability )?tests\b", doc):
        assert stated == passed, f"docs/RELIABILITY.md says {stated} tests, the README {passed}"


def test_the_whole_gates_in_docs_steps_validate() -> None:
    """Every json block of docs/STEPS.md that is a whole gate (it has "steps") is valid."""
    doc = (ROOT / "docs" / "STEPS.md").read_text()
    gates = [
        found
        for block in re.findall(r"```json\n(.*?)```", doc, flags=re.DOTALL)
        if isinstance(found := _json_or_none(block), dict) and "steps" in found
    ]
    assert len(gates) >= 2
    for found in gates:
        parse_definition(json.dumps(found))


def _json_or_none(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return None
