"""Workspace: the stores behind one database URI and one artifact URI, get-or-create.

The embedded default is a `.shipyard/` folder next to the project: `shipyard.db` (SQLite, shared by
MLflow's tables and Shipyard's own) and `artifacts/`. Other URIs (postgresql://, s3://) plug in
through the same two settings. Heavy clients (MLflow) are created lazily.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from shipyard.config.models import WorkspaceSettings
from shipyard.errors import ConfigError, ShipyardError, StorageError, StoreUnavailable
from shipyard.secrets.refs import resolve as resolve_secret
from shipyard.store import Store, urls

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from shipyard.artifacts import ArtifactStore, LocalCache

SUPPORTED_DB_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
SUPPORTED_ARTIFACT_SCHEMES = ("file", "s3", "gs", "wasbs", "hdfs")


class Workspace:
    """Resolved stores of one workspace. Create with `Workspace.get_or_create(settings)`."""

    def __init__(self, settings: WorkspaceSettings):
        self.settings = settings
        self.root = Path(settings.root)
        database_uri = settings.database_uri or f"sqlite:///{self.root / 'shipyard.db'}"
        self.artifact_uri: str = settings.artifact_uri or (self.root / "artifacts").as_uri()
        _check_uri(database_uri, SUPPORTED_DB_SCHEMES, "database_uri")
        _check_uri(self.artifact_uri, SUPPORTED_ARTIFACT_SCHEMES, "artifact_uri")
        self.database_uri: str = urls.normalize(database_uri)
        urls.check_driver(self.database_uri)
        _check_artifact_client(self.artifact_uri)
        if settings.database_password:
            self.database_uri = urls.with_password(
                self.database_uri, resolve_secret(settings.database_password, "workspace.database_password")
            )
        if settings.s3 is not None:
            _export_s3_settings(settings)

    @classmethod
    def get_or_create(cls, settings: WorkspaceSettings) -> Workspace:
        ws = cls(settings)
        ws.root.mkdir(parents=True, exist_ok=True)
        if ws.artifact_uri.startswith("file:"):
            ws.local_artifact_dir.mkdir(parents=True, exist_ok=True)
        with ws.lock("init"):
            ws.store.migrate()
        return ws

    # -- locations ---------------------------------------------------------------------------
    @property
    def local_artifact_dir(self) -> Path:
        """Folder of a file:// artifact store (bundles are kept here in the embedded default)."""
        parsed = urlparse(self.artifact_uri)
        if parsed.scheme != "file":
            raise ConfigError(f"artifact_uri {self.artifact_uri!r}: this operation needs a file:// store")
        return Path(parsed.path)

    def subdir(self, *parts: str) -> Path:
        """A folder for local state (logs, deployments) under the workspace root; parts made from
        names (an endpoint's) that would lead outside the root are refused (names.safe_join)."""
        from shipyard.names import safe_join

        path = safe_join(self.root, *parts)
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def local_artifacts(self) -> bool:
        """True when the artifact store is a folder on this machine (file://)."""
        return urlparse(self.artifact_uri).scheme in ("file", "")

    # -- stores ----------------------------------------------------------------------------------
    @cached_property
    def store(self) -> Store:
        return Store(self.database_uri, pool_size=self.settings.pool_size)

    @cached_property
    def artifacts(self) -> ArtifactStore:
        """Shipyard's own files (bundles, ...) in the artifact store (file:// or s3://)."""
        from shipyard.artifacts import open_store

        return open_store(self.artifact_uri)

    def artifact_key(self, uri: str) -> str:
        """The key of a stored URI in this workspace's artifact store (NotFoundError when it lies
        elsewhere, e.g. a record copied from another workspace)."""
        from shipyard.errors import NotFoundError

        base = self.artifacts.uri("").rstrip("/")
        if not uri.startswith(base + "/"):
            raise NotFoundError(
                f"{uri} is not in this workspace's artifact store ({urls.redact(self.artifact_uri)}); "
                "copy the workspace with `shipyard workspace copy`, or run the step again"
            )
        return uri[len(base) + 1 :]

    @cached_property
    def artifact_cache(self) -> LocalCache:
        """This machine's content-addressed copy of what the artifact store holds."""
        from shipyard.artifacts import LocalCache

        return LocalCache()

    @property
    def shared(self) -> bool:
        """True when the database is a server that other machines may use (not SQLite)."""
        return not urls.is_sqlite(self.database_uri)

    @contextmanager
    def lock(self, name: str, timeout: float = 600) -> Iterator[None]:
        """A workspace-wide lock, held in the database: an advisory lock on PostgreSQL, a file lock
        beside the SQLite file (registry writes, key rotation, initialisation)."""
        from shipyard.store.locks import database_lock

        with database_lock(self.store.engine, self.database_uri, name, timeout):
            yield

    @contextmanager
    def host_lock(self, name: str, timeout: float = 600) -> Iterator[None]:
        """A lock on state that lives on this machine only (this workspace root's router, its
        environment folders): a file lock under the root."""
        from filelock import FileLock

        from shipyard.names import safe_join

        with FileLock(str(safe_join(self.subdir("locks", "host"), f"{name}.lock")), timeout=timeout):
            yield

    @cached_property
    def mlflow(self) -> MlflowClient:
        """An MLflow client on this workspace's tracking and registry store (imports mlflow)."""
        import logging

        import mlflow
        from mlflow import MlflowClient

        # MLflow and Alembic announce table creation at INFO; that is noise in a CLI.
        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)

        mlflow.set_tracking_uri(self.database_uri)
        mlflow.set_registry_uri(self.database_uri)
        with self.lock("init"):
            # MLflow creates and migrates its tables when a client opens the store; serialise that
            # across processes (parallel first runs on a fresh workspace race otherwise).
            client = MlflowClient(tracking_uri=self.database_uri, registry_uri=self.database_uri)
            client.search_experiments(max_results=1)
            client.search_registered_models(max_results=1)
        return client

    def experiment_id(self, name: str) -> str:
        """Get or create an MLflow experiment whose artifacts live in this workspace."""
        client = self.mlflow
        exp = client.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        with self.lock("experiments"):
            exp = client.get_experiment_by_name(name)
            if exp is not None:
                return exp.experiment_id
            return client.create_experiment(name, artifact_location=f"{self.artifact_uri}/mlflow/{name}")

    def unreachable(self, exc: BaseException) -> ShipyardError | None:
        """The user-facing error when `exc` (raised by MLflow, SQLAlchemy or boto3 in the middle of
        some work) means a store could not be reached: it names the endpoint, never a secret."""
        for err in _chain(exc):
            kind = type(err).__name__
            if kind == "OperationalError" or (kind == "MlflowException" and "OperationalError" in str(err)):
                detail = " ".join(str(err).split())[:300]
                return StoreUnavailable(
                    f"cannot reach the workspace database at {urls.endpoint(self.database_uri)} ({detail}); "
                    "nothing after the last recorded step was kept: run again once it is back (finished "
                    "steps are reused from the cache)"
                )
            if kind in _S3_UNREACHABLE:
                where = getattr(self.artifacts, "endpoint", None) or urls.redact(self.artifact_uri)
                return StorageError(
                    f"cannot reach the artifact store at {where} ({kind}); run again once it is back "
                    "(finished steps are reused from the cache)"
                )
        return None

    def environment(self) -> dict[str, str]:
        """Variables that point a child process (a training script) at this workspace."""
        return {
            "SHIPYARD_WORKSPACE": str(self.root),
            "SHIPYARD_DATABASE_URI": self.database_uri,
            "SHIPYARD_ARTIFACT_URI": self.artifact_uri,
            "MLFLOW_TRACKING_URI": self.database_uri,
            "MLFLOW_REGISTRY_URI": self.database_uri,
        }

    def describe(self) -> dict[str, str]:
        """Where the stores are, safe to print: passwords in URIs are masked."""
        return {
            "root": str(self.root),
            "database_uri": urls.redact(self.database_uri),
            "artifact_uri": urls.redact(self.artifact_uri),
            "store_revision": self.store.current_revision() or "none",
        }


