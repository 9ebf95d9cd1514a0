"""Slack interactive buttons on approval messages: POST /slack (to be built)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from orchestrator.approval.web import App, Request, Response


def handle(app: App, request: Request) -> Response:
    """A Slack interaction; refused until built."""
    from orchestrator.approval import pages
    from orchestrator.approval.web import Response

    return Response(404, pages.refused("Not found", "There is nothing here."))
