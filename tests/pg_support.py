"""A real PostgreSQL server on 127.0.0.1 for the tests of a shared (server-backed) workspace.

`start_postgres()` runs `initdb` into a fresh folder under the system temp dir (not pytest's
basetemp: /tmp/pytest-of-root is private to root and the server runs as `postgres`), with a
superuser `shipyard` and a random password that TCP clients must give (scram-sha-256; the unix
socket in the folder trusts local users), then `pg_ctl start` on a free port bound to 127.0.0.1
only, with durability off for speed. initdb refuses root: as root the folder belongs to the
`postgres` system user and initdb/pg_ctl run through `runuser -u postgres --`.

Tests import the fixtures: `from pg_support import postgres_server, pg_uri`.
    postgres_server   session scope, a `PostgresServer` (host, port, user, password, uri(dbname),
                      create_database(name=None) -> uri, psql(dbname, sql) -> rows)
    pg_uri            a fresh empty database per test, as a SQLAlchemy URI
                      (postgresql+psycopg://shipyard:PASSWORD@127.0.0.1:PORT/NAME), dropped after
Without PostgreSQL binaries the fixtures skip naming the Debian package (fail in CI).
"""

from __future__ import annotations

import glob
import grp
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from tools import require_tool

PG_USER = "shipyard"
OS_USER = "postgres"  # the server's system user when the tests run as root
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "200",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


def pg_bindir() -> Path | None:
    """The folder of initdb and pg_ctl: `pg_config --bindir`, the newest /usr/lib/postgresql/*/bin
    (Debian keeps them off PATH), or PATH; None when there is no PostgreSQL server."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10)
            candidates.append(Path(out.stdout.strip()))
        except (OSError, subprocess.SubprocessError):
            pass

    def version(path: str) -> tuple[int, ...]:
        name = Path(path).parent.name
        return tuple(int(p) for p in name.split(".") if p.isdigit())

    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)]
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    return None


def require_postgres() -> Path:
    """`pg_bindir()`, or skip naming the Debian package (fails in CI)."""
    return pg_bindir() or Path(require_tool("initdb", "postgresql")).resolve().parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ensure_os_user() -> None:
    try:
        pwd.getpwnam(OS_USER)
        return
    except KeyError:
        pass
    cmd = ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin"]
    try:
        grp.getgrnam(OS_USER)
        cmd += ["--gid", OS_USER]
    except KeyError:
        cmd += ["--user-group"]
    subprocess.run([*cmd, OS_USER], check=True, capture_output=True, timeout=30)


@dataclass
class PostgresServer:
    bindir: Path
    folder: Path  # data/, the unix socket, postgres.log
    port: int
    password: str
    host: str = "127.0.0.1"
    user: str = PG_USER
    as_root: bool = False  # run pg_ctl through runuser -u postgres
    startup_seconds: float = 0.0

    @property
    def data_dir(self) -> Path:
        return self.folder / "data"

    @property
    def log_file(self) -> Path:
        return self.folder / "postgres.log"

    def uri(self, dbname: str = "postgres") -> str:
        """SQLAlchemy URI of `dbname` over TCP with the password (the psycopg 3 driver)."""
        return "postgresql+psycopg" + self.dsn(dbname).removeprefix("postgresql")

    def dsn(self, dbname: str = "postgres") -> str:
        """libpq URI of `dbname` (for psycopg.connect, psql)."""
        return f"postgresql://{self.user}:{quote(self.password, safe='')}@{self.host}:{self.port}/{dbname}"

    def connect(self, dbname: str = "postgres", **kwargs: Any):
        """A psycopg connection (autocommit) over TCP with the password."""
        import psycopg

        kwargs.setdefault("autocommit", True)
        kwargs.setdefault("connect_timeout", 10)
        return psycopg.connect(
            host=self.host, port=self.port, user=self.user, password=self.password, dbname=dbname, **kwargs
        )

    def psql(self, dbname: str, sql: str, params: Sequence[Any] | dict[str, Any] | None = None) -> list:
        """Run one statement in `dbname` (autocommit) and return its rows ([] when it returns none)."""
        with self.connect(dbname) as conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall() if cur.description is not None else []

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (a unique name when None) and return its SQLAlchemy URI."""
        from psycopg import sql

        name = name or f"test_{uuid.uuid4().hex[:16]}"
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.uri(name)

    def drop_database(self, name: str) -> None:
        """Drop `name`, ending the sessions still connected to it."""
        from psycopg import sql

        with self.connect() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def pg_ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), *args]
        return _run(cmd, self.as_root, self.folder, timeout)

    def stop(self) -> None:
        try:
            self.pg_ctl("stop", "-m", "fast", "-w", "-t", "30", "-s", timeout=45)
        except (OSError, subprocess.SubprocessError):
            pass
        pid_file = self.data_dir / "postmaster.pid"
        if pid_file.exists():  # pg_ctl stop failed: kill the postmaster
            try:
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
                time.sleep(0.2)
            except (OSError, ValueError, IndexError):
                pass
        shutil.rmtree(self.folder, ignore_errors=True)


