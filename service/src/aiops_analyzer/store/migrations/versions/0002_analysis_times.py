"""analyses.analyzed_at and analyses.notified_at: when the result was stored and notified.

Both nullable and left empty on existing rows: the times were not recorded then, and a guess
(finished_at) would make old latencies look measured.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("analyses") as batch:
        batch.add_column(sa.Column("analyzed_at", sa.DateTime, nullable=True))
        batch.add_column(sa.Column("notified_at", sa.DateTime, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("analyses") as batch:
        batch.drop_column("notified_at")
        batch.drop_column("analyzed_at")
