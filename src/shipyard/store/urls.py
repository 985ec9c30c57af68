"""Database URIs: the driver each scheme needs, the form Shipyard and MLflow connect with, and the
form that may be shown.

`postgresql://` means psycopg 3 (the `shipyard[postgres]` extra); an explicit driver
(`postgresql+psycopg2://`) is kept. A URI may carry a password, so nothing prints, logs or passes a
URI on a command line except through `redact()`; the recommended form carries none (PGPASSWORD,
~/.pgpass, or `workspace.database_password: env:NAME`).
"""

from __future__ import annotations

import importlib.util
from urllib.parse import urlsplit, urlunsplit

from shipyard.errors import ConfigError

# scheme (before "+driver") -> (default driver, its module, the install hint)
DRIVERS: dict[str, tuple[str, str, str]] = {
    "postgresql": ("psycopg", "psycopg", "pip install 'shipyard[postgres]' (psycopg 3)"),
    "mysql": ("pymysql", "pymysql", "pip install pymysql"),
    "mssql": ("pyodbc", "pyodbc", "pip install pyodbc"),
}
# modules of drivers named explicitly after "+"
_DRIVER_MODULES = {"psycopg": "psycopg", "psycopg2": "psycopg2", "pg8000": "pg8000", "pymysql": "pymysql"}


def normalize(uri: str) -> str:
    """The URI with its driver made explicit (`postgresql://` -> `postgresql+psycopg://`)."""
    scheme, sep, rest = uri.partition("://")
    if not sep or "+" in scheme or scheme not in DRIVERS:
        return uri
    return f"{scheme}+{DRIVERS[scheme][0]}://{rest}"


def check_driver(uri: str) -> None:
    """Raise a ConfigError naming what to install when the URI's database driver is missing."""
    scheme = uri.partition("://")[0]
    dialect, _, driver = scheme.partition("+")
    if dialect not in DRIVERS:
        return
    default_driver, module, hint = DRIVERS[dialect]
    driver = driver or default_driver
    module = _DRIVER_MODULES.get(driver, module if driver == default_driver else driver)
    if importlib.util.find_spec(module) is None:
        install = hint if driver == default_driver else f"pip install {driver}"
        raise ConfigError(
            f"workspace.database_uri {redact(uri)}: the {dialect} driver {driver!r} is not installed; "
            f"install it with: {install}"
        )


def redact(uri: str) -> str:
    """The URI with any password replaced by `***` (user, host, port and database stay)."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "<unparseable URI>"
    if parts.password is None:
        return uri
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def with_password(uri: str, password: str) -> str:
    """The URI with `password` set (kept in memory only: what is shown goes through redact())."""
    from sqlalchemy.engine import make_url

    return make_url(uri).set(password=password).render_as_string(hide_password=False)


def endpoint(uri: str) -> str:
    """`host:port/database` of a server URI, or the file of a SQLite one: what an error names."""
    parts = urlsplit(uri)
    if parts.scheme.startswith("sqlite"):
        return parts.path
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.hostname or 'localhost'}{port}{parts.path}"


def is_sqlite(uri: str) -> bool:
    return uri.startswith("sqlite")
