"""daily rollups (exact sums of 24 hourly rows) and the days that have them

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "rollups_daily",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("day", UTC_TS, nullable=False),
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("probe", sa.String(), nullable=False),
        sa.Column("location", sa.String(), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("ok_count", sa.Integer(), nullable=False),
        sa.Column("maintenance_count", sa.Integer(), nullable=False),
        sa.Column("sli_ok_count", sa.Integer(), nullable=False),
        sa.Column("sli_rate_limited_count", sa.Integer(), nullable=False),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.Column("latency_sketch", sa.JSON(), nullable=False),
        sa.Column("ttft_sketch", sa.JSON(), nullable=False),
        sa.Column("tokens_per_s_sketch", sa.JSON(), nullable=False),
        sa.Column("cost_usd", sa.Float(), nullable=False),
        sa.Column("cost_count", sa.Integer(), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cached_tokens", sa.BigInteger(), nullable=False),
        sa.Column("reasoning_tokens", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("day", "target", "probe", "location", name="uq_rollups_daily_key"),
    )
    op.create_index(
        "ix_rollups_daily_target_day_counts",
        "rollups_daily",
        ["target", "day", "total", "maintenance_count", "sli_ok_count", "sli_rate_limited_count"],
    )
    op.create_table(
        "rolled_days",
        sa.Column("day", UTC_TS, nullable=False),
        sa.Column("rolled_at", UTC_TS, nullable=False),
        sa.PrimaryKeyConstraint("day"),
    )


def downgrade() -> None:
    op.drop_table("rolled_days")
    op.drop_index("ix_rollups_daily_target_day_counts", table_name="rollups_daily")
    op.drop_table("rollups_daily")
