"""Deployment governance, pure: named freezes and environment locks, kept beside the runs.

    Governance(store)                     what steps and the CLI use (store: GovernanceStore)
    ├── active(name, now)                 FreezeLookup: the freeze that is on, or None
    ├── freeze / unfreeze / freezes       set, lift, list freezes (who, when, why: audited)
    ├── acquire(name, claimant, ...)      a `lock` step's poll: Held, Waiting or Superseded
    ├── release(name, execution, now)     an `unlock` step: ends this execution's lease
    └── force_release / locks             `orchestrator unlock --force`, `orchestrator locks`

Each freeze and each lock is one JSON document with a version. Every change reads the
document, decides (a pure function of it, below), and writes it back on the version it read;
a writer that lost the race reads again and decides again. Every decision is idempotent (a
waiter is queued once per pipeline execution, a holder acquiring again is told it holds), so
a delivery of a job repeated, or run at the same moment, changes nothing twice.

A lock, over time (`sequential`; `latest` differs only where a waiter arrives):

    A acquires ─── A holds (its gate ends; the lease stays) ─── A's unlock ──┐
    B arrives: queued 1 of 1 ── polls, waiting ───────────────────────────────┴─ B holds
    C arrives: queued 2 of 2 ── polls, waiting, 1 of 1 once B holds ───────────── ...
    (`latest`: C's arrival supersedes B, whose next poll fails "superseded by execution C")

A lease ends at its holder's unlock, at `orchestrator unlock --force`, or `hold` after it was
taken: the next waiter to poll then takes it over. A waiter that stops polling (its gate
failed, timed out, was cancelled) leaves the queue once its `grace` has passed.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.exceptions import ConflictError, TransientError
from orchestrator.text import format_instant

if TYPE_CHECKING:
    from collections.abc import Callable

NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
"""What a freeze or a lock may be called."""
MAX_HISTORY = 50
"""Audit events kept per freeze or lock (the oldest go first)."""
MAX_SUPERSEDED = 20
SUPERSEDED_KEPT = 7 * 86400.0
"""How long a superseded waiter's note is kept for it to find at its next poll."""
ATTEMPTS = 8
"""Read-decide-write rounds before a contended change gives up for this poll."""


def name_error(name: str) -> str | None:
    """Why `name` cannot name a freeze or a lock (None when it can)."""
    if NAME.fullmatch(name):
        return None
    return f"invalid name {name!r}: use 1 to 64 of A-Z a-z 0-9 _ . -"


class GovernanceBusy(TransientError):
    """A freeze or lock changed under every attempt to change it: try again at the next poll."""


# region freezes


