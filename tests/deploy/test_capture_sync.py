"""Data capture files into a shared workspace's artifact store (a real SeaweedFS server,
tests/s3_support.py), written by the real DataCapture class and by a real scoring server:
complete files are uploaded to capture/<endpoint>/<host>/<file> with a verified sidecar, marked,
never uploaded twice; a file that may still be written is skipped; `endpoints delete` uploads
the rest; a file:// workspace is a no-op. The bucket is read back with a plain boto3 client."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from bundles import SEED
from deploy_support import bundle_at, config, make_ws
from s3_support import s3_bucket, s3_server  # noqa: F401

from shipyard.config.loader import resolve_workspace_settings
from shipyard.deploy.capture_sync import MANIFEST, SIDECAR, VERIFY_BYTES, list_capture, sync_capture
from shipyard.deploy.endpoints import delete_endpoint, start_deployment
from shipyard.serving.capture.collector import DataCapture
from shipyard.workspace import Workspace

pytestmark = pytest.mark.integration

# A server worker in miniature: the real DataCapture in a process of its own, which then exits.
CHILD = """
import sys
from shipyard.serving.capture.collector import DataCapture
cap = DataCapture(sys.argv[1], max_file_mb=float(sys.argv[3]))
for i in range(int(sys.argv[2])):
    cap.capture(f"child-{i}", {"data": [[i, i + 0.5, 7.25]]}, {"result": [i * 2.0]})
