"""The CodePipeline emulator, spoken to by a real boto3 client, and the job loop around it."""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.request
import uuid
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from orchestrator.clock import VirtualClock
from orchestrator.local.driver import LambdaContext, run_action
from orchestrator.local.emulator import DEFAULT_TRIGGER, CodePipelineEmulator, Faults, JobRecord

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from botocore.config import _RetryDict
    from mypy_boto3_codepipeline import CodePipelineClient
    from mypy_boto3_codepipeline.type_defs import FailureDetailsTypeDef

CONFIG = {"FunctionName": "gate", "UserParameters": '{"steps": []}'}
NO_RETRIES: _RetryDict = {"mode": "standard", "total_max_attempts": 1}


def make_client(endpoint_url: str, retries: _RetryDict = NO_RETRIES) -> CodePipelineClient:
    return boto3.client(
        "codepipeline",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries=retries),
    )


def error_of(call: Callable[[], object]) -> tuple[str, int]:
    """The (Error.Code, HTTP status) botocore reports for a call that must fail."""
    with pytest.raises(ClientError) as caught:
        call()
    response = caught.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


@pytest.fixture
def emulator() -> Iterator[CodePipelineEmulator]:
    with CodePipelineEmulator() as emu:
        yield emu


@pytest.fixture
def client(emulator: CodePipelineEmulator) -> Iterator[CodePipelineClient]:
    codepipeline = make_client(emulator.endpoint_url)
    yield codepipeline
    codepipeline.close()


def test_a_success_is_accepted_and_recorded(
    emulator: CodePipelineEmulator, client: CodePipelineClient
) -> None:
    job = emulator.create_job(CONFIG)
    client.put_job_success_result(
        jobId=job.job_id,
        executionDetails={"summary": "all green", "percentComplete": 100},
        outputVariables={"Result": "ok"},
    )
    assert job.status == "Succeeded"
    assert job.answered_at is not None
    assert job.answer == {
        "operation": "PutJobSuccessResult",
        "params": {
            "jobId": job.job_id,
            "executionDetails": {"summary": "all green", "percentComplete": 100},
            "outputVariables": {"Result": "ok"},
        },
    }
    assert len(emulator.requests) == 1
    assert json.loads(emulator.requests[0]) == job.answer["params"]


def test_an_in_progress_answer_then_any_second_answer_is_refused(
    emulator: CodePipelineEmulator, client: CodePipelineClient
) -> None:
    job = emulator.create_job(CONFIG)
    client.put_job_success_result(jobId=job.job_id, continuationToken="round-1")
    assert job.status == "InProgress"
    failure: FailureDetailsTypeDef = {"type": "JobFailed", "message": "late"}
    assert error_of(
        lambda: client.put_job_failure_result(jobId=job.job_id, failureDetails=failure)
    ) == (
        "InvalidJobStateException",
        400,
    )
    assert error_of(lambda: client.put_job_success_result(jobId=job.job_id)) == (
        "InvalidJobStateException",
        400,
    )
    assert job.status == "InProgress"
    assert job.answer is not None
    assert job.answer["params"] == {"jobId": job.job_id, "continuationToken": "round-1"}
    assert job.rejected == [
        ("PutJobFailureResult", "InvalidJobStateException"),
        ("PutJobSuccessResult", "InvalidJobStateException"),
    ]


def test_a_timed_out_job_refuses_answers(
    emulator: CodePipelineEmulator, client: CodePipelineClient
) -> None:
    job = emulator.create_job(CONFIG)
    emulator.expire_job(job.job_id)
    code, _ = error_of(lambda: client.put_job_success_result(jobId=job.job_id))
    assert code == "InvalidJobStateException"
    assert job.status == "TimedOut"
    assert job.answer is None


