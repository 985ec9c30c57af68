"""`shipyard workspace check`: can this machine use this workspace? One entry per check, each
saying what is wrong and what to do about it.

Checks connect with short timeouts and no retries, and never raise: a failure is an entry with
`ok: False`. Nothing they write stays: the database write is rolled back, the artifact probe
object (`.shipyard-check/<uuid>`) is deleted. Messages name endpoints, never a password or a
secret key.
"""

from __future__ import annotations

import contextlib
import functools
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import NullPool

from shipyard.store import urls
from shipyard.store.db import HEAD_REVISION, VERSION_TABLE

if TYPE_CHECKING:
    from shipyard.config.models import WorkspaceSettings
    from shipyard.workspace import Workspace

CONNECT_TIMEOUT_S = 5
PROBE_PREFIX = ".shipyard-check"
MLFLOW_VERSION_TABLE = "alembic_version"
# A table of ours without a sequence: a row inserted there and rolled back leaves no trace at all
# (an insert into a table with a serial id would advance its sequence).
WRITE_PROBE_TABLE = "shipyard_endpoint_keys"

Check = dict[str, Any]


def check_workspace(ws: Workspace) -> list[Check]:
    """[{"check": name, "ok": bool, "detail": str}] for the workspace's database and artifact store."""
    secrets = _secrets(ws)
    results: list[Check] = []
    engine: Engine | None = None
    try:
        engine, entry = _database(ws)
        results.append(entry)
        results.append(_mode(ws))
        for name, probe in (
            ("shipyard schema", _shipyard_schema),
            ("mlflow schema", _mlflow_schema),
            ("database write", _database_write),
        ):
            if engine is None:
                results.append(_result(name, False, "skipped: the database cannot be reached (see above)"))
            else:
                results.append(_guarded(name, functools.partial(probe, engine), secrets))
    finally:
        if engine is not None:
            engine.dispose()
    results.append(_guarded("artifact store", lambda: _artifact_store(ws), secrets))
    return [{**r, "detail": _scrub(r["detail"], secrets)} for r in results]


def check_settings(settings: WorkspaceSettings) -> list[Check]:
    """Open the workspace of `settings` the way every command does (creating or migrating
    Shipyard's and MLflow's tables once the database answers), then `check_workspace` it. What
    fails while opening is reported as a check, not raised."""
    from shipyard.errors import ShipyardError
    from shipyard.workspace import Workspace

    try:
        ws = Workspace(settings)
    except ShipyardError as exc:
        return [_result("configuration", False, str(exc))]
    opened: list[Check] = []
    # A server is opened only once it answers (opening one that does not retries for a while); a
    # SQLite file is created where it is missing, as any command would.
    engine = None if urls.is_sqlite(ws.database_uri) else _database(ws)[0]
    if engine is not None:
        engine.dispose()
    if engine is not None or urls.is_sqlite(ws.database_uri):
        try:
            ws = Workspace.get_or_create(settings)
            ws.mlflow  # noqa: B018 - creates or migrates MLflow's tables, as the first run would
        except Exception as exc:  # noqa: BLE001 - reported as a check
            detail = (
                str(exc) if isinstance(exc, ShipyardError) else f"{type(exc).__name__}: {_first_line(exc)}"
            )
            opened.append(_result("open workspace", False, _scrub(detail, _secrets(ws))))
    return opened + check_workspace(ws)


# -- database --------------------------------------------------------------------------------------
def _database(ws: Workspace) -> tuple[Engine | None, Check]:
    """Connect once (short timeout, no retry): the engine for the next checks, and the entry."""
    uri = ws.database_uri
    where = urls.redact(uri)
    try:
        urls.check_driver(uri)
        if urls.is_sqlite(uri):
            path = Path(make_url(uri).database or "")
            if not path.is_file():
                return None, _result(
                    "database",
                    False,
                    f"no database file at {path}: any shipyard command in the project creates it "
                    "(shipyard workspace show)",
                )
            engine = create_engine(uri, poolclass=NullPool, connect_args={"timeout": CONNECT_TIMEOUT_S})
        else:
            args = {"connect_timeout": CONNECT_TIMEOUT_S} if uri.startswith("postgresql") else {}
            engine = create_engine(uri, poolclass=NullPool, connect_args=args)
        with engine.connect() as conn:
            version = _server_version(conn)
    except Exception as exc:  # noqa: BLE001 - reported, with what to do
        return None, _result("database", False, f"cannot connect to {where}: {_database_advice(exc, uri)}")
    return engine, _result("database", True, f"connected to {where} ({version})")


def _server_version(conn: Connection) -> str:
    if conn.dialect.name == "sqlite":
        return "SQLite " + str(conn.execute(text("SELECT sqlite_version()")).scalar())
    if conn.dialect.name == "postgresql":
        return "PostgreSQL " + str(conn.execute(text("SHOW server_version")).scalar())
    conn.execute(text("SELECT 1"))
    return conn.dialect.name


