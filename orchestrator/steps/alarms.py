"""`alarms`: done once CloudWatch alarms have stayed out of ALARM for a while (a health bake).

    {"name": "healthy", "alarms": {"prefix": "checkout-", "for": "10m"}, "every": "1m"}

The alarms are the ones named in `names` plus every alarm (metric or composite) whose name
starts with `prefix`. At each poll all of them are read with DescribeAlarms. With
`fail_on_alarm` (the default) one alarm in ALARM fails the gate at once, naming it and its
StateReason. Otherwise the step waits until every alarm has been OK, without a break, for
`for` (measured from the first poll that saw them all OK; INSUFFICIENT_DATA and, without
`fail_on_alarm`, ALARM restart the count). A state change seen in an alarm's timestamps
restarts it too, so a flap between two polls is not missed. A named alarm that does not
exist, or a prefix that matches none, fails the gate: watching nothing proves nothing.

Result: `{"alarms": [{"name", "type", "state"}], "ok_for_seconds": float}` (no reasons: at
that point every alarm is OK, and a long list must still fit the run's DynamoDB item).
A throttled or unreachable CloudWatch (or STS) is retried at the next poll. With `role_arn`
and `region` (`orchestrator.targets`) the alarms are another account's, or region's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from orchestrator import aws
from orchestrator.durations import format_duration
from orchestrator.exceptions import FailureType
from orchestrator.steps._base import Done, Duration, Failed, Outcome, Pending, Step, StepContext
from orchestrator.steps._rules import Measured
from orchestrator.targets import RoleError, Target, acted_as, as_whom, role_outcome
from orchestrator.text import counted

if TYPE_CHECKING:
    from collections.abc import Mapping

    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_cloudwatch.literals import AlarmTypeType

    from orchestrator.model import StepState

ALARM_TYPES: list[AlarmTypeType] = ["MetricAlarm", "CompositeAlarm"]
MAX_NAMES_PER_CALL = 100  # DescribeAlarms' limit on AlarmNames
MAX_REASON_CHARS = 300


class AlarmWatch(BaseModel):
    """Which alarms to watch, and for how long they must stay OK."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_by_name=True, serialize_by_alias=True
    )

    names: list[str] = Field(default_factory=list, max_length=500)
    prefix: str | None = Field(default=None, min_length=1)
    for_: Duration | None = Field(default=None, alias="for")
    fail_on_alarm: bool = True

    @model_validator(mode="after")
    def _something_to_watch(self) -> AlarmWatch:
        if not self.names and self.prefix is None:
            raise ValueError("alarms: give 'names', 'prefix' or both")
        return self


