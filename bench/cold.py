"""Cold start: a fresh interpreter importing the handler and answering its first job.

Each sample is a new `python -c` process (what a Lambda cold start does, less the runtime's
own bootstrap). It times `import orchestrator.handler` and then the first tick (settings,
clients, the run's creation, the answer) with `time.perf_counter`, and reports its peak
resident memory (`ru_maxrss`) after that tick. The baseline process imports boto3,
pynamodb and pydantic-settings alone, then makes the same first-tick calls with raw boto3
(GetItem, GetJobDetails, the conditional PutItem linking the execution's action to the run,
conditional PutItem of the same item, PutJobSuccessResult with the same token),
building its clients with the collector paused and then frozen, as the handler's cold start
builds its own.
Handler and baseline processes alternate; medians of N each.

`-X importtime` of one more handler process names what the handler imports that the
baseline does not, with its own (self) and cumulative milliseconds; three more time the
pydantic model classes the handler's import and first tick build (pydantic-core compiles
each one's validator and serializer when its class is created).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bench.overhead import Recording
    from bench.rig import Stack

# The child programs. Nothing is imported before the timed import but sys and time.
HANDLER_CHILD = """
import sys, time
t0 = time.perf_counter()
import orchestrator.handler as h
t1 = time.perf_counter()
import json, resource
cfg = json.loads(sys.stdin.read())
class Context:
    aws_request_id = "cold-start"
    def get_remaining_time_in_millis(self):
        return 300000
t2 = time.perf_counter()
result = h.lambda_handler(cfg["event"], Context())
t3 = time.perf_counter()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with open(cfg["out"], "w") as f:
    json.dump({"import": t1 - t0, "tick": t3 - t2, "maxrss_kb": rss, "result": result,
               "modules": sorted(sys.modules)}, f)
"""

BASELINE_CHILD = """
import sys, time
t0 = time.perf_counter()
import boto3, pynamodb.models, pynamodb.attributes, pydantic_settings
t1 = time.perf_counter()
import json, resource
cfg = json.loads(sys.stdin.read())
t2 = time.perf_counter()
from botocore.config import Config
config = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=3,
                read_timeout=10)
import gc
gc.disable()  # as the handler's cold start does: clients built, then frozen
dynamodb = boto3.client("dynamodb", config=config)
codepipeline = boto3.client("codepipeline", config=config)
gc.freeze()
gc.enable()
key = {"run_id": {"S": cfg["run_id"]}}
dynamodb.get_item(TableName=cfg["table"], Key=key, ConsistentRead=True)
codepipeline.get_job_details(jobId=cfg["job_id"])  # which execution's action (resume on retry)
link = {"run_id": {"S": "execution#" + cfg["run_id"]}, "run": key["run_id"],
        "expires_at": cfg["item"]["expires_at"]}
dynamodb.put_item(TableName=cfg["table"], Item=link,
                  ConditionExpression="attribute_not_exists(run_id)")
dynamodb.put_item(TableName=cfg["table"], Item={**cfg["item"], **key},
                  ConditionExpression="attribute_not_exists(run_id)")
codepipeline.put_job_success_result(**{**cfg["answer"], "jobId": cfg["job_id"]})
t3 = time.perf_counter()
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with open(cfg["out"], "w") as f:
    json.dump({"import": t1 - t0, "tick": t3 - t2, "maxrss_kb": rss,
               "modules": sorted(sys.modules)}, f)
"""


def _child_env(stack: Stack, table: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "ORCHESTRATOR_TABLE_NAME": table,
            "AWS_ENDPOINT_URL_DYNAMODB": stack.dynamodb_url,
            "AWS_ENDPOINT_URL_CODEPIPELINE": stack.codepipeline_url,
        }
    )
    env.pop("PYTHONPROFILEIMPORTTIME", None)
    # The dropped first pair writes the bytecode of modules edited since it was last written;
    # with this set (as it is on some machines) they would be compiled in every sample.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _run_child(
    code: str, config: dict[str, Any], env: dict[str, str], importtime: bool = False
) -> tuple[dict[str, Any], str]:
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "result.json"
        command = [sys.executable, *(["-X", "importtime"] if importtime else []), "-c", code]
        done = subprocess.run(
            command,
            input=json.dumps({**config, "out": str(out)}),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=Path(__file__).resolve().parent.parent,
            timeout=120,
            check=False,
        )
        if done.returncode != 0 or not out.exists():
            raise RuntimeError(f"cold-start child failed: {done.stderr[-2000:]}")
        result: dict[str, Any] = json.loads(out.read_text())
        return result, done.stderr


MODELS_CHILD = """
import sys, time, json
import boto3, pynamodb.models, pynamodb.attributes, pydantic_settings
from pydantic._internal import _model_construction
cfg = json.loads(sys.stdin.read())
built = []
new = _model_construction.ModelMetaclass.__new__
def timed(mcs, name, bases, namespace, **kwargs):
    started = time.perf_counter()
    cls = new(mcs, name, bases, namespace, **kwargs)
    if namespace.get("__module__", "").startswith("orchestrator"):
        built.append(time.perf_counter() - started)
    return cls
