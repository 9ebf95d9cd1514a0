"""Where a step's AWS calls go: another account's role, another region, or the function's own.

Every step kind that calls AWS (and a secret reference, and an approval's SNS topic) carries
the `Target` fields; the gate's `defaults` state them once for the whole gate:

    {"defaults": {"role_arn": "arn:aws:iam::222233334444:role/gate-reader",
                  "external_id": "release-gates", "region": "eu-west-1"},
     "steps": [{"name": "quiet", "alarms": {"prefix": "checkout-"}},          acts as the role
               {"name": "mine", "alarms": {"prefix": "ci-"}, "role_arn": null}]} as itself

    role_arn     the role the calls are made as (STS AssumeRole; none: the function's role)
    external_id  the ExternalId the role's trust policy asks for (only with role_arn)
    region       the region of the calls (none: the function's own)

`Target.acting_as(run_id, step)` gives the frozen `AwsTarget` a kind hands to
`services.aws(..., target=...)`, with a `RoleSessionName` naming the run and the step, so
the target account's CloudTrail says which gate run made each call. The credentials
themselves live only in the adapter (`orchestrator.assume`): never in a run, a log or a
message.

`apply_defaults(document)` copies the gate's `defaults` into every step of an AWS-calling
kind (in steps, groups, sequences, guards, on_failure) that does not set them itself;
`role_arn` and `external_id` travel together. Secret references and SNS topics keep their
own fields: they usually live in the pipeline's own account.

Errors, raised by the adapter when a role cannot be assumed, caught by the kinds:

    RoleError
    ├── RoleDenied       a TerminalError: AccessDenied (trust policy, sts:AssumeRole not
    │                    granted, a wrong external id) or a request STS refuses as invalid
    └── RoleUnavailable  a TransientError: STS throttled, failed (5xx) or unreachable
"""

from __future__ import annotations

import copy
import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from orchestrator.exceptions import FailureType, OrchestratorError, TerminalError, TransientError

if TYPE_CHECKING:
    from orchestrator.model import StepState
    from orchestrator.steps._base import Failed, Pending

FIELDS = ("role_arn", "external_id", "region")
MAX_SESSION_NAME = 64  # STS RoleSessionName: 2 to 64 of [\w+=,.@-]
_SESSION_UNSAFE = re.compile(r"[^\w+=,.@-]")
_ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,576}")
_EXTERNAL_ID = re.compile(r"[\w+=,.@:/-]{2,1224}")
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")


def _templated(value: str) -> bool:
    """A `${...}` value is checked once rendered (rendering validates the step again)."""
    return "${" in value


