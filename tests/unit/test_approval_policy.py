"""The approval policy (issue 13): identities, the links mode, the initiator, group quorums,
what a timeout means; in the spec, `tally()` and `decide()`, and through the tick."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orchestrator import engine
from orchestrator.approval import notify, runtime
from orchestrator.approval.decide import Refusal, Refused, decide, tally
from orchestrator.approval.principals import (
    first_match,
    initiator_identities,
    matches,
    normalize,
)
from orchestrator.definition import parse_definition
from orchestrator.exceptions import DefinitionError, FailureType
from orchestrator.model import AnswerKind, StepState
from orchestrator.pipeline_context import PipelineContext
from orchestrator.steps import Done, Failed, StepContext
from orchestrator.steps.approval import ApprovalStep
from orchestrator.tick import TickConfig, Ticker
from tests.fakes import RecordingReporter
from tests.unit.test_approval_step import Rig
from tests.unit.test_steps_pipeline_context import FakeCodePipeline

ALICE = "arn:aws:sts::123456789012:assumed-role/Dev/alice"
BOB = "arn:aws:iam::123456789012:user/bob"
SRE = "email:*@sre.example.com"
ISSUER = "https://id.example.com"


# region identities


@pytest.mark.parametrize(
    ("identity", "patterns", "expected"),
    [
        ("email:Alice@Example.COM", ["email:alice@example.com"], True),
        ("email:alice@example.com", ["email:ALICE@example.com"], True),
        ("email:alice@example.com", ["email:*@example.com"], True),
        ("email:Alice@EXAMPLE.com", ["email:*@example.com"], True),
        ("email:alice@sub.example.com", ["email:*@example.com"], False),
        ("email:alice@example.com.evil", ["email:*@example.com"], False),
        ("email:alice@example.com", ["email:bob@example.com"], False),
        ("email:*@example.com", ["email:*@example.com"], False),
        (f"oidc:{ISSUER}#u-1", [f"oidc:{ISSUER}#u-1"], True),
        (f"oidc:{ISSUER}#u-1", [f"oidc:{ISSUER}#U-1"], False),
        (f"oidc:{ISSUER}#u-12", [f"oidc:{ISSUER}#u-1"], False),
        ("slack:U0123ABCD", ["slack:U0123ABCD"], True),
        ("slack:U0123ABCE", ["slack:U0123ABCD"], False),
        # a form only matches its own form, whatever the text after the prefix
        ("email:alice@example.com", ["arn:*"], False),
        ("slack:U0123ABCD", ["arn:*"], False),
        ("arn:aws:iam::1:user/x", ["email:*@example.com", "slack:U0123ABCD"], False),
        ("alice", ["arn:*", "email:*@example.com"], False),
        # ARNs as before
        (ALICE, ["arn:aws:iam::123456789012:role/Dev"], True),
        (ALICE, ["arn:aws:sts::123456789012:assumed-role/Dev/*"], True),
        (BOB, ["arn:aws:iam::123456789012:user/BOB"], False),
    ],
)
def test_identities_match_exactly_in_their_own_form(
    identity: str, patterns: list[str], expected: bool
) -> None:
    assert matches(identity, patterns) is expected


def test_emails_are_recorded_in_lower_case_and_a_sign_in_picks_its_first_allowed_identity() -> None:
    assert normalize(" email:Alice@Example.com ") == "email:alice@example.com"
    assert normalize(f"oidc:{ISSUER}#AbC") == f"oidc:{ISSUER}#AbC"
    proven = [f"oidc:{ISSUER}#u-1", "email:Bob@SRE.example.com"]
    assert first_match(proven, [SRE]) == "email:bob@sre.example.com"
    assert first_match(proven, [f"oidc:{ISSUER}#u-1", SRE]) == f"oidc:{ISSUER}#u-1"
    assert first_match(proven, ["slack:U0123ABCD"]) is None


@pytest.mark.parametrize(
    "pattern",
    [
        "alice",
        "email:alice",
        "email:a*@example.com",
        "email:*@*.example.com",
        "email:alice@example.com ",
        f"oidc:{ISSUER}",
        f"oidc:{ISSUER}#*",
        "oidc:id.example.com#u-1",
        "slack:U*",
        "slack:alice",
        "ldap:alice",
    ],
)
def test_approver_patterns_outside_the_forms_are_refused(pattern: str) -> None:
    with pytest.raises(DefinitionError) as raised:
        parse_definition(
            json.dumps({"steps": [{"name": "a", "approval": {"approvers": [pattern]}}]})
        )
    assert any(f"invalid approver {pattern!r}" in line for line in raised.value.errors)


def test_every_form_is_a_valid_approver() -> None:
    approvers = [BOB, "email:alice@example.com", SRE, f"oidc:{ISSUER}#u-1", "slack:U0123ABCD"]
    definition = parse_definition(
        json.dumps({"steps": [{"name": "a", "approval": {"approvers": approvers, "required": 5}}]})
    )
    assert definition.steps[0].kind == "approval"


@pytest.mark.parametrize(
    ("trigger_type", "detail", "identities"),
    [
        ("StartPipelineExecution", ALICE, [ALICE]),
        (
            "StartPipelineExecution",
            "arn:aws:sts::1:assumed-role/AWSReservedSSO_Admin_0a/Alice@Example.com",
            [
                "arn:aws:sts::1:assumed-role/AWSReservedSSO_Admin_0a/Alice@Example.com",
                "email:alice@example.com",
            ],
        ),
        (
            "StartPipelineExecution",
            "arn:aws:iam::1:role/team/Deployer",
            ["arn:aws:iam::1:role/Deployer"],
        ),
        ("StartPipelineExecution", "Carol@Example.com", ["email:carol@example.com"]),
        ("ManualRollback", BOB, [BOB]),
        ("Webhook", "arn:aws:codepipeline:us-east-1:1:webhook:github", []),
        ("CloudWatchEvent", "arn:aws:events:us-east-1:1:rule/nightly", []),
        ("PollForSourceChanges", "", []),
        ("StartPipelineExecution", "not a principal", []),
        (None, None, []),
    ],
)
def test_the_initiator_maps_to_the_identities_it_can(
    trigger_type: str | None, detail: str | None, identities: list[str]
) -> None:
    assert initiator_identities(trigger_type, detail) == identities


# endregion
# region the spec


def errors_of(approval: dict[str, Any], **step: Any) -> list[str]:
    with pytest.raises(DefinitionError) as raised:
        parse_definition(json.dumps({"steps": [{"name": "a", "approval": approval, **step}]}))
    return raised.value.errors


@pytest.mark.parametrize(
    ("approval", "step", "error"),
    [
        ({"approvers": [BOB, ALICE], "required": 2, "links": "bearer"}, {},
         "steps[0].approval.links: 'bearer' needs required 1"),
        ({"groups": {"sre": [SRE]}, "links": "bearer"}, {},
         "steps[0].approval.links: 'bearer' needs required 1"),
        ({"approvers": [BOB], "links": "anyone"}, {}, "steps[0].approval.links: Input should be"),
        ({"approvers": [BOB], "groups": {"sre": [SRE]}}, {},
         "give either 'approvers' (a list) or 'groups'"),
        ({"required": 1}, {}, "give either 'approvers' (a list) or 'groups'"),
        ({"approvers": [BOB], "required": {"sre": 1}}, {},
         "steps[0].approval.required: expected a number"),
        ({"groups": {"sre": [SRE]}, "required": 2}, {},
         "steps[0].approval.required: with 'groups', an object"),
        ({"groups": {"sre": [SRE]}, "required": {"ops": 1}}, {},
         "steps[0].approval.required: names no group: ops"),
        ({"groups": {"sre": [SRE]}, "required": {"sre": 0}}, {},
         "steps[0].approval.required: group 'sre': needs at least 1 approval"),
        ({"groups": {"sec": ["slack:U0123ABCD"]}, "required": {"sec": 2}}, {},
         "group 'sec' needs 2 but lists only 1 distinct approvers"),
        ({"groups": {"s r e": [SRE]}}, {}, "invalid group name 's r e'"),
        ({"groups": {"sre": []}}, {}, "group 'sre': list 1 to 50 approvers"),
        ({"groups": {"sre": ["nobody"]}}, {}, "invalid approver 'nobody'"),
        ({"approvers": [BOB], "on_timeout": "approve"}, {},
         "on_timeout 'approve' needs the step's own 'timeout'"),
        ({"approvers": [BOB], "on_timeout": "maybe"}, {"timeout": "1h"},
         "steps[0].approval.on_timeout: Input should be"),
    ],
)  # fmt: skip
def test_invalid_policies_name_the_field(
    approval: dict[str, Any], step: dict[str, Any], error: str
) -> None:
    errors = errors_of(approval, **step)
    assert any(error in line for line in errors), errors


def test_bearer_links_with_one_approval_and_the_defaults_are_valid() -> None:
    definition = parse_definition(
        json.dumps(
            {
                "steps": [
                    {"name": "a", "approval": {"approvers": [BOB], "links": "bearer"}},
                    {"name": "b", "approval": {"groups": {"sre": [SRE], "sec": [BOB]}}},
                ]
            }
        )
    )
    first, second = definition.steps
    assert isinstance(first, ApprovalStep) and isinstance(second, ApprovalStep)
    assert first.approval.links == "bearer" and second.approval.links == "signed-in"
    assert second.approval.on_timeout == "reject" and not second.approval.exclude_initiator
    assert second.approval.counts() == {"sre": 1, "sec": 1}


# endregion
# region tally


def approve(at: float, comment: str = "") -> dict[str, Any]:
    return {"decision": "approve", "comment": comment, "at": at}


GROUPS = {"sre": [SRE, BOB], "security": ["email:*@sec.example.com", BOB]}


def test_a_group_quorum_needs_every_group_and_a_person_counts_once() -> None:
    one_sre = tally({"email:ann@sre.example.com": approve(1)}, GROUPS, {"sre": 1, "security": 1})
    assert not one_sre.approved and one_sre.missing == {"sre": 0, "security": 1}
    assert one_sre.needs() == "1 from security" and one_sre.required == 2
    two_sre = tally(
        {"email:ann@sre.example.com": approve(1), "email:joe@sre.example.com": approve(2)},
        GROUPS,
        {"sre": 1, "security": 1},
    )
    assert not two_sre.approved and two_sre.needs() == "1 from security"
    # Bob is in both groups but counts once: alone he cannot meet both.
    bob = tally({BOB: approve(1)}, GROUPS, {"sre": 1, "security": 1})
    assert not bob.approved and sum(bob.missing.values()) == 1
    both = tally(
        {"email:ann@sre.example.com": approve(1), "email:Sue@SEC.example.com": approve(2, "ok")},
        GROUPS,
        {"sre": 1, "security": 1},
    )
    assert both.approved and both.approved_by == [
        "email:ann@sre.example.com",
        "email:Sue@SEC.example.com",
    ]


def test_a_person_in_two_groups_fills_whichever_seat_makes_the_quorum() -> None:
    # Bob first: he could sit in sre; Ann (sre only) comes next: Bob moves to security.
    decisions = {BOB: approve(1), "email:ann@sre.example.com": approve(2)}
    counted = tally(decisions, GROUPS, {"sre": 1, "security": 1})
    assert counted.approved and counted.missing == {"sre": 0, "security": 0}
    # Two from sre: Bob and Ann cover sre; security still needs one of its own.
    counted = tally(decisions, GROUPS, {"sre": 2, "security": 1})
    assert not counted.approved and counted.needs() == "1 from security"


def test_a_reject_from_any_group_settles_and_the_initiator_never_counts() -> None:
    decisions = {
        "email:ann@sre.example.com": approve(1),
        BOB: {"decision": "reject", "comment": "no", "at": 2},
    }
    rejected = tally(decisions, GROUPS, {"sre": 1, "security": 1})
    assert rejected.rejected_by == BOB and rejected.reason == "no" and not rejected.approved
    excluded = tally(decisions, GROUPS, {"sre": 1, "security": 1}, excluded={BOB})
    assert excluded.rejected_by is None and excluded.excluded == [BOB]
    plain = tally({BOB: approve(1)}, [BOB], 1, excluded={BOB})
    assert not plain.approved and plain.excluded == [BOB] and plain.approved_by == []


def test_the_plain_form_tallies_as_before() -> None:
    counted = tally(
        {BOB: approve(1), ALICE: approve(2)}, [BOB, "arn:aws:iam::123456789012:role/Dev"], 2
    )
    assert counted.approved and counted.needs() == "" and counted.missing == {"": 0}
    assert tally({BOB: approve(1)}, [BOB, ALICE], 2).missing == {"": 1}


# endregion
# region through the tick and decide()


class PolicyRig(Rig):
    """The approval rig, with the `pipeline` document (and its trigger) from a fake
    CodePipeline, as the handler's PipelineContext gathers it."""

    def __init__(self, definition: dict[str, Any], detail: str = ALICE) -> None:
        super().__init__(definition)
        self.codepipeline = TriggeredCodePipeline(detail)
        self.ticker = Ticker(
            self.store,
            RecordingReporter(),
            self.clock,
            TickConfig(0),
            self.services,
            PipelineContext(self.codepipeline.client()),
        )

    def by(
        self, who: str, decision: str, via: str, comment: str = "", ip: str | None = None
    ) -> Any:
        return decide(self.store, self.run_id, None, who, decision, comment, self.clock.t, via, ip)


