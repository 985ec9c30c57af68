"""Ray Data: score mini-batches on a Ray cluster, in an actor pool that loads the bundle once per actor.

How the rows get there, and why this way: the job reads the input in the driver, as it does for
local processes (``source.mini_batches``: the same mini-batches, so the same predictions to the
last bit, unless Ray cuts an outsized block: see `_score`), and this backend streams them into
Ray Data. A feeder thread ``ray.put``s each mini-batch and passes the reference through a
``ray.util.queue.Queue``; a one-task datasource takes them off the queue and yields each as a
block, tagged with two columns: its mini-batch index and each row's number in the file.
``map_batches`` runs a class-based UDF on ``workers`` actors (``batch.worker``'s init/score,
unchanged) and ``iter_batches`` streams the results back. Reading the file on the cluster
instead (``read_csv``/``read_parquet`` with row offsets) would need the input at the same path on
every node and would make mini-batches of Ray's own choosing; this way works for any input the
driver can read and keeps the Backend protocol (a backend is handed mini-batches, not a file).
The bundle still loads from its path: on a remote cluster it must be on a filesystem the nodes
share, with Shipyard installed in their Python.

Memory is bounded whatever the input size: at most ``IN_FLIGHT_PER_WORKER × workers``
mini-batches are between the feeder and their outcome (a semaphore the driver releases as
outcomes come back), and the driver keeps only those.

What comes back is one row per mini-batch (or per piece of one, should Ray cut a block): index,
first row, row count and the predictions pickled — a model's predictions can be any Python
values, which an Arrow column could not always hold — or the error's text. A mini-batch that
raised is an outcome with an error, not a failed dataset; the row numbers put pieces together.
"""

from __future__ import annotations

import contextlib
import itertools
import pickle
import socket
import threading
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from shipyard.batch import worker
from shipyard.batch.backends.base import Outcome
from shipyard.batch.source import MiniBatch
from shipyard.errors import ConfigError, ShipyardError, UsageError

INDEX, ROW = "__shipyard_mini_batch", "__shipyard_row"
IN_FLIGHT_PER_WORKER = 3
FEED_POLL_S = 0.2
STOP_TIMEOUT_S = 120  # how long a job's end waits for its feeder thread
BLOCK_SIZE_FACTOR = 0.9
PROBE_TIMEOUT_S = 5.0


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError("batch scoring on Ray needs the ray package: pip install 'shipyard[ray]'") from None
    return ray


class ScoreMiniBatches:
    """The map_batches UDF: one instance per actor, which loads the bundle once (``worker.init``)."""

    def __init__(self, bundle_dir: str, key: str | None) -> None:
        worker.init(bundle_dir)  # a failure is kept and reported for the first mini-batch
        self.key = key

    def __call__(self, batch: Any) -> Any:
        """A pyarrow table of rows (one or more mini-batches) → one result row per mini-batch."""
        import pyarrow as pa
        import pyarrow.compute as pc

        out: dict[str, list[Any]] = {"index": [], "first_row": [], "rows": [], "kind": [], "value": []}
        indexes = pc.unique(batch.column(INDEX)).to_pylist()
        for index in indexes:  # one, unless Ray put pieces of two mini-batches in one batch
            part = batch if len(indexes) == 1 else batch.filter(pc.equal(batch.column(INDEX), index))
            kind, value = worker.score(part.drop_columns([INDEX, ROW]), self.key)
            out["index"].append(index)
            out["first_row"].append(part.column(ROW)[0].as_py())
            out["rows"].append(part.num_rows)
            out["kind"].append(kind)
            out["value"].append(pickle.dumps(value) if kind == worker.OK else str(value).encode())
        types = {"index": pa.int64(), "first_row": pa.int64(), "rows": pa.int64(), "kind": pa.string()}
        return pa.table(
            {name: pa.array(values, types.get(name, pa.large_binary())) for name, values in out.items()}
        )


def _probe(address: str) -> None:
    """Fail fast when nothing listens at `address`: ray.init retries a missing GCS for minutes."""
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    if not port.isdigit():
        host, port = (hostport, "10001") if address.startswith("ray://") else ("", "")
    if not host:
        raise UsageError(f"Ray address {address!r}: expected HOST:PORT (a GCS) or ray://HOST:PORT")
    try:
        socket.create_connection((host, int(port)), timeout=PROBE_TIMEOUT_S).close()
    except OSError as exc:
        raise ShipyardError(
            f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}): is it running? "
            "(`shipyard compute status NAME`; one Shipyard runs starts with `shipyard compute start NAME`)"
        ) from None


def _feed_datasource(queue: Any) -> Any:
    """A datasource of one read task that yields the blocks the driver puts on `queue`."""
    import ray
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    def read() -> Iterator[Any]:
        while True:
            item = queue.get(block=True)
            if item is None:
                return
            yield ray.get(item[1])

    class Feed(Datasource):
        def estimate_inmemory_data_size(self) -> int | None:
            return None

        def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None, data_context=None):
            meta = BlockMetadata(num_rows=None, size_bytes=None, exec_stats=None, input_files=None)
            return [ReadTask(read, meta)]

    return Feed()


