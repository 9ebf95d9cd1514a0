"""Run every benchmark, print the tables, write build/bench.json (and README.md's section).

    python -m bench.run                    # the whole run (a few minutes on 2 cores)
    python -m bench.run --update-readme    # ... and replace README.md's benchmark section
    python -m bench.run --quick            # smaller samples, up to 1,000 runs: a smoke run
    python -m bench.run --only reference   # one section (here: gates by reference, seconds)

Timings are never asserted here or in tests: targets are reported as met or missed.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import calls, cold, cost, overhead, reference, rehearsal, report, scale
from bench.rig import Stack, v2_gate

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = ("calls", "reference", "overhead", "cold", "scale", "rehearsal")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    parser.add_argument("--update-readme", action="store_true", help="rewrite README.md's section")
    parser.add_argument("--json", type=Path, default=ROOT / "build" / "bench.json")
    parser.add_argument("--quick", action="store_true", help="small samples (a smoke run)")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    parser.add_argument("--samples", type=int, help="overhead samples per kind (default 300)")
    parser.add_argument(
        "--levels", type=int, nargs="+", help="live runs per scale level (default 100 1000 10000)"
    )
    parser.add_argument("--threads", type=int, default=4, help="scale: thread pool size")
    return parser


def _say(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    sections = set(args.only or SECTIONS)
    samples = args.samples or (60 if args.quick else 300)
    levels = tuple(args.levels or ((100, 1000) if args.quick else (100, 1000, 10_000)))
    logging.basicConfig(level=logging.WARNING)
    os.chdir(ROOT)
    started = time.perf_counter()
    results: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "command": report.command_line(),
        "machine": report.machine(),
    }
    with Stack() as stack:
        _say(f"DynamoDB Local at {stack.dynamodb_url}, emulator at {stack.codepipeline_url}")
        if "calls" in sections:
            _say("calls per tick, on the wire")
            results["calls"] = calls.measure(stack)
            _say("calls per tick of a v2 gate (a guard, parallel groups), on the wire")
            results["calls_v2"] = calls.measure(stack, user_parameters=v2_gate(5))
        recording_table: tuple[overhead.Recording, str] | None = None
        if sections & {"overhead", "cold"}:
            _say(f"per-tick overhead: handler vs raw boto3, {samples} samples per kind")
            results["overhead"] = overhead.measure(stack, samples=samples)
            results["overhead"]["profile"] = overhead.profile(
                stack, ticks=60 if args.quick else 150
            )
            table = stack.new_table()
            stack.install_handler(table)
            recording_table = (overhead.record(stack, table, 5), table)
        if "cold" in sections and recording_table is not None:
            _say("cold start: fresh processes, handler vs the libraries alone")
            recording, table = recording_table
            results["cold"] = cold.measure(
                stack,
                recording,
                table,
                runs=3 if args.quick else 9,
                unbytecoded_runs=0 if args.quick else 3,
            )
        if "scale" in sections:
            _say(f"scale: {', '.join(f'{n:,}' for n in levels)} live runs, {args.threads} threads")
            results["scale"] = scale.measure(stack, levels=levels, threads=args.threads)
        if "rehearsal" in sections:
            _say("rehearsal of a 24-hour gate")
            results["rehearsal"] = rehearsal.measure(stack)
        if "reference" in sections:
            # Last: moto (in this process) and the S3 client leave it ~100 MB larger, which
            # would show in the cold section (a child's ru_maxrss starts at its parent's peak:
            # Linux keeps it across exec) and in every later section's garbage collections.
            _say("gates by reference: calls and bytes per tick against an inline gate")
            results["reference"] = reference.measure(stack)
    if "rehearsal" in results and "overhead" in results:
        item_bytes = max(results["overhead"]["item_bytes"].values())
        results["cost"] = cost.model(results["rehearsal"]["runner"], item_bytes)
    results["machine"]["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    results["wall_seconds"] = round(time.perf_counter() - started, 1)
    results["targets"] = report.targets(results)
    section = report.markdown(results)
    print(section)
    report.write_json(args.json, results)
    _say(f"wrote {args.json}")
    if args.update_readme:
        report.update_readme(ROOT / "README.md", section)
        _say("updated README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
