"""CodePipeline on a laptop: run gates and pipelines through the emulator and a local table.

`LocalStack` picks the state store (an endpoint given by the user, else DynamoDB Local with
its data under `.orchestrator/`, else moto's in-process DynamoDB), starts the CodePipeline
emulator, and points the handler at both through the standard `AWS_ENDPOINT_URL_*`
variables. `rehearse()` runs every Lambda invoke action of a pipeline (a bare gate
definition is a one-action pipeline) and reports what happens as `Event`s.

With `approvals=True`, `rehearse()` also serves approvals on loopback (`serve_approvals`):
a random signing key in moto's Secrets Manager, oidc-provider-mock as the OpenID Connect
issuer (its authorize page lets the person choose who they sign in as; every `email:`
approver named in the pipeline is offered, with a verified e-mail), and the approval
endpoint. Chat and SNS are not reachable offline, so when an approval step starts waiting
the runner mints the links its notification carries (same key, same expiry) and reports
them as an `approval_links` event.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from orchestrator import _log, handler
from orchestrator.clock import VirtualClock
from orchestrator.local.driver import run_action
from orchestrator.local.emulator import CodePipelineEmulator
from orchestrator.local.pipeline import (
    PIPELINE_VARIABLES,
    Action,
    Pipeline,
    PipelineError,
    pipeline_variables,
    resolve_variables,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from orchestrator.governance import Governance
    from orchestrator.settings import Settings

DEFAULT_TABLE = "orchestrator-runs"
DEFAULT_DATA_DIR = Path(".orchestrator")
_LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
LOCAL_CLIENT_ID = "local"
"""The approval page's client id at the mock issuer. It takes any client and any secret but
refuses public clients at its token endpoint (authlib's default methods), so the page gets
a random secret, kept in the same local Secrets Manager, and authenticates as in AWS."""
_EMAIL_APPROVER = re.compile(r"email:([A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+[A-Za-z0-9])")

Event = dict[str, Any]
"""A JSON-ready progress event: `{"event": name, ...}`."""


@dataclass(frozen=True)
class StoreInfo:
    """Which DynamoDB the run uses, said out loud."""

    kind: Literal["endpoint", "dynamodb-local", "in-process"]
    endpoint_url: str | None
    persistent: bool
    description: str


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


class LocalStack:
    """The local world: a DynamoDB, a runs table, and (for `run`) the CodePipeline emulator."""

    def __init__(
        self,
        *,
        table_name: str = DEFAULT_TABLE,
        dynamodb_endpoint: str | None = None,
        data_dir: Path = DEFAULT_DATA_DIR,
        with_codepipeline: bool = True,
        clock: VirtualClock | None = None,
        region: str | None = None,
        approvals: bool = False,
    ) -> None:
        self.table_name = table_name
        self.approvals = approvals
        self.approval_url: str | None = None
        self.approval_secret_arn: str | None = None
        self.oidc_client_secret_arn: str | None = None
        self.oidc_issuer: str | None = None
        self._approval_key: Any = None
        self._links_shown: set[tuple[str, str]] = set()
        self.data_dir = data_dir
        self.clock = clock or VirtualClock(1.0)
        self.region = (
            region
            or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
            or "us-east-1"
        )
        self._endpoint = dynamodb_endpoint or os.environ.get("AWS_ENDPOINT_URL_DYNAMODB")
        self._with_codepipeline = with_codepipeline
        self._saved_env: dict[str, str | None] = {}
        self._stops: list[Callable[[], None]] = []
        self.store_info: StoreInfo | None = None
        self.emulator: CodePipelineEmulator | None = None

    def __enter__(self) -> LocalStack:
        try:
            self._log_to_file()
            self.store_info = self._start_store()
            if self._with_codepipeline:
                self.emulator = CodePipelineEmulator(self.clock, region=self.region)
                self._set_env("AWS_ENDPOINT_URL_CODEPIPELINE", self.emulator.start())
                self._stops.append(self.emulator.stop)
                handler.use(None)  # the function runs here: built afresh for this stack
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        # The operator commands (no emulator) never run the function: a warm one in this
        # process (a test's rig) keeps its clock and clients.
        if self._with_codepipeline:
            handler.use(None)
        for stop in reversed(self._stops):
            stop()
        self._stops.clear()
        for name, value in self._saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_env.clear()

    def _log_to_file(self) -> None:
        """The function's JSON logs go to a file, as CloudWatch would keep them, not the screen."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / "function.log"
        stream = self.log_path.open("a", encoding="utf-8")
        self.log_stream = stream
        _log.unconfigure()
        _log.configure(os.environ.get("ORCHESTRATOR_LOG_LEVEL", "INFO"), stream)

        def close() -> None:
            _log.unconfigure()
            stream.close()

        self._stops.append(close)

    def _set_env(self, name: str, value: str) -> None:
        self._saved_env.setdefault(name, os.environ.get(name))
        os.environ[name] = value

    def _start_store(self) -> StoreInfo:
        if self._endpoint:
            self._set_env("AWS_ENDPOINT_URL_DYNAMODB", self._endpoint)
            if is_loopback(self._endpoint):
                self._local_credentials()
                self._ensure_table()
            return StoreInfo("endpoint", self._endpoint, True, f"DynamoDB at {self._endpoint}")
        from orchestrator.local import dynamodb_local

        self._local_credentials()
        if dynamodb_local.java() is not None:
            # Deliberately not stopped with the stack: the data folder's server, shared by
            # later commands (recorded in <data>/dynamodb-local.json; `orchestrator local
            # stop` ends it).
            server = dynamodb_local.shared(self.data_dir)
            self._set_env("AWS_ENDPOINT_URL_DYNAMODB", server.endpoint_url)
            if self.table_name not in server.tables:  # a quarter second saved per command
                self._ensure_table()
                dynamodb_local.note_table(self.data_dir, server, self.table_name)
            where = self.data_dir / "dynamodb"
            return StoreInfo(
                "dynamodb-local",
                server.endpoint_url,
                True,
                f"DynamoDB Local (embedded, pid {server.pid}; data in {where})",
            )
        url = self._start_moto()
        self._set_env("AWS_ENDPOINT_URL_DYNAMODB", url)
        self._ensure_table()
        return StoreInfo(
            "in-process",
            url,
            False,
            "in-process DynamoDB emulator (moto; no Java found, nothing is kept)",
        )

    def _start_moto(self) -> str:
        """moto's server on a free loopback port, stopped with the stack; its URL."""
        from moto.server import ThreadedMotoServer

        from orchestrator.local.dynamodb_local import free_port

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # not a line per request
        port = free_port()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        self._stops.append(server.stop)
        return f"http://127.0.0.1:{port}"

    def _local_credentials(self) -> None:
        if not os.environ.get("AWS_ACCESS_KEY_ID"):
            for name, value in _LOCAL_CREDENTIALS.items():
                self._set_env(name, value)

    def _ensure_table(self) -> None:
        import boto3

        from orchestrator.local.schema import create_table

        create_table(boto3.client("dynamodb", region_name=self.region), self.table_name)

    def serve_artifacts(self, artifacts: Mapping[str, bytes]) -> dict[str, dict[str, Any]]:
        """Put input artifacts (zips) into a local S3 (moto, started here) where the handler
        reads them with the job's credentials; their descriptions for the job event."""
        if not artifacts:
            return {}
        import hashlib

        import boto3

        url = self._start_moto()
        self._set_env("AWS_ENDPOINT_URL_S3", url)
        self._local_credentials()
        s3 = boto3.client("s3", region_name=self.region, endpoint_url=url)
        bucket = "orchestrator-local-artifacts"
        if self.region == "us-east-1":  # the one region that refuses a LocationConstraint
            s3.create_bucket(Bucket=bucket)
        else:
            where: Any = {"LocationConstraint": self.region}
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration=where)
        served: dict[str, dict[str, Any]] = {}
        for name, data in artifacts.items():
            key = f"input/{name}.zip"
            s3.put_object(Bucket=bucket, Key=key, Body=data)
            served[name] = {
                "name": name,
                "revision": "local-" + hashlib.sha256(data).hexdigest()[:12],
                "location": {"type": "S3", "s3Location": {"bucketName": bucket, "objectKey": key}},
            }
        return served

    def serve_approvals(self, people: Iterable[str] = ()) -> None:
        """Secrets Manager (moto) holding a random signing key, oidc-provider-mock offering
        `people` (e-mail addresses, verified), and the approval endpoint, all on loopback;
        `settings()` then points the function and the endpoint at them."""
        import warnings

        import boto3
        from pydantic import SecretStr

        from orchestrator.approval import web
        from orchestrator.local.endpoint import EndpointServer, plain_http

        url = self._start_moto()
        self._set_env("AWS_ENDPOINT_URL_SECRETS_MANAGER", url)
        self._local_credentials()
        key = secrets.token_urlsafe(48)
        client = boto3.client("secretsmanager", region_name=self.region, endpoint_url=url)
        created = client.create_secret(Name="orchestrator-local-approval-key", SecretString=key)
        self._approval_key = SecretStr(key)
        self.approval_secret_arn = created["ARN"]
        client_secret = client.create_secret(
            Name="orchestrator-local-oidc-client", SecretString=secrets.token_urlsafe(32)
        )
        self.oidc_client_secret_arn = client_secret["ARN"]
        with warnings.catch_warnings():  # its imports announce authlib's deprecations
            import authlib.deprecate  # noqa: F401 - adds an "always" filter, beneath ours

            warnings.simplefilter("ignore")
            from oidc_provider_mock import User, run_server_in_thread
        # Raised in its server thread, on every token: noise for the person at the console.
        warnings.filterwarnings("ignore", message="get_jwt_config", category=DeprecationWarning)
        users = [
            User(sub=email, claims={"email": email, "email_verified": True})
            for email in dict.fromkeys(people)
        ]
        provider = run_server_in_thread(user_claims=users)
        server = provider.__enter__()
        self._stops.append(lambda: provider.__exit__(None, None, None))
        self.oidc_issuer = f"http://localhost:{server.server_port}"
        endpoint = EndpointServer(plain_http(web.handler))
        self._stops.append(endpoint.close)
        self.approval_url = endpoint.url
        web.use(web.build(self.settings()))
        self._stops.append(lambda: web.use(None))

    def approval_links(self, run_id: str) -> list[Event]:
        """For each approval step of the run that waits and was not shown yet: the links its
        notification carries (an approve and a reject link per exact approver)."""
        from orchestrator.approval import links
        from orchestrator.approval.principals import is_exact, normalize

        if self._approval_key is None or self.approval_url is None:
            return []
        record = self.store().load(run_id)
        if record is None:
            return []
        found: list[Event] = []
        for step in record.state.steps:
            memo = step.memo
            waiting = step.kind == "approval" and step.finished_at is None and "expires" in memo
            if not waiting or (run_id, step.name) in self._links_shown:
                continue
            self._links_shown.add((run_id, step.name))
            approvers = [str(p) for p in memo.get("approvers", [])]
            exact = [normalize(p) for p in approvers if is_exact(p)]
            minted = links.mint(
                self._approval_key,
                self.approval_url,
                run_id,
                step.name,
                exact,
                float(memo["expires"]),
            )
            found.append(
                {
                    "event": "approval_links",
                    "run_id": run_id,
                    "step": step.name,
                    "message": memo.get("message", ""),
                    "approvers": approvers,
                    "required": memo.get("required", 1),
                    "links": [
                        {"principal": m.principal, "decision": m.decision, "url": m.url}
                        for m in minted
                    ],
                    "issuer": self.oidc_issuer,
                }
            )
        return found

    def acted_as(self, run_id: str) -> list[Event]:
        """For each step of the run that acted as another account's role: the role, its
        region and the role session (what the target account's CloudTrail shows)."""
        try:
            record = self.store().load(run_id)
        except Exception:  # a rehearsal's report must not fail on its own store
            return []
        if record is None:
            return []
        found: list[Event] = []
        for step in (*record.state.steps, *record.state.guards, *record.state.hooks):
            acted = step.memo.get("acted_as")
            if isinstance(acted, dict) and acted.get("role_arn"):
                found.append(
                    {
                        "event": "acted_as",
                        "run_id": run_id,
                        "step": step.name,
                        "role_arn": str(acted["role_arn"]),
                        "region": acted.get("region"),
                        "session": acted.get("session"),
                    }
                )
        return found

    def settings(self) -> Settings:
        """The function's settings in this stack: its table and region, passed to the app
        (nothing is set in the environment for it), the rest from the environment; with
        approvals served, the endpoint, the signing key and the mock issuer."""
        from orchestrator.settings import Settings

        served: dict[str, Any] = {}
        if self.approval_url is not None:
            served = {
                "approval_url": self.approval_url,
                "approval_secret_arn": self.approval_secret_arn,
                "oidc_issuer": self.oidc_issuer,
                "oidc_client_id": LOCAL_CLIENT_ID,
                "oidc_client_secret_arn": self.oidc_client_secret_arn,
            }
        return Settings(table_name=self.table_name, region=self.region, **served)

    def store(self) -> Any:
        """A RunStore on the chosen table (for the operator commands)."""
        from orchestrator.store.dynamodb import DynamoRunStore, bind_model

        return DynamoRunStore(bind_model(self.table_name, self.region))

    def governance(self) -> Governance:
        """Freezes and locks in the chosen table (for the operator commands)."""
        from orchestrator.governance import Governance
        from orchestrator.store.dynamodb import bind_model
        from orchestrator.store.governance import DynamoGovernanceStore

        return Governance(DynamoGovernanceStore(bind_model(self.table_name, self.region)))


