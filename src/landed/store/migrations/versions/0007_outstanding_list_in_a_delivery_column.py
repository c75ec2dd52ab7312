"""the outstanding list in a delivery column

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29 07:40:00

What each email listed as still unconfirmed moves from the ``outstanding``
table (one row per listed delivery, each with two foreign keys) into
``delivery.listed``, the listed ids separated by spaces, written with the
delivery row. The pairs' inserts and their foreign-key checks were about a
third of PostgreSQL's work per notification (docs/benchmarks.md, "The
outstanding list in a column"). Existing lists move with it; the downgrade
moves them back.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN on both engines: Alembic's batch mode would copy the
    # table on SQLite, which fails while other tables refer to deliveries.
    op.add_column("delivery", sa.Column("listed", sa.Text(), nullable=True))
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "UPDATE delivery SET listed = (SELECT group_concat(listed_delivery_id, ' ') "
            "FROM outstanding WHERE outstanding.delivery_id = delivery.id) "
            "WHERE id IN (SELECT delivery_id FROM outstanding)"
        )
    else:
        op.execute(
            "UPDATE delivery SET listed = pairs.ids FROM ("
            "SELECT delivery_id, string_agg(listed_delivery_id, ' ' ORDER BY listed_delivery_id) "
            "AS ids FROM outstanding GROUP BY delivery_id) AS pairs "
            "WHERE delivery.id = pairs.delivery_id"
        )
    op.drop_table("outstanding")


def downgrade() -> None:
    op.create_table(
        "outstanding",
        sa.Column("delivery_id", sa.String(length=26), nullable=False),
        sa.Column("listed_delivery_id", sa.String(length=26), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"], ["delivery.id"], name=op.f("fk_outstanding_delivery_id_delivery")
        ),
        sa.ForeignKeyConstraint(
            ["listed_delivery_id"],
            ["delivery.id"],
            name=op.f("fk_outstanding_listed_delivery_id_delivery"),
        ),
        sa.PrimaryKeyConstraint("delivery_id", "listed_delivery_id", name=op.f("pk_outstanding")),
    )
    if op.get_bind().dialect.name == "sqlite":
        # No string splitting function in SQLite: peel one id off at a time.
        op.execute(
            "WITH RECURSIVE split(delivery_id, item, rest) AS ("
            "SELECT id, '', listed || ' ' FROM delivery WHERE listed IS NOT NULL "
            "UNION ALL SELECT delivery_id, substr(rest, 1, instr(rest, ' ') - 1), "
            "substr(rest, instr(rest, ' ') + 1) FROM split WHERE rest <> '') "
            "INSERT INTO outstanding (delivery_id, listed_delivery_id) "
            "SELECT DISTINCT delivery_id, item FROM split WHERE item <> ''"
        )
        op.execute("ALTER TABLE delivery DROP COLUMN listed")
    else:
        op.execute(
            "INSERT INTO outstanding (delivery_id, listed_delivery_id) "
            "SELECT DISTINCT id, item FROM delivery, "
            "unnest(string_to_array(listed, ' ')) AS item "
            "WHERE listed IS NOT NULL AND item <> ''"
        )
        op.drop_column("delivery", "listed")
