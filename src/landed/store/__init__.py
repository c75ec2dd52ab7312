"""The ledger: the only package that imports SQLAlchemy."""

from __future__ import annotations

from landed.store.engine import Database

__all__ = ["Database"]
