"""The runs table through pynamodb: one item per run, written only with conditions.

The table name is not known at import time: `bind_model()` makes the model class for one
table, once, at the entry point (handler or CLI). Endpoints follow botocore's standard
resolution (`AWS_ENDPOINT_URL_DYNAMODB`); retries use botocore's standard mode.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pynamodb.attributes import MapAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.constants import NONE
from pynamodb.exceptions import DoesNotExist, PynamoDBException
from pynamodb.indexes import GlobalSecondaryIndex, IncludeProjection
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

STATUS_INDEX = "by-status"
DEFINITION_PREFIX = "definition#"
"""Pinned definitions share the runs table: key `definition#<sha256>`, no `status`, so
they are in no index; DynamoDB's TTL removes them like runs."""
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


class _ByStatus(GlobalSecondaryIndex["RunItem"]):  # type: ignore[no-untyped-call]  # pynamodb
    """Runs by status, newest first: what `orchestrator runs` queries."""

    class Meta:
        index_name = STATUS_INDEX
        projection = IncludeProjection(["created_at", "summary", "last_job_id", "version"])

    status = UnicodeAttribute(hash_key=True)
    updated_at = NumberAttribute(range_key=True)


class RunItem(Model):
    """One run. `state` and `answer` are JSON documents of the engine's models."""

    run_id = UnicodeAttribute(hash_key=True)
    version = NumberAttribute()
    status = UnicodeAttribute()
    updated_at = NumberAttribute()
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

    by_status = _ByStatus()


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

    def load(self, run_id: str) -> RunRecord | None:
        if run_id.startswith(NOT_RUNS):
            return None  # not a run
        try:
            item = self._model.get(run_id, consistent_read=True)
        except DoesNotExist:
            return None
        except PynamoDBException as exc:
            raise StoreUnavailable(f"run {run_id}: read failed ({_code(exc)})") from exc
        return _to_record(item)

    def save(self, record: RunRecord, expected_version: int | None) -> None:
        model = self._model
        item = _to_item(model, record)
        try:
            if expected_version is None:
                item.save(condition=model.run_id.does_not_exist())
            else:
                # UPDATE, not PUT: a cancel request written meanwhile must survive. Through
                # the model's table connection rather than `item.update()`, which asks for
                # the whole item back (ReturnValues ALL_NEW) only to parse it again.
                model._get_connection().update_item(
                    record.run_id,
                    return_values=NONE,
                    actions=[
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
                    ],
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
        statuses = [status] if status else list(RunStatus)
        found: list[RunSummary] = []
        try:
            for wanted in statuses:
                for item in self._model.by_status.query(
                    wanted.value, scan_index_forward=False, limit=limit
                ):
                    found.append(
                        RunSummary(
                            run_id=item.run_id,
                            status=RunStatus(item.status),
                            created_at=float(item.created_at),
                            updated_at=float(item.updated_at),
                            summary=item.summary,
                        )
                    )
        except PynamoDBException as exc:
            raise StoreUnavailable(f"listing runs failed ({_code(exc)})") from exc
        found.sort(key=lambda run: run.updated_at, reverse=True)
        return found[:limit]


def _code(exc: PynamoDBException) -> str:
    """The AWS error code, or the exception's name when there was no response at all."""
    try:
        code = exc.cause_response_code
    except AttributeError:  # pynamodb assumes a response; timeouts and resets have none
        code = None
    return code or type(exc.cause or exc).__name__


def _to_item(model: type[RunItem], record: RunRecord) -> RunItem:
    return model(
        record.run_id,
        version=record.version,
        status=record.state.status.value,
        updated_at=record.updated_at,
        created_at=record.created_at,
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
        updated_at=float(item.updated_at),
        expires_at=int(item.expires_at),
        signals=_signals(item),
        pin=Pin.model_validate_json(item.pin) if item.pin else None,
    )


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
