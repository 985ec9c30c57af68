"""The one rule for names a user gives (endpoints, environments, clusters, slots, aliases, models,
artifacts, images) and the one way to turn a name into a path.

Every name is checked where it enters (CLI argument, Python API, shipyard.yaml) with
`check_name(kind, value)`: a refused name is a UsageError with one line saying which kind of name,
the rule, and the value as typed (quoted, newlines escaped, cut to 60 characters). The base rule is
a letter or digit, then letters, digits, '.', '_' and '-', at most 128 characters: no '/', no '..',
no spaces, quotes, shell or nginx syntax, no control characters, so a checked name is safe in a
path, a shell word, an nginx config, a Kubernetes label and a log line. Some kinds are stricter
because a backend derives a DNS or Kubernetes name from them (lower case, shorter).

Paths built from names go through `safe_join(root, *parts)`, which resolves the result (symlinks
included) and refuses anything that is not under `root`: a second line of defence for a name that
reached a path some other way (a database row, an older release).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from shipyard.errors import UsageError

_SHOWN = 60


@dataclass(frozen=True)
class NameRule:
    pattern: re.Pattern[str]
    text: str  # the rule in words, for the error message
    reserved: re.Pattern[str] | None = None  # names matching the pattern that are still refused
    reserved_text: str = ""


_BASE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_BASE_TEXT = "a letter or digit, then letters, digits, '.', '_' or '-'"
_DNS_TEXT = "lower-case letters, digits and '-', starting with a letter or digit"

RULES: dict[str, NameRule] = {
    # Names that only become folder names, database keys and MLflow names.
    "model name": NameRule(_BASE, f"{_BASE_TEXT}, at most 128"),
    "model version": NameRule(re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"), f"{_BASE_TEXT}, at most 64"),
    "artifact name": NameRule(_BASE, f"{_BASE_TEXT}, at most 128"),
    "step name": NameRule(_BASE, f"{_BASE_TEXT}, at most 128"),
    "version number": NameRule(
        re.compile(r"[0-9]{1,18}"), "digits (a registered version, e.g. 3), at most 18"
    ),
    "project name": NameRule(re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}"), f"{_BASE_TEXT}, at most 63"),
    # MLflow's alias rule ([\w-], not 'latest', not v<digits>) in ASCII, plus ours: a letter or
    # digit first, at most 63.
    "alias": NameRule(
        re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}"),
        "a letter or digit, then letters, digits, '_' or '-', at most 63",
        re.compile(r"(?i:latest|v[0-9]+)"),
        "'latest' and 'v<digits>' are reserved by MLflow's registry",
    ),
    # Names that become DNS / Kubernetes names (`<endpoint>-<slot>-...` stays under 63 characters).
    "endpoint name": NameRule(re.compile(r"[a-z0-9][a-z0-9-]{0,40}"), f"{_DNS_TEXT}, at most 41"),
    "environment name": NameRule(
        re.compile(r"[a-z][a-z0-9-]{0,19}"),
        "lower-case letters, digits and '-', starting with a letter, at most 20",
    ),
    "compute name": NameRule(
        re.compile(r"[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?"),
        "lower-case letters, digits and '-', starting and ending with a letter or digit, at most 40",
    ),
    "slot name": NameRule(re.compile(r"[a-z0-9][a-z0-9-]{0,30}"), f"{_DNS_TEXT}, at most 31"),
    "Kubernetes slot name": NameRule(
        re.compile(r"[a-z0-9](?:[-a-z0-9]{0,14}[a-z0-9])?"),
        "lower-case letters, digits and '-', starting and ending with a letter or digit, at most 16",
    ),
    "Kubernetes namespace": NameRule(
        re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?"),
        "lower-case letters, digits and '-', starting and ending with a letter or digit, at most 63",
    ),
    "new project name": NameRule(re.compile(r"[a-z0-9][a-z0-9-]{0,29}"), f"{_DNS_TEXT}, at most 30"),
    # An image id, a digest or a reference such as registry:5000/shipyard/model:3.
    "image reference": NameRule(
        re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:@+-]{0,254}"),
        "an image id or a reference such as name:tag (letters, digits and . _ - / : @ +), at most 255",
        re.compile(r"(?:.*/)?\.\.?(?:[/:@].*)?|.*//.*"),
        "'.' and '..' path segments and '//' are not allowed",
    ),
}


def shown(value: object) -> str:
    """`value` as safe to put in a one-line message: repr (newlines, quotes and control characters
    escaped), cut to 60 characters."""
    text = repr(value)
    return text if len(text) <= _SHOWN else f"{text[: _SHOWN - 3]}...' ({len(str(value))} characters)"


def is_valid(kind: str, value: object) -> bool:
    rule = RULES[kind]
    return (
        isinstance(value, str)
        and rule.pattern.fullmatch(value) is not None
        and not (rule.reserved is not None and rule.reserved.fullmatch(value))
    )


def name_error(kind: str, value: object, label: str | None = None) -> str:
    """The one-line message for a refused name (`label`: the option or field that carried it)."""
    rule = RULES[kind]
    head = f"{label} {shown(value)}: not a valid {kind}" if label else f"{kind} {shown(value)} is not allowed"
    if rule.pattern.fullmatch(value if isinstance(value, str) else "") and rule.reserved is not None:
        return f"{head}: {rule.reserved_text}"
    return f"{head}: use {rule.text} characters"


def check_name(kind: str, value: object, label: str | None = None) -> str:
    """`value` when it is a valid name of `kind` (a key of RULES), else UsageError (exit 2)."""
    if not is_valid(kind, value):
        raise UsageError(name_error(kind, value, label))
    return value  # type: ignore[return-value]


def safe_join(root: str | Path, *parts: str) -> Path:
    """`root / parts...`, or UsageError when that path, resolved (symlinks followed), is not
    inside `root` (resolved too).

    Each part is one or more path segments given by a user or a record; none may be absolute,
    empty, or contain NUL, and the result is never `root` itself. The path is returned as joined
    (not resolved), so callers keep the root's spelling.
    """
    base = Path(root).resolve()
    path = Path(root)
    for part in parts:
        text = str(part)
        if not text or "\x00" in text or Path(text).is_absolute():
            raise UsageError(f"path part {shown(text)} is not allowed: give a relative name")
        path = path / text
    resolved = path.resolve()
    if resolved != base and base not in resolved.parents:
        raise UsageError(f"{shown('/'.join(map(str, parts)))} leads outside {base}; refusing to use it")
    if parts and resolved == base:
        raise UsageError(f"{shown('/'.join(map(str, parts)))} names {base} itself; give a name inside it")
    return path


def config_name(kind: str, value: str) -> str:
    """check_name for pydantic validators of shipyard.yaml: a ValueError, which the loader turns
    into a line naming the file and the field."""
    if not is_valid(kind, value):
        raise ValueError(name_error(kind, value))
    return value