_model_construction.ModelMetaclass.__new__ = timed
t0 = time.perf_counter()
import orchestrator.handler as h
class Context:
    aws_request_id = "cold-start"
    def get_remaining_time_in_millis(self):
        return 300000
h.lambda_handler(cfg["event"], Context())
t1 = time.perf_counter()
with open(cfg["out"], "w") as f:
    json.dump({"models": len(built), "models_s": sum(built), "total_s": t1 - t0}, f)
"""

CLIENTS_CHILD = """
import sys, time, json
import boto3
from pynamodb.connection.base import Connection
cfg = json.loads(sys.stdin.read())
boto3.client("codepipeline")  # the handler's first client, from boto3's default session
t0 = time.perf_counter()
boto3.client("dynamodb")
t1 = time.perf_counter()
Connection(region="us-east-1").client
t2 = time.perf_counter()
shared = Connection(region="us-east-1")  # as store.dynamodb.bind_model(loader_from=...)
shared.session.register_component(
    "data_loader", boto3.DEFAULT_SESSION._session.get_component("data_loader"))
shared.client
t3 = time.perf_counter()
with open(cfg["out"], "w") as f:
    json.dump({"boto3_same_session": t1 - t0, "pynamodb": t2 - t1,
               "pynamodb_shared_loader": t3 - t2}, f)
