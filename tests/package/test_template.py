"""template.yaml, examples/pipeline.yaml and the Lambda package, checked offline.

- cfn-lint (all rules, informational ones too) finds nothing in either template;
- the SAM translator turns template.yaml into CloudFormation without AWS access;
- every IAM statement (the function's role, the example pipeline's roles) is free of wildcard
  actions, and of `Resource: "*"` except for the documented exceptions; the checker is shown
  to catch each kind of wildcard;
- the ARN-list statements disappear when their parameters are empty (the Conditions and
  `Fn::If`s are evaluated here) and name exactly the given ARNs otherwise;
- the function's settings, alarms and outputs are the ones the code and docs rely on;
- the package `make build-OrchestratorFunction` builds takes only the runtime code (the file
  selection and pip command are checked; nothing is downloaded).
"""

from __future__ import annotations

import _imp
import ast
import functools
import importlib.metadata
import importlib.util
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import pytest
from packaging.requirements import Requirement

from orchestrator.local.schema import load_cfn_yaml
from scripts import build_lambda

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
PIPELINE = ROOT / "examples" / "pipeline.yaml"
TARGET_ROLE = ROOT / "examples" / "target-account-role.yaml"
DOCS = ROOT / "docs" / "DEPLOY.md"
MAKEFILE = ROOT / "Makefile"
FUNCTION = "OrchestratorFunction"
ROLE = "OrchestratorRole"
APPROVAL_FUNCTION = "ApprovalFunction"
APPROVAL_ROLE = "ApprovalRole"

RESOURCE_STAR_ALLOWED = frozenset(
    {
        # The job APIs accept only "*" (a pipeline ARN is refused).
        "codepipeline:PutJobSuccessResult",
        "codepipeline:PutJobFailureResult",
        "codepipeline:GetJobDetails",
        # Composite alarms are returned only to a permission scoped to "*" (API reference).
        "cloudwatch:DescribeAlarms",
        # GetMetricData has no resource-level permissions (no resource type in the Service
        # Authorization Reference); only with ReadMetrics "true".
        "cloudwatch:GetMetricData",
    }
)

# ---------------------------------------------------------------------------------------------
# Loading


def load_cfn(path: Path) -> dict[str, Any]:
    data = load_cfn_yaml(path.read_text())
    assert isinstance(data, dict)
    return data


class _OfflinePolicies:
    """The managed-policy loader the translator asks for; the template names no managed policy."""

    def load(self) -> dict[str, str]:
        return {}


@functools.cache
def _transformed() -> str:
    from samtranslator.translator.transform import transform

    template = load_cfn(TEMPLATE)
    # What `sam package` does to CodeUri before the transform runs in CloudFormation.
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = "s3://artifacts/orchestrator.zip"
    with pytest.MonkeyPatch.context() as patch:
        # The translator fills AWS::Region/AWS::Partition from a boto3 session; no call is made.
        patch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
        patch.delenv("AWS_PROFILE", raising=False)
        output = transform(template, {}, _OfflinePolicies())
    return json.dumps(output)


def transformed() -> dict[str, Any]:
    """template.yaml after the SAM transform: plain CloudFormation (a fresh copy)."""
    data = json.loads(_transformed())
    assert isinstance(data, dict)
    return data


# ---------------------------------------------------------------------------------------------
# cfn-lint and the SAM transform


@pytest.mark.parametrize(
    "path", [TEMPLATE, PIPELINE, TARGET_ROLE], ids=["template", "pipeline", "target-role"]
)
def test_cfn_lint_reports_nothing(path: Path) -> None:
    from cfnlint.api import ManualArgs, lint_file

    matches = lint_file(path, config=ManualArgs(include_checks=["I"]))
    assert [str(match) for match in matches] == []


def test_the_transformed_template_lints_clean_too() -> None:
    from cfnlint.api import ManualArgs, lint

    matches = lint(json.dumps(transformed()), config=ManualArgs(include_checks=["I"]))
    assert [str(match) for match in matches] == []


def test_sam_transform_gives_plain_cloudformation() -> None:
    template = transformed()
    assert "Transform" not in template
    types = {name: resource["Type"] for name, resource in template["Resources"].items()}
    assert types[FUNCTION] == "AWS::Lambda::Function"
    assert types[f"{FUNCTION}EventInvokeConfig"] == "AWS::Lambda::EventInvokeConfig"
    assert not any(kind.startswith("AWS::Serverless::") for kind in types.values())
    # The function uses the explicit role: SAM generated none (its default role would carry the
    # AWSLambdaBasicExecutionRole managed policy, logs on "*").
    roles = [name for name, kind in types.items() if kind == "AWS::IAM::Role"]
    assert sorted(roles) == sorted([ROLE, APPROVAL_ROLE])
    function = template["Resources"][FUNCTION]["Properties"]
    assert function["Role"] == {"Fn::GetAtt": [ROLE, "Arn"]}
    endpoint = template["Resources"][APPROVAL_FUNCTION]["Properties"]
    assert endpoint["Role"] == {"Fn::GetAtt": [APPROVAL_ROLE, "Arn"]}


# ---------------------------------------------------------------------------------------------
# The policy checker


def _branches(node: Any) -> Iterator[Any]:
    """Every value `node` can take: both sides of each Fn::If, AWS::NoValue dropped."""
    if isinstance(node, dict) and set(node) == {"Fn::If"}:
        _, when_true, when_false = node["Fn::If"]
        yield from _branches(when_true)
        yield from _branches(when_false)
    elif node == {"Ref": "AWS::NoValue"}:
        return
    else:
        yield node


def _items(node: Any) -> Iterator[Any]:
    """A Statement/Action/Resource value as its possible items (a string is one item)."""
    for value in _branches(node):
        if isinstance(value, list):
            for item in value:
                yield from _branches(item)
        else:
            yield value


