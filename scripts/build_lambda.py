"""Build the orchestrator's Lambda package: what `sam build` makes, without sam or docker.

template.yaml builds OrchestratorFunction with `BuildMethod: makefile`, so `sam build` runs
`make build-OrchestratorFunction` with ARTIFACTS_DIR set, which runs this script. The package:

- `orchestrator/` minus the folders the handler never imports, `orchestrator/cli` (the
  command, with the `cli` extra), `orchestrator/local` (the local runner, the emulator,
  the table's creation from template.yaml) and `orchestrator/cdk` (CDK constructs, with the
  `cdk` extra): no tests, no caches, no template.yaml;
- the runtime dependencies of pyproject.toml's `[project].dependencies` (no `cli`/`dev`
  extras), as wheels for the Lambda platform: CPython 3.13 on manylinux2014 aarch64.
  boto3 is shipped although the runtime has one: the package then runs the botocore the
  tests ran, not whichever the runtime carries that month;
- bytecode for CPython 3.13 beside every module (`__pycache__/*.cpython-313.pyc`,
  unchecked-hash): /var/task is read-only, so without it every cold start compiles every
  module it imports (about 0.7 s more, measured with 3.11 in `make bench`). It is compiled
  by Pyodide's CPython 3.13 on Node (`scripts/compile_pyc.mjs`; npm installs Pyodide into
  build/pyodide once), as the build machine need not have CPython 3.13. Without node and
  npm the package is built without it, and says so (`--bytecode yes` makes that an error).

    python scripts/build_lambda.py                 # build/lambda/ + build/orchestrator-lambda.zip
    python scripts/build_lambda.py --update-docs   # ...and write the sizes into README.md
    python scripts/build_lambda.py --artifacts-dir DIR --no-zip    # what sam's make target runs
    python scripts/build_lambda.py --lock          # refresh requirements-lambda.txt (make lock)

The dependencies are installed from requirements-lambda.txt: every distribution the package
ships, pinned to one version with the sha256 of its wheel for the Lambda platform, installed
with `--require-hashes --no-deps`, so the same commit builds the same package next month (the
zip is written in a fixed order with fixed timestamps, so it is the same bytes). `--lock`
resolves pyproject.toml's ranges again (pip download for the platform, from PyPI) and writes
the file anew, and the README's list of the package's dependencies with it.

Only the standard library and pip are needed (and node with npm for the bytecode): sam runs
this with whatever python3 it finds.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("orchestrator",)
EXCLUDED = (
    PurePosixPath("orchestrator/local"),  # local runner, CodePipeline emulator, table creation
    PurePosixPath("orchestrator/cli"),  # the CLI needs the `cli` extra (typer, rich)
    PurePosixPath("orchestrator/cdk"),  # CDK constructs, the `cdk` extra (aws-cdk-lib)
)
"""Folders (from the repository root) the handler never imports: tooling, whole."""
EXCLUDED_NAMES = frozenset({"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"})
EXCLUDED_SUFFIXES = (".pyc", ".pyo")

PLATFORM = "manylinux2014_aarch64"
IMPLEMENTATION = "cp"
PYTHON_VERSION = "3.13"

PYODIDE = "pyodide@0.29.5"
"""CPython 3.13.2 compiled to WebAssembly: what compiles the package's bytecode."""
PYTHON313_MAGIC = "f30d0d0a"
"""importlib.util.MAGIC_NUMBER of every CPython 3.13 release (3571)."""
PYODIDE_DIR = ROOT / "build" / "pyodide"
COMPILER = ROOT / "scripts" / "compile_pyc.mjs"

LOCK = ROOT / "requirements-lambda.txt"
"""The package's dependencies, pinned with hashes (written by `--lock`)."""
LOCK_HEADER = """\
# The Lambda package's dependencies (python3.13, manylinux2014_aarch64), pinned with the
# sha256 of each wheel: scripts/build_lambda.py installs exactly these (--require-hashes).
# Generated from pyproject.toml's [project].dependencies by `make lock`; do not edit.
"""
DEPENDENCIES_MARKER = "<!-- package-dependencies -->"
DEPENDENCIES_END = "<!-- /package-dependencies -->"

DEFAULT_ARTIFACTS = ROOT / "build" / "lambda"
DEFAULT_ZIP = ROOT / "build" / "orchestrator-lambda.zip"
DOCS = ROOT / "README.md"
SIZE_MARKER = "<!-- package-size -->"
ZIP_LIMIT = 50 * 1024 * 1024  # direct upload; sam deploy goes through S3
UNZIPPED_LIMIT = 250 * 1024 * 1024  # function code plus layers, unzipped


