"""Check parameters against botocore's CodePipeline service model, the way the service does.

botocore's client-side validation only checks types, required members and minimums; the
service also enforces maximum lengths, patterns and enums. This walker applies all of them
to JSON-decoded values (what arrives on the wire) so the emulator refuses exactly what
CodePipeline would, and tests can check our own payloads before they are sent.

Errors name the parameter path (`executionDetails.summary`, `inputArtifacts[0].name`,
`outputVariables[key]`) and the constraint. They never echo a string value: parameters
carry credentials and workflow data.
"""

from __future__ import annotations

import datetime
import functools
import re
from typing import TYPE_CHECKING

import botocore.session
from botocore.model import ListShape, MapShape, StructureShape

if TYPE_CHECKING:
    from botocore.model import ServiceModel, Shape

SERVICE = "codepipeline"
_KEY_PREVIEW = 40


@functools.cache
def service_model() -> ServiceModel:
    """botocore's model of CodePipeline (loaded once)."""
    return botocore.session.get_session().get_service_model(SERVICE)


def validate_input(operation: str, params: object) -> list[str]:
    """Errors in the request parameters of `operation` (empty when valid)."""
    shape = service_model().operation_model(operation).input_shape
    return validate(shape, params) if shape is not None else []


def validate_output(operation: str, params: object) -> list[str]:
    """Errors in a response of `operation` (empty when valid)."""
    shape = service_model().operation_model(operation).output_shape
    return validate(shape, params) if shape is not None else []


def validate_shape(shape_name: str, value: object, path: str = "") -> list[str]:
    """Errors in `value` checked against the named shape (e.g. `JobData`)."""
    return validate(service_model().shape_for(shape_name), value, path)


def validate(shape: Shape, value: object, path: str = "") -> list[str]:
    """Walk `value` against `shape`; return one message per violation, in document order."""
    errors: list[str] = []
    _check(shape, value, path, errors)
    return errors


def _label(path: str) -> str:
    return path or "(root)"


def _join(path: str, member: str) -> str:
    return f"{path}.{member}" if path else member


def _key_label(key: str) -> str:
    return key if len(key) <= _KEY_PREVIEW else key[:_KEY_PREVIEW] + "..."


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str] | None:
    """The model's (Java-flavoured) pattern compiled for Python; None if Python cannot."""
    try:
        return re.compile(pattern)
    except re.error:
        return None


def _check(shape: Shape, value: object, path: str, errors: list[str]) -> None:
    kind = shape.type_name
    if isinstance(shape, StructureShape):
        _check_structure(shape, value, path, errors)
    elif isinstance(shape, ListShape):
        _check_list(shape, value, path, errors)
    elif isinstance(shape, MapShape):
        _check_map(shape, value, path, errors)
    elif kind == "string":
        _check_string(shape, value, path, errors)
    elif kind in ("integer", "long"):
        _check_integer(shape, value, path, errors)
    elif kind in ("float", "double"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            errors.append(f"{_label(path)}: expected number, got {_type_name(value)}")
        else:
            _check_range(shape, value, path, errors)
    elif kind == "boolean":
        if not isinstance(value, bool):
            errors.append(f"{_label(path)}: expected boolean, got {_type_name(value)}")
    elif kind == "timestamp":
        # JSON 1.1 sends epoch seconds; Python callers may pass a datetime.
        if isinstance(value, bool) or not isinstance(value, int | float | datetime.datetime):
            errors.append(f"{_label(path)}: expected timestamp, got {_type_name(value)}")
    elif kind == "blob":
        if not isinstance(value, str | bytes):
            errors.append(f"{_label(path)}: expected blob, got {_type_name(value)}")
        else:
            _check_length(shape, len(value), path, errors)
    # Anything else (document types) is accepted as is.


def _check_structure(shape: StructureShape, value: object, path: str, errors: list[str]) -> None:
    if not isinstance(value, dict):
        errors.append(f"{_label(path)}: expected object, got {_type_name(value)}")
        return
    members = shape.members
    for name in shape.required_members:
        if value.get(name) is None:
            errors.append(f"{_join(path, name)}: required member missing")
    for name, member_value in value.items():
        member_path = _join(path, str(name))
        if name not in members:
            errors.append(f"{member_path}: unknown member")
        elif member_value is not None:  # JSON null reads as absent, as botocore does
            _check(members[name], member_value, member_path, errors)


def _check_list(shape: ListShape, value: object, path: str, errors: list[str]) -> None:
    if not isinstance(value, list | tuple):
        errors.append(f"{_label(path)}: expected array, got {_type_name(value)}")
        return
    _check_count(shape, len(value), "items", path, errors)
    for index, item in enumerate(value):
        _check(shape.member, item, f"{path}[{index}]", errors)


def _check_map(shape: MapShape, value: object, path: str, errors: list[str]) -> None:
    if not isinstance(value, dict):
        errors.append(f"{_label(path)}: expected object, got {_type_name(value)}")
        return
    _check_count(shape, len(value), "entries", path, errors)
    for key, item in value.items():
        label = f"{path}[{_key_label(key) if isinstance(key, str) else '?'}]"
        key_errors: list[str] = []
        _check(shape.key, key, "", key_errors)
        errors.extend(f"{label}: key {error.removeprefix('(root): ')}" for error in key_errors)
        _check(shape.value, item, label, errors)


def _check_string(shape: Shape, value: object, path: str, errors: list[str]) -> None:
    if not isinstance(value, str):
        errors.append(f"{_label(path)}: expected string, got {_type_name(value)}")
        return
    _check_length(shape, len(value), path, errors)
    enum = shape.metadata.get("enum")
    if enum and value not in enum:
        errors.append(f"{_label(path)}: not one of [{', '.join(enum)}]")
    pattern = shape.metadata.get("pattern")
    if pattern:
        compiled = _compiled(pattern)
        if compiled is not None and compiled.fullmatch(value) is None:
            errors.append(f"{_label(path)}: does not match pattern {pattern}")


def _check_integer(shape: Shape, value: object, path: str, errors: list[str]) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        errors.append(f"{_label(path)}: expected integer, got {_type_name(value)}")
        return
    _check_range(shape, value, path, errors)


def _check_range(shape: Shape, value: float, path: str, errors: list[str]) -> None:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and value < low:
        errors.append(f"{_label(path)}: value {value} < min {low}")
    if high is not None and value > high:
        errors.append(f"{_label(path)}: value {value} > max {high}")


def _check_length(shape: Shape, length: int, path: str, errors: list[str]) -> None:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and length < low:
        errors.append(f"{_label(path)}: length {length} < min {low}")
    if high is not None and length > high:
        errors.append(f"{_label(path)}: length {length} > max {high}")


def _check_count(shape: Shape, count: int, noun: str, path: str, errors: list[str]) -> None:
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and count < low:
        errors.append(f"{_label(path)}: {count} {noun} < min {low}")
    if high is not None and count > high:
        errors.append(f"{_label(path)}: {count} {noun} > max {high}")
