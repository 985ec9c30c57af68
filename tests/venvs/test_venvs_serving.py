"""Local serving in the bundle's own environment, on real virtual environments built offline.

The bundle's score.py imports `shipyard_test_extra`, a wheel made in a temporary folder that
Shipyard's own Python does not have; the environment installs it and Shipyard's serving runtime
from find-links folders only (`no_index`): that wheel, and wheels repacked from the packages
installed here (tests/wheels_support.py), so no test needs a package index.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from deploy_support import cleaned_ws
from wheels_support import installed_wheelhouse, write_wheel

from shipyard.config.models import DeploymentConfig
from shipyard.config.packages import PackageSources
from shipyard.deploy import runtime
from shipyard.deploy.endpoints import (
    get_deployment,
    list_endpoints,
    run_smoke_test,
    start_deployment,
)
from shipyard.errors import DeploymentError, ShipyardError
from shipyard.packaging.bundle import Bundle
from shipyard.store.models import DeploymentRow
from shipyard.venvs.cache import MARKER, SERVING, EnvCache, uv_path
from shipyard.venvs.serving import OWN, serving_python
from shipyard.venvs.spec import read_env_spec
from shipyard.workspace import Workspace

pytestmark = pytest.mark.integration

EXTRA = "shipyard_test_extra"
SCORE_PY = """\
import json
import shipyard_test_extra

def init():
    pass

def run(raw_data):
    return {"result": shipyard_test_extra.double(json.loads(raw_data)["data"])}
"""


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the extra package's folder, the serving runtime's wheels)."""
    root = tmp_path_factory.mktemp("wheels")
    code = "def double(values):\n    return [2 * v for v in values]\n"
    write_wheel(root / "extra", "shipyard-test-extra", "1.0", {f"{EXTRA}/__init__.py": code})
    return root / "extra", installed_wheelhouse(root / "runtime")


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Workspace]:
    with cleaned_ws(tmp_path / "ws") as workspace:
        yield workspace


def offline(wheels: tuple[Path, Path]) -> PackageSources:
    return PackageSources(find_links=[str(w) for w in wheels], no_index=True)


