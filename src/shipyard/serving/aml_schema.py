"""Azure ML's inference-schema contract for score.py, served the way azureml-inference-server-http does.

When run() carries ``@input_schema(...)`` / ``@output_schema(...)`` (the inference-schema package),
the Azure ML server does not hand it the raw body. It parses the body as a JSON object and calls
``run(**{p: body.get(p, <default of p>) for p in run's parameters})``; a parameter that is neither
in the body nor has a default is an input error. The decorators then convert each value
(NumpyParameterType → ndarray, PandasParameterType → DataFrame, StandardPythonParameterType →
checked Python value). A parameter named ``request_headers`` is left out of that and gets the
request headers as a keyword argument; a run() without such a parameter gets no headers.
Decorated or not, positional-only parameters, ``*args`` and ``**kwargs`` are refused at load.

Azure ML answers a value the decorators reject with a 500 (the decorator runs inside run()); we
tell those failures apart from the script's own errors by their traceback (raised inside
inference-schema's conversion, before the script's function body ran) and answer 422 naming the
field.

inference-schema is looked at only through ``sys.modules``: a script that uses the decorators has
imported it, and a bundle without them neither pays for the import nor needs the package.

``build_swagger`` builds what the Azure ML server serves at ``GET /swagger.json``: OpenAPI 2.0 by
default, 3.0 for ``?version=3`` and 3.1 for ``?version=3.1``, with the decorators' schemas (and
their examples) as ``ServiceInput`` / ``ServiceOutput``; a ``swagger.json`` (or ``swagger2.json``,
``swagger3.json``, ``swagger3.1.json``) next to the entry script is served as it is instead.
"""

from __future__ import annotations

import copy
import inspect
import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from shipyard.errors import ShipyardError

HEADERS_PARAM = "request_headers"
_SCHEMA_UTIL = "inference_schema.schema_util"
_SCHEMA_DECORATORS = "inference_schema.schema_decorators"
_CONVERT_FUNCTION = "_deserialize_input_argument"

# Requested version (and its aliases, as Azure ML accepts them) → the builder used.
_VERSIONS = {"2": "2", "2.0": "2", "3": "3", "3.0": "3", "3.1": "3.1"}
_ALIASES = {"2": ("2", "2.0"), "3": ("3", "3.0"), "3.1": ("3.1",)}
_USER_FILES = {"2": ("swagger.json", "swagger2.json"), "3": ("swagger3.json",), "3.1": ("swagger3.1.json",)}


class SchemaInputError(ValueError):
    """A request body the schema-decorated run() cannot take; ``field`` names the bad key."""

    def __init__(self, message: str, field: str | None) -> None:
        super().__init__(message)
        self.field = field


class ScriptContractError(ValueError):
    """run() is declared in a way the Azure ML server refuses (e.g. ``*args``)."""


class SwaggerVersionError(ShipyardError):
    """The requested swagger version is unknown or not possible for this script (HTTP 404)."""

    code = "not_found"
    status_code = 404


def _schema_util() -> ModuleType | None:
    return sys.modules.get(_SCHEMA_UTIL)


def is_schema_decorated(func: Callable[..., Any] | None) -> bool:
    """True if inference-schema recorded an input or output schema for ``func`` (as Azure ML checks)."""
    util = _schema_util()
    if util is None or func is None:
        return False
    try:
        return bool(util.is_schema_decorated(func))
    except Exception:  # a callable inference-schema cannot inspect is not decorated by it
        return False


def forget_schemas(module_name: str) -> None:
    """Drop what inference-schema recorded for the functions of ``module_name``.

    It keeps one process-wide registry keyed by ``"<module>.<function>"`` and refuses a second
    output schema for a key, so loading the same score.py twice in one process (a reload, two
    apps in one test run) would fail at import without this.
    """
    util = _schema_util()
    if util is None:
        return
    prefix = module_name + "."
    for registry_name in ("__functions_schema__", "__versions__"):
        registry = getattr(util, registry_name, None)
        if isinstance(registry, dict):
            for key in [k for k in registry if isinstance(k, str) and k.startswith(prefix)]:
                del registry[key]


@dataclass(frozen=True)
class RunSignature:
    """How the server calls run(): its body parameters and whether it takes ``request_headers``."""

    params: tuple[inspect.Parameter, ...]
    request_headers: bool

    @property
    def names(self) -> list[str]:
        """The body parameter names, in declaration order."""
        return [p.name for p in self.params]


def run_signature(run: Callable[..., Any]) -> RunSignature:
    """Analyse run() as the Azure ML server does; ScriptContractError if it would refuse it."""
    try:
        params = list(inspect.signature(run).parameters.values())
    except (TypeError, ValueError) as exc:
        raise ScriptContractError(f"cannot read the parameters of run(): {exc}") from exc
    allowed = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    bad = [p.name for p in params if p.kind not in allowed]
    if bad:
        raise ScriptContractError(
            f"run() cannot take positional-only parameters, *args or **kwargs (as in Azure ML): {bad}"
        )
    headers = any(p.name == HEADERS_PARAM for p in params)
    body = tuple(p for p in params if p.name != HEADERS_PARAM)
    if not body:
        raise ScriptContractError(
            f'run() needs a parameter for the input data besides "{HEADERS_PARAM}"'
            if headers
            else "run() needs a parameter for the input data"
        )
    return RunSignature(body, headers)


