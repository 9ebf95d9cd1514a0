"""Faults at the two network boundaries, at random (seeded) rates, through the real handler.

DynamoDB: throttling, 5xx, timeouts and responses lost after the write was applied (the
retry then meets a genuine ConditionalCheckFailedException), from the fault proxy.
CodePipeline: throttling, 5xx, InvalidJobStateException and JobNotFoundException, from
the emulator's `Faults`.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from orchestrator import handler
from orchestrator.local.driver import LambdaContext
from orchestrator.local.emulator import Faults
from orchestrator.model import Answer
from tests.http_stub import stub_server
from tests.reliability.figures import FIGURES, SEED, scaled
from tests.reliability.rig import (
    APPROVED,
    GATES,
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

RUNS = scaled(8)


def run_many(
    rig: Rig, function: Function, runs: int, language: str = "v1", **kwargs: object
) -> list[ActionResult]:
    results: list[ActionResult] = []
    with stub_server([PENDING, APPROVED]) as itsm:

        def one(i: int) -> None:
            results.append(rig.run(GATES[language][0](itsm.url), function, **kwargs))

        errors = in_threads(runs, one, timeout=120)
    assert errors == []
    return results


@pytest.mark.parametrize("language", sorted(GATES))
def test_dynamodb_throttling_5xx_timeouts_and_lost_responses(
    make_rig: Callable[..., Rig], language: str
) -> None:
    rig = make_rig(hang_seconds=1.3)
    # Each kind at least once, whatever the random draws (which threads make unrepeatable),
    # then random faults on every request.
    rig.proxy.plan("GetItem", "throttle", "none", "server_error", "none", "timeout")
    rig.proxy.plan("UpdateItem", "lost_response")
    rig.proxy.plan("PutItem", "lost_response")
    rig.proxy.set_rates(throttle=0.12, server_error=0.08, timeout=0.03, lost_response=0.08)
    function = Function(rig)
    results = run_many(rig, function, RUNS, language)
    verdict = rig.check(results, function, GATES[language][1])
    assert verdict.problems() == []
    injected = rig.proxy.injected
    assert all(injected[kind] > 0 for kind in injected), injected
    # Whether a lost write's retry reaches DynamoDB (and meets a genuine conditional-check
    # failure) or runs out of attempts (and the job is deferred) depends on the draws; the
    # verdict holds either way. test_writes_whose_responses_were_lost_are_recognised_when_
    # retried pins the first path down.


def test_writes_whose_responses_were_lost_are_recognised_when_retried(rig: Rig) -> None:
    """The create and the first update are applied but their responses never arrive."""
    rig.proxy.plan("PutItem", "lost_response")
    rig.proxy.plan("UpdateItem", "lost_response", "none", "lost_response")
    function = Function(rig)
    with stub_server([PENDING, APPROVED]) as itsm:
        result = rig.run(approval_gate(itsm.url), function)
    verdict = rig.check([result], function, approval_outputs)
    assert verdict.problems() == []
    assert rig.proxy.counts["conditional_check_failed"] >= 3


def test_a_dynamodb_outage_defers_the_job_and_the_next_one_resumes(rig: Rig) -> None:
    """Every DynamoDB request fails for a while: jobs are answered in progress with the
    token they came with; when DynamoDB is back the run resumes where it was."""
    function = Function(rig, idle_check_interval=0)  # every tick reads the table
    rounds = {"n": 0}

    def on_job(job: object) -> None:
        rounds["n"] += 1  # DynamoDB is down for the 2nd and 3rd jobs
        rig.proxy.set_rates(server_error=1.0 if rounds["n"] in (1, 2) else 0.0)

    with stub_server([PENDING, APPROVED]) as itsm:
        result = rig.run(approval_gate(itsm.url), function, on_job=on_job)
    rig.proxy.set_rates(server_error=0.0)
    verdict = rig.check([result], function, approval_outputs)
    assert verdict.problems() == []
    summaries = [
        job.answer["params"]["executionDetails"]["summary"] for job in result.jobs if job.answer
    ]
    assert summaries[1:3] == ["state store unavailable; will retry at the next check"] * 2


@pytest.mark.parametrize("kind", ["timeout", "lost_response"])
def test_a_dynamodb_timeout_after_every_retry_defers_the_job(
    make_rig: Callable[..., Rig], kind: str
) -> None:
    rig = make_rig(hang_seconds=1.2)
    rig.store_retries = 0
    function = Function(rig)
    definition = json.dumps({"steps": [{"name": "w", "wait": "1m"}]})
    job = rig.emulator.create_job({"FunctionName": "f", "UserParameters": definition})
    rig.proxy.set_rates(**{kind: 1.0})
    function(job.event, LambdaContext(60))
    assert job.answer is not None
    summary = job.answer["params"].get("executionDetails", {}).get("summary", "")
    assert "continuationToken" in job.answer["params"], job.answer["params"]
    assert summary == "state store unavailable; will retry at the next check"


def test_codepipeline_throttling_and_5xx(make_rig: Callable[..., Rig]) -> None:
    """Answers that cannot get through after botocore's retries make the invocation fail;
    Lambda's retry delivers the job again and the recorded answer is sent again."""
    # The first 16 jobs: both attempts of the first delivery fail, Lambda's retry gets through.
    # Then random faults, at rates that leave a job unanswered once in ~100,000.
    script = ["server_error", "throttle", "none"] * 16
    rig = make_rig(faults=Faults(throttle=0.1, server_error=0.05, seed=SEED, script=script))
    rig.reporter_attempts = 1  # botocore: one retry (max_attempts counts retries), then give up
    function = Function(rig)
    results = []
    with stub_server([PENDING, APPROVED]) as itsm:
        for _ in range(6):  # one after the other, so that the script is read job by job
            results.append(rig.run(approval_gate(itsm.url), function))
    verdict = rig.check(results, function, approval_outputs)
    assert verdict.problems() == []
    assert rig.emulator.faults_injected["throttle"] > 0
    assert rig.emulator.faults_injected["server_error"] > 0
    assert verdict.deliveries >= verdict.jobs + min(16, verdict.jobs)  # Lambda's retries


