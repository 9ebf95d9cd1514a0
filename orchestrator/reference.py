"""Gates by reference: what `UserParameters` says, and how a referenced gate is expanded.

CodePipeline refuses any action configuration value over 1,000 characters, so a real gate
lives in a file and `UserParameters` only points at it:

    {"gate": "SourceArtifact::gates/prod.yaml", "args": {"service": "checkout"}}
    {"gate": "s3://bucket/gates/prod.json?versionId=3HL4kqtJ..."}
    {"gate": "ssm:/gates/prod"}

The referenced document is JSON or YAML (safe loader, no aliases, dates stay strings),
at most 256 KB. It may declare `params`; `args` fill them and every string of the
definition may say `${args.NAME}`:

    UserParameters ──► read_user_parameters ──► GateDefinition (inline, strict JSON)
                                           └──► Reference(ref, args)
                                                   │ (first tick of a run: fetched once)
                                                   ▼
    source bytes ──► load_document ──► expand(params, args) ──► validate ──► Pinned

`Pinned.key` (the sha256 of the expanded definition) is where the tick stores it, once;
every later tick of the run uses exactly that, whatever happens to the source.
Pure: no boto3 here (`orchestrator.sources` fetches).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from orchestrator.definition import GateDefinition, decode_user_parameters, validate_definition
from orchestrator.exceptions import DefinitionError

if TYPE_CHECKING:
    from collections.abc import Mapping

MAX_INLINE_CHARS = 1000
"""CodePipeline's limit on every action configuration value, UserParameters included."""
MAX_REFERENCED_BYTES = 256 * 1024
MAX_DEPTH = 64
"""Nesting a referenced document may have (inline JSON is bounded by the parser)."""

_ARTIFACT_NAME = re.compile(r"[A-Za-z0-9_\-]{1,100}")
_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_ARG_PLACEHOLDER = re.compile(r"\$\{\s*args\.([A-Za-z0-9_\-]+)\s*\}")
_ARG_IN_EXPRESSION = re.compile(r"(?<![A-Za-z0-9_.])args\.([A-Za-z_][A-Za-z0-9_]*)")
_TEMPLATE = re.compile(r"\$\{([^{}]+)\}")
REFERENCE_HELP = (
    'reference it instead: {"gate": "SourceArtifact::gates/prod.json"} (a file in an input '
    'artifact), {"gate": "s3://bucket/key"} or {"gate": "ssm:/parameter/name"}'
)


# region what UserParameters says


@dataclass(frozen=True)
class GateRef:
    """Where a referenced definition lives: one of three kinds."""

    kind: str  # "artifact" | "s3" | "ssm"
    text: str  # the reference as written
    artifact: str = ""
    path: str = ""
    bucket: str = ""
    key: str = ""
    version_id: str | None = None
    parameter: str = ""

    def __str__(self) -> str:
        return self.text

    @property
    def file_name(self) -> str:
        """The name whose extension says JSON or YAML ('' for SSM)."""
        return self.path or self.key


@dataclass(frozen=True)
class Reference:
    """UserParameters that point at a definition, with the args to fill its params."""

    ref: GateRef
    args: tuple[tuple[str, str], ...]

    @property
    def arg_map(self) -> dict[str, str]:
        return dict(self.args)