def policy_documents(node: Any, where: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every policy document (a mapping with a Statement) anywhere under `node`."""
    if isinstance(node, dict):
        if "Statement" in node:
            yield where, node
            return
        for key, value in node.items():
            yield from policy_documents(value, f"{where}.{key}" if where else key)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from policy_documents(value, f"{where}[{index}]")


def iam_statements(template: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(resource.path, statement) for every statement of every policy in the template."""
    for name, resource in template["Resources"].items():
        for where, document in policy_documents(resource.get("Properties", {}), name):
            for statement in _items(document["Statement"]):
                assert isinstance(statement, dict), f"{where}: statement {statement!r}"
                yield where, statement


def wildcard_findings(where: str, statement: Mapping[str, Any]) -> list[str]:
    """What is wrong with one Allow statement: wildcard actions, a "*" resource, Not*."""
    if statement.get("Effect") != "Allow":
        return []
    label = f"{where} {statement.get('Sid', '')}".strip()
    findings = [
        f"{label}: {key} grants everything else"
        for key in ("NotAction", "NotResource")
        if key in statement
    ]
    actions = list(_items(statement.get("Action", [])))
    if not actions and "NotAction" not in statement:
        findings.append(f"{label}: no Action")
    for action in actions:
        if not isinstance(action, str):
            findings.append(f"{label}: action {action!r} is not a literal")
        elif "*" in action:
            findings.append(f"{label}: wildcard action {action!r}")
    if "Resource" in statement and "*" in list(_items(statement["Resource"])):
        broad = sorted(str(a) for a in actions if a not in RESOURCE_STAR_ALLOWED)
        if broad or not actions:
            findings.append(f'{label}: Resource "*" for {broad}')
    return findings


def all_findings(template: Mapping[str, Any]) -> list[str]:
    return [
        finding
        for where, statement in iam_statements(template)
        for finding in wildcard_findings(where, statement)
    ]


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ({"Effect": "Allow", "Action": "dynamodb:*", "Resource": "arn:aws:dynamodb:::table/t"},
         "wildcard action 'dynamodb:*'"),
        ({"Effect": "Allow", "Action": ["s3:GetObject", "*"], "Resource": "arn:aws:s3:::b/*"},
         "wildcard action '*'"),
        ({"Effect": "Allow", "Action": "s3:Get*", "Resource": "arn:aws:s3:::b/*"},
         "wildcard action 's3:Get*'"),
        ({"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"},
         "Resource \"*\" for ['s3:GetObject']"),
        ({"Effect": "Allow", "Action": ["codepipeline:PutJobSuccessResult", "sns:Publish"],
          "Resource": ["*"]},
         "Resource \"*\" for ['sns:Publish']"),
        ({"Effect": "Allow", "Action": "sqs:SendMessage",
          "Resource": {"Fn::If": ["C", "*", {"Ref": "AWS::NoValue"}]}},
         "Resource \"*\" for ['sqs:SendMessage']"),
        ({"Effect": "Allow", "NotAction": "iam:*", "Resource": "arn:aws:s3:::b"},
         "NotAction grants everything else"),
        ({"Effect": "Allow", "Action": {"Ref": "Actions"}, "Resource": "arn:aws:s3:::b"},
         "is not a literal"),
    ],
)  # fmt: skip
def test_the_checker_flags_wildcards(statement: dict[str, Any], expected: str) -> None:
    findings = wildcard_findings("Example", statement)
    assert any(expected in finding for finding in findings), findings


def test_the_checker_finds_statements_inside_conditions() -> None:
    template = {
        "Resources": {
            "Role": {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "Policies": [
                        {
                            "PolicyName": "p",
                            "PolicyDocument": {
                                "Statement": [
                                    {"Fn::If": ["C",
                                                {"Effect": "Allow", "Action": "dynamodb:*",
                                                 "Resource": "arn:aws:dynamodb:::table/t"},
                                                {"Ref": "AWS::NoValue"}]},
                                ]
                            },
                        }
                    ]
                },
            }
        }
    }  # fmt: skip
    assert all_findings(template) == [
        "Role.Policies[0].PolicyDocument: wildcard action 'dynamodb:*'"
    ]


def test_the_checker_accepts_the_documented_exceptions() -> None:
    statement = {
        "Effect": "Allow",
        "Action": sorted(RESOURCE_STAR_ALLOWED),
        "Resource": "*",
    }
    assert wildcard_findings("Example", statement) == []


def test_no_iam_statement_of_the_function_has_a_wildcard() -> None:
    template = transformed()
    walked = {where.split(".")[0] for where, _ in iam_statements(template)}
    assert walked == {ROLE, APPROVAL_ROLE}
    assert sum(1 for _ in iam_statements(template)) >= 10
    assert all_findings(template) == []


def test_no_iam_statement_of_the_example_pipeline_has_a_wildcard() -> None:
    template = load_cfn(PIPELINE)
    walked = {where.split(".")[0] for where, _ in iam_statements(template)}
    assert walked == {"BuildRole", "DeployRole", "PipelineRole", "SourceChangeRuleRole"}
    assert all_findings(template) == []


@pytest.mark.parametrize("path", [TEMPLATE, PIPELINE], ids=["template", "pipeline"])
def test_no_managed_policies(path: Path) -> None:
    template = transformed() if path == TEMPLATE else load_cfn(path)
    for name, resource in template["Resources"].items():
        assert resource["Type"] not in {"AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"}, name
        assert "ManagedPolicyArns" not in resource.get("Properties", {}), name


def test_resource_star_only_for_the_documented_exceptions() -> None:
    star = {
        str(action)
        for _, statement in iam_statements(transformed())
        if "*" in list(_items(statement.get("Resource", [])))
        for action in _items(statement["Action"])
    }
    assert star == RESOURCE_STAR_ALLOWED


# ---------------------------------------------------------------------------------------------
# Conditions and Fn::If, evaluated

_NO_VALUE = object()


def parameter_values(template: Mapping[str, Any], **given: str) -> dict[str, Any]:
    """Parameter values as Ref returns them: defaults unless given; lists split on commas."""
    values: dict[str, Any] = {}
    for name, declaration in template["Parameters"].items():
        raw = given.get(name, declaration.get("Default"))
        if declaration["Type"] == "CommaDelimitedList":
            values[name] = str(raw).split(",")  # "" -> [""], as CloudFormation does
        else:
            values[name] = raw
    return values


class Evaluator:
    """CloudFormation's condition functions and the list functions our templates use.

    What cannot be known offline (resource attributes, Sub) stays as it is.
    """

    def __init__(self, template: Mapping[str, Any], params: Mapping[str, Any]) -> None:
        self.template = template
        self.params = params
        self.conditions: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self.conditions:
            value = self.value(self.template["Conditions"][name])
            assert isinstance(value, bool), f"condition {name} gave {value!r}"
            self.conditions[name] = value
        return self.conditions[name]

    def value(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self.value(item) for item in node) if v is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, arg),) = node.items()
            if key == "Ref":
                if arg == "AWS::NoValue":
                    return _NO_VALUE
                return self.params.get(arg, node)
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::If":
                name, when_true, when_false = arg
                return self.value(when_true if self.condition(name) else when_false)
            if key == "Fn::Not":
                return not self.value(arg[0])
            if key == "Fn::And":
                return all(self.value(item) for item in arg)
            if key == "Fn::Or":
                return any(self.value(item) for item in arg)
            if key == "Fn::Equals":
                return self.value(arg[0]) == self.value(arg[1])
            if key == "Fn::Join":
                separator, items = arg[0], self.value(arg[1])
                if isinstance(items, list) and all(isinstance(i, str) for i in items):
                    return separator.join(items)
                return {key: [separator, items]}
            if key == "Fn::Split":
                separator, text = arg[0], self.value(arg[1])
                return text.split(separator) if isinstance(text, str) else {key: [separator, text]}
        evaluated = {k: self.value(v) for k, v in node.items()}
        return {k: v for k, v in evaluated.items() if v is not _NO_VALUE}


