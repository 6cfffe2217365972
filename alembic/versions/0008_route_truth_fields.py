"""Route truth: stream timing (first answer token, inter-chunk gaps), prefill speed, the
system fingerprint and identity signature per result; TTFO and ITL sketches in rollups

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RESULT_COLUMNS = (
    ("ttfo_ms", sa.Float()),
    ("itl_p50_ms", sa.Float()),
    ("itl_p99_ms", sa.Float()),
    ("prefill_tokens_per_s", sa.Float()),
    ("system_fingerprint", sa.String()),
    ("signature", sa.String()),
)
SKETCHES = ("ttfo_sketch", "itl_sketch")


def upgrade() -> None:
    with op.batch_alter_table("probe_results") as batch:
        for name, type_ in RESULT_COLUMNS:
            batch.add_column(sa.Column(name, type_, nullable=True))
    for table in ("rollups", "rollups_daily", "window_sketches"):
        with op.batch_alter_table(table) as batch:
            for name in SKETCHES:
                # Existing rows hold no such values yet: an empty sketch.
                batch.add_column(sa.Column(name, sa.JSON(), nullable=False, server_default="{}"))


def downgrade() -> None:
    for table in ("rollups", "rollups_daily", "window_sketches"):
        with op.batch_alter_table(table) as batch:
            for name in SKETCHES:
                batch.drop_column(name)
    with op.batch_alter_table("probe_results") as batch:
        for name, _ in RESULT_COLUMNS:
            batch.drop_column(name)
