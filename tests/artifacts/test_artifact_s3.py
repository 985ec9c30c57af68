"""S3Store and LocalCache against a real S3 server (SeaweedFS, tests/s3_support.py): round trips
under a prefix, multipart uploads, the `.complete` marker, wrong credentials, an unreachable
endpoint, hostile stored names, and one download per machine."""

from __future__ import annotations

import os
import socket
import time
import traceback
from pathlib import Path

import pytest
from files_support import make_tree
from s3_support import s3_bucket, s3_server  # noqa: F401

from shipyard.artifacts import open_store
from shipyard.artifacts.cache import LocalCache
from shipyard.artifacts.s3_store import S3Store
from shipyard.artifacts.store import COMPLETE_MARKER
from shipyard.data.hashing import tree_sha256
from shipyard.errors import NotFoundError, StorageError, UsageError

pytestmark = pytest.mark.integration

BUNDLE = {
    "model.pkl": os.urandom(200_000),
    "score.py": b"def init():\n    pass\n",
    "env/requirements.txt": b"scikit-learn\n",
}


def count_requests(store: S3Store) -> list[str]:
    """Every HTTP request the store's client sends, by operation name (appended as they go)."""
    sent: list[str] = []
    store.client.meta.events.register(
        "before-send.s3", lambda event_name, **_: sent.append(event_name.rsplit(".", 1)[-1])
    )
    return sent


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_put_get_dir_round_trip_under_a_prefix(s3_bucket, s3_server, tmp_path: Path):
    store = open_store(f"{s3_bucket}/team/ws")
    src = make_tree(tmp_path / "src", BUNDLE)

    keys = store.put_dir(src, "bundles/b1")
    assert keys == ["bundles/b1/env/requirements.txt", "bundles/b1/model.pkl", "bundles/b1/score.py"]
    assert store.list("bundles") == keys
    assert store.list("bundles/b") == []  # a prefix is a folder, not a string prefix
    bucket = s3_bucket.removeprefix("s3://")
    raw = s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]
    assert sorted(o["Key"] for o in raw) == [f"team/ws/{k}" for k in keys]

    names = store.get_dir("bundles/b1", tmp_path / "out")
    assert sorted(names) == ["env/requirements.txt", "model.pkl", "score.py"]
    assert tree_sha256(tmp_path / "out") == tree_sha256(src)
    assert store.get_bytes("bundles/b1/score.py") == BUNDLE["score.py"]
    assert store.exists("bundles/b1/model.pkl") and not store.exists("bundles/b1/nope")
    assert store.uri("bundles/b1/model.pkl") == f"{s3_bucket}/team/ws/bundles/b1/model.pkl"
    with pytest.raises(NotFoundError, match="no such artifact"):
        store.get_file("bundles/b1/nope", tmp_path / "nope")
    assert not (tmp_path / "nope").exists()

    store.put_bytes(b"other", "bundles/b10/x")
    assert store.delete("bundles/b1") == 3
    assert store.list() == ["bundles/b10/x"]


def test_big_file_goes_multipart_and_downloads_through_a_temp_file(s3_bucket, s3_server, tmp_path: Path):
    store = S3Store.from_uri(s3_bucket, multipart_threshold=5 << 20, multipart_chunksize=5 << 20)
    data = os.urandom(12 << 20)
    (tmp_path / "big.bin").write_bytes(data)
    store.put_file(tmp_path / "big.bin", "models/big.bin")

    head = s3_server.client().head_object(Bucket=store.bucket, Key="models/big.bin")
    assert head["ContentLength"] == len(data)
    assert head["ETag"].strip('"').endswith("-3")  # three parts: a multipart upload

    out = tmp_path / "down"
    out.mkdir()
    store.get_file("models/big.bin", out / "big.bin")
    assert (out / "big.bin").read_bytes() == data
    assert [p.name for p in out.iterdir()] == ["big.bin"]  # no temp file left beside it


def test_marker_is_written_last_and_a_folder_without_it_is_absent(s3_bucket, tmp_path: Path, monkeypatch):
    store = open_store(s3_bucket)
    src = make_tree(tmp_path / "src", BUNDLE)
    real_put_file = S3Store.put_file

    def crash_after_first(self, local, key, *, progress=None):
        if not key.endswith("env/requirements.txt"):
            raise ConnectionResetError("killed mid-upload")
        real_put_file(self, local, key, progress=progress)

    monkeypatch.setattr(S3Store, "put_file", crash_after_first)
    with pytest.raises(ConnectionResetError):
        LocalCache(tmp_path / "machine-a").put_dir(store, src, "bundles/b1")
    monkeypatch.undo()
    assert store.list("bundles/b1") == ["bundles/b1/env/requirements.txt"]
    assert not store.exists(f"bundles/b1/{COMPLETE_MARKER}")
    with pytest.raises(NotFoundError, match="no complete folder"):
        LocalCache(tmp_path / "machine-b").fetch_dir(store, "bundles/b1", tree_sha256(src))

    content_hash = LocalCache(tmp_path / "machine-a").put_dir(store, src, "bundles/b1")
    assert store.exists(f"bundles/b1/{COMPLETE_MARKER}")
    fetched = LocalCache(tmp_path / "machine-b").fetch_dir(store, "bundles/b1", content_hash)
    assert tree_sha256(fetched) == content_hash == tree_sha256(src)

    # Deleting a folder removes its marker: afterwards it reads as absent again.
    store.delete("bundles/b1")
    with pytest.raises(NotFoundError):
        LocalCache(tmp_path / "machine-c").fetch_dir(store, "bundles/b1", content_hash)


