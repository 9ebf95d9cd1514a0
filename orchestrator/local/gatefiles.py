"""Gate files and local artifacts for the CLI: what `validate` and `run` check and serve.

A gate file is what a pipeline references (`SourceArtifact::gates/prod.yaml`): JSON or
YAML, up to 256 KB, possibly declaring `params`. It is checked exactly as the handler
checks it after fetching (orchestrator.reference), against the args given on the command
line. `--artifact Name=PATH` (a folder or a zip) stands in for an input artifact.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.definition import definition_warnings
from orchestrator.exceptions import DefinitionError
from orchestrator.reference import (
    MAX_INLINE_CHARS,
    MAX_REFERENCED_BYTES,
    Reference,
    expand,
    load_document,
    read_user_parameters,
)

if TYPE_CHECKING:
    from orchestrator.definition import GateDefinition


class UsageError(ValueError):
    """A command-line value is malformed (names the option)."""


def parse_pairs(values: list[str], option: str) -> dict[str, str]:
    """`["a=1", "b=2"]` -> {"a": "1", "b": "2"}; UsageError naming the option otherwise."""
    pairs: dict[str, str] = {}
    for value in values:
        name, separator, text = value.partition("=")
        if not separator or not name:
            raise UsageError(f"{option}: expected NAME=VALUE, got {value!r}")
        if name in pairs:
            raise UsageError(f"{option}: {name!r} given twice")
        pairs[name] = text
    return pairs


def read_gate_file(path: Path) -> tuple[Any, int]:
    """The file's document (JSON or YAML by its extension) and its size in bytes."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DefinitionError([f"{path}: cannot read ({exc.strerror})"]) from None
    return load_document(data, path.name, str(path)), len(data)


def check_gate(document: Any, args: dict[str, str], what: str) -> GateDefinition:
    """The gate expanded with `args` and validated; DefinitionError lists every problem."""
    from orchestrator.definition import validate_definition

    raw, _ = expand(document, args, what)
    return validate_definition(raw)


def fits_inline(document: Any) -> bool:
    """Whether the document, as compact JSON, fits in UserParameters."""
    import json

    if isinstance(document, dict) and "params" in document:
        return False
    return len(json.dumps(document, separators=(",", ":"))) <= MAX_INLINE_CHARS


@dataclass(frozen=True)
class LocalArtifact:
    """An input artifact given on the command line, as the zip CodePipeline would store."""

    name: str
    source: Path
    data: bytes

    def read(self, path: str) -> bytes | None:
        with zipfile.ZipFile(io.BytesIO(self.data)) as archive:
            try:
                entry = archive.getinfo(path)
            except KeyError:
                return None
            with archive.open(entry) as stream:
                return stream.read(MAX_REFERENCED_BYTES + 1)

    def names(self) -> list[str]:
        with zipfile.ZipFile(io.BytesIO(self.data)) as archive:
            return sorted(i.filename for i in archive.infolist() if not i.is_dir())


def local_artifacts(values: list[str]) -> dict[str, LocalArtifact]:
    """`--artifact Name=PATH` options: each PATH a folder (zipped here) or a zip file."""
    found: dict[str, LocalArtifact] = {}
    for name, text in parse_pairs(values, "--artifact").items():
        path = Path(text)
        if path.is_dir():
            data = zip_folder(path)
        elif path.is_file() and zipfile.is_zipfile(path):
            data = path.read_bytes()
        else:
            raise UsageError(f"--artifact {name}={text}: not a folder or a zip file")
        found[name] = LocalArtifact(name, path, data)
    return found


