"""`orchestrator`: rehearse gates locally and operate them once they run in AWS.

    orchestrator run FILE         a gate or a pipeline, through the CodePipeline emulator
    orchestrator validate FILE    check a gate file (--args) or a pipeline (exit 2, field paths)
    orchestrator status RUN_ID    one run: steps, timings, last summary
    orchestrator runs             recent runs, optionally by state
    orchestrator cancel RUN_ID    the next tick fails the job with "cancelled by <who>"
    orchestrator approve RUN_ID   approve a waiting approval step, as your AWS identity
    orchestrator reject RUN_ID    reject it (with a reason): the gate fails naming you
    orchestrator window SPEC      a window's next openings and closings, in its zone and UTC
    orchestrator freeze NAME      set a named freeze (windows naming it close), as your identity
    orchestrator unfreeze NAME    lift it
    orchestrator freezes          every freeze: on, ended or lifted, who set and lifted it
    orchestrator locks            environment locks: holders and waiting executions
    orchestrator unlock NAME      end a lock's lease by force (--force --reason), audited
    orchestrator local stop       stop the embedded DynamoDB Local the commands share

Exit status: 0 success, 1 a failed gate, 2 an invalid definition or usage error.
Needs the `cli` extra: `pip install 'codepipeline-orchestrator[cli]'`.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperCommand, TyperGroup, TyperOption

from orchestrator import __version__
from orchestrator.cli.view import ConsoleView, JsonView
from orchestrator.definition import definition_warnings
from orchestrator.durations import format_duration, parse_duration
from orchestrator.exceptions import DefinitionError
from orchestrator.local.gatefiles import (
    LocalArtifact,
    UsageError,
    check_gate,
    check_user_parameters,
    fits_inline,
    local_artifacts,
    parse_pairs,
    read_gate_file,
)
from orchestrator.local.pipeline import (
    Action,
    Pipeline,
    PipelineError,
    declaration_warnings,
    known_variables,
    load_document,
    looks_like_pipeline,
    parse_pipeline,
    pipeline_variables,
)
from orchestrator.local.runner import (
    DEFAULT_DATA_DIR,
    DEFAULT_TABLE,
    LocalStack,
    RehearsalOptions,
    rehearse,
)
from orchestrator.model import NodeStatus, RunStatus
from orchestrator.text import counted, format_instant

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from orchestrator.governance import FreezeRecord, LockRecord
    from orchestrator.model import Control, RunRecord
    from orchestrator.ports import RunStore


def _flags_as_flags(params: list[Any]) -> list[Any]:
    """A flag (--json, --help) takes no value: no `<bool>` beside it in --help."""
    for param in params:
        if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
            param.metavar = ""
    return params


class _Group(TyperGroup):
    def get_params(self, ctx: Any) -> list[Any]:
        return _flags_as_flags(super().get_params(ctx))


class _Command(TyperCommand):
    def get_params(self, ctx: Any) -> list[Any]:
        return _flags_as_flags(super().get_params(ctx))


app = typer.Typer(
    cls=_Group,
    help="Long-running CodePipeline gates: rehearse them locally, operate them in AWS.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        print(f"orchestrator {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    pass


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


# The edges of the services the emulator stands in for: a value beyond them rehearses
# something AWS would refuse (a Lambda function times out after 15 minutes at most).
_TIMEOUT_LIMITS = {
    "--lambda-timeout": (900.0, "Lambda's maximum function timeout (15 minutes)"),
    "--reply-timeout": (1200.0, "CodePipeline's 20 minutes for a job's reply"),
    "--action-timeout": (86400.0, "CodePipeline's 24-hour limit for a Lambda invoke action"),
}


def _timeout(text: str, option: str) -> float:
    """A duration for one of `run`'s timeouts, within what AWS allows; else exit 2."""
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint=option) from None
    most, what = _TIMEOUT_LIMITS[option]
    if seconds <= 0:
        raise typer.BadParameter(f"{text}: a timeout must be more than 0s", param_hint=option)
    if seconds > most:
        raise typer.BadParameter(f"{text} is more than {what}", param_hint=option)
    return seconds


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
        data = path.read_bytes()
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {path}: {exc.strerror}") from None
    document = load_document(data)  # PipelineError: not UTF-8, nested too deeply, not JSON/YAML
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
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet",
            "-q",
            help="Show only transitions: actions starting and finishing, status changes.",
        ),
    ] = False,
    reinvoke_delay: Annotated[str, typer.Option(help="Delay between rounds.")] = "2s",
    retry_failed: Annotated[
        bool,
        typer.Option(
            "--retry-failed",
            help=(
                'When an action fails, "Retry failed actions" once, as the console does: '
                "the same pipeline execution, a new job (a failed gate resumes)."
            ),
        ),
    ] = False,
    duplicates: Annotated[
        str, typer.Option(help="Deliver each job: none, sequential (twice), concurrent.")
    ] = "none",
    lambda_timeout: Annotated[
        str, typer.Option(help="The function's timeout (at most 15m, Lambda's maximum).")
    ] = "5m",
    reply_timeout: Annotated[
        str, typer.Option(help="CodePipeline's wait for a job's reply (at most 20m).")
    ] = "20m",
    action_timeout: Annotated[
        str, typer.Option(help="CodePipeline's limit for the whole action (at most 24h).")
    ] = "24h",
    table: TableOpt = DEFAULT_TABLE,
    dynamodb_endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    args: ArgsOpt = None,
    artifact: ArtifactOpt = None,
    variable: Annotated[
        list[str] | None,
        typer.Option(
            "--variable",
            help="NAME=VALUE: a pipeline-level variable (#{variables.NAME}) for this "
            "execution, over its default (repeatable).",
        ),
    ] = None,
    newer_execution_at: Annotated[
        str | None,
        typer.Option(
            help="A newer execution starts this long (pipeline time) after this one: show "
            "what the pipeline's execution mode (SUPERSEDED, QUEUED, PARALLEL) makes of it.",
        ),
    ] = None,
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
    try:
        given = parse_pairs(variable or [], "--variable")
        pipeline_variables(pipeline, given)
    except UsageError as exc:
        raise typer.BadParameter(str(exc)) from None
    except PipelineError as exc:
        _invalid(console, file, exc, json_output)
    if not loaded.bare and not json_output:
        _print_warnings(console, _refused(pipeline))
    options = RehearsalOptions(
        artifacts={name: a.data for name, a in loaded.artifacts.items()},
        reinvoke_delay=_duration(reinvoke_delay),
        lambda_timeout=_timeout(lambda_timeout, "--lambda-timeout"),
        duplicates=duplicates,  # type: ignore[arg-type]  # checked above
        reply_timeout=_timeout(reply_timeout, "--reply-timeout"),
        action_timeout=_timeout(action_timeout, "--action-timeout"),
        retry_failed=retry_failed,
        variables=given,
        newer_execution_at=None if newer_execution_at is None else _duration(newer_execution_at),
    )
    view = _noting_rehearsals(
        JsonView() if json_output else ConsoleView(console, speed, quiet=quiet), data_dir, speed
    )
    with (
        _exit_on_termination(),
        LocalStack(
            table_name=table,
            dynamodb_endpoint=dynamodb_endpoint,
            data_dir=data_dir,
            clock=VirtualClock(speed),
            approvals=approvals,
        ) as stack,
    ):
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


