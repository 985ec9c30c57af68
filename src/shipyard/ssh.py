"""One remote host reached with the system OpenSSH client: argv, identity, commands, clear errors.

Shared by the ssh compute target (compute/ssh/) and the remote-container deploy target
(deploy/targets/remote_container.py), so both reach a host, and fail, the same way.

Why the system `ssh` (a subprocess) rather than a Python SSH library: it reads the user's agent,
config and known_hosts exactly as the user's own `ssh` does, and it is what every host already
trusts. Every call is `ssh -o BatchMode=yes` (never a prompt that would hang a pipeline) with
`ConnectTimeout=10` and host key checking on (`StrictHostKeyChecking=yes`; `accept-new` only
when asked for explicitly, for a first contact).

The identity: a `file:` key is used in place (the secrets module checks that it is 0600, as ssh
does). A key held by `env:` or `keyring:` has no file, and ssh reads keys only from files (or an
agent), so for each ssh call it is written to a 0600 file in a fresh 0700 folder of the system's
temp directory — outside the workspace, so the workspace scan, bundles and artifact uploads can
never pick it up — and deleted when that call returns. The key is never on a command line (only
the temporary file's path is).

Exit status 255 is ssh's own failure; its message is turned into one that says what to do
(unreachable host, refused key, unknown or changed host key).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from shipyard.errors import ShipyardError, StepFailed
from shipyard.secrets.refs import parse_ref, resolve

SSH_FAILED = 255
CONNECT_TIMEOUT_S = 10
_UNREACHABLE = (
    "connection refused",
    "connection timed out",
    "no route to host",
    "could not resolve hostname",
    "network is unreachable",
    "connection closed by",
    "connection reset",
    "operation timed out",
)
_HOST_KEY = ("host key verification failed", "remote host identification has changed", "host key for")


class SshError(ShipyardError):
    """The host could not be reached or refused us (not a failure of the job's script)."""


class SshSession:
    """How to reach `user@host:port`; `run()` executes a shell script there."""

    def __init__(
        self,
        host: str,
        port: int = 22,
        user: str | None = None,
        key: str | None = None,
        known_hosts: str | Path | None = None,
        accept_new: bool = False,
    ):
        if not host or host.startswith("-"):
            raise ShipyardError(f"ssh target: host {host!r} is not a host name")
        self.host = host
        self.port = int(port)
        self.user = user
        self.key = parse_ref(key, "ssh key") if key is not None else None
        self.known_hosts = Path(known_hosts).expanduser() if known_hosts else None
        self.accept_new = accept_new
        self.commands: list[list[str]] = []  # every argv run (no values in them; kept for checks)

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def ssh_path(self) -> str:
        path = shutil.which("ssh")
        if path is None:
            raise SshError(
                "the ssh client is not installed: install the Debian package openssh-client "
                "(apt-get install openssh-client) or your system's OpenSSH client"
            )
        return path

    @contextlib.contextmanager
    def identity(self) -> Iterator[Path | None]:
        """The private key file for one ssh call (None: agent and default keys)."""
        if self.key is None:
            yield None
            return
        value = resolve(self.key, "ssh key")  # checks a file: key's mode as well
        if self.key.scheme == "file":
            path = Path(self.key.target).expanduser()
            yield path if path.is_absolute() else Path.cwd() / path
            return
        folder = tempfile.mkdtemp(prefix="shipyard-ssh-")  # 0700
        path = Path(folder) / "key"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(value if value.endswith("\n") else value + "\n")  # ssh needs the final newline
            yield path
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def argv(self, key_file: Path | None, remote_command: str) -> list[str]:
        options = [
            "BatchMode=yes",
            f"ConnectTimeout={CONNECT_TIMEOUT_S}",
            f"StrictHostKeyChecking={'accept-new' if self.accept_new else 'yes'}",
        ]
        if self.known_hosts is not None:
            options.append(f"UserKnownHostsFile={self.known_hosts}")
        if key_file is not None:
            options.append("IdentitiesOnly=yes")
        argv = [self.ssh_path(), "-p", str(self.port)]
        for option in options:
            argv += ["-o", option]
        if key_file is not None:
            argv += ["-i", str(key_file)]
        if self.user:
            argv += ["-l", self.user]
        return [*argv, self.host, remote_command]

    def popen(self, script: str, key_file: Path | None, **kwargs: object) -> subprocess.Popen[bytes]:
        """Start `sh -c script` on the host (for streams: tar in or out)."""
        argv = self.argv(key_file, "sh -c " + shlex.quote(script))
        self.commands.append(argv)
        return subprocess.Popen(argv, **kwargs)  # type: ignore[call-overload]  # kwargs: Popen's own

    def run(
        self,
        script: str,
        *,
        stdin: bytes | None = None,
        what: str,
        timeout_s: float = 120,
        check: bool = True,
    ) -> subprocess.CompletedProcess[bytes]:
        """Run `sh -c script` on the host; SshError when ssh itself failed, StepFailed (naming
        `what`) when the script exited non-zero and `check` is set."""
        with self.identity() as key_file:
            argv = self.argv(key_file, "sh -c " + shlex.quote(script))
            self.commands.append(argv)
            try:
                done = subprocess.run(argv, input=stdin or b"", capture_output=True, timeout=timeout_s)
            except subprocess.TimeoutExpired:
                raise SshError(f"{what} on {self.where} did not finish within {timeout_s:g}s") from None
        self.raise_for(done.returncode, done.stderr, what, check)
        return done

    def raise_for(self, code: int, stderr: bytes, what: str, check: bool = True) -> None:
        text = stderr.decode("utf-8", "replace").strip()
        if code == SSH_FAILED:
            raise self.connection_error(text, what)
        if check and code != 0:
            raise StepFailed(f"{what} on {self.where} failed (exit code {code}): {text[-2000:]}")

    def connection_error(self, text: str, what: str) -> SshError:
        low = text.lower()
        if any(sign in low for sign in _HOST_KEY) or "no matching host key" in low:
            known = self.known_hosts or "~/.ssh/known_hosts"
            return SshError(
                f"{what}: the host key of {self.where} is not known or has changed (host key checking "
                f"is on). If the host is the one you expect, add its key: ssh-keyscan -p {self.port} "
                f"{self.host} >> {known} (or pass accept_new=True for a first contact); ssh said: {text}"
            )
        if "permission denied" in low or "too many authentication failures" in low:
            who = f"{self.user}@" if self.user else ""
            key = f"the key {self.key}" if self.key else "the ssh agent's and default keys"
            return SshError(
                f"{what}: {who}{self.where} refused {key}: add the public key to the remote user's "
                f"~/.ssh/authorized_keys or set the right key/user; ssh said: {text}"
            )
        if any(sign in low for sign in _UNREACHABLE):
            return SshError(
                f"{what}: cannot reach {self.where}: check the host name and port, that sshd runs there "
                f"and that no firewall is in the way; ssh said: {text}"
            )
        return SshError(f"{what}: ssh to {self.where} failed: {text or 'no message (exit code 255)'}")
