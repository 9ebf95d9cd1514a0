"""The layers, as imports: a pure core that loads no AWS SDK, a tick that reaches the outside
world only through ports, an exceptions module at the bottom of the graph.

docs/ARCHITECTURE.md draws the layers; these tests are what holds them. Imports inside
functions (the lazy edge) and under `if TYPE_CHECKING:` are allowed everywhere: they cost
nothing until a tick needs them.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "orchestrator"

AWS_SDK = frozenset({"boto3", "botocore", "pynamodb"})

# Importing these (in a fresh interpreter) must not load the AWS SDK: a cold start pays for
# boto3 only in the tick that needs a client. Every step kind module is added below.
CORE = (
    "orchestrator.engine",
    "orchestrator.definition",
    "orchestrator.reference",
    "orchestrator.pinning",
    "orchestrator.tick",
    "orchestrator.handler",
    "orchestrator.steps",
    "orchestrator.model",
    "orchestrator.exceptions",
    "orchestrator.token",
    "orchestrator.tree",
)
STEP_KINDS = tuple(
    f"orchestrator.steps.{path.stem}"
    for path in sorted((PACKAGE / "steps").glob("*.py"))
    if not path.stem.startswith("_")
)

# The pure core: what these import when loaded (at module level) is one another, the
# standard library, pydantic and jmespath; never an adapter, an entry point or tooling.
PURE = frozenset(
    {
        "orchestrator",
        "orchestrator._log",
        "orchestrator.artifacts_report",
        "orchestrator.clock",
        "orchestrator.definition",
        "orchestrator.durations",
        "orchestrator.engine",
        "orchestrator.event",
        "orchestrator.exceptions",
        "orchestrator.governance",
        "orchestrator.metrics",
        "orchestrator.model",
        "orchestrator.pinning",
        "orchestrator.ports",
        "orchestrator.reference",
        "orchestrator.steps",
        "orchestrator.steps._base",
        "orchestrator.steps._rules",
        "orchestrator.targets",
        "orchestrator.expressions",
        "orchestrator.text",
        "orchestrator.token",
        "orchestrator.tree",
        "orchestrator.windows",
    }
)
PURE_THIRD_PARTY = frozenset({"pydantic", "pydantic_core", "jmespath", "typing_extensions"})


def module_path(name: str) -> Path | None:
    """The source file of an `orchestrator` module or package (None if there is none)."""
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def module_level_imports(source: str, module: str, is_package: bool) -> set[str]:
    """Modules a file imports when it is loaded: top-level statements, `if`/`try` blocks
    included, `if TYPE_CHECKING:` and function bodies excluded. `from pkg import name` counts
    as `pkg.name` when that is a module of ours, else as `pkg`."""
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    found.add(full if module_path(full) is not None else base)
            elif isinstance(node, ast.If):
                if "TYPE_CHECKING" not in ast.unparse(node.test):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                for block in (node.body, node.orelse, node.finalbody):
                    visit(block)
                for handler in node.handlers:
                    visit(handler.body)
            elif isinstance(node, ast.With):
                visit(node.body)

    visit(ast.parse(source).body)
    found.discard("__future__")
    return found


def imports_of(module: str) -> set[str]:
    path = module_path(module)
    assert path is not None, module
    return module_level_imports(path.read_text(), module, path.name == "__init__.py")


def sdk_loaded_by(modules: list[str]) -> dict[str, Any]:
    """Import `modules` in order in a fresh interpreter on this tree; the first one after
    which an AWS SDK module is loaded, with what it loaded, and where `orchestrator` is."""
    script = f"""
import json, sys
sys.path.insert(0, {str(ROOT)!r})
found = {{}}
for name in {modules!r}:
    __import__(name)
    loaded = sorted({{m.split(".")[0] for m in sys.modules}} & set({sorted(AWS_SDK)!r}))
    if loaded:
        found[name] = loaded
        break
