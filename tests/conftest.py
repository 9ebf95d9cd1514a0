"""Shared fixtures: a real DynamoDB engine (DynamoDB Local) for the whole session.

DynamoDB Local is started on a free port by the session, with its table created from
template.yaml's declaration. If it cannot start, the integration tests fail (they are
never skipped): the test command installs Java and DynamoDB Local beforehand.
"""

from __future__ import annotations

import os
import uuid
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from orchestrator.local.dynamodb_local import DynamoDBLocal
from orchestrator.local.schema import create_table

if TYPE_CHECKING:
    from collections.abc import Iterator

FAKE_AWS = {
    "AWS_ACCESS_KEY_ID": "testingkey",  # DynamoDB Local accepts only letters and digits
    "AWS_SECRET_ACCESS_KEY": "testing-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


@pytest.fixture(scope="session")
def dynamodb_endpoint() -> Iterator[str]:
    with DynamoDBLocal() as server:
        yield server.endpoint_url


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's server (S3, KMS, SNS, CloudWatch, Step Functions, Lambda, Secrets Manager, STS)
    on a free port; tests point AWS_ENDPOINT_URL_<SERVICE> (or clients) at it."""
    from moto.server import ThreadedMotoServer

    from orchestrator.local.dynamodb_local import free_port

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and region; no test ever talks to real AWS."""
    for name in list(os.environ):
        if name.startswith(("AWS_ENDPOINT_URL", "AWS_PROFILE", "AWS_SESSION_TOKEN")):
            monkeypatch.delenv(name)
    for name, value in FAKE_AWS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def dynamodb(dynamodb_endpoint: str, aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A boto3 DynamoDB client on DynamoDB Local; AWS_ENDPOINT_URL_DYNAMODB points there."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", dynamodb_endpoint)
    return boto3.client("dynamodb")


@pytest.fixture
def table_name(dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh runs table, created from template.yaml, named in ORCHESTRATOR_TABLE_NAME."""
    name = f"runs-{uuid.uuid4().hex[:12]}"
    create_table(dynamodb, name)
    monkeypatch.setenv("ORCHESTRATOR_TABLE_NAME", name)
    return name


# region secret canaries and --soak (issue 7; the mechanism: tests/reliability/canaries.py)
# Every artifact credential handed out in the session is a canary; a canary found in a log
# record, a metrics line, a CodePipeline request, a DynamoDB item, a CLI output or captured
# output fails the session, whatever the test.


def _canaries() -> Any:
    from tests.reliability.canaries import SESSION

    return SESSION


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--soak",
        action="store_true",
        default=False,
        help="reliability suite: ten times the fuzz examples and the runs under load",
    )


def pytest_configure(config: pytest.Config) -> None:
    _canaries().install()


def pytest_unconfigure(config: pytest.Config) -> None:
    _canaries().uninstall()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _canaries().scan_report(report)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _stop_shared_dynamodb_local(session)
    _canaries().finish(session)


def _stop_shared_dynamodb_local(session: pytest.Session) -> None:
    """Commands on the embedded store leave one DynamoDB Local per data folder running for
    the next command (`orchestrator local stop` ends it): the session ends those its tests'
    folders started, so no JVM outlives the tests."""
    from orchestrator.local.dynamodb_local import RECORD_NAME, stop_shared

    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is None:
        return
    for record in factory.getbasetemp().rglob(RECORD_NAME):
        stop_shared(record.parent)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in _canaries().summary():
        terminalreporter.write_line(line, red=not line.startswith("secret canaries"))


# endregion
