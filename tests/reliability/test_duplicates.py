"""The same job delivered many times, one after the other and tens at once."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.http_stub import stub_server
from tests.reliability.figures import scaled
from tests.reliability.rig import (
    APPROVED,
    PENDING,
    Function,
    Rig,
    approval_gate,
    approval_outputs,
)

if TYPE_CHECKING:
    from collections.abc import Callable

COPIES = min(scaled(24), 120)


def test_tens_of_concurrent_deliveries_of_every_job(rig: Rig) -> None:
    """Every job of two gates is delivered COPIES times at the same instant (a barrier)."""
    function = Function(rig)
    with stub_server([PENDING, APPROVED]) as itsm:
        results = [
            rig.run(approval_gate(itsm.url), function, duplicates="concurrent", concurrency=COPIES)
            for _ in range(2)
        ]
    verdict = rig.check(results, function, approval_outputs)
    assert verdict.problems() == []
    for result in results:
        for job in result.jobs:  # one accepted answer; every other copy refused as late
            assert job.answer is not None and len(job.rejected) == COPIES - 1
    assert rig.proxy.counts["conditional_check_failed"] > 0  # the copies did race


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


def test_sequential_duplicates_of_every_job(rig: Rig) -> None:
    function = Function(rig)
    with stub_server([PENDING, APPROVED]) as itsm:
        result = rig.run(approval_gate(itsm.url), function, duplicates="sequential")
    verdict = rig.check([result], function, approval_outputs)
    assert verdict.problems() == []
    assert all(len(job.rejected) == 1 for job in result.jobs)
