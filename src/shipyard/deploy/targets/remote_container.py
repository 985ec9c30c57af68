"""The remote-container target: the scoring container on a VM that runs podman or docker, reached
over SSH (the equivalent of Azure Container Instances on a host of your own).

Every command on the host goes through one SSH connection (shipyard/ssh.py, shared with the ssh
compute target): the container commands are the container target's own (targets/container.py),
run there instead of here. The image gets there by the registry when `image.registry` is set
(pushed from here, pulled there, with a login through stdin when the registry has credentials),
else streamed: `podman save | ssh host podman load`, skipped when the host already has the same
image id. The serving settings, the key hashes and the environment file are copied into
`~/.shipyard/deployments/<container>/` on the host (the env file 0600) and mounted from there;
a key rotation reaches the host with the next deployment.

The deployment outlives the machine that deployed it (a CI job): its URL is the host's address
and published port (no router here), and its record carries the connection (host, port, user,
the key's *reference*, known_hosts, runtime), so any machine with the SSH credentials can check
it, read its logs and delete it (which removes the container and its folder).
"""

from __future__ import annotations

import io
import shlex
import subprocess
import tarfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from shipyard.config.targets import RemoteHostConfig
from shipyard.deploy.targets.base import DeploymentSpec, TargetHandle
from shipyard.deploy.targets.container import ContainerTarget, container_name, pick_runtime
from shipyard.errors import ConfigError, DeploymentError
from shipyard.ssh import SSH_FAILED, SshSession

FOLDER = ".shipyard/deployments"  # under the remote user's home
_CONNECTION = ("host", "port", "user", "key", "known_hosts", "runtime", "address")


def connection(remote: RemoteHostConfig) -> dict[str, Any]:
    """What a record keeps to reach the host again (references only)."""
    fields = remote.model_dump()
    return {key: fields[key] for key in _CONNECTION}


