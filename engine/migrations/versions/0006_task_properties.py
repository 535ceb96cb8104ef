"""task properties: a human task's extension properties (camunda:properties), readable with the task

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


# Plain ALTER TABLE statements: on SQLite a batch operation would recreate the table and lose its full-text triggers.


def upgrade() -> None:
    op.add_column('human_task', sa.Column('properties', sa.Text(), server_default='{}', nullable=False))


def downgrade() -> None:
    op.drop_column('human_task', 'properties')
