"""Fleet rounds for the SLO: each target's interval and quorum on its row, and the round
counts of each hourly and daily rollup (checker.store.fleet_rounds)

Rollups made before this revision keep NULL round counts: readers count each of their
results, as before, and the rollup job rolls the last day's hours up again.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TARGET_COLUMNS = (
    ("interval_s", sa.Float()),
    ("quorum_locations", sa.Integer()),
    ("quorum_share", sa.Float()),
)
COUNTS = ("total", "maintenance_count", "sli_ok_count", "sli_rate_limited_count")
FLEET = ("fleet_valid", "fleet_bad", "fleet_valid_no_rl", "fleet_bad_no_rl")
# (table, its period column, its covering count index)
ROLLUP_TABLES = (
    ("rollups", "hour", "ix_rollups_target_hour_counts"),
    ("rollups_daily", "day", "ix_rollups_daily_target_day_counts"),
)


def upgrade() -> None:
    with op.batch_alter_table("targets") as batch:
        for name, type_ in TARGET_COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))
    for table, period, index in ROLLUP_TABLES:
        op.drop_index(index, table_name=table)
        with op.batch_alter_table(table) as batch:
            for name in FLEET:
                batch.add_column(sa.Column(name, sa.Integer(), nullable=True))
        # The index keeps covering the SLO's sums, round counts included.
        op.create_index(index, table, ["target", period, *COUNTS, *FLEET])


def downgrade() -> None:
    for table, period, index in ROLLUP_TABLES:
        op.drop_index(index, table_name=table)
        with op.batch_alter_table(table) as batch:
            for name in FLEET:
                batch.drop_column(name)
        op.create_index(index, table, ["target", period, *COUNTS])
    with op.batch_alter_table("targets") as batch:
        for name, _ in TARGET_COLUMNS:
            batch.drop_column(name)