@contextlib.contextmanager
def _exit_on_termination() -> Iterator[None]:
    """SIGTERM and SIGHUP (`kill PID`, a closed terminal) end the command as Ctrl-C does:
    through the stack's exit, which stops everything it started (the data folder's shared
    DynamoDB Local excepted, by design: `orchestrator local stop`). Exit status 128+N."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    wanted = [signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
    previous = {sig: signal.signal(sig, terminate) for sig in wanted}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


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
    json_output: Annotated[
        bool,
        typer.Option("--json", help="Print one JSON document: file, valid, errors, notes."),
    ] = False,
    variable: Annotated[
        list[str] | None,
        typer.Option(
            "--variable",
            help="NAME=VALUE: a pipeline-level variable's value to check the gates with "
            "(default: its defaultValue; repeatable).",
        ),
    ] = None,
) -> None:
    """Check a gate file (against --args) or every gate of a pipeline; exit 2 listing every
    problem. Inline UserParameters are read exactly as the Lambda reads them."""
    console = _console()
    arg_map, artifacts = _options(args, artifact)
    notes: list[str] = []
    warnings: list[str] = []
    try:
        given = parse_pairs(variable or [], "--variable")
        loaded = _load(file, arg_map, artifacts)
        if loaded.bare:
            warnings.extend(definition_warnings(check_gate(read_gate_file(file)[0], arg_map, "")))
        else:
            warnings.extend(_refused(loaded.pipeline))
            known = known_variables(loaded.pipeline, given)
            _check_actions(loaded.pipeline, artifacts, known, notes, warnings)
    except UsageError as exc:
        raise typer.BadParameter(str(exc)) from None
    except (DefinitionError, PipelineError) as exc:
        if json_output:
            errors = exc.errors if isinstance(exc, DefinitionError) else [str(exc)]
            _print_validation(file, errors, notes, warnings)
            raise typer.Exit(EXIT_INVALID) from None
        try:
            _invalid(console, file, exc, json_output=False)
        finally:  # under the errors; warnings alone never change the exit status
            _print_warnings(console, warnings)
    if json_output:
        _print_validation(file, [], ([loaded.note] if loaded.note else []) + notes, warnings)
        return
    if loaded.bare:
        console.print(f"[green]{file}: valid gate[/] ({loaded.note})")
    else:
        actions = counted(len(loaded.pipeline.actions), "action")
        console.print(f"[green]{file}: valid pipeline ({actions})[/]")
    _print_warnings(console, warnings)
    for note in notes:
        console.print(f"  {note}", markup=False)


@app.command()
def schema(
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write it to this file instead of printing it."),
    ] = None,
) -> None:
    """Print the JSON Schema of the gate language (schema/gate.schema.json is this output),
    for editors to complete and check gate files: docs/STEPS.md, "Editors"."""
    from orchestrator.cli.schema import render_schema

    text = render_schema()
    if output is None:
        sys.stdout.write(text)
        return
    output.write_text(text, encoding="utf-8")


_PIPELINE_VARIABLE = re.compile(r"#\{variables\.([A-Za-z0-9@\-_]+)\}")


def _check_actions(
    pipeline: Pipeline,
    artifacts: dict[str, LocalArtifact],
    known: dict[str, str],
    notes: list[str],
    warnings: list[str],
) -> None:
    """Check every Lambda invoke action's gate; DefinitionError lists every problem."""
    errors: list[str] = []
    for action in pipeline.actions:
        if action.is_lambda_invoke:
            where = f"{action.stage}/{action.name}"
            found: list[str] = []
            try:
                note = _check_action(action, artifacts, found, known)
            except DefinitionError as exc:
                errors.extend(f"{where}: {line}" for line in exc.errors)
                continue
            finally:
                warnings.extend(f"{where}: {line}" for line in found)
            if note:
                notes.append(f"{where}: {note}")
    if errors:
        raise DefinitionError(errors)


