"""Hypothesis strategies for what reaches the orchestrator from outside: events, gate
definitions, durations, JMESPath expressions, continuation tokens.

Known bugs are kept out of the general strategies (finite floats only, bounded nesting and
digit counts) and pinned instead by strict xfail tests in test_fuzz.py: when one is fixed,
its xfail passes, fails the suite, and the exclusion here can go.
"""

from __future__ import annotations

import base64
import json
import string
from typing import Any

from hypothesis import strategies as st

from orchestrator.steps import KINDS
from orchestrator.token import Token

# -- JSON ------------------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False)  # NaN, inf: see test_fuzz.py KNOWN
    | st.text(max_size=24)
)
json_values: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# -- durations -------------------------------------------------------------------------

UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
numbers = st.from_regex(r"[0-9]{1,12}(\.[0-9]{1,6})?", fullmatch=True)


@st.composite
def short_durations(draw: st.DrawFn) -> tuple[str, float]:
    """'1h30m'-style text and the seconds it means."""
    parts = draw(st.lists(st.tuples(numbers, st.sampled_from(list(UNITS))), min_size=1, max_size=4))
    text = "".join(n + u for n, u in parts)
    return text, sum(float(n) * UNITS[u] for n, u in parts)


@st.composite
def iso_durations(draw: st.DrawFn) -> tuple[str, float]:
    """'PT1H30M'-style text and the seconds it means."""
    date = draw(st.lists(st.sampled_from(["W", "D"]), unique=True, max_size=2))
    time = draw(st.lists(st.sampled_from(["H", "M", "S"]), unique=True, max_size=3))
    if not date and not time:
        time = ["S"]
    factors = {"W": 604800.0, "D": 86400.0, "H": 3600.0, "M": 60.0, "S": 1.0}
    text, seconds = "P", 0.0
    for unit in sorted(date, key="WD".index):
        n = draw(numbers)
        text, seconds = text + n + unit, seconds + float(n) * factors[unit]
    if time:
        text += "T"
        for unit in sorted(time, key="HMS".index):
            n = draw(numbers)
            text, seconds = text + n + unit, seconds + float(n) * factors[unit]
    return text, seconds


duration_texts = (
    short_durations().map(lambda pair: pair[0])
    | iso_durations().map(lambda pair: pair[0])
    | st.text(alphabet="0123456789.msdhwPTHMSW -", max_size=12)
    | st.text(max_size=12)
)
duration_values = (
    st.sampled_from(["30s", "1m", "10m", "1h30m", "PT1H", "500ms", "2d", "0s", "-1m", "soon"])
    | duration_texts
    | st.integers(min_value=-10, max_value=10**7)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.none()
    | st.booleans()
)

# -- JMESPath --------------------------------------------------------------------------

FIELDS = ["status", "body", "body.state", "headers", "run.id", "steps", "@", "`1`", "'x'"]
expressions = (
    st.sampled_from(
        [
            "status == `200`",
            "body.state == 'approved'",
            "body.items[?state == 'done'] | length(@) > `0`",
            "contains(keys(headers), 'etag')",
            "run.id",
            "steps.a.body",
            "abs(body.n) > `3`",
            "sort_by(body.items, &n)[0].n",
            "body.items[::-1]",
        ]
    )
    | st.lists(
        st.sampled_from([*FIELDS, ".", "|", "&&", "||", "!", "==", "<", "[", "]", "(", ")", "?"]),
        max_size=6,
    ).map(" ".join)
    | st.text(max_size=30)
)

# -- definitions -----------------------------------------------------------------------

step_names = st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True) | st.text(max_size=70)


def http_steps(urls: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, Any]]:
    request = st.fixed_dictionaries(
        {"url": urls},
        optional={
            "method": st.sampled_from(["GET", "POST", "PUT", "DELETE", "get", "BREW"]),
            "headers": st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=3),
            "body": json_values,
            "request_timeout": duration_values,
        },
    )
    return st.fixed_dictionaries(
        {"name": step_names, "http": request},
        optional={
            "until": expressions,
            "fail_if": expressions,
            "every": duration_values,
            "timeout": duration_values,
        },
    )


wait_steps = st.fixed_dictionaries(
    {"name": step_names, "wait": duration_values},
    optional={
        "every": duration_values,
        "timeout": duration_values,
        "retry": st.fixed_dictionaries(
            {}, optional={"attempts": st.integers(-2, 30), "backoff": duration_values}
        ),
    },
)
# Every registered kind, with made-up fields: each kind's validation must answer with a
# DefinitionError, whatever it is given.
any_kind_steps = st.builds(
    lambda kind, name, fields, value: {**fields, "name": name, kind: value},
    st.sampled_from(sorted(KINDS)),
    step_names,
    st.dictionaries(st.text(max_size=10), json_values, max_size=4),
    json_values,
) | st.builds(
    lambda kind, name, value: {"name": name, kind: value},
    st.sampled_from(sorted(KINDS)),
    step_names,
    json_values,
)
# Loopback only (port 9: nothing listens, the connection is refused at once).
urls = st.sampled_from(
    ["http://127.0.0.1:9/x", "https://127.0.0.1:9/${run.id}", "ftp://127.0.0.1/x", "x"]
) | st.text(max_size=20).map(lambda path: "http://127.0.0.1:9/" + path)


