"""One tick: turn one job into exactly one answer, persisting progress before reporting it.

    job ──► decode token ──► idle? ──────────────────────────────► answer (same nonce)
                │ (no token: new run)       │ due, or hints too old
                ▼                           ▼
            load run ──► same job as last write? ──► re-send that answer
                │
                ▼
            engine.advance ──► nothing changed ──────────────────► answer (same nonce)
                │
                ▼
            conditional write (version) ──► answer with a new nonce
                │ lost the race
                ▼
            re-read: a delivery of this job won ──► re-send its answer

A referenced gate (`{"gate": ...}`) is fetched, expanded and stored once, on its run's first
tick, and pinned to the run (pinning.py); every later tick uses the pinned definition, from
memory on a warm function.

Progress is reported only after it is persisted: when DynamoDB (or a referenced gate's
source) is down, the job gets the nonce it came with (nothing advanced), so the next job
tries again.

Why tokens name the job they answer: two deliveries of one job J may take different paths,
one answering without a write (idle, or DynamoDB down) and one advancing the run. If
CodePipeline accepted the first, the next job carries a token whose nonce the advance just
replaced. It is still valid: it was issued to J, and the run's last write was J's, made
from exactly that nonce (`prev_nonce`). Any other old token is refused.
"""

from __future__ import annotations

import enum
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orchestrator import engine
from orchestrator.definition import MAX_GATE_TIMEOUT, GateDefinition
from orchestrator.durations import format_duration
from orchestrator.exceptions import (
    ConflictError,
    DefinitionError,
    FailureType,
    StoreUnavailable,
    TerminalError,
    TransientError,
    UnknownTokenError,
)
from orchestrator.model import Answer, AnswerKind, RunRecord, RunState, RunStatus
from orchestrator.pinning import Pins
from orchestrator.ports import NoJobContext
from orchestrator.reference import Reference, read_user_parameters
from orchestrator.token import Token, new_nonce

if TYPE_CHECKING:
    from collections.abc import Callable

    from orchestrator.clock import Clock
    from orchestrator.event import Job
    from orchestrator.model import Pin
    from orchestrator.ports import DefinitionSource, Delivery, JobContext, Reporter, RunStore

log = logging.getLogger("orchestrator")
HOLD_SLACK_SECONDS = 2.0
"""Real seconds a hold keeps beyond the reserve, for the advance after its wait."""

NOTIFY_TIMEOUT = 5.0
"""Seconds a notification's webhook may take."""


@dataclass(frozen=True)
class TickConfig:
    """Knobs of the tick, from Settings."""

    idle_check_interval: float = 60.0
    """An idle tick skips DynamoDB only if the table was read less than this long ago
    (bounds how late a cancel is seen)."""
    ttl_days: float = 30.0
    reserve_seconds: float = 5.0
    """Real seconds kept back for the write and the report at the end of an invocation."""


class Progress(enum.Enum):
    """What a tick did to the run."""

    ADVANCED = "advanced"  # persisted a new state
    UNCHANGED = "unchanged"  # nothing due, or a repeated delivery
    DEFERRED = "deferred"  # a transient fault: nothing persisted, the next job retries


@dataclass(frozen=True)
class Outcome:
    """What a tick did: the answer sent, how CodePipeline took it, what became of the run."""

    answer: Answer
    delivery: Delivery
    progress: Progress


