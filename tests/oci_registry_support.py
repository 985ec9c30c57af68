"""A real OCI registry on 127.0.0.1 for the tests: Debian's `docker-registry` (the CNCF
distribution registry) over plain HTTP with htpasswd (bcrypt) authentication.

Podman talks plain HTTP only to a registry marked insecure in registries.conf; the fixture adds a
drop-in for this registry's address under /etc/containers/registries.conf.d (root, as in CI) and
removes it afterwards. Import the fixture: `from oci_registry_support import oci_registry  # noqa: F401`.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from base64 import b64encode
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sshd_support import free_port
from tools import require_tool

DROP_INS = Path("/etc/containers/registries.conf.d")


@dataclass
class OciRegistry:
    address: str  # host:port
    username: str
    password: str

    def catalog(self) -> list[str]:
        """The repositories the registry holds (its /v2/_catalog, with the credentials)."""
        request = urllib.request.Request(f"http://{self.address}/v2/_catalog")
        token = b64encode(f"{self.username}:{self.password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=10) as answer:
            return list(json.load(answer)["repositories"])


@pytest.fixture(scope="module")
def oci_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OciRegistry]:
    binary = require_tool("docker-registry", "docker-registry")
    htpasswd = require_tool("htpasswd", "apache2-utils")
    if os.geteuid() != 0:
        pytest.skip("marking the test registry insecure writes /etc/containers: run as root (CI does)")
    folder = tmp_path_factory.mktemp("oci-registry")
    registry = OciRegistry(f"127.0.0.1:{free_port()}", "ci-pusher", "s3cret-" + os.urandom(6).hex())
    passwords = subprocess.run(
        [htpasswd, "-Bbn", registry.username, registry.password], capture_output=True, text=True, check=True
    ).stdout
    (folder / "htpasswd").write_text(passwords)
    (folder / "config.yml").write_text(
        json.dumps(  # YAML is a superset of JSON
            {
                "version": 0.1,
                "log": {"level": "warn"},
                "storage": {"filesystem": {"rootdirectory": str(folder / "data")}},
                "http": {"addr": registry.address, "secret": os.urandom(8).hex()},
                "auth": {"htpasswd": {"realm": "shipyard-test", "path": str(folder / "htpasswd")}},
            }
        )
    )
    drop_in = DROP_INS / f"zz-shipyard-test-{registry.address.replace(':', '-')}.conf"
    DROP_INS.mkdir(parents=True, exist_ok=True)
    drop_in.write_text(f'[[registry]]\nlocation = "{registry.address}"\ninsecure = true\n')
    log = (folder / "registry.log").open("wb")
    proc = subprocess.Popen([binary, "serve", str(folder / "config.yml")], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                registry.catalog()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError((folder / "registry.log").read_text()[-3000:]) from None
                time.sleep(0.2)
        yield registry
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
        drop_in.unlink(missing_ok=True)
