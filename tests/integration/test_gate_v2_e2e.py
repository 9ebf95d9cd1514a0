"""Gate language v2 end to end: the handler, called by the CodePipeline emulator's job loop,
answering over real HTTP, keeping state in DynamoDB Local; checks served by a loopback stub."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from orchestrator import handler
from orchestrator.local.driver import LambdaContext
from tests.http_stub import RoutedStub
from tests.rig import Rig, gate_rig

if TYPE_CHECKING:
    from collections.abc import Iterator

    from orchestrator.local.driver import ActionResult

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
ALICE = "arn:aws:iam::123456789012:user/alice"


@pytest.fixture
def rig(table_name: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Rig]:
    with gate_rig(table_name, monkeypatch) as found:
        yield found


def state_of(rig: Rig, result: ActionResult) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(rig.item(result.jobs[0].job_id)["state"]["S"])
    return found


def summary_of(job: Any) -> str:
    answer: dict[str, Any] = job.answer or {}
    params = answer.get("params", {})
    return str(
        (params.get("executionDetails") or params.get("failureDetails") or {}).get("summary")
    )


def statuses(state: dict[str, Any]) -> dict[str, str]:
    every = [*state["steps"], *state.get("guards", []), *state.get("hooks", [])]
    return {node["name"]: node["status"] for node in every}


def test_a_parallel_group_fails_as_soon_as_one_branch_fails(rig: Rig) -> None:
    routes: dict[str, list[tuple[int, Any]]] = {
        "/smoke": [(200, {"failed": False}), (200, {"failed": "3 of 40 checks"})]
    }
    with RoutedStub(routes) as stub:
        result = rig.run(
            {
                "steps": [
                    {
                        "name": "checks",
                        "parallel": [
                            {"name": "smoke", "http": {"url": f"{stub.url}/smoke"},
                             "until": "body.failed == `null`", "fail_if": "body.failed",
                             "every": "1m"},
                            {"name": "canary", "steps": [
                                {"name": "warm", "wait": "30m"},
                                {"name": "probe", "http": {"url": f"{stub.url}/probe"}},
                            ]},
                        ],
                    },
                    {"name": "after", "wait": "1m"},
                ]
            }
        )  # fmt: skip
        assert stub.count("/probe") == 0
    assert result.status == "Failed"
    assert result.failure_message is not None
    assert result.failure_message.startswith("step 'smoke': fail_if is true")
    assert result.ended_at - result.started_at < 30 * 60  # the 30-minute warm-up was cut short
    assert statuses(state_of(rig, result)) == {
        "checks": "failed",
        "smoke": "failed",
        "canary": "abandoned",
        "warm": "abandoned",
        "probe": "abandoned",
        "after": "pending",
    }
    summaries = [summary_of(job) for job in result.jobs[:-1]]
    assert any("running: smoke (" in s and "canary/warm (waiting 30m" in s for s in summaries)


def test_any_is_won_by_the_second_branch(rig: Rig) -> None:
    routes: dict[str, list[tuple[int, Any]]] = {
        "/ticket": [(404, {})],
        "/human": [(404, {}), (404, {}), (200, {"by": "bob"})],
    }
    with RoutedStub(routes) as stub:
        result = rig.run(
            {
                "steps": [
                    {
                        "name": "either",
                        "any": [
                            {
                                "name": "ticket",
                                "http": {"url": f"{stub.url}/ticket"},
                                "every": "1m",
                            },
                            {"name": "human", "http": {"url": f"{stub.url}/human"}, "every": "1m"},
                        ],
                    }
                ],
                "outputs": {"Winner": "steps.either.winner", "By": "steps.human.body.by"},
            }
        )
    assert result.status == "Succeeded", result.failure_message
    assert result.output_variables == {"Winner": "human", "By": "bob"}
    assert statuses(state_of(rig, result)) == {
        "either": "done",
        "ticket": "abandoned",
        "human": "done",
    }


def test_a_guard_that_trips_during_an_approval_wait_fails_the_gate(rig: Rig) -> None:
    routes: dict[str, list[tuple[int, Any]]] = {
        "/health": [(200, {}), (200, {}), (503, {"down": True})]
    }
    with RoutedStub(routes) as stub:
        result = rig.run(
            {
                "guards": [
                    {"name": "health", "http": {"url": f"{stub.url}/health"}, "every": "5m"}
                ],
                "steps": [{"name": "human", "approval": {"approvers": [ALICE]}}],
            }
        )
        assert stub.count("/health") == 3
    assert result.status == "Failed"
    assert result.failure_message is not None
    assert result.failure_message.startswith("guard 'health' violated: HTTP 503")
    state = state_of(rig, result)
    assert statuses(state)["human"] == "abandoned"
    assert 10 * 60 <= result.ended_at - result.started_at < 15 * 60 + 60


def test_a_hold_guard_delays_success_until_its_fresh_final_check_passes(rig: Rig) -> None:
    routes: dict[str, list[tuple[int, Any]]] = {
        "/health": [(200, {}), (404, {}), (404, {}), (200, {})]
    }
    with RoutedStub(routes) as stub:
        result = rig.run(
            {
                "guards": [
                    {"name": "health", "http": {"url": f"{stub.url}/health"}, "every": "20m",
                     "on_violation": "hold"},
                ],
                "steps": [{"name": "bake", "wait": "10m"}],
            }
        )  # fmt: skip
        polls = stub.count("/health")
    assert result.status == "Succeeded", result.failure_message
    # polled at the start (ok); at 10m, when the bake ended, though not due until 20m (held);
    # at 30m (held); at 50m (ok): success came only with a fresh pass
    assert polls == 4
    assert 50 * 60 <= result.ended_at - result.started_at < 70 * 60  # before a 5th poll
    summaries = [summary_of(job) for job in result.jobs]
    assert any(
        s.startswith("all 1 step over; waiting for the guards; guards: health held")
        for s in summaries
    )
    assert summaries[-1].endswith("; guards: health ok")


def test_when_skips_and_an_advisory_failure_is_reported(rig: Rig) -> None:
    routes: dict[str, list[tuple[int, Any]]] = {
        "/report": [(200, {"published": False})],
        "/signoff": [(200, {})],
    }
    with RoutedStub(routes) as stub:
        result = rig.run(
            {
                "steps": [
                    {"name": "report", "http": {"url": f"{stub.url}/report"},
                     "fail_if": "body.published == `false`", "advisory": True},
                    {"name": "signoff", "http": {"url": f"{stub.url}/signoff"},
                     "when": "run.id == 'a release that needs a signoff'"},
                    {"name": "bake", "wait": "2m"},
                ],
                "outputs": {"Signoff": "steps.signoff"},
            }
        )  # fmt: skip
        assert stub.count("/signoff") == 0
    assert result.status == "Succeeded", result.failure_message
    outputs = result.output_variables or {}
    assert outputs["signoff"] == "skipped" and outputs["Signoff"] == "null"
    assert outputs["report"].startswith("failed: step 'report': fail_if is true")
    final = summary_of(result.jobs[-1])
    assert final.startswith("all 3 steps over in 2m")
    assert final.endswith("(skipped: signoff; advisory failures: report)")
    assert statuses(state_of(rig, result)) == {
        "report": "failed",
        "signoff": "skipped",
        "bake": "done",
    }


@pytest.mark.parametrize("mode", ["sequential", "concurrent"])
def test_on_failure_runs_once_under_duplicate_deliveries(rig: Rig, mode: str) -> None:
    routes: dict[str, list[tuple[int, Any]]] = {
        "/smoke": [(200, {"failed": True})],
        "/rollback": [(200, {"rolled_back": True})],
    }
    with RoutedStub(routes) as stub:
        result = rig.run(
            {
                "steps": [{"name": "smoke", "http": {"url": f"{stub.url}/smoke"},
                           "fail_if": "body.failed"}],
                "on_failure": [
                    {"name": "rollback",
                     "http": {"url": f"{stub.url}/rollback", "method": "POST",
                              "body": {"reason": "${failure.message}"}}},
                ],
            },
            duplicates=mode,
            concurrency=4,
        )  # fmt: skip
        rollbacks = stub.count("/rollback", "POST")
    assert result.status == "Failed"
    assert rollbacks == 1
    assert result.failure_message == (
        "step 'smoke': fail_if is true (body.failed); HTTP 200; on_failure: rollback done"
    )
    in_progress = [summary_of(job) for job in result.jobs[:-1]]
    assert in_progress, "the failure is answered only after the hook ran"
    assert in_progress[0].startswith("failed: step 'smoke': fail_if is true")
    claims = rig.item(result.jobs[0].job_id)["claims"]["M"]
    assert set(claims) == {"rollback|on_failure-0", "rollback|on_failure-0-outcome"}


def test_a_run_written_by_the_v1_engine_is_continued_to_success(
    table_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An item and a token as the previous release wrote them (tests/fixtures): the new code
    reads the run, upgrades its state to node states and finishes it."""
    fixture = json.loads((FIXTURES / "v1_run_item.json").read_text())
    boto3.client("dynamodb").put_item(TableName=table_name, Item=fixture["item"])
    started = float(json.loads(fixture["item"]["state"]["S"])["started_at"])
    with (
        RoutedStub({"/health": [(200, {"ok": True})]}) as stub,
        gate_rig(table_name, monkeypatch, start=started + 601) as rig,
    ):
        document = fixture["user_parameters"]
        document["steps"][1]["http"]["url"] = f"{stub.url}/health"
        config = {"FunctionName": "orchestrator", "UserParameters": json.dumps(document)}
        token: str | None = fixture["token"]
        answers: list[dict[str, Any]] = []
        while token is not None and len(answers) < 5:
            job = rig.emulator.create_job(config, continuation_token=token)
            handler.lambda_handler(job.event, LambdaContext(60))
            assert job.answer is not None
            answers.append(job.answer)
            token = job.answer["params"].get("continuationToken")
            rig.clock.advance(60)
        item = rig.item(json.loads(fixture["item"]["state"]["S"])["run_id"])
    assert answers[-1]["operation"] == "PutJobSuccessResult", answers[-1]
    outputs = answers[-1]["params"]["outputVariables"]
    assert outputs["Ok"] == "true" and float(outputs["Waited"]) >= 600
    state = json.loads(item["state"]["S"])
    assert [s["status"] for s in state["steps"]] == ["done", "done"]
    assert int(item["version"]["N"]) == 2
