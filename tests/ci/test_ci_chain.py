"""The CI chain on this machine, with real components (deployments behind nginx): a project made
by `shipyard init` (the diabetes seed), then `shipyard ci run pr` (lint, unit tests with coverage,
data check), `ci run train` (registers v1), `ci run release --approve` (dev → qa → prod, all
serving v1); a worse model (alpha=1000 in shipyard.yaml) is rejected by the gate, and the release
after it has nothing to release; a better one (alpha=0.1) is released to dev only
(`--until smoke-dev`), forced into prod, and `shipyard rollback prod` returns prod to v1."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from tools import require_tool

pytestmark = pytest.mark.integration


# `shipyard ci run` through the real entry point (error handling, exit codes); registers the
# command first where cli/ci.py does not (yet) do so itself.
def test_init_pr_train_release_reject_and_rollback(
    tmp_path: Path, shipyard_proc, shipyard_bin, teardown_endpoints
):
    require_tool("nginx", "nginx")
    ws = tmp_path / "ws"
    made = shipyard_proc("init", tmp_path / "chain", "-o", "json")
    assert made.code == 0, made.err
    project = Path(json.loads(made.out)["folder"])
    cfg = project / "shipyard.yaml"

    def ci_run(*args: str, code: int = 0) -> str:
        proc = subprocess.run(
            [str(shipyard_bin), "ci", "run", *args, "--workspace", str(ws)],
            cwd=project, capture_output=True, text=True, timeout=400, stdin=subprocess.DEVNULL,
            env={**os.environ, "SHIPYARD_ACTOR": "ci-bot"},
        )  # fmt: skip
        assert proc.returncode == code, (args, proc.stdout[-4000:], proc.stderr[-3000:])
        assert "Traceback" not in proc.stderr
        return proc.stdout

    def sy(*args: str) -> dict | list:
        res = shipyard_proc(*args, "--workspace", ws, "-o", "json", cwd=project, timeout=300)
        assert res.code == 0, (args, res.out[-2000:], res.err[-3000:])
        return json.loads(res.out)

    def serving() -> dict:
        return {s["env"]: s["model_version"] for s in sy("env", "status")}

    def set_alpha(alpha: float) -> None:
        data = yaml.safe_load(cfg.read_text())
        data["train"]["parameters"]["alpha"] = alpha
        cfg.write_text(yaml.safe_dump(data, sort_keys=False))

    try:
        pr = ci_run("pr")
        assert pr.index("==> lint") < pr.index("==> test") < pr.index("==> data-check")
        assert "3 passed" in pr and "ci run pr: passed" in pr
        assert "checkout: Check out the repository — skipped locally" in pr

        train = ci_run("train")
        assert "version=1" in train and "| **passed** |" in train
        assert (project / "shipyard-outputs/published/shipyard-model/model.json").is_file()

        release = ci_run("release", "--approve")
        stages = ("dev", "smoke-dev", "qa", "smoke-qa", "prod", "smoke-prod")
        order = [release.index(f"==> {s}") for s in stages]
        assert order == sorted(order)
        assert "rollback: Roll back the environment that failed — skipped (no job failed)" in release
        assert serving() == {"dev": "1", "qa": "1", "prod": "1"}
        assert sy("env", "history", "prod")[0]["actor"] == "ci-bot"  # SHIPYARD_ACTOR, as in CI

        set_alpha(1000.0)  # mse ~5350: over the gate's threshold of 4000
        rejected = ci_run("train")  # a rejected model is a verdict, not a failed workflow
        assert "| **rejected** |" in rejected and "version=\n" in rejected
        assert "publish: Publish run.json and model.json — skipped (no new model version" in rejected
        nothing = ci_run("release")  # no approval needed: nothing gets that far
        assert "nothing to release" in nothing and "==> dev" not in nothing
        assert serving() == {"dev": "1", "qa": "1", "prod": "1"}
        assert len(sy("env", "history", "prod")) == 1

        set_alpha(0.1)  # mse ~2856: better than v1's ~2917
        assert "version=2" in ci_run("train")
        to_dev = ci_run("release", "--until", "smoke-dev")  # stops before any approval is due
        assert "stopped after smoke-dev (--until)" in to_dev and "==> qa" not in to_dev
        assert serving() == {"dev": "2", "qa": "1", "prod": "1"}
        prod2 = sy("promote", "--to", "prod", "--version", "2", "--force", "--approve")
        assert (prod2["status"], prod2["model_version"]) == ("deployed", "2")

        back = sy("rollback", "prod")
        assert back["env"] == "prod" and back["model"].endswith(":1")
        assert serving() == {"dev": "2", "qa": "1", "prod": "1"}
    finally:
        teardown_endpoints(ws)
