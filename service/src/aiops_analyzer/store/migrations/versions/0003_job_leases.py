"""analyses.lease_owner and analyses.lease_expires_at: jobs leased to one worker at a time.

A job left running by an earlier version has no lease: it gets one that expired when it was
claimed, so the first process to look puts it back to pending.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("analyses") as batch:
        batch.add_column(sa.Column("lease_owner", sa.String(64), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime, nullable=True))
    op.execute("UPDATE analyses SET lease_expires_at = claimed_at WHERE state = 'running'")
    op.create_index("ix_analyses_state_lease", "analyses", ["state", "lease_expires_at"])


def downgrade() -> None:
    op.drop_index("ix_analyses_state_lease", "analyses")
    with op.batch_alter_table("analyses") as batch:
        batch.drop_column("lease_expires_at")
        batch.drop_column("lease_owner")
