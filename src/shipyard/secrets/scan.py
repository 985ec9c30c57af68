"""A guard: which files under a folder hold a secret value (plain or encoded)?

The pipeline runs it over a workspace after a step, so a value that reached the artifact store,
a bundle or a log is found before anything is published. It reads files as bytes, a chunk at a
time, and never follows links out of the folder.

`isolated=True` scans in a child process (values on its stdin, never its command line). Use it
when the folder holds a SQLite database this process has open: closing any descriptor of that
file drops this process's POSIX locks on it (see docs/architecture.md).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from shipyard.errors import ShipyardError
from shipyard.secrets.redact import Redactor

log = logging.getLogger(__name__)


def scan_for_values(folder: Path | str, values: Iterable[str], *, isolated: bool = False) -> list[Path]:
    """Files under `folder` that contain one of `values`, sorted. Values under 4 characters are
    not looked for (as in redaction); unreadable files are logged and skipped."""
    folder = Path(folder)
    values = list(values)
    if isolated:
        return _scan_in_child(folder, values)
    redactor = Redactor(values)
    found: list[Path] = []
    for top, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = Path(top, name)
            if path.is_symlink() or not path.is_file():
                continue
            try:
                if redactor.file_contains(path):
                    found.append(path)
            except OSError as exc:
                log.warning("cannot scan %s for secrets: %s", path, exc.strerror)
    return sorted(found)


def _scan_in_child(folder: Path, values: list[str]) -> list[Path]:
    done = subprocess.run(
        [sys.executable, "-c", "from shipyard.secrets.scan import main; main()", str(folder)],
        input=json.dumps(values),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        detail = Redactor(values).redact(done.stderr.strip()[-500:])
        raise ShipyardError(f"the secret scan of {folder} failed: {detail}")
    return [Path(p) for p in json.loads(done.stdout)]


def main() -> None:
    """The child's side: folder in argv, values as a JSON list on stdin, paths as JSON on stdout."""
    print(json.dumps([str(p) for p in scan_for_values(sys.argv[1], json.load(sys.stdin))]))
