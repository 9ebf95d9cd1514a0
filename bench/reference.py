"""Gates by reference: calls and bytes per tick, inline against referenced, on the wire.

One run of the bench ticks, through the production handler, an inline gate (five 5-minute
waits in UserParameters, under CodePipeline's 1,000 characters) and the same five waits
referenced from a file in an input artifact,

    {"gate": "SourceArtifact::gates/prod.json", "args": {"service": "checkout"}}

at two sizes of definition (~5 KB and ~100 KB). The referenced files grow only by long
`outputs` expressions (each evaluates to 'ok'), never by steps: a run's state grows per step,
and the point is what the *definition's* size costs. The artifact is a zip in moto's S3; the
job's artifactCredentials are the emulator's random keys (moto does not check them).

What is counted, and where:

    handler ──► counting proxy ──► DynamoDB Local   operation, request body bytes, and the
                                                    ConsumedCapacity the response reports
                                                    (pynamodb asks for TOTAL on every call)
            ──► counting proxy ──► moto (S3)        one record per GET: the source fetches
            ──► CodePipeline emulator               its request log

Each gate runs `runs` times through every kind of tick (`bench.rig.walk`). In its last run
the app is rebuilt (`handler.use(None)`, then a new `build_app`, as a cold Lambda process
would) just before the idle tick of step 2 and again before the advancing tick of step 3:
the cold idle and cold advancing ticks. Item sizes are read afterwards straight from
DynamoDB Local (not through the proxy) and sized as DynamoDB sizes items.
"""

from __future__ import annotations

import io
import json
import logging
import os
import statistics
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import boto3

from bench.calls import describe
from bench.cost import request_units
from bench.overhead import dynamodb_item_size
from bench.proxy import CountingProxy, Record
from bench.rig import REGION, Stack, boto_config, gate, tick, walk
from orchestrator import handler
from orchestrator.store.dynamodb import DEFINITION_PREFIX

if TYPE_CHECKING:
    from orchestrator.local.emulator import JobRecord

STEPS = 5
SIZES = (("5 KB", 5_000), ("100 KB", 100_000))
"""Referenced gates: label, characters of the file (approximately)."""
ARTIFACT = "SourceArtifact"
PATH = "gates/prod.json"
ARGS = {"service": "checkout"}
REFERENCE = json.dumps({"gate": f"{ARTIFACT}::{PATH}", "args": ARGS})
BUCKET = "bench-artifacts"
KINDS = ("first", "advance", "idle", "stale", "last", "cold idle", "cold advance")
COLD = {("idle", 2): "cold idle", ("advance", 3): "cold advance"}
"""(kind, step) of the last run's ticks that a freshly built app takes, and their names."""
LABELS = {
    "first": "first tick",
    "advance": "advancing",
    "idle": "idle, fresh hints",
    "stale": "idle, stale hints",
    "last": "last tick",
    "cold idle": "cold process, idle",
    "cold advance": "cold process, advancing",
}
WRITES = ("PutItem", "UpdateItem")
_NOTE = (
    "Promote only after the canary cell has baked for the full window with error rates, "
    "p99 latency and saturation within the bands of the baseline; page the owning team "
    "before rolling back, attach the dashboards to the change record, and never skip the "
    "soak on a Friday afternoon or during a freeze announced in the release calendar; "
)
"""Filler for the long expressions: no quote, and no `args.`, `pipeline.` or `artifacts.`
(which would make the tick read run context)."""


# region the gates


