"""The Azure ML scoring contract: a bundle's ``score.py`` with ``init()`` and ``run(raw)``.

A bundle is a folder with ``manifest.json``, the entry script and the model files. Loading it
sets ``AZUREML_MODEL_DIR`` (as Azure ML does), imports the entry script from its file and calls
``init()`` once. Requests are validated against the manifest's signature before ``run()`` so that
callers get a 4xx naming the bad field instead of a stack trace from inside the model (see
``validation``).

run() is called the way Azure ML's inference server calls it (see ``schema_decorators``): without
inference-schema decorators it gets the body as a JSON string; with ``@input_schema`` it gets the
body's keys as keyword arguments, converted by the decorators, and a value they reject is a 422
naming the field. A parameter named ``request_headers`` gets the request headers (as a keyword);
an undecorated ``run(raw, headers)`` gets them as its second argument too (Shipyard's own
convention, kept for existing scripts).
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson

from shipyard.serving.azureml import schema_decorators
from shipyard.serving.manifest import BundleError, ManifestModel, add_code_path, read_manifest
from shipyard.serving.printlog import REQUEST_ID
from shipyard.serving.servable import check_predictions
from shipyard.serving.user_errors import INPUT_ERRORS, rejected_input
from shipyard.serving.validation import (
    ArrayInput,
    ScoringInputError,
    parse_body,
    parse_signature,
    validate_payload,
)

MODEL_DIR_ENV = "AZUREML_MODEL_DIR"


def _accepts_two_args(func: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in params)


def _takes_request_headers(func: Callable[..., Any]) -> bool:
    try:
        return schema_decorators.HEADERS_PARAM in inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False


def _rows_body(name: str, rows: list[Any]) -> str:
    """`json.dumps({name: rows})`, written by orjson (a batch of rows is the one JSON text the
    server writes per model call; json.dumps took a sixth of the batched server's CPU). The
    same JSON, more compact; json.dumps where orjson would differ or refuse."""
    try:
        raw = orjson.dumps({name: rows})
    except TypeError:  # integers past 64 bits, types orjson does not know
        return json.dumps({name: rows})
    if b"null" in raw:  # maybe NaN or infinity, which orjson writes as null and json as NaN
        return json.dumps({name: rows})
    return raw.decode()


class RequestHeaders(dict[str, str]):
    """The request headers run() gets: names stored lower-case, looked up in any case.

    Azure ML's server hands run() Flask's headers, whose names are Title-Case
    (``request_headers["X-Request-Id"]``); Shipyard's have always been lower-case. Both work.
    """

    def __init__(self, headers: Mapping[str, str] | None = None) -> None:
        super().__init__((str(k).lower(), v) for k, v in (headers or {}).items())

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower() if isinstance(key, str) else key)

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key.lower() if isinstance(key, str) else key)

    def get(self, key: str, default: Any = None) -> Any:
        """The header's value, whatever the case of ``key``."""
        return super().get(key.lower() if isinstance(key, str) else key, default)


class ParsedBody(str):
    """A validated request body: its text, plus the parsed JSON for a schema-decorated run().

    A ``str`` so that callers that pass ``validate()``'s result on to ``run()`` (and log or
    capture it) need not know which kind of script they serve; ``run()`` uses ``payload`` to
    avoid parsing the body twice.
    """

    payload: Any

    def __new__(cls, text: str, payload: Any) -> ParsedBody:
        body = super().__new__(cls, text)
        body.payload = payload
        return body


@dataclass
class ScoringScript(ManifestModel):
    """A loaded, initialised entry script of a bundle, ready to score requests."""

    bundle_dir: Path
    manifest: dict[str, Any]
    module: ModuleType
    checks: list[ArrayInput] = field(default_factory=list)
    run_takes_headers: bool = False
    # Set when run() carries inference-schema decorators: how to call it, and its input parameter.
    schema: schema_decorators.RunSignature | None = None
    input_name: str | None = None
    headers_keyword: bool = False
    swagger_cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def load(cls, bundle_dir: str | Path) -> ScoringScript:
        """Read the manifest, set AZUREML_MODEL_DIR, import the entry script and call its init()."""
        bundle_dir = Path(bundle_dir).resolve()
        manifest = read_manifest(bundle_dir)
        add_code_path(bundle_dir, manifest)
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
        # inference-schema records the decorators' schemas per "<module>.run" for the process;
        # a second load of this script under the same module name must start from a clean slate.
        schema_decorators.forget_schemas(module_name)
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
            schema_decorators.forget_schemas(module_name)
            raise
        finally:
            try:
                sys.path.remove(str(bundle_dir))
            except ValueError:
                pass
        schema: schema_decorators.RunSignature | None = None
        input_name: str | None = None
        if schema_decorators.is_schema_decorated(module.run):
            try:
                schema = schema_decorators.run_signature(module.run)
            except schema_decorators.ScriptContractError as exc:
                raise BundleError(f"{script_path}: {exc}") from exc
            input_name = schema_decorators.input_parameter(module.run, schema)
        return cls(
            bundle_dir=bundle_dir,
            manifest=manifest,
            module=module,
            checks=parse_signature(manifest.get("signature")),
            # A decorated run()'s other parameters are body fields, never the headers.
            run_takes_headers=schema is None and _accepts_two_args(module.run),
            schema=schema,
            input_name=input_name,
            headers_keyword=_takes_request_headers(module.run),
        )

    @property
    def schema_decorated(self) -> bool:
        """True if run() carries inference-schema decorators (it takes keyword arguments)."""
        return self.schema is not None

    def validate(self, raw_body: str | bytes) -> str:
        """Parse the body and check it against the signature; return the body as text.

        For a schema-decorated run() the body must also be a JSON object holding every parameter
        without a default; the text returned is then a ParsedBody carrying the parsed JSON.
        """
        text, payload = parse_body(raw_body)
        validate_payload(payload, self.checks)
        if self.schema is None:
            return text
        self._call_arguments(payload)
        return ParsedBody(text, payload)

    def _call_arguments(self, payload: Any) -> dict[str, Any]:
        assert self.schema is not None
        try:
            return schema_decorators.call_arguments(self.schema, payload)
        except schema_decorators.SchemaInputError as exc:
            raise ScoringInputError(str(exc), exc.field) from None

    def _headers(self, headers: Mapping[str, str] | None) -> dict[str, str]:
        result = RequestHeaders(headers)
        request_id = REQUEST_ID.get()
        if request_id and "x-request-id" not in result:
            result["x-request-id"] = request_id
        return result

    def run(self, raw_body: str | dict[str, Any], headers: Mapping[str, str] | None = None) -> Any:
        """Call the script's run() on a body, the way Azure ML's server does (or on the dict a body
        with images or files becomes, azureml/uploads.py).

        Undecorated: run(text) (with the headers as second argument if it takes two). Decorated:
        run(**body fields) with the decorators converting them; a value they reject raises
        ScoringInputError naming the field. ``request_headers=`` is passed to a run() with a
        parameter of that name. A ValueError or OverflowError raised by run() itself means the
        input was refused: it becomes a RejectedInputError (a 4xx, see ``user_errors``); any other
        exception propagates (a 500).
        """
        try:
            return self._call_run(raw_body, headers)
        except INPUT_ERRORS as exc:
            raise rejected_input(exc) from exc

    def _call_run(self, raw_body: str | dict[str, Any], headers: Mapping[str, str] | None) -> Any:
        if self.schema is None:
            if self.headers_keyword:
                return self.module.run(raw_body, request_headers=self._headers(headers))
            if self.run_takes_headers:
                return self.module.run(raw_body, self._headers(headers))
            return self.module.run(raw_body)
        if isinstance(raw_body, ParsedBody):
            payload = raw_body.payload
        elif isinstance(raw_body, dict):  # already parsed (the server sends uploads to undecorated run()s)
            payload = raw_body
        else:
            _, payload = parse_body(raw_body)
            validate_payload(payload, self.checks)
        kwargs = self._call_arguments(payload)
        if self.schema.request_headers:
            kwargs[schema_decorators.HEADERS_PARAM] = self._headers(headers)
        try:
            return self.module.run(**kwargs)
        except Exception as exc:
            where = schema_decorators.conversion_field(exc, self.module.run)
            if where is None:
                raise
            raise ScoringInputError(f"{where}: {exc}", where) from exc

    def input_spec(self) -> dict[str, Any] | None:
        """The first signature input as a tensor spec (name, datatype, shape).

        Without a manifest signature, a schema-decorated run()'s input parameter is described
        from its decorator when that is an array of numbers (rows of any width: whether the
        decorator enforces the sample's width cannot be read from its schema).
        """
        if not self.checks:
            return self._schema_input_spec()
        return self.checks[0].tensor_spec()

    def _schema_input_spec(self) -> dict[str, Any] | None:
        if self.schema is None or self.input_name is None:
            return None
        spec = schema_decorators.input_schema_of(self.module.run, self.input_name)
        found = schema_decorators.tensor_of_schema(spec, numeric_only=True)
        if found is None:
            return None
        datatype = "INT64" if found[0].startswith("INT") else "FP64"
        return {"name": self.input_name, "datatype": datatype, "shape": found[1]}

    def output_spec(self) -> dict[str, Any] | None:
        """The output the script declares with ``@output_schema``: a list of predictions (or
        ``{"result": [...]}``, what V2 reads), as {"datatype", "shape"}; None without one."""
        if self.schema is None:
            return None
        schema = schema_decorators.output_schema_of(self.module.run)
        if isinstance(schema, dict) and schema.get("type") == "object":
            schema = (schema.get("properties") or {}).get("result")
        found = schema_decorators.tensor_of_schema(schema)
        return {"datatype": found[0], "shape": found[1]} if found else None

    def predict_rows(self, rows: list[Any]) -> list[Any]:
        """Score rows through run() with the script's own contract: {"<input>": rows} in,
        {"result": [...]} (or a bare list) out. A schema-decorated run() gets the rows as its
        input parameter (converted by its decorator)."""
        name = self.input_name or (self.checks[0].name if self.checks else "data")
        result = self.run(_rows_body(name, rows))
        if isinstance(result, str | bytes):
            result = json.loads(result)
        if isinstance(result, dict) and "result" in result:
            result = result["result"]
        return check_predictions(rows, result)

    def score(self, raw_body: str | bytes, headers: Mapping[str, str] | None = None) -> Any:
        """Validate the body, then return what the script's run() returns."""
        return self.run(self.validate(raw_body), headers)
