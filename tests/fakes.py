"""Honest in-memory fakes of our own Protocols, for unit tests of the tick and the engine.

They enforce what the real adapters enforce (conditional writes, one answer per job),
so a test that passes here is about the tick's logic, not about a permissive fake.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from orchestrator.exceptions import ConflictError, DefinitionError, StoreUnavailable
from orchestrator.governance import Kind, Versioned
from orchestrator.model import Answer, Control, RunRecord, RunStatus, RunSummary, Signals
from orchestrator.ports import Delivery
from orchestrator.reference import Fetched
from orchestrator.sources import SourceUnavailable

if TYPE_CHECKING:
    from collections.abc import Callable

    from orchestrator.event import Job
    from orchestrator.reference import GateRef
from orchestrator.services import HttpError, HttpResponse


class MemoryStore:
    """RunStore in a dict, with version checks, operation counts and an outage switch."""

    def __init__(self) -> None:
        self.items: dict[str, str] = {}
        self.cancels: dict[str, str] = {}
        self.decisions: dict[str, dict[str, dict[str, Any]]] = {}
        self.claims: dict[str, dict[str, dict[str, Any]]] = {}
        self.controls: dict[str, list[Control]] = {}
        self.definitions: dict[str, str] = {}
        self.executions: dict[str, str] = {}
        self.reads = 0
        self.writes = 0
        self.down = False
        self._lock = threading.Lock()

    def load(self, run_id: str) -> RunRecord | None:
        with self._lock:
            self.reads += 1
            if self.down:
                raise StoreUnavailable(f"run {run_id}: down")
            raw = self.items.get(run_id)
            if raw is None:
                return None
            record = RunRecord.model_validate_json(raw)
            signals = Signals(
                cancel_requested_by=self.cancels.get(run_id),
                decisions=self.decisions.get(run_id, {}),
                claims=self.claims.get(run_id, {}),
                controls=sorted(self.controls.get(run_id, []), key=lambda c: c.at),
            )
            return record.model_copy(update={"signals": signals})

    def save(
        self, record: RunRecord, expected_version: int | None, *, clear_cancel: bool = False
    ) -> None:
        with self._lock:
            self.writes += 1
            if self.down:
                raise StoreUnavailable(f"run {record.run_id}: down")
            current = self.items.get(record.run_id)
            stored = None if current is None else RunRecord.model_validate_json(current).version
            if stored != expected_version:
                raise ConflictError(record.run_id)
            self.items[record.run_id] = record.model_dump_json(exclude={"signals"})
            if clear_cancel:
                self.cancels.pop(record.run_id, None)

    def put_definition(self, key: str, document: str, expires_at: int) -> None:
        with self._lock:
            self.writes += 1
            if self.down:
                raise StoreUnavailable(f"definition {key}: down")
            self.definitions[key] = document

    def load_definition(self, key: str) -> str | None:
        with self._lock:
            self.reads += 1
            if self.down:
                raise StoreUnavailable(f"definition {key}: down")
            return self.definitions.get(key)

    def request_cancel(self, run_id: str, who: str) -> bool:
        with self._lock:
            raw = self.items.get(run_id)
            if raw is None or RunRecord.model_validate_json(raw).state.status is not (
                RunStatus.RUNNING
            ):
                return False
            self.cancels[run_id] = who
            return True

    def link_execution(self, key: str, run_id: str, expires_at: int) -> str:
        with self._lock:
            self.writes += 1
            if self.down:
                raise StoreUnavailable(f"execution {key}: down")
            return self.executions.setdefault(key, run_id)

    def relink_execution(self, key: str, run_id: str, expires_at: int) -> None:
        with self._lock:
            self.writes += 1
            if self.down:
                raise StoreUnavailable(f"execution {key}: down")
            self.executions[key] = run_id

    def record_control(self, run_id: str, control: Control) -> bool:
        with self._lock:
            raw = self.items.get(run_id)
            if raw is None or RunRecord.model_validate_json(raw).state.status is not (
                RunStatus.RUNNING
            ):
                return False
            self.controls.setdefault(run_id, []).append(control)
            return True

    def record_decision(
        self, run_id: str, step: str, principal: str, decision: dict[str, Any]
    ) -> bool:
        return self._once(self.decisions, run_id, step, principal, decision)

    def claim(self, run_id: str, step: str, key: str, value: dict[str, Any]) -> bool:
        return self._once(self.claims, run_id, step, key, value)

    def _once(
        self,
        where: dict[str, dict[str, dict[str, Any]]],
        run_id: str,
        step: str,
        key: str,
        value: dict[str, Any],
    ) -> bool:
        with self._lock:
            raw = self.items.get(run_id)
            if raw is None or RunRecord.model_validate_json(raw).state.status is not (
                RunStatus.RUNNING
            ):
                return False
            slot = where.setdefault(run_id, {}).setdefault(step, {})
            if key in slot:
                return bool(slot[key] == value)
            slot[key] = value
            return True

    def recent(self, status: RunStatus | None, limit: int) -> list[RunSummary]:
        records = [RunRecord.model_validate_json(raw) for raw in self.items.values()]
        return [
            RunSummary(
                run_id=r.run_id,
                status=r.state.status,
                created_at=r.created_at,
                updated_at=r.updated_at,
                summary=r.last_answer.summary,
            )
            for r in sorted(records, key=lambda r: r.updated_at, reverse=True)
            if status is None or r.state.status is status
        ][:limit]


class MemoryGovernanceStore:
    """GovernanceStore in a dict: versioned documents, writes conditional on the version (as
    DynamoDB's), an outage switch, and `between` hooks: each runs once, after a change has
    read a document and before its write (to stage a concurrent writer exactly there; the
    writes a hook makes run no hook)."""

    def __init__(self) -> None:
        self.documents: dict[tuple[Kind, str], Versioned] = {}
        self.writes = 0
        self.conflicts = 0
        self.down = False
        self.between: list[Callable[[], object]] = []
        self._staging = False
        self._lock = threading.Lock()

    def read(self, kind: Kind, name: str) -> Versioned | None:
        with self._lock:
            if self.down:
                raise StoreUnavailable(f"{kind.value} {name}: down")
            found = self.documents.get((kind, name))
            return copy.deepcopy(found)

    def write(
        self, kind: Kind, name: str, document: dict[str, Any], expected_version: int | None
    ) -> None:
        if self.between and not self._staging:
            self._staging = True
            try:
                self.between.pop(0)()
            finally:
                self._staging = False
        with self._lock:
            if self.down:
                raise StoreUnavailable(f"{kind.value} {name}: down")
            current = self.documents.get((kind, name))
            if (current.version if current else None) != expected_version:
                self.conflicts += 1
                raise ConflictError(f"{kind.value} {name}")
            version = (expected_version or 0) + 1
            self.documents[kind, name] = Versioned(copy.deepcopy(document), version)
            self.writes += 1

    def read_all(self, kind: Kind) -> list[Versioned]:
        with self._lock:
            if self.down:
                raise StoreUnavailable(f"listing {kind.value}s: down")
            return copy.deepcopy([v for (k, _), v in self.documents.items() if k is kind])


@dataclass
class RecordingReporter:
    """Reporter that accepts the first answer per job and refuses later ones, like CodePipeline."""

    accepted: dict[str, Answer] = field(default_factory=dict)
    refused: list[tuple[str, Answer]] = field(default_factory=list)
    calls: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def report(self, job_id: str, answer: Answer) -> Delivery:
        with self._lock:
            self.calls += 1
            if job_id in self.accepted:
                self.refused.append((job_id, answer))
                return Delivery.ALREADY_ANSWERED
            self.accepted[job_id] = answer
            return Delivery.ACCEPTED


@dataclass
class ScriptedHttp:
    """HttpClient that returns scripted responses in order (the last one repeats)."""

    responses: list[HttpResponse | HttpError]
    requests: list[tuple[str, str]] = field(default_factory=list)

    def request(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None, timeout: float
    ) -> HttpResponse:
        self.requests.append((method, url))
        item = self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]
        if isinstance(item, HttpError):
            raise item
        return item


def client_error(code: str, status: int = 400, operation: str = "DescribeAlarms") -> ClientError:
    """What botocore raises for an AWS error response `code` (HTTP `status`) to `operation`."""
    return ClientError(
        {
            "Error": {"Code": code, "Message": code},
            "ResponseMetadata": {
                "RequestId": "r",
                "HostId": "h",
                "HTTPStatusCode": status,
                "HTTPHeaders": {},
                "RetryAttempts": 0,
            },
        },
        operation,
    )


def json_response(status: int, body: str) -> HttpResponse:
    return HttpResponse(
        status=status, headers={"content-type": "application/json"}, body=body.encode()
    )


class ManualClock:
    """A clock that moves only when told to."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.t = start

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += max(0.0, seconds)


class MemorySource:
    """DefinitionSource from a dict of reference -> document, with an outage switch."""

    def __init__(self, documents: dict[str, str] | None = None) -> None:
        self.documents = dict(documents or {})
        self.versions: dict[str, int] = {}
        self.fetches = 0
        self.down = False

    def put(self, ref: str, document: str) -> None:
        self.documents[ref] = document
        self.versions[ref] = self.versions.get(ref, 0) + 1

    def fetch(self, job: Job, ref: GateRef) -> Fetched:
        self.fetches += 1
        if self.down:
            raise SourceUnavailable(f"gate {ref}: unavailable (SlowDown)")
        if ref.text not in self.documents:
            raise DefinitionError([f"gate {ref}: not found (NoSuchKey)"])
        version = self.versions.get(ref.text, 1)
        return Fetched(self.documents[ref.text].encode(), str(version))
