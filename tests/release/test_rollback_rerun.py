"""After `shipyard rollback`, a re-run does not put the rolled-back version back.

The diabetes example in a project without environments: v1 (alpha=0.5) is served, v2 (alpha=0.1,
better) replaces it, `shipyard rollback dev` returns the endpoint to v1 and moves `production`
back. A re-run with v2's inputs reuses v2's training run; before the fix its cached gate decision
("better than v1") passed again and the pipeline redeployed v2 behind the alias's back. Now the
gate refuses a version someone took out of production, says why, and nothing moves; once a person
puts production back on v2 by hand, the same re-run deploys it again.
"""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.integration

MODEL = "diabetes-ridge"


def test_rerun_after_rollback_is_refused_until_a_person_restores_the_version(
    tmp_path, copy_project, cli, teardown_endpoints
) -> None:
    proj, ws = copy_project(tmp_path / "project"), tmp_path / "ws"
    opts = ("--project", proj, "--workspace", ws, "--output", "json")

    def run(*args):
        res = cli("run", *opts, "--param", "alpha=0.1", *args)
        assert res.code == 0, f"exit {res.code}\n{res.out}\n{res.err}"
        return res.json()

    def serving_version() -> str:
        shown = cli("endpoints", "list", *opts)
        assert shown.code == 0, shown.err
        (dev,) = [e for e in shown.json() if e["endpoint"] == "dev"]
        with httpx.Client(timeout=10, trust_env=False) as http:
            assert http.get(dev["url"] + "/").status_code == 200  # up, not only recorded
        return dev["model"].rpartition(":")[2]

    def production() -> str:
        res = cli("models", "show", f"{MODEL}@production", *opts)
        assert res.code == 0, res.err
        return str(res.json()["version"])

    try:
        first = cli("run", *opts)
        assert first.code == 0, first.err
        assert run()["status"] == "succeeded"
        assert (production(), serving_version()) == ("2", "2")

        back = cli("rollback", "dev", *opts)
        assert back.code == 0, back.err
        assert back.json()["production"]["to"] == "1"
        assert (production(), serving_version()) == ("1", "1")

        again = run()
        steps = {s["step"]: s["status"] for s in again["steps"]}
        assert again["status"] == "rejected", again
        assert steps["train"] == "cached" and steps["evaluate"] == "succeeded", steps
        reason = again["gate"]["reason"]
        assert reason.startswith("v2 was taken out of production on ") and "rollback of dev" in reason
        assert "shipyard models alias set diabetes-ridge production 2" in reason
        assert (production(), serving_version()) == ("1", "1")  # nothing moved, nothing redeployed

        restored = cli("models", "alias", "set", MODEL, "production", "2", "--reason", "fixed", *opts)
        assert restored.code == 0, restored.err
        after = run()
        assert after["status"] == "succeeded", after
        assert serving_version() == "2"
    finally:
        teardown_endpoints(ws)
