"""Environments and promotion (dev → qa → prod): deploy a version into an environment, promote it
along `promotes_from` with approvals, history, rollback; notifications about all of it."""

from shipyard.release.environments import deploy_to_env, env_history, env_status
from shipyard.release.promotions import approve, promote, reject

__all__ = [
    "approve",
    "deploy_to_env",
    "env_history",
    "env_status",
    "promote",
    "reject",
]
