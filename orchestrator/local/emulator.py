"""CodePipeline's job APIs served over HTTP, so a real boto3 client can be tested against them.

Speaks the JSON 1.1 protocol botocore uses for CodePipeline (`POST /`, `X-Amz-Target:
CodePipeline_20150709.<Operation>`), validates every request against botocore's service
model (see `wire`) and keeps each job's life: one accepted answer, `InvalidJobStateException`
for any later one, `JobNotFoundException` for unknown ids. `GetPipelineExecution` answers
for the executions its jobs belong to (with the trigger `create_job` was given). Faults
(throttling, 5xx, spurious job errors) can be injected by script or by seeded probability.

The service model lists `smithy-rpc-v2-cbor` before `json`, but botocore (1.44) resolves
CodePipeline to `json`; should a later botocore switch, its requests (CBOR to
`/service/...`) get an UnknownOperationException saying only JSON 1.1 is served.

Request bodies carry artifact credentials: they are kept in `requests` for tests to scan and
never printed or logged.
"""

from __future__ import annotations

import copy
import json
import logging
import random
import secrets
import string
import threading
import uuid
from collections import Counter, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Literal

from orchestrator.clock import SystemClock
from orchestrator.local import wire

if TYPE_CHECKING:
    from types import TracebackType

    from orchestrator.clock import Clock

logger = logging.getLogger(__name__)

TARGET_PREFIX = "CodePipeline_20150709."
CONTENT_TYPE = "application/x-amz-json-1.1"
ANSWERS = ("PutJobSuccessResult", "PutJobFailureResult")
OPERATIONS = (*ANSWERS, "GetJobDetails", "GetPipelineExecution")
DEFAULT_TRIGGER = {
    "triggerType": "StartPipelineExecution",
    "triggerDetail": "arn:aws:sts::123456789012:assumed-role/Dev/alice",
}
"""Who started an execution, unless `create_job` is told otherwise: a person, by ARN."""
OUTPUT_VARIABLES_MAX_BYTES = 122_880
FAULT_KINDS = ("throttle", "server_error", "invalid_job_state", "job_not_found")
# Script entries: a fault kind, a precise server error, or "none" (this request goes through).
SCRIPT_NAMES = frozenset({*FAULT_KINDS, "internal_failure", "service_unavailable", "none"})

_INJECTED = {  # script name -> (error code, message, HTTP status)
    "throttle": ("ThrottlingException", "Rate exceeded", 400),
    "internal_failure": ("InternalFailure", "Internal service error", 500),
    "service_unavailable": ("ServiceUnavailable", "Service unavailable", 503),
    "invalid_job_state": ("InvalidJobStateException", "Invalid job state", 400),
    "job_not_found": ("JobNotFoundException", "Job not found", 400),
}

ACTION_TYPE_ID = {"category": "Invoke", "owner": "AWS", "provider": "Lambda", "version": "1"}

JobStatus = Literal["Created", "InProgress", "Succeeded", "Failed", "TimedOut"]