class RayData:
    """Score mini-batches on the Ray cluster at `address` with `workers` actors (one CPU each).

    `address`: a GCS address (127.0.0.1:6379) or a Ray client address (ray://host:10001) to
    connect to; None starts a private local Ray for this process (the Python API's convenience;
    the CLI always names a cluster). A process already connected to Ray keeps that connection.
    """

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None) -> None:
        if workers is not None and workers < 1:
            raise UsageError(f"--workers {workers}: must be at least 1")
        self.address = address
        self._requested = workers
        self.workers = workers or 0  # 0 until connected: then the cluster's CPUs when not given
        self._feeding = False  # a feeder thread outlived its stop (see score's shutdown)

    def score(self, bundle_dir: Path, batches: Iterable[MiniBatch], key: str | None) -> Iterator[Outcome]:
        ray = import_ray()
        connected = self._connect(ray)
        quiet = _QuietConsole()
        try:
            yield from self._score(ray, bundle_dir, batches, key)
        finally:
            quiet.restore()
            if connected and not self._feeding:
                ray.shutdown()
            # else: a feeder thread that did not stop keeps the connection open; the process exits
            # later without it, instead of Ray ending the process for a call after the shutdown.

    def _connect(self, ray: Any) -> bool:
        """Connect (True) or use the process's existing connection (False); size the pool."""
        import logging

        connected = False
        if not ray.is_initialized():
            where = self.address or "a new local Ray"
            if self.address:
                _probe(self.address)
            try:
                ray.init(address=self.address, log_to_driver=False, logging_level=logging.WARNING)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ShipyardError(
                    f"cannot connect to the Ray cluster at {where}: {exc}; is it running "
                    "(`shipyard compute status`)?"
                ) from None
            connected = True
        cpus = int(ray.cluster_resources().get("CPU", 0))
        self.workers = self._requested or max(cpus, 1)
        if self.workers > cpus:
            if connected:
                ray.shutdown()
            raise UsageError(
                f"--workers {self.workers}: the Ray cluster at {self.address or 'this process'} has "
                f"{cpus} CPU(s) and each batch actor takes one; use --workers {max(cpus, 1)} or fewer"
            )
        return connected

    def _score(
        self, ray: Any, bundle_dir: Path, batches: Iterable[MiniBatch], key: str | None
    ) -> Iterator[Outcome]:
        from ray.data import ActorPoolStrategy
        from ray.data.block import BlockAccessor
        from ray.util.queue import Queue

        source = iter(batches)
        first = next(source, None)
        if first is None:
            return
        queue = Queue(actor_options={"num_cpus": 0})
        feeder = _Feeder(ray, queue, itertools.chain([first], source), IN_FLIGHT_PER_WORKER * self.workers)
        dataset = ray.data.read_datasource(_feed_datasource(queue), override_num_blocks=1, num_cpus=0)
        # This dataset's own settings (a copy of the process's DataContext): no progress bars or
        # stats (the CLI draws its own), and a target block size just under one mini-batch's: a
        # read task's output buffer holds blocks until they pass it (128 MiB by default), which
        # would starve the actors while the feeder waits for outcomes. A later mini-batch much
        # larger than the first is cut into pieces; `_assemble` puts them back together.
        context = dataset.context
        context.enable_progress_bars = context.enable_operator_progress_bars = False
        context.print_on_execution_start = context.enable_auto_log_stats = False
        block_bytes = BlockAccessor.for_block(_tagged(first)).size_bytes()
        context.target_max_block_size = max(1, int(block_bytes * BLOCK_SIZE_FACTOR))
        with warnings.catch_warnings():  # max_restarts has no named parameter yet (Ray 2.60)
            warnings.simplefilter("ignore", DeprecationWarning)
            dataset = dataset.map_batches(
                ScoreMiniBatches,
                fn_constructor_args=(str(bundle_dir), key),
                batch_size=first.table.num_rows,
                batch_format="pyarrow",
                compute=ActorPoolStrategy(size=self.workers),
                num_cpus=1,
                # Ray's default restarts a dead actor and retries its task forever: a model that kills
                # its interpreter (or runs out of memory) would never end the job. Fail it, as locally.
                max_restarts=0,
            )
        results = iter(dataset.iter_batches(batch_size=None, batch_format="pyarrow"))
        pieces: dict[int, list[dict[str, Any]]] = {}
        feeder.start()
        try:
            for table in results:
                for row in table.to_pylist():
                    outcome = _assemble(pieces, feeder.in_flight, row, bundle_dir)
                    if outcome is not None:
                        feeder.done(outcome.batch.index)
                        yield outcome
            feeder.join()
        except ray.exceptions.RayError as exc:  # the dataset failed: Ray has shut its executor down
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ShipyardError(
                f"the Ray cluster failed the batch job: {first_line}. An actor that died ran out of "
                "memory or its model crashed the interpreter (try fewer --workers or a smaller "
                "--mini-batch-rows); the cluster's nodes also need Shipyard installed. Its logs have more"
            ) from None
        except (GeneratorExit, Exception):
            # Stopped early (over the threshold, a bundle that does not load): end the feed and let
            # the dataset run out. Ray Data shuts its executor down only when its iterator is
            # exhausted; one left running touches the Ray worker after ray.shutdown(), and Ray
            # then exits the whole process. At most the mini-batches in flight are left to score.
            feeder.stop()
            with contextlib.suppress(ray.exceptions.RayError):  # the first error is the one to report
                for _ in results:
                    pass
            raise
        finally:
            feeder.stop()
            self._feeding = feeder.is_alive()
            if not self._feeding:
                queue.shutdown(force=True)


