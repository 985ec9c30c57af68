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

``swagger`` builds the ``GET /swagger.json`` document from the schemas recorded here.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

HEADERS_PARAM = "request_headers"
_SCHEMA_UTIL = "inference_schema.schema_util"
_SCHEMA_DECORATORS = "inference_schema.schema_decorators"
_CONVERT_FUNCTION = "_deserialize_input_argument"


class SchemaInputError(ValueError):
    """A request body the schema-decorated run() cannot take; ``field`` names the bad key."""

    def __init__(self, message: str, field: str | None) -> None:
        super().__init__(message)
        self.field = field


class ScriptContractError(ValueError):
    """run() is declared in a way the Azure ML server refuses (e.g. ``*args``)."""


def schema_util() -> ModuleType | None:
    """inference-schema's ``schema_util`` module, if a loaded script imported the package."""
    return sys.modules.get(_SCHEMA_UTIL)


def is_schema_decorated(func: Callable[..., Any] | None) -> bool:
    """True if inference-schema recorded an input or output schema for ``func`` (as Azure ML checks)."""
    util = schema_util()
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
    util = schema_util()
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
    util = schema_util()
    if util is not None:
        try:
            properties = util.get_input_schema(run).get("properties") or {}
        except Exception:
            properties = {}
        for name in signature.names:
            if properties.get(name):
                return name
    return signature.names[0]


def _decorator_schema(run: Callable[..., Any], which: str) -> dict[str, Any] | None:
    """inference-schema's swagger schema of run()'s `which` ("input" or "output"), if any."""
    util = schema_util()
    if util is None:
        return None
    try:
        return getattr(util, f"get_{which}_schema")(run) or None
    except Exception:
        return None


def input_schema_of(run: Callable[..., Any], name: str) -> dict[str, Any] | None:
    """The swagger schema (with ``example``) the decorators give to parameter ``name``."""
    schema = _decorator_schema(run, "input")
    if schema is None:
        return None
    prop = (schema.get("properties") or {}).get(name)
    if not prop:
        return None
    return {**prop, "example": (schema.get("example") or {}).get(name)}


def output_schema_of(run: Callable[..., Any]) -> dict[str, Any] | None:
    """The swagger schema the ``@output_schema`` decorator gives to run()'s result, if any."""
    return _decorator_schema(run, "output")


# JSON schema item types (and inference-schema's numpy formats) as V2 datatypes.
_DATATYPES = {
    ("number", None): "FP64",
    ("number", "double"): "FP64",
    ("number", "float"): "FP32",
    ("integer", None): "INT64",
    ("integer", "int64"): "INT64",
    ("integer", "int32"): "INT32",
    ("boolean", None): "BOOL",
    ("string", None): "BYTES",
}


def tensor_of_schema(schema: Any, numeric_only: bool = False) -> tuple[str, list[int]] | None:
    """(datatype, shape) of a decorator's schema that is a list of rows: an array of numbers
    (``[-1]``) or of arrays of numbers (``[-1, -1]``: whether the sample's width is enforced cannot
    be read from the schema); strings and booleans too unless `numeric_only`. None otherwise."""
    if not isinstance(schema, dict) or schema.get("type") != "array":
        return None
    items = schema.get("items") or {}
    shape = [-1]
    if items.get("type") == "array":
        items = items.get("items") or {}
        shape = [-1, -1]
    kind = str(items.get("type"))
    datatype = _DATATYPES.get((kind, items.get("format"))) or _DATATYPES.get((kind, None))
    if datatype is None or (numeric_only and datatype in ("BOOL", "BYTES")):
        return None
    return datatype, shape
