"""Fuzzing (hypothesis) of everything that reaches the orchestrator from outside.

    Job.from_event       a Job, or ValueError that echoes no value (credentials least of all)
    parse_definition     a GateDefinition, or DefinitionError with `path: reason` lines
    parse_duration       the seconds the text means, or ValueError naming the text
    JMESPath fields      accepted exactly when they compile; evaluation never escapes a poll
    Token.decode         a Token, or UnknownTokenError
    the handler          any event whose job id is readable: no exception escapes, and the
                         job gets exactly one answer, of the type its defect calls for

Examples per run: see `scaled()` (ten times more with --soak). Bugs found here and not
fixed yet are pinned by the strict xfail cases of `test_known_bug` (see KNOWN).
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jmespath
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import event as event_label
from hypothesis import strategies as st
from hypothesis.database import DirectoryBasedExampleDatabase
from jmespath.exceptions import JMESPathError

from orchestrator import engine
from orchestrator.definition import GateDefinition, parse_definition
from orchestrator.durations import format_duration, parse_duration
from orchestrator.event import Job
from orchestrator.exceptions import DefinitionError, UnknownTokenError
from orchestrator.expressions import reads
from orchestrator.local.driver import LambdaContext
from orchestrator.model import RunState, RunStatus
from orchestrator.services import Services
from orchestrator.token import Token
from tests.events import load_event
from tests.fakes import ScriptedHttp, json_response
from tests.http_stub import stub_server
from tests.reliability import figures
from tests.reliability import strategies as s
from tests.reliability.canaries import SCANNER
from tests.reliability.figures import FIGURES, scaled
from tests.reliability.rig import Function, Rig

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

SOAKING = figures.SOAK > 1
FUZZ = settings(
    deadline=None,
    # CI: the same examples every run. --soak explores, keeping what fails in build/.
    derandomize=not SOAKING,
    database=(
        DirectoryBasedExampleDatabase(Path(__file__).resolve().parents[2] / "build" / "hypothesis")
        if SOAKING
        else None
    ),
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
)


def fuzz(examples: int) -> settings:
    """The suite's settings, with `examples` examples (ten times more with --soak)."""
    return settings(FUZZ, max_examples=scaled(examples))


# region the event parser


Edit = tuple[tuple[str, ...], Any]
EVENT_PATHS = [
    (),
    ("data",),
    ("data", "actionConfiguration"),
    ("data", "actionConfiguration", "configuration"),
    ("data", "actionConfiguration", "configuration", "UserParameters"),
    ("data", "actionConfiguration", "configuration", "FunctionName"),
    ("data", "inputArtifacts"),
    ("data", "outputArtifacts"),
    ("data", "artifactCredentials"),
    ("data", "continuationToken"),
    ("data", "encryptionKey"),
    ("accountId",),
]
DELETE = object()


def edits(
    user_parameters: st.SearchStrategy[str], tokens: st.SearchStrategy[str]
) -> st.SearchStrategy[list[Edit]]:
    """Changes to the inside of a job (`event["CodePipeline.job"]`), never to its id."""
    specific = st.one_of(
        st.tuples(st.just(EVENT_PATHS[4]), user_parameters | s.json_values | st.just(DELETE)),
        st.tuples(st.just(EVENT_PATHS[9]), tokens | s.json_values | st.just(DELETE)),
        st.tuples(st.just(EVENT_PATHS[8]), s.credential_shapes | st.just(DELETE)),
        st.tuples(st.sampled_from(EVENT_PATHS[6:8]), s.json_values | st.lists(artifacts)),
    )
    anywhere = st.tuples(st.sampled_from(EVENT_PATHS[1:]), s.json_values | st.just(DELETE))
    return st.lists(specific | anywhere, max_size=4)


artifacts = st.fixed_dictionaries(
    {
        "name": st.text(max_size=10),
        "location": st.fixed_dictionaries(
            {
                "type": st.just("S3"),
                "s3Location": st.dictionaries(st.text(max_size=12), s.json_values),
            }
        ),
    },
    optional={"revision": s.json_values},
)


