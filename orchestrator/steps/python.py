"""`python`: call your own function, shipped in the deployment package, at each poll.

    {"name": "freeze", "python": {"callable": "custom_steps:business_hours",
                                  "params": {"start": 9, "end": 17}}, "every": "5m"}

The callable takes one `PythonContext` and returns `Wait(summary, check_again_in=seconds)`,
`Finish(result)` or `Fail(message)`. `context.memo` is the step's own dict, kept between
polls (JSON values only): changes are saved when the call returns. `context.run` is a
read-only copy of the run context (`steps`, `run`, `pipeline`...), `context.params` the
step's `params` (templated), `context.now` the gate's clock, `context.time_left()` the real
seconds this invocation may still spend.

The call runs in a daemon thread and is given `call_timeout` (default 30 s, never more than
the invocation has left). A call that has not returned by then counts as "still waiting":
the job is answered in time, and the thread may go on running in the warm container (a
later poll in the same container collects its result instead of calling again; another
container calls afresh). A call that raises fails the step, retryably when it has `retry`;
a callable that cannot be imported fails the gate with a ConfigurationError naming it.
"""

from __future__ import annotations

import copy
import importlib
import json
import threading
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, cast

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.durations import format_duration
from orchestrator.exceptions import FailureType
from orchestrator.steps._base import Done, Duration, Failed, Outcome, Pending, Step, StepContext
from orchestrator.steps._rules import Measured

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from orchestrator.model import StepState

__all__ = ["Fail", "Finish", "PythonContext", "PythonStep", "Wait"]

MAX_CALL_SECONDS = 300.0
MEMO_KEY = "python"  # the callable's memo lives under this key of the step's memo


# region what a callable returns


@dataclass(frozen=True)
class Wait:
    """Not done: show `summary`; call again in `check_again_in` seconds (default: `every`)."""

    summary: str
    check_again_in: float | None = None


@dataclass(frozen=True)
class Finish:
    """Done; `result` (JSON) is what later steps and outputs see at `steps.<name>`."""

    result: Any = None


@dataclass(frozen=True)
class Fail:
    """Fail the gate with `message`."""

    message: str


@dataclass(frozen=True)
class PythonContext:
    """What the callable sees. Only `memo` is meant to be changed."""

    step: str
    run_id: str
    run: Mapping[str, Any]
    memo: dict[str, Any]
    params: Any
    now: float
    time_left: Callable[[], float]


# endregion


class PythonCall(BaseModel):
    """`module:function` to call, with optional `params` and a per-call time limit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    callable: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
    params: Any = None
    call_timeout: Duration = Field(default=30.0, le=MAX_CALL_SECONDS)


class PythonStep(Measured, Step):
    """Call `python.callable` at each poll until it returns Finish or Fail."""

    kind: ClassVar[str] = "python"
    not_a_guard: ClassVar[str | None] = None

    python: PythonCall

    def poll(self, state: StepState, ctx: StepContext) -> Outcome:
        target = self.python.callable
        key = (ctx.run_id, self.name, target)
        call = _calls.take(key)
        if call is None:
            try:
                function = _load(target)
            except Exception as exc:
                return Failed(
                    f"step '{self.name}': cannot import {target}: {type(exc).__name__}: {exc}",
                    FailureType.CONFIGURATION_ERROR,
                )
            context = PythonContext(
                step=self.name,
                run_id=ctx.run_id,
                run=_frozen(ctx.run),
                memo=copy.deepcopy(state.memo.get(MEMO_KEY, {})),
                params=copy.deepcopy(self.python.params),
                now=ctx.now,
                time_left=ctx.time_left,
            )
            call = _Call(function, context)
        timeout = max(0.0, min(self.python.call_timeout, ctx.time_left()))
        if not call.finished.wait(timeout):
            _calls.keep(key, call)
            waited = f"{timeout:.3g}s" if timeout < 60 else format_duration(timeout)
            return Pending(
                f"{target} did not return within {waited}; "
                "still waiting (the call goes on in the background)"
            )
        return self._outcome(state, ctx, call)

    def _outcome(self, state: StepState, ctx: StepContext, call: _Call) -> Outcome:
        target = self.python.callable
        if call.error is not None:
            error = call.error
            return Failed(
                f"step '{self.name}': {target} raised {type(error).__name__}: {error}",
                retryable=True,
            )
        try:
            state.memo[MEMO_KEY] = json.loads(json.dumps(call.context.memo))
        except (TypeError, ValueError) as exc:
            return Failed(f"step '{self.name}': {target} left a memo that is not JSON ({exc})")
        value = call.value
        if isinstance(value, Wait):
            later = value.check_again_in
            return Pending(str(value.summary), ctx.now + later if later is not None else None)
        if isinstance(value, Finish):
            try:
                return Done(json.loads(json.dumps(value.result)))
            except (TypeError, ValueError) as exc:
                return Failed(
                    f"step '{self.name}': {target} finished with a non-JSON result ({exc})"
                )
        if isinstance(value, Fail):
            return Failed(f"step '{self.name}': {value.message}")
        return Failed(
            f"step '{self.name}': {target} returned {type(value).__name__}; "
            "expected Wait, Finish or Fail",
            FailureType.CONFIGURATION_ERROR,
        )


def _frozen(value: Any) -> Any:
    """A deep, read-only copy: mappings become MappingProxyType, lists tuples."""
    if isinstance(value, dict | MappingProxyType):
        return MappingProxyType({key: _frozen(inner) for key, inner in value.items()})
    if isinstance(value, list | tuple):
        return tuple(_frozen(inner) for inner in value)
    return copy.deepcopy(value)


def _load(target: str) -> Callable[[PythonContext], Any]:
    module_name, _, path = target.partition(":")
    found: Any = importlib.import_module(module_name)
    for part in path.split("."):
        found = getattr(found, part)
    if not callable(found):
        raise TypeError(f"{target} is not callable")
    return cast("Callable[[PythonContext], Any]", found)


class _Call:
    """One call of the callable, in its own daemon thread."""

    def __init__(self, function: Callable[[PythonContext], Any], context: PythonContext) -> None:
        self.context = context
        self.value: Any = None
        self.error: BaseException | None = None
        self.finished = threading.Event()
        name = f"python-step-{context.step}"
        threading.Thread(target=self._run, args=(function,), name=name, daemon=True).start()

    def _run(self, function: Callable[[PythonContext], Any]) -> None:
        try:
            self.value = function(self.context)
        except BaseException as exc:  # reported as the step's failure, never lost in a thread
            self.error = exc
        finally:
            self.finished.set()


class _Running:
    """Calls that outlived their poll, by (run id, step, callable), for a later poll."""

    def __init__(self) -> None:
        self._calls: dict[tuple[str, str, str], _Call] = {}
        self._lock = threading.Lock()

    def take(self, key: tuple[str, str, str]) -> _Call | None:
        with self._lock:
            return self._calls.pop(key, None)

    def keep(self, key: tuple[str, str, str], call: _Call) -> None:
        with self._lock:
            self._calls[key] = call


_calls = _Running()
