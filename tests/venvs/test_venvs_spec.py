"""Environment specs: requirements.txt and Azure ML conda files resolve to one normalized list,
and its hash ignores order and formatting but follows pins and the Python."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.errors import ConfigError
from shipyard.venvs.spec import normalize_requirement, python_tag, read_env_spec

CONDA = """\
name: project_environment
dependencies:
  - python=3.8.10
  - conda-forge::scikit-learn=1.4.2=py38_0
  - numpy>=1.24
  - pip=23.0
  - pip:
      - azureml-defaults==1.38.0
      - Six==1.16.0
      - inference-schema[numpy-support]
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_requirements_are_normalized_and_sorted(tmp_path: Path) -> None:
    spec = read_env_spec(
        write(
            tmp_path / "requirements.txt",
            "# training\nScikit_Learn >= 1.4 , <2\n\nsix==1.16.0  # pinned\nRequests[Socks,security]\n"
            "six==1.16.0\ntomli; python_version < '3.11'\n",
        )
    )
    assert spec.requirements == (
        "requests[security,socks]",
        "scikit-learn<2,>=1.4",
        "six==1.16.0",
        'tomli; python_version < "3.11"',
    )
    assert spec.python == python_tag()
    assert spec.names() == {"requests", "scikit-learn", "six", "tomli"}


def test_same_spec_in_another_order_and_format_has_the_same_hash(tmp_path: Path) -> None:
    a = read_env_spec(write(tmp_path / "a.txt", "six==1.16.0\nnumpy>=1.24,<3\n"))
    b = read_env_spec(write(tmp_path / "b.txt", "# same\nNumPy <3, >=1.24\n\nSIX == 1.16.0\n"))
    assert a.hash == b.hash
    assert len(a.hash) == 64 and a.short_hash == a.hash[:12]


def test_a_changed_pin_or_python_changes_the_hash(tmp_path: Path) -> None:
    base = read_env_spec(write(tmp_path / "a.txt", "six==1.16.0\n"))
    pinned = read_env_spec(write(tmp_path / "b.txt", "six==1.17.0\n"))
    other_python = read_env_spec(tmp_path / "a.txt", python=python_tag((3, 12)))
    assert len({base.hash, pinned.hash, other_python.hash}) == 3


def test_conda_file_gives_conda_and_pip_packages(tmp_path: Path) -> None:
    spec = read_env_spec(write(tmp_path / "conda_dependencies.yml", CONDA))
    assert spec.requirements == (
        "inference-schema[numpy-support]",
        "numpy>=1.24",
        "scikit-learn==1.4.2",
        "six==1.16.0",
    )
    notes = "\n".join(spec.notes)
    assert "azureml-defaults" in notes
    assert f"python 3.8.10 is not used: the environment runs {python_tag()}" in notes


def test_conda_file_and_requirements_with_the_same_packages_share_a_hash(tmp_path: Path) -> None:
    conda = read_env_spec(
        write(tmp_path / "env.yml", "dependencies:\n  - six=1.16.0\n  - pip:\n    - numpy\n")
    )
    pip = read_env_spec(write(tmp_path / "requirements.txt", "numpy\nsix==1.16.0\n"))
    assert conda.hash == pip.hash


def test_no_spec_is_the_empty_spec() -> None:
    spec = read_env_spec(None)
    assert spec.requirements == () and spec.source is None
    assert spec.hash == read_env_spec(None).hash


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-r other.txt\n", "pip options are not supported"),
        ("--index-url https://user:pw@example.invalid/simple\n", "pip options are not supported"),
        ("six==\n", "is not a pip requirement"),
    ],
)
def test_bad_lines_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "requirements.txt", "numpy\n" + text)
    with pytest.raises(ConfigError, match=message) as info:
        read_env_spec(path)
    assert f"{path}:2" in str(info.value)


def test_bad_conda_entry_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"dependencies\[0\]"):
        read_env_spec(write(tmp_path / "env.yml", "dependencies:\n  - {conda: x}\n"))
    with pytest.raises(ConfigError, match="does not exist"):
        read_env_spec(tmp_path / "missing.txt")


def test_normalize_keeps_urls() -> None:
    line = "Pkg @ https://example.invalid/pkg-1.0-py3-none-any.whl"
    assert normalize_requirement(line, "x") == "pkg @ https://example.invalid/pkg-1.0-py3-none-any.whl"
