"""Typed step outputs: what a step hands to the steps after it, to the CLI and to the CI hand-off
files (run.json, model.json, endpoint.json).

Each output is stored as JSON in its step run (`shipyard_step_runs.outputs`), where the cache finds
it again: `to_dict` writes the format earlier versions wrote, `from_dict` reads it back, also from
a record an older version wrote (a missing key takes its default, an unknown key is ignored), so
pipeline runs in a shared workspace stay reusable across versions. The data check's output is the
`DataCheckReport` and the evaluate step's the `GateDecision`, which read and write themselves.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Protocol, Self, cast

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

from shipyard.gate.policy import GateDecision

# The variable the printed curl command reads the endpoint key from (never the key itself).
KEY_VAR = "SHIPYARD_ENDPOINT_KEY"


class StepOutput(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


def known_fields(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """The keys of `data` that are fields of the dataclass `cls` (a stored record may carry keys
    an older or newer version wrote)."""
    return {f.name: data[f.name] for f in fields(cls) if f.name in data}


class StoredAsFields:
    """A record stored as its fields (dataclass subclasses; those stored otherwise override)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(cast("DataclassInstance", self))  # always a dataclass subclass

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        return cls(**known_fields(cls, data))


def _dropping_none(record: Any, *optional: str) -> dict[str, Any]:
    """`record` as a dict without the `optional` keys whose value is None (keys a record only
    has in some runs stay absent in the others, as before)."""
    out = asdict(record)
    return {k: v for k, v in out.items() if not (k in optional and v is None)}


@dataclass(frozen=True)
class TrainedRun(StoredAsFields):
    """The train step's output: the MLflow run that trained the model (a sweep's best trial)."""

    run_id: str
    experiment_id: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    model_uri: str = ""
    dataset_hash: str | None = None
    log_path: str | None = None
    compute: str = "local"
    sweep: dict[str, Any] | None = None  # the sweep's summary (pipeline/sweep.py)
    # Where the step's log and outputs folder are stored, on a remote artifact store.
    files_uri: str | None = None
    files_hash: str | None = None
    # The deployment files the model passed its load check with (packaging/loadcheck.py).
    load_checked: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _dropping_none(self, "sweep", "files_uri", "files_hash", "load_checked")

    def run_json(self) -> dict[str, Any]:
        """The run as run.json (and the run summary) shows it."""
        out: dict[str, Any] = {"run_id": self.run_id, "metrics": self.metrics, "params": self.params}
        if self.sweep:
            out["sweep"] = self.sweep
        return out


@dataclass(frozen=True)
class RegisteredModel:
    """The register step's output: the version registered from the trained run and the aliases
    this run moved. When production moved to a better model before registration, nothing was
    registered (`version` None) and `gate` is the decision made again; `rejected` also when it
    moved after registration (the version stays, without the alias)."""

    run_id: str
    gate: GateDecision
    rejected: bool = False
    model_name: str | None = None
    version: str | None = None
    created: bool = False
    source: str | None = None
    alias_moves: list[dict[str, Any]] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        if self.version is None:
            return {"rejected": True, "gate": self.gate.to_dict(), "run_id": self.run_id}
        return {
            "model_name": self.model_name,
            "version": self.version,
            "run_id": self.run_id,
            "created": self.created,
            "source": self.source,
            "alias_moves": self.alias_moves,
            "aliases": self.aliases,
            "gate": self.gate.to_dict(),
            "rejected": self.rejected,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RegisteredModel:
        return cls(**known_fields(cls, data) | {"gate": GateDecision.from_dict(data["gate"])})

    def model_json(self) -> dict[str, Any]:
        """model.json: the version and what this run did to it (`created: false` when it was
        registered before, alias moves only those made now)."""
        return {
            "name": self.model_name,
            "version": self.version,
            "created": self.created,
            "aliases": self.aliases,
            "alias_moves": self.alias_moves,
        }


@dataclass(frozen=True)
class BundleRef(StoredAsFields):
    """The package step's output: the service bundle built (or found) for the model version."""

    bundle_id: str
    path: str
    content_hash: str


@dataclass(frozen=True)
class DeploymentRef(StoredAsFields):
    """The deploy step's output: the deployment that serves the bundle."""

    deployment_id: str
    endpoint: str | None = None
    url: str | None = None
    slot: str | None = None
    pid: int | None = None
    port: int | None = None


@dataclass(frozen=True)
class SmokeTestedEndpoint:
    """The smoke test step's output: the deployment that answered, the endpoint's stable URL and
    the smoke test's result (deploy/smoke.py's SmokeResult, stored flat beside the rest)."""

    deployment_id: str
    url: str  # the endpoint's stable URL (nginx) when it has one, else the deployment's
    deployment_url: str | None = None
    slot: str | None = None
    smoke: dict[str, Any] = field(default_factory=dict)
    payload: Any = None  # the request the smoke test sent (the bundle's input sample)
    auth: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "deployment_id": self.deployment_id,
            "url": self.url,
            "deployment_url": self.deployment_url,
            "slot": self.slot,
            **self.smoke,
            "passed": True,
            "payload": self.payload,
            "auth": self.auth,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SmokeTestedEndpoint:
        own = known_fields(cls, data)
        return cls(**own, smoke={k: v for k, v in data.items() if k not in own})

    def endpoint_json(self) -> dict[str, Any]:
        """endpoint.json (without the model, which the run adds): where to call it and how."""
        out: dict[str, Any] = {
            "url": self.url,
            "deployment_id": self.deployment_id,
            "smoke_test": "passed",
            "latency_ms": self.smoke.get("latency_ms"),
            "auth": bool(self.auth),
        }
        if self.payload is not None:
            out["curl"] = curl_command(self.url, self.payload, bool(self.auth))
        return out


def curl_command(url: str, payload: Any, auth: bool) -> str:
    """A ready-to-paste request; the key is referenced, never written into the command."""
    body = json.dumps(payload, separators=(",", ":"))
    key = f' -H "Authorization: Bearer ${KEY_VAR}"' if auth else ""
    return f"curl -s -X POST {url}/score -H 'Content-Type: application/json'{key} -d '{body}'"
