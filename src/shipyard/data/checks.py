"""The data check step: schema (pandera), missing values and distribution against a reference."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pandas as pd

from shipyard.data.reference import check_distribution, load_reference_stats
from shipyard.data.report import DataCheckReport, Violation
from shipyard.data.schema import load_schema, validate_schema
from shipyard.errors import ShipyardError


def run_data_check(
    path: Path,
    *,
    schema_ref: str | None,
    reference_path: Path | None,
    tolerance_std: float,
    max_missing_fraction: float,
    project_dir: Path,
) -> DataCheckReport:
    """Check the CSV at `path` and return a report listing every violation found.

    - `schema_ref`: 'file.py:Name' relative to `project_dir`, a pandera DataFrameModel class or
      DataFrameSchema object; validated lazily so that all failures are reported.
    - missing values: a column whose fraction of nulls exceeds `max_missing_fraction`.
    - `reference_path`: JSON from `compute_reference_stats`; a column whose mean or std lies more
      than `tolerance_std` reference std from the reference value.

    A check that finds problems does not raise: the caller decides (see `DataCheckFailed`).
    Raises ShipyardError when the file cannot be read and ConfigError for a bad schema reference.
    """
    # Load the schema and reference first: a configuration mistake should surface even when
    # the data file is also missing.
    schema = load_schema(schema_ref, project_dir) if schema_ref else None
    reference = load_reference_stats(reference_path) if reference_path is not None else None
    df, dataset_hash = read_dataset(path)

    violations: list[Violation] = []
    if schema is not None:
        violations += validate_schema(df, schema)
    violations += check_missing_values(df, max_missing_fraction)
    if reference is not None:
        violations += check_distribution(df, reference, tolerance_std)
    return DataCheckReport(
        path=str(path),
        rows=len(df),
        columns=[str(c) for c in df.columns],
        dataset_hash=dataset_hash,
        violations=violations,
    )


def read_dataset(path: Path) -> tuple[pd.DataFrame, str]:
    """Read a CSV file; return the frame and the sha256 of the file's bytes."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ShipyardError(f"data file {path} not found (data_check.path in shipyard.yaml)") from None
    except OSError as exc:
        raise ShipyardError(f"data file {path}: cannot read ({exc.strerror})") from None
    try:
        df = pd.read_csv(io.BytesIO(data))  # parse the very bytes that were hashed
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ShipyardError(f"data file {path} is not a readable CSV: {exc}") from None
    return df, hashlib.sha256(data).hexdigest()


def check_missing_values(df: pd.DataFrame, max_missing_fraction: float) -> list[Violation]:
    """One `missing_values` violation per column whose fraction of nulls exceeds the limit."""
    violations = []
    rows = len(df)
    if rows == 0:
        return violations
    for name, count in df.isna().sum().items():
        fraction = int(count) / rows
        if fraction > max_missing_fraction:
            detail = (
                f"{int(count)} of {rows} values missing ({fraction:.1%}; allowed {max_missing_fraction:.1%})"
            )
            violations.append(Violation(str(name), "missing_values", detail))
    return violations