def test_wrong_secret_key_gives_one_clear_error_without_the_secret(s3_bucket, s3_server, monkeypatch):
    wrong = "not-the-secret-" + s3_server.secret_key[:8][::-1]
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", wrong)
    store = open_store(f"{s3_bucket}/ws")
    sent = count_requests(store)
    started = time.monotonic()
    with pytest.raises(StorageError) as info:
        store.put_bytes(b"data", "k")
    assert sent == ["PutObject"]  # refused credentials are not retried
    assert time.monotonic() - started < 5
    message = str(info.value)
    assert s3_server.endpoint_url in message and s3_bucket.removeprefix("s3://") in message
    assert "AWS_ACCESS_KEY_ID" in message and "AWS_SECRET_ACCESS_KEY" in message
    everything = "".join(traceback.format_exception(info.value))  # the chained botocore error too
    for secret in (wrong, s3_server.secret_key):
        assert secret not in everything


def test_unreachable_endpoint_is_named_after_the_retries(s3_bucket, monkeypatch):
    port = closed_port()
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{port}")
    store = open_store(s3_bucket)
    sent = count_requests(store)
    started = time.monotonic()
    with pytest.raises(StorageError) as info:
        store.get_bytes("k")
    elapsed = time.monotonic() - started
    assert len(sent) == 4 and set(sent) == {"GetObject"}
    assert elapsed < 15
    message = str(info.value)
    assert f"http://127.0.0.1:{port}" in message and s3_bucket.removeprefix("s3://") in message
    assert "after 4 attempts" in message and "AWS_ENDPOINT_URL_S3" in message


def test_endpoint_variables_are_taken_in_order(s3_bucket, s3_server, monkeypatch):
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    store = S3Store.from_uri(s3_bucket)  # MLFLOW_S3_ENDPOINT_URL only
    store.put_bytes(b"via mlflow's variable", "k")
    assert store.endpoint_url == s3_server.endpoint_url

    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{closed_port()}")  # wins over it
    with pytest.raises(StorageError, match="could not reach"):
        S3Store.from_uri(s3_bucket, retry_attempts=1).get_bytes("k")


def test_a_hostile_stored_name_never_lands_outside_the_folder(s3_bucket, s3_server, tmp_path: Path):
    bucket = s3_bucket.removeprefix("s3://")
    client = s3_server.client()
    client.put_object(Bucket=bucket, Key="p/fine", Body=b"1")
    client.put_object(Bucket=bucket, Key="p/evil\nname", Body=b"2")  # S3 allows it, we do not
    out = tmp_path / "out"
    with pytest.raises(UsageError, match="control characters"):
        open_store(s3_bucket).get_dir("p", out)
    assert {p.name for p in tmp_path.rglob("*")} <= {"out", "fine"}


def test_each_machine_downloads_a_stored_folder_once(s3_bucket, tmp_path: Path):
    src = make_tree(tmp_path / "src", BUNDLE)
    uploader = open_store(f"{s3_bucket}/ws")
    machine_a = LocalCache(tmp_path / "machine-a")
    content_hash = machine_a.put_dir(uploader, src, "bundles/b1")

    sent_by_a = count_requests(uploader)
    assert tree_sha256(machine_a.fetch_dir(uploader, "bundles/b1", content_hash)) == content_hash
    assert sent_by_a == []  # the uploader's cache was seeded: no download at all

    for name in ("machine-b", "machine-c"):
        store = open_store(f"{s3_bucket}/ws")
        sent = count_requests(store)
        cache = LocalCache(tmp_path / name)
        first = cache.fetch_dir(store, "bundles/b1", content_hash)
        assert sent.count("GetObject") == len(BUNDLE) + 1  # the marker and each file, once
        requests = len(sent)
        assert cache.fetch_dir(store, "bundles/b1", content_hash) == first
        assert LocalCache(tmp_path / name).fetch_dir(store, "bundles/b1", content_hash) == first
        assert len(sent) == requests  # later fetches ask the server nothing
        assert tree_sha256(first) == content_hash
        assert (first / "model.pkl").read_bytes() == BUNDLE["model.pkl"]
