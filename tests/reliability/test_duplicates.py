"""The same job delivered many times, one after the other and tens at once."""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING

import pytest

from tests.http_stub import stub_server
from tests.lambda_peer import LambdaPeer, checks
from tests.reliability.figures import scaled
from tests.reliability.rig import (
    APPROVED,
    GATES,
    PENDING,
    Function,
    Rig,
    approval_gate,
    approval_outputs,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from orchestrator.local.driver import ActionResult
    from orchestrator.local.emulator import JobRecord

COPIES = min(scaled(24), 120)


@pytest.mark.parametrize("language", sorted(GATES))
def test_tens_of_concurrent_deliveries_of_every_job(rig: Rig, language: str) -> None:
    """Every job of two gates is delivered COPIES times at the same instant (a barrier)."""
    function = Function(rig)
    gate, outputs = GATES[language]
    with stub_server([PENDING, APPROVED]) as itsm:
        results = [
            rig.run(gate(itsm.url), function, duplicates="concurrent", concurrency=COPIES)
            for _ in range(2)
        ]
    verdict = rig.check(results, function, outputs)
    assert verdict.problems() == []
    for result in results:
        for job in result.jobs:  # one accepted answer; every other copy refused as late
            assert job.answer is not None and len(job.rejected) == COPIES - 1
    assert rig.proxy.counts["conditional_check_failed"] > 0  # the copies did race
    assert (rig.writes.held() > 0) is (language == "v2-hold")  # the held gate did hold


def test_concurrent_deliveries_of_a_holding_gate(rig: Rig) -> None:
    """Eight copies of every job at once, the gate holding 2m: the copies race on the first
    write as without a hold; the one that wins holds (writes again, in a row), the others
    re-send; no job writes after another job did (rig.check's double advances)."""
    function = Function(rig)
    with stub_server([PENDING, PENDING, APPROVED]) as itsm:
        gate = approval_gate(itsm.url) | {"hold": "2m"}
        result = rig.run(gate, function, duplicates="concurrent", concurrency=8)
    verdict = rig.check([result], function, approval_outputs)
    assert verdict.problems() == []
    writers = [w.job_id for w in rig.writes.runs[result.jobs[0].job_id]]
    assert len(writers) > len(set(writers))  # a job held: it wrote more than one version


def test_concurrent_deliveries_while_dynamodb_throttles(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig()  # throttling backs off for up to seconds: a few go a long way
    rig.proxy.set_rates(throttle=0.05, server_error=0.1)
    function = Function(rig)
    with stub_server([PENDING, APPROVED]) as itsm:
        results = [
            rig.run(approval_gate(itsm.url), function, duplicates="concurrent", concurrency=8)
            for _ in range(2)
        ]
    verdict = rig.check(results, function, approval_outputs)
    assert verdict.problems() == []


@pytest.mark.parametrize("hold", [None, "2m"])
def test_sequential_duplicates_of_every_job(rig: Rig, hold: str | None) -> None:
    """With `hold`, the first delivery of a job holds and polls on; the second, after it,
    re-sends what the first wrote last."""
    function = Function(rig)
    with stub_server([PENDING, APPROVED]) as itsm:
        gate = approval_gate(itsm.url) | ({"hold": hold} if hold else {})
        result = rig.run(gate, function, duplicates="sequential")
    verdict = rig.check([result], function, approval_outputs)
    assert verdict.problems() == []
    assert all(len(job.rejected) == 1 for job in result.jobs)


def test_a_lambda_step_runs_once_per_run_while_deliveries_race_and_dynamodb_fails(
    make_rig: Callable[..., Rig], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every job of four gates delivered four times at once, through DynamoDB throttling,
    5xx and lost responses: each gate's function is invoked exactly once (the claim)."""
    rig = make_rig()
    rig.proxy.set_rates(throttle=0.04, server_error=0.04, lost_response=0.04)
    gate = {
        "steps": [
            {"name": "bake", "wait": "1m"},
            {"name": "check", "lambda": {"function": "checks", "payload": {"run": "${run.id}"}}},
        ],
        "outputs": {"Run": "steps.check.run"},
    }
    with LambdaPeer({"checks": checks}) as peer:
        monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", peer.url)
        function = Function(rig)
        results = [
            rig.run(gate, function, duplicates="concurrent", concurrency=4) for _ in range(4)
        ]
    verdict = rig.check(results, function, lambda result: {"Run": result.jobs[0].job_id})
    assert verdict.problems() == []
    invoked = Counter(payload["run"] for _, payload, _ in peer.calls)
    assert invoked == {result.jobs[0].job_id: 1 for result in results}


def test_operator_controls_race_safely_with_concurrent_deliveries(rig: Rig) -> None:
    """A pause, a resume and a skip land between jobs delivered eight times at once: each is
    applied once, nothing is lost or advanced twice, and the audit says so."""
    from orchestrator.model import Control

    function = Function(rig, idle_check_interval=0)
    store = rig.store()
    operator = "arn:aws:iam::123456789012:user/operator"
    plan: dict[int, tuple[str, str | None]] = {1: ("pause", None), 2: ("resume", None),
                                               3: ("skip", "soak")}  # fmt: skip
    jobs: list[str] = []

    def on_job(job: JobRecord) -> None:
        jobs.append(job.job_id)
        if len(jobs) in plan:
            action, step = plan[len(jobs)]
            control = Control.model_validate(
                {"action": action, "by": operator, "at": len(jobs), "reason": "drill",
                 "step": step}
            )  # fmt: skip
            assert store.record_control(jobs[0], control)

    with stub_server([PENDING, APPROVED]) as itsm:
        definition = approval_gate(itsm.url)
        definition["steps"][-1]["wait"] = "2h"  # a soak that only the skip ends in time
        result = rig.run(
            definition, function, duplicates="concurrent", concurrency=8, on_job=on_job
        )

    def expected(result: ActionResult) -> dict[str, str]:
        trail = [
            {"action": action, "by": operator, "at": float(n), "reason": "drill"}
            | ({"step": step} if step else {})
            for n, (action, step) in plan.items()
        ]
        return {**approval_outputs(result), "AuditTrail": json.dumps(trail)}

    verdict = rig.check([result], function, expected)
    assert verdict.problems() == []
    assert result.ended_at - result.started_at < 3600  # the 2-hour soak was skipped
