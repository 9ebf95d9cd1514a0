"""The reliability rig: the real handler and adapters, CodePipeline's job loop (the emulator
and `run_action`), DynamoDB Local behind the fault proxy, and the checks of the promise:

    every job gets exactly one accepted answer (the emulator's JobRecords: `answer` set,
        `rejected` holding only refusals of duplicate deliveries or injected faults)
    no run advances twice (the writes DynamoDB Local applied, seen by the proxy: at most one
        per job, versions 1..n, never a step back)
    no progress is lost (every gate ends with the right outputs, and the stored answer is
        the one CodePipeline accepted last)

A "process death" is `ProcessDied`, a BaseException raised by wrappers around the real
adapters at a chosen point of a tick; `Function` turns it into a function error (so the
driver's Lambda retry delivers the job again) and starts the next delivery cold.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import boto3

from orchestrator import handler
from orchestrator.exceptions import ReporterUnavailable
from orchestrator.local.driver import run_action
from orchestrator.metrics import Metrics
from orchestrator.model import Answer
from orchestrator.reporter import CodePipelineReporter, codepipeline_client
from orchestrator.services import Services
from orchestrator.store.dynamodb import DynamoRunStore, RunItem
from orchestrator.tick import TickConfig, Ticker
from tests.reliability.figures import FIGURES

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import IO

    from orchestrator.clock import VirtualClock
    from orchestrator.local.driver import ActionResult, LambdaContext
    from orchestrator.local.emulator import CodePipelineEmulator
    from orchestrator.model import Control, RunRecord, RunStatus, RunSummary
    from orchestrator.ports import Delivery, RunStore
    from tests.reliability.faultproxy import Exchange, FaultProxy

REGION = "us-east-1"
CrashPoint = Literal["after_load", "after_save", "after_report"]
CRASH_POINTS: tuple[CrashPoint, ...] = ("after_load", "after_save", "after_report")
DUPLICATE_REFUSAL = "InvalidJobStateException"
INJECTED_CODES = frozenset({"ThrottlingException", "InternalFailure", "ServiceUnavailable"})


class ProcessDied(BaseException):
    """The function's process died here; BaseException so no `except Exception` survives it."""


class FunctionError(Exception):
    """What Lambda records when an invocation ends with an error (or its process died)."""


# region wrappers of the real adapters


class CrashingStore:
    """A RunStore that may die right after a load or a save went through."""

    def __init__(self, inner: RunStore, reached: Callable[[CrashPoint], None]) -> None:
        self._inner, self._reached = inner, reached

    def load(self, run_id: str) -> RunRecord | None:
        record = self._inner.load(run_id)
        self._reached("after_load")
        return record

    def save(
        self, record: RunRecord, expected_version: int | None, *, clear_cancel: bool = False
    ) -> None:
        self._inner.save(record, expected_version, clear_cancel=clear_cancel)
        self._reached("after_save")

    def put_definition(self, key: str, document: str, expires_at: int) -> None:
        self._inner.put_definition(key, document, expires_at)

    def load_definition(self, key: str) -> str | None:
        return self._inner.load_definition(key)

    def request_cancel(self, run_id: str, who: str) -> bool:
        return self._inner.request_cancel(run_id, who)

    def record_decision(
        self, run_id: str, step: str, principal: str, decision: dict[str, Any]
    ) -> bool:
        return self._inner.record_decision(run_id, step, principal, decision)

    def claim(self, run_id: str, step: str, key: str, value: dict[str, Any]) -> bool:
        return self._inner.claim(run_id, step, key, value)

    def record_control(self, run_id: str, control: Control) -> bool:
        return self._inner.record_control(run_id, control)

    def link_execution(self, key: str, run_id: str, expires_at: int) -> str:
        return self._inner.link_execution(key, run_id, expires_at)

    def relink_execution(self, key: str, run_id: str, expires_at: int) -> None:
        self._inner.relink_execution(key, run_id, expires_at)

    def recent(self, status: RunStatus | None, limit: int) -> list[RunSummary]:
        return self._inner.recent(status, limit)


class CrashingReporter:
    """A Reporter that may die right after CodePipeline took the answer."""

    def __init__(self, inner: CodePipelineReporter, reached: Callable[[CrashPoint], None]) -> None:
        self._inner, self._reached = inner, reached

    def report(self, job_id: str, answer: Answer) -> Delivery:
        delivery = self._inner.report(job_id, answer)
        self._reached("after_report")
        return delivery


