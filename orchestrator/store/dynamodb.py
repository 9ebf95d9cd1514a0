"""The runs table through pynamodb: one item per run, written only with conditions.

The table name is not known at import time: `bind_model()` makes the model class for one
table, once, at the entry point (handler or CLI). Endpoints follow botocore's standard
resolution (`AWS_ENDPOINT_URL_DYNAMODB`); retries use botocore's standard mode.
"""

from __future__ import annotations

import heapq
import json
import zlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pynamodb.attributes import MapAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.constants import NONE
from pynamodb.exceptions import DoesNotExist, PynamoDBException
from pynamodb.indexes import GlobalSecondaryIndex, IncludeProjection, KeysOnlyProjection
from pynamodb.models import Model

from orchestrator.exceptions import ConflictError, StoreUnavailable
from orchestrator.model import (
    Answer,
    Control,
    Pin,
    RunRecord,
    RunState,
    RunStatus,
    RunSummary,
    Signals,
)

if TYPE_CHECKING:
    from botocore.session import Session as BotocoreSession

LIST_INDEX = "by-status-sharded"
LIST_SHARDS = 16
"""`orchestrator runs` reads the runs index `by-status-sharded`, whose partition key is
`list_key` = "<STATUS>#<shard>" (shard: crc32 of the run id modulo LIST_SHARDS) and sort key
`listed_at` (when the run entered that status). Both are written only on a status
transition: by the run's first write (RUNNING) and by its last (SUCCEEDED or FAILED). A tick
that only advances never writes them, so the index receives no write from it, and the
transitions of N runs spread over LIST_SHARDS partitions per status (docs/SCALING.md). The
projection is keys only: the listing fetches the few summaries it shows with BatchGetItem."""
LEGACY_INDEX = "by-status"
"""The index before `by-status-sharded` (partition key `status`, sort key `updated_at`,
rewritten by every tick). Items written by earlier releases are still in it: the listing
reads it too, as long as the table has it (template.yaml keeps it for RunRetentionDays after
an upgrade; docs/SCALING.md). The first write of this release to such a running item moves it
over (sets `list_key`, removes `updated_at`); ticks now keep their time in `ticked_at`."""
DEFINITION_PREFIX = "definition#"
"""Pinned definitions share the runs table: key `definition#<sha256>`, no `list_key` (nor
`status`), so they are in no index; DynamoDB's TTL removes them like runs."""
FREEZE_PREFIX = "freeze#"
LOCK_PREFIX = "lock#"
DIRECTORY_KEY = "governance#directory"
"""Freezes, locks and the directory of their names share the table too, in no index and
with no TTL (orchestrator.store.governance)."""
EXECUTION_PREFIX = "execution#"
"""Keys of the items naming the run of a pipeline execution's action (resume on retry)."""
NOT_RUNS = (DEFINITION_PREFIX, FREEZE_PREFIX, LOCK_PREFIX, DIRECTORY_KEY, EXECUTION_PREFIX)
"""Keys of the items that are not runs start with one of these."""
_CONDITION_FAILED = "ConditionalCheckFailedException"
_INVALID = "ValidationException"  # e.g. SET of a key in a map the item does not have
_LISTED = ("run_id", "#status", "created_at", "ticked_at", "updated_at", "summary")
"""What the listing fetches of each run it shows (`status` is a reserved word)."""
_UNLISTED_MEMO = 4096
"""At most this many loaded-but-not-yet-written legacy run ids are remembered."""


def list_shard(run_id: str) -> int:
    """The run's shard of the listing index: stable across processes and releases."""
    return zlib.crc32(run_id.encode()) % LIST_SHARDS


def list_key(status: RunStatus, run_id: str) -> str:
    return f"{status.value}#{list_shard(run_id)}"


class _Listing(GlobalSecondaryIndex["RunItem"]):  # type: ignore[no-untyped-call]  # pynamodb
    """Runs by status and shard, newest transition first: what `orchestrator runs` queries."""

    class Meta:
        index_name = LIST_INDEX
        projection = KeysOnlyProjection()

    list_key = UnicodeAttribute(hash_key=True)
    listed_at = NumberAttribute(range_key=True)