class TriggeredCodePipeline(FakeCodePipeline):
    def __init__(self, detail: str, trigger_type: str = "StartPipelineExecution") -> None:
        super().__init__()
        self.detail, self.trigger_type = detail, trigger_type
        self.executions: list[tuple[str, str]] = []

    def get_pipeline_execution(self, pipelineName: str, pipelineExecutionId: str) -> Any:
        self.executions.append((pipelineName, pipelineExecutionId))
        trigger = {"triggerType": self.trigger_type, "triggerDetail": self.detail}
        return {
            "pipelineExecution": {"pipelineExecutionId": pipelineExecutionId, "trigger": trigger}
        }


@pytest.fixture(autouse=True)
def no_links() -> Any:
    runtime.use(runtime.Runtime())
    yield
    runtime.use(None)


def gate(**approval: Any) -> dict[str, Any]:
    approval.setdefault("approvers", [ALICE, BOB, SRE])
    return {"steps": [{"name": "signoff", "approval": approval, "timeout": "2h"}]}


def test_every_decision_records_identity_method_time_comment_and_source_ip() -> None:
    rig = PolicyRig(gate(required=2))
    rig.tick()
    rig.by("email:Ann@SRE.example.com", "approve", "oidc", "fine", "203.0.113.7")
    rig.by(BOB, "approve", "cli", "ok")
    record = rig.store.load(rig.run_id)
    assert record is not None
    decisions = record.signals.decisions["signoff"]
    assert set(decisions) == {"email:ann@sre.example.com", BOB}  # one key per identity
    assert decisions["email:ann@sre.example.com"] == {
        "decision": "approve", "comment": "fine", "at": rig.clock.t, "via": "oidc",
        "source_ip": "203.0.113.7",
    }  # fmt: skip
    assert decisions[BOB] == {
        "decision": "approve",
        "comment": "ok",
        "at": rig.clock.t,
        "via": "cli",
    }
    with pytest.raises(Refused) as again:
        rig.by("email:ANN@sre.example.com", "reject", "oidc", "twice")
    assert again.value.refusal is Refusal.ALREADY_DECIDED
    rig.clock.t += 30
    assert rig.tick().kind is AnswerKind.SUCCEEDED


