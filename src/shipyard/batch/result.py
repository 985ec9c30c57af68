"""What a batch job reports: its summary (written as JSON beside the output) and its failures.

Kept free of pyarrow and the worker pool so that the CLI and a future store table can read it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from shipyard.errors import UsageError


@dataclass(frozen=True)
class FailedBatch:
    """A mini-batch the model could not score: its index, rows [first_row, end_row) and why."""

    index: int
    first_row: int
    end_row: int
    error: str


@dataclass(frozen=True)
class Threshold:
    """How many failed mini-batches a job tolerates: a count, or a percent of all mini-batches."""

    count: int | None = None
    percent: float | None = None

    def exceeded(self, failed: int, total: int | None) -> bool:
        """True when `failed` is over the threshold (`total` unknown: only a count can be judged)."""
        if self.count is not None:
            return failed > self.count
        if total is None or self.percent is None:
            return False
        return failed > math.floor(total * self.percent / 100 + 1e-9)

    def __str__(self) -> str:
        return f"{self.count}" if self.count is not None else f"{self.percent:g}%"


def parse_threshold(value: int | str | Threshold) -> Threshold:
    """`3` or "3" → at most 3 failed mini-batches; "5%" → at most 5 % of them."""
    if isinstance(value, Threshold):
        return value
    text = str(value).strip()
    try:
        if text.endswith("%"):
            percent = float(text[:-1])
            if not 0 <= percent <= 100:
                raise ValueError
            return Threshold(percent=percent)
        count = int(text)
        if count < 0:
            raise ValueError
        return Threshold(count=count)
    except ValueError:
        raise UsageError(
            f"--error-threshold {value!r}: expected a count of mini-batches (e.g. 3) or a percent "
            "between 0 and 100 (e.g. 5%)"
        ) from None


@dataclass
class BatchResult:
    """The record of a batch job; `to_dict()` is the JSON summary written beside the output."""

    status: str  # "succeeded" or "failed"
    model_name: str | None
    model_version: str | None
    bundle: str
    input: str
    input_sha256: str
    output: str | None
    summary_path: str
    backend: str
    workers: int
    mini_batch_rows: int
    rows: int = 0
    rows_scored: int = 0
    mini_batches: int = 0
    failed: list[FailedBatch] = field(default_factory=list)
    error_threshold: str = "0"
    keep_order: bool = True
    key: str | None = None
    started_at: str = ""
    duration_s: float = 0.0
    job_id: str | None = None  # the job's record in the workspace store (None without a workspace)
    compute: str | None = None  # the named compute it ran on (None: this machine)

    @property
    def rows_per_s(self) -> float:
        return round(self.rows_scored / self.duration_s, 1) if self.duration_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["failed_mini_batches"] = len(self.failed)
        data["rows_per_s"] = self.rows_per_s
        return data