# endregion
# region the function


class Function:
    """The Lambda function as `run_action` invokes it: the real handler with an App built
    from the rig's adapters, warm between invocations until its process dies.

    `crashes[n]` is where the (n+1)-th delivery of each job dies (None: it does not).
    """

    def __init__(
        self,
        rig: Rig,
        *,
        crashes: list[CrashPoint | None] | None = None,
        reserve: float = 1.0,
        safety_margin: float = 10.0,
        idle_check_interval: float = 60.0,
    ) -> None:
        self.rig = rig
        self.config = TickConfig(idle_check_interval=idle_check_interval, reserve_seconds=reserve)
        self.crashes = list(crashes or [])
        self.safety_margin = safety_margin
        self.deliveries: Counter[str] = Counter()
        self.deaths: Counter[str] = Counter()
        self.cold_starts = 0
        self.escaped: list[str] = []
        self.returned_late: list[str] = []
        self._app: handler.App | None = None
        self._lock = threading.Lock()
        self._local = threading.local()

    def app(self) -> handler.App:
        with self._lock:
            if self._app is None:
                self.cold_starts += 1
                store: RunStore = self.rig.store()
                reporter: Any = self.rig.reporter()
                if self.crashes:
                    store = CrashingStore(store, self.reached)
                    reporter = CrashingReporter(reporter, self.reached)
                ticker = Ticker(
                    store,
                    reporter,
                    self.rig.clock,
                    self.config,
                    Services(region=REGION),
                )
                metrics = Metrics("Orchestrator", self.rig.sink)
                self._app = handler.App(ticker, reporter, self.safety_margin, metrics)
            handler.use(self._app)
            return self._app

    def __call__(self, event: dict[str, Any], context: LambdaContext) -> object:
        job_id = str(event["CodePipeline.job"]["id"])
        with self._lock:
            n = self.deliveries[job_id]
            self.deliveries[job_id] += 1
        self._local.die_at = self.crashes[n] if n < len(self.crashes) else None
        self.app()
        deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000
        try:
            return handler.lambda_handler(event, context)
        except ProcessDied as death:
            with self._lock:
                self._app = None  # the next delivery starts a new process
                self.rig.close_clients()
            raise FunctionError(f"process died {death.args[0]}") from None
        except Exception as exc:
            # Only a CodePipeline outage may escape (so that Lambda retries); count the rest.
            if not isinstance(exc, ReporterUnavailable):
                self.escaped.append(f"job {job_id}: {type(exc).__name__}")
            raise
        finally:
            if time.monotonic() > deadline:
                self.returned_late.append(job_id)

    def reached(self, point: CrashPoint) -> None:
        if getattr(self._local, "die_at", None) == point:
            self._local.die_at = None
            with self._lock:
                self.deaths[point] += 1
            raise ProcessDied(point)


# endregion
# region the applied writes


@dataclass(frozen=True)
class Write:
    """One tick's write that DynamoDB Local applied."""

    version: int
    job_id: str
    step_index: int
    status: str
    answer: str  # the Answer it recorded (JSON): what the job must be answered with


_SET = re.compile(r"(#\w+)\s*=\s*(:\w+)")


