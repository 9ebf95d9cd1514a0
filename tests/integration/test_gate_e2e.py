"""Gates end to end: the Lambda handler, called by the CodePipeline emulator's job loop,
answering over real HTTP with boto3, keeping state in DynamoDB Local."""

from __future__ import annotations

import json
import logging
import threading
from typing import TYPE_CHECKING, Any

import pytest

from orchestrator import handler
from orchestrator.local.driver import LambdaContext
from orchestrator.token import Token
from tests.http_stub import stub_server
from tests.rig import Rig, gate_rig

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def rig(table_name: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    with gate_rig(table_name, monkeypatch) as found:
        yield found


def tokens_of(result: Any) -> list[str | None]:
    return [job.answer["params"].get("continuationToken") for job in result.jobs]


def test_wait_and_http_gate_runs_to_output_variables(rig: Rig) -> None:
    script = [(200, {"state": "pending"})] * 2 + [(200, {"state": "approved", "id": "CHG42"})]
    with stub_server(script) as itsm:
        result = rig.run(
            {
                "steps": [
                    {"name": "bake", "wait": "5m"},
                    {
                        "name": "change",
                        "http": {"url": f"{itsm.url}/api/change/42"},
                        "until": "status == `200` && body.state == 'approved'",
                        "fail_if": "body.state == 'rejected'",
                        "every": "30s",
                    },
                ],
                "outputs": {
                    "ChangeState": "steps.change.body.state",
                    "ChangeId": "steps.change.body.id",
                    "Status": "steps.change.status",
                },
            }
        )
    assert result.status == "Succeeded", result.failure_message
    assert result.output_variables == {
        "ChangeState": "approved",
        "ChangeId": "CHG42",
        "Status": "200",
    }
    assert itsm.hits == 3
    tokens = tokens_of(result)
    assert result.rounds >= 4 and tokens[-1] is None and None not in tokens[:-1]
    final = result.jobs[-1].answer
    assert final is not None
    assert final["operation"] == "PutJobSuccessResult" and "outputVariables" in final["params"]
    # Each advance minted a new nonce; idle rounds re-sent the token they got.
    nonces = [Token.decode(t).nonce for t in tokens[:-1] if t]
    advances = int(rig.item(result.jobs[0].job_id)["version"]["N"])
    assert len(set(nonces)) == advances - 1  # the last advance ended the run: no token
    item = rig.item(result.jobs[0].job_id)
    assert item["status"]["S"] == "SUCCEEDED" and "nonce" not in item
    assert int(item["expires_at"]["N"]) > rig.clock.now() + 29 * 86400
    # Exactly one accepted answer per job, none refused.
    assert all(job.answer is not None and not job.rejected for job in result.jobs)


def test_invalid_definition_fails_with_configuration_error_naming_the_field(rig: Rig) -> None:
    result = rig.run(
        {
            "steps": [
                {"name": "a", "wait": "1m"},
                {"name": "b", "http": {"url": "http://x"}, "every": "soon"},
            ]
        }
    )
    assert result.status == "Failed" and result.failure_type == "ConfigurationError"
    assert (result.failure_message or "").startswith("steps[1].every: invalid duration 'soon'")
    assert rig.items() == []


def test_unknown_token_fails_the_job_clearly(rig: Rig) -> None:
    definition = json.dumps({"steps": [{"name": "w", "wait": "1m"}]})
    forged = Token(
        run_id="00000000-0000-0000-0000-000000000000",
        nonce="x" * 22,
        job_id="j",
        started_at=0,
        deadline=1e12,
        due=0,
        checked_at=0,
        step_index=0,
        percent=0,
    )
    for token, reason in (
        ("garbage-token", "not issued by this orchestrator"),
        (forged.encode(), "is not in the table (it may have expired)"),
    ):
        job = rig.emulator.create_job(
            {"FunctionName": "f", "UserParameters": definition}, continuation_token=token
        )
        handler.lambda_handler(job.event, LambdaContext(60))
        assert job.answer is not None and job.answer["operation"] == "PutJobFailureResult"
        details = job.answer["params"]["failureDetails"]
        assert details["type"] == "JobFailed"
        assert (
            details["message"].startswith("unknown continuation token")
            and reason in (details["message"])
        )


@pytest.mark.parametrize("mode", ["sequential", "concurrent"])
def test_a_job_delivered_twice_advances_the_run_once(rig: Rig, mode: str) -> None:
    with stub_server([(200, {"ok": True})]) as server:
        result = rig.run(
            {
                "steps": [{"name": "w", "wait": "2m"}, {"name": "h", "http": {"url": server.url}}],
                "outputs": {"Ok": "steps.h.body.ok"},
            },
            duplicates=mode,
            concurrency=4,
        )
    assert result.status == "Succeeded", result.failure_message
    assert result.output_variables == {"Ok": "true"}
    copies = 2 if mode == "sequential" else 4
    assert result.invocations == copies * result.rounds
    for job in result.jobs:  # one accepted answer; every other copy was refused
        assert job.answer is not None and len(job.rejected) == copies - 1
    # Versions count advances: first tick, wait done + http done (one tick) => 2 or 3 writes,
    # never one per delivery.
    version = int(rig.item(result.jobs[0].job_id)["version"]["N"])
    assert version <= 3 < copies * 2


def test_the_same_job_at_the_same_time_from_many_threads(rig: Rig) -> None:
    """Tens of concurrent deliveries of one advancing job: one write, one accepted answer."""
    definition = json.dumps({"steps": [{"name": "w", "wait": "1m"}, {"name": "v", "wait": "1h"}]})
    config = {"FunctionName": "f", "UserParameters": definition}
    first = rig.emulator.create_job(config)
    handler.lambda_handler(first.event, LambdaContext(60))
    assert first.answer is not None
    rig.clock.advance(61)
    job = rig.emulator.create_job(
        config, continuation_token=first.answer["params"]["continuationToken"]
    )
    barrier = threading.Barrier(20)

    def deliver() -> None:
        barrier.wait()
        handler.lambda_handler(job.event, LambdaContext(60))

    threads = [threading.Thread(target=deliver) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert job.answer is not None and len(job.rejected) == 19
    item = rig.item(first.job_id)
    assert item["version"]["N"] == "2" and item["last_job_id"]["S"] == job.job_id


def test_artifact_credentials_never_leak(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    canary = {
        "accessKeyId": "ASIACANARYAKID000001",
        "secretAccessKey": "CANARY-secret-e2e-7f3a",
        "sessionToken": "CANARY-session-token-e2e-91bd",
    }
    bad = {"steps": [{"name": "w", "wait": "soon"}]}
    good = {"steps": [{"name": "w", "wait": "1m"}], "outputs": {"Run": "run.id"}}
    results = [rig.run(d, artifact_credentials=canary) for d in (good, bad)]
    assert [r.status for r in results] == ["Succeeded", "Failed"]
    answers = json.dumps([job.answer for r in results for job in r.jobs])
    # The emulator's requests are what the function sent; the events it received held keys.
    sent = "\n".join(rig.emulator.requests)
    haystacks = {
        "logs": rig.logs.getvalue() + caplog.text,
        "items": json.dumps(rig.items()),
        "answers": answers,
        "requests": sent,
    }
    assert "answered" in haystacks["logs"]  # the logs were captured at all
    for where, text in haystacks.items():
        for secret in canary.values():
            assert secret not in text, f"credential leaked into {where}"


def test_every_invocation_emits_emf_metrics(rig: Rig) -> None:
    ok = rig.run({"steps": [{"name": "w", "wait": "2m"}]})
    bad = rig.run({"steps": [{"name": "w", "wait": "soon"}]})
    lines = [json.loads(line) for line in rig.logs.getvalue().splitlines()]
    emf = [line for line in lines if "_aws" in line]
    assert len(emf) == ok.invocations + bad.invocations
    assert emf[0]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Orchestrator"
    assert sum(line["Ticks"] for line in emf) == len(emf)
    assert sum(line["GatesSucceeded"] for line in emf) == 1
    failed = [line for line in emf if line["GatesFailed"]]
    assert len(failed) == 1 and failed[0]["FailureType"] == "ConfigurationError"
    assert all(line["Service"] == "orchestrator" for line in emf)
