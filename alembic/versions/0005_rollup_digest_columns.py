"""rollups.usage_counts and rollups.error_details: the digest's last raw-only figures

Hours rolled up before this revision keep NULL in both columns; the digest reads those
hours from raw rows (while they exist), so nothing is reported as a silent zero. No
backfill: re-rolling months of hours inside a migration would hold the schema lock for
minutes at startup, and the raw rows it would read are the ones the digest falls back to.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("rollups") as batch:
        batch.add_column(sa.Column("usage_counts", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("error_details", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rollups") as batch:
        batch.drop_column("error_details")
        batch.drop_column("usage_counts")