def _refused(pipeline: Pipeline) -> list[str]:
    """The declaration's problems CodePipeline would refuse, as warnings (we run it anyway)."""
    return [f"CodePipeline would refuse {line}" for line in declaration_warnings(pipeline)]


def _print_warnings(console: Console, warnings: list[str]) -> None:
    for line in warnings:
        console.print(f"  [yellow]warning:[/] {escape(line)}")


def _print_validation(
    file: Path, errors: list[str], notes: list[str], warnings: list[str] | None = None
) -> None:
    """`validate --json`: one document, whether the file is valid or not."""
    document = {"file": str(file), "valid": not errors, "errors": errors, "notes": notes}
    print(json.dumps({**document, "warnings": warnings or []}))


def _check_action(
    action: Action,
    artifacts: dict[str, LocalArtifact],
    warnings: list[str] | None = None,
    known: dict[str, str] | None = None,
) -> str:
    """Check one Lambda invoke action's UserParameters as the handler reads them: pipeline
    variables (`known`: `#{variables.NAME}`) with their values, stand-ins for the other
    `#{...}` variables; a note on what was not checked, `warnings` added."""
    text = action.configuration.get("UserParameters")
    if text is None:
        raise DefinitionError(["UserParameters: missing; expected a gate or a reference"])
    if known:
        text = _PIPELINE_VARIABLE.sub(lambda m: known.get(m.group(1), m.group(0)), text)
    found: list[str] = [] if warnings is None else warnings
    return check_user_parameters(text, artifacts, action.input_artifacts, found)


def _stack(table: str, endpoint: str | None, data_dir: Path) -> LocalStack:
    return LocalStack(
        table_name=table, dynamodb_endpoint=endpoint, data_dir=data_dir, with_codepipeline=False
    )


@contextlib.contextmanager
def _reachable(endpoint: str | None) -> Iterator[None]:
    """DynamoDB unreachable (or refusing) while the block runs: one line naming the endpoint,
    exit 1, instead of botocore's traceback."""
    from botocore.exceptions import BotoCoreError

    from orchestrator.exceptions import StoreUnavailable

    try:
        yield
    except (BotoCoreError, StoreUnavailable) as exc:
        where = f"DynamoDB at {endpoint}" if endpoint else "the embedded DynamoDB Local"
        cause: BaseException | None = exc
        while cause is not None and not isinstance(cause, BotoCoreError):
            cause = getattr(cause, "cause", None) or cause.__cause__  # pynamodb keeps `cause`
        line = f"cannot reach {where}: {cause}" if cause else f"{where}: {exc}"
        _console().print(line, style="red", markup=False)
        raise typer.Exit(EXIT_FAILED) from None


_PREFIX_SEARCH = 1000  # as many as `runs --limit` lists: any id it shows, however cut, resolves


def _find(store: RunStore, run_id: str, table: str) -> tuple[str, RunRecord]:
    """The run named `run_id`, else the one recent run whose id starts with it (`runs` cuts
    ids to fit the terminal). Unknown: exit 1; a prefix of several: exit 2 listing them."""
    record = store.load(run_id)
    if record is not None:
        return run_id, record
    ids = {r.run_id for r in store.recent(None, _PREFIX_SEARCH) if r.run_id.startswith(run_id)}
    matches = sorted(ids)
    console = _console()
    if len(matches) == 1:
        found = store.load(matches[0])
        if found is not None:
            return matches[0], found
    if len(matches) > 1:
        console.print(
            f"run id {run_id!r} is ambiguous: {len(matches)} runs in table {table} start with "
            "it; give more of the id:",
            style="red",
            markup=False,
        )
        for match in matches[:10]:
            console.print(f"  {match}", markup=False)
        if len(matches) > 10:
            console.print(f"  and {len(matches) - 10:,} more", markup=False)
        raise typer.Exit(EXIT_INVALID)
    console.print(
        f"run {run_id} is not in the runs table ({table}): no run has this id, nor does "
        f"the id of one of its {_PREFIX_SEARCH:,} most recently updated runs start with it",
        style="red",
        markup=False,
    )
    raise typer.Exit(EXIT_FAILED)


# Runs rehearsed with --speed other than 1 carry times on the virtual clock (hours ahead of
# this machine's): `run` notes their ids here, under --data-dir, so `status` and `runs` say so.
_REHEARSAL_CLOCKS = "rehearsal-clocks.json"
_REHEARSALS_KEPT = 1000


def _rehearsal_speeds(data_dir: Path) -> dict[str, float]:
    """Run id -> the speed of the clock it was rehearsed on (only speeds other than 1)."""
    try:
        known = json.loads((data_dir / _REHEARSAL_CLOCKS).read_text())
    except (OSError, ValueError):
        return {}
    return known if isinstance(known, dict) else {}


def _noting_rehearsals(view: Callable[[Any], None], data_dir: Path, speed: float) -> Any:
    """`view`, noting each run id it shows when the clock is not real time."""
    noted: set[str] = set()

    def note_then_show(event: Any) -> None:
        run_id = event.get("run_id")
        if speed != 1 and isinstance(run_id, str) and run_id and run_id not in noted:
            noted.add(run_id)
            known = _rehearsal_speeds(data_dir)
            known.pop(run_id, None)
            known[run_id] = speed
            with contextlib.suppress(OSError):  # a label lost, never a rehearsal
                data_dir.mkdir(parents=True, exist_ok=True)
                kept = dict(list(known.items())[-_REHEARSALS_KEPT:])
                (data_dir / _REHEARSAL_CLOCKS).write_text(json.dumps(kept))
        view(event)

    return note_then_show