"""


def _pairs(
    stack: Stack, recording: Recording, table: str, env: dict[str, str], runs: int
) -> tuple[dict[str, list[dict[str, Any]]], dict[str, set[str]]]:
    """`runs` handler and baseline processes, alternating (the first pair is dropped: it
    warms the page cache and writes bytecode)."""
    import uuid

    from bench.rig import GATE

    samples: dict[str, list[dict[str, Any]]] = {"handler": [], "baseline": []}
    modules: dict[str, set[str]] = {"handler": set(), "baseline": set()}
    for index in range(runs + 1):
        pair = ["handler", "baseline"] if index % 2 == 0 else ["baseline", "handler"]
        for who in pair:
            job = stack.job(definition=GATE)
            if who == "handler":
                result, _ = _run_child(HANDLER_CHILD, {"event": job.event}, env)
                if str(result["result"].get("answer")).upper() != "IN_PROGRESS":
                    raise RuntimeError(f"the first tick did not go well: {result['result']}")
            else:
                config = {
                    "table": table,
                    "run_id": f"cold-{uuid.uuid4()}",
                    "item": recording.items[1],
                    "answer": recording.answers[("first", 0)],
                    "job_id": job.job_id,
                }
                result, _ = _run_child(BASELINE_CHILD, config, env)
            if job.answer is None:
                raise RuntimeError("the cold-start child did not answer its job")
            modules[who] = set(result.pop("modules"))
            if index > 0:
                samples[who].append(result)
    return samples, modules


def _medians(results: list[dict[str, Any]]) -> dict[str, float]:
    return {
        "import_ms": round(statistics.median(r["import"] for r in results) * 1000, 1),
        "first_tick_ms": round(statistics.median(r["tick"] for r in results) * 1000, 1),
        "cold_ms": round(statistics.median(r["import"] + r["tick"] for r in results) * 1000, 1),
        "maxrss_mb": round(statistics.median(r["maxrss_kb"] for r in results) / 1024, 1),
    }


def measure(
    stack: Stack, recording: Recording, table: str, runs: int = 9, unbytecoded_runs: int = 3
) -> dict[str, Any]:
    """Medians of `runs` handler and baseline processes; -X importtime; the same without
    bytecode caches (how the Lambda package would run without the bytecode the build
    compiles into it: /var/task is read-only, so every cold start would compile every
    module)."""
    from bench.rig import GATE

    env = _child_env(stack, table)
    samples, modules = _pairs(stack, recording, table, env, runs)
    summary: dict[str, Any] = {"runs": runs}
    for who, results in samples.items():
        summary[who] = {**_medians(results), "modules": len(modules[who])}
    h, b = summary["handler"], summary["baseline"]
    summary["ratios"] = {
        "import": round(h["import_ms"] / b["import_ms"], 3),
        "first_tick": round(h["first_tick_ms"] / b["first_tick_ms"], 3),
        "cold": round(h["cold_ms"] / b["cold_ms"], 3),
        "maxrss": round(h["maxrss_mb"] / b["maxrss_mb"], 3),
    }
    job = stack.job(definition=GATE)
    _, trace = _run_child(HANDLER_CHILD, {"event": job.event}, env, importtime=True)
    summary["extra_imports"] = extra_imports(trace, modules["handler"] - modules["baseline"])
    built = [
        _run_child(MODELS_CHILD, {"event": stack.job(definition=GATE).event}, env)[0]
        for _ in range(3)
    ]
    summary["models"] = {
        "count": built[0]["models"],
        "build_ms": round(statistics.median(b["models_s"] for b in built) * 1000, 1),
        "import_and_tick_ms": round(statistics.median(b["total_s"] for b in built) * 1000, 1),
    }
    clients = [_run_child(CLIENTS_CHILD, {}, env)[0] for _ in range(3)]
    summary["clients"] = {
        "boto3_same_session_ms": round(
            statistics.median(c["boto3_same_session"] for c in clients) * 1000, 1
        ),
        "pynamodb_ms": round(statistics.median(c["pynamodb"] for c in clients) * 1000, 1),
        "pynamodb_shared_loader_ms": round(
            statistics.median(c["pynamodb_shared_loader"] for c in clients) * 1000, 1
        ),
    }
    if unbytecoded_runs:
        with tempfile.TemporaryDirectory() as empty:
            bare = {**env, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPYCACHEPREFIX": empty}
            raw, _ = _pairs(stack, recording, table, bare, unbytecoded_runs)
        hb, bb = _medians(raw["handler"]), _medians(raw["baseline"])
        summary["no_bytecode"] = {
            "runs": unbytecoded_runs,
            "handler": hb,
            "baseline": bb,
            "ratio": round(hb["cold_ms"] / bb["cold_ms"], 3),
        }
    return summary


def parse_importtime(trace: str) -> list[tuple[str, float, float, int]]:
    """`-X importtime` lines -> (module, self ms, cumulative ms, nesting depth), in the
    order printed (a module's imports come before it)."""
    found = []
    for line in trace.splitlines():
        if not line.startswith("import time:") or "[us]" in line:
            continue
        head, cumulative, name = line.split("|", 2)
        self_us = head.split(":", 1)[1]
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
        found.append((name.strip(), int(self_us) / 1000, int(cumulative) / 1000, depth))
    return found


def extra_imports(
    trace: str, extra: set[str], used_steps: tuple[str, ...] = ("wait",)
) -> dict[str, Any]:
    """What the handler process imported beyond the baseline, heaviest (own time) first;
    and the step-kind modules a gate of `used_steps` never needs."""
    own: dict[str, float] = {}
    for name, self_ms, _, _ in parse_importtime(trace):
        own[name] = own.get(name, 0.0) + self_ms
    heaviest = sorted(((n, own.get(n, 0.0)) for n in extra), key=lambda kv: kv[1], reverse=True)
    unused = {
        name: round(ms, 2)
        for name, ms in heaviest
        if name.startswith("orchestrator.steps.")
        and not name.rsplit(".", 1)[1].startswith("_")
        and name.rsplit(".", 1)[1] not in used_steps
    }
    return {
        "modules": len(extra),
        "self_ms_total": round(sum(ms for _, ms in heaviest), 1),
        "heaviest": [{"module": n, "self_ms": round(ms, 2)} for n, ms in heaviest[:15]],
        "unused_steps": unused,
        "unused_steps_ms": round(sum(unused.values()), 1),
    }
