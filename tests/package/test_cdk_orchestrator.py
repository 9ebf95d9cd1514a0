"""The `Orchestrator` construct against template.yaml: the same stack for the same options.

For three sets of options (none; every one; a mix), the construct is synthesized with them as
keywords and template.yaml is transformed (SAM) and its conditions evaluated with them as
parameters. Then, with the construct's logical ids mapped to the template's:

- each role has the same policies with the same statements, compared exactly: Sid, effect,
  sorted actions, sorted resources, conditions; a statement in one and not the other, or an
  extra policy or managed policy on a role, fails;
- every resource has its counterpart of the same type with the same properties and
  deletion policies (the table, both functions, their log groups, the queue, the
  destination, the topic, the key, the function URL and its permissions, the four alarms),
  but for the functions' code location and SAM's own tag.

Both sides are normalized alike: `Ref`, `Fn::GetAtt`, `Fn::Sub` and `Fn::Join` become one
string (`${RunsTable.Arn}/index/*` whichever way it was written), numbers and booleans their
text. Anything else stays as it is, so a form only one side writes cannot compare equal.
"""

from __future__ import annotations

import inspect
import os
import re
import zipfile
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION", "1")

import aws_cdk as cdk

from orchestrator.cdk import Orchestrator, OrchestratorError, permissions
from tests.package.test_cdk import stand_in_code
from tests.package.test_template import (
    DOCS,
    TEMPLATE,
    Evaluator,
    load_cfn,
    parameter_values,
    transformed,
)

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path

ACCOUNT = "123456789012"


def arn(service: str, rest: str, region: str = "eu-west-1") -> str:
    return f"arn:aws:{service}:{region}:{ACCOUNT}:{rest}"


def key(n: int) -> str:
    return arn("kms", f"key/{n}1111111-2222-3333-4444-555555555555")


EVERYTHING: dict[str, Any] = {
    "table_deletion_protection": False,
    "run_retention_days": 7,
    "read_metrics": True,
    "table_kms_key_arn": key(1),
    "secret_kms_key_arn": key(2),
    "queue_kms_key_arn": key(3),
    "state_machine_arns": [arn("states", "stateMachine:a"), arn("states", "stateMachine:b")],
    "invokable_function_arns": [arn("lambda", "function:check"), arn("lambda", "function:check:*")],
    "secret_arns": [arn("secretsmanager", "secret:itsm-token-??????")],
    "ssm_parameter_arns": [arn("ssm", "parameter/itsm/token"), arn("ssm", "parameter/gates/prod")],
    "change_calendar_arns": [arn("ssm", "document/prod-change-calendar")],
    "gate_bucket_arns": ["arn:aws:s3:::my-gates", "arn:aws:s3:::team-gates"],
    "notification_topic_arns": [arn("sns", "ops"), arn("sns", "dev", "us-east-1")],
    "assumable_role_arns": [f"arn:aws:iam::{n * 3}:role/gate" for n in ("2222", "5555")],
    "log_level": "DEBUG",
    "log_retention_days": 365,
    "log_kms_key_arn": key(4),
    "metrics_namespace": "Release/Gates",
    "alarm_topic_arn": arn("sns", "alarms"),
    "reserved_concurrency": 50,
    "approval_reserved_concurrency": 5,
    "slack_signing_secret_arn": arn("secretsmanager", "secret:slack-signing-AbCdEf"),
    "oidc_issuer": "https://login.example.com/realms/ops",
    "oidc_client_id": "approvals",
    "oidc_client_secret_arn": arn("secretsmanager", "secret:oidc-client-AbCdEf"),
}
MIXED: dict[str, Any] = {
    "state_machine_arns": [arn("states", "stateMachine:deploy")],
    "gate_bucket_arns": ["arn:aws:s3:::my-gates"],
    "secret_kms_key_arn": key(2),
    "slack_signing_secret_arn": arn("secretsmanager", "secret:slack-signing-AbCdEf"),
    "read_metrics": False,
    "notification_topic_arns": [],
    "reserved_concurrency": 10,
}
CASES: dict[str, dict[str, Any]] = {"Nothing": {}, "Everything": EVERYTHING, "Mixed": MIXED}