def call_arguments(signature: RunSignature, payload: Any) -> dict[str, Any]:
    """The keyword arguments of run() from a parsed body, as Azure ML's server extracts them."""
    if not isinstance(payload, Mapping):
        kind = {list: "array", str: "string", bool: "boolean"}.get(type(payload), "number")
        if payload is None:
            kind = "null"
        names = ", ".join(signature.names)
        raise SchemaInputError(f"body: expected a JSON object with the keys {names}, got {kind}", "body")
    kwargs: dict[str, Any] = {}
    for param in signature.params:
        value = payload.get(param.name, param.default)
        if value is inspect.Parameter.empty:
            raise SchemaInputError(f"{param.name}: required field is missing", param.name)
        kwargs[param.name] = value
    return kwargs


def conversion_field(exc: BaseException, run: Callable[..., Any]) -> str | None:
    """The body field whose conversion by an ``@input_schema`` decorator raised ``exc``.

    None when ``exc`` came from elsewhere: the script's own code (its function body is on the
    traceback) or a misdeclared decorator (raised outside inference-schema's conversion). Nested
    fields (a StandardPythonParameterType dict of typed values) come back as ``"outer.inner"``.
    """
    user_code = getattr(inspect.unwrap(run), "__code__", None)
    names: list[str] = []
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if user_code is not None and frame.f_code is user_code:
            return None
        if (
            frame.f_code.co_name == _CONVERT_FUNCTION
            and frame.f_globals.get("__name__") == _SCHEMA_DECORATORS
        ):
            name = frame.f_locals.get("param_name")
            if isinstance(name, str) and (not names or names[-1] != name):
                names.append(name)
        tb = tb.tb_next
    return ".".join(names) or None


def input_parameter(run: Callable[..., Any], signature: RunSignature) -> str:
    """The body key rows go under: the first parameter with an ``@input_schema``, else the first."""
    util = _schema_util()
    if util is not None:
        try:
            properties = util.get_input_schema(run).get("properties") or {}
        except Exception:
            properties = {}
        for name in signature.names:
            if properties.get(name):
                return name
    return signature.names[0]


def input_schema_of(run: Callable[..., Any], name: str) -> dict[str, Any] | None:
    """The swagger schema (with ``example``) the decorators give to parameter ``name``."""
    util = _schema_util()
    if util is None:
        return None
    try:
        schema = util.get_input_schema(run)
    except Exception:
        return None
    prop = (schema.get("properties") or {}).get(name)
    if not prop:
        return None
    return {**prop, "example": (schema.get("example") or {}).get(name)}


# --- swagger -------------------------------------------------------------------------------


def _run_function(servable: Any) -> Callable[..., Any] | None:
    run = getattr(getattr(servable, "module", None), "run", None)
    return run if callable(run) else None


def _user_swagger(servable: Any, key: str) -> dict[str, Any] | None:
    bundle_dir = getattr(servable, "bundle_dir", None)
    if bundle_dir is None:
        return None
    for name in _USER_FILES[key]:
        path = Path(bundle_dir) / name
        if path.is_file():
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ShipyardError(f"{path} is not valid JSON: {exc}") from exc
            if isinstance(doc, dict):
                return doc
    return None


def build_swagger(servable: Any, version: str | None = None) -> dict[str, Any]:
    """The swagger document of a served model, as Azure ML serves it at ``GET /swagger.json``.

    ``version`` is the ``?version=`` query value: None, "2" or "2.0" → OpenAPI 2.0 (Azure ML's
    default); "3"/"3.0" → 3.0; "3.1". SwaggerVersionError (404) for other values, or for a version
    the decorators' samples cannot be described in (OpenAPI 2 has no mixed-type arrays). Works for
    any servable: one that is not an Azure ML score.py gets the undecorated document. The result
    is cached on the servable per version; do not mutate it.
    """
    key = _VERSIONS.get(str(version) if version is not None else "2")
    if key is None:
        raise SwaggerVersionError(f"swagger version {version!r} is not valid; use 2, 3 or 3.1")
    cache = getattr(servable, "swagger_cache", None)
    if isinstance(cache, dict) and key in cache:
        return cache[key]
    doc = _user_swagger(servable, key) or _generate(servable, key)
    if isinstance(cache, dict):
        cache[key] = doc
    return doc


