"""The v2 engine on its own: groups, `when`, advisory steps, guards and on_failure hooks,
with honest fakes (an HTTP client answering by URL, a dict of claims)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from orchestrator import engine
from orchestrator.definition import GateDefinition, parse_definition
from orchestrator.model import NodeStatus, RunState, RunStatus, Signals
from orchestrator.services import HttpError, HttpResponse, Services
from tests.fakes import ManualClock, json_response

T0 = 1_800_000_000.0


@dataclass
class RoutedHttp:
    """HttpClient answering each URL from its own script (the last answer repeats)."""

    routes: dict[str, list[HttpResponse | HttpError]]
    requests: list[tuple[str, str]] = field(default_factory=list)

    def request(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None, timeout: float
    ) -> HttpResponse:
        self.requests.append((method, url))
        script = self.routes[url]
        item = script.pop(0) if len(script) > 1 else script[0]
        if isinstance(item, HttpError):
            raise item
        return item

    def calls(self, url: str) -> int:
        return sum(1 for _, called in self.requests if called == url)


@dataclass
class Claims:
    """The store's once-per-key claims, in a dict (what `RunStore.claim` does)."""

    held: dict[str, dict[str, Any]] = field(default_factory=dict)

    def claim(self, step: str, key: str, value: dict[str, Any]) -> bool:
        claims = self.held.setdefault(step, {})
        if key in claims:
            return False
        claims[key] = value
        return True

    def signals(self) -> Signals:
        return Signals(claims={step: dict(keys) for step, keys in self.held.items()})


def ok(body: dict[str, Any] | None = None) -> HttpResponse:
    return json_response(200, json.dumps(body or {"ok": True}))


def gate(**definition: Any) -> GateDefinition:
    return parse_definition(json.dumps(definition))


def http(name: str, url: str, **more: Any) -> dict[str, Any]:
    return {"name": name, "http": {"url": url}, "every": "1m", **more}


class Rig:
    def __init__(self, definition: GateDefinition, routes: dict[str, list[Any]]) -> None:
        self.definition = definition
        self.clock = ManualClock(T0)
        self.http = RoutedHttp(routes)
        self.claims = Claims()
        self.state = engine.start(definition, "r1", self.clock.now())
        self.state.context["args"] = {"tier": "patch"}

    def tick(self, after: float = 0.0, state: RunState | None = None, **kw: Any) -> RunState:
        self.clock.t += after
        budget = engine.Budget(lambda: 60.0, reserve=1.0)
        self.state = engine.advance(
            self.definition,
            state or self.state,
            self.clock.now,
            budget,
            Services(http=self.http),
            self.claims.claim,
            kw.get("signals") or self.claims.signals(),
        )
        return self.state

    def node(self, name: str) -> Any:
        every = [*self.state.steps, *self.state.guards, *self.state.hooks]
        return next(s for s in every if s.name == name)

    def status(self) -> RunStatus:
        return self.state.status

    @property
    def summary(self) -> str:
        return engine.summary(self.definition, self.state)


def test_a_parallel_group_fails_as_soon_as_one_branch_fails_and_abandons_the_rest() -> None:
    rig = Rig(
        gate(
            steps=[
                {
                    "name": "checks",
                    "parallel": [
                        http("smoke", "http://smoke", fail_if="body.failed"),
                        {
                            "name": "canary",
                            "steps": [
                                {"name": "warm", "wait": "5m"},
                                http("probe", "http://probe"),
                            ],
                        },
                    ],
                },
                {"name": "after", "wait": "1m"},
            ]
        ),
        {
            "http://smoke": [json_response(404, "{}"), ok({"failed": "yes"})],
            "http://probe": [ok()],
        },
    )
    rig.tick()
    assert rig.node("smoke").status is NodeStatus.RUNNING
    assert rig.node("warm").status is NodeStatus.RUNNING
    assert rig.summary.startswith("0/4 steps over; running: smoke (waiting for a 2xx")
    assert "canary/warm (waiting 5m" in rig.summary
    rig.tick(60)
    assert rig.status() is RunStatus.FAILED
    assert rig.state.failure is not None
    assert rig.state.failure.message.startswith("step 'smoke': fail_if is true")
    assert rig.node("checks").status is NodeStatus.FAILED
    assert rig.node("warm").status is NodeStatus.ABANDONED
    assert rig.node("probe").status is NodeStatus.ABANDONED  # never reached: never will be
    assert rig.node("after").status is NodeStatus.PENDING
    assert rig.http.calls("http://probe") == 0


