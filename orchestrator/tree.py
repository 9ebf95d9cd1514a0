"""The shapes of a v2 gate: steps grouped in `parallel` and `any` groups, sequences as
branches, guards beside the steps and `on_failure` hooks after them.

    {"name": "checks", "parallel": [BRANCH, BRANCH, ...]}   every branch, concurrently
    {"name": "either", "any": [BRANCH, BRANCH, ...]}        the first branch to succeed
    BRANCH: a step, a group, or {"name": "canary", "steps": [NODE, ...]} (in order)

These are data only: `definition.py` parses and checks them, `engine.py` runs them. Names are
unique across the whole gate (steps, groups, sequences, guards and hooks), so a name is the
key of a node's state, its claims and its decisions, and `steps.NAME` in an expression.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from orchestrator.steps import Duration, Expression, Step
from orchestrator.steps._base import _step_name

if TYPE_CHECKING:
    from collections.abc import Iterator

Name = Annotated[str, AfterValidator(_step_name)]


class Group(BaseModel):
    """A node that holds other nodes."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    kind: ClassVar[str]

    name: Name
    when: Expression | None = None
    advisory: bool = False
    timeout: Duration | None = None

    @property
    def children(self) -> tuple[Node, ...]:
        raise NotImplementedError


class Parallel(Group):
    """Every branch at once: done when all are, failed as soon as one fails."""

    kind: ClassVar[str] = "parallel"

    parallel: tuple[Any, ...] = Field(min_length=2)

    @property
    def children(self) -> tuple[Node, ...]:
        return self.parallel


class AnyOf(Group):
    """Every branch at once: done when the first one is, failed when all have failed."""

    kind: ClassVar[str] = "any"

    any_: tuple[Any, ...] = Field(alias="any", min_length=2)

    @property
    def children(self) -> tuple[Node, ...]:
        return self.any_


class Sequence(Group):
    """A branch of steps in order (only inside `parallel` or `any`)."""

    kind: ClassVar[str] = "sequence"

    steps: tuple[Any, ...] = Field(min_length=1)

    @property
    def children(self) -> tuple[Node, ...]:
        return self.steps


Node = Step | Group
GROUP_KINDS: dict[str, type[Group]] = {"parallel": Parallel, "any": AnyOf}
"""The keys that make a group."""
GROUPS = frozenset({"parallel", "any", "sequence"})
"""The kinds of the groups' own states (a node state of another kind is a step's)."""


class Guard(BaseModel):
    """A check polled on its own `every` from the gate's start (or once `after` is done) to
    its end, and once more, fresh, before the gate succeeds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    step: Step
    on_violation: Literal["fail", "hold"] = "fail"
    after: str | None = None

    @property
    def name(self) -> str:
        return self.step.name


HOOK_TIMEOUT = 600.0
"""A hook's timeout unless it says otherwise."""


class Hook(BaseModel):
    """A step run once, in order, after the gate failed (and after a cancel if `on_cancel`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    step: Step
    on_cancel: bool = False

    @property
    def name(self) -> str:
        return self.step.name

    @property
    def timeout(self) -> float:
        return self.step.timeout if self.step.timeout is not None else HOOK_TIMEOUT


def walk(nodes: tuple[Node, ...] | list[Node]) -> Iterator[Node]:
    """Every node, depth first, in order (the order of the run's node states)."""
    for node in nodes:
        yield node
        if isinstance(node, Group):
            yield from walk(node.children)


def levels(nodes: tuple[Node, ...] | list[Node], level: int = 0) -> Iterator[tuple[Node, int]]:
    """Every node with how many groups it is in, in the order of `walk`."""
    for node in nodes:
        yield node, level
        if isinstance(node, Group):
            yield from levels(node.children, level + 1)


def leaves(nodes: tuple[Node, ...] | list[Node]) -> Iterator[Step]:
    """Every step of a kind, in order."""
    for node in walk(nodes):
        if isinstance(node, Step):
            yield node


def depth(node: Node) -> int:
    """How many groups deep the node reaches (a step: 0)."""
    if isinstance(node, Group):
        return 1 + max(depth(child) for child in node.children)
    return 0