def role_statements(**given: str) -> dict[str, dict[str, Any]]:
    """The function role's statements by Sid, for these parameter values."""
    template = transformed()
    evaluator = Evaluator(template, parameter_values(template, **given))
    role = evaluator.value(template["Resources"][ROLE])
    statements = [
        statement
        for policy in role["Properties"]["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]
    ]
    by_sid = {statement["Sid"]: statement for statement in statements}
    assert len(by_sid) == len(statements), "every statement has its own Sid"
    return by_sid


def _actions(statements: Mapping[str, Mapping[str, Any]]) -> set[str]:
    return {str(a) for s in statements.values() for a in _items(s["Action"])}


CONDITIONAL = {
    "ReadMetrics": {"ReadMetrics"},
    "StateMachineArns": {"StartStateMachines", "DescribeStateMachineExecutions"},
    "InvokableFunctionArns": {"InvokeFunctions"},
    "SecretArns": {"ReadSecrets"},
    "SsmParameterArns": {"ReadParameters"},
    "ChangeCalendarArns": {"ReadChangeCalendars"},
    "GateBucketArns": {"ReadGateDefinitions"},
    "NotificationTopicArns": {"PublishToOtherTopics"},
    "AssumableRoleArns": {"AssumeTargetRoles"},
    "TableKmsKeyArn": {"UseTableKey"},
    "SecretKmsKeyArn": {"UseSecretKey"},
    "QueueKmsKeyArn": {"UseQueueKey"},
}
ALWAYS = {
    "AnswerCodePipelineJobs",
    "ReadPipelineExecutions",
    "RunsTable",
    "OwnLogGroup",
    "OnFailureDestination",
    "PublishNotifications",
    "ReadAlarms",
    "ReadApprovalSigningKey",
}


def test_pipeline_executions_are_read_in_this_account_and_region_only() -> None:
    """GetPipelineExecution (who started it, for exclude_initiator) on this account's
    pipelines in this region: not "*", not another account's."""
    statement = role_statements()["ReadPipelineExecutions"]
    assert statement["Action"] == "codepipeline:GetPipelineExecution"
    assert statement["Resource"] == {
        "Fn::Sub": "arn:${AWS::Partition}:codepipeline:${AWS::Region}:${AWS::AccountId}:*"
    }


def test_conditional_statements_are_absent_when_their_parameters_are_empty() -> None:
    statements = role_statements()
    assert set(statements) == ALWAYS
    actions = _actions(statements)
    for prefix in ("states:", "lambda:", "s3:", "sts:", "cloudwatch:GetMetricData"):
        assert not any(action.startswith(prefix) for action in actions), prefix
    # Secrets Manager: the approval link signing key only (docs/APPROVALS.md).
    readers = [s for s in statements.values() if "secretsmanager:" in json.dumps(s["Action"])]
    assert [s["Resource"] for s in readers] == [{"Ref": "ApprovalSigningKey"}]
    publish = [s for s in statements.values() if "sns:Publish" in list(_items(s["Action"]))]
    assert [s["Resource"] for s in publish] == [{"Ref": "NotificationTopic"}]


MACHINES = "arn:aws:states:eu-west-1:123456789012:stateMachine:a,arn:aws:states:eu-west-1:123456789012:stateMachine:b"  # noqa: E501
FUNCTIONS = "arn:aws:lambda:eu-west-1:123456789012:function:check"
SECRETS = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:itsm-token-AbCdEf"
PARAMETERS = "arn:aws:ssm:eu-west-1:123456789012:parameter/itsm/token"
CALENDARS = "arn:aws:ssm:eu-west-1:123456789012:document/prod-change-calendar"
GATE_BUCKETS = "arn:aws:s3:::my-gates,arn:aws:s3:::team-gates"
TOPICS = "arn:aws:sns:eu-west-1:123456789012:ops,arn:aws:sns:eu-west-1:123456789012:dev"
TARGET_ROLES = "arn:aws:iam::222233334444:role/orchestrator-gate,arn:aws:iam::555566667777:role/orchestrator-gate"  # noqa: E501
TABLE_KEY = "arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555"
SECRET_KEY = "arn:aws:kms:eu-west-1:123456789012:key/66666666-2222-3333-4444-555555555555"
QUEUE_KEY = "arn:aws:kms:eu-west-1:123456789012:key/77777777-2222-3333-4444-555555555555"


def test_conditional_statements_name_exactly_the_given_arns() -> None:
    statements = role_statements(
        ReadMetrics="true",
        StateMachineArns=MACHINES,
        InvokableFunctionArns=FUNCTIONS,
        SecretArns=SECRETS,
        SsmParameterArns=PARAMETERS,
        ChangeCalendarArns=CALENDARS,
        GateBucketArns=GATE_BUCKETS,
        NotificationTopicArns=TOPICS,
        AssumableRoleArns=TARGET_ROLES,
        TableKmsKeyArn=TABLE_KEY,
        SecretKmsKeyArn=SECRET_KEY,
        QueueKmsKeyArn=QUEUE_KEY,
    )
    assert set(statements) == ALWAYS | set().union(*CONDITIONAL.values())
    assert statements["ReadMetrics"] == {
        "Sid": "ReadMetrics",
        "Effect": "Allow",
        "Action": "cloudwatch:GetMetricData",
        "Resource": "*",
    }
    for sid, key, service, actions in (
        ("UseTableKey", TABLE_KEY, "dynamodb",
         ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"]),
        ("UseSecretKey", SECRET_KEY, "secretsmanager", "kms:Decrypt"),
        ("UseQueueKey", QUEUE_KEY, "sqs", ["kms:Decrypt", "kms:GenerateDataKey"]),
    ):  # fmt: skip
        assert statements[sid] == {
            "Sid": sid,
            "Effect": "Allow",
            "Action": actions,
            "Resource": key,
            "Condition": {
                "StringEquals": {
                    "kms:ViaService": {"Fn::Sub": f"{service}.${{AWS::Region}}.amazonaws.com"}
                }
            },
        }
    assert statements["StartStateMachines"]["Action"] == "states:StartExecution"
    assert statements["StartStateMachines"]["Resource"] == MACHINES.split(",")
    assert statements["DescribeStateMachineExecutions"]["Action"] == "states:DescribeExecution"
    assert statements["DescribeStateMachineExecutions"]["Resource"] == [
        "arn:aws:states:eu-west-1:123456789012:execution:a:*",
        "arn:aws:states:eu-west-1:123456789012:execution:b:*",
    ]
    assert statements["InvokeFunctions"]["Action"] == "lambda:InvokeFunction"
    assert statements["InvokeFunctions"]["Resource"] == [FUNCTIONS]
    assert statements["ReadSecrets"]["Action"] == "secretsmanager:GetSecretValue"
    assert statements["ReadSecrets"]["Resource"] == [SECRETS]
    assert statements["ReadParameters"]["Action"] == "ssm:GetParameter"
    assert statements["ReadParameters"]["Resource"] == [PARAMETERS]
    assert statements["ReadChangeCalendars"]["Action"] == "ssm:GetCalendarState"
    assert statements["ReadChangeCalendars"]["Resource"] == [CALENDARS]
    assert statements["ReadGateDefinitions"]["Resource"] == [
        "arn:aws:s3:::my-gates/*",
        "arn:aws:s3:::team-gates/*",
    ]
    assert statements["PublishToOtherTopics"]["Resource"] == TOPICS.split(",")
    assert statements["AssumeTargetRoles"] == {
        "Sid": "AssumeTargetRoles",
        "Effect": "Allow",
        "Action": "sts:AssumeRole",
        "Resource": TARGET_ROLES.split(","),
    }


@pytest.mark.parametrize(("parameter", "sids"), sorted(CONDITIONAL.items()))
def test_each_parameter_adds_only_its_own_statements(parameter: str, sids: set[str]) -> None:
    values = {
        "ReadMetrics": "true",
        "StateMachineArns": MACHINES,
        "InvokableFunctionArns": FUNCTIONS,
        "SecretArns": SECRETS,
        "SsmParameterArns": PARAMETERS,
        "ChangeCalendarArns": CALENDARS,
        "GateBucketArns": GATE_BUCKETS,
        "NotificationTopicArns": TOPICS,
        "AssumableRoleArns": TARGET_ROLES,
        "TableKmsKeyArn": TABLE_KEY,
        "SecretKmsKeyArn": SECRET_KEY,
        "QueueKmsKeyArn": QUEUE_KEY,
    }
    assert set(role_statements(**{parameter: values[parameter]})) == ALWAYS | sids


def test_conditional_statements_are_fn_if_with_no_value() -> None:
    role = transformed()["Resources"][ROLE]
    statements = role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    conditional = [s for s in statements if set(s) == {"Fn::If"}]
    assert len(conditional) == sum(len(sids) for sids in CONDITIONAL.values())
    for statement in conditional:
        condition, _, otherwise = statement["Fn::If"]
        assert otherwise == {"Ref": "AWS::NoValue"}
        assert condition in transformed()["Conditions"]


# Gate definitions referenced as s3://bucket/key from UserParameters: read access to the
# objects of the GateBucketArns buckets, and nothing else of S3.
GATE_DEFINITION_ACTIONS = ["s3:GetObject", "s3:GetObjectVersion"]


def s3_findings(statements: Mapping[str, Mapping[str, Any]], buckets: list[str]) -> list[str]:
    """What in these role statements grants S3 beyond reading objects of `buckets`."""
    findings = []
    for sid, statement in statements.items():
        actions = [str(a) for a in _items(statement.get("Action", []))]
        resources = [str(r) for r in _items(statement.get("Resource", []))]
        s3_actions = [a for a in actions if a.startswith("s3:") or a == "*"]
        s3_resources = [r for r in resources if r.startswith("arn:aws:s3:")]
        if sid != "ReadGateDefinitions":
            if s3_actions or s3_resources:
                findings.append(f"{sid}: S3 {s3_actions or s3_resources}")
            continue
        if actions != GATE_DEFINITION_ACTIONS:
            findings.append(f"{sid}: actions {actions}")
        if resources != [f"{bucket}/*" for bucket in buckets]:
            findings.append(f"{sid}: resources {resources}")
    if buckets and "ReadGateDefinitions" not in statements:
        findings.append("ReadGateDefinitions: missing")
    return findings


_READ_GATES = {
    "Sid": "ReadGateDefinitions",
    "Effect": "Allow",
    "Action": GATE_DEFINITION_ACTIONS,
    "Resource": ["arn:aws:s3:::my-gates/*"],
}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"Resource": "*"}, "resources ['*']"),
        ({"Resource": ["arn:aws:s3:::my-gates"]}, "resources ['arn:aws:s3:::my-gates']"),
        ({"Resource": ["arn:aws:s3:::my-gates", "arn:aws:s3:::my-gates/*"]}, "resources"),
        ({"Resource": ["arn:aws:s3:::*/*"]}, "resources"),
        ({"Action": "s3:GetObject"}, "actions ['s3:GetObject']"),
        ({"Action": [*GATE_DEFINITION_ACTIONS, "s3:ListBucket"]}, "actions"),
        ({"Action": "s3:*"}, "actions ['s3:*']"),
        ({"Sid": "Other"}, "Other: S3"),
    ],
)
def test_the_s3_checker_flags_anything_beyond_reading_gate_objects(
    change: dict[str, Any], expected: str
) -> None:
    assert s3_findings({"ReadGateDefinitions": _READ_GATES}, ["arn:aws:s3:::my-gates"]) == []
    statement = {**_READ_GATES, **change}
    findings = s3_findings({statement["Sid"]: statement}, ["arn:aws:s3:::my-gates"])
    assert any(expected in finding for finding in findings), findings


