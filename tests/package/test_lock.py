"""The Lambda package is built from requirements-lambda.txt: every distribution pinned with the
sha256 of its wheel, installed hash-checked, so that a commit builds the same zip whenever it
is built (two builds from empty pip caches, as a month apart, give the same bytes); the README
lists exactly those versions."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from scripts import build_lambda

ROOT = Path(__file__).resolve().parents[2]
LOCK = ROOT / "requirements-lambda.txt"


def test_the_lock_pins_every_runtime_dependency_within_its_range_with_a_hash() -> None:
    pins = build_lambda.read_lock(LOCK.read_text())
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for dependency in map(Requirement, dependencies):
        name = canonicalize_name(dependency.name)
        assert name in pins, f"{name} is not in {LOCK.name}: run `make lock`"
        version, _ = pins[name]
        assert dependency.specifier.contains(version, prereleases=True), (name, version)
    assert "cryptography" in pins  # pyjwt[crypto]'s extra, resolved too
    for pinned, (version, hashes) in pins.items():
        assert version and hashes, pinned
        assert all(len(h) == 64 and int(h, 16) >= 0 for h in hashes), pinned
    assert not {"typer", "rich", "moto", "pytest"} & set(pins)  # no CLI or dev tool


def test_the_lock_is_read_as_pip_reads_it() -> None:
    text = (
        "# a comment\n"
        "six==1.17.0 \\\n    --hash=sha256:" + "a" * 64 + "\n"
        "Typing_Extensions==4.16.0 --hash=sha256:" + "b" * 64 + "  # trailing\n"
    )
    assert build_lambda.read_lock(text) == {
        "six": ("1.17.0", ["a" * 64]),
        "typing-extensions": ("4.16.0", ["b" * 64]),
    }


def test_the_readme_lists_the_locked_versions() -> None:
    readme = (ROOT / "README.md").read_text()
    block = build_lambda.dependencies_block(LOCK.read_text())
    assert block in readme, "the README's dependency list is stale: run `make lock`"
    assert readme.count(build_lambda.DEPENDENCIES_MARKER) == 1


def test_the_build_installs_the_lock_hash_checked_without_resolving(tmp_path: Path) -> None:
    command = build_lambda.locked_pip_command(tmp_path)
    assert command[:4] == [sys.executable, "-m", "pip", "install"]
    flags = " ".join(command)
    for flag in (
        "--require-hashes",
        "--no-deps",
        f"--requirement {LOCK}",
        "--platform manylinux2014_aarch64",
        "--python-version 3.13",
        "--only-binary=:all:",
        f"--target {tmp_path}",
    ):
        assert flag in flags, flag


def test_a_wheel_that_does_not_match_its_hash_fails_the_install(tmp_path: Path) -> None:
    version, _ = build_lambda.read_lock(LOCK.read_text())["six"]
    forged = tmp_path / "lock.txt"
    forged.write_text(f"six=={version} --hash=sha256:{'0' * 64}\n")
    env = {**os.environ, "PIP_CACHE_DIR": str(tmp_path / "cache")}
    result = subprocess.run(
        build_lambda.locked_pip_command(tmp_path / "target", forged),
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode != 0
    assert "DO NOT MATCH THE HASHES" in result.stderr


def _build(tmp_path: Path, name: str) -> tuple[str, Path]:
    """The package built as `make build` builds it, with an empty pip cache of its own."""
    zip_path = tmp_path / name / "package.zip"
    env = {**os.environ, "PIP_CACHE_DIR": str(tmp_path / name / "pip-cache")}
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "build_lambda.py"),
            "--artifacts-dir",
            str(tmp_path / name / "lambda"),
            "--zip",
            str(zip_path),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return hashlib.sha256(zip_path.read_bytes()).hexdigest(), tmp_path / name / "lambda"


@pytest.mark.timeout(900)  # two whole builds, each downloading every wheel
def test_two_builds_from_empty_caches_are_the_same_bytes(tmp_path: Path) -> None:
    first, folder = _build(tmp_path, "first")
    second, _ = _build(tmp_path, "second")
    assert first == second
    installed = {
        canonicalize_name(line.split()[0]): line.split()[1]
        for line in build_lambda.installed_distributions(folder)
    }
    locked = {
        name: version for name, (version, _) in build_lambda.read_lock(LOCK.read_text()).items()
    }
    assert installed == locked
