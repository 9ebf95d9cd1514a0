"""The template's scanners, each in a virtual environment of its own under build/tools/:
checkov (CloudFormation checks) and the SAM CLI (`sam validate --lint`). Both pin boto3,
click and packaging to versions the project's environment cannot share, so neither is in
the `dev` extra; this script installs the pinned version on first use (from PyPI) and runs
it offline.

    python scripts/scanners.py            both, on template.yaml (what `make scan` runs)
    python scripts/scanners.py checkov    one of them
    python scripts/scanners.py --install  only make sure both are installed

tests/package/test_scanners.py runs them as part of `make check`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / "build" / "tools"
TEMPLATE = ROOT / "template.yaml"

PINS = {
    "checkov": "checkov==3.3.30",
    "sam": "aws-sam-cli==1.170.0",
}
"""The scanner versions, pinned: a new one may bring new findings, which is a change to
review (raise the pin, run `make scan`, fix or suppress with a reason)."""

OFFLINE = {
    "SAM_CLI_TELEMETRY": "0",  # the SAM CLI sends no usage data
    "BC_SKIP_MAPPING": "TRUE",  # checkov fetches no guideline mapping
}


def tool_dir(tool: str) -> Path:
    return TOOLS / tool


def executable(tool: str) -> Path:
    return tool_dir(tool) / "bin" / tool


def install(tool: str) -> Path:
    """The tool's executable, installed at its pinned version if it is not already."""
    folder, pin = tool_dir(tool), PINS[tool]
    stamp = folder / "installed.txt"
    if stamp.is_file() and stamp.read_text().strip() == pin and executable(tool).is_file():
        return executable(tool)
    print(f"scan: installing {pin} into {folder.relative_to(ROOT)} (once)", file=sys.stderr)
    venv.EnvBuilder(with_pip=True, clear=True).create(folder)
    pip = [
        str(folder / "bin" / "python"),
        "-m",
        "pip",
        "install",
        "-q",
        "--disable-pip-version-check",
    ]
    done = subprocess.run([*pip, pin], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"scan: could not install {pin}:\n{done.stdout}{done.stderr}")
    stamp.write_text(pin + "\n")
    return executable(tool)


def environment() -> dict[str, str]:
    return {**os.environ, **OFFLINE}


def checkov(template: Path = TEMPLATE) -> subprocess.CompletedProcess[str]:
    """checkov's CloudFormation checks on the template, as JSON on stdout."""
    command = [
        str(install("checkov")),
        "--file",
        str(template),
        "--framework",
        "cloudformation",
        "--output",
        "json",
        "--skip-download",
    ]
    return subprocess.run(command, capture_output=True, text=True, env=environment(), check=False)


def sam_validate(template: Path = TEMPLATE) -> subprocess.CompletedProcess[str]:
    """`sam validate --lint` (cfn-lint on the transformed template; no AWS call)."""
    command = [str(install("sam")), "validate", "--lint", "--template-file", str(template)]
    return subprocess.run(
        command, capture_output=True, text=True, env=environment(), check=False, cwd=ROOT
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tools", nargs="*", metavar="TOOL", help=f"of {', '.join(PINS)}")
    parser.add_argument("--install", action="store_true", help="only install them")
    options = parser.parse_args()
    tools = options.tools or list(PINS)
    unknown = sorted(set(tools) - set(PINS))
    if unknown:
        parser.error(f"no such scanner: {', '.join(unknown)} (the scanners: {', '.join(PINS)})")
    if options.install:
        for tool in tools:
            install(tool)
        return 0
    failed = 0
    for tool in tools:
        result = checkov() if tool == "checkov" else sam_validate()
        print(f"scan: {tool}: {'passed' if result.returncode == 0 else 'FAILED'}")
        if result.returncode != 0:
            failed += 1
            print(result.stdout[-20000:], result.stderr[-5000:], sep="\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