@pytest.mark.parametrize(
    "others",
    [
        {},
        {
            "StateMachineArns": MACHINES,
            "InvokableFunctionArns": FUNCTIONS,
            "SecretArns": SECRETS,
            "SsmParameterArns": PARAMETERS,
            "ChangeCalendarArns": CALENDARS,
            "NotificationTopicArns": TOPICS,
        },
    ],
    ids=["defaults", "every-other-parameter-set"],
)
def test_without_gate_buckets_the_role_has_no_s3_permission(others: dict[str, str]) -> None:
    statements = role_statements(**others)  # GateBucketArns left at its default, empty
    assert "ReadGateDefinitions" not in statements
    assert not any(action.startswith("s3:") for action in _actions(statements))
    assert s3_findings(statements, []) == []
    # Not hidden in a resource either, nor in the policy in any other form.
    assert ":s3:" not in json.dumps(statements)
    assert '"s3:' not in json.dumps(statements)


def test_gate_buckets_grant_reading_their_objects_only() -> None:
    buckets = GATE_BUCKETS.split(",")
    assert len(buckets) == 2
    statements = role_statements(GateBucketArns=GATE_BUCKETS)
    assert set(statements) == ALWAYS | {"ReadGateDefinitions"}
    assert s3_findings(statements, buckets) == []
    statement = statements["ReadGateDefinitions"]
    assert statement["Effect"] == "Allow"
    assert sorted(statement["Action"]) == GATE_DEFINITION_ACTIONS
    assert statement["Resource"] == ["arn:aws:s3:::my-gates/*", "arn:aws:s3:::team-gates/*"]
    for bucket in [*buckets, "*"]:
        assert bucket not in statement["Resource"]
    assert wildcard_findings(ROLE, statement) == []
    # One bucket: the same trick gives exactly one object ARN.
    one = role_statements(GateBucketArns="arn:aws:s3:::my-gates")["ReadGateDefinitions"]
    assert one["Resource"] == ["arn:aws:s3:::my-gates/*"]
    # The statement only reads objects: no list, no write, no bucket-level action anywhere.
    assert {a for a in _actions(statements) if a.startswith("s3:")} == set(GATE_DEFINITION_ACTIONS)


def test_the_gate_bucket_parameter_is_declared_like_the_other_arn_lists() -> None:
    template = load_cfn(TEMPLATE)
    parameter = template["Parameters"]["GateBucketArns"]
    assert parameter["Type"] == "CommaDelimitedList"
    assert parameter["Default"] == ""
    assert "no s3 permission at all" in parameter["Description"]
    assert "ssm:/" in template["Parameters"]["SsmParameterArns"]["Description"]
    groups = template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    (may_call,) = [g for g in groups if g["Label"]["default"].startswith("What gates may call")]
    keys = {"TableKmsKeyArn", "SecretKmsKeyArn", "QueueKmsKeyArn"}
    assert set(CONDITIONAL) - keys <= set(may_call["Parameters"])
    grouped = [name for group in groups for name in group["Parameters"]]
    assert sorted(grouped) == sorted(template["Parameters"])  # each exactly once
    assert template["Conditions"]["HasGateBuckets"] == {
        "Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", {"Ref": "GateBucketArns"}]}, ""]}]
    }