class WriteLog:
    """The tick writes DynamoDB Local applied to one table, per run, in order (a proxy
    observer: it sees writes whose responses the client never got)."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.runs: dict[str, list[Write]] = {}
        self._lock = threading.Lock()

    def __call__(self, exchange: Exchange) -> None:
        request = exchange.request
        if exchange.status != 200 or request.get("TableName") != self.table:
            return
        if exchange.operation == "PutItem":
            values: dict[str, Any] = dict(request.get("Item", {}))
        elif exchange.operation == "UpdateItem":
            names = request.get("ExpressionAttributeNames", {})
            bound = request.get("ExpressionAttributeValues", {})
            expression = str(request.get("UpdateExpression", "")).split("REMOVE")[0]
            values = {names[n]: bound[v] for n, v in _SET.findall(expression) if n in names}
            values["run_id"] = request.get("Key", {}).get("run_id")
        else:
            return
        if "last_job_id" not in values or "version" not in values:
            return  # a cancel or a decision, not a tick
        state = json.loads(values["state"]["S"])
        write = Write(
            version=int(values["version"]["N"]),
            job_id=values["last_job_id"]["S"],
            step_index=int(state.get("step_index", 0)),
            status=values["status"]["S"],
            answer=values["answer"]["S"],
        )
        with self._lock:
            self.runs.setdefault(values["run_id"]["S"], []).append(write)

    def double_advances(self, holding: frozenset[str] = frozenset()) -> list[str]:
        """A job that wrote twice, or two writes of one version: a run advanced twice.

        In the runs of `holding` (gates with `hold`) a job may write several versions in a
        row (its in-process advances), never again after another job wrote."""
        found: list[str] = []
        with self._lock:
            for run_id, writes in self.runs.items():
                if run_id in holding:
                    streaks = [job for job, _ in itertools.groupby(w.job_id for w in writes)]
                    counts = Counter(streaks)
                else:
                    counts = Counter(w.job_id for w in writes)
                for job_id, count in counts.items():
                    if count > 1:
                        found.append(f"run {run_id}: job {job_id} wrote {count} times")
                for version, count in Counter(w.version for w in writes).items():
                    if count > 1:
                        found.append(f"run {run_id}: version {version} written {count} times")
        return found

    def held(self) -> int:
        """How many jobs wrote two versions or more in a row (held: advanced in-process)."""
        with self._lock:
            return sum(
                1
                for writes in self.runs.values()
                for _, streak in itertools.groupby(w.job_id for w in writes)
                if len(list(streak)) > 1
            )

    def regressions(self) -> list[str]:
        """Versions not 1, 2, 3..., a step index going back, a write after the run ended."""
        found: list[str] = []
        with self._lock:
            for run_id, writes in self.runs.items():
                versions = [w.version for w in writes]
                if versions != list(range(1, len(writes) + 1)):
                    found.append(f"run {run_id}: versions applied in order {versions}")
                for before, after in itertools.pairwise(writes):
                    if after.step_index < before.step_index:
                        found.append(
                            f"run {run_id}: step {before.step_index} -> {after.step_index}"
                        )
                    if before.status != "RUNNING":
                        found.append(f"run {run_id}: written after it was {before.status}")
        return found

    def answers(self) -> dict[str, dict[str, Any]]:
        """Per job that wrote: the request its recorded answer makes."""
        with self._lock:
            return {
                w.job_id: Answer.model_validate_json(w.answer).to_request(w.job_id)[1]
                for writes in self.runs.values()
                for w in writes
            }

    def count(self) -> int:
        with self._lock:
            return sum(len(writes) for writes in self.runs.values())


# endregion
# region the rig


@dataclass
class Verdict:
    """What the checks found in some actions; `record()` adds it to the figures."""

    runs: int = 0
    jobs: int = 0
    accepted: int = 0
    deliveries: int = 0
    unanswered: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    double: list[str] = field(default_factory=list)
    regressions: list[str] = field(default_factory=list)
    escaped: list[str] = field(default_factory=list)
    late: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        return [
            *self.unanswered,
            *self.lost,
            *self.wrong,
            *self.refused,
            *self.double,
            *self.regressions,
            *self.escaped,
            *self.late,
        ]

    def record(self) -> None:
        FIGURES.add(
            "outcomes",
            {
                "unanswered_jobs": len(self.unanswered),
                "lost_progress": len(self.lost) + len(self.regressions),
                "wrong_answers": len(self.wrong) + len(self.refused),
                "double_advances": len(self.double),
                "escaped_exceptions": len(self.escaped),
                "late_returns": len(self.late),
            },
        )
        FIGURES.add(
            "checked",
            {
                "actions": self.runs,
                "jobs": self.jobs,
                "accepted_answers": self.accepted,
                "deliveries": self.deliveries,
                "duplicate_deliveries": self.deliveries - self.jobs,
            },
        )


class Rig:
    """One test's world: an emulator on a virtual clock, a table behind the fault proxy."""

    def __init__(
        self,
        emulator: CodePipelineEmulator,
        proxy: FaultProxy,
        clock: VirtualClock,
        table: str,
        direct_endpoint: str,
        sink: IO[str],
    ) -> None:
        self.emulator, self.proxy, self.clock = emulator, proxy, clock
        self.table, self.sink = table, sink
        self.writes = WriteLog(table)
        self.holding: frozenset[str] = frozenset()
        """Run ids of the gates run with `hold`."""
        self._direct = boto3.client("dynamodb", endpoint_url=direct_endpoint, region_name=REGION)
        self._clients: list[Any] = []
        self.store_retries = 3  # pynamodb's (botocore's) retries, as bind_model sets them
        self.read_timeout = 1.0  # bind_model: 5s; shorter here, so held requests cost less
        self.reporter_attempts = 5  # codepipeline_client default: retries after the first
        proxy.observers.append(self.writes)

    # -- adapters, as the handler builds them, with short timeouts for the proxy's hangs --

    def store(self) -> DynamoRunStore:
        """A DynamoRunStore on the table through the proxy (`store_retries` retries, reads
        timing out after `read_timeout` seconds); its connections close with the rig."""
        meta = type(
            "Meta",
            (),
            {
                "table_name": self.table,
                "region": REGION,
                "host": None,  # AWS_ENDPOINT_URL_DYNAMODB: the proxy
                "max_retry_attempts": self.store_retries,
                "connect_timeout_seconds": 1,
                "read_timeout_seconds": self.read_timeout,
                "max_pool_connections": 64,
            },
        )
        model: type[RunItem] = type(
            "ReliabilityRunItem", (RunItem,), {"Meta": meta, "__module__": __name__}
        )
        # pynamodb has no public close; its connection's botocore client has one.
        self._clients.append(model._get_connection().connection.client)
        return DynamoRunStore(model)

    def reporter(self) -> CodePipelineReporter:
        client = codepipeline_client(REGION, self.reporter_attempts)
        self._clients.append(client)
        return CodePipelineReporter(client)

    def close_clients(self) -> None:
        """Close the adapters' clients made so far (their process died)."""
        while self._clients:
            self._clients.pop().close()

    def close(self) -> None:
        """The test is over."""
        self.close_clients()
        self._direct.close()

    # -- running gates ---------------------------------------------------------------------

    def run(self, definition: dict[str, Any], function: Function, **kwargs: Any) -> ActionResult:
        """One Lambda invoke action, start to end, as CodePipeline runs it.

        The 20-minute reply timeout is stretched so that it stays longer than the handler's
        worst *real* duration (botocore's backoff), which the virtual clock does not speed up.
        """
        configuration = {"FunctionName": "orchestrator", "UserParameters": json.dumps(definition)}
        kwargs.setdefault("reply_timeout", max(1200.0, self.clock.speed * 30))
        result = run_action(self.emulator, function, configuration, clock=self.clock, **kwargs)
        if '"hold"' in json.dumps(definition) and result.jobs:
            self.holding = self.holding | {result.jobs[0].job_id}
        return result

    def item(self, run_id: str) -> dict[str, Any] | None:
        found: dict[str, Any] | None = self._direct.get_item(
            TableName=self.table, Key={"run_id": {"S": run_id}}, ConsistentRead=True
        ).get("Item")
        return found

    # -- the checks --------------------------------------------------------------------------

    def check(
        self,
        results: list[ActionResult],
        function: Function,
        expected: Callable[[ActionResult], dict[str, str]],
        injected: set[str] | None = None,
    ) -> Verdict:
        """Check the promise over finished actions; record the verdict in the figures.

        A job's refusals may be InvalidJobStateException for its duplicate deliveries, the
        retryable faults the emulator injects, and the codes in `injected`.
        """
        allowed = INJECTED_CODES | {DUPLICATE_REFUSAL} | (injected or set())
        verdict = Verdict(runs=len(results))
        for result in results:
            run_id = result.jobs[0].job_id
            for job in result.jobs:
                verdict.jobs += 1
                copies = function.deliveries[job.job_id]
                verdict.deliveries += copies
                if job.answer is None:
                    verdict.unanswered.append(f"run {run_id}: job {job.job_id} has no answer")
                    continue
                verdict.accepted += 1
                codes = [code for _, code in job.rejected]
                unexpected = [c for c in codes if c not in allowed]
                late = codes.count(DUPLICATE_REFUSAL)
                if unexpected or late > copies - 1:
                    verdict.refused.append(
                        f"run {run_id}: job {job.job_id} ({copies} deliveries) refused {codes}"
                    )
            wanted = expected(result)
            if result.status != "Succeeded" or result.output_variables != wanted:
                verdict.lost.append(
                    f"run {run_id} {result.status} {result.failure_type} "
                    f"{result.failure_message!r} outputs {result.output_variables} != {wanted}"
                )
            last = result.jobs[-1]
            stored = self.item(run_id)
            if stored is not None and last.answer is not None:
                answer = Answer.model_validate_json(stored["answer"]["S"])
                if answer.to_request(last.job_id)[1] != last.answer["params"]:
                    verdict.wrong.append(f"run {run_id}: stored answer != accepted answer")
        verdict.double = self.writes.double_advances(self.holding)
        verdict.regressions = self.writes.regressions()
        verdict.escaped = list(function.escaped)
        verdict.late = [
            f"job {j} returned after the Lambda deadline" for j in function.returned_late
        ]
        verdict.record()
        return verdict


