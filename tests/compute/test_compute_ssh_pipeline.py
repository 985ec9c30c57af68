"""`train.compute: NAME` with an ssh entry in shipyard.yaml, through `shipyard run`: the diabetes
example trains on a real sshd on 127.0.0.1 with the host's plain python3 (no pandas, no Shipyard):
the target builds a venv there from Shipyard's wheel and the wheels of train.environment, shipped
over the connection and installed offline; the script logs into a store beside its outputs (it
cannot reach the workspace), and the train step imports that run — metrics, params, model
artifact — into the workspace, where the gate, the registry and a second run's cache use it as any
local run."""

from __future__ import annotations

import getpass
import json
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml
from compute_support import plain_python
from sshd_support import Sshd, sshd  # noqa: F401

pytestmark = pytest.mark.integration

WHEEL = f"shipyard_mlops-{version('shipyard-mlops')}-py3-none-any.whl"


def test_training_on_an_ssh_host_lands_in_the_workspace(
    sshd: Sshd, tmp_path: Path, copy_project, shipyard_proc
) -> None:
    project = copy_project(tmp_path / "project", deployment=False)
    cfg = project / "shipyard.yaml"
    data = yaml.safe_load(cfg.read_text())
    data["compute"] = {
        "vm": {
            "type": "ssh",
            "host": "127.0.0.1",
            "port": sshd.port,
            "user": getpass.getuser(),
            "key": f"file:{sshd.client_key}",
            "known_hosts": str(sshd.known_hosts),
            "python": str(plain_python(tmp_path / "plain")),  # no pandas, no Shipyard
            "workdir": str(tmp_path / "remote"),
        }
    }
    data["train"]["compute"] = "vm"
    train = project / "train.py"
    train.write_text(
        "import shipyard as _s, sys\nprint('remote:', sys.prefix, _s.__file__)\n" + train.read_text()
    )
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))
    ws = tmp_path / ".shipyard"

    res = shipyard_proc("run", "--workspace", ws, "--output", "json", cwd=project, timeout=600)
    assert res.code == 0, res.err[-3000:]
    summary = json.loads(res.out)
    assert summary["status"] == "succeeded", summary
    run_id = summary["run"]["run_id"]

    from mlflow.tracking import MlflowClient

    db = f"sqlite:///{ws / 'shipyard.db'}"
    client = MlflowClient(tracking_uri=db, registry_uri=db)  # not whatever MLFLOW_REGISTRY_URI says
    run = client.get_run(run_id)
    assert run.data.tags["shipyard.compute"] == "vm"
    assert run.data.metrics["mse"] > 0 and run.data.params["alpha"]
    assert run.data.tags["shipyard.imported_from"] != run_id  # logged remotely, imported here
    # The MLflow 3 logged model came along, created again from the run here, with its files.
    logged = client.get_logged_model(run.data.tags["shipyard.model_id"])
    assert logged.source_run_id == run_id and logged.name == run.data.tags["shipyard.model_artifact"]
    assert (Path(logged.artifact_location.removeprefix("file://")) / "MLmodel").is_file()
    versions = client.search_model_versions(f"name='{data['registry']['model_name']}'")
    assert [v.run_id for v in versions] == [run_id]
    outputs = next(ws.rglob("outputs/*/train"))
    assert not (outputs / ".tracking").exists()  # the temporary store is gone after the import
    remote = tmp_path / "remote"
    assert sorted(p.name for p in remote.iterdir() if p.is_dir()) == ["envs", "wheels"]
    [env] = [p for p in (remote / "envs").iterdir() if p.is_dir()]
    marker = json.loads((env / ".shipyard-env.json").read_text())
    [wheels] = list((remote / "wheels").iterdir())
    assert marker["wheels"] == wheels.name and (wheels / WHEEL).is_file()
    log = next(ws.rglob("train.log")).read_text()
    assert f"remote: {env} {env}/lib/python" in log, log[-2000:]  # Shipyard from the remote venv

    again = shipyard_proc("run", "--workspace", ws, "--output", "json", cwd=project, timeout=600)
    steps = {s["step"]: s["status"] for s in json.loads(again.out)["steps"]}
    assert steps["train"] == "cached"
