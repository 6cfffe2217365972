"""A fleet: one heartbeat row per running node, and Retry-After holds shared by every node
and kept across restarts

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "nodes",
        sa.Column("node", sa.String(), primary_key=True),
        sa.Column("location", sa.String(), nullable=False),
        sa.Column("version", sa.String(), nullable=False),
        sa.Column("started_at", UTC_TS, nullable=False),
        sa.Column("last_seen", UTC_TS, nullable=False),
        sa.Column("leader", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("stopped_at", UTC_TS, nullable=True),
    )
    op.create_table(
        "route_holds",
        sa.Column("target", sa.String(), primary_key=True),
        sa.Column("held_until", UTC_TS, nullable=False),
        sa.Column("hold_s", sa.Float(), nullable=False),
        sa.Column("set_at", UTC_TS, nullable=False),
        sa.Column("set_by", sa.String(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("route_holds")
    op.drop_table("nodes")