def _check_uri(uri: str, schemes: tuple[str, ...], field: str) -> None:
    scheme = urlparse(uri).scheme.split("+")[0]
    if scheme not in schemes:
        raise ConfigError(
            f"workspace.{field}: unsupported URI {uri!r}; expected one of "
            + ", ".join(f"{s}://" for s in schemes)
        )


# botocore's names for "no answer from the endpoint" (after its own retries).
_S3_UNREACHABLE = (
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ConnectionClosedError",
)


def _chain(exc: BaseException | None) -> list[BaseException]:
    seen: list[BaseException] = []
    while exc is not None and exc not in seen and len(seen) < 20:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


def _export_s3_settings(settings: WorkspaceSettings) -> None:
    """Put the s3: settings where boto3 and MLflow's S3 client read them: this process's environment
    (inherited by the training scripts and servers it starts; never a file or a command line)."""
    s3 = settings.s3
    assert s3 is not None
    if s3.endpoint_url:
        os.environ["AWS_ENDPOINT_URL_S3"] = os.environ["MLFLOW_S3_ENDPOINT_URL"] = s3.endpoint_url
    if s3.region:
        os.environ["AWS_DEFAULT_REGION"] = s3.region
    if s3.access_key_id:
        os.environ["AWS_ACCESS_KEY_ID"] = resolve_secret(s3.access_key_id, "workspace.s3.access_key_id")
    if s3.secret_access_key:
        secret = resolve_secret(s3.secret_access_key, "workspace.s3.secret_access_key")
        os.environ["AWS_SECRET_ACCESS_KEY"] = secret


def _check_artifact_client(uri: str) -> None:
    """An s3:// store needs boto3 (the `shipyard[s3]` extra): say so before anything is written."""
    import importlib.util

    if urlparse(uri).scheme == "s3" and importlib.util.find_spec("boto3") is None:
        raise ConfigError(
            f"workspace.artifact_uri {urls.redact(uri)}: the S3 client is not installed; install it with: "
            "pip install 'shipyard[s3]' (boto3)"
        )


def workspace_from_environment(start: Path | None = None) -> Workspace:
    """The workspace a standalone script should use: SHIPYARD_* variables, else the nearest
    shipyard.yaml's workspace, else `./.shipyard`."""
    from shipyard.config.loader import find_project_file, load_project, resolve_workspace_settings

    project = None
    if not os.environ.get("SHIPYARD_WORKSPACE") and not os.environ.get("SHIPYARD_DATABASE_URI"):
        found = find_project_file(start)
        project = load_project(found) if found else None
    return Workspace.get_or_create(resolve_workspace_settings(project, base_dir=start))
