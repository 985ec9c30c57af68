"""deployment.code: the project's own modules travel in the bundle (code/) and are on the server's
path wherever it runs. A score.py that imports `features` from the project fails the load check
without it (as it would in a container: "No module named 'features'") and nothing is registered;
with `code: [features.py, helpers/]` the version registers, the bundle holds them, and it loads
and scores in a folder far from the project, also through a lazy import inside run()."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.integration

FEATURES = "def prepare(rows):\n    return [[float(v) for v in row] for row in rows]\n"
HELPER = "SCALE = 1.0\n"


def _uses_project_modules(project: Path) -> None:
    script = project / "score.py"
    text = script.read_text()
    text = text.replace("import numpy as np\n", "import numpy as np\nfrom features import prepare\n", 1)
    text = text.replace(
        "    rows = _parse(raw_data)\n",
        "    from helpers.scale import SCALE  # a lazy import, after init()\n"
        "    rows = np.asarray(prepare(_parse(raw_data).tolist())) * SCALE\n",
        1,
    )
    script.write_text(text)
    (project / "features.py").write_text(FEATURES)
    (project / "helpers").mkdir()
    (project / "helpers" / "__init__.py").write_text("")
    (project / "helpers" / "scale.py").write_text(HELPER)


def test_project_modules_travel_in_the_bundle(tmp_path: Path, copy_project, shipyard_proc, mlflow_client):
    project = copy_project(tmp_path / "project")
    _uses_project_modules(project)
    ws = tmp_path / "ws"
    args = ("run", "--workspace", ws, "--until", "package", "-o", "json")

    missing = shipyard_proc(*args, cwd=project, timeout=400)
    assert missing.code == 1
    error = json.loads(missing.out)["error"]
    assert "failed its load check (load)" in error and "No module named 'features'" in error
    assert mlflow_client(ws).search_model_versions("name = 'diabetes-ridge'") == []

    cfg = project / "shipyard.yaml"
    data = yaml.safe_load(cfg.read_text())
    data["deployment"]["code"] = ["features.py", "helpers/"]
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))
    packaged = shipyard_proc(*args, cwd=project, timeout=400)
    assert packaged.code == 0, packaged.out[-3000:]
    [bundle] = [p for p in (ws / "artifacts").rglob("manifest.json") if "bundles" in p.parts]
    manifest = json.loads(bundle.read_text())
    assert manifest["code"] == "code"
    folder = bundle.parent
    assert (folder / "code" / "features.py").read_text() == FEATURES
    assert (folder / "code" / "helpers" / "scale.py").read_text() == HELPER
    assert not list((folder / "code").rglob("__pycache__"))

    far = tmp_path / "elsewhere"
    far.mkdir()
    check = subprocess.run(
        [sys.executable, "-m", "shipyard.serving.loadcheck", str(folder)],
        cwd=far, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    assert json.loads(check.stdout.splitlines()[-1]) == {"ok": True, "stage": "score", "scored": True}


@pytest.mark.parametrize("entry", ["/etc/passwd", "../outside.py", "a/../../b", " "])
def test_code_entries_must_stay_inside_the_project(tmp_path: Path, copy_project, shipyard_proc, entry):
    project = copy_project(tmp_path / "project")
    cfg = project / "shipyard.yaml"
    data = yaml.safe_load(cfg.read_text())
    data["deployment"]["code"] = [entry]
    cfg.write_text(yaml.safe_dump(data, sort_keys=False))
    res = shipyard_proc("run", "--workspace", tmp_path / "ws", "--until", "data_check", cwd=project)
    assert res.code == 2 and "deployment.code" in res.err and "inside it" in res.err
    assert "Traceback" not in res.err
