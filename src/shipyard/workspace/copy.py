"""Copy a workspace into another one: how an embedded workspace (SQLite + files) moves into a
shared one (PostgreSQL + S3) with its history.

Both sides are first brought to the same schemas (Shipyard's migrations and MLflow's). Then every
table, MLflow's and ours, is copied in foreign-key order with its primary keys kept (run ids,
experiment ids, model versions, gate decision ids), so every reference between rows, and from our
rows to MLflow's, stays valid. Locations under the source artifact root are rewritten to the
destination's, and every object under the source artifact root is copied to the same key below
the destination's.

Copying is insert-only and idempotent: a row whose primary key is already in the destination is
left as it is and an object already there with the same size is skipped, so a second copy copies
nothing and a later one copies what was added since. What would silently merge two different
things (an experiment of the same name under another id, an id that is another experiment there,
a registered model of the same name created elsewhere) is refused before anything is written.

It drives whole workspaces (a Workspace each side and its artifact store), so it sits in
workspace/, above store/.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from sqlalchemy import Integer, MetaData, Table, func, inspect, select, text, tuple_
from sqlalchemy.engine import Connection, Engine

from shipyard.errors import ShipyardError, UsageError
from shipyard.store import urls
from shipyard.store.db import VERSION_TABLE

if TYPE_CHECKING:
    from shipyard.artifacts import ArtifactStore
    from shipyard.workspace import Workspace

BATCH_ROWS = 1000
MLFLOW_VERSION_TABLE = "alembic_version"
# Not copied: the two migration version tables (each side keeps its own; they are checked equal),
# and a running MLflow server's job locks and leases, which mean something only to that server.
SKIPPED_TABLES = frozenset({MLFLOW_VERSION_TABLE, VERSION_TABLE, "job_locks", "scheduler_leases"})

# Columns that hold a location in the artifact store (MLflow's dbmodels and store/models.py).
LOCATION_COLUMNS: dict[str, tuple[str, ...]] = {
    "experiments": ("artifact_location",),
    "runs": ("artifact_uri",),
    "model_versions": ("source", "storage_location"),
    "logged_models": ("artifact_location",),
    "shipyard_bundles": ("uri",),
    "shipyard_batch_jobs": ("output",),
}

# A row whose key is already in the destination must be the same thing there, not another one
# that happens to have the same id (ids assigned by each database) or name. These columns say
# what the thing is; they never change after it is created.
IDENTITY_COLUMNS: dict[str, tuple[str, ...]] = {
    "experiments": ("name", "creation_time"),
    "registered_models": ("creation_time",),
    "shipyard_step_runs": ("pipeline_run_id", "step"),
    "shipyard_gate_decisions": ("candidate_run_id", "created_at"),
    "shipyard_alias_events": ("model_name", "alias", "to_version", "created_at"),
    "shipyard_env_events": ("env", "action", "created_at"),
    "shipyard_endpoints": ("created_at",),
    "shipyard_compute": ("created_at",),
    "sql_trace_metric_daily_rollups": ("experiment_id", "rollup_day", "metric_name", "grouping_set"),
    "sql_span_cost_daily_rollups": ("experiment_id", "rollup_day", "metric_name", "grouping_set"),
    "sql_assessment_daily_rollups": ("experiment_id", "rollup_day", "metric_name", "grouping_set"),
}
# MLflow creates experiment 0 ("Default") in every database it opens: each side has its own.
DEFAULT_EXPERIMENT_ID = 0
BUNDLE_MANIFEST = "manifest.json"
_ARTIFACT_WORKERS = 8
_MAX_LISTED = 10

# progress(stage, name, done, total): stage "artifacts" (name "artifacts") or "table" (its name).
Progress = Callable[[str, str, int, int], None]


def copy_workspace(
    source: Workspace, dest_db_uri: str, dest_artifact_uri: str, *, progress: Progress | None = None
) -> dict[str, Any]:
    """Copy `source` into the workspace at `dest_db_uri` + `dest_artifact_uri` (created or
    migrated as needed) and verify the result.

    Returns {"source": ..., "dest": ..., "tables": {name: {"source", "dest", "copied"}},
    "artifacts": {"source", "dest", "copied", "skipped"}, "verified": True}; URIs in it are
    redacted. Raises ShipyardError on a conflict (nothing written), differing MLflow schemas, or a
    failed verification.
    """
    from shipyard.config.models import WorkspaceSettings
    from shipyard.workspace import Workspace

    dest_db_uri = urls.normalize(dest_db_uri)
    dest_artifact_uri = dest_artifact_uri.rstrip("/")
    if urls.redact(dest_db_uri) == urls.redact(source.database_uri):
        raise UsageError(
            f"the destination database {urls.redact(dest_db_uri)} is this workspace's own: "
            "copy into another database"
        )
    if dest_artifact_uri == source.artifact_uri.rstrip("/"):
        raise UsageError(
            f"the destination artifact store {urls.redact(dest_artifact_uri)} is this workspace's own: "
            "copy into another location"
        )
    # The destination's root holds nothing of value here (its locks live in its database, or
    # beside its SQLite file), so a temporary folder keeps this machine's folders untouched.
    with tempfile.TemporaryDirectory(prefix="shipyard-copy-") as tmp:
        settings = WorkspaceSettings(root=tmp, database_uri=dest_db_uri, artifact_uri=dest_artifact_uri)
        dest = Workspace.get_or_create(settings)
        try:
            return _WorkspaceCopy(source, dest, progress).run()
        finally:
            dest.store.dispose()


@dataclass
class _TablePair:
    name: str
    source: Table
    dest: Table
    key: list[str]  # primary key columns (every column for a table without one)
    columns: list[str]  # what is copied: the source's columns
    identity: tuple[str, ...] | None
    source_rows: int = 0
    copied: int = 0

    @property
    def integer_id(self) -> bool:
        """One integer key column: ids handed out by each database (a sequence on PostgreSQL)."""
        return len(self.key) == 1 and isinstance(self.dest.c[self.key[0]].type, Integer)


class LocationRewriter:
    """Maps a location under the source artifact root to the same place under the destination's.

    The source root is matched as written in its URI and in the other forms the same folder takes
    (`file:/path`, `file://localhost/path`, the plain path: bundles record a plain path). A plain
    path becomes a plain path when the destination is a folder too, else the destination URI.
    """

    def __init__(self, source_uri: str, dest_uri: str):
        self.dest_uri = dest_uri.rstrip("/")
        parsed = urlparse(self.dest_uri)
        self.dest_path = unquote(parsed.path).rstrip("/") if parsed.scheme == "file" else None
        source_uri = source_uri.rstrip("/")
        self.source_path: str | None = None
        forms: list[tuple[str, bool]] = [(source_uri, False)]
        parsed = urlparse(source_uri)
        if parsed.scheme == "file":
            path = unquote(parsed.path).rstrip("/")
            self.source_path = path
            forms += [(f"file:{path}", False), (f"file://localhost{path}", False), (f"file://{path}", False)]
            forms += [(path, True), (parsed.path.rstrip("/"), True)]
        # Longest first, so that "file:///a" is not taken for a plain-path match of "file:".
        self.forms = sorted(set(forms), key=lambda f: len(f[0]), reverse=True)

    def __call__(self, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        for prefix, plain in self.forms:
            if value == prefix or value.startswith(prefix + "/"):
                rest = value[len(prefix) :]
                if plain and self.dest_path is not None:
                    return self.dest_path + rest
                return self.dest_uri + rest
        return value

    def source_key(self, value: str) -> str | None:
        """The artifact key of a location under the source root (None when it is not)."""
        for prefix, _ in self.forms:
            if value.startswith(prefix + "/"):
                return value[len(prefix) + 1 :]
        return None


class _WorkspaceCopy:
    def __init__(self, source: Workspace, dest: Workspace, progress: Progress | None):
        self.source = source
        self.dest = dest
        self.progress: Progress = progress or (lambda stage, name, done, total: None)
        self.rewrite = LocationRewriter(source.artifact_uri, dest.artifact_uri)
        self.secrets = [s for s in (_password(source.database_uri), _password(dest.database_uri)) if s]
        self.reused_ids = False  # a conflict on an id the destination handed out itself

    def run(self) -> dict[str, Any]:
        self._prepare_schemas()
        tables = self._plan()
        with self.source.store.engine.connect() as sconn:
            _read_snapshot(sconn, self.source.database_uri)
            conflicts = self._conflicts(sconn, tables)
            if conflicts:
                listed = "\n".join(f"  - {c}" for c in conflicts[:_MAX_LISTED])
                more = (
                    f"\n  ... and {len(conflicts) - _MAX_LISTED} more" if len(conflicts) > _MAX_LISTED else ""
                )
                used = (
                    " Records made in the source after an earlier copy cannot keep their ids once the "
                    "destination has been used: after moving in, work in the shared workspace only."
                    if self.reused_ids
                    else ""
                )
                raise ShipyardError(
                    f"cannot copy into {urls.redact(self.dest.database_uri)}: it holds other things under "
                    f"the same names or ids:\n{listed}{more}\nNothing was copied. Copy into an empty "
                    "database (or one this workspace was copied into before), or rename the conflicting "
                    f"ones on one side first (MLflow: rename_experiment, rename_registered_model).{used}"
                )
            artifacts = self._copy_artifacts()
            hashes = self._store_bundles(sconn)
            self._copy_rows(sconn, tables, hashes)
            report = self._verify(sconn, tables, artifacts)
            sconn.rollback()
        return report

    # -- schemas ---------------------------------------------------------------------------------
    def _prepare_schemas(self) -> None:
        import mlflow

        for side, ws in (("source", self.source), ("destination", self.dest)):
            try:
                ws.mlflow  # noqa: B018 - opening the client creates or migrates MLflow's tables
            except ShipyardError:
                raise
            except Exception as exc:
                raise ShipyardError(
                    f"cannot open MLflow's tables in the {side} database {urls.redact(ws.database_uri)}: "
                    f"{self._scrub(_first_line(exc))}"
                ) from None
        # Opening a client points MLflow's globals (and MLFLOW_TRACKING_URI, which child processes
        # inherit) at that database: give them back to the source.
        mlflow.set_tracking_uri(self.source.database_uri)
        mlflow.set_registry_uri(self.source.database_uri)
        revisions = {
            side: (_mlflow_revision(ws.store.engine), ws.store.current_revision())
            for side, ws in (("source", self.source), ("destination", self.dest))
        }
        (src_mlflow, src_ours), (dst_mlflow, dst_ours) = revisions["source"], revisions["destination"]
        if src_mlflow != dst_mlflow:
            raise ShipyardError(
                f"MLflow's schema differs: revision {src_mlflow} in the source, {dst_mlflow} in the "
                f"destination {urls.redact(self.dest.database_uri)}. Both must be at the same revision: "
                "use the MLflow version that last migrated the destination (pip show mlflow on the "
                "machines that use it) and run the copy again"
            )
        if src_ours != dst_ours:
            raise ShipyardError(
                f"Shipyard's schema differs: revision {src_ours} in the source, {dst_ours} in the "
                f"destination {urls.redact(self.dest.database_uri)}: use the same Shipyard version on "
                "both sides"
            )

    def _plan(self) -> list[_TablePair]:
        smeta, dmeta = MetaData(), MetaData()
        smeta.reflect(self.source.store.engine)
        dmeta.reflect(self.dest.store.engine)
        pairs: list[_TablePair] = []
        missing: list[str] = []
        for table in smeta.sorted_tables:
            if table.name in SKIPPED_TABLES:
                continue
            dest = dmeta.tables.get(table.name)
            if dest is None:
                missing.append(f"table {table.name}")
                continue
            absent = [c.name for c in table.columns if c.name not in dest.c]
            if absent:
                missing.append(f"{table.name}.{', '.join(absent)}")
                continue
            key = [c.name for c in table.primary_key.columns] or [c.name for c in table.columns]
            pair = _TablePair(table.name, table, dest, key, [c.name for c in table.columns], None)
            identity = IDENTITY_COLUMNS.get(table.name)
            if identity is None and pair.integer_id:
                identity = tuple(c for c in pair.columns if c not in key and c not in _locations(table.name))
            pair.identity = tuple(c for c in identity if c in table.c) if identity else None
            pairs.append(pair)
        if missing:
            raise ShipyardError(
                f"the destination {urls.redact(self.dest.database_uri)} lacks {', '.join(missing)} that "
                "the source has: both sides must be at the same MLflow and Shipyard schema"
            )
        return pairs

    # -- conflicts -------------------------------------------------------------------------------
    def _conflicts(self, sconn: Connection, tables: list[_TablePair]) -> list[str]:
        problems: list[str] = []
        with self.dest.store.engine.connect() as dconn:
            inspector = inspect(dconn)
            for pair in tables:
                for columns in _unique_sets(inspector, pair):
                    problems += self._unique_conflicts(sconn, dconn, pair, columns)
                if pair.identity:
                    problems += self._identity_conflicts(sconn, dconn, pair)
        return problems

    def _unique_conflicts(
        self, sconn: Connection, dconn: Connection, pair: _TablePair, columns: list[str]
    ) -> list[str]:
        """Rows whose unique columns (an experiment's name) belong to another key in the destination."""
        n = len(columns)
        query = select(*(pair.dest.c[c] for c in columns), *(pair.dest.c[k] for k in pair.key))
        taken = {tuple(r[:n]): tuple(r[n:]) for r in dconn.execute(query)}
        if not taken:
            return []
        problems = []
        query = select(*(pair.source.c[c] for c in columns), *(pair.source.c[k] for k in pair.key))
        for row in sconn.execute(query):
            values, key = tuple(row[:n]), tuple(row[n:])
            other = taken.get(values)
            if None not in values and other is not None and other != key:
                problems.append(_describe_unique(pair, columns, values, key, other))
        return problems

    def _identity_conflicts(self, sconn: Connection, dconn: Connection, pair: _TablePair) -> list[str]:
        """Rows whose key is in the destination as another thing (another experiment with id 1)."""
        assert pair.identity
        nk = len(pair.key)
        problems = []
        query = select(*(pair.source.c[k] for k in pair.key), *(pair.source.c[c] for c in pair.identity))
        for chunk in _chunks(sconn.execute(query), BATCH_ROWS):
            keys = [tuple(r[:nk]) for r in chunk]
            there = select(*(pair.dest.c[k] for k in pair.key), *(pair.dest.c[c] for c in pair.identity))
            existing = {
                tuple(r[:nk]): tuple(r[nk:])
                for r in dconn.execute(there.where(_key_in(pair.dest, pair.key, keys)))
            }
            for row, key in zip(chunk, keys, strict=True):
                ours = tuple(row[nk:])
                if key not in existing or existing[key] == ours:
                    continue
                if pair.name == "experiments" and key == (DEFAULT_EXPERIMENT_ID,):
                    continue
                problems.append(_describe_identity(pair, key, ours, existing[key]))
                self.reused_ids |= pair.integer_id and pair.name != "experiments"
        return problems

    # -- artifacts -------------------------------------------------------------------------------
    def _copy_artifacts(self) -> dict[str, int]:
        src, dst = self.source.artifacts, self.dest.artifacts
        src_sizes, dst_sizes = object_sizes(src), object_sizes(dst)
        todo = [k for k, size in src_sizes.items() if not _same_object(size, dst_sizes, k)]
        self.progress("artifacts", "artifacts", 0, len(todo))
        with tempfile.TemporaryDirectory(prefix="shipyard-copy-") as tmp:
            with ThreadPoolExecutor(max_workers=_ARTIFACT_WORKERS) as pool:
                futures = [pool.submit(_copy_object, src, dst, key, Path(tmp)) for key in todo]
                try:
                    for done, future in enumerate(as_completed(futures), 1):
                        future.result()
                        self.progress("artifacts", "artifacts", done, len(todo))
                except BaseException:
                    for future in futures:
                        future.cancel()
                    raise
        return {"source": len(src_sizes), "copied": len(todo), "skipped": len(src_sizes) - len(todo)}

    def _store_bundles(self, sconn: Connection) -> dict[str, str]:
        """Bundles recorded as a folder on this machine, moving to a remote store: write the
        `.complete` marker a stored bundle needs (its content hash) and return id → hash, the
        `stored_hash` their rows get in the destination."""
        from shipyard.artifacts.cache import HASH_FUNCTIONS, read_marker
        from shipyard.artifacts.store import COMPLETE_MARKER, join_key
        from shipyard.data.hashing import tree_sha256

        if self.dest.local_artifacts or not inspect(sconn).has_table("shipyard_bundles"):
            return {}
        hashes: dict[str, str] = {}
        rows = sconn.execute(text("SELECT id, uri, stored_hash FROM shipyard_bundles")).all()
        for bundle_id, uri, stored_hash in rows:
            prefix = self.rewrite.source_key(uri or "")
            if stored_hash is not None or prefix is None or self.rewrite.source_path is None:
                continue  # already stored with its hash, or not in the source's folder
            folder = Path(self.rewrite.source_path, prefix)
            if not (folder / BUNDLE_MANIFEST).is_file():
                continue  # gone from this machine: the destination will package it again
            content_hash = tree_sha256(folder)
            marker = read_marker(self.dest.artifacts, prefix)
            if marker is None or marker.get("content_hash") != content_hash:
                files = [p for p in folder.rglob("*") if p.is_file()]
                body = {
                    "content_hash": content_hash,
                    "hash_function": HASH_FUNCTIONS["dir"],
                    "files": len(files),
                    "size_bytes": sum(p.stat().st_size for p in files),
                }
                data = json.dumps(body, sort_keys=True).encode()
                self.dest.artifacts.put_bytes(data, join_key(prefix, COMPLETE_MARKER))
            hashes[bundle_id] = content_hash
        return hashes

    # -- rows ------------------------------------------------------------------------------------
    def _copy_rows(self, sconn: Connection, tables: list[_TablePair], hashes: dict[str, str]) -> None:
        with ExitStack() as stack:
            # Nobody creates an experiment or registers a version in the destination meanwhile: their
            # ids would race the explicit ones copied here.
            stack.enter_context(self.dest.lock("experiments"))
            stack.enter_context(self.dest.lock("registry"))
            with self.dest.store.engine.begin() as dconn:
                for pair in tables:
                    try:
                        self._copy_table(sconn, dconn, pair, hashes)
                    except ShipyardError:
                        raise
                    except Exception as exc:
                        raise ShipyardError(
                            f"copying table {pair.name} into {urls.redact(self.dest.database_uri)} failed "
                            f"({type(exc).__name__}: {self._scrub(_first_line(exc))}); nothing was "
                            "committed: fix the cause and run the copy again"
                        ) from None
                if self.dest.database_uri.startswith("postgresql"):
                    _reset_sequences(dconn, tables)

    def _copy_table(
        self, sconn: Connection, dconn: Connection, pair: _TablePair, hashes: dict[str, str]
    ) -> None:
        pair.source_rows = sconn.execute(select(func.count()).select_from(pair.source)).scalar_one()
        self.progress("table", pair.name, 0, pair.source_rows)
        if not pair.source_rows:
            return
        locations = [c for c in _locations(pair.name) if c in pair.columns]
        query = select(*(pair.source.c[c] for c in pair.columns)).execution_options(yield_per=BATCH_ROWS)
        done = 0
        for chunk in sconn.execute(query).mappings().partitions(BATCH_ROWS):
            keys = [tuple(row[k] for k in pair.key) for row in chunk]
            existing = _existing_keys(dconn, pair.dest, pair.key, keys)
            rows = []
            for row, key in zip(chunk, keys, strict=True):
                if key in existing:
                    continue
                values = dict(row)
                for column in locations:
                    values[column] = self.rewrite(values[column])
                if pair.name == "shipyard_bundles" and values["id"] in hashes:
                    values["stored_hash"] = hashes[values["id"]]
                rows.append(values)
            if rows:
                dconn.execute(pair.dest.insert(), rows)
                pair.copied += len(rows)
            done += len(chunk)
            self.progress("table", pair.name, done, pair.source_rows)

    # -- verification ----------------------------------------------------------------------------
    def _verify(
        self, sconn: Connection, tables: list[_TablePair], artifacts: dict[str, int]
    ) -> dict[str, Any]:
        problems: list[str] = []
        report: dict[str, dict[str, int]] = {}
        with self.dest.store.engine.connect() as dconn:
            for pair in tables:
                source_rows = sconn.execute(select(func.count()).select_from(pair.source)).scalar_one()
                dest_rows = dconn.execute(select(func.count()).select_from(pair.dest)).scalar_one()
                report[pair.name] = {"source": source_rows, "dest": dest_rows, "copied": pair.copied}
                if dest_rows < source_rows:
                    problems.append(
                        f"table {pair.name}: {dest_rows} rows in the destination, {source_rows} in the source"
                    )
                    continue
                query = select(*(pair.source.c[k] for k in pair.key)).execution_options(yield_per=BATCH_ROWS)
                absent = 0
                for chunk in sconn.execute(query).partitions(BATCH_ROWS):
                    keys = [tuple(r) for r in chunk]
                    absent += len(set(keys) - _existing_keys(dconn, pair.dest, pair.key, keys))
                if absent:
                    problems.append(f"table {pair.name}: {absent} source rows missing in the destination")
        src_sizes, dst_sizes = object_sizes(self.source.artifacts), object_sizes(self.dest.artifacts)
        lost = [k for k, size in src_sizes.items() if not _same_object(size, dst_sizes, k)]
        if lost:
            problems.append(
                f"artifacts: {len(lost)} objects missing or of another size in the destination "
                f"(first: {', '.join(lost[:3])})"
            )
        if problems:
            raise ShipyardError(
                f"the copy into {urls.redact(self.dest.database_uri)} did not verify:\n"
                + "\n".join(f"  - {p}" for p in problems[:_MAX_LISTED])
                + "\nRun the copy again (it copies only what is missing); if this persists, something "
                "else is deleting from the destination"
            )
        return {
            "source": {
                "database": urls.redact(self.source.database_uri),
                "artifacts": urls.redact(self.source.artifact_uri),
            },
            "dest": {
                "database": urls.redact(self.dest.database_uri),
                "artifacts": urls.redact(self.dest.artifact_uri),
            },
            "tables": report,
            "artifacts": {**artifacts, "dest": len(dst_sizes)},
            "verified": True,
        }

    def _scrub(self, message: str) -> str:
        for secret in self.secrets:
            message = message.replace(secret, "***")
        return message


# -- helpers ---------------------------------------------------------------------------------------
def _read_snapshot(conn: Connection, uri: str) -> None:
    """Read every table from one consistent state of the source (a run finishing meanwhile must
    not leave metrics whose run was not read)."""
    if urls.is_sqlite(uri):
        # pysqlite begins transactions only before writes; an explicit one holds a WAL read snapshot.
        conn.exec_driver_sql("BEGIN")
    elif uri.startswith("postgresql"):
        conn.execution_options(isolation_level="REPEATABLE READ")


def _mlflow_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not inspect(conn).has_table(MLFLOW_VERSION_TABLE):
            return None
        return conn.execute(text(f"SELECT version_num FROM {MLFLOW_VERSION_TABLE}")).scalar()


def _locations(table: str) -> tuple[str, ...]:
    return LOCATION_COLUMNS.get(table, ())


def _unique_sets(inspector: Any, pair: _TablePair) -> list[list[str]]:
    """The destination's unique constraints and unique indexes on `pair` (the key excepted)."""
    sets = [u["column_names"] for u in inspector.get_unique_constraints(pair.name)]
    sets += [i["column_names"] for i in inspector.get_indexes(pair.name) if i.get("unique")]
    out: list[list[str]] = []
    for cols in sets:
        if (
            cols
            and sorted(cols) != sorted(pair.key)
            and all(c in pair.source.c for c in cols)
            and cols not in out
        ):
            out.append(list(cols))
    return out


def _key_in(table: Table, key: Sequence[str], keys: Sequence[tuple[Any, ...]]) -> Any:
    columns = [table.c[k] for k in key]
    if len(columns) == 1:
        return columns[0].in_([k[0] for k in keys])
    return tuple_(*columns).in_(keys)


def _existing_keys(
    conn: Connection, table: Table, key: Sequence[str], keys: Sequence[tuple[Any, ...]]
) -> set[tuple[Any, ...]]:
    if not keys:
        return set()
    query = select(*(table.c[k] for k in key)).where(_key_in(table, key, keys))
    return {tuple(r) for r in conn.execute(query)}


def _reset_sequences(conn: Connection, tables: Iterable[_TablePair]) -> None:
    """After explicit ids, move each PostgreSQL sequence past the largest id, or the next insert
    there (a new experiment, a gate decision) would collide with a copied row."""
    for pair in tables:
        if not pair.integer_id:
            continue
        column = pair.key[0]
        sequence = conn.execute(
            text("SELECT pg_get_serial_sequence(:table, :column)"), {"table": pair.name, "column": column}
        ).scalar()
        if not sequence:
            continue
        top = conn.execute(select(func.max(pair.dest.c[column]))).scalar()
        # `sequence` comes from PostgreSQL itself (schema-qualified, quoted where needed).
        last, called = conn.execute(text(f"SELECT last_value, is_called FROM {sequence}")).one()
        current = last if called else last - 1
        if top is not None and top > current:
            conn.execute(
                text("SELECT setval(CAST(:seq AS regclass), :value)"), {"seq": sequence, "value": top}
            )


def object_sizes(store: ArtifactStore) -> dict[str, int]:
    """Every key of `store` with its size in bytes."""
    return store.sizes("")


def _same_object(size: int | None, dest_sizes: Mapping[str, int | None], key: str) -> bool:
    """Is `key` already in the destination (with the same size, where both sizes are known)?"""
    if key not in dest_sizes:
        return False
    other = dest_sizes[key]
    return size is None or other is None or size == other


def _copy_object(src: ArtifactStore, dst: ArtifactStore, key: str, tmp: Path) -> None:
    root = getattr(src, "root", None)
    if isinstance(root, Path):  # a file store: upload the file itself
        dst.put_file(root / key, key)
        return
    local = tmp / uuid.uuid4().hex
    try:
        src.get_file(key, local)
        dst.put_file(local, key)
    finally:
        local.unlink(missing_ok=True)


def _chunks(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _describe_unique(
    pair: _TablePair,
    columns: list[str],
    values: tuple[Any, ...],
    key: tuple[Any, ...],
    other: tuple[Any, ...],
) -> str:
    shown = {c: v for c, v in zip(columns, values, strict=True) if c != "workspace"}
    if pair.name == "experiments" and "name" in shown:
        return (
            f"experiment {shown['name']!r} has id {_one(other)} in the destination and id {_one(key)} "
            "in the source"
        )
    what = ", ".join(f"{c}={v!r}" for c, v in shown.items())
    return f"{pair.name}: {what} is row {_one(other)} in the destination and row {_one(key)} in the source"


def _describe_identity(
    pair: _TablePair, key: tuple[Any, ...], ours: tuple[Any, ...], theirs: tuple[Any, ...]
) -> str:
    assert pair.identity
    src = dict(zip(pair.identity, ours, strict=True))
    dst = dict(zip(pair.identity, theirs, strict=True))
    if pair.name == "experiments":
        if src.get("name") != dst.get("name"):
            return (
                f"experiment id {_one(key)} is {dst.get('name')!r} in the destination but "
                f"{src.get('name')!r} in the source"
            )
        return (
            f"experiment {src.get('name')!r} (id {_one(key)}) in the destination is another experiment "
            "of that name (created at another time)"
        )
    if pair.name == "registered_models":
        name = key[-1]
        return (
            f"registered model {name!r} in the destination is another model of that name "
            "(created at another time)"
        )
    if pair.name in ("shipyard_endpoints", "shipyard_compute"):
        kind = "endpoint" if pair.name == "shipyard_endpoints" else "compute target"
        return (
            f"{kind} {_one(key)!r} in the destination is another one of that name (created at another time)"
        )
    diff = ", ".join(f"{c}: {dst[c]!r} there, {src[c]!r} here" for c in pair.identity if src[c] != dst[c])
    return f"{pair.name} row {_one(key)} is another row in the destination ({diff})"


def _one(key: tuple[Any, ...]) -> Any:
    return key[0] if len(key) == 1 else key


def _password(uri: str) -> str | None:
    from sqlalchemy.engine import make_url

    try:
        return make_url(uri).password or None
    except Exception:  # noqa: BLE001 - an unparseable URI has no password to hide
        return None


def _first_line(exc: BaseException) -> str:
    inner = getattr(exc, "orig", None) or exc
    lines = str(inner).strip().splitlines()
    return " ".join(lines[0].split())[:500] if lines else type(inner).__name__


__all__ = ["LocationRewriter", "copy_workspace", "object_sizes"]
