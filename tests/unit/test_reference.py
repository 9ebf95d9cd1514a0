"""Gates by reference: UserParameters' two forms, references, documents, params and args."""

from __future__ import annotations

import json

import pytest

from orchestrator.definition import GateDefinition
from orchestrator.exceptions import DefinitionError
from orchestrator.reference import (
    MAX_DEPTH,
    MAX_INLINE_CHARS,
    MAX_REFERENCED_BYTES,
    Fetched,
    Reference,
    check_inline_length,
    expand,
    expand_fetched,
    load_document,
    parse_ref,
    read_user_parameters,
)

TEMPLATE = {
    "params": {"service": {"required": True}, "stage": {"default": "prod"}},
    "steps": [
        {"name": "bake", "wait": "${args.bake}"},
        {
            "name": "health",
            "http": {"url": "https://${args.service}.example.com/${args.stage}/health"},
        },
    ],
    "outputs": {"Service": "args.service"},
}
TEMPLATE["params"]["bake"] = {"default": "10m"}  # type: ignore[index]


def errors_of(call: object) -> list[str]:
    assert callable(call)
    with pytest.raises(DefinitionError) as caught:
        call()
    return caught.value.errors


# region UserParameters


def test_inline_user_parameters_stay_a_definition() -> None:
    spec = read_user_parameters(json.dumps({"steps": [{"name": "a", "wait": "1m"}]}))
    assert isinstance(spec, GateDefinition) and spec.steps[0].name == "a"


def test_a_reference_is_read_with_its_args() -> None:
    spec = read_user_parameters(
        '{"gate": "SourceArtifact::gates/prod.yaml", "args": {"service": "checkout"}}'
    )
    assert isinstance(spec, Reference)
    assert (spec.ref.kind, spec.ref.artifact, spec.ref.path) == (
        "artifact",
        "SourceArtifact",
        "gates/prod.yaml",
    )
    assert spec.arg_map == {"service": "checkout"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"gate": "A::g.json", "steps": []}', "either 'steps' (inline) or 'gate'"),
        ('{"gate": "A::g.json", "arg": {}}', "UserParameters.arg: unknown field"),
        ('{"gate": "A::g.json", "args": ["x"]}', "args: expected an object of strings"),
        ('{"gate": "A::g.json", "args": {"n": 3}}', "args.n: must be a string (got int)"),
        ('{"gate": "nowhere"}', "gate: 'nowhere' is not a reference"),
        ('{"gate": 7}', "gate: expected a reference string"),
        ('{"gate": "A::../etc/passwd"}', "without '..'"),
        ('{"gate": "A B::g.json"}', "artifact names are 1 to 100"),
        ('{"gate": "s3://bucket"}', "is not s3://bucket/key"),
        ('{"gate": "s3://b/k?version=1"}', "is not s3://bucket/key"),
        ('{"gate": "s3://b/k?versionId="}', "empty or repeated versionId"),
        ('{"gate": "ssm:"}', "is not ssm:/parameter/name"),
    ],
)
def test_malformed_references_name_the_field(text: str, expected: str) -> None:
    assert any(expected in line for line in errors_of(lambda: read_user_parameters(text)))


def test_every_problem_of_a_reference_at_once() -> None:
    errors = errors_of(lambda: read_user_parameters('{"gate": "x", "args": {"a": 1}, "y": 2}'))
    assert len(errors) == 3


@pytest.mark.parametrize(
    "text",
    [
        '\ufeff{"steps": [{"name": "a", "wait": "1m"}]}',  # a BOM
        '{"steps": [{"name": "a", "wait": "1m"},]}',  # a trailing comma
        "steps:\n  - {name: a, wait: 1m}\n",  # YAML
        '{"gate": "A::g.json",}',
    ],
)
def test_user_parameters_are_strict_json(text: str) -> None:
    assert "not valid JSON" in errors_of(lambda: read_user_parameters(text))[0]


def test_s3_and_ssm_references() -> None:
    s3 = parse_ref("s3://my-gates/teams/prod.yaml?versionId=3HL4kqtJ")
    assert (s3.bucket, s3.key, s3.version_id, s3.file_name) == (
        "my-gates",
        "teams/prod.yaml",
        "3HL4kqtJ",
        "teams/prod.yaml",
    )
    assert parse_ref("s3://b/k.json").version_id is None
    assert parse_ref("ssm:/gates/prod").parameter == "/gates/prod"


def test_the_inline_limit_names_the_limit_the_length_and_the_way_out() -> None:
    check_inline_length("x" * MAX_INLINE_CHARS)
    (line,) = errors_of(lambda: check_inline_length("x" * 1234))
    assert "1,234 characters" in line and "limit of 1,000" in line
    assert '{"gate": "SourceArtifact::' in line and "s3://" in line and "ssm:" in line


# endregion
# region documents


def test_documents_are_json_or_safe_yaml() -> None:
    assert load_document(b'{"a": 1}', "g.json", "gate x") == {"a": 1}
    yaml_doc = load_document(b"a: 1\nwhen: 2026-12-24\n", "g.yaml", "gate x")
    assert yaml_doc == {"a": 1, "when": "2026-12-24"}  # dates stay strings
    assert load_document(b'\xef\xbb\xbf{"a": 1}', "g.json", "gate x") == {"a": 1}  # a BOM