class HostContainers(ContainerTarget):
    """The container target's commands, run on the remote host through `session`."""

    name = "remote-container"

    def __init__(self, session: SshSession, runtime: str, address: str, bind: str = "0.0.0.0") -> None:
        self.session = session
        self.runtime = runtime
        self.address = address
        self.bind_address = bind

    @classmethod
    def of(cls, settings: dict[str, Any], bind: str = "0.0.0.0") -> HostContainers:
        s = settings
        session = SshSession(s["host"], s["port"], s.get("user"), s.get("key"), s.get("known_hosts"))
        return cls(session, s["runtime"], s.get("address") or s["host"], bind)

    def _cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        what = f"{self.runtime} {args[0]}"
        done = self.session.run(shlex.join([self.runtime, *args]), what=what, check=False)
        out, err = done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace")
        if check and done.returncode != 0:
            raise DeploymentError(f"{what} on {self.session.where} failed: {err.strip()[-1500:]}")
        return subprocess.CompletedProcess(args, done.returncode, out, err)

    def bind(self, spec: DeploymentSpec) -> str:
        return self.bind_address

    def url_host(self, spec: DeploymentSpec) -> str:
        return f"[{self.address}]" if ":" in self.address else self.address

    def delete(self, handle: TargetHandle) -> None:
        super().delete(handle)
        if handle.name:
            folder = f'"$HOME"/{FOLDER}/{shlex.quote(handle.name)}'
            self.session.run(f"rm -rf {folder}", what="removing the deployment's folder", check=False)

    def check(self) -> None:
        """Reach the host (SshError naming host and port if not) and find its runtime."""
        found = self.session.run(
            f"command -v {shlex.quote(self.runtime)}", what="reaching the remote-container host", check=False
        )
        if found.returncode != 0:
            raise DeploymentError(
                f"{self.runtime} is not installed on {self.session.where}: install it there, or set "
                "deployment.remote.runtime to the one it has (podman or docker)"
            )

    def update_keys(self, name: str, keys_file: Path) -> None:
        keys = f'"$HOME"/{FOLDER}/{shlex.quote(name)}/keys'
        target = f"{keys}/{shlex.quote(keys_file.name)}"
        self.session.run(
            f"set -e; test -d {keys}; umask 022; cat > {keys}/.new; mv {keys}/.new {target}",
            stdin=keys_file.read_bytes(),
            what="updating the endpoint's key hashes",
        )

    # -- what the container needs on the host -----------------------------------------------------
    def image_id(self, ref: str) -> str | None:
        proc = self._cli("image", "inspect", "--format", "{{.Id}}", ref, check=False)
        found = proc.stdout.strip()
        return found if proc.returncode == 0 and found else None

    def stream_image(self, tag: str, local_runtime: str) -> None:
        """`<local runtime> save tag | ssh host <runtime> load`, both ends checked."""
        save = subprocess.Popen(
            [local_runtime, "save", tag],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        assert save.stdout is not None
        with self.session.identity() as key_file:
            load = self.session.popen(
                f"{shlex.quote(self.runtime)} load",
                key_file,
                stdin=save.stdout,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            save.stdout.close()  # the load holds the pipe now: a failed load stops the save
            _, load_err = load.communicate()
        save_err = save.stderr.read() if save.stderr else b""
        save.wait()
        if load.returncode != SSH_FAILED and save.returncode != 0:  # the save's own error first
            err = save_err.decode(errors="replace").strip()[-1500:]
            raise DeploymentError(f"{local_runtime} save {tag} failed: {err}")
        self.session.raise_for(load.returncode, load_err, f"loading {tag}")

    def pull(self, ref: str, username: str | None, password: str | None) -> None:
        """Pull `ref` on the host. With credentials, the login (user and password through stdin)
        goes to an auth file in a temporary folder that is removed after the pull, so the host
        keeps no registry credentials (podman reads REGISTRY_AUTH_FILE, docker DOCKER_CONFIG)."""
        rt, image = shlex.quote(self.runtime), shlex.quote(ref)
        login = ""
        if username and password:
            registry = shlex.quote(ref.split("/", 1)[0])
            login = (
                "tmp=$(mktemp -d) && trap 'rm -rf \"$tmp\"' EXIT && "
                'export REGISTRY_AUTH_FILE="$tmp/auth.json" DOCKER_CONFIG="$tmp" && '
                f'read -r user && {rt} login --username "$user" --password-stdin {registry} >/dev/null && '
            )
        done = self.session.run(
            f"{login}{rt} pull {image}",
            stdin=f"{username}\n{password}\n".encode() if login else None,
            what=f"{self.runtime} pull of {ref}",
            timeout_s=900,
            check=False,
        )
        if done.returncode != 0:
            err = done.stderr.decode("utf-8", "replace").strip()[-1500:]
            raise DeploymentError(f"{self.runtime} pull of {ref} on {self.session.where} failed: {err}")

    def upload(self, name: str, spec: DeploymentSpec) -> tuple[DeploymentSpec, Path | None]:
        """Copy the settings, key hashes and env file into the host's folder for `name`: the spec
        with the host's paths, and the host's env file (None without env)."""
        members: list[tuple[str, bytes, int]] = []
        if spec.settings_file is not None:
            members.append(("settings.json", Path(spec.settings_file).read_bytes(), 0o644))
        if spec.keys_file is not None:
            members.append((f"keys/{Path(spec.keys_file).name}", Path(spec.keys_file).read_bytes(), 0o644))
        if spec.env:
            members.append(("env", "".join(f"{k}={v}\n" for k, v in spec.env.items()).encode(), 0o600))
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for path, data, mode in members:
                info = tarfile.TarInfo(path)
                info.size, info.mode = len(data), mode
                tar.addfile(info, io.BytesIO(data))
        folder = f'"$HOME"/{FOLDER}/{shlex.quote(name)}'
        script = (
            f"set -e; rm -rf {folder}; mkdir -p {folder}; chmod 755 {folder}; "
            f"tar -x --no-same-owner -C {folder} -f -; cd {folder}; pwd"
        )
        done = self.session.run(script, stdin=buffer.getvalue(), what="copying the deployment's files")
        remote = Path(done.stdout.decode().strip())
        placed = replace(
            spec,
            settings_file=remote / "settings.json" if spec.settings_file is not None else None,
            keys_file=remote / "keys" / Path(spec.keys_file).name if spec.keys_file is not None else None,
            env={},
        )
        return placed, remote / "env" if spec.env else None


class RemoteContainerTarget:
    name = "remote-container"
    builds_image = True  # here, from the bundle; then pushed or streamed to the host
    runs_in_cluster = False
    on_this_machine = False
    copies_keys = True  # the host serves a copy of the key hashes: update_keys keeps it current

    def __init__(self, runtime: str | None = None) -> None:
        self.local_runtime = runtime  # the image builder here (picked when an image is streamed)

    def apply(self, spec: DeploymentSpec) -> TargetHandle:
        remote = spec.config.remote
        if remote is None:
            raise ConfigError(
                "the remote-container target needs deployment.remote with at least host: "
                "(docs/remote-container.md)"
            )
        if not spec.image:
            raise DeploymentError(
                "the remote-container target needs an image: build one with `shipyard package --image`"
            )
        name = container_name(spec)
        settings = connection(remote) | {"name": name}
        host = HostContainers.of(settings, remote.bind)
        host.check()
        image = self._image_on_host(host, spec)
        placed, env_file = host.upload(name, replace(spec, image=image))
        # run_and_wait removes a container that fails; delete() also removes its folder.
        return replace(host.run_and_wait(placed, name, env_file), settings=settings)

    def _image_on_host(self, host: HostContainers, spec: DeploymentSpec) -> str:
        """The image reference the host runs: pulled from the registry, or streamed from here."""
        tag = str(spec.image)
        cfg = spec.config.image
        if cfg.registry:
            from shipyard.images.build import push_image, registry_credentials

            ref = push_image(cfg, tag).split("@", 1)[0]
            host.pull(ref, *registry_credentials(cfg))
            return ref
        local_runtime = pick_runtime(self.local_runtime)
        here = subprocess.run(
            [local_runtime, "image", "inspect", "--format", "{{.Id}}", tag],
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
        ).stdout.strip()
        if not here or host.image_id(tag) != here:
            host.stream_image(tag, local_runtime)
        return tag

    # -- Target (any machine: the connection comes from the record) ---------------------------------
    def status(self, handle: TargetHandle) -> str:
        if not handle.settings:
            return "missing"
        return HostContainers.of(handle.settings).status(handle)

    def logs(self, handle: TargetHandle, tail: int = 50) -> str:
        if not handle.settings:
            return ""
        return HostContainers.of(handle.settings).logs(handle, tail)

    def update_keys(self, handle: TargetHandle, keys_file: Path) -> None:
        """Replace the host's copy of the key hashes (by a rename: the mounted folder sees it)."""
        if handle.settings:
            HostContainers.of(handle.settings).update_keys(handle.settings["name"], keys_file)

    def delete(self, handle: TargetHandle) -> None:
        if not handle.settings:
            if not handle.container_id:  # it failed before its container existed
                return
            # Never mark a container deleted that may still run: say what is missing instead.
            raise DeploymentError(
                f"cannot delete remote container {handle.container_id[:12]}: its record has no "
                "connection (target_settings); remove it on its host with podman/docker rm --force"
            )
        HostContainers.of(handle.settings).delete(replace(handle, name=handle.settings.get("name")))