def test_a_parallel_group_is_done_when_every_branch_is_and_polls_them_in_one_call() -> None:
    rig = Rig(
        gate(
            steps=[
                {
                    "name": "checks",
                    "parallel": [
                        http("a", "http://a"),
                        {
                            "name": "seq",
                            "steps": [{"name": "w", "wait": "2m"}, http("b", "http://b")],
                        },
                    ],
                }
            ],
            outputs={"Checks": "steps.checks.branches"},
        ),
        {"http://a": [json_response(404, "{}"), ok()], "http://b": [ok()]},
    )
    rig.tick()
    assert engine.next_due(rig.state) == T0 + 60  # a's next poll, before w ends
    assert engine.percent(rig.state, rig.clock.now()) == 0
    rig.tick(60)
    assert rig.node("a").status is NodeStatus.DONE
    assert engine.percent(rig.state, rig.clock.now()) == 50  # a done, w half-way, b not started
    rig.tick(60)
    assert rig.status() is RunStatus.SUCCEEDED, rig.state.failure
    assert json.loads(rig.state.outputs["Checks"]) == {"a": "done", "seq": "done"}  # type: ignore[index]
    assert rig.summary.startswith("all 3 steps done in 2m")


def test_any_is_won_by_the_first_branch_to_succeed_and_fails_only_when_all_fail() -> None:
    definition = gate(
        steps=[
            {
                "name": "either",
                "any": [
                    http("ticket", "http://ticket", fail_if="body.rejected"),
                    http("human", "http://human"),
                ],
            }
        ],
        outputs={"Winner": "steps.either.winner"},
    )
    rig = Rig(
        definition,
        {
            "http://ticket": [json_response(404, "{}")],
            "http://human": [json_response(404, "{}"), ok()],
        },
    )
    rig.tick()
    rig.tick(60)
    assert rig.status() is RunStatus.SUCCEEDED
    assert rig.state.outputs == {"Winner": "human"}
    assert rig.node("ticket").status is NodeStatus.ABANDONED

    rig = Rig(
        definition,
        {
            "http://ticket": [ok({"rejected": True})],
            "http://human": [json_response(404, "{}"), HttpError("refused")],
        },
    )
    rig.tick()
    assert rig.status() is RunStatus.RUNNING  # one branch failed, the other still runs
    assert rig.node("ticket").status is NodeStatus.FAILED
    human = gate(
        steps=[
            {
                "name": "either",
                "any": [
                    http("ticket", "http://ticket", fail_if="body.rejected"),
                    http("human", "http://human", fail_if="body.no", timeout="5m"),
                ],
            }
        ]
    )
    rig = Rig(
        human,
        {"http://ticket": [ok({"rejected": True})], "http://human": [json_response(404, "{}")]},
    )
    rig.tick()
    rig.tick(301)
    assert rig.status() is RunStatus.FAILED
    assert rig.state.failure is not None
    assert rig.state.failure.message.startswith("no branch of 'either' succeeded (ticket: step")
    assert "human: step 'human' timed out after 5m" in rig.state.failure.message


def test_when_skips_a_step_and_the_summary_status_and_outputs_say_so() -> None:
    rig = Rig(
        gate(
            steps=[
                {"name": "bake", "wait": "1m"},
                {
                    "name": "signoff",
                    "http": {"url": "http://signoff"},
                    "when": "args.tier != 'patch'",
                },
                {"name": "note", "wait": "1s", "when": "steps.signoff == null"},
            ],
            outputs={"Signoff": "steps.signoff"},
        ),
        {"http://signoff": [ok()]},
    )
    rig.tick()
    rig.tick(61)
    assert rig.status() is RunStatus.RUNNING
    assert rig.node("signoff").status is NodeStatus.SKIPPED
    assert rig.node("note").status is NodeStatus.RUNNING
    rig.tick(1)
    assert rig.status() is RunStatus.SUCCEEDED
    assert rig.state.outputs == {"signoff": "skipped", "Signoff": "null"}
    assert "(skipped: signoff)" in rig.summary
    assert rig.http.requests == []


