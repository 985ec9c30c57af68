"""Where the environments Shipyard builds take their packages from: `packages:` in shipyard.yaml.

    packages:
      index_url: env:PRIVATE_INDEX_URL        # the index (default: the installer's, i.e. PyPI)
      extra_index_urls:                        # more indexes, searched as well
        - https://download.pytorch.org/whl/cpu
      find_links: [wheels/]                    # folders of wheels (relative to the project) or URLs
      no_index: false                          # true: find_links only, no index at all

The venv compute target and local serving (a bundle's own environment) install with these; the
project's `deployment.packages` is this section unless the deployment (or an environment's
deployment) sets its own. A URL that carries credentials never stands here in clear: an index is
a URL without user or password, or a reference (`env:NAME`, `keyring:service/name`,
`file:PATH`) whose value is the URL; the installer gets it from an environment variable
(shipyard/config/package_sources.py), never on a command line, and the spec hash names the reference,
not its value.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from shipyard.config.base import Strict
from shipyard.secrets.refs import reference_problem

URL_SCHEMES = ("http", "https", "file")
REFERENCE_SCHEMES = ("env:", "keyring:", "file:")


def is_url(entry: str) -> bool:
    return "://" in entry


def is_reference(entry: str) -> bool:
    return not is_url(entry) and entry.startswith(REFERENCE_SCHEMES)


def _check_location(entry: str, what: str) -> str:
    """A URL without credentials, or a reference; errors never quote the value."""
    if is_reference(entry):
        problem = reference_problem(entry)
        if problem is not None:
            raise PydanticCustomError("secret_reference", "{problem}", {"problem": problem})
        return entry
    parts = urlsplit(entry)
    if parts.username or parts.password:
        raise PydanticCustomError(
            "secret_reference",
            f"{what} carries credentials: give it as a reference instead (env:NAME, keyring:service/name "
            "or file:PATH holding the URL); the value is not shown",
        )
    if not is_url(entry) or parts.scheme not in URL_SCHEMES or not (parts.netloc or parts.scheme == "file"):
        raise PydanticCustomError(
            "secret_reference",
            f"{what}: expected an http(s):// or file:// URL, or a reference (env:NAME, keyring:service/name, "
            "file:PATH); the value is not shown",
        )
    return entry


class PackageSources(Strict):
    """Indexes and find-links for building environments (docs/configuration.md, `packages`)."""

    index_url: str | None = Field(
        None,
        description="The package index (replaces PyPI): a URL without credentials or a reference "
        "(env:NAME, keyring:service/name, file:PATH) to the URL with its token.",
    )
    extra_index_urls: list[str] = Field(
        default_factory=list, description="More indexes searched besides index_url (URLs or references)."
    )
    find_links: list[str] = Field(
        default_factory=list,
        description="Folders of wheels (relative to the project) or URLs of pages linking to them, searched "
        "besides the indexes.",
    )
    no_index: bool = Field(False, description="Use find_links only: no index at all (an offline build).")

    @field_validator("index_url")
    @classmethod
    def _index(cls, v: str | None) -> str | None:
        return v if v is None else _check_location(v, "the index URL")

    @field_validator("extra_index_urls")
    @classmethod
    def _extra(cls, v: list[str]) -> list[str]:
        return [_check_location(entry, "an extra index URL") for entry in v]

    @field_validator("find_links")
    @classmethod
    def _links(cls, v: list[str]) -> list[str]:
        out = []
        for entry in v:
            if is_url(entry) or is_reference(entry):
                out.append(_check_location(entry, "a find_links URL"))
            elif not entry.strip():
                raise ValueError("an empty find_links entry: give a folder or a URL")
            else:
                out.append(entry)
        return out

    @property
    def empty(self) -> bool:
        return self == PackageSources()

    def anchored(self, base: Path) -> PackageSources:
        """The same sources with relative find_links folders made absolute from `base` (the
        project folder), so that a recorded deployment finds them from anywhere."""
        links = [
            entry if is_url(entry) or is_reference(entry) or Path(entry).is_absolute() else str(base / entry)
            for entry in self.find_links
        ]
        return self.model_copy(update={"find_links": links})

    def fingerprint(self) -> dict[str, object]:
        """What goes into an environment's hash: references by name, never their values."""
        return self.model_dump(mode="json")