valid_artifacts = st.fixed_dictionaries(
    {
        "name": st.from_regex(r"[A-Za-z0-9_-]{1,20}", fullmatch=True),
        "location": st.fixed_dictionaries(
            {
                "type": st.just("S3"),
                "s3Location": st.fixed_dictionaries(
                    {"bucketName": st.text(min_size=1, max_size=20), "objectKey": st.text()}
                ),
            }
        ),
    },
    optional={"revision": st.none() | st.text(min_size=1, max_size=40)},
)


def apply(job: dict[str, Any], changes: list[Edit]) -> None:
    for path, value in changes:
        if not path:
            continue
        parent: Any = job
        for key in path[:-1]:
            if not isinstance(parent, dict) or not isinstance(parent.get(key), dict):
                parent = None
                break
            parent = parent[key]
        if not isinstance(parent, dict):
            continue
        if value is DELETE:
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = copy.deepcopy(value)


def secrets_in(job: Any) -> list[str]:
    """Credential values in a job (registered as canaries for the whole session)."""
    data = job.get("data") if isinstance(job, dict) else None
    creds = data.get("artifactCredentials") if isinstance(data, dict) else None
    found = [v for v in creds.values() if isinstance(v, str)] if isinstance(creds, dict) else []
    SCANNER.add_credentials(creds, "a fuzzed event")
    return [v for v in found if len(v) >= 8]


@fuzz(500)
@given(
    changes=edits(s.user_parameters(s.definitions), s.token_texts),
    creds=s.credentials,
    whole=st.none() | s.json_values,
)
def test_the_event_parser_accepts_or_refuses_without_echoing_values(
    changes: list[Edit], creds: dict[str, str], whole: Any
) -> None:
    FIGURES.example("event_parser")
    event: Any = load_event()
    job = event["CodePipeline.job"]
    job["data"]["artifactCredentials"] = creds
    apply(job, changes)
    if whole is not None:  # now and then, not an event at all
        event = {"CodePipeline.job": whole} if isinstance(whole, dict) else whole
        job = event.get("CodePipeline.job") if isinstance(event, dict) else None
    secrets = secrets_in(job)
    try:
        parsed = Job.from_event(event)
    except ValueError as exc:
        message = str(exc)
        assert message.startswith(("not a CodePipeline job event", "malformed CodePipeline"))
        assert not [secret for secret in secrets if secret in message]
        return
    shown = repr(parsed) + str(parsed) + parsed.model_dump_json()
    assert not [secret for secret in secrets if secret in shown]


# endregion
# region the definition language and durations


@fuzz(800)
@given(text=s.user_parameters(s.definitions))
def test_the_definition_language_answers_a_definition_or_a_definition_error(text: str) -> None:
    FIGURES.example("definition")
    try:
        definition = parse_definition(text)
    except DefinitionError as exc:
        assert exc.errors and all(isinstance(e, str) and ": " in e for e in exc.errors)
        return
    assert isinstance(definition, GateDefinition) and 1 <= len(definition.steps) <= 50


@fuzz(150)
@given(pair=s.short_durations() | s.iso_durations())
def test_durations_mean_what_they_say(pair: tuple[str, float]) -> None:
    FIGURES.example("duration")
    text, seconds = pair
    assert math.isclose(parse_duration(text), seconds, rel_tol=1e-9, abs_tol=1e-9)
    assert math.isclose(parse_duration(f" {text.lower()} "), seconds, rel_tol=1e-9, abs_tol=1e-9)


@fuzz(250)
@given(text=s.duration_texts)
def test_a_duration_is_finite_seconds_or_a_value_error_naming_it(text: str) -> None:
    FIGURES.example("duration")
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        assert repr(text) in str(exc)
        return
    assert math.isfinite(seconds) and seconds >= 0


@fuzz(100)
@given(seconds=st.integers(min_value=0, max_value=10**9))
def test_formatted_durations_read_back(seconds: int) -> None:
    FIGURES.example("duration")
    assert parse_duration(format_duration(seconds)) == seconds


# endregion
# region JMESPath fields


