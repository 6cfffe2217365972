"""initial schema: targets, probe results, rollups, incidents, outbox, digest log

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 64-bit keys on PostgreSQL; SQLite auto-increments only an INTEGER PRIMARY KEY.
BIG_PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "targets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("base_url", sa.String(), nullable=False),
        sa.Column("model", sa.String(), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("created_at", UTC_TS, nullable=False),
        sa.Column("updated_at", UTC_TS, nullable=False),
        sa.Column("retired_at", UTC_TS, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name", name="uq_targets_name"),
    )

    op.create_table(
        "probe_results",
        sa.Column("id", BIG_PK, nullable=False),
        sa.Column("result_uid", sa.String(length=36), nullable=False),
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("probe", sa.String(), nullable=False),
        sa.Column("started_at", UTC_TS, nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("connect_ms", sa.Float(), nullable=True),
        sa.Column("ttfb_ms", sa.Float(), nullable=True),
        sa.Column("ttft_ms", sa.Float(), nullable=True),
        sa.Column("tokens_per_s", sa.Float(), nullable=True),
        sa.Column("prompt_tokens", sa.Integer(), nullable=True),
        sa.Column("completion_tokens", sa.Integer(), nullable=True),
        sa.Column("cached_tokens", sa.Integer(), nullable=True),
        sa.Column("reasoning_tokens", sa.Integer(), nullable=True),
        sa.Column("cost_usd", sa.Float(), nullable=True),
        sa.Column("model", sa.String(), nullable=True),
        sa.Column("retry_after_s", sa.Float(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("chunks", sa.Integer(), nullable=True),
        sa.Column("max_gap_ms", sa.Float(), nullable=True),
        sa.Column("output_chars", sa.Integer(), nullable=True),
        sa.Column("location", sa.String(), nullable=True),
        sa.Column("maintenance", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("result_uid", name="uq_probe_results_result_uid"),
    )
    op.create_index("ix_probe_results_started_at", "probe_results", ["started_at"])
    op.create_index(
        "ix_probe_results_target_started_at", "probe_results", ["target", "started_at"]
    )

    op.create_table(
        "rollups",
        sa.Column("id", BIG_PK, nullable=False),
        sa.Column("hour", UTC_TS, nullable=False),
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
        sa.UniqueConstraint("hour", "target", "probe", "location", name="uq_rollups_key"),
    )
    op.create_index(
        "ix_rollups_target_hour_counts",
        "rollups",
        ["target", "hour", "total", "maintenance_count", "sli_ok_count", "sli_rate_limited_count"],
    )

    op.create_table(
        "rolled_hours",
        sa.Column("hour", UTC_TS, nullable=False),
        sa.Column("rolled_at", UTC_TS, nullable=False),
        sa.Column("raw_pruned", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("hour"),
    )

    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("rule_group", sa.String(), nullable=False),
        sa.Column("severity", sa.String(), nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("opened_at", UTC_TS, nullable=False),
        sa.Column("resolved_at", UTC_TS, nullable=True),
        sa.Column("last_notified_at", UTC_TS, nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_incidents_target_state", "incidents", ["target", "state"])

    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dedup_key", sa.String(), nullable=False),
        sa.Column("created_at", UTC_TS, nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("notify_type", sa.String(), nullable=False),
        sa.Column("title", sa.String(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("body_format", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTC_TS, nullable=False),
        sa.Column("delivered_at", UTC_TS, nullable=True),
        sa.Column("failed_at", UTC_TS, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("claimed_by", sa.String(), nullable=True),
        sa.Column("claimed_until", UTC_TS, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dedup_key", name="uq_outbox_dedup_key"),
    )
    op.create_index(
        "ix_outbox_pending", "outbox", ["delivered_at", "failed_at", "next_attempt_at"]
    )

    op.create_table(
        "digest_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sa.String(), nullable=False),
        sa.Column("timezone", sa.String(), nullable=False),
        sa.Column("sent_at", UTC_TS, nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("day", name="uq_digest_log_day"),
    )


def downgrade() -> None:
    op.drop_table("digest_log")
    op.drop_index("ix_outbox_pending", table_name="outbox")
    op.drop_table("outbox")
    op.drop_index("ix_incidents_target_state", table_name="incidents")
    op.drop_table("incidents")
    op.drop_table("rolled_hours")
    op.drop_index("ix_rollups_target_hour_counts", table_name="rollups")
    op.drop_table("rollups")
    op.drop_index("ix_probe_results_target_started_at", table_name="probe_results")
    op.drop_index("ix_probe_results_started_at", table_name="probe_results")
    op.drop_table("probe_results")
    op.drop_table("targets")
