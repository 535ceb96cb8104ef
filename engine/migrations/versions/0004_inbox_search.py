"""full-text search for the inbox: the text on the task, indexed by each database's own full-text search

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

WORD = re.compile(r"[^\W_]+")

SQLITE = [
    "CREATE VIRTUAL TABLE human_task_search USING fts5(text, content='human_task', content_rowid='rowid')",
    "CREATE TRIGGER human_task_search_insert AFTER INSERT ON human_task BEGIN"
    " INSERT INTO human_task_search(rowid, text) VALUES (new.rowid, new.text); END",
    "CREATE TRIGGER human_task_search_delete AFTER DELETE ON human_task BEGIN"
    " INSERT INTO human_task_search(human_task_search, rowid, text) VALUES ('delete', old.rowid, old.text); END",
    "CREATE TRIGGER human_task_search_update AFTER UPDATE OF text ON human_task BEGIN"
    " INSERT INTO human_task_search(human_task_search, rowid, text) VALUES ('delete', old.rowid, old.text);"
    " INSERT INTO human_task_search(rowid, text) VALUES (new.rowid, new.text); END",
    "INSERT INTO human_task_search(human_task_search) VALUES ('rebuild')",
]
POSTGRESQL = ["CREATE INDEX ix_human_task_search ON human_task USING gin (to_tsvector('simple', text))"]


def upgrade() -> None:
    with op.batch_alter_table('human_task', schema=None) as batch_op:
        batch_op.add_column(sa.Column('text', sa.Text(), nullable=False, server_default=''))
    bind = op.get_bind()
    texts = bind.execute(sa.text("SELECT t.id, t.name, i.title, i.business_key, i.starter FROM human_task t"
                                 " JOIN instance i ON i.id = t.instance_id").columns(id=sa.Uuid())).all()
    task = sa.table('human_task', sa.column('id', sa.Uuid()), sa.column('text', sa.Text()))
    for row in texts:  # the words, lowercased and one space apart, as the engine writes them at 0004
        words = WORD.findall(" ".join(filter(None, (row.name, row.title, row.business_key, row.starter))).lower())
        bind.execute(task.update().where(task.c.id == row.id).values(text=" ".join(words)))
    with op.batch_alter_table('inbox_entry', schema=None) as batch_op:
        batch_op.drop_column('text')
    for statement in SQLITE if op.get_bind().dialect.name == "sqlite" else POSTGRESQL:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER human_task_search_{name}")
        op.execute("DROP TABLE human_task_search")
    else:
        op.execute("DROP INDEX ix_human_task_search")
    with op.batch_alter_table('inbox_entry', schema=None) as batch_op:
        batch_op.add_column(sa.Column('text', sa.Text(), nullable=False, server_default=''))
    op.execute("UPDATE inbox_entry SET text = COALESCE((SELECT t.text FROM human_task t"
               " WHERE t.id = inbox_entry.task_id), '')")
    with op.batch_alter_table('human_task', schema=None) as batch_op:
        batch_op.drop_column('text')
