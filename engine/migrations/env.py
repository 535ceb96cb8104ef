"""Alembic environment: runs on the connection Baton hands over."""

from __future__ import annotations

from alembic import context

from baton.engine.migrations import include_object
from baton.engine.models import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True,
                  include_object=include_object)
with context.begin_transaction():
    context.run_migrations()