@dataclass
class RehearsalOptions:
    """How CodePipeline behaves in the rehearsal."""

    reinvoke_delay: float = 2.0
    lambda_timeout: float = 900.0
    duplicates: Literal["none", "sequential", "concurrent"] = "none"
    concurrency: int = 2
    artifacts: dict[str, bytes] = field(default_factory=dict)
    """Input artifacts by name (zips), given to the actions that declare them."""
    reply_timeout: float = 1200.0
    action_timeout: float = 86400.0
    pipeline_execution_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    retry_failed: bool = False
    """A failed action is retried once ("Retry failed actions": same execution, new job)."""
    variables: dict[str, str] = field(default_factory=dict)
    """Pipeline-level variables given at the start, over the declared defaults."""
    newer_execution_at: float | None = None
    """Seconds (pipeline time) after the start when a newer execution of the pipeline starts
    and reaches the stage this one is in: what its execution mode makes of it is shown."""


@dataclass
class Rehearsal:
    """The outcome: `status` Succeeded/Failed, per-action results, all output variables."""

    status: Literal["Succeeded", "Failed"]
    variables: dict[str, dict[str, str]]
    failure_type: str | None = None
    failure_message: str | None = None
    run_ids: list[str] = field(default_factory=list)


def rehearse(
    stack: LocalStack,
    pipeline: Pipeline,
    options: RehearsalOptions,
    emit: Callable[[Event], None],
) -> Rehearsal:
    """Run the pipeline's actions in order; Lambda invoke actions go through the emulator."""
    assert stack.emulator is not None
    clock = stack.clock
    if stack.approvals:
        stack.serve_approvals(_email_approvers(pipeline, options.artifacts))
    handler.use(handler.build_app(clock, stack.log_stream, stack.settings()))
    variables: dict[str, dict[str, str]] = {
        "codepipeline": {"PipelineExecutionId": options.pipeline_execution_id}
    }
    run_ids: list[str] = []
    try:
        values = pipeline_variables(pipeline, options.variables)
    except PipelineError as exc:
        return Rehearsal("Failed", variables, "ConfigurationError", str(exc), run_ids)
    if pipeline.variables:
        variables[PIPELINE_VARIABLES] = values
    stack.emulator.declare_execution(
        pipeline.name,
        options.pipeline_execution_id,
        mode=pipeline.execution_mode,
        variables=values,
    )
    if values or pipeline.execution_mode != "SUPERSEDED" or options.newer_execution_at is not None:
        emit(
            {
                "event": "pipeline",
                "name": pipeline.name,
                "execution_id": options.pipeline_execution_id,
                "execution_mode": pipeline.execution_mode,
                "variables": values,
            }
        )
    newer = NewerExecution(pipeline, options, clock.now, emit)
    result = _rehearse_actions(stack, pipeline, options, emit, variables, run_ids, newer)
    newer.left(newer.stage)  # the execution ends: its stage unlocks
    return result


