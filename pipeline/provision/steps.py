"""What converging an engine to the contracts takes: steps, each with its verdict, in a plan; what applying it did."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from emulation.service import ServiceError

# compatible: applied online by `olist apply`; backfill / replay: the change is safe but data must be recomputed
# (the step says what, from where) and `apply` leaves it to that; breaking: refused, the contract must change.
Verdict = Literal["compatible", "backfill", "replay", "breaking"]
ENGINES = ("postgres", "kafka", "connect", "cassandra", "programs")  # "programs": the speed lane's supervised ones


@dataclass(frozen=True)
class Step:
    """One change to one object of one engine."""

    engine: str
    target: str  # the object: olist.order_payments, topic olist.order_payments, connector ...
    action: str  # what the step does, in a few words: "add column payment_channel varchar(16)"
    verdict: Verdict = "compatible"
    creates: bool = False  # makes an object that is missing altogether (every command may do that on first use)
    detail: str = ""  # a backfill's or replay's what-from-where, a breaking change's safe migration
    blocks: bool = False  # changes the columns readers and writers use: commands wait for it (PendingChange)
    run: Callable[[], None] | None = field(default=None, compare=False, repr=False)

    def __str__(self) -> str:
        return f"{self.engine}: {self.target}: {self.action}"


@dataclass
class Plan:
    """Every step that closes the gap between what is deployed and what the contracts and settings say, in order."""

    steps: list[Step] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # engine -> why it was not read (not running)

    @property
    def breaking(self) -> list[Step]:
        return [s for s in self.steps if s.verdict == "breaking"]

    @property
    def compatible(self) -> list[Step]:
        return [s for s in self.steps if s.verdict == "compatible"]

    @property
    def recompute(self) -> list[Step]:
        """Steps that need a backfill or a replay: safe, but `apply` does not recompute data by itself."""
        return [s for s in self.steps if s.verdict in ("backfill", "replay")]

    @property
    def converged(self) -> bool:
        return not self.steps


@dataclass(frozen=True)
class Applied:
    step: Step
    seconds: float


@dataclass
class ApplyReport:
    """What `olist apply` did: the steps it ran (with how long each took), those it refused or left, and why."""

    plan: Plan
    applied: list[Applied] = field(default_factory=list)
    refused: list[Step] = field(default_factory=list)  # breaking: nothing was applied
    left: list[Step] = field(default_factory=list)  # backfill / replay: named, not run
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.refused


def converge(planner: Callable[[], list[Step]], rounds: int = 3) -> list[Step]:
    """Run the steps that make missing objects (what one round makes, a table, may need more in the next, its
    grants) and return them; raise :class:`PendingChange` when a blocking change is pending (others wait)."""
    done: list[Step] = []
    for _ in range(rounds):
        steps = planner()
        if blocking := [s for s in steps if s.blocks and not s.creates]:
            raise PendingChange(blocking)
        made = [s for s in steps if s.creates]
        if not made:
            break
        for step in made:
            assert step.run is not None
            step.run()
        done += made
    return done


class PendingChange(ServiceError):
    """An engine is behind its contracts: a command that needs it says which step is pending, in one line."""

    def __init__(self, steps: list[Step]) -> None:
        self.steps = steps
        first = steps[0]
        more = f" (and {len(steps) - 1} more)" if len(steps) > 1 else ""
        how = ("`olist plan` says why it is refused and what a safe migration is" if first.verdict == "breaking"
               else "`olist apply` makes it")
        super().__init__(f"{first} is pending{more}: {how}")