def parse_ref(text: object) -> GateRef:
    """Parse `ArtifactName::path`, `s3://bucket/key[?versionId=V]` or `ssm:NAME`."""
    from urllib.parse import parse_qs, urlsplit

    from orchestrator.artifacts_report import is_safe_name

    if not isinstance(text, str) or not text.strip():
        raise DefinitionError([f"gate: expected a reference string; {REFERENCE_HELP}"])
    if text.startswith("s3://"):
        parts = urlsplit(text)
        key = parts.path.lstrip("/")
        query = parse_qs(parts.query, keep_blank_values=True)
        if not parts.netloc or not key or set(query) - {"versionId"} or parts.fragment:
            raise DefinitionError(
                [f"gate: {text!r} is not s3://bucket/key (optionally ?versionId=...)"]
            )
        versions = query.get("versionId", [])
        if len(versions) > 1 or "" in versions:
            raise DefinitionError([f"gate: {text!r} has an empty or repeated versionId"])
        version = versions[0] if versions else None
        return GateRef("s3", text, bucket=parts.netloc, key=key, version_id=version)
    if text.startswith("ssm:"):
        name = text.removeprefix("ssm:")
        if not name or len(name) > 2048 or any(c.isspace() for c in name):
            raise DefinitionError([f"gate: {text!r} is not ssm:/parameter/name"])
        return GateRef("ssm", text, parameter=name)
    artifact, separator, path = text.partition("::")
    if separator:
        if not _ARTIFACT_NAME.fullmatch(artifact):
            raise DefinitionError(
                [f"gate: {text!r}: artifact names are 1 to 100 of A-Z a-z 0-9 _ -"]
            )
        if not is_safe_name(path):
            raise DefinitionError(
                [f"gate: {text!r}: the path must be relative to the artifact, without '..'"]
            )
        return GateRef("artifact", text, artifact=artifact, path=path)
    raise DefinitionError([f"gate: {text!r} is not a reference; {REFERENCE_HELP}"])


@lru_cache(maxsize=64)
def read_user_parameters(user_parameters: str | None) -> GateDefinition | Reference:
    """What the action's UserParameters say, parsed exactly as the handler parses them:
    strict JSON; an inline definition is validated, a reference is checked for form."""
    raw = decode_user_parameters(user_parameters)
    if not (isinstance(raw, dict) and "gate" in raw):
        return validate_definition(raw)
    errors: list[str] = []
    if "steps" in raw:
        errors.append("UserParameters: either 'steps' (inline) or 'gate' (a reference), not both")
    errors.extend(f"UserParameters.{key}: unknown field" for key in raw if key not in _REF_KEYS)
    args = raw.get("args", {})
    if not isinstance(args, dict):
        errors.append("args: expected an object of strings")
        args = {}
    for name, value in args.items():
        if not isinstance(value, str):
            errors.append(f"args.{name}: must be a string (got {type(value).__name__})")
    try:
        ref = parse_ref(raw["gate"])
    except DefinitionError as exc:
        errors.extend(exc.errors)
    if errors:
        raise DefinitionError(errors)
    return Reference(ref, tuple(sorted((str(k), str(v)) for k, v in args.items())))


_REF_KEYS = ("gate", "args")


def check_inline_length(user_parameters: str, where: str = "UserParameters") -> None:
    """Refuse what CodePipeline refuses at CreatePipeline/UpdatePipeline."""
    length = len(user_parameters)
    if length > MAX_INLINE_CHARS:
        raise DefinitionError(
            [
                f"{where}: {length:,} characters, over CodePipeline's limit of "
                f"{MAX_INLINE_CHARS:,} for an action configuration value (CreatePipeline "
                "answers 'Member must have length less than or equal to 1000'); " + REFERENCE_HELP
            ]
        )


# endregion
# region the referenced document


def load_document(data: bytes, name: str, what: str) -> Any:
    """A referenced document: JSON when `name` ends in .json, else YAML (safe, no aliases).

    DefinitionError names `what` and the reason; size and nesting are bounded."""
    if len(data) > MAX_REFERENCED_BYTES:
        raise DefinitionError(
            [f"{what}: {len(data):,} bytes, over the {MAX_REFERENCED_BYTES:,}-byte limit"]
        )
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise DefinitionError([f"{what}: not UTF-8 text (byte {exc.start})"]) from None
    try:
        if name.lower().endswith(".json"):
            document = json.loads(text, parse_constant=_no_constant)
        else:
            document = _load_yaml(text)
    except RecursionError:
        raise DefinitionError([f"{what}: nested too deeply"]) from None
    except json.JSONDecodeError as exc:
        raise DefinitionError(
            [f"{what}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"]
        ) from None
    except ValueError as exc:  # yaml.YAMLError is not one; _load_yaml converts it
        raise DefinitionError([f"{what}: {exc}"]) from None
    if _depth(document) > MAX_DEPTH:
        raise DefinitionError([f"{what}: nested more than {MAX_DEPTH} levels deep"])
    return document


