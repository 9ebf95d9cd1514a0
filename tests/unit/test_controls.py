"""Operators' controls (skip, pause, resume, retry) through the engine: each applied once,
at the next poll, and carried in the AuditTrail output."""

from __future__ import annotations

import json
from typing import Any

from orchestrator import engine
from orchestrator.definition import parse_definition
from orchestrator.model import Control, NodeStatus, RunStatus, Signals
from orchestrator.services import Services
from tests.fakes import ManualClock, json_response
from tests.unit.test_engine_v2 import RoutedHttp

T0 = 1_800_000_000.0
ALICE = "arn:aws:iam::123456789012:user/alice"


class Rig:
    def __init__(self, gate: dict[str, Any], routes: dict[str, list[Any]] | None = None) -> None:
        self.definition = parse_definition(json.dumps(gate))
        self.clock = ManualClock(T0)
        self.http = RoutedHttp(routes or {})
        self.state = engine.start(self.definition, "r1", T0)
        self.controls: list[Control] = []

    def control(self, action: str, step: str | None = None, reason: str = "why") -> None:
        self.controls.append(
            Control.model_validate(
                {"action": action, "by": ALICE, "at": 1e9 + len(self.controls), "reason": reason,
                 "step": step}
            )
        )  # fmt: skip

    def tick(self, after: float = 0.0) -> Rig:
        self.clock.t += after
        self.state = engine.advance(
            self.definition,
            self.state,
            self.clock.now,
            engine.Budget(lambda: 60.0, 1.0),
            Services(http=self.http),
            signals=Signals(controls=list(self.controls)),
        )
        return self

    def status(self) -> RunStatus:
        return self.state.status

    @property
    def summary(self) -> str:
        return engine.summary(self.definition, self.state)


def test_skip_counts_a_waiting_step_as_done_and_the_audit_trail_says_who_and_why() -> None:
    rig = Rig({"steps": [{"name": "soak", "wait": "2h"}, {"name": "after", "wait": "1m"}]})
    rig.tick()
    rig.control("skip", "soak", "known-broken soak")
    rig.tick(10)
    soak = rig.state.steps[0]
    assert soak.status is NodeStatus.DONE
    assert soak.result == {"skipped_by": ALICE, "reason": "known-broken soak"}
    assert soak.detail == f"skipped by {ALICE}: known-broken soak"
    rig.tick(60).tick(60)  # applied once: the later ticks do not skip again
    assert rig.status() is RunStatus.SUCCEEDED
    assert rig.state.outputs is not None
    trail = json.loads(rig.state.outputs["AuditTrail"])
    assert trail == [
        {"action": "skip", "by": ALICE, "at": 1e9, "reason": "known-broken soak", "step": "soak"}
    ]


def test_pause_polls_nothing_until_resume() -> None:
    rig = Rig(
        {"steps": [{"name": "check", "http": {"url": "http://check"}, "every": "1m"}]},
        {"http://check": [json_response(404, "{}"), json_response(200, "{}")]},
    )
    rig.tick()
    rig.control("pause", reason="investigating INC-7")
    rig.tick(60).tick(60)
    assert rig.http.calls("http://check") == 1
    assert rig.summary.startswith(f"paused by {ALICE}: investigating INC-7")
    assert engine.next_due(rig.state) == rig.state.started_at  # read at every job
    rig.control("resume")
    rig.tick(60)
    assert rig.status() is RunStatus.SUCCEEDED
    assert rig.http.calls("http://check") == 2


def test_retry_runs_a_failed_step_of_a_running_run_again_once() -> None:
    rig = Rig(
        {
            "steps": [
                {"name": "report", "http": {"url": "http://report"}, "fail_if": "body.bad",
                 "advisory": True},
                {"name": "soak", "wait": "1h"},
            ]
        },
        {"http://report": [json_response(200, '{"bad": true}'), json_response(200, "{}")]},
    )  # fmt: skip
    rig.tick()
    assert rig.state.steps[0].status is NodeStatus.FAILED
    rig.control("retry", "report", "the report service is back")
    rig.tick(10)
    report = rig.state.steps[0]
    assert report.status is NodeStatus.DONE  # polled again at once: it passes now
    assert rig.http.calls("http://report") == 2
    assert rig.state.steps[1].status is NodeStatus.RUNNING
    rig.tick(10)
    assert rig.http.calls("http://report") == 2  # the retry was applied once