class AlarmsStep(Measured, Target, Step):
    """Wait until the alarms have been OK for `alarms.for`; fail on ALARM unless told not to."""

    kind: ClassVar[str] = "alarms"
    not_a_guard: ClassVar[str | None] = None
    default_every: ClassVar[float] = 60.0

    alarms: AlarmWatch

    def poll(self, state: StepState, ctx: StepContext) -> Outcome:
        from botocore.exceptions import BotoCoreError, ClientError

        watch = self.alarms
        assert ctx.services is not None, "the engine was run without services"
        target = self.acting_as(ctx.run_id, self.name)
        try:
            client = ctx.services.aws("cloudwatch", target=target)
            acted_as(state, target)
            found = _describe(client, watch)
        except RoleError as exc:
            return role_outcome(self.name, exc)
        except ClientError as exc:
            fault, code = aws.classify(exc), aws.describe(exc)
            if fault.transient:
                return Pending(f"CloudWatch unavailable ({code}); retrying", unobserved=True)
            failure = FailureType.PERMISSION_ERROR if fault is aws.AwsFault.DENIED else None
            return Failed(
                f"step '{self.name}': DescribeAlarms failed ({code}){as_whom(target)}", failure
            )
        except BotoCoreError as exc:
            return Pending(
                f"CloudWatch unreachable ({type(exc).__name__}); retrying", unobserved=True
            )
        missing = [name for name in watch.names if name not in found]
        if missing:
            return Failed(
                f"step '{self.name}': no such alarm: {', '.join(missing)}",
                FailureType.CONFIGURATION_ERROR,
            )
        if not found:
            return Failed(
                f"step '{self.name}': no alarm name starts with '{watch.prefix}'",
                FailureType.CONFIGURATION_ERROR,
            )
        alarms = [found[name] for name in sorted(found)]
        firing = [a for a in alarms if a["state"] == "ALARM"]
        if firing and watch.fail_on_alarm:
            named = "; ".join(f"'{a['name']}' ({a['reason'] or 'no reason given'})" for a in firing)
            which = "alarm" if len(firing) == 1 else "alarms"
            return Failed(f"step '{self.name}': {which} in ALARM: {named}", by_condition=True)
        not_ok = [a for a in alarms if a["state"] != "OK"]
        if not_ok:
            state.memo.pop("ok_since", None)
            listed = ", ".join(f"{a['name']} ({a['state']})" for a in not_ok[:5])
            more = f" and {len(not_ok) - 5} more" if len(not_ok) > 5 else ""
            return Pending(f"{len(not_ok)} of {len(alarms)} alarms not OK: {listed}{more}")
        since = float(state.memo.get("ok_since", ctx.now))
        changed = max((a["changed_at"] for a in alarms if a["changed_at"] is not None), default=0)
        since = max(since, min(changed, ctx.now))  # a flap between polls restarts the count
        state.memo["ok_since"] = since
        ok_for = ctx.now - since
        result = {
            "alarms": [{k: a[k] for k in ("name", "type", "state")} for a in alarms],
            "ok_for_seconds": round(ok_for, 3),
        }
        window = watch.for_ or 0.0
        if ok_for >= window:
            return Done(result)
        end = since + window
        return Pending(
            f"{counted(len(alarms), 'alarm')} OK for {format_duration(ok_for)} "
            f"of {format_duration(window)}",
            next_check=min(ctx.now + self.interval, end),
            eta=end,
        )


def _describe(client: CloudWatchClient, watch: AlarmWatch) -> dict[str, dict[str, Any]]:
    """Every watched alarm that exists, by name (DescribeAlarms, all pages)."""
    requests: list[dict[str, Any]] = [
        {"AlarmNames": watch.names[i : i + MAX_NAMES_PER_CALL]}
        for i in range(0, len(watch.names), MAX_NAMES_PER_CALL)
    ]
    if watch.prefix is not None:
        requests.append({"AlarmNamePrefix": watch.prefix})
    found: dict[str, dict[str, Any]] = {}
    for request in requests:
        token: str | None = None
        while True:
            more: dict[str, Any] = {"NextToken": token} if token else {}
            page = client.describe_alarms(**request, AlarmTypes=ALARM_TYPES, **more)
            for alarm in page.get("MetricAlarms", []):
                found[alarm["AlarmName"]] = _alarm("MetricAlarm", alarm)
            for composite in page.get("CompositeAlarms", []):
                found[composite["AlarmName"]] = _alarm("CompositeAlarm", composite)
            token = page.get("NextToken")
            if not token:
                break
    return found


def _alarm(kind: str, alarm: Mapping[str, Any]) -> dict[str, Any]:
    changed = alarm.get("StateTransitionedTimestamp") or alarm.get("StateUpdatedTimestamp")
    reason = str(alarm.get("StateReason", ""))
    if len(reason) > MAX_REASON_CHARS:
        reason = reason[: MAX_REASON_CHARS - 1] + "…"
    return {
        "name": alarm["AlarmName"],
        "type": kind,
        "state": alarm.get("StateValue", "INSUFFICIENT_DATA"),
        "reason": reason,
        "changed_at": changed.timestamp() if changed is not None else None,
    }
