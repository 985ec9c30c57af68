"""Reference statistics (per-column mean/std/min/max) and the distribution check against them.

Standard deviations are sample std (ddof=1, pandas' default), both in the reference file and
when the data is checked, so that a dataset compared with its own reference shows no shift.
The reference file records the ddof it was computed with; the check uses the same one.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from shipyard.data.report import Violation, fmt_number
from shipyard.errors import ConfigError, ShipyardError

DDOF = 1


def compute_reference_stats(df: pd.DataFrame, *, source: str | None = None) -> dict[str, Any]:
    """Reference statistics of the numeric columns of `df` (nulls skipped, std with ddof=1).

    Returns `{"columns": {name: {"mean", "std", "min", "max"}}, "rows": N, "source": ..., "ddof": 1}`,
    the format `run_data_check` reads from `data_check.reference`.
    """
    columns: dict[str, dict[str, float]] = {}
    for name in df.select_dtypes(include="number").columns:
        col = df[name]
        if col.dtype == bool:
            continue
        columns[str(name)] = {
            "mean": _float(col.mean()),
            "std": _float(col.std(ddof=DDOF)),
            "min": _float(col.min()),
            "max": _float(col.max()),
        }
    return {"columns": columns, "rows": len(df), "source": source, "ddof": DDOF}


def write_reference_stats(df: pd.DataFrame, path: Path, *, source: str | None = None) -> dict[str, Any]:
    """Compute reference statistics of `df` and write them to `path` as JSON."""
    stats = compute_reference_stats(df, source=source)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(stats, indent=2) + "\n")
    return stats


def load_reference_stats(path: Path) -> dict[str, Any]:
    """Read and sanity-check a reference statistics file."""
    if not path.is_file():
        raise ShipyardError(
            f"reference statistics {path} not found; create it from a good dataset with "
            "shipyard.data.compute_reference_stats (see examples/diabetes/prepare_data.py)"
        )
    try:
        stats = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"reference statistics {path}: not valid JSON ({exc})") from None
    columns = stats.get("columns") if isinstance(stats, dict) else None
    if not isinstance(columns, dict):
        raise ConfigError(f"reference statistics {path}: expected an object with a 'columns' mapping")
    for name, col in columns.items():
        if not isinstance(col, dict) or not all(isinstance(col.get(k), int | float) for k in ("mean", "std")):
            raise ConfigError(f"reference statistics {path}: column {name!r} needs numeric 'mean' and 'std'")
    return stats


def check_distribution(df: pd.DataFrame, reference: dict[str, Any], tolerance_std: float) -> list[Violation]:
    """Compare each reference column's mean and std in `df` with the reference.

    A mean or std further than `tolerance_std` reference std from the reference value is a
    violation (`mean_shift`, `std_shift`); a reference column absent from `df` is `column_missing`,
    one that is no longer numeric is `not_numeric`.
    """
    ddof = int(reference.get("ddof", DDOF))
    violations: list[Violation] = []
    for name, ref in reference["columns"].items():
        if name not in df.columns:
            violations.append(
                Violation(name, "column_missing", "the reference has this column, the data does not")
            )
            continue
        col = df[name]
        if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            violations.append(
                Violation(name, "not_numeric", f"dtype {col.dtype}; the reference describes a numeric column")
            )
            continue
        ref_mean, ref_std = float(ref["mean"]), float(ref["std"])
        allowed = tolerance_std * ref_std
        mean, std = _float(col.mean()), _float(col.std(ddof=ddof))
        for rule, what, value, ref_value in (
            ("mean_shift", "mean", mean, ref_mean),
            ("std_shift", "std", std, ref_std),
        ):
            if math.isnan(value):
                continue  # an all-null column: reported by the missing-values rule
            diff = abs(value - ref_value)
            if diff > allowed and not math.isclose(value, ref_value, rel_tol=1e-9, abs_tol=1e-12):
                ratio = diff / ref_std if ref_std > 0 else math.inf
                detail = (
                    f"{what} {fmt_number(value)} is {fmt_number(round(ratio, 1))} reference std "
                    f"from {fmt_number(ref_value)} (tolerance {fmt_number(tolerance_std)})"
                )
                violations.append(Violation(name, rule, detail))
    return violations


def _float(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan
