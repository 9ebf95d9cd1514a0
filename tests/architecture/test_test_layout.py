"""tests/unit holds fast, pure tests: no server, no subprocess, no DynamoDB Local, no moto.

Those belong in tests/integration (real local services), tests/reliability (faults through
them), tests/package (the template and the Lambda package) or here. A source scan, so a
unit test module that breaks the rule fails before it runs anything.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "tests" / "unit"

# Modules that start processes or servers (or exist to): DynamoDB Local, moto's server,
# loopback HTTP servers, the CodePipeline emulator and the rigs built on them.
FORBIDDEN_MODULES = (
    "subprocess",
    "multiprocessing",
    "moto",
    "http.server",
    "socketserver",
    "orchestrator.local.dynamodb_local",
    "orchestrator.local.emulator",
    "orchestrator.local.runner",
    "tests.http_stub",
    "tests.rig",
)
FORBIDDEN_NAMES = frozenset(
    {
        "HTTPServer",
        "ThreadingHTTPServer",
        "ThreadedMotoServer",
        "DynamoDBLocal",
        "CodePipelineEmulator",
        "serve_forever",
    }
)
# Session fixtures (tests/conftest.py) that start DynamoDB Local or moto's server.
SERVER_FIXTURES = frozenset({"dynamodb_endpoint", "moto_endpoint", "dynamodb", "table_name"})


def _forbidden(module: str) -> bool:
    return any(module == f or module.startswith(f"{f}.") for f in FORBIDDEN_MODULES)


def problems_in(source: str) -> list[str]:
    """What in a test module's source starts, or may start, a server or a process."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"imports {a.name}" for a in node.names if _forbidden(a.name)]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            base = node.module or ""
            for alias in node.names:
                if _forbidden(base) or _forbidden(f"{base}.{alias.name}"):
                    found.append(f"imports {base}.{alias.name}")
        elif isinstance(node, ast.Name) and node.id in FORBIDDEN_NAMES:
            found.append(f"uses {node.id}")
        elif isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_NAMES:
            found.append(f"uses {node.attr}")
        elif isinstance(node, ast.FunctionDef):
            arguments = [a.arg for a in [*node.args.args, *node.args.kwonlyargs]]
            found += [
                f"{node.name} asks for the {a} fixture" for a in arguments if a in SERVER_FIXTURES
            ]
    return sorted(set(found))


def test_unit_tests_start_no_server_and_no_process() -> None:
    modules = sorted(UNIT.glob("*.py"))
    assert len(modules) > 10
    found = {
        path.name: problems
        for path in modules
        if (problems := problems_in(path.read_text(encoding="utf-8")))
    }
    assert found == {}


def test_the_scan_finds_each_kind_of_server() -> None:
    assert problems_in("import json\nfrom orchestrator import engine\n") == []
    assert problems_in("import subprocess") == ["imports subprocess"]
    assert problems_in("from moto.server import ThreadedMotoServer") == [
        "imports moto.server.ThreadedMotoServer"
    ]
    assert problems_in("import tests.fakes as f\nf.ThreadingHTTPServer(('', 0), None)") == [
        "uses ThreadingHTTPServer"
    ]
    assert problems_in("from orchestrator.local import dynamodb_local") == [
        "imports orchestrator.local.dynamodb_local"
    ]
    assert problems_in("from tests.http_stub import stub_server") == [
        "imports tests.http_stub.stub_server"
    ]
    assert problems_in("server.serve_forever()") == ["uses serve_forever"]
    assert problems_in("def test_x(table_name: str) -> None: ...") == [
        "test_x asks for the table_name fixture"
    ]
