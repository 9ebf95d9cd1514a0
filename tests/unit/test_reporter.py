"""The CodePipeline reporter: its client's configuration and what each answer from the service
means (the emulator tests in tests/integration drive it against the wire protocol)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import pytest
from botocore.exceptions import EndpointConnectionError

from orchestrator import __version__
from orchestrator.exceptions import ReporterUnavailable
from orchestrator.model import Answer, AnswerKind
from orchestrator.ports import Delivery
from orchestrator.reporter import CodePipelineReporter, codepipeline_client
from tests.fakes import client_error

if TYPE_CHECKING:
    from mypy_boto3_codepipeline import CodePipelineClient

DONE = Answer(kind=AnswerKind.SUCCEEDED, run_id="run-1", summary="done")


class FakeCodePipeline:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.sent: list[dict[str, Any]] = []

    def put_job_success_result(self, **params: Any) -> None:
        if self.error is not None:
            raise self.error
        self.sent.append(params)

    def client(self) -> CodePipelineClient:
        """This fake as the boto3 client it stands in for (the calls a reporter makes)."""
        return cast("CodePipelineClient", self)


def test_the_client_makes_five_attempts_with_short_timeouts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    config: Any = codepipeline_client("eu-west-1").meta.config
    assert config.retries == {"mode": "standard", "total_max_attempts": 5}
    assert (config.connect_timeout, config.read_timeout) == (3, 10)
    assert f"codepipeline-orchestrator/{__version__}" in config.user_agent_extra


def test_an_accepted_answer() -> None:
    fake = FakeCodePipeline()
    assert CodePipelineReporter(fake.client()).report("job-1", DONE) is Delivery.ACCEPTED
    assert fake.sent[0]["jobId"] == "job-1"


@pytest.mark.parametrize(
    ("error", "delivery"),
    [
        (client_error("InvalidJobStateException", 400, "PutJobSuccessResult"), "ALREADY_ANSWERED"),
        (client_error("JobNotFoundException", 400, "PutJobSuccessResult"), "JOB_NOT_FOUND"),
    ],
)
def test_answers_that_are_not_faults(error: Exception, delivery: str) -> None:
    reporter = CodePipelineReporter(FakeCodePipeline(error).client())
    assert reporter.report("job-1", DONE) is Delivery[delivery]


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (
            client_error("ThrottlingException", 400, "PutJobSuccessResult"),
            "job job-1: put_job_success_result failed (ThrottlingException)",
        ),
        (
            client_error("AccessDeniedException", 400, "PutJobSuccessResult"),
            "job job-1: put_job_success_result failed (AccessDeniedException)",
        ),
        (
            EndpointConnectionError(endpoint_url="https://codepipeline"),
            "job job-1: put_job_success_result failed (EndpointConnectionError)",
        ),
    ],
)
def test_every_other_failure_is_reporter_unavailable(error: Exception, message: str) -> None:
    reporter = CodePipelineReporter(FakeCodePipeline(error).client())
    with pytest.raises(ReporterUnavailable) as caught:
        reporter.report("job-1", DONE)
    assert str(caught.value) == message
