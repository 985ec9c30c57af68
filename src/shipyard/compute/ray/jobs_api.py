"""A Ray cluster's dashboard and its Jobs API, as this machine reaches them: is the dashboard up,
a Jobs API client (Ray imported only here, when one is needed), and the jobs still running.

Used by the ray target (submitting steps), by the local head (waiting for its dashboard) and by
the cluster lifecycle (a cluster with jobs running is not idle)."""

from __future__ import annotations

import logging
from typing import Any

import httpx

from shipyard.errors import ConfigError


def dashboard_up(url: str, timeout_s: float = 2.0) -> bool:
    try:
        return httpx.get(f"{url}/api/version", timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False


def client(address: str) -> Any:
    """A JobSubmissionClient for the dashboard at `address` (ConfigError when Ray is missing or the
    Jobs API does not answer)."""
    try:
        from ray.job_submission import JobSubmissionClient
    except ImportError:
        raise ConfigError("the ray target needs Ray: pip install 'shipyard[ray]'") from None
    # The SDK logs every package upload at INFO on our stderr; the job's own log is what matters.
    for noisy in ("ray.dashboard.modules.dashboard_sdk", "ray._private.runtime_env.packaging"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return JobSubmissionClient(address)
    except Exception as exc:  # ConnectionError, or Ray's own RuntimeError
        raise ConfigError(
            f"cannot reach the Ray cluster's Jobs API at {address}: {exc}. Is the cluster running "
            "(`shipyard compute status NAME`)? Its dashboard port (8265 by default) must be reachable"
        ) from None


def active_jobs(address: str) -> list[str]:
    """Ids of jobs queued or running on the cluster (empty when it cannot be reached)."""
    try:
        jobs = client(address).list_jobs()
    except Exception:
        return []
    return [
        j.submission_id or j.job_id for j in jobs if str(j.status).split(".")[-1] in ("PENDING", "RUNNING")
    ]
