"""The Lambda entry point: `orchestrator.handler.lambda_handler(event, context)`.

Everything long-lived (settings, clients, the pynamodb model) is built once per process
on the first job and reused while the function stays warm. Every job whose id can be
read gets exactly one answer; only when CodePipeline itself cannot be reached does the
invocation raise, so that Lambda's asynchronous retry delivers the job again.
"""

from __future__ import annotations

import gc
import logging
import sys
import time
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Protocol

from orchestrator import _log
from orchestrator.event import Job, job_id_of
from orchestrator.exceptions import FailureType, ReporterUnavailable
from orchestrator.metrics import Metrics
from orchestrator.model import Answer, AnswerKind
from orchestrator.tick import Outcome, Progress, Ticker, monotonic_deadline

if TYPE_CHECKING:
    from orchestrator.clock import Clock
    from orchestrator.governance import Governance
    from orchestrator.settings import Settings

log = logging.getLogger("orchestrator")


class LambdaContext(Protocol):
    """The parts of Lambda's context object the handler uses."""

    aws_request_id: str

    def get_remaining_time_in_millis(self) -> int: ...


@dataclass(frozen=True)
class App:
    """What a warm function keeps between invocations."""

    ticker: Ticker
    reporter: Any
    safety_margin: float
    metrics: Metrics


_app: App | None = None


def build_app(
    clock: Clock | None = None,
    output: IO[str] | None = None,
    settings: Settings | None = None,
) -> App:
    """Build the ticker with its production adapters, from `settings` (default: read from
    the environment, once, here).

    `clock`, `output` (where JSON logs and metrics go) and `settings` are for the local
    runner; Lambda uses the real clock, stdout and its environment.
    """
    import boto3
    import botocore.session

    from orchestrator.approval import runtime
    from orchestrator.artifacts import ArtifactContext
    from orchestrator.clock import SystemClock
    from orchestrator.job_context import CompositeJobContext
    from orchestrator.pipeline_context import PipelineContext
    from orchestrator.reporter import CodePipelineReporter, codepipeline_client
    from orchestrator.services import Services
    from orchestrator.settings import Settings
    from orchestrator.sources import DefinitionSources
    from orchestrator.store.dynamodb import DynamoRunStore, bind_model
    from orchestrator.tick import TickConfig

    settings = settings or Settings()  # fields come from the environment
    _log.configure(settings.log_level, output)
    # Where approval links point and what signs them: installed for the approval step.
    runtime.install(runtime.Runtime(settings.approval_url, settings.approval_secret_arn))
    # One botocore session for every boto3 client, whose parsed data pynamodb's shares.
    core = botocore.session.get_session()
    boto3.setup_default_session(botocore_session=core)
    codepipeline = codepipeline_client(settings.region)
    reporter = CodePipelineReporter(codepipeline)
    model = bind_model(settings.table_name, settings.region, loader_from=core)
    store = DynamoRunStore(model)
    config = TickConfig(
        idle_check_interval=settings.idle_check_interval_seconds,
        ttl_days=settings.ttl_days,
        reserve_seconds=settings.reserve_seconds,
    )

    def governance() -> Governance:  # imported and built only for a gate that asks
        from orchestrator.governance import Governance
        from orchestrator.store.governance import DynamoGovernanceStore

        return Governance(DynamoGovernanceStore(model))

    services = Services(region=settings.region, governance=governance)
    artifacts = ArtifactContext(region=settings.region)
    job_context = CompositeJobContext(
        [
            # one part per source of run context; each reads only what the definition uses
            PipelineContext(codepipeline, region=settings.region),
            artifacts,
        ]
    )
    sources = DefinitionSources(services, artifacts)
    ticker = Ticker(store, reporter, clock or SystemClock(), config, services, job_context, sources)
    metrics = Metrics(settings.metrics_namespace, output or sys.stdout)
    return App(ticker, reporter, settings.safety_margin_seconds, metrics)


def _cold_start() -> App:
    """build_app() with the garbage collector paused, then frozen out of its reach.

    A cold start loads botocore's endpoint data and service models: hundreds of thousands
    of objects that live as long as the process. A full collection in the middle of that
    walks them all, frees nothing, and costs ~20 ms; once frozen they are never walked again.
    """
    gc.disable()
    try:
        return build_app()
    finally:
        gc.freeze()
        gc.enable()


def use(app: App | None) -> None:
    """Replace the warm state: None forgets it (the environment changed), an App installs it."""
    global _app  # noqa: PLW0603 - the one per-process cache of a Lambda function
    _app = app


def lambda_handler(event: Any, context: LambdaContext) -> dict[str, Any]:
    """Advance the job's gate one tick and answer CodePipeline."""
    global _app  # noqa: PLW0603
    job_id = job_id_of(event)
    if job_id is None:
        log.error("not a CodePipeline job event; nothing to answer")
        return {"answered": False}
    bound = _log.bind(job_id=job_id, request_id=str(getattr(context, "aws_request_id", "")))
    started = time.monotonic()
    try:
        if _app is None:
            _app = _cold_start()
        remaining = context.get_remaining_time_in_millis() / 1000
        margin = min(_app.safety_margin, remaining * 0.25)
        time_left = monotonic_deadline(remaining - margin)
        try:
            job = Job.from_event(event)
        except ValueError as exc:
            return _answer_directly(_app, job_id, str(exc), FailureType.JOB_FAILED)
        outcome: Outcome = _app.ticker.handle(job, time_left)
        _count(_app, started, outcome.answer, outcome.progress is Progress.DEFERRED)
        return {
            "answered": True,
            "answer": outcome.answer.kind.value,
            "delivery": outcome.delivery.value,
        }
    except ReporterUnavailable:
        log.exception("could not answer the job; Lambda will deliver it again")
        if _app is not None:
            _app.metrics.emit({"Ticks": 1, "AnswersNotSent": 1})
        raise
    except Exception as exc:
        log.exception("internal error")
        if _app is None:
            raise  # no reporter without settings; Lambda's retry and on-failure queue show it
        message = (
            f"internal error in the orchestrator ({type(exc).__name__}); "
            f"see the function's logs for request {getattr(context, 'aws_request_id', '')}"
        )
        return _answer_directly(_app, job_id, message, FailureType.JOB_FAILED)
    finally:
        _log.reset(bound)


def _answer_directly(app: App, job_id: str, message: str, kind: FailureType) -> dict[str, Any]:
    answer = Answer(kind=AnswerKind.FAILED, run_id=job_id, summary=message, failure_type=kind)
    delivery = app.reporter.report(job_id, answer)
    _count(app, None, answer, deferred=False)
    return {"answered": True, "answer": answer.kind.value, "delivery": delivery.value}


def _count(app: App, started: float | None, answer: Answer, deferred: bool) -> None:
    values: dict[str, float] = {
        "Ticks": 1,
        "GatesSucceeded": int(answer.kind is AnswerKind.SUCCEEDED),
        "GatesFailed": int(answer.kind is AnswerKind.FAILED),
        "StoreUnavailable": int(deferred),
    }
    if started is not None:
        values["TickMilliseconds"] = round((time.monotonic() - started) * 1000, 3)
    properties = {"RunId": answer.run_id}
    if answer.failure_type is not None:
        properties["FailureType"] = answer.failure_type.value
    app.metrics.emit(values, properties)