@pytest.mark.parametrize(
    ("who", "via"),
    [
        ("email:ann@sre.example.com", "cli"),
        (BOB, "oidc"),
        (BOB, "slack"),
        ("slack:U0123ABCD", "oidc"),
    ],
)
def test_an_identity_counts_only_proven_the_way_its_form_is_proven(who: str, via: str) -> None:
    rig = PolicyRig(gate(approvers=[BOB, SRE, "slack:U0123ABCD"]))
    rig.tick()
    with pytest.raises(Refused) as refused:
        rig.by(who, "approve", via)
    assert refused.value.refusal is Refusal.INVALID
    assert str(refused.value) == f"{who} cannot be proven by {via}"


def test_a_link_alone_decides_only_a_step_with_bearer_links() -> None:
    rig = PolicyRig(gate(approvers=[BOB]))
    rig.tick()
    record = rig.store.load(rig.run_id)
    assert record is not None and record.state.steps[0].memo["links"] == "signed-in"
    with pytest.raises(Refused) as refused:
        rig.by(BOB, "approve", "link")
    assert refused.value.refusal is Refusal.SIGN_IN_REQUIRED
    assert refused.value.refusal.status == 403
    assert "a link alone cannot decide it" in str(refused.value)
    bearer = PolicyRig(gate(approvers=[BOB], links="bearer"))
    bearer.tick()
    bearer.by(BOB, "approve", "link")
    bearer.clock.t += 30
    assert bearer.tick().kind is AnswerKind.SUCCEEDED


