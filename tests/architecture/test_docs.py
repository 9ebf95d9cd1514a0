"""docs/ARCHITECTURE.md names real things: every test it cites is defined, every file exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "ARCHITECTURE.md"


def defined_tests() -> set[str]:
    names = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
                names.add(node.name)
    return names


def test_every_test_the_architecture_doc_names_exists() -> None:
    text = DOC.read_text()
    cited = set(re.findall(r"`(test_\w+)`", text))
    assert len(cited) > 20
    assert sorted(cited - defined_tests()) == []


def test_every_file_the_architecture_doc_names_exists() -> None:
    text = DOC.read_text()
    paths = set(re.findall(r"`((?:tests|orchestrator)/[\w/]+\.py)`", text))
    assert paths
    assert sorted(p for p in paths if not (ROOT / p).is_file()) == []
    for name in re.findall(r"`(test_\w+\.py)`", text):
        assert list((ROOT / "tests").rglob(name)), name