class Ticker:
    """Handles jobs; built once per process, holds no per-job state."""

    def __init__(
        self,
        store: RunStore,
        reporter: Reporter,
        clock: Clock,
        config: TickConfig | None = None,
        services: Any = None,
        job_context: JobContext | None = None,
        sources: DefinitionSource | None = None,
    ) -> None:
        self._store = store
        self._pins = Pins(store, sources)
        self._reporter = reporter
        self._clock = clock
        self._config = config or TickConfig()
        self._services = services
        self._job_context: JobContext = job_context or NoJobContext()

    def handle(self, job: Job, time_left: Callable[[], float]) -> Outcome:
        """Decide the job's answer and send it. Raises ReporterUnavailable if it cannot."""
        progress = Progress.UNCHANGED
        try:
            answer, progress = self._decide(job, time_left)
        except TerminalError as exc:
            answer = _failure(_run_id_hint(job), str(exc), exc.failure_type)
        delivery = self._reporter.report(job.id, answer)
        log.info(
            "answered",
            extra={
                "run_id": answer.run_id,
                "answer": answer.kind.value,
                "delivery": delivery.value,
                "progress": progress.value,
            },
        )
        return Outcome(answer, delivery, progress)

    # region deciding

    def _decide(self, job: Job, time_left: Callable[[], float]) -> tuple[Answer, Progress]:
        spec = read_user_parameters(job.user_parameters)
        now = self._clock.now()
        if job.continuation_token is None:
            # A new run, named after its first job; nonce None means "not created yet".
            # A referenced gate's timeout is known once it is fetched: until then, the most.
            timeout = spec.timeout if isinstance(spec, GateDefinition) else MAX_GATE_TIMEOUT
            token = Token(
                run_id=job.id,
                nonce=None,
                job_id=job.id,
                started_at=now,
                deadline=now + timeout,
                due=now,
                checked_at=0.0,
                step_index=0,
                percent=0,
            )
            try:
                record = self._store.load(job.id)
                pipeline = key = None
                if record is None:  # else another delivery of this first job made the run
                    pipeline = self._identify(job)
                    key = _execution_key(pipeline)
                linked = (
                    self._store.link_execution(key, job.id, self._expires(now))
                    if key is not None
                    else job.id
                )
            except TransientError as exc:
                return self._store_down(job, token, exc), Progress.DEFERRED
            if linked != job.id:
                assert key is not None
                return self._retried(job, spec, token, linked, key, time_left)
            return self._held(job, spec, token, time_left, now, _Loaded(record, pipeline))
        token = Token.decode(job.continuation_token)
        if token.nonce is not None and self._is_idle(token, now):
            if token.definition is not None:
                try:  # from memory on a warm function; a cold one reads it once
                    definition = self._pins.pinned(token.definition, token.run_id)
                except StoreUnavailable as exc:
                    return self._store_down(job, token, exc), Progress.DEFERRED
                return self._idle_answer(job, definition, token, now), Progress.UNCHANGED
            if isinstance(spec, GateDefinition):
                return self._idle_answer(job, spec, token, now), Progress.UNCHANGED
        return self._held(job, spec, token, time_left, now)

    def _held(
        self,
        job: Job,
        spec: GateDefinition | Reference,
        token: Token,
        time_left: Callable[[], float],
        started: float,
        loaded: _Loaded | None = None,
        note: str | None = None,
    ) -> tuple[Answer, Progress]:
        """Advance from the store; then, while the gate or a running step has a `hold`
        (`engine.hold`), the run's next poll
        is due within it (counted from `started`, on the gate's clock) and the
        invocation has the real time for it, wait for it and advance again, as the same job.

        Only an invocation that wrote the run holds (a repeated delivery re-sends and
        answers at once), and each advance is a conditional write like any tick's: when
        another writer moved the run on, the hold ends with the last answer this job wrote.
        Its writes keep the nonce of its first one, so every answer it might have given (a
        sibling delivery may re-send an earlier one) continues the run.
        """
        answer, progress, hold, version = self._from_store(
            job, spec, token, time_left, loaded=loaded, note=note
        )
        if not hold or progress is not Progress.ADVANCED:
            return answer, progress
        while hold and answer.kind is AnswerKind.IN_PROGRESS and answer.token is not None:
            wait = max(0.0, Token.decode(answer.token).due - self._clock.now())
            # The gate's clock runs at least as fast as real time (a rehearsal's runs
            # faster): `wait` real seconds is the most the sleep can take.
            room = time_left() - self._config.reserve_seconds - HOLD_SLACK_SECONDS
            if self._clock.now() + wait > started + hold or wait > room:
                break
            self._clock.sleep(wait)
            try:
                again = self._from_store(job, spec, token, time_left, holding=version)
            except TerminalError:
                break  # another job took the run over: this job's answer stands
            if again[1] is not Progress.ADVANCED:
                if again[1] is Progress.UNCHANGED and again[3] == version and wait > 0:
                    answer = again[0]  # read, nothing due yet (the same nonce): hold on
                    continue
                break
            answer, _, hold, version = again
        return answer, progress

    def _identify(self, job: Job) -> dict[str, Any] | None:
        """Which pipeline execution's action the job is (for resume on retry); a refusal
        (no codepipeline:GetJobDetails) only means the run cannot be resumed by a retry."""
        try:
            return self._job_context.identify(job)
        except TerminalError as exc:
            log.warning(
                "pipeline execution unknown: a retry will start over",
                extra={"run_id": job.id, "error": str(exc)},
            )
            return None

    def _expires(self, now: float) -> int:
        return int(now + MAX_GATE_TIMEOUT + self._config.ttl_days * 86400)

    def _retried(
        self,
        job: Job,
        spec: GateDefinition | Reference,
        token: Token,
        run_id: str,
        key: str,
        time_left: Callable[[], float],
    ) -> tuple[Answer, Progress]:
        """A job without a token for an action whose run exists: a retry of the action.
        A failed run resumes (or restarts: `on_retry`, or another definition), a succeeded
        one answers the same, a running one goes on with this job."""
        try:
            record = self._store.load(run_id)
        except StoreUnavailable as exc:
            return self._store_down(job, token, exc), Progress.DEFERRED
        if record is not None and record.last_job_id == job.id:
            return record.last_answer, Progress.UNCHANGED  # a duplicate of this retry
        if record is None or record.state.status is RunStatus.SUCCEEDED:
            if record is not None:
                log.info("retry of a succeeded run: the same answer", extra={"run_id": run_id})
                return record.last_answer, Progress.UNCHANGED
            return self._restart(job, spec, token, key, time_left, None)
        try:
            definition, pin, _ = self._definition(job, spec, record, token)
        except TransientError as exc:
            return self._store_down(job, token, exc), Progress.DEFERRED
        state = record.state
        if state.status is not RunStatus.RUNNING:
            current = spec if isinstance(spec, GateDefinition) else None
            changed = current is not None and state.digest not in (None, current.digest)
            if changed or (current or definition).on_retry == "restart":
                why = (
                    f"restarted: the definition changed since run {run_id} failed"
                    if changed
                    else f"restarted after run {run_id} failed (on_retry: restart)"
                )
                return self._restart(job, spec, token, key, time_left, why)
            state = engine.resume(definition, state, self._clock.now())
            # A retry after a cancel is the operator's new decision: the cancel was spent on
            # the attempt it failed (this write removes it from the item too).
            record = record.model_copy(
                update={"signals": record.signals.model_copy(update={"cancel_requested_by": None})}
            )
            log.info("resuming a failed run", extra={"run_id": run_id, "attempt": state.attempt})
        answer, progress, _, _ = self._advance(
            job, definition, record, state, token, pin, time_left
        )
        return answer, progress

    def _restart(
        self,
        job: Job,
        spec: GateDefinition | Reference,
        token: Token,
        key: str,
        time_left: Callable[[], float],
        note: str | None,
    ) -> tuple[Answer, Progress]:
        """A new run for this job, named the action's run from now on."""
        try:
            self._store.relink_execution(key, job.id, self._expires(token.started_at))
        except StoreUnavailable as exc:
            return self._store_down(job, token, exc), Progress.DEFERRED
        return self._held(job, spec, token, time_left, token.started_at, _Loaded(None), note)

    def _is_idle(self, token: Token, now: float) -> bool:
        fresh = now - token.checked_at < self._config.idle_check_interval
        return fresh and token.due > now and token.deadline > now

    def _from_store(
        self,
        job: Job,
        spec: GateDefinition | Reference,
        token: Token,
        time_left: Callable[[], float],
        holding: int | None = None,
        loaded: _Loaded | None = None,
        note: str | None = None,
    ) -> tuple[Answer, Progress, float | None, int | None]:
        """The answer, what became of the run, how long the invocation may hold for its next
        polls (`engine.hold`; None: answer at once) and the
        version this job last wrote (None: it wrote nothing). `holding`: the version a hold
        of this job wrote last, to advance from again (anything else ends the hold).
        `loaded`: the run as a first job read it already (and its pipeline document); `note`:
        said with a new run's summary (why a retry restarted)."""
        if loaded is not None:
            record = loaded.record
        else:
            try:
                record = self._store.load(token.run_id)
            except StoreUnavailable as exc:
                return self._store_down(job, token, exc), Progress.DEFERRED, None, None
        if holding is not None and (
            record is None or record.version != holding or record.last_job_id != job.id
        ):
            # Another writer moved the run on: the hold ends (the answer is not used).
            return (
                _failure(token.run_id, "moved on", FailureType.JOB_FAILED),
                Progress.DEFERRED,
                None,
                None,
            )
        elif holding is None and record is not None and record.last_job_id == job.id:
            log.info(
                "repeated delivery: re-sending the recorded answer", extra={"run_id": record.run_id}
            )
            return record.last_answer, Progress.UNCHANGED, None, None
        if record is None and token.nonce is not None:
            raise UnknownTokenError(
                f"unknown continuation token: run {token.run_id} is not in the table "
                "(it may have expired)"
            )
        try:
            definition, pin, args = self._definition(job, spec, record, token)
        except TransientError as exc:
            return self._store_down(job, token, exc), Progress.DEFERRED, None, None
        written = record.version if record is not None and holding is not None else None
        if record is None:
            state = engine.start(definition, token.run_id, token.started_at)
            state.digest, state.note = definition.digest, note
            if args is not None:
                state.context["args"] = args
            if loaded is not None and loaded.pipeline:
                state.context["pipeline"] = loaded.pipeline
        else:
            if holding is None:
                _check_token(token, record)
            if record.state.status is not RunStatus.RUNNING:
                # A sibling delivery of the previous job ended the run: this job, its
                # successor, gets the run's outcome.
                return record.last_answer, Progress.UNCHANGED, None, written
            state = record.state
        return self._advance(job, definition, record, state, token, pin, time_left, written)

    def _advance(
        self,
        job: Job,
        definition: GateDefinition,
        record: RunRecord | None,
        state: RunState,
        token: Token,
        pin: Pin | None,
        time_left: Callable[[], float],
        written: int | None = None,
    ) -> tuple[Answer, Progress, float | None, int | None]:
        """Advance the run (new: `record` None) and commit it; `_from_store`'s answer."""
        try:
            gathered = self._job_context.gather(job, definition, state)
        except TransientError as exc:
            return self._store_down(job, token, exc), Progress.DEFERRED, None, written
        if gathered:
            state = state.model_copy(update={"context": {**state.context, **gathered}})
        budget = engine.Budget(time_left, self._config.reserve_seconds)
        claim = self._claim(state.run_id) if record is not None else _unclaimable
        signals = record.signals if record is not None else None
        new_state = engine.advance(
            definition, state, self._clock.now, budget, self._services, claim, signals
        )
        if new_state.status is RunStatus.SUCCEEDED:
            try:
                self._job_context.finish(job, definition, new_state)
            except TransientError as exc:
                return self._store_down(job, token, exc), Progress.DEFERRED, None, written
            except TerminalError as exc:
                new_state = engine.fail(new_state, self._clock.now(), str(exc), exc.failure_type)
        if record is not None and new_state == record.state:
            # Read, but nothing was due: the same nonce, with the read noted in the hints.
            answer = self._answer(job, definition, new_state, record.nonce, pin)
            return answer, Progress.UNCHANGED, engine.hold(definition, new_state), written
        answer, progress = self._commit(job, definition, record, new_state, token, pin)
        if progress is Progress.ADVANCED:
            written = record.version + 1 if record is not None else 1
        return answer, progress, engine.hold(definition, new_state), written

    def _definition(
        self, job: Job, spec: GateDefinition | Reference, record: RunRecord | None, token: Token
    ) -> tuple[GateDefinition, Pin | None, dict[str, str] | None]:
        """The run's definition: the one pinned to it (pinned now if the run is new and its
        gate referenced, with the args it was expanded with), else the inline one."""
        if record is not None and record.pin is not None:
            return self._pins.pinned(record.pin.definition, record.run_id), record.pin, None
        if isinstance(spec, GateDefinition):
            return spec, None, None
        if record is None:
            expires_at = token.started_at + MAX_GATE_TIMEOUT + self._config.ttl_days * 86400
            return self._pins.pin_new(job, spec, expires_at)
        raise DefinitionError(
            [f"run {record.run_id} was started with an inline definition, not {spec.ref}"]
        )

    def _claim(self, run_id: str) -> Callable[[str, str, dict[str, Any]], bool]:
        def claim(step: str, key: str, value: dict[str, Any]) -> bool:
            try:
                return self._store.claim(run_id, step, key, value)
            except StoreUnavailable:
                return False

        return claim

    def _commit(
        self,
        job: Job,
        definition: GateDefinition,
        previous: RunRecord | None,
        state: RunState,
        token: Token,
        pin: Pin | None,
    ) -> tuple[Answer, Progress]:
        now = self._clock.now()
        running = state.status is RunStatus.RUNNING
        # A hold's later writes (the same job wrote last) keep its first write's nonces.
        again = previous is not None and previous.last_job_id == job.id
        nonce = (previous.nonce if again and previous else new_nonce()) if running else None
        prev_nonce = previous.nonce if previous else None
        if again and previous and running:
            prev_nonce = previous.prev_nonce
        answer = self._answer(job, definition, state, nonce, pin)
        ttl = int(self._config.ttl_days * 86400)
        record = RunRecord(
            version=(previous.version + 1) if previous else 1,
            nonce=nonce,
            prev_nonce=prev_nonce,
            state=state,
            last_job_id=job.id,
            last_answer=answer,
            created_at=previous.created_at if previous else now,
            updated_at=now,
            expires_at=int((state.deadline if running else now) + ttl),
            pin=previous.pin if previous else pin,
        )
        # Only a retry writes a run that is over: it resumes it, and a cancel request of the
        # attempt that failed goes (it was spent).
        resumed = previous is not None and previous.state.status is not RunStatus.RUNNING
        try:
            self._store.save(record, previous.version if previous else None, clear_cancel=resumed)
        except ConflictError:
            try:
                return self._lost_race(job, state.run_id, token), Progress.UNCHANGED
            except StoreUnavailable as exc:
                return self._store_down(job, token, exc), Progress.DEFERRED
        except StoreUnavailable as exc:
            return self._store_down(job, token, exc), Progress.DEFERRED
        self._announce(definition, previous.state if previous else None, state, answer)
        return answer, Progress.ADVANCED

    def _announce(
        self, definition: GateDefinition, before: RunState | None, after: RunState, answer: Answer
    ) -> None:
        """Send the gate's notifications for what this write changed (this delivery's write
        won, so no other sends them); a failed delivery is logged and, while the run goes
        on, recorded for its next summary."""
        if definition.notify is None or self._services is None:
            return
        from orchestrator import notices

        pipeline = after.context.get("pipeline")
        for notice in notices.events(before, after, answer.summary):
            if notice.event not in definition.notify.on:
                continue
            errors = notices.send(
                notice, after.run_id, definition.notify, pipeline, self._services, NOTIFY_TIMEOUT
            )
            if not errors:
                continue
            log.warning(
                "notification not delivered",
                extra={"run_id": after.run_id, "event": notice.event, "errors": errors},
            )
            if after.status is RunStatus.RUNNING:
                try:
                    failed = {"error": "; ".join(errors)}
                    self._store.claim(after.run_id, "notify", f"{notice.key}-failed", failed)
                except StoreUnavailable:
                    pass

    def _lost_race(self, job: Job, run_id: str, token: Token) -> Answer:
        current = self._store.load(run_id)
        if current is not None and current.last_job_id == job.id:
            log.info(
                "concurrent delivery won the write: re-sending its answer", extra={"run_id": run_id}
            )
            return current.last_answer
        if current is not None and token.nonce is not None and current.last_job_id == token.job_id:
            # The job this token came from is still holding (a sibling delivery of it
            # answered early): leave the run to it, and hand its token on unchanged.
            log.info("the previous job is holding the run: nothing to do", extra={"run_id": run_id})
            return Answer(
                kind=AnswerKind.IN_PROGRESS,
                run_id=run_id,
                token=token.replace(checked_at=0.0).encode(),
                summary=current.last_answer.summary,
                percent=token.percent,
            )
        raise UnknownTokenError(
            f"unknown continuation token: run {run_id} was advanced by another job"
        )

    # endregion
    # region answers

    def _answer(
        self,
        job: Job,
        definition: GateDefinition,
        state: RunState,
        nonce: str | None,
        pin: Pin | None,
    ) -> Answer:
        text = engine.summary(definition, state)
        if state.status is RunStatus.SUCCEEDED:
            return Answer(
                kind=AnswerKind.SUCCEEDED,
                run_id=state.run_id,
                summary=text,
                outputs=state.outputs or {},
            )
        if state.status is RunStatus.FAILED:
            assert state.failure is not None
            return _failure(state.run_id, text, state.failure.type)
        now = self._clock.now()
        due = engine.next_due(state)
        token = Token(
            run_id=state.run_id,
            nonce=nonce,
            job_id=job.id,
            started_at=state.started_at,
            deadline=state.deadline,
            due=due if due is not None else now,
            checked_at=now,
            step_index=state.step_index,
            percent=engine.percent(state, now),
            definition=pin.definition if pin else None,
        )
        return Answer(
            kind=AnswerKind.IN_PROGRESS,
            run_id=state.run_id,
            token=token.encode(),
            summary=text,
            percent=token.percent,
        )

    def _idle_answer(
        self, job: Job, definition: GateDefinition, token: Token, now: float
    ) -> Answer:
        text = f"{engine.position(definition, token.step_index)}: next check in " + format_duration(
            token.due - now
        )
        return Answer(
            kind=AnswerKind.IN_PROGRESS,
            run_id=token.run_id,
            token=token.replace(job_id=job.id).encode(),
            summary=text,
            percent=token.percent,
        )

    def _store_down(self, job: Job, token: Token, exc: Exception) -> Answer:
        """Report nothing new: the same nonce, so the next job retries what this one could not."""
        now = self._clock.now()
        log.warning(
            "state store unavailable", extra={"run_id": token.run_id, "error": type(exc).__name__}
        )
        if now >= token.deadline:
            waited = format_duration(token.deadline - token.started_at)
            why = "the state store was unavailable" if isinstance(exc, StoreUnavailable) else exc
            return _failure(
                token.run_id, f"gate timed out after {waited} while {why}", FailureType.JOB_FAILED
            )
        # For a run not created yet, this token (nonce None) makes the next job create it.
        what = "state store unavailable" if isinstance(exc, StoreUnavailable) else str(exc)
        return Answer(
            kind=AnswerKind.IN_PROGRESS,
            run_id=token.run_id,
            token=token.replace(job_id=job.id, checked_at=0.0).encode(),
            summary=f"{what}; will retry at the next check",
            percent=token.percent,
        )

    # endregion


