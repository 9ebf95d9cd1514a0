"""The DynamoDB store against DynamoDB Local, through pynamodb's public API."""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path
from typing import Any

import botocore.session
import pytest

from orchestrator.exceptions import ConflictError, StoreUnavailable
from orchestrator.local.schema import create_table_params
from orchestrator.model import Answer, AnswerKind, RunRecord, RunState, RunStatus, StepState
from orchestrator.store.dynamodb import DynamoRunStore, bind_model, list_shard

LEGACY_FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "v1_run_item.json"


def record(run_id: str, version: int, status: RunStatus = RunStatus.RUNNING) -> RunRecord:
    state = RunState(
        run_id=run_id, started_at=1.0, deadline=2.0, status=status, steps=[StepState(detail="x")]
    )
    answer = Answer(
        kind=AnswerKind.IN_PROGRESS,
        run_id=run_id,
        summary=f"v{version}",
        token=f"t{version}",
        percent=version,
    )
    return RunRecord(
        version=version,
        nonce=f"n{version}",
        state=state,
        last_job_id=f"j{version}",
        last_answer=answer,
        created_at=1.0,
        updated_at=float(version),
        expires_at=99,
    )


def test_table_matches_the_template(dynamodb: Any, table_name: str) -> None:
    described = dynamodb.describe_table(TableName=table_name)["Table"]
    declared = create_table_params(table_name)
    assert described["KeySchema"] == declared["KeySchema"]
    assert sorted(i["IndexName"] for i in described["GlobalSecondaryIndexes"]) == [
        "by-status",
        "by-status-sharded",
    ]
    ttl = dynamodb.describe_time_to_live(TableName=table_name)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expires_at"
    # The pynamodb model and the template agree on attributes, keys and the index.
    schema = bind_model(table_name)._get_schema()  # pynamodb's only view of a model's schema

    def by_name(items: Any) -> list[Any]:
        return sorted(items, key=lambda item: item["AttributeName"])

    assert by_name(schema["attribute_definitions"]) == by_name(declared["AttributeDefinitions"])
    assert schema["key_schema"] == declared["KeySchema"]
    indexes = {i["index_name"]: i for i in schema["global_secondary_indexes"]}
    assert len(indexes) == len(declared["GlobalSecondaryIndexes"])
    for declared_index in declared["GlobalSecondaryIndexes"]:
        index = indexes[declared_index["IndexName"]]
        assert index["key_schema"] == declared_index["KeySchema"]
        assert index["projection"] == declared_index["Projection"]


def test_conditional_writes(table_name: str) -> None:
    store = DynamoRunStore(bind_model(table_name))
    store.save(record("r1", 1), None)
    with pytest.raises(ConflictError):
        store.save(record("r1", 1), None)
    store.save(record("r1", 2), 1)
    with pytest.raises(ConflictError):
        store.save(record("r1", 3), 1)
    loaded = store.load("r1")
    assert loaded is not None and loaded.version == 2 and loaded.last_answer.summary == "v2"
    assert store.load("missing") is None


def test_a_store_that_borrows_boto3s_data_loader_works_and_parses_nothing_twice(
    table_name: str,
) -> None:
    core = botocore.session.get_session()
    model = bind_model(table_name, loader_from=core)
    store = DynamoRunStore(model)
    store.save(record("r1", 1), None)
    loaded = store.load("r1")
    assert loaded is not None and loaded.version == 1
    session = model._get_connection().connection.session
    assert session is not core
    assert session.get_component("data_loader") is core.get_component("data_loader")