def test_refused_answers_do_not_fail_the_invocation_and_a_redelivery_converges(
    make_rig: Callable[..., Rig],
) -> None:
    """InvalidJobStateException and JobNotFoundException on the first delivery of every job:
    the handler returns normally (no Lambda retry storm); Lambda's duplicate delivery then
    re-sends the same answer, and that one is accepted."""
    script = ["invalid_job_state", "none", "job_not_found", "none"] * 40
    rig = make_rig(faults=Faults(script=script, seed=SEED))
    function = Function(rig)
    with stub_server([PENDING, APPROVED]) as itsm:
        result = rig.run(approval_gate(itsm.url), function, duplicates="sequential")
    FIGURES.add("checked", {"refused_answers": sum(len(job.rejected) for job in result.jobs)})
    verdict = rig.check([result], function, approval_outputs, injected={"JobNotFoundException"})
    assert verdict.problems() == []
    for job in result.jobs:
        assert len(job.rejected) == 1 and job.answer is not None
        assert job.rejected[0][1] in ("InvalidJobStateException", "JobNotFoundException")
    # A job that advanced the run was answered (second time lucky) with what it recorded.
    accepted = {job.job_id: job.answer["params"] for job in result.jobs if job.answer}
    for job_id, recorded in rig.writes.answers().items():
        assert accepted[job_id] == recorded


def test_a_late_answer_is_refused_without_failing_the_invocation(rig: Rig) -> None:
    """CodePipeline gave up on the job (it timed out) before the function answered."""
    function = Function(rig)
    function.app()
    definition = json.dumps({"steps": [{"name": "w", "wait": "1m"}, {"name": "v", "wait": "1h"}]})
    config = {"FunctionName": "f", "UserParameters": definition}
    first = rig.emulator.create_job(config)
    function(first.event, LambdaContext(60))
    assert first.answer is not None
    rig.clock.advance(61)
    late = rig.emulator.create_job(
        config, continuation_token=first.answer["params"]["continuationToken"]
    )
    rig.emulator.expire_job(late.job_id)
    outcome = function(late.event, LambdaContext(60))
    assert outcome == {"answered": True, "answer": "IN_PROGRESS", "delivery": "ALREADY_ANSWERED"}
    assert late.answer is None and late.rejected == [
        ("PutJobSuccessResult", "InvalidJobStateException")
    ]
    # The run stays consistent: its last write is the late job's, with the answer it sent.
    item = rig.item(first.job_id)
    assert item is not None and item["last_job_id"]["S"] == late.job_id
    sent = json.loads(rig.emulator.requests[-1])
    stored = Answer.model_validate_json(item["answer"]["S"]).to_request(late.job_id)[1]
    assert stored == sent
    handler.use(None)
    FIGURES.add("faults", {"codepipeline_late_answer": 1})
    assert rig.writes.double_advances() == [] and function.escaped == []


def test_a_claim_whose_response_was_lost_is_still_the_claimants(rig: Rig) -> None:
    """The once-per-key write (approvals, notification and `lambda` claims) is applied, its
    response lost; botocore's retry meets the claim and the store recognises it as its own."""
    function = Function(rig)
    definition = json.dumps({"steps": [{"name": "w", "wait": "1h"}]})
    job = rig.emulator.create_job({"FunctionName": "f", "UserParameters": definition})
    function(job.event, LambdaContext(60))  # the run is stored
    store = rig.store()
    rig.proxy.plan("UpdateItem", "lost_response")
    mine = {"at": 1.0, "by": "this-delivery"}
    assert store.claim(job.job_id, "w", "invoke-0", mine) is True
    assert rig.proxy.counts["lost_response:UpdateItem"] == 1
    assert rig.proxy.counts["conditional_check_failed"] >= 1
    theirs = {"at": 1.0, "by": "another-delivery"}
    assert store.claim(job.job_id, "w", "invoke-0", theirs) is False
    assert store.claim(job.job_id, "w", "invoke-0", mine) is True  # still ours
    handler.use(None)
