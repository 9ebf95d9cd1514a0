"""How `orchestrator run` shows its events: round by round for people, JSON for machines."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

from rich.markup import escape
from rich.table import Table

from orchestrator.definition import parse_definition
from orchestrator.durations import format_duration
from orchestrator.exceptions import DefinitionError
from orchestrator.text import counted

if TYPE_CHECKING:
    from rich.console import Console

    from orchestrator.local.runner import Event


class JsonView:
    """One JSON object per event, for machines."""

    def __call__(self, event: Event) -> None:
        print(json.dumps(event, default=str), flush=True)


_COUNTDOWN = re.compile(r": next check in \S+$")


class ConsoleView:
    """Round-by-round progress, like the CodePipeline console's action details.

    `quiet`: only the transitions (an action starting or finishing, a round whose status
    differs from the round before), not every round whose summary changed.
    """

    def __init__(self, console: Console, speed: float, *, quiet: bool = False) -> None:
        self.console = console
        self.speed = speed
        self.quiet = quiet
        self.timeout = 0.0
        self.last_shown = ""
        self.last_status = ""
        self.last_percent = 0
        self.quiet_rounds = 0

    def __call__(self, event: Event) -> None:
        getattr(self, f"_{event['event']}")(event)

    def _store(self, e: Event) -> None:
        self.console.print(f"state: {e['description']}, table [bold]{e['table']}[/]")
        if self.speed != 1:
            self.console.print(f"clock: {self.speed:g}x real time")

    def _pipeline(self, e: Event) -> None:
        values = ", ".join(f"{k}={v}" for k, v in e["variables"].items())
        self.console.print(
            f"pipeline [bold]{e['name']}[/], execution mode {e['execution_mode']}"
            + (f"; variables: {escape(values)}" if values else "")
        )

    def _newer_execution(self, e: Event) -> None:
        when = format_duration(e["elapsed"])
        if e["phase"] == "arrived":
            self.console.print(
                f"[yellow]a newer execution started[/] at +{when} ({e['mode']}): "
                f"{escape(e['effect'])}"
            )
        else:
            self.console.print(f"[yellow]newer execution:[/] {escape(e['effect'])} (+{when})")

    def _action_skipped(self, e: Event) -> None:
        self.console.print(
            f"[dim]{e['stage']} / {e['action']}: skipped ({e['type']}: {e['reason']})[/]"
        )

    def _action_retried(self, e: Event) -> None:
        self.last_shown, self.last_status, self.last_percent, self.quiet_rounds = "", "", 0, 0
        self.console.print(
            f"{e['stage']} / {e['action']} failed: retrying the action "
            "(the same pipeline execution, a new job)",
            markup=False,
        )

    def _action_started(self, e: Event) -> None:
        try:
            self.timeout = parse_definition(e["user_parameters"]).timeout
        except DefinitionError:
            self.timeout = 0.0
        self.last_shown, self.last_status, self.last_percent, self.quiet_rounds = "", "", 0, 0
        ns = f" (namespace {e['namespace']})" if e.get("namespace") else ""
        self.console.rule(f"{e['stage']} / {e['action']}{ns}")

    def _round(self, e: Event) -> None:
        summary = str(e["summary"])
        stable = _COUNTDOWN.sub("", summary)
        # a failed answer carries no percentComplete: the bar stays where it was
        if e["percent"] is not None:
            self.last_percent = int(e["percent"])
        transition = e["status"] != self.last_status
        self.last_status = e["status"]
        unchanged = stable == self.last_shown and e["status"] == "InProgress"
        if not transition and (self.quiet or unchanged):
            self.quiet_rounds += 1
            return
        self.last_shown = stable
        percent = self.last_percent
        bar = "█" * (percent // 5) + "░" * (20 - percent // 5)
        remaining = max(0.0, self.timeout - e["elapsed"]) if self.timeout else 0.0
        skipped = "not shown" if self.quiet else "idle"
        quiet = f" (+{self.quiet_rounds} {skipped})" if self.quiet_rounds else ""
        self.quiet_rounds = 0
        self.console.print(
            f"round {e['round']:>4}{quiet}  job {e['job_id'][:8]}  {bar} {percent:>3}%  "
            f"elapsed {format_duration(e['elapsed'])}  "
            + (f"left {format_duration(remaining)}  " if self.timeout else "")
            + f"{e['status']}: {summary}",
            markup=False,
        )

    def _approval_links(self, e: Event) -> None:
        """The links of a waiting approval step: open one, sign in, decide."""
        self.console.print(
            f"[bold]approval needed[/]: step '{e['step']}' of run {e['run_id']}: "
            f"{e['required']} of {', '.join(e['approvers'])}",
        )
        self.console.print(f"  {e['message']}", markup=False)
        for link in e["links"]:
            self.console.print(
                f"  {link['decision']} as {link['principal']}: {link['url']}", markup=False
            )
        if not e["links"]:
            self.console.print("  (no exact approvers: decide with `orchestrator approve`)")
        self.console.print(f"  sign in at the mock issuer {e['issuer']}: choose who you are")

    def _acted_as(self, e: Event) -> None:
        """A step that acted as another account's role: which, where, under what session."""
        region = f" in {e['region']}" if e.get("region") else ""
        session = f" (role session {e['session']})" if e.get("session") else ""
        self.console.print(
            f"  step '{e['step']}' acted as {e['role_arn']}{region}{session}", markup=False
        )

    def _action_finished(self, e: Event) -> None:
        where = f"{e['stage']} / {e['action']}"
        if e["status"] == "Succeeded":
            rounds = e.get("rounds", 0)
            self.console.print(
                f"[green]{where} succeeded[/] after {counted(rounds, 'round')}, "
                f"{format_duration(e.get('elapsed', 0))} of pipeline time"
            )
            if e.get("outputs"):
                table = Table("output variable", "value", title="outputVariables")
                for key, value in e["outputs"].items():
                    table.add_row(key, value)
                self.console.print(table)
        else:
            self.console.print(f"[bold red]{where} failed: {e['failure_type']}[/]")
            self.console.print(f"  {e['failure_message']}", markup=False)

    def _finished(self, e: Event) -> None:
        colour = "green" if e["status"] == "Succeeded" else "red"
        runs = ", ".join(e["run_ids"])
        self.console.print(
            f"[{colour}]{e['status']}[/] (exit {e['exit_code']}); run ids: {runs or '-'}"
        )