def test_only_one_of_many_concurrent_writers_wins(table_name: str) -> None:
    store = DynamoRunStore(bind_model(table_name))
    store.save(record("r1", 1), None)
    barrier = threading.Barrier(10)
    wins: list[int] = []

    def write(i: int) -> None:
        barrier.wait()
        try:
            store.save(record("r1", 2).model_copy(update={"last_job_id": f"w{i}"}), 1)
            wins.append(i)
        except ConflictError:
            pass

    threads = [threading.Thread(target=write, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(wins) == 1
    loaded = store.load("r1")
    assert loaded is not None and loaded.last_job_id == f"w{wins[0]}"


def test_cancel_survives_a_concurrent_tick_write(table_name: str) -> None:
    store = DynamoRunStore(bind_model(table_name))
    store.save(record("r1", 1), None)
    assert store.request_cancel("r1", "alice")
    store.save(record("r1", 2), 1)  # a tick that read before the cancel
    loaded = store.load("r1")
    assert loaded is not None and loaded.signals.cancel_requested_by == "alice"
    store.save(record("r2", 1, RunStatus.SUCCEEDED), None)
    assert not store.request_cancel("r2", "bob")
    assert not store.request_cancel("nope", "bob")


def test_recent_lists_newest_first_by_status(table_name: str) -> None:
    store = DynamoRunStore(bind_model(table_name))
    for i in range(5):  # a running run is listed by when it started
        store.save(record(f"r{i}", 1).model_copy(update={"created_at": float(i)}), None)
    store.save(record("done", 1, RunStatus.FAILED).model_copy(update={"updated_at": 10.0}), None)
    assert [r.run_id for r in store.recent(RunStatus.RUNNING, 3)] == ["r4", "r3", "r2"]
    assert [r.run_id for r in store.recent(None, 2)] == ["done", "r4"]
    (done,) = store.recent(RunStatus.FAILED, 5)
    assert (done.summary, done.updated_at, done.created_at) == ("v1", 10.0, 1.0)
    assert store.recent(RunStatus.SUCCEEDED, 5) == []


def test_many_runs_spread_over_the_shards_and_are_all_listed(table_name: str) -> None:
    store = DynamoRunStore(bind_model(table_name))
    for i in range(40):
        store.save(record(f"run-{i:02}", 1).model_copy(update={"created_at": float(i)}), None)
    listed = store.recent(RunStatus.RUNNING, 40)
    assert [r.run_id for r in listed] == [f"run-{i:02}" for i in reversed(range(40))]
    assert len({list_shard(r.run_id) for r in listed}) > 1
    assert [r.run_id for r in store.recent(RunStatus.RUNNING, 7)] == [
        f"run-{i:02}" for i in range(39, 32, -1)
    ]


def test_only_transitions_write_the_index_attributes(dynamodb: Any, table_name: str) -> None:
    """The first write lists the run; an advancing write leaves `list_key` and `listed_at`
    alone (a marker planted between the writes survives); the last write moves the run."""
    store = DynamoRunStore(bind_model(table_name))
    store.save(record("r1", 1), None)
    first = dynamodb.get_item(TableName=table_name, Key={"run_id": {"S": "r1"}})["Item"]
    assert first["list_key"] == {"S": f"RUNNING#{list_shard('r1')}"}
    assert float(first["listed_at"]["N"]) == 1.0  # created_at
    assert "updated_at" not in first  # out of the legacy index
    dynamodb.update_item(
        TableName=table_name,
        Key={"run_id": {"S": "r1"}},
        UpdateExpression="SET list_key = :k, listed_at = :t",
        ExpressionAttributeValues={":k": {"S": "marker"}, ":t": {"N": "-1"}},
    )
    assert store.load("r1") is not None
    store.save(record("r1", 2), 1)
    item = dynamodb.get_item(TableName=table_name, Key={"run_id": {"S": "r1"}})["Item"]
    assert (item["list_key"], item["listed_at"]) == ({"S": "marker"}, {"N": "-1"})
    assert float(item["ticked_at"]["N"]) == 2.0 and item["version"] == {"N": "2"}
    store.save(record("r1", 3, RunStatus.SUCCEEDED), 2)
    item = dynamodb.get_item(TableName=table_name, Key={"run_id": {"S": "r1"}})["Item"]
    assert item["list_key"] == {"S": f"SUCCEEDED#{list_shard('r1')}"}
    assert float(item["listed_at"]["N"]) == 3.0


def _legacy_item(run_id: str, status: str, updated_at: int) -> dict[str, Any]:
    """An item as releases before the sharded index wrote it (tests/fixtures)."""
    raw: dict[str, Any] = json.loads(LEGACY_FIXTURE.read_text())["item"]
    state = RunState.model_validate_json(raw["state"]["S"]).model_copy(
        update={"run_id": run_id, "status": RunStatus(status)}
    )
    return {
        **raw,
        "run_id": {"S": run_id},
        "status": {"S": status},
        "updated_at": {"N": str(updated_at)},
        "created_at": {"N": str(updated_at - 10)},
        "state": {"S": state.model_dump_json()},
    }


def test_runs_written_by_an_earlier_release_are_listed_and_move_over(
    dynamodb: Any, table_name: str
) -> None:
    for run_id, status, at in (("old-run", "RUNNING", 50), ("old-done", "SUCCEEDED", 60)):
        dynamodb.put_item(TableName=table_name, Item=_legacy_item(run_id, status, at))
    store = DynamoRunStore(bind_model(table_name))
    store.save(record("new", 1).model_copy(update={"created_at": 55.0}), None)
    assert [r.run_id for r in store.recent(None, 10)] == ["old-done", "new", "old-run"]
    assert [r.run_id for r in store.recent(RunStatus.RUNNING, 10)] == ["new", "old-run"]
    (old,) = [r for r in store.recent(None, 10) if r.run_id == "old-done"]
    assert old.updated_at == 60.0 and old.status is RunStatus.SUCCEEDED
    # The first write of this release lists the old running run in the sharded index.
    loaded = store.load("old-run")
    assert loaded is not None and loaded.updated_at == 50.0
    moved_on = loaded.model_copy(update={"version": loaded.version + 1, "updated_at": 70.0})
    store.save(moved_on, loaded.version)
    item = dynamodb.get_item(TableName=table_name, Key={"run_id": {"S": "old-run"}})["Item"]
    assert "updated_at" not in item and item["list_key"]["S"].startswith("RUNNING#")
    assert [r.run_id for r in store.recent(RunStatus.RUNNING, 10)] == ["new", "old-run"]
    (moved,) = [r for r in store.recent(None, 10) if r.run_id == "old-run"]
    assert moved.updated_at == 70.0


def test_the_listing_does_without_the_legacy_index(dynamodb: Any) -> None:
    name = f"runs-{uuid.uuid4().hex[:12]}"
    params = create_table_params(name)
    params["GlobalSecondaryIndexes"] = [
        i for i in params["GlobalSecondaryIndexes"] if i["IndexName"] != "by-status"
    ]
    params["AttributeDefinitions"] = [
        a
        for a in params["AttributeDefinitions"]
        if a["AttributeName"] in ("run_id", "list_key", "listed_at")
    ]
    dynamodb.create_table(**params)
    store = DynamoRunStore(bind_model(name))
    store.save(record("r1", 1), None)
    assert [r.run_id for r in store.recent(None, 5)] == ["r1"]
    assert [r.run_id for r in store.recent(RunStatus.RUNNING, 5)] == ["r1"]


def test_definitions_and_governance_items_are_never_listed(table_name: str) -> None:
    from orchestrator.governance import Kind
    from orchestrator.store.governance import DynamoGovernanceStore

    model = bind_model(table_name)
    store = DynamoRunStore(model)
    store.save(record("r1", 1), None)
    store.put_definition("abc", "{}", 99)
    governance = DynamoGovernanceStore(model)
    governance.write(Kind.FREEZE, "prod", {"reason": "x"}, None)
    governance.write(Kind.LOCK, "env", {"holder": "y"}, None)
    assert [r.run_id for r in store.recent(None, 50)] == ["r1"]


def test_an_unreachable_table_is_store_unavailable(table_name: str) -> None:
    store = DynamoRunStore(bind_model(table_name, host="http://127.0.0.1:9", retries=0))
    with pytest.raises(StoreUnavailable, match="run r1: read failed"):
        store.load("r1")
    with pytest.raises(StoreUnavailable, match="run r1: write failed"):
        store.save(record("r1", 1), None)


def test_decisions_are_recorded_once_per_principal_and_survive_tick_writes(
    table_name: str,
) -> None:
    store = DynamoRunStore(bind_model(table_name))
    store.save(record("r1", 1), None)
    alice = "arn:aws:sts::123456789012:assumed-role/Release/alice@example.com"
    decision = {"decision": "approve", "comment": "ok.", "at": 5.0}
    assert store.record_decision("r1", "approve", alice, decision)
    assert not store.record_decision("r1", "approve", alice, {**decision, "decision": "reject"})
    assert store.record_decision("r1", "other", alice, decision)
    store.save(record("r1", 2), 1)  # a tick write after the decisions
    loaded = store.load("r1")
    assert loaded is not None
    assert loaded.signals.decisions == {"approve": {alice: decision}, "other": {alice: decision}}
    store.save(record("done", 1, RunStatus.SUCCEEDED), None)
    assert not store.record_decision("done", "approve", alice, decision)
    assert not store.record_decision("missing", "approve", alice, decision)


def test_claims_have_their_own_map_apart_from_decisions(table_name: str, dynamodb: Any) -> None:
    store = DynamoRunStore(bind_model(table_name))
    store.save(record("r1", 1), None)
    mine, theirs = {"at": 1.0, "by": "me"}, {"at": 1.0, "by": "them"}
    assert store.claim("r1", "check", "invoke-0", mine)
    assert not store.claim("r1", "check", "invoke-0", theirs)
    assert store.claim("r1", "check", "invoke-0", mine)  # its own, found again
    alice = "arn:aws:iam::123456789012:user/alice"
    assert store.record_decision("r1", "check", alice, {"decision": "approve"})
    store.save(record("r1", 2), 1)  # a tick write after both
    loaded = store.load("r1")
    assert loaded is not None
    assert loaded.signals.claims == {"check": {"invoke-0": mine}}
    assert loaded.signals.decisions == {"check": {alice: {"decision": "approve"}}}
    item = dynamodb.get_item(TableName=table_name, Key={"run_id": {"S": "r1"}})["Item"]
    assert set(item["claims"]["M"]) == {"check|invoke-0"}
    assert set(item["decisions"]["M"]) == {f"check|{alice}"}


def test_a_run_written_before_the_claims_map_keeps_its_claims(
    table_name: str, dynamodb: Any
) -> None:
    """Items of the previous version kept claims in `decisions` under "~" keys and have no
    `claims` map: they read as claims, and a new claim creates the map."""
    store = DynamoRunStore(bind_model(table_name))
    store.save(record("old", 1), None)
    earlier = json.dumps({"at": 1.0, "by": "old-code"})
    dynamodb.update_item(
        TableName=table_name,
        Key={"run_id": {"S": "old"}},
        UpdateExpression="REMOVE claims SET decisions = :d",
        ExpressionAttributeValues={":d": {"M": {"check|~invoke-0": {"S": earlier}}}},
    )
    loaded = store.load("old")
    assert loaded is not None
    assert loaded.signals.claims == {"check": {"invoke-0": json.loads(earlier)}}
    assert loaded.signals.decisions == {}
    assert store.claim("old", "check", "result-0", {"result": 1})
    assert not store.claim("old", "check", "result-0", {"result": 2})
    again = store.load("old")
    assert again is not None and again.signals.claims["check"]["result-0"] == {"result": 1}
