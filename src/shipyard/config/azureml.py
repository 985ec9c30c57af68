"""Azure ML deployment and inference configs mapped onto Shipyard's `deployment:` section.

Teams coming from Azure ML (SDK/CLI v1) keep `deployment_config_aci.yml`/`deployment_config_aks.yml`
(or `deploymentconfig.json`) and `inference_config.yml` beside their score.py. Instead of asking
them to translate those by hand, `import_azureml` reads them the way the SDK does (its
`deploy_config_dict_to_obj` and `InferenceConfig`) and returns the equivalent DeploymentConfig
fields, plus one warning for every field that has no equivalent, saying why and what to use.

Spellings: the files use camelCase (`memoryInGB`), the CLI and SDK snake_case (`memory_in_gb`) or
the SDK's parameter names (`memory_gb`, `autoscale_min_replicas`, flat at the top level). Keys are
compared lower-cased without underscores, and the parameter names are accepted as aliases.
A field set to null or false asks for nothing, so it is skipped without a warning.
docs/azureml-configs.md has the table.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from shipyard.config.azureml_fields import COMPUTE_TARGETS, DEPLOY_FIELDS, INFERENCE_FIELDS, No, To
from shipyard.config.conda import conda_requirements
from shipyard.config.files import read_yaml
from shipyard.errors import ConfigError


@dataclass(frozen=True)
class AzureMLWarning:
    """A field of an Azure ML file that Shipyard does not carry over, and why."""

    file: str
    key: str
    reason: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key}: {self.reason}"

    def to_dict(self) -> dict[str, str]:
        return {"file": self.file, "key": self.key, "reason": self.reason}


def _norm(key: str) -> str:
    return key.replace("_", "").replace("-", "").lower()


def _index(fields: dict[str, tuple[To | No | None, tuple[str, ...]]]) -> tuple[dict[str, str], set[str]]:
    """Lookup of normalised spellings ('section.child' or flat) → canonical name; section names."""
    index: dict[str, str] = {}
    sections: set[str] = set()
    for canonical, (_, aliases) in fields.items():
        if "." in canonical:
            section, child = canonical.split(".", 1)
            sections.add(_norm(section))
            for spelling in (_norm(child), *aliases):
                index[f"{_norm(section)}.{spelling}"] = canonical
            for alias in aliases:
                index.setdefault(alias, canonical)  # the SDK's flat parameter names
        else:
            for spelling in (_norm(canonical), *aliases):
                index[spelling] = canonical
    return index, sections


def _asks(value: Any) -> bool:
    """Does a value ask for something (null, false and empty do not)?"""
    return value is not None and value is not False and value != "" and value != {} and value != []


def _flatten(
    data: dict[str, Any], source: str, fields: dict[str, tuple[To | No | None, tuple[str, ...]]]
) -> tuple[dict[str, tuple[str, Any]], list[AzureMLWarning]]:
    """{canonical: (key as written, value)} and warnings for keys Azure ML does not have either."""
    index, sections = _index(fields)
    found: dict[str, tuple[str, Any]] = {}
    unknown: list[AzureMLWarning] = []

    def put(written: str, lookup: str, value: Any) -> None:
        canonical = index.get(lookup)
        if canonical is None:
            if _asks(value):
                unknown.append(
                    AzureMLWarning(source, written, "not an Azure ML field Shipyard knows; ignored")
                )
            return
        if canonical in found:
            raise ConfigError(
                f"{source}: {written}: {found[canonical][0]} sets the same field; keep one of them"
            )
        found[canonical] = (written, value)

    for key, value in data.items():
        key = str(key)
        if _norm(key) in sections:
            if value is None:
                continue
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: {key}: expected a mapping of settings, got {value!r}")
            for child, child_value in value.items():
                put(f"{key}.{child}", f"{_norm(key)}.{_norm(str(child))}", child_value)
        else:
            put(key, _norm(key), value)
    return found, unknown


def _set(out: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    for part in parents:
        out = out.setdefault(part, {})
    out[leaf] = value


def _carry(
    found: dict[str, tuple[str, Any]],
    fields: dict[str, tuple[To | No | None, tuple[str, ...]]],
    source: str,
    out: dict[str, Any],
    origins: dict[str, str],
) -> list[AzureMLWarning]:
    """Apply the plain To/No entries; the special ones (None) are left to the caller."""
    warnings: list[AzureMLWarning] = []
    for canonical, (written, value) in found.items():
        rule = fields[canonical][0]
        if isinstance(rule, To) and value is not None:
            _set(out, rule.path, value)
            origins[rule.path] = f"{source}: {written}"
        elif isinstance(rule, No) and _asks(value):
            warnings.append(AzureMLWarning(source, written, rule.reason))
    return warnings


def map_deployment_config(
    data: dict[str, Any], source: str, out: dict[str, Any], origins: dict[str, str]
) -> list[AzureMLWarning]:
    """Map a parsed deployment config (ACI, AKS, AKSENDPOINT or local) into `out`."""
    found, warnings = _flatten(data, source, DEPLOY_FIELDS)
    if "computeType" not in found:
        raise ConfigError(f"{source}: computeType is missing: set it to ACI or AKS (as Azure ML requires)")
    written, compute = found["computeType"]
    target = COMPUTE_TARGETS.get(str(compute).lower())
    if target is None:
        raise ConfigError(f"{source}: {written}: {compute!r} is not an Azure ML compute type: use ACI or AKS")
    out["target"] = target
    origins["target"] = f"{source}: {written}"
    warnings += _carry(found, DEPLOY_FIELDS, source, out, origins)
    autoscale = out.get("autoscale", {})
    if target == "kubernetes" and "enabled" not in autoscale:
        # Azure ML: without autoscaleEnabled, AKS autoscales unless numReplicas fixes the count.
        _set(out, "autoscale.enabled", "replicas" not in autoscale)
    if "tokenAuthEnabled" in found and _asks(found["tokenAuthEnabled"][1]):
        written = found["tokenAuthEnabled"][0]
        warnings.append(
            AzureMLWarning(
                source,
                written,
                "Azure AD tokens are not supported: key auth (serving.auth) protects the endpoint instead",
            )
        )
        _set(out, "serving.auth", True)
        origins["serving.auth"] = f"{source}: {written}"
    return warnings


def _relative(path: Path, project_dir: Path) -> str:
    return os.path.relpath(path.resolve(), project_dir.resolve())


def map_inference_config(
    data: dict[str, Any], path: Path, project_dir: Path, out: dict[str, Any], origins: dict[str, str]
) -> list[AzureMLWarning]:
    """Map a parsed inference config into `out`; its paths become relative to the project."""
    source = _relative(path, project_dir)
    found, warnings = _flatten(data, source, INFERENCE_FIELDS)
    warnings += _carry(found, INFERENCE_FIELDS, source, out, origins)

    def value(name: str) -> Any:
        return found.get(name, (name, None))[1]

    def written(name: str) -> str:
        return found.get(name, (name, None))[0]

    folder = path.parent
    if value("sourceDirectory"):
        folder = folder / str(value("sourceDirectory"))
        warnings.append(
            AzureMLWarning(
                source,
                written("sourceDirectory"),
                (
                    f"only the entry script is bundled: other files under {value('sourceDirectory')} "
                    "that it imports are not copied into the bundle"
                ),
            )
        )
    runtime = value("runtime")
    if runtime and str(runtime).lower() != "python":
        warnings.append(
            AzureMLWarning(
                source,
                written("runtime"),
                f"runtime {runtime!r} is not supported: the entry script runs on Python",
            )
        )
    if value("entryScript"):
        script = folder / str(value("entryScript"))
        if not script.is_file():
            raise ConfigError(f"{path}: {written('entryScript')}: {script} does not exist")
        out["entry_script"] = _relative(script, project_dir)
        origins["entry_script"] = f"{source}: {written('entryScript')}"
    if value("condaFile"):
        conda = folder / str(value("condaFile"))
        if not conda.is_file():
            raise ConfigError(f"{path}: {written('condaFile')}: {conda} does not exist")
        # Recorded as is; the bundle gets the pip requirements converted from it (config/conda.py).
        conda_source = _relative(conda, project_dir)
        _, notes = conda_requirements(read_yaml(conda, "conda environment settings"), conda_source)
        warnings += [AzureMLWarning(conda_source, key, note) for key, note in notes]
        out["requirements"] = _relative(conda, project_dir)
        origins["requirements"] = f"{source}: {written('condaFile')}"
    address = value("baseImageRegistry.address")
    if address and "image" in out:
        base = out["image"]["base"]
        if not str(base).startswith(f"{address}/"):
            out["image"]["base"] = f"{str(address).rstrip('/')}/{base}"
    return warnings


def _explain(exc: ValidationError, origins: dict[str, str]) -> str:
    lines = ["the imported Azure ML settings are not valid:"]
    for err in exc.errors():
        dotted = ".".join(str(p) for p in err["loc"])
        keys = [
            origin for field, origin in origins.items() if field == dotted or field.startswith(dotted + ".")
        ]
        where = ", ".join(sorted(keys)) or f"deployment.{dotted}"
        lines.append(f"  {where}: {err['msg']} (got {err.get('input')!r:.60})")
    return "\n".join(lines)


def import_azureml(
    deployment_config: Path | None, inference_config: Path | None, project_dir: Path
) -> tuple[dict[str, Any], list[AzureMLWarning]]:
    """(DeploymentConfig fields, warnings) from Azure ML's deployment and/or inference config.

    Paths in the result are relative to `project_dir`. Invalid values raise ConfigError naming the
    file and the Azure ML key.
    """
    from shipyard.config.models import DeploymentConfig

    if deployment_config is None and inference_config is None:
        raise ConfigError("import from Azure ML: give a deployment config, an inference config or both")
    out: dict[str, Any] = {}
    origins: dict[str, str] = {}
    warnings: list[AzureMLWarning] = []
    if deployment_config is not None:
        data = read_yaml(deployment_config, "Azure ML deployment settings")
        source = _relative(deployment_config, project_dir)
        warnings += map_deployment_config(data, source, out, origins)
    if inference_config is not None:
        data = read_yaml(inference_config, "Azure ML inference settings")
        warnings += map_inference_config(data, inference_config, project_dir, out, origins)
    try:
        DeploymentConfig.model_validate(out)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, origins)) from None
    return out, warnings
