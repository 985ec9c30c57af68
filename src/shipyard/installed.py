"""Does this interpreter satisfy a requirement? (importlib.metadata + packaging, no installer.)

A requirement is satisfied when its markers do not apply here, or when it names a distribution
installed here at a version its specifier allows (pre-releases included: a pin to one is
deliberate) and the requirements of any extras it asks for are satisfied the same way. A direct
reference (`name @ URL`) never is: what is installed cannot be compared with it. Used to serve a
bundle in Shipyard's own Python when it has everything (venvs/serving.py) and to build Shipyard's
wheel without an isolated build environment when its build backend is installed (images/wheels.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import metadata

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name


def _satisfied(req: Requirement, seen: set[str]) -> bool:
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        return True  # does not apply on this interpreter
    if req.url:
        return False
    try:
        version = metadata.version(req.name)
    except metadata.PackageNotFoundError:
        return False
    if not req.specifier.contains(version, prereleases=True):
        return False
    for extra in sorted(req.extras):
        key = f"{canonicalize_name(req.name)}[{canonicalize_name(extra)}]"
        if key in seen:
            continue
        seen.add(key)
        for text in metadata.requires(req.name) or []:
            dep = Requirement(text)
            # Only what the extra adds: the distribution's own requirements were met when it was installed.
            if (
                dep.marker is None
                or "extra" not in str(dep.marker)
                or not dep.marker.evaluate({"extra": extra})
            ):
                continue
            dep.marker = None
            if not _satisfied(dep, seen):
                return False
    return True


def unmet(requirements: Iterable[str]) -> list[str]:
    """The requirements this interpreter does not satisfy, as given."""
    missing = []
    for line in requirements:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            missing.append(line)
            continue
        if not _satisfied(req, set()):
            missing.append(line)
    return missing
