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