def _rehearse_actions(
    stack: LocalStack,
    pipeline: Pipeline,
    options: RehearsalOptions,
    emit: Callable[[Event], None],
    variables: dict[str, dict[str, str]],
    run_ids: list[str],
    newer: NewerExecution,
) -> Rehearsal:
    served = stack.serve_artifacts(options.artifacts)
    for action in pipeline.actions:
        newer.enter(action.stage)
        where = {"stage": action.stage, "action": action.name}
        if not action.is_lambda_invoke:
            emit(
                {
                    "event": "action_skipped",
                    **where,
                    "type": action.kind,
                    "reason": "only Lambda invoke actions run locally",
                }
            )
            continue
        try:
            configuration = resolve_variables(action.configuration, variables)
        except PipelineError as exc:
            emit(
                {
                    "event": "action_finished",
                    **where,
                    "status": "Failed",
                    "failure_type": "ConfigurationError",
                    "failure_message": str(exc),
                }
            )
            return Rehearsal("Failed", variables, "ConfigurationError", str(exc), run_ids)
        emit(
            {
                "event": "action_started",
                **where,
                "namespace": action.namespace,
                "user_parameters": configuration.get("UserParameters", ""),
            }
        )
        inputs = [served[name] for name in action.input_artifacts if name in served]
        result = _run_one(stack, pipeline, action, configuration, options, emit, inputs, newer)
        run_ids.append(result.jobs[0].job_id)
        if result.status == "Failed" and options.retry_failed:
            emit({"event": "action_retried", **where, "reason": result.failure_message or ""})
            result = _run_one(stack, pipeline, action, configuration, options, emit, inputs)
        if result.status == "Failed":
            return Rehearsal(
                "Failed", variables, result.failure_type, result.failure_message, run_ids
            )
        if action.namespace:
            variables[action.namespace] = dict(result.output_variables)
    return Rehearsal("Succeeded", variables, run_ids=run_ids)


