"""Alias moves as one compare-and-set in the database, with their history in the same transaction.

MLflow's API can only set an alias unconditionally, so two machines that each decided "better
than production v1" would both move it, the second silently replacing the first. Here the move
is a conditional write on MLflow's own alias table, `UPDATE ... WHERE version = <expected>` (or an
INSERT that the primary key refuses when someone else created the alias first), committed
together with Shipyard's `AliasEvent`: either both happen or neither, on SQLite and PostgreSQL
alike, and a `kill -9` between the two cannot leave an unrecorded move. A lost race raises
`AliasConflict` carrying the version that won, so the caller can decide again.

This is the one place Shipyard writes an MLflow table; MLflow clients read the alias as usual
(tests check that MLflow's client sees every move).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import text
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shipyard.errors import NotFoundError, ShipyardError
from shipyard.store import utcnow
from shipyard.store.models import AliasEvent
from shipyard.workspace import Workspace


class AliasConflict(ShipyardError):
    """The alias no longer points where the caller expected: someone moved it first."""

    def __init__(self, name: str, alias: str, expected: str | None, current: str | None):
        self.name, self.alias, self.expected, self.current = name, alias, expected, current
        super().__init__(
            f"{name}@{alias} moved to {_v(current)} while this change expected {_v(expected)}; "
            "decide again against the new version"
        )


def _v(version: str | None) -> str:
    return f"v{version}" if version else "no version"


@dataclass
class AliasMove:
    model: str
    alias: str
    from_version: str | None
    to_version: str | None
    moved: bool

    def to_dict(self) -> dict[str, object]:
        return {
            "model": self.model,
            "alias": self.alias,
            "from": self.from_version,
            "to": self.to_version,
            "moved": self.moved,
        }


def current(ws: Workspace, name: str, alias: str) -> str | None:
    """The version `alias` points at now, read from the database (None when unset)."""
    with ws.store.session() as s:
        row = s.execute(
            text("SELECT version FROM registered_model_aliases WHERE name = :n AND alias = :a"),
            {"n": name, "a": alias},
        ).first()
    return str(row[0]) if row else None


def compare_and_set(
    ws: Workspace,
    name: str,
    alias: str,
    to_version: str,
    *,
    expected: str | None,
    reason: str,
    actor: str,
    pipeline_run_id: str | None = None,
) -> AliasMove:
    """Point `alias` at `to_version` only if it still points at `expected` (None: unset).

    Returns a move with `moved=False` when it already points at `to_version`; raises
    AliasConflict when it points anywhere else.
    """
    to_version, expected = str(to_version), (str(expected) if expected is not None else None)
    if expected == to_version:  # nothing to write, but the expectation must still hold
        now = current(ws, name, alias)
        if now != expected:
            raise AliasConflict(name, alias, expected, now)
        return AliasMove(name, alias, now, now, moved=False)
    params = {"n": name, "a": alias, "v": int(to_version)}
    try:
        with ws.store.session() as s:
            # The write comes first: on SQLite a transaction that read before writing can fail to
            # upgrade its snapshot; a write-first one waits for the lock instead.
            if expected is None:
                done = _changed(
                    s,
                    "INSERT INTO registered_model_aliases (workspace, name, alias, version) "
                    "SELECT workspace, name, :a, :v FROM registered_models WHERE name = :n",
                    params,
                )
                if done == 0:
                    raise NotFoundError(f"no registered model named {name!r}")
            else:
                done = _changed(
                    s,
                    "UPDATE registered_model_aliases SET version = :v "
                    "WHERE name = :n AND alias = :a AND version = :e",
                    params | {"e": int(expected)},
                )
                if done != 1:
                    raise _Lost()
            s.add(
                AliasEvent(
                    model_name=name,
                    alias=alias,
                    from_version=expected,
                    to_version=to_version,
                    actor=actor,
                    reason=reason,
                    pipeline_run_id=pipeline_run_id,
                    created_at=utcnow(),
                )
            )
    except (IntegrityError, _Lost):
        now = current(ws, name, alias)
        if now == to_version:
            return AliasMove(name, alias, now, now, moved=False)
        raise AliasConflict(name, alias, expected, now) from None
    return AliasMove(name, alias, expected, to_version, moved=True)


def compare_and_delete(
    ws: Workspace, name: str, alias: str, *, expected: str, reason: str, actor: str
) -> AliasMove:
    """Remove `alias` only if it still points at `expected`, recording the deletion (an event
    whose `to` is None) in the same transaction; raises AliasConflict when it moved."""
    try:
        with ws.store.session() as s:
            done = _changed(
                s,
                "DELETE FROM registered_model_aliases WHERE name = :n AND alias = :a AND version = :e",
                {"n": name, "a": alias, "e": int(expected)},
            )
            if done != 1:
                raise _Lost()
            s.add(
                AliasEvent(
                    model_name=name,
                    alias=alias,
                    from_version=expected,
                    to_version=None,
                    actor=actor,
                    reason=reason,
                    created_at=utcnow(),
                )
            )
    except _Lost:
        raise AliasConflict(name, alias, expected, current(ws, name, alias)) from None
    return AliasMove(name, alias, expected, None, moved=True)


class _Lost(Exception):
    """The conditional UPDATE matched no row (rolls the transaction back)."""


def _changed(s: Session, sql: str, params: dict[str, Any]) -> int:
    """The number of rows an INSERT, UPDATE or DELETE changed (a DML statement's result is a
    CursorResult, which Session.execute does not say)."""
    return cast(CursorResult[Any], s.execute(text(sql), params)).rowcount
