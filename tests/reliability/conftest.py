"""Fixtures of the reliability suite; the figures file written at the end of the session.

The `--soak` option is declared in tests/conftest.py (pytest reads options only from the
root conftest); here it scales examples and load sizes by ten.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from orchestrator import _log, handler
from orchestrator.clock import VirtualClock
from orchestrator.local.emulator import CodePipelineEmulator
from tests.reliability import figures
from tests.reliability.canaries import SCANNER
from tests.reliability.faultproxy import FaultProxy
from tests.reliability.figures import FIGURES, SEED
from tests.reliability.rig import Rig

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from orchestrator.local.emulator import Faults

FIGURES_FILE = Path("build") / "reliability.json"


def pytest_configure(config: pytest.Config) -> None:
    figures.SOAK = 10 if config.getoption("soak", default=False) else 1


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if hasattr(report, "wasxfail"):
        FIGURES.add("tests", {"xfailed" if report.skipped else "xpassed": 1})
    elif report.when == "call" or report.outcome != "passed":
        FIGURES.add("tests", {report.outcome: 1})


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Write build/reliability.json (after the canaries' final pass, which runs first)."""
    if FIGURES.tests:
        args = session.config.invocation_params.args
        figures.write(session.config.rootpath / FIGURES_FILE, SCANNER, args)


@pytest.fixture
def make_rig(
    table_name: str, dynamodb_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Rig]]:
    """Build the test's rig: `make_rig(faults=Faults(...), speed=600, hang_seconds=1.5)`."""
    with ExitStack() as stack:
        sink = stack.enter_context(open(os.devnull, "w"))
        _log.unconfigure()
        _log.configure("DEBUG", sink)  # JSON lines formatted, then dropped; canaries see them
        stack.callback(_log.unconfigure)
        stack.callback(handler.use, None)

        def make(
            *, faults: Faults | None = None, speed: float = 600.0, hang_seconds: float = 1.5
        ) -> Rig:
            clock = VirtualClock(speed=speed)
            proxy = stack.enter_context(
                FaultProxy(dynamodb_endpoint, hang_seconds=hang_seconds, seed=SEED)
            )
            emulator = stack.enter_context(CodePipelineEmulator(clock, faults=faults))
            stack.callback(_record_faults, proxy, emulator)
            monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", proxy.endpoint_url)
            monkeypatch.setenv("AWS_ENDPOINT_URL_CODEPIPELINE", emulator.endpoint_url)
            rig = Rig(emulator, proxy, clock, table_name, dynamodb_endpoint, sink)
            stack.callback(rig.close)
            return rig

        yield make


@pytest.fixture
def rig(make_rig: Callable[..., Rig]) -> Rig:
    """A rig with no faults switched on."""
    return make_rig()


def _record_faults(proxy: FaultProxy, emulator: CodePipelineEmulator) -> None:
    FIGURES.add("faults", {f"dynamodb_{kind}": n for kind, n in proxy.injected.items()})
    FIGURES.add(
        "observed",
        {
            "dynamodb_requests": proxy.counts["requests"],
            "dynamodb_conditional_check_failed": proxy.counts["conditional_check_failed"],
            "codepipeline_requests": len(emulator.requests),
        },
    )
    injected: dict[str, Any] = dict(emulator.faults_injected)
    FIGURES.add("faults", {f"codepipeline_{kind}": n for kind, n in injected.items()})
