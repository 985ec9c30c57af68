"""The one name rule (names.py) and safe_join: examples the audit used, then properties that
hypothesis checks on generated strings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shipyard.errors import UsageError
from shipyard.names import RULES, check_name, is_valid, safe_join

# Names the example project, the docs and the tests use: they must stay valid.
VALID = [
    ("model name", "diabetes-ridge"),
    ("model name", "Diabetes_Model.v2"),
    ("alias", "production"),
    ("alias", "staging"),
    ("alias", "champion_2"),
    ("endpoint name", "dev"),
    ("endpoint name", "diabetes-prod"),
    ("environment name", "qa"),
    ("compute name", "gpu-vm"),
    ("slot name", "blue"),
    ("Kubernetes slot name", "green"),
    ("image reference", "localhost:5000/shipyard/diabetes-ridge:3"),
    ("image reference", "sha256:0123abcd"),
    ("artifact name", "model"),
]
HOSTILE = ["../x", "/abs/x", "a;rm -rf ~", "$(id)", "`id`", "x" * 5000, "a\nb", "dev\n", "a b", "", ".",
           "..", "x; } server { listen 1;", "a\x00b", "ｄｅｖ", "dеv", "a'b", 'a"b']  # fmt: skip


@pytest.mark.parametrize(("kind", "value"), VALID)
def test_names_in_use_are_valid(kind, value):
    assert check_name(kind, value) == value


@pytest.mark.parametrize("kind", sorted(RULES))
@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_names_are_refused_in_one_short_line(kind, value):
    with pytest.raises(UsageError) as err:
        check_name(kind, value, "--x")
    message = str(err.value)
    assert "\n" not in message and "\x00" not in message
    assert len(message) < 250
    assert message.startswith("--x ") and f": not a valid {kind}: " in message


@pytest.mark.parametrize("alias", ["latest", "LATEST", "v1", "V12"])
def test_aliases_reserved_by_mlflow_are_refused(alias):
    with pytest.raises(UsageError, match="reserved by MLflow"):
        check_name("alias", alias)


def test_image_references_with_dot_segments_are_refused():
    for ref in ["a/../b", "a/./b", "a//b", "a/..:1"]:
        assert not is_valid("image reference", ref)


def test_safe_join_stays_under_the_root(tmp_path):
    assert safe_join(tmp_path, "deployments", "dev") == tmp_path / "deployments" / "dev"
    for parts in [("../x",), ("a", "../../x"), ("/etc/passwd",), ("",), (".",), ("a\x00b",)]:
        with pytest.raises(UsageError):
            safe_join(tmp_path, *parts)


def test_safe_join_refuses_a_symlink_that_leads_out(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    os.symlink(outside, root / "link")
    with pytest.raises(UsageError, match="leads outside"):
        safe_join(root, "link", "keys.json")


# -- properties ----------------------------------------------------------------------------------
names = st.text(alphabet=st.characters(codec="utf-8"), min_size=0, max_size=200)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(kind=st.sampled_from(sorted(RULES)), value=names)
def test_any_accepted_name_joined_under_a_root_stays_under_it(kind, value):
    if not is_valid(kind, value):
        return
    root = Path("/srv/workspace")
    assert root in (root / value).resolve().parents
    assert safe_join(root, "deployments", value).parent == root / "deployments"


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    kind=st.sampled_from(sorted(RULES)),
    head=names,
    bad=st.sampled_from(["/", "/../", "\x00", "\n", "\r", "../", " "]),
    tail=names,
)
def test_names_with_separators_dot_segments_nul_or_newlines_are_refused(kind, head, bad, tail):
    if kind == "image reference" and bad == "/":
        bad = "/../"  # references have '/' between their parts, never a '..' segment
    assert not is_valid(kind, head + bad + tail)


@settings(max_examples=50, deadline=None, derandomize=True)
@given(kind=st.sampled_from(sorted(RULES)), extra=st.integers(min_value=0, max_value=5000))
def test_names_longer_than_the_maximum_are_refused(kind, extra):
    assert not is_valid(kind, "a" * (256 + extra))
