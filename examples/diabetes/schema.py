"""pandera schema of data/diabetes.csv, referenced from shipyard.yaml as 'schema.py:DiabetesSchema'."""

import pandera.pandas as pa
from pandera.typing import Series

# The ten features are mean-centred and scaled (each column's Euclidean norm is 1); observed values
# lie within [-0.14, 0.20], so +-0.25 leaves a margin. The target (disease progression one year
# later) lies within [25, 346].
FEATURE = {"in_range": {"min_value": -0.25, "max_value": 0.25}, "nullable": False}


class DiabetesSchema(pa.DataFrameModel):
    """Exactly these columns, all float64, no nulls."""

    age: Series[float] = pa.Field(**FEATURE)
    sex: Series[float] = pa.Field(**FEATURE)
    bmi: Series[float] = pa.Field(**FEATURE)
    bp: Series[float] = pa.Field(**FEATURE)
    s1: Series[float] = pa.Field(**FEATURE)
    s2: Series[float] = pa.Field(**FEATURE)
    s3: Series[float] = pa.Field(**FEATURE)
    s4: Series[float] = pa.Field(**FEATURE)
    s5: Series[float] = pa.Field(**FEATURE)
    s6: Series[float] = pa.Field(**FEATURE)
    target: Series[float] = pa.Field(in_range={"min_value": 0.0, "max_value": 400.0}, nullable=False)

    class Config:
        strict = True  # an extra or renamed column is a violation
        coerce = False  # a column of another dtype is a violation, not silently converted
