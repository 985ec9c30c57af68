"""An environment's view of the project: the environment's settings laid over shipyard.yaml's.

An environment's deployment is the project's `deployment:` section with the environment's own
keys laid over it (nested sections merged), its endpoint `<project>-<env>` unless it names one,
and its `ttl`. The first environment that promotes from nothing (dev) is where `shipyard run` and
`shipyard deploy` put a model; the end of its chain is what the `production` alias stands for.
Used by the pipeline runner and by release/ alike.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from shipyard.config.models import DeploymentConfig, ProjectConfig
from shipyard.errors import ConfigError, UsageError


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = (
            _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        )
    return out


def check_env(config: ProjectConfig, env: str) -> None:
    if not config.environments:
        raise UsageError(
            f"{config.source_file or 'shipyard.yaml'} has no environments: section; add dev/qa/prod "
            "(docs/environments.md)"
        )
    if env not in config.environments:
        raise UsageError(
            f"environment {env!r} does not exist; environments: {', '.join(config.environments)}"
        )


def root_env(config: ProjectConfig) -> str | None:
    """The first environment that promotes from nothing (dev): where `shipyard run` deploys."""
    return next((n for n, e in config.environments.items() if e.promotes_from is None), None)


def production_env(config: ProjectConfig) -> str | None:
    """The environment the `production` alias stands for: the end of the chain that starts at the
    root environment (dev → qa → prod: prod); where the chain forks, its first branch."""
    env = root_env(config)
    while env is not None:
        following = next((n for n, e in config.environments.items() if e.promotes_from == env), None)
        if following is None:
            return env
        env = following
    return None


def root_project(config: ProjectConfig) -> ProjectConfig:
    """The project as `shipyard run` and `shipyard deploy` see it: with environments, from the
    first one (its endpoint `<project>-dev`, not the project's `deployment.name`)."""
    root = root_env(config) if config.environments else None
    return env_project(config, root) if root else config


def env_deployment(config: ProjectConfig, env: str) -> DeploymentConfig:
    check_env(config, env)
    e = config.environments[env]
    base = config.deployment.model_dump(exclude_unset=True, by_alias=True) if config.deployment else {}
    merged = _merge(base, e.deployment)
    merged.setdefault("name", f"{config.name}-{env}")
    if "name" not in e.deployment:
        merged["name"] = f"{config.name}-{env}"
    if e.ttl is not None:
        merged["ttl"] = e.ttl
    try:
        deployment = DeploymentConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(f"environments.{env}.deployment: {exc}") from None
    if deployment.packages is not None:
        deployment.packages = deployment.packages.anchored(config.project_dir)
    return deployment


def env_project(config: ProjectConfig, env: str) -> ProjectConfig:
    """The project as seen from `env` (its deployment section replaced by the environment's)."""
    return config.model_copy(update={"deployment": env_deployment(config, env)})