# ---------------------------------------------------------------------------------------------
# Keywords and parameters


def parameter_name(keyword: str) -> str:
    return "".join(part.title() for part in keyword.split("_"))


def parameters(props: Mapping[str, Any]) -> dict[str, str]:
    """The template.yaml parameter values that say what these keywords say."""
    found = {}
    for keyword, value in props.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, list):
            text = ",".join(value)
        else:
            text = str(value)
        found[parameter_name(keyword)] = text
    return found


def keywords() -> set[str]:
    signature = inspect.signature(Orchestrator.__init__)
    return {
        name
        for name, parameter in signature.parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    }


def test_every_template_parameter_is_a_keyword_with_its_default() -> None:
    template = load_cfn(TEMPLATE)["Parameters"]
    assert {parameter_name(k) for k in keywords() - {"code"}} == set(template)
    defaults = {
        name: parameter.default
        for name, parameter in inspect.signature(Orchestrator.__init__).parameters.items()
        if name in keywords() - {"code"}
    }
    for keyword, default in defaults.items():
        declared = template[parameter_name(keyword)].get("Default", "")
        given = (
            "" if default in (None, ()) else parameters({keyword: default})[parameter_name(keyword)]
        )
        assert given == str(declared), keyword
    for case in CASES.values():
        assert set(case) <= keywords()
    assert set(EVERYTHING) == keywords() - {"code"}  # every option set at least once


def test_the_checks_of_other_keywords_are_the_templates() -> None:
    from orchestrator.cdk import construct

    declared = load_cfn(TEMPLATE)["Parameters"]
    assert list(construct.LOG_RETENTION) == declared["LogRetentionDays"]["AllowedValues"]
    assert tuple(declared["LogLevel"]["AllowedValues"]) == construct.LOG_LEVELS
    assert declared["MetricsNamespace"]["AllowedPattern"] == f"^{construct.METRICS_NAMESPACE}$"
    assert declared["OidcIssuer"]["AllowedPattern"] == f"^({construct.OIDC_ISSUER})?$"
    assert declared["ReservedConcurrency"]["AllowedPattern"] == "^([1-9][0-9]{0,4})?$"
    assert construct.MAX_CONCURRENCY == 99_999
    assert declared["RunRetentionDays"]["MinValue"] == 1


# ---------------------------------------------------------------------------------------------
# Both sides, synthesized and evaluated


@dataclass(frozen=True)
class Stacks:
    """One case: the template.yaml resources and the construct's, and the construct's logical
    ids by template.yaml's."""

    sam: dict[str, Any]
    cdk: dict[str, Any]
    ids: dict[str, str]


def _cdk_ids(stack: cdk.Stack, orchestrator: Orchestrator) -> dict[str, str]:
    """The template.yaml logical id of each of the construct's resources."""
    found: dict[str, Any] = {
        "RunsTable": orchestrator.table,
        "FailureQueue": orchestrator.failure_queue,
        "NotificationTopic": orchestrator.notification_topic,
        "ApprovalSigningKey": orchestrator.signing_key,
        "OrchestratorLogGroup": orchestrator.log_group,
        "ApprovalLogGroup": orchestrator.approval_log_group,
        "OrchestratorRole": orchestrator.role,
        "ApprovalRole": orchestrator.approval_role,
        "OrchestratorFunction": orchestrator.function,
        "ApprovalFunction": orchestrator.approval_function,
        "ApprovalFunctionUrl": orchestrator.approval_url,
        **{alarm.node.id: alarm for alarm in orchestrator.alarms},
    }
    ids = {}
    for sam_id, construct in found.items():
        child = construct.node.default_child
        assert isinstance(child, cdk.CfnElement), sam_id
        ids[stack.get_logical_id(child)] = sam_id
    return ids