def test_unknown_and_malformed_job_ids(client: CodePipelineClient) -> None:
    unknown = "00000000-0000-4000-8000-000000000000"
    assert error_of(lambda: client.put_job_success_result(jobId=unknown)) == (
        "JobNotFoundException",
        400,
    )
    assert error_of(lambda: client.get_job_details(jobId=unknown))[0] == "JobNotFoundException"
    assert error_of(lambda: client.get_job_details(jobId="job-1"))[0] == "ValidationException"


def test_output_variables_with_a_continuation_token_are_refused(
    emulator: CodePipelineEmulator, client: CodePipelineClient
) -> None:
    job = emulator.create_job(CONFIG)
    code, status = error_of(
        lambda: client.put_job_success_result(
            jobId=job.job_id, continuationToken="t", outputVariables={"A": "1"}
        )
    )
    assert (code, status) == ("ValidationException", 400)
    assert job.status == "Created"
    assert job.rejected == [("PutJobSuccessResult", "ValidationException")]


def test_limits_botocore_does_not_check_are_enforced_by_the_service(
    emulator: CodePipelineEmulator, client: CodePipelineClient
) -> None:
    job = emulator.create_job(CONFIG)
    with pytest.raises(ClientError) as caught:
        client.put_job_success_result(jobId=job.job_id, executionDetails={"summary": "s" * 3000})
    error = caught.value.response["Error"]
    assert error["Code"] == "ValidationException"
    assert "executionDetails.summary: length 3000 > max 2048" in error["Message"]
    bad_type: Any = {"type": "Broken", "message": "m"}  # not a FailureType: botocore sends it
    code, _ = error_of(
        lambda: client.put_job_failure_result(jobId=job.job_id, failureDetails=bad_type)
    )
    assert code == "ValidationException"
    assert job.status == "Created"
    client.put_job_failure_result(
        jobId=job.job_id, failureDetails={"type": "JobFailed", "message": "m"}
    )
    assert emulator.job(job.job_id).status == "Failed"


def test_get_job_details_round_trips(
    emulator: CodePipelineEmulator, client: CodePipelineClient
) -> None:
    artifact = {
        "name": "SourceOutput",
        "revision": "abc123",
        "location": {"type": "S3", "s3Location": {"bucketName": "bucket", "objectKey": "a/b.zip"}},
    }
    key = {"id": "arn:aws:kms:us-east-1:123456789012:key/k1", "type": "KMS"}
    execution = "11111111-2222-4333-8444-555555555555"
    job = emulator.create_job(
        CONFIG,
        continuation_token="round-1",
        input_artifacts=[artifact],
        encryption_key=key,
        pipeline_name="release",
        stage_name="Deploy",
        action_name="Wait",
        pipeline_execution_id=execution,
    )
    details = client.get_job_details(jobId=job.job_id)["jobDetails"]
    assert details == job.details
    data = details["data"]
    assert data["actionTypeId"] == {
        "category": "Invoke",
        "owner": "AWS",
        "provider": "Lambda",
        "version": "1",
    }
    context = data["pipelineContext"]
    assert context["pipelineName"] == "release"
    assert context["stage"] == {"name": "Deploy"}
    assert context["action"]["name"] == "Wait"
    assert context["pipelineExecutionId"] == execution
    assert context["pipelineArn"] == "arn:aws:codepipeline:us-east-1:123456789012:release"
    assert data["continuationToken"] == "round-1"
    assert data["encryptionKey"] == key
    assert data["inputArtifacts"] == [artifact]
    event = job.event["CodePipeline.job"]
    assert event["id"] == job.job_id
    assert event["accountId"] == "123456789012"
    assert set(event["data"]) == {
        "actionConfiguration",
        "inputArtifacts",
        "outputArtifacts",
        "artifactCredentials",
        "continuationToken",
        "encryptionKey",
    }
    assert event["data"]["artifactCredentials"] == data["artifactCredentials"]