class Target(BaseModel):
    """The optional `role_arn`, `external_id` and `region` of an AWS-calling step (a mixin:
    `class AlarmsStep(Target, Step)`), a secret reference or an SNS notification."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role_arn: str | None = None
    external_id: str | None = None
    region: str | None = None

    @field_validator("role_arn")
    @classmethod
    def _role_arn(cls, value: str | None) -> str | None:
        if value is not None and not (_templated(value) or _ROLE_ARN.fullmatch(value)):
            raise ValueError(f"invalid role ARN {value!r} (use arn:aws:iam::ACCOUNT:role/NAME)")
        return value

    @field_validator("external_id")
    @classmethod
    def _external_id(cls, value: str | None) -> str | None:
        if value is not None and not (_templated(value) or _EXTERNAL_ID.fullmatch(value)):
            raise ValueError(
                "invalid external id: use 2 to 1224 of A-Z a-z 0-9 and + = , . @ : / - _"
            )
        return value

    @field_validator("region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        if value is not None and not (_templated(value) or _REGION.fullmatch(value)):
            raise ValueError(f"invalid region {value!r} (use e.g. 'eu-west-1')")
        return value

    @model_validator(mode="after")
    def _external_id_needs_a_role(self) -> Target:
        if self.external_id is not None and self.role_arn is None:
            raise ValueError("'external_id' goes with 'role_arn'")
        return self

    def acting_as(self, run_id: str, step: str) -> AwsTarget | None:
        """What `services.aws(..., target=...)` needs (None: the function's role and region)."""
        if self.role_arn is None and self.region is None:
            return None
        return AwsTarget(
            role_arn=self.role_arn,
            external_id=self.external_id,
            region=self.region,
            session_name=session_name(run_id, step) if self.role_arn is not None else None,
        )


class Defaults(Target):
    """The gate's `defaults`: the target of every AWS-calling step that names none."""


@dataclass(frozen=True)
class AwsTarget:
    """A role (optional), its external id, a region (optional) and the session name: the key
    under which the adapter caches credentials and clients."""

    role_arn: str | None
    external_id: str | None
    region: str | None
    session_name: str | None

    def __str__(self) -> str:
        """`role ARN in REGION`, for messages (never credentials: this object has none)."""
        who = f"role {self.role_arn}" if self.role_arn else "the function's role"
        return f"{who} in {self.region}" if self.region else who

    def record(self) -> dict[str, str]:
        """What a step's memo keeps (and `orchestrator run` shows): who it acted as."""
        found = {"role_arn": self.role_arn, "region": self.region, "session": self.session_name}
        return {key: value for key, value in found.items() if value}


def session_name(run_id: str, step: str) -> str:
    """STS's RoleSessionName for a step of a run: `<run id>-<step>`, characters outside
    `[\\w+=,.@-]` replaced; past 64 characters, shortened around a hash of both, keeping the
    run id whole where it fits (a run id is a CodePipeline job id: 36 characters)."""
    plain = _SESSION_UNSAFE.sub("-", f"{run_id}-{step}")
    if 2 <= len(plain) <= MAX_SESSION_NAME and plain == f"{run_id}-{step}":
        return plain
    digest = hashlib.sha256(f"{run_id}\0{step}".encode()).hexdigest()[:10]
    head = plain[: MAX_SESSION_NAME - len(digest) - 1]
    return f"{head}-{digest}"


def acted_as(state: StepState, target: AwsTarget | None) -> None:
    """Note in the step's memo the role it acted as (once the role's credentials were had)."""
    if target is not None and target.role_arn is not None:
        state.memo["acted_as"] = target.record()


def as_whom(target: AwsTarget | None) -> str:
    """` as role ARN in REGION` for a failure message, or "" for the function's own role."""
    return f" as {target}" if target is not None else ""


# region errors


class RoleError(OrchestratorError):
    """A role could not be assumed; the message names the role, never a credential."""


class RoleDenied(RoleError, TerminalError):
    """STS refused the AssumeRole: the gate fails (PermissionError for AccessDenied)."""

    def __init__(self, message: str, failure_type: FailureType = FailureType.PERMISSION_ERROR):
        self.failure_type = failure_type
        super().__init__(message)


class RoleUnavailable(RoleError, TransientError):
    """STS was busy, failing or unreachable: the step tries again at its next poll."""


def role_outcome(step: str, exc: RoleError) -> Pending | Failed:
    """What a step's poll returns when its role could not be assumed."""
    from orchestrator.steps._base import Failed, Pending

    if isinstance(exc, RoleDenied):
        return Failed(f"step '{step}': {exc}", exc.failure_type)
    return Pending(f"{exc}; retrying", unobserved=True)  # a guard has no verdict yet


# endregion

# region gate defaults


def apply_defaults(document: dict[str, Any]) -> dict[str, Any]:
    """A copy of a v2 gate document with its `defaults` copied into every step of an
    AWS-calling kind that does not set them itself (a key present, even null, is set):
    `role_arn` and `external_id` as a pair (a step naming its own role keeps its own external
    id, or none), `region` on its own. Walks `steps`, `guards` and `on_failure`, into
    `parallel` and `any` groups and `steps` sequences at any depth. Invalid `defaults`, or a
    document of the wrong shape, are copied unchanged: validation reports them by path."""
    result = copy.deepcopy(document)
    if not isinstance(result, dict):
        return result
    raw = result.get("defaults")
    if not isinstance(raw, dict):
        return result
    try:
        defaults = Defaults.model_validate(raw)
    except ValidationError:
        return result
    given = defaults.model_dump(exclude_none=True)
    if not given:
        return result
    for key in ("steps", "guards", "on_failure"):
        _walk(result.get(key), given, 0)
    return result


MAX_DEPTH = 64
"""Deeper nesting is left alone (validation refuses it long before)."""


def _walk(items: object, given: dict[str, str], depth: int) -> None:
    if not isinstance(items, list) or depth > MAX_DEPTH:
        return
    for item in items:
        if not isinstance(item, dict):
            continue
        kind = _aws_kind(item)
        if kind:
            if "role_arn" in given and not ({"role_arn", "external_id"} & item.keys()):
                item["role_arn"] = given["role_arn"]
                if "external_id" in given:
                    item["external_id"] = given["external_id"]
            if "region" in given and "region" not in item:
                item["region"] = given["region"]
            continue
        for key in ("parallel", "any", "steps"):
            _walk(item.get(key), given, depth + 1)


def _aws_kind(item: dict[str, Any]) -> bool:
    """Whether `item` is a step of exactly one kind, and that kind carries `Target`."""
    from orchestrator.steps import KINDS

    kinds = [key for key in KINDS if key in item]
    return len(kinds) == 1 and aws_calling(kinds[0])


def aws_calling(kind: str) -> bool:
    """Whether steps of `kind` take `role_arn`, `external_id` and `region` (and defaults)."""
    from orchestrator.steps import kind_class

    return issubclass(kind_class(kind), Target)


# endregion