def _run_one(
    stack: LocalStack,
    pipeline: Pipeline,
    action: Action,
    configuration: dict[str, str],
    options: RehearsalOptions,
    emit: Callable[[Event], None],
    input_artifacts: list[dict[str, Any]],
    newer: NewerExecution | None = None,
) -> Any:
    assert stack.emulator is not None
    clock = stack.clock
    started = clock.now()
    rounds = 0
    where = {"stage": action.stage, "action": action.name}

    def on_job(job: Any) -> None:
        nonlocal rounds
        rounds += 1
        event = _round_event(job, rounds, clock.now() - started, where)
        emit(event)
        if newer is not None:
            newer.check()
        if stack.approvals and event["status"] == "InProgress" and event["run_id"]:
            for shown in stack.approval_links(str(event["run_id"])):
                emit({**shown, **where})

    result = run_action(
        stack.emulator,
        handler.lambda_handler,
        configuration,
        clock=clock,
        reinvoke_delay=options.reinvoke_delay,
        lambda_timeout=options.lambda_timeout,
        duplicates=options.duplicates,
        concurrency=options.concurrency,
        reply_timeout=options.reply_timeout,
        action_timeout=options.action_timeout,
        on_job=on_job,
        pipeline_name=pipeline.name,
        stage_name=action.stage,
        action_name=action.name,
        pipeline_execution_id=options.pipeline_execution_id,
        output_artifacts=[],
        input_artifacts=input_artifacts,
    )
    final = result.jobs[-1]
    if final.answer is not None:
        on_job(final)
    for acted in stack.acted_as(result.jobs[0].job_id):
        emit({**acted, **where})
    emit(
        {
            "event": "action_finished",
            **where,
            "status": result.status,
            "run_id": result.jobs[0].job_id,
            "rounds": result.rounds,
            "elapsed": round(result.ended_at - result.started_at, 3),
            "outputs": result.output_variables,
            "failure_type": result.failure_type,
            "failure_message": result.failure_message,
        }
    )
    return result