def test_an_advisory_failure_is_reported_and_the_gate_goes_on() -> None:
    rig = Rig(
        gate(
            steps=[
                http("report", "http://report", fail_if="body.bad", advisory=True),
                {"name": "bake", "wait": "1m"},
            ]
        ),
        {"http://report": [ok({"bad": 1})]},
    )
    rig.tick()
    assert rig.node("report").status is NodeStatus.FAILED
    assert rig.node("bake").status is NodeStatus.RUNNING
    rig.tick(60)
    assert rig.status() is RunStatus.SUCCEEDED
    assert rig.state.outputs is not None
    assert rig.state.outputs["report"].startswith("failed: step 'report': fail_if is true")
    assert "advisory failures: report" in rig.summary


def test_a_guard_that_trips_while_a_step_waits_fails_the_gate_at_once() -> None:
    rig = Rig(
        gate(
            guards=[{"name": "health", "http": {"url": "http://health"}, "every": "1m"}],
            steps=[{"name": "bake", "wait": "30m"}],
        ),
        {"http://health": [ok(), ok(), json_response(503, "down")]},
    )
    rig.tick()
    assert rig.node("health").passing is True
    assert engine.next_due(rig.state) == T0 + 60  # the guard is due before the bake ends
    assert rig.summary.endswith("; guards: health ok")
    rig.tick(60)
    rig.tick(60)
    assert rig.status() is RunStatus.FAILED
    assert rig.state.failure is not None
    assert (
        rig.state.failure.message == "guard 'health' violated: HTTP 503; retrying (polled 3 times)"
    )
    assert rig.node("bake").status is NodeStatus.ABANDONED


def test_a_hold_guard_delays_success_until_a_fresh_poll_passes() -> None:
    rig = Rig(
        gate(
            guards=[
                {
                    "name": "health",
                    "http": {"url": "http://health"},
                    "every": "10m",
                    "on_violation": "hold",
                },
                {"name": "quiet", "http": {"url": "http://quiet"}, "every": "1h", "after": "bake"},
            ],
            steps=[{"name": "bake", "wait": "2m"}],
        ),
        {
            "http://health": [ok(), json_response(404, "{}"), ok()],
            "http://quiet": [ok()],
        },
    )
    rig.tick()
    assert rig.node("quiet").status is NodeStatus.PENDING  # after: bake
    assert rig.http.calls("http://health") == 1
    rig.tick(120)
    # bake is over: every guard is polled now, due or not; health says no: held
    assert rig.status() is RunStatus.RUNNING
    assert rig.http.calls("http://health") == 2
    assert rig.http.calls("http://quiet") == 1
    assert rig.node("health").passing is False
    assert "health held (waiting for a 2xx status" in rig.summary
    assert rig.summary.startswith("all 1 step over; waiting for the guards")
    rig.tick(600)
    assert rig.status() is RunStatus.SUCCEEDED
    # the final call polled both again, quiet an hour early: fresh, not remembered
    assert rig.http.calls("http://health") == 3
    assert rig.http.calls("http://quiet") == 2
    assert rig.summary.endswith("; guards: health ok, quiet ok")


def test_a_guard_that_cannot_observe_is_unknown_and_never_passes_the_final_check() -> None:
    rig = Rig(
        gate(
            guards=[
                {
                    "name": "custom",
                    "python": {"callable": "tests.unit.test_engine_v2:flaky"},
                    "every": "1m",
                    "retry": {"attempts": 5, "backoff": "1m"},
                }
            ],
            steps=[{"name": "bake", "wait": "1m"}],
        ),
        {},
    )
    FLAKY[:] = ["ok", "raise", "raise", "ok"]
    rig.tick()
    assert rig.node("custom").passing is True
    rig.tick(60)  # bake over, the final poll raises: the gate waits, it does not fail
    assert rig.status() is RunStatus.RUNNING
    assert rig.node("custom").passing is None
    assert rig.node("custom").detail.startswith("not checked: step 'custom': tests")
    rig.tick(60)
    assert rig.status() is RunStatus.RUNNING
    rig.tick(120)
    assert rig.status() is RunStatus.SUCCEEDED


FLAKY: list[str] = []


