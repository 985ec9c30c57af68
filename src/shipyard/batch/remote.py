"""Batch inputs and outputs at URIs (``s3://bucket/key``, or any URI `open_store` opens).

The job itself reads and writes local files only (source.py, sink.py); this module stands local
files in for URIs:

- an input URI (a .csv/.parquet object) is downloaded once into a temporary folder and scored
  from there;
- an output URI is scored into a temporary folder exactly as a local ``--output`` would be
  (``<parent>/<name>`` maps to ``<tmp>/output/<name>``, so the time-stamped names are the local
  ones), and only when the job succeeded are the predictions file and then its summary uploaded,
  the summary last: a reader that sees the summary finds the predictions. A failed job uploads
  nothing.

The job records the URIs, never the temporary paths. The temporary folder (under ``TMPDIR``) is
removed when the job ends, whatever happened. Plain paths pass through untouched: `Staging` then
creates no folder and names every path as ``str(path)``, as the job always did.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse, urlunparse

from shipyard.errors import NotFoundError, UsageError

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
FORMATS = (".csv", ".parquet", ".pq")  # as source.FORMATS, without importing pyarrow's module


def is_uri(value: str | Path) -> bool:
    """True for ``scheme://...`` given as a string (a Path is always a local path)."""
    return isinstance(value, str) and bool(_URI.match(value))


def split_uri(uri: str) -> tuple[str, str]:
    """(parent URI, last name) of `uri`: ``s3://b/x/y.csv`` → (``s3://b/x``, ``y.csv``); the name
    is "" for a bucket root (``s3://b``, ``s3://b/``)."""
    parsed = urlparse(uri)
    parent, _, name = parsed.path.rstrip("/").rpartition("/")
    return urlunparse(parsed._replace(path=parent, params="", query="", fragment="")), name


def _open(uri: str) -> Any:
    from shipyard.artifacts import open_store

    return open_store(uri)


class Staging:
    """Local stand-ins for an input and an output that may be URIs (a context manager)."""

    def __init__(self, input_path: str | Path, output_path: str | Path) -> None:
        self.input_uri = str(input_path) if is_uri(input_path) else None
        self.output_uri = str(output_path) if is_uri(output_path) else None
        self._input = Path(input_path) if self.input_uri is None else None
        self._output = Path(output_path) if self.output_uri is None else None
        self._tmp: Path | None = None
        self._store: Any = None  # the output's parent store
        if self.output_uri is not None:
            self._parent, name = split_uri(self.output_uri)
            suffix = PurePosixPath(name).suffix.lower()
            if suffix and suffix not in FORMATS:
                raise UsageError(
                    f"--output {self.output_uri}: use a folder, or a name ending in .parquet or .csv"
                )
            self._output = self._folder("output") / name if name else self._folder("output")

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def _folder(self, name: str) -> Path:
        if self._tmp is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="shipyard-batch-"))
        path = self._tmp / name
        path.mkdir(exist_ok=True)
        return path

    # -- input ---------------------------------------------------------------------------------
    @property
    def input_name(self) -> str:
        """What the job records as its input: the URI, or the local path."""
        return self.input_uri if self.input_uri is not None else str(self._input)

    def fetch_input(self) -> Path:
        """The local input file: the path given, or the object downloaded (once) into the
        temporary folder. A missing object is a NotFoundError naming the URI; an unreachable
        store is the store's StorageError (it names the endpoint)."""
        if self._input is not None:
            return self._input
        uri = self.input_uri
        assert uri is not None
        parent, name = split_uri(uri)
        if not name or PurePosixPath(name).suffix.lower() not in FORMATS:
            raise UsageError(f"input {uri}: give a .csv or .parquet object (s3://bucket/path/file.csv)")
        store = _open(parent)
        local = self._folder("input") / name
        try:
            store.get_file(name, local)
        except NotFoundError:
            at = getattr(store, "endpoint", None)
            raise NotFoundError(f"input {uri} does not exist" + (f" (at {at})" if at else "")) from None
        self._input = local
        return local

    # -- output --------------------------------------------------------------------------------
    @property
    def output(self) -> Path:
        """The local output path to score into (a temporary stand-in for an output URI)."""
        assert self._output is not None
        return self._output

    def name(self, local: Path) -> str:
        """What the job records for one of its output files: its URI, or the local path."""
        if self.output_uri is None:
            return str(local)
        assert self._tmp is not None
        return f"{self._parent}/{self._key(local)}"

    def _key(self, local: Path) -> str:
        assert self._tmp is not None
        return local.relative_to(self._tmp / "output").as_posix()

    def _output_store(self) -> Any:
        if self._store is None:
            self._store = _open(self._parent)
        return self._store

    def check_output(self, summary: Path) -> None:
        """Before any scoring: can the output store be reached with these credentials? (A HEAD of
        the summary's key, which does not exist yet.) Nothing to check for a local output."""
        if self.output_uri is not None:
            self._output_store().exists(self._key(summary))

    def upload(self, predictions: Path | None, summary: Path) -> None:
        """After a successful job: the predictions file (None: the job wrote none), then the
        summary. Nothing to do for a local output."""
        if self.output_uri is None:
            return
        store = self._output_store()
        if predictions is not None:
            store.put_file(predictions, self._key(predictions))
        store.put_file(summary, self._key(summary))

    def failed_summary(self, result: Any) -> str:
        """Where a failed job's summary is, for its error message. A URI output gets none (a failed
        job uploads nothing): the job's record in the workspace has it."""
        if self.output_uri is None:
            return str(result.summary_path)
        result.summary_path = None
        if result.job_id:
            return f"not uploaded (the job failed); see `shipyard batch-jobs show {result.job_id[:12]}`"
        return "not uploaded (the job failed)"
