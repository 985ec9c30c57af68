"""What a request body may cost to parse, checked on its bytes before any parser or model sees it.

A small body can still be expensive: JSON nested a thousand levels deep overflows Python's
recursive parsers (the json module, a scoring script's ``json.loads``), and a CSV of 20,000
columns keeps pandas busy for seconds while the request holds a scoring slot. So every scoring
route checks its body here first, on the event loop and before taking a slot:

- nesting depth of JSON arrays and objects (``max_json_depth``): 400;
- values in the body (``max_body_elements``: JSON values, CSV cells, Parquet cells): 413;
- columns of a table (``max_columns``: a CSV header, a Parquet schema; JSON tables are checked
  by the MLflow payload parser): 413. A model whose signature has more columns raises the limit
  to its own width.

The JSON scan costs a few microseconds for a typical request (C-level ``bytes`` operations and
one numpy pass over the brackets), about a sixth of what parsing the same body with orjson costs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from shipyard.serving.validation import MalformedBodyError, ScoringInputError

# An escape sequence in a JSON string (\" and \\ included): removed before strings are found.
_ESCAPE = re.compile(rb"\\.", re.DOTALL)
# A string, once escapes are gone and only structural bytes are left.
_STRING = re.compile(rb'"[^"]*"')
# Every byte but the ones that give JSON its structure.
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in b'"[]{},')
_STEP = np.zeros(256, dtype=np.int8)
_STEP[ord("[")] = _STEP[ord("{")] = 1
_STEP[ord("]")] = _STEP[ord("}")] = -1


class BodyTooDeepError(MalformedBodyError):
    """JSON nested deeper than the server parses (HTTP 400)."""

    code = "too_deep"


class BodyTooLargeError(ScoringInputError):
    """A body with more values or columns than the server parses (HTTP 413)."""

    code = "payload_too_large"
    status_code = 413


def json_shape(raw: bytes) -> tuple[int, int]:
    """(nesting depth, number of values) of a JSON text, from its bytes alone.

    Brackets and commas inside strings are not counted. The number of values is an upper bound
    (commas plus one); the depth is exact for valid JSON (and a bound for anything else).
    """
    if b"\\" in raw:
        raw = _ESCAPE.sub(b"", raw)
    structure = raw.translate(None, _NOT_STRUCTURE)
    if b'"' in structure:
        structure = _STRING.sub(b"", structure)
    values = structure.count(b",") + 1
    brackets = structure.translate(None, b",")
    if not brackets:
        return 0, values
    if len(brackets) <= 64:  # a small body: cheaper than numpy's call overhead
        depth = deepest = 0
        for byte in brackets:
            depth += 1 if byte in (0x5B, 0x7B) else -1
            deepest = max(deepest, depth)
        return deepest, values
    steps = _STEP[np.frombuffer(brackets, dtype=np.uint8)]
    return int(np.cumsum(steps, dtype=np.int64).max()), values


@dataclass(frozen=True)
class ParseBounds:
    """The limits of one server (from its serving settings), checked per body."""

    max_depth: int = 64
    max_elements: int = 1_000_000
    max_columns: int = 1_000

    def widened(self, columns: int | None) -> ParseBounds:
        """These bounds, with room for a model whose signature has `columns` columns."""
        if not columns or columns <= self.max_columns:
            return self
        return ParseBounds(self.max_depth, max(self.max_elements, columns), columns)

    def check_json(self, raw: bytes | str) -> None:
        """BodyTooDeepError / BodyTooLargeError unless the JSON body is within the bounds."""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogatepass")
        depth, values = json_shape(raw)
        if depth > self.max_depth:
            raise BodyTooDeepError(
                f"body: JSON nested {depth} levels deep; this server reads at most {self.max_depth} "
                "(serving.max_json_depth)",
                "body",
            )
        self._check_elements(values)

    def check_csv(self, raw: bytes | str) -> None:
        """BodyTooLargeError if the CSV body has too many columns (header line) or cells."""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogatepass")
        end = raw.find(b"\n")
        header = raw if end < 0 else raw[:end]
        self.check_columns(header.count(b",") + 1, "body")
        self._check_elements(raw.count(b",") + raw.count(b"\n") + 1)

    def check_parquet(self, raw: bytes) -> None:
        """BodyTooLargeError if the Parquet body's schema has too many columns or cells; a body
        that is not Parquet is left to the parser (it says what is wrong)."""
        import io

        try:
            import pyarrow.parquet as pq

            meta = pq.read_metadata(io.BytesIO(raw))
        except Exception:
            return
        self.check_columns(meta.num_columns, "body")
        self._check_elements(meta.num_columns * meta.num_rows)

    def check_columns(self, columns: int, where: str) -> None:
        """BodyTooLargeError if a table of the body has more than max_columns columns."""
        if columns > self.max_columns:
            raise BodyTooLargeError(
                f"{where}: {columns} columns; this server reads at most {self.max_columns} "
                "(serving.max_columns)",
                where,
            )

    def check_elements(self, values: int) -> None:
        """BodyTooLargeError if the body holds more than max_elements values (e.g. the elements
        of binary tensors, which no JSON scan counts)."""
        self._check_elements(values)

    def _check_elements(self, values: int) -> None:
        if values > self.max_elements:
            raise BodyTooLargeError(
                f"body: about {values} values; this server reads at most {self.max_elements} "
                "per request (serving.max_body_elements)",
                "body",
            )
