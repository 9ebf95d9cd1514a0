"""The approval endpoint over real HTTP: `orchestrator.approval.web.handler` behind a local
server that speaks the Lambda function URL event format, with runs in DynamoDB Local and the
signing key in moto's Secrets Manager."""

from __future__ import annotations

import io
import json
import time
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from pydantic import SecretStr

from orchestrator import _log
from orchestrator.approval import links, web
from orchestrator.local.endpoint import EndpointServer
from orchestrator.model import RunStatus
from orchestrator.store.dynamodb import DynamoRunStore, bind_model
from tests.integration.test_approval_oidc_rig import set_memo
from tests.integration.test_approval_rig import (
    ALICE,
    BOB,
    CANARY_KEY,
    MALLORY,
    get,
    http,
    post,
    signing_key,
    stored_run,
    token_of,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    import urllib3


class Endpoint:
    def __init__(self, url: str, store: DynamoRunStore, key: str, logs: io.StringIO) -> None:
        self.url, self.store, self.key, self.logs = url, store, key, logs
        self.now = time.time()

    def run(self, approval: dict[str, Any] | None = None, extra_steps: int = 0) -> str:
        """A run whose links are bearer links (signing in: test_approval_oidc.py)."""
        approval = approval or {"approvers": [ALICE, BOB, "arn:aws:iam::123456789012:role/*"]}
        run_id = stored_run(self.store, approval, self.now, extra_steps)
        set_memo(self.store, run_id, links="bearer")
        return run_id

    def link(
        self, run_id: str, principal: str = ALICE, decision: str = "approve", **kw: Any
    ) -> str:
        claim = links.LinkClaim(
            run_id=kw.get("run", run_id),
            step=kw.get("step", "signoff"),
            principal=principal,
            decision=decision,  # type: ignore[arg-type]
            expires=kw.get("expires", self.now + 3600),
            nonce="n",
        )
        key = kw.get("key", self.key)
        return f"{self.url}?t={links.sign(claim, SecretStr(key))}"

    def decisions(self, run_id: str) -> dict[str, Any]:
        record = self.store.load(run_id)
        assert record is not None
        return record.signals.decisions.get("signoff", {})


@pytest.fixture
def endpoint(
    table_name: str, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Endpoint]:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto_endpoint)
    monkeypatch.setenv("ORCHESTRATOR_APPROVAL_SECRET_ARN", signing_key(moto_endpoint))
    logs = io.StringIO()
    _log.unconfigure()
    _log.configure("DEBUG", logs)
    web.use(None)
    try:
        with EndpointServer(web.handler) as server:
            store = DynamoRunStore(bind_model(table_name))
            yield Endpoint(server.url, store, CANARY_KEY, logs)
    finally:
        web.use(None)
        _log.unconfigure()


def page(response: urllib3.BaseHTTPResponse) -> str:
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    return response.data.decode()


def test_get_shows_a_confirmation_page_and_changes_nothing(endpoint: Endpoint) -> None:
    run_id = endpoint.run({"approvers": [ALICE], "message": "Ship <script>x</script>?"})
    link = endpoint.link(run_id)
    before = endpoint.store.load(run_id)
    assert before is not None
    for _ in range(3):  # a mail scanner, a chat previewer, the person
        response = get(link)
        assert response.status == 200
        html = page(response)
        assert "Approve step &#x27;signoff&#x27;?" in html and "Nothing has been" in html
        assert f'name="t" value="{token_of(link)}"' in html
        assert "&lt;script&gt;x&lt;/script&gt;" in html and "<script>" not in html
    assert endpoint.decisions(run_id) == {}
    record = endpoint.store.load(run_id)
    assert record is not None and record.version == before.version


def test_post_decides_once_and_the_links_are_then_used_up(endpoint: Endpoint) -> None:
    run_id = endpoint.run()
    approve, reject = endpoint.link(run_id), endpoint.link(run_id, decision="reject")
    response = post(endpoint.url, token_of(approve), "fine by me")
    assert response.status == 200, response.data
    assert "Recorded: <strong>approve</strong>" in page(response)
    assert "1/1 approvals so far." in page(response)
    decision = endpoint.decisions(run_id)[ALICE]
    assert (decision["decision"], decision["comment"], decision["via"]) == (
        "approve",
        "fine by me",
        "link",
    )
    for again in (post(endpoint.url, token_of(approve)), get(approve), get(reject)):
        assert again.status == 409
        assert "Already decided" in page(again) and "Nothing was recorded" in page(again)
    assert post(endpoint.url, token_of(reject), "changed my mind").status == 409
    assert endpoint.decisions(run_id)[ALICE]["decision"] == "approve"


def test_a_reject_needs_a_reason_and_is_recorded_with_it(endpoint: Endpoint) -> None:
    run_id = endpoint.run()
    link = endpoint.link(run_id, BOB, "reject")
    assert "Why? (required)" in page(get(link))
    blank = post(endpoint.url, token_of(link), "   ")
    assert blank.status == 400 and "needs a reason" in page(blank)
    assert endpoint.decisions(run_id) == {}
    rejected = post(endpoint.url, token_of(link), "error rate <5%")
    assert rejected.status == 200 and "The gate fails at its next check." in page(rejected)
    assert endpoint.decisions(run_id)[BOB]["comment"] == "error rate <5%"


