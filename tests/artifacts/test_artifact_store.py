"""Artifact storage: FileStore, key validation, open_store, S3 error handling (stub client), the
local content-addressed cache (once per hash, verification, concurrency, kill -9, prune) and
`shipyard cache show|prune`."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from files_support import make_tree

import shipyard.artifacts.cache as cache_mod
from shipyard.artifacts import open_store
from shipyard.artifacts.cache import LocalCache, default_cache_root
from shipyard.artifacts.file_store import FileStore
from shipyard.artifacts.s3_store import S3Store, is_transient
from shipyard.artifacts.store import COMPLETE_MARKER, validate_key
from shipyard.cli.cache import parse_duration, parse_size
from shipyard.data.hashing import tree_sha256
from shipyard.errors import ConfigError, NotFoundError, StorageError, UsageError

# -- helpers -------------------------------------------------------------------------------------


BUNDLE = {"model.pkl": b"\x80model" * 100, "score.py": b"def run(x):\n    return x\n", "env/req.txt": b"sk\n"}


class CountingStore(FileStore):
    """A FileStore that appends one line per request to a log file (visible across processes) and
    can wait before each download (to widen race windows)."""

    def __init__(self, root: Path, log: Path, delay_s: float = 0.0):
        super().__init__(root)
        self.log = log
        self.delay_s = delay_s

    def _note(self, what: str) -> None:
        with open(self.log, "a") as fh:
            fh.write(f"{os.getpid()} {what}\n")

    def calls(self, what: str | None = None) -> list[str]:
        if not self.log.exists():
            return []
        lines = self.log.read_text().splitlines()
        return [line for line in lines if what is None or line.split(" ", 1)[1].startswith(what)]

    def get_file(self, key, local, *, progress=None):
        self._note(f"get_file {key}")
        time.sleep(self.delay_s)
        super().get_file(key, local, progress=progress)

    def get_bytes(self, key):
        self._note(f"get_bytes {key}")
        return super().get_bytes(key)

    def put_file(self, local, key, *, progress=None):
        self._note(f"put_file {key}")
        super().put_file(local, key, progress=progress)


def counting_store(tmp_path: Path, delay_s: float = 0.0) -> CountingStore:
    return CountingStore(tmp_path / "store", tmp_path / "requests.log", delay_s)


def snapshot(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


# -- FileStore -----------------------------------------------------------------------------------


def test_file_store_round_trip(tmp_path: Path):
    store = FileStore(tmp_path / "root")
    store.put_bytes(b"hello", "a/b.txt")
    (tmp_path / "local.bin").write_bytes(b"\x00\x01" * 5000)
    store.put_file(tmp_path / "local.bin", "a/c/d.bin")
    store.put_bytes(b"top", "top")

    assert store.get_bytes("a/b.txt") == b"hello"
    store.get_file("a/c/d.bin", tmp_path / "out" / "d.bin")
    assert (tmp_path / "out" / "d.bin").read_bytes() == b"\x00\x01" * 5000
    assert store.exists("a/b.txt") and not store.exists("a/zzz") and not store.exists("a")
    assert store.list() == ["a/b.txt", "a/c/d.bin", "top"]
    assert store.list("a/c") == ["a/c/d.bin"]
    assert store.list("a/c/") == ["a/c/d.bin"]
    assert store.list("top") == ["top"]
    assert store.list("nothing") == []
    assert store.uri("a/b.txt") == (tmp_path / "root" / "a" / "b.txt").as_uri()
    assert store.uri() == (tmp_path / "root").as_uri()
    # overwrite replaces
    store.put_bytes(b"again", "a/b.txt")
    assert store.get_bytes("a/b.txt") == b"again"


def test_file_store_files_get_the_umask_mode_not_0600(tmp_path: Path):
    umask = os.umask(0o022)
    os.umask(umask)
    store = FileStore(tmp_path)
    store.put_bytes(b"x", "k")
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o666 & ~umask


def test_file_store_missing_key_is_not_found(tmp_path: Path):
    store = FileStore(tmp_path / "root")
    with pytest.raises(NotFoundError, match="no such artifact"):
        store.get_bytes("nope/x")
    with pytest.raises(NotFoundError):
        store.get_file("nope", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_file_store_delete_is_folder_scoped_and_counts(tmp_path: Path):
    store = FileStore(tmp_path)
    for key in ("a/x", "a/y/z", "ab/w", f"a/{COMPLETE_MARKER}"):
        store.put_bytes(b"1", key)
    assert store.delete("a") == 3
    assert store.list() == ["ab/w"]
    assert store.delete("a") == 0
    assert store.delete("ab/w") == 1
    assert store.list() == []


def test_file_store_put_dir_get_dir_round_trip(tmp_path: Path):
    src = make_tree(tmp_path / "src", BUNDLE)
    store = FileStore(tmp_path / "root")
    keys = store.put_dir(src, "bundles/one")
    assert keys == ["bundles/one/env/req.txt", "bundles/one/model.pkl", "bundles/one/score.py"]
    store.put_bytes(b"{}", f"bundles/one/{COMPLETE_MARKER}")  # a marker is not part of the folder
    names = store.get_dir("bundles/one", tmp_path / "out")
    assert sorted(names) == ["env/req.txt", "model.pkl", "score.py"]
    assert not (tmp_path / "out" / COMPLETE_MARKER).exists()
    assert tree_sha256(tmp_path / "out") == tree_sha256(src)


def test_file_store_failed_write_leaves_neither_final_nor_temp_file(tmp_path: Path, monkeypatch):
    store = FileStore(tmp_path / "root")
    store.put_bytes(b"old", "k")

    def broken_replace(src, dst):
        raise OSError(errno.EIO, "disk went away")

    monkeypatch.setattr("shipyard.artifacts.file_store.os.replace", broken_replace)
    with pytest.raises(OSError, match="disk went away"):
        store.put_bytes(b"new", "k")
    with pytest.raises(OSError):
        store.put_bytes(b"new", "fresh")
    monkeypatch.undo()
    assert store.get_bytes("k") == b"old"
    assert not store.exists("fresh")
    assert sorted(p.name for p in (tmp_path / "root").iterdir()) == ["k"]


def test_kill_9_during_put_leaves_no_half_file(tmp_path: Path):
    """A writer killed mid-file leaves a temp file (never listed), not a truncated final file."""
    fifo = tmp_path / "source.fifo"
    os.mkfifo(fifo)
    root = tmp_path / "root"
    code = (
        "import sys; from pathlib import Path; from shipyard.artifacts.file_store import FileStore; "
        "FileStore(Path(sys.argv[1])).put_file(Path(sys.argv[2]), 'models/big.bin')"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(root), str(fifo)])
    fd = None
    try:
        deadline = time.monotonic() + 30
        while fd is None:  # O_NONBLOCK: fails with ENXIO until the child opened its read end
            try:
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                assert exc.errno == errno.ENXIO and time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.02)
        os.set_blocking(fd, True)
        os.write(fd, b"x" * (1 << 20))
        temp = []
        while not temp or temp[0].stat().st_size < (1 << 20):
            assert time.monotonic() < deadline, "the writer never wrote its temp file"
            temp = list((root / "models").glob(".shipyard-tmp-*")) if (root / "models").is_dir() else []
            time.sleep(0.02)
    finally:
        proc.kill()
        proc.wait(10)
        if fd is not None:
            os.close(fd)
    store = FileStore(root)
    assert not (root / "models" / "big.bin").exists()
    assert not store.exists("models/big.bin")
    assert store.list() == []
    assert [p.name.startswith(".shipyard-tmp-") for p in (root / "models").iterdir()] == [True]


def test_progress_callbacks_count_every_byte(tmp_path: Path, capsys):
    data = os.urandom(3 * (1 << 20) + 123)
    (tmp_path / "f.bin").write_bytes(data)
    store = FileStore(tmp_path / "root")
    up: list[int] = []
    down: list[int] = []
    store.put_file(tmp_path / "f.bin", "f.bin", progress=up.append)
    store.get_file("f.bin", tmp_path / "back.bin", progress=down.append)
    assert sum(up) == sum(down) == len(data) and len(up) == 4

    # A cache forced to draw progress (as on a terminal) transfers the same bytes.
    big = make_tree(tmp_path / "big", {"weights.bin": os.urandom(17 << 20)})
    content_hash = LocalCache(tmp_path / "a", progress=True).put_dir(store, big, "big")
    fetched = LocalCache(tmp_path / "b", progress=True).fetch_dir(store, "big", content_hash)
    assert tree_sha256(fetched) == content_hash
    assert capsys.readouterr().out == ""  # progress never goes to stdout (JSON output stays clean)


# -- key validation ------------------------------------------------------------------------------

HOSTILE_KEYS = [
    "../x",
    "a/../../x",
    "..",
    "/abs",
    "/etc/passwd",
    "a//b",
    "a/",
    "",
    ".",
    "a/./b",
    "a\nb",
    "a\x00b",
    "a\rb",
    "..\\x",
    ".shipyard-tmp-abc",
]
HOSTILE_PREFIXES = ["../x", "a/../../x", "/abs", "a//b", "a\nb", "a\x00b", "..", "a//"]


@pytest.mark.parametrize("key", HOSTILE_KEYS)
def test_hostile_keys_are_refused_by_every_operation(tmp_path: Path, key: str):
    root = tmp_path / "root"
    store = FileStore(root)
    (tmp_path / "local").write_bytes(b"payload")
    before = snapshot(tmp_path)
    operations = [
        lambda: store.put_bytes(b"payload", key),
        lambda: store.put_file(tmp_path / "local", key),
        lambda: store.get_bytes(key),
        lambda: store.get_file(key, tmp_path / "got"),
        lambda: store.exists(key),
        lambda: store.uri(key) if key else validate_key(key),
    ]
    for operation in operations:
        with pytest.raises(UsageError):
            operation()
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("prefix", HOSTILE_PREFIXES)
def test_hostile_prefixes_are_refused(tmp_path: Path, prefix: str):
    store = FileStore(tmp_path / "root")
    src = make_tree(tmp_path / "src", {"f": b"1"})
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "keep").write_bytes(b"keep")
    before = snapshot(tmp_path)
    for operation in (
        lambda: store.list(prefix),
        lambda: store.delete(prefix),
        lambda: store.put_dir(src, prefix),
        lambda: store.get_dir(prefix, tmp_path / "out"),
    ):
        with pytest.raises(UsageError):
            operation()
    assert snapshot(tmp_path) == before


def test_valid_keys_are_accepted():
    for key in ("a", "a/b.c", "x y/ü.txt", ".hidden/f", "a..b/c", "bundles/0f3a/model.pkl"):
        assert validate_key(key) == key


def test_symlink_inside_root_cannot_lead_out(tmp_path: Path):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(outside)
    store = FileStore(root)
    with pytest.raises(UsageError, match="outside the store root"):
        store.put_bytes(b"x", "link/escaped")
    assert list(outside.iterdir()) == []


def test_get_dir_refuses_a_stored_name_that_is_not_a_valid_key(tmp_path: Path):
    root = tmp_path / "root"
    make_tree(root / "p", {"fine": b"1", "evil\nname": b"2"})
    out = tmp_path / "out"
    with pytest.raises(UsageError, match="control characters"):
        FileStore(root).get_dir("p", out)
    assert not (out / "evil\nname").exists()


# -- open_store ----------------------------------------------------------------------------------


def test_open_store_by_scheme(tmp_path: Path):
    store = open_store((tmp_path / "ws").as_uri())
    assert isinstance(store, FileStore) and store.root == tmp_path / "ws"
    plain = open_store(str(tmp_path / "plain"))
    assert isinstance(plain, FileStore) and plain.root == tmp_path / "plain"
    s3 = open_store("s3://team-bucket/shared/ws/")
    assert isinstance(s3, S3Store)
    assert (s3.bucket, s3.prefix) == ("team-bucket", "shared/ws")
    assert s3.uri("b/model.pkl") == "s3://team-bucket/shared/ws/b/model.pkl"
    assert open_store("s3://team-bucket").uri("k") == "s3://team-bucket/k"


def test_open_store_unknown_scheme_lists_the_supported_ones():
    with pytest.raises(ConfigError) as info:
        open_store("gs://bucket/prefix")
    assert "'gs'" in str(info.value) and "file://" in str(info.value) and "s3://" in str(info.value)


def test_importing_artifacts_does_not_import_boto3(tmp_path: Path):
    code = (
        "import sys, shipyard.artifacts as a; a.open_store(sys.argv[1]); a.open_store('s3://bkt/p'); "
        "a.LocalCache(sys.argv[2]); print(sorted(m for m in ('boto3', 'botocore') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, (tmp_path / "x").as_uri(), str(tmp_path / "c")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[]"


def test_missing_boto3_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "boto3", None)  # `import boto3` now raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'shipyard\[s3\]'"):
        open_store("s3://bucket/prefix")


def test_s3_endpoint_and_region_come_from_the_environment_in_order():
    env = {
        "AWS_ENDPOINT_URL": "http://generic:1",
        "MLFLOW_S3_ENDPOINT_URL": "http://mlflow:2",
        "AWS_REGION": "eu-west-3",
    }
    assert S3Store("bkt", env=env).endpoint_url == "http://generic:1"
    assert S3Store("bkt", env=env | {"AWS_ENDPOINT_URL_S3": "http://s3:3"}).endpoint_url == "http://s3:3"
    assert S3Store("bkt", env={"MLFLOW_S3_ENDPOINT_URL": "http://mlflow:2"}).endpoint_url == "http://mlflow:2"
    assert S3Store("bkt", env=env).region == "eu-west-3"
    assert S3Store("bkt", env=env | {"AWS_DEFAULT_REGION": "ap-south-1"}).region == "ap-south-1"
    assert S3Store("bkt", env={}).region == "us-east-1" and S3Store("bkt", env={}).endpoint_url is None
    # credentials in an endpoint URL never reach a message
    assert S3Store("bkt", endpoint_url="http://user:pw@host:9000").endpoint == "http://host:9000"


# -- S3 errors and retries (a stub client; the real server is in test_artifact_s3.py) ---------------


def client_error(status: int, code: str, message: str = "boom"):
    from botocore.exceptions import ClientError

    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "GetObject",
    )


class StubClient:
    """Raises the queued errors in turn, then answers get_object with b"ok"."""

    def __init__(self, *errors):
        self.errors = list(errors)
        self.calls = 0

    def get_object(self, **_):
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return {"Body": io.BytesIO(b"ok")}

    def head_bucket(self, **_):
        return {}


def test_s3_transient_errors_are_retried_then_succeed():
    stub = StubClient(client_error(503, "SlowDown"), client_error(500, "InternalError"))
    store = S3Store("bkt", client=stub, env={})
    assert store.get_bytes("k") == b"ok"
    assert stub.calls == 3


def test_s3_retries_give_up_with_a_clear_error():
    stub = StubClient(*[client_error(503, "SlowDown")] * 10)
    store = S3Store("bkt", "pre", client=stub, retry_attempts=3, endpoint_url="http://s3.local:9000", env={})
    started = time.monotonic()
    with pytest.raises(StorageError) as info:
        store.get_bytes("k")
    assert stub.calls == 3
    assert time.monotonic() - started < 10
    message = str(info.value)
    assert "http://s3.local:9000" in message and "'bkt'" in message and "after 3 attempts" in message
    assert "s3://bkt/pre/k" in message


def test_s3_permission_errors_are_not_retried_and_never_show_the_secret():
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
    stub = StubClient(client_error(403, "SignatureDoesNotMatch", f"expected signature for {secret}"))
    store = S3Store(
        "bkt", client=stub, endpoint_url="http://s3.local:9000", env={"AWS_SECRET_ACCESS_KEY": secret}
    )
    with pytest.raises(StorageError) as info:
        store.get_bytes("k")
    assert stub.calls == 1
    message = str(info.value)
    assert secret not in message and "***" in message
    assert "SignatureDoesNotMatch" in message and "AWS_SECRET_ACCESS_KEY" in message
    assert "http://s3.local:9000" in message and "'bkt'" in message


def test_s3_missing_key_is_not_found():
    stub = StubClient(client_error(404, "NoSuchKey"))
    with pytest.raises(NotFoundError, match="s3://bkt/k"):
        S3Store("bkt", client=stub, env={}).get_bytes("k")
    assert stub.calls == 1


def test_transient_classification():
    from botocore.exceptions import EndpointConnectionError, ReadTimeoutError, SSLError

    assert is_transient(EndpointConnectionError(endpoint_url="http://x"))
    assert is_transient(ReadTimeoutError(endpoint_url="http://x"))
    assert is_transient(client_error(429, "TooManyRequests"))
    assert is_transient(client_error(400, "RequestTimeout"))
    assert not is_transient(SSLError(endpoint_url="http://x", error="bad cert"))
    assert not is_transient(client_error(403, "AccessDenied"))
    assert not is_transient(client_error(404, "NoSuchKey"))
    assert not is_transient(OSError("local disk"))


# -- LocalCache ----------------------------------------------------------------------------------


def test_default_cache_root_precedence(tmp_path: Path):
    assert default_cache_root({"SHIPYARD_CACHE_DIR": "/c", "XDG_CACHE_HOME": "/x"}) == Path("/c")
    assert default_cache_root({"XDG_CACHE_HOME": "/x"}) == Path("/x/shipyard/artifacts")
    assert default_cache_root({}) == Path.home() / ".cache" / "shipyard" / "artifacts"


def test_fetch_dir_downloads_once_per_hash(tmp_path: Path):
    store = counting_store(tmp_path)
    src = make_tree(tmp_path / "src", BUNDLE)
    content_hash = LocalCache(tmp_path / "machine-a").put_dir(store, src, "bundles/b1")
    assert content_hash == tree_sha256(src)

    cache = LocalCache(tmp_path / "machine-b")
    first = cache.fetch_dir(store, "bundles/b1", content_hash)
    assert len(store.calls("get_file")) == len(BUNDLE)
    requests_after_first = len(store.calls())
    second = cache.fetch_dir(store, "bundles/b1", content_hash)
    again = LocalCache(tmp_path / "machine-b").fetch_dir(store, "bundles/b1", content_hash)
    assert first == second == again
    assert len(store.calls()) == requests_after_first  # hits ask the store nothing
    assert tree_sha256(first) == content_hash
    assert (first / "model.pkl").read_bytes() == BUNDLE["model.pkl"]
    assert not (first / COMPLETE_MARKER).exists()
    [entry] = cache.entries()
    assert entry["hash"] == content_hash and entry["kind"] == "dir" and entry["files"] == len(BUNDLE)
    assert entry["size_bytes"] == sum(len(v) for v in BUNDLE.values()) == cache.size()
    assert entry["source"] == store.uri("bundles/b1")
    marker = json.loads((first.parent / "entry.json").read_text())
    assert marker["hash_function"] == "shipyard.data.hashing.tree_sha256"


def test_put_dir_writes_the_marker_last_and_skips_a_complete_folder(tmp_path: Path):
    store = counting_store(tmp_path)
    src = make_tree(tmp_path / "src", BUNDLE)
    content_hash = LocalCache(tmp_path / "a").put_dir(store, src, "bundles/b1")
    marker = json.loads(store.get_bytes(f"bundles/b1/{COMPLETE_MARKER}"))
    assert marker["content_hash"] == content_hash and marker["files"] == len(BUNDLE)
    assert len(store.calls("put_file")) == len(BUNDLE)

    assert LocalCache(tmp_path / "b").put_dir(store, src, "bundles/b1") == content_hash
    assert len(store.calls("put_file")) == len(BUNDLE)  # nothing uploaded the second time

    # New content at the same prefix: re-uploaded, files of the old content gone.
    (src / "env" / "req.txt").unlink()
    (src / "score.py").write_text("changed")
    new_hash = LocalCache(tmp_path / "b").put_dir(store, src, "bundles/b1")
    assert new_hash != content_hash
    assert store.list("bundles/b1") == [
        f"bundles/b1/{COMPLETE_MARKER}",
        "bundles/b1/model.pkl",
        "bundles/b1/score.py",
    ]
    assert json.loads(store.get_bytes(f"bundles/b1/{COMPLETE_MARKER}"))["content_hash"] == new_hash


def test_a_prefix_without_marker_is_absent_and_put_dir_replaces_it(tmp_path: Path):
    store = FileStore(tmp_path / "store")
    src = make_tree(tmp_path / "src", BUNDLE)
    store.put_dir(src, "half")  # an upload that never wrote its marker
    store.put_bytes(b"stray", "half/stray.bin")
    cache = LocalCache(tmp_path / "cache")
    with pytest.raises(NotFoundError, match="no complete folder"):
        cache.fetch_dir(store, "half", tree_sha256(src))
    assert cache.entries() == []

    content_hash = LocalCache(tmp_path / "other").put_dir(store, src, "half")
    assert "half/stray.bin" not in store.list("half")
    assert tree_sha256(cache.fetch_dir(store, "half", content_hash)) == content_hash


def test_interrupted_put_dir_leaves_no_marker(tmp_path: Path, monkeypatch):
    store = FileStore(tmp_path / "store")
    src = make_tree(tmp_path / "src", BUNDLE)
    real_put_file = FileStore.put_file

    def crash_on_score(self, local, key, *, progress=None):
        if key.endswith("score.py"):
            raise KeyboardInterrupt
        real_put_file(self, local, key, progress=progress)

    monkeypatch.setattr(FileStore, "put_file", crash_on_score)
    with pytest.raises(KeyboardInterrupt):
        LocalCache(tmp_path / "a").put_dir(store, src, "b")
    monkeypatch.undo()
    assert store.list("b") and not store.exists(f"b/{COMPLETE_MARKER}")
    with pytest.raises(NotFoundError):
        LocalCache(tmp_path / "b").fetch_dir(store, "b", tree_sha256(src))


def test_hash_mismatch_is_refused_and_not_published(tmp_path: Path):
    store = FileStore(tmp_path / "store")
    src = make_tree(tmp_path / "src", BUNDLE)
    content_hash = LocalCache(tmp_path / "a").put_dir(store, src, "b")
    store.put_bytes(b"tampered", "b/model.pkl")  # changed in place, marker unchanged

    cache = LocalCache(tmp_path / "cache")
    with pytest.raises(StorageError, match="hashes to"):
        cache.fetch_dir(store, "b", content_hash)
    assert cache.entries() == [] and cache.path(content_hash) is None
    assert list((tmp_path / "cache" / "dirs").iterdir()) == []  # no temp dir left either

    other = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(StorageError, match="not the requested"):
        cache.fetch_dir(store, "b", other)


def test_fetch_file_once_verified_and_under_its_name(tmp_path: Path):
    store = counting_store(tmp_path)
    (tmp_path / "capture.parquet").write_bytes(b"PAR1" * 1000)
    sha = LocalCache(tmp_path / "a").put_file(
        store, tmp_path / "capture.parquet", "capture/2024/capture.parquet"
    )
    assert sha == hashlib.sha256(b"PAR1" * 1000).hexdigest()
    cache = LocalCache(tmp_path / "b")
    first = cache.fetch_file(store, "capture/2024/capture.parquet", sha)
    assert cache.fetch_file(store, "capture/2024/capture.parquet", sha) == first
    assert first.name == "capture.parquet" and first.read_bytes() == b"PAR1" * 1000
    assert len(store.calls("get_file")) == 1
    with pytest.raises(StorageError, match="hashes to"):
        cache.fetch_file(store, "capture/2024/capture.parquet", hashlib.sha256(b"x").hexdigest())
    assert [e["hash"] for e in cache.entries()] == [sha]


@pytest.mark.parametrize("bad", ["../../etc", "abc", "A" * 64, "", "g" * 64])
def test_content_hash_must_be_sha256_hex(tmp_path: Path, bad: str):
    with pytest.raises(UsageError, match="64 lowercase hex"):
        LocalCache(tmp_path / "c").fetch_dir(FileStore(tmp_path / "s"), "p", bad)


def _fetch_in_process(root, store, prefix, content_hash, barrier, results):
    barrier.wait(30)
    try:
        path = LocalCache(root).fetch_dir(store, prefix, content_hash)
        results.put((str(path), tree_sha256(path)))
    except Exception as exc:  # reported, so that the test fails at once and says why
        results.put(("error", repr(exc)))


def test_concurrent_fetch_from_several_processes_downloads_once(tmp_path: Path):
    store = counting_store(tmp_path, delay_s=0.2)
    src = make_tree(tmp_path / "src", BUNDLE)
    content_hash = LocalCache(tmp_path / "seed").put_dir(store, src, "b")
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(4), ctx.Queue()
    args = (tmp_path / "cache", store, "b", content_hash, barrier, results)
    procs = [ctx.Process(target=_fetch_in_process, args=args) for _ in range(4)]
    for proc in procs:
        proc.start()
    got = [results.get(timeout=60) for _ in procs]
    assert [r for r in got if r[0] == "error"] == []
    for proc in procs:
        proc.join(30)
        assert proc.exitcode == 0
    assert len(store.calls("get_file")) == len(BUNDLE)  # one download, not four
    assert {path for path, _ in got} == {str(tmp_path / "cache" / "dirs" / content_hash / "content")}
    assert {digest for _, digest in got} == {content_hash}
    assert [e["hash"] for e in LocalCache(tmp_path / "cache").entries()] == [content_hash]


def _fetch_forever(root, store, prefix, content_hash):
    LocalCache(root).fetch_dir(store, prefix, content_hash)


def test_kill_9_during_download_leaves_a_temp_dir_that_prune_removes(tmp_path: Path):
    slow = counting_store(tmp_path, delay_s=60)
    src = make_tree(tmp_path / "src", BUNDLE)
    content_hash = LocalCache(tmp_path / "seed").put_dir(slow, src, "b")
    root = tmp_path / "cache"
    proc = multiprocessing.get_context("spawn").Process(
        target=_fetch_forever, args=(root, slow, "b", content_hash)
    )
    proc.start()
    try:
        deadline = time.monotonic() + 60
        while not slow.calls("get_file"):
            assert time.monotonic() < deadline and proc.is_alive(), "the download never started"
            time.sleep(0.05)
    finally:
        proc.kill()  # SIGKILL
        proc.join(10)
    cache = LocalCache(root)
    assert cache.entries() == [] and cache.path(content_hash) is None
    temps = [p.name for p in (root / "dirs").iterdir()]
    assert len(temps) == 1 and temps[0].startswith(f".tmp-{content_hash}-")

    result = cache.prune()
    assert result["temp_removed"] == 1 and result["removed"] == 0
    assert list((root / "dirs").iterdir()) == []
    fast = FileStore(tmp_path / "store")
    assert tree_sha256(cache.fetch_dir(fast, "b", content_hash)) == content_hash


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0):
        self.now = now

    def __call__(self) -> float:
        self.now += 1
        return self.now


def _seed_entries(tmp_path: Path, cache: LocalCache, sizes: dict[str, int]) -> dict[str, str]:
    store = FileStore(tmp_path / "store")
    hashes = {}
    for name, size in sizes.items():
        src = make_tree(tmp_path / "src" / name, {"blob": name.encode() * size})
        hashes[name] = cache.put_dir(store, src, f"p/{name}")
    return hashes


def test_prune_removes_least_recently_used_first(tmp_path: Path, monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(cache_mod, "_clock", clock)
    cache = LocalCache(tmp_path / "cache")
    h = _seed_entries(tmp_path, cache, {"A": 1000, "B": 2000, "C": 3000})
    assert cache.path(h["A"]) is not None  # A used again: now B is the least recently used
    assert cache.size() == 6000
    assert [e["hash"] for e in cache.entries()] == [h["A"], h["C"], h["B"]]

    assert cache.prune(max_bytes=4500) == {
        "removed": 1,
        "freed_bytes": 2000,
        "kept": 2,
        "size_bytes": 4000,
        "temp_removed": 0,
    }
    assert {e["hash"] for e in cache.entries()} == {h["A"], h["C"]}
    assert cache.prune(max_bytes=3500)["freed_bytes"] == 3000
    assert [e["hash"] for e in cache.entries()] == [h["A"]]
    assert cache.prune(max_bytes=1000)["removed"] == 0  # fits already

    clock.now += 100
    assert cache.prune(older_than_s=200)["removed"] == 0
    assert cache.prune(older_than_s=50) == {
        "removed": 1,
        "freed_bytes": 1000,
        "kept": 0,
        "size_bytes": 0,
        "temp_removed": 0,
    }
    assert cache.entries() == [] and cache.size() == 0


def test_prune_keeps_an_entry_whose_lock_another_process_holds(tmp_path: Path):
    cache = LocalCache(tmp_path / "cache")
    h = _seed_entries(tmp_path, cache, {"A": 100, "B": 100})
    code = (
        "import sys; from filelock import FileLock; lock = FileLock(sys.argv[1]); lock.acquire(); "
        "print('locked', flush=True); sys.stdin.read()"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(cache.lock_path(h["A"]))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        result = cache.prune(max_bytes=0)
        assert (result["removed"], result["kept"], result["size_bytes"]) == (1, 1, 100)
        assert [e["hash"] for e in cache.entries()] == [h["A"]]
    finally:
        holder.stdin.close()
        holder.wait(10)
    assert cache.prune(max_bytes=0)["removed"] == 1
    assert cache.entries() == []


# -- CLI -----------------------------------------------------------------------------------------


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    from shipyard.cli.main import main

    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_cache_show_and_prune(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setenv("SHIPYARD_CACHE_DIR", str(tmp_path / "cache"))
    clock = FakeClock()
    monkeypatch.setattr(cache_mod, "_clock", clock)
    h = _seed_entries(tmp_path, LocalCache(), {"A": 1500, "B": 1500})

    code, out, _ = run_cli(capsys, "cache", "show", "--output", "json")
    assert code == 0
    shown = json.loads(out)
    assert shown["root"] == str(tmp_path / "cache") and shown["size_bytes"] == 3000
    assert [e["hash"] for e in shown["entries"]] == [h["B"], h["A"]]

    code, out, _ = run_cli(capsys, "cache", "prune", "--older-than", "7d", "--output", "json")
    assert code == 0 and json.loads(out)["removed"] == 0

    code, out, _ = run_cli(capsys, "cache", "prune", "--max-size", "2KB", "--output", "json")
    assert code == 0
    assert json.loads(out) | {"root": None} == {
        "root": None,
        "removed": 1,
        "freed_bytes": 1500,
        "kept": 1,
        "size_bytes": 1500,
        "temp_removed": 0,
    }
    code, out, _ = run_cli(capsys, "cache", "show", "-o", "json")
    assert [e["hash"] for e in json.loads(out)["entries"]] == [h["B"]]

    clock.now += 8 * 86400
    code, out, _ = run_cli(capsys, "cache", "prune", "--older-than", "7d", "-o", "json")
    assert json.loads(out)["removed"] == 1
    code, out, _ = run_cli(capsys, "cache", "show")
    assert code == 0 and "the cache is empty" in out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--max-size", "10XB"], "--max-size '10XB'"),
        (["--max-size", "-1GB"], "--max-size '-1GB'"),
        (["--older-than", "7 days"], "--older-than '7 days'"),
    ],
)
def test_cli_cache_prune_bad_values_are_one_line_usage_errors(tmp_path, monkeypatch, capsys, args, needle):
    monkeypatch.setenv("SHIPYARD_CACHE_DIR", str(tmp_path / "cache"))
    code, out, err = run_cli(capsys, "cache", "prune", *args)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and needle in err


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("500MB", 500 * 10**6),
        ("10GB", 10 * 10**9),
        ("2GiB", 2 * 2**30),
        ("1.5k", 1500),
        ("4096", 4096),
        ("0", 0),
    ],
)
def test_parse_size(text: str, expected: int):
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"), [("12h", 43200), ("7d", 604800), ("30m", 1800), ("2w", 1209600), ("45", 45)]
)
def test_parse_duration(text: str, expected: float):
    assert parse_duration(text) == expected
