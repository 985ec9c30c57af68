"""Environments (dev → qa → prod) and notifications: the release half of shipyard.yaml.

    environments:
      dev:  {deployment: {target: local}, ttl: 24h}
      qa:   {promotes_from: dev}
      prod: {promotes_from: qa, requires_approval: true, deployment: {target: container}}
    notifications:
      webhooks: [env:SLACK_WEBHOOK_URL]
      events: [gate, promotion, failure, reap]

An environment's `deployment` is laid over the project's `deployment:` section (keys given here
win, nested sections merged), and its endpoint is `<project>-<env>` unless it names one. Chains
are checked when the file loads: a `promotes_from` that names no environment, or a cycle, is an
error there, not half-way through a release.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import Field

from shipyard.config.base import Strict
from shipyard.names import config_name
from shipyard.secrets.refs import SecretReference

Event = Literal["gate", "promotion", "failure", "reap"]
EVENTS: tuple[Event, ...] = get_args(Event)


class EnvironmentConfig(Strict):
    """One environment: where its deployment runs and how a model version gets there."""

    deployment: dict[str, Any] = Field(
        default_factory=dict, description="Deployment settings over the project's deployment: section."
    )
    promotes_from: str | None = Field(None, description="The environment a version must pass first.")
    requires_approval: bool = Field(False, description="A promotion waits for `shipyard approve`.")
    ttl: str | None = Field(None, description="Delete this environment's deployments after e.g. 24h.")


class NotificationsConfig(Strict):
    """Webhooks (Slack/Teams-compatible JSON) told about gate verdicts, promotions, failures, reaps."""

    webhooks: list[SecretReference] = Field(
        default_factory=list, description="References to webhook URLs (they carry tokens): env:VAR, ..."
    )
    events: list[Event] = Field(default_factory=lambda: list(EVENTS), description="Which events are sent.")
    timeout_s: float = Field(5.0, gt=0, le=60, description="Give up on a webhook after this long.")


def check_environments(envs: dict[str, EnvironmentConfig]) -> dict[str, EnvironmentConfig]:
    for name, env in envs.items():
        config_name("environment name", name)
        if env.promotes_from is not None and env.promotes_from not in envs:
            raise ValueError(
                f"environments.{name}.promotes_from: {env.promotes_from!r} is not an environment "
                f"(defined: {', '.join(envs)})"
            )
    for name in envs:
        seen = [name]
        current = envs[name].promotes_from
        while current is not None:
            if current in seen:
                chain = " → ".join([*seen, current])
                raise ValueError(f"environments: promotes_from forms a cycle ({chain})")
            seen.append(current)
            current = envs[current].promotes_from
    return envs
