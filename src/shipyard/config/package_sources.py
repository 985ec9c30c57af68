"""Package sources (shipyard.yaml's `packages:`) as the installer's environment variables.

uv and pip read their index and find-links settings from variables as well as from options:
`UV_INDEX_URL`, `UV_EXTRA_INDEX_URL` (space-separated), `UV_FIND_LINKS` (comma-separated),
`UV_NO_INDEX`; `PIP_INDEX_URL`, `PIP_EXTRA_INDEX_URL`, `PIP_FIND_LINKS` (space-separated),
`PIP_NO_INDEX`. Variables keep an index's token off the command line (which any user of the
machine can read in the process table, and which the build log records). References
(`env:NAME`, ...) are resolved here, at build time, and their values are remembered as secrets
(masked in what the CLI prints) and returned as a redactor for the build log. Local find-links
folders go as file:// URLs, which holds their spaces and commas.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from shipyard.config.packages import PackageSources, is_reference, is_url
from shipyard.secrets import known
from shipyard.secrets.redact import MIN_LENGTH, Redactor
from shipyard.secrets.refs import resolve

_VARIABLES = {
    "uv": ("UV_INDEX_URL", "UV_EXTRA_INDEX_URL", "UV_FIND_LINKS", "UV_NO_INDEX", ","),
    "pip": ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX", " "),
}


def _value(entry: str, field: str, secrets: list[str]) -> str:
    """A location as the installer takes it: a reference's value, a URL, or a folder's file:// URL."""
    if is_reference(entry):
        value = resolve(entry, field).strip()
        secrets.append(value)
        password = urlsplit(value).password
        if password and len(password) >= MIN_LENGTH:
            known.remember(f"{field} password", password)  # an installer may print the URL without it
            secrets.append(password)
        return value
    if is_url(entry):
        return entry
    return Path(entry).expanduser().resolve().as_uri()


def installer_environment(packages: PackageSources | None, installer: str) -> tuple[dict[str, str], Redactor]:
    """The variables that point `installer` (uv or pip) at `packages`, and a redactor of the secret
    values among them. Nothing configured: no variables (the installer's own defaults and the
    user's PIP_*/UV_* variables apply)."""
    secrets: list[str] = []
    env: dict[str, str] = {}
    if packages is not None and not packages.empty:
        index, extra, links, no_index, separator = _VARIABLES[installer]
        if packages.index_url is not None:
            env[index] = _value(packages.index_url, "packages.index_url", secrets)
        if packages.extra_index_urls:
            env[extra] = " ".join(
                _value(e, "packages.extra_index_urls", secrets) for e in packages.extra_index_urls
            )
        if packages.find_links:
            env[links] = separator.join(
                _value(e, "packages.find_links", secrets) for e in packages.find_links
            )
        if packages.no_index:
            env[no_index] = "1"
    return env, Redactor(secrets)