def gate_definitions(
    step: st.SearchStrategy[Any], outputs: st.SearchStrategy[str] = expressions
) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"steps": st.lists(step, max_size=4)},
        optional={
            "outputs": st.dictionaries(st.text(max_size=12), outputs, max_size=3),
            "timeout": duration_values,
            "version": json_values,
        },
    )


def user_parameters(definitions: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[str]:
    """UserParameters text: definitions, other JSON, text, and a few classics."""
    return (
        definitions.map(json.dumps)
        | json_values.map(json.dumps)
        | st.text(max_size=200)
        | st.sampled_from(["", "{", "[]", "null", '{"steps": []}', "  "])
    )


definitions = gate_definitions(wait_steps | http_steps(urls) | any_kind_steps | json_values)

# -- tokens ----------------------------------------------------------------------------

TOKEN_KEYS = ["r", "n", "j", "s", "x", "d", "c", "i", "p"]
token_like = st.fixed_dictionaries(
    {
        "r": st.text(min_size=1, max_size=40) | json_values,
        "n": st.none() | st.text(min_size=1, max_size=30) | json_values,
        "j": st.text(min_size=1, max_size=40) | json_values,
        "s": st.floats(allow_nan=False, allow_infinity=False) | json_values,
        "x": st.floats(allow_nan=False, allow_infinity=False) | json_values,
        "d": st.floats(allow_nan=False, allow_infinity=False) | json_values,
        "c": st.floats(allow_nan=False, allow_infinity=False) | json_values,
        "i": st.integers() | json_values,
        "p": st.integers(0, 100) | json_values,
    }
)
token_texts = (
    st.text(max_size=60)
    | st.binary(max_size=200).map(lambda raw: "v1." + b64(raw))
    | json_values.map(lambda value: "v1." + b64(json.dumps(value).encode()))
    | token_like.map(lambda value: "v1." + b64(json.dumps(value).encode()))
    | st.builds(
        lambda value, drop: (
            "v1." + b64(json.dumps({k: v for k, v in value.items() if k != drop}).encode())
        ),
        token_like,
        st.sampled_from(TOKEN_KEYS),
    )
    | st.text(alphabet=string.ascii_letters + string.digits + "-_=", max_size=80).map("v1.".__add__)
)

# -- credentials (values long enough to register as canaries) ---------------------------

# Random by construction (uuids), so that even shrunk examples are worth registering.
secret_values = st.builds(lambda a, b: f"FUZZ{a.hex}{b.hex[:8]}", st.uuids(), st.uuids())
credentials = st.fixed_dictionaries(
    {"accessKeyId": secret_values, "secretAccessKey": secret_values, "sessionToken": secret_values}
)
credential_shapes = (
    credentials
    | st.none()
    | json_values
    | credentials.map(lambda c: {k: v for k, v in c.items() if k != "sessionToken"})
    | st.builds(
        lambda c, extra: {**c, **extra},
        credentials,
        st.dictionaries(st.text(max_size=8), json_values, max_size=2),
    )
)


# -- valid gates (the handler runs them), and tokens that decode -------------------------

good_durations = st.sampled_from(["1ms", "30s", "1m", "10m", "1h30m", "PT1H", "2d", 45, 0.5])
good_expressions = st.sampled_from(
    ["status == `200`", "body.state == 'approved'", "body.state == 'rejected'", "`false`", "body"]
)


def valid_definitions(url: str) -> st.SearchStrategy[dict[str, Any]]:
    """Definitions that validate: waits, and polls of `url` (or of a closed port)."""
    wait = st.fixed_dictionaries(
        {"wait": good_durations}, optional={"every": good_durations, "timeout": good_durations}
    )
    http = st.fixed_dictionaries(
        {"http": st.fixed_dictionaries({"url": st.sampled_from([url, "http://127.0.0.1:9/"])})},
        optional={"until": good_expressions, "fail_if": good_expressions, "every": good_durations},
    )
    named = st.lists(
        st.tuples(st.from_regex(r"[a-z]{1,8}", fullmatch=True), wait | http),
        min_size=1,
        max_size=4,
        unique_by=lambda pair: pair[0],
    ).map(lambda pairs: [{"name": name, **step} for name, step in pairs])
    return st.fixed_dictionaries(
        {"steps": named},
        optional={
            "outputs": st.dictionaries(
                st.from_regex(r"[A-Za-z0-9@_-]{1,10}", fullmatch=True),
                st.sampled_from(["run.id", "run.started_at", "steps", "`1`", "'x'"]),
                max_size=3,
            ),
            "timeout": st.sampled_from(["1h", "23h", "1ms"]),
        },
    )


decodable_tokens = st.builds(
    lambda run_id, nonce, job_id, times, step, percent: Token(
        run_id=run_id,
        nonce=nonce,
        job_id=job_id,
        started_at=times[0],
        deadline=times[1],
        due=times[2],
        checked_at=times[3],
        step_index=step,
        percent=percent,
    ).encode(),
    st.uuids().map(str),
    st.none() | st.text(min_size=1, max_size=30),
    st.uuids().map(str),
    st.lists(st.floats(min_value=0, max_value=4e9), min_size=4, max_size=4),
    st.integers(0, 60),
    st.integers(0, 100),
)
