"""The ray target and cluster lifecycle on real local Ray clusters (`ray start --head`), through
the Python API and the CLI: jobs with outputs, logs, failures, cancel and secrets; create-or-get,
stop/start/delete; idle auto-stop by the reaper; `train.compute: NAME` through `shipyard run`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from compute_support import step_job
from deploy_support import make_ws

from shipyard.compute import clusters, get_target, run_job
from shipyard.compute.ray.head import cluster_pids
from shipyard.compute.ray.jobs_api import active_jobs
from shipyard.errors import ConfigError, StepFailed
from shipyard.store.db import utcnow

pytestmark = pytest.mark.integration


def target_of(cluster):  # noqa: ANN001, ANN201
    return get_target(cluster.name, cluster.ws)


def test_job_runs_with_inputs_and_outputs_on_the_cluster(ray_cluster, tmp_path: Path) -> None:
    data = tmp_path / "data.csv"
    data.write_text("a\n1\n2\n3\n")
    job = step_job(
        tmp_path,
        """
        import json, os, pathlib, ray
        inputs = json.loads(os.environ["SHIPYARD_INPUTS"])
        total = sum(int(x) for x in pathlib.Path(inputs["data"]).read_text().split()[1:])
        ray.init()  # the job's driver joins the cluster it runs on
        cpus = ray.cluster_resources().get("CPU")
        out = pathlib.Path(os.environ["SHIPYARD_OUTPUTS"])
        (out / "result.json").write_text(json.dumps({"total": total, "cpus": cpus, "p": os.environ["P"]}))
        print("trained on ray")
        """,
        inputs={"data": data},
        env={"P": "plain value"},
    )
    before = clusters.status(ray_cluster.ws, ray_cluster.name).last_used_at
    result = run_job(target_of(ray_cluster), job)
    assert result.succeeded and result.exit_code == 0
    assert json.loads((job.outputs_dir / "result.json").read_text()) == {
        "total": 6,
        "cpus": 2.0,
        "p": "plain value",
    }
    assert "trained on ray" in job.log_path.read_text()
    assert clusters.status(ray_cluster.ws, ray_cluster.name).last_used_at > before  # idle clock reset


def test_failing_job_reports_exit_code_and_log_tail(ray_cluster, tmp_path: Path) -> None:
    job = step_job(tmp_path, "print('loading')\nraise SystemExit('bad column: age')\n")
    with pytest.raises(StepFailed) as info:
        run_job(target_of(ray_cluster), job)
    assert "exited with code 1 on the ray target" in str(info.value)
    assert "bad column: age" in str(info.value)


def test_cancel_stops_the_job_on_the_cluster(ray_cluster, tmp_path: Path) -> None:
    job = step_job(tmp_path, "import time\nprint('started', flush=True)\ntime.sleep(600)\n")
    target = target_of(ray_cluster)
    handle = target.submit(job)
    deadline = time.monotonic() + 60
    while "started" not in target.logs(handle) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert target.status(handle) == "running"
    target.cancel(handle)
    assert target.status(handle) == "cancelled"
    assert target.wait(handle, 5).status == "cancelled"


def test_secrets_need_an_explicit_opt_in_and_are_masked(ray_cluster, tmp_path: Path) -> None:
    code = "import os\nprint('token is', os.environ['API_TOKEN'])\n"
    job = step_job(tmp_path, code, secret_env={"API_TOKEN": "s3cr3t-value-42"})
    with pytest.raises(ConfigError, match="secrets_in_runtime_env"):
        target_of(ray_cluster).submit(job)
    target = target_of(ray_cluster)
    target.allow_secrets = True
    run_job(target, job)
    log = job.log_path.read_text()
    assert "token is" in log and "s3cr3t-value-42" not in log


def test_lifecycle_is_idempotent_and_idle_clusters_are_stopped(tmp_path: Path, cli) -> None:  # noqa: ANN001
    pytest.importorskip("ray")
    ws_dir = tmp_path / ".shipyard"
    ws_args = ("--workspace", str(ws_dir))
    create = ("compute", "create", "life", "--type", "ray", "--num-cpus", "1", "--idle-minutes", "1")
    first = cli(*create, *ws_args, "-o", "json")
    assert first.code == 0, first.err
    created = json.loads(first.out)
    try:
        assert created["state"] == "running" and created["settings"]["num_cpus"] == 1
        again = json.loads(cli("compute", "create", "life", *ws_args, "-o", "json").out)
        assert again["state"] == "running" and "already existed" in again["message"]
        assert again["started_at"] == created["started_at"]  # not restarted

        ws = make_ws(ws_dir)
        temp_dir = json.loads(cli("compute", "status", "life", *ws_args, "-o", "json").out)
        assert temp_dir["state"] == "running"
        assert clusters.stop_idle(ws, dry_run=True) == []  # not idle yet
        later = utcnow() + timedelta(minutes=2)
        # A connected driver (what batch scoring is) is work: the idle clock restarts instead.
        gcs = created["gcs_address"]
        code = f"import ray, time; ray.init('{gcs}'); time.sleep(60)"
        driver = subprocess.Popen([sys.executable, "-c", code])
        try:
            deadline = time.monotonic() + 60
            while not active_jobs(created["address"]) and time.monotonic() < deadline:
                time.sleep(0.5)
            assert clusters.stop_idle(ws, now=later) == []
            status = json.loads(cli("compute", "status", "life", *ws_args, "-o", "json").out)
            assert status["state"] == "running"
        finally:
            driver.kill()
            driver.wait()
        deadline = time.monotonic() + 30
        while active_jobs(created["address"]) and time.monotonic() < deadline:
            time.sleep(0.5)
        later = utcnow() + timedelta(minutes=2)
        would = clusters.stop_idle(ws, now=later, dry_run=True)
        assert [(i.name, i.state) for i in would] == [("life", "running")]
        done = clusters.stop_idle(ws, now=later)
        assert [(i.name, i.state) for i in done] == [("life", "stopped")]
        stopped = json.loads(cli("compute", "status", "life", *ws_args, "-o", "json").out)
        assert stopped["state"] == "stopped" and stopped["message"] == "idle"

        second_stop = cli("compute", "stop", "life", *ws_args)
        assert second_stop.code == 0 and "already stopped" in second_stop.out
        restarted = json.loads(cli("compute", "start", "life", *ws_args, "-o", "json").out)
        assert restarted["state"] == "running"
    finally:
        gone = cli("compute", "delete", "life", "--permanent", *ws_args)
    assert gone.code == 0 and "deleted life" in gone.out
    assert "life" not in cli("compute", "list", *ws_args, "-o", "json").out
    assert [p for p in Path("/tmp").glob("sy-ray-life-*") if cluster_pids(str(p))] == []


def test_a_stopped_or_unknown_cluster_is_a_clear_error(tmp_path: Path) -> None:
    ws = make_ws(tmp_path / ".shipyard")
    with pytest.raises(ConfigError, match="does not exist"):
        get_target("nowhere", ws)
    with ws.store.session() as s:
        from shipyard.store.models import ComputeRow

        s.add(ComputeRow(name="idle", type="ray", state="stopped", settings={"type": "ray"}, runtime={},
                         created_at=utcnow()))  # fmt: skip
    with pytest.raises(
        ConfigError, match="compute idle is stopped: start it with `shipyard compute start idle`"
    ):
        get_target("idle", ws)


def test_training_step_runs_on_the_cluster_through_shipyard_run(
    ray_cluster, tmp_path: Path, copy_project, shipyard_proc
) -> None:
    project = copy_project(tmp_path / "project", deployment=False)
    cfg = project / "shipyard.yaml"
    data = yaml.safe_load(cfg.read_text())
    data["train"]["compute"] = ray_cluster.name
    data["registry"]["model_name"] = "diabetes-on-ray"
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))
    res = shipyard_proc(
        "run", "--workspace", ray_cluster.ws.root, "--output", "json", cwd=project, timeout=600
    )
    assert res.code == 0, res.err[-3000:]
    summary = json.loads(res.out)
    assert summary["status"] == "succeeded", summary
    run = ray_cluster.ws.mlflow.get_run(summary["run"]["run_id"])
    assert run.data.tags["shipyard.compute"] == ray_cluster.name
    assert "mse" in run.data.metrics and run.data.tags.get("shipyard.model_artifact")
    log = next(Path(ray_cluster.ws.root).rglob("train.log")).read_text()
    assert "Running entrypoint for job shipyard-train-" in log