def approval_gate(url: str) -> dict[str, Any]:
    """Bake, wait for a change approval over HTTP, soak; three outputs."""
    return {
        "steps": [
            {"name": "bake", "wait": "1m"},
            {
                "name": "change",
                "http": {"url": f"{url}/api/change/42"},
                "until": "status == `200` && body.state == 'approved'",
                "fail_if": "body.state == 'rejected'",
                "every": "30s",
            },
            {"name": "soak", "wait": "2m"},
        ],
        "outputs": {
            "Run": "run.id",
            "State": "steps.change.body.state",
            "Change": "steps.change.body.id",
        },
    }


def approval_outputs(result: ActionResult) -> dict[str, str]:
    return {"Run": result.jobs[0].job_id, "State": "approved", "Change": "CHG42"}


def v2_gate(url: str) -> dict[str, Any]:
    """The same checks in the v2 language: a guard polling the change API for the whole
    gate, the bake in parallel with a sequence (the approval, then a soak), a step that
    `when` skips."""
    return {
        "guards": [{"name": "reachable", "http": {"url": f"{url}/api/change/42"}, "every": "1m"}],
        "steps": [
            {
                "name": "checks",
                "parallel": [
                    {"name": "bake", "wait": "1m"},
                    {"name": "approval", "steps": approval_gate(url)["steps"][1:]},
                ],
            },
            {"name": "signoff", "wait": "1m", "when": "steps.change.body.state != 'approved'"},
        ],
        "outputs": approval_gate(url)["outputs"],
    }


