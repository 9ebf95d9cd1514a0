"""Render the reliability suite's figures into README.md.

The suite (`python -m pytest tests/reliability`, or the whole test run) writes
build/reliability.json; this script turns the last one into the table between
`<!-- reliability:start -->` and `<!-- reliability:end -->` in README.md, adding a
"## Reliability" section before "## Layout" when the markers are missing.

    python scripts/reliability_table.py           # update README.md from build/reliability.json
    python scripts/reliability_table.py --check   # exit 1 when README.md shows other figures
    python scripts/reliability_table.py --print   # print the table only

It refuses figures from a run with failed tests or a non-zero outcome (`--force` renders
them anyway): the README shows a clean run, measured, never typed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- reliability:start -->", "<!-- reliability:end -->"
SECTION = "## Reliability"
BEFORE = "## Layout"

INJECTED = [  # (label, keys in faults_injected or observed, added up)
    ("process deaths (after load / after save / after report)", ["process_died"]),
    ("DynamoDB throttling (400 ProvisionedThroughputExceeded, Throttling)", ["dynamodb_throttle"]),
    ("DynamoDB 5xx (500 InternalServerError, 503)", ["dynamodb_server_error"]),
    ("DynamoDB timeouts (held past the client's read timeout)", ["dynamodb_timeout"]),
    ("DynamoDB writes applied whose response was lost", ["dynamodb_lost_response"]),
    (
        "DynamoDB conditional-check failures (genuine, from the above and races)",
        ["dynamodb_conditional_check_failed"],
    ),
    ("CodePipeline throttling", ["codepipeline_throttle"]),
    ("CodePipeline 5xx (InternalFailure, ServiceUnavailable)", ["codepipeline_server_error"]),
    (
        "CodePipeline InvalidJobStateException (refused or late answers)",
        ["codepipeline_invalid_job_state", "codepipeline_late_answer"],
    ),
    ("CodePipeline JobNotFoundException", ["codepipeline_job_not_found"]),
    ("steps that never answer, or trickle their answer", ["step_hang", "step_trickle"]),
    ("invocations with less time left than the reserve", ["lambda_near_timeout"]),
]
OUTCOMES = [
    ("lost progress", "lost_progress"),
    ("double advances (a job writing a run twice)", "double_advances"),
    ("unanswered jobs", "unanswered_jobs"),
    ("wrong or unexpectedly refused answers", "wrong_answers"),
    ("exceptions escaping the handler", "escaped_exceptions"),
    ("handler returns after the Lambda deadline", "late_returns"),
    ("leaked secrets (artifact credentials found anywhere)", "leaked_secrets"),
]


def _n(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"


def render(figures: dict[str, Any]) -> str:
    """The markdown between the markers (without them)."""
    faults = {**figures.get("faults_injected", {}), **figures.get("observed", {})}
    checked = figures.get("checked", {})
    fuzz = figures.get("fuzz_examples", {})
    load = figures.get("load", {})
    canaries = figures.get("canaries", {})
    tests = figures.get("tests", {})
    outcomes = figures.get("outcomes", {})
    when = str(figures.get("generated_at", "?"))
    lines = [
        f"Measured on {when[:10]} by `{figures.get('command', '?')}` "
        f"({_n(figures.get('seconds', 0))} s, seed {figures.get('seed', '?')}"
        f"{', soak' if figures.get('soak', 1) > 1 else ''}): "
        f"{tests.get('passed', 0)} tests passed, {tests.get('xfailed', 0)} known bugs pinned "
        "(strict xfail). Rendered from `build/reliability.json` by "
        "`scripts/reliability_table.py`.",
        "",
        "| injected or exercised | count |",
        "| --- | ---: |",
    ]
    for label, keys in INJECTED:
        lines.append(f"| {label} | {_n(sum(faults.get(key, 0) for key in keys))} |")
    lines += [
        "| deliveries beyond the first of a job (duplicates, tens at once; Lambda retries) | "
        f"{_n(checked.get('duplicate_deliveries', 0))} |",
        f"| fuzz examples ({', '.join(f'{k} {_n(v)}' for k, v in sorted(fuzz.items()))}) | "
        f"{_n(sum(fuzz.values()))} |",
        f"| runs advancing at once under faults (jobs, seconds) | {_n(load.get('runs', 0))} "
        f"({_n(load.get('jobs', 0))} jobs, {_n(load.get('seconds', 0))} s) |",
        f"| jobs checked for exactly one accepted answer | {_n(checked.get('jobs', 0))} |",
        "",
        "| outcome (must be zero) | count |",
        "| --- | ---: |",
    ]
    lines += [f"| {label} | {_n(outcomes.get(key, 0))} |" for label, key in OUTCOMES]
    lines += [
        "",
        f"Secret canaries: {_n(canaries.get('registered', 0))} credentials handed out, "
        f"{_n(canaries.get('megabytes_scanned', 0))} MB of logs, metrics, CodePipeline requests, "
        "DynamoDB items and CLI output scanned. How each figure is made: "
        "[docs/RELIABILITY.md](docs/RELIABILITY.md).",
    ]
    return "\n".join(lines)


def problems(figures: dict[str, Any]) -> list[str]:
    found = [f"{n} failed tests" for n in [figures.get("tests", {}).get("failed", 0)] if n]
    found += [f"{key} = {n}" for key, n in figures.get("outcomes", {}).items() if n]
    if not figures.get("load") or not figures.get("fuzz_examples"):
        found.append("a partial run (no load or no fuzz figures): run all of tests/reliability")
    return found


def update(readme: str, table: str) -> str:
    block = f"{START}\n{table}\n{END}"
    if START in readme and END in readme:
        head, rest = readme.split(START, 1)
        _, tail = rest.split(END, 1)
        return head + block + tail
    section = f"{SECTION}\n\n{block}\n\n"
    if BEFORE in readme:
        head, tail = readme.split(BEFORE, 1)
        return head + section + BEFORE + tail
    return readme.rstrip("\n") + "\n\n" + section


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--figures", type=Path, default=ROOT / "build" / "reliability.json")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="exit 1 if README.md is stale")
    mode.add_argument("--print", action="store_true", help="print the table only")
    parser.add_argument("--force", action="store_true", help="render a failed run too")
    args = parser.parse_args(argv)
    if not args.figures.is_file():
        print(f"{args.figures} not found: run `python -m pytest tests/reliability` first")
        return 2
    figures = json.loads(args.figures.read_text())
    bad = problems(figures)
    if bad and not args.force:
        print("not rendering a run that did not pass: " + "; ".join(bad))
        return 1
    table = render(figures)
    if args.print:
        print(table)
        return 0
    current = args.readme.read_text()
    wanted = update(current, table)
    if args.check:
        if wanted != current:
            print(f"{args.readme} does not show the figures of {args.figures}")
            return 1
        return 0
    if wanted != current:
        args.readme.write_text(wanted)
    print(f"{args.readme}: reliability table from {figures.get('generated_at', '?')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