def _no_constant(name: str) -> Any:
    raise ValueError(f"not valid JSON ({name} is not a number)")


def _load_yaml(text: str) -> Any:
    import yaml

    try:
        return yaml.load(text, Loader=_loader())  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        raise ValueError(f"not valid YAML ({exc.problem or exc}{where})") from None
    except yaml.YAMLError as exc:
        raise ValueError(f"not valid YAML ({exc})") from None


@lru_cache(maxsize=1)
def _loader() -> Any:
    """yaml.SafeLoader without aliases (a billion laughs) and with dates kept as strings."""
    import yaml

    class GateLoader(yaml.SafeLoader):
        def compose_node(self, parent: Any, index: Any) -> Any:
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()  # type: ignore[no-untyped-call]
                raise yaml.composer.ComposerError(
                    None, None, "aliases (*name) are not allowed", event.start_mark
                )
            return super().compose_node(parent, index)

    GateLoader.yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    return GateLoader


def _depth(document: Any) -> int:
    deepest, stack = 0, [(document, 1)]
    while stack:
        value, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            break
        if isinstance(value, dict):
            stack.extend((inner, depth + 1) for inner in value.values())
        elif isinstance(value, list):
            stack.extend((inner, depth + 1) for inner in value)
    return deepest


@dataclass(frozen=True)
class Param:
    """One declared parameter: required unless it has a default."""

    default: str | None
    description: str = ""


def parse_params(raw: object) -> tuple[dict[str, Param], list[str]]:
    """The document's `params` section, and every problem with it."""
    if raw is None:
        return {}, []
    if not isinstance(raw, dict):
        return {}, ["params: expected an object of parameter declarations"]
    params: dict[str, Param] = {}
    errors: list[str] = []
    for name, declared in raw.items():
        where = f"params.{name}"
        if not _PARAM_NAME.fullmatch(str(name)):
            errors.append(f"{where}: invalid name: 1 to 64 of A-Z a-z 0-9 _, not first a digit")
            continue
        spec = {} if declared is None else declared
        if not isinstance(spec, dict):
            errors.append(f"{where}: expected an object: default, required, description")
            continue
        errors.extend(
            f"{where}.{key}: unknown field"
            for key in spec
            if key not in ("default", "required", "description")
        )
        default, required = spec.get("default"), spec.get("required")
        if default is not None and not isinstance(default, str):
            errors.append(f"{where}.default: must be a string")
            default = None
        if required is not None and not isinstance(required, bool):
            errors.append(f"{where}.required: must be true or false")
        if required is True and default is not None:
            errors.append(f"{where}: 'required' and 'default' exclude each other")
        if required is False and default is None:
            default = ""
        description = spec.get("description", "")
        params[name] = Param(default, description if isinstance(description, str) else "")
    return params, errors