def make_bundle(root: Path, requirements: str, score_py: str = SCORE_PY) -> Bundle:
    (root / "model" / "extra-model" / "1").mkdir(parents=True)
    (root / "score.py").write_text(score_py)
    (root / "requirements.txt").write_text(requirements)
    manifest = {
        "model_name": "extra-model",
        "model_version": "1",
        "flavor": "azureml",
        "entry_script": "score.py",
        "model_dir": "model/extra-model/1",
        "requirements": "requirements.txt",
        "input_sample": {"data": [1, 2, 3]},
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    return Bundle("e" * 32, "extra-model", "1", str(root), "f" * 64, manifest)


def test_a_bundle_needing_a_package_serves_from_its_own_environment(
    ws: Workspace, tmp_path: Path, wheels: tuple[Path, Path]
) -> None:
    assert importlib.util.find_spec(EXTRA) is None  # not in Shipyard's own Python
    bundle = make_bundle(tmp_path / "bundle", "shipyard-test-extra==1.0\n")
    config = DeploymentConfig(name="extra", serving={"auth": False}, packages=offline(wheels))
    phases: list[str] = []
    dep = start_deployment(ws, bundle, config, progress=phases.append)

    response = httpx.post(f"{dep.url}/score", json={"data": [1, 2, 3]}, timeout=10)
    assert response.status_code == 200 and response.json() == {"result": [2, 4, 6]}
    env_dir = ws.root / "envs" / dep.target_settings["environment"]  # type: ignore[index]
    assert dep.target_settings == {"python": str(env_dir / "bin" / "python"), "environment": env_dir.name}
    assert env_dir.name.startswith("serving-") and (env_dir / MARKER).is_file()
    assert any("shipyard-test-extra==1.0" in p for p in phases)  # what the spinner showed
    marker = json.loads((env_dir / MARKER).read_text())
    assert marker["runtime"] == "serving" and marker["requirements"] == ["shipyard-test-extra==1.0"]
    assert not any(line.startswith("mlflow==") for line in marker["runtime_requirements"])
    # The server process runs the environment's Python; status shows it (endpoints list, JSON).
    with open(f"/proc/{dep.pid}/cmdline", "rb") as cmdline:
        assert cmdline.read().split(b"\0")[0] == str(env_dir / "bin" / "python").encode()
    run_smoke_test(ws, dep.id, bundle.manifest["input_sample"], 30)  # the sample passes; now active
    (row,) = [r for r in list_endpoints(ws) if r["endpoint"] == "extra"]
    assert (row["environment"], row["python"]) == (env_dir.name, str(env_dir / "bin" / "python"))
    recorded = get_deployment(ws, dep.id)
    assert recorded.config is not None and recorded.config["packages"]["no_index"] is True

    # A second deployment of the same requirements reuses the environment.
    again = start_deployment(ws, bundle, config)
    assert again.target_settings == dep.target_settings
    assert json.loads((env_dir / MARKER).read_text())["built_at"] == marker["built_at"]
    runtime.stop(ws, again)


def test_a_bundle_shipyard_satisfies_serves_in_shipyard_python(ws: Workspace, tmp_path: Path) -> None:
    numpy = importlib.metadata.version("numpy")
    score_py = SCORE_PY.replace("import shipyard_test_extra\n", "").replace(
        "shipyard_test_extra.double(", "list("
    )
    bundle = make_bundle(tmp_path / "bundle", f"numpy=={numpy}\npydantic>=2\n", score_py)
    dep = start_deployment(ws, bundle, DeploymentConfig(name="own", serving={"auth": False}))
    assert dep.target_settings == {"python": sys.executable, "environment": OWN}
    assert httpx.post(f"{dep.url}/score", json={"data": [5]}, timeout=10).json() == {"result": [5]}
    assert not (ws.root / "envs").exists()  # nothing was built
    runtime.stop(ws, dep)


CHOOSE = """\
import json, sys
from pathlib import Path
from shipyard.config.models import WorkspaceSettings
from shipyard.config.packages import PackageSources
from shipyard.venvs.serving import serving_python
from shipyard.workspace import Workspace
ws = Workspace.get_or_create(WorkspaceSettings(root=sys.argv[1]))
chosen = serving_python(ws, Path(sys.argv[2]), PackageSources(find_links=sys.argv[3:], no_index=True))
print(json.dumps({"action": chosen.action, **chosen.record()}))
"""


def choose(ws: Workspace, bundle: Bundle, wheels: tuple[Path, Path], **kw: object) -> subprocess.Popen[str]:
    argv = [sys.executable, "-c", CHOOSE, str(ws.root), bundle.path, *map(str, wheels)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)  # type: ignore[call-overload]


def test_two_processes_at_once_build_one_environment_after_a_killed_build(
    ws: Workspace, tmp_path: Path, wheels: tuple[Path, Path]
) -> None:
    bundle = make_bundle(tmp_path / "bundle", "shipyard-test-extra\n")
    spec = read_env_spec(Path(bundle.path) / "requirements.txt", packages=offline(wheels))
    env_dir = EnvCache(ws, runtime=SERVING).path(spec)
    # A build killed with -9 after installing, before its marker: the folder looks almost ready.
    pause = tmp_path / "paused"
    env = os.environ | {"SHIPYARD_TEST_PAUSE_AT": "venv:installed", "SHIPYARD_TEST_PAUSE_FILE": str(pause)}
    killed = choose(ws, bundle, wheels, env=env)
    deadline = time.monotonic() + 120
    while not pause.exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pause.exists(), killed.communicate()
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    assert (env_dir / "bin" / "python").exists() and not (env_dir / MARKER).exists()

    # Two deployments starting at once: one builds (the half-built folder is never used), the
    # other waits for the host lock and reuses what the first built.
    first, second = choose(ws, bundle, wheels), choose(ws, bundle, wheels)
    results = []
    for proc in (first, second):
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    assert sorted(r["action"] for r in results) == ["built", "reused"]
    assert {r["environment"] for r in results} == {env_dir.name}
    assert (env_dir / MARKER).is_file()
    assert [p.name for p in (ws.root / "envs").iterdir() if p.is_dir()] == [env_dir.name]


def test_a_requirement_that_cannot_be_installed_fails_in_one_line(
    ws: Workspace, tmp_path: Path, wheels: tuple[Path, Path]
) -> None:
    requirements = "shipyard-test-extra==1.0\nshipyard-test-no-such-package==2.0\n"
    bundle = make_bundle(tmp_path / "bundle", requirements)
    config = DeploymentConfig(name="broken", serving={"auth": False}, packages=offline(wheels))
    with pytest.raises(DeploymentError) as info:
        start_deployment(ws, bundle, config)
    message = str(info.value)
    assert isinstance(info.value, ShipyardError) and "\n" not in message  # the CLI prints it as one line
    assert "shipyard-test-no-such-package" in message and "cannot be installed" in message
    assert get_deployment_state(ws, "broken") == "failed"


def get_deployment_state(ws: Workspace, endpoint: str) -> str:
    with ws.store.session() as s:
        (row,) = s.query(DeploymentRow).filter_by(endpoint=endpoint)
        return str(row.state)


def test_an_index_token_stays_off_the_command_line_and_out_of_the_log(
    ws: Workspace, tmp_path: Path, wheels: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "idx-token-5e8b0c7d1f3a"
    # Nothing listens on port 9 (discard): the index fails at once, after the installer got the URL.
    monkeypatch.setenv("SHIPYARD_TEST_INDEX", f"http://ci:{token}@127.0.0.1:9/simple")
    bundle = make_bundle(tmp_path / "bundle", "shipyard-test-not-on-any-index==1.0\n")
    packages = PackageSources(index_url="env:SHIPYARD_TEST_INDEX", find_links=[str(wheels[0])])
    with pytest.raises(DeploymentError) as info:
        serving_python(ws, Path(bundle.path), packages, installer="uv" if uv_path() else "pip")
    assert token not in str(info.value)
    (log,) = (ws.root / "envs").glob("*.build.log")
    text = log.read_text()
    commands = [line for line in text.splitlines() if line.startswith("$")]
    assert token not in text and commands and not any("127.0.0.1:9" in line for line in commands)
