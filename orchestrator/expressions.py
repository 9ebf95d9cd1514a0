"""JMESPath, once: every expression of a gate is compiled, searched and judged true here.

    compiled(text)        an expression checked at validation (the `Expression` field type):
                          ValueError with the parser's first line otherwise
    search(expr, doc)     its value over a JSON document;  truthy(value): JMESPath truthiness
    placeholders(value)   the `${...}` templates inside a step's fields;  check_templates,
    render(value, ctx)    compile them, and substitute them from the run context

`${...}` in a step's string fields: a JMESPath expression over the run context.
A string that is exactly one `${expr}` becomes the value itself (any JSON type); a string
with `${expr}` inside text gets the value spliced in (strings as they are, other values
JSON-encoded). The context is `{"steps", "run"}`, plus the documents the job context adds
when the definition reads them (`pipeline`, `artifacts`) and, for a gate by reference, its
`args`.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

import jmespath
from jmespath.exceptions import JMESPathError
from pydantic import AfterValidator

from orchestrator.exceptions import TerminalError

_PLACEHOLDER = re.compile(r"\$\{([^{}]+)\}")


class TemplateError(TerminalError, ValueError):
    """A `${...}` expression is invalid, or evaluates to nothing (a ValueError too, so that
    pydantic validators report it as a validation error)."""


def _compile_error(expression: str) -> str | None:
    """The parser's first line about `expression`, or None when it compiles."""
    try:
        jmespath.compile(expression)
    except JMESPathError as exc:
        return str(exc).splitlines()[0]
    return None


def compiled(expression: str) -> str:
    """`expression` itself when it compiles; ValueError saying why not (a field validator)."""
    reason = _compile_error(expression)
    if reason is not None:
        raise ValueError(f"invalid JMESPath expression {expression!r}: {reason}")
    return expression


Expression = Annotated[str, AfterValidator(compiled)]
"""A JMESPath expression field, compiled once at validation to report syntax errors early."""


def search(expression: str, document: object) -> Any:
    """Evaluate a JMESPath expression (already validated) over a JSON document."""
    return jmespath.search(expression, document)


def truthy(value: object) -> bool:
    """JMESPath truthiness: false, null, '', [] and {} are false; every number is true."""
    if value is None or value is False:
        return False
    if isinstance(value, (str, list, dict)):
        return len(value) > 0
    return True


def placeholders(value: Any) -> list[str]:
    """Every `${...}` expression inside a JSON-like value."""
    if isinstance(value, str):
        return [match.group(1).strip() for match in _PLACEHOLDER.finditer(value)]
    if isinstance(value, dict):
        return [e for inner in value.values() for e in placeholders(inner)]
    if isinstance(value, list):
        return [e for inner in value for e in placeholders(inner)]
    return []


def check_templates(value: Any) -> None:
    """Raise TemplateError for the first `${...}` expression that does not compile."""
    for expression in placeholders(value):
        reason = _compile_error(expression)
        if reason is not None:
            raise TemplateError(f"invalid template ${{{expression}}}: {reason}")


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


_CHAINED = ("index_expression", "projection", "value_projection", "filter_projection", "flatten")


def reads(expression: str) -> list[tuple[str, ...]]:
    """The field paths `expression` (valid) reads from the document it is searched over:
    `body.state == 'ok' || status` -> [("body", "state"), ("status",)]. Only the leading
    fields of each path (what follows a projection or an index is left out)."""
    tree: Any = jmespath.compile(expression).parsed
    return _reads(tree)


def _reads(node: dict[str, Any]) -> list[tuple[str, ...]]:
    kind = node["type"]
    if kind in ("field", "subexpression", "pipe", *_CHAINED):
        names, _ = _chain(node)
        return [names] if names else _reads(node["children"][0])
    if kind in ("literal", "current", "index", "slice", "expref"):
        return []
    return [
        path for child in node["children"] if child["type"] != "expref" for path in _reads(child)
    ]


def _chain(node: dict[str, Any]) -> tuple[tuple[str, ...], bool]:
    """The fields `node` reads first, in order, and whether it is exactly that path."""
    kind = node["type"]
    if kind == "field":
        return (str(node["value"]),), True
    if kind == "current":
        return (), True
    if kind in ("subexpression", "pipe"):
        names: tuple[str, ...] = ()
        for child in node["children"]:
            more, whole = _chain(child)
            names += more
            if not whole:
                return names, False
        return names, True
    if kind in _CHAINED:
        return _chain(node["children"][0])[0], False
    return (), False
