"""Claiming rows of a lease-based outbox: one statement for every such table.

The alert sink outbox (``dispatch``) and the reply-forwarding outbox
(``forward``) keep their due time and their lease in one column,
``available_at``, as the send outbox does: a claim moves it to the end of the
lease, so a crashed worker's rows come back by themselves.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import Integer, Table, bindparam, select, update
from sqlalchemy.sql.dml import ReturningUpdate

from landed.store import tables as t

__all__ = ["claim_statement"]


@functools.cache
def claim_statement(
    table: Table, returning: tuple[str, ...], postgresql: bool
) -> ReturningUpdate[Any]:
    """Take up to ``:limit`` rows due by ``:now`` until ``:until``, oldest first,
    returning ``returning``; on PostgreSQL, rows another worker is claiming are
    skipped (``FOR UPDATE SKIP LOCKED``), never waited for."""
    due = (
        select(table.c.id)
        .where(table.c.available_at <= bindparam("now", type_=t.UTCDateTime()))
        .order_by(table.c.available_at, table.c.id)
        .limit(bindparam("limit", type_=Integer()))
    )
    if postgresql:
        due = due.with_for_update(skip_locked=True)
    return (
        update(table)
        .where(table.c.id.in_(due.scalar_subquery()))
        .values(available_at=bindparam("until", type_=t.UTCDateTime()))
        .returning(*(table.c[name] for name in returning))
    )
