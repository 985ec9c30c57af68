"""`shipyard cache show|prune`: this machine's artifact cache (content-addressed local copies).

The cache lives in SHIPYARD_CACHE_DIR, else $XDG_CACHE_HOME/shipyard/artifacts, else
~/.cache/shipyard/artifacts; it holds folders and files downloaded from a workspace's artifact
store, once per content hash.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import typer

from shipyard.cli.common import Output, OutputOpt, console, emit, table
from shipyard.errors import UsageError

app = typer.Typer(help="This machine's artifact cache: show, prune.", no_args_is_help=True)

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:([kmgt])(i)?)?b?\s*$", re.IGNORECASE)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$", re.IGNORECASE)
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_size(text: str, option: str = "--max-size") -> int:
    """Bytes from "500MB", "10GB", "2GiB", "1.5G", "4096" (KB/MB/GB/TB: powers of 1000; KiB…: 1024)."""
    match = _SIZE.match(text or "")
    if not match:
        raise UsageError(f"{option} {text!r}: expected a size like 500MB, 10GB or 2GiB")
    number, prefix, binary = float(match[1]), (match[2] or "").lower(), bool(match[3])
    power = "kmgt".index(prefix) + 1 if prefix else 0
    return int(number * (1024 if binary else 1000) ** power)


def parse_duration(text: str, option: str = "--older-than") -> float:
    """Seconds from "90s", "30m", "12h", "7d", "2w" (a bare number is seconds)."""
    match = _DURATION.match(text or "")
    if not match:
        raise UsageError(f"{option} {text!r}: expected a duration like 30m, 12h or 7d")
    return float(match[1]) * _DURATION_UNITS[match[2].lower()]


def human_size(n: int) -> str:
    """1234567 → "1.2 MB"."""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


@app.command("show")
def show_cmd(output: OutputOpt = Output.text) -> None:
    """Where the cache is, its size, and its entries (most recently used first)."""
    from shipyard.artifacts.cache import LocalCache

    cache = LocalCache()
    entries = cache.entries()
    data = {
        "root": str(cache.root),
        "size_bytes": sum(e["size_bytes"] for e in entries),
        "entries": entries,
    }

    def render(d: dict[str, Any]) -> None:
        console.print(f"cache  {d['root']}  ({human_size(d['size_bytes'])}, {len(d['entries'])} entries)")
        rows = [
            e | {"hash": e["hash"][:12], "size": human_size(e["size_bytes"]), "last used": e["last_used_at"]}
            for e in d["entries"]
        ]
        table(rows, ["kind", "hash", "size", "last used", "source"], empty="the cache is empty")

    emit(data, output, render)


@app.command("prune")
def prune_cmd(
    max_size: Annotated[
        str | None,
        typer.Option("--max-size", help="Remove least recently used entries until the cache fits (10GB)."),
    ] = None,
    older_than: Annotated[
        str | None,
        typer.Option("--older-than", help="Remove entries not used for this long (7d, 12h)."),
    ] = None,
    output: OutputOpt = Output.text,
) -> None:
    """Remove unused entries and leftovers of interrupted downloads (entries in use are kept)."""
    from shipyard.artifacts.cache import LocalCache

    max_bytes = parse_size(max_size) if max_size is not None else None
    older_than_s = parse_duration(older_than) if older_than is not None else None
    cache = LocalCache()
    result = {"root": str(cache.root)} | cache.prune(max_bytes=max_bytes, older_than_s=older_than_s)

    def render(d: dict[str, Any]) -> None:
        console.print(
            f"removed {d['removed']} entries ({human_size(d['freed_bytes'])} freed), kept {d['kept']} "
            f"({human_size(d['size_bytes'])})"
            + (f"; cleared {d['temp_removed']} interrupted downloads" if d["temp_removed"] else "")
        )

    emit(result, output, render)