def compiles(expression: str) -> bool:
    try:
        jmespath.compile(expression)
    except JMESPathError:
        return False
    return True


@fuzz(300)
@given(expression=s.expressions, field=st.sampled_from(["until", "fail_if", "outputs"]))
def test_jmespath_fields_are_accepted_exactly_when_they_compile(
    expression: str, field: str
) -> None:
    FIGURES.example("jmespath")
    step: dict[str, Any] = {"name": "h", "http": {"url": "http://127.0.0.1:9/"}}
    definition: dict[str, Any] = {"steps": [step]}
    if field == "outputs":
        definition["outputs"] = {"Out": expression}
    else:
        step[field] = expression
    # an output naming a step the gate does not have (`steps.a.body`) refers to nothing
    unknown = (
        field == "outputs"
        and compiles(expression)
        and any(p[0] == "steps" and p[1:2] not in ((), ("h",)) for p in reads(expression))
    )
    try:
        parse_definition(json.dumps(definition))
    except DefinitionError as exc:
        assert unknown or not compiles(expression)
        where = "outputs.Out" if field == "outputs" else f"steps[0].{field}"
        assert any(e.startswith(where) for e in exc.errors), exc.errors
        return
    assert compiles(expression) and not unknown


@fuzz(200)
@given(
    until=s.expressions.filter(compiles),
    fail_if=s.expressions.filter(compiles),
    status=st.sampled_from([200, 204, 404, 500]),
    body=s.json_values,
)
def test_until_and_fail_if_over_any_response_never_escape_the_poll(
    until: str, fail_if: str, status: int, body: Any
) -> None:
    """Whatever the expressions and the response, the engine returns a state: still
    polling, done, or failed with a message naming the step."""
    FIGURES.example("jmespath")
    definition = parse_definition(
        json.dumps(
            {
                "steps": [
                    {
                        "name": "h",
                        "http": {"url": "http://127.0.0.1:9/"},
                        "until": until,
                        "fail_if": fail_if,
                    }
                ]
            }
        )
    )
    http = ScriptedHttp([json_response(status, json.dumps(body))])
    state = engine.start(definition, "run", 1000.0)
    after = engine.advance(
        definition, state, lambda: 1000.0, engine.Budget(lambda: 30.0, 1.0), Services(http=http)
    )
    if after.failure is not None:
        assert "'h'" in after.failure.message


# endregion
# region tokens


@fuzz(500)
@given(text=s.token_texts)
def test_a_token_decodes_or_is_refused_as_unknown(text: str) -> None:
    FIGURES.example("token")
    try:
        token = Token.decode(text)
    except UnknownTokenError as exc:
        assert str(exc).startswith("unknown continuation token")
        return
    assert token.run_id and token.job_id


@fuzz(100)
@given(
    run_id=st.text(min_size=1, max_size=200),
    nonce=st.none() | st.text(min_size=1, max_size=200),
    times=st.lists(st.floats(min_value=0, max_value=1e11), min_size=4, max_size=4),
    step_index=st.integers(0, 50),
    percent=st.integers(0, 100),
)
def test_tokens_read_back(
    run_id: str, nonce: str | None, times: list[float], step_index: int, percent: int
) -> None:
    FIGURES.example("token")
    started_at, deadline, due, checked_at = (round(t, 3) for t in times)
    token = Token(
        run_id=run_id,
        nonce=nonce,
        job_id=run_id,
        started_at=started_at,
        deadline=deadline,
        due=due,
        checked_at=checked_at,
        step_index=step_index,
        percent=percent,
    )
    assert Token.decode(token.encode()) == token


# endregion
# region the handler


@pytest.fixture
def itsm() -> Iterator[str]:
    with stub_server([(200, {"state": "approved", "id": "CHG42"})]) as server:
        yield server.url


@pytest.fixture
def fuzz_function(make_rig: Callable[..., Rig], monkeypatch: pytest.MonkeyPatch) -> Function:
    # Any AWS client a step might make goes to a closed loopback port, never outside.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    rig = make_rig(speed=1.0)
    function = Function(rig)
    function.app()
    return function


