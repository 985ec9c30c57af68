"""The result of a data check: a list of violations, each naming a column and a rule."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Violation:
    """One broken rule.

    `column` is None for table-level failures (e.g. a wide pandera check over whole rows).
    `rule` is a stable name: pandera's check name (`dtype('float64')`, `in_range(-0.25, 0.25)`,
    `column_in_dataframe`, `column_in_schema`, ...) or one of Shipyard's own rules
    (`min_rows`, `missing_values`, `mean_shift`, `std_shift`, `column_missing`, `not_numeric`).
    """

    column: str | None
    rule: str
    detail: str

    def __str__(self) -> str:
        where = f"column '{self.column}'" if self.column is not None else "table"
        return f"{where}: {self.rule} — {self.detail}"


@dataclass
class DataCheckReport:
    """Outcome of `run_data_check`; `passed` is True when there are no violations."""

    path: str
    rows: int
    columns: list[str]
    dataset_hash: str
    violations: list[Violation] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.violations

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DataCheckReport:
        """A report `to_dict` wrote (`passed` is derived from the violations)."""
        return cls(
            path=data["path"],
            rows=data["rows"],
            columns=list(data["columns"]),
            dataset_hash=data["dataset_hash"],
            violations=[Violation(**v) for v in data.get("violations", [])],
        )

    def has(self, column: str | None, rule: str) -> bool:
        """True if a violation of `rule` on `column` was found."""
        return any(v.column == column and v.rule == rule for v in self.violations)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, e.g. for a CI hand-off file."""
        return {
            "passed": self.passed,
            "path": self.path,
            "rows": self.rows,
            "columns": list(self.columns),
            "dataset_hash": self.dataset_hash,
            "violations": [asdict(v) for v in self.violations],
        }

    def summary(self) -> str:
        """A header line, then one line per violation."""
        head = f"{self.path}: {self.rows} row{'s' if self.rows != 1 else ''}, {len(self.columns)} columns"
        if self.passed:
            return f"{head}: data check passed"
        n = len(self.violations)
        lines = [f"{head}: {n} violation{'s' if n != 1 else ''}"]
        lines += [f"  {v}" for v in self.violations]
        return "\n".join(lines)


def fmt_number(x: float) -> str:
    """Short, readable numbers: 4 significant digits, float noise around zero shown as 0."""
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if abs(x) < 1e-9:
        return "0"
    return f"{x:.4g}"