def test_the_initiator_cannot_decide_and_their_decision_never_counts() -> None:
    rig = PolicyRig(gate(approvers=[ALICE, BOB, "email:*@example.com"], exclude_initiator=True))
    answer = rig.tick()
    assert answer.kind is AnswerKind.IN_PROGRESS, answer.summary
    assert rig.codepipeline.executions == [("shop", "e-1")]
    record = rig.store.load(rig.run_id)
    assert record is not None
    assert record.state.context["pipeline"]["trigger"] == {
        "type": "StartPipelineExecution",
        "detail": ALICE,
    }
    assert record.state.steps[0].memo["initiator"]["identities"] == [ALICE]
    for decision in ("approve", "reject"):
        with pytest.raises(Refused) as refused:
            rig.by(ALICE, decision, "cli", "mine")
        assert refused.value.refusal is Refusal.SELF_APPROVAL
        assert refused.value.refusal.status == 403
        assert str(refused.value) == (
            f"{ALICE} started this pipeline execution and cannot decide step 'signoff' "
            "(exclude_initiator): ask another approver"
        )
    # The same person, signed in with another identity the page proved at the same time.
    with pytest.raises(Refused) as also:
        decide(rig.store, rig.run_id, None, "email:alice@example.com", "approve", "", 0.0,
               "oidc", also=[ALICE])  # fmt: skip
    assert also.value.refusal is Refusal.SELF_APPROVAL
    # Written around decide(): the tally ignores it, and says so.
    entry = {"decision": "approve", "comment": "", "at": rig.clock.t, "via": "cli"}
    assert rig.store.record_decision(rig.run_id, "signoff", ALICE, entry)
    rig.clock.t += 30
    answer = rig.tick()
    assert answer.kind is AnswerKind.IN_PROGRESS
    assert "0/1 approvals; ignored 1 decision(s) by the pipeline execution's initiator" in (
        answer.summary
    )
    rig.by(BOB, "approve", "cli")
    rig.clock.t += 30
    assert rig.tick().kind is AnswerKind.SUCCEEDED
    assert rig.codepipeline.executions == [("shop", "e-1")]  # once per run


