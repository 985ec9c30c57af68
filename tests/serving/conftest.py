"""Fixtures of the V2 tests (test_v2_*.py): a real bundle, its servable and model, a client of the V2 app.

Modules that define a fixture of the same name (test_serving.py, test_pyfunc.py) use their own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from bundles import make_bundle
from sklearn.linear_model import Ridge
from starlette.testclient import TestClient
from v2_support import make_app

from shipyard.serving.azureml.script import ScoringScript


@pytest.fixture
def bundle(tmp_path: Path) -> tuple[Path, Ridge]:
    return make_bundle(tmp_path / "bundle")


@pytest.fixture
def servable(bundle: tuple[Path, Ridge]) -> ScoringScript:
    return ScoringScript.load(bundle[0])


@pytest.fixture
def model(bundle: tuple[Path, Ridge]) -> Ridge:
    return bundle[1]


@pytest.fixture
def client(servable: ScoringScript) -> Iterator[TestClient]:
    with TestClient(make_app(servable)) as test_client:
        yield test_client