class ServiceError(Exception):
    """An error response: `code` becomes `__type`, which botocore reports as Error.Code."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.status = code, message, status


@dataclass
class Faults:
    """Faults to inject, per request, *instead of* processing it (no answer is recorded).

    `script` entries are consumed one per request first; once it is empty each request
    draws from the probabilities (a `random.Random(seed)`, so runs repeat).
    """

    throttle: float = 0.0
    server_error: float = 0.0
    invalid_job_state: float = 0.0
    job_not_found: float = 0.0
    seed: int | None = None
    script: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        chances = [getattr(self, kind) for kind in FAULT_KINDS]
        if any(not 0.0 <= chance <= 1.0 for chance in chances) or sum(chances) > 1.0:
            raise ValueError("fault probabilities must be in [0, 1] and sum to at most 1")
        unknown = sorted(set(self.script) - SCRIPT_NAMES)
        if unknown:
            raise ValueError(f"unknown fault names in script: {unknown}")


@dataclass
class JobRecord:
    """One CodePipeline job and what became of it.

    `event` is the Lambda event in AWS's documented shape; `details` is what GetJobDetails
    returns. Both hold artifact credentials, so neither appears in `repr()`.
    """

    job_id: str
    event: dict[str, Any] = field(repr=False)
    details: dict[str, Any] = field(repr=False)
    created_at: float
    status: JobStatus = "Created"
    answer: dict[str, Any] | None = field(default=None, repr=False)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    answered_at: float | None = None

    @property
    def continuation_token(self) -> str | None:
        """The token this job was created with (None for the first job of an action)."""
        token = self.event["CodePipeline.job"]["data"].get("continuationToken")
        return token if isinstance(token, str) else None


def fake_credentials() -> dict[str, str]:
    """Random STS-looking keys, unique per job, so tests can scan output for leaks."""
    alphabet = string.ascii_uppercase + string.digits
    return {
        "accessKeyId": "ASIA" + "".join(secrets.choice(alphabet) for _ in range(16)),
        "secretAccessKey": secrets.token_urlsafe(30),
        "sessionToken": "IQoJb3JpZ2luX2VjE" + secrets.token_urlsafe(240),
    }


class CodePipelineEmulator:
    """A local CodePipeline endpoint for the job APIs. Thread-safe; use as a context manager."""

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        account_id: str = "123456789012",
        faults: Faults | None = None,
        region: str = "us-east-1",
        port: int = 0,
    ) -> None:
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.account_id = account_id
        self.region = region
        self.faults = faults if faults is not None else Faults()
        self.faults_injected: Counter[str] = Counter()
        self._port = port
        self._lock = threading.RLock()
        self._jobs: dict[str, JobRecord] = {}
        self._executions: dict[tuple[str, str], dict[str, Any]] = {}
        self._declared: dict[tuple[str, str], tuple[str, dict[str, str]]] = {}
        self._requests: list[str] = []
        self._rng = random.Random(self.faults.seed)
        self._script = deque(self.faults.script)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._endpoint_url: str | None = None

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def endpoint_url(self) -> str:
        if self._endpoint_url is None:
            raise RuntimeError("the emulator is not started")
        return self._endpoint_url

    def start(self) -> str:
        """Listen on 127.0.0.1 and serve in a daemon thread; return the endpoint URL."""
        with self._lock:
            if self._server is None:
                server = _Server(("127.0.0.1", self._port), _Handler, self)
                self._server = server
                self._endpoint_url = f"http://127.0.0.1:{server.server_address[1]}"
                self._thread = threading.Thread(
                    target=server.serve_forever,
                    kwargs={"poll_interval": 0.05},
                    name="codepipeline-emulator",
                    daemon=True,
                )
                self._thread.start()
            return self.endpoint_url

    def stop(self) -> None:
        """Stop serving, close the socket and join the threads (idempotent)."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join()

    def __enter__(self) -> CodePipelineEmulator:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- jobs --------------------------------------------------------------------------

    def create_job(
        self,
        configuration: dict[str, str],
        *,
        continuation_token: str | None = None,
        input_artifacts: list[dict[str, Any]] | None = None,
        output_artifacts: list[dict[str, Any]] | None = None,
        artifact_credentials: dict[str, str] | None = None,
        encryption_key: dict[str, str] | None = None,
        pipeline_name: str = "local-pipeline",
        stage_name: str = "Gate",
        action_name: str = "Gate",
        pipeline_execution_id: str | None = None,
        action_execution_id: str | None = None,
        trigger: dict[str, str] | None = None,
    ) -> JobRecord:
        """A new job (fresh uuid4 id); ValueError if CodePipeline could not have made it.

        `trigger` (`triggerType`, `triggerDetail`) is what started the job's pipeline
        execution (default `DEFAULT_TRIGGER`); the first job of an execution sets it."""
        job_id = str(uuid.uuid4())
        data: dict[str, Any] = {
            "actionConfiguration": {"configuration": dict(configuration)},
            "inputArtifacts": copy.deepcopy(input_artifacts or []),
            "outputArtifacts": copy.deepcopy(output_artifacts or []),
            "artifactCredentials": dict(artifact_credentials or fake_credentials()),
        }
        if continuation_token is not None:
            data["continuationToken"] = continuation_token
        if encryption_key is not None:
            data["encryptionKey"] = dict(encryption_key)
        event = {"CodePipeline.job": {"id": job_id, "accountId": self.account_id, "data": data}}
        details_data = copy.deepcopy(data)
        details_data["actionTypeId"] = dict(ACTION_TYPE_ID)
        execution_id = pipeline_execution_id or str(uuid.uuid4())
        details_data["pipelineContext"] = {
            "pipelineName": pipeline_name,
            "stage": {"name": stage_name},
            "action": {
                "name": action_name,
                "actionExecutionId": action_execution_id or str(uuid.uuid4()),
            },
            "pipelineArn": f"arn:aws:codepipeline:{self.region}:{self.account_id}:{pipeline_name}",
            "pipelineExecutionId": execution_id,
        }
        details = {"id": job_id, "accountId": self.account_id, "data": details_data}
        errors = wire.validate_shape("JobDetails", details, "jobDetails")
        if errors:
            raise ValueError("CodePipeline would not create this job: " + "; ".join(errors))
        started_by = dict(trigger if trigger is not None else DEFAULT_TRIGGER)
        errors = wire.validate_shape("ExecutionTrigger", started_by, "trigger")
        if errors:
            raise ValueError("CodePipeline would not start this execution: " + "; ".join(errors))
        record = JobRecord(job_id, event, details, created_at=self.clock.now())
        with self._lock:
            self._jobs[job_id] = record
            self._executions.setdefault((pipeline_name, execution_id), started_by)
        return record

    def declare_execution(
        self,
        pipeline_name: str,
        execution_id: str,
        *,
        mode: str = "SUPERSEDED",
        variables: dict[str, str] | None = None,
    ) -> None:
        """The execution's mode and pipeline-level variables, as GetPipelineExecution reports
        them (`executionMode`, `variables` with their resolved values)."""
        with self._lock:
            self._declared[(pipeline_name, execution_id)] = (mode, dict(variables or {}))

    def job(self, job_id: str) -> JobRecord:
        with self._lock:
            return self._jobs[job_id]

    @property
    def jobs(self) -> list[JobRecord]:
        """All jobs, in creation order."""
        with self._lock:
            return list(self._jobs.values())

    @property
    def requests(self) -> list[str]:
        """Every request body received, as text, in order (they may hold secrets)."""
        with self._lock:
            return list(self._requests)

    def expire_job(self, job_id: str) -> JobRecord:
        """CodePipeline gave up on the job: later answers get InvalidJobStateException.

        A job that already succeeded or failed keeps its status.
        """
        with self._lock:
            record = self._jobs[job_id]
            if record.status in ("Created", "InProgress"):
                record.status = "TimedOut"
            return record

    # -- requests ----------------------------------------------------------------------

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        """One HTTP request -> (status, JSON body). `headers` keys are lower case."""
        text = body.decode("utf-8", errors="replace")
        with self._lock:
            self._requests.append(text)
        operation = ""
        params: dict[str, Any] = {}
        try:
            operation, params = self._parse(path, headers, text)
            self._inject_fault(operation)
            return 200, self._dispatch(operation, params)
        except ServiceError as error:
            job_id = params.get("jobId")
            with self._lock:
                if operation in ANSWERS and isinstance(job_id, str) and job_id in self._jobs:
                    self._jobs[job_id].rejected.append((operation, error.code))
            return error.status, {"__type": error.code, "message": error.message}
        except Exception:  # an emulator bug: answer like the service would, keep serving
            logger.exception("emulator failed on %s", operation or "a request")
            return 500, {"__type": "InternalFailure", "message": "internal emulator error"}

    def _parse(self, path: str, headers: dict[str, str], text: str) -> tuple[str, dict[str, Any]]:
        if path.split("?", 1)[0] != "/":
            raise ServiceError(
                "UnknownOperationException",
                "only the JSON 1.1 protocol (POST /) is served; this client used another one",
                404,
            )
        if not headers.get("authorization"):
            raise ServiceError(
                "MissingAuthenticationTokenException", "Missing Authentication Token"
            )
        target = headers.get("x-amz-target", "")
        operation = target.removeprefix(TARGET_PREFIX)
        if not target.startswith(TARGET_PREFIX) or operation not in OPERATIONS:
            raise ServiceError("UnknownOperationException", "the operation is not supported")
        if headers.get("content-type", "").split(";")[0].strip() != CONTENT_TYPE:
            raise ServiceError("SerializationException", f"expected content type {CONTENT_TYPE}")
        try:
            params = json.loads(text) if text.strip() else {}
        except ValueError:
            raise ServiceError("SerializationException", "the body is not valid JSON") from None
        if not isinstance(params, dict):
            raise ServiceError("SerializationException", "the body must be a JSON object")
        return operation, params

    def _inject_fault(self, operation: str) -> None:
        with self._lock:
            name = self._script.popleft() if self._script else self._draw()
            if name == "server_error":
                name = "internal_failure" if self._rng.random() < 0.5 else "service_unavailable"
            if name == "none" or (name == "invalid_job_state" and operation not in ANSWERS):
                return  # GetJobDetails cannot fail that way
            if name == "job_not_found" and operation == "GetPipelineExecution":
                return  # no job in that request
            kind = "server_error" if name in ("internal_failure", "service_unavailable") else name
            self.faults_injected[kind] += 1
        code, message, status = _INJECTED[name]
        raise ServiceError(code, message + " (injected)", status)

    def _draw(self) -> str:
        roll = self._rng.random()
        for kind in FAULT_KINDS:
            chance = float(getattr(self.faults, kind))
            if roll < chance:
                return kind
            roll -= chance
        return "none"

    def _dispatch(self, operation: str, params: dict[str, Any]) -> dict[str, Any]:
        errors = wire.validate_input(operation, params)
        if errors:
            noun = "error" if len(errors) == 1 else "errors"
            raise ServiceError(
                "ValidationException",
                f"{len(errors)} validation {noun} detected: " + "; ".join(errors),
            )
        if operation == "GetJobDetails":
            return self._get_job_details(params["jobId"])
        if operation == "GetPipelineExecution":
            return self._get_pipeline_execution(
                params["pipelineName"], params["pipelineExecutionId"]
            )
        if operation == "PutJobSuccessResult" and "outputVariables" in params:
            if "continuationToken" in params:
                raise ServiceError(
                    "ValidationException",
                    "outputVariables can only be sent with a result that has no continuationToken",
                )
            size = sum(
                len(k.encode()) + len(v.encode()) for k, v in params["outputVariables"].items()
            )
            if size > OUTPUT_VARIABLES_MAX_BYTES:
                raise ServiceError(
                    "OutputVariablesSizeExceededException",
                    f"output variables take {size} bytes > {OUTPUT_VARIABLES_MAX_BYTES}",
                )
        with self._lock:
            record = self._known(params["jobId"])
            if record.status != "Created":
                raise ServiceError(
                    "InvalidJobStateException", f"job {record.job_id} is {record.status}"
                )
            # answer first: a reader that sees the status change (without the lock) sees it
            record.answer = {"operation": operation, "params": copy.deepcopy(params)}
            record.answered_at = self.clock.now()
            if operation == "PutJobFailureResult":
                record.status = "Failed"
            elif "continuationToken" in params:
                record.status = "InProgress"
            else:
                record.status = "Succeeded"
        return {}

    def _get_job_details(self, job_id: str) -> dict[str, Any]:
        with self._lock:
            response = {"jobDetails": copy.deepcopy(self._known(job_id).details)}
        errors = wire.validate_output("GetJobDetails", response)
        if errors:  # paths only: the details hold credentials
            logger.error("emulator built an invalid GetJobDetails response: %s", errors)
            raise ServiceError("InternalFailure", "the emulator built an invalid response", 500)
        return response

    def _get_pipeline_execution(self, name: str, execution_id: str) -> dict[str, Any]:
        with self._lock:
            trigger = self._executions.get((name, execution_id))
            known = any(pipeline == name for pipeline, _ in self._executions)
            mode, variables = self._declared.get((name, execution_id), ("SUPERSEDED", {}))
        if trigger is None:
            if not known:
                raise ServiceError("PipelineNotFoundException", f"pipeline {name} does not exist")
            raise ServiceError(
                "PipelineExecutionNotFoundException",
                f"execution {execution_id} of pipeline {name} does not exist",
            )
        response = {
            "pipelineExecution": {
                "pipelineName": name,
                "pipelineVersion": 1,
                "pipelineExecutionId": execution_id,
                "status": "InProgress",
                "artifactRevisions": [],
                "trigger": dict(trigger),
                "executionMode": mode,
            }
        }
        if variables:
            response["pipelineExecution"]["variables"] = [
                {"name": name, "resolvedValue": value} for name, value in variables.items()
            ]
        errors = wire.validate_output("GetPipelineExecution", response)
        if errors:
            logger.error("emulator built an invalid GetPipelineExecution response: %s", errors)
            raise ServiceError("InternalFailure", "the emulator built an invalid response", 500)
        return response

    def _known(self, job_id: str) -> JobRecord:
        record = self._jobs.get(job_id)
        if record is None:
            raise ServiceError("JobNotFoundException", f"job {job_id} does not exist")
        return record


class _Server(ThreadingHTTPServer):
    """Joins its request threads on close, so a stopped emulator leaves nothing running."""

    daemon_threads = False
    block_on_close = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        emulator: CodePipelineEmulator,
    ) -> None:
        self.emulator = emulator
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.0: one request per connection, so no idle keep-alive thread outlives a test."""

    protocol_version = "HTTP/1.0"
    disable_nagle_algorithm = True  # else each small answer waits ~40 ms for a delayed ACK
    timeout = 30  # a client that connects and never sends cannot hold stop() forever
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        headers = {key.lower(): value for key, value in self.headers.items()}
        status, payload = self.server.emulator.handle(self.path, headers, body)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        # The request line only (method, path, status), never headers or bodies.
        logger.debug("emulator: " + format, *args)
