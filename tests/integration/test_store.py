"""The DynamoDB store against DynamoDB Local, through pynamodb's public API."""

from __future__ import annotations

import json
import threading
from typing import Any

import botocore.session
import pytest

from orchestrator.exceptions import ConflictError, StoreUnavailable
from orchestrator.local.schema import create_table_params
from orchestrator.model import Answer, AnswerKind, RunRecord, RunState, RunStatus, StepState
from orchestrator.store.dynamodb import DynamoRunStore, bind_model


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
    assert [i["IndexName"] for i in described["GlobalSecondaryIndexes"]] == ["by-status"]
    ttl = dynamodb.describe_time_to_live(TableName=table_name)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expires_at"
    # The pynamodb model and the template agree on attributes, keys and the index.
    schema = bind_model(table_name)._get_schema()  # pynamodb's only view of a model's schema

    def by_name(items: Any) -> list[Any]:
        return sorted(items, key=lambda item: item["AttributeName"])

    assert by_name(schema["attribute_definitions"]) == by_name(declared["AttributeDefinitions"])
    assert schema["key_schema"] == declared["KeySchema"]
    (index,) = schema["global_secondary_indexes"]
    (declared_index,) = declared["GlobalSecondaryIndexes"]
    assert index["index_name"] == declared_index["IndexName"]
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


def test_recent_uses_the_status_index(table_name: str) -> None:
    store = DynamoRunStore(bind_model(table_name))
    for i in range(5):
        store.save(record(f"r{i}", 1).model_copy(update={"updated_at": float(i)}), None)
    store.save(record("done", 1, RunStatus.FAILED).model_copy(update={"updated_at": 10.0}), None)
    assert [r.run_id for r in store.recent(RunStatus.RUNNING, 3)] == ["r4", "r3", "r2"]
    assert [r.run_id for r in store.recent(None, 2)] == ["done", "r4"]


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