@pytest.mark.parametrize(
    ("data", "name", "expected"),
    [
        (b"{", "g.json", "gate x: not valid JSON (Expecting property name"),
        (b'{"a": NaN}', "g.json", "NaN is not a number"),
        (b"a: [1\n", "g.yaml", "gate x: not valid YAML ("),
        (b"a: &x [1]\nb: *x\n", "g.yaml", "aliases (*name) are not allowed"),
        (b"!!python/object:os.system {}\n", "g.yaml", "not valid YAML"),
        (b"\xff\xfe", "g.yaml", "gate x: not UTF-8 text"),
        (b"[" * 200 + b"]" * 200, "g.json", "nested more than 64 levels deep"),
        (b"a: " + b"[" * 5000, "g.yaml", "gate x:"),
        (b" " * (MAX_REFERENCED_BYTES + 1), "g.json", "over the 262,144-byte limit"),
    ],
)
def test_bad_documents_say_why(data: bytes, name: str, expected: str) -> None:
    (line,) = errors_of(lambda: load_document(data, name, "gate x"))
    assert line.startswith("gate x") and expected in line


def test_nesting_up_to_the_limit_is_fine() -> None:
    data = b"[" * (MAX_DEPTH - 1) + b"{}" + b"]" * (MAX_DEPTH - 1)
    assert load_document(data, "g.json", "gate x") is not None


# endregion
# region params and args


def test_args_fill_every_string_and_defaults_apply() -> None:
    raw, args = expand(TEMPLATE, {"service": "checkout"}, "gate g")
    assert "params" not in raw
    assert raw["steps"][0]["wait"] == "10m"
    assert raw["steps"][1]["http"]["url"] == "https://checkout.example.com/prod/health"
    assert args == {"service": "checkout", "stage": "prod", "bake": "10m"}
    raw, _ = expand(TEMPLATE, {"service": "cart", "stage": "beta", "bake": "1h"}, "gate g")
    assert raw["steps"][0]["wait"] == "1h"
    assert raw["steps"][1]["http"]["url"] == "https://cart.example.com/beta/health"


def test_every_args_problem_at_once() -> None:
    document = {
        **TEMPLATE,
        "steps": [
            *TEMPLATE["steps"],
            {"name": "x", "wait": "${args.missing}"},
            {"name": "y", "wait": "1m", "timeout": "${args.other || '1h'}"},
            {"name": "z", "wait": "soon"},
        ],
        "outputs": {"A": "args.nothere"},
    }
    errors = errors_of(lambda: expand(document, {"servce": "typo", "stage": "${x}"}, "gate g"))
    assert errors == [
        "gate g: args.servce: unknown argument (the gate declares: bake, service, stage)",
        "gate g: args.stage: may not contain '${' (it would be evaluated)",
        "gate g: args.service: required argument missing",
        "gate g: steps[2].wait: ${args.missing} refers to an undeclared parameter",
        "gate g: steps[3].timeout: args.other refers to an undeclared parameter",
        "gate g: outputs.A: args.nothere refers to an undeclared parameter",
        "gate g: steps[4].wait: invalid duration 'soon' (use e.g. '30s', '10m', '1h30m', 'PT1H')",
    ]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ([], "params: expected an object"),
        ({"1x": {}}, "params.1x: invalid name"),
        ({"a": "x"}, "params.a: expected an object"),
        ({"a": {"default": 3}}, "params.a.default: must be a string"),
        ({"a": {"required": "yes"}}, "params.a.required: must be true or false"),
        ({"a": {"required": True, "default": "x"}}, "exclude each other"),
        ({"a": {"secret": True}}, "params.a.secret: unknown field"),
    ],
)
def test_bad_params_name_the_field(params: object, expected: str) -> None:
    document = {"params": params, "steps": [{"name": "a", "wait": "1m"}]}
    errors = errors_of(lambda: expand(document, {}, "gate g"))
    assert any(expected in line for line in errors), errors


def test_a_gate_without_params_takes_no_args() -> None:
    document = {"steps": [{"name": "a", "wait": "1m"}]}
    assert expand(document, {}, "g")[1] == {}
    assert errors_of(lambda: expand(document, {"a": "b"}, "g")) == [
        "g: args.a: unknown argument (the gate declares: none)"
    ]


def test_an_optional_param_without_default_is_empty() -> None:
    document = {"params": {"note": {"required": False}}, "steps": [{"name": "a", "wait": "1m"}]}
    assert expand(document, {}, "g")[1] == {"note": ""}


def test_expanding_a_fetched_document_digests_source_and_result() -> None:
    reference = read_user_parameters('{"gate": "S::g.json", "args": {"service": "a"}}')
    assert isinstance(reference, Reference)
    first = expand_fetched(reference, Fetched(json.dumps(TEMPLATE).encode(), "rev1"))
    again = expand_fetched(reference, Fetched(json.dumps(TEMPLATE, indent=2).encode(), "rev2"))
    assert first.key == again.key  # same definition, whatever the formatting
    assert first.sha256 != again.sha256  # but not the same source bytes
    assert len(first.key) == 64 and json.loads(first.document)["steps"][0]["wait"] == "10m"
    other = read_user_parameters('{"gate": "S::g.json", "args": {"service": "b"}}')
    assert isinstance(other, Reference)
    assert expand_fetched(other, Fetched(json.dumps(TEMPLATE).encode(), None)).key != first.key


# endregion
