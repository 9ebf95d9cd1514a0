"""Scale: per-tick latency as the number of live runs grows, with no lost or double advance.

One table holds every run: level 100 creates 100 runs, level 1,000 adds 900, level 10,000
adds 9,000, and no run ends, so at each level that many runs are alive in the table. At each
level every live run is ticked (advancing: its wait is over) from a thread pool of a fixed
size, in rounds (level 100 runs ten rounds, so each level has at least 1,000 samples). The
handler reaches DynamoDB Local through the counting proxy, which shows which operations the
hot path uses (only GetItem, PutItem, UpdateItem may appear: nothing whose cost grows with
the table). Afterwards the table is read directly (not through the proxy) to check that every
run's version is exactly its number of writes, and the emulator that every job got exactly
one accepted answer.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from bench.proxy import CountingProxy
from bench.rig import gate, tick, token_of
from orchestrator.token import Token

if TYPE_CHECKING:
    from bench.rig import Stack
    from orchestrator.local.emulator import JobRecord

HOT_PATH_OPERATIONS = frozenset({"GetItem", "PutItem", "UpdateItem"})
SCALE_GATE = gate(15, "1m")
ROUND_SECONDS = 61.0


def _rounds(level: int) -> int:
    return max(1, 1000 // level)


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(
    stack: Stack,
    levels: tuple[int, ...] = (100, 1000, 10_000),
    threads: int = 8,
    budget_seconds: float = 420.0,
) -> dict[str, Any]:
    """Tick every live run at each level; stop early (and say so) past `budget_seconds`."""
    table = stack.new_table()
    emulator = stack.fresh_emulator()
    tokens: dict[str, str] = {}  # run id -> its current continuation token
    versions: dict[str, int] = {}  # run id -> writes the bench expects it to have had
    last_jobs: dict[str, str] = {}  # run id -> the job that last advanced it
    results: list[dict[str, Any]] = []
    started = time.perf_counter()
    stopped: str | None = None
    with (
        CountingProxy(stack.dynamodb_url) as proxy,
        ThreadPoolExecutor(max_workers=threads, thread_name_prefix="lambda") as pool,
    ):
        stack.install_handler(table, dynamodb_url=proxy.url)
        for level in levels:
            if time.perf_counter() - started > budget_seconds:
                stopped = f"stopped before level {level}: over the {budget_seconds:.0f}s budget"
                break
            level_started = time.perf_counter()
            proxy.mark()
            requests_before = len(emulator.requests)
            # Create the new runs: their first ticks (GetItem + conditional PutItem).
            new = [stack.job(definition=SCALE_GATE) for _ in range(level - len(tokens))]
            first_ms = [t * 1000 for t in pool.map(tick, new)]
            for job in new:
                tokens[job.job_id] = _token(job)
                versions[job.job_id] = 1
                last_jobs[job.job_id] = job.job_id
            # Advance every live run, round after round.
            advance_ms: list[float] = []
            ticks = len(new)
            for _ in range(_rounds(level)):
                stack.clock.advance(ROUND_SECONDS)
                run_ids = list(tokens)
                jobs = [stack.job(tokens[run_id], SCALE_GATE) for run_id in run_ids]
                advance_ms += [t * 1000 for t in pool.map(tick, jobs)]
                ticks += len(jobs)
                for run_id, job in zip(run_ids, jobs, strict=True):
                    tokens[run_id] = _token(job)
                    versions[run_id] += 1
                    last_jobs[run_id] = job.job_id
            operations = Counter(r.operation for r in proxy.window())
            codepipeline_calls = len(emulator.requests) - requests_before
            results.append(
                {
                    "runs": level,
                    "ticks": ticks,
                    "rounds": _rounds(level),
                    "threads": threads,
                    "advance_p50_ms": round(statistics.median(advance_ms), 2),
                    "advance_p99_ms": round(_quantile(advance_ms, 0.99), 2),
                    "first_p50_ms": round(statistics.median(first_ms), 2),
                    "first_p99_ms": round(_quantile(first_ms, 0.99), 2),
                    "operations": dict(sorted(operations.items())),
                    "codepipeline_calls": codepipeline_calls,
                    "hot_path_only": set(operations) <= HOT_PATH_OPERATIONS,
                    "seconds": round(time.perf_counter() - level_started, 1),
                }
            )
            results[-1].update(_check(stack, table, versions, last_jobs, tokens))
    base = results[0] if results else None
    for row in results:
        assert base is not None
        row["p50_vs_first_level"] = round(row["advance_p50_ms"] / base["advance_p50_ms"], 3)
        row["p99_vs_first_level"] = round(row["advance_p99_ms"] / base["advance_p99_ms"], 3)
    return {
        "levels": results,
        "stopped": stopped,
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def _token(job: JobRecord) -> str:
    token = token_of(job)
    if token is None:
        raise RuntimeError(f"run ended early at job {job.job_id}")
    if job.rejected:
        raise RuntimeError(f"job {job.job_id} had answers refused: {job.rejected}")
    return token


def _check(
    stack: Stack,
    table: str,
    versions: dict[str, int],
    last_jobs: dict[str, str],
    tokens: dict[str, str],
) -> dict[str, Any]:
    """Read the whole table directly (never through the proxy) and compare with the bench's
    own count of writes: a lower version is a lost advance, a higher one a double advance."""
    client = stack.dynamodb()
    lost = double = wrong_answer = 0
    seen = 0
    for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        for item in page["Items"]:
            run_id = item["run_id"]["S"]
            if run_id not in versions:
                continue
            seen += 1
            version = int(item["version"]["N"])
            lost += version < versions[run_id]
            double += version > versions[run_id]
            nonce = Token.decode(tokens[run_id]).nonce
            wrong_answer += (
                item["last_job_id"]["S"] != last_jobs[run_id] or item["nonce"]["S"] != nonce
            )
    missing = len(versions) - seen
    return {
        "runs_in_table": seen,
        "lost_advances": lost + missing,
        "double_advances": double,
        "answers_not_matching_table": wrong_answer,
    }