def test_the_runs_table_statement_is_narrow() -> None:
    statement = role_statements()["RunsTable"]
    assert set(statement["Action"]) == {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:Query",
    }
    assert statement["Resource"] == [
        {"Fn::GetAtt": ["RunsTable", "Arn"]},
        {"Fn::Sub": "${RunsTable.Arn}/index/*"},
    ]


def test_logs_and_queue_statements_name_their_own_resources() -> None:
    statements = role_statements()
    assert statements["OwnLogGroup"]["Resource"] == {"Fn::GetAtt": ["OrchestratorLogGroup", "Arn"]}
    assert statements["OnFailureDestination"] == {
        "Sid": "OnFailureDestination",
        "Effect": "Allow",
        "Action": "sqs:SendMessage",
        "Resource": {"Fn::GetAtt": ["FailureQueue", "Arn"]},
    }


# ---------------------------------------------------------------------------------------------
# The function, the table, alarms and outputs


def _function() -> dict[str, Any]:
    properties = transformed()["Resources"][FUNCTION]["Properties"]
    assert isinstance(properties, dict)
    return properties


def test_the_function_environment_refers_to_the_runs_table() -> None:
    variables = _function()["Environment"]["Variables"]
    assert variables == {
        "ORCHESTRATOR_TABLE_NAME": {"Ref": "RunsTable"},
        "ORCHESTRATOR_TTL_DAYS": {"Ref": "RunRetentionDays"},
        "ORCHESTRATOR_LOG_LEVEL": {"Ref": "LogLevel"},
        "ORCHESTRATOR_METRICS_NAMESPACE": {"Ref": "MetricsNamespace"},
        "ORCHESTRATOR_TOPIC_ARN": {"Ref": "NotificationTopic"},
        "ORCHESTRATOR_APPROVAL_URL": {"Fn::GetAtt": ["ApprovalFunctionUrl", "FunctionUrl"]},
        "ORCHESTRATOR_APPROVAL_SECRET_ARN": {"Ref": "ApprovalSigningKey"},
    }
    from orchestrator.settings import Settings

    for name in ("table_name", "ttl_days", "log_level"):
        assert f"ORCHESTRATOR_{name.upper()}" in variables
        assert name in Settings.model_fields


def test_the_function_runtime_and_limits() -> None:
    function = _function()
    assert function["Runtime"] == "python3.13"
    assert function["Architectures"] == ["arm64"]
    assert function["Handler"] == "orchestrator.handler.lambda_handler"
    assert function["MemorySize"] == 256
    # Room for the longest hold and the advance after it, well inside CodePipeline's
    # 20-minute reply rule (and Lambda's 15-minute maximum).
    from orchestrator.definition import MAX_HOLD

    assert MAX_HOLD + 60 <= function["Timeout"] <= 900 < 20 * 60
    assert function["LoggingConfig"]["LogGroup"] == {"Ref": "OrchestratorLogGroup"}


def test_failed_invocations_go_to_an_encrypted_queue() -> None:
    resources = transformed()["Resources"]
    config = resources[f"{FUNCTION}EventInvokeConfig"]["Properties"]
    assert config["MaximumRetryAttempts"] == 2
    assert 60 <= config["MaximumEventAgeInSeconds"] <= 1200
    assert config["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": ["FailureQueue", "Arn"]
    }
    template = transformed()
    plain = Evaluator(template, parameter_values(template)).value(resources["FailureQueue"])
    assert plain["Properties"]["SqsManagedSseEnabled"] is True
    assert "KmsMasterKeyId" not in plain["Properties"]
    keyed = Evaluator(template, parameter_values(template, QueueKmsKeyArn=QUEUE_KEY)).value(
        resources["FailureQueue"]
    )
    assert keyed["Properties"]["KmsMasterKeyId"] == QUEUE_KEY
    assert "SqsManagedSseEnabled" not in keyed["Properties"]
    topic = resources["NotificationTopic"]["Properties"]
    assert topic["KmsMasterKeyId"] == "alias/aws/sns"


def test_customer_managed_keys_and_reserved_concurrency_are_optional() -> None:
    """Empty parameters: AWS's own encryption and unreserved concurrency, as before; given,
    each goes where it belongs and nowhere else."""
    template = transformed()
    resources = template["Resources"]

    def evaluated(**given: str) -> dict[str, Any]:
        found = Evaluator(template, parameter_values(template, **given)).value(resources)
        assert isinstance(found, dict)
        return found

    plain = evaluated()
    assert plain["RunsTable"]["Properties"]["SSESpecification"] == {"SSEEnabled": True}
    assert "KmsKeyId" not in plain["ApprovalSigningKey"]["Properties"]
    for function in (FUNCTION, "ApprovalFunction"):
        assert "ReservedConcurrentExecutions" not in plain[function]["Properties"]
    given = evaluated(
        TableKmsKeyArn=TABLE_KEY,
        SecretKmsKeyArn=SECRET_KEY,
        ReservedConcurrency="20",
        ApprovalReservedConcurrency="5",
    )
    assert given["RunsTable"]["Properties"]["SSESpecification"] == {
        "SSEEnabled": True,
        "SSEType": "KMS",
        "KMSMasterKeyId": TABLE_KEY,
    }
    assert given["ApprovalSigningKey"]["Properties"]["KmsKeyId"] == SECRET_KEY
    assert given[FUNCTION]["Properties"]["ReservedConcurrentExecutions"] == "20"
    assert given["ApprovalFunction"]["Properties"]["ReservedConcurrentExecutions"] == "5"
    for name in ("TableKmsKeyArn", "SecretKmsKeyArn", "QueueKmsKeyArn"):
        pattern = re.compile(template["Parameters"][name]["AllowedPattern"])
        assert pattern.fullmatch("") and pattern.fullmatch(TABLE_KEY)
        assert not pattern.fullmatch("alias/aws/sqs")
    for name in ("ReservedConcurrency", "ApprovalReservedConcurrency"):
        pattern = re.compile(template["Parameters"][name]["AllowedPattern"])
        assert pattern.fullmatch("") and pattern.fullmatch("20")
        assert not pattern.fullmatch("0")  # zero reserved is a function that never runs


