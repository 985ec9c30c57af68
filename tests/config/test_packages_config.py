"""`packages:` (indexes and find-links of built environments): credentials never in clear, the
deployment's default, environments' overrides, folders anchored at the project, and the spec
hash naming references, not their values."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.config.loader import load_project
from shipyard.config.overlay import env_deployment
from shipyard.config.packages import PackageSources
from shipyard.errors import ConfigError
from shipyard.venvs.spec import read_env_spec

BASE = "name: demo\nregistry:\n  model_name: demo-model\ndeployment:\n  name: web\n"
TOKEN = "s3cr3t-index-token-42"


def load(tmp_path: Path, text: str):
    (tmp_path / "shipyard.yaml").write_text(text)
    return load_project(tmp_path / "shipyard.yaml")


def test_the_deployment_takes_the_project_sources_with_folders_anchored(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        BASE + "packages:\n  index_url: env:PRIVATE_INDEX_URL\n"
        "  extra_index_urls: [https://download.pytorch.org/whl/cpu]\n"
        "  find_links: [wheels, /opt/wheels, https://example.org/links.html]\n",
    )
    assert config.packages is not None and config.deployment is not None
    assert config.packages.find_links == [
        str(tmp_path.resolve() / "wheels"),
        "/opt/wheels",
        "https://example.org/links.html",
    ]
    assert config.deployment.packages == config.packages
    # Recorded with the deployment (references only), so a restart builds the same environment.
    assert config.deployment.model_dump(mode="json", exclude_unset=True)["packages"]["index_url"] == (
        "env:PRIVATE_INDEX_URL"
    )


def test_an_environment_overrides_the_sources_of_its_deployment(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        BASE + "packages:\n  find_links: [wheels]\n"
        "environments:\n  dev: {}\n  prod:\n    promotes_from: dev\n"
        "    deployment:\n      packages: {no_index: true, find_links: [prod-wheels]}\n",
    )
    dev, prod = env_deployment(config, "dev"), env_deployment(config, "prod")
    assert dev.packages is not None and dev.packages.find_links == [str(tmp_path.resolve() / "wheels")]
    assert prod.packages is not None and prod.packages.no_index
    assert prod.packages.find_links == [str(tmp_path.resolve() / "prod-wheels")]


@pytest.mark.parametrize(
    "entry",
    [
        f"index_url: https://user:{TOKEN}@pypi.example.org/simple",
        f"extra_index_urls: ['https://{TOKEN}@pypi.example.org/simple']",
        f"find_links: ['https://user:{TOKEN}@files.example.org/']",
        f"index_url: {TOKEN}",
        "index_url: ftp://pypi.example.org/simple",
    ],
)
def test_credentials_in_clear_are_refused_without_echo(tmp_path: Path, entry: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, BASE + f"packages:\n  {entry}\n")
    message = str(info.value)
    assert "packages." in message and TOKEN not in message and "value is not shown" in message


def test_the_spec_hash_names_the_reference_not_its_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec_file = tmp_path / "requirements.txt"
    spec_file.write_text("six\n")
    plain = read_env_spec(spec_file)
    assert read_env_spec(spec_file, packages=PackageSources()).hash == plain.hash  # nothing configured
    private = PackageSources(index_url="env:PRIVATE_INDEX_URL")
    monkeypatch.setenv("PRIVATE_INDEX_URL", f"https://user:{TOKEN}@one.example.org/simple")
    first = read_env_spec(spec_file, packages=private).hash
    monkeypatch.setenv("PRIVATE_INDEX_URL", f"https://user:{TOKEN}@two.example.org/simple")
    assert read_env_spec(spec_file, packages=private).hash == first != plain.hash
    other = PackageSources(index_url="env:OTHER_INDEX_URL")
    assert read_env_spec(spec_file, packages=other).hash != first
