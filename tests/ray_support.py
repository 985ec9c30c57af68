"""One real local Ray cluster for the tests that need it (2 CPUs), started the way users start
one: `shipyard compute create NAME --type ray` through the Python API, in its own workspace.

tests/project_fixtures.py imports the fixture, so every module shares one cluster (a fixture
imported into several modules would be one session fixture per module: several clusters). It
is stopped (only its own processes) when the session ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


@dataclass
class RayCluster:
    name: str
    ws: Any
    gcs_address: str
    dashboard_url: str


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    pytest.importorskip("ray", reason="Ray is not installed: pip install 'shipyard[ray]' (make test does)")
    from deploy_support import make_ws

    from shipyard.compute import clusters

    ws = make_ws(Path(tmp_path_factory.mktemp("ray-ws")) / ".shipyard")
    info = clusters.create(ws, "test-ray", type_="ray", num_cpus=2, idle_minutes=60)
    assert info.state == "running", info
    try:
        yield RayCluster("test-ray", ws, info.gcs_address or "", info.address or "")
    finally:
        clusters.stop(ws, "test-ray")
