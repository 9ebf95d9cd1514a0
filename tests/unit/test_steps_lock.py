"""`lock` and `unlock` through the engine: two pipeline executions share one Governance over
the in-memory store; what the summary, the failure and the results say."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from orchestrator import engine
from orchestrator.definition import parse_definition
from orchestrator.exceptions import FailureType
from orchestrator.governance import Governance
from orchestrator.model import RunState, RunStatus
from orchestrator.pipeline_context import mentions_pipeline
from tests.fakes import ManualClock, MemoryGovernanceStore

if TYPE_CHECKING:
    from orchestrator.definition import GateDefinition
    from orchestrator.services import HttpClient

T0 = 1_800_000_000.0  # 2027-01-15 08:00:00 UTC


class GovernanceServices:
    """ServiceClients with freezes and locks only."""

    def __init__(self, governance: Governance) -> None:
        self._governance = governance

    @property
    def http(self) -> HttpClient:
        raise AssertionError("no HTTP in this test")

    @property
    def governance(self) -> Governance:
        return self._governance

    def aws(self, service: str, *, single_attempt: bool = False, target: Any = None) -> Any:
        raise AssertionError("no AWS client in this test")


def gate(*steps: dict[str, Any]) -> GateDefinition:
    return parse_definition(json.dumps({"steps": list(steps)}))


class Execution:
    """One gate of one pipeline execution, ticked by hand on a shared clock."""

    def __init__(
        self,
        definition: GateDefinition,
        execution: str | None,
        services: GovernanceServices,
        clock: ManualClock,
        run_id: str = "",
    ) -> None:
        self.definition, self.services, self.clock = definition, services, clock
        self.state: RunState = engine.start(definition, run_id or f"run-{execution}", clock.now())
        if execution is not None:
            self.state.context["pipeline"] = {
                "pipelineName": "shop",
                "pipelineExecutionId": execution,
            }

    def tick(self) -> RunState:
        budget = engine.Budget(lambda: 60.0, reserve=1.0)
        self.state = engine.advance(
            self.definition, self.state, self.clock.now, budget, self.services
        )
        return self.state

    @property
    def summary(self) -> str:
        return engine.summary(self.definition, self.state)

    def result(self, step: int = 0) -> Any:
        return self.state.steps[step].result


class World:
    def __init__(self) -> None:
        self.store = MemoryGovernanceStore()
        self.services = GovernanceServices(Governance(self.store))
        self.clock = ManualClock(T0)

    def execution(self, execution: str | None, *steps: dict[str, Any]) -> Execution:
        return Execution(gate(*steps), execution, self.services, self.clock)


TAKE = {"name": "take", "lock": {"name": "prod-eu", "hold": "4h"}}
TAKE_LATEST = {"name": "take", "lock": {"name": "prod-eu", "mode": "latest", "hold": "4h"}}
FREE = {"name": "free", "unlock": "prod-eu"}


def test_the_second_execution_waits_saying_who_holds_and_its_place() -> None:
    world = World()
    first = world.execution("exec-a", TAKE)
    assert first.tick().status is RunStatus.SUCCEEDED  # the lease outlives the gate
    assert first.result() == {
        "lock": "prod-eu",
        "execution": "exec-a",
        "since": "2027-01-15T08:00:00Z",
        "expires": "2027-01-15T12:00:00Z",
    }
    world.clock.t += 60
    second = world.execution("exec-b", TAKE)
    third = world.execution("exec-c", TAKE)
    assert second.tick().status is RunStatus.RUNNING
    assert second.summary.endswith("position 1 of 1")
    assert third.tick().status is RunStatus.RUNNING
    world.clock.t += 30
    assert second.tick().status is RunStatus.RUNNING
    assert second.summary == (
        "step 1/1 'take': waiting for prod-eu: held by execution exec-a (shop) "
        "since 08:00:00Z, position 1 of 2"
    )
    assert third.summary.endswith("position 2 of 2")
    assert third.state.steps[0].next_check == T0 + 60 + 30  # polled every 30s
    assert second.state.steps[0].polls == 2
    # exec-a's unlock, in a later gate of the same execution
    world.clock.t += 300
    unlock = world.execution("exec-a", FREE)
    assert unlock.tick().status is RunStatus.SUCCEEDED
    assert unlock.result() == {"lock": "prod-eu", "released": True, "held_for_seconds": 390.0}
    world.clock.t += 30
    assert third.tick().status is RunStatus.RUNNING
    assert third.summary == (
        "step 1/1 'take': waiting for prod-eu: execution exec-b is first in line, position 2 of 2"
    )
    assert second.tick().status is RunStatus.SUCCEEDED
    world.clock.t += 30
    assert third.tick().status is RunStatus.RUNNING
    assert "held by execution exec-b (shop)" in third.summary


def test_latest_fails_the_superseded_waiter_naming_who_took_its_place() -> None:
    world = World()
    world.execution("exec-a", TAKE_LATEST).tick()
    older = world.execution("exec-b", TAKE_LATEST)
    older.tick()
    world.clock.t += 10
    newer = world.execution("exec-c", TAKE_LATEST)
    newer.tick()
    assert newer.summary.endswith("position 1 of 1")
    world.clock.t += 30
    failed = older.tick()
    assert failed.status is RunStatus.FAILED and failed.failure is not None
    assert failed.failure.message == (
        "step 'take': superseded by execution exec-c (waiting for prod-eu, mode latest)"
    )
    assert failed.failure.type is FailureType.JOB_FAILED


def test_an_unlock_of_a_lease_that_expired_and_was_taken_over_is_done_saying_so() -> None:
    world = World()
    world.execution("exec-a", {"name": "take", "lock": {"name": "prod-eu", "hold": "10m"}}).tick()
    waiting = world.execution("exec-b", TAKE)
    waiting.tick()
    world.clock.t += 600
    assert waiting.tick().status is RunStatus.SUCCEEDED
    late = world.execution("exec-a", FREE)
    assert late.tick().status is RunStatus.SUCCEEDED
    assert late.result() == {"lock": "prod-eu", "released": False, "holder": "exec-b"}


def test_the_lock_shorthand_and_templated_names() -> None:
    world = World()
    run = world.execution(
        "exec-a",
        {"name": "take", "lock": "prod-${pipeline.pipelineName}"},
        {"name": "free", "unlock": "prod-${pipeline.pipelineName}"},
    )
    assert run.tick().status is RunStatus.SUCCEEDED
    assert run.result(0)["lock"] == "prod-shop"
    assert run.result(1)["released"] is True


def test_lock_steps_make_the_run_read_the_pipeline_document() -> None:
    assert mentions_pipeline(gate(TAKE))
    assert mentions_pipeline(gate(FREE))
    assert not mentions_pipeline(gate({"name": "w", "wait": "1m"}))


def test_without_a_pipeline_execution_the_gate_fails_as_misconfigured() -> None:
    world = World()
    run = world.execution(None, TAKE)
    failed = run.tick()
    assert failed.status is RunStatus.FAILED and failed.failure is not None
    assert failed.failure.type is FailureType.CONFIGURATION_ERROR
    assert failed.failure.message.startswith("step 'take': no pipeline execution id")


def test_a_store_outage_waits_and_the_next_poll_takes_the_lock() -> None:
    world = World()
    run = world.execution("exec-a", TAKE)
    world.store.down = True
    assert run.tick().status is RunStatus.RUNNING
    assert run.summary == "step 1/1 'take': lock prod-eu: down; retrying"
    world.store.down = False
    world.clock.t += 30
    assert run.tick().status is RunStatus.SUCCEEDED


def test_invalid_lock_fields_name_the_field() -> None:
    from orchestrator.exceptions import DefinitionError

    bad = {"name": "take", "lock": {"name": "prod eu", "mode": "newest", "hold": "40d"}}
    try:
        gate(bad, {"name": "free", "unlock": ""})
    except DefinitionError as exc:
        assert exc.errors == [
            "steps[0].lock.name: invalid name 'prod eu': use 1 to 64 of A-Z a-z 0-9 _ . -",
            "steps[0].lock.mode: Input should be 'sequential' or 'latest'",
            "steps[0].lock.hold: at most 30d",
            "steps[1].unlock: invalid name '': use 1 to 64 of A-Z a-z 0-9 _ . -",
        ]
    else:
        raise AssertionError("accepted")
