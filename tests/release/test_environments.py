"""Environments and promotion through the CLI, on real local deployments behind nginx:
`shipyard run` deploys into dev, promote dev → qa → prod (prod waits for approval), the source
check refuses a version qa does not serve (and --force is recorded), a second version goes the
same way, `shipyard rollback prod` returns prod to the first, and every step is in the history.
Webhooks get the gate verdicts and promotions; a webhook that cannot be reached fails nothing."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
import yaml
from tools import require_tool

pytestmark = pytest.mark.integration


class _Hook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook():
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    _Hook.received = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook", _Hook.received
    server.shutdown()


def test_release_chain_promotes_with_approval_and_rolls_back(
    tmp_path: Path, copy_project, shipyard_proc, webhook, teardown_endpoints
):
    require_tool("nginx", "nginx")
    url, received = webhook
    project = copy_project(tmp_path / "project")
    cfg = project / "shipyard.yaml"
    data = yaml.safe_load(cfg.read_text())
    data["gate"] = {"enabled": False}  # every training run registers: two versions to move around
    data["environments"] = {
        "dev": {"ttl": "24h"},
        "qa": {"promotes_from": "dev"},
        "prod": {"promotes_from": "qa", "requires_approval": True},
    }
    data["notifications"] = {"webhooks": ["env:HOOK_URL", "env:DEAD_HOOK"]}
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))
    env = {"HOOK_URL": url, "DEAD_HOOK": "http://127.0.0.1:9/nothing-listens-here"}
    ws = ("--workspace", str(tmp_path / ".shipyard"))

    def sy(*args: str, code: int = 0) -> dict:
        res = shipyard_proc(*args, *ws, "-o", "json", cwd=project, env=env, timeout=300)
        assert res.code == code, (args, res.out[-2000:], res.err[-3000:])
        assert "Traceback" not in res.err
        return json.loads(res.out) if code == 0 else {"err": res.err}

    try:
        _chain(sy, received, url)
    finally:
        teardown_endpoints(tmp_path / ".shipyard")


def _chain(sy, received: list[dict], url: str) -> None:
    first = sy("run")
    assert first["status"] == "succeeded"
    status = {s["env"]: s for s in sy("env", "status")}
    assert status["dev"]["model_version"] == "1" and status["dev"]["endpoint"] == "diabetes-dev"
    assert status["qa"]["model_version"] is None

    qa = sy("promote", "--to", "qa")
    assert (qa["status"], qa["model_version"], qa["source_env"]) == ("deployed", "1", "dev")
    pending = sy("promote", "--to", "prod", "--reason", "release 1")
    assert pending["status"] == "pending"
    assert {s["env"]: s["model_version"] for s in sy("env", "status")}["prod"] is None  # nothing yet
    approved = sy("approve", pending["id"], "--by", "alice")
    assert (approved["status"], approved["decided_by"]) == ("deployed", "alice")
    again = sy("approve", pending["id"], code=2)
    assert f"promotion {pending['id']} is already deployed by alice" in again["err"]
    assert "no promotion 'nope'" in sy("approve", "nope", code=1)["err"]

    sy("run", "--param", "alpha=0.1", "--until", "register")  # v2 registered, not deployed
    assert {s["env"]: s["model_version"] for s in sy("env", "status")}["dev"] == "1"
    refused = sy("promote", "--to", "qa", "--version", "2", code=2)
    assert "not deployed and smoke-tested in dev (dev serves diabetes-ridge v1)" in refused["err"]
    sy("env", "deploy", "dev", "--version", "2", "--reason", "candidate 2")
    sy("promote", "--to", "qa")
    prod2 = sy("promote", "--to", "prod", "--approve", "--by", "ci-bot")
    assert (prod2["status"], prod2["model_version"], prod2["decided_by"]) == ("deployed", "2", "ci-bot")

    # A release's rollback job names the version it released: prod serves v2, so a rollback for
    # v1 (a release of v1 whose prod deployment never went live) changes nothing.
    unchanged = sy("rollback", "prod", "--version", "1")
    assert unchanged["rolled_back"] is False
    assert unchanged["note"] == "prod serves v2, not v1: nothing to roll back"
    back = sy("rollback", "prod", "--version", "2")
    assert back["rolled_back"] is True and back["model"].endswith(":1") and back["env"] == "prod"
    assert {s["env"]: s["model_version"] for s in sy("env", "status")} == {"dev": "2", "qa": "2", "prod": "1"}
    history = sy("env", "history", "prod")
    assert [(h["action"], h["model_version"]) for h in history] == [("rollback", "1"), ("promote", "2"),
                                                                      ("promote", "1")]  # fmt: skip
    assert history[1]["actor"] == "ci-bot" and history[2]["actor"] == "alice"
    assert history[2]["reason"] == "release 1"

    forced = sy("promote", "--to", "prod", "--version", "2", "--force", "--approve")
    assert forced["forced"] is True and forced["status"] == "deployed"
    assert "forced" in sy("env", "history", "prod")[0]["reason"]

    events = [m["event"] for m in received]
    assert events.count("gate") == 2 and events.count("promotion") >= 5
    assert any("waits for approval to prod" in m["text"] for m in received)
    assert all(url not in json.dumps(m) for m in received)


def test_environment_config_errors_are_clear(tmp_path: Path, copy_project, shipyard_proc):
    project = copy_project(tmp_path / "project", deployment=False)
    cfg = project / "shipyard.yaml"
    data = yaml.safe_load(cfg.read_text())
    data["environments"] = {"qa": {"promotes_from": "prod"}, "prod": {"promotes_from": "qa"}}
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))
    res = shipyard_proc("env", "status", "--workspace", tmp_path / ".shipyard", cwd=project)
    assert res.code == 2 and "promotes_from forms a cycle (qa → prod → qa)" in res.err
    data["environments"] = {"dev": {}, "qa": {"promotes_from": "dev"}}
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))
    res = shipyard_proc("promote", "--to", "staging", "--workspace", tmp_path / ".shipyard", cwd=project)
    assert res.code == 2 and "environment 'staging' does not exist; environments: dev, qa" in res.err
    res = shipyard_proc("promote", "--to", "qa", "--workspace", tmp_path / ".shipyard", cwd=project)
    assert res.code != 0 and "Traceback" not in res.err
