"""Does a bundle load and score its own input sample? The check before a version is registered.

`python -m shipyard.serving.loadcheck BUNDLE_DIR` loads the bundle as the server would (score.py's
init(), or the MLflow model) and sends the manifest's input sample through the same path as the
smoke test: an MLflow payload (`dataframe_split`, `instances`, ...) through `/invocations`'
parsing, anything else as a `/score` body to score.py's run() (or, for an MLflow model behind the
Azure ML route, its rows). It prints one JSON line and exits 0 when it scored, 1 when loading or
scoring failed (the line says which, with the error), 2 for a bundle it cannot read.

It runs in its own process (packaging/loadcheck.py starts it) so that the user's code, its imports
and whatever it loads never touch the pipeline's process.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Any

from shipyard.serving.azureml.routes import rows_of
from shipyard.serving.azureml.script import ScoringScript
from shipyard.serving.loader import load_servable
from shipyard.serving.manifest import BundleError, read_manifest
from shipyard.serving.mlflow.payloads import SUPPORTED_FORMATS


def _failure(stage: str, exc: BaseException) -> dict[str, Any]:
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" ({last[0].filename}:{last[0].lineno})" if last else ""
    return {"ok": False, "stage": stage, "error": f"{type(exc).__name__}: {exc}{where}"}


def check(bundle_dir: str) -> dict[str, Any]:
    """Load the bundle and score its input sample; the outcome as a JSON-able record."""
    sample = read_manifest(Path(bundle_dir)).get("input_sample")
    try:
        servable = load_servable(bundle_dir)
    except Exception as exc:
        return _failure("load", exc)
    if sample is None:
        return {"ok": True, "stage": "load", "scored": False}
    try:
        if isinstance(sample, dict) and any(k in sample for k in SUPPORTED_FORMATS):
            result = servable.predict_payload(sample)  # type: ignore[attr-defined]
        elif isinstance(servable, ScoringScript):
            result = servable.score(json.dumps(sample))
        else:
            name = (servable.input_spec() or {}).get("name", "data")
            result = servable.predict_rows(rows_of(sample, name))
        json.dumps(result, default=str)
    except Exception as exc:
        return _failure("score", exc)
    return {"ok": True, "stage": "score", "scored": True}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m shipyard.serving.loadcheck BUNDLE_DIR", file=sys.stderr)
        return 2
    try:
        outcome = check(args[0])
    except BundleError as exc:
        print(json.dumps({"ok": False, "stage": "bundle", "error": str(exc)}))
        return 2
    print(json.dumps(outcome))
    return 0 if outcome["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
