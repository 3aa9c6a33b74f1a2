"""Quality gates: the checks a manifest declares and the result of running one on staging.

Pure: the models validate the manifest's ``quality`` list; a sink measures each check with
its own SQL and :func:`judge` decides pass or fail from the measurement. Results name the
check and the offending counts, with sample *key* values only, never other column values.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .durations import parse_duration
from .errors import TerminalError

Severity = Literal["error", "warn"]


class _Check(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = None
    severity: Severity = "error"

    @property
    def label(self) -> str:
        return self.name or self.default_label()

    def default_label(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError


class NotNullCheck(_Check):
    check: Literal["not_null"]
    columns: list[str] = Field(min_length=1)

    def default_label(self) -> str:
        return f"not_null({', '.join(self.columns)})"


class UniqueCheck(_Check):
    """Rows whose ``columns`` are all non-NULL must be unique on them (NULLs never collide)."""

    check: Literal["unique"]
    columns: list[str] = Field(min_length=1)

    def default_label(self) -> str:
        return f"unique({', '.join(self.columns)})"


class RowCountCheck(_Check):
    check: Literal["row_count"]
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)
    equals_source: bool = False

    @model_validator(mode="after")
    def _bounds(self) -> RowCountCheck:
        if self.min is None and self.max is None and not self.equals_source:
            raise ValueError("row_count needs 'min', 'max' or 'equals_source: true'")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"row_count: min ({self.min}) is greater than max ({self.max})")
        return self

    def default_label(self) -> str:
        parts = [
            f"min={self.min}" if self.min is not None else "",
            f"max={self.max}" if self.max is not None else "",
        ]
        parts.append("equals_source" if self.equals_source else "")
        return f"row_count({', '.join(p for p in parts if p)})"


class FreshnessCheck(_Check):
    """The newest ``column`` value in the batch is at most ``max_age`` old."""

    check: Literal["freshness"]
    column: str
    max_age: float  # seconds

    @field_validator("max_age", mode="before")
    @classmethod
    def _age(cls, value: Any) -> float:
        return parse_duration(value)

    def default_label(self) -> str:
        return f"freshness({self.column})"


class AcceptedValuesCheck(_Check):
    """Non-NULL ``column`` values are among ``values``."""

    check: Literal["accepted_values"]
    column: str
    values: list[str | int | float | bool] = Field(min_length=1)

    def default_label(self) -> str:
        return f"accepted_values({self.column})"


class SqlCheck(_Check):
    """A query over ``{staging}`` (and optionally ``{target}``) returning one number."""

    check: Literal["sql"]
    sql: str
    expect: float = 0

    @field_validator("sql")
    @classmethod
    def _placeholder(cls, value: str) -> str:
        if "{staging}" not in value:
            raise ValueError("the query must read the batch through the '{staging}' placeholder")
        return value

    def default_label(self) -> str:
        return "sql"


QualityCheck = Annotated[
    NotNullCheck | UniqueCheck | RowCountCheck | FreshnessCheck | AcceptedValuesCheck | SqlCheck,
    Field(discriminator="check"),
]


@dataclass
class Measurement:
    """What a sink measured for one check on staging."""

    value: float | int | None  # failing rows, the row count, the age in seconds, the query result
    sample_keys: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class QualityResult:
    name: str
    check: str
    severity: str
    passed: bool
    observed: float | int | None
    message: str
    sample_keys: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def judge(check: _Check, measured: Measurement, source_rows: int | None = None) -> QualityResult:
    """Pass or fail ``check`` from its measurement; the message names the offending counts."""
    value = measured.value
    samples = f"; sample keys: {measured.sample_keys}" if measured.sample_keys else ""
    if isinstance(check, NotNullCheck):
        per_column = measured.details.get("per_column", {})
        passed = value == 0
        counts = ", ".join(f"{c}: {n}" for c, n in per_column.items() if n)
        message = "no NULLs" if passed else f"{value} row(s) with NULL ({counts}){samples}"
    elif isinstance(check, UniqueCheck):
        passed = value == 0
        rows = measured.details.get("rows", value)
        message = "unique" if passed else f"{value} duplicated value(s) over {rows} row(s){samples}"
    elif isinstance(check, RowCountCheck):
        problems = []
        count = value or 0
        if value is None:  # a row count is always measured; None only from a broken sink
            problems.append("the row count was not measured")
        if check.min is not None and count < check.min:
            problems.append(f"below min {check.min}")
        if check.max is not None and count > check.max:
            problems.append(f"above max {check.max}")
        if check.equals_source:
            if source_rows is None:
                problems.append("the source reported no row count to compare with")
            elif value != source_rows:
                problems.append(f"the source sent {source_rows}")
        passed = not problems
        message = f"{value} row(s) staged" + (": " + "; ".join(problems) if problems else "")
    elif isinstance(check, FreshnessCheck):
        if value is None:
            passed, message = False, f"no non-NULL '{check.column}' value in the batch"
        else:
            passed = value <= check.max_age
            message = f"newest row is {value:.0f}s old (max {check.max_age:.0f}s)"
    elif isinstance(check, AcceptedValuesCheck):
        passed = value == 0
        message = "all values accepted" if passed else f"{value} row(s) with a value not accepted{samples}"
    elif isinstance(check, SqlCheck):
        passed = value is not None and float(value) == float(check.expect)
        message = f"query returned {value} (expected {check.expect:g})"
    else:  # pragma: no cover - the union is closed
        raise TypeError(type(check).__name__)
    return QualityResult(
        name=check.label,
        check=check.check,
        severity=check.severity,
        passed=passed,
        observed=value,
        message=message,
        sample_keys=list(measured.sample_keys),
    )


class QualityGateError(TerminalError):
    """One or more quality gates failed on staging; the target and the state are untouched."""

    code = "DPONE304"

    def __init__(self, load: str, failed: list[QualityResult]) -> None:
        self.results = failed
        lines = "; ".join(f"{r.name}: {r.message}" for r in failed)
        super().__init__(
            f"quality gate failed for load '{load}' ({len(failed)} check(s)); target and state "
            f"untouched: {lines}"
        )


def enforce(load: str, results: list[QualityResult]) -> None:
    """Raise when an ``error`` check failed; ``warn`` checks only report."""
    failed = [r for r in results if not r.passed and r.severity == "error"]
    if failed:
        raise QualityGateError(load, failed)
