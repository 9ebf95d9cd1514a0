"""Freezes and locks in the runs table: the GovernanceStore on DynamoDB.

Each is one item beside the runs, keyed `freeze#<name>` or `lock#<name>`, holding a JSON
`document` and a `version`; writes are PutItems conditional on that version (or on the item
not existing yet). The items carry no `list_key` and no `status`, so the runs indexes
(`orchestrator runs`) never list them, and no `expires_at`, so DynamoDB's TTL never removes
them (their audit trail is bounded instead). The names of every freeze and lock are kept in
one directory item, `governance#directory` (string sets, added to before an item is
created): the CLI lists them from there, with no scan.

The function needs only GetItem, PutItem and UpdateItem on the table, which it has already.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pynamodb.attributes import UnicodeSetAttribute
from pynamodb.exceptions import PynamoDBException

from orchestrator.exceptions import ConflictError, StoreUnavailable
from orchestrator.governance import Kind, Versioned
from orchestrator.store.dynamodb import DIRECTORY_KEY, FREEZE_PREFIX, LOCK_PREFIX, RunItem, _code

if TYPE_CHECKING:
    from pynamodb.connection import TableConnection
    from pynamodb.expressions.condition import Condition

_PREFIX = {Kind.FREEZE: FREEZE_PREFIX, Kind.LOCK: LOCK_PREFIX}
_CONDITION_FAILED = "ConditionalCheckFailedException"
# The directory's attributes (the items' `run_id` and `version` are the run model's).
_NAMES = {
    Kind.FREEZE: UnicodeSetAttribute(attr_name="freeze_names"),
    Kind.LOCK: UnicodeSetAttribute(attr_name="lock_names"),
}


class DynamoGovernanceStore:
    """GovernanceStore on the runs table, through the run model's own connection (one
    botocore session for both)."""

    def __init__(self, model: type[RunItem]) -> None:
        self._model = model

    def _table(self) -> TableConnection:
        return self._model._get_connection()

    def read(self, kind: Kind, name: str) -> Versioned | None:
        key = _PREFIX[kind] + name
        try:
            found = self._table().get_item(key, consistent_read=True)
        except PynamoDBException as exc:
            raise StoreUnavailable(f"{kind.value} {name}: read failed ({_code(exc)})") from exc
        return _versioned(found.get("Item"))

    def write(
        self, kind: Kind, name: str, document: dict[str, Any], expected_version: int | None
    ) -> None:
        key = _PREFIX[kind] + name
        model = self._model
        table = self._table()
        condition: Condition
        try:
            if expected_version is None:
                # Listed before it exists: a listing may name a lock not created yet (and
                # skips it), never miss one that exists.
                table.update_item(DIRECTORY_KEY, actions=[_NAMES[kind].add({name})])
                condition = model.run_id.does_not_exist()
            else:
                condition = model.version == expected_version
            version = 1 if expected_version is None else expected_version + 1
            table.put_item(
                key,
                attributes={
                    "kind": {"S": kind.value},
                    "version": {"N": str(version)},
                    "document": {"S": json.dumps(document, separators=(",", ":"))},
                },
                condition=condition,
            )
        except PynamoDBException as exc:
            if _code(exc) == _CONDITION_FAILED:
                raise ConflictError(f"{kind.value} {name}: changed meanwhile") from exc
            raise StoreUnavailable(f"{kind.value} {name}: write failed ({_code(exc)})") from exc

    def read_all(self, kind: Kind) -> list[Versioned]:
        table = self._table()
        try:
            directory = table.get_item(DIRECTORY_KEY, consistent_read=True).get("Item") or {}
            names = sorted(directory.get(_NAMES[kind].attr_name, {}).get("SS", []))
            found = [
                _versioned(table.get_item(_PREFIX[kind] + n, consistent_read=True).get("Item"))
                for n in names
            ]
        except PynamoDBException as exc:
            raise StoreUnavailable(f"listing {kind.value}s failed ({_code(exc)})") from exc
        return [v for v in found if v is not None]


def _versioned(item: dict[str, Any] | None) -> Versioned | None:
    if not item or "document" not in item:
        return None
    document = json.loads(item["document"]["S"])
    return Versioned(document=document, version=int(item["version"]["N"]))
