"""template.yaml's approval endpoint, checked offline: a generated key only the two functions
may read, a public function URL in front of a function whose role can do little else."""

from __future__ import annotations

import functools
import json
import re
from typing import Any

import pytest

from tests.package.test_template import TEMPLATE, iam_statements, load_cfn, wildcard_findings

ENDPOINT = "ApprovalFunction"
ENDPOINT_ROLE = "ApprovalRole"
KEY = "ApprovalSigningKey"


@functools.cache
def _transformed() -> str:
    from samtranslator.translator.transform import transform

    class _NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    template = load_cfn(TEMPLATE)
    for resource in template["Resources"].values():  # what `sam package` does to CodeUri
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://artifacts/orchestrator.zip"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
        patch.delenv("AWS_PROFILE", raising=False)
        return json.dumps(transform(template, {}, _NoManagedPolicies()))


def resources() -> dict[str, Any]:
    found: dict[str, Any] = json.loads(_transformed())["Resources"]
    return found


def test_the_signing_key_is_generated_never_written() -> None:
    key = load_cfn(TEMPLATE)["Resources"][KEY]
    assert key["Type"] == "AWS::SecretsManager::Secret"
    assert key["Properties"]["GenerateSecretString"]["PasswordLength"] >= 32
    assert "SecretString" not in key["Properties"]
    assert re.search(r"\bSecretString\s*:", TEMPLATE.read_text()) is None


def test_the_endpoint_is_a_public_function_url_on_its_own_function() -> None:
    found = resources()
    function = found[ENDPOINT]["Properties"]
    assert function["Handler"] == "orchestrator.approval.web.handler"
    assert function["Role"] == {"Fn::GetAtt": [ENDPOINT_ROLE, "Arn"]}
    assert function["Environment"]["Variables"] == {
        "ORCHESTRATOR_TABLE_NAME": {"Ref": "RunsTable"},
        "ORCHESTRATOR_LOG_LEVEL": {"Ref": "LogLevel"},
        "ORCHESTRATOR_APPROVAL_SECRET_ARN": {"Ref": KEY},
    }
    url = found[f"{ENDPOINT}Url"]
    assert url["Type"] == "AWS::Lambda::Url"
    assert url["Properties"]["AuthType"] == "NONE"
    permissions = {
        p["Properties"]["Action"]: p["Properties"]
        for p in found.values()
        if p["Type"] == "AWS::Lambda::Permission"
    }
    assert permissions["lambda:InvokeFunctionUrl"]["FunctionUrlAuthType"] == "NONE"
    assert permissions["lambda:InvokeFunction"]["InvokedViaFunctionUrl"] is True
    outputs = json.loads(_transformed())["Outputs"]
    assert outputs["ApprovalEndpointUrl"]["Value"] == {
        "Fn::GetAtt": [f"{ENDPOINT}Url", "FunctionUrl"]
    }


def test_the_gate_function_knows_where_links_point_and_what_signs_them() -> None:
    variables = resources()["OrchestratorFunction"]["Properties"]["Environment"]["Variables"]
    assert variables["ORCHESTRATOR_APPROVAL_URL"] == {
        "Fn::GetAtt": [f"{ENDPOINT}Url", "FunctionUrl"]
    }
    assert variables["ORCHESTRATOR_APPROVAL_SECRET_ARN"] == {"Ref": KEY}
    from orchestrator.settings import Settings

    assert {"approval_url", "approval_secret_arn"} <= set(Settings.model_fields)


def _statements(role: str) -> dict[str, dict[str, Any]]:
    return {
        statement["Sid"]: statement
        for where, statement in iam_statements({"Resources": resources()})
        if where.startswith(f"{role}.Policies")
    }


def test_the_endpoint_role_reads_a_run_writes_a_decision_and_reads_the_key() -> None:
    statements = _statements(ENDPOINT_ROLE)
    assert statements == {
        "RecordDecisions": {
            "Sid": "RecordDecisions",
            "Effect": "Allow",
            "Action": ["dynamodb:GetItem", "dynamodb:UpdateItem"],
            "Resource": {"Fn::GetAtt": ["RunsTable", "Arn"]},
        },
        "ReadSigningKey": {
            "Sid": "ReadSigningKey",
            "Effect": "Allow",
            "Action": "secretsmanager:GetSecretValue",
            "Resource": {"Ref": KEY},
        },
        "OwnLogGroup": {
            "Sid": "OwnLogGroup",
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": {"Fn::GetAtt": ["ApprovalLogGroup", "Arn"]},
        },
    }
    assert [f for sid, s in statements.items() for f in wildcard_findings(sid, s)] == []


def test_only_the_two_functions_may_read_the_key_and_only_that_secret() -> None:
    readers = {
        where.split(".")[0]: statement
        for where, statement in iam_statements({"Resources": resources()})
        if statement.get("Resource") == {"Ref": KEY}
    }
    assert set(readers) == {"OrchestratorRole", ENDPOINT_ROLE}
    for statement in readers.values():
        assert statement["Action"] == "secretsmanager:GetSecretValue"