def expand(
    document: object, args: Mapping[str, str], what: str
) -> tuple[dict[str, Any], dict[str, str]]:
    """The definition with `params` removed and `${args.NAME}` filled in, validated.

    Returns the definition's raw document and the args in effect (defaults included,
    the run context's `args`); raises DefinitionError listing
    every problem at once (args, params and the definition's own fields), each line
    prefixed with `what`.
    """
    if not isinstance(document, dict):
        raise DefinitionError([f"{what}: expected an object with 'steps'"])
    body = {key: value for key, value in document.items() if key not in ("params", "$schema")}
    params, errors = parse_params(document.get("params"))
    declared = ", ".join(sorted(params)) or "none"
    for name in sorted(args):
        if name not in params:
            errors.append(f"args.{name}: unknown argument (the gate declares: {declared})")
        elif "${" in args[name]:
            errors.append(f"args.{name}: may not contain '${{' (it would be evaluated)")
    values = {name: p.default for name, p in params.items() if p.default is not None}
    values.update({k: v for k, v in args.items() if k in params and "${" not in v})
    for name in sorted(params):
        if name not in values:
            errors.append(f"args.{name}: required argument missing")
    expanded = _substitute(body, values, params, "", errors)
    if isinstance(expanded, dict) and isinstance(expanded.get("outputs"), dict):
        for name, expression in expanded["outputs"].items():
            if isinstance(expression, str):
                errors.extend(_undeclared(expression, params, f"outputs.{name}"))
    try:
        validate_definition(expanded)
    except DefinitionError as exc:
        # a field still holding ${args.X} is invalid because of X, reported above
        errors.extend(line for line in exc.errors if not (errors and "${args." in line))
    if errors:
        raise DefinitionError([f"{what}: {line}" for line in errors])
    assert isinstance(expanded, dict)
    return expanded, {name: value for name, value in values.items() if value is not None}


def _substitute(
    value: Any, values: Mapping[str, str], params: Mapping[str, Param], path: str, errors: list[str]
) -> Any:
    if isinstance(value, dict):
        return {
            key: _substitute(inner, values, params, _join(path, str(key)), errors)
            for key, inner in value.items()
        }
    if isinstance(value, list):
        return [
            _substitute(inner, values, params, f"{path}[{index}]", errors)
            for index, inner in enumerate(value)
        ]
    if not isinstance(value, str) or "args." not in value:
        return value

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in params:
            errors.append(f"{path}: ${{args.{name}}} refers to an undeclared parameter")
        return values.get(name, match.group(0))

    filled = _ARG_PLACEHOLDER.sub(fill, value)
    for expression in _TEMPLATE.findall(filled):  # ${...} left for run time, e.g. args.a || 'b'
        if not _ARG_PLACEHOLDER.fullmatch(f"${{{expression}}}"):  # reported by fill()
            errors.extend(_undeclared(expression, params, path))
    return filled


def _undeclared(expression: str, params: Mapping[str, Param], path: str) -> list[str]:
    return [
        f"{path}: args.{name} refers to an undeclared parameter"
        for name in _ARG_IN_EXPRESSION.findall(expression)
        if name not in params
    ]


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def canonical(document: Any) -> str:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# endregion


@dataclass(frozen=True)
class Fetched:
    """A referenced document as read: its bytes and the source's version, if it has one."""

    data: bytes
    version: str | None


@dataclass(frozen=True)
class Expanded:
    """A fetched document, expanded: what a run pins."""

    definition: GateDefinition
    document: str
    """Canonical JSON of the expanded definition: what is stored."""
    key: str
    """sha256 of `document`: where it is stored."""
    args: dict[str, str]
    sha256: str
    """sha256 of the source as read (what `sha256sum` says of the file)."""


def expand_fetched(reference: Reference, fetched: Fetched) -> Expanded:
    """Expand a fetched document; DefinitionError lists every problem, naming the reference."""
    what = f"gate {reference.ref}"
    document = load_document(fetched.data, reference.ref.file_name, what)
    raw, args = expand(document, reference.arg_map, what)
    text = canonical(raw)
    return Expanded(
        definition=validate_definition(raw),
        document=text,
        key=hashlib.sha256(text.encode()).hexdigest(),
        args=args,
        sha256=hashlib.sha256(fetched.data).hexdigest(),
    )


def definition_from_store(document: str) -> GateDefinition:
    """A pinned definition as stored (canonical JSON, validated when it was pinned)."""
    return validate_definition(json.loads(document))
