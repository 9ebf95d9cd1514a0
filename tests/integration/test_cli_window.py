"""`orchestrator window`: a window's next openings and closings, in its zone and in UTC,
from JSON text, a window file, a step or a gate; bad specs named by field, never a
traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from orchestrator.cli import app

ROOT = Path(__file__).resolve().parents[2]
BUSINESS = {
    "timezone": "Europe/Berlin",
    "allow": ["Mon-Thu 09:00-16:00", "Fri 09:00-12:00"],
    "deny": ["2026-12-21..2027-01-04", "*-12-24"],
    "calendars": ["prod-change-calendar"],
    "freeze": "payments",
    "min_remaining": "45m",
}


def invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), catch_exceptions=False, env={"COLUMNS": "200"})


def listing(*args: str) -> dict[str, Any]:
    result = invoke("window", *args, "--json")
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = json.loads(result.output)
    return document


def test_lists_the_next_openings_in_the_zone_and_in_utc() -> None:
    result = invoke("window", json.dumps(BUSINESS), "--next", "4", "--from", "2026-12-17T12:00Z")
    assert result.exit_code == 0, result.output
    lines = [" ".join(line.split()) for line in result.output.splitlines()]
    assert lines[0] == "window 'window' in Europe/Berlin, min_remaining 45m: open now"
    rows = [line for line in lines if line[:1].isdigit()]
    assert rows == [
        "1 Thu 2026-12-17 09:00 CET to 16:00 2026-12-17 08:00Z to 15:00Z 7h",
        "2 Fri 2026-12-18 09:00 CET to 12:00 2026-12-18 08:00Z to 11:00Z 3h",
        # the holidays are denied: the next opening is Tuesday 5 January
        "3 Tue 2027-01-05 09:00 CET to 16:00 2027-01-05 08:00Z to 15:00Z 7h",
        "4 Wed 2027-01-06 09:00 CET to 16:00 2027-01-06 08:00Z to 15:00Z 7h",
    ]
    fall = invoke(
        "window",
        json.dumps({"timezone": "Europe/Berlin", "allow": ["Sun 01:00-04:00"]}),
        "--next",
        "1",
        "--from",
        "2026-10-20T00:00Z",
    )
    assert [" ".join(line.split()) for line in fall.output.splitlines()][4] == (
        "1 Sun 2026-10-25 01:00 CEST to 04:00 CET 2026-10-24 23:00Z to 2026-10-25 03:00Z 4h"
    )
    assert "each counts as open until 45m before it closes" in lines
    assert (
        "note: change calendars (prod-change-calendar) close it further: "
        "they are read when the gate runs"
    ) in lines
    assert "note: freeze 'payments' closes it while on: read when the gate runs" in lines


def test_daylight_saving_shows_in_both_clocks() -> None:
    spec = json.dumps({"timezone": "Europe/Berlin", "allow": ["Sun 02:30-04:00"]})
    found = listing(spec, "--next", "2", "--from", "2026-03-22T03:00Z")
    (window,) = found["windows"]
    assert found["from"] == "2026-03-22T03:00:00Z"
    assert window["open_now"] is False
    assert [(o["opens"], o["closes"], o["seconds"]) for o in window["openings"]] == [
        ("2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z", 3600.0),  # 03:00 CEST: 02:30 skipped
        ("2026-04-05T00:30:00Z", "2026-04-05T02:00:00Z", 5400.0),
    ]
    assert window["openings"][0]["opens_local"] == "2026-03-29T03:00:00+02:00"
    fall = listing(
        json.dumps({"timezone": "America/New_York", "allow": ["Sun 01:00-02:00"]}),
        "--next",
        "1",
        "--from",
        "2026-10-30T00:00Z",
    )["windows"][0]["openings"][0]
    assert (fall["opens_local"], fall["closes_local"], fall["seconds"]) == (
        "2026-11-01T01:00:00-04:00",
        "2026-11-01T02:00:00-05:00",
        7200.0,  # the repeated hour, twice
    )


def test_reads_a_gate_file_and_shows_each_window_step(tmp_path: Path) -> None:
    gate = tmp_path / "gate.yaml"
    gate.write_text(
        "steps:\n"
        "  - name: bake\n    wait: 10m\n"
        "  - name: office-hours\n    window:\n      timezone: Asia/Tokyo\n"
        "      allow: ['Mon-Fri 10:00-18:00']\n"
        "guards:\n"
        "  - name: no-weekend\n    window:\n      cron: '* * ? * MON-FRI *'\n"
    )
    found = listing(str(gate), "--next", "1", "--from", "2026-12-05T00:00Z")
    assert [(w["name"], w["timezone"]) for w in found["windows"]] == [
        ("office-hours", "Asia/Tokyo"),
        ("no-weekend", "UTC"),
    ]
    assert [w["openings"][0]["opens"] for w in found["windows"]] == [
        "2026-12-07T01:00:00Z",  # Monday 10:00 in Tokyo
        "2026-12-07T00:00:00Z",
    ]
    step = tmp_path / "step.json"
    step.write_text(json.dumps({"name": "hours", "window": {"allow": ["09:00-10:00"]}}))
    assert listing(str(step), "--next", "1")["windows"][0]["name"] == "hours"


def test_a_window_that_never_opens_says_so() -> None:
    found = listing(json.dumps({"cron": "* 9 ? * MON 2020"}), "--from", "2026-12-01T00:00Z")
    (window,) = found["windows"]
    assert window["openings"] == []
    assert window["notes"] == ["it never opens within 400 days"]


def test_bad_specs_name_each_field_and_exit_2() -> None:
    bad = {
        "timezone": "Europe/Berln",
        "allow": ["Mon-Thu 09:00-16:00", "Fri 9-12"],
        "cron": "0 9-15 * * MON-THU *",
        "deny": ["2026-12-32"],
        "min_remaining": "soon",
        "colour": "red",
    }
    result = invoke("window", json.dumps(bad))
    assert result.exit_code == 2
    lines = [line.strip() for line in result.output.splitlines()]
    assert lines[0] == "JSON: invalid"
    assert [line.split(":")[0] for line in lines[1:]] == [
        "window.timezone",
        "window.allow[1]",
        "window.cron[0]",
        "window.deny[0]",
        "window.min_remaining",
        "window.colour",
    ]
    assert "window.allow[1]: invalid range 'Fri 9-12' (use e.g. 'Mon-Thu 09:00-16:00'" in (
        result.output
    )
    gate = invoke("window", json.dumps({"steps": [{"name": "w", "window": {"allow": ["x"]}}]}))
    assert gate.exit_code == 2 and "steps[0].window.allow[0]: invalid range 'x'" in gate.output
    none = invoke("window", json.dumps({"steps": [{"name": "w", "wait": "1m"}]}))
    assert none.exit_code == 2 and "the gate has no window step" in none.output


def test_no_traceback_for_anything_a_user_can_type(tmp_path: Path) -> None:
    """The real command in a process: bad JSON, a missing file, a bad --from, a list."""
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe{")
    cases = [
        ["{not json"],
        [str(tmp_path / "missing.json")],
        [str(tmp_path / "binary.json")],
        ['{"allow": ["09:00-10:00"]}', "--from", "yesterday"],
        ['{"allow": ["09:00-10:00"]}', "--next", "0"],
        ["[1, 2]"],
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for args in cases:
        done = subprocess.run(
            [sys.executable, "-m", "orchestrator.cli", "window", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert "Traceback" not in done.stdout + done.stderr, (args, done.stderr)