def _database_advice(exc: BaseException, uri: str) -> str:
    """What went wrong connecting, and what to do about it."""
    from shipyard.errors import ShipyardError

    if isinstance(exc, ShipyardError):  # a missing driver names its pip extra already
        return str(exc)
    detail = _first_line(exc)
    low = detail.lower()
    parts = urlparse(uri)
    user = parts.username or "(none)"
    at = urls.endpoint(uri)
    if "password authentication failed" in low or "authentication failed" in low or "no password" in low:
        advice = (
            f"the server refused user {user!r}: check the user name and the password reference "
            "(workspace.database_password: env:/keyring:/file:, PGPASSWORD or ~/.pgpass)"
        )
    elif "does not exist" in low and "database" in low:
        database = parts.path.lstrip("/")
        advice = (
            f"there is no database {database!r} on that server: create it (CREATE DATABASE {database} "
            f"OWNER {user}) or fix the database name in the URI"
        )
    elif "role" in low and "does not exist" in low:
        advice = f"there is no user {user!r} on that server: create it, or fix the user in the URI"
    elif "pg_hba.conf" in low:
        advice = "the server does not accept this host or user: add an entry to its pg_hba.conf"
    elif any(
        s in low
        for s in (
            "connection refused",
            "timeout",
            "timed out",
            "could not translate host",
            "name or service not known",
            "no route to host",
            "network is unreachable",
        )
    ):
        advice = (
            f"nothing answers at {at}: check that the server runs, the host and port in the URI, and "
            "that it accepts connections from this machine (listen_addresses, firewall)"
        )
    elif "unable to open database file" in low or "readonly" in low or "permission denied" in low:
        advice = f"cannot open {at}: check that its folder exists and this user may read and write it"
    else:
        advice = "check the database URI and that the server accepts this user from this machine"
    return f"{advice} ({detail})"


def _mode(ws: Workspace) -> Check:
    if ws.shared:
        return _result(
            "database mode",
            True,
            f"shared: a database server at {urls.endpoint(ws.database_uri)}; other machines and CI jobs "
            "can use this workspace",
        )
    return _result(
        "database mode",
        True,
        f"local: SQLite file {make_url(ws.database_uri).database}, this machine only; move to a shared "
        "database with `shipyard workspace copy`",
    )


def _shipyard_schema(engine: Engine) -> Check:
    with engine.connect() as conn:
        revision = _revision(conn, VERSION_TABLE)
    if revision == HEAD_REVISION:
        return _result("shipyard schema", True, f"at revision {revision} (current)")
    if revision is None:
        return _result(
            "shipyard schema",
            False,
            "Shipyard's tables are not created yet: any shipyard command creates them "
            "(shipyard workspace show)",
        )
    if _newer(revision, HEAD_REVISION):
        return _result(
            "shipyard schema",
            False,
            f"at revision {revision}, newer than this Shipyard knows ({HEAD_REVISION}): upgrade Shipyard "
            "on this machine",
        )
    return _result(
        "shipyard schema",
        False,
        f"at revision {revision}, this Shipyard expects {HEAD_REVISION}: any shipyard command migrates it "
        "(back up the database first)",
    )


def _mlflow_schema(engine: Engine) -> Check:
    # MLflow's own head (a private helper, the one MLflow checks against when it opens a store).
    from mlflow.store.db.utils import _get_latest_schema_revision

    head = _get_latest_schema_revision()
    with engine.connect() as conn:
        revision = _revision(conn, MLFLOW_VERSION_TABLE)
    if revision == head:
        return _result("mlflow schema", True, f"at revision {revision} (current)")
    if revision is None:
        return _result(
            "mlflow schema",
            False,
            "MLflow's tables are not created yet: any shipyard command that reads runs or models "
            "creates them (shipyard models list)",
        )
    return _result(
        "mlflow schema",
        False,
        f"at revision {revision}, this MLflow expects {head}: use the MLflow version the other machines "
        "use (pip show mlflow), or migrate with `mlflow db upgrade` after a backup",
    )


