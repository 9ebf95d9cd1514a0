"""template.yaml's approval endpoint, checked offline: a generated key only the two functions
may read, a public function URL in front of a function whose role can do little else."""

from __future__ import annotations

import functools
import json
import re
from typing import Any

import pytest

from tests.package.test_template import (
    TEMPLATE,
    Evaluator,
    iam_statements,
    load_cfn,
    parameter_values,
    wildcard_findings,
)

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
        "ORCHESTRATOR_SLACK_SIGNING_SECRET_ARN": {"Ref": "SlackSigningSecretArn"},
        "ORCHESTRATOR_OIDC_ISSUER": {"Ref": "OidcIssuer"},
        "ORCHESTRATOR_OIDC_CLIENT_ID": {"Ref": "OidcClientId"},
        "ORCHESTRATOR_OIDC_CLIENT_SECRET_ARN": {"Ref": "OidcClientSecretArn"},
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


def _statements(role: str, **given: str) -> dict[str, dict[str, Any]]:
    """The role's statements by Sid, its conditions evaluated for these parameter values."""
    template = json.loads(_transformed())
    evaluated = Evaluator(template, parameter_values(template, **given)).value(resources())
    return {
        statement["Sid"]: statement
        for where, statement in iam_statements({"Resources": evaluated})
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


SLACK_SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:slack-signing-AbCdEf"


def test_the_slack_signing_secret_is_read_only_when_given_and_only_that_secret() -> None:
    without = _statements(ENDPOINT_ROLE)
    assert "ReadSlackSigningSecret" not in without
    given = _statements(ENDPOINT_ROLE, SlackSigningSecretArn=SLACK_SECRET)
    assert given.pop("ReadSlackSigningSecret") == {
        "Sid": "ReadSlackSigningSecret",
        "Effect": "Allow",
        "Action": "secretsmanager:GetSecretValue",
        "Resource": SLACK_SECRET,
    }
    assert given == without
    gate_role = _statements("OrchestratorRole", SlackSigningSecretArn=SLACK_SECRET)
    assert SLACK_SECRET not in json.dumps(gate_role)  # the gate function never reads it
    parameter = load_cfn(TEMPLATE)["Parameters"]["SlackSigningSecretArn"]
    assert parameter["Default"] == ""
    assert re.fullmatch(parameter["AllowedPattern"], SLACK_SECRET)
    assert re.fullmatch(parameter["AllowedPattern"], "")
    assert not re.fullmatch(parameter["AllowedPattern"], "xoxb-not-an-arn")
    from orchestrator.settings import Settings

    assert "slack_signing_secret_arn" in Settings.model_fields


OIDC_SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:oidc-client-AbCdEf"


def test_the_oidc_client_secret_is_read_only_when_given_and_only_that_secret() -> None:
    without = _statements(ENDPOINT_ROLE)
    assert "ReadOidcClientSecret" not in without
    given = _statements(ENDPOINT_ROLE, OidcClientSecretArn=OIDC_SECRET)
    assert given.pop("ReadOidcClientSecret") == {
        "Sid": "ReadOidcClientSecret",
        "Effect": "Allow",
        "Action": "secretsmanager:GetSecretValue",
        "Resource": OIDC_SECRET,
    }
    assert given == without
    gate_role = _statements("OrchestratorRole", OidcClientSecretArn=OIDC_SECRET)
    assert OIDC_SECRET not in json.dumps(gate_role)  # the gate function never reads it
    parameters = load_cfn(TEMPLATE)["Parameters"]
    for name in ("OidcIssuer", "OidcClientId", "OidcClientSecretArn"):
        assert parameters[name]["Type"] == "String" and parameters[name]["Default"] == ""
    secret = parameters["OidcClientSecretArn"]["AllowedPattern"]
    assert re.fullmatch(secret, OIDC_SECRET) and re.fullmatch(secret, "")
    assert not re.fullmatch(secret, "the-secret-itself")
    issuer = parameters["OidcIssuer"]["AllowedPattern"]
    assert re.fullmatch(issuer, "https://login.example.com/realms/ops") and re.fullmatch(issuer, "")
    assert not re.fullmatch(issuer, "http://login.example.com")  # discovery over TLS only
    from orchestrator.settings import Settings

    assert {"oidc_issuer", "oidc_client_id", "oidc_client_secret_arn"} <= set(Settings.model_fields)


def test_customer_managed_keys_reach_the_endpoint_only_through_their_services() -> None:
    """The endpoint reads the table and the signing key: with their own KMS keys it may use
    those keys through DynamoDB and Secrets Manager only; the queue's key is not its own."""
    table_key = "arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555"
    secret_key = "arn:aws:kms:eu-west-1:123456789012:key/66666666-2222-3333-4444-555555555555"
    queue_key = "arn:aws:kms:eu-west-1:123456789012:key/77777777-2222-3333-4444-555555555555"
    without = _statements(ENDPOINT_ROLE)
    given = _statements(
        ENDPOINT_ROLE,
        TableKmsKeyArn=table_key,
        SecretKmsKeyArn=secret_key,
        QueueKmsKeyArn=queue_key,
    )
    table, secret = given.pop("UseTableKey"), given.pop("UseSecretKey")
    assert given == without
    assert table["Resource"] == table_key
    assert table["Condition"] == {
        "StringEquals": {"kms:ViaService": {"Fn::Sub": "dynamodb.${AWS::Region}.amazonaws.com"}}
    }
    assert secret["Action"] == "kms:Decrypt" and secret["Resource"] == secret_key
    assert secret["Condition"] == {
        "StringEquals": {
            "kms:ViaService": {"Fn::Sub": "secretsmanager.${AWS::Region}.amazonaws.com"}
        }
    }
