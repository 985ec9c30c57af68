"""Run the scoring server: ``python -m shipyard.serving --bundle DIR [--port 0] [--port-file PATH]``.

We bind the socket ourselves so that ``--port 0`` picks a free port and the caller learns it from
``--port-file`` (written atomically). The file is written once the socket is bound, before the
model loads: connections are refused until uvicorn starts listening after ``init()``, so callers
poll ``GET /`` for readiness. Exit code 3 means the bundle could not be loaded.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
from pathlib import Path

STARTUP_FAILURE = 3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line of the server."""
    parser = argparse.ArgumentParser(prog="python -m shipyard.serving", description=__doc__)
    parser.add_argument("--bundle", required=True, type=Path, help="bundle folder (with manifest.json)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", default=0, type=int, help="port to bind; 0 picks a free one")
    parser.add_argument("--port-file", type=Path, help="write the bound port to this file")
    parser.add_argument("--deployment-id", help="reported by GET / so callers know whom they reach")
    parser.add_argument("--settings", type=Path, help="JSON of the deployment's serving settings")
    parser.add_argument("--keys-file", type=Path, help="JSON of the endpoint's key hashes (turns auth on)")
    parser.add_argument("--capture-dir", type=Path, help="folder for data capture files")
    parser.add_argument("--workers", type=int, help="server processes (overrides the settings)")
    return parser.parse_args(argv)


def load_settings(args: argparse.Namespace):
    """The serving settings from --settings, with --keys-file and --workers applied."""
    from shipyard.serving.settings import ServingConfig

    data = json.loads(args.settings.read_text()) if args.settings else {}
    settings = ServingConfig.model_validate(data)
    if args.keys_file is not None and settings.auth is None:
        settings.auth = True
    if args.workers:
        settings.workers = args.workers
    return settings


def configure_logging() -> None:
    """Access lines are JSON as they are; everything else gets a timestamped plain format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    # The access log and print() lines from run() are JSON lines already: no prefix. They are
    # written in batches by a background thread (see linelog), so a request never waits on stderr.
    from shipyard.serving.server.linelog import LineBuffer

    json_lines = LineBuffer(sys.stderr)
    for name in ("shipyard.serving.access", "shipyard.serving.user"):
        log = logging.getLogger(name)
        log.addHandler(json_lines)
        log.propagate = False


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind (not yet listen on) a TCP socket; uvicorn starts listening once the app is loaded."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def write_port_file(path: Path, port: int) -> None:
    """Write the port atomically: readers never see an empty or partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(f"{port}\n", encoding="utf-8")
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    """Serve the bundle until SIGTERM/SIGINT; return the process exit code."""
    args = parse_args(argv)
    configure_logging()
    log = logging.getLogger("shipyard.serving")
    if not (args.bundle / "manifest.json").is_file():
        log.error("%s is not a bundle folder: manifest.json not found", args.bundle)
        return STARTUP_FAILURE

    try:
        sock = bind_socket(args.host, args.port)
    except OSError as exc:
        log.error("cannot bind %s:%s: %s", args.host, args.port, exc)
        return 2
    port = sock.getsockname()[1]
    if args.port_file:
        write_port_file(args.port_file, port)
    log.info("bound %s:%s; loading bundle %s", args.host, port, args.bundle)

    settings = load_settings(args)
    if settings.workers > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        # Before anything imports prometheus_client: it picks its mode at import time.
        import tempfile

        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="shipyard-metrics-")

    def serve() -> int:
        import uvicorn

        from shipyard.serving.app import create_app
        from shipyard.serving.server.connections import guarded_protocol

        app = create_app(
            args.bundle,
            deployment_id=args.deployment_id,
            settings=settings,
            keys_file=args.keys_file,
            capture_dir=args.capture_dir,
        )
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=10,
            proxy_headers=False,
            server_header=False,
            loop="uvloop" if _has("uvloop") else "asyncio",
            # httptools (a dependency), with header/body timeouts and a connection cap.
            http=guarded_protocol(
                settings.header_timeout_s, settings.body_timeout_s, settings.max_connections
            ),
        )
        server = uvicorn.Server(config)
        try:
            server.run(sockets=[sock])
        except SystemExit as exc:  # uvicorn exits this way when the app's startup fails
            return STARTUP_FAILURE if exc.code else 0
        finally:
            sock.close()
        return 0 if server.started else STARTUP_FAILURE

    if settings.workers <= 1:
        return serve()
    from shipyard.serving.server.workers import run_workers

    return run_workers(serve, settings.workers)


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


if __name__ == "__main__":
    sys.exit(main())
