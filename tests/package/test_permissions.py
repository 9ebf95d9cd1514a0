"""orchestrator/cdk/permissions.py, the one source of both roles' IAM statements: template.yaml
carries exactly what it generates, and its options are template.yaml's parameters and
conditions. (That the CDK construct grants the same: tests/package/test_cdk_orchestrator.py.)"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from orchestrator.cdk import permissions
from orchestrator.cdk.permissions import (
    ALL_ROLES,
    BEGIN,
    END,
    OPTIONS,
    Derive,
    Given,
    Kind,
    Own,
    Statement,
    generate,
)
from scripts import template as script
from tests.package.test_template import MAKEFILE, TEMPLATE, load_cfn

if TYPE_CHECKING:
    from pathlib import Path


def test_template_yaml_carries_the_generated_statements() -> None:
    """Run `make template` when this fails: someone edited the statements in template.yaml,
    or permissions.py without regenerating."""
    text = TEMPLATE.read_text()
    assert generate(text) == text
    for role in ALL_ROLES:
        assert text.count(BEGIN.format(role=role.logical_id)) == 1
        assert text.count(END.format(role=role.logical_id)) == 1


def test_a_hand_edit_inside_a_block_is_found_and_overwritten(tmp_path: Path) -> None:
    text = TEMPLATE.read_text()
    edited = text.replace(
        "- dynamodb:Query\n", "- dynamodb:Query\n                  - dynamodb:Scan\n"
    )
    assert edited != text
    assert generate(edited) == text
    stale = tmp_path / "template.yaml"
    stale.write_text(edited)
    assert script.main(["--check", "--template", str(stale)]) == 1
    assert stale.read_text() == edited  # --check writes nothing
    assert script.main(["--template", str(stale)]) == 0
    assert stale.read_text() == text
    assert script.main(["--check", "--template", str(stale)]) == 0


def test_make_template_runs_the_generator() -> None:
    makefile = MAKEFILE.read_text()
    assert re.search(r"^template: .*\n\t\$\(BIN\)/python -m scripts\.template\n", makefile, re.M)
    assert re.search(r"^\.PHONY: .*\btemplate\b", makefile, re.M)


def test_a_missing_marker_is_an_error_naming_the_block() -> None:
    text = TEMPLATE.read_text().replace(END.format(role="ApprovalRole"), "# the end")
    with pytest.raises(ValueError, match="ApprovalRole statements"):
        generate(text)


def test_every_statement_of_the_template_roles_comes_from_the_source() -> None:
    """The Sids in template.yaml's two policies are the source's, in the source's order."""
    template = load_cfn(TEMPLATE)
    for role in ALL_ROLES:
        (policy,) = template["Resources"][role.logical_id]["Properties"]["Policies"]
        assert policy["PolicyName"] == role.policy_name
        found = []
        for item in policy["PolicyDocument"]["Statement"]:
            if "Fn::If" in item:
                condition, statement, _ = item["Fn::If"]
                found.append((condition, statement["Sid"]))
            else:
                found.append(("", item["Sid"]))
        expected = [(s.when.condition if s.when else "", s.sid) for s in role.statements]
        assert found == expected


def _not_empty(option: permissions.Option) -> object:
    ref = {"Ref": option.parameter}
    if option.kind is Kind.FLAG:
        return {"Fn::Equals": [ref, "true"]}
    if option.kind is Kind.ARN_LIST:
        return {"Fn::Not": [{"Fn::Equals": [{"Fn::Join": ["", ref]}, ""]}]}
    return {"Fn::Not": [{"Fn::Equals": [ref, ""]}]}


@pytest.mark.parametrize("option", OPTIONS, ids=[o.parameter for o in OPTIONS])
def test_each_option_is_a_template_parameter_with_its_condition(
    option: permissions.Option,
) -> None:
    template = load_cfn(TEMPLATE)
    parameter = template["Parameters"][option.parameter]
    assert template["Conditions"][option.condition] == _not_empty(option)
    assert option.prop == re.sub(r"(?<!^)(?=[A-Z])", "_", option.parameter).lower()
    if option.kind is Kind.FLAG:
        assert parameter["AllowedValues"] == ["true", "false"]
        return
    assert parameter["Default"] == ""
    if option.kind is Kind.ARN_LIST:
        assert parameter["Type"] == "CommaDelimitedList"
    else:  # CloudFormation checks a single ARN with the very pattern the construct uses
        assert parameter["Type"] == "String"
        assert parameter["AllowedPattern"] == f"^({option.pattern})?$"


