"""Resume on retry: a new job without a token for a pipeline execution's action whose run
failed resumes it ("Retry failed actions" in the emulator: the same execution, a new job);
through the handler, the emulator and DynamoDB Local."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.store.dynamodb import DynamoRunStore, bind_model
from tests.http_stub import stub_server

if TYPE_CHECKING:
    from pathlib import Path

    from tests.integration.test_approval_cli import Gate


def gate_of(url: str, bake: str = "2h", **more: Any) -> dict[str, Any]:
    return {
        "steps": [
            {"name": "bake", "wait": bake},
            {"name": "smoke", "http": {"url": url}, "fail_if": "body.failed"},
        ],
        "outputs": {"Waited": "steps.bake.waited_seconds", "Ok": "steps.smoke.body.ok"},
        **more,
    }


def failed_after_the_bake(gate: Gate, definition: dict[str, Any]) -> str:
    """Run the gate until its smoke test fails, after the 2-hour bake; the run id."""
    gate.config = {"FunctionName": "f", "UserParameters": json.dumps(definition)}
    run_id = str(gate.tick()["params"]["executionDetails"]["externalExecutionId"])
    gate.clock.advance(2 * 3600)
    failed = gate.tick()
    assert failed["operation"] == "PutJobFailureResult", failed
    return run_id


def retry(gate: Gate) -> dict[str, Any]:
    """'Retry failed actions': the same pipeline execution, a new job, no token."""
    gate.token = None
    return gate.tick()


def summary(answer: dict[str, Any]) -> str:
    params = answer["params"]
    return str((params.get("executionDetails") or params.get("failureDetails"))["summary"])


def test_a_retry_resumes_at_the_failed_step_without_baking_again(
    gate: Gate, table_name: str
) -> None:
    with stub_server([(200, {"failed": "3 of 40"}), (200, {"ok": True})]) as server:
        run_id = failed_after_the_bake(gate, gate_of(server.url))
        resumed = retry(gate)  # no time passes: the bake is not waited for again
        assert server.hits == 2
    assert resumed["operation"] == "PutJobSuccessResult", resumed
    assert resumed["params"]["outputVariables"]["Ok"] == "true"
    assert float(resumed["params"]["outputVariables"]["Waited"]) >= 7200
    assert resumed["params"]["executionDetails"]["externalExecutionId"] == run_id
    record = DynamoRunStore(bind_model(table_name)).load(run_id)
    assert record is not None and record.state.attempt == 2
    assert record.state.note == "resumed after failure at step 'smoke' (attempt 2)"
    # retrying the succeeded action: the same outputs, nothing run again
    again = retry(gate)
    assert again["operation"] == "PutJobSuccessResult"
    assert again["params"]["outputVariables"] == resumed["params"]["outputVariables"]


def test_a_resumed_run_says_so_while_it_runs(gate: Gate) -> None:
    with stub_server([(200, {"failed": "3 of 40"}), (404, {})]) as server:
        failed_after_the_bake(gate, gate_of(server.url))
        resumed = retry(gate)
    assert (
        resumed["operation"] == "PutJobSuccessResult" and "continuationToken" in resumed["params"]
    )
    assert summary(resumed).endswith("(resumed after failure at step 'smoke' (attempt 2))")


def test_on_retry_restart_starts_over(gate: Gate) -> None:
    with stub_server([(200, {"failed": "3 of 40"})]) as server:
        run_id = failed_after_the_bake(gate, gate_of(server.url, on_retry="restart"))
        restarted = retry(gate)
    assert restarted["params"]["executionDetails"]["externalExecutionId"] != run_id
    assert summary(restarted).startswith("step 1/2 'bake': waiting 2h")
    assert summary(restarted).endswith(f"(restarted after run {run_id} failed (on_retry: restart))")


def test_a_changed_definition_restarts_with_a_note_saying_why(gate: Gate) -> None:
    with stub_server([(200, {"failed": "3 of 40"})]) as server:
        run_id = failed_after_the_bake(gate, gate_of(server.url))
        gate.config = {"FunctionName": "f", "UserParameters": json.dumps(gate_of(server.url, "3h"))}
        restarted = retry(gate)
    assert restarted["params"]["executionDetails"]["externalExecutionId"] != run_id
    assert summary(restarted).endswith(
        f"(restarted: the definition changed since run {run_id} failed)"
    )


def test_run_retry_failed_replays_the_failed_action_and_the_gate_resumes(
    dynamodb: Any, table_name: str, tmp_path: Path
) -> None:
    path = tmp_path / "gate.json"
    with stub_server([(200, {"failed": "3 of 40"}), (200, {"ok": True})]) as server:
        path.write_text(json.dumps(gate_of(server.url, "1h")))
        result = CliRunner().invoke(
            app,
            [
                "run", str(path), "--speed", "3600", "--retry-failed", "--json",
                "--table", table_name, "--data-dir", str(tmp_path),
            ],
        )  # fmt: skip
        hits = server.hits
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    kinds = [e["event"] for e in events]
    assert kinds.count("action_started") == 1 and kinds.count("action_retried") == 1
    rounds = [e for e in events if e["event"] == "round"]
    assert rounds[-1]["status"] == "Succeeded"
    assert rounds[-1]["summary"].startswith("all 2 steps done in")
    assert len({e["run_id"] for e in rounds}) == 1  # one run, resumed
    assert hits == 2  # the bake was not waited for again: one more smoke poll


def test_the_first_tick_links_the_action_to_its_run(table_name: str, monkeypatch: Any) -> None:
    """One link per run: the pipeline execution's action (hashed) names the run."""
    from tests.rig import gate_rig

    with gate_rig(table_name, monkeypatch) as rig:
        result = rig.run({"steps": [{"name": "bake", "wait": "1m"}]}, duplicates="sequential")
        links = rig.links()
    assert result.status == "Succeeded"
    (link,) = links
    assert link["run"]["S"] == result.jobs[0].job_id
    assert len(link["run_id"]["S"]) == len("execution#") + 64


