"""A real OpenSSH server on 127.0.0.1 for the ssh target's tests.

`start_sshd(folder)` generates a host key and a client key in `folder`, writes an sshd_config
(loopback only, a free port, keys-only login, its own authorized_keys, pid file and host key),
starts `/usr/sbin/sshd -D -e` as a child process, waits until it accepts connections and writes a
known_hosts file with its host key. It needs root (sshd's privilege separation) and the Debian
package openssh-server; tests call `require_tool` first.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tools import require_tool

SSHD = "/usr/sbin/sshd"


@dataclass
class Sshd:
    proc: subprocess.Popen[bytes]
    port: int
    folder: Path
    client_key: Path
    known_hosts: Path
    host_public_key: str

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def keygen(path: Path, comment: str) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
    )


def start_sshd(folder: Path) -> Sshd:
    folder.mkdir(parents=True, exist_ok=True)
    host_key, client_key = folder / "host_ed25519", folder / "client_ed25519"
    keygen(host_key, "shipyard-test-host")
    keygen(client_key, "shipyard-test-client")
    authorized = folder / "authorized_keys"
    authorized.write_text((folder / "client_ed25519.pub").read_text())
    authorized.chmod(0o600)
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory
    port = free_port()
    config = folder / "sshd_config"
    config.write_text(
        f"ListenAddress 127.0.0.1\nPort {port}\nHostKey {host_key}\nAuthorizedKeysFile {authorized}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
        f"PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nPidFile {folder / 'sshd.pid'}\n"
        "LogLevel INFO\nMaxStartups 100:30:200\n"
    )
    log = open(folder / "sshd.log", "wb")  # noqa: SIM115 - the server's stderr for its lifetime
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=log, stderr=log)
    deadline = time.monotonic() + 15
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited ({proc.returncode}): {(folder / 'sshd.log').read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("sshd did not listen within 15 s") from None
            time.sleep(0.1)
    public = (folder / "host_ed25519.pub").read_text().split()
    known_hosts = folder / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {public[0]} {public[1]}\n")
    return Sshd(proc, port, folder, client_key, known_hosts, " ".join(public[:2]))


def is_root() -> bool:
    return os.geteuid() == 0


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """A test sshd for the module (import it: `from sshd_support import sshd  # noqa: F401`)."""
    require_tool("sshd", "openssh-server")
    require_tool("ssh", "openssh-client")
    if os.geteuid() != 0:
        pytest.skip("the test sshd needs root (privilege separation); CI runs as root")
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()