class NewerExecution:
    """A newer execution of the pipeline, started `options.newer_execution_at` after this
    one and reaching the stage this one is in (the rehearsal runs one execution; this says
    what CodePipeline does with the other). In every mode the running gate runs on:
    CodePipeline never interrupts an action in progress for a newer execution.

    SUPERSEDED  a stage holds one execution at a time: the newer one waits at the stage's
                entrance and enters when this one leaves; while it waits, a yet newer one
                would supersede it (waiting executions are superseded, running ones never)
    QUEUED      the same lock, but waiting executions keep their turn: each one enters in order
    PARALLEL    no stage lock: it runs at once, with its own run of every gate, alongside
                this one (steps that must not overlap in an environment take a `lock`)
    """

    def __init__(
        self,
        pipeline: Pipeline,
        options: RehearsalOptions,
        now: Callable[[], float],
        emit: Callable[[Event], None],
    ) -> None:
        self.mode = pipeline.execution_mode
        self.at = options.newer_execution_at
        self.now = now
        self.started = now()
        self.emit = emit
        self.execution_id = str(uuid.uuid4())
        self.stage = ""
        self.waiting_at: str | None = None

    def enter(self, stage: str) -> None:
        """This execution enters `stage` (or stays in it)."""
        if stage != self.stage:
            self.left(self.stage)
            self.stage = stage
        self.check()

    def check(self) -> None:
        """Has the newer execution arrived (pipeline time)?"""
        if self.at is None or not self.stage or self.now() - self.started < self.at:
            return
        self.at = None  # it arrives once
        self.waiting_at = self.stage if self.mode != "PARALLEL" else None
        self.emit(
            {
                "event": "newer_execution",
                "phase": "arrived",
                "execution_id": self.execution_id,
                "mode": self.mode,
                "stage": self.stage,
                "elapsed": round(self.now() - self.started, 3),
                "effect": _ARRIVAL[self.mode].format(stage=self.stage),
            }
        )

    def left(self, stage: str) -> None:
        """This execution leaves `stage` (to the next one, or it ended): a newer execution
        waiting at its entrance enters."""
        if not stage or self.waiting_at != stage:
            return
        self.waiting_at = None
        self.emit(
            {
                "event": "newer_execution",
                "phase": "entered",
                "execution_id": self.execution_id,
                "mode": self.mode,
                "stage": stage,
                "elapsed": round(self.now() - self.started, 3),
                "effect": f"this execution left stage '{stage}': the newer one enters it",
            }
        )