def runtime_dependencies(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """pyproject.toml's `[project].dependencies`, the requirements the function runs with."""
    with pyproject.open("rb") as handle:
        data = tomllib.load(handle)
    dependencies = data["project"]["dependencies"]
    assert isinstance(dependencies, list)
    return [str(item) for item in dependencies]


def _excluded(relative: PurePosixPath) -> bool:
    if any(part in EXCLUDED_NAMES for part in relative.parts):
        return True
    if relative.suffix in EXCLUDED_SUFFIXES:
        return True
    return any(relative == folder or folder in relative.parents for folder in EXCLUDED)


def source_files(root: Path = ROOT) -> list[tuple[Path, PurePosixPath]]:
    """Every file the package takes from the source tree: (source, path inside the package)."""
    selected: list[tuple[Path, PurePosixPath]] = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*")):
            relative = PurePosixPath(path.relative_to(root).as_posix())
            if path.is_file() and not _excluded(relative):
                selected.append((path, relative))
    return selected


def _platform_options() -> list[str]:
    return [
        "--platform", PLATFORM,
        "--implementation", IMPLEMENTATION,
        "--python-version", PYTHON_VERSION,
        "--only-binary=:all:",
    ]  # fmt: skip


def locked_pip_command(target: Path, lock: Path = LOCK) -> list[str]:
    """pip installing exactly the locked wheels (hash-checked, no resolution) into `target`."""
    return [
        sys.executable, "-m", "pip", "install",
        "--quiet", "--disable-pip-version-check", "--no-compile",
        *_platform_options(),
        "--require-hashes", "--no-deps",
        "--target", str(target),
        "--requirement", str(lock),
    ]  # fmt: skip


def read_lock(text: str) -> dict[str, tuple[str, list[str]]]:
    """The lock file's pins: normalized name -> (version, sha256 hashes)."""
    pins: dict[str, tuple[str, list[str]]] = {}
    for raw in text.replace("\\\n", " ").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        requirement, *options = line.split()
        name, _, version = requirement.partition("==")
        hashes = [o.removeprefix("--hash=sha256:") for o in options if o.startswith("--hash=")]
        pins[_normalized(name)] = (version, hashes)
    return pins


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def write_lock(requirements: list[str], folder: Path) -> str:
    """Resolve `requirements` for the Lambda platform (pip download into `folder`, from the
    index) and return the lock file's text: one pin and one wheel hash per distribution."""
    subprocess.run(
        [
            sys.executable, "-m", "pip", "download",
            "--quiet", "--disable-pip-version-check", "--no-cache-dir",
            *_platform_options(),
            "--dest", str(folder),
            *requirements,
        ],
        check=True,
    )  # fmt: skip
    lines = [LOCK_HEADER]
    wheels = sorted(folder.glob("*.whl"), key=lambda path: _normalized(path.name.split("-")[0]))
    for wheel in wheels:
        name, version = wheel.name.split("-")[:2]
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        lines.append(f"{_normalized(name)}=={version} \\\n    --hash=sha256:{digest}\n")
    return "".join(lines)


def dependencies_block(lock_text: str) -> str:
    """The README's list of the package's dependencies, between its markers."""
    pins = read_lock(lock_text)
    rows = "".join(f"| `{name}` | {version} |\n" for name, (version, _) in sorted(pins.items()))
    return (
        f"{DEPENDENCIES_MARKER}\n| dependency | version |\n| --- | --- |\n{rows}{DEPENDENCIES_END}"
    )


def update_dependencies(text: str, block: str) -> str:
    """Replace what is between the README's dependency markers (the markers included)."""
    start, end = text.find(DEPENDENCIES_MARKER), text.find(DEPENDENCIES_END)
    if start < 0 or end < start:
        raise ValueError(f"expected {DEPENDENCIES_MARKER} ... {DEPENDENCIES_END} in the docs")
    return text[:start] + block + text[end + len(DEPENDENCIES_END) :]


def lock(lock_path: Path = LOCK, docs: Path = DOCS) -> None:
    """Write the lock file anew from pyproject.toml's ranges, and the README's list."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        text = write_lock(runtime_dependencies(), Path(folder))
    lock_path.write_text(text)
    docs.write_text(update_dependencies(docs.read_text(), dependencies_block(text)))
    pins = read_lock(text)
    print(f"locked {len(pins)} distributions in {lock_path.name}; listed them in {docs.name}")


def pip_command(target: Path, requirements: list[str], constraint: Path | None = None) -> list[str]:
    """pip installing `requirements` into `target` as wheels for the Lambda runtime, resolved
    afresh within pyproject.toml's ranges (`--no-lock`)."""
    command = [
        sys.executable, "-m", "pip", "install",
        "--quiet", "--disable-pip-version-check", "--no-warn-conflicts", "--no-compile",
        "--platform", PLATFORM,
        "--implementation", IMPLEMENTATION,
        "--python-version", PYTHON_VERSION,
        "--only-binary=:all:",
        "--target", str(target),
    ]  # fmt: skip
    if constraint is not None:
        command += ["--constraint", str(constraint)]
    return [*command, *requirements]


def _safe_to_clear(folder: Path) -> bool:
    """Refuse to empty a folder that looks like a source tree, or holds the repository."""
    resolved = folder.resolve()
    if resolved == ROOT or resolved in ROOT.parents or resolved == Path.home().resolve():
        return False
    return not any((resolved / name).exists() for name in ("pyproject.toml", ".git"))


def prepare(folder: Path) -> None:
    """An empty artifacts folder (sam hands over an empty one; ours is rebuilt)."""
    if folder.exists():
        if not _safe_to_clear(folder):
            raise SystemExit(f"refusing to empty {folder}: it looks like a source tree")
        shutil.rmtree(folder)
    folder.mkdir(parents=True)


def copy_sources(artifacts: Path, root: Path = ROOT) -> int:
    """Copy the selected files into `artifacts`; return how many."""
    files = source_files(root)
    for source, relative in files:
        destination = artifacts.joinpath(*relative.parts)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, destination)
    return len(files)


