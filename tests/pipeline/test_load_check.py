"""The load check before registering: a model whose pickle names a class only the training script
had (`__main__.Shifted`) scores well and passes the gate, but score.py cannot load it. It is not
registered, the run says why, and production stays unset; the fixed model is then registered as
v1 and becomes production (it is not compared with an unservable champion)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

UNLOADABLE = """
from sklearn.linear_model import Ridge


class Shifted(Ridge):  # pickled as __main__.Shifted: only this script can unpickle it
    pass


Ridge = Shifted
"""


def test_a_model_that_does_not_load_is_not_registered(
    tmp_path: Path, copy_project, shipyard_proc, mlflow_client
) -> None:
    project = copy_project(tmp_path / "project")
    script = project / "train.py"
    good = script.read_text()
    script.write_text(good.replace("import shipyard\n", "import shipyard\n" + UNLOADABLE, 1))
    ws = tmp_path / "ws"

    broken = shipyard_proc(
        "run", "--workspace", ws, "--until", "register", "-o", "json", cwd=project, timeout=400
    )
    assert broken.code == 1, broken.err[-2000:]
    out = json.loads(broken.out)
    assert out["status"] == "failed" and "failed its load check (load)" in out["error"]
    assert "Shifted" in out["error"] and "nothing was registered" in out["error"]
    assert "Traceback" not in broken.err
    client = mlflow_client(ws)
    assert client.search_model_versions("name = 'diabetes-ridge'") == []

    script.write_text(good)
    fixed = shipyard_proc(
        "run", "--workspace", ws, "--until", "register", "-o", "json", cwd=project, timeout=400
    )
    assert fixed.code == 0, fixed.err[-2000:]
    model = json.loads(fixed.out)["model"]
    assert model["version"] == "1" and "production" in model["aliases"]
