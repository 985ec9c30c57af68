"""Shipyard's control-plane store (SQLAlchemy + Alembic)."""

from shipyard.store.db import Store, utcnow

__all__ = ["Store", "utcnow"]