def handler_edits(itsm: str, scenario: str) -> st.SearchStrategy[list[Edit]]:
    """The edits of one scenario (see SCENARIOS), plus noise elsewhere in the event."""
    params, token = EVENT_PATHS[4], EVENT_PATHS[9]
    valid = st.tuples(st.just(params), s.valid_definitions(itsm + "/change").map(json.dumps))
    chosen: st.SearchStrategy[list[Edit]]
    if scenario == "valid gate":
        chosen = valid.map(lambda edit: [edit])
    elif scenario == "fuzzed definition":
        chosen = st.tuples(st.just(params), s.user_parameters(s.definitions)).map(lambda e: [e])
    elif scenario == "forged token":
        chosen = st.tuples(valid, st.tuples(st.just(token), s.decodable_tokens)).map(list)
    elif scenario == "garbled token":
        chosen = st.tuples(valid, st.tuples(st.just(token), s.token_texts)).map(list)
    else:
        chosen = edits(s.user_parameters(s.definitions), s.token_texts)
    # Other parts of the event, changed within their shapes (the last scenario breaks them).
    noise = st.lists(
        st.tuples(st.sampled_from(EVENT_PATHS[6:8]), st.lists(valid_artifacts, max_size=2))
        | st.tuples(st.just(EVENT_PATHS[8]), s.credentials | st.just(DELETE))
        | st.tuples(st.just(EVENT_PATHS[10]), st.just(DELETE)),
        max_size=2,
    )
    return st.builds(lambda first, rest: first + rest, chosen, noise)


SCENARIOS = ["valid gate", "fuzzed definition", "forged token", "garbled token", "broken event"]


def expected(event: dict[str, Any]) -> str:
    """What the answer must be: 'JobFailed', 'ConfigurationError', 'token' (refused as
    unknown, or an idle answer to a token with fresh hints), or 'run' (the gate runs)."""
    try:
        job = Job.from_event(event)
    except ValueError:
        return "JobFailed"
    try:
        parse_definition(job.user_parameters)
    except DefinitionError:
        return "ConfigurationError"
    if job.continuation_token is None:
        return "run"
    try:
        token = Token.decode(job.continuation_token)
    except UnknownTokenError:
        return "JobFailed"
    return "token" if token.nonce is not None else "run"


@fuzz(150)
@given(data=st.data())
def test_every_job_with_a_readable_id_gets_exactly_one_answer_of_the_right_type(
    fuzz_function: Function, itsm: str, data: st.DataObject
) -> None:
    FIGURES.example("handler")
    rig = fuzz_function.rig
    base = json.dumps({"steps": [{"name": "w", "wait": "1m"}]})
    job = rig.emulator.create_job({"FunctionName": "orchestrator", "UserParameters": base})
    event = copy.deepcopy(job.event)
    scenario = data.draw(st.sampled_from(SCENARIOS))
    apply(event["CodePipeline.job"], data.draw(handler_edits(itsm, scenario)))
    secrets_in(event["CodePipeline.job"])
    want = expected(event)
    event_label(f"{scenario}: expected {want}")
    before = len(rig.emulator.requests)
    outcome = fuzz_function(event, LambdaContext(30))  # raises: the test fails
    assert isinstance(outcome, dict)
    sent = rig.emulator.requests[before:]
    assert outcome["answered"] is True and len(sent) == 1 and job.job_id in sent[0]
    assert job.answer is not None and job.rejected == []
    params = job.answer["params"]
    failure = params.get("failureDetails")
    message = (failure or {}).get("message", "")
    assert not message.startswith("internal error"), message
    if want in ("JobFailed", "ConfigurationError"):
        assert failure is not None and failure["type"] == want, params
    elif want == "token":
        if failure is not None:
            assert message.startswith("unknown continuation token"), message
        else:
            assert "next check in" in params["executionDetails"]["summary"]
    else:
        assert failure is None or failure["type"] != "ConfigurationError", params
    assert not fuzz_function.escaped


# endregion
# region known bugs


