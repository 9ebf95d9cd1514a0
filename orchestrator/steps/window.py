"""`window`: done once the deployment window is open (a step that waits for it), or, as a
guard, passing while it is open and violated while it is closed.

    {"name": "business-hours", "window": {
       "timezone": "Europe/Berlin",
       "allow": ["Mon-Thu 09:00-16:00", "Fri 09:00-12:00"],
       "deny": ["2026-12-21..2027-01-04", "*-12-24"],
       "calendars": ["prod-change-calendar"], "freeze": "payments", "min_remaining": "45m"}}

The arithmetic (wall-clock semantics, daylight saving, deny over allow, min_remaining) is in
`orchestrator.windows`, pure. A poll adds what only the outside knows:

    freeze      ctx.services.governance (a `Freezes`), when the services carry one: an active
                freeze on the named freeze keeps the window closed ("frozen by ... since ...")
    calendars   SSM GetCalendarState at the gate's clock (AtTime): open only while every
                calendar is OPEN; its next transition (and the one after) feed the ETA
    the rules   then open -> Done({"opened_at", "closes_at", "timezone", "remaining_seconds"});
                closed -> Pending("window opens Mon 09:00 Europe/Berlin (in 14h)",
                                  eta = the opening, next_check = min(opening, now + every))

A throttled or unreachable SSM (or freeze store) is retried at the next poll; an unknown
calendar or a denied call fails the gate (ConfigurationError, PermissionError).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Protocol

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from orchestrator import aws, windows
from orchestrator.exceptions import FailureType, TransientError
from orchestrator.steps._base import Done, Duration, Failed, Outcome, Pending, Step, StepContext
from orchestrator.text import clip, format_instant

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from mypy_boto3_ssm import SSMClient

    from orchestrator.model import StepState

FREEZE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_CALENDAR = re.compile(r"(arn:aws[a-z-]*:ssm:[a-z0-9-]+:\d{12}:document/)?[A-Za-z0-9_.-]{3,128}")


# region the freeze seam


class FreezeRecord(Protocol):
    """An active freeze: who set it, when (epoch seconds) and why. A record may also carry
    `until` (epoch seconds or None): the window's ETA then starts there."""

    @property
    def by(self) -> str: ...
    @property
    def since(self) -> float: ...
    @property
    def reason(self) -> str: ...


class Freezes(Protocol):
    """Where freezes are looked up: the runs table's freezes, reached as
    `ctx.services.governance` (`orchestrator.governance.Governance`)."""

    def active(self, name: str, now: float) -> FreezeRecord | None:
        """The freeze `name` if it is on at `now`, else None; TransientError when the store
        cannot be read (the poll tries again)."""
        ...


def freezes_of(ctx: StepContext) -> Freezes | None:
    """The freeze source the services carry, or None: no source, so nothing is frozen."""
    if ctx.services is None:
        return None
    try:
        found: Freezes = ctx.services.governance
    except RuntimeError:  # services built without a table (e.g. `orchestrator window`)
        return None
    return found


# endregion
# region the spec


def _templated(value: object) -> bool:
    """A `${...}` value is checked once rendered, at the poll."""
    return isinstance(value, str) and "${" in value


def _checked(parse: Callable[[str], object]) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not _templated(value):
            try:
                parse(value)
            except windows.WindowSpecError as exc:
                raise _invalid(str(exc)) from None
        return value

    return check


def _invalid(message: str) -> PydanticCustomError:
    """A field's error as the message alone (a ValueError would read "Value error, ...")."""
    return PydanticCustomError("window", message)


def _one_or_many(value: object) -> object:
    return [value] if isinstance(value, str) else value


def _freeze_name(value: str) -> str:
    if not _templated(value) and not FREEZE_NAME.fullmatch(value):
        raise _invalid(
            f"invalid freeze name {value!r}: 1 to 64 of A-Z a-z 0-9 _ . - (starting with a "
            "letter or digit)"
        )
    return value


def _calendar(value: str) -> str:
    if not _templated(value) and not _CALENDAR.fullmatch(value):
        raise _invalid(
            f"invalid change calendar {value!r}: a Change Calendar document's name or ARN "
            "(arn:aws:ssm:REGION:ACCOUNT:document/NAME)"
        )
    return value


