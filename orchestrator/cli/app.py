"""`orchestrator`: rehearse gates locally and operate them once they run in AWS.

    orchestrator run FILE         a gate or a pipeline, through the CodePipeline emulator
    orchestrator validate FILE    check a gate file (--args) or a pipeline (exit 2, field paths)
    orchestrator status RUN_ID    one run: steps, timings, last summary
    orchestrator runs             recent runs, optionally by state
    orchestrator cancel RUN_ID    the next tick fails the job with "cancelled by <who>"
    orchestrator approve RUN_ID   approve a waiting approval step, as your AWS identity
    orchestrator reject RUN_ID    reject it (with a reason): the gate fails naming you

Exit status: 0 success, 1 a failed gate, 2 an invalid definition or usage error.
Needs the `cli` extra: `pip install 'codepipeline-orchestrator[cli]'`.
"""

from __future__ import annotations

import io
import json
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from orchestrator.cli.view import ConsoleView, JsonView
from orchestrator.durations import format_duration, parse_duration
from orchestrator.exceptions import DefinitionError
from orchestrator.local.gatefiles import (
    LocalArtifact,
    UsageError,
    check_gate,
    check_reference,
    fits_inline,
    local_artifacts,
    parse_pairs,
    read_gate_file,
)
from orchestrator.local.pipeline import (
    Action,
    Pipeline,
    PipelineError,
    load_document,
    looks_like_pipeline,
    parse_pipeline,
)
from orchestrator.local.runner import (
    DEFAULT_DATA_DIR,
    DEFAULT_TABLE,
    LocalStack,
    RehearsalOptions,
    rehearse,
)
from orchestrator.model import RunStatus
from orchestrator.reference import Reference, read_user_parameters
from orchestrator.text import format_instant

