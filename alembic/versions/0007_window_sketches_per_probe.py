"""window_sketches per probe: status figures are per (target, probe), never mixed

The table is a cache of rollups (checker.store.queries.window_cache): it is dropped and
created again with `probe` in its key, and the next rollup run fills it.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC_TS = sa.DateTime(timezone=True)


def _create(with_probe: bool) -> None:
    key = ("kind", "target", "probe", "since", "until") if with_probe else (
        "kind", "target", "since", "until"
    )
    op.create_table(
        "window_sketches",
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("target", sa.String(), nullable=False),
        *([sa.Column("probe", sa.String(), nullable=False)] if with_probe else []),
        sa.Column("since", UTC_TS, nullable=False),
        sa.Column("until", UTC_TS, nullable=False),
        sa.Column("periods", sa.Integer(), nullable=False),
        sa.Column("rolled_at", UTC_TS, nullable=False),
        sa.Column("errors", sa.JSON(), nullable=False),
        sa.Column("latency_sketch", sa.JSON(), nullable=False),
        sa.Column("ttft_sketch", sa.JSON(), nullable=False),
        sa.Column("tokens_per_s_sketch", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint(*key),
    )


def upgrade() -> None:
    op.drop_table("window_sketches")
    _create(with_probe=True)


def downgrade() -> None:
    op.drop_table("window_sketches")
    _create(with_probe=False)