def _min_remaining(value: float | None) -> float | None:
    if value is not None and value > windows.MAX_MIN_REMAINING:
        raise _invalid("at most 7d")
    return value


TimeZoneName = Annotated[str, AfterValidator(_checked(windows.load_zone))]
WeeklyRangeText = Annotated[str, AfterValidator(_checked(windows.WeeklyRange.parse))]
CronText = Annotated[str, AfterValidator(_checked(windows.AwsCron.parse))]
DenialText = Annotated[str, AfterValidator(_checked(windows.Denial.parse))]


class WindowSpec(BaseModel):
    """When deployments may start: see docs/STEPS.md (`window`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: TimeZoneName = "UTC"
    allow: list[WeeklyRangeText] = Field(default_factory=list, max_length=50)
    cron: Annotated[list[CronText], BeforeValidator(_one_or_many)] = Field(
        default_factory=list, max_length=10
    )
    deny: list[DenialText] = Field(default_factory=list, max_length=200)
    calendars: list[Annotated[str, AfterValidator(_calendar)]] = Field(
        default_factory=list, max_length=10
    )
    freeze: Annotated[str, AfterValidator(_freeze_name)] | None = None
    min_remaining: Annotated[Duration | None, AfterValidator(_min_remaining)] = None

    @model_validator(mode="after")
    def _something_to_check(self) -> WindowSpec:
        if not (self.allow or self.cron or self.deny or self.calendars or self.freeze):
            raise _invalid("give at least one of 'allow', 'cron', 'deny', 'calendars', 'freeze'")
        return self

    def schedule(self) -> windows.Schedule:
        """The compiled rules (WindowSpecError when a rendered `${...}` is invalid)."""
        return windows.compile_schedule(
            self.timezone,
            tuple(self.allow),
            tuple(self.cron),
            tuple(self.deny),
            self.min_remaining or 0.0,
        )


# endregion


class WindowStep(Step):
    """Wait until the window is open; as a guard, pass while it is open."""

    kind: ClassVar[str] = "window"
    not_a_guard: ClassVar[str | None] = None
    default_every: ClassVar[float] = 60.0

    window: WindowSpec

    def poll(self, state: StepState, ctx: StepContext) -> Outcome:
        spec, now = self.window, ctx.now
        try:
            schedule = spec.schedule()
        except windows.WindowSpecError as exc:
            return Failed(f"step '{self.name}': window: {exc}", FailureType.CONFIGURATION_ERROR)
        frozen: FreezeRecord | None = None
        source = freezes_of(ctx) if spec.freeze else None
        if source is not None and spec.freeze:
            try:
                frozen = source.active(spec.freeze, now)
            except TransientError as exc:
                return Pending(f"freeze store unavailable ({exc}); retrying")
        blocked: list[windows.Interval] = []
        closed_by = ""
        if spec.calendars:
            found = self._calendars(ctx, now)
            if not isinstance(found, tuple):
                return found
            blocked, closed_by = found
        if frozen is not None:
            state.memo["held_until"] = now  # lifted later than this, at the earliest
            return self._frozen(spec.freeze or "", frozen, schedule, blocked, now)
        if closed_by:  # the calendars reopen at their transition, at the earliest
            state.memo["held_until"] = min(blocked[0][1], now + windows.HORIZONS[-1])
        status = schedule.status(now, blocked)
        if status.open:
            # The rules say since when; a freeze or calendar seen closing it since then
            # (past calendar states are not asked for) moves the opening later.
            opened = status.opened_at
            held = state.memo.get("held_until")
            if isinstance(held, (int, float)) and held <= now and (opened is None or held > opened):
                opened = float(held)
            return Done(
                valid_until=(
                    None
                    if status.closes_at is None
                    else status.closes_at - (self.window.min_remaining or 0.0)
                ),
                result={
                    "opened_at": _iso(opened),
                    "closes_at": _iso(status.closes_at),
                    "timezone": schedule.zone_name,
                    "remaining_seconds": (
                        None if status.closes_at is None else round(status.closes_at - now, 3)
                    ),
                },
            )
        if status.opens_at is None:
            by_rules = schedule.status(now) if blocked else status
            if by_rules.open or by_rules.opens_at is not None:  # the calendars keep it shut
                return Pending(
                    f"{closed_by or 'change calendars closed'}, with no reopening scheduled",
                    next_check=now + self.interval,
                )
            return Failed(
                f"step '{self.name}': the window never opens within "
                f"{windows.HORIZONS[-1] // windows.DAY} days (check allow, cron and deny)",
                FailureType.CONFIGURATION_ERROR,
            )
        opens = windows.describe_opening(status.opens_at, now, schedule.zone)
        detail = f"{closed_by}; window opens {opens}" if closed_by else f"window opens {opens}"
        return Pending(
            clip(detail, 300),
            next_check=min(status.opens_at, now + self.interval),
            eta=status.opens_at,
        )

    def _frozen(
        self,
        name: str,
        record: FreezeRecord,
        schedule: windows.Schedule,
        blocked: Sequence[windows.Interval],
        now: float,
    ) -> Pending:
        until = getattr(record, "until", None)
        eta = None
        if isinstance(until, (int, float)) and until > now:
            after = schedule.status(float(until), blocked)
            eta = float(until) if after.open else after.opens_at
        since = format_instant(float(record.since), "minutes")
        detail = f"freeze '{name}': frozen by {record.by} since {since}: {record.reason}"
        return Pending(clip(detail, 300), next_check=now + self.interval, eta=eta)

    def _calendars(
        self, ctx: StepContext, now: float
    ) -> tuple[list[windows.Interval], str] | Outcome:
        """Closed stretches the change calendars announce (now to their next transition, and
        the next closed stretch after that), and what closes the window now ("" if open)."""
        from botocore.exceptions import BotoCoreError, ClientError

        assert ctx.services is not None, "the engine was run without services"
        names = list(self.window.calendars)
        try:
            client = ctx.services.aws("ssm")
            is_open, transition = _calendar_state(client, names, now)
            blocked: list[windows.Interval] = []
            closed_by = ""
            if not is_open:
                blocked.append((now, transition if transition is not None else math.inf))
                until = f" until {format_instant(transition, 'minutes')}" if transition else ""
                closed_by = f"change calendar closed{until} ({', '.join(names)})"
            elif transition is not None:
                _, reopens = _calendar_state(client, names, transition)
                blocked.append((transition, reopens if reopens is not None else math.inf))
        except ClientError as exc:
            fault, code = aws.classify(exc), aws.describe(exc)
            if fault.transient:
                return Pending(f"SSM unavailable ({code}); retrying")
            failure = (
                FailureType.PERMISSION_ERROR
                if fault is aws.AwsFault.DENIED
                else FailureType.CONFIGURATION_ERROR
            )
            return Failed(
                f"step '{self.name}': GetCalendarState of {', '.join(names)} failed ({code})",
                failure,
            )
        except BotoCoreError as exc:
            return Pending(f"SSM unreachable ({type(exc).__name__}); retrying")
        return blocked, closed_by


def _calendar_state(client: SSMClient, names: list[str], at: float) -> tuple[bool, float | None]:
    """Whether every calendar is OPEN at `at` (the gate's clock, so rehearsals agree), and
    when that next changes (None: no change scheduled)."""
    answer: Any = client.get_calendar_state(CalendarNames=names, AtTime=windows.utc_text(at))
    transition = answer.get("NextTransitionTime")
    when = _epoch(transition) if transition else None
    return answer.get("State") == "OPEN", when


def _epoch(text: str) -> float:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:  # AWS writes UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _iso(at: float | None) -> str | None:
    return None if at is None else windows.utc_text(at)


def parse_window(raw: object, where: str = "window") -> WindowSpec:
    """A window's fields, validated as a gate's are; DefinitionError naming each bad field
    under `where` (`window.allow[1]: invalid range ...`). For `orchestrator window`."""
    from pydantic import ValidationError

    from orchestrator.exceptions import DefinitionError

    try:
        return WindowSpec.model_validate(raw)
    except ValidationError as exc:
        errors: list[str] = []
        for error in exc.errors():
            path = where
            for part in error["loc"]:
                path += f"[{part}]" if isinstance(part, int) else f".{part}"
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown field"
            errors.append(f"{path}: {message}")
        raise DefinitionError(errors) from None