@pytest.fixture(scope="module")
def cases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Stacks]:
    folder = tmp_path_factory.mktemp("code")
    app = cdk.App(
        outdir=str(tmp_path_factory.mktemp("cdk.out")),
        analytics_reporting=False,
        # As `cdk init` sets it in cdk.json: CDK may merge statements then, but not these.
        context={"@aws-cdk/aws-iam:minimizePolicies": True},
    )
    built = {}
    for name, props in CASES.items():
        stack = cdk.Stack(
            app,
            name,
            synthesizer=cdk.DefaultStackSynthesizer(generate_bootstrap_version_rule=False),
        )
        code = stand_in_code(folder)  # a Code belongs to one stack
        built[name] = (stack, Orchestrator(stack, "Orchestrator", code=code, **props))
    assembly = app.synth()
    template = transformed()
    found = {}
    for name, (stack, orchestrator) in built.items():
        values = parameter_values(template, **parameters(CASES[name]))
        found[name] = Stacks(
            sam=Evaluator(template, values).value(template["Resources"]),
            cdk=assembly.get_stack_by_name(name).template["Resources"],
            ids=_cdk_ids(stack, orchestrator),
        )
    return found


# ---------------------------------------------------------------------------------------------
# Normalizing


class Normal:
    """One CloudFormation value, written one way (see the module's docstring)."""

    def __init__(self, ids: Mapping[str, str]) -> None:
        self.ids = ids

    def name(self, logical_id: str) -> str:
        return self.ids.get(logical_id, logical_id)

    def __call__(self, node: Any) -> Any:
        if isinstance(node, bool):
            return "true" if node else "false"
        if isinstance(node, int):
            return str(node)
        if isinstance(node, list):
            return [self(item) for item in node]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((function, argument),) = node.items()
            if function == "Ref":
                return f"${{{self.name(argument)}}}"
            if function == "Fn::GetAtt":
                return f"${{{self.name(argument[0])}.{argument[1]}}}"
            if function == "Fn::Sub" and isinstance(argument, str):
                return re.sub(r"\$\{([^}.]+)", lambda m: "${" + self.name(m.group(1)), argument)
            if function == "Fn::Join":
                parts = self(argument[1])
                if isinstance(parts, list) and all(isinstance(p, str) for p in parts):
                    return str(argument[0]).join(parts)
        return {key: self(value) for key, value in node.items()}


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _statement(statement: Mapping[str, Any], normal: Normal) -> dict[str, Any]:
    found = {key: normal(value) for key, value in statement.items()}
    for key in ("Action", "Resource", "NotAction", "NotResource"):
        if key in found:
            found[key] = sorted(_as_list(found[key]), key=str)
    return found


def role_policies(
    resources: Mapping[str, Any], role: str, normal: Normal
) -> dict[str, dict[str, dict[str, Any]]]:
    """Every policy attached to the role (inline, separate or managed), its statements by
    Sid, normalized."""
    (logical_id,) = [i for i in resources if normal.name(i) == role]
    properties = resources[logical_id]["Properties"]
    documents = [(p["PolicyName"], p["PolicyDocument"]) for p in properties.get("Policies", [])]
    for other in resources.values():
        attached = other["Type"] == "AWS::IAM::Policy" and {"Ref": logical_id} in other[
            "Properties"
        ].get("Roles", [])
        if attached:
            documents.append(
                (other["Properties"]["PolicyName"], other["Properties"]["PolicyDocument"])
            )
    policies: dict[str, dict[str, dict[str, Any]]] = {}
    for name, document in documents:
        statements = [_statement(s, normal) for s in _as_list(document["Statement"])]
        by_sid = {str(s.get("Sid")): s for s in statements}
        assert len(by_sid) == len(statements), f"{role}: statements without their own Sid"
        policies[str(name)] = by_sid
    if "ManagedPolicyArns" in properties:
        policies["(managed)"] = {"": normal(properties["ManagedPolicyArns"])}
    return policies