def _refused(response: urllib3.BaseHTTPResponse, status: int, title: str) -> None:
    assert response.status == status, response.data
    html = page(response)
    assert f"<h1>{title}</h1>" in html and "Nothing was recorded." in html


def test_tampered_expired_and_foreign_links_are_refused(endpoint: Endpoint) -> None:
    run_id = endpoint.run(extra_steps=1)
    other_run = endpoint.run()
    good = endpoint.link(run_id)
    token = token_of(good)
    version, _, signature = token.split(".")
    swapped = endpoint.link(run_id, MALLORY).split("?t=")[1].split(".")[1]
    cases = [
        (f"{version}.{swapped}.{signature}", 400, "This link is not valid"),  # tampered
        (token[:-4] + ("AAAA" if token[-4:] != "AAAA" else "BBBB"), 400, "This link is not valid"),
        ("garbage", 400, "This link is not valid"),
        (token_of(endpoint.link(run_id, key="x" * 64)), 400, "This link is not valid"),  # key
        (token_of(endpoint.link(run_id, expires=endpoint.now - 1)), 410, "This link has expired"),
        (token_of(endpoint.link(run_id, run="no-such-run")), 404, "Unknown run"),
        (token_of(endpoint.link(run_id, step="elsewhere")), 404, "Unknown step"),
        (
            token_of(endpoint.link(run_id, step="after0")),
            409,
            "This step is not waiting for a decision",
        ),
    ]
    for bad, status, title in cases:
        _refused(get(f"{endpoint.url}?t={bad}"), status, title)
        _refused(post(endpoint.url, bad, "x"), status, title)
    assert endpoint.decisions(run_id) == {} and endpoint.decisions(other_run) == {}
    # Signed for the other run: valid there, and only there.
    assert post(endpoint.url, token_of(endpoint.link(other_run)), "ok").status == 200
    assert endpoint.decisions(run_id) == {} and ALICE in endpoint.decisions(other_run)


def test_a_run_that_is_over_refuses_its_links(endpoint: Endpoint) -> None:
    run_id = endpoint.run()
    record = endpoint.store.load(run_id)
    assert record is not None
    ended = record.state.model_copy(update={"status": RunStatus.FAILED, "ended_at": endpoint.now})
    over = record.model_copy(update={"state": ended, "version": record.version + 1})
    endpoint.store.save(over, record.version)
    _refused(get(endpoint.link(run_id)), 409, "This run is over")
    _refused(post(endpoint.url, token_of(endpoint.link(run_id))), 409, "This run is over")


def test_a_principal_outside_the_approvers_is_refused(endpoint: Endpoint) -> None:
    run_id = endpoint.run({"approvers": [ALICE, "arn:aws:iam::123456789012:role/Releasers"]})
    for who in (MALLORY, "arn:aws:sts::123456789012:assumed-role/Other/bob"):
        link = endpoint.link(run_id, who)
        _refused(get(link), 403, "Not an approver")
        _refused(post(endpoint.url, token_of(link), "let me"), 403, "Not an approver")
        assert "Releasers" not in get(link).data.decode()  # the approvers are not listed
    assert endpoint.decisions(run_id) == {}
    session = endpoint.link(run_id, "arn:aws:sts::123456789012:assumed-role/Releasers/carol")
    assert post(endpoint.url, token_of(session)).status == 200


def test_other_paths_methods_and_missing_tokens(endpoint: Endpoint) -> None:
    run_id = endpoint.run()
    assert get(f"{endpoint.url}favicon.ico").status == 404
    assert http.request("PUT", endpoint.url).status == 405
    _refused(get(endpoint.url), 400, "No link")
    query_only = http.request("POST", f"{endpoint.url}?t={token_of(endpoint.link(run_id))}")
    _refused(query_only, 400, "No link")  # a POST must carry the token in its form
    assert endpoint.decisions(run_id) == {}


def test_the_signing_key_never_leaves_the_process(endpoint: Endpoint) -> None:
    run_id = endpoint.run()
    responses = [get(endpoint.link(run_id)), post(endpoint.url, token_of(endpoint.link(run_id)))]
    responses.append(get(endpoint.link(run_id, key="x" * 64)))
    text = "".join(r.data.decode() + json.dumps(dict(r.headers)) for r in responses)
    item = boto3.client("dynamodb").scan(TableName=endpoint.store._model.Meta.table_name)
    assert "approval link" in endpoint.logs.getvalue()  # the logs were captured at all
    for where, haystack in (
        ("pages", text),
        ("logs", endpoint.logs.getvalue()),
        ("items", json.dumps(item["Items"])),
    ):
        assert CANARY_KEY not in haystack, where
        assert "7f3a7f3a" not in haystack, where
    assert token_of(endpoint.link(run_id)) not in endpoint.logs.getvalue()