def flaky(context: Any) -> Any:
    from orchestrator.steps.python import Finish

    if (FLAKY.pop(0) if FLAKY else "ok") == "raise":
        raise RuntimeError("the check's own dependency is down")
    return Finish({"fine": True})


def test_on_failure_hooks_run_once_in_order_then_the_gate_fails_listing_them() -> None:
    definition = gate(
        steps=[http("smoke", "http://smoke", fail_if="body.failed")],
        on_failure=[
            {"name": "rollback", "http": {"url": "http://rollback", "method": "POST"}},
            {"name": "tell", "http": {"url": "http://tell", "method": "POST"}, "fail_if": "`true`"},
        ],
    )
    rig = Rig(
        definition,
        {
            "http://smoke": [ok({"failed": True})],
            "http://rollback": [json_response(404, "{}"), ok()],
            "http://tell": [ok()],
        },
    )
    first = rig.state
    rig.tick()
    assert rig.status() is RunStatus.RUNNING
    assert rig.state.failing is not None
    assert rig.summary.startswith("failed: step 'smoke': fail_if is true")
    assert "running on_failure 'rollback': waiting for a 2xx status" in rig.summary
    assert rig.http.calls("http://rollback") == 1
    assert rig.state.deadline == T0 + 1200  # the hooks' 10m each, from the failure
    assert engine.position(definition, rig.state.step_index) == (
        "failed; running on_failure 'rollback'"
    )
    after_first = rig.state
    # another delivery of the same job, from the same state: the hook's poll is claimed
    duplicate = rig.tick(state=first)
    assert rig.http.calls("http://rollback") == 1
    # ...and recorded: the duplicate takes the claimant's outcome as its own poll
    assert duplicate.hooks[0].detail == after_first.hooks[0].detail
    assert duplicate.hooks[0].polls == 1
    rig.state = after_first
    rig.tick(30)
    assert rig.http.calls("http://rollback") == 2
    assert rig.http.calls("http://tell") == 1
    assert rig.status() is RunStatus.FAILED
    assert rig.state.failure is not None
    message = rig.state.failure.message
    assert message.startswith("step 'smoke': fail_if is true")
    assert message.endswith(
        "; on_failure: rollback done, tell failed (fail_if is true (`true`); HTTP 200)"
    )
    assert set(rig.claims.held) == {"rollback", "tell"}
    assert set(rig.claims.held["rollback"]) == {
        "on_failure-0",
        "on_failure-0-outcome",
        "on_failure-1",
        "on_failure-1-outcome",
    }


def test_a_hook_claimed_by_a_delivery_that_stopped_is_given_up_after_the_lease() -> None:
    definition = gate(
        steps=[http("smoke", "http://smoke", fail_if="body.failed")],
        on_failure=[{"name": "rollback", "http": {"url": "http://rollback", "method": "POST"}}],
    )
    rig = Rig(definition, {"http://smoke": [ok({"failed": True})], "http://rollback": [ok()]})
    rig.claims.held["rollback"] = {"on_failure-0": {"at": 0.0, "by": "a-stopped-delivery"}}
    rig.tick()
    assert rig.http.calls("http://rollback") == 0
    assert rig.status() is RunStatus.FAILED
    assert rig.state.failure is not None
    assert "rollback failed (hook 'rollback': outcome unknown" in rig.state.failure.message


def test_a_cancel_runs_only_the_hooks_marked_on_cancel() -> None:
    definition = gate(
        steps=[{"name": "bake", "wait": "1h"}],
        on_failure=[
            {"name": "rollback", "http": {"url": "http://rollback", "method": "POST"}},
            {"name": "tell", "http": {"url": "http://tell"}, "on_cancel": True},
        ],
    )
    rig = Rig(definition, {"http://rollback": [ok()], "http://tell": [ok()]})
    rig.tick()
    claims = rig.claims.signals()
    rig.tick(10, signals=Signals(cancel_requested_by="alice", claims=claims.claims))
    assert rig.status() is RunStatus.FAILED
    assert rig.state.failure is not None
    assert rig.state.failure.message == "cancelled by alice; on_failure: tell done"
    assert rig.http.requests == [("GET", "http://tell")]
    assert rig.node("rollback").status is NodeStatus.SKIPPED