def _database_write(engine: Engine) -> Check:
    with engine.connect() as conn:
        trans = conn.begin()
        try:
            if inspect(conn).has_table(WRITE_PROBE_TABLE):
                conn.execute(
                    text(
                        f"INSERT INTO {WRITE_PROBE_TABLE} (endpoint, slot, key_hash, created_at) "
                        "VALUES (:endpoint, 'probe', :hash, CURRENT_TIMESTAMP)"
                    ),
                    {"endpoint": f"{PROBE_PREFIX}-{uuid.uuid4().hex[:12]}", "hash": "0" * 64},
                )
                how = f"a row inserted into {WRITE_PROBE_TABLE} and rolled back"
            else:
                conn.execute(text("CREATE TEMPORARY TABLE shipyard_check_probe (x INTEGER)"))
                conn.execute(text("INSERT INTO shipyard_check_probe VALUES (1)"))
                how = "a temporary table written and rolled back"
        except Exception as exc:  # noqa: BLE001 - reported, with what to do
            detail = _first_line(exc)
            low = detail.lower()
            if "readonly" in low or "read-only" in low or "read only" in low:
                advice = "the database is read-only here: make the file and its folder writable"
            elif "permission denied" in low:
                advice = (
                    "the database user may not write the workspace tables: make it their owner, or "
                    "GRANT SELECT, INSERT, UPDATE, DELETE on them (and USAGE on their sequences)"
                )
            else:
                advice = "writing failed"
            return _result("database write", False, f"{advice} ({detail})")
        finally:
            trans.rollback()
    return _result("database write", True, how)


def _revision(conn: Connection, table: str) -> str | None:
    if not inspect(conn).has_table(table):
        return None
    value = conn.execute(text(f"SELECT version_num FROM {table}")).scalar()
    return None if value is None else str(value)


def _newer(revision: str, head: str) -> bool:
    return revision.isdigit() and head.isdigit() and int(revision) > int(head)


# -- artifact store --------------------------------------------------------------------------------
def _artifact_store(ws: Workspace) -> Check:
    """Write, read, list and delete a probe object: what a run, a package step and a cache do."""
    from shipyard.errors import ShipyardError

    where = urls.redact(ws.artifact_uri)
    try:
        store = _probe_store(ws.artifact_uri)
        endpoint = getattr(store, "endpoint", None)
        at = f"{where} ({endpoint})" if endpoint else where
        key = f"{PROBE_PREFIX}/{uuid.uuid4().hex}"
        payload = f"shipyard workspace check {uuid.uuid4().hex}".encode()
        store.put_bytes(payload, key)
        try:
            if store.get_bytes(key) != payload:
                return _result("artifact store", False, f"{at}: the probe object read back differs")
            if key not in store.list(PROBE_PREFIX):
                return _result("artifact store", False, f"{at}: the probe object is not listed")
        finally:
            store.delete(key)
            root = getattr(store, "root", None)
            if isinstance(root, Path):  # a folder store keeps the emptied folder: remove it too
                with contextlib.suppress(OSError):
                    (root / PROBE_PREFIX).rmdir()
    except ShipyardError as exc:
        return _result("artifact store", False, _artifact_advice(str(exc)))
    return _result("artifact store", True, f"{at}: write, read, list and delete work")


def _probe_store(uri: str) -> Any:
    """The workspace's artifact store, with few retries and short timeouts for S3."""
    if urlparse(uri).scheme == "s3":
        from shipyard.artifacts.s3_store import S3Store

        return S3Store.from_uri(
            uri, retry_attempts=2, retry_max_s=3.0, connect_timeout_s=3.0, read_timeout_s=10.0
        )
    from shipyard.artifacts import open_store

    return open_store(uri)


def _artifact_advice(message: str) -> str:
    if "AccessDenied" in message or "Forbidden" in message:
        return (
            f"{message} The key authenticates but may not do this: its IAM policy needs s3:GetObject, "
            "s3:PutObject, s3:ListBucket and s3:DeleteObject on the bucket and prefix."
        )
    return message


# -- helpers ---------------------------------------------------------------------------------------
def _result(name: str, ok: bool, detail: str) -> Check:
    return {"check": name, "ok": ok, "detail": detail}


def _guarded(name: str, probe: Callable[[], Check], secrets: list[str]) -> Check:
    """Run one probe; an unexpected exception is a failed check, not a traceback."""
    try:
        return probe()
    except Exception as exc:  # noqa: BLE001 - a check reports, it does not raise
        return _result(name, False, f"{type(exc).__name__}: {_scrub(_first_line(exc), secrets)}")


def _secrets(ws: Workspace) -> list[str]:
    import os

    found = []
    try:
        found.append(make_url(ws.database_uri).password or "")
    except Exception:  # noqa: BLE001 - an unparseable URI has no password to hide
        pass
    found += [os.environ.get("AWS_SECRET_ACCESS_KEY", ""), os.environ.get("AWS_SESSION_TOKEN", "")]
    return sorted({s for s in found if len(s) >= 4}, key=len, reverse=True)


def _scrub(text_: str, secrets: list[str]) -> str:
    for secret in secrets:
        text_ = text_.replace(secret, "***")
    return text_


def _first_line(exc: BaseException) -> str:
    inner = getattr(exc, "orig", None) or exc
    lines = [line for line in str(inner).strip().splitlines() if line.strip()]
    return " ".join(" ".join(lines[:2]).split())[:400] if lines else type(inner).__name__
