"""Load a user's pandera schema from 'file.py:Name' and turn its failures into violations."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from shipyard.data.report import Violation, fmt_number
from shipyard.errors import ConfigError

# With pyspark installed (shipyard[spark]) pandera imports pyspark.pandas at several points (its
# own import, building a model's columns): about 0.2 s and a FutureWarning about pandas 3 on every
# data check, for a check of pandas DataFrames. Shipyard's own process never uses pyspark (Spark
# steps run under spark-submit), so pandera is told it is absent: a None entry in sys.modules makes
# `import pyspark.pandas` fail with ImportError, which pandera expects. Not when something in
# this process already imported it.
if "pyspark.pandas" not in sys.modules:
    sys.modules["pyspark.pandas"] = None  # type: ignore[assignment]

# How many failure cases a violation quotes.
MAX_EXAMPLES = 3

# Table-level pandera checks whose failure case is the name of the column concerned.
_COLUMN_NAME_CHECKS = {
    "column_in_dataframe",
    "column_in_schema",
    "column_ordered",
    "duplicate_dataframe_column_names",
}


def load_schema(schema_ref: str, project_dir: Path) -> Any:
    """Import `file.py:Name` (relative to `project_dir`) and return a pandera DataFrameSchema.

    `Name` may be a `DataFrameModel` subclass or a `DataFrameSchema` object. Any problem (bad
    reference, missing file, import error, wrong kind of object) raises ConfigError.
    """
    import pandera.pandas as pa

    file_part, sep, name = schema_ref.rpartition(":")
    if not sep or not file_part or not name or not file_part.endswith(".py"):
        raise ConfigError(
            f"data_check.schema {schema_ref!r}: expected 'file.py:Name', e.g. 'schema.py:DiabetesSchema'"
        )
    file = Path(file_part)
    file = file if file.is_absolute() else project_dir / file
    if not file.is_file():
        raise ConfigError(f"data_check.schema {schema_ref!r}: file {file} does not exist")

    module = _import_file(file, schema_ref)
    if not hasattr(module, name):
        found = [
            n
            for n, obj in vars(module).items()
            if isinstance(obj, pa.DataFrameSchema)
            or (isinstance(obj, type) and issubclass(obj, pa.DataFrameModel) and obj is not pa.DataFrameModel)
        ]
        hint = f"; schemas found there: {', '.join(sorted(found))}" if found else ""
        raise ConfigError(f"data_check.schema {schema_ref!r}: {file.name} defines no {name!r}{hint}")

    obj = getattr(module, name)
    if isinstance(obj, pa.DataFrameSchema):
        return obj
    if isinstance(obj, type) and issubclass(obj, pa.DataFrameModel):
        try:
            return obj.to_schema()
        except Exception as exc:  # pandera raises several kinds of init errors
            raise ConfigError(f"data_check.schema {schema_ref!r}: invalid DataFrameModel: {exc}") from None
    raise ConfigError(
        f"data_check.schema {schema_ref!r}: {name} is a {type(obj).__name__}, "
        "expected a pandera DataFrameModel class or DataFrameSchema object"
    )


def _import_file(file: Path, schema_ref: str) -> Any:
    # A unique module name per file, registered in sys.modules so that pandera can resolve
    # the model's (possibly postponed) annotations; the project folder goes on sys.path while
    # the file runs so that it can import its sibling modules.
    resolved = file.resolve()
    mod_name = "_shipyard_schema_" + hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(mod_name, resolved)
    if spec is None or spec.loader is None:
        raise ConfigError(f"data_check.schema {schema_ref!r}: cannot import {file}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    folder = str(resolved.parent)
    sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(mod_name, None)
        raise ConfigError(
            f"data_check.schema {schema_ref!r}: importing {file} failed: {type(exc).__name__}: {exc}"
        ) from None
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
    return module


def validate_schema(df: pd.DataFrame, schema: Any) -> list[Violation]:
    """Validate `df` lazily (all failures, not just the first) and return one violation per
    (column, rule), quoting a few failure cases."""
    import pandera.errors as pae

    try:
        schema.validate(df, lazy=True)
    except pae.SchemaErrors as exc:
        return _violations_from_failure_cases(exc.failure_cases)
    except pae.SchemaError as exc:  # raised by a few checks even in lazy mode
        return [Violation(_column_of(exc), str(exc.check or "schema"), str(exc).splitlines()[0])]
    return []


def _column_of(exc: Any) -> str | None:
    column = getattr(getattr(exc, "schema", None), "name", None)
    return str(column) if column is not None else None


def _violations_from_failure_cases(cases: pd.DataFrame) -> list[Violation]:
    groups: dict[tuple[str | None, str], list[tuple[Any, Any]]] = {}
    for row in cases.itertuples(index=False):
        check = str(row.check)
        if row.schema_context == "DataFrameSchema":
            column = str(row.failure_case) if check in _COLUMN_NAME_CHECKS else None
        else:
            column = None if pd.isna(row.column) else str(row.column)
        groups.setdefault((column, check), []).append((row.failure_case, row.index))

    # A check that could not run on a column of the wrong dtype (e.g. in_range on strings) fails
    # without a row index; the dtype violation already says what is wrong, so drop the noise.
    wrong_dtype = {column for column, check in groups if check.startswith("dtype(")}
    violations = []
    for (column, check), failures in groups.items():
        crashed = all(_isna(index) for _, index in failures)
        if column in wrong_dtype and not check.startswith("dtype(") and crashed:
            continue
        violations.append(Violation(column, check, _detail(check, failures)))
    return violations


def _detail(check: str, failures: list[tuple[Any, Any]]) -> str:
    if check == "column_in_dataframe":
        return "the schema requires this column but the data has none"
    if check == "column_in_schema":
        return "the data has this column but the (strict) schema does not allow it"
    n = len(failures)
    examples = []
    for value, index in failures[:MAX_EXAMPLES]:
        where = "" if _isna(index) else f" (row {index})"
        shown = _show(value)
        examples.append(f"{shown}{where}")
    more = ", ..." if n > MAX_EXAMPLES else ""
    return f"{n} failure case{'s' if n != 1 else ''}: {', '.join(examples)}{more}"


def _show(value: Any) -> str:
    if _isna(value):
        return "null"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, float | np.floating):
        return fmt_number(float(value))
    return str(value)


def _isna(x: Any) -> bool:
    try:
        return bool(pd.isna(x))
    except (TypeError, ValueError):
        return False