def test_the_gate_timeout_names_every_running_step_and_leaves_time_for_the_hooks() -> None:
    checks = {"name": "checks", "parallel": [http("a", "http://a"), http("b", "http://b")]}
    hooks = [{"name": "tell", "http": {"url": "http://tell"}, "timeout": "15m"}]
    assert gate(steps=[checks], on_failure=hooks).timeout == 23 * 3600 + 30 * 60  # 23h45m - 15m
    rig = Rig(
        gate(steps=[checks], timeout="1h"),
        {"http://a": [json_response(404, "{}")], "http://b": [json_response(404, "{}")]},
    )
    rig.tick()
    rig.tick(3600)
    assert rig.state.failure is not None
    message = rig.state.failure.message
    assert message.startswith("gate timed out after 1h at steps 'a' (last: waiting for a 2xx")
    assert ", 'b' (last: waiting for a 2xx" in message


def test_a_v1_state_without_node_states_is_read_and_continued() -> None:
    """What the v1 engine stored: `step_index` and steps without a status."""
    v1 = {
        "run_id": "r1",
        "started_at": T0,
        "deadline": T0 + 3600,
        "status": "RUNNING",
        "step_index": 1,
        "steps": [
            {"name": "bake", "kind": "wait", "started_at": T0, "finished_at": T0 + 60,
             "polls": 2, "next_check": None, "detail": "done", "eta": None,
             "result": {"waited_seconds": 60.0}, "memo": {}},
            {"name": "check", "kind": "http", "started_at": T0 + 60, "finished_at": None,
             "polls": 1, "next_check": T0 + 120, "detail": "waiting", "eta": None,
             "result": None, "memo": {}},
        ],
        "outputs": None,
        "failure": None,
        "ended_at": None,
        "context": {},
    }  # fmt: skip
    state = RunState.model_validate(v1)
    assert [s.status for s in state.steps] == [NodeStatus.DONE, NodeStatus.RUNNING]
    definition = gate(
        steps=[{"name": "bake", "wait": "1m"}, http("check", "http://check")],
        outputs={"Waited": "steps.bake.waited_seconds"},
    )
    rig = Rig(definition, {"http://check": [ok()]})
    rig.clock.t = T0 + 120
    rig.tick(state=state)
    assert rig.status() is RunStatus.SUCCEEDED
    assert rig.state.outputs == {"Waited": "60.0"}


def test_hold_is_the_gates_or_that_of_a_running_step_guard_or_hook() -> None:
    """`engine.hold`: how long an invocation may wait in-process for the next polls."""
    rig = Rig(
        gate(
            guards=[http("health", "http://health", hold="30s")],
            steps=[
                http("first", "http://first"),
                {
                    "name": "both",
                    "parallel": [http("a", "http://a", hold="2m"), http("b", "http://b")],
                },
            ],
            on_failure=[http("tell", "http://tell", hold="1m")],
        ),
        {
            "http://health": [ok(), ok(), json_response(503, "down")],
            "http://first": [ok()],
            "http://a": [json_response(503, "no"), ok()],
            "http://b": [json_response(503, "no")],
            "http://tell": [json_response(503, "no")],
        },
    )
    assert engine.hold(rig.definition, rig.state) is None  # nothing runs before the first tick
    rig.tick()  # first done; a and b running (a with 2m); the guard running (30s)
    assert rig.node("first").status is NodeStatus.DONE
    assert engine.hold(rig.definition, rig.state) == 120
    rig.tick(60)  # a done: only the guard's hold is left
    assert rig.node("a").status is NodeStatus.DONE
    assert engine.hold(rig.definition, rig.state) == 30
    rig.tick(60)  # the guard trips: the gate fails and its hook runs
    assert rig.node("tell").status is NodeStatus.RUNNING, rig.summary
    assert engine.hold(rig.definition, rig.state) == 60
    rig.tick(24 * 3600)  # the hook's timeout: the run is over, nobody holds
    assert rig.status() is RunStatus.FAILED
    assert engine.hold(rig.definition, rig.state) is None
    with_gate_hold = gate(steps=[http("x", "http://x", hold="1m")], hold="3m")
    state = engine.start(with_gate_hold, "r2", T0)
    assert engine.hold(with_gate_hold, state) == 180  # the gate's, longer than any step's
