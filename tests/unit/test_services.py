from __future__ import annotations

from typing import TYPE_CHECKING

from orchestrator import __version__
from orchestrator.services import HttpError, HttpResponse, Services, post_json

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


def test_post_json_says_what_went_wrong_or_nothing() -> None:
    """A notification's webhook (gate notify, approval notices): a 2xx is taken; anything
    else is reported the same way for both."""
    sent: list[tuple[str, str, dict[str, str], bytes | None]] = []

    class Http:
        def __init__(self, answer: HttpResponse | HttpError) -> None:
            self.answer = answer

        def request(
            self, method: str, url: str, headers: dict[str, str], body: bytes | None, timeout: float
        ) -> HttpResponse:
            sent.append((method, url, headers, body))
            if isinstance(self.answer, HttpError):
                raise self.answer
            return self.answer

    url = "https://hooks.example/x"
    assert post_json(Http(HttpResponse(204, {}, b"")), url, {"text": "é"}, 5) is None
    assert sent == [("POST", url, {"Content-Type": "application/json"}, b'{"text": "\\u00e9"}')]
    assert post_json(Http(HttpResponse(500, {}, b"")), url, {}, 5) == "HTTP 500"
    assert post_json(Http(HttpResponse(302, {}, b"")), url, {}, 5) == "HTTP 302"
    assert post_json(Http(HttpError("refused")), url, {}, 5) == "no response"
