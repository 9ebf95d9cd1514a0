"""The wire validator against botocore's CodePipeline model (and a few synthetic shapes)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from botocore.model import ShapeResolver

from orchestrator.local import wire

JOB_ID = "0123abcd-4567-89ab-cdef-0123456789ab"


def details() -> dict[str, Any]:
    """A GetJobDetails response as CodePipeline sends it for a Lambda invoke action."""
    return {
        "jobDetails": {
            "id": JOB_ID,
            "accountId": "123456789012",
            "data": {
                "actionTypeId": {
                    "category": "Invoke",
                    "owner": "AWS",
                    "provider": "Lambda",
                    "version": "1",
                },
                "actionConfiguration": {
                    "configuration": {"FunctionName": "gate", "UserParameters": "{}"}
                },
                "pipelineContext": {
                    "pipelineName": "my-pipeline",
                    "stage": {"name": "Deploy"},
                    "action": {"name": "Gate", "actionExecutionId": "a1"},
                    "pipelineArn": "arn:aws:codepipeline:us-east-1:123456789012:my-pipeline",
                    "pipelineExecutionId": JOB_ID,
                },
                "inputArtifacts": [
                    {
                        "name": "SourceOutput",
                        "revision": None,
                        "location": {
                            "type": "S3",
                            "s3Location": {"bucketName": "b", "objectKey": "k.zip"},
                        },
                    }
                ],
                "outputArtifacts": [],
                "artifactCredentials": {
                    "accessKeyId": "ASIAEXAMPLE",
                    "secretAccessKey": "secret",
                    "sessionToken": "token",
                },
                "continuationToken": "abc",
                "encryptionKey": {"id": "arn:aws:kms:us-east-1:123456789012:key/1", "type": "KMS"},
            },
        }
    }


def test_a_complete_success_result_is_valid() -> None:
    params = {
        "jobId": JOB_ID,
        "currentRevision": {"revision": "r1", "changeIdentifier": "c1", "created": 1700000000},
        "executionDetails": {"summary": "done", "externalExecutionId": "x", "percentComplete": 100},
        "outputVariables": {"Result": "ok", "build@id-1_x": ""},
    }
    assert wire.validate_input("PutJobSuccessResult", params) == []


def test_a_failure_result_and_a_details_response_are_valid() -> None:
    failure = {"jobId": JOB_ID, "failureDetails": {"type": "JobFailed", "message": "no"}}
    assert wire.validate_input("PutJobFailureResult", failure) == []
    assert wire.validate_output("GetJobDetails", details()) == []


def test_a_too_long_summary_is_named_with_its_path_and_limit() -> None:
    params = {"jobId": JOB_ID, "executionDetails": {"summary": "x" * 3000}}
    assert wire.validate_input("PutJobSuccessResult", params) == [
        "executionDetails.summary: length 3000 > max 2048"
    ]


def test_the_maximum_length_itself_is_accepted() -> None:
    params = {"jobId": JOB_ID, "continuationToken": "t" * 2048}
    assert wire.validate_input("PutJobSuccessResult", params) == []
    params["continuationToken"] = "t" * 2049
    assert wire.validate_input("PutJobSuccessResult", params) == [
        "continuationToken: length 2049 > max 2048"
    ]


def test_minimum_length_is_checked() -> None:
    params = {"jobId": JOB_ID, "failureDetails": {"type": "JobFailed", "message": ""}}
    assert wire.validate_input("PutJobFailureResult", params) == [
        "failureDetails.message: length 0 < min 1"
    ]


def test_required_members_are_required_at_every_level() -> None:
    assert wire.validate_input(
        "PutJobFailureResult", {"failureDetails": {"type": "JobFailed"}}
    ) == [
        "jobId: required member missing",
        "failureDetails.message: required member missing",
    ]


def test_null_reads_as_absent() -> None:
    assert (
        wire.validate_input("PutJobSuccessResult", {"jobId": JOB_ID, "continuationToken": None})
        == []
    )
    assert wire.validate_input("GetJobDetails", {"jobId": None}) == [
        "jobId: required member missing"
    ]


def test_unknown_members_are_rejected() -> None:
    params = {"jobId": JOB_ID, "jobid": JOB_ID, "executionDetails": {"summary": "s", "percent": 5}}
    assert wire.validate_input("PutJobSuccessResult", params) == [
        "jobid: unknown member",
        "executionDetails.percent: unknown member",
    ]


@pytest.mark.parametrize(
    "job_id",
    [JOB_ID.upper(), JOB_ID + "0", "x" + JOB_ID, JOB_ID.replace("-", ""), ""],
)
def test_patterns_must_match_the_whole_value(job_id: str) -> None:
    errors = wire.validate_input("GetJobDetails", {"jobId": job_id})
    assert len(errors) == 1
    assert errors[0].startswith("jobId: does not match pattern [0-9a-f]{8}-")


def test_enums_are_enforced() -> None:
    params = {"jobId": JOB_ID, "failureDetails": {"type": "Failed", "message": "m"}}
    [error] = wire.validate_input("PutJobFailureResult", params)
    assert error.startswith("failureDetails.type: not one of [JobFailed, ConfigurationError,")


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (101, "executionDetails.percentComplete: value 101 > max 100"),
        (-1, "executionDetails.percentComplete: value -1 < min 0"),
        (True, "executionDetails.percentComplete: expected integer, got boolean"),
        (50.5, "executionDetails.percentComplete: expected integer, got number"),
        ("50", "executionDetails.percentComplete: expected integer, got string"),
    ],
)
def test_integers_have_a_type_and_a_range(value: object, error: str) -> None:
    params = {"jobId": JOB_ID, "executionDetails": {"percentComplete": value}}
    assert wire.validate_input("PutJobSuccessResult", params) == [error]


def test_map_keys_and_values_are_checked() -> None:
    params = {"jobId": JOB_ID, "outputVariables": {"bad key": "v", "n": 3}}
    assert wire.validate_input("PutJobSuccessResult", params) == [
        r"outputVariables[bad key]: key does not match pattern [A-Za-z0-9@\-_]+",
        "outputVariables[n]: expected string, got integer",
    ]


def test_timestamps_are_numbers_on_the_wire() -> None:
    revision: dict[str, Any] = {"revision": "r", "changeIdentifier": "c", "created": "yesterday"}
    params = {"jobId": JOB_ID, "currentRevision": revision}
    assert wire.validate_input("PutJobSuccessResult", params) == [
        "currentRevision.created: expected timestamp, got string"
    ]
    revision["created"] = 1700000000.5
    assert wire.validate_input("PutJobSuccessResult", params) == []


def test_lists_of_structures_report_the_index() -> None:
    response = details()
    data = response["jobDetails"]["data"]
    data["outputArtifacts"] = copy.deepcopy(data["inputArtifacts"])
    data["outputArtifacts"][0]["name"] = "bad name"
    del data["outputArtifacts"][0]["location"]["s3Location"]["objectKey"]
    data["actionConfiguration"]["configuration"]["UserParameters"] = "u" * 1001
    assert wire.validate_output("GetJobDetails", response) == [
        "jobDetails.data.actionConfiguration.configuration[UserParameters]: length 1001 > max 1000",
        r"jobDetails.data.outputArtifacts[0].name: does not match pattern [a-zA-Z0-9_\-]+",
        "jobDetails.data.outputArtifacts[0].location.s3Location.objectKey: required member missing",
    ]


def test_wrong_container_types_are_reported() -> None:
    assert wire.validate_input("GetJobDetails", [JOB_ID]) == ["(root): expected object, got array"]
    params = {"jobId": JOB_ID, "executionDetails": "done", "outputVariables": ["a"]}
    assert wire.validate_input("PutJobSuccessResult", params) == [
        "executionDetails: expected object, got string",
        "outputVariables: expected object, got array",
    ]


def test_errors_never_echo_string_values() -> None:
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    params = {
        "jobId": secret,
        "executionDetails": {"summary": secret * 100},
        "failureDetails": secret,
    }
    errors = wire.validate_input("PutJobSuccessResult", params)
    assert len(errors) == 3
    assert not any(secret in error for error in errors)


def test_validate_shape_checks_a_named_shape() -> None:
    assert wire.validate_shape("EncryptionKey", {"id": "k", "type": "KMS"}) == []
    assert wire.validate_shape("EncryptionKey", {"id": "k", "type": "AES"}, "key") == [
        "key.type: not one of [KMS]"
    ]


SYNTHETIC_SHAPES: dict[str, Any] = {
    "Box": {
        "type": "structure",
        "members": {
            "tags": {"shape": "Tags"},
            "items": {"shape": "Items"},
            "flag": {"shape": "Flag"},
            "size": {"shape": "Size"},
        },
    },
    "Tags": {
        "type": "map",
        "key": {"shape": "Name"},
        "value": {"shape": "Name"},
        "min": 1,
        "max": 2,
    },
    "Items": {"type": "list", "member": {"shape": "Name"}, "min": 1, "max": 2},
    "Name": {"type": "string", "min": 1, "max": 3},
    "Flag": {"type": "boolean"},
    "Size": {"type": "long", "min": 1, "max": 10},
}
SYNTHETIC = ShapeResolver(SYNTHETIC_SHAPES)


def test_generic_shapes_map_list_boolean_and_long() -> None:
    box = SYNTHETIC.get_shape_by_name("Box")
    assert wire.validate(box, {"tags": {"a": "b"}, "items": ["x"], "flag": False, "size": 10}) == []
    assert wire.validate(
        box, {"tags": {"a": "b", "c": "d", "e": "f"}, "items": [], "flag": "yes", "size": 11}
    ) == [
        "tags: 3 entries > max 2",
        "items: 0 items < min 1",
        "flag: expected boolean, got string",
        "size: value 11 > max 10",
    ]
    assert wire.validate(box, {"tags": {}, "items": ["x", "long", "y"]}) == [
        "tags: 0 entries < min 1",
        "items: 3 items > max 2",
        "items[1]: length 4 > max 3",
    ]
    assert wire.validate(box, {"tags": {"long": ""}}) == [
        "tags[long]: key length 4 > max 3",
        "tags[long]: length 0 < min 1",
    ]
