"""What a remote environment installs, offline: the running Shipyard's wheel and the wheels of
every package the job needs, gathered on this machine and shipped over the ssh connection.

The wheels come from the same code that fills scoring images (images/wheels.py): Shipyard's own
wheel (built from its checkout, or the wheel file it was installed from) and `pip download` of
Shipyard's dependencies pinned to the versions installed here plus the spec's own requirements,
for the remote Python's version. They land in `<root>/wheels/<id>/` on the host, once per content
(`.complete` written last), and the environment installs from there with `pip --no-index`: the
host needs neither a package index nor the training dependencies installed by hand.
"""

from __future__ import annotations

import hashlib
import shlex
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from shipyard.images.wheels import dependency_wheels, runtime_wheel
from shipyard.ssh import SshSession
from shipyard.venvs.cache import runtime_requirements
from shipyard.venvs.spec import EnvSpec

_SHIP_TIMEOUT_S = 3600


@dataclass(frozen=True)
class RemoteWheels:
    """Wheels on the host: the folder, Shipyard's wheel in it, what pip installs besides it."""

    folder: str
    shipyard: str
    requirements: tuple[str, ...]
    identity: str  # names the content: the environment's marker keeps it


def _python_version(tag: str) -> str:
    """'cpython-3.11' → '3.11'."""
    return tag.rpartition("-")[2]


def _send(session: SshSession, files: list[Path], remote: str) -> None:
    """The files as one tar stream into `remote` (a temporary folder renamed when complete)."""
    q = shlex.quote
    partial = q(remote + ".partial") + ".$$"  # $$: the remote shell's pid, one folder per sender
    script = (
        f"set -e; rm -rf {partial}; mkdir -p {partial}; tar xf - -C {partial}; touch {partial}/.complete; "
        f"if [ -f {q(remote)}/.complete ]; then rm -rf {partial}; "
        f"else rm -rf {q(remote)}; mv {partial} {q(remote)}; fi"
    )
    with session.identity() as key_file:
        proc = session.popen(script, key_file, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        assert proc.stdin is not None
        try:
            with tarfile.open(fileobj=proc.stdin, mode="w|") as tar:
                for path in files:
                    tar.add(path, arcname=path.name)
        except BrokenPipeError:
            pass  # the remote side failed: its stderr says why
        finally:
            proc.stdin.close()
        err = proc.stderr.read() if proc.stderr is not None else b""
        proc.wait(timeout=_SHIP_TIMEOUT_S)
    session.raise_for(proc.returncode, err, "copying the environment's wheels")


def ship_wheels(session: SshSession, cache_root: Path, root: str, spec: EnvSpec) -> RemoteWheels:
    """The wheels the environment for `spec` installs, on the host under `root`/wheels."""
    runtime, wheel_name = runtime_wheel(cache_root)
    requirements = (*runtime_requirements(spec), *spec.requirements)
    deps = dependency_wheels(cache_root, list(requirements), python=_python_version(spec.python))
    identity = hashlib.sha256((runtime.lock + deps.lock).encode()).hexdigest()[:16]
    remote = f"{root}/wheels/{identity}"
    present = session.run(
        f"test -f {shlex.quote(remote)}/.complete && echo present || echo missing",
        what="looking for the environment's wheels",
    )
    if present.stdout.decode().strip() != "present":
        files = sorted(deps.path.glob("*.whl")) + [runtime.path / wheel_name]
        _send(session, files, remote)
    return RemoteWheels(remote, f"{remote}/{wheel_name}", requirements, identity)
