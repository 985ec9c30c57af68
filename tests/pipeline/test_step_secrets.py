"""Secrets through the pipeline for real: a secret referenced in shipyard.yaml reaches the training
script's environment, the script prints it, and afterwards the value is nowhere in the workspace
(database, artifacts, logs) nor in the command's output; a plain value in the config is refused
without being echoed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from shipyard.secrets import scan_for_values

pytestmark = pytest.mark.integration

SECRET = "s3cr3t-Token-4f9a1c"


def _project(copy_project, root: Path, secrets: dict) -> Path:
    project = copy_project(root / "project", deployment=False)
    cfg = project / "shipyard.yaml"
    data = yaml.safe_load(cfg.read_text())
    data["secrets"] = secrets
    data["train"]["secrets"] = ["API_TOKEN"]
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))
    train = project / "train.py"
    # The script uses the secret (fails without it) and prints it, as careless scripts do.
    train.write_text(
        "import os\n"
        f"assert os.environ['API_TOKEN'] == {SECRET!r}, 'secret not injected'\n"
        "print('token is', os.environ['API_TOKEN'])\n" + train.read_text()
    )
    return project


def test_a_secret_reaches_the_script_and_is_stored_nowhere(tmp_path, copy_project, shipyard_proc):
    project = _project(copy_project, tmp_path, {"API_TOKEN": "env:SHIPYARD_TEST_API_TOKEN"})
    ws = project / ".shipyard"
    res = shipyard_proc(
        "run", "--workspace", ws, "--output", "json", cwd=project, env={"SHIPYARD_TEST_API_TOKEN": SECRET}
    )
    assert res.code == 0, res.err[-2000:]
    assert SECRET not in res.out and SECRET not in res.err
    logs = list(ws.rglob("train.log"))
    assert logs and "token is ***" in logs[0].read_text()  # the script printed it: masked
    # Every file of the workspace (SQLite store, MLflow artifacts, logs), scanned in a child
    # process (the store is a SQLite file: never opened in this process).
    assert scan_for_values(ws, [SECRET], isolated=True) == []
    assert SECRET not in (project / "shipyard.yaml").read_text()


def test_a_missing_secret_fails_before_training_naming_the_variable(tmp_path, copy_project, shipyard_proc):
    project = _project(copy_project, tmp_path, {"API_TOKEN": "env:SHIPYARD_TEST_UNSET_TOKEN"})
    res = shipyard_proc("run", "--workspace", project / ".shipyard", cwd=project)
    assert res.code != 0
    assert "SHIPYARD_TEST_UNSET_TOKEN" in res.err and "Traceback" not in res.err


def test_a_plain_value_in_the_secrets_section_is_refused_without_echoing_it(
    tmp_path, copy_project, shipyard_proc
):
    project = _project(copy_project, tmp_path, {"API_TOKEN": SECRET})
    res = shipyard_proc("run", "--workspace", project / ".shipyard", cwd=project)
    assert res.code == 2, res.err
    assert "secrets.API_TOKEN" in res.err and SECRET not in res.err and "Traceback" not in res.err


LOG_MODEL = '        shipyard.log_model(model, "model", input_example=X_train.to_numpy()[:5])'


def _leaky(project: Path, scan: str | None = None) -> None:
    """The script logs the secret as a param and a tag and writes it into an artifact and its
    outputs folder: the kinds of leak the scan after each step must report."""
    train = project / "train.py"
    leak = (
        '        shipyard.log_param("token", os.environ["API_TOKEN"])\n'
        '        shipyard.set_tag("auth", "Bearer " + os.environ["API_TOKEN"])\n'
        '        conn = os.path.join(shipyard.output_dir(), "conn.txt")\n'
        '        open(conn, "w").write("token=" + os.environ["API_TOKEN"])\n'
        "        shipyard.log_artifact(conn)\n"
        f"{LOG_MODEL}"
    )
    assert LOG_MODEL in train.read_text()
    train.write_text(train.read_text().replace(LOG_MODEL, leak))
    if scan is not None:
        cfg = project / "shipyard.yaml"
        data = yaml.safe_load(cfg.read_text())
        data["secret_scan"] = scan
        cfg.write_text(yaml.safe_dump(data, sort_keys=False))


def test_a_secret_the_script_logs_is_masked_in_every_output_and_reported(
    tmp_path, copy_project, shipyard_proc
):
    project = _project(copy_project, tmp_path, {"API_TOKEN": "env:SHIPYARD_TEST_API_TOKEN"})
    _leaky(project)
    outputs = tmp_path / "ci-outputs"
    res = shipyard_proc(
        "run", "--output", "json", "--outputs", outputs, cwd=project, env={"SHIPYARD_TEST_API_TOKEN": SECRET}
    )
    assert res.code == 0, res.err[-2000:]
    # The run's params are printed (and handed to the next CI job) with the value masked.
    assert SECRET not in res.out and SECRET not in res.err
    assert SECRET not in (outputs / "run.json").read_text()
    summary = json.loads(res.out)
    assert summary["run"]["params"]["token"] == "***"
    # The scan after the train step names every place, by the secret's name, never the value.
    train = next(s for s in summary["steps"] if s["step"] == "train")
    message = train["message"]
    assert message.startswith("warning: step train left a secret value behind")
    for place in ("param 'token'", "tag 'auth'", "artifact conn.txt", "outputs/"):
        assert place in message, (place, message)
    assert "secrets.API_TOKEN" in message and SECRET not in message
    # warn is the default: the pipeline went on and registered the model.
    assert summary["model"]["version"] == "1"
    # Text output masks too.
    res = shipyard_proc(
        "runs", "show", summary["pipeline_run_id"], cwd=project, env={"SHIPYARD_TEST_API_TOKEN": SECRET}
    )
    assert SECRET not in res.out + res.err


def test_secret_scan_fail_stops_the_pipeline_before_registration(tmp_path, copy_project, shipyard_proc):
    project = _project(copy_project, tmp_path, {"API_TOKEN": "env:SHIPYARD_TEST_API_TOKEN"})
    _leaky(project, scan="fail")
    res = shipyard_proc("run", "--output", "json", cwd=project, env={"SHIPYARD_TEST_API_TOKEN": SECRET})
    assert res.code != 0
    error = json.loads(res.out)["error"]
    assert "secret_scan: fail" in error and "param 'token'" in error
    assert SECRET not in res.out + res.err and "Traceback" not in res.err
    listed = shipyard_proc("models", "list", "--output", "json", cwd=project)
    assert listed.code == 0, listed.err
    assert json.loads(listed.out) == []  # nothing registered from the leaky run