def _check_token(token: Token, record: RunRecord) -> None:
    """Raise UnknownTokenError unless the token may continue the stored run."""
    current = token.nonce is not None and token.nonce == record.nonce
    # Issued to the job whose other delivery made the last write, from the nonce it replaced
    # (or any of that job's answers, once the run is over: a hold answers from several).
    sibling = token.job_id == record.last_job_id and (
        token.nonce == record.prev_nonce or record.state.status is not RunStatus.RUNNING
    )
    if not (current or sibling):
        raise UnknownTokenError(
            f"unknown continuation token: stale or forged for run {record.run_id}"
        )


@dataclass(frozen=True)
class _Loaded:
    """What a run's first job read before advancing: the run (None: not made yet) and its
    pipeline document (GetJobDetails), so that neither is asked for twice."""

    record: RunRecord | None
    pipeline: dict[str, Any] | None = None


def _execution_key(pipeline: dict[str, Any] | None) -> str | None:
    """Which pipeline execution's action a job is for (None: unknown), as a key."""
    if not pipeline:
        return None
    parts = (
        pipeline.get("pipelineName"),
        pipeline.get("pipelineExecutionId"),
        (pipeline.get("stage") or {}).get("name"),
        (pipeline.get("action") or {}).get("name"),
    )
    if not all(isinstance(part, str) and part for part in parts):
        return None
    import hashlib

    return hashlib.sha256("\0".join(str(p) for p in parts).encode()).hexdigest()


def _failure(run_id: str, message: str, failure_type: FailureType) -> Answer:
    return Answer(kind=AnswerKind.FAILED, run_id=run_id, summary=message, failure_type=failure_type)


def _run_id_hint(job: Job) -> str:
    """The run id for an answer about a job whose token may be unreadable."""
    if job.continuation_token:
        try:
            return Token.decode(job.continuation_token).run_id
        except UnknownTokenError:
            return job.id
    return job.id


def monotonic_deadline(seconds: float) -> Callable[[], float]:
    """A `time_left()` function counting down real seconds from now."""
    end = time.monotonic() + seconds
    return lambda: end - time.monotonic()


def _unclaimable(step: str, key: str, value: dict[str, Any]) -> bool:
    """Claims on a run's first tick: it is not stored yet, so nothing can be claimed."""
    return False
