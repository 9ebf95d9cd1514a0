"""template.yaml against the scanners security teams run: checkov's CloudFormation checks
(no unsuppressed failure; each suppression in the template says why) and `sam validate
--lint`. Both run from their own virtual environments (scripts/scanners.py installs the
pinned versions under build/tools/ on first use: they pin boto3 and click to versions the
project's environment cannot share)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.local.schema import load_cfn_yaml
from scripts import scanners

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"

pytestmark = pytest.mark.timeout(900)  # the first run installs both scanners from PyPI


def suppressions(template: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(resource, check id, reason) of every `Metadata: checkov: skip:` entry."""
    return [
        (name, entry.get("id", ""), entry.get("comment", ""))
        for name, resource in template["Resources"].items()
        for entry in resource.get("Metadata", {}).get("checkov", {}).get("skip", [])
    ]


def checkov_summary(template: Path) -> dict[str, Any]:
    result = scanners.checkov(template)
    assert result.stdout.strip(), result.stderr[-3000:]
    report = json.loads(result.stdout)
    summary: dict[str, Any] = report["summary"]
    failed = [
        f"{c['check_id']} {c['resource']}" for c in report["results"].get("failed_checks", [])
    ]
    summary["failed_checks"] = failed
    return summary


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    loaded = load_cfn_yaml(TEMPLATE.read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_checkov_reports_no_unsuppressed_failure(template: dict[str, Any]) -> None:
    summary = checkov_summary(TEMPLATE)
    assert summary["failed_checks"] == []
    assert summary["failed"] == 0
    assert summary["parsing_errors"] == 0
    assert summary["passed"] >= 20
    assert summary["skipped"] == len(suppressions(template))


def test_each_checkov_suppression_says_why(template: dict[str, Any]) -> None:
    found = suppressions(template)
    assert found, "the template suppresses some checks: they are listed here"
    for resource, check, reason in found:
        assert check.startswith("CKV_"), (resource, check)
        assert len(reason.split()) >= 8, f"{resource} {check}: a reason in a sentence"
    assert len({(resource, check) for resource, check, _ in found}) == len(found)


def test_without_its_suppressions_checkov_finds_what_they_cover(
    template: dict[str, Any], tmp_path: Path
) -> None:
    """The scan is not vacuous: the suppressed findings are real findings."""
    bare = TEMPLATE.read_text()
    while "      checkov:\n" in bare:
        start = bare.index("      checkov:\n")
        end = start + len("      checkov:\n")
        lines = bare[end:].splitlines(keepends=True)
        taken = 0
        for line in lines:
            if not line.startswith("        "):
                break
            taken += len(line)
        bare = bare[:start] + bare[end + taken :]
    path = tmp_path / "template.yaml"
    path.write_text(bare)
    summary = checkov_summary(path)
    assert summary["skipped"] == 0
    expected = sorted(
        f"{check} {_type(template, name)}.{name}" for name, check, _ in suppressions(template)
    )
    assert sorted(summary["failed_checks"]) == expected


def _type(template: dict[str, Any], name: str) -> str:
    return str(template["Resources"][name]["Type"])


def test_sam_validate_lint_passes() -> None:
    result = scanners.sam_validate(TEMPLATE)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "is a valid SAM Template" in result.stdout + result.stderr


def test_sam_validate_lint_fails_a_broken_template(tmp_path: Path) -> None:
    text = TEMPLATE.read_text()
    broken = text.replace("!GetAtt OrchestratorRole.Arn", "!GetAtt MissingRole.Arn", 1)
    assert broken != text
    path = tmp_path / "template.yaml"
    path.write_text(broken)
    result = scanners.sam_validate(path)
    assert result.returncode != 0
    assert "MissingRole" in result.stdout + result.stderr
