"""The data check step: row count, schema (pandera), missing values and distribution against a
reference."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from shipyard.data.minimum import check_row_count
from shipyard.data.reference import check_distribution, load_reference_stats
from shipyard.data.report import DataCheckReport, Violation
from shipyard.data.schema import load_schema, validate_schema
from shipyard.errors import ConfigError, ShipyardError

if TYPE_CHECKING:
    from shipyard.config.models import ProjectConfig


def run_data_check(
    path: Path,
    *,
    schema_ref: str | None,
    reference_path: Path | None,
    tolerance_std: float,
    max_missing_fraction: float,
    project_dir: Path,
    min_rows: int | None = None,
) -> DataCheckReport:
    """Check the CSV at `path` and return a report listing every violation found.

    - row count: fewer rows than `min_rows` (None: the default of data/minimum.py, relative to the
      reference's row count) is a `min_rows` violation.
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

    violations = check_row_count(len(df), min_rows, reference)
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


def check_project_data(config: ProjectConfig) -> DataCheckReport:
    """The data check as the project's `data_check:` section configures it."""
    dc = config.data_check
    if dc is None:
        raise ConfigError(f"{config.source_file or 'shipyard.yaml'}: no data_check section")
    return run_data_check(
        config.path(dc.path),
        schema_ref=dc.data_schema,
        reference_path=config.path(dc.reference) if dc.reference else None,
        tolerance_std=dc.tolerance_std,
        max_missing_fraction=dc.max_missing_fraction,
        project_dir=config.project_dir,
        min_rows=dc.min_rows,
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
    violations: list[Violation] = []
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