def v2_outputs(result: ActionResult) -> dict[str, str]:
    return {**approval_outputs(result), "signoff": "skipped"}


def held_gate(url: str) -> dict[str, Any]:
    """The v2 gate with hold mode: the guard and the change step hold (2m, 90s), so a job
    polls on in-process and writes several versions in a row while either runs."""
    gate = v2_gate(url)
    gate["guards"][0]["hold"] = "2m"
    gate["steps"][0]["parallel"][1]["steps"][0]["hold"] = "90s"
    return gate


GATES = {
    "v1": (approval_gate, approval_outputs),
    "v2": (v2_gate, v2_outputs),
    "v2-hold": (held_gate, v2_outputs),
}
"""The gates the reliability suite runs: (definition for a change API URL, expected outputs)."""


APPROVED = (200, {"state": "approved", "id": "CHG42"})
PENDING = (200, {"state": "pending"})


def in_threads(
    count: int, target: Callable[[int], None], timeout: float, concurrency: int = 400
) -> list[str]:
    """Run `target(i)` for i < count, each in a thread, at most `concurrency` at a time;
    the errors (and the threads still alive after `timeout` seconds)."""
    errors: list[str] = []
    slots = threading.BoundedSemaphore(concurrency)
    end = time.monotonic() + timeout

    def body(i: int) -> None:
        try:
            target(i)
        except Exception as exc:
            errors.append(f"thread {i}: {type(exc).__name__}: {exc}")
        finally:
            slots.release()

    pool: list[threading.Thread] = []
    for i in range(count):
        if not slots.acquire(timeout=max(0.0, end - time.monotonic())):
            errors.append(f"runs {i}..{count - 1} never started within {timeout:.0f}s")
            break
        pool.append(threading.Thread(target=body, args=(i,), name=f"run-{i}"))
        pool[-1].start()
    for thread in pool:
        thread.join(max(0.0, end - time.monotonic()))
    errors += [f"{t.name} still running after {timeout:.0f}s" for t in pool if t.is_alive()]
    return errors


# endregion