def test_the_runs_table_keeps_what_the_code_relies_on() -> None:
    from orchestrator.local import schema

    table = transformed()["Resources"]["RunsTable"]
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"
    properties = table["Properties"]
    assert properties["BillingMode"] == "PAY_PER_REQUEST"
    assert properties["DeletionProtectionEnabled"] == {"Ref": "TableDeletionProtection"}
    assert properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert properties["SSESpecification"]["SSEEnabled"] is True
    assert properties["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    params = schema.create_table_params("local")  # what tests and the local runner create
    sharded, legacy = params["GlobalSecondaryIndexes"]
    assert sharded["IndexName"] == "by-status-sharded"
    assert sharded["Projection"]["ProjectionType"] == "KEYS_ONLY"  # no tick rewrites it
    assert legacy["IndexName"] == "by-status"  # read for runs of earlier releases
    assert schema.ttl_attribute() == "expires_at"


ALARMS = {
    "ErrorsAlarm": ("AWS/Lambda", "Errors"),
    "ThrottlesAlarm": ("AWS/Lambda", "Throttles"),
    "FailureQueueAlarm": ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
    "AnswersNotSentAlarm": ({"Ref": "MetricsNamespace"}, "AnswersNotSent"),
}


def test_alarms_fire_on_any_occurrence_and_notify_only_when_asked() -> None:
    template = transformed()
    alarms = {
        name: resource["Properties"]
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
    }
    assert set(alarms) == set(ALARMS)
    for name, (namespace, metric) in ALARMS.items():
        alarm = alarms[name]
        assert (alarm["Namespace"], alarm["MetricName"]) == (namespace, metric), name
        assert alarm["Threshold"] == 0
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
        assert alarm["TreatMissingData"] == "notBreaching"
        for key in ("AlarmActions", "OKActions"):
            assert alarm[key] == {
                "Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]
            }
    assert alarms["AnswersNotSentAlarm"]["Dimensions"] == [
        {"Name": "Service", "Value": "orchestrator"}
    ]
    without = Evaluator(template, parameter_values(template))
    assert "AlarmActions" not in without.value(alarms["ErrorsAlarm"])
    topic = "arn:aws:sns:eu-west-1:123456789012:alarms"
    with_topic = Evaluator(template, parameter_values(template, AlarmTopicArn=topic))
    assert with_topic.value(alarms["ErrorsAlarm"])["AlarmActions"] == [topic]


def test_outputs() -> None:
    outputs = transformed()["Outputs"]
    assert set(outputs) >= {
        "FunctionName",
        "FunctionArn",
        "RunsTableName",
        "NotificationTopicArn",
        "FailureQueueUrl",
    }
    assert outputs["FunctionName"]["Value"] == {"Ref": FUNCTION}
    assert outputs["FunctionName"]["Export"]["Name"] == {
        "Fn::Sub": "${AWS::StackName}-FunctionName"
    }
    assert outputs["FunctionArn"]["Export"]["Name"] == {"Fn::Sub": "${AWS::StackName}-FunctionArn"}


def test_the_function_role_is_an_output_for_target_accounts_trust_policies() -> None:
    outputs = transformed()["Outputs"]
    assert outputs["OrchestratorRoleArn"]["Value"] == {"Fn::GetAtt": [ROLE, "Arn"]}


# ---------------------------------------------------------------------------------------------
# The target account's role (examples/target-account-role.yaml)

TARGET_PARAMETERS = {
    "ReadAlarms": ("false", {"ReadAlarms"}),
    "ReadMetrics": ("true", {"ReadMetrics"}),
    "StateMachineArns": (MACHINES, {"StartStateMachines", "DescribeStateMachineExecutions"}),
    "InvokableFunctionArns": (FUNCTIONS, {"InvokeFunctions"}),
    "SecretArns": (SECRETS, {"ReadSecrets"}),
    "SsmParameterArns": (PARAMETERS, {"ReadParameters"}),
    "NotificationTopicArns": (TOPICS, {"PublishNotifications"}),
}
ORCHESTRATOR_ROLE = "arn:aws:iam::111122223333:role/orchestrator-OrchestratorRole-AbC"


def target_role(**given: str) -> dict[str, Any]:
    """The gate role's properties for these parameter values (conditions evaluated)."""
    template = load_cfn(TARGET_ROLE)
    values = {"OrchestratorRoleArn": ORCHESTRATOR_ROLE, "ExternalId": "release-gates", **given}
    evaluator = Evaluator(template, parameter_values(template, **values))
    properties: dict[str, Any] = evaluator.value(template["Resources"]["GateRole"])["Properties"]
    return properties


def target_statements(**given: str) -> dict[str, dict[str, Any]]:
    policies = target_role(**given).get("Policies", [])
    return {s["Sid"]: s for p in policies for s in p["PolicyDocument"]["Statement"]}


def test_the_target_role_trusts_only_the_orchestrator_with_the_external_id() -> None:
    role = target_role()
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {
            "Sid": "OrchestratorWithExternalId",
            "Effect": "Allow",
            "Principal": {"AWS": ORCHESTRATOR_ROLE},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": "release-gates"}},
        }
    ]
    assert role["MaxSessionDuration"] == 3600  # role chaining's limit, what is asked for
    template = load_cfn(TARGET_ROLE)
    assert set(template["Resources"]) == {"GateRole"}
    assert template["Outputs"]["GateRoleArn"]["Value"] == {"Fn::GetAtt": ["GateRole", "Arn"]}


def test_the_target_role_is_the_same_template_in_every_account_and_region() -> None:
    """StackSet-friendly: no account id, region or partition written in; IAM only."""
    text = TARGET_ROLE.read_text()
    assert not re.search(r"\b\d{12}\b", text)
    assert "arn:aws:" not in text and "us-east-1" not in text
    types = {r["Type"] for r in load_cfn(TARGET_ROLE)["Resources"].values()}
    assert types == {"AWS::IAM::Role"}


def test_the_target_role_grants_only_what_its_parameters_name() -> None:
    assert set(target_statements()) == {"ReadAlarms"}  # the default: alarms only
    assert "Policies" not in target_role(ReadAlarms="false")  # nothing at all
    everything = {name: value for name, (value, _) in TARGET_PARAMETERS.items()}
    statements = target_statements(**{**everything, "ReadAlarms": "true"})
    assert set(statements) == set().union(*(sids for _, sids in TARGET_PARAMETERS.values()))
    assert statements["ReadAlarms"]["Resource"] == "*"  # composite alarms need "*"
    assert statements["ReadMetrics"]["Action"] == "cloudwatch:GetMetricData"
    assert statements["ReadMetrics"]["Resource"] == "*"  # no resource-level permissions
    assert statements["StartStateMachines"]["Resource"] == MACHINES.split(",")
    assert statements["DescribeStateMachineExecutions"]["Resource"] == [
        "arn:aws:states:eu-west-1:123456789012:execution:a:*",
        "arn:aws:states:eu-west-1:123456789012:execution:b:*",
    ]
    assert statements["InvokeFunctions"]["Resource"] == [FUNCTIONS]
    assert statements["ReadSecrets"]["Resource"] == [SECRETS]
    assert statements["ReadParameters"]["Resource"] == [PARAMETERS]
    assert statements["PublishNotifications"]["Resource"] == TOPICS.split(",")
    for parameter, (value, sids) in TARGET_PARAMETERS.items():
        if parameter != "ReadAlarms":
            alone = target_statements(ReadAlarms="false", **{parameter: value})
            assert set(alone) == sids, parameter


def test_no_iam_statement_of_the_target_role_has_a_wildcard() -> None:
    template = load_cfn(TARGET_ROLE)
    assert sum(1 for _ in iam_statements(template)) == 9  # the trust statement and 8 grants
    assert all_findings(template) == []


# ---------------------------------------------------------------------------------------------
# The example pipeline


def _stages() -> dict[str, list[dict[str, Any]]]:
    pipeline = load_cfn(PIPELINE)["Resources"]["Pipeline"]["Properties"]
    assert pipeline["PipelineType"] == "V2"
    return {stage["Name"]: stage["Actions"] for stage in pipeline["Stages"]}