class _LegacyByStatus(GlobalSecondaryIndex["RunItem"]):  # type: ignore[no-untyped-call]
    """The index of earlier releases (LEGACY_INDEX), read for the items they wrote."""

    class Meta:
        index_name = LEGACY_INDEX
        projection = IncludeProjection(["created_at", "summary", "last_job_id", "version"])

    status = UnicodeAttribute(hash_key=True)
    updated_at = NumberAttribute(range_key=True)


class RunItem(Model):
    """One run. `state` and `answer` are JSON documents of the engine's models."""

    run_id = UnicodeAttribute(hash_key=True)
    version = NumberAttribute()
    status = UnicodeAttribute()
    updated_at = NumberAttribute(attr_name="ticked_at", null=True)
    """When the run was last written (`ticked_at`: in no index)."""
    legacy_updated_at = NumberAttribute(attr_name="updated_at", null=True)
    """What earlier releases wrote instead of `ticked_at`, the legacy index's sort key."""
    list_key = UnicodeAttribute(null=True)
    """The listing index's partition key, written on status transitions only."""
    listed_at = NumberAttribute(null=True)
    """The listing index's sort key: when the run entered its status."""
    created_at = NumberAttribute()
    expires_at = NumberAttribute()
    nonce = UnicodeAttribute(null=True)
    prev_nonce = UnicodeAttribute(null=True)
    last_job_id = UnicodeAttribute()
    summary = UnicodeAttribute()
    state = UnicodeAttribute()
    answer = UnicodeAttribute()
    cancel_requested_by = UnicodeAttribute(null=True)
    pin = UnicodeAttribute(null=True)  # JSON of model.Pin; written by the first write only
    # The run's signals (model.Signals), never written by the tick's updates:
    # "<step>|<principal>" -> JSON {"decision", "comment", "at"}, written by approvers;
    decisions: MapAttribute[str, Any] = MapAttribute(default=dict)  # type: ignore[no-untyped-call]
    # "<step>|<key>" -> JSON, a step's once-per-key claims (items written before claims had
    # an attribute of their own kept them in `decisions`, under keys starting with "~").
    claims: MapAttribute[str, Any] = MapAttribute(default=dict)  # type: ignore[no-untyped-call]
    # "<at>|<action>" -> JSON of model.Control: operators' controls, written once each.
    controls: MapAttribute[str, Any] = MapAttribute(default=dict)  # type: ignore[no-untyped-call]

    listing = _Listing()
    legacy_by_status = _LegacyByStatus()


def bind_model(
    table_name: str,
    region: str | None = None,
    host: str | None = None,
    retries: int = 3,
    loader_from: BotocoreSession | None = None,
) -> type[RunItem]:
    """A RunItem class bound to one table (pynamodb reads `Meta` at class creation).

    pynamodb makes its own botocore session; `loader_from` lends it another session's data
    loader, so that botocore's JSON (endpoints, partitions, service models) that boto3 has
    already parsed is not parsed again: about 30 ms less on a cold start.
    """
    meta = type(
        "Meta",
        (),
        {
            "table_name": table_name,
            "region": region,
            "host": host,
            "max_retry_attempts": retries,
            "connect_timeout_seconds": 3,
            "read_timeout_seconds": 5,
        },
    )
    model: type[RunItem] = type("BoundRunItem", (RunItem,), {"Meta": meta, "__module__": __name__})
    if loader_from is not None:
        session = model._get_connection().connection.session  # this thread's session
        session.register_component("data_loader", loader_from.get_component("data_loader"))
    return model