def _generate(servable: Any, key: str) -> dict[str, Any]:
    run = _run_function(servable)
    util = _schema_util()
    if run is not None and util is not None and is_schema_decorated(run):
        supported = [str(v) for v in util.get_supported_versions(run)]
        if not any(alias in supported for alias in _ALIASES[key]):
            raise SwaggerVersionError(
                f"swagger version {key} is not possible for this scoring script's schemas; "
                f"supported: {', '.join(supported) or 'none'}"
            )
        input_schema = copy.deepcopy(util.get_input_schema(run))
        output_schema = copy.deepcopy(util.get_output_schema(run))
    else:
        manifest = getattr(servable, "manifest", None) or {}
        sample = manifest.get("input_sample") if isinstance(manifest, Mapping) else None
        input_schema = {"type": "object", "example": copy.deepcopy(sample) if sample is not None else {}}
        output_schema = {"type": "object", "example": {}}
    title = str(getattr(servable, "model_name", None) or "scoring-service")
    version = str(getattr(servable, "model_version", None) or "1")
    if key == "2":
        return _swagger2(title, version, input_schema, output_schema)
    doc = _openapi3(title, version, input_schema, output_schema)
    if key == "3.1":
        doc["openapi"] = "3.1.0"
    return doc


_HEALTH_SCHEMA = {
    "type": "object",
    "properties": {
        "status": {"type": "string"},
        "model_name": {"type": "string"},
        "model_version": {"type": "string"},
        "deployment_id": {"type": "string"},
    },
}
_ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "request_id": {"type": "string"},
                "field": {"type": "string"},
            },
        }
    },
}
_BEARER = {
    "type": "apiKey",
    "name": "Authorization",
    "in": "header",
    "description": "Endpoint key, when key auth is on. For example: Bearer abc123",
}
_SCORE_DESCRIPTION = "Run the model of the service on the input and return its predictions."
_FAILED = "The request failed; the body says why."


def _swagger2(title: str, version: str, input_schema: Any, output_schema: Any) -> dict[str, Any]:
    error = {"description": _FAILED, "schema": {"$ref": "#/definitions/ErrorResponse"}}
    return {
        "swagger": "2.0",
        "info": {
            "title": title,
            "description": f"API specification of the scoring service {title}",
            "version": version,
        },
        "schemes": ["http", "https"],
        "consumes": ["application/json"],
        "produces": ["application/json"],
        "securityDefinitions": {"Bearer": dict(_BEARER)},
        "paths": {
            "/": {
                "get": {
                    "operationId": "ServiceHealthCheck",
                    "description": "Liveness: the service is up and its model is loaded.",
                    "responses": {
                        "200": {"description": "Healthy", "schema": copy.deepcopy(_HEALTH_SCHEMA)},
                        "default": error,
                    },
                }
            },
            "/score": {
                "post": {
                    "operationId": "RunMLService",
                    "description": _SCORE_DESCRIPTION,
                    "security": [{"Bearer": []}],
                    "parameters": [
                        {
                            "name": "serviceInputPayload",
                            "in": "body",
                            "description": "The input payload of the model.",
                            "schema": {"$ref": "#/definitions/ServiceInput"},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "The predictions.",
                            "schema": {"$ref": "#/definitions/ServiceOutput"},
                        },
                        "default": error,
                    },
                }
            },
            "/swagger.json": {
                "get": {
                    "operationId": "GetSwaggerSpec",
                    "description": "This specification.",
                    "parameters": [
                        {
                            "name": "version",
                            "in": "query",
                            "required": False,
                            "type": "string",
                            "enum": ["2", "3", "3.1"],
                        }
                    ],
                    "responses": {
                        "200": {"description": "The specification.", "schema": {"type": "object"}},
                        "default": error,
                    },
                }
            },
        },
        "definitions": {
            "ServiceInput": input_schema,
            "ServiceOutput": output_schema,
            "ErrorResponse": copy.deepcopy(_ERROR_SCHEMA),
        },
    }


def _openapi3(title: str, version: str, input_schema: Any, output_schema: Any) -> dict[str, Any]:
    def json_content(ref: str) -> dict[str, Any]:
        return {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}

    error = {"description": _FAILED, "content": json_content("ErrorResponse")}
    return {
        "openapi": "3.0.3",
        "info": {
            "title": title,
            "description": f"API specification of the scoring service {title}",
            "version": version,
        },
        "security": [{"Bearer": []}],
        "paths": {
            "/": {
                "get": {
                    "operationId": "ServiceHealthCheck",
                    "description": "Liveness: the service is up and its model is loaded.",
                    "security": [],
                    "responses": {
                        "200": {"description": "Healthy", "content": json_content("Health")},
                        "default": error,
                    },
                }
            },
            "/score": {
                "post": {
                    "operationId": "RunMLService",
                    "description": _SCORE_DESCRIPTION,
                    "security": [{"Bearer": []}],
                    "requestBody": {
                        "description": "The input payload of the model.",
                        "content": json_content("ServiceInput"),
                    },
                    "responses": {
                        "200": {"description": "The predictions.", "content": json_content("ServiceOutput")},
                        "default": error,
                    },
                }
            },
            "/swagger.json": {
                "get": {
                    "operationId": "GetSwaggerSpec",
                    "description": "This specification.",
                    "parameters": [
                        {
                            "name": "version",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string", "enum": ["2", "3", "3.1"]},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "The specification.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        "default": error,
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "ServiceInput": input_schema,
                "ServiceOutput": output_schema,
                "Health": copy.deepcopy(_HEALTH_SCHEMA),
                "ErrorResponse": copy.deepcopy(_ERROR_SCHEMA),
            },
            "securitySchemes": {"Bearer": dict(_BEARER)},
        },
    }
