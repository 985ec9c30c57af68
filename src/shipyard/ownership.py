"""Which machine and workspace a recorded process belongs to (a deployment's server, a local Ray
cluster, a pipeline run).

On a shared workspace every machine lists every deployment, but a process id or a container id
means something only on the host that started it, and only to the checkout that started it: a
second machine must not call another machine's server dead (and mark it failed) or try to stop
it, and a `.shipyard/` folder copied to another checkout must not adopt its original's processes.
So each record names its owner: the host identity, the workspace root, and for a local process
the kernel's start time of that process (boot id + start ticks, shipyard.processes), which tells
a reused pid from the process that was started.

The host identity is `SHIPYARD_HOST_ID` when set (containers sharing a machine id, tests that play
two machines), else the host name with the first 12 characters of /etc/machine-id.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.processes import process_start


def host_id() -> str:
    """This machine's identity, stable across reboots."""
    override = os.environ.get("SHIPYARD_HOST_ID", "").strip()
    if override:
        return override[:200]
    machine = ""
    for path in ("/etc/machine-id", "/var/lib/dbus/machine-id"):
        try:
            machine = Path(path).read_text().strip()[:12]
            break
        except OSError:
            continue
    name = socket.gethostname()
    return f"{name}-{machine}" if machine else name


@dataclass(frozen=True)
class Owner:
    host: str
    root: str

    @classmethod
    def here(cls, root: Path | str) -> Owner:
        return cls(host_id(), str(Path(root).resolve()))

    @staticmethod
    def nobody() -> dict[str, Any]:
        """The columns of a record any machine may act on (a deployment reached over the network)."""
        return {"owner_host": None, "owner_root": None, "process_start": None}

    def fields(self, pid: int | None = None) -> dict[str, Any]:
        """The columns a new deployment record gets."""
        return {
            "owner_host": self.host,
            "owner_root": self.root,
            "process_start": process_start(pid) if pid else None,
        }


def owned_here(root: Path | str, dep: Any) -> bool:
    """Does this host and workspace root own `dep`? Records from before owners were recorded
    (no owner_host) belong to whoever reads them, as they always did. A checkout that was moved
    (its recorded root is gone from this host) keeps its deployments; a copy, whose original is
    still there, does not."""
    host = getattr(dep, "owner_host", None)
    if not host:
        return True
    here = Owner.here(root)
    if host != here.host:
        return False
    recorded = getattr(dep, "owner_root", None)
    return recorded == here.root or (recorded is not None and not Path(recorded).exists())


def same_process(dep: Any) -> bool:
    """Is the recorded pid still the process that was started? (pid reuse after the server died)"""
    recorded = getattr(dep, "process_start", None)
    if not recorded or not dep.pid:
        return True
    now = process_start(dep.pid)
    return now is None or now == recorded


def describe(dep: Any) -> str:
    """`host H, workspace R` for messages about a deployment owned elsewhere."""
    return (
        f"host {getattr(dep, 'owner_host', None) or 'unknown'}, workspace {getattr(dep, 'owner_root', None)}"
    )
