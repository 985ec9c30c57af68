"""Environments on real local deployments behind nginx, without training: two registered versions
of a small model, a project with dev → qa → prod. A rollback of prod moves `production` back with
it (recorded), `env status` and `ci smoke` give the endpoint's stable URL, `env deploy` prints the
keys it created, and `shipyard deploy` in a project with environments deploys to dev's endpoint."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from bundles import SEED, make_bundle
from deploy_support import make_ws
from tools import require_tool

from shipyard.ci.outputs import smoke
from shipyard.config.loader import load_project
from shipyard.config.overlay import production_env, root_project
from shipyard.deploy.traffic import get_endpoint
from shipyard.registry import alias_history, register, set_alias
from shipyard.registry.aliases import current
from shipyard.release.environments import deploy_to_env, serving
from shipyard.release.rollback import rollback_endpoint
from shipyard.workspace import Workspace

pytestmark = pytest.mark.integration

MODEL = "diabetes-ridge"


@pytest.fixture
def project(tmp_path: Path, teardown_endpoints) -> Iterator[tuple[Workspace, Path]]:
    """A project with dev → qa → prod (its own `deployment.name: dev`, as the example has) and a
    workspace holding versions 1 and 2 of MODEL, `production` on v1."""
    require_tool("nginx", "nginx")
    built, _ = make_bundle(tmp_path / "built")
    folder = tmp_path / "project"
    folder.mkdir()
    for name in ("score.py", "requirements.txt"):
        shutil.copy2(built / name, folder / name)
    (folder / "sample_request.json").write_text(json.dumps(SEED))
    config = {
        "name": "diabetes",
        "registry": {"model_name": MODEL},
        "deployment": {"name": "dev", "entry_script": "score.py", "requirements": "requirements.txt",
                       "input_sample": "sample_request.json"},
        "environments": {"dev": {}, "qa": {"promotes_from": "dev"}, "prod": {"promotes_from": "qa"}},
    }  # fmt: skip
    (folder / "shipyard.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    ws = make_ws(tmp_path / "ws")
    source = str(built / "model" / MODEL / "3")
    for _ in range(2):
        run = ws.mlflow.create_run(ws.experiment_id("diabetes"))
        ws.mlflow.set_terminated(run.info.run_id)
        register(ws, MODEL, run.info.run_id, source)
    set_alias(ws, MODEL, "production", "1", reason="first release")
    try:
        yield ws, folder
    finally:
        ws.store.dispose()
        teardown_endpoints(tmp_path / "ws")


def test_rollback_of_prod_moves_production_back_and_urls_are_the_endpoints(project) -> None:
    ws, folder = project
    config = load_project(folder / "shipyard.yaml")
    assert production_env(config) == "prod"
    deploy_to_env(ws, config, "prod", f"{MODEL}:1", reason="release 1")
    set_alias(ws, MODEL, "production", "2", reason="gate passed")
    deploy_to_env(ws, config, "prod", f"{MODEL}:2", reason="release 2")

    router_url = get_endpoint(ws, "diabetes-prod").url
    state = serving(ws, config, "prod")
    assert state.model_version == "2" and state.url == router_url  # not the deployment's own port
    checked = smoke(ws, config, "prod", "2")
    assert checked["url"] == router_url and checked["smoke_test"] == "passed"

    back = rollback_endpoint(ws, config, "prod")
    assert back["model"] == f"{MODEL}:1" and back["env"] == "prod"
    assert back["production"] | {"reason": ""} == {"model": MODEL, "alias": "production", "from": "2",
                                                   "to": "1", "moved": True, "reason": ""}  # fmt: skip
    assert current(ws, MODEL, "production") == "1"  # the gate's champion is what prod serves
    last = alias_history(ws, MODEL, "production")[-1]
    assert (last["from"], last["to"]) == ("2", "1")
    assert last["why"].startswith("rollback of prod: v2 stopped serving")
    assert serving(ws, config, "prod").model_version == "1"


def test_env_deploy_prints_its_keys_and_deploy_uses_the_first_environment(project, cli) -> None:
    ws, folder = project
    opts = ("--project", str(folder), "--workspace", str(ws.root))
    res = cli("env", "deploy", "dev", "--version", "1", *opts)
    assert res.code == 0, res.err
    keys = [line.rsplit(": ", 1)[1] for line in res.out.splitlines() if "key (shown once)" in line]
    assert len(keys) == 2, res.out
    url = get_endpoint(ws, "diabetes-dev").url
    assert f"serving at {url}" in res.out
    with httpx.Client(trust_env=False, timeout=10) as client:
        assert client.post(url + "/score", json=SEED).status_code == 401
        answered = client.post(url + "/score", json=SEED, headers={"Authorization": f"Bearer {keys[0]}"})
        assert answered.status_code == 200, answered.text

    config = load_project(folder / "shipyard.yaml")
    assert root_project(config).deployment.name == "diabetes-dev"  # not the project's `dev`
    res = cli("deploy", f"{MODEL}:2", "--target", "local", *opts, "-o", "json")
    assert res.code == 0, res.err
    deployed = json.loads(res.out)
    assert (deployed["endpoint"], deployed["model_version"]) == ("diabetes-dev", "2")
    assert serving(ws, config, "dev").model_version == "2"
