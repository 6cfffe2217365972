"""window_sketches: rollups merged over the runs of days and hours that status windows read

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "window_sketches",
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("since", UTC_TS, nullable=False),
        sa.Column("until", UTC_TS, nullable=False),
        sa.Column("periods", sa.Integer(), nullable=False),
        sa.Column("rolled_at", UTC_TS, nullable=False),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.Column("latency_sketch", sa.JSON(), nullable=False),
        sa.Column("ttft_sketch", sa.JSON(), nullable=False),
        sa.Column("tokens_per_s_sketch", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "target", "since", "until"),
    )


def downgrade() -> None:
    op.drop_table("window_sketches")
