"""One nginx per workspace: generated configuration, start, checked graceful reload, stop.

nginx runs with its own prefix folder under the workspace (`-p PREFIX -c nginx.conf`), so it
needs no root, no system service and no file outside the workspace: pid file, temp folders,
error and access logs all live in the prefix. Every endpoint gets a `server` on its own stable
port; each deployment slot is an `upstream`; `split_clients` on `$request_id` assigns each
request to a slot by the endpoint's weights, and a second `split_clients` picks the share of
requests copied to a mirror slot (whose answers nginx discards).

A new configuration is written next to the live one and checked with `nginx -t` first: a bad one
raises and leaves the running router and its `nginx.conf` untouched. A reload is graceful (old
workers finish their requests); `apply` returns only once new connections get the new
configuration (each server answers its generation on a private path) and, with `drain=True`,
once the old workers have exited, so a caller may then stop a deployment no longer routed to.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from shipyard.errors import ConfigError, DeploymentError
from shipyard.names import check_name, shown

CONF = "nginx.conf"
GENERATION_PATH = "/.shipyard-router"
# The access log's fields, one JSON object a line: rollouts read status and slot from it.
LOG_FORMAT = (
    '{"time":"$time_iso8601","endpoint":"$shipyard_endpoint","upstream":"$proxy_host",'
    '"addr":"$upstream_addr","status":$status,"upstream_status":"$upstream_status",'
    '"method":"$request_method","uri":"$uri","request_id":"$request_id",'
    '"request_time":$request_time,"upstream_time":"$upstream_response_time"}'
)
_TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
_ADDRESS = re.compile(r"[A-Za-z0-9.\-\[\]:]{1,255}")


@dataclass
class Route:
    """An endpoint as the router serves it: port, slot addresses, weights and mirror share."""

    name: str
    port: int
    upstreams: dict[str, str]  # slot -> "127.0.0.1:PORT"
    weights: dict[str, int]  # slot -> percent, summing to 100
    mirror: dict[str, int] = field(default_factory=dict)  # slot -> percent copied there
    host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        # Everything here is written into nginx.conf: a name or address carrying nginx syntax
        # (';', '{', a quote, a newline) must never get there, whatever record it came from.
        check_name("endpoint name", self.name)
        for slot in {*self.upstreams, *self.weights, *self.mirror}:
            check_name("slot name", slot)
        for address in [self.host, *self.upstreams.values()]:
            if not _ADDRESS.fullmatch(address):
                raise ConfigError(f"endpoint {self.name}: {shown(address)} is not a host or host:port")


def require_nginx() -> str:
    """Path of the nginx binary, or a ConfigError naming the package to install."""
    path = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if path is None:
        raise ConfigError(
            "nginx not found: the local endpoint router needs it; install the Debian package 'nginx' "
            "(apt-get install nginx) or put nginx on PATH"
        )
    return path


def upstream_name(endpoint: str, slot: str) -> str:
    # Endpoint and slot names have no underscores, so the pair is unambiguous.
    return f"{endpoint}__{slot}"


def _var(endpoint: str, kind: str) -> str:
    return f"$shipyard_{kind}_{endpoint.replace('-', '_')}"


def _split(variable: str, key: str, shares: list[tuple[str, int]], rest: str) -> list[str]:
    """A split_clients block; zero shares are left out (nginx refuses 0%), the rest gets `*`."""
    lines = [f'    split_clients "{key}" {variable} {{']
    lines += [f"        {pct}% {target};" for target, pct in shares if pct > 0]
    lines += [f"        * {rest};", "    }"]
    return lines


def _route_block(route: Route, generation: int) -> list[str]:
    name = route.name
    lines = []
    for slot, address in sorted(route.upstreams.items()):
        lines += [
            f"    upstream {upstream_name(name, slot)} {{",
            f"        server {address} max_fails=0;",
            "        keepalive 16;",
            # Idle connections to the server are dropped before uvicorn's own 5 s keep-alive
            # timeout closes them: a request nginx sent on a connection the server was closing
            # would fail, and nginx does not retry a POST.
            "        keepalive_timeout 2s;",
            "    }",
        ]
    weighted = [(upstream_name(name, s), p) for s, p in sorted(route.weights.items()) if p > 0]
    if not weighted:
        raise ConfigError(f"endpoint {name}: no slot has traffic")
    slot_var = _var(name, "slot")
    # The last weighted slot takes the remainder, so the shares always cover 100 %.
    lines += _split(slot_var, "${request_id}", weighted[:-1], weighted[-1][0])
    mirror_var = _var(name, "mirror")
    mirrored = [(upstream_name(name, s), p) for s, p in sorted(route.mirror.items()) if p > 0]
    if mirrored:
        lines += _split(mirror_var, "${request_id}mirror", mirrored, '""')
    lines += [
        "    server {",
        f"        listen {route.host}:{route.port};",
        f"        set $shipyard_endpoint {name};",
        f"        location = {GENERATION_PATH} {{",
        "            default_type application/json;",
        f"            return 200 '{json.dumps({'endpoint': name, 'generation': generation})}';",
        "        }",
        "        location / {",
        f"            proxy_pass http://{slot_var};",
    ]
    if mirrored:
        lines += ["            mirror /.shipyard-mirror;"]
    lines += ["        }"]
    if mirrored:
        lines += [
            "        location = /.shipyard-mirror {",
            "            internal;",
            f'            if ({mirror_var} = "") {{ return 204; }}',
            f"            proxy_pass http://{mirror_var}$request_uri;",
            "        }",
        ]
    lines += ["    }"]
    return lines


def render(prefix: Path, routes: list[Route], generation: int) -> str:
    """The whole nginx.conf for these endpoints (a pure function: unit-tested as text)."""
    prefix = prefix.resolve()
    user = []
    if os.geteuid() == 0:  # workers would drop to `nobody` and could not write the prefix
        import pwd

        user = [f"user {pwd.getpwuid(0).pw_name};"]
    temp = [f"    {kind}_temp_path {prefix / 'tmp' / kind};" for kind in _TEMP_PATHS]
    lines = [
        f"# Generated by Shipyard (generation {generation}); edits are overwritten.",
        *user,
        "daemon on;",
        "worker_processes 1;",
        f"pid {prefix / 'nginx.pid'};",
        f"error_log {prefix / 'logs' / 'error.log'} warn;",
        "worker_shutdown_timeout 30s;",
        "events { worker_connections 4096; }",
        "http {",
        *temp,
        f"    log_format shipyard_json escape=json '{LOG_FORMAT}';",
        f"    access_log {prefix / 'logs' / 'access.log'} shipyard_json;",
        "    client_max_body_size 0;  # each scoring server enforces its own body limit",
        "    proxy_http_version 1.1;",
        '    proxy_set_header Connection "";',
        "    proxy_set_header Host $http_host;",
        "    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "    proxy_buffering off;",
        "    proxy_connect_timeout 2s;",
        "    proxy_send_timeout 60s;",
        "    proxy_read_timeout 120s;",
        # A connect error or timeout retries only idempotent requests (nginx never retries a POST
        # without `non_idempotent`), and at most once within 5 s: a GET / probe survives a worker
        # restart, a /score is never sent twice.
        "    proxy_next_upstream error timeout;",
        "    proxy_next_upstream_tries 2;",
        "    proxy_next_upstream_timeout 5s;",
    ]
    for route in sorted(routes, key=lambda r: r.name):
        lines += _route_block(route, generation)
    lines += ["}", ""]
    return "\n".join(lines)


class NginxRouter:
    """The workspace's nginx: `apply(routes)` starts, reloads or stops it as needed."""

    def __init__(self, prefix: Path) -> None:
        self.prefix = Path(prefix).resolve()
        self.conf = self.prefix / CONF
        self.pid_file = self.prefix / "nginx.pid"
        self.access_log = self.prefix / "logs" / "access.log"
        self.error_log = self.prefix / "logs" / "error.log"

    # -- process ----------------------------------------------------------------------------
    def _nginx(self, *args: str, conf: Path | None = None) -> subprocess.CompletedProcess[str]:
        command = [require_nginx(), "-p", str(self.prefix), "-c", str(conf or self.conf), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)

    def master_pid(self) -> int | None:
        """The running master's pid, or None."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ProcessLookupError):
            return None
        return pid if b"nginx" in cmdline else None

    def generation(self) -> int:
        """The generation of the configuration on disk (0 when there is none)."""
        try:
            first = self.conf.read_text().split("\n", 1)[0]
            return int(first.split("generation ", 1)[1].split(")")[0])
        except (OSError, IndexError, ValueError):
            return 0

    def check(self, text: str) -> None:
        """Raise ConfigError with nginx's own message unless `nginx -t` accepts `text`."""
        for sub in ("logs", *(f"tmp/{k}" for k in _TEMP_PATHS)):
            (self.prefix / sub).mkdir(parents=True, exist_ok=True)
        candidate = self.prefix / f"{CONF}.candidate"
        candidate.write_text(text)
        result = self._nginx("-t", "-q", conf=candidate)
        if result.returncode != 0:
            raise ConfigError(
                "the router configuration was refused by nginx -t; the running router is unchanged:\n"
                + (result.stderr or result.stdout).strip()
            )

    def apply(self, routes: list[Route], *, drain: bool = False, timeout_s: float = 30.0) -> None:
        """Serve exactly these endpoints: check, then start / reload (or stop when none are left)."""
        if not routes:
            self.stop()
            return
        generation = self.generation() + 1
        text = render(self.prefix, routes, generation)
        self.check(text)
        os.replace(self.prefix / f"{CONF}.candidate", self.conf)
        pid = self.master_pid()
        old_workers = self._workers(pid) if pid else set()
        result = self._nginx("-s", "reload") if pid else self._nginx()
        if result.returncode != 0:
            raise DeploymentError(
                f"nginx {'reload' if pid else 'start'} failed: {(result.stderr or result.stdout).strip()}"
            )
        self._wait_generation(routes, generation, timeout_s)
        if drain and old_workers:
            self._wait_exited(old_workers, timeout_s)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Graceful stop (SIGQUIT); no error when it is not running."""
        pid = self.master_pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGQUIT)
        deadline = time.monotonic() + timeout_s
        while self.master_pid() is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.master_pid() is not None:
            os.kill(pid, signal.SIGTERM)

    # -- waiting ----------------------------------------------------------------------------
    def _workers(self, master: int | None) -> set[int]:
        found = set()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == master:
                found.add(int(stat.parent.name))
        return found

    def _wait_exited(self, pids: set[int], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while any(Path(f"/proc/{p}").exists() for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)

    def _wait_generation(self, routes: list[Route], generation: int, timeout_s: float) -> None:
        """Until a new connection to every endpoint port answers with this generation."""
        deadline = time.monotonic() + timeout_s
        pending = {r.name: f"http://{r.host}:{r.port}{GENERATION_PATH}" for r in routes}
        last = ""
        while pending:
            for name, url in list(pending.items()):
                try:
                    with httpx.Client(trust_env=False, timeout=2.0) as client:
                        seen = client.get(url).json().get("generation")
                except (httpx.HTTPError, ValueError, AttributeError) as exc:
                    last = f"{url}: {type(exc).__name__}: {exc}"
                    continue
                if seen == generation:
                    del pending[name]
                else:
                    last = f"{url} still serves generation {seen}"
            if pending and time.monotonic() > deadline:
                raise DeploymentError(
                    f"the router did not take configuration generation {generation} within {timeout_s:g} s "
                    f"({last}); see {self.error_log}"
                )
            if pending:
                time.sleep(0.05)
