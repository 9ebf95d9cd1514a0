"""Turn a bench run's results into markdown (printed, and put into README.md) and JSON."""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench import reference
from bench.calls import describe

README_START = "<!-- bench:start -->"
README_END = "<!-- bench:end -->"
TARGETS = {
    "overhead_ratio": 1.2,
    "cold_ratio": 1.1,
    "memory_mb": 128.0,
    "scale_flatness": 1.2,
}


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    java = shutil.which("java")
    java_version = ""
    if java:
        done = subprocess.run([java, "-version"], capture_output=True, text=True, check=False)
        java_version = (done.stderr or done.stdout).splitlines()[0] if done.returncode == 0 else ""
    from orchestrator.local.dynamodb_local import NPM_PACKAGE

    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "java": java_version,
        "dynamodb_local": f"DynamoDB Local from npm {NPM_PACKAGE}",
        "load_average_start": [round(x, 2) for x in os.getloadavg()],
    }


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target: met or missed, by how much."""
    found: list[dict[str, Any]] = []
    calls = results.get("calls")
    if calls:
        found.append(
            {
                "target": "calls per tick at the floor (every kind of tick)",
                "met": all(row["at_floor"] for row in calls["rows"]),
                "value": "; ".join(
                    f"{row['kind']}: {'floor' if row['at_floor'] else 'ABOVE floor'}"
                    for row in calls["rows"]
                ),
            }
        )
    grouped = results.get("calls_v2")
    if grouped:
        found.append(
            {
                "target": "calls per tick at the floor, v2 gate (a guard, parallel groups)",
                "met": all(row["at_floor"] for row in grouped["rows"]),
                "value": "; ".join(
                    f"{row['kind']}: {'floor' if row['at_floor'] else 'ABOVE floor'}"
                    for row in grouped["rows"]
                ),
            }
        )
    if results.get("reference"):
        found += reference.targets(results["reference"])
    overhead = results.get("overhead")
    if overhead:
        for row in overhead["rows"]:
            if row["kind"] in ("advance", "idle", "stale"):
                found.append(
                    {
                        "target": f"{row['kind']} tick <= {TARGETS['overhead_ratio']}x raw boto3",
                        "met": row["ratio"] <= TARGETS["overhead_ratio"],
                        "value": f"{row['ratio']:.2f}x (+{row['overhead_ms']:.2f} ms)",
                    }
                )
    cold = results.get("cold")
    if cold:
        found.append(
            {
                "target": f"cold start <= {TARGETS['cold_ratio']}x the libraries alone",
                "met": cold["ratios"]["cold"] <= TARGETS["cold_ratio"],
                "value": f"{cold['ratios']['cold']:.2f}x "
                f"({cold['handler']['cold_ms']:.0f} vs {cold['baseline']['cold_ms']:.0f} ms)",
            }
        )
        found.append(
            {
                "target": f"peak memory fits a {TARGETS['memory_mb']:.0f} MB function",
                "met": cold["handler"]["maxrss_mb"] < TARGETS["memory_mb"],
                "value": f"{cold['handler']['maxrss_mb']:.0f} MB",
            }
        )
    scale = results.get("scale")
    if scale and scale["levels"]:
        last = scale["levels"][-1]
        worst = max(last["p50_vs_first_level"], last["p99_vs_first_level"])
        found.append(
            {
                "target": f"latency flat within {TARGETS['scale_flatness']}x "
                f"from {scale['levels'][0]['runs']:,} to {last['runs']:,} runs",
                "met": worst <= TARGETS["scale_flatness"],
                "value": f"p50 {last['p50_vs_first_level']:.2f}x, "
                f"p99 {last['p99_vs_first_level']:.2f}x",
            }
        )
        found.append(
            {
                "target": "no lost or double advance; only GetItem/PutItem/UpdateItem",
                "met": all(
                    lv["lost_advances"] == 0
                    and lv["double_advances"] == 0
                    and lv["answers_not_matching_table"] == 0
                    and lv["hot_path_only"]
                    for lv in scale["levels"]
                ),
                "value": ", ".join(
                    f"{lv['runs']:,}: {lv['lost_advances']} lost, {lv['double_advances']} double"
                    for lv in scale["levels"]
                ),
            }
        )
    return found


def _ms(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _dollars(value: float) -> str:
    return f"${value:.6f}" if value < 0.01 else f"${value:.4f}"


def markdown(results: dict[str, Any]) -> str:
    """The README section (without its markers)."""
    out = _header(results)
    for render in (_calls, _reference, _overhead, _cold, _scale, _rehearsal, _cost):
        out += render(results)
    return "\n".join(out)


def _header(results: dict[str, Any]) -> list[str]:
    m = results["machine"]
    end = m.get("load_average_end", ["?"])[0]
    out = [
        f"Measured by `{results['command']}` on {results['date']}: {m['cpus']} x "
        f"{m['cpu_model']}, Python {m['python']}, {m['java']}; {m['dynamodb_local']} and the "
        f"CodePipeline emulator on loopback. Load average {m['load_average_start'][0]} at the "
        f"start, {end} at the end; {results['wall_seconds']:.0f} s in all. Ratios compare with "
        "a floor measured in the same run; times are medians. "
        "Method: [docs/BENCHMARKS.md](docs/BENCHMARKS.md).",
        "",
        "| target | result | |",
        "| --- | --- | --- |",
    ]
    for t in results["targets"]:
        out.append(f"| {t['target']} | {t['value']} | {'met' if t['met'] else '**missed**'} |")
    return out


def _calls(results: dict[str, Any]) -> list[str]:
    out = _calls_table(results.get("calls"), "gate")
    return out + _calls_table(
        results.get("calls_v2"), "v2 gate (a guard and parallel groups of two waits)"
    )


def _calls_table(calls: dict[str, Any] | None, what: str) -> list[str]:
    if not calls:
        return []
    out = [
        "",
        f"**Calls per tick**, counted on the wire ({calls['runs']} runs of a "
        f"{calls['steps']}-step {what}; a proxy in front of DynamoDB Local, the emulator's "
        "request log):",
        "",
        "| tick | DynamoDB, measured | DynamoDB, floor | CodePipeline, measured / floor |",
        "| --- | --- | --- | --- |",
    ]
    for row in calls["rows"]:
        flags = f" ({', '.join(row['flags'])})" if row["flags"] else ""
        out.append(
            f"| {row['label']} | {describe(row['measured'])}{flags} | "
            f"{describe(row['floor'])} | {row['measured'].get('CodePipeline', '0')} / "
            f"{row['floor'].get('CodePipeline', 1)} |"
        )
    return out


def _reference(results: dict[str, Any]) -> list[str]:
    result = results.get("reference")
    return reference.markdown(result) if result else []


def _overhead(results: dict[str, Any]) -> list[str]:
    overhead = results.get("overhead")
    if not overhead:
        return []
    sizes = overhead["item_bytes"].values()
    tokens = overhead["token_chars"]
    out = [
        "",
        "**Per-tick overhead**: the handler against raw boto3 making the same calls (same "
        f"items, {min(sizes):,}-{max(sizes):,} bytes; same {tokens[0]}-{tokens[-1]}-character "
        "tokens), interleaved tick by tick:",
        "",
        "| tick | samples | handler ms | floor ms | ratio | handler p90 | floor p90 |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in overhead["rows"]:
        out.append(
            f"| {row['kind']} | {row['samples']} | {_ms(row['handler_ms'])} | "
            f"{_ms(row['floor_ms'])} | **{row['ratio']:.2f}x** | "
            f"{_ms(row['handler_p90_ms'])} | {_ms(row['floor_p90_ms'])} |"
        )
    profile = overhead.get("profile")
    if profile:
        out += [
            "",
            f"Where the extra time goes (cProfile over {profile['ticks']} ticks of each kind: own "
            "CPU time per tick beyond the floor's, grouped by package; profiling inflates it):",
            "",
        ]
        for kind, extra in profile["extra_ms"].items():
            parts = ", ".join(
                f"{k} {v:.2f} ms" for k, v in extra.items() if not k.startswith("socket")
            )
            out.append(f"- {kind} tick: {parts}")
    return out


def _cold(results: dict[str, Any]) -> list[str]:
    cold = results.get("cold")
    if not cold:
        return []
    h, b, r = cold["handler"], cold["baseline"], cold["ratios"]
    out = [
        "",
        f"**Cold start** (a fresh `python -c` per sample, median of {cold['runs']} each; the "
        "baseline imports boto3, pynamodb and pydantic-settings, then makes the same "
        "first-tick calls with raw boto3; the handler imports boto3 and pynamodb lazily, "
        "during its first tick):",
        "",
        "| | handler | baseline | ratio |",
        "| --- | --- | --- | --- |",
        f"| import (`orchestrator.handler` / the libraries) | {_ms(h['import_ms'])} ms | "
        f"{_ms(b['import_ms'])} ms | {r['import']:.2f}x |",
        f"| first tick (clients, run created, answered) | {_ms(h['first_tick_ms'])} ms | "
        f"{_ms(b['first_tick_ms'])} ms | {r['first_tick']:.2f}x |",
        f"| **import + first tick** | {_ms(h['cold_ms'])} ms | {_ms(b['cold_ms'])} ms | "
        f"**{r['cold']:.2f}x** |",
        f"| peak RSS after the first tick | {h['maxrss_mb']:.0f} MB | "
        f"{b['maxrss_mb']:.0f} MB | {r['maxrss']:.2f}x |",
    ]
    bare = cold.get("no_bytecode")
    if bare:
        out.append(
            f"| import + first tick, no .pyc anywhere (a package without its bytecode) | "
            f"{_ms(bare['handler']['cold_ms'])} ms | {_ms(bare['baseline']['cold_ms'])} ms | "
            f"{bare['ratio']:.2f}x |"
        )
    extra = cold["extra_imports"]
    heavy = ", ".join(f"`{e['module']}` {e['self_ms']:.1f}" for e in extra["heaviest"][:10])
    out += [
        "",
        f"Imported by the handler and not by the baseline: {extra['modules']} modules, "
        f"{extra['self_ms_total']:.0f} ms of their own import time (`-X importtime`); the "
        f"heaviest (ms): {heavy}.",
    ]
    if extra.get("unused_steps"):
        unused = ", ".join(f"`{n}` {v:.1f}" for n, v in extra["unused_steps"].items())
        out.append(
            "Step kinds a wait-only gate never uses, imported anyway "
            f"({extra['unused_steps_ms']:.0f} ms): {unused}."
        )
    models = cold.get("models")
    if models:
        out.append(
            f"Building the handler's {models['count']} pydantic model classes (pydantic-core "
            "compiles each one's validator and serializer, once per process) takes "
            f"{_ms(models['build_ms'])} ms of its import and first tick "
            f"({_ms(models['import_and_tick_ms'])} ms in those processes)."
        )
    clients = cold.get("clients")
    if clients:
        out.append(
            "Creating the DynamoDB client: from boto3's session (as the baseline does) "
            f"{_ms(clients['boto3_same_session_ms'])} ms; pynamodb's own botocore session "
            f"{_ms(clients['pynamodb_ms'])} ms, or "
            f"{_ms(clients.get('pynamodb_shared_loader_ms', clients['pynamodb_ms']))} ms "
            "when it borrows boto3's data loader (as the handler does)."
        )
    return out


def _scale(results: dict[str, Any]) -> list[str]:
    scale = results.get("scale")
    if not scale or not scale["levels"]:
        return []
    threads = scale["levels"][0]["threads"]
    out = [
        "",
        f"**Scale**: every live run ticked (advancing) from {threads} threads; DynamoDB "
        "operations as counted by the proxy; versions and answers checked against the table "
        "afterwards:",
        "",
        "| live runs | ticks | advancing p50 | p99 | p50 / p99 vs first level | first tick "
        "p50 / p99 | DynamoDB operations | CodePipeline calls | lost / double |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for lv in scale["levels"]:
        ops = ", ".join(f"{k} {v:,}" for k, v in lv["operations"].items())
        out.append(
            f"| {lv['runs']:,} | {lv['ticks']:,} | {_ms(lv['advance_p50_ms'])} ms | "
            f"{_ms(lv['advance_p99_ms'])} ms | {lv['p50_vs_first_level']:.2f}x / "
            f"{lv['p99_vs_first_level']:.2f}x | {_ms(lv['first_p50_ms'])} / "
            f"{_ms(lv['first_p99_ms'])} ms | {ops} | {lv['codepipeline_calls']:,} | "
            f"{lv['lost_advances']} / {lv['double_advances']} |"
        )
    if scale.get("stopped"):
        out += ["", f"{scale['stopped']}."]
    return out


def _rehearsal(results: dict[str, Any]) -> list[str]:
    rehearsal = results.get("rehearsal")
    if not rehearsal:
        return []
    cli = rehearsal["cli"]
    out = [
        "",
        "**Rehearsal** of a 24-hour gate (waits of 12 h and 11 h):",
        "",
        "| how | gate time | jobs | wall time |",
        "| --- | --- | --- | --- |",
        f"| `{cli['command']}` | {cli['gate_hours']:.1f} h | {cli['rounds']:,} | "
        f"{cli['wall_seconds']:.1f} s |",
    ]
    for run in rehearsal["runner"]:
        out.append(
            f"| runner API, jumping clock, a job every {run['cadence_seconds']:g} s | "
            f"{run['gate_hours']:.1f} h | {run['ticks']:,} | {run['wall_seconds']:.1f} s |"
        )
    return out


def _cost(results: dict[str, Any]) -> list[str]:
    cost = results.get("cost")
    if not cost:
        return []
    p = cost["prices"]
    out = [
        "",
        "**Cost per gate-hour.** Assumed cadence: CodePipeline re-invokes the function about "
        "every 30-60 s (the interval is not documented); both are shown. Public list "
        f"prices, us-east-1, as of {cost['prices_as_of']}: Lambda "
        f"${p['lambda_request'] * 1e6:.2f} per 1M requests and "
        f"${p['lambda_gb_second_arm64']:.10f} per GB-s (arm64), billed "
        f"{cost['lambda_billed_ms']:.0f} ms at {cost['lambda_memory_gb'] * 1024:.0f} MB "
        "(an assumption: in AWS each call crosses the network); DynamoDB on-demand "
        f"${p['dynamodb_rru'] * 1e6:.3f} per 1M read and ${p['dynamodb_wru'] * 1e6:.3f} per 1M "
        f"write request units (a {cost['item_bytes']:,}-byte item: "
        f"{cost['units']['read_rru']} RRU per consistent read, "
        f"{cost['units']['update_wru']} WRU per advancing update, which writes no index); "
        f"Step Functions standard ${p['stepfunctions_transition'] * 1000:.3f} per 1,000 state "
        "transitions.",
        "",
        "| per gate-hour | requests | dollars |",
        "| --- | --- | --- |",
    ]
    for row in cost["rows"]:
        out.append(f"| {row['scenario']} | {row['requests']} | {_dollars(row['dollars'])} |")
    out += [
        "",
        "CodePipeline itself: a V2 pipeline bills every action but manual approval and "
        f"custom ones at ${p['codepipeline_v2_action_minute']} per action-minute, "
        f"{_dollars(cost['codepipeline_v2_per_gate_hour'])} per gate-hour whichever way the "
        "gate is built (Lambda or Step Functions invoke action), far above the rest; a V1 "
        "pipeline costs $1 per active pipeline-month and nothing per action.",
    ]
    return out


def update_readme(readme: Path, section: str) -> None:
    """Replace the text between the bench markers (add the section before ## Layout if absent)."""
    text = readme.read_text()
    block = f"{README_START}\n{section}\n{README_END}"
    if README_START in text and README_END in text:
        pattern = re.compile(re.escape(README_START) + r".*?" + re.escape(README_END), re.S)
        text = pattern.sub(lambda _: block, text, count=1)
    else:
        heading = "## Layout"
        if heading not in text:
            raise RuntimeError(
                "README.md has no bench markers and no '## Layout' to put them before"
            )
        text = text.replace(heading, f"## Benchmarks\n\n{block}\n\n{heading}", 1)
    readme.write_text(text)


def write_json(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")


def command_line() -> str:
    args = " ".join(sys.argv[1:])
    return f"python -m bench.run{' ' + args if args else ''}"