# ---------------------------------------------------------------------------------------------
# The statements


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("role", [r.logical_id for r in permissions.ALL_ROLES])
def test_sam_and_cdk_grant_the_same_statements(
    cases: dict[str, Stacks], case: str, role: str
) -> None:
    stacks = cases[case]
    sam = role_policies(stacks.sam, role, Normal({}))
    built = role_policies(stacks.cdk, role, Normal(stacks.ids))
    assert built == sam
    assert len(sam) == 1  # one inline policy, nothing else on the role
    # What the case asks for is there, and only that: the comparison is not of two empties.
    (statements,) = sam.values()
    (source,) = [r for r in permissions.ALL_ROLES if r.logical_id == role]
    asked = CASES[case]
    expected = {s.sid for s in source.statements if s.when is None or asked.get(s.when.prop)}
    assert set(statements) == expected


def test_the_cases_cover_every_statement_and_its_absence(cases: dict[str, Stacks]) -> None:
    for role in permissions.ALL_ROLES:
        everything = role_policies(cases["Everything"].sam, role.logical_id, Normal({}))
        nothing = role_policies(cases["Nothing"].sam, role.logical_id, Normal({}))
        (all_sids,) = [set(p) for p in everything.values()]
        (base,) = [set(p) for p in nothing.values()]
        assert all_sids == {s.sid for s in role.statements}
        assert base == {s.sid for s in role.statements if s.when is None}


def test_the_derived_arns_are_the_same_on_both_sides(cases: dict[str, Stacks]) -> None:
    """The template's join/split tricks and the construct's derive() name the same ARNs."""
    stacks = cases["Everything"]
    policies = role_policies(stacks.cdk, "OrchestratorRole", Normal(stacks.ids))
    (statements,) = policies.values()
    assert statements["DescribeStateMachineExecutions"]["Resource"] == [
        arn("states", "execution:a:*"),
        arn("states", "execution:b:*"),
    ]
    assert statements["ReadGateDefinitions"]["Resource"] == [
        "arn:aws:s3:::my-gates/*",
        "arn:aws:s3:::team-gates/*",
    ]
    assert statements["UseTableKey"]["Condition"] == {
        "StringEquals": {"kms:ViaService": "dynamodb.${AWS::Region}.amazonaws.com"}
    }


def test_a_difference_in_one_statement_is_found(cases: dict[str, Stacks]) -> None:
    """The comparison is exact: one more resource on one statement breaks it."""
    stacks = cases["Mixed"]
    sam = role_policies(stacks.sam, "OrchestratorRole", Normal({}))
    built = role_policies(stacks.cdk, "OrchestratorRole", Normal(stacks.ids))
    (name,) = built
    built[name]["ReadAlarms"]["Action"].append("cloudwatch:ListMetrics")
    assert built != sam


# ---------------------------------------------------------------------------------------------
# The rest of the stack

SAM_ONLY_TAG = {"Key": "lambda:createdBy", "Value": "SAM"}


# Properties that name a function, by its name (SAM writes a Ref) or its ARN (CDK, a GetAtt):
# Lambda takes either for the same function.
FUNCTION_NAMES = {
    "AWS::Lambda::Permission": "FunctionName",
    "AWS::Lambda::EventInvokeConfig": "FunctionName",
    "AWS::Lambda::Url": "TargetFunctionArn",
}


def _signature(name: str, resource: Mapping[str, Any], properties: Mapping[str, Any]) -> str:
    """What names a resource on both sides: its template.yaml id, or what it is for."""
    if resource["Type"] == "AWS::Lambda::Permission":
        return f"Permission {properties['FunctionName']} {properties['Action']}"
    if resource["Type"] == "AWS::Lambda::EventInvokeConfig":
        return f"EventInvokeConfig {properties['FunctionName']}"
    return name