def test_a_retry_after_a_cancel_resumes_and_a_new_cancel_still_stops_it(
    gate: Gate, table_name: str, tmp_path: Path
) -> None:
    """The cancel is spent on the attempt it failed: a retry (the operator's new decision)
    resumes the run; a cancel after that stops it again, with its own reason."""

    def cancel(who: str, reason: str) -> None:
        result = CliRunner().invoke(
            app,
            [
                "cancel", gate.run_id, "--by", who, "--reason", reason,
                "--table", table_name, "--data-dir", str(tmp_path),
            ],
        )  # fmt: skip
        assert result.exit_code == 0, result.output

    def failure(answer: dict[str, Any]) -> str:
        assert answer["operation"] == "PutJobFailureResult", answer
        return str(answer["params"]["failureDetails"]["message"])

    gate.config = {"FunctionName": "f", "UserParameters": json.dumps(gate_of("http://unused"))}
    gate.run_id = str(gate.tick()["params"]["executionDetails"]["externalExecutionId"])
    cancel("alice@example.com", "wrong build")
    assert failure(gate.tick()).startswith("cancelled by alice@example.com: wrong build")

    resumed = retry(gate)
    assert resumed["operation"] == "PutJobSuccessResult", resumed
    assert "continuationToken" in resumed["params"]  # running again: the bake goes on
    record = gate.store.load(gate.run_id)
    assert record is not None and record.state.attempt == 2
    assert record.signals.cancel_requested_by is None  # removed from the item by the resume
    assert gate.tick()["operation"] == "PutJobSuccessResult"  # not cancelled at its next tick

    cancel("bob@example.com", "still wrong")
    assert failure(gate.tick()).startswith("cancelled by bob@example.com: still wrong")