_ARRIVAL = {
    "SUPERSEDED": (
        "stage '{stage}' holds this execution: the newer one waits at its entrance, and this "
        "gate runs on (CodePipeline never interrupts an action in progress). A yet newer "
        "execution would supersede the waiting one, not this one"
    ),
    "QUEUED": (
        "stage '{stage}' holds this execution: the newer one waits in line at its entrance "
        "and enters when this one leaves; this gate runs on, and no execution is skipped"
    ),
    "PARALLEL": (
        "no stage lock in PARALLEL mode: the newer execution runs at once, with its own run "
        "of this gate alongside this one (a `lock` step keeps them from overlapping)"
    ),
}


def _email_approvers(pipeline: Pipeline, artifacts: Mapping[str, bytes]) -> list[str]:
    """The e-mail addresses of the `email:` approvers named in the pipeline's gate
    definitions, inline in UserParameters or in input artifacts (zips); not patterns."""
    import io
    import zipfile

    texts = [a.configuration.get("UserParameters", "") for a in pipeline.actions]
    for data in artifacts.values():
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                for info in archive.infolist():
                    if info.file_size <= 1_000_000 and not info.is_dir():
                        texts.append(archive.read(info).decode("utf-8", errors="replace"))
        except zipfile.BadZipFile:
            continue
    return list(dict.fromkeys(m.lower() for t in texts for m in _EMAIL_APPROVER.findall(t)))


def _round_event(job: Any, number: int, elapsed: float, where: dict[str, str]) -> Event:
    answer = job.answer or {}
    params = answer.get("params", {})
    details = params.get("executionDetails") or {}
    failure = params.get("failureDetails") or {}
    in_progress = "continuationToken" in params
    status = (
        "InProgress"
        if in_progress
        else ("Failed" if answer.get("operation") == "PutJobFailureResult" else "Succeeded")
    )
    return {
        "event": "round",
        **where,
        "round": number,
        "job_id": job.job_id,
        "status": status,
        "summary": details.get("summary") or failure.get("message", ""),
        "percent": details.get("percentComplete"),
        "run_id": details.get("externalExecutionId") or failure.get("externalExecutionId"),
        "elapsed": round(elapsed, 3),
    }
