"""train.distributed on a real local Ray cluster: the digits CNN trains under Ray Train's
TorchTrainer on 2 workers (DDP over gloo), only rank 0 logs into the pipeline's run, and the model
registers; on anything but a Ray compute the setting is refused in one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT

from shipyard.compute.base import Distribution, StepJob, run
from shipyard.compute.local import LocalTarget
from shipyard.errors import ConfigError

DIGITS = REPO_ROOT / "examples" / "digits"


def _digits_project(dest: Path, **train: object) -> Path:
    leftovers = shutil.ignore_patterns(".shipyard", "mlruns", "outputs", "__pycache__")
    shutil.copytree(DIGITS, dest, ignore=leftovers)
    cfg = dest / "shipyard.yaml"
    data = yaml.safe_load(cfg.read_text())
    del data["train"]["sweep"]
    data["train"].update(train)
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))
    return dest


@pytest.mark.integration
def test_digits_trains_on_two_ray_train_workers_and_only_rank_zero_logs(
    tmp_path: Path,
    shipyard_proc,
    mlflow_client,
    ray_cluster,  # noqa: F811
) -> None:
    epochs = 6
    project = _digits_project(
        tmp_path / "digits",
        compute=ray_cluster.name,
        distributed={"workers": 2},
        parameters={"lr": 0.01, "epochs": epochs},
    )
    ws = Path(ray_cluster.ws.root)
    res = shipyard_proc(
        "run", "--workspace", ws, "--until", "register", "-o", "json", cwd=project, timeout=600
    )
    assert res.code == 0, res.err[-3000:]
    out = json.loads(res.out)
    assert out["gate"]["verdict"] == "passed", out["gate"]
    client = mlflow_client(ws)
    run_id = out["run"]["run_id"]
    train = client.get_run(run_id)
    assert train.data.tags["world_size"] == "2"  # DistributedDataParallel over 2 processes
    assert train.data.tags["shipyard.compute"] == ray_cluster.name
    assert train.data.metrics["accuracy"] >= 0.9
    # Rank 0 alone logged: one loss value per epoch and one model, not one per worker.
    assert [m.step for m in client.get_metric_history(run_id, "train_loss")] == list(range(epochs))
    models = list(
        client.search_logged_models(
            experiment_ids=[train.info.experiment_id], filter_string=f"source_run_id = '{run_id}'"
        )
    )
    assert len(models) == 1
    version = client.get_model_version("digits-cnn", out["model"]["version"])
    assert version.source == f"models:/{models[0].model_id}"
    # Both workers ran the script (each prints its accuracy into the step's log).
    log = (ws / "runs" / out["pipeline_run_id"] / "train.log").read_text()
    assert log.count("accuracy ") >= 2, log[-3000:]


def test_distributed_is_refused_without_a_ray_compute(tmp_path: Path) -> None:
    from shipyard.config.models import TrainConfig

    with pytest.raises(ValueError, match="train.distributed runs the script on Ray Train workers"):
        TrainConfig(script="train.py", distributed={"workers": 2})
    (tmp_path / "train.py").write_text("print('one process')\n")
    job = StepJob(
        "train", tmp_path, "train.py", tmp_path / "train.log", tmp_path / "out", distribution=Distribution(2)
    )
    with pytest.raises(ConfigError, match="compute 'local' is not a Ray cluster"):
        run(LocalTarget(), job)
    assert not (tmp_path / "train.log").exists()  # refused before anything started
