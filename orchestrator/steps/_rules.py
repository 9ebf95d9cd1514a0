"""Measurement rules: how a polled check decides on evidence rather than on one sample.

A kind whose polls judge a condition (`until` / `fail_if`, or its own, like alarms) takes
these fields by inheriting `Measured` (`class HttpStep(Measured, Step)`); the engine applies
them to every poll's outcome (`engine.measure`), the same for steps and guards:

    initial_delay    the first poll only after this long            (Argo: initialDelay)
    stable_for       `until` held on every poll for this long        (Azure: minimum duration
                                                                      for steady results)
    successes        `until` held on N polls in a row                (Argo: consecutiveSuccessLimit)
    failure_limit    `fail_if` may be true N times before it fails   (Argo: failureLimit)
    error_limit      N errors in a row are tolerated, one more fails (Argo: consecutiveErrorLimit)
    max_polls        after N polls with nothing settled: inconclusive (Argo: count, inconclusive)
    on_inconclusive  "fail", or "approve": ask `approvers` to decide, with the evidence

A kind tells the engine what a poll was: `Done` (its `until` held), `Failed(by_condition=
True)` (its `fail_if` held), `Pending(error=True)` or `Pending(unobserved=True)` (an error),
any other `Pending` (nothing settled).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from orchestrator.steps._base import Duration  # noqa: TC001 - pydantic needs it at run time


class Measured(BaseModel):
    """The measurement rules' fields (see the module's docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    initial_delay: Duration | None = None
    stable_for: Duration | None = None
    successes: int | None = Field(default=None, ge=1, le=1000)
    failure_limit: int = Field(default=0, ge=0, le=1000)
    error_limit: int | None = Field(default=None, ge=0, le=1000)
    max_polls: int | None = Field(default=None, ge=1, le=10_000)
    on_inconclusive: Literal["fail", "approve"] = "fail"
    approvers: list[str] = Field(default_factory=list, max_length=50)
    """Who decides an inconclusive check (`on_inconclusive: "approve"`): principals as an
    approval step takes them (docs/APPROVALS.md)."""

    @model_validator(mode="after")
    def _inconclusive(self) -> Measured:
        if self.on_inconclusive == "approve" and not self.approvers:
            raise ValueError('on_inconclusive "approve" needs approvers: who decides')
        if self.approvers and self.on_inconclusive != "approve":
            raise ValueError('approvers are for on_inconclusive "approve"')
        if self.on_inconclusive == "approve" and self.max_polls is None:
            raise ValueError('on_inconclusive "approve" needs max_polls: when to ask')
        return self

    @property
    def measured(self) -> bool:
        """Whether any rule differs from a single sample's verdict (today's behaviour)."""
        return bool(
            self.initial_delay
            or self.stable_for
            or self.successes
            or self.failure_limit
            or self.error_limit is not None
            or self.max_polls
        )
