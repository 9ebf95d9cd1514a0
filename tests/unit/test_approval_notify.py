"""The approval message (SNS text, Slack-compatible webhook body) and the endpoint's pages."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from orchestrator.approval import notify, pages
from orchestrator.approval.links import Link, LinkClaim
from orchestrator.approval.notify import Notice
from orchestrator.approval.web import Request, Response
from orchestrator.services import HttpError, HttpResponse
from orchestrator.targets import AwsTarget, RoleDenied

if TYPE_CHECKING:
    from orchestrator.governance import Governance

ALICE = "arn:aws:iam::123456789012:user/alice"
NOTICE = Notice(
    run_id="run-1",
    step="signoff",
    message="Ship <b>42</b> & more?",
    approvers=[ALICE, "arn:aws:iam::123456789012:role/*"],
    required=2,
    expires=1_800_000_000.0,
    links=[
        Link(ALICE, "approve", "https://e.example/?t=v1.a.b"),
        Link(ALICE, "reject", "https://e.example/?t=v1.c.d"),
    ],
    pipeline="release",
)


def test_the_text_says_what_whom_until_when_and_how() -> None:
    text = notify.text(NOTICE)
    assert text.splitlines()[0] == "Approval needed: Ship <b>42</b> & more?"
    assert "Run run-1 of pipeline release, step 'signoff': 2 approvals from " in text
    assert "Decide before 2027-01-15 08:00 UTC." in text
    assert f"Approve as {ALICE}: https://e.example/?t=v1.a.b" in text
    assert f"Reject as {ALICE}: https://e.example/?t=v1.c.d" in text
    assert 'orchestrator approve run-1 --step signoff --comment "..."' in text
    assert 'orchestrator reject run-1 --step signoff --comment "why"' in text


def test_the_webhook_body_is_slack_blocks_with_escaped_text_and_link_buttons() -> None:
    body = notify.slack(NOTICE)
    assert set(body) == {"text", "blocks"}
    assert "Ship &lt;b&gt;42&lt;/b&gt; &amp; more?" in body["text"]
    assert "<b>" not in json.dumps(body)
    kinds = [block["type"] for block in body["blocks"]]
    assert kinds == ["header", "section", "context", "section", "actions", "context"]
    buttons = body["blocks"][4]["elements"]
    assert [(b["text"]["text"], b["url"], b["style"]) for b in buttons] == [
        ("Approve", "https://e.example/?t=v1.a.b", "primary"),
        ("Reject", "https://e.example/?t=v1.c.d", "danger"),
    ]


def test_the_sns_subject_is_one_short_ascii_line() -> None:
    long = Notice("r" * 80, "s\u00e9\nx", "m", [ALICE], 1)
    subject = notify.subject(long)
    assert len(subject) < 100 and subject.isascii() and "\n" not in subject


@dataclass
class FakeSns:
    error: Exception | None = None
    published: list[dict[str, Any]] = field(default_factory=list)

    def publish(self, **params: Any) -> dict[str, str]:
        if self.error is not None:
            raise self.error
        self.published.append(params)
        return {"MessageId": "m"}


@dataclass
class FakeHttp:
    answer: HttpResponse | HttpError
    sent: list[tuple[str, bytes | None]] = field(default_factory=list)

    def request(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None, timeout: float
    ) -> HttpResponse:
        self.sent.append((method, body))
        if isinstance(self.answer, HttpError):
            raise self.answer
        return self.answer


@dataclass
class FakeServices:
    sns: FakeSns
    http: FakeHttp
    targets: list[AwsTarget | None] = field(default_factory=list)
    role_error: Exception | None = None

    @property
    def governance(self) -> Governance:
        raise AssertionError("no freezes or locks in this test")

    def aws(
        self, service: str, *, single_attempt: bool = False, target: AwsTarget | None = None
    ) -> Any:
        assert service == "sns"
        self.targets.append(target)
        if self.role_error is not None and target is not None:
            raise self.role_error
        return self.sns


def test_send_publishes_the_text_and_posts_the_json() -> None:
    services = FakeServices(FakeSns(), FakeHttp(HttpResponse(200, {}, b"ok")))
    topic = "arn:aws:sns:eu-west-1:123456789012:approvals"
    assert notify.send(NOTICE, topic, "https://hooks.example/T/B/X", services, 5.0) == []
    (published,) = services.sns.published
    assert published == {
        "TopicArn": topic,
        "Subject": notify.subject(NOTICE),
        "Message": notify.text(NOTICE),
    }
    ((method, body),) = services.http.sent
    assert method == "POST" and json.loads(body or b"") == notify.slack(NOTICE)


def test_a_fifo_topic_gets_a_group_and_a_deduplication_id() -> None:
    services = FakeServices(FakeSns(), FakeHttp(HttpResponse(200, {}, b"")))
    notify.send(NOTICE, "arn:aws:sns:eu-west-1:123456789012:a.fifo", None, services, 5.0)
    (published,) = services.sns.published
    assert published["MessageGroupId"] == "run-1"
    assert published["MessageDeduplicationId"] == "run-1:signoff"


def test_send_failures_are_named_without_the_webhook_url() -> None:
    denied = ClientError({"Error": {"Code": "AuthorizationError", "Message": "x"}}, "Publish")
    cases = [
        (
            FakeSns(denied),
            FakeHttp(HttpResponse(500, {}, b"")),
            ["sns: AuthorizationError", "webhook: HTTP 500"],
        ),
        (
            FakeSns(EndpointConnectionError(endpoint_url="https://sns")),
            FakeHttp(HttpError("refused")),
            ["sns: EndpointConnectionError", "webhook: no response"],
        ),
    ]
    hook = "https://hooks.example/T/B/SECRET"
    for sns, http, expected in cases:
        errors = notify.send(NOTICE, "arn:aws:sns:eu-west-1:1:t", hook, FakeServices(sns, http), 1)
        assert errors == expected
        assert "SECRET" not in " ".join(errors)


def test_the_topic_is_published_to_as_the_notification_s_role() -> None:
    role = "arn:aws:iam::222233334444:role/notifier"
    target = AwsTarget(role, None, "eu-west-1", "run-1-signoff")
    services = FakeServices(FakeSns(), FakeHttp(HttpResponse(200, {}, b"")))
    topic = "arn:aws:sns:eu-west-1:222233334444:approvals"
    assert notify.send(NOTICE, topic, None, services, 5.0, target) == []
    assert services.targets == [target] and len(services.sns.published) == 1
    services.role_error = RoleDenied(f"cannot assume role {role} (AccessDenied)")
    errors = notify.send(NOTICE, topic, None, services, 5.0, target)
    assert errors == [f"sns: cannot assume role {role} (AccessDenied)"]
    refused = ClientError({"Error": {"Code": "AuthorizationError", "Message": "x"}}, "Publish")
    services = FakeServices(FakeSns(refused), FakeHttp(HttpResponse(200, {}, b"")))
    assert notify.send(NOTICE, topic, None, services, 5.0, target) == [
        f"sns: AuthorizationError as role {role} in eu-west-1"
    ]


def test_pages_escape_everything() -> None:
    claim = LinkClaim("<run>", "s'\"", "arn:<x>", "reject", 1e9, "n")
    html = pages.confirm(claim, "<script>alert(1)</script>", 'tok"><x')
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'value="tok&quot;&gt;&lt;x"' in html and "&lt;run&gt;" in html
    assert '<form method="post">' in html and "required" in html
    refused = pages.refused("<t>", "<r>")
    assert "<t>" not in refused and "&lt;r&gt;" in refused


def test_function_url_events_are_read_and_answered() -> None:
    form = base64.b64encode(b"t=v1.a.b&comment=fine+%26+dandy").decode()
    event = {
        "rawPath": "/",
        "rawQueryString": "t=ignored",
        "headers": {"Content-Type": "application/x-www-form-urlencoded"},
        "requestContext": {"http": {"method": "POST"}},
        "body": form,
        "isBase64Encoded": True,
    }
    request = Request.from_event(event)
    assert request.method == "POST" and request.path == "/"
    assert request.form == {"t": "v1.a.b", "comment": "fine & dandy"}
    assert request.query == {"t": "ignored"}
    other = Request.from_event({**event, "headers": {"content-type": "text/plain"}})
    assert other.form == {}
    answered = Response(200, "<p>x</p>").to_event()
    headers = answered["headers"]
    assert answered["statusCode"] == 200 and answered["isBase64Encoded"] is False
    assert headers["Referrer-Policy"] == "no-referrer" and headers["Cache-Control"] == "no-store"
    assert "default-src 'none'" in headers["Content-Security-Policy"]


def test_slack_buttons_carry_verifiable_values_instead_of_the_links() -> None:
    from dataclasses import replace

    from pydantic import SecretStr

    from orchestrator.approval import links

    key = SecretStr("k" * 64)
    buttons = links.mint_buttons(key, "run-1", "signoff", 1_800_000_000.0)
    body = notify.slack(replace(NOTICE, buttons=buttons))
    kinds = [block["type"] for block in body["blocks"]]
    assert kinds == ["header", "section", "context", "actions", "context"]  # no link rows
    approve, reject = body["blocks"][3]["elements"]
    assert (approve["action_id"], approve["style"]) == ("approve", "primary")
    assert (reject["action_id"], reject["style"]) == ("reject", "danger")
    assert "url" not in approve and "url" not in reject and "confirm" in reject
    for button in (approve, reject):
        claim = links.verify_button(button["value"], key)
        assert (claim.run_id, claim.step, claim.decision) == (
            "run-1",
            "signoff",
            button["action_id"],
        )
        assert claim.expires == 1_800_000_000.0
        assert "principal" not in json.dumps(claim.__dict__)
        with pytest.raises(links.BadLink):  # another deployment's key
            links.verify_button(button["value"], SecretStr("x" * 64))
        with pytest.raises(links.BadLink):  # a button value is not a link token
            links.verify(button["value"], key)
    assert approve["value"] != reject["value"]
    assert "https://e.example/?t=" not in json.dumps(body)  # the links are not shown
    link = LinkClaim("run-1", "signoff", ALICE, "approve", 1_800_000_000.0, "n")
    with pytest.raises(links.BadLink):  # nor a link token a button value
        links.verify_button(links.sign(link, key), key)
