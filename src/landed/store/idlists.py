"""A list of ids as one bind parameter, on SQLite and PostgreSQL.

``column.in_(ids)`` renders one bind parameter per id: for a batch of a
hundred or a thousand deliveries SQLAlchemy and the driver then spend more
time writing and parsing the statement than the database spends running it,
and each statement text is new to the driver's cache. One parameter instead:
on PostgreSQL a comma-separated string split by ``string_to_array`` (cheaper
to send than a text array, which psycopg quotes element by element), on
SQLite a JSON array read by ``json_each`` (built in since SQLite 3.38, and in
the json1 extension compiled into Python's before that). Ids are base32, hex
or integers: never a comma.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, String, bindparam, cast, func, select
from sqlalchemy.dialects.postgresql import ARRAY

__all__ = ["id_list", "one_of"]


def one_of(
    dialect: str, column: ColumnElement[Any], name: str, *, integers: bool = False
) -> ColumnElement[bool]:
    """``column`` is one of the ids bound to ``name`` (see ``id_list``)."""
    if dialect == "postgresql":
        split: ColumnElement[Any] = func.string_to_array(bindparam(name, type_=String()), ",")
        if integers:
            split = cast(split, ARRAY(BigInteger()))
        # A semi-join with the split list, not ``= ANY (string_to_array(...))``:
        # psycopg prepares a statement after a few runs, and in PostgreSQL's
        # generic plan for it that array is not folded to a constant. Where the
        # plan filters rows rather than probing an index (a small table, planned
        # before it grew), the list was split again, and searched element by
        # element, for every row: 20-50 ms for a hundred ids against a few
        # thousand evidence rows (bench/send.py's ledgers). A semi-join splits
        # it once, then probes an index or a hash of it.
        return column.in_(select(func.unnest(split)))
    values = func.json_each(bindparam(name, type_=String())).table_valued("value")
    return column.in_(select(values.c.value))


def id_list(dialect: str, ids: Iterable[str | int]) -> str:
    """The parameter value for ``one_of``."""
    values = list(ids)
    if dialect != "postgresql":
        return json.dumps(values)
    joined = ",".join(map(str, values))
    if joined.count(",") != max(len(values) - 1, 0):
        raise ValueError("an id holds a comma")
    return joined
