"""The process dies at each point of a tick; Lambda's retry delivers the job again.

    load ──► [after_load] ──► engine ──► save ──► [after_save] ──► report ──► [after_report]

Each redelivered job must converge: the gate ends with the right outputs, every job has
exactly one accepted answer, and no run is written twice for one job.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.http_stub import stub_server
from tests.reliability.figures import FIGURES
from tests.reliability.rig import (
    APPROVED,
    CRASH_POINTS,
    GATES,
    PENDING,
    CrashPoint,
    Function,
    Rig,
    approval_outputs,
)

if TYPE_CHECKING:
    from orchestrator.local.driver import ActionResult


def _only(point: CrashPoint) -> list[CrashPoint | None]:
    return [point]


SCHEDULES: list[tuple[list[CrashPoint | None], str]] = [
    # (where the 1st, 2nd... delivery of every job dies, Lambda's duplicate deliveries)
    *[(_only(point), "none") for point in CRASH_POINTS],
    (["after_load", "after_save"], "none"),  # the retry dies too, after saving
    (["after_save", "after_save"], "none"),  # two deaths after saving: the last retry re-sends
    (["after_report"], "sequential"),  # answered, died; Lambda delivers it again anyway
]


def run_crashing(
    rig: Rig, crashes: list[CrashPoint | None], duplicates: str = "none", language: str = "v1"
) -> tuple[ActionResult, Function]:
    function = Function(rig, crashes=crashes)
    with stub_server([PENDING, APPROVED]) as itsm:
        result = rig.run(GATES[language][0](itsm.url), function, duplicates=duplicates)
    FIGURES.add("faults", {"process_died": sum(function.deaths.values())})
    return result, function


@pytest.mark.parametrize("language", sorted(GATES))
@pytest.mark.parametrize(
    ("crashes", "duplicates"),
    SCHEDULES,
    ids=["-".join(map(str, c)) + f"-{d}" for c, d in SCHEDULES],
)
def test_a_job_whose_process_dies_converges_after_lambda_retries(
    rig: Rig, crashes: list[CrashPoint | None], duplicates: str, language: str
) -> None:
    result, function = run_crashing(rig, crashes, duplicates, language)
    verdict = rig.check([result], function, GATES[language][1])
    assert verdict.problems() == []
    died = {point for point in crashes if point is not None}
    assert set(function.deaths) == died, "the schedule's deaths did not all happen"
    assert function.cold_starts >= sum(function.deaths.values())  # each death: a cold start


def test_a_death_after_saving_resends_the_saved_answer_not_a_new_one(rig: Rig) -> None:
    """The retry of a job whose write went through must not write again: it re-sends."""
    result, function = run_crashing(rig, ["after_save"])
    verdict = rig.check([result], function, approval_outputs)
    assert verdict.problems() == []
    recorded = rig.writes.answers()
    assert len(recorded) == function.deaths["after_save"]  # every write was followed by a death
    # Each job that wrote was answered (after its death) with the answer it had recorded.
    accepted = {job.job_id: job.answer["params"] for job in result.jobs if job.answer}
    for job_id, request in recorded.items():
        assert accepted[job_id] == request


def test_every_death_in_one_action(rig: Rig) -> None:
    """Job after job, each death point in turn; then the action still ends right."""
    crashes: list[CrashPoint | None] = ["after_load", "after_save"]
    result, function = run_crashing(rig, crashes, duplicates="sequential")
    verdict = rig.check([result], function, approval_outputs)
    assert verdict.problems() == []
    assert function.deaths["after_load"] >= 1 and function.deaths["after_save"] >= 1