def comparable(resources: Mapping[str, Any], normal: Normal) -> dict[str, Any]:
    found = {}
    for name, resource in resources.items():
        properties = normal(resource.get("Properties", {}))
        if resource["Type"] == "AWS::Lambda::Function":
            properties.pop("Code")  # an S3 object for SAM, an asset for CDK
            tags = [t for t in properties.pop("Tags", []) if t != SAM_ONLY_TAG]
            if tags:
                properties["Tags"] = tags
        if resource["Type"] == "AWS::DynamoDB::Table":
            properties["AttributeDefinitions"].sort(key=lambda a: a["AttributeName"])
        if resource["Type"] == "AWS::IAM::Role":
            properties.pop("Policies")  # compared above, statement by statement
        if resource["Type"] in FUNCTION_NAMES:
            field = FUNCTION_NAMES[resource["Type"]]
            properties[field] = re.sub(r"^\$\{(\w+)\.Arn\}$", r"${\1}", properties[field])
        found[_signature(normal.name(name), resource, properties)] = {
            "Type": resource["Type"],
            "Properties": properties,
            **{k: resource[k] for k in ("DeletionPolicy", "UpdateReplacePolicy") if k in resource},
        }
    return found


@pytest.mark.parametrize("case", list(CASES))
def test_every_resource_has_its_counterpart_with_the_same_properties(
    cases: dict[str, Stacks], case: str
) -> None:
    stacks = cases[case]
    sam = comparable(stacks.sam, Normal({}))
    built = comparable(stacks.cdk, Normal(stacks.ids))
    assert Counter(r["Type"] for r in built.values()) == Counter(r["Type"] for r in sam.values())
    assert sorted(built) == sorted(sam)
    assert {n: built[n] for n in sam if built[n] != sam[n]} == {}


def test_the_table_keys_and_indexes_are_the_templates(cases: dict[str, Stacks]) -> None:
    table = comparable(cases["Nothing"].cdk, Normal(cases["Nothing"].ids))["RunsTable"]
    properties = table["Properties"]
    assert [i["IndexName"] for i in properties["GlobalSecondaryIndexes"]] == [
        "by-status-sharded",
        "by-status",
    ]
    assert properties["KeySchema"] == [{"AttributeName": "run_id", "KeyType": "HASH"}]
    assert properties["TimeToLiveSpecification"] == {
        "AttributeName": "expires_at",
        "Enabled": "true",
    }
    assert properties["DeletionProtectionEnabled"] == "true"
    assert table["DeletionPolicy"] == "Retain"


# ---------------------------------------------------------------------------------------------
# Bad keywords


def _errors(tmp_path: Path, **props: Any) -> list[str]:
    stack = cdk.Stack(cdk.App(outdir=str(tmp_path / "out")), "Bad")
    with pytest.raises(OrchestratorError) as caught:
        Orchestrator(stack, "Gates", code=stand_in_code(tmp_path / "code"), **props)
    assert "Orchestrator 'Gates'" in str(caught.value)
    return caught.value.errors


def test_bad_keywords_are_each_named_with_the_reason(tmp_path: Path) -> None:
    errors = _errors(
        tmp_path,
        state_machine_arns=[arn("states", "stateMachine:ok"), "deploy-pipeline"],
        table_kms_key_arn="alias/aws/dynamodb",
        secret_arns="arn:aws:secretsmanager:eu-west-1:123456789012:secret:x",
        read_metrics="true",
        log_retention_days=100,
        reserved_concurrency=0,
        approval_reserved_concurrency=100_000,
        run_retention_days=True,
        oidc_issuer="http://login.example.com",
        log_level="TRACE",
    )
    assert errors == [
        "read_metrics: 'true' is not a bool",
        "state_machine_arns[1]: 'deploy-pipeline' is not an ARN like"
        " arn:aws:states:REGION:ACCOUNT:stateMachine:NAME",
        "secret_arns: a list of ARNs, not str"
        " 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:x'",
        "table_kms_key_arn: 'alias/aws/dynamodb' is not an ARN like"
        " arn:aws:kms:REGION:ACCOUNT:key/KEY-ID",
        "run_retention_days: True is not a whole number from 1",
        "reserved_concurrency: 0 is not a whole number from 1",
        "approval_reserved_concurrency: 100000 is more than 99,999",
        "log_retention_days: 100 is not one CloudWatch Logs offers"
        " (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192,"
        " 2557, 2922, 3288, 3653)",
        "log_level: 'TRACE' is not one of DEBUG, INFO, WARNING, ERROR",
        "oidc_issuer: 'http://login.example.com' is not an https URL",
    ]