def _clock_label(speed: float | None) -> str:
    return f" (rehearsal clock, {speed:g}x real time)" if speed else ""


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
    json_output: Annotated[bool, typer.Option("--json", help="Print the run as JSON.")] = False,
) -> None:
    """One run: its steps, timings, current token age, approvers' decisions, last summary.
    RUN_ID may be the start of a run id, when one recent run's id starts with it."""
    console = _console()
    with _reachable(dynamodb_endpoint), _stack(table, dynamodb_endpoint, data_dir) as stack:
        run_id, record = _find(stack.store(), run_id, table)
    state = record.state
    speed = _rehearsal_speeds(data_dir).get(run_id)
    if json_output:
        print(
            json.dumps(
                {
                    "run_id": run_id,
                    "rehearsal_speed": speed,
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
        f"ended {_when(state.ended_at)}{_clock_label(speed)}"
    )
    advanced = (
        f"at {_when(record.updated_at)}{_clock_label(speed)}"
        if speed
        else f"{format_duration(time.time() - record.updated_at)} ago"
    )
    console.print(
        f"last advanced {advanced} (version {record.version}, by job {record.last_job_id})"
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
    steps.caption = f"times on the rehearsal clock ({speed:g}x real time)" if speed else None
    rows = [
        *(("  " * step.depth + step.name, step.kind, step) for step in state.steps),
        *((step.name, f"guard: {step.kind}", step) for step in state.guards),
        *((step.name, f"on_failure: {step.kind}", step) for step in state.hooks),
    ]
    for index, (name, kind, step) in enumerate(rows):
        phase = step.status.value
        if step.passing is not None and step.status is NodeStatus.RUNNING:
            phase = "ok" if step.passing else "held"
        steps.add_row(
            str(index + 1),
            name,
            kind,
            phase,
            _when(step.started_at),
            _when(step.finished_at),
            str(step.polls),
            step.detail,
        )
    console.print(steps)
    _print_decisions(console, record.signals.decisions)
    for control in record.signals.controls:
        on = f" of step '{control.step}'" if control.step else ""
        console.print(
            f"audit: {control.action}{on} by {control.by} at "
            f"{format_instant(control.at, 'seconds')}: {control.reason or 'no reason given'}",
            markup=False,
        )
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
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many runs.")] = 20,
    table: TableOpt = DEFAULT_TABLE,
    dynamodb_endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    json_output: Annotated[bool, typer.Option("--json", help="Print the runs as JSON.")] = False,
) -> None:
    """Recent runs, newest first: running ones by start, ended ones by end (queries on the
    by-status-sharded index, never a scan)."""
    try:
        wanted = RunStatus(state.upper()) if state else None
    except ValueError:
        raise typer.BadParameter("RUNNING, SUCCEEDED or FAILED", param_hint="--status") from None
    with _reachable(dynamodb_endpoint), _stack(table, dynamodb_endpoint, data_dir) as stack:
        found = stack.store().recent(wanted, limit)
    if json_output:
        print(json.dumps([r.model_dump(mode="json") for r in found]))
        return
    listing = Table("run id", "status", "created", "updated", "summary")
    speeds = _rehearsal_speeds(data_dir)
    for r in found:
        mark = " *" if r.run_id in speeds else ""
        listing.add_row(
            r.run_id,
            r.status.value,
            _when(r.created_at) + mark,
            _when(r.updated_at) + mark,
            r.summary,
        )
    if any(r.run_id in speeds for r in found):
        listing.caption = "* on a rehearsal clock (orchestrator run --speed): not real time"
    _console().print(listing)


ReasonOpt = Annotated[
    str, typer.Option(help="Why (recorded in the run's audit trail with your identity).")
]
ControlStepOpt = Annotated[str, typer.Option("--step", help="The step (or group) it applies to.")]


@app.command()
def cancel(
    run_id: Annotated[str, typer.Argument(help="The run to cancel.")],
    by: Annotated[str | None, typer.Option(help="Who cancels (default: your identity).")] = None,
    reason: Annotated[str, typer.Option(help="Why (recorded in the audit trail).")] = "",
    table: TableOpt = DEFAULT_TABLE,
    dynamodb_endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
) -> None:
    """Request cancellation: the run's next tick fails its job with "cancelled by <who>".
    RUN_ID may be the start of a run id, when one recent run's id starts with it."""
    console = _console()
    with _reachable(dynamodb_endpoint), _stack(table, dynamodb_endpoint, data_dir) as stack:
        store = stack.store()
        run_id, _ = _find(store, run_id, table)
        who = by or _identity(stack)
        done = store.request_cancel(run_id, who)
        if done:
            store.record_control(run_id, _control("cancel", who, reason, None))
    if not done:
        console.print(f"[red]run {run_id} is not running (unknown or already over)[/]")
        raise typer.Exit(EXIT_FAILED)
    console.print(f"cancel of {run_id} requested by {who}; the next tick fails the job")


@app.command()
def skip(
    run_id: Annotated[str, typer.Argument(help="The run.")],
    step: ControlStepOpt,
    reason: ReasonOpt,
    table: TableOpt = DEFAULT_TABLE,
    dynamodb_endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
) -> None:
    """Count a step as done, with result {"skipped_by", "reason"}, at the run's next poll
    (a known-broken check). Recorded with your identity in the run's audit trail."""
    _operate("skip", run_id, step, reason, table, dynamodb_endpoint, data_dir)


@app.command()
def pause(
    run_id: Annotated[str, typer.Argument(help="The run.")],
    reason: ReasonOpt,
    table: TableOpt = DEFAULT_TABLE,
    dynamodb_endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
) -> None:
    """Stop polling a run: it answers "paused by ...: reason" until `orchestrator resume`
    (its deadlines still run). Recorded with your identity in the run's audit trail."""
    _operate("pause", run_id, None, reason, table, dynamodb_endpoint, data_dir)


@app.command()
def resume(
    run_id: Annotated[str, typer.Argument(help="The run.")],
    reason: Annotated[str, typer.Option(help="Why (recorded in the audit trail).")] = "",
    table: TableOpt = DEFAULT_TABLE,
    dynamodb_endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
) -> None:
    """Resume a paused run at its next poll. Recorded in the run's audit trail."""
    _operate("resume", run_id, None, reason, table, dynamodb_endpoint, data_dir)


@app.command()
def retry(
    run_id: Annotated[str, typer.Argument(help="The run.")],
    step: ControlStepOpt,
    reason: Annotated[str, typer.Option(help="Why (recorded in the audit trail).")] = "",
    table: TableOpt = DEFAULT_TABLE,
    dynamodb_endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
) -> None:
    """Run a failed step again inside a still-running run (an advisory step, a branch of
    `any`). Recorded with your identity in the run's audit trail."""
    _operate("retry", run_id, step, reason, table, dynamodb_endpoint, data_dir)


def _control(action: str, who: str, reason: str, step: str | None) -> Control:
    from orchestrator.model import Control

    return Control.model_validate(
        {"action": action, "by": who, "at": time.time(), "reason": reason, "step": step}
    )


def _operate(
    action: str,
    run_id: str,
    step: str | None,
    reason: str,
    table: str,
    dynamodb_endpoint: str | None,
    data_dir: Path,
) -> None:
    console = _console()
    with _reachable(dynamodb_endpoint), _stack(table, dynamodb_endpoint, data_dir) as stack:
        store = stack.store()
        run_id, record = _find(store, run_id, table)
        if step is not None:
            names = [s.name for s in record.state.steps]
            if step not in names:
                console.print(
                    f"[red]run {run_id} has no step '{step}' (steps: {', '.join(names)})[/]",
                    markup=True,
                )
                raise typer.Exit(EXIT_INVALID)
        who = _identity(stack)
        done = store.record_control(run_id, _control(action, who, reason, step))
    if not done:
        console.print(f"[red]run {run_id} is not running (unknown or already over)[/]")
        raise typer.Exit(EXIT_FAILED)
    what = f"{action} of step '{step}'" if step else action
    console.print(
        f"{what} of run {run_id} recorded for {who}; it takes effect at the run's next poll",
        markup=False,
    )


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
# region windows


@app.command()
def window(
    spec: Annotated[
        str,
        typer.Argument(
            metavar="FILE_OR_JSON",
            help="A window: a JSON/YAML file or JSON text holding the window's fields, a step "
            "with a 'window', or a gate (each of its window steps is shown).",
        ),
    ],
    count: Annotated[
        int, typer.Option("--next", min=1, max=100, help="How many openings to list.")
    ] = 10,
    start: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="List from this instant (ISO 8601, e.g. 2026-12-24T08:00Z; default: now).",
        ),
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """The next openings and closings of a window, in its time zone and in UTC: check a spec
    before deploying it. Change calendars and freezes are checked when the gate runs."""
    from orchestrator.windows import WindowSpecError

    console = _console()
    label = "JSON" if spec.lstrip().startswith("{") else spec
    try:
        found = _windows_in(spec)
        at = _instant(start) if start is not None else time.time()
        shown = [_window_listing(name, parsed, at, count) for name, parsed in found]
    except (DefinitionError, PipelineError) as exc:
        _invalid(console, Path(label), exc, json_output)
    except WindowSpecError as exc:  # a rendered value: cannot happen for a checked spec
        _invalid(console, Path(label), DefinitionError([str(exc)]), json_output)
    if json_output:
        print(json.dumps({"from": _iso_utc(at), "windows": shown}))
        return
    for listing in shown:
        _print_window(console, listing)


def _windows_in(text: str) -> list[tuple[str, Any]]:
    """(name, WindowSpec) for each window the argument holds; DefinitionError naming fields."""
    from orchestrator.steps.window import parse_window

    if text.lstrip().startswith("{"):
        document = load_document(text)
    else:
        path = Path(text)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise typer.BadParameter(f"cannot read {path}: {exc.strerror}") from None
        document = load_document(data)
    if not isinstance(document, dict):
        raise DefinitionError(["expected a JSON object: a window, a step or a gate"])
    if "window" in document:
        name = str(document.get("name") or "window")
        return [(name, parse_window(document["window"], "window"))]
    if "steps" in document or "guards" in document:
        found = [
            (str(step.get("name") or where), parse_window(step["window"], f"{where}.window"))
            for where, step in _window_steps(document, "")
        ]
        if not found:
            raise DefinitionError(["the gate has no window step"])
        return found
    return [("window", parse_window(document, "window"))]


def _window_steps(value: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every step carrying a 'window', anywhere in a gate (groups and guards included)."""
    if isinstance(value, dict):
        if "window" in value and path:
            yield path, value
            return
        for key, inner in value.items():
            yield from _window_steps(inner, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from _window_steps(inner, f"{path}[{index}]")


def _instant(text: str) -> float:
    from datetime import UTC, datetime

    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not an ISO 8601 instant (e.g. 2026-12-24T08:00Z)", param_hint="--from"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _iso_utc(at: float) -> str:
    from orchestrator.windows import utc_text

    return utc_text(at)


def _window_listing(name: str, parsed: Any, at: float, count: int) -> dict[str, Any]:
    """One window's next openings, as a document (what --json prints)."""
    from datetime import datetime

    schedule = parsed.schedule()
    status = schedule.status(at)

    def local(moment: float | None) -> str | None:
        if moment is None:
            return None
        return datetime.fromtimestamp(moment, schedule.zone).isoformat()

    openings = [
        {
            "opens": _iso_utc(opens),
            "closes": None if closes is None else _iso_utc(closes),
            "opens_local": local(opens),
            "closes_local": local(closes),
            "seconds": None if closes is None else closes - opens,
        }
        for opens, closes in _with_true_start(schedule.upcoming(at, count), at, status)
    ]
    notes = []
    if parsed.calendars:
        notes.append(
            f"change calendars ({', '.join(parsed.calendars)}) close it further: "
            "they are read when the gate runs"
        )
    if parsed.freeze:
        notes.append(f"freeze '{parsed.freeze}' closes it while on: read when the gate runs")
    if len(openings) < count:
        notes.append(
            "no further opening within 400 days" if openings else "it never opens within 400 days"
        )
    return {
        "name": name,
        "timezone": schedule.zone_name,
        "min_remaining_seconds": schedule.min_remaining,
        "open_now": status.open,
        "openings": openings,
        "notes": notes,
    }


def _with_true_start(
    found: list[tuple[float, float | None]], at: float, status: Any
) -> list[tuple[float, float | None]]:
    """The first opening, when the window is open at `at`, is when it opened, not `at`."""
    if found and status.open and found[0][0] == at and status.opened_at is not None:
        return [(status.opened_at, found[0][1]), *found[1:]]
    return found


def _print_window(console: Console, listing: dict[str, Any]) -> None:
    from datetime import UTC, datetime

    from orchestrator.windows import load_zone

    zone = load_zone(listing["timezone"])
    remaining = listing["min_remaining_seconds"]
    head = f"window '{listing['name']}' in {listing['timezone']}"
    if remaining:
        head += f", min_remaining {format_duration(remaining)}"
    console.print(f"{head}: {'open now' if listing['open_now'] else 'closed now'}", markup=False)

    def span(opens: str, closes: str | None, local: bool) -> str:
        """'Mon 2026-12-07 09:00 CET to 16:00': the closing's date and zone name only when
        they differ from the opening's ('Sun 2026-10-25 01:00 CEST to 04:00 CET')."""
        tz = zone if local else UTC
        full, short = (
            ("%a %Y-%m-%d %H:%M %Z", "%H:%M %Z") if local else ("%Y-%m-%d %H:%MZ", "%H:%MZ")
        )
        start = datetime.fromisoformat(opens.replace("Z", "+00:00")).astimezone(tz)
        if closes is None:
            return f"{start.strftime(full)} to (no closing within 400 days)"
        end = datetime.fromisoformat(closes.replace("Z", "+00:00")).astimezone(tz)
        if end.date() != start.date():
            return f"{start.strftime(full)} to {end.strftime(full)}"
        if end.strftime("%Z") == start.strftime("%Z"):  # the zone's name once, unless it changed
            short = "%H:%M" if local else short
        return f"{start.strftime(full)} to {end.strftime(short)}"

    table = Table("#", listing["timezone"], "UTC", "open for", box=box.SIMPLE_HEAD, pad_edge=False)
    for index, item in enumerate(listing["openings"], start=1):
        table.add_row(
            str(index),
            span(item["opens"], item["closes"], local=True),
            span(item["opens"], item["closes"], local=False),
            "-" if item["seconds"] is None else format_duration(item["seconds"]),
        )
    if remaining:
        table.caption = f"each counts as open until {format_duration(remaining)} before it closes"
    console.print(table)
    for note in listing["notes"]:
        console.print(f"  note: {note}", markup=False)


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
    """Approve a waiting approval step, as your AWS identity (STS GetCallerIdentity).
    RUN_ID may be the start of a run id, when one recent run's id starts with it."""
    stack = _stack(table, dynamodb_endpoint, data_dir)
    _decide("approve", run_id, step, comment, stack, dynamodb_endpoint)


@app.command()
def reject(
    run_id: Annotated[str, typer.Argument(help="The run whose approval step to reject.")],
    comment: Annotated[str, typer.Option(help="Why (required): the gate fails with it.")],
    step: StepOpt = None,
    table: TableOpt = DEFAULT_TABLE,
    dynamodb_endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
) -> None:
    """Reject a waiting approval step, as your AWS identity: the gate fails naming you.
    RUN_ID may be the start of a run id, when one recent run's id starts with it."""
    if not comment.strip():
        raise typer.BadParameter("a rejection needs a reason", param_hint="--comment")
    stack = _stack(table, dynamodb_endpoint, data_dir)
    _decide("reject", run_id, step, comment, stack, dynamodb_endpoint)


def _decide(
    decision: str,
    run_id: str,
    step: str | None,
    comment: str,
    stack: LocalStack,
    endpoint: str | None,
) -> None:
    """Record the decision of the caller's STS identity; exit 1 when it is refused."""
    from orchestrator.approval.decide import Refused, decide

    console = _console()
    principal = _caller_principal(console)  # before the stack: it may set local credentials
    with _reachable(endpoint), stack:
        run_id, _ = _find(stack.store(), run_id, stack.table_name)
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
        why = type(exc).__name__
        if isinstance(exc, BotoCoreError):  # its message names the endpoint it could not reach
            why += f": {exc}"
        console.print(
            f"cannot tell who you are: STS GetCallerIdentity failed ({why})",
            style="red",
            markup=False,
        )
        raise typer.Exit(EXIT_FAILED) from None
    return normalize(arn)


# endregion
# region freezes and locks

NameArg = Annotated[str, typer.Argument(help="The freeze's or the lock's name.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
HistoryOpt = Annotated[
    bool, typer.Option("--history", help="Also print each one's audit trail, oldest first.")
]


def _name(name: str) -> str:
    from orchestrator.governance import name_error

    why = name_error(name)
    if why is not None:
        raise typer.BadParameter(why, param_hint="NAME")
    return name


def _reason(reason: str, required: bool) -> str:
    reason = reason.strip()
    if required and not reason:
        raise typer.BadParameter("give a reason: it is recorded and shown", param_hint="--reason")
    if len(reason) > 1000:
        raise typer.BadParameter("at most 1,000 characters", param_hint="--reason")
    return reason


def _until(text: str, now: float) -> float:
    """`--until`: an instant with its zone (2026-12-27T00:00Z), or a duration from now (4h)."""
    from datetime import datetime

    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        try:
            seconds = parse_duration(text)
        except ValueError:
            raise typer.BadParameter(
                f"{text!r}: give an instant with its zone (2026-12-27T00:00Z) or a duration "
                "from now (4h)",
                param_hint="--until",
            ) from None
        return now + seconds
    if at.tzinfo is None:
        raise typer.BadParameter(
            f"{text!r} has no time zone: add Z or an offset (+01:00)", param_hint="--until"
        )
    if at.timestamp() <= now:
        raise typer.BadParameter(f"{text!r} has passed", param_hint="--until")
    return at.timestamp()


def _auditor(endpoint: str | None, console: Console) -> str:
    """Who an audited change is recorded as: on a DynamoDB endpoint (AWS, or one named), the
    caller's STS identity, strictly (as `approve`); on the embedded store, the local user."""
    import getpass

    if endpoint:
        return _caller_principal(console)
    return f"local:{getpass.getuser()}"


@app.command("freeze")
def freeze_command(
    name: NameArg,
    reason: Annotated[str, typer.Option(help="Why (required): gates held by it say so.")],
    until: Annotated[
        str | None,
        typer.Option(
            help="When it ends by itself: an instant with its zone (2026-12-27T00:00Z) or a "
            "duration from now (4h). Default: when lifted."
        ),
    ] = None,
    table: TableOpt = DEFAULT_TABLE,
    dynamodb_endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    json_output: JsonOpt = False,
) -> None:
    """Set a named freeze, as your AWS identity (STS): every `window` naming it closes at its
    next poll, saying who froze it, since when and why. Setting it again replaces it."""
    console = _console()
    name, reason = _name(name), _reason(reason, required=True)
    now = time.time()
    ends = _until(until, now) if until is not None else None
    who = _auditor(dynamodb_endpoint, console)
    with _reachable(dynamodb_endpoint), _stack(table, dynamodb_endpoint, data_dir) as stack:
        record, replaced = stack.governance().freeze(name, who, reason, ends, now)
    if json_output:
        print(json.dumps(_freeze_json(record, now)))
        return
    assert record.current is not None
    console.print(f"{name} is {record.current.describe()}", markup=False)
    if replaced is not None:
        console.print(f"  (replaces: {replaced.describe()})", markup=False)
    console.print("windows that name it close at their next poll", markup=False)


@app.command()
def unfreeze(
    name: NameArg,
    reason: Annotated[str, typer.Option(help="Recorded with the lift.")] = "",
    table: TableOpt = DEFAULT_TABLE,
    dynamodb_endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    json_output: JsonOpt = False,
) -> None:
    """Lift a named freeze, as your AWS identity (STS); exit 1 when it is not set."""
    console = _console()
    name, reason = _name(name), _reason(reason, required=False)
    now = time.time()
    who = _auditor(dynamodb_endpoint, console)
    with _reachable(dynamodb_endpoint), _stack(table, dynamodb_endpoint, data_dir) as stack:
        record, lifted = stack.governance().unfreeze(name, who, reason, now)
    if lifted is None:
        console.print(f"{name} is not frozen: nothing to lift", style="red", markup=False)
        raise typer.Exit(EXIT_FAILED)
    if json_output:
        print(json.dumps(_freeze_json(record, now)))
        return
    why = f": {reason}" if reason else ""
    console.print(f"{name} lifted by {who}{why} (it was {lifted.describe()})", markup=False)


@app.command()
def freezes(
    table: TableOpt = DEFAULT_TABLE,
    dynamodb_endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    history: HistoryOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Every freeze ever set in the table: on, ended (its --until passed) or lifted, with who
    set it and who lifted it."""
    now = time.time()
    with _reachable(dynamodb_endpoint), _stack(table, dynamodb_endpoint, data_dir) as stack:
        found = stack.governance().freezes()
    if json_output:
        print(json.dumps([_freeze_json(record, now) for record in found]))
        return
    console = _console()
    if not found:
        console.print("no freezes", markup=False)
        return
    for record in found:
        console.print(_freeze_line(record, now), markup=False)
    if history:
        for record in found:
            for event in record.history:
                until = f" until {_when(event.until)}" if event.until else ""
                why = f": {event.reason}" if event.reason else ""
                console.print(
                    f"{record.name}: {event.action} by {event.by} at {_when(event.at)}{until}{why}",
                    markup=False,
                )


def _last(events: list[Any], action: str) -> Any:
    return next((e for e in reversed(events) if e.action == action), None)


def _freeze_line(record: FreezeRecord, now: float) -> str:
    """`payments: on, frozen by arn:... since ...: why`; `ended` once its --until passed;
    `lifted by ... at ...` with what was lifted."""
    current = record.current
    if current is not None:
        state = "on" if record.active(now) else "ended"
        return f"{record.name}: {state}, {current.describe()}"
    lift, set_ = _last(record.history, "lifted"), _last(record.history, "set")
    if lift is None or set_ is None:
        return f"{record.name}: off"
    why = f": {lift.reason}" if lift.reason else ""
    return (
        f"{record.name}: lifted by {lift.by} at {_when(lift.at)}{why} (was frozen by "
        f"{set_.by} since {_when(set_.at)}: {set_.reason})"
    )


def _freeze_json(record: FreezeRecord, now: float) -> dict[str, Any]:
    return {**record.model_dump(mode="json"), "on": record.active(now) is not None}


@app.command()
def locks(
    table: TableOpt = DEFAULT_TABLE,
    dynamodb_endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    history: HistoryOpt = False,
    json_output: JsonOpt = False,
) -> None:
    """Environment locks: which pipeline execution holds each (since when, until when at the
    latest) and the executions waiting, first in line first."""
    now = time.time()
    with _reachable(dynamodb_endpoint), _stack(table, dynamodb_endpoint, data_dir) as stack:
        found = stack.governance().locks()
    if json_output:
        print(json.dumps([_lock_json(record, now) for record in found]))
        return
    console = _console()
    if not found:
        console.print("no locks", markup=False)
        return
    for record in found:
        holder = record.holder
        if holder is None:
            line = f"{record.name}: free"
        else:
            ends = "ended" if holder.expires <= now else "ends"
            line = (
                f"{record.name}: held by execution {_execution(holder.execution, holder.pipeline)}"
                f" since {_when(holder.since)}, lease {ends} {_when(holder.expires)}"
            )
            if holder.expires <= now:
                line += " (the next waiter takes it at its next poll)"
        console.print(line, markup=False)
        for i, w in enumerate(record.queue, start=1):
            console.print(
                f"  {i}. waiting: execution {_execution(w.execution, w.pipeline)}, "
                f"{w.mode.value}, since {_when(w.since)}, last seen {_when(w.seen)}",
                markup=False,
            )
    if history:
        for record in found:
            for event in record.history:
                by = f" by {event.by}" if event.by else ""
                why = f": {event.reason}" if event.reason else ""
                console.print(
                    f"{record.name}: {event.action} ({event.execution}){by} at "
                    f"{_when(event.at)}{why}",
                    markup=False,
                )


def _execution(execution: str, pipeline: str | None) -> str:
    return f"{execution} ({pipeline})" if pipeline else execution


def _lock_json(record: LockRecord, now: float) -> dict[str, Any]:
    held = record.held(now)
    return {**record.model_dump(mode="json"), "held_by": held.execution if held else None}


@app.command("unlock")
def unlock_command(
    name: NameArg,
    reason: Annotated[str, typer.Option(help="Why (required): recorded in the lock's trail.")] = "",
    force: Annotated[
        bool, typer.Option("--force", help="Required: the holder's deployment loses its cover.")
    ] = False,
    table: TableOpt = DEFAULT_TABLE,
    dynamodb_endpoint: EndpointOpt = None,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
) -> None:
    """End a lock's lease, whoever holds it, as your AWS identity (STS): the next waiting
    execution takes it at its next poll. Pipelines release their own with an `unlock` step."""
    console = _console()
    name = _name(name)
    if not force:
        raise typer.BadParameter(
            "this takes the lock from the execution holding it: add --force", param_hint="--force"
        )
    reason = _reason(reason, required=True)
    now = time.time()
    who = _auditor(dynamodb_endpoint, console)
    with _reachable(dynamodb_endpoint), _stack(table, dynamodb_endpoint, data_dir) as stack:
        lease = stack.governance().force_release(name, who, reason, now)
    if lease is None:
        console.print(f"{name} is not held: nothing to unlock", style="red", markup=False)
        raise typer.Exit(EXIT_FAILED)
    console.print(
        f"{name} taken from execution {lease.execution} (held since {_when(lease.since)}) "
        f"by {who}: {reason}; the next waiting execution takes it at its next poll",
        markup=False,
    )


# endregion

# region local


local_app = typer.Typer(
    help="The data folder's DynamoDB Local: started once by the first command that needs "
    "it, then shared by later ones (recorded in DATA_DIR/dynamodb-local.json).",
    no_args_is_help=True,
)
app.add_typer(local_app, name="local")


@local_app.command("status")
def local_status(data_dir: DataDirOpt = DEFAULT_DATA_DIR) -> None:
    """Whether the data folder's DynamoDB Local runs (exit 1 when it does not)."""
    from orchestrator.local import dynamodb_local

    server = dynamodb_local.shared_status(data_dir)
    if server is None:
        print(f"DynamoDB Local is not running for {data_dir}")
        raise typer.Exit(EXIT_FAILED)
    print(
        f"DynamoDB Local is running for {data_dir}: pid {server.pid}, "
        f"{server.endpoint_url}, since {format_instant(server.started_at, 'seconds')}"
    )


@local_app.command("stop")
def local_stop(data_dir: DataDirOpt = DEFAULT_DATA_DIR) -> None:
    """Stop the data folder's DynamoDB Local (its data stays; the next command starts it)."""
    from orchestrator.local import dynamodb_local

    server = dynamodb_local.stop_shared(data_dir)
    if server is None:
        print(f"DynamoDB Local was not running for {data_dir}")
        return
    print(f"stopped DynamoDB Local for {data_dir} (pid {server.pid}, port {server.port})")


# endregion


def _use_flag_display(typer_app: typer.Typer) -> None:
    """Every command (and sub-group) shows flags as flags (see `_flags_as_flags`)."""
    for info in typer_app.registered_commands:
        if info.cls in (None, TyperCommand):
            info.cls = _Command
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            if not isinstance(group.cls, type) or group.cls is TyperGroup:  # a placeholder
                group.cls = _Group
            _use_flag_display(group.typer_instance)


_use_flag_display(app)


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point."""
    return app(args=argv if argv is not None else sys.argv[1:], prog_name="orchestrator")