assert cap.close(timeout=30)
"""
SMALL_MB = 2 / 1024  # 2 KiB files: ~20 records each, so that they rotate


def s3_ws(root: Path, artifact_uri: str) -> Workspace:
    return Workspace.get_or_create(
        resolve_workspace_settings(None, cli={"root": str(root), "artifact_uri": artifact_uri})
    )


def write_in_child(folder: Path, records: int, max_mb: float = SMALL_MB) -> None:
    subprocess.run([sys.executable, "-c", CHILD, str(folder), str(records), str(max_mb)], check=True)


def capture_here(folder: Path, records: int, prefix: str = "here", max_mb: float = SMALL_MB) -> DataCapture:
    """A DataCapture of this (live) process holding `records` records on disk, left open."""
    cap = DataCapture(folder, max_file_mb=max_mb)
    for i in range(records):
        cap.capture(f"{prefix}-{i}", {"data": [[i, -1.5]]}, {"result": [float(i)]})
    deadline = time.monotonic() + 30
    while cap.captured < records and time.monotonic() < deadline:
        time.sleep(0.01)
    assert cap.captured == records
    return cap


def ids_in(data: bytes) -> list[str]:
    return [json.loads(line)["request_id"] for line in data.decode().splitlines()]


def objects(client, bucket: str, prefix: str) -> dict[str, str]:
    """key → ETag below `prefix`."""
    found = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return {o["Key"]: o["ETag"] for o in found}


def body(client, bucket: str, key: str) -> bytes:
    return client.get_object(Bucket=bucket, Key=key)["Body"].read()


@pytest.fixture
def shared(tmp_path, s3_bucket, s3_server, monkeypatch):  # noqa: F811
    """(workspace on s3://BUCKET/team, its capture folder for endpoint dev, bucket, boto3 client)."""
    monkeypatch.setenv("SHIPYARD_HOST_ID", "machine-a")
    ws = s3_ws(tmp_path / "ws", f"{s3_bucket}/team")
    yield ws, ws.root / "capture" / "dev", s3_bucket.removeprefix("s3://"), s3_server.client()
    ws.store.dispose()


def test_complete_files_are_uploaded_verified_and_marked_once(shared):
    ws, folder, bucket, client = shared
    write_in_child(folder, 60)  # its process is gone: every file of it is complete
    child_files = sorted(folder.glob("capture-*.jsonl"))
    assert len(child_files) >= 3
    cap = capture_here(folder, 45)  # this process is alive: its newest file may still grow
    try:
        here = sorted(set(folder.glob("capture-*.jsonl")) - set(child_files))
        assert len(here) >= 2
        *here_done, here_open = here
        done = child_files + here_done

        first = sync_capture(ws, "dev")
        assert (first["uploaded"], first["skipped_open"], first["already"]) == (len(done), 1, 0)
        assert first["bytes"] == sum(p.stat().st_size for p in done)
        prefix = "team/capture/dev/machine-a/"
        stored = objects(client, bucket, "team/")
        assert set(stored) == {prefix + p.name for p in done} | {prefix + p.name + SIDECAR for p in done}
        for path in done:
            data = body(client, bucket, prefix + path.name)
            assert data == path.read_bytes()
            meta = json.loads(body(client, bucket, prefix + path.name + SIDECAR))
            assert meta["sha256"] == hashlib.sha256(data).hexdigest() and meta["size"] == len(data)
            assert (meta["host"], meta["endpoint"], meta["file"]) == ("machine-a", "dev", path.name)
        uploaded_ids = [i for p in done for i in ids_in(body(client, bucket, prefix + p.name))]
        open_ids = ids_in(here_open.read_bytes())
        assert sorted(uploaded_ids + open_ids) == sorted(
            [f"child-{i}" for i in range(60)] + [f"here-{i}" for i in range(45)]
        )
        assert first["files"] == [f"s3://{bucket}/{prefix}{p.name}" for p in done]
        # Marked locally, the files themselves untouched.
        marks = json.loads((folder / MANIFEST).read_text())["files"]
        assert sorted(marks) == sorted(p.name for p in done)
        assert all(p.exists() for p in here)

        again = sync_capture(ws, "dev")
        assert (again["uploaded"], again["already"], again["skipped_open"]) == (0, len(done), 1)
        assert objects(client, bucket, "team/") == stored  # not one object written again

        # A file that changed after its upload (appended to by hand) goes up again.
        with open(child_files[0], "ab") as out:
            out.write(b'{"request_id": "appended"}\n')
        changed = sync_capture(ws, "dev")
        assert (changed["uploaded"], changed["already"]) == (1, len(done) - 1)
        assert body(client, bucket, prefix + child_files[0].name) == child_files[0].read_bytes()

        # include_open: the newest file too (its writer is idle here).
        forced = sync_capture(ws, "dev", include_open=True)
        assert (forced["uploaded"], forced["skipped_open"]) == (1, 0)
        assert body(client, bucket, prefix + here_open.name) == here_open.read_bytes()
    finally:
        cap.close()


def test_a_quiet_file_of_a_live_pid_is_complete_once_no_server_runs(shared):
    ws, folder, bucket, client = shared
    cap = capture_here(folder, 5, max_mb=64)
    cap.close()
    (only,) = folder.glob("capture-*.jsonl")
    assert sync_capture(ws, "dev")["skipped_open"] == 1  # this pid, its newest file, just written
    old = time.time() - 3600
    os.utime(only, (old, old))
    result = sync_capture(ws, "dev")  # an hour quiet, and no deployment of dev is live here
    assert (result["uploaded"], result["skipped_open"]) == (1, 0)
    assert body(client, bucket, f"team/capture/dev/machine-a/{only.name}") == only.read_bytes()


def test_a_big_file_is_verified_by_its_stored_size(shared):
    ws, folder, bucket, client = shared
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    pid = int(gone.stdout)  # a process that has exited
    folder.mkdir(parents=True)
    big = folder / f"capture-20240501T120000.000000Z-{pid}.jsonl"
    line = json.dumps({"request_id": "x", "inputs": {"data": [[1.5] * 50]}, "outputs": [3.0]}) + "\n"
    big.write_text(line * (5 * 1024 * 1024 // len(line) + 1))
    assert big.stat().st_size > VERIFY_BYTES  # past the read-back limit: a HEAD checks the size
    result = sync_capture(ws, "dev")
    assert (result["uploaded"], result["bytes"]) == (1, big.stat().st_size)
    key = f"team/capture/dev/machine-a/{big.name}"
    stored = body(client, bucket, key)
    assert hashlib.sha256(stored).digest() == hashlib.sha256(big.read_bytes()).digest()
    meta = json.loads(body(client, bucket, key + SIDECAR))
    assert (meta["size"], meta["pid"]) == (big.stat().st_size, pid)
    assert meta["opened_at"] == "2024-05-01T12:00:00+00:00"


def test_cli_sync_and_list_show_every_hosts_files(shared, cli, tmp_path, monkeypatch):
    ws, folder, bucket, _ = shared
    monkeypatch.setenv("SHIPYARD_ARTIFACT_URI", f"s3://{bucket}/team")
    write_in_child(folder, 10, max_mb=64)
    other = tmp_path / "machine-b"  # a second machine: its own root, the same bucket
    write_in_child(other / "capture" / "dev", 7, max_mb=64)
    write_in_child(other / "capture" / "prod", 3, max_mb=64)

    a = cli("endpoints", "capture", "sync", "dev", "-o", "json", "--workspace", ws.root)
    assert a.code == 0, a.err
    assert (a.json()["uploaded"], a.json()["host"]) == (1, "machine-a")
    monkeypatch.setenv("SHIPYARD_HOST_ID", "machine-b")
    b = cli("endpoints", "capture", "sync", "-o", "json", "--workspace", other)
    assert b.code == 0, b.err
    assert (b.json()["uploaded"], b.json()["host"]) == (2, "machine-b")
    text = cli("endpoints", "capture", "sync", "--workspace", other)
    assert text.code == 0 and "uploaded 0 capture file(s)" in text.out and "2 already uploaded" in text.out

    listed = cli("endpoints", "capture", "list", "dev", "-o", "json", "--workspace", ws.root)
    assert listed.code == 0, listed.err
    rows = {(r["host"], r["file"]): r for r in listed.json()}
    local = {("machine-a", p.name): p for p in folder.glob("capture-*")} | {
        ("machine-b", p.name): p for p in (other / "capture" / "dev").glob("capture-*")
    }
    assert set(rows) == set(local)
    for at, path in local.items():
        assert rows[at]["size"] == path.stat().st_size and rows[at]["complete"] is True
        assert rows[at]["endpoint"] == "dev"
    everything = list_capture(ws)
    assert sorted({r["endpoint"] for r in everything}) == ["dev", "prod"] and len(everything) == 3


def test_delete_endpoint_uploads_a_real_servers_capture(shared, tmp_path):
    ws, folder, bucket, client = shared
    bundle = bundle_at(tmp_path / "bundle", "1")
    cfg = config("dev", serving={"auth": False, "capture": {"enabled": True, "sample_rate": 1.0}})
    dep = start_deployment(ws, bundle, cfg)
    try:
        with httpx.Client(timeout=10, trust_env=False) as http:
            for i in range(12):
                r = http.post(f"{dep.url}/score", json=SEED, headers={"x-request-id": f"req-{i}"})
                assert r.status_code == 200, r.text
        deadline = time.monotonic() + 10
        while not list(folder.glob("capture-*.jsonl")) and time.monotonic() < deadline:
            time.sleep(0.05)
        # Live: its files may still grow, however quiet (the server is running).
        live = sync_capture(ws, "dev", quiet_s=0)
        assert live["uploaded"] == 0 and live["skipped_open"] >= 1
    finally:
        delete_endpoint(ws, "dev")
    files = sorted(folder.glob("capture-*.jsonl"))
    prefix = "team/capture/dev/machine-a/"
    assert set(objects(client, bucket, prefix)) == {prefix + p.name for p in files} | {
        prefix + p.name + SIDECAR for p in files
    }
    ids = [i for p in files for i in ids_in(body(client, bucket, prefix + p.name))]
    assert sorted(ids) == sorted(f"req-{i}" for i in range(12))


def test_a_file_workspace_is_a_no_op_that_says_so(tmp_path):
    ws = make_ws(tmp_path / "ws")
    folder = ws.root / "capture" / "dev"
    write_in_child(folder, 5, max_mb=64)
    result = sync_capture(ws, "dev")
    assert (result["uploaded"], result["bytes"], result["skipped_open"], result["already"]) == (0, 0, 0, 0)
    assert "file:// workspace" in result["note"] and str(ws.root / "capture") in result["note"]
    assert not (folder / MANIFEST).exists()
    assert not (ws.local_artifact_dir / "capture").exists()
    (row,) = list_capture(ws, "dev")
    (path,) = folder.glob("capture-*.jsonl")
    assert (row["file"], row["size"], row["uri"]) == (path.name, path.stat().st_size, str(path))
    ws.store.dispose()
