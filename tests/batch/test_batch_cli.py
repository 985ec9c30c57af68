"""`shipyard batch-score` on a bundle folder: real workers, real files, the JSON summary on stdout,
through the real `shipyard` command (cli/main.py)."""

from __future__ import annotations

import json
import re
import socket
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from bundles import make_bundle
from typer.testing import CliRunner

from shipyard.cli.main import app
from shipyard.errors import ConfigError, ShipyardError, UsageError


def test_cli_scores_a_file_and_prints_the_summary(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no shipyard.yaml here: a bundle folder needs none
    bundle_dir, model = make_bundle(tmp_path / "bundle")
    x = np.random.default_rng(7).normal(size=(25, 10))
    frame = pd.DataFrame(x, columns=[f"c{i}" for i in range(10)])
    frame.insert(0, "id", range(100, 125))
    frame.to_parquet(tmp_path / "in.parquet", index=False)
    args = ["batch-score", str(bundle_dir), str(tmp_path / "in.parquet"), "--output", str(tmp_path / "out")]
    args += ["--mini-batch-rows", "5", "--workers", "2", "--key", "id", "--output-json"]
    args += ["--workspace", str(tmp_path / "ws")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["status"] == "succeeded" and summary["rows_scored"] == 25 and summary["mini_batches"] == 5
    out = pd.read_parquet(summary["output"]).sort_values("id")
    assert out["id"].tolist() == list(range(100, 125))
    np.testing.assert_allclose(out["prediction"], model.predict(x), rtol=1e-12)
    assert Path(summary["summary_path"]).is_file()


def test_cli_refuses_keep_order_with_key(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bundle_dir, _ = make_bundle(tmp_path / "bundle")
    (tmp_path / "in.csv").write_text("id,a\n1,2\n")
    args = ["batch-score", str(bundle_dir), str(tmp_path / "in.csv"), "--output", str(tmp_path / "o")]
    result = CliRunner().invoke(
        app, [*args, "--keep-order", "--key", "id", "--workspace", str(tmp_path / "ws")]
    )
    assert isinstance(result.exception, UsageError)
    assert "--keep-order and --key" in str(result.exception)
    assert not (tmp_path / "o").exists()


def _project(tmp_path: Path, closed_port: int) -> None:
    (tmp_path / "shipyard.yaml").write_text(
        "name: p\nregistry: {model_name: m}\ncompute:\n"
        "  sp: {type: spark}\n"
        "  ext: {type: ray, address: 'http://127.0.0.1:8265'}\n"
        f"  gone: {{type: ray, client_address: '127.0.0.1:{closed_port}'}}\n"
    )


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when this returns: nothing listens there


def test_cli_compute_names_what_to_fix_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _project(tmp_path, _closed_port())
    bundle_dir, _ = make_bundle(tmp_path / "bundle")
    (tmp_path / "in.csv").write_text("a,b\n1,2\n")
    args = ["batch-score", str(bundle_dir), str(tmp_path / "in.csv"), "--output", str(tmp_path / "o")]
    args += ["--workspace", str(tmp_path / "ws")]
    cases = {
        "sp": (UsageError, "--compute sp is a spark target: batch scoring runs on local processes or a Ray"),
        "ext": (ConfigError, "set compute.ext.client_address"),
        "nowhere": (ConfigError, "compute target 'nowhere' does not exist"),
        "gone": (ShipyardError, r"cannot reach the Ray cluster at 127\.0\.0\.1:\d+ \(Connection refused\)"),
    }
    for name, (kind, message) in cases.items():
        result = CliRunner().invoke(app, [*args, "--compute", name])
        assert isinstance(result.exception, kind), (name, result.output, result.exception)
        assert re.search(message, str(result.exception)), (name, str(result.exception))
    assert not (tmp_path / "o").exists()


def test_ray_backend_without_ray_says_what_to_install(tmp_path, monkeypatch):
    from shipyard.batch.backends.ray import RayData

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray → ImportError, as when not installed
    with pytest.raises(ConfigError, match=r"pip install 'shipyard\[ray\]'"):
        next(RayData("127.0.0.1:6379", 1).score(tmp_path, iter([]), None))
