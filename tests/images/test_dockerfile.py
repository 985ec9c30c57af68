"""The generated Dockerfile, requirement pinning, builder choice and secret references."""

from __future__ import annotations

import json
from importlib import metadata

import pytest

from shipyard.errors import ConfigError, ShipyardError
from shipyard.images.build import image_tag
from shipyard.images.builders import get_builder
from shipyard.images.credentials import resolve_secret
from shipyard.images.dockerfile import DockerfileSpec, labels, render_dockerfile
from shipyard.images.wheels import SERVING_REQUIREMENTS, resolve_requirements

SPEC = DockerfileSpec(
    base="localhost/shipyard-base:bookworm",
    runtime_wheel="shipyard_mlops-0.1.0-py3-none-any.whl",
    pip_wheel="pip-26.3-py3-none-any.whl",
    model_name="diabetes-ridge",
    model_version="7",
    bundle_hash="ab" * 32,
    git_commit="0123abc",
    shipyard_version="0.1.0",
)


def _instructions(text: str) -> list[str]:
    """Instruction lines (continuations joined), without comments."""
    joined = text.replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.startswith("#")]


def _index(lines: list[str], prefix: str) -> int:
    return next(i for i, line in enumerate(lines) if line.startswith(prefix))


def test_layers_put_dependencies_before_the_bundle_and_labels_last() -> None:
    lines = _instructions(render_dockerfile(SPEC))
    assert lines[0] == "FROM localhost/shipyard-base:bookworm"
    venv = _index(lines, "RUN python3 -m venv --without-pip /opt/venv")
    deps = _index(lines, "RUN --mount=type=bind,source=wheels,target=/wheels")
    runtime = _index(lines, "COPY runtime.lock")
    bundle = _index(lines, "COPY bundle/ /app/bundle/")
    label = _index(lines, "LABEL ")
    assert venv < _index(lines, "COPY requirements.lock") < deps < runtime < bundle < label
    assert "--no-index" in lines[deps] and "--find-links /wheels" in lines[deps]
    assert "/opt/venv/bin/python /wheels/pip-26.3-py3-none-any.whl/pip install" in lines[deps]
    assert "--no-deps /runtime/shipyard_mlops-0.1.0-py3-none-any.whl" in lines[runtime + 1]
    # Nothing model-specific may come before the dependency layer, or every model change rebuilds it.
    assert not any("diabetes-ridge" in line or "ab" * 6 in line for line in lines[:bundle])


def test_user_port_healthcheck_and_command() -> None:
    lines = _instructions(render_dockerfile(SPEC))
    assert "USER 10001:10001" in lines
    assert "EXPOSE 8080" in lines
    health = lines[_index(lines, "HEALTHCHECK")]
    test = json.loads(health.split(" CMD ", 1)[1])
    assert test[:2] == ["python", "-c"] and "urllib.request.urlopen('http://127.0.0.1:8080/'" in test[2]
    assert "curl" not in health
    cmd = json.loads(lines[-1].removeprefix("CMD "))
    assert cmd == [
        "python",
        "-m",
        "shipyard.serving",
        "--bundle",
        "/app/bundle",
        "--host",
        "0.0.0.0",
        "--port",
        "8080",
    ]


def test_labels_name_model_commit_and_bundle() -> None:
    found = labels(SPEC)
    assert found["ai.shipyard.model.name"] == "diabetes-ridge"
    assert found["ai.shipyard.model.version"] == "7"
    assert found["ai.shipyard.git.commit"] == "0123abc"
    assert found["ai.shipyard.bundle.hash"] == "ab" * 32
    assert found["org.opencontainers.image.revision"] == "0123abc"
    assert found["org.opencontainers.image.base.name"] == SPEC.base
    text = render_dockerfile(SPEC)
    assert '"ai.shipyard.bundle.hash"="' + "ab" * 32 + '"' in text
    assert render_dockerfile(SPEC) == text  # deterministic


def test_requirements_pin_to_installed_versions_and_add_the_serving_runtime() -> None:
    lines = resolve_requirements("scikit-learn\n# comment\nnumpy>=1.20  # keep\n\n")
    sklearn = metadata.version("scikit-learn")
    assert lines[0] == f"scikit-learn=={sklearn}"
    assert lines[1] == "numpy>=1.20"  # an explicit specifier is the user's choice
    names = [line.split("==")[0].split(">=")[0].lower() for line in lines]
    assert names.count("numpy") == 1  # the bundle's entry wins over the runtime's
    for name in SERVING_REQUIREMENTS:
        assert name in names
    assert "mlflow" not in names and "sqlalchemy" not in names  # control plane stays out


def test_pip_options_in_requirements_are_rejected() -> None:
    with pytest.raises(ShipyardError, match="--extra-index-url"):
        resolve_requirements("--extra-index-url http://x\nnumpy\n")


def test_image_tag_is_a_valid_reference() -> None:
    assert image_tag("Diabetes Ridge!", "3", "f" * 64) == "shipyard/diabetes-ridge:3-ffffffffffff"


def test_unknown_builder_is_a_config_error() -> None:
    with pytest.raises(
        ConfigError, match="image.builder 'kaniko' is not supported: use auto, podman, docker, buildah"
    ):
        get_builder("kaniko")


def test_secret_references(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("SHIPYARD_TEST_TOKEN", "s3cret")
    assert resolve_secret("env:SHIPYARD_TEST_TOKEN", "image.registry_password") == "s3cret"
    token = tmp_path / "token"
    token.write_text("from-file\n")
    token.chmod(0o600)
    assert resolve_secret(f"file:{token}", "x") == "from-file"
    assert resolve_secret(None, "x") is None
    monkeypatch.delenv("SHIPYARD_TEST_TOKEN")
    with pytest.raises(
        ConfigError, match="image.registry_password: environment variable SHIPYARD_TEST_TOKEN"
    ):
        resolve_secret("env:SHIPYARD_TEST_TOKEN", "image.registry_password")
    with pytest.raises(ConfigError, match="is not a reference"):
        resolve_secret("hunter2", "x")