def zip_folder(folder: Path) -> bytes:
    """A folder as a zip, paths relative to it (what a source action stores)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            relative = path.relative_to(folder)
            if path.is_file() and ".git" not in relative.parts:  # as a source action zips
                archive.write(path, relative.as_posix())
    return buffer.getvalue()


def check_reference(
    reference: Reference,
    artifacts: dict[str, LocalArtifact],
    inputs: list[str] | None,
    warnings: list[str] | None = None,
) -> str:
    """Check a referenced gate offline where it can be; return a note saying what was done.

    `inputs`: the action's declared input artifacts (None: a bare gate, anything goes);
    `warnings` gets what is suspicious in the gate without being an error."""
    ref = reference.ref
    what = f"gate {ref}"
    if ref.kind != "artifact":
        return f"{what}: not checked offline (read from {ref.kind.upper()} on the first tick)"
    if inputs is not None and ref.artifact not in inputs:
        declared = ", ".join(inputs) or "none"
        raise DefinitionError(
            [f"{what}: the action has no input artifact {ref.artifact!r} (declared: {declared})"]
        )
    artifact = artifacts.get(ref.artifact)
    if artifact is None:
        return f"{what}: not checked (pass --artifact {ref.artifact}=FOLDER to check it)"
    data = artifact.read(ref.path)
    if data is None:
        listing = ", ".join(artifact.names()[:10]) or "no files"
        raise DefinitionError(
            [f"{what}: {artifact.source} has no file {ref.path!r} (it has: {listing})"]
        )
    document = load_document(data, ref.path, what)
    definition = check_gate(document, reference.arg_map, what)
    if warnings is not None:
        warnings.extend(f"{what}: {line}" for line in definition_warnings(definition))
    return f"{what}: checked against {artifact.source}"


# region UserParameters with CodePipeline variables

_VARIABLE = re.compile(r"#\{([A-Za-z0-9@_\-]+\.[A-Za-z0-9@_\-]+)\}")
"""`#{Namespace.Variable}`: CodePipeline substitutes it, as text, before the function runs."""


def check_user_parameters(
    text: str, artifacts: dict[str, LocalArtifact], inputs: list[str], warnings: list[str]
) -> str:
    """Check an action's UserParameters exactly as the handler reads them; return a note.

    `#{Namespace.Variable}` is replaced by a neutral stand-in first (a word, valid inside a
    JSON string); errors that only the stand-in can cause (it used as a duration, say) go to
    `warnings`, every other one is raised. Suspicious but valid gates add `warnings` too."""
    stood = _StandIns.of(text)
    try:
        note = _check_parameters(stood.text, artifacts, inputs, warnings)
    except DefinitionError as exc:
        if not stood.by:
            raise
        certain = [line for line in exc.errors if not stood.caused(line)]
        warnings.extend(
            f"{line} (with a stand-in for {stood.named(line)}: checked once it resolves)"
            for line in exc.errors
            if stood.caused(line)
        )
        if certain:
            raise DefinitionError(certain) from None
        note = ""
    return "; ".join(part for part in (stood.note(), note) if part)


def _check_parameters(
    text: str, artifacts: dict[str, LocalArtifact], inputs: list[str], warnings: list[str]
) -> str:
    spec = read_user_parameters(text)
    if isinstance(spec, Reference):
        return check_reference(spec, artifacts, inputs, warnings)
    warnings.extend(definition_warnings(spec))
    return ""


@dataclass(frozen=True)
class _StandIns:
    """UserParameters with every `#{...}` replaced, and where the stand-ins went."""

    original: str
    text: str
    by: dict[str, str]
    """Stand-in by variable, e.g. {"Build.Version": "pipeline-variable-1"}."""
    paths: dict[str, set[str]]
    """Field paths (as errors name them) of the strings holding a stand-in: their variables."""

    @classmethod
    def of(cls, original: str) -> _StandIns:
        by: dict[str, str] = {}

        def stand_in(match: re.Match[str]) -> str:
            return by.setdefault(match.group(1), f"pipeline-variable-{len(by) + 1}")

        text = _VARIABLE.sub(stand_in, original)
        paths: dict[str, set[str]] = {}
        if by:
            with contextlib.suppress(ValueError):  # a variable outside a string: see caused()
                _holding(json.loads(text), "", by, paths)
        return cls(original, text, by, paths)

    def caused(self, line: str) -> bool:
        """Whether only the stand-ins can have caused this error."""
        if line.startswith("UserParameters: not valid JSON"):
            try:  # a variable outside a JSON string, e.g. "timeout": #{Vars.Timeout}
                json.loads(_VARIABLE.sub("0", self.original))
            except ValueError:
                return False
            return True
        return bool(self._variables(line))

    def named(self, line: str) -> str:
        names = sorted(self._variables(line)) or sorted(self.by)
        return ", ".join(f"#{{{name}}}" for name in names)

    def _variables(self, line: str) -> set[str]:
        found = {name for name, token in self.by.items() if token in line}
        path = line.partition(": ")[0]
        for held, names in self.paths.items():
            if path == held or path.startswith((f"{held}.", f"{held}[")):
                found |= names
        return found

    def note(self) -> str:
        if not self.by:
            return ""
        stood = ", ".join(f"#{{{name}}} as {token!r}" for name, token in self.by.items())
        return f"checked with stand-ins for CodePipeline variables: {stood}"


def _holding(value: Any, path: str, by: dict[str, str], paths: dict[str, set[str]]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _holding(inner, f"{path}.{key}" if path else str(key), by, paths)
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            _holding(inner, f"{path}[{index}]", by, paths)
    elif isinstance(value, str):
        names = {name for name, token in by.items() if token in value}
        if names:
            paths[path or "UserParameters"] = names


# endregion
