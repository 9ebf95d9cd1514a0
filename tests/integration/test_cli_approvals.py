"""`orchestrator run --approvals`: a two-person approval clicked through on loopback, with
the approval page, oidc-provider-mock and the signing key in moto, all started by the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import TYPE_CHECKING, Any

from tests.integration.test_approval_oidc_rig import (
    ALICE_EMAIL,
    ALICE_ID,
    BOB_EMAIL,
    BOB_ID,
    Browser,
)
from tests.integration.test_approval_rig import token_of

if TYPE_CHECKING:
    from pathlib import Path


def _approve(browser: Browser, link: str, sub: str | None, comment: str) -> str:
    """Sign in as `sub` (None: already signed in) from `link`, then approve; the page."""
    if sub is not None:
        signed_in = browser.sign_in(link.replace("/?t=", "/login?t="), sub)
        assert signed_in.status == 200, signed_in.data[:300]
    base = link.split("?t=", 1)[0]
    page = browser.go(base, {"t": token_of(link), "comment": comment}, follow=False)
    return page.data.decode()


def test_two_people_approve_on_the_local_page(
    dynamodb: Any, table_name: str, tmp_path: Path
) -> None:
    gate = {
        "timeout": "4h",
        "outputs": {"ApprovedBy": "join(',', steps.signoff.approved_by)"},
        "steps": [
            {
                "name": "signoff",
                "approval": {
                    "approvers": [f"email:{ALICE_EMAIL}", f"email:{BOB_EMAIL}"],
                    "required": 2,
                    "message": "Ship it?",
                },
            }
        ],
    }
    path = tmp_path / "gate.json"
    path.write_text(json.dumps(gate))
    env = {**os.environ, "ORCHESTRATOR_IDLE_CHECK_INTERVAL_SECONDS": "0"}
    command = [sys.executable, "-m", "orchestrator.cli", "run", str(path), "--approvals"]
    command += ["--speed", "60", "--json", "--reinvoke-delay", "1s"]
    command += ["--table", table_name, "--data-dir", str(tmp_path)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env) as process:
        try:
            assert process.stdout is not None
            shown = None
            for line in process.stdout:
                event = json.loads(line)
                if event["event"] == "approval_links":
                    shown = event
                    break
            assert shown is not None, "no approval_links event"
            assert shown["step"] == "signoff" and shown["required"] == 2
            links = {(x["principal"], x["decision"]): x["url"] for x in shown["links"]}
            assert set(links) == {(p, d) for p in (ALICE_ID, BOB_ID) for d in ("approve", "reject")}
            assert all(url.startswith("http://127.0.0.1:") for url in links.values())

            alice = Browser()
            page = _approve(alice, links[ALICE_ID, "approve"], ALICE_EMAIL, "lgtm")
            assert f"Recorded: <strong>approve</strong> by {ALICE_ID}." in page
            assert "1/2 approvals so far" in page
            # The same person again, with bob's link: the session decides, and counts once.
            again = _approve(alice, links[BOB_ID, "approve"], None, "me again")
            assert "Already decided" in again and "Recorded" not in again

            bob = Browser()
            page = _approve(bob, links[BOB_ID, "approve"], BOB_EMAIL, "ship it")
            assert f"Recorded: <strong>approve</strong> by {BOB_ID}." in page

            rest = [json.loads(line) for line in process.stdout]
            assert process.wait(timeout=120) == 0
        finally:
            if process.poll() is None:
                process.kill()
    finished = rest[-1]
    assert finished["event"] == "finished" and finished["status"] == "Succeeded", finished
    done = [e for e in rest if e["event"] == "action_finished"][-1]
    assert done["status"] == "Succeeded", done
    assert sorted(done["outputs"]["ApprovedBy"].split(",")) == [ALICE_ID, BOB_ID]
