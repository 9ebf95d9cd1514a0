"""The pure half of artifacts: what a definition reads from input artifacts, and what it
writes into output artifacts. No boto3 here; `orchestrator.artifacts` does the I/O.

Reading. A definition reads input artifacts through the run context's `artifacts`
document, `artifacts.<ArtifactName>."<path/in/zip>"`, in `${...}` templates, `outputs`
and output-artifact files. `references()` finds those paths statically in the JMESPath
syntax trees, so only the named files of the named artifacts are downloaded; a
reference it cannot pin down (`artifacts.Build.*`, `keys(artifacts)`) reads whole
artifacts, within bounds.

Writing. Each output artifact of the action gets a zip whose files are JMESPath
expressions over the run context plus `outputs` (the output variables) and `report`
(the gate report); by default `gate-report.json` = `report` and `outputs.json` = `outputs`.
"""

from __future__ import annotations

import io
import json
import re
import time
import zipfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, cast

import jmespath
from jmespath.exceptions import JMESPathError
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from orchestrator import expressions
from orchestrator.exceptions import FailureType, GateFailed
from orchestrator.expressions import Expression, search
from orchestrator.text import format_instant

if TYPE_CHECKING:
    from collections.abc import Iterator

    from orchestrator.definition import GateDefinition
    from orchestrator.event import Job
    from orchestrator.model import RunState

MAX_OUTPUT_ARTIFACTS = 5
MAX_FILES_PER_ARTIFACT = 20
DEFAULT_FILES: dict[str, str] = {"gate-report.json": "report", "outputs.json": "outputs"}
_ARTIFACT_NAME = re.compile(r"[A-Za-z0-9_\-]{1,100}")


def is_safe_name(name: str) -> bool:
    """A relative path inside a zip: no '..' part, not absolute, no drive, no NUL."""
    if not name or len(name) > 255 or "\0" in name or name.endswith(("/", "\\")):
        return False
    if name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
        return False
    return all(part not in ("", ".", "..") for part in re.split(r"[/\\]", name))


# region the definition's `artifacts` section


def _file_names(files: dict[str, str]) -> dict[str, str]:
    for name in files:
        if not is_safe_name(name):
            raise ValueError(
                f"invalid file name {name!r}: use a relative path without '..' (e.g. 'report.json')"
            )
    return files


class OutputArtifactSpec(BaseModel):
    """The files of one output artifact: path in the zip -> JMESPath over the run context."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    files: Annotated[dict[str, Expression], AfterValidator(_file_names)] = Field(
        min_length=1, max_length=MAX_FILES_PER_ARTIFACT
    )


def _artifact_names(specs: dict[str, OutputArtifactSpec]) -> dict[str, OutputArtifactSpec]:
    for name in specs:
        if not _ARTIFACT_NAME.fullmatch(name):
            raise ValueError(f"invalid output artifact name {name!r}: use A-Z a-z 0-9 _ -")
    return specs


OutputArtifacts = Annotated[
    dict[str, OutputArtifactSpec],
    AfterValidator(_artifact_names),
    Field(max_length=MAX_OUTPUT_ARTIFACTS),
]
"""The definition's `artifacts` field, keyed by output artifact name."""

# endregion
# region references to input artifacts


@dataclass
class Wanted:
    """What to read: every artifact whole (`everything`), else per artifact the files to
    read (None: the whole artifact)."""

    everything: bool = False
    files: dict[str, set[str] | None] = field(default_factory=dict)

    def add(self, artifact: str | None, file: str | None) -> None:
        if artifact is None:
            self.everything = True
        elif file is None or self.files.get(artifact, set()) is None:
            self.files[artifact] = None
        else:
            found = self.files.setdefault(artifact, set())
            assert found is not None
            found.add(file)

    def __bool__(self) -> bool:
        return self.everything or bool(self.files)


def run_context_expressions(definition: GateDefinition) -> list[str]:
    """Every JMESPath expression of the definition evaluated over the run context."""
    found = expressions.placeholders(definition.model_dump(mode="json"))
    found += definition.outputs.values()
    found += [e for spec in definition.artifacts.values() for e in spec.files.values()]
    return found


def references(definition: GateDefinition) -> Wanted:
    """The input artifacts (and files in them) the definition reads."""
    wanted = Wanted()
    for expression in run_context_expressions(definition):
        if "artifacts" in expression or "@" in expression:
            for artifact, file in _refs(
                cast("dict[str, Any]", jmespath.compile(expression).parsed)
            ):
                wanted.add(artifact, file)
    return wanted


_LEFT_ONLY = {"projection", "value_projection", "filter_projection", "pipe", "flatten"}
"""Node types whose first child sees the current document and the others its results."""


