"""The migrations produce exactly the models' schema, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, select, text

from landed.store import Database
from landed.store import tables as t
from landed.store.tables import metadata


def test_migrations_match_models(database: Database) -> None:
    with database.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        diff = compare_metadata(context, metadata)
    assert diff == [], f"migrations and models differ: {diff}"


def test_schema_is_current_and_upgrade_is_idempotent(database: Database) -> None:
    assert database.current_revision() == database.head_revision()
    database.upgrade()
    database.check_current()
    assert database.current_revision() == database.head_revision()


def test_downgrade_to_base_and_back(database: Database) -> None:
    _downgrade(database, "base")
    assert database.current_revision() is None
    database.upgrade()
    assert database.current_revision() == database.head_revision()


def test_schema_revision_constant_is_alembics_head(database: Database) -> None:
    from landed.store.engine import SCHEMA_REVISION

    assert database.head_revision() == SCHEMA_REVISION


def test_check_current_on_an_empty_database_says_what_to_run(tmp_path: object) -> None:
    import pytest

    from landed.errors import ConfigError

    empty = Database(f"sqlite:///{tmp_path}/empty.db")
    with pytest.raises(ConfigError, match="landed db upgrade"):
        empty.check_current()


NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _seed_deliveries(conn: Connection, deliveries: list[dict[str, object]]) -> None:
    """One topic, recipient and notification, and these deliveries of it (each
    given its id and any columns to set; ``seq`` counts from 1)."""
    topic_id = conn.execute(
        t.topic.insert().values(key="INC-1", created_at=NOW).returning(t.topic.c.id)
    ).scalar_one()
    recipient_id = conn.execute(
        t.recipient.insert()
        .values(address="a@corp.test", last_seq=len(deliveries), created_at=NOW)
        .returning(t.recipient.c.id)
    ).scalar_one()
    conn.execute(
        t.notification.insert().values(
            id="01nnnnnnnnnnnnnnnnnnnnnnnn",
            topic_id=topic_id,
            cls="incident",
            sender="x@corp.test",
            subject="s",
            text="t",
            created_at=NOW,
        )
    )
    for seq, columns in enumerate(deliveries, 1):
        conn.execute(
            t.delivery.insert().values(
                notification_id="01nnnnnnnnnnnnnnnnnnnnnnnn",
                recipient_id=recipient_id,
                seq=seq,
                to_header="a@corp.test",
                token=f"token{seq}",
                ref=f"ref{seq}",
                message_id=f"<m{seq}@corp.test>",
                level="submitted",
                created_at=NOW,
                updated_at=NOW,
                **columns,
            )
        )


def _downgrade(database: Database, revision: str) -> None:
    from alembic import command

    cfg = database.alembic_config()
    with database.engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)
        conn.commit()


def test_0006_moves_due_times_both_ways(database: Database) -> None:
    """0006 moves ``delivery.due_at`` into ``delivery_due``; its downgrade moves it back."""
    due = NOW + timedelta(minutes=15)
    deliveries = ["01aaaaaaaaaaaaaaaaaaaaaaaa", "01bbbbbbbbbbbbbbbbbbbbbbbb"]
    with database.write() as conn:
        _seed_deliveries(conn, [{"id": d, "deadline_at": due} for d in deliveries])
        # The first is due at its deadline; the second has nothing pending.
        conn.execute(t.delivery_due.insert().values(delivery_id=deliveries[0], due_at=due))

    _downgrade(database, "0005")
    with database.read() as conn:
        pending = conn.execute(
            text("SELECT id FROM delivery WHERE due_at IS NOT NULL AND due_at = deadline_at")
        ).scalars()
        assert list(pending) == deliveries[:1]
        closed = conn.execute(text("SELECT count(*) FROM delivery WHERE due_at IS NULL"))
        assert closed.scalar() == 1

    database.upgrade()
    with database.read() as conn:
        moved = conn.execute(select(t.delivery_due.c.delivery_id, t.delivery_due.c.due_at)).all()
    assert [tuple(r) for r in moved] == [(deliveries[0], due)]


def test_0007_moves_outstanding_lists_both_ways(database: Database) -> None:
    """0007 moves the ``outstanding`` pairs into ``delivery.listed``; its downgrade
    moves them back."""
    ids = [f"01{c * 24}" for c in "abcd"]
    # #1 lists nothing, #2 lists #1, #3 lists #1 and #2, #4 lists nothing ("").
    listings = [None, ids[0], f"{ids[0]} {ids[1]}", ""]
    with database.write() as conn:
        _seed_deliveries(
            conn, [{"id": i, "listed": listed} for i, listed in zip(ids, listings, strict=True)]
        )

    _downgrade(database, "0006")
    with database.read() as conn:
        pairs = conn.execute(text("SELECT delivery_id, listed_delivery_id FROM outstanding")).all()
    assert sorted(tuple(p) for p in pairs) == [
        (ids[1], ids[0]),
        (ids[2], ids[0]),
        (ids[2], ids[1]),
    ]

    database.upgrade()
    with database.read() as conn:
        moved = dict(conn.execute(select(t.delivery.c.id, t.delivery.c.listed)).tuples().all())
    assert {k: set(v.split()) if v else None for k, v in moved.items()} == {
        ids[0]: None,
        ids[1]: {ids[0]},
        ids[2]: {ids[0], ids[1]},
        ids[3]: None,
    }
