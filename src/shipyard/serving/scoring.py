"""The Azure ML scoring contract: a bundle's ``score.py`` with ``init()`` and ``run(raw)``.

A bundle is a folder with ``manifest.json``, the entry script and the model files. Loading it
sets ``AZUREML_MODEL_DIR`` (as Azure ML does), imports the entry script from its file and calls
``init()`` once. Requests are validated against the manifest's signature before ``run()`` so that
callers get a 4xx naming the bad field instead of a stack trace from inside the model.
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import math
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from shipyard.errors import ShipyardError
from shipyard.serving.servable import check_predictions

MANIFEST_FILE = "manifest.json"
MODEL_DIR_ENV = "AZUREML_MODEL_DIR"


class BundleError(ShipyardError):
    """The bundle cannot be served: manifest or entry script missing or broken."""


class ScoringInputError(ShipyardError):
    """A request body does not match what the model expects (HTTP 422)."""

    code = "invalid_input"
    status_code = 422

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class MalformedBodyError(ScoringInputError):
    """A request body is not valid (UTF-8) JSON (HTTP 400)."""

    code = "invalid_json"
    status_code = 400


@dataclass(frozen=True)
class MatrixInput:
    """One signature input of shape [-1, N] (N None: rows of any width) or [-1] (flat list)."""

    name: str
    width: int | None
    flat: bool = False
    integer: bool = False


def _is_number(value: Any, integer: bool) -> bool:
    if isinstance(value, bool):
        return False
    if integer:
        return isinstance(value, int)
    return isinstance(value, int | float)


def _describe(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, float) or math.isfinite(value) else str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _type_name(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(type(value), "number")


def parse_signature(signature: Mapping[str, Any] | None) -> list[MatrixInput]:
    """Return the inputs of a manifest signature that can be checked: shapes [-1] and [-1, N]."""
    checks: list[MatrixInput] = []
    inputs = (signature or {}).get("inputs") or {}
    if not isinstance(inputs, Mapping):
        return checks
    for name, spec in inputs.items():
        if not isinstance(spec, Mapping):
            continue
        shape = spec.get("shape")
        integer = str(spec.get("dtype", "")).startswith("int")
        if not isinstance(shape, list) or not shape or shape[0] != -1:
            continue
        if len(shape) == 1:
            checks.append(MatrixInput(name, None, flat=True, integer=integer))
        elif len(shape) == 2 and isinstance(shape[1], int):
            width = shape[1] if shape[1] > 0 else None
            checks.append(MatrixInput(name, width, integer=integer))
    return checks


def validate_payload(payload: Any, checks: list[MatrixInput]) -> None:
    """Check a parsed body against the signature; raise ScoringInputError naming the bad field."""
    if not checks:
        return
    if not isinstance(payload, dict):
        raise ScoringInputError(f"body: expected a JSON object, got {_type_name(payload)}", "body")
    for check in checks:
        name = check.name
        kind = "integers" if check.integer else "numbers"
        if name not in payload:
            raise ScoringInputError(f"{name}: required field is missing", name)
        rows = payload[name]
        if not isinstance(rows, list):
            raise ScoringInputError(f"{name}: expected a list of rows, got {_type_name(rows)}", name)
        if not rows:
            raise ScoringInputError(f"{name}: expected at least one row, got an empty list", name)
        if check.flat:
            for i, value in enumerate(rows):
                if not _is_number(value, check.integer):
                    where = f"{name}[{i}]"
                    raise ScoringInputError(f"{where}: expected one of {kind}, got {_describe(value)}", where)
            continue
        for i, row in enumerate(rows):
            where = f"{name}[{i}]"
            if not isinstance(row, list):
                raise ScoringInputError(f"{where}: expected a list of {kind}, got {_type_name(row)}", where)
            if check.width is not None and len(row) != check.width:
                raise ScoringInputError(f"{where}: expected {check.width} {kind}, got {len(row)}", where)
            for j, value in enumerate(row):
                if not _is_number(value, check.integer):
                    cell = f"{where}[{j}]"
                    raise ScoringInputError(f"{cell}: expected a number, got {_describe(value)}", cell)


def parse_body(raw_body: str | bytes) -> tuple[str, Any]:
    """Decode and parse a request body; raise MalformedBodyError if it is not UTF-8 JSON."""
    if isinstance(raw_body, bytes):
        try:
            raw_body = raw_body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedBodyError(f"body is not valid UTF-8: {exc.reason} at byte {exc.start}") from exc
    if not raw_body.strip():
        raise MalformedBodyError('body is empty; send a JSON object such as {"data": [[...]]}')
    try:
        return raw_body, json.loads(raw_body)
    except json.JSONDecodeError as exc:
        raise MalformedBodyError(
            f"body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from exc


def _accepts_two_args(func: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in params)


def read_manifest(bundle_dir: Path) -> dict[str, Any]:
    """Read and minimally check ``manifest.json`` of a bundle."""
    path = bundle_dir / MANIFEST_FILE
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise BundleError(f"{path} not found: is {bundle_dir} a bundle folder?") from exc
    except (OSError, ValueError) as exc:
        raise BundleError(f"cannot read {path}: {exc}") from exc
    if not isinstance(manifest, dict):
        raise BundleError(f"{path}: expected a JSON object")
    return manifest


@dataclass
class ScoringScript:
    """A loaded, initialised entry script of a bundle, ready to score requests."""

    bundle_dir: Path
    manifest: dict[str, Any]
    module: ModuleType
    checks: list[MatrixInput] = field(default_factory=list)
    run_takes_headers: bool = False

    @property
    def model_name(self) -> str | None:
        """The model name recorded in the manifest."""
        return self.manifest.get("model_name")

    @property
    def model_version(self) -> str | None:
        """The model version recorded in the manifest, as a string."""
        version = self.manifest.get("model_version")
        return None if version is None else str(version)

    @classmethod
    def load(cls, bundle_dir: str | Path) -> ScoringScript:
        """Read the manifest, set AZUREML_MODEL_DIR, import the entry script and call its init()."""
        bundle_dir = Path(bundle_dir).resolve()
        manifest = read_manifest(bundle_dir)
        script_path = bundle_dir / str(manifest.get("entry_script") or "score.py")
        if not script_path.is_file():
            raise BundleError(f"entry script {script_path} not found (manifest 'entry_script')")
        model_dir = manifest.get("model_dir")
        if model_dir:
            model_path = (bundle_dir / str(model_dir)).resolve()
            if not model_path.is_dir():
                raise BundleError(f"model_dir {model_path} from the manifest does not exist")
            os.environ[MODEL_DIR_ENV] = str(model_path)

        digest = hashlib.sha1(str(script_path).encode()).hexdigest()[:12]
        module_name = f"_shipyard_score_{digest}"
        spec = importlib.util.spec_from_file_location(module_name, script_path)
        if spec is None or spec.loader is None:
            raise BundleError(f"cannot import {script_path}")
        module = importlib.util.module_from_spec(spec)
        # Helper modules next to score.py must be importable while it loads and initialises,
        # as they are in Azure ML; we do not leave the bundle on sys.path afterwards.
        sys.path.insert(0, str(bundle_dir))
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
            for name in ("init", "run"):
                if not callable(getattr(module, name, None)):
                    raise BundleError(f"{script_path} defines no {name}() function")
            module.init()
        except BaseException:
            sys.modules.pop(module_name, None)
            raise
        finally:
            try:
                sys.path.remove(str(bundle_dir))
            except ValueError:
                pass
        return cls(
            bundle_dir=bundle_dir,
            manifest=manifest,
            module=module,
            checks=parse_signature(manifest.get("signature")),
            run_takes_headers=_accepts_two_args(module.run),
        )

    def validate(self, raw_body: str | bytes) -> str:
        """Parse the body and check it against the signature; return the body as text."""
        text, payload = parse_body(raw_body)
        validate_payload(payload, self.checks)
        return text

    def run(self, raw_body: str, headers: Mapping[str, str] | None = None) -> Any:
        """Call the script's run() on an already validated body (headers if it takes two args)."""
        if self.run_takes_headers:
            return self.module.run(raw_body, dict(headers or {}))
        return self.module.run(raw_body)

    def input_spec(self) -> dict[str, Any] | None:
        """The first signature input as a tensor spec (name, datatype, shape)."""
        if not self.checks:
            return None
        check = self.checks[0]
        shape = [-1] if check.flat else [-1, check.width or -1]
        return {"name": check.name, "datatype": "INT64" if check.integer else "FP64", "shape": shape}

    def predict_rows(self, rows: list[Any]) -> list[Any]:
        """Score rows through run() with the script's own contract: {"<input>": rows} in,
        {"result": [...]} (or a bare list) out."""
        name = self.checks[0].name if self.checks else "data"
        result = self.run(json.dumps({name: rows}))
        if isinstance(result, str | bytes):
            result = json.loads(result)
        if isinstance(result, dict) and "result" in result:
            result = result["result"]
        return check_predictions(rows, result)

    def score(self, raw_body: str | bytes, headers: Mapping[str, str] | None = None) -> Any:
        """Validate the body, then return what the script's run() returns."""
        return self.run(self.validate(raw_body), headers)
