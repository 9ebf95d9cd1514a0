"""Hundreds of runs advancing at once (a thread each), through the emulator's job loop and
the real handler, against DynamoDB Local behind the fault proxy, with faults on at both
boundaries. Afterwards: every job has exactly one accepted answer, no run was advanced
twice by a job, and every run finished with the right outputs, its stored answer being
the one CodePipeline accepted last."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import pytest

from orchestrator.local.emulator import Faults
from tests.http_stub import stub_server
from tests.reliability.figures import FIGURES, SEED, scaled
from tests.reliability.rig import (
    APPROVED,
    PENDING,
    Function,
    Rig,
    approval_gate,
    approval_outputs,
    in_threads,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from orchestrator.local.driver import ActionResult

RUNS = scaled(200)


@pytest.mark.timeout(300 * (1 if RUNS <= 200 else RUNS // 200))
def test_hundreds_of_runs_at_once_under_faults(make_rig: Callable[..., Rig]) -> None:
    faults = Faults(throttle=0.03, server_error=0.03, seed=SEED)
    # A slower clock than elsewhere: waits last seconds, so runs take many rounds each.
    rig = make_rig(faults=faults, speed=60.0, hang_seconds=2.5)
    rig.read_timeout = 2.0  # hundreds of threads on two cores: a slow answer is not a fault
    rig.proxy.set_rates(throttle=0.03, server_error=0.03, timeout=0.002, lost_response=0.01)
    function = Function(rig)
    function.app()
    results: list[ActionResult] = []
    started = time.monotonic()
    with stub_server([PENDING, APPROVED]) as itsm:

        def one(i: int) -> None:
            # One run in ten has every job delivered twice, one in twenty three times at once.
            duplicates = "sequential" if i % 10 == 3 else "concurrent" if i % 20 == 7 else "none"
            results.append(
                rig.run(approval_gate(itsm.url), function, duplicates=duplicates, concurrency=3)
            )

        errors = in_threads(RUNS, one, timeout=240 * max(1, RUNS // 200))
    seconds = time.monotonic() - started
    FIGURES.load.update(
        {
            "runs": len(results),
            "threads": RUNS,
            "jobs": sum(len(r.jobs) for r in results),
            "deliveries": sum(r.invocations for r in results),
            "writes": rig.writes.count(),
            "seconds": round(seconds, 1),
        }
    )
    assert errors == []
    verdict = rig.check(results, function, approval_outputs)
    FIGURES.load["accepted_answers"] = verdict.accepted
    assert verdict.problems() == []
    assert verdict.accepted == verdict.jobs  # each job exactly one answer
    assert len(results) == RUNS
    injected = rig.proxy.injected
    assert injected["throttle"] and injected["server_error"] and injected["lost_response"]
