"""Fixtures shared by integration test modules."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from orchestrator import handler
from orchestrator.clock import VirtualClock
from orchestrator.local.emulator import CodePipelineEmulator
from tests.integration.test_approval_cli import Gate

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture
def gate(
    table_name: str, moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Gate]:
    monkeypatch.setenv("AWS_ENDPOINT_URL_STS", moto_endpoint)
    monkeypatch.setenv("ORCHESTRATOR_IDLE_CHECK_INTERVAL_SECONDS", "0")
    clock = VirtualClock(speed=1)
    with CodePipelineEmulator(clock) as emulator:
        monkeypatch.setenv("AWS_ENDPOINT_URL_CODEPIPELINE", emulator.endpoint_url)
        try:
            yield Gate(emulator, clock, table_name)
        finally:
            handler.use(None)
