"""Initial schema: deliveries and analyses (the job queue).

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deliveries",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("received_at", sa.DateTime, nullable=False),
        sa.Column("receiver", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("group_key", sa.Text, nullable=False),
        sa.Column("alerts", sa.Integer, nullable=False),
        sa.Column("new_alerts", sa.Integer, nullable=False),
        sa.Column("duplicate_alerts", sa.Integer, nullable=False),
        sa.Column("truncated_alerts", sa.Integer, nullable=False),
    )
    op.create_table(
        "analyses",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("fingerprint", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("starts_at", sa.DateTime, nullable=False),
        sa.Column("ends_at", sa.DateTime, nullable=True),
        sa.Column("alertname", sa.String(255), nullable=False),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("annotations", sa.JSON, nullable=False),
        sa.Column("generator_url", sa.Text, nullable=False),
        sa.Column("received_at", sa.DateTime, nullable=False),
        sa.Column("delivery_id", sa.Integer, sa.ForeignKey("deliveries.id"), nullable=False),
        sa.Column("deliveries", sa.Integer, nullable=False),
        sa.Column("last_received_at", sa.DateTime, nullable=False),
        sa.Column("truncated_alerts", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("claimed_at", sa.DateTime, nullable=True),
        sa.Column("available_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime, nullable=True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("engine", sa.String(16), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("prompt_tokens", sa.Integer, nullable=False),
        sa.Column("completion_tokens", sa.Integer, nullable=False),
        sa.Column("result", sa.JSON, nullable=True),
        sa.Column("evidence", sa.JSON, nullable=True),
        sa.Column("notifications", sa.JSON, nullable=True),
        sa.Column("firing_analysis_id", sa.Integer, sa.ForeignKey("analyses.id"), nullable=True),
        sa.Column("duration_seconds", sa.Float, nullable=True),
        sa.UniqueConstraint("fingerprint", "status", "starts_at", name="uq_analyses_alert_state"),
    )
    op.create_index("ix_analyses_state_available", "analyses", ["state", "available_at"])
    op.create_index("ix_analyses_alertname", "analyses", ["alertname"])
    op.create_index("ix_analyses_received_at", "analyses", ["received_at"])
    op.create_index("ix_analyses_finished_at", "analyses", ["finished_at"])


def downgrade() -> None:
    op.drop_table("analyses")
    op.drop_table("deliveries")
