"""pandera schema of data/digits.csv, referenced from shipyard.yaml as 'schema.py:DigitsSchema'."""

import pandera.pandas as pa
from pandera.typing import Series


class DigitsSchema(pa.DataFrameModel):
    """64 pixel columns p0..p63 with intensities 0-16 and a label 0-9; integers, no nulls."""

    pixel: Series[int] = pa.Field(alias=r"^p\d+$", regex=True, ge=0, le=16, nullable=False)
    label: Series[int] = pa.Field(isin=list(range(10)), nullable=False)

    class Config:
        strict = True  # a column other than p0..p63 and label is a violation
        coerce = False