@dataclass(frozen=True)
class Known:
    """A bug found by this suite and not fixed yet: what it is, a call showing it, and the
    exception it raises today (the xfail accepts only that one)."""

    reason: str
    call: Callable[[], object]
    raises: type[BaseException]
    allowed: tuple[type[Exception], ...] = (DefinitionError, UnknownTokenError, ValueError)


def _advance(raw: dict[str, Any]) -> RunState:
    definition = parse_definition(json.dumps(raw))
    http = ScriptedHttp([json_response(200, "{}")])
    state = engine.start(definition, "run", 1000.0)
    return engine.advance(
        definition, state, lambda: 1000.0, engine.Budget(lambda: 30.0, 1.0), Services(http=http)
    )


def _token(raw: bytes) -> Token:
    return Token.decode("v1." + s.b64(raw))


WAIT_1M = '{"name": "w", "wait": "1m"}'
HTTP = {"name": "h", "http": {"url": "http://127.0.0.1:9/"}}
KNOWN = {
    "definition-nesting": Known(
        "parse_definition: json.loads raises RecursionError on deeply nested UserParameters "
        "(well within CodePipeline's 1,000 characters)",
        lambda: parse_definition("[" * 999),
        RecursionError,
    ),
    "definition-infinite-timeout": Known(
        "a non-finite gate timeout (1e400, or 400 digits then 's') makes format_duration "
        "raise OverflowError while the validation error is written",
        lambda: parse_definition('{"steps": [' + WAIT_1M + '], "timeout": 1e400}'),
        OverflowError,
    ),
    "definition-nan-duration": Known(
        "steps/_base.py _duration accepts NaN (NaN <= 0 is false): the gate's timeout never "
        "passes, and its first tick fails on int(NaN) with 'internal error'",
        lambda: parse_definition('{"steps": [' + WAIT_1M + '], "timeout": NaN}'),
        AssertionError,
    ),
    "duration-overflow": Known(
        "parse_duration returns inf for a number too large for a float ('9' * 400 + 's')",
        lambda: parse_duration("9" * 400 + "s"),
        AssertionError,
    ),
    "token-infinite-number": Known(
        "Token.decode: int(inf) raises OverflowError, not UnknownTokenError",
        lambda: _token(b'{"r":"a","n":"b","j":"c","s":1,"x":1,"d":1,"c":1,"i":1e400,"p":1}'),
        OverflowError,
    ),
    "token-nesting": Known(
        "Token.decode: json.loads raises RecursionError on a deeply nested token",
        lambda: _token(b"[" * 1500),
        RecursionError,
    ),
    "outputs-runtime-error": Known(
        "engine._finish: an output that fails at run time (abs() of a string) escapes "
        "engine.advance: the job is answered 'internal error', the run stays RUNNING",
        lambda: _advance({"steps": [HTTP], "outputs": {"O": "abs(run.id)"}}),
        JMESPathError,
        allowed=(),
    ),
    "template-runtime-error": Known(
        "expressions._evaluate: a ${...} that fails at run time escapes engine._poll (which "
        "catches only TemplateError and ValidationError): 'internal error'",
        lambda: _advance(
            {"steps": [{"name": "h", "http": {"url": "http://127.0.0.1:9/${abs(run.id)}"}}]}
        ),
        JMESPathError,
        allowed=(),
    ),
}


@pytest.mark.parametrize(
    "case",
    [pytest.param(key, id=key) for key in KNOWN],
)
def test_known_bug(case: str) -> None:
    """The right behaviour: only the orchestrator's own errors, no NaN or infinity accepted,
    and a run failed (not an exception) when an expression fails at run time. Passes once
    the bug is fixed: then drop the case, and its exclusion in strategies.py."""
    bug = KNOWN[case]
    try:
        value = bug.call()
    except bug.allowed:
        return
    if isinstance(value, float):
        assert math.isfinite(value)
    if isinstance(value, GateDefinition):
        assert math.isfinite(value.timeout)
    if isinstance(value, RunState):
        assert value.status is RunStatus.FAILED


# endregion
