"""The secret values this process knows, so every output can mask them.

A value becomes known when a reference is resolved (`refs.resolve`: the `secrets:` section, the
workspace's database password and S3 keys, webhook URLs) and, at first use, from the variables
that hold credentials by convention (PGPASSWORD, AWS_SECRET_ACCESS_KEY, MLFLOW_TRACKING_TOKEN, …).
The CLI passes everything it prints through `mask()` (JSON, tables, errors), and the pipeline
scans what each step left behind for these values (pipeline/secret_scan.py).

Values live in this process's memory only; the mask is `***` as in redact.py, and values shorter
than MIN_LENGTH are not masked (see docs/secrets.md).
"""

from __future__ import annotations

import os
import sys
import threading

from shipyard.secrets.redact import MIN_LENGTH, Redactor

# Variables that hold a credential wherever they are set; their values are masked in output.
CREDENTIAL_VARIABLES = (
    "PGPASSWORD",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_TRACKING_PASSWORD",
    "AZURE_CLIENT_SECRET",
    "AZURE_STORAGE_KEY",
    "GOOGLE_API_KEY",
    "HF_TOKEN",
    "SHIPYARD_ENDPOINT_KEY",
    "SHIPYARD_TOKEN",
    "SHIPYARD_DATABASE_PASSWORD",
)

_lock = threading.Lock()
_values: dict[str, str] = {}  # where it came from → value
_redactor: Redactor | None = None
_snapshot: tuple[str, ...] = ()


def remember(source: str, value: str) -> None:
    """Know `value` (resolved from `source`, e.g. `secrets.DB_PASSWORD`) from now on."""
    global _redactor
    if not value or len(value) < MIN_LENGTH:
        return
    with _lock:
        if _values.get(source) != value:
            _values[source] = value
            _redactor = None


def values() -> dict[str, str]:
    """Source → value of every known secret, including the credential variables set now."""
    with _lock:
        known = dict(_values)
    for name in CREDENTIAL_VARIABLES:
        value = os.environ.get(name, "")
        if len(value) >= MIN_LENGTH:
            known.setdefault(f"env:{name}", value)
    return known


def redactor() -> Redactor:
    """A redactor of every known value (rebuilt when a value is remembered or a credential
    variable changes)."""
    global _redactor, _snapshot
    snapshot = tuple(os.environ.get(name, "") for name in CREDENTIAL_VARIABLES)
    with _lock:
        if _redactor is not None and _snapshot == snapshot:
            return _redactor
    built = Redactor(values())
    with _lock:
        _redactor, _snapshot = built, snapshot
    return built


def mask(text: str) -> str:
    """`text` with every known secret value (and its encodings) replaced by `***`."""
    return redactor().redact(text)


class MaskingStream:
    """A text stream for Rich's Console: writes go to the current sys.stdout/sys.stderr (looked up
    at each write, so pytest's and Typer's capture still work) with known values masked."""

    def __init__(self, name: str) -> None:
        self._name = name

    @property
    def _target(self):
        return getattr(sys, self._name)

    def write(self, text: str) -> int:
        self._target.write(mask(text))
        return len(text)

    def flush(self) -> None:
        self._target.flush()

    def isatty(self) -> bool:
        return self._target.isatty()

    def fileno(self) -> int:
        return self._target.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self._target, "encoding", "utf-8")
