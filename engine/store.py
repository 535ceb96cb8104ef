"""The database: schema upgrades, short transactions, and instance rows with their projections."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import SpiffWorkflow
import sqlalchemy as sa
from sqlalchemy import delete, event, insert, select, update
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from . import runtime
from .errors import Conflict, EngineError
from .models import SCHEMA_REVISION, Candidate, Event, HumanTask, Incident, Instance, Job, Subscription, now
from .specs import STATE_FORMAT, to_plain

log = logging.getLogger(__name__)

SPIFF_VERSION = getattr(SpiffWorkflow, "__version__", "3.2")
_upgraded: set[str] = set()
_engines: dict[str, sa.Engine] = {}
_upgrade_lock = threading.RLock()


def connect(url: str) -> sa.Engine:
    """The process's one SQLAlchemy engine (and connection pool) for a URL, its schema at the newest revision."""
    with _upgrade_lock:
        if url not in _engines:
            try:
                _engines[url] = _create(url)
            except (sa.exc.ArgumentError, ImportError) as exc:
                raise EngineError(f"cannot use the database URL {url!r}: {exc}") from exc
        engine = _engines[url]
    upgrade(engine)
    return engine


def _create(url: str) -> sa.Engine:
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # SQLAlchemy issues BEGIN itself, below
            cursor = dbapi_connection.cursor()
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=30000"):
                cursor.execute(f"PRAGMA {pragma}")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: sa.Connection) -> None:
            # A writer takes the lock up front, so it never fails on a stale snapshot; readers never block.
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("write") else "BEGIN")
        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def upgrade(engine: sa.Engine) -> None:
    """Create or upgrade the schema with Alembic, once per database and process (Alembic loads only if needed)."""
    key = engine.url.render_as_string(hide_password=False)
    if key in _upgraded:
        return
    with _upgrade_lock:
        try:
            with engine.connect() as conn:
                current = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
        except sa.exc.OperationalError as exc:
            if "no such table" not in str(exc) and "does not exist" not in str(exc):
                raise EngineError(f"cannot open the database {engine.url!r}: {exc.orig}") from exc
            current = None
        except sa.exc.ProgrammingError:
            current = None
        if current != SCHEMA_REVISION:
            from alembic import command
            from alembic.config import Config

            config = Config()
            config.set_main_option("script_location", "baton.engine:migrations")
            with engine.execution_options(write=True).begin() as conn:
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
        _upgraded.add(key)


