"""inbox entries keyed by principal, replacing the candidate table

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import baton.engine.models

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

UTC_DATETIME = baton.engine.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    entry = op.create_table(
        'inbox_entry',
        sa.Column('principal', sa.String(length=255), nullable=False),
        sa.Column('task_id', sa.Uuid(), nullable=False),
        sa.Column('instance_id', sa.Uuid(), nullable=False),
        sa.Column('process_id', sa.String(length=255), nullable=False),
        sa.Column('active', sa.Boolean(), nullable=False),
        sa.Column('sort_due', UTC_DATETIME, nullable=False),
        sa.Column('created_at', UTC_DATETIME, nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['task_id'], ['human_task.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('principal', 'task_id'),
    )
    with op.batch_alter_table('inbox_entry', schema=None) as batch_op:
        batch_op.create_index('ix_inbox_due', ['principal', 'active', 'sort_due', 'created_at', 'task_id'])
        batch_op.create_index('ix_inbox_created', ['principal', 'active', 'created_at', 'task_id'])
        batch_op.create_index(batch_op.f('ix_inbox_entry_instance_id'), ['instance_id'])
        batch_op.create_index(batch_op.f('ix_inbox_entry_task_id'), ['task_id'])
    op.bulk_insert(entry, list(_entries()))
    with op.batch_alter_table('candidate', schema=None) as batch_op:
        batch_op.drop_index('ix_candidate_kind_name')
    op.drop_table('candidate')
    with op.batch_alter_table('human_task', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_human_task_created_at'))
        batch_op.drop_index(batch_op.f('ix_human_task_sort_due'))


def _entries():
    """The open tasks' inbox rows, as the engine writes them at revision 0002."""
    rows = op.get_bind().execute(sa.text(
        "SELECT t.id, t.instance_id, t.process_id, t.name, t.assignee, t.candidate_users, t.candidate_groups,"
        " t.sort_due, t.created_at, i.title, i.business_key, i.starter, i.status"
        " FROM human_task t JOIN instance i ON i.id = t.instance_id").columns(
        id=sa.Uuid(), instance_id=sa.Uuid(), sort_due=UTC_DATETIME, created_at=UTC_DATETIME))
    for r in rows:
        if r.assignee:
            names = [f"user:{r.assignee}"]
        else:
            names = [f"user:{u}" for u in set(filter(None, r.candidate_users.split(",")))]
            names += [f"group:{g}" for g in set(filter(None, r.candidate_groups.split(",")))]
        text = " ".join(filter(None, (r.name, r.title, r.business_key, r.starter))).lower()
        for principal in names or ["*"]:
            yield {"principal": principal, "task_id": r.id, "instance_id": r.instance_id,
                   "process_id": r.process_id, "active": r.status == "active", "sort_due": r.sort_due,
                   "created_at": r.created_at, "text": text}


def downgrade() -> None:
    with op.batch_alter_table('human_task', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_human_task_sort_due'), ['sort_due'])
        batch_op.create_index(batch_op.f('ix_human_task_created_at'), ['created_at'])
    op.create_table(
        'candidate',
        sa.Column('task_id', sa.Uuid(), nullable=False),
        sa.Column('kind', sa.String(length=8), nullable=False),
        sa.Column('name', sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(['task_id'], ['human_task.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('task_id', 'kind', 'name'),
    )
    with op.batch_alter_table('candidate', schema=None) as batch_op:
        batch_op.create_index('ix_candidate_kind_name', ['kind', 'name'])
    op.drop_table('inbox_entry')