# Test values of tests/package/test_template.py, one per option, and what each must refuse.
GOOD = {
    "StateMachineArns": "arn:aws:states:eu-west-1:123456789012:stateMachine:a",
    "InvokableFunctionArns": "arn:aws:lambda:eu-west-1:123456789012:function:check:*",
    "SecretArns": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:itsm-token-??????",
    "SsmParameterArns": "arn:aws:ssm:eu-west-1:123456789012:parameter/itsm/token",
    "ChangeCalendarArns": "arn:aws:ssm:eu-west-1:123456789012:document/prod-change-calendar",
    "GateBucketArns": "arn:aws:s3:::my-gates",
    "NotificationTopicArns": "arn:aws:sns:eu-west-1:123456789012:ops",
    "AssumableRoleArns": "arn:aws:iam::222233334444:role/orchestrator-gate",
    "TableKmsKeyArn": "arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555",
    "SecretKmsKeyArn": "arn:aws-us-gov:kms:us-gov-west-1:123456789012:key/abc-1",
    "QueueKmsKeyArn": "arn:aws:kms:eu-west-1:123456789012:key/7",
    "LogKmsKeyArn": "arn:aws:kms:eu-west-1:123456789012:key/8",
    "AlarmTopicArn": "arn:aws:sns:eu-west-1:123456789012:alarms",
    "SlackSigningSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:slack-AbCdEf",
    "OidcClientSecretArn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:oidc-AbCdEf",
}
BAD = {
    "StateMachineArns": "arn:aws:states:eu-west-1:123456789012:execution:a:b",
    "InvokableFunctionArns": "check",
    "SecretArns": "arn:aws:ssm:eu-west-1:123456789012:parameter/x",
    "SsmParameterArns": "/itsm/token",
    "ChangeCalendarArns": "arn:aws:ssm:eu-west-1:123456789012:parameter/x",
    "GateBucketArns": "arn:aws:s3:::my-gates/*",
    "NotificationTopicArns": "ops",
    "AssumableRoleArns": "arn:aws:iam::222233334444:user/someone",
    "TableKmsKeyArn": "alias/aws/dynamodb",
    "SecretKmsKeyArn": "arn:aws:kms:eu-west-1:123456789012:alias/x",
    "QueueKmsKeyArn": "",
    "LogKmsKeyArn": "arn:aws:kms:eu-west-1:1234:key/8",
    "AlarmTopicArn": "arn:aws:sqs:eu-west-1:123456789012:alarms",
    "SlackSigningSecretArn": "xoxb-not-an-arn",
    "OidcClientSecretArn": "the-secret-itself",
}


@pytest.mark.parametrize(
    "option", [o for o in OPTIONS if o.kind is not Kind.FLAG], ids=lambda o: o.parameter
)
def test_each_arn_pattern_takes_its_kind_of_arn_only(option: permissions.Option) -> None:
    assert option.matches(GOOD[option.parameter])
    assert not option.matches(BAD[option.parameter])
    assert option.shape.startswith("arn:aws:")


def test_a_statement_on_given_arns_names_only_those() -> None:
    with pytest.raises(ValueError, match="only resource"):
        Statement(
            "X",
            ("sns:Publish",),
            (Own.NOTIFICATION_TOPIC, Given(permissions.TOPICS)),
            when=permissions.TOPICS,
        )
    with pytest.raises(ValueError, match="only resource"):
        Statement("X", ("sns:Publish",), (Given(permissions.TOPICS),))  # always there: no
    with pytest.raises(ValueError, match="only resource"):
        Statement("X", ("sns:Publish",), (Given(permissions.TOPICS),), when=permissions.ROLES)


def test_derived_arns() -> None:
    machine = "arn:aws:states:eu-west-1:123456789012:stateMachine:deploy"
    assert permissions.derive(Derive.EXECUTIONS, machine) == (
        "arn:aws:states:eu-west-1:123456789012:execution:deploy:*"
    )
    assert permissions.derive(Derive.OBJECTS, "arn:aws:s3:::my-gates") == "arn:aws:s3:::my-gates/*"
    assert permissions.derive(Derive.AS_GIVEN, machine) == machine


def test_sids_are_unique_per_role_and_every_option_of_a_statement_is_an_option() -> None:
    for role in ALL_ROLES:
        sids = [s.sid for s in role.statements]
        assert len(sids) == len(set(sids)), role.logical_id
        assert {s.when for s in role.statements if s.when} <= set(OPTIONS)