def prune(artifacts: Path) -> None:
    """Drop what pip leaves that the function never uses: caches and console scripts."""
    for cache in sorted(artifacts.rglob("__pycache__"), reverse=True):
        shutil.rmtree(cache, ignore_errors=True)
    shutil.rmtree(artifacts / "bin", ignore_errors=True)


class BytecodeUnavailable(Exception):
    """The bytecode could not be compiled (no node or npm, or Pyodide could not be had)."""


def compile_bytecode(folder: Path, tools: Path = PYODIDE_DIR) -> int:
    """Write CPython 3.13 bytecode for every module under `folder`; how many .pyc files."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        raise BytecodeUnavailable("node and npm are needed to compile CPython 3.13 bytecode")
    pyodide = tools / "node_modules" / "pyodide"
    if not (pyodide / "pyodide.mjs").exists():
        install = [npm, "install", "--prefix", str(tools), "--no-audit", "--no-fund"]
        installed = subprocess.run(
            [*install, "--loglevel=error", PYODIDE], capture_output=True, text=True, check=False
        )
        if installed.returncode != 0:
            raise BytecodeUnavailable(f"npm could not install {PYODIDE}: {installed.stderr[-500:]}")
    done = subprocess.run(
        [node, str(COMPILER), str(pyodide), str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise SystemExit(f"compiling bytecode failed: {(done.stderr or done.stdout)[-2000:]}")
    report = json.loads(lines[-1])
    if report["cache_tag"] != "cpython-313" or report["magic"] != PYTHON313_MAGIC:
        raise SystemExit(f"the bytecode compiler is not CPython 3.13: {report}")
    return int(report["compiled"])


def installed_distributions(artifacts: Path) -> list[str]:
    """`name version` of every distribution pip installed, from the .dist-info folders."""
    found = []
    for info in sorted(artifacts.glob("*.dist-info")):
        name, _, version = info.name.removesuffix(".dist-info").partition("-")
        found.append(f"{name} {version}")
    return found


def tree_size(folder: Path) -> tuple[int, int]:
    """(files, bytes) under `folder`."""
    files = [path for path in folder.rglob("*") if path.is_file()]
    return len(files), sum(path.stat().st_size for path in files)


def make_zip(artifacts: Path, zip_path: Path) -> int:
    """A reproducible zip of `artifacts` (sorted, fixed timestamps, 0644/0755); its size."""
    zip_path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for path in sorted(p for p in artifacts.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(path.relative_to(artifacts).as_posix(), (1980, 1, 1, 0, 0, 0))
            mode = 0o755 if os.access(path, os.X_OK) else 0o644
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes(), compresslevel=9)
    return zip_path.stat().st_size


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


def size_line(zipped: int, unzipped: int, files: int, today: datetime.date) -> str:
    """The docs line: marker first, so the next build finds and replaces it."""
    return (
        f"{SIZE_MARKER} Package size (python{PYTHON_VERSION} arm64, built {today.isoformat()} "
        f"by `python scripts/build_lambda.py`): **{_mib(zipped)} zipped, {_mib(unzipped)} "
        f"unzipped**, {files} files (Lambda's limits: 50 MiB zipped for a direct upload, "
        f"250 MiB unzipped)."
    )


def update_docs(text: str, line: str) -> str:
    """Replace the one line that starts with the marker."""
    lines = text.splitlines(keepends=True)
    marked = [i for i, existing in enumerate(lines) if existing.startswith(SIZE_MARKER)]
    if len(marked) != 1:
        raise ValueError(
            f"expected exactly one line starting with {SIZE_MARKER}, found {len(marked)}"
        )
    index = marked[0]
    ending = "\n" if lines[index].endswith("\n") else ""
    lines[index] = line + ending
    return "".join(lines)


def build(
    artifacts: Path,
    zip_path: Path | None,
    constraint: Path | None,
    docs: Path | None,
    bytecode: str = "auto",
    locked: Path | None = LOCK,
) -> None:
    prepare(artifacts)
    copied = copy_sources(artifacts)
    print(f"copied {copied} files from {', '.join(PACKAGES)}")
    if locked is not None and constraint is None:
        print(f"installing {locked.name} (hash-checked) for cp{PYTHON_VERSION} {PLATFORM}")
        subprocess.run(locked_pip_command(artifacts, locked), check=True)
    else:
        requirements = runtime_dependencies()
        print(f"installing {' '.join(requirements)} for cp{PYTHON_VERSION} {PLATFORM}")
        subprocess.run(pip_command(artifacts, requirements, constraint), check=True)
    prune(artifacts)
    print("installed: " + ", ".join(installed_distributions(artifacts)))
    if bytecode != "no":
        try:
            print(f"compiled {compile_bytecode(artifacts)} modules to CPython 3.13 bytecode")
        except BytecodeUnavailable as exc:
            if bytecode == "yes":
                raise SystemExit(str(exc)) from None
            print(f"note: no bytecode ({exc}): every cold start compiles what it imports")
    files, unzipped = tree_size(artifacts)
    print(f"unzipped: {_mib(unzipped)} ({unzipped} bytes, {files} files) in {artifacts}")
    if unzipped > UNZIPPED_LIMIT:
        raise SystemExit(f"the package exceeds Lambda's {_mib(UNZIPPED_LIMIT)} unzipped limit")
    if zip_path is None:
        return
    zipped = make_zip(artifacts, zip_path)
    print(f"zipped: {_mib(zipped)} ({zipped} bytes) in {zip_path}")
    if zipped > ZIP_LIMIT:
        print(f"note: over {_mib(ZIP_LIMIT)}, so upload through S3 (sam deploy does)")
    if docs is not None:
        docs.write_text(
            update_docs(docs.read_text(), size_line(zipped, unzipped, files, datetime.date.today()))
        )
        print(f"wrote the sizes into {docs}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--artifacts-dir",
        type=Path,
        default=DEFAULT_ARTIFACTS,
        help="folder to build the package in (emptied first)",
    )
    parser.add_argument("--zip", type=Path, default=DEFAULT_ZIP, help="zip file to write")
    parser.add_argument("--no-zip", action="store_true", help="build the folder only (sam)")
    parser.add_argument(
        "--constraint",
        type=Path,
        default=None,
        help="pip constraints file pinning the dependencies' versions (instead of the lock)",
    )
    parser.add_argument(
        "--no-lock",
        action="store_true",
        help=f"resolve pyproject.toml's ranges afresh instead of installing {LOCK.name}",
    )
    parser.add_argument(
        "--lock",
        action="store_true",
        help=f"only write {LOCK.name} anew (and the README's dependency list), then stop",
    )
    parser.add_argument(
        "--update-docs", action="store_true", help=f"write the sizes into {DOCS.relative_to(ROOT)}"
    )
    parser.add_argument(
        "--bytecode",
        choices=("auto", "yes", "no"),
        default="auto",
        help="ship CPython 3.13 bytecode (auto: when node and npm are there)",
    )
    args = parser.parse_args(argv)
    if args.lock:
        lock()
        return 0
    if args.no_zip and args.update_docs:
        parser.error("--update-docs needs the zip")
    build(
        args.artifacts_dir,
        None if args.no_zip else args.zip,
        args.constraint,
        DOCS if args.update_docs else None,
        args.bytecode,
        None if args.no_lock else LOCK,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