def _tagged(batch: MiniBatch) -> Any:
    """The mini-batch's table with its index and each row's number in the file as columns."""
    import pyarrow as pa

    n = batch.table.num_rows
    table = batch.table.append_column(INDEX, pa.array([batch.index] * n, pa.int64()))
    return table.append_column(ROW, pa.array(range(batch.first_row, batch.first_row + n), pa.int64()))


def _assemble(
    pieces: dict[int, list[dict[str, Any]]], in_flight: dict[int, MiniBatch], row: dict, bundle_dir: Path
):
    """The outcome of a mini-batch once all its rows are back, else None (more pieces to come)."""
    if row["kind"] == worker.LOAD_FAILED:
        error = row["value"].decode()
        if "not found" in error:  # it is here (the job checked): the actor's node does not see it
            error += (
                " (actors load the bundle from this path: a remote cluster's nodes need a shared filesystem)"
            )
        raise ShipyardError(f"cannot load the bundle {bundle_dir} in a Ray batch actor: {error}")
    got = pieces.setdefault(row["index"], [])
    got.append(row)
    batch = in_flight[row["index"]]
    if sum(p["rows"] for p in got) < batch.table.num_rows:
        return None
    del pieces[row["index"]]
    got.sort(key=lambda p: p["first_row"])
    failed = next((p for p in got if p["kind"] != worker.OK), None)
    if failed is not None:
        return Outcome(batch, None, failed["value"].decode())
    return Outcome(batch, [v for p in got for v in pickle.loads(p["value"])])


class _QuietConsole:
    """Ray Data's notices on the console ("progress bars disabled", "execution failed") are noise
    beside Shipyard's own progress and errors: errors only while a job runs. Its log file in the
    cluster's session folder keeps everything."""

    def __init__(self) -> None:
        import logging

        import ray.data  # noqa: F401  (configures its loggers on import: set ours after that)

        console = [h for h in logging.getLogger("ray.data").handlers if isinstance(h, logging.StreamHandler)]
        self.handlers = [(h, h.level) for h in console]
        for handler, _ in self.handlers:
            handler.setLevel(logging.ERROR)

    def restore(self) -> None:
        for handler, level in self.handlers:
            handler.setLevel(level)


class _Feeder(threading.Thread):
    """Reads mini-batches (in the driver) and hands them to the feed, at most `limit` in flight."""

    def __init__(self, ray: Any, queue: Any, batches: Iterator[MiniBatch], limit: int) -> None:
        super().__init__(name="shipyard-ray-feeder", daemon=True)
        self.ray, self.queue, self.batches = ray, queue, batches
        self.slots = threading.Semaphore(limit)
        self.in_flight: dict[int, MiniBatch] = {}
        self.error: BaseException | None = None
        self._stop_event = threading.Event()

    def run(self) -> None:
        try:
            for batch in self.batches:
                while not self.slots.acquire(timeout=FEED_POLL_S):
                    if self._stop_event.is_set():
                        return
                if self._stop_event.is_set():
                    return
                self.in_flight[batch.index] = batch
                self.queue.put((batch.index, self.ray.put(_tagged(batch))))
        except BaseException as exc:  # a bad input file: raised in the driver once the feed ends
            self.error = exc
        finally:
            try:
                self.queue.put(None)  # the feed's end, also when stopped early
            except Exception:  # the queue is gone: the job is ending anyway
                pass

    def done(self, index: int) -> None:
        del self.in_flight[index]
        self.slots.release()

    def join(self, timeout: float | None = None) -> None:
        super().join(timeout)
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        """Stop feeding and wait for the thread to end: a feeder still inside a Ray call after
        ray.shutdown() makes Ray exit the whole process. It checks the stop event at least every
        FEED_POLL_S and its calls return promptly (the queue is unbounded), so this is short."""
        self._stop_event.set()
        if self.is_alive():
            super().join(timeout=STOP_TIMEOUT_S)
