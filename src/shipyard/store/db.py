"""The control-plane store: one SQLAlchemy engine on the workspace's database URI, migrated by
Alembic with its own version table (MLflow keeps `alembic_version` in the same database)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from shipyard.errors import StoreUnavailable
from shipyard.store import urls

HEAD_REVISION = "0009"
VERSION_TABLE = "shipyard_alembic_version"
_MIGRATIONS = Path(__file__).parent / "migrations"


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # WAL lets readers run beside one writer; the busy timeout makes concurrent `shipyard run`s
    # wait for each other instead of failing with "database is locked".
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=60000")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


# A CLI command holds one or two connections; a server (later: `shipyard server`) sizes up with
# workspace.pool_size. PostgreSQL's default max_connections (100) fits a team of such processes.
DEFAULT_POOL_SIZE = 5
DEFAULT_MAX_OVERFLOW = 10
CONNECT_TIMEOUT_S = 10
# Establishing a connection is retried (a server restarting, a network blip); a statement is not,
# because it may have been applied.
CONNECT_RETRY_S = 20.0


def make_engine(
    uri: str, *, pool_size: int = DEFAULT_POOL_SIZE, max_overflow: int = DEFAULT_MAX_OVERFLOW
) -> Engine:
    uri = urls.normalize(uri)
    urls.check_driver(uri)
    if urls.is_sqlite(uri):
        engine = create_engine(uri, connect_args={"timeout": 60})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    connect_args = {"connect_timeout": CONNECT_TIMEOUT_S} if uri.startswith("postgresql") else {}
    engine = create_engine(
        uri,
        pool_pre_ping=True,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_recycle=1800,
        connect_args=connect_args,
    )
    event.listen(engine, "do_connect", _connect_with_retry(uri))
    return engine


def _connect_with_retry(uri: str):
    """A `do_connect` hook: the driver's connect, retried with backoff, then a StoreUnavailable
    that names the server (never the password)."""
    from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_exponential

    def transient(exc: BaseException) -> bool:
        return isinstance(exc, Exception) and type(exc).__name__ == "OperationalError"

    def do_connect(dialect, _conn_rec, cargs, cparams):
        retrying = Retrying(
            retry=retry_if_exception(transient),
            wait=wait_exponential(multiplier=0.25, max=4),
            stop=stop_after_delay(float(os.environ.get("SHIPYARD_DB_RETRY_S", CONNECT_RETRY_S))),
            reraise=True,
        )
        try:
            return retrying(dialect.loaded_dbapi.connect, *cargs, **cparams)
        except Exception as exc:
            if not transient(exc):
                raise
            detail = " ".join(str(exc).split())
            raise StoreUnavailable(
                f"cannot reach the workspace database at {urls.endpoint(uri)}: {detail}. Check that the "
                "server runs and accepts connections from this machine (shipyard workspace check)"
            ) from None

    return do_connect


class Store:
    """Sessions on Shipyard's tables. Callers use `with store.session() as s:`."""

    def __init__(self, uri: str, *, pool_size: int = DEFAULT_POOL_SIZE):
        self.uri = urls.normalize(uri)
        self.engine = make_engine(self.uri, pool_size=pool_size, max_overflow=2 * pool_size)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def current_revision(self) -> str | None:
        with self.engine.connect() as conn:
            if not inspect(conn).has_table(VERSION_TABLE):
                return None
            return conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalar()

    def migrate(self) -> None:
        """Bring the tables to the head revision (no-op, and no alembic import, when current)."""
        if self.current_revision() == HEAD_REVISION:
            return
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(_MIGRATIONS))
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    @contextmanager
    def session(self) -> Iterator[Session]:
        s = self._sessions()
        try:
            yield s
            s.commit()
        except BaseException:
            s.rollback()
            raise
        finally:
            s.close()

    def dispose(self) -> None:
        self.engine.dispose()