def test_a_trigger_that_names_nobody_excludes_nobody_and_says_so() -> None:
    rig = PolicyRig(gate(approvers=[ALICE], exclude_initiator=True))
    rig.codepipeline.trigger_type = "Webhook"
    answer = rig.tick()
    assert "initiator not known (Webhook): nobody excluded" in answer.summary
    rig.by(ALICE, "approve", "cli")
    rig.clock.t += 30
    assert rig.tick().kind is AnswerKind.SUCCEEDED


def test_without_the_trigger_an_excluding_step_fails_closed() -> None:
    step = ApprovalStep.model_validate(
        {"name": "s", "approval": {"approvers": [BOB], "exclude_initiator": True}}
    )
    state = StepState(name="s", kind="approval", started_at=0.0)
    outcome = step.poll(state, StepContext("r", 0.0, {"pipeline": {}}, lambda: 30.0))
    assert isinstance(outcome, Failed)
    assert outcome.failure_type is FailureType.CONFIGURATION_ERROR
    assert "exclude_initiator needs the pipeline execution's trigger" in outcome.message


def test_the_pending_summary_says_what_each_group_still_needs() -> None:
    groups = {"sre": [SRE], "security": ["slack:U0SEC0001", BOB]}
    definition = {"steps": [{"name": "signoff", "timeout": "2h", "approval": {
        "groups": groups, "required": {"sre": 1, "security": 1}}}]}  # fmt: skip
    rig = PolicyRig(definition)
    rig.tick()
    rig.by("email:ann@sre.example.com", "approve", "oidc")
    rig.clock.t += 30
    answer = rig.tick()
    assert answer.kind is AnswerKind.IN_PROGRESS
    assert answer.summary.endswith(
        "waiting for approval: 1/2 approvals (email:ann@sre.example.com); needs 1 from security"
    )
    with pytest.raises(Refused) as outsider:
        rig.by("email:eve@example.com", "approve", "oidc")
    assert outsider.value.refusal is Refusal.NOT_APPROVER
    rig.by("slack:U0SEC0001", "approve", "slack")
    rig.clock.t += 30
    assert rig.tick().kind is AnswerKind.SUCCEEDED
    record = rig.store.load(rig.run_id)
    assert record is not None
    assert record.state.steps[0].result["approved_by"] == [
        "email:ann@sre.example.com",
        "slack:U0SEC0001",
    ]


