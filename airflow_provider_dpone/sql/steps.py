"""Ordered steps: what a finalize executes and what ``dpone plan`` prints, from one list.

A planner returns ``Step`` objects; the sink runs them in order on its transaction
(``run_steps``) and ``dpone plan`` renders the very same list (``render``). A step may be
conditional on what earlier steps answered (``when``) and may judge its own answer (``check``,
raising the load's error); both carry the sentence the plan shows. Pure: no driver, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Params = tuple[Any, ...] | Mapping[str, Any]


@dataclass(frozen=True)
class Outcome:
    """What a statement answered: its row count and, for a query, its rows."""

    rowcount: int
    rows: list[tuple[Any, ...]] | None = None

    @property
    def first(self) -> tuple[Any, ...]:
        """The one row an aggregate answers."""
        if not self.rows:
            raise RuntimeError("the statement answered no row")
        return tuple(self.rows[0])


Outcomes = dict[str, Outcome]


@dataclass(frozen=True)
class Condition:
    """Run the step only when ``test`` holds on the earlier steps' outcomes."""

    describe: str
    test: Callable[[Outcomes], bool] = field(compare=False)


@dataclass(frozen=True)
class Check:
    """Judge a step's outcome; ``verify`` raises the load's error (nothing is committed then)."""

    describe: str
    verify: Callable[[Outcome, Outcomes], None] = field(compare=False)


@dataclass(frozen=True)
class Step:
    """One statement of a finalize, exactly as it runs."""

    sql: str
    params: Params = ()
    name: str = ""  # its outcome is kept under this name, for later steps and the result
    note: str = ""  # why, shown above it in the plan
    when: Condition | None = None
    check: Check | None = None


Execute = Callable[[Step], Outcome]


def run_steps(steps: Sequence[Step], execute: Execute, outcomes: Outcomes | None = None) -> Outcomes:
    """Execute ``steps`` in order; a step whose condition fails is skipped, a check may raise."""
    done: Outcomes = {} if outcomes is None else outcomes
    for step in steps:
        if step.when is not None and not step.when.test(done):
            continue
        outcome = execute(step)
        if step.name:
            done[step.name] = outcome
        if step.check is not None:
            step.check.verify(outcome, done)
    return done


def _shown(params: Params) -> str:
    values = params.values() if isinstance(params, Mapping) else params
    return ", ".join(repr(v) if isinstance(v, str) else str(v) for v in values)


def render(steps: Sequence[Step]) -> list[str]:
    """The plan's lines: each step's notes as ``--`` comments, then its statement."""
    lines: list[str] = []
    for step in steps:
        if step.note:
            lines.append(f"-- {step.note}")
        if step.when is not None:
            lines.append(f"-- only when {step.when.describe}")
        if step.check is not None:
            lines.append(f"-- fails {step.check.describe}")
        if step.params:
            lines.append(f"-- parameters: {_shown(step.params)}")
        lines.append(step.sql)
    return lines


def count(outcomes: Outcomes, name: str) -> int:
    """The row count of a step that ran, 0 when it was skipped."""
    found = outcomes.get(name)
    return 0 if found is None else found.rowcount


def step_dict(step: Step) -> dict[str, Any]:
    """A step as ``dpone plan --format json`` shows it."""
    out: dict[str, Any] = {"sql": step.sql}
    if step.params:
        out["params"] = [
            str(v) for v in (step.params.values() if isinstance(step.params, Mapping) else step.params)
        ]
    if step.when is not None:
        out["when"] = step.when.describe
    if step.check is not None:
        out["fails"] = step.check.describe
    if step.note:
        out["note"] = step.note
    return out
