"""`${...}` in a step's string fields: a JMESPath expression over the run context.

A string that is exactly one `${expr}` becomes the value itself (any JSON type); a string
with `${expr}` inside text gets the value spliced in (strings as they are, other values
JSON-encoded). The context is `{"steps", "run"}`, plus the documents the job context adds
when the definition reads them (`pipeline`, `artifacts`) and, for a gate by reference, its
`args`.
"""

from __future__ import annotations

import json
import re
from typing import Any

import jmespath
from jmespath.exceptions import JMESPathError

from orchestrator.exceptions import TerminalError

_PLACEHOLDER = re.compile(r"\$\{([^{}]+)\}")


class TemplateError(TerminalError, ValueError):
    """A `${...}` expression is invalid, or evaluates to nothing (a ValueError too, so that
    pydantic validators report it as a validation error)."""


def expressions(value: Any) -> list[str]:
    """Every `${...}` expression inside a JSON-like value."""
    if isinstance(value, str):
        return [match.group(1).strip() for match in _PLACEHOLDER.finditer(value)]
    if isinstance(value, dict):
        return [e for inner in value.values() for e in expressions(inner)]
    if isinstance(value, list):
        return [e for inner in value for e in expressions(inner)]
    return []


def check(value: Any) -> None:
    """Raise TemplateError for the first expression that does not compile."""
    for expression in expressions(value):
        try:
            jmespath.compile(expression)
        except JMESPathError as exc:
            reason = str(exc).splitlines()[0]
            raise TemplateError(f"invalid template ${{{expression}}}: {reason}") from None


def render(value: Any, context: Any) -> Any:
    """Substitute every `${...}` in `value` (recursively) from `context`."""
    if isinstance(value, dict):
        return {key: render(inner, context) for key, inner in value.items()}
    if isinstance(value, list):
        return [render(inner, context) for inner in value]
    if not isinstance(value, str) or "${" not in value:
        return value
    whole = _PLACEHOLDER.fullmatch(value)
    if whole:
        return _evaluate(whole.group(1), context)

    def splice(match: re.Match[str]) -> str:
        found = _evaluate(match.group(1), context)
        return found if isinstance(found, str) else json.dumps(found)

    return _PLACEHOLDER.sub(splice, value)


def _evaluate(expression: str, context: Any) -> Any:
    try:
        found = jmespath.search(expression.strip(), context)
    except JMESPathError as exc:  # e.g. a function given the wrong type at run time
        raise TemplateError(f"${{{expression.strip()}}}: {exc}") from None
    if found is None:
        raise TemplateError(f"${{{expression.strip()}}} is null in the run context")
    return found
