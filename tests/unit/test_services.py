from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator import __version__
from orchestrator.services import Services

if TYPE_CHECKING:
    import pytest


def test_single_attempt_clients_never_retry_and_are_cached_apart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    services = Services(region="eu-west-1")
    once = services.aws("lambda", single_attempt=True)
    retrying = services.aws("lambda")
    assert once is not retrying and services.aws("lambda", single_attempt=True) is once
    assert once.meta.config.retries["total_max_attempts"] == 1
    assert retrying.meta.config.retries["total_max_attempts"] == 3
    assert once.meta.region_name == "eu-west-1"
    assert (once.meta.config.read_timeout, retrying.meta.config.read_timeout) == (60, 20)
    for client in (once, retrying):
        assert client.meta.config.retries["mode"] == "standard"
        assert client.meta.config.user_agent_extra == f"codepipeline-orchestrator/{__version__}"