def test_the_example_pipeline_has_the_gate_between_staging_and_production() -> None:
    stages = _stages()
    assert list(stages) == [
        "Source",
        "Build",
        "DeployStaging",
        "Gate",
        "DeployProduction",
        "VerifyProduction",
    ]
    kinds = {name: actions[0]["ActionTypeId"]["Provider"] for name, actions in stages.items()}
    assert kinds == {
        "Source": "S3",
        "Build": "CodeBuild",
        "DeployStaging": "CloudFormation",
        "Gate": "Lambda",
        "DeployProduction": "CloudFormation",
        "VerifyProduction": "Lambda",
    }
    for stage, namespace in (("Gate", "Gate"), ("VerifyProduction", "Verify")):
        (gate,) = stages[stage]
        assert gate["Namespace"] == namespace
        assert gate["ActionTypeId"] == {
            "Category": "Invoke",
            "Owner": "AWS",
            "Provider": "Lambda",
            "Version": "1",
        }
        # The orchestrator stack's export (template.yaml: ${AWS::StackName}-FunctionName).
        assert gate["Configuration"]["FunctionName"] == {
            "Fn::ImportValue": {"Fn::Sub": "${OrchestratorStackName}-FunctionName"}
        }


def test_the_example_gates_reference_one_gate_file_that_feeds_production() -> None:
    """Both gate actions reference gates/release.yaml in the source artifact, each with its
    stage's args, within CodePipeline's 1,000 characters; the file (examples/gates/, which
    goes into the source zip as gates/) expands to a valid gate for each."""
    from orchestrator.reference import (
        MAX_INLINE_CHARS,
        Reference,
        expand,
        load_document,
        read_user_parameters,
    )

    stages = _stages()
    outputs: set[str] = set()
    for stage in ("Gate", "VerifyProduction"):
        (gate,) = stages[stage]
        text = gate["Configuration"]["UserParameters"]
        assert len(text) <= MAX_INLINE_CHARS
        spec = read_user_parameters(text)
        assert isinstance(spec, Reference) and spec.ref.kind == "artifact"
        assert [a["Name"] for a in gate["InputArtifacts"]] == [spec.ref.artifact]
        path = ROOT / "examples" / spec.ref.path
        document = load_document(path.read_bytes(), path.name, str(path))
        raw, args = expand(document, spec.arg_map, str(path))
        assert [step["name"] for step in raw["steps"]] == ["bake", "alarms", "health"]
        assert args["stage"] == spec.arg_map["stage"]
        outputs |= set(raw["outputs"])
    (production,) = stages["DeployProduction"]
    used = set(re.findall(r"#\{Gate\.([^}]+)\}", json.dumps(production["Configuration"])))
    assert used == {"HealthStatus"}
    assert used <= outputs


def test_the_pipeline_role_may_invoke_the_gate_function_only() -> None:
    statements = {
        statement["Sid"]: statement
        for where, statement in iam_statements(load_cfn(PIPELINE))
        if where.startswith("PipelineRole.Policies")
    }
    lambda_actions = {
        str(action)
        for statement in statements.values()
        for action in _items(statement["Action"])
        if str(action).startswith("lambda:")
    }
    assert lambda_actions == {"lambda:InvokeFunction"}
    assert statements["InvokeOrchestratorGate"]["Resource"] == {
        "Fn::ImportValue": {"Fn::Sub": "${OrchestratorStackName}-FunctionArn"}
    }


# ---------------------------------------------------------------------------------------------
# Packaging (nothing is downloaded here; the real build runs in CI)


def _recipe(target: str) -> list[str]:
    """The recipe lines of a Makefile target."""
    lines = MAKEFILE.read_text().splitlines()
    start = lines.index(f"{target}:")
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(line.strip())
    return recipe


def test_sam_builds_the_function_with_the_make_target() -> None:
    function = load_cfn(TEMPLATE)["Resources"][FUNCTION]
    assert function["Metadata"]["BuildMethod"] == "makefile"
    assert set(function["Metadata"]) <= {"BuildMethod", "checkov"}  # test_scanners.py
    assert function["Properties"]["CodeUri"] == "."
    assert _recipe(f"build-{FUNCTION}") == [
        '$(PY) scripts/build_lambda.py --artifacts-dir "$(ARTIFACTS_DIR)" --no-zip'
    ]
    # The approval endpoint runs from the very same package.
    endpoint = load_cfn(TEMPLATE)["Resources"][APPROVAL_FUNCTION]
    assert endpoint["Metadata"]["BuildMethod"] == "makefile"
    assert endpoint["Properties"]["CodeUri"] == "."
    assert _recipe(f"build-{APPROVAL_FUNCTION}") == _recipe(f"build-{FUNCTION}")
    assert _recipe("build") == ["$(PY) scripts/build_lambda.py"]


def _packaged() -> dict[PurePosixPath, Path]:
    return {destination: source for source, destination in build_lambda.source_files(ROOT)}


def test_the_package_takes_only_the_runtime_code() -> None:
    """orchestrator/ minus three whole folders, cli/, local/ and cdk/; nothing else, no
    template."""
    packaged = _packaged()
    for required in (
        "orchestrator/handler.py",
        "orchestrator/steps/http.py",
        "orchestrator/store/dynamodb.py",
        "orchestrator/reference.py",
    ):
        assert PurePosixPath(required) in packaged, required
    for path in packaged:
        assert path.parts[0] == "orchestrator", path
        assert path.parts[:2] not in {
            ("orchestrator", "local"),
            ("orchestrator", "cli"),
            ("orchestrator", "cdk"),
        }, path
        assert "__pycache__" not in path.parts, path
        assert path.suffix == ".py", path  # no template.yaml, no bytecode from the tree
    assert (
        PurePosixPath("orchestrator/local"),
        PurePosixPath("orchestrator/cli"),
        PurePosixPath("orchestrator/cdk"),
    ) == build_lambda.EXCLUDED
    for folder in build_lambda.EXCLUDED:  # each names a folder that exists
        assert (ROOT / folder).is_dir(), folder
    # Everything under orchestrator/ that is not excluded is there.
    on_disk = {
        PurePosixPath(p.relative_to(ROOT).as_posix())
        for p in (ROOT / "orchestrator").rglob("*.py")
        if "__pycache__" not in p.parts
    }
    expected = {p for p in on_disk if not build_lambda._excluded(p)}
    assert expected == set(packaged)


