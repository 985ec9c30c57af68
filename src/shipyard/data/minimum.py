"""The minimum row count of a dataset: too few rows train a model that only looks good.

`data_check.min_rows` sets it. Unset, it is a fraction of the reference's row count (the file a
reference was computed from is what a normal dataset looks like; one much smaller is a truncated
export or a wrong file), never below an absolute floor, which is also the minimum when there is no
reference. The floor is sized so that a default 80/20 split of the smallest accepted dataset still
leaves the gate's default `gate.min_eval_rows` (10) evaluation rows.
"""

from __future__ import annotations

import math
from typing import Any

from shipyard.data.report import Violation

DEFAULT_MIN_ROWS = 50
REFERENCE_FRACTION = 0.1
RULE = "min_rows"


def required_rows(min_rows: int | None, reference: dict[str, Any] | None) -> tuple[int, str]:
    """The minimum row count and where it comes from (said in the violation)."""
    if min_rows is not None:
        return min_rows, "data_check.min_rows"
    ref_rows = reference.get("rows") if reference is not None else None
    if isinstance(ref_rows, int) and not isinstance(ref_rows, bool) and ref_rows > 0:
        needed = max(DEFAULT_MIN_ROWS, math.ceil(REFERENCE_FRACTION * ref_rows))
        return needed, (
            f"the default: {REFERENCE_FRACTION:.0%} of the reference's {ref_rows} rows, at least "
            f"{DEFAULT_MIN_ROWS}; set data_check.min_rows to change it"
        )
    return DEFAULT_MIN_ROWS, "the default without reference row counts; set data_check.min_rows to change it"


def check_row_count(rows: int, min_rows: int | None, reference: dict[str, Any] | None) -> list[Violation]:
    """One table-level `min_rows` violation when the data has fewer rows than required."""
    needed, source = required_rows(min_rows, reference)
    if rows >= needed:
        return []
    return [
        Violation(None, RULE, f"{rows} row{'s' if rows != 1 else ''}; at least {needed} needed ({source})")
    ]
