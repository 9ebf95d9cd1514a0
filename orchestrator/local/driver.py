"""CodePipeline's side of one Lambda invoke action, run against the emulator.

`run_action` does what the service does: create a job, invoke the function (in-process,
asynchronously in spirit: errors are retried after 1 and 2 minutes, events may be delivered
twice or at the same moment), wait up to the reply timeout for a result, create a new job
with the continuation token after an in-progress result, and fail the whole action after
the action timeout. Waits go through a `Clock`, so a `VirtualClock` plays hours in seconds.
Pass the emulator's own clock: job creation times come from it.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from orchestrator.clock import Clock
    from orchestrator.local.emulator import CodePipelineEmulator, JobRecord

logger = logging.getLogger(__name__)

LAMBDA_RETRY_DELAYS = (60.0, 120.0)  # Lambda's asynchronous retries: ~1 min, then ~2 min
TIMED_OUT = "TimedOut"  # failure_type when CodePipeline, not the function, ended the action


class LambdaContext:
    """The Lambda context object, as the Python runtime builds it.

    `get_remaining_time_in_millis()` counts down real time (time.monotonic), because the
    Lambda timeout is real time even when the pipeline's clock is virtual.
    `memory_limit_in_mb` is a string, as in the real runtime.
    """

    def __init__(
        self,
        timeout_seconds: float = 900.0,
        *,
        function_name: str = "local-orchestrator",
        memory_limit_in_mb: int = 512,
        region: str = "us-east-1",
        account_id: str = "123456789012",
    ) -> None:
        self.aws_request_id = str(uuid.uuid4())
        self.function_name = function_name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = str(memory_limit_in_mb)
        self.invoked_function_arn = f"arn:aws:lambda:{region}:{account_id}:function:{function_name}"
        self.log_group_name = f"/aws/lambda/{function_name}"
        self.log_stream_name = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}"
        self.timeout_seconds = timeout_seconds
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


Invoke = Callable[[dict[str, Any], LambdaContext], object]


@dataclass
class ActionResult:
    """How the action ended. `jobs` are the emulator's records, one per round."""

    status: Literal["Succeeded", "Failed"]
    jobs: list[JobRecord]
    started_at: float
    ended_at: float
    output_variables: dict[str, str] = field(default_factory=dict)
    failure_type: str | None = None
    failure_message: str | None = None
    invocations: int = 0

    @property
    def rounds(self) -> int:
        """Number of jobs the action took (1 + number of continuation rounds)."""
        return len(self.jobs)