app = typer.Typer(
    help="Long-running CodePipeline gates: rehearse them locally, operate them in AWS.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2

TableOpt = Annotated[str, typer.Option(envvar="ORCHESTRATOR_TABLE_NAME", help="Runs table name.")]
EndpointOpt = Annotated[
    str | None,
    typer.Option(
        "--dynamodb-endpoint",
        envvar="AWS_ENDPOINT_URL_DYNAMODB",
        help="DynamoDB endpoint (default: an embedded DynamoDB under --data-dir).",
    ),
]
DataDirOpt = Annotated[Path, typer.Option(help="Where the embedded DynamoDB keeps its data.")]


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _console() -> Console:
    return Console(highlight=False, soft_wrap=True)


# region run


@dataclass(frozen=True)
class _Loaded:
    """A file for `run` or `validate`: the pipeline to rehearse and the artifacts it reads."""

    pipeline: Pipeline
    bare: bool
    artifacts: dict[str, LocalArtifact]
    note: str = ""


def _load(path: Path, args: dict[str, str], artifacts: dict[str, LocalArtifact]) -> _Loaded:
    """The file as a pipeline; a bare gate file becomes a one-action pipeline that inlines it
    when it fits in UserParameters, else references it in an input artifact of its own."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc.strerror}") from None
    document = load_document(text)
    if looks_like_pipeline(document):
        if args:
            raise UsageError("--args: only for a gate file (a pipeline's actions carry theirs)")
        return _Loaded(parse_pipeline(document), False, artifacts)
    gate, size = read_gate_file(path)
    check_gate(gate, args, str(path))  # every problem at once, as the handler would find them
    if not args and fits_inline(gate):
        params = json.dumps(gate, separators=(",", ":"))
        note = f"{len(params):,} characters: fits inline in UserParameters"
    else:
        artifacts = {**artifacts, "GateFile": _gate_artifact(path)}
        reference: dict[str, Any] = {"gate": f"GateFile::{path.name}"}
        if args:
            reference["args"] = args
        params = json.dumps(reference)
        why = (
            "a template (params)"
            if isinstance(gate, dict) and "params" in gate
            else f"{size:,} bytes, too big to inline in UserParameters (1,000 characters)"
        )
        example = {"gate": f"SourceArtifact::gates/{path.name}", **({"args": args} if args else {})}
        note = f"{why}: reference it from UserParameters, e.g. {json.dumps(example)}"
    action = Action(
        stage="Gate",
        name=path.stem,
        type_id=("Invoke", "AWS", "Lambda", "1"),
        configuration={"FunctionName": "orchestrator", "UserParameters": params},
        namespace="Gate",
        input_artifacts=list(artifacts),
    )
    return _Loaded(Pipeline(name=path.stem, stages=[("Gate", [action])]), True, artifacts, note)


def _gate_artifact(path: Path) -> LocalArtifact:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(path, path.name)
    return LocalArtifact("GateFile", path, buffer.getvalue())


def _options(args: list[str] | None, artifact: list[str] | None) -> tuple[dict[str, str], Any]:
    try:
        return parse_pairs(args or [], "--args"), local_artifacts(artifact or [])
    except UsageError as exc:
        raise typer.BadParameter(str(exc)) from None


ArgsOpt = Annotated[
    list[str] | None,
    typer.Option("--args", "-a", help="NAME=VALUE for a gate file's params (repeatable)."),
]
ArtifactOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--artifact",
        help="NAME=PATH: a folder or zip standing in for input artifact NAME (repeatable).",
    ),
]


@app.command()
def run(
    file: Annotated[
        Path,
        typer.Argument(
            help="A gate definition (JSON) or a pipeline "
            "declaration (JSON/YAML, CodePipeline's shape)."
        ),
    ],
    speed: Annotated[float, typer.Option(min=0.001, help="Run the clock N times faster.")] = 1.0,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON events.")] = False,
    reinvoke_delay: Annotated[str, typer.Option(help="Delay between rounds.")] = "2s",
    duplicates: Annotated[
        str, typer.Option(help="Deliver each job: none, sequential (twice), concurrent.")
    ] = "none",
    lambda_timeout: Annotated[str, typer.Option(help="The function's timeout.")] = "5m",
    reply_timeout: Annotated[str, typer.Option(help="CodePipeline's reply rule.")] = "20m",
    action_timeout: Annotated[str, typer.Option(help="CodePipeline's action limit.")] = "24h",
    table: TableOpt = DEFAULT_TABLE,
    dynamodb_endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    args: ArgsOpt = None,
    artifact: ArtifactOpt = None,
    approvals: Annotated[
        bool,
        typer.Option(
            "--approvals",
            help="Serve approvals on this machine: the approval page, a mock OpenID Connect "
            "provider where you choose who you sign in as, and the signing key in a local "
            "Secrets Manager. Chat and SNS are not reachable offline: when an approval step "
            "waits, its links (those its notification carries) are printed here.",
        ),
    ] = False,
) -> None:
    """Run a gate (or a pipeline's Lambda invoke actions) as CodePipeline would, locally."""
    from orchestrator.clock import VirtualClock

    console = _console()
    if duplicates not in ("none", "sequential", "concurrent"):
        raise typer.BadParameter("none, sequential or concurrent", param_hint="--duplicates")
    arg_map, artifacts = _options(args, artifact)
    try:
        loaded = _load(file, arg_map, artifacts)
    except UsageError as exc:
        raise typer.BadParameter(str(exc)) from None
    except (DefinitionError, PipelineError) as exc:
        _invalid(console, file, exc, json_output)
    pipeline = loaded.pipeline
    options = RehearsalOptions(
        artifacts={name: a.data for name, a in loaded.artifacts.items()},
        reinvoke_delay=_duration(reinvoke_delay),
        lambda_timeout=_duration(lambda_timeout),
        duplicates=duplicates,  # type: ignore[arg-type]  # checked above
        reply_timeout=_duration(reply_timeout),
        action_timeout=_duration(action_timeout),
    )
    view = JsonView() if json_output else ConsoleView(console, speed)
    with LocalStack(
        table_name=table,
        dynamodb_endpoint=dynamodb_endpoint,
        data_dir=data_dir,
        clock=VirtualClock(speed),
        approvals=approvals,
    ) as stack:
        assert stack.store_info is not None
        view(
            {
                "event": "store",
                "kind": stack.store_info.kind,
                "description": stack.store_info.description,
                "table": table,
                "persistent": stack.store_info.persistent,
            }
        )
        result = rehearse(stack, pipeline, options, view)
    code = (
        EXIT_OK
        if result.status == "Succeeded"
        else (EXIT_INVALID if result.failure_type == "ConfigurationError" else EXIT_FAILED)
    )
    view(
        {
            "event": "finished",
            "status": result.status,
            "variables": result.variables,
            "failure_type": result.failure_type,
            "failure_message": result.failure_message,
            "run_ids": result.run_ids,
            "exit_code": code,
        }
    )
    raise typer.Exit(code)


def _invalid(console: Console, file: Path, exc: Exception, json_output: bool) -> NoReturn:
    errors = exc.errors if isinstance(exc, DefinitionError) else [str(exc)]
    if json_output:
        print(json.dumps({"event": "invalid", "file": str(file), "errors": errors}))
    else:
        console.print(f"[bold red]{file}: invalid[/]")
        for line in errors:
            console.print(f"  {line}", markup=False)
    raise typer.Exit(EXIT_INVALID)


# endregion
# region validate and operate


@app.command()
def validate(
    file: Annotated[Path, typer.Argument(help="A gate file (JSON/YAML) or a pipeline.")],
    args: ArgsOpt = None,
    artifact: ArtifactOpt = None,
) -> None:
    """Check a gate file (against --args) or every gate of a pipeline; exit 2 listing every
    problem. Inline UserParameters are read exactly as the Lambda reads them."""
    console = _console()
    arg_map, artifacts = _options(args, artifact)
    notes: list[str] = []
    try:
        loaded = _load(file, arg_map, artifacts)
        errors: list[str] = []
        for action in [] if loaded.bare else loaded.pipeline.actions:
            if action.is_lambda_invoke:
                where = f"{action.stage}/{action.name}"
                try:
                    note = _check_action(action, artifacts)
                except DefinitionError as exc:
                    errors.extend(f"{where}: {line}" for line in exc.errors)
                    continue
                if note:
                    notes.append(f"{where}: {note}")
        if errors:
            raise DefinitionError(errors)
    except UsageError as exc:
        raise typer.BadParameter(str(exc)) from None
    except (DefinitionError, PipelineError) as exc:
        _invalid(console, file, exc, json_output=False)
    if loaded.bare:
        console.print(f"[green]{file}: valid gate[/] ({loaded.note})")
    else:
        console.print(f"[green]{file}: valid pipeline ({len(loaded.pipeline.actions)} actions)[/]")
    for note in notes:
        console.print(f"  {note}", markup=False)


def _check_action(action: Action, artifacts: dict[str, LocalArtifact]) -> str:
    """Check one Lambda invoke action's UserParameters; a note on what was not checked."""
    text = action.configuration.get("UserParameters")
    if text is None:
        raise DefinitionError(["UserParameters: missing; expected a gate or a reference"])
    if "#{" in text:
        return "uses #{...} variables: checked when they resolve (orchestrator run)"
    spec = read_user_parameters(text)
    if isinstance(spec, Reference):
        return check_reference(spec, artifacts, action.input_artifacts)
    return ""


def _stack(table: str, endpoint: str | None, data_dir: Path) -> LocalStack:
    return LocalStack(
        table_name=table, dynamodb_endpoint=endpoint, data_dir=data_dir, with_codepipeline=False
    )


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return format_instant(epoch, "seconds")


@app.command()
def status(
    run_id: Annotated[str, typer.Argument(help="The run id (the action's external execution id).")],
    table: TableOpt = DEFAULT_TABLE,
    dynamodb_endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    json_output: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """One run: its steps, timings, current token age, approvers' decisions, last summary."""
    console = _console()
    with _stack(table, dynamodb_endpoint, data_dir) as stack:
        record = stack.store().load(run_id)
    if record is None:
        console.print(f"[red]run {run_id} not found in table {table}[/]")
        raise typer.Exit(EXIT_FAILED)
    state = record.state
    if json_output:
        print(
            json.dumps(
                {
                    "run_id": run_id,
                    "status": state.status.value,
                    "version": record.version,
                    "summary": record.last_answer.summary,
                    "state": state.model_dump(mode="json"),
                    "updated_at": record.updated_at,
                    "cancel_requested_by": record.signals.cancel_requested_by,
                    "decisions": record.signals.decisions,
                    "definition": record.pin.model_dump(mode="json") if record.pin else None,
                }
            )
        )
        return
    console.print(
        f"run [bold]{run_id}[/]: {state.status.value}"
        + (
            f" (cancel requested by {record.signals.cancel_requested_by})"
            if record.signals.cancel_requested_by
            else ""
        )
    )
    console.print(
        f"started {_when(state.started_at)}, deadline {_when(state.deadline)}, "
        f"ended {_when(state.ended_at)}"
    )
    console.print(
        f"last advanced {format_duration(time.time() - record.updated_at)} ago "
        f"(version {record.version}, by job {record.last_job_id})"
    )
    if record.pin is not None:
        pin = record.pin
        version = f", version {pin.version}" if pin.version else ""
        given = state.context.get("args") or {}
        args = ", ".join(f"{k}={v}" for k, v in sorted(given.items()))
        console.print(
            f"definition: {pin.source}{version}, sha256 {pin.sha256}"
            + (f", args {args}" if args else ""),
            markup=False,
        )
    else:
        console.print("definition: inline (UserParameters)")
    steps = Table("#", "step", "kind", "state", "started", "finished", "polls", "detail")
    for index, step in enumerate(state.steps):
        phase = "done" if step.finished_at else "running" if step.started_at else "pending"
        if state.status is RunStatus.FAILED and index == state.step_index:
            phase = "failed"
        steps.add_row(
            str(index + 1),
            step.name,
            step.kind,
            phase,
            _when(step.started_at),
            _when(step.finished_at),
            str(step.polls),
            step.detail,
        )
    console.print(steps)
    _print_decisions(console, record.signals.decisions)
    console.print(f"last summary: {record.last_answer.summary}", markup=False)
    if state.outputs:
        console.print(f"outputs: {json.dumps(state.outputs)}", markup=False)


def _print_decisions(console: Console, decisions: dict[str, dict[str, Any]]) -> None:
    """Each approver's decision: who (the identity), how it was proven, when, why, from where."""
    from orchestrator.approval.principals import RESERVED_PREFIX

    rows = [
        (step, who, entry)
        for step, by_identity in decisions.items()
        for who, entry in by_identity.items()
        if not who.startswith(RESERVED_PREFIX) and isinstance(entry, dict)
    ]
    for step, who, entry in sorted(rows, key=lambda row: float(row[2].get("at") or 0)):
        at = entry.get("at")  # epoch seconds (a Decimal from DynamoDB)
        when = format_instant(float(at), "seconds") if at not in (None, "") else "-"
        line = (
            f"decision on '{step}': {entry.get('decision', '-')} by {who} "
            f"via {entry.get('via') or '-'} at {when}"
        )
        if entry.get("source_ip"):
            line += f" from {entry['source_ip']}"
        if entry.get("comment"):
            line += f": {entry['comment']}"
        console.print(line, markup=False)


@app.command()
def runs(
    state: Annotated[
        str | None, typer.Option("--status", help="RUNNING, SUCCEEDED or FAILED.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 20,
    table: TableOpt = DEFAULT_TABLE,
    dynamodb_endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    json_output: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Recent runs, newest first (a query on the by-status index, never a scan)."""
    try:
        wanted = RunStatus(state.upper()) if state else None
    except ValueError:
        raise typer.BadParameter("RUNNING, SUCCEEDED or FAILED", param_hint="--status") from None
    with _stack(table, dynamodb_endpoint, data_dir) as stack:
        found = stack.store().recent(wanted, limit)
    if json_output:
        print(json.dumps([r.model_dump(mode="json") for r in found]))
        return
    listing = Table("run id", "status", "created", "updated", "summary")
    for r in found:
        listing.add_row(
            r.run_id, r.status.value, _when(r.created_at), _when(r.updated_at), r.summary
        )
    _console().print(listing)


@app.command()
def cancel(
    run_id: Annotated[str, typer.Argument(help="The run to cancel.")],
    by: Annotated[str | None, typer.Option(help="Who cancels (default: your identity).")] = None,
    table: TableOpt = DEFAULT_TABLE,
    dynamodb_endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
) -> None:
    """Request cancellation: the run's next tick fails its job with "cancelled by <who>"."""
    console = _console()
    with _stack(table, dynamodb_endpoint, data_dir) as stack:
        who = by or _identity(stack)
        done = stack.store().request_cancel(run_id, who)
    if not done:
        console.print(f"[red]run {run_id} is not running (unknown or already over)[/]")
        raise typer.Exit(EXIT_FAILED)
    console.print(f"cancel of {run_id} requested by {who}; the next tick fails the job")


def _identity(stack: LocalStack) -> str:
    """The caller's AWS identity on AWS; the local user name on an embedded store."""
    import getpass

    if stack.store_info is not None and stack.store_info.kind != "endpoint":
        return f"local:{getpass.getuser()}"
    import boto3

    try:
        arn: str = boto3.client("sts").get_caller_identity()["Arn"]
    except Exception:  # no credentials or no STS here: fall back, say so
        return f"local:{getpass.getuser()}"
    return arn


# endregion
# region approvals

StepOpt = Annotated[
    str | None, typer.Option(help="The approval step (default: the run's current step).")
]


@app.command()
def approve(
    run_id: Annotated[str, typer.Argument(help="The run whose approval step to approve.")],
    step: StepOpt = None,
    comment: Annotated[str, typer.Option(help="Recorded with your approval.")] = "",
    table: TableOpt = DEFAULT_TABLE,
    dynamodb_endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
) -> None:
    """Approve a waiting approval step, as your AWS identity (STS GetCallerIdentity)."""
    _decide("approve", run_id, step, comment, _stack(table, dynamodb_endpoint, data_dir))


@app.command()
def reject(
    run_id: Annotated[str, typer.Argument(help="The run whose approval step to reject.")],
    comment: Annotated[str, typer.Option(help="Why (required): the gate fails with it.")],
    step: StepOpt = None,
    table: TableOpt = DEFAULT_TABLE,
    dynamodb_endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
) -> None:
    """Reject a waiting approval step, as your AWS identity: the gate fails naming you."""
    if not comment.strip():
        raise typer.BadParameter("a rejection needs a reason", param_hint="--comment")
    _decide("reject", run_id, step, comment, _stack(table, dynamodb_endpoint, data_dir))


def _decide(decision: str, run_id: str, step: str | None, comment: str, stack: LocalStack) -> None:
    """Record the decision of the caller's STS identity; exit 1 when it is refused."""
    from orchestrator.approval.decide import Refused, decide

    console = _console()
    principal = _caller_principal(console)  # before the stack: it may set local credentials
    with stack:
        try:
            found, counted = decide(
                stack.store(),
                run_id,
                step,
                principal,
                decision,
                comment.strip(),
                time.time(),
                via="cli",
            )
        except Refused as exc:
            console.print(f"not recorded: {exc}", style="red", markup=False)
            raise typer.Exit(EXIT_FAILED) from None
    console.print(
        f"{decision} of step '{found.name}' of run {run_id} recorded for {principal} "
        f"({len(counted.approved_by)}/{counted.required} approvals"
        + (f"; needs {counted.needs()}" if counted.needs() else "")
        + "); "
        "the gate takes it into account at its next check",
        markup=False,
    )


def _caller_principal(console: Console) -> str:
    """The caller's IAM principal, from STS only: nobody may decide as someone else."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from orchestrator.approval.principals import normalize

    try:
        arn: str = boto3.client("sts").get_caller_identity()["Arn"]
    except (BotoCoreError, ClientError) as exc:
        console.print(
            f"cannot tell who you are: STS GetCallerIdentity failed ({type(exc).__name__})",
            style="red",
            markup=False,
        )
        raise typer.Exit(EXIT_FAILED) from None
    return normalize(arn)


# endregion


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point."""
    return app(args=argv if argv is not None else sys.argv[1:], prog_name="orchestrator")