class _Document(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Freeze(_Document):
    """A freeze that was set: by whom (an IAM identity), since when, why, until when."""

    name: str
    by: str
    since: float
    reason: str
    until: float | None = None

    def describe(self) -> str:
        """`frozen by arn:... since 2026-12-20 09:00 UTC: reason` (and until when)."""
        until = f" until {format_instant(self.until, 'minutes')}" if self.until else ""
        since = format_instant(self.since, "minutes")
        return f"frozen by {self.by} since {since}{until}: {self.reason}"


class FreezeEvent(_Document):
    """One line of a freeze's audit trail."""

    action: Literal["set", "lifted"]
    by: str
    at: float
    reason: str = ""
    until: float | None = None


class FreezeRecord(_Document):
    """A freeze's document: the one set last (None once lifted) and its audit trail."""

    name: str
    current: Freeze | None = None
    history: list[FreezeEvent] = Field(default_factory=list)

    def active(self, now: float) -> Freeze | None:
        """The freeze, while it is on at `now` (set, not lifted, `until` not passed)."""
        current = self.current
        if current is None or (current.until is not None and current.until <= now):
            return None
        return current

    def note(self, event: FreezeEvent) -> None:
        self.history = [*self.history, event][-MAX_HISTORY:]


class FreezeLookup(Protocol):
    """How a step asks whether a freeze is on (the `window` kind's `freeze` field)."""

    def active(self, name: str, now: float) -> Freeze | None:
        """The freeze named `name` while it is on at `now` (the gate's clock), else None.
        Raises StoreUnavailable when it cannot be read."""
        ...


# endregion
# region locks


class LockMode(enum.Enum):
    """How a waiter queues: behind everyone, or in place of everyone who waits."""

    SEQUENTIAL = "sequential"
    """First come, first served."""
    LATEST = "latest"
    """Arriving supersedes every execution that waits (never the holder)."""


@dataclass(frozen=True)
class Claimant:
    """Who asks for a lock: a pipeline execution, through one run (a gate) of it."""

    execution: str
    run_id: str
    pipeline: str | None = None


class Lease(_Document):
    """The holder of a lock: which execution, since when, until when at the latest."""

    execution: str
    run_id: str
    pipeline: str | None = None
    since: float
    expires: float


class Waiter(_Document):
    """An execution waiting for a lock; it leaves the queue if not seen by `lapses`."""

    execution: str
    run_id: str
    pipeline: str | None = None
    mode: LockMode = LockMode.SEQUENTIAL
    since: float
    seen: float
    lapses: float


class Supersession(_Document):
    """A waiter superseded by a later arrival (`latest`), kept for it to find."""

    execution: str
    run_id: str
    by: str
    at: float


class LockEvent(_Document):
    """One line of a lock's audit trail."""

    action: Literal["acquired", "released", "expired", "forced", "superseded", "lapsed"]
    execution: str
    at: float
    by: str | None = None
    reason: str = ""


class LockRecord(_Document):
    """A lock's document: its holder, its queue (first in line first), its audit trail."""

    name: str
    holder: Lease | None = None
    queue: list[Waiter] = Field(default_factory=list)
    superseded: list[Supersession] = Field(default_factory=list)
    history: list[LockEvent] = Field(default_factory=list)

    def held(self, now: float) -> Lease | None:
        """The holder while its lease runs (None when free or expired)."""
        holder = self.holder
        return holder if holder is not None and holder.expires > now else None

    def note(self, event: LockEvent) -> None:
        self.history = [*self.history, event][-MAX_HISTORY:]


@dataclass(frozen=True)
class Held:
    """The claimant holds the lock (just taken, or held already: the lease was renewed)."""

    lease: Lease
    took_over: Lease | None = None
    """An expired lease this acquisition replaced."""


@dataclass(frozen=True)
class Waiting:
    """The claimant waits: `position` of `waiting` in the queue."""

    holder: Lease | None
    position: int
    waiting: int
    first: Waiter | None
    """The waiter first in line (it takes a free lock at its next poll)."""


@dataclass(frozen=True)
class Superseded:
    """A later execution arriving in `latest` mode took the claimant's place."""

    by: str
    at: float


Verdict = Held | Waiting | Superseded


@dataclass(frozen=True)
class Release:
    """What an unlock did: the lease it ended (None: this execution held none), whether it
    took the execution out of the queue, and who holds the lock otherwise."""

    released: Lease | None
    dequeued: bool
    holder: Lease | None


def acquire(
    record: LockRecord, claimant: Claimant, mode: LockMode, hold: float, grace: float, now: float
) -> Verdict:
    """The claimant asks for the lock at `now` (changes `record`): see the module docstring.

    `hold` is how long a lease lasts; `grace` how long the claimant stays queued without
    polling again."""
    expired = _expire(record, now)
    _lapse(record, now, claimant.execution)
    for note in record.superseded:
        if note.execution == claimant.execution and note.run_id == claimant.run_id:
            return Superseded(note.by, note.at)
    holder = record.holder
    if holder is not None and holder.execution == claimant.execution:
        # a second lock step of the same execution, or its own retry: held, lease renewed
        holder.expires = max(holder.expires, now + hold)
        holder.run_id = claimant.run_id
        record.queue = [w for w in record.queue if w.execution != claimant.execution]
        return Held(holder)
    waiter = next((w for w in record.queue if w.execution == claimant.execution), None)
    if waiter is None:
        if mode is LockMode.LATEST:
            for older in record.queue:
                record.superseded.append(
                    Supersession(
                        execution=older.execution,
                        run_id=older.run_id,
                        by=claimant.execution,
                        at=now,
                    )
                )
                record.note(
                    LockEvent(
                        action="superseded",
                        execution=older.execution,
                        at=now,
                        by=claimant.execution,
                    )
                )
            record.queue = []
        waiter = Waiter(
            execution=claimant.execution,
            run_id=claimant.run_id,
            pipeline=claimant.pipeline,
            mode=mode,
            since=now,
            seen=now,
            lapses=now + grace,
        )
        record.queue.append(waiter)
    else:
        waiter.run_id, waiter.seen, waiter.lapses = claimant.run_id, now, now + grace
    record.superseded = [s for s in record.superseded if s.at + SUPERSEDED_KEPT > now][
        -MAX_SUPERSEDED:
    ]
    if record.holder is None and record.queue[0].execution == claimant.execution:
        record.queue.pop(0)
        lease = Lease(
            execution=claimant.execution,
            run_id=claimant.run_id,
            pipeline=claimant.pipeline,
            since=now,
            expires=now + hold,
        )
        record.holder = lease
        record.note(LockEvent(action="acquired", execution=claimant.execution, at=now))
        return Held(lease, took_over=expired)
    position = next(i for i, w in enumerate(record.queue) if w.execution == claimant.execution)
    return Waiting(record.holder, position + 1, len(record.queue), record.queue[0])


def release(record: LockRecord, execution: str, now: float) -> Release:
    """The execution lets the lock go (changes `record`): its lease ends, even one that has
    expired and not been taken over yet; it leaves the queue if it waits."""
    before = len(record.queue)
    record.queue = [w for w in record.queue if w.execution != execution]
    dequeued = len(record.queue) < before
    holder = record.holder
    if holder is not None and holder.execution == execution:
        record.holder = None
        record.note(LockEvent(action="released", execution=execution, at=now))
        return Release(holder, dequeued, None)
    return Release(None, dequeued, record.held(now))


def force_release(record: LockRecord, by: str, reason: str, now: float) -> Lease | None:
    """An operator ends the lease, whoever holds it (changes `record`); None when none did."""
    holder = record.holder
    if holder is None:
        return None
    record.holder = None
    record.note(
        LockEvent(action="forced", execution=holder.execution, at=now, by=by, reason=reason)
    )
    return holder


def _expire(record: LockRecord, now: float) -> Lease | None:
    """End a lease that ran out (noting it); the lease, if one did."""
    holder = record.holder
    if holder is None or holder.expires > now:
        return None
    record.holder = None
    record.note(LockEvent(action="expired", execution=holder.execution, at=now))
    return holder


def _lapse(record: LockRecord, now: float, polling: str) -> None:
    """Drop waiters not seen within their grace (never the one polling now)."""
    kept: list[Waiter] = []
    for waiter in record.queue:
        if waiter.lapses <= now and waiter.execution != polling:
            record.note(LockEvent(action="lapsed", execution=waiter.execution, at=now))
        else:
            kept.append(waiter)
    record.queue = kept


def freeze(
    record: FreezeRecord, by: str, reason: str, until: float | None, now: float
) -> Freeze | None:
    """Set the freeze (changes `record`), replacing one that is on; that one, if any."""
    previous = record.active(now)
    record.current = Freeze(name=record.name, by=by, since=now, reason=reason, until=until)
    record.note(FreezeEvent(action="set", by=by, at=now, reason=reason, until=until))
    return previous


def unfreeze(record: FreezeRecord, by: str, reason: str, now: float) -> Freeze | None:
    """Lift the freeze (changes `record`); the one lifted (None: none was set)."""
    current = record.current
    if current is None:
        return None
    record.current = None
    record.note(FreezeEvent(action="lifted", by=by, at=now, reason=reason))
    return current


# endregion
# region the store and the service


class Kind(enum.Enum):
    """What a governance document is."""

    FREEZE = "freeze"
    LOCK = "lock"


@dataclass(frozen=True)
class Versioned:
    """A stored document and the version a write must name to replace it."""

    document: dict[str, Any]
    version: int


class GovernanceStore(Protocol):
    """Where freezes and locks live: versioned JSON documents, by kind and name.

    Production: `orchestrator.store.governance.DynamoGovernanceStore` (items beside the runs).
    """

    def read(self, kind: Kind, name: str) -> Versioned | None:
        """The document, read consistently; None if there is none. Raises StoreUnavailable."""
        ...

    def write(
        self, kind: Kind, name: str, document: dict[str, Any], expected_version: int | None
    ) -> None:
        """Store the document as version `expected_version + 1` (None: as the first, when
        there is none). Raises ConflictError when the stored version is another,
        StoreUnavailable on faults."""
        ...

    def read_all(self, kind: Kind) -> list[Versioned]:
        """Every document of the kind (for the CLI's listings). Raises StoreUnavailable."""
        ...


_Record = TypeVar("_Record", FreezeRecord, LockRecord)
_Result = TypeVar("_Result")


class Governance:
    """Freezes and locks over a GovernanceStore: what `ctx.services.governance` is."""

    def __init__(self, store: GovernanceStore, attempts: int = ATTEMPTS) -> None:
        self._store = store
        self._attempts = attempts

    # freezes

    def active(self, name: str, now: float) -> Freeze | None:
        """FreezeLookup: the freeze named `name` while it is on at `now`."""
        found = self._store.read(Kind.FREEZE, name)
        if found is None:
            return None
        return FreezeRecord.model_validate(found.document).active(now)

    def freeze(
        self, name: str, by: str, reason: str, until: float | None, now: float
    ) -> tuple[FreezeRecord, Freeze | None]:
        """Set a freeze; the record and the freeze it replaced, if one was on."""
        return self._change(
            Kind.FREEZE, name, FreezeRecord, lambda r: freeze(r, by, reason, until, now)
        )

    def unfreeze(
        self, name: str, by: str, reason: str, now: float
    ) -> tuple[FreezeRecord, Freeze | None]:
        """Lift a freeze; the record and the freeze lifted (None: none was set)."""
        return self._change(Kind.FREEZE, name, FreezeRecord, lambda r: unfreeze(r, by, reason, now))

    def freezes(self) -> list[FreezeRecord]:
        found = [FreezeRecord.model_validate(v.document) for v in self._store.read_all(Kind.FREEZE)]
        return sorted(found, key=lambda r: r.name)

    # locks

    def acquire(
        self,
        name: str,
        claimant: Claimant,
        mode: LockMode,
        hold: float,
        grace: float,
        now: float,
    ) -> Verdict:
        """A lock step's poll (see `acquire`). Raises StoreUnavailable, GovernanceBusy."""
        _, verdict = self._change(
            Kind.LOCK, name, LockRecord, lambda r: acquire(r, claimant, mode, hold, grace, now)
        )
        return verdict

    def release(self, name: str, execution: str, now: float) -> Release:
        """An unlock step (see `release`). Raises StoreUnavailable, GovernanceBusy."""
        _, released = self._change(
            Kind.LOCK, name, LockRecord, lambda r: release(r, execution, now)
        )
        return released

    def force_release(self, name: str, by: str, reason: str, now: float) -> Lease | None:
        """`orchestrator unlock --force`: the lease ended (None: the lock was not held)."""
        _, lease = self._change(
            Kind.LOCK, name, LockRecord, lambda r: force_release(r, by, reason, now)
        )
        return lease

    def lock(self, name: str) -> LockRecord | None:
        found = self._store.read(Kind.LOCK, name)
        return LockRecord.model_validate(found.document) if found is not None else None

    def locks(self) -> list[LockRecord]:
        found = [LockRecord.model_validate(v.document) for v in self._store.read_all(Kind.LOCK)]
        return sorted(found, key=lambda r: r.name)

    def _change(
        self,
        kind: Kind,
        name: str,
        model: type[_Record],
        decide: Callable[[_Record], _Result],
    ) -> tuple[_Record, _Result]:
        """Read, decide, write on the version read; again when another writer came first.
        Nothing is written when the decision changed nothing."""
        for _ in range(self._attempts):
            found = self._store.read(kind, name)
            record = model.model_validate(found.document) if found else model(name=name)
            before = record.model_dump(mode="json")
            result = decide(record)
            after = record.model_dump(mode="json")
            if after == before:
                return record, result
            try:
                self._store.write(kind, name, after, found.version if found else None)
            except ConflictError:
                continue
            return record, result
        raise GovernanceBusy(
            f"{kind.value} {name}: changed by others at each of {self._attempts} attempts"
        )


# endregion
