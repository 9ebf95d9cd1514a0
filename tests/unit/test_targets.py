"""`orchestrator.targets`: the role/external id/region fields, the role session names, the
gate's `defaults` (a pure function over plain dicts), and what a role error means to a step."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
from pydantic import ValidationError

from orchestrator.definition import parse_definition
from orchestrator.exceptions import DefinitionError, FailureType
from orchestrator.steps import Failed, Pending
from orchestrator.steps.alarms import AlarmsStep
from orchestrator.targets import (
    AwsTarget,
    Defaults,
    RoleDenied,
    RoleUnavailable,
    Target,
    apply_defaults,
    aws_calling,
    role_outcome,
    session_name,
)

ROLE = "arn:aws:iam::222233334444:role/gate-reader"
OTHER = "arn:aws:iam::555566667777:role/ops/other"
RUN = "0f8fad5b-d9cb-469f-a165-70867728950e"
DEFAULTS = {"role_arn": ROLE, "external_id": "release-gates", "region": "eu-west-1"}
TARGETED = {"role_arn": ROLE, "external_id": "release-gates", "region": "eu-west-1"}


def alarms(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "alarms": {"prefix": f"{name}-"}, **extra}


# region the fields


def test_the_fields_are_optional_and_checked() -> None:
    assert Target().acting_as(RUN, "s") is None
    assert Target(region="us-gov-west-1").region == "us-gov-west-1"
    assert Target(role_arn="arn:aws-cn:iam::222233334444:role/a/b/c").role_arn
    for bad, reason in (
        ({"role_arn": "arn:aws:iam::2222:role/x"}, "invalid role ARN"),
        ({"role_arn": "arn:aws:iam::222233334444:user/x"}, "invalid role ARN"),
        ({"region": "Europe"}, "invalid region"),
        ({"role_arn": ROLE, "external_id": "x"}, "invalid external id"),
        ({"role_arn": ROLE, "external_id": "has space"}, "invalid external id"),
        ({"external_id": "release-gates"}, "'external_id' goes with 'role_arn'"),
        ({"role": ROLE}, "Extra inputs are not permitted"),
    ):
        with pytest.raises(ValidationError, match=reason):
            Defaults.model_validate(bad)


def test_a_step_reports_bad_fields_by_path() -> None:
    document = {"steps": [alarms("quiet", role_arn="prod", region="Mars")]}
    with pytest.raises(DefinitionError) as caught:
        parse_definition(json.dumps(document))
    assert any(line.startswith("steps[0].role_arn: ") for line in caught.value.errors)
    assert any(line.startswith("steps[0].region: ") for line in caught.value.errors)


def test_kinds_that_call_no_aws_refuse_the_fields() -> None:
    with pytest.raises(DefinitionError, match=r"steps\[0\]\.role_arn"):
        parse_definition(json.dumps({"steps": [{"name": "bake", "wait": "1m", "role_arn": ROLE}]}))


def test_templated_values_are_checked_once_rendered() -> None:
    step = AlarmsStep.model_validate(alarms("quiet", role_arn="${run.role}"))
    rendered = step.rendered({"run": {"role": ROLE}})
    assert isinstance(rendered, AlarmsStep) and rendered.role_arn == ROLE
    with pytest.raises(ValidationError, match="invalid role ARN"):
        step.rendered({"run": {"role": "nobody"}})


def test_acting_as_names_the_role_session_after_the_run_and_step() -> None:
    target = Target(role_arn=ROLE, external_id="release-gates", region="eu-west-1")
    found = target.acting_as(RUN, "quiet")
    assert found == AwsTarget(ROLE, "release-gates", "eu-west-1", f"{RUN}-quiet")
    assert str(found) == f"role {ROLE} in eu-west-1"
    assert found.record() == {"role_arn": ROLE, "region": "eu-west-1", "session": f"{RUN}-quiet"}
    region_only = Target(region="eu-west-1").acting_as(RUN, "quiet")
    assert region_only == AwsTarget(None, None, "eu-west-1", None)
    assert str(region_only) == "the function's role in eu-west-1"


# endregion

# region session names

_STS_NAME = re.compile(r"[\w+=,.@-]{2,64}")


@pytest.mark.parametrize(
    ("run_id", "step"),
    [
        (RUN, "quiet"),
        (RUN, "x" * 64),
        (RUN, "s" * 27),  # exactly 64 characters
        ("run with spaces/and:colons", "step"),
        ("r" * 200, "step"),
    ],
)
def test_session_names_fit_sts(run_id: str, step: str) -> None:
    name = session_name(run_id, step)
    assert _STS_NAME.fullmatch(name), name
    if len(run_id) <= 36 and _STS_NAME.fullmatch(run_id):
        assert name.startswith(f"{run_id}-")  # the run id stays whole: an auditor greps it


def test_session_names_are_plain_when_they_fit_and_distinct_when_shortened() -> None:
    assert session_name(RUN, "quiet") == f"{RUN}-quiet"
    assert session_name(RUN, "s" * 27) == f"{RUN}-{'s' * 27}"
    long_a, long_b = session_name(RUN, "a" * 40 + "1"), session_name(RUN, "a" * 40 + "2")
    assert long_a != long_b and len(long_a) == len(long_b) == 64
    assert session_name(RUN, "a:b") != session_name(RUN, "a-b")  # not only the plain text


# endregion

# region defaults


def test_defaults_reach_every_aws_calling_step_at_any_depth() -> None:
    document = {
        "defaults": DEFAULTS,
        "steps": [
            {"name": "bake", "wait": "10m"},
            alarms("quiet"),
            {
                "name": "checks",
                "parallel": [
                    alarms("a"),
                    {"name": "seq", "steps": [{"name": "smoke", "state_machine": {"arn": "x"}}]},
                    {"name": "either", "any": [{"name": "fn", "lambda": {"function": "f"}}]},
                ],
            },
        ],
        "guards": [alarms("g")],
        "on_failure": [{"name": "page", "lambda": {"function": "pager"}}],
    }
    result = apply_defaults(document)
    steps = result["steps"]
    assert steps[0] == {"name": "bake", "wait": "10m"}
    assert steps[1] == {**alarms("quiet"), **TARGETED}
    parallel = steps[2]["parallel"]
    assert parallel[0] == {**alarms("a"), **TARGETED}
    assert parallel[1]["steps"][0] == {"name": "smoke", "state_machine": {"arn": "x"}, **TARGETED}
    assert parallel[2]["any"][0] == {"name": "fn", "lambda": {"function": "f"}, **TARGETED}
    assert "role_arn" not in steps[2]  # a group calls nothing itself
    assert result["guards"] == [{**alarms("g"), **TARGETED}]
    assert result["on_failure"] == [{"name": "page", "lambda": {"function": "pager"}, **TARGETED}]
    assert result["defaults"] == DEFAULTS  # kept for validation


def test_a_step_keeps_what_it_sets_itself() -> None:
    document = {
        "defaults": DEFAULTS,
        "steps": [
            alarms("other", role_arn=OTHER),  # its own role: not the default's external id
            alarms("own", role_arn=None),  # null: the function's own role, deliberately
            alarms("west", region="us-west-2"),
            alarms("ext", role_arn=OTHER, external_id="theirs"),
        ],
    }
    steps = apply_defaults(document)["steps"]
    assert steps[0] == {**alarms("other"), "role_arn": OTHER, "region": "eu-west-1"}
    assert steps[1] == {**alarms("own"), "role_arn": None, "region": "eu-west-1"}
    assert steps[2] == {**alarms("west"), "role_arn": ROLE, "external_id": "release-gates",
                        "region": "us-west-2"}  # fmt: skip
    assert steps[3] == {**alarms("ext"), "role_arn": OTHER, "external_id": "theirs",
                        "region": "eu-west-1"}  # fmt: skip


def test_partial_defaults_copy_only_what_they_give() -> None:
    document = {"defaults": {"region": "eu-west-1"}, "steps": [alarms("quiet")]}
    assert apply_defaults(document)["steps"] == [{**alarms("quiet"), "region": "eu-west-1"}]
    document = {"defaults": {"role_arn": ROLE}, "steps": [alarms("quiet")]}
    assert apply_defaults(document)["steps"] == [{**alarms("quiet"), "role_arn": ROLE}]


def test_steps_whose_aws_calls_name_their_own_target_get_no_defaults() -> None:
    """http (secret references carry their own fields), approval (so does `notify`), wait
    and python: defaults are for the kinds whose calls go to the target account."""
    steps = [
        {"name": "bake", "wait": "1m"},
        {"name": "ping", "http": {"url": "https://x", "headers": {"A": {"secret": "s"}}}},
        {"name": "ok", "approval": {"approvers": ["a"], "notify": {"sns": "t"}}},
        {"name": "py", "python": {"function": "m:f"}},
    ]
    document = {"defaults": DEFAULTS, "steps": steps}
    assert apply_defaults(document)["steps"] == steps
    assert [kind for kind in ("alarms", "state_machine", "lambda") if aws_calling(kind)] == [
        "alarms",
        "state_machine",
        "lambda",
    ]
    assert not any(aws_calling(kind) for kind in ("wait", "http", "approval", "python"))


@pytest.mark.parametrize(
    "document",
    [
        {"steps": [alarms("quiet")]},  # no defaults
        {"defaults": {}, "steps": [alarms("quiet")]},
        {"defaults": {"role_arn": "nobody"}, "steps": [alarms("quiet")]},  # invalid: reported
        {"defaults": {"external_id": "lonely-id"}, "steps": [alarms("quiet")]},
        {"defaults": {"rol_arn": ROLE}, "steps": [alarms("quiet")]},
        {"defaults": "eu-west-1", "steps": [alarms("quiet")]},
        {"defaults": DEFAULTS, "steps": "not a list"},
        {"defaults": DEFAULTS, "steps": [7, None, {"name": "two", "alarms": {}, "lambda": {}}]},
    ],
)
def test_what_cannot_apply_leaves_the_document_as_it_was(document: dict[str, Any]) -> None:
    assert apply_defaults(document) == document


def test_the_input_is_not_changed() -> None:
    document = {"defaults": DEFAULTS, "steps": [alarms("quiet")]}
    before = copy.deepcopy(document)
    result = apply_defaults(document)
    assert document == before and result != before
    result["steps"][0]["alarms"]["prefix"] = "changed"
    assert document == before  # a deep copy


def test_a_defaulted_gate_validates_as_the_steps_would() -> None:
    """What apply_defaults gives is what the steps accept (the definition parses), and the
    definition applies them itself."""
    document = {"defaults": DEFAULTS, "steps": [alarms("quiet")]}
    applied = apply_defaults(document)
    step = parse_definition(json.dumps(applied)).steps[0]
    assert isinstance(step, AlarmsStep)
    assert (step.role_arn, step.external_id, step.region) == (ROLE, "release-gates", "eu-west-1")
    applied_by_the_definition = parse_definition(json.dumps(document)).steps[0]
    assert applied_by_the_definition == step


# endregion

# region what a role error means


def test_a_denied_role_fails_the_step_and_an_unavailable_one_waits() -> None:
    denied = role_outcome("quiet", RoleDenied(f"cannot assume role {ROLE} (AccessDenied)"))
    assert denied == Failed(
        f"step 'quiet': cannot assume role {ROLE} (AccessDenied)", FailureType.PERMISSION_ERROR
    )
    invalid = RoleDenied("cannot assume role x (ValidationError)", FailureType.CONFIGURATION_ERROR)
    assert role_outcome("quiet", invalid) == Failed(
        "step 'quiet': cannot assume role x (ValidationError)", FailureType.CONFIGURATION_ERROR
    )
    waiting = role_outcome("quiet", RoleUnavailable(f"role {ROLE}: STS unavailable (Throttling)"))
    assert waiting == Pending(
        f"role {ROLE}: STS unavailable (Throttling); retrying", unobserved=True
    )


# endregion
