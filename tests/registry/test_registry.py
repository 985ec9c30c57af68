"""Registry on a real MLflow SQLite store: versions, aliases and their recorded history."""

import pytest

from shipyard.config.models import WorkspaceSettings
from shipyard.errors import NotFoundError, ShipyardError
from shipyard.registry import alias_history, alias_version, parse_model_ref, register, resolve, set_alias
from shipyard.registry.models import champion_for_cache
from shipyard.workspace import Workspace


@pytest.fixture()
def ws(tmp_path):
    return Workspace.get_or_create(WorkspaceSettings(root=str(tmp_path / "ws")))


def _run(ws: Workspace) -> str:
    exp = ws.experiment_id("unit")
    run = ws.mlflow.create_run(exp)
    ws.mlflow.set_terminated(run.info.run_id)
    return run.info.run_id


def test_parse_model_ref():
    assert parse_model_ref("m").name == "m"
    assert parse_model_ref("m:3").version == "3"
    assert parse_model_ref("m@production").alias == "production"
    with pytest.raises(ShipyardError):
        parse_model_ref("m:abc")


def test_versions_increment_and_a_run_registers_once(ws):
    r1, r2 = _run(ws), _run(ws)
    v1, created = register(ws, "m", r1, f"runs:/{r1}/model", {"k": "v"})
    v2, _ = register(ws, "m", r2, f"runs:/{r2}/model")
    assert (v1.version, v2.version, created) == ("1", "2", True)
    assert v1.tags["k"] == "v"
    with pytest.raises(ShipyardError, match="already registered as m version 1"):
        register(ws, "m", r1, f"runs:/{r1}/model")
    again, created = register(ws, "m", r1, f"runs:/{r1}/model", reuse_existing=True)
    assert (again.version, created) == ("1", False)


def test_alias_moves_are_recorded_with_from_to_who_why(ws, monkeypatch):
    monkeypatch.setenv("SHIPYARD_ACTOR", "alice")
    r1, r2 = _run(ws), _run(ws)
    register(ws, "m", r1, f"runs:/{r1}/model")
    register(ws, "m", r2, f"runs:/{r2}/model")
    assert set_alias(ws, "m", "production", "1", reason="first")["moved"]
    assert set_alias(ws, "m", "production", "2", reason="better")["from"] == "1"
    assert not set_alias(ws, "m", "production", "2", reason="again")["moved"]
    history = alias_history(ws, "m", "production")
    assert [(h["from"], h["to"], h["who"], h["why"]) for h in history] == [
        (None, "1", "alice", "first"),
        ("1", "2", "alice", "better"),
    ]
    assert alias_version(ws, "m", "production").version == "2"
    assert resolve(ws, "m@production").run_id == r2
    # The cache view: a candidate that is now production compares with what production held before.
    assert champion_for_cache(ws, "m", "production", candidate_version="2") == "1"
    assert champion_for_cache(ws, "m", "production", candidate_version="1") == "2"


def test_unknown_names_list_what_exists(ws):
    r = _run(ws)
    register(ws, "known", r, f"runs:/{r}/model")
    with pytest.raises(NotFoundError, match="known"):
        resolve(ws, "nope")
    with pytest.raises(NotFoundError, match="versions: 1"):
        resolve(ws, "known:7")
    with pytest.raises(NotFoundError, match="no alias 'prod'"):
        resolve(ws, "known@prod")
    with pytest.raises(NotFoundError):
        set_alias(ws, "known", "production", "9", reason="x")


def test_alias_delete_is_recorded_and_refused_for_a_served_production(ws, monkeypatch, capsys):
    from shipyard.cli.main import main
    from shipyard.registry import delete_alias
    from shipyard.store import utcnow
    from shipyard.store.models import DeploymentRow

    monkeypatch.setenv("SHIPYARD_ACTOR", "bob")
    r1 = _run(ws)
    register(ws, "m", r1, f"runs:/{r1}/model")
    set_alias(ws, "m", "staging", "1", reason="registered")
    set_alias(ws, "m", "production", "1", reason="promoted")
    now = utcnow()
    with ws.store.session() as s:
        s.add(
            DeploymentRow(
                id="d" * 32, endpoint="prod", target="local", model_name="m", model_version="1",
                bundle_id="b" * 32, state="active", smoke_detail={}, created_at=now, updated_at=now,
            )
        )  # fmt: skip

    moved = delete_alias(ws, "m", "staging", reason="staging retired")
    assert moved == {"model": "m", "alias": "staging", "from": "1", "to": None, "moved": True}
    assert ws.mlflow.get_registered_model("m").aliases == {"production": 1}  # MLflow agrees
    with pytest.raises(NotFoundError, match="m@staging is not set"):
        delete_alias(ws, "m", "staging", reason="again")

    # production is served by endpoint prod: refused in one line, nothing changed
    code = main(["models", "alias", "delete", "m", "production", "--workspace", str(ws.root)])
    err = capsys.readouterr().err
    assert code == 1 and "served by endpoint prod" in err and "--force" in err and "Traceback" not in err
    assert alias_version(ws, "m", "production").version == "1"

    code = main(["models", "alias", "delete", "m", "production", "--force", "--reason", "bad model",
                 "--workspace", str(ws.root), "--output", "json"])  # fmt: skip
    assert code == 0 and '"from": "1"' in capsys.readouterr().out
    assert ws.mlflow.get_registered_model("m").aliases == {}
    assert champion_for_cache(ws, "m", "production", candidate_version=None) is None  # gate: no production
    assert [(h["alias"], h["from"], h["to"], h["who"], h["why"]) for h in alias_history(ws, "m")][2:] == [
        ("staging", "1", None, "bob", "staging retired"),
        ("production", "1", None, "bob", "bad model"),
    ]