class DynamoRunStore:
    """RunStore on DynamoDB."""

    def __init__(self, model: type[RunItem]) -> None:
        self._model = model
        self._unlisted: dict[str, None] = {}
        """Runs loaded without `list_key` (written by an earlier release): their next write
        lists them (the memo spares every other write a look at the index attributes)."""
        self._legacy_index = True  # until a query finds the table without it

    def load(self, run_id: str) -> RunRecord | None:
        if run_id.startswith(NOT_RUNS):
            return None  # not a run
        try:
            item = self._model.get(run_id, consistent_read=True)
        except DoesNotExist:
            return None
        except PynamoDBException as exc:
            raise StoreUnavailable(f"run {run_id}: read failed ({_code(exc)})") from exc
        if item.list_key is None:
            if len(self._unlisted) >= _UNLISTED_MEMO:
                self._unlisted.clear()
            self._unlisted[run_id] = None
        return _to_record(item)

    def save(
        self, record: RunRecord, expected_version: int | None, *, clear_cancel: bool = False
    ) -> None:
        model = self._model
        item = _to_item(model, record)
        try:
            if expected_version is None:
                item.save(condition=model.run_id.does_not_exist())
            else:
                # UPDATE, not PUT: a cancel request written meanwhile must survive. Through
                # the model's table connection rather than `item.update()`, which asks for
                # the whole item back (ReturnValues ALL_NEW) only to parse it again.
                actions = [
                    model.version.set(item.version),
                    model.status.set(item.status),
                    model.updated_at.set(item.updated_at),
                    model.expires_at.set(item.expires_at),
                    model.nonce.set(item.nonce) if item.nonce else model.nonce.remove(),
                    (
                        model.prev_nonce.set(item.prev_nonce)
                        if item.prev_nonce
                        else model.prev_nonce.remove()
                    ),
                    model.last_job_id.set(item.last_job_id),
                    model.summary.set(item.summary),
                    model.state.set(item.state),
                    model.answer.set(item.answer),
                ]
                # The index attributes change on a transition only (the run ends), or once
                # for a run an earlier release wrote (out of the legacy index, into this one).
                legacy = self._unlisted.pop(record.run_id, 0) is None
                if legacy:
                    actions.append(model.legacy_updated_at.remove())
                if legacy or record.state.status is not RunStatus.RUNNING:
                    actions.append(model.list_key.set(item.list_key))
                    actions.append(model.listed_at.set(item.listed_at))
                if clear_cancel:
                    # Safe from a lost cancel: request_cancel needs a running run, and the
                    # item says failed until this write.
                    actions.append(model.cancel_requested_by.remove())
                model._get_connection().update_item(
                    record.run_id,
                    return_values=NONE,
                    actions=actions,
                    condition=model.version == expected_version,
                )
        except PynamoDBException as exc:
            if _code(exc) == _CONDITION_FAILED:
                raise ConflictError(f"run {record.run_id}: version moved on") from exc
            raise StoreUnavailable(f"run {record.run_id}: write failed ({_code(exc)})") from exc

    def put_definition(self, key: str, document: str, expires_at: int) -> None:
        # Content-addressed: a repeated or concurrent put writes the same bytes (and pushes
        # the expiry out for the newest run that uses it), so it needs no condition.
        connection = self._model._get_connection()
        try:
            connection.put_item(
                DEFINITION_PREFIX + key,
                attributes={"definition": {"S": document}, "expires_at": {"N": str(expires_at)}},
            )
        except PynamoDBException as exc:
            raise StoreUnavailable(f"definition {key}: write failed ({_code(exc)})") from exc

    def load_definition(self, key: str) -> str | None:
        connection = self._model._get_connection()
        try:
            found = connection.get_item(DEFINITION_PREFIX + key, consistent_read=True)
        except PynamoDBException as exc:
            raise StoreUnavailable(f"definition {key}: read failed ({_code(exc)})") from exc
        item = found.get("Item") or {}
        value = item.get("definition", {}).get("S")
        return value if isinstance(value, str) else None

    def link_execution(self, key: str, run_id: str, expires_at: int) -> str:
        connection = self._model._get_connection()
        attributes = {"run": {"S": run_id}, "expires_at": {"N": str(expires_at)}}
        try:
            connection.put_item(
                EXECUTION_PREFIX + key,
                attributes=attributes,
                condition=self._model.run_id.does_not_exist(),
            )
        except PynamoDBException as exc:
            if _code(exc) != _CONDITION_FAILED:
                raise StoreUnavailable(f"execution {key}: write failed ({_code(exc)})") from exc
        else:
            return run_id
        try:
            found = connection.get_item(EXECUTION_PREFIX + key, consistent_read=True)
        except PynamoDBException as exc:
            raise StoreUnavailable(f"execution {key}: read failed ({_code(exc)})") from exc
        linked = (found.get("Item") or {}).get("run", {}).get("S")
        return linked if isinstance(linked, str) else run_id

    def relink_execution(self, key: str, run_id: str, expires_at: int) -> None:
        connection = self._model._get_connection()
        attributes = {"run": {"S": run_id}, "expires_at": {"N": str(expires_at)}}
        try:
            connection.put_item(EXECUTION_PREFIX + key, attributes=attributes)
        except PynamoDBException as exc:
            raise StoreUnavailable(f"execution {key}: write failed ({_code(exc)})") from exc

    def request_cancel(self, run_id: str, who: str) -> bool:
        model = self._model
        try:
            model(run_id).update(
                actions=[model.cancel_requested_by.set(who)],
                condition=model.run_id.exists() & (model.status == RunStatus.RUNNING.value),
            )
        except PynamoDBException as exc:
            if _code(exc) == _CONDITION_FAILED:
                return False
            raise StoreUnavailable(f"run {run_id}: cancel failed ({_code(exc)})") from exc
        return True

    def record_decision(
        self, run_id: str, step: str, principal: str, decision: dict[str, Any]
    ) -> bool:
        return self._once("decisions", run_id, f"{step}|{principal}", decision)

    def claim(self, run_id: str, step: str, key: str, value: dict[str, Any]) -> bool:
        return self._once("claims", run_id, f"{step}|{key}", value)

    def record_control(self, run_id: str, control: Control) -> bool:
        key = f"{control.at:017.6f}|{control.action}"
        return self._once("controls", run_id, key, control.model_dump(mode="json"))

    def _once(self, attribute: str, run_id: str, key: str, document: dict[str, Any]) -> bool:
        """Write `document` under `key` in a map attribute of a running run, at most once."""
        model = self._model
        value = json.dumps(document)
        field = {"decisions": model.decisions, "controls": model.controls}.get(
            attribute, model.claims
        )
        running = model.run_id.exists() & (model.status == RunStatus.RUNNING.value)
        try:
            try:
                model(run_id).update(
                    actions=[field[key].set(value)], condition=running & field[key].does_not_exist()
                )
            except PynamoDBException as exc:
                if not (attribute == "claims" and _code(exc) == _INVALID):
                    raise
                # An item written before claims had their own map: the map comes with the entry.
                model(run_id).update(
                    actions=[field.set({key: value})], condition=running & field.does_not_exist()
                )
        except PynamoDBException as exc:
            if _code(exc) == _CONDITION_FAILED:
                # Our own write, applied but its response lost and retried by botocore?
                return self._holds(run_id, attribute, key, value)
            raise StoreUnavailable(f"run {run_id}: {attribute} failed ({_code(exc)})") from exc
        return True

    def _holds(self, run_id: str, attribute: str, key: str, value: str) -> bool:
        """Whether the run's map `attribute` holds exactly `value` under `key`."""
        try:
            item = self._model.get(run_id, consistent_read=True, attributes_to_get=[attribute])
        except PynamoDBException:
            return False  # unknown: the caller was told no, which is the safe side
        return bool(_map(getattr(item, attribute)).get(key) == value)

    def recent(self, status: RunStatus | None, limit: int) -> list[RunSummary]:
        """Reads every shard of the wanted statuses (and the legacy index) newest transition
        first, a page each in parallel, and merges them, fetching a further page only from a
        shard whose page ran out among the newest `limit`; then the summaries of those runs
        with BatchGetItem. Its cost grows with `limit`, not with the table."""
        statuses = [status] if status else list(RunStatus)
        queries: list[tuple[str, str, str, str]] = [
            (LIST_INDEX, "list_key", f"{wanted.value}#{shard}", "listed_at")
            for wanted in statuses
            for shard in range(LIST_SHARDS)
        ]
        if self._legacy_index:
            queries += [(LEGACY_INDEX, "status", w.value, "updated_at") for w in statuses]
        client = self._client()
        parts = [_Partition(*query) for query in queries]
        size = max(10, -(-2 * limit // len(parts)))  # ~2x each shard's share of `limit`
        chosen: list[str] = []
        try:
            # botocore keeps 10 connections per client: more threads would open and drop more.
            with ThreadPoolExecutor(max_workers=min(8, len(parts))) as pool:
                list(pool.map(lambda part: self._page(client, part, size), parts))
            heap = [(-part.head(), i) for i, part in enumerate(parts) if part.entries]
            heapq.heapify(heap)
            seen: set[str] = set()
            while heap and len(chosen) < limit:
                _, i = heapq.heappop(heap)
                part = parts[i]
                run_id, _ = part.entries.popleft()
                if run_id not in seen:  # in both indexes while it moves over: newest wins
                    seen.add(run_id)
                    chosen.append(run_id)
                if not part.entries and part.more is not None:
                    self._page(client, part, size)
                if part.entries:
                    heapq.heappush(heap, (-part.head(), i))
        except Exception as exc:
            raise StoreUnavailable(f"listing runs failed ({_client_code(exc)})") from exc
        try:
            items = self._batch_get(client, chosen)
        except Exception as exc:
            raise StoreUnavailable(f"listing runs failed ({_client_code(exc)})") from exc
        found: list[RunSummary] = []
        for run_id in chosen:
            item = items.get(run_id)
            if item is None:
                continue  # expired (TTL) between the query and the read
            current = RunStatus(item["status"]["S"])
            if status is not None and current is not status:
                continue  # it changed status meanwhile
            found.append(
                RunSummary(
                    run_id=run_id,
                    status=current,
                    created_at=float(item["created_at"]["N"]),
                    updated_at=_updated_at(
                        _number(item, "ticked_at"),
                        _number(item, "updated_at"),
                        _number(item, "created_at"),
                    ),
                    summary=item.get("summary", {}).get("S", ""),
                )
            )
        return found

    def _client(self) -> Any:
        """The botocore client under the model's connection (thread-safe, unlike pynamodb's
        per-thread sessions), for the listing's parallel queries."""
        return self._model._get_connection().connection.client

    def _page(self, client: Any, part: _Partition, size: int) -> None:
        """The next `size` entries of one index partition, newest first, into `part`."""
        params: dict[str, Any] = {
            "TableName": self._model.Meta.table_name,
            "IndexName": part.index,
            "KeyConditionExpression": "#k = :v",
            "ExpressionAttributeNames": {"#k": part.key},
            "ExpressionAttributeValues": {":v": {"S": part.value}},
            "ScanIndexForward": False,
            "Limit": size,
        }
        if part.more:
            params["ExclusiveStartKey"] = part.more
        try:
            page = client.query(**params)
        except client.exceptions.ClientError as exc:
            if part.index == LEGACY_INDEX and _client_code(exc) == _INVALID:
                self._legacy_index = False  # the table has no legacy index (any more)
                part.more = None
                return
            raise
        part.entries.extend((i["run_id"]["S"], float(i[part.sort]["N"])) for i in page["Items"])
        part.more = page.get("LastEvaluatedKey")

    def _batch_get(self, client: Any, run_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The listed attributes of these runs (eventually consistent: it is a listing)."""
        found: dict[str, dict[str, Any]] = {}
        table = self._model.Meta.table_name
        for start in range(0, len(run_ids), 100):  # BatchGetItem takes 100 keys at most
            request: dict[str, Any] = {
                table: {
                    "Keys": [{"run_id": {"S": r}} for r in run_ids[start : start + 100]],
                    "ProjectionExpression": ", ".join(_LISTED),
                    "ExpressionAttributeNames": {"#status": "status"},
                }
            }
            while request:
                answer = client.batch_get_item(RequestItems=request)
                for item in answer.get("Responses", {}).get(table, []):
                    found[item["run_id"]["S"]] = item
                request = answer.get("UnprocessedKeys") or {}
        return found


@dataclass
class _Partition:
    """One index partition being read newest first: what is fetched and not yet merged."""

    index: str
    key: str
    value: str
    sort: str
    entries: deque[tuple[str, float]] = field(default_factory=deque)
    more: dict[str, Any] | None = field(default_factory=dict)
    """Where the next page starts; {} before the first page, None after the last."""

    def head(self) -> float:
        return self.entries[0][1]


def _number(item: dict[str, Any], name: str) -> float | None:
    value = item.get(name, {}).get("N")
    return float(value) if value is not None else None


def _client_code(exc: Exception) -> str:
    """A botocore error's code, or the exception's name."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code") or type(exc).__name__)
    return type(exc).__name__


def _code(exc: PynamoDBException) -> str:
    """The AWS error code, or the exception's name when there was no response at all."""
    try:
        code = exc.cause_response_code
    except AttributeError:  # pynamodb assumes a response; timeouts and resets have none
        code = None
    return code or type(exc.cause or exc).__name__


def _to_item(model: type[RunItem], record: RunRecord) -> RunItem:
    running = record.state.status is RunStatus.RUNNING
    return model(
        record.run_id,
        version=record.version,
        status=record.state.status.value,
        updated_at=record.updated_at,
        created_at=record.created_at,
        list_key=list_key(record.state.status, record.run_id),
        # When the run entered its status: started (running), else ended (this write).
        listed_at=record.created_at if running else record.updated_at,
        expires_at=record.expires_at,
        nonce=record.nonce,
        prev_nonce=record.prev_nonce,
        last_job_id=record.last_job_id,
        summary=record.last_answer.summary[:1000],
        state=record.state.model_dump_json(),
        decisions={},
        claims={},
        controls={},
        answer=record.last_answer.model_dump_json(),
        cancel_requested_by=None,
        pin=record.pin.model_dump_json() if record.pin else None,
    )


def _to_record(item: RunItem) -> RunRecord:
    state: dict[str, Any] = json.loads(item.state)
    return RunRecord(
        version=int(item.version),
        nonce=item.nonce,
        prev_nonce=item.prev_nonce,
        state=RunState.model_validate(state),
        last_job_id=item.last_job_id,
        last_answer=Answer.model_validate_json(item.answer),
        created_at=float(item.created_at),
        updated_at=_updated_at(item.updated_at, item.legacy_updated_at, item.created_at),
        expires_at=int(item.expires_at),
        signals=_signals(item),
        pin=Pin.model_validate_json(item.pin) if item.pin else None,
    )


def _updated_at(ticked: Any, legacy: Any, created: Any) -> float:
    """`ticked_at`, or what an earlier release wrote (`updated_at`), or the creation time."""
    for value in (ticked, legacy, created):
        if value is not None:
            return float(value)
    return 0.0


def _signals(item: RunItem) -> Signals:
    decisions: dict[str, dict[str, Any]] = {}
    claims: dict[str, dict[str, Any]] = {}
    for key, value in _map(item.decisions).items():
        step, _, principal = str(key).partition("|")
        if principal.startswith("~"):  # a claim, as items before the claims map kept them
            claims.setdefault(step, {})[principal[1:]] = json.loads(value)
        else:
            decisions.setdefault(step, {})[principal] = json.loads(value)
    for key, value in _map(item.claims).items():
        step, _, name = str(key).partition("|")
        claims.setdefault(step, {})[name] = json.loads(value)
    controls = [
        Control.model_validate(json.loads(value))
        for _, value in sorted(_map(item.controls).items())
    ]
    return Signals(
        cancel_requested_by=item.cancel_requested_by,
        decisions=decisions,
        claims=claims,
        controls=controls,
    )


def _map(attribute: Any) -> dict[str, Any]:
    """A MapAttribute's content as a dict ({} when the item has none)."""
    found: dict[str, Any] = attribute.as_dict() if attribute is not None else {}
    return found
