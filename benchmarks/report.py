"""Write one section of docs/benchmarks.md (replacing the section of the same title)."""

from __future__ import annotations

import os
import platform
import re
from datetime import UTC, datetime
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def machine() -> str:
    return f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"


def write_section(title: str, lines: list[str], command: str) -> None:
    """Replace (or append) `## title` in docs/benchmarks.md with a dated body."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = "\n".join(
        [f"## {title}", "", f"Measured {stamp} on {machine()} with `{command}`.", "", *lines, ""]
    )
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(body + "\n", text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + body
    DOC.write_text(text)
