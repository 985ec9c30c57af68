"""Shipyard's distribution: the name it is published under and the version installed here.

The import package and the CLI are `shipyard`; the distribution (what `pip install` names) is
`shipyard-mlops`, because the name `shipyard` belongs to someone else on PyPI. A leaf that imports
only the standard library, so the scoring server (which runs inside images) may read it too.
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlparse

NAME = "shipyard-mlops"
# How wheel file names spell the name (PEP 427: runs of -_. become one underscore).
WHEEL_PREFIX = "shipyard_mlops-"


def version() -> str:
    """The installed version of the distribution (what `pip show shipyard-mlops` says)."""
    return metadata.version(NAME)


def requirement() -> str:
    """The exact pin of this installation, e.g. `shipyard-mlops==0.1.0`."""
    return f"{NAME}=={version()}"


def requires() -> list[str]:
    """The distribution's requirement strings, extras' markers included."""
    return metadata.requires(NAME) or []


def installed_wheel() -> Path | None:
    """The wheel file this installation came from, when pip installed it from a file that still
    exists (`pip install ./shipyard_mlops-0.1.0-py3-none-any.whl` records it in direct_url.json)."""
    try:
        text = metadata.distribution(NAME).read_text("direct_url.json")
    except metadata.PackageNotFoundError:
        return None
    try:
        url = urlparse(json.loads(text or "{}").get("url", ""))
    except (ValueError, AttributeError):
        return None
    path = Path(unquote(url.path))
    if url.scheme != "file" or not path.name.startswith(WHEEL_PREFIX) or path.suffix != ".whl":
        return None
    return path if path.is_file() else None
