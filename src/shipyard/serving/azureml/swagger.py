"""The swagger document of a served model, as Azure ML's inference server serves it at ``GET /swagger.json``.

OpenAPI 2.0 by default, 3.0 for ``?version=3`` and 3.1 for ``?version=3.1``, with the
inference-schema decorators' schemas (and their examples) as ``ServiceInput`` / ``ServiceOutput``
(see ``schema_decorators``); a ``swagger.json`` (or ``swagger2.json``, ``swagger3.json``,
``swagger3.1.json``) next to the entry script is served as it is instead.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from shipyard.errors import ShipyardError
from shipyard.serving.azureml.schema_decorators import is_schema_decorated, schema_util

# Requested version (and its aliases, as Azure ML accepts them) → the builder used.
_VERSIONS = {"2": "2", "2.0": "2", "3": "3", "3.0": "3", "3.1": "3.1"}
_ALIASES = {"2": ("2", "2.0"), "3": ("3", "3.0"), "3.1": ("3.1",)}
_USER_FILES = {"2": ("swagger.json", "swagger2.json"), "3": ("swagger3.json",), "3.1": ("swagger3.1.json",)}


class SwaggerVersionError(ShipyardError):
    """The requested swagger version is unknown or not possible for this script (HTTP 404)."""

    code = "not_found"
    status_code = 404


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
    util = schema_util()
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
_HEALTH_DESCRIPTION = "Liveness: the service is up and its model is loaded."
_INPUT_DESCRIPTION = "The input payload of the model."
_SPEC_DESCRIPTION = "This specification."
_FAILED = "The request failed; the body says why."
_SWAGGER_VERSIONS = ("2", "3", "3.1")
_BEARER_SECURITY = "Bearer"


def _info(title: str, version: str) -> dict[str, Any]:
    return {
        "title": title,
        "description": f"API specification of the scoring service {title}",
        "version": version,
    }


def _operation(
    operation_id: str, description: str, ok: dict[str, Any], error: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    """One operation: ``extra`` (security, parameters, requestBody) between description and responses."""
    return {
        "operationId": operation_id,
        "description": description,
        **extra,
        "responses": {"200": ok, "default": error},
    }


def _paths(health: dict[str, Any], score: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    return {"/": {"get": health}, "/score": {"post": score}, "/swagger.json": {"get": spec}}


def _version_parameter(**type_fields: Any) -> dict[str, Any]:
    return {"name": "version", "in": "query", "required": False, **type_fields}


def _swagger2(title: str, version: str, input_schema: Any, output_schema: Any) -> dict[str, Any]:
    def ref(name: str) -> dict[str, Any]:
        return {"$ref": f"#/definitions/{name}"}

    error = {"description": _FAILED, "schema": ref("ErrorResponse")}
    body = {"name": "serviceInputPayload", "in": "body", "description": _INPUT_DESCRIPTION}
    return {
        "swagger": "2.0",
        "info": _info(title, version),
        "schemes": ["http", "https"],
        "consumes": ["application/json"],
        "produces": ["application/json"],
        "securityDefinitions": {_BEARER_SECURITY: dict(_BEARER)},
        "paths": _paths(
            _operation(
                "ServiceHealthCheck",
                _HEALTH_DESCRIPTION,
                {"description": "Healthy", "schema": copy.deepcopy(_HEALTH_SCHEMA)},
                error,
            ),
            _operation(
                "RunMLService",
                _SCORE_DESCRIPTION,
                {"description": "The predictions.", "schema": ref("ServiceOutput")},
                error,
                security=[{_BEARER_SECURITY: []}],
                parameters=[{**body, "schema": ref("ServiceInput")}],
            ),
            _operation(
                "GetSwaggerSpec",
                _SPEC_DESCRIPTION,
                {"description": "The specification.", "schema": {"type": "object"}},
                error,
                parameters=[_version_parameter(type="string", enum=list(_SWAGGER_VERSIONS))],
            ),
        ),
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
        "info": _info(title, version),
        "security": [{_BEARER_SECURITY: []}],
        "paths": _paths(
            _operation(
                "ServiceHealthCheck",
                _HEALTH_DESCRIPTION,
                {"description": "Healthy", "content": json_content("Health")},
                error,
                security=[],
            ),
            _operation(
                "RunMLService",
                _SCORE_DESCRIPTION,
                {"description": "The predictions.", "content": json_content("ServiceOutput")},
                error,
                security=[{_BEARER_SECURITY: []}],
                requestBody={"description": _INPUT_DESCRIPTION, "content": json_content("ServiceInput")},
            ),
            _operation(
                "GetSwaggerSpec",
                _SPEC_DESCRIPTION,
                {
                    "description": "The specification.",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                error,
                parameters=[_version_parameter(schema={"type": "string", "enum": list(_SWAGGER_VERSIONS)})],
            ),
        ),
        "components": {
            "schemas": {
                "ServiceInput": input_schema,
                "ServiceOutput": output_schema,
                "Health": copy.deepcopy(_HEALTH_SCHEMA),
                "ErrorResponse": copy.deepcopy(_ERROR_SCHEMA),
            },
            "securitySchemes": {_BEARER_SECURITY: dict(_BEARER)},
        },
    }
