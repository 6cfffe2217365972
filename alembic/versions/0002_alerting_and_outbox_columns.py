"""alert rule state per target; incident key; outbox channel, kind and deadline

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "alert_states",
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("target"),
    )
    # Batch mode: SQLite can only add a unique constraint by rebuilding the table.
    with op.batch_alter_table("incidents") as batch:
        batch.add_column(sa.Column("key", sa.String(), nullable=True))
        batch.create_unique_constraint("uq_incidents_key", ["key"])
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("channel", sa.String(), nullable=True))
        batch.add_column(sa.Column("kind", sa.String(), nullable=True))
        batch.add_column(sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("deadline_at")
        batch.drop_column("kind")
        batch.drop_column("channel")
    with op.batch_alter_table("incidents") as batch:
        batch.drop_constraint("uq_incidents_key", type_="unique")
        batch.drop_column("key")
    op.drop_table("alert_states")