def referenced_gate(target_chars: int) -> tuple[str, int]:
    """A referenced gate file of about `target_chars` (JSON, indented as people write it):
    the inline gate's steps, a declared parameter, and long `outputs` expressions.
    Returns the text and the number of long expressions."""
    steps = json.loads(gate(STEPS))["steps"]

    def document(notes: int, note_chars: int) -> str:
        outputs = {"RunId": "run.id", "Service": "args.service"}
        text = (_NOTE * (note_chars // len(_NOTE) + 1))[:note_chars].rstrip()
        for n in range(notes):
            outputs[f"Check{n + 1:03d}"] = f"'{text}' && 'ok'"
        body = {
            "params": {"service": {"required": True, "description": "the service released"}},
            "steps": steps,
            "outputs": outputs,
        }
        return json.dumps(body, indent=2) + "\n"

    base = len(document(0, 0))
    notes = max(1, -(-(target_chars - base) // 2_000))  # expressions of about 2,000 chars
    per_note = len(document(1, 0)) - base  # what a note costs besides its text
    note_chars = max(10, (target_chars - base) // notes - per_note)
    return document(notes, note_chars), notes


def artifact_zip(text: str) -> bytes:
    """The input artifact: a zip holding the gate file (as a source action would make it)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(PATH, text)
    return buffer.getvalue()


@dataclass
class Variant:
    """One gate the bench ticks: inline, or referenced at one size; what its ticks did."""

    name: str
    user_parameters: str
    file_text: str | None = None
    notes: int = 0
    key: str = ""
    zip_bytes: int = 0
    seen: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    items: dict[str, list[int]] = field(default_factory=dict)
    tokens: list[int] = field(default_factory=list)
    pinned: list[str] = field(default_factory=list)

    @property
    def inline(self) -> bool:
        return self.file_text is None

    def input_artifacts(self) -> list[dict[str, Any]] | None:
        if self.inline:
            return None
        s3 = {"bucketName": BUCKET, "objectKey": self.key}
        location = {"type": "S3", "s3Location": s3}
        return [{"name": ARTIFACT, "revision": "bench", "location": location}]


# endregion
# region measuring


class _Moto:
    """moto's server (S3) on a free port, in this process (its own threads)."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        from orchestrator.local.dynamodb_local import free_port

        self.port = free_port()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.url = f"http://127.0.0.1:{self.port}"
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request

    def __enter__(self) -> _Moto:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()


class _S3Endpoint:
    """AWS_ENDPOINT_URL_S3 set for the handler's clients while measuring, then removed."""

    def __init__(self, url: str) -> None:
        self.url = url

    def __enter__(self) -> _S3Endpoint:
        os.environ["AWS_ENDPOINT_URL_S3"] = self.url
        return self

    def __exit__(self, *exc: object) -> None:
        os.environ.pop("AWS_ENDPOINT_URL_S3", None)


def _variants() -> list[Variant]:
    found = [Variant("inline", gate(STEPS))]
    for label, chars in SIZES:
        text, notes = referenced_gate(chars)
        found.append(
            Variant(
                f"referenced, {label}",
                REFERENCE,
                file_text=text,
                notes=notes,
                key=f"artifacts/gate-{chars}.zip",
            )
        )
    return found


def measure(stack: Stack, runs: int = 2) -> dict[str, Any]:
    """Tick each gate `runs` times through every kind of tick; count calls and bytes."""
    variants = _variants()
    with (
        _Moto() as moto,
        CountingProxy(stack.dynamodb_url) as dynamodb,
        CountingProxy(moto.url) as s3,
        _S3Endpoint(s3.url),
    ):
        admin = boto3.client("s3", endpoint_url=moto.url, region_name=REGION, config=boto_config())
        admin.create_bucket(Bucket=BUCKET)
        for variant in variants:
            if variant.file_text is not None:
                data = artifact_zip(variant.file_text)
                admin.put_object(Bucket=BUCKET, Key=variant.key, Body=data)
                variant.zip_bytes = len(data)
        table = stack.new_table()
        emulator = stack.fresh_emulator()
        stack.install_handler(table, dynamodb_url=dynamodb.url)
        for variant in variants:
            variant.seen = {kind: [] for kind in KINDS}
            for run in range(runs):
                _run(stack, table, dynamodb, s3, variant, cold=run == runs - 1)
        if emulator.faults_injected or any(job.rejected for job in emulator.jobs):
            raise RuntimeError("the emulator refused an answer")
        handler.use(None)  # its clients point at proxies about to stop
    return {
        "runs": runs,
        "steps": STEPS,
        "reference": REFERENCE,
        "gates": [_summary(variant) for variant in variants],
        "compared": _compare(variants),
    }


def _run(
    stack: Stack,
    table: str,
    dynamodb: CountingProxy,
    s3: CountingProxy,
    variant: Variant,
    cold: bool,
) -> None:
    emulator = stack.emulator
    assert emulator is not None
    run_ids: list[str] = []

    def on_tick(kind: str, step: int, job: JobRecord) -> None:
        if kind == "first":
            run_ids.append(job.job_id)
        dynamodb.mark()
        s3.mark()
        before = len(emulator.requests)
        name = COLD.get((kind, step)) if cold else None
        if name is not None:
            stack.install_handler(table, dynamodb_url=dynamodb.url)  # a cold process's app
        tick(job)
        variant.seen[name or kind].append(
            _sample(dynamodb.window(), s3.window(), len(emulator.requests) - before)
        )
        if kind == "advance" and step == 2:
            variant.items.setdefault("run_after_advance", []).append(
                dynamodb_item_size(stack.item(table, run_ids[0]))
            )
            token = (job.answer or {}).get("params", {}).get("continuationToken", "")
            variant.tokens.append(len(token))

    walk(stack, STEPS, on_tick, variant.user_parameters, variant.input_artifacts())
    run = stack.item(table, run_ids[0])
    variant.items.setdefault("run_at_end", []).append(dynamodb_item_size(run))
    if "pin" in run:
        variant.items.setdefault("pin_attribute", []).append(
            dynamodb_item_size({"pin": run["pin"]})
        )
        key = json.loads(run["pin"]["S"])["definition"]
        stored = stack.item(table, DEFINITION_PREFIX + key)
        variant.items.setdefault("definition", []).append(dynamodb_item_size(stored))
        variant.pinned.append(stored["definition"]["S"])


def _sample(records: list[Record], fetches: list[Record], codepipeline: int) -> dict[str, Any]:
    """One tick: DynamoDB operations in order with their bytes and units; S3 GETs."""
    for record in (*records, *fetches):
        if record.status != 200:
            raise RuntimeError(f"HTTP {record.status} on {record.operation}")
    return {
        "operations": [r.operation for r in records],
        "request_bytes": [r.request_bytes for r in records],
        "units": [r.capacity_units for r in records],
        "s3_gets": sum(1 for r in fetches if r.operation.startswith("GET ")),
        "s3_bytes": sum(r.response_bytes for r in fetches),
        "s3_other": sorted({r.operation for r in fetches if not r.operation.startswith("GET ")}),
        "codepipeline": codepipeline,
    }


def _writes(sample: dict[str, Any]) -> list[tuple[str, int, float | None]]:
    """(operation, request body bytes, capacity units) of each write, in the order sent."""
    return [
        (op, size, units)
        for op, size, units in zip(
            sample["operations"], sample["request_bytes"], sample["units"], strict=True
        )
        if op in WRITES
    ]


def _span(values: list[int]) -> str:
    """'2,595' or '2,595-2,763' (every value the same, or their range)."""
    low, high = min(values), max(values)
    return f"{low:,}" if low == high else f"{low:,}-{high:,}"


def _median(values: list[int] | list[float]) -> float:
    return float(statistics.median(values)) if values else 0.0


def _units(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return _median(known) if known else None


def _kind(samples: list[dict[str, Any]]) -> dict[str, Any]:
    counts = [Counter(s["operations"]) for s in samples]
    operations = sorted({op for c in counts for op in c})
    measured = {op: _span([c[op] for c in counts]) for op in operations}
    measured["CodePipeline"] = _span([s["codepipeline"] for s in samples])
    writes = [_writes(s) for s in samples]
    width = min(len(w) for w in writes)  # a referenced first tick: definition, then run
    reads = [
        sum(u or 0.0 for op, u in zip(s["operations"], s["units"], strict=True) if op == "GetItem")
        for s in samples
    ]
    return {
        "ticks": len(samples),
        "measured": measured,
        "s3_gets": _span([s["s3_gets"] for s in samples]),
        "s3_bytes": round(_median([s["s3_bytes"] for s in samples])),
        "s3_other": sorted({op for s in samples for op in s["s3_other"]}),
        "write_bytes": [round(_median([w[i][1] for w in writes])) for i in range(width)],
        "write_bytes_span": [_span([w[i][1] for w in writes]) for i in range(width)],
        "write_units": [_units([w[i][2] for w in writes]) for i in range(width)],
        "read_units": _median(reads),
    }


def _summary(variant: Variant) -> dict[str, Any]:
    sizes = {name: round(_median(values)) for name, values in variant.items.items()}
    return {
        "gate": variant.name,
        "inline": variant.inline,
        "user_parameters_chars": len(variant.user_parameters),
        "file_chars": len(variant.file_text) if variant.file_text is not None else None,
        "definition_chars": (
            len(variant.pinned[0]) if variant.pinned else len(variant.user_parameters)
        ),
        "long_expressions": variant.notes,
        "zip_bytes": variant.zip_bytes or None,
        "item_bytes": sizes,
        "modeled_units": request_units(sizes.get("run_after_advance", 0)),
        "token_chars": round(_median(variant.tokens)) if variant.tokens else None,
        "ticks": {kind: _kind(samples) for kind, samples in variant.seen.items() if samples},
    }


def _compare(variants: list[Variant]) -> list[dict[str, Any]]:
    """Per referenced gate and kind of tick: DynamoDB calls and S3 GETs beyond the inline
    gate's same tick (`stable`: every tick of that kind made the same calls)."""
    inline = {kind: samples[0] for kind, samples in variants[0].seen.items() if samples}
    found = []
    for variant in variants[1:]:
        for kind, samples in variant.seen.items():
            if not samples or kind not in inline:
                continue
            sample = samples[0]
            extra = Counter(sample["operations"])
            extra.subtract(Counter(inline[kind]["operations"]))
            found.append(
                {
                    "gate": variant.name,
                    "kind": kind,
                    "extra": {op: n for op, n in sorted(extra.items()) if n},
                    "s3_gets": sample["s3_gets"] - inline[kind]["s3_gets"],
                    "stable": all(
                        Counter(s["operations"]) == Counter(sample["operations"])
                        and s["s3_gets"] == sample["s3_gets"]
                        for s in samples
                    ),
                }
            )
    return found


# endregion
# region rendering (README)


def extra_cell(extra: dict[str, int], s3_gets: int) -> str:
    """'= inline', or what this tick made beyond the inline gate's same tick."""
    parts = [f"{'+' if n > 0 else ''}{n} {op}" for op, n in extra.items()]
    if s3_gets:
        parts.append(f"+{s3_gets} S3 GET")
    return "inline " + ", ".join(parts) if parts else "= inline"


EXPECTED = {"first": ({"PutItem": 1}, 1), "cold idle": ({"GetItem": 1}, 0)}
EXPECTED["cold advance"] = ({"GetItem": 1}, 0)
"""Beyond the inline gate's same tick (DynamoDB calls, S3 GETs); any other kind: nothing."""


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Met or missed: a referenced gate makes the inline gate's calls but on its first tick
    (the definition's PutItem, the fetch) and on a cold process (the definition's GetItem);
    its advancing tick writes the same whatever the definition's size."""
    compared = result["compared"]
    calls_met = all(
        (row["extra"], row["s3_gets"]) == EXPECTED.get(row["kind"], ({}, 0)) and row["stable"]
        for row in compared
    )
    beyond: list[str] = []
    for kind in KINDS:
        cells = {extra_cell(r["extra"], r["s3_gets"]) for r in compared if r["kind"] == kind}
        beyond += [f"{LABELS[kind]}: {cell}" for cell in sorted(cells) if cell != "= inline"]
    gates = result["gates"]
    referenced = [g for g in gates if not g["inline"]]
    advancing = [g["ticks"]["advance"] for g in referenced]
    smallest = min(a["write_bytes"][0] for a in advancing)
    largest = max(a["write_bytes"][0] for a in advancing)
    same_units = len({tuple(a["write_units"]) for a in advancing}) == 1
    return [
        {
            "target": "referenced gates: the inline gate's DynamoDB calls on every tick but "
            "the first and a cold process's",
            "met": calls_met,
            "value": "; ".join(beyond) + "; every other tick = inline",
        },
        {
            "target": f"advancing tick's write the same from {referenced[0]['definition_chars']:,}"
            f" to {referenced[-1]['definition_chars']:,} characters of definition",
            "met": same_units and largest - smallest <= 0.01 * smallest,
            "value": "; ".join(
                f"{g['gate']}: {_fmt_units(g['ticks']['advance']['write_units'][0])} WCU, "
                f"{g['ticks']['advance']['write_bytes'][0]:,} B"
                for g in gates
            ),
        },
    ]


def _extra(compared: list[dict[str, Any]], name: str, kind: str) -> tuple[dict[str, int], int]:
    for row in compared:
        if row["gate"] == name and row["kind"] == kind:
            extra: dict[str, int] = row["extra"]
            return extra, int(row["s3_gets"])
    return {}, 0


def _fmt_units(units: float | None) -> str:
    return "?" if units is None else f"{units:g}"


def markdown(result: dict[str, Any]) -> list[str]:
    """The README part: calls per tick against the inline gate's, then what they write."""
    gates = result["gates"]
    kinds = [k for k in KINDS if all(k in g["ticks"] for g in gates)]
    codepipeline = sorted(
        {g["ticks"][k]["measured"]["CodePipeline"] for g in gates for k in g["ticks"]}
    )
    out = [
        "",
        f"**Gates by reference**: {result['runs']} runs each of an inline gate and of the "
        f"same {result['steps']} waits referenced by `UserParameters` "
        f"`{result['reference']}` (a zip in moto's S3), grown by long `outputs` expressions, "
        "not by steps. DynamoDB calls per tick on the wire, a referenced gate's against the "
        "inline gate's same tick; S3 GETs through a second proxy; a cold process is a "
        "freshly built app:",
        "",
        "| gate | definition | " + " | ".join(LABELS[k] for k in kinds) + " |",
        "| --- | --- | " + " | ".join("---" for _ in kinds) + " |",
    ]
    for g in gates:
        if g["inline"]:
            where = f"{g['definition_chars']:,} chars in UserParameters"
            cells = [describe(g["ticks"][k]["measured"]) for k in kinds]
        else:
            where = (
                f"{g['file_chars']:,} chars in `{PATH}` ({g['long_expressions']} long "
                f"expressions; {g['definition_chars']:,} pinned)"
            )
            cells = []
            for k in kinds:
                delta = extra_cell(*_extra(result["compared"], g["gate"], k))
                measured = describe(g["ticks"][k]["measured"])
                cells.append(delta if delta == "= inline" else f"{measured} ({delta})")
        out.append(f"| {g['gate']} | {where} | " + " | ".join(cells) + " |")
    out += [
        "",
        f"Every tick made {' or '.join(codepipeline)} CodePipeline call. What the ticks wrote "
        "and read: request bodies on the wire (advancing ticks of steps 1 to "
        f"{result['steps'] - 1}: the state grows by a result per step), capacity units as "
        "DynamoDB Local reports them (`ReturnConsumedCapacity` TOTAL, which pynamodb asks "
        "for), item sizes as DynamoDB counts them:",
        "",
        "| gate | advancing: UpdateItem | WCU | run item | first tick: PutItem (definition + "
        "run) | WCU | cold process, idle: RCU | last tick: UpdateItem | WCU |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for g in gates:
        adv, first, last = g["ticks"]["advance"], g["ticks"]["first"], g["ticks"]["last"]
        cold = g["ticks"].get("cold idle", {}).get("read_units")
        out.append(
            f"| {g['gate']} | {_bytes(adv)} | {_all_units(adv)} | "
            f"{g['item_bytes'].get('run_after_advance', 0):,} B | {_bytes(first)} | "
            f"{_all_units(first)} | {_fmt_units(cold) if cold else 'none'} | "
            f"{_bytes(last)} | {_all_units(last)} |"
        )
    inline, ref = gates[0], gates[-1]
    run_extra = ref["item_bytes"]["run_after_advance"] - inline["item_bytes"]["run_after_advance"]
    modeled = ", ".join(f"{g['modeled_units']['update_wru']} ({g['gate']})" for g in gates)
    fetched = ", ".join(
        f"{g['ticks']['first']['s3_bytes']:,} B ({g['gate']})" for g in gates if not g["inline"]
    )
    pin = ref["item_bytes"].get("pin_attribute", 0)
    out += [
        "",
        f"A referenced run's item is {run_extra:,} B larger than the inline gate's, whatever "
        f"the definition's size: its `pin` attribute ({pin:,} B: source, version, sha256, "
        "key), the args in its state, and the key in the token of its stored answer "
        f"({ref['token_chars']} characters against {inline['token_chars']}). An UpdateItem is "
        "billed on the whole item, so by AWS's rule (`bench/cost.py`: 1 WRU per KB; an "
        f"advancing tick writes no index) an advancing tick costs {modeled} WRU. The definition "
        f"item ({ref['item_bytes'].get('definition', 0):,} B for {ref['gate']}) is written on "
        "a run's first tick and read only by a cold process; the last answer carries every "
        "output's value. The one source fetch per run (the zip, deflated; the long "
        f"expressions repeat): {fetched}.",
    ]
    return out


def _bytes(kind: dict[str, Any]) -> str:
    return " + ".join(f"{span} B" for span in kind["write_bytes_span"]) or "none"


def _all_units(kind: dict[str, Any]) -> str:
    return " + ".join(_fmt_units(u) for u in kind["write_units"]) or "none"


# endregion