def _module_name(path: PurePosixPath) -> str:
    parts = list(path.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(source: str, module: str, is_package: bool) -> set[str]:
    """Modules a file imports, at the top or inside functions; `if TYPE_CHECKING:` skipped."""
    tree = ast.parse(source)
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for branch in node.orelse:
                visit(branch)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    found.discard("__future__")
    return found


def _runtime_top_level_modules() -> set[str]:
    """Top-level modules of the runtime dependencies and everything they require."""
    wanted = [Requirement(text) for text in build_lambda.runtime_dependencies()]
    seen: set[str] = set()
    while wanted:
        requirement = wanted.pop()
        name = requirement.name.lower().replace("_", "-")
        if name in seen:
            continue
        seen.add(name)
        for text in importlib.metadata.requires(requirement.name) or []:
            nested = Requirement(text)
            if nested.marker is None or nested.marker.evaluate({"extra": ""}):
                wanted.append(nested)
    return {
        module
        for module, distributions in importlib.metadata.packages_distributions().items()
        if any(d.lower().replace("_", "-") in seen for d in distributions)
    }


# Imports a packaged module makes that the function never executes.
NOT_IN_LAMBDA: dict[str, set[str]] = {}


def test_every_import_of_the_package_is_packaged_or_a_runtime_dependency() -> None:
    packaged = {_module_name(p): p for p in _packaged() if p.suffix == ".py"}
    allowed = _runtime_top_level_modules() | set(sys.stdlib_module_names)
    assert {"boto3", "botocore", "pynamodb", "pydantic", "jmespath", "urllib3"} <= allowed
    assert not {"typer", "rich", "pytest"} & _runtime_top_level_modules()
    assert "yaml" in allowed  # referenced gate files may be YAML
    problems = []
    for module, path in sorted(packaged.items()):
        source = (ROOT / path).read_text()
        for name in sorted(_imports(source, module, path.name == "__init__.py")):
            top = name.split(".")[0]
            if top == "orchestrator":
                # `from pkg import name` may name an attribute: the module or its parent counts.
                if name not in packaged and name.rpartition(".")[0] not in packaged:
                    problems.append(f"{module} imports {name}, which is not packaged")
            elif top not in allowed and top not in NOT_IN_LAMBDA.get(module, set()):
                problems.append(f"{module} imports {top}, not a runtime dependency")
    assert problems == []


def test_the_packaged_sources_import_without_the_rest_of_the_tree(tmp_path: Path) -> None:
    """The copied folder alone (plus installed deps) imports what a tick uses."""
    build_lambda.copy_sources(tmp_path)
    modules = [
        "orchestrator.handler",
        "orchestrator.clock",
        "orchestrator.reporter",
        "orchestrator.services",
        "orchestrator.settings",
        "orchestrator.tick",
        "orchestrator.steps",
        "orchestrator.store.dynamodb",
    ]
    script = (
        "import sys\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        f"for name in {modules!r}:\n"
        "    __import__(name)\n"
        "import orchestrator\n"
        f"assert orchestrator.__file__.startswith({str(tmp_path)!r}), orchestrator.__file__\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('orchestrator.local',\n"
        "             'orchestrator.cli'))\n"
        "             or m.split('.')[0] in {'typer', 'rich', 'yaml', 'tests'})\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-c", script], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "template.yaml").exists()
    assert not list(tmp_path.rglob("template.yaml"))


def test_the_package_carries_bytecode_for_cpython_313(tmp_path: Path) -> None:
    """Compiled by the build's own compiler (Pyodide's CPython 3.13 on Node): one
    unchecked-hash .pyc per module, with CPython 3.13's magic number."""
    build_lambda.copy_sources(tmp_path)
    compiled = build_lambda.compile_bytecode(tmp_path)
    sources = sorted(tmp_path.rglob("*.py"))
    assert compiled == len(sources) > 40
    for source in sources:
        pyc = source.parent / "__pycache__" / f"{source.stem}.cpython-313.pyc"
        header = pyc.read_bytes()[:16]
        assert header[:4].hex() == build_lambda.PYTHON313_MAGIC == "f30d0d0a", pyc
        # flags 0b01: hash-based, not checked against the source (zips keep no reliable mtime)
        assert int.from_bytes(header[4:8], "little") == 1, pyc
        # ... and compiled from this very source (SipHash keyed with 3.13's magic number)
        key = int.from_bytes(bytes.fromhex(build_lambda.PYTHON313_MAGIC), "little")
        assert header[8:16] == _imp.source_hash(key, source.read_bytes()), pyc


def test_the_dependencies_are_the_runtime_ones_for_the_lambda_platform(tmp_path: Path) -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = build_lambda.runtime_dependencies()
    assert requirements == project["dependencies"]
    names = {Requirement(r).name for r in requirements}
    assert names >= {"boto3", "pynamodb", "pydantic", "pydantic-settings", "jmespath"}
    extras = {
        Requirement(r).name for group in project["optional-dependencies"].values() for r in group
    }
    assert not names & extras  # no CLI (typer, rich) or dev tool in the package
    command = build_lambda.pip_command(tmp_path, requirements)
    assert command[:4] == [sys.executable, "-m", "pip", "install"]
    flags = " ".join(command)
    for flag in (
        "--platform manylinux2014_aarch64",
        "--implementation cp",
        "--python-version 3.13",
        "--only-binary=:all:",
        f"--target {tmp_path}",
        "--no-compile",
    ):
        assert flag in flags, flag
    assert command[-len(requirements) :] == requirements
    pinned = build_lambda.pip_command(tmp_path, requirements, tmp_path / "constraints.txt")
    assert ["--constraint", str(tmp_path / "constraints.txt")] == pinned[
        -len(requirements) - 2 : -len(requirements)
    ]


def test_the_zip_is_reproducible(tmp_path: Path) -> None:
    folder = tmp_path / "package"
    build_lambda.copy_sources(folder)
    first = build_lambda.make_zip(folder, tmp_path / "a.zip")
    second = build_lambda.make_zip(folder, tmp_path / "b.zip")
    assert first == second
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    with zipfile.ZipFile(tmp_path / "a.zip") as archive:
        names = archive.namelist()
    assert "orchestrator/handler.py" in names
    assert "orchestrator/store/dynamodb.py" in names and "template.yaml" not in names
    files, size = build_lambda.tree_size(folder)
    assert files == len(names)
    assert size > first


def test_the_build_refuses_to_empty_a_source_tree() -> None:
    with pytest.raises(SystemExit):
        build_lambda.prepare(ROOT)
    with pytest.raises(SystemExit):
        build_lambda.prepare(Path(""))  # make build-OrchestratorFunction without ARTIFACTS_DIR


def test_the_docs_carry_one_package_size_line_the_build_fills_in() -> None:
    import datetime

    text = (ROOT / "README.md").read_text()
    assert sum(line.startswith("<!-- package-size -->") for line in text.splitlines()) == 1
    line = build_lambda.size_line(20 * 2**20, 30 * 2**20, 2500, datetime.date(2025, 1, 2))
    updated = build_lambda.update_docs(text, line)
    assert line in updated.splitlines()
    assert build_lambda.update_docs(updated, line) == updated
    assert len(updated.splitlines()) == len(text.splitlines())
    assert "20.0 MiB zipped, 30.0 MiB unzipped" in line
    with pytest.raises(ValueError, match="exactly one"):
        build_lambda.update_docs("no marker here\n", line)


def test_the_docs_explain_the_deploy_and_the_pipeline_permission() -> None:
    text = DOCS.read_text()
    for needle in (
        "sam build",
        "sam deploy --guided",
        "sam pipeline init",
        "lambda:InvokeFunction",
        "CodePipelineExecutionRole",
        *load_cfn(TEMPLATE)["Parameters"],
    ):
        assert needle in text, needle


def test_the_deploy_doc_names_every_resource_type_resource_and_output() -> None:
    """docs/DEPLOY.md describes the stack template.yaml declares: each output, each resource
    (by its logical id) and each resource type, in backquotes."""
    text = DOCS.read_text()
    template = load_cfn(TEMPLATE)
    resources = template["Resources"]
    needles = {
        *template["Outputs"],
        *resources,
        *(resource["Type"] for resource in resources.values()),
    }
    missing = sorted(needle for needle in needles if f"`{needle}`" not in text)
    assert missing == []
