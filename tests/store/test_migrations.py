"""The migrations produce exactly the models' schema, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from landed.store import Database
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
    from alembic import command

    cfg = database.alembic_config()
    with database.engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
        conn.commit()
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


def test_0006_moves_due_times_both_ways(database: Database) -> None:
    """0006 moves ``delivery.due_at`` into ``delivery_due``; its downgrade moves it back."""
    from datetime import UTC, datetime, timedelta

    from alembic import command
    from sqlalchemy import select, text

    from landed.store import tables as t

    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    due = now + timedelta(minutes=15)
    deliveries = ["01aaaaaaaaaaaaaaaaaaaaaaaa", "01bbbbbbbbbbbbbbbbbbbbbbbb"]
    with database.write() as conn:
        topic_id = conn.execute(
            t.topic.insert().values(key="INC-1", created_at=now).returning(t.topic.c.id)
        ).scalar_one()
        recipient_id = conn.execute(
            t.recipient.insert()
            .values(address="a@corp.test", last_seq=2, created_at=now)
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
                created_at=now,
            )
        )
        for seq, delivery_id in enumerate(deliveries, 1):
            conn.execute(
                t.delivery.insert().values(
                    id=delivery_id,
                    notification_id="01nnnnnnnnnnnnnnnnnnnnnnnn",
                    recipient_id=recipient_id,
                    seq=seq,
                    to_header="a@corp.test",
                    token=f"token{seq}",
                    ref=f"ref{seq}",
                    message_id=f"<m{seq}@corp.test>",
                    level="submitted",
                    created_at=now,
                    updated_at=now,
                    deadline_at=due,
                )
            )
        # The first is due at its deadline; the second has nothing pending.
        conn.execute(t.delivery_due.insert().values(delivery_id=deliveries[0], due_at=due))

    cfg = database.alembic_config()
    with database.engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0005")
        conn.commit()
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