import orchestrator
print(json.dumps({{"found": found, "file": orchestrator.__file__}}))
"""
    result = subprocess.run(
        [sys.executable, "-I", "-c", script], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    assert report["file"] == str(PACKAGE / "__init__.py")  # this tree, not an installed copy
    return report


def test_the_core_loads_no_aws_sdk() -> None:
    """No core module, nor any step kind, loads boto3, botocore or pynamodb when imported."""
    assert len(STEP_KINDS) >= 7
    assert sdk_loaded_by([*CORE, *STEP_KINDS])["found"] == {}


def test_the_sdk_check_names_the_module_that_loads_it() -> None:
    found = sdk_loaded_by(["orchestrator.model", "orchestrator.store.dynamodb", "json"])["found"]
    assert list(found) == ["orchestrator.store.dynamodb"]  # the adapter, not what came before
    assert "pynamodb" in found["orchestrator.store.dynamodb"]


@pytest.mark.parametrize("module", sorted(PURE))
def test_the_pure_core_imports_only_the_pure_core(module: str) -> None:
    problems = []
    for name in sorted(imports_of(module)):
        top = name.split(".")[0]
        if top == "orchestrator":
            if name not in PURE:
                problems.append(f"{module} imports {name}")
        elif top not in sys.stdlib_module_names and top not in PURE_THIRD_PARTY:
            problems.append(f"{module} imports {top}")
    assert problems == []


def test_the_tick_and_the_handler_reach_adapters_only_lazily() -> None:
    """The tick sees the store, the reporter and the sources through `ports` (Protocols);
    the handler builds the adapters inside `build_app`, on the first job."""
    ours = {name for name in imports_of("orchestrator.tick") if name.startswith("orchestrator")}
    assert ours <= PURE, sorted(ours - PURE)
    ours = {name for name in imports_of("orchestrator.handler") if name.startswith("orchestrator")}
    assert ours <= PURE | {"orchestrator.tick"}, sorted(ours - PURE)


def test_exceptions_import_only_the_standard_library() -> None:
    tree = ast.parse((PACKAGE / "exceptions.py").read_text())
    names = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    names |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    names.discard("__future__")
    assert {name.split(".")[0] for name in names} <= set(sys.stdlib_module_names), names


def test_the_import_reader_sees_what_a_load_runs() -> None:
    source = """
from __future__ import annotations
import json
from typing import TYPE_CHECKING
from orchestrator import engine, exceptions
from . import durations
from .model import RunState
try:
    import yaml
except ImportError:
    yaml = None
if TYPE_CHECKING:
    from orchestrator.store.dynamodb import DynamoRunStore
else:
    import re
def later():
    import boto3
"""
    found = module_level_imports(source, "orchestrator.example", is_package=False)
    assert found == {
        "json",
        "typing",
        "orchestrator.engine",
        "orchestrator.exceptions",
        "orchestrator.durations",
        "orchestrator.model",
        "yaml",
        "re",
    }


CDK_LIBRARIES = frozenset({"aws_cdk", "constructs", "jsii"})


def test_the_permission_source_is_pure_data() -> None:
    """orchestrator/cdk/permissions.py (both roles' statements, which `make template` writes
    into template.yaml) imports the standard library only, and neither it nor the package
    `orchestrator.cdk` starts aws-cdk-lib (node) when imported: `Orchestrator` is loaded on
    first use. Importing the construct does load it (the check can tell)."""
    names = imports_of("orchestrator.cdk.permissions")
    assert {name.split(".")[0] for name in names} <= set(sys.stdlib_module_names), names
    script = f"""
import json, sys
sys.path.insert(0, {str(ROOT)!r})
found = {{}}
for name in ["orchestrator.cdk.permissions", "orchestrator.cdk", "orchestrator.cdk.construct"]:
    __import__(name)
    found[name] = sorted({{m.split(".")[0] for m in sys.modules}} & set({sorted(CDK_LIBRARIES)!r}))
print(json.dumps(found))
"""
    result = subprocess.run(
        [sys.executable, "-I", "-c", script], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["orchestrator.cdk.permissions"] == []
    assert found["orchestrator.cdk"] == []
    assert "aws_cdk" in found["orchestrator.cdk.construct"]
