"""The data check against the real diabetes example: the good data passes, broken copies fail."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from shipyard.config.models import DataCheckConfig
from shipyard.data import DataCheckReport, compute_reference_stats, run_data_check
from shipyard.data.minimum import required_rows
from shipyard.errors import ConfigError, ShipyardError

EXAMPLE = Path(__file__).parents[2] / "examples" / "diabetes"
DATA = EXAMPLE / "data" / "diabetes.csv"
REFERENCE = EXAMPLE / "data" / "reference_stats.json"
SCHEMA = "schema.py:DiabetesSchema"


def check(path: Path, *, schema_ref: str | None = SCHEMA, tolerance_std: float = 1.0) -> DataCheckReport:
    return run_data_check(
        path,
        schema_ref=schema_ref,
        reference_path=REFERENCE,
        tolerance_std=tolerance_std,
        max_missing_fraction=0.0,
        project_dir=EXAMPLE,
    )


def rules(report: DataCheckReport) -> set[tuple[str | None, str]]:
    return {(v.column, v.rule) for v in report.violations}


@pytest.fixture
def good() -> pd.DataFrame:
    return pd.read_csv(DATA)


def test_good_data_passes() -> None:
    report = check(DATA)
    assert report.passed, report.summary()
    assert report.rows == 442
    assert report.columns == ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6", "target"]
    assert len(report.dataset_hash) == 64
    assert report.to_dict()["passed"] is True
    assert "passed" in report.summary()


def test_renamed_column_violates_schema_and_reference(tmp_path: Path, good: pd.DataFrame) -> None:
    path = tmp_path / "renamed.csv"
    good.rename(columns={"bmi": "body_mass_index"}).to_csv(path, index=False)
    report = check(path)
    assert not report.passed
    found = rules(report)
    assert ("bmi", "column_in_dataframe") in found
    assert ("body_mass_index", "column_in_schema") in found
    assert ("bmi", "column_missing") in found


def test_string_column_violates_dtype(tmp_path: Path, good: pd.DataFrame) -> None:
    path = tmp_path / "strings.csv"
    good.assign(sex=np.where(good["sex"] > 0, "M", "F")).to_csv(path, index=False)
    report = check(path)
    found = rules(report)
    assert ("sex", "dtype('float64')") in found
    assert ("sex", "not_numeric") in found
    detail = next(v.detail for v in report.violations if v.rule == "dtype('float64')")
    assert "'M'" in detail or "'F'" in detail  # quotes a few failure cases


def test_out_of_range_values_name_the_range_check(tmp_path: Path, good: pd.DataFrame) -> None:
    path = tmp_path / "range.csv"
    good.loc[[3, 7], "s1"] = 0.9
    good.to_csv(path, index=False)
    report = check(path)
    violation = next(v for v in report.violations if v.column == "s1" and v.rule.startswith("in_range"))
    assert violation.rule == "in_range(-0.25, 0.25)"
    assert "2 failure cases" in violation.detail and "row 3" in violation.detail


def test_missing_values_violate(tmp_path: Path, good: pd.DataFrame) -> None:
    path = tmp_path / "missing.csv"
    good.loc[[0, 10, 20], "bmi"] = np.nan
    good.to_csv(path, index=False)
    report = check(path)
    assert ("bmi", "missing_values") in rules(report)
    missing = [v for v in report.violations if v.rule == "missing_values"]
    assert [v.column for v in missing] == ["bmi"]
    assert "3 of 442" in missing[0].detail
    assert "column 'bmi': missing_values" in report.summary()

    # Allowing 1% missing lets it through (the schema's nullable=False still objects).
    lenient = run_data_check(
        path,
        schema_ref=None,
        reference_path=REFERENCE,
        tolerance_std=1.0,
        max_missing_fraction=0.01,
        project_dir=EXAMPLE,
    )
    assert lenient.passed, lenient.summary()


def test_shifted_distribution_violates_mean_shift(tmp_path: Path, good: pd.DataFrame) -> None:
    ref = json.loads(REFERENCE.read_text())["columns"]["bmi"]
    path = tmp_path / "shifted.csv"
    good.assign(bmi=good["bmi"] + 3 * ref["std"]).to_csv(path, index=False)

    report = check(path, schema_ref=None)
    assert rules(report) == {("bmi", "mean_shift")}  # a pure shift leaves the std alone
    line = str(report.violations[0])
    assert line.startswith("column 'bmi': mean_shift — mean ")
    assert "is 3 reference std from 0 (tolerance 1)" in line

    # A wide enough tolerance accepts the same data.
    assert check(path, schema_ref=None, tolerance_std=3.5).passed


def test_scaled_distribution_violates_std_shift(tmp_path: Path, good: pd.DataFrame) -> None:
    path = tmp_path / "scaled.csv"
    good.assign(s5=good["s5"] * 2.5).to_csv(path, index=False)
    assert ("s5", "std_shift") in rules(check(path, schema_ref=None))


def test_reference_stats_round_trip(tmp_path: Path, good: pd.DataFrame) -> None:
    stats = compute_reference_stats(good, source="test")
    assert json.loads(json.dumps(stats)) == stats
    assert stats["rows"] == 442 and stats["source"] == "test" and stats["ddof"] == 1
    assert set(stats["columns"]) == set(good.columns)
    bmi = stats["columns"]["bmi"]
    assert bmi["std"] == pytest.approx(good["bmi"].std(ddof=1))
    assert bmi["min"] == pytest.approx(good["bmi"].min()) and bmi["max"] == pytest.approx(good["bmi"].max())
    # The committed reference is exactly what the committed data produces.
    committed = json.loads(REFERENCE.read_text())
    for name, col in committed["columns"].items():
        assert stats["columns"][name] == pytest.approx(col, abs=1e-12)

    ref_path = tmp_path / "ref.json"
    ref_path.write_text(json.dumps(stats))
    report = run_data_check(
        DATA,
        schema_ref=None,
        reference_path=ref_path,
        tolerance_std=0.01,
        max_missing_fraction=0.0,
        project_dir=EXAMPLE,
    )
    assert report.passed, report.summary()


def test_non_numeric_columns_are_left_out_of_reference() -> None:
    stats = compute_reference_stats(pd.DataFrame({"x": [1.0, 2.0, 3.0], "name": ["a", "b", "c"]}))
    assert list(stats["columns"]) == ["x"]
    assert stats["columns"]["x"] == {"mean": 2.0, "std": 1.0, "min": 1.0, "max": 3.0}


@pytest.mark.parametrize(
    ("schema_ref", "message"),
    [
        ("schema.py", "expected 'file.py:Name'"),
        ("nope.py:DiabetesSchema", "does not exist"),
        ("schema.py:NoSuchSchema", "schemas found there: DiabetesSchema"),
        ("schema.py:FEATURE", "expected a pandera DataFrameModel"),
    ],
)
def test_bad_schema_ref_is_a_config_error(schema_ref: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        check(DATA, schema_ref=schema_ref)


def test_schema_file_that_fails_to_import_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("import pandera.pandas as pa\nraise RuntimeError('boom')\n")
    with pytest.raises(ConfigError, match="importing .*broken.py failed: RuntimeError: boom"):
        run_data_check(
            DATA,
            schema_ref="broken.py:Schema",
            reference_path=None,
            tolerance_std=1.0,
            max_missing_fraction=0.0,
            project_dir=tmp_path,
        )


def test_dataframe_schema_object_is_accepted(tmp_path: Path) -> None:
    (tmp_path / "obj.py").write_text(
        "import pandera.pandas as pa\n"
        "SCHEMA = pa.DataFrameSchema({'bmi': pa.Column(float, pa.Check.lt(0.1))})\n"
    )
    report = run_data_check(
        DATA,
        schema_ref="obj.py:SCHEMA",
        reference_path=None,
        tolerance_std=1.0,
        max_missing_fraction=0.0,
        project_dir=tmp_path,
    )
    assert rules(report) == {("bmi", "less_than(0.1)")}


def test_missing_data_file_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "absent.csv"
    with pytest.raises(ShipyardError, match="absent.csv"):
        check(missing)


def test_too_few_rows_fail_with_the_minimum_and_where_it_comes_from(
    tmp_path: Path, good: pd.DataFrame
) -> None:
    # The audit's 3-row file: within the schema and the distribution tolerance, so only the row count objects.
    path = tmp_path / "three.csv"
    good.iloc[[50, 124, 302]].to_csv(path, index=False)
    report = check(path)
    assert rules(report) == {(None, "min_rows")}
    assert report.violations[0].detail == (
        "3 rows; at least 50 needed (the default: 10% of the reference's 442 rows, at least 50; "
        "set data_check.min_rows to change it)"
    )
    assert "table: min_rows — 3 rows; at least 50 needed" in report.summary()

    lowered = run_data_check(
        path, schema_ref=SCHEMA, reference_path=REFERENCE, tolerance_std=1.0,
        max_missing_fraction=0.0, project_dir=EXAMPLE, min_rows=3,
    )  # fmt: skip
    assert lowered.passed, lowered.summary()
    one = tmp_path / "one.csv"
    good.iloc[[50]].to_csv(one, index=False)
    strict = run_data_check(
        one, schema_ref=None, reference_path=None, tolerance_std=1.0,
        max_missing_fraction=0.0, project_dir=EXAMPLE, min_rows=3,
    )  # fmt: skip
    assert [str(v) for v in strict.violations] == [
        "table: min_rows — 1 row; at least 3 needed (data_check.min_rows)"
    ]
    assert strict.summary().startswith(f"{one}: 1 row, 11 columns")


def test_header_only_file_fails_the_row_count(tmp_path: Path, good: pd.DataFrame) -> None:
    path = tmp_path / "empty.csv"
    good.iloc[:0].to_csv(path, index=False)
    report = run_data_check(
        path, schema_ref=None, reference_path=None, tolerance_std=1.0, max_missing_fraction=0.0,
        project_dir=EXAMPLE,
    )  # fmt: skip
    assert [v.detail for v in report.violations] == [
        "0 rows; at least 50 needed (the default without reference row counts; set data_check.min_rows "
        "to change it)"
    ]


@pytest.mark.parametrize(
    ("min_rows", "reference", "needed"),
    [
        (None, {"rows": 442}, 50),  # 10% is 45: the floor wins
        (None, {"rows": 1000}, 100),
        (None, {"rows": 1001}, 101),  # rounded up
        (None, {"columns": {}}, 50),  # a reference file written without a row count
        (None, {"rows": True}, 50),
        (None, None, 50),
        (7, {"rows": 1000}, 7),  # configured: exactly that
    ],
)
def test_required_rows(min_rows: int | None, reference: dict | None, needed: int) -> None:
    assert required_rows(min_rows, reference)[0] == needed


def test_min_rows_config_must_be_positive() -> None:
    assert DataCheckConfig(path="d.csv").min_rows is None
    assert DataCheckConfig(path="d.csv", min_rows=5).min_rows == 5
    with pytest.raises(ValidationError, match="min_rows"):
        DataCheckConfig(path="d.csv", min_rows=0)


def test_the_data_check_does_not_import_pyspark(tmp_path):
    """pandera imports pyspark.pandas when pyspark is installed (it is here: shipyard[spark]);
    the data check keeps it out (0.2 s and a FutureWarning about pandas on every run)."""
    import subprocess
    import sys
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "examples" / "diabetes"
    code = (
        "import sys; from pathlib import Path\n"
        "from shipyard.data.schema import load_schema\n"
        f"load_schema('schema.py:DiabetesSchema', Path({str(example)!r}))\n"
        "print(sorted(m for m in sys.modules if m.startswith('pyspark') and sys.modules[m] is not None))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
    assert "PySpark" not in done.stderr
