"""Typer callbacks that check a name argument or option with names.py's rule while the command
line is parsed, before any workspace or file is touched. A refused name exits 2 with one line.

    endpoint: Annotated[str, typer.Argument(callback=name_check("endpoint name"))]
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from shipyard.names import check_name


def name_check(kind: str) -> Callable[[Any, Any, Any], Any]:
    """A callback checking the value (None, a string or a list of strings) as a name of `kind`."""

    def _check(ctx: Any, param: Any, value: Any) -> Any:
        if value is None:
            return value
        label = _label(param)
        for item in value if isinstance(value, list | tuple) else [value]:
            check_name(kind, item, label)
        return value

    return _check


def model_ref_check(ctx: Any, param: Any, value: str | None) -> str | None:
    """NAME, NAME:VERSION or NAME@ALIAS, each part checked (UsageError otherwise)."""
    if value is not None:
        from shipyard.registry.models import parse_model_ref

        parse_model_ref(value)
    return value


def model_ref_or_bundle_check(ctx: Any, param: Any, value: str | None) -> str | None:
    """A bundle folder (it has a manifest.json) or a model reference."""
    if value is not None and not _is_bundle(value):
        model_ref_check(ctx, param, value)
    return value


def _is_bundle(value: str) -> bool:
    try:
        return (Path(value) / "manifest.json").is_file()
    except (OSError, ValueError):  # a name too long for a path, a NUL
        return False


EndpointArg = Annotated[str, typer.Argument(help="Endpoint name.", callback=name_check("endpoint name"))]
ModelNameArg = Annotated[
    str, typer.Argument(help="Registered model name.", callback=name_check("model name"))
]
ModelNameOpt = Annotated[
    str | None, typer.Option("--model", help="Only this registered model.", callback=name_check("model name"))
]


def _label(param: Any) -> str:
    opts = [o for o in getattr(param, "opts", []) if o.startswith("--")]
    return opts[0] if opts else str(getattr(param, "human_readable_name", param.name)).upper()
