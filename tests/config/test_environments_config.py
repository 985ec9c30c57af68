"""Environment deployments (merge over deployment:, endpoint names, ttl), chain validation, and
webhook notifications that never fail their caller."""

from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError

from shipyard.config.models import ProjectConfig
from shipyard.config.overlay import env_deployment, root_env
from shipyard.errors import ConfigError, UsageError
from shipyard.release.notify import notify


def project(**extra: object) -> ProjectConfig:
    base = {
        "name": "shop",
        "registry": {"model_name": "m"},
        "deployment": {"input_sample": "sample.json", "serving": {"workers": 2}, "resources": {"cpu": 2}},
    }
    return ProjectConfig.model_validate(base | extra)


def test_environment_keys_are_laid_over_the_project_deployment() -> None:
    cfg = project(
        environments={
            "dev": {"ttl": "24h"},
            "prod": {
                "promotes_from": "dev",
                "deployment": {"target": "container", "serving": {"auth": False}},
            },
            "edge": {"promotes_from": "dev", "deployment": {"name": "edge-endpoint"}},
        }
    )
    dev, prod = env_deployment(cfg, "dev"), env_deployment(cfg, "prod")
    assert (dev.name, dev.ttl, dev.target, dev.input_sample) == ("shop-dev", "24h", "local", "sample.json")
    assert (prod.name, prod.ttl, prod.target) == ("shop-prod", None, "container")
    assert prod.serving.workers == 2 and prod.serving.auth is False  # nested sections merged
    assert prod.resources.cpu_cores == 2
    assert env_deployment(cfg, "edge").name == "edge-endpoint"
    assert root_env(cfg) == "dev"


def test_bad_environments_are_refused() -> None:
    with pytest.raises(ValidationError, match="'qa' is not an environment"):
        project(environments={"prod": {"promotes_from": "qa"}})
    with pytest.raises(ValidationError, match=r"cycle \(a → c → b → a\)"):
        project(
            environments={
                "a": {"promotes_from": "c"},
                "b": {"promotes_from": "a"},
                "c": {"promotes_from": "b"},
            }
        )
    with pytest.raises(ValidationError, match="environment name 'Prod'"):
        project(environments={"Prod": {}})
    cfg = project(environments={"dev": {"deployment": {"target": "mainframe"}}})
    with pytest.raises(ConfigError, match="environments.dev.deployment"):
        env_deployment(cfg, "dev")
    with pytest.raises(UsageError, match="environment 'qa' does not exist; environments: dev"):
        env_deployment(cfg, "qa")
    with pytest.raises(UsageError, match="has no environments: section"):
        env_deployment(project(), "dev")


def test_a_failing_webhook_is_a_warning_not_an_error(monkeypatch, caplog) -> None:
    monkeypatch.setenv("HOOK", "http://127.0.0.1:9/closed-port-token-abc123")
    cfg = project(
        notifications={"webhooks": ["env:HOOK", "env:MISSING_HOOK"], "events": ["gate"], "timeout_s": 1}
    )
    with caplog.at_level(logging.WARNING, logger="shipyard.notify"):
        assert notify(cfg, "gate", "gate passed") == 0
        assert notify(cfg, "promotion", "not subscribed") == 0
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "env:HOOK" in messages and "env:MISSING_HOOK" in messages
    assert "token-abc123" not in messages  # the URL (a credential) is never logged
