"""Alembic migrations."""


def include_object(item, name, kind, reflected, compare_to):  # type: ignore[no-untyped-def]
    """What Alembic compares with the models: all but the full-text index, made by hand per database (0004)."""
    return not (name or "").startswith("human_task_search") and name != "ix_human_task_search"