def _stand_in_package(path: Path) -> Path:
    """A zip where `make build` writes the Lambda package."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("orchestrator/__init__.py", "")
    return path


def test_without_code_the_built_package_is_needed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.cdk import construct

    stack = cdk.Stack(cdk.App(outdir=str(tmp_path / "out")), "NoCode")
    monkeypatch.setattr(construct, "DEFAULT_PACKAGE", tmp_path / "orchestrator-lambda.zip")
    with pytest.raises(OrchestratorError, match=r"code: no Lambda package .*make build"):
        Orchestrator(stack, "Gates")
    _stand_in_package(tmp_path / "orchestrator-lambda.zip")
    built = Orchestrator(stack, "Built")  # found: taken as the functions' code
    assert built.function.runtime.name == "python3.13"
    assert construct.DEFAULT_PACKAGE.name == "orchestrator-lambda.zip"


def test_the_default_package_is_the_one_make_build_writes() -> None:
    from orchestrator.cdk.construct import DEFAULT_PACKAGE
    from scripts import build_lambda

    assert DEFAULT_PACKAGE == build_lambda.DEFAULT_ZIP


def test_the_deploy_doc_snippet_synthesizes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/DEPLOY.md's construct, run as written (with a stand-in for `make build`'s zip):
    its keywords exist and give the statements they should."""
    from orchestrator.cdk import construct

    (snippet,) = re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)
    monkeypatch.setattr(
        construct, "DEFAULT_PACKAGE", _stand_in_package(tmp_path / "orchestrator-lambda.zip")
    )
    monkeypatch.setenv("CDK_OUTDIR", str(tmp_path / "cdk.out"))
    namespace: dict[str, Any] = {}
    exec(compile(snippet, str(DOCS), "exec"), namespace)
    stack, orchestrator = namespace["stack"], namespace["orchestrator"]
    assert isinstance(orchestrator, Orchestrator)
    resources = cdk.assertions.Template.from_stack(stack).to_json()["Resources"]
    ids = _cdk_ids(stack, orchestrator)
    (policy,) = role_policies(resources, "OrchestratorRole", Normal(ids)).values()
    base = {s.sid for s in permissions.FUNCTION_ROLE.statements if s.when is None}
    asked = {"StartStateMachines", "DescribeStateMachineExecutions", "AssumeTargetRoles"}
    assert set(policy) == base | asked | {"ReadMetrics"}


def test_tokens_are_taken_as_they_are(tmp_path: Path) -> None:
    """ARNs of other constructs are known only at deploy time: not checked, still derived."""
    stack = cdk.Stack(cdk.App(outdir=str(tmp_path / "out")), "Tokens")
    machine = cdk.Fn.import_value("machine-arn")
    Orchestrator(
        stack, "Gates", code=stand_in_code(tmp_path / "code"), state_machine_arns=[machine]
    )
    template = cdk.assertions.Template.from_stack(stack).to_json()
    (role,) = [
        r
        for r in template["Resources"].values()
        if r["Type"] == "AWS::IAM::Role"
        and "orchestrator" in str(r["Properties"]["Policies"][0]["PolicyName"])
    ]
    statements = {
        s["Sid"]: s for s in role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    }
    assert statements["StartStateMachines"]["Resource"] == {"Fn::ImportValue": "machine-arn"}
    describe = statements["DescribeStateMachineExecutions"]["Resource"]
    assert describe == {
        "Fn::Join": [
            "",
            [
                {
                    "Fn::Join": [
                        ":execution:",
                        {"Fn::Split": [":stateMachine:", {"Fn::ImportValue": "machine-arn"}]},
                    ]
                },
                ":*",
            ],
        ]
    }