# endregion
# region on_timeout


def deadline_of(approval: dict[str, Any], decisions: dict[str, Any] | None = None) -> Any:
    step = ApprovalStep.model_validate({"name": "s", "timeout": "1h", "approval": approval})
    state = StepState(name="s", kind="approval", started_at=0.0)
    ctx = StepContext("r", 3600.0, {}, lambda: 30.0, decisions=decisions or {})
    return step.at_deadline(state, ctx)


def test_a_timeout_rejects_by_default_saying_the_approval_timed_out() -> None:
    outcome = deadline_of({"approvers": [BOB, ALICE], "required": 2}, {BOB: approve(1)})
    assert isinstance(outcome, Failed)
    assert outcome.message == (
        f"step 's': approval timed out after 1h without a decision (waiting for approval: "
        f"1/2 approvals ({BOB})); on_timeout is 'reject'"
    )


def test_a_timeout_approves_when_asked_but_a_late_reject_still_wins() -> None:
    outcome = deadline_of({"approvers": [BOB, ALICE], "required": 2, "on_timeout": "approve"})
    assert isinstance(outcome, Done)
    assert outcome.result == {"approved_by": [], "comments": [], "approved_by_timeout": True}
    rejected = deadline_of(
        {"approvers": [BOB], "on_timeout": "approve"},
        {BOB: {"decision": "reject", "comment": "stop", "at": 3599.0}},
    )
    assert isinstance(rejected, Failed) and rejected.message == f"step 's': rejected by {BOB}: stop"
    approved = deadline_of({"approvers": [BOB], "on_timeout": "approve"}, {BOB: approve(3599.0)})
    assert isinstance(approved, Done) and "approved_by_timeout" not in approved.result


def test_the_message_says_what_a_timeout_does_and_what_each_group_must_give() -> None:
    base = notify.Notice(
        run_id="r", step="s", message="Ship?", approvers=[SRE, BOB], required=2, expires=0.0
    )
    assert "Without enough approvals by then, the gate fails." in notify.text(base)
    approving = notify.Notice(**{**base.__dict__, "on_timeout": "approve"})
    assert "Without a decision by then, the step is approved by timeout." in notify.text(approving)
    grouped = notify.Notice(
        **{**base.__dict__, "groups": {"sre": [SRE], "security": [BOB]},
           "required_by_group": {"sre": 2}},
    )  # fmt: skip
    assert (
        f"Run r, step 's': 2 from sre ({SRE}), 1 from security ({BOB}) (one group each)."
        in notify.text(grouped)
    )


def test_the_memo_keeps_the_policy_the_page_and_slack_read() -> None:
    definition = parse_definition(json.dumps(gate(links="bearer")))
    state = engine.start(definition, "r", 0.0)
    state.steps[0].started_at = 0.0
    step = definition.steps[0]
    assert isinstance(step, ApprovalStep)
    step.poll(state.steps[0], StepContext("r", 0.0, {}, lambda: 30.0))
    memo = state.steps[0].memo
    assert memo["links"] == "bearer" and memo["on_timeout"] == "reject" and memo["required"] == 1
    assert "initiator" not in memo and "groups" not in memo


# endregion


def test_every_refusal_has_a_page_title() -> None:
    from orchestrator.approval import web
    from orchestrator.approval.decide import Refusal

    assert set(web._TITLES) == set(Refusal)