def test_a_first_job_event_has_no_token_and_fresh_credentials(
    emulator: CodePipelineEmulator,
) -> None:
    first, second = emulator.create_job(CONFIG), emulator.create_job(CONFIG)
    data = first.event["CodePipeline.job"]["data"]
    assert set(data) == {
        "actionConfiguration",
        "inputArtifacts",
        "outputArtifacts",
        "artifactCredentials",
    }
    assert data["actionConfiguration"] == {"configuration": CONFIG}
    credentials = data["artifactCredentials"]
    assert credentials["accessKeyId"].startswith("ASIA")
    assert len(credentials["accessKeyId"]) == 20
    assert credentials != second.event["CodePipeline.job"]["data"]["artifactCredentials"]
    assert first.job_id != second.job_id
    assert emulator.jobs == [first, second]
    assert emulator.job(second.job_id) is second
    assert "secretAccessKey" not in repr(first)


def test_a_job_codepipeline_could_not_create_is_refused(emulator: CodePipelineEmulator) -> None:
    with pytest.raises(
        ValueError, match=r"configuration\[UserParameters\]: length 1001 > max 1000"
    ):
        emulator.create_job({"FunctionName": "gate", "UserParameters": "u" * 1001})


def test_get_pipeline_execution_names_the_trigger_of_known_executions(
    emulator: CodePipelineEmulator, client: CodePipelineClient
) -> None:
    one, two, nine = (str(uuid.uuid4()) for _ in range(3))
    emulator.create_job(CONFIG, pipeline_name="shop", pipeline_execution_id=one)
    bob = {"triggerType": "StartPipelineExecution", "triggerDetail": "arn:aws:iam::1:user/bob"}
    emulator.create_job(CONFIG, pipeline_name="shop", pipeline_execution_id=two, trigger=bob)
    # a later job of an execution does not change who started it
    emulator.create_job(CONFIG, pipeline_name="shop", pipeline_execution_id=two)
    first = client.get_pipeline_execution(pipelineName="shop", pipelineExecutionId=one)
    assert first["pipelineExecution"]["trigger"] == DEFAULT_TRIGGER
    assert first["pipelineExecution"]["pipelineExecutionId"] == one
    second = client.get_pipeline_execution(pipelineName="shop", pipelineExecutionId=two)
    assert second["pipelineExecution"]["trigger"] == bob
    assert error_of(
        lambda: client.get_pipeline_execution(pipelineName="shop", pipelineExecutionId=nine)
    ) == ("PipelineExecutionNotFoundException", 400)
    assert error_of(
        lambda: client.get_pipeline_execution(pipelineName="nope", pipelineExecutionId=one)
    ) == ("PipelineNotFoundException", 400)
    with pytest.raises(ValueError, match=r"trigger.triggerType: not one of"):
        emulator.create_job(CONFIG, trigger={"triggerType": "Magic", "triggerDetail": "x"})


def test_get_pipeline_execution_reports_the_declared_mode_and_variables(
    emulator: CodePipelineEmulator, client: CodePipelineClient
) -> None:
    one, two = str(uuid.uuid4()), str(uuid.uuid4())
    emulator.create_job(CONFIG, pipeline_name="shop", pipeline_execution_id=one)
    emulator.create_job(CONFIG, pipeline_name="shop", pipeline_execution_id=two)
    emulator.declare_execution("shop", two, mode="QUEUED", variables={"stage": "prod"})
    plain = client.get_pipeline_execution(pipelineName="shop", pipelineExecutionId=one)
    assert plain["pipelineExecution"]["executionMode"] == "SUPERSEDED"
    assert "variables" not in plain["pipelineExecution"]
    declared = client.get_pipeline_execution(pipelineName="shop", pipelineExecutionId=two)
    assert declared["pipelineExecution"]["executionMode"] == "QUEUED"
    assert declared["pipelineExecution"]["variables"] == [
        {"name": "stage", "resolvedValue": "prod"}
    ]