class Store:
    """Sessions for reading and for writing; every write is one short transaction."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.reads = sessionmaker(engine, expire_on_commit=False)
        self.writes = sessionmaker(engine.execution_options(write=True), expire_on_commit=False)

    @contextmanager
    def read(self) -> Iterator[Session]:
        with _conflicts(), self.reads() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        with _conflicts(), self.writes.begin() as session:
            yield session


@contextmanager
def _conflicts() -> Iterator[None]:
    """A busy database or a serialization failure is a Conflict: the caller may try again."""
    try:
        yield
    except OperationalError as exc:
        text = str(exc.orig).lower()
        if "locked" in text or "busy" in text or "could not serialize" in text or "deadlock" in text:
            raise Conflict("the database is busy with another change to this instance; try again") from exc
        raise
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) in ("40001", "40P01"):
            raise Conflict("another change to this instance came first; try again") from exc
        raise


def dumps(value: Any) -> str:
    return json.dumps(to_plain(value), separators=(",", ":"), default=str)


def insert_instance(session: Session, row: dict[str, Any]) -> None:
    session.execute(insert(Instance).values(**row, state_format=STATE_FORMAT, spiff_version=SPIFF_VERSION))


def update_instance(session: Session, instance_id: UUID, version: int, values: dict[str, Any]) -> None:
    """Write the new state if nobody else wrote since we read `version`; otherwise Conflict."""
    result = session.execute(update(Instance).where(Instance.id == instance_id, Instance.version == version)
                             .values(**values, version=version + 1))
    if result.rowcount != 1:
        raise Conflict(f"instance {instance_id} was changed by someone else; reload and try again")


def write_projections(session: Session, instance_id: UUID, process_id: str, workflow: Any, active: bool) -> None:
    """Rewrite what the inbox, the job executor and message routing query, from the workflow itself."""
    tasks = runtime.human_tasks(workflow) if active else []
    existing = {row.id: row for row in session.execute(
        select(HumanTask.id, HumanTask.assignee).where(HumanTask.instance_id == instance_id))}
    current = {t.id: t for t in tasks}
    gone = [i for i in existing if i not in current]
    if gone:
        session.execute(delete(HumanTask).where(HumanTask.id.in_(gone)))
    for task in tasks:
        info = runtime.assignment(task)
        if task.id in existing:
            if existing[task.id].assignee != info.get("assignee"):
                session.execute(update(HumanTask).where(HumanTask.id == task.id).values(assignee=info.get("assignee")))
            continue
        spec = task.task_spec
        ext = getattr(spec, "extensions", {}).get("baton", {})
        session.execute(insert(HumanTask).values(
            id=task.id, instance_id=instance_id, process_id=process_id, element_id=spec.bpmn_id,
            name=spec.bpmn_name or spec.bpmn_id, lane=spec.lane, assignee=info.get("assignee"),
            candidate_users=",".join(info.get("candidate_users", [])),
            candidate_groups=",".join(info.get("candidate_groups", [])), form=json.dumps(ext.get("form", [])),
            created_at=datetime.fromtimestamp(task.last_state_change, UTC),
            due_at=datetime.fromisoformat(info["due"]) if info.get("due") else None))
        candidates = [{"task_id": task.id, "kind": "user", "name": n} for n in set(info.get("candidate_users", []))]
        candidates += [{"task_id": task.id, "kind": "group", "name": n} for n in set(info.get("candidate_groups", []))]
        if candidates:
            session.execute(insert(Candidate), candidates)
    _write_jobs(session, instance_id, workflow, active)
    session.execute(delete(Subscription).where(Subscription.instance_id == instance_id))
    subscriptions = runtime.subscriptions(workflow) if active else []
    if subscriptions:
        session.execute(insert(Subscription), [
            {"instance_id": instance_id, "kind": kind, "name": name, "task_id": task.id, "correlation": dumps(corr)}
            for kind, name, task, corr in subscriptions])


def _write_jobs(session: Session, instance_id: UUID, workflow: Any, active: bool) -> None:
    wanted = {}
    if active:
        wanted = {task.id: ("timer", task, due) for task, due in runtime.timers(workflow)}
        wanted.update({task.id: ("service", task, now()) for task in runtime.service_tasks(workflow)})
    existing = {row.task_id: row for row in session.execute(
        select(Job.id, Job.task_id, Job.due_at).where(Job.instance_id == instance_id))}
    gone = [row.id for task_id, row in existing.items() if task_id not in wanted]
    if gone:
        session.execute(delete(Job).where(Job.id.in_(gone)))
    for task_id, (kind, task, due) in wanted.items():
        if task_id in existing:
            if existing[task_id].due_at != due:
                session.execute(update(Job).where(Job.id == existing[task_id].id).values(due_at=due))
            continue
        session.execute(insert(Job).values(instance_id=instance_id, task_id=task_id, element_id=task.task_spec.bpmn_id,
                                           kind=kind, due_at=due))


def write_history(session: Session, instance_id: UUID, step: runtime.Step) -> None:
    if step.events:
        at = now()
        session.execute(insert(Event), [{**e, "data": dumps(e["data"]), "instance_id": instance_id, "at": at}
                                        for e in step.events])
    if step.failure:
        f = step.failure
        session.execute(update(Incident).where(Incident.instance_id == instance_id, Incident.resolved_at.is_(None),
                                               Incident.task_id == f.task_id).values(resolved_at=now()))
        session.execute(insert(Incident).values(instance_id=instance_id, task_id=f.task_id, element_id=f.element_id,
                                                error_type=f.error_type, message=f.message, line=f.line))


def resolve_incidents(session: Session, instance_id: UUID) -> None:
    session.execute(update(Incident).where(Incident.instance_id == instance_id, Incident.resolved_at.is_(None))
                    .values(resolved_at=now()))
