"""A scoring image's wheels come from the deployment's package sources (`packages:`): pip download
runs with them as PIP_* variables (never on its command line), offline here from a find-links
folder with no index; the wheel cache is keyed by the sources as written, and a token resolved
from a reference is masked in the error pip's failure gives."""

from __future__ import annotations

from pathlib import Path

import pytest
from wheels_support import repack, write_wheel

from shipyard.config.packages import PackageSources
from shipyard.errors import ShipyardError
from shipyard.images.wheels import dependency_wheels


def _links(tmp_path: Path) -> Path:
    folder = tmp_path / "links"
    write_wheel(folder, "shipyard-test-extra", "1.0", {"shipyard_test_extra.py": "VALUE = 42\n"})
    repack("pip", folder)  # the image build runs pip from its wheel, so pip's own comes too
    return folder


def test_wheels_come_from_the_deployments_find_links_offline(tmp_path: Path) -> None:
    links = _links(tmp_path)
    sources = PackageSources(find_links=[str(links)], no_index=True)
    wheels = dependency_wheels(tmp_path / "cache", ["shipyard-test-extra==1.0"], packages=sources)
    names = sorted(p.name for p in wheels.path.glob("*.whl"))
    assert names[0].startswith("pip-") and "shipyard_test_extra-1.0-py3-none-any.whl" in names
    assert "shipyard-test-extra==1.0" in wheels.lock
    # Without the sources the same requirements are another cache entry (and here, no index: fails).
    with pytest.raises(ShipyardError, match="downloading wheels"):
        dependency_wheels(
            tmp_path / "cache", ["shipyard-test-extra==1.0"], packages=PackageSources(no_index=True)
        )
    assert len(list((tmp_path / "cache" / "deps").iterdir())) == 1  # the failed one left nothing


def test_an_index_token_is_masked_in_pips_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    token = "idx-token-5f4e3d2c1b0a"
    monkeypatch.setenv("BENCH_INDEX", f"http://user:{token}@127.0.0.1:9/simple")
    sources = PackageSources(index_url="env:BENCH_INDEX")
    with pytest.raises(ShipyardError) as failure:
        dependency_wheels(tmp_path / "cache", ["shipyard-test-nothing==1.0"], packages=sources)
    assert token not in str(failure.value)