def _span(seconds: float, adjective: bool = False) -> str:
    """1200 -> '20 minutes'; 86400 -> '24 hours' (or '24-hour' as an adjective)."""
    if seconds >= 3600 and seconds % 3600 == 0:
        unit, count = "hour", int(seconds // 3600)
    elif seconds >= 60 and seconds % 60 == 0:
        unit, count = "minute", int(seconds // 60)
    else:
        unit, count = "second", round(seconds)
    if adjective:
        return f"{count}-{unit}"
    return f"{count} {unit}" + ("" if count == 1 else "s")


class _Action:
    """The state of one `run_action` call."""

    def __init__(
        self,
        emulator: CodePipelineEmulator,
        invoke: Invoke,
        *,
        clock: Clock,
        lambda_timeout: float,
        lambda_retries: int,
        duplicates: Literal["none", "sequential", "concurrent"],
        concurrency: int,
    ) -> None:
        self.emulator, self.invoke, self.clock = emulator, invoke, clock
        self.lambda_timeout, self.lambda_retries = lambda_timeout, lambda_retries
        self.duplicates, self.concurrency = duplicates, concurrency
        self.invocations = 0
        self._count_lock = threading.Lock()

    def invoke_once(self, job: JobRecord, barrier: threading.Barrier | None = None) -> bool:
        """One delivery of the job's event; True when the function ended without error."""
        event = copy.deepcopy(job.event)  # each delivery gets its own copy, as in Lambda
        context = LambdaContext(
            self.lambda_timeout, region=self.emulator.region, account_id=self.emulator.account_id
        )
        with self._count_lock:
            self.invocations += 1
        if barrier is not None:
            barrier.wait()
        started = time.monotonic()
        try:
            self.invoke(event, context)
        except Exception:
            logger.warning(
                "function raised on job %s (request %s)",
                job.job_id,
                context.aws_request_id,
                exc_info=True,
            )
            return False
        if time.monotonic() - started > self.lambda_timeout:
            logger.warning(
                "Task timed out after %.2f seconds (job %s)", self.lambda_timeout, job.job_id
            )
            return False
        return True

    def deliver(self, job: JobRecord, deadline: float) -> None:
        """Deliver the event (once, twice, or N at once), then retry errors like Lambda.

        Retries stop once the job has an answer or CodePipeline has stopped waiting
        (`deadline`, clock time).
        """
        if self.duplicates == "concurrent":
            outcomes: list[bool] = []
            barrier = threading.Barrier(self.concurrency)

            def run() -> None:
                outcomes.append(self.invoke_once(job, barrier))

            threads = [
                threading.Thread(target=run, name=f"lambda-{i}") for i in range(self.concurrency)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            ok = all(outcomes)
        elif self.duplicates == "sequential":
            first = self.invoke_once(job)
            ok = self.invoke_once(job) and first
        else:
            ok = self.invoke_once(job)
        for delay in LAMBDA_RETRY_DELAYS[: self.lambda_retries]:
            if ok or job.status != "Created":
                return
            self.clock.sleep(delay)
            if job.status != "Created" or self.clock.now() >= deadline:
                return
            ok = self.invoke_once(job)


def run_action(
    emulator: CodePipelineEmulator,
    invoke: Invoke,
    configuration: dict[str, str],
    *,
    clock: Clock,
    reinvoke_delay: float = 2.0,
    lambda_timeout: float = 900.0,
    duplicates: Literal["none", "sequential", "concurrent"] = "none",
    concurrency: int = 2,
    reply_timeout: float = 1200.0,
    action_timeout: float = 86400.0,
    lambda_retries: int = 2,
    poll_interval: float = 1.0,
    on_job: Callable[[JobRecord], None] | None = None,
    **job_kwargs: Any,
) -> ActionResult:
    """Run one Lambda invoke action to its end, as CodePipeline would.

    `job_kwargs` go to `emulator.create_job` for every round (artifacts, names, the
    `trigger` that started the pipeline execution, ...).
    `on_job` is called with each job answered by an in-progress result, before the next job.
    """
    if not 0 <= lambda_retries <= len(LAMBDA_RETRY_DELAYS):
        raise ValueError("lambda_retries must be 0, 1 or 2 (Lambda retries at most twice)")
    if duplicates == "concurrent" and concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    action = _Action(
        emulator,
        invoke,
        clock=clock,
        lambda_timeout=lambda_timeout,
        lambda_retries=lambda_retries,
        duplicates=duplicates,
        concurrency=concurrency,
    )
    for same_every_round in ("pipeline_execution_id", "action_execution_id"):
        if job_kwargs.get(same_every_round) is None:
            job_kwargs[same_every_round] = str(uuid.uuid4())
    started_at = clock.now()
    action_deadline = started_at + action_timeout
    jobs: list[JobRecord] = []
    token: str | None = None

    def end(status: Literal["Succeeded", "Failed"], **outcome: Any) -> ActionResult:
        return ActionResult(
            status, jobs, started_at, clock.now(), invocations=action.invocations, **outcome
        )

    def action_timed_out(job: JobRecord) -> ActionResult:
        emulator.expire_job(job.job_id)
        message = (
            "The action failed because the Lambda invoke action exceeded the "
            f"{_span(action_timeout, adjective=True)} limit"
        )
        return end("Failed", failure_type=TIMED_OUT, failure_message=message)

    while True:
        job = emulator.create_job(configuration, continuation_token=token, **job_kwargs)
        jobs.append(job)
        deadline = min(job.created_at + reply_timeout, action_deadline)
        action.deliver(job, deadline)
        while job.status == "Created":
            now = clock.now()
            if now >= deadline:
                break
            clock.sleep(min(poll_interval, deadline - now))
        answer = job.answer
        if answer is None:
            if clock.now() >= action_deadline:
                return action_timed_out(job)
            emulator.expire_job(job.job_id)
            message = (
                "The action failed because no result was returned from the Lambda function "
                f"within {_span(reply_timeout)}"
            )
            return end("Failed", failure_type=TIMED_OUT, failure_message=message)
        params: dict[str, Any] = answer["params"]
        if answer["operation"] == "PutJobFailureResult":
            details = params["failureDetails"]
            return end("Failed", failure_type=details["type"], failure_message=details["message"])
        token = params.get("continuationToken")
        if token is None:
            return end("Succeeded", output_variables=dict(params.get("outputVariables", {})))
        if on_job is not None:
            on_job(job)
        clock.sleep(reinvoke_delay)
        if clock.now() >= action_deadline:
            return action_timed_out(job)
