"""YAML text for the generators: PyYAML with literal blocks for scripts, indented lists, and
places for user sections.

A generator puts `user_section(NAME)` where a user may add their own lines: as an item of a list
(extra steps of a job) or as a key of a mapping (extra jobs). The dumped placeholder line becomes
a pair of marker comments at the same indentation; generate.py keeps whatever a user wrote
between them when the file is generated again.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

BEGIN = "# >>> shipyard user section:"
END = "# <<< shipyard user section:"
_PLACEHOLDER = "__shipyard_user_section__"
_PLACEHOLDER_LINE = re.compile(rf"^(?P<indent> *)(?:- )?{_PLACEHOLDER} (?P<name>[a-z0-9-]+)(?:: null)?$")


def user_section(name: str) -> str:
    """A list item or mapping key that `dump` turns into an (empty) user section called `name`."""
    return f"{_PLACEHOLDER} {name}"


class _Dumper(yaml.SafeDumper):
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> Any:
        # Lists indented under their key, as people write workflow files.
        return super().increase_indent(flow, False)

    def ignore_aliases(self, data: Any) -> bool:
        # CI files are read by people: repeat shared values instead of &anchors.
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump(data: dict[str, Any]) -> str:
    """YAML text of `data` (keys in the given order) with user-section placeholders as markers."""
    text = yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=10_000, allow_unicode=True)
    lines = []
    for line in text.splitlines():
        m = _PLACEHOLDER_LINE.match(line)
        if m is None:
            lines.append(line)
            continue
        indent, name = m["indent"], m["name"]
        lines.append(f"{indent}{BEGIN} {name}")
        lines.append(f"{indent}{END} {name}")
    return "\n".join(lines) + "\n"


def script(commands: list[str] | tuple[str, ...]) -> str:
    """One shell script of several commands (a literal block when there is more than one)."""
    return "\n".join(commands) + ("\n" if len(commands) > 1 else "")