def test_other_operations_are_unknown(client: CodePipelineClient) -> None:
    assert error_of(lambda: client.get_pipeline_state(name="p"))[0] == "UnknownOperationException"


def test_an_unsigned_request_is_refused(emulator: CodePipelineEmulator) -> None:
    request = urllib.request.Request(
        emulator.endpoint_url,
        data=b'{"jobId": "00000000-0000-4000-8000-000000000000"}',
        headers={
            "X-Amz-Target": "CodePipeline_20150709.GetJobDetails",
            "Content-Type": "application/x-amz-json-1.1",
        },
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    with caught.value as response:
        assert response.code == 400
        assert json.loads(response.read())["__type"] == "MissingAuthenticationTokenException"


def test_a_scripted_throttle_reaches_a_client_without_retries() -> None:
    with CodePipelineEmulator(faults=Faults(script=["throttle"])) as emulator:
        client = make_client(emulator.endpoint_url)
        job = emulator.create_job(CONFIG)
        assert error_of(lambda: client.put_job_success_result(jobId=job.job_id)) == (
            "ThrottlingException",
            400,
        )
        client.close()
    assert job.status == "Created"
    assert job.rejected == [("PutJobSuccessResult", "ThrottlingException")]
    assert emulator.faults_injected == {"throttle": 1}


def test_standard_retry_mode_gets_through_a_single_throttle() -> None:
    with CodePipelineEmulator(faults=Faults(script=["throttle"])) as emulator:
        client = make_client(emulator.endpoint_url, {"mode": "standard", "max_attempts": 3})
        job = emulator.create_job(CONFIG)
        client.put_job_success_result(jobId=job.job_id)
        client.close()
    assert job.status == "Succeeded"
    assert len(emulator.requests) == 2
    assert job.rejected == [("PutJobSuccessResult", "ThrottlingException")]
    assert emulator.faults_injected == {"throttle": 1}


def test_scripted_server_and_job_faults_are_returned_instead_of_processing() -> None:
    script = [
        "internal_failure",
        "service_unavailable",
        "job_not_found",
        "invalid_job_state",
        "none",
    ]
    with CodePipelineEmulator(faults=Faults(script=script)) as emulator:
        client = make_client(emulator.endpoint_url)
        job = emulator.create_job(CONFIG)
        outcomes = [
            error_of(lambda: client.put_job_success_result(jobId=job.job_id)) for _ in range(4)
        ]
        assert job.status == "Created"
        client.put_job_success_result(jobId=job.job_id)
        client.close()
    job = emulator.job(job.job_id)
    assert outcomes == [
        ("InternalFailure", 500),
        ("ServiceUnavailable", 503),
        ("JobNotFoundException", 400),
        ("InvalidJobStateException", 400),
    ]
    assert job.status == "Succeeded"
    assert emulator.faults_injected == {
        "server_error": 2,
        "job_not_found": 1,
        "invalid_job_state": 1,
    }


def test_seeded_fault_probabilities_repeat() -> None:
    def outcomes() -> list[str]:
        faults = Faults(throttle=0.3, server_error=0.2, job_not_found=0.1, seed=7)
        with CodePipelineEmulator(faults=faults) as emulator:
            client = make_client(emulator.endpoint_url)
            job = emulator.create_job(CONFIG)
            codes = []
            for _ in range(20):
                try:
                    client.get_job_details(jobId=job.job_id)
                    codes.append("ok")
                except ClientError as error:
                    codes.append(error.response["Error"]["Code"])
            client.close()
        assert sum(emulator.faults_injected.values()) == 20 - codes.count("ok")
        return codes

    first = outcomes()
    assert first == outcomes()
    assert "ok" in first
    assert "ThrottlingException" in first


def test_request_bodies_are_kept_but_never_logged(
    emulator: CodePipelineEmulator, client: CodePipelineClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    job = emulator.create_job(CONFIG)
    marker = "SENSITIVE-7f3a"
    client.put_job_success_result(jobId=job.job_id, executionDetails={"summary": marker})
    client.get_job_details(jobId=job.job_id)
    secret = job.event["CodePipeline.job"]["data"]["artifactCredentials"]["secretAccessKey"]
    assert marker in emulator.requests[0]
    emulator_logs = [r.getMessage() for r in caplog.records if r.name.startswith("orchestrator")]
    assert emulator_logs  # the request lines are logged ...
    assert not any(marker in line or secret in line for line in emulator_logs)  # ... bodies not


# -- the job loop ------------------------------------------------------------------------


def reporting_handler(
    client: CodePipelineClient, seen: list[str]
) -> Callable[[dict[str, Any], LambdaContext], None]:
    """A tiny gate: the first job asks to be called again, the second one finishes."""

    def handler(event: dict[str, Any], context: LambdaContext) -> None:
        job = event["CodePipeline.job"]
        assert context.get_remaining_time_in_millis() > 0
        seen.append(job["id"])
        try:
            if "continuationToken" not in job["data"]:
                client.put_job_success_result(jobId=job["id"], continuationToken="round-1")
            else:
                assert job["data"]["continuationToken"] == "round-1"
                client.put_job_success_result(jobId=job["id"], outputVariables={"Result": "ok"})
        except ClientError as error:  # a duplicate delivery loses the race
            assert error.response["Error"]["Code"] == "InvalidJobStateException"

    return handler


@pytest.fixture
def virtual() -> Iterator[tuple[VirtualClock, CodePipelineEmulator, CodePipelineClient]]:
    clock = VirtualClock(speed=10000)
    with CodePipelineEmulator(clock) as emulator:
        client = make_client(emulator.endpoint_url)
        yield clock, emulator, client
        client.close()


def test_run_action_follows_the_continuation_token(
    virtual: tuple[VirtualClock, CodePipelineEmulator, CodePipelineClient],
) -> None:
    clock, emulator, client = virtual
    seen: list[str] = []
    between: list[JobRecord] = []
    result = run_action(
        emulator,
        reporting_handler(client, seen),
        CONFIG,
        clock=clock,
        reinvoke_delay=30.0,
        on_job=between.append,
        pipeline_execution_id=None,
    )
    assert result.status == "Succeeded", result.failure_message
    assert result.rounds == 2
    assert result.output_variables == {"Result": "ok"}
    first, second = result.jobs
    assert seen == [first.job_id, second.job_id]
    assert between == [first]
    assert (first.status, second.status) == ("InProgress", "Succeeded")
    assert second.continuation_token == "round-1"
    assert second.created_at - first.created_at >= 30.0
    assert result.ended_at - result.started_at >= 30.0
    contexts = [job.details["data"]["pipelineContext"] for job in result.jobs]
    assert contexts[0]["pipelineExecutionId"] == contexts[1]["pipelineExecutionId"]
    assert contexts[0]["action"] == contexts[1]["action"]


def test_run_action_fails_when_the_function_never_answers(
    virtual: tuple[VirtualClock, CodePipelineEmulator, CodePipelineClient],
) -> None:
    clock, emulator, client = virtual
    calls: list[str] = []
    result = run_action(
        emulator,
        lambda event, context: calls.append(event["CodePipeline.job"]["id"]),
        CONFIG,
        clock=clock,
    )
    assert result.status == "Failed"
    assert result.failure_type == "TimedOut"
    assert result.failure_message is not None
    assert "no result was returned from the Lambda function within 20 minutes" in (
        result.failure_message
    )
    assert result.rounds == 1
    [job] = result.jobs
    assert calls == [job.job_id]
    assert job.status == "TimedOut"
    assert result.ended_at - job.created_at >= 1200.0
    assert error_of(lambda: client.put_job_success_result(jobId=job.job_id))[0] == (
        "InvalidJobStateException"
    )


def test_concurrent_duplicates_deliver_the_same_job_and_one_answer_wins(
    virtual: tuple[VirtualClock, CodePipelineEmulator, CodePipelineClient],
) -> None:
    clock, emulator, client = virtual
    seen: list[str] = []
    threads: set[str] = set()

    def handler(event: dict[str, Any], context: LambdaContext) -> None:
        threads.add(threading.current_thread().name)
        job = event["CodePipeline.job"]
        seen.append(job["id"])
        try:
            client.put_job_success_result(
                jobId=job["id"], outputVariables={"By": context.aws_request_id}
            )
        except ClientError as error:
            assert error.response["Error"]["Code"] == "InvalidJobStateException"

    result = run_action(
        emulator, handler, CONFIG, clock=clock, duplicates="concurrent", concurrency=3
    )
    assert result.status == "Succeeded"
    [job] = result.jobs
    assert seen == [job.job_id] * 3
    assert len(threads) == 3
    assert result.invocations == 3
    assert job.rejected == [("PutJobSuccessResult", "InvalidJobStateException")] * 2


def test_sequential_duplicates_deliver_the_event_twice(
    virtual: tuple[VirtualClock, CodePipelineEmulator, CodePipelineClient],
) -> None:
    clock, emulator, client = virtual
    seen: list[str] = []
    result = run_action(
        emulator, reporting_handler(client, seen), CONFIG, clock=clock, duplicates="sequential"
    )
    assert result.status == "Succeeded"
    assert result.invocations == 4
    assert [seen.count(job.job_id) for job in result.jobs] == [2, 2]


def test_a_function_error_is_retried_a_minute_later(
    virtual: tuple[VirtualClock, CodePipelineEmulator, CodePipelineClient],
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, emulator, client = virtual
    attempts: list[float] = []

    def handler(event: dict[str, Any], context: LambdaContext) -> None:
        attempts.append(clock.now())
        if len(attempts) == 1:
            raise RuntimeError("cold start failed")
        client.put_job_success_result(jobId=event["CodePipeline.job"]["id"])

    result = run_action(emulator, handler, CONFIG, clock=clock)
    assert result.status == "Succeeded"
    assert result.invocations == 2
    assert attempts[1] - attempts[0] >= 60.0
    assert any("function raised" in record.getMessage() for record in caplog.records)


def test_a_function_failure_result_fails_the_action(
    virtual: tuple[VirtualClock, CodePipelineEmulator, CodePipelineClient],
) -> None:
    clock, emulator, client = virtual

    def handler(event: dict[str, Any], context: LambdaContext) -> None:
        failure: FailureDetailsTypeDef = {
            "type": "ConfigurationError",
            "message": "bad UserParameters",
        }
        client.put_job_failure_result(jobId=event["CodePipeline.job"]["id"], failureDetails=failure)

    result = run_action(emulator, handler, CONFIG, clock=clock)
    assert (result.status, result.failure_type) == ("Failed", "ConfigurationError")
    assert result.failure_message == "bad UserParameters"


def test_the_action_fails_after_its_overall_limit(
    virtual: tuple[VirtualClock, CodePipelineEmulator, CodePipelineClient],
) -> None:
    clock, emulator, client = virtual

    def forever(event: dict[str, Any], context: LambdaContext) -> None:
        client.put_job_success_result(
            jobId=event["CodePipeline.job"]["id"], continuationToken="again"
        )

    result = run_action(
        emulator, forever, CONFIG, clock=clock, reinvoke_delay=900.0, action_timeout=3600.0
    )
    assert result.status == "Failed"
    assert result.failure_type == "TimedOut"
    assert result.failure_message is not None
    assert "exceeded the 1-hour limit" in result.failure_message
    assert result.rounds >= 2
    assert result.jobs[-1].status == "TimedOut"
    assert all(job.status == "InProgress" for job in result.jobs[:-1])
    assert result.ended_at - result.started_at >= 3600.0