def _chain(node: dict[str, Any]) -> list[dict[str, Any]]:
    """The steps of a path, the first applied to the current document, each next one to
    the previous one's result: `a.b[0].c` -> [a, b, [0], c]."""
    kind, children = node["type"], node.get("children", [])
    if kind == "subexpression":
        return [step for child in children for step in _chain(child)]
    if kind == "index_expression":
        return [*_chain(children[0]), children[1]]
    if kind in _LEFT_ONLY:
        return [*_chain(children[0]), {"type": "rest"}]
    return [node]


def _refs(node: dict[str, Any]) -> Iterator[tuple[str | None, str | None]]:
    """(artifact, file) pairs read by `node`, an expression over the run context; None
    where the reference is not a plain name."""
    chain = _chain(node)
    while chain and chain[0]["type"] == "current":
        chain = chain[1:]
    if not chain:  # `@`: the whole run context
        yield None, None
        return
    head = chain[0]
    if head["type"] == "field":
        if head["value"] == "artifacts":
            names = [step.get("value") if step["type"] == "field" else None for step in chain]
            artifact = names[1] if len(names) > 1 else None
            yield artifact, (names[2] if artifact is not None and len(names) > 2 else None)
        return
    if head["type"] == "expref":
        return
    for child in head.get("children", []):  # functions, comparisons, multi-selects
        yield from _refs(child)


def check_outputs(job: Job, definition: GateDefinition) -> None:
    """ConfigurationError unless every output artifact the definition fills is the action's."""
    outputs = [a.name for a in job.data.output_artifacts]
    for name in definition.artifacts:
        if name not in outputs:
            raise GateFailed(
                f"artifacts.{name}: the action has no output artifact named {name!r} "
                f"(output artifacts: {', '.join(outputs) or 'none'})",
                FailureType.CONFIGURATION_ERROR,
            )


def input_names(job: Job, wanted: Wanted) -> list[str]:
    """The input artifacts to read; ConfigurationError for a name or file that cannot be."""
    inputs = [a.name for a in job.data.input_artifacts]
    names = inputs if wanted.everything else sorted(wanted.files)
    for name in names:
        if name not in inputs:
            raise GateFailed(
                f"input artifact {name!r} is read by the definition but the action has "
                f"none by that name (input artifacts: {', '.join(inputs) or 'none'})",
                FailureType.CONFIGURATION_ERROR,
            )
        for file in sorted(wanted.files.get(name) or ()):
            if not is_safe_name(file):
                raise GateFailed(
                    f"input artifact {name!r}: file name {file!r} is not a safe relative "
                    "path (absolute or with '..')",
                    FailureType.CONFIGURATION_ERROR,
                )
    return names


# endregion
# region output artifacts


def _iso(at: float | None) -> str | None:
    if at is None:
        return None
    return format_instant(at, "iso")


def gate_report(state: RunState) -> dict[str, Any]:
    """What the run did: steps with times and results (approvers lifted), outputs."""
    steps = []
    for step in state.steps:
        entry: dict[str, Any] = {
            "name": step.name,
            "kind": step.kind,
            "started_at": _iso(step.started_at),
            "finished_at": _iso(step.finished_at),
            "polls": step.polls,
            "result": step.result,
        }
        if isinstance(step.result, dict) and "approved_by" in step.result:
            entry["approved_by"] = step.result["approved_by"]
        steps.append(entry)
    report: dict[str, Any] = {
        "run_id": state.run_id,
        "status": state.status.value,
        "started_at": _iso(state.started_at),
        "ended_at": _iso(state.ended_at),
        "steps": steps,
        "outputs": dict(state.outputs or {}),
    }
    if "pipeline" in state.context:
        report["pipeline"] = state.context["pipeline"]
    return report


def render_files(
    artifact: str, files: dict[str, str], context: dict[str, Any], state: RunState
) -> list[tuple[str, bytes]]:
    """The files of one output artifact: strings as they are, other values as JSON.

    `context` is the run context (`engine.run_context`); `outputs` and `report` are added.
    """
    document = {**context, "outputs": dict(state.outputs or {}), "report": gate_report(state)}
    rendered = []
    for name, expression in files.items():
        try:
            value = search(expression, document)
        except JMESPathError as exc:
            reason = str(exc).splitlines()[0]
            raise GateFailed(
                f"artifacts.{artifact}.files.{name}: {reason}", FailureType.CONFIGURATION_ERROR
            ) from None
        text = value if isinstance(value, str) else json.dumps(value, indent=2) + "\n"
        rendered.append((name, text.encode()))
    return rendered


def build_zip(files: list[tuple[str, bytes]], when: float) -> bytes:
    """A zip of `files`, byte for byte the same for the same files and time."""
    stamp = time.gmtime(max(when, 315_532_800))[:6]  # zip dates start in 1980
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files:
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            info.create_system = 3
            archive.writestr(info, content)
    return buffer.getvalue()


# endregion