def _run(cmd: list[str], as_root: bool, cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    if as_root:
        cmd = ["runuser", "-u", OS_USER, "--", *cmd]
    return subprocess.run(
        cmd, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
    )


def start_postgres(bindir: Path, attempts: int = 3) -> PostgresServer:
    """initdb a fresh cluster in a temp folder and start it on a free port (retried when the port
    was taken in between); raises RuntimeError with the server log when it cannot start."""
    started = time.monotonic()
    as_root = os.geteuid() == 0
    folder = Path(tempfile.mkdtemp(prefix="shipyard-pg-"))
    password = secrets.token_urlsafe(24)
    try:
        if as_root:
            _ensure_os_user()
            owner = pwd.getpwnam(OS_USER)
            os.chown(folder, owner.pw_uid, owner.pw_gid)
        pwfile = folder / "pwfile"
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        if as_root:
            os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        initdb = [
            str(bindir / "initdb"), "-D", str(folder / "data"), "--no-sync", "--no-locale",
            "--encoding=UTF8", f"--username={PG_USER}", f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256", "--auth-local=trust",
        ]  # fmt: skip
        proc = _run(initdb, as_root, folder, 120)
        pwfile.unlink()
        if proc.returncode != 0:
            raise RuntimeError(f"initdb failed ({proc.returncode}): {proc.stdout}{proc.stderr[-2000:]}")
        settings = {**SETTINGS, "unix_socket_directories": f"'{folder}'"}
        with open(folder / "data" / "postgresql.conf", "a") as conf:  # keeps the file's owner
            conf.write("\n# shipyard tests\n" + "".join(f"{k} = {v}\n" for k, v in settings.items()))
        server = PostgresServer(bindir, folder, 0, password, as_root=as_root)
        for attempt in range(attempts):
            server.port = free_port()
            log = server.log_file
            proc = server.pg_ctl("start", "-w", "-t", "60", "-s", "-l", str(log), "-o", f"-p {server.port}")
            if proc.returncode == 0:
                server.startup_seconds = time.monotonic() - started
                return server
            text = log.read_text(errors="replace") if log.exists() else ""
            port_taken = "already in use" in text or "could not create any TCP/IP sockets" in text
            if not port_taken or attempt == attempts - 1:
                raise RuntimeError(f"PostgreSQL did not start: {proc.stdout}{proc.stderr}\n{text[-3000:]}")
            log.unlink()
        raise AssertionError("unreachable")
    except BaseException:
        if (folder / "data" / "postmaster.pid").exists():  # started after all (pg_ctl timed out)
            PostgresServer(bindir, folder, 0, password, as_root=as_root).stop()
        shutil.rmtree(folder, ignore_errors=True)
        raise


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session (import it: `from pg_support import postgres_server`)."""
    server = start_postgres(require_postgres())
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_uri(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh empty database for the test, as a SQLAlchemy URI; dropped afterwards."""
    uri = postgres_server.create_database()
    yield uri
    try:
        postgres_server.drop_database(uri.rsplit("/", 1)[1])
    except Exception:  # noqa: BLE001 - best effort: a leftover database only costs disk
        pass
