"""Model registry on MLflow: versions, aliases with history."""

from shipyard.registry.models import (
    ModelRef,
    ModelVersionInfo,
    alias_history,
    alias_version,
    delete_alias,
    list_models,
    parse_model_ref,
    register,
    resolve,
    set_alias,
    show_model,
)

__all__ = [
    "ModelRef",
    "ModelVersionInfo",
    "alias_history",
    "alias_version",
    "delete_alias",
    "list_models",
    "parse_model_ref",
    "register",
    "resolve",
    "set_alias",
    "show_model",
]
