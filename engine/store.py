"""The database: schema upgrades, short transactions, and instance rows with their projections."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from typing import Any
from uuid import UUID, uuid4

import SpiffWorkflow
import sqlalchemy as sa
from sqlalchemy import and_, bindparam, delete, event, func, insert, or_, select, union_all, update
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from . import runtime
from .errors import Conflict, EngineError
from .models import SCHEMA_REVISION, Candidate, Event, HumanTask, Incident, Instance, Job, Outbox, Subscription, now
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
            conn.connection.driver_connection.execute(
                "BEGIN IMMEDIATE" if conn.get_execution_options().get("write") else "BEGIN")
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
    def reading(self) -> Iterator[sa.Connection]:
        """A plain connection for the hot path's reads."""
        with _conflicts(), self.engine.connect() as conn:
            yield conn

    @contextmanager
    def writing(self) -> Iterator[sa.Connection]:
        """One write transaction on a plain connection (on SQLite it takes the write lock up front)."""
        with _conflicts(), self.engine.execution_options(write=True).begin() as conn:
            yield conn


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


INSTANCE, HUMAN_TASK, CANDIDATE = Instance.__table__, HumanTask.__table__, Candidate.__table__
JOB, SUBSCRIPTION, EVENT, INCIDENT = Job.__table__, Subscription.__table__, Event.__table__, Incident.__table__
OUTBOX = Outbox.__table__
JOB_KINDS = {"timer": "timer", "job": "service"}  # what the instance waits on -> the job row's kind
ROW = [c for c in INSTANCE.c if c.name != "state"]  # the state is read only when the workflow is not cached
_by_id = select(*ROW).where(INSTANCE.c.id == bindparam("id"))
_by_task = select(*ROW, HUMAN_TASK.c.id.label("task_id"), HUMAN_TASK.c.assignee.label("task_assignee"),
                  HUMAN_TASK.c.candidate_users, HUMAN_TASK.c.candidate_groups, HUMAN_TASK.c.form).join(
    HUMAN_TASK, HUMAN_TASK.c.instance_id == INSTANCE.c.id).where(HUMAN_TASK.c.id == bindparam("id"))
_state = select(INSTANCE.c.state).where(INSTANCE.c.id == bindparam("id"))
# Built once: constructing a statement costs more than running it on SQLite.
_update = update(INSTANCE).where(INSTANCE.c.id == bindparam("b_id"), INSTANCE.c.version == bindparam("b_version"))
_insert = {t: insert(t) for t in (INSTANCE, HUMAN_TASK, CANDIDATE, JOB, SUBSCRIPTION, EVENT, INCIDENT, OUTBOX)}
_delete_candidates = delete(CANDIDATE).where(CANDIDATE.c.task_id == bindparam("b_task"))
_delete_task = delete(HUMAN_TASK).where(HUMAN_TASK.c.id == bindparam("b_task"))
_assign = update(HUMAN_TASK).where(HUMAN_TASK.c.id == bindparam("b_task"))
_job = (JOB.c.instance_id == bindparam("b_instance")) & (JOB.c.task_id == bindparam("b_task"))
_delete_job, _move_job = delete(JOB).where(_job), update(JOB).where(_job)
_delete_subscriptions = delete(SUBSCRIPTION).where(SUBSCRIPTION.c.instance_id == bindparam("b_instance"))
_resolve = update(INCIDENT).where(INCIDENT.c.instance_id == bindparam("b_instance"), INCIDENT.c.resolved_at.is_(None))


@cache
def task_query(by_instance: bool, by_process: bool, by_user: bool) -> sa.Select:
    """Open human tasks of active instances; by user: assigned to them, or claimable by them or their groups."""
    h = HUMAN_TASK.c
    query = select(HUMAN_TASK).join(INSTANCE, INSTANCE.c.id == h.instance_id).where(
        INSTANCE.c.status == "active").order_by(h.created_at, h.id)
    if by_instance:
        query = query.where(h.instance_id == bindparam("instance_id"))
    if by_process:
        query = query.where(h.process_id == bindparam("process_id"))
    if by_user:
        # Driven by indexes: the candidate rows naming the user, their groups or anyone, and the user's own tasks.
        c, assigned = CANDIDATE.c, HUMAN_TASK.alias("assigned")
        candidate = select(c.task_id).where(or_(
            and_(c.kind == "user", c.name == bindparam("user")),
            and_(c.kind == "group", c.name.in_(bindparam("groups", expanding=True))),
            and_(c.kind == "anyone", c.name == "*")))
        own = select(assigned.c.id).where(assigned.c.assignee == bindparam("user"))
        query = query.where(h.id.in_(union_all(candidate, own)),
                            or_(h.assignee.is_(None), h.assignee == bindparam("user")))
    return query


NO_DUE = datetime(9999, 12, 31, tzinfo=UTC)  # tasks without a due date sort last on every database
COUNT_CAP = 1000  # counting stops here ("1,000+"): an exact count of 100,000 tasks would cost a scan each time


def _inbox(by_process: bool, by_text: bool) -> sa.Select:
    """The user's tasks (bind `user`, `groups`), shaped so the planner walks the sort index and stops early."""
    h, i, c = HUMAN_TASK.c, INSTANCE.c, CANDIDATE.c
    assignee = func.coalesce(h.assignee, "")  # not indexable on purpose: the due/created index drives the scan
    candidate = select(c.task_id).where(c.task_id == h.id, or_(
        and_(c.kind == "user", c.name == bindparam("user")),
        and_(c.kind == "group", c.name.in_(bindparam("groups", expanding=True))),
        and_(c.kind == "anyone", c.name == "*"))).exists()
    about = select(INSTANCE.c.id).where(i.id == h.instance_id, i.status == "active")
    query = select(HUMAN_TASK).where(or_(assignee == bindparam("user"), and_(assignee == "", candidate)),
                                     about.exists())
    if by_process:
        query = query.where(h.process_id == bindparam("process_id"))
    if by_text:
        text = bindparam("text")
        query = query.where(or_(func.lower(h.name).like(text), about.where(or_(
            func.lower(i.title).like(text), func.lower(i.business_key).like(text),
            func.lower(i.starter).like(text))).exists()))
    return query


@cache
def inbox_count(by_process: bool, by_text: bool) -> sa.Select:
    capped = _inbox(by_process, by_text).with_only_columns(HUMAN_TASK.c.id).limit(COUNT_CAP + 1)
    return select(func.count()).select_from(capped.subquery())


@cache
def inbox_page(by_process: bool, by_text: bool, sort: str) -> sa.Select:
    """One page of the inbox (bind `limit`, `offset`) with what each task's instance is about."""
    h, i = HUMAN_TASK.c, INSTANCE.c
    keys = ("sort_due", "created_at", "id") if sort == "due" else ("created_at", "id")

    def order(columns: Any) -> list[Any]:
        return [getattr(columns, k).desc() if sort != "due" and k == "created_at" else getattr(columns, k)
                for k in keys]

    page = _inbox(by_process, by_text).order_by(*order(h)).limit(bindparam("limit")).offset(bindparam("offset"))
    shown = page.subquery()
    return select(shown, i.title, i.business_key, i.starter).join(INSTANCE, i.id == shown.c.instance_id).order_by(
        *order(shown.c))


def instance_row(conn: sa.Connection, instance_id: UUID) -> sa.Row | None:
    return conn.execute(_by_id, {"id": instance_id}).first()


def task_row(conn: sa.Connection, task_id: UUID) -> sa.Row | None:
    """An open human task with its instance's row: one query for what completing it needs."""
    return conn.execute(_by_task, {"id": task_id}).first()


def state(conn: sa.Connection, instance_id: UUID) -> str:
    return conn.execute(_state, {"id": instance_id}).scalar_one()


def insert_instance(conn: sa.Connection, row: dict[str, Any]) -> None:
    conn.execute(_insert[INSTANCE], {**row, "state_format": STATE_FORMAT, "spiff_version": SPIFF_VERSION})


def update_instance(conn: sa.Connection, instance_id: UUID, version: int, values: dict[str, Any]) -> None:
    """Write the new state if nobody else wrote since we read `version`; otherwise Conflict."""
    result = conn.execute(_update, {"ended_at": None, **values, "version": version + 1, "b_id": instance_id,
                                    "b_version": version})
    if result.rowcount != 1:
        raise Conflict(f"instance {instance_id} was changed by someone else; reload and try again")


def write_projections(conn: sa.Connection, instance_id: UUID, process_id: str, workflow: Any,
                      before: list[dict[str, Any]], after: list[dict[str, Any]]) -> None:
    """Bring the inbox, job and subscription rows from what the instance waited on `before` to `after`."""
    old = {w["task_id"]: w for w in before}
    new = {w["task_id"]: w for w in after}
    _write_tasks(conn, instance_id, process_id, workflow, *_split(old, new, ("task",)),
                 {i: w.get("assignee") for i, w in old.items()})
    gone, added, kept = _split(old, new, ("timer", "job"))
    if gone:
        conn.execute(_delete_job, [{"b_instance": instance_id, "b_task": UUID(i)} for i in gone])
    if added:
        conn.execute(_insert[JOB], [{"id": uuid4(), "instance_id": instance_id, "task_id": UUID(w["task_id"]),
                                    "element_id": w["element_id"], "kind": JOB_KINDS[w["kind"]], "attempts": 0,
                                    "due_at": datetime.fromisoformat(w["due"])} for w in added])
    for w in kept:
        if w["due"] != old[w["task_id"]]["due"]:
            conn.execute(_move_job, {"b_instance": instance_id, "b_task": UUID(w["task_id"]),
                                     "due_at": datetime.fromisoformat(w["due"])})
    subscriptions = [w for w in after if w["kind"] in ("message", "signal")]
    if subscriptions != [w for w in before if w["kind"] in ("message", "signal")]:
        conn.execute(_delete_subscriptions, {"b_instance": instance_id})
        if subscriptions:
            conn.execute(_insert[SUBSCRIPTION], [
                {"instance_id": instance_id, "kind": w["kind"], "name": w["name"], "task_id": UUID(w["task_id"]),
                 "correlation": dumps(w["correlation"])} for w in subscriptions])


def _split(old: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]], kinds: tuple[str, ...]
           ) -> tuple[list[str], list[dict[str, Any]], list[dict[str, Any]]]:
    """Of the given kinds: ids gone since before, entries added, entries kept."""
    gone = [i for i, w in old.items() if w["kind"] in kinds and i not in new]
    added = [w for i, w in new.items() if w["kind"] in kinds and i not in old]
    kept = [w for i, w in new.items() if w["kind"] in kinds and i in old]
    return gone, added, kept


def _write_tasks(conn: sa.Connection, instance_id: UUID, process_id: str, workflow: Any, gone: list[str],
                 added: list[dict[str, Any]], kept: list[dict[str, Any]], old_assignees: dict[str, str | None]
                 ) -> None:
    if gone:
        ids = [{"b_task": UUID(i)} for i in gone]
        conn.execute(_delete_candidates, ids)
        conn.execute(_delete_task, ids)
    rows, candidates = [], []
    for w in added:
        task = workflow.get_task_from_id(UUID(w["task_id"]))
        spec, info = task.task_spec, runtime.assignment(task)
        rows.append({"id": task.id, "instance_id": instance_id, "process_id": process_id, "element_id": spec.bpmn_id,
                     "name": spec.bpmn_name or spec.bpmn_id, "lane": spec.lane, "assignee": info.get("assignee"),
                     "candidate_users": ",".join(info.get("candidate_users", [])),
                     "candidate_groups": ",".join(info.get("candidate_groups", [])),
                     "form": json.dumps(getattr(spec, "extensions", {}).get("baton", {}).get("form", [])),
                     "created_at": datetime.fromtimestamp(task.last_state_change, UTC),
                     "due_at": datetime.fromisoformat(info["due"]) if info.get("due") else None,
                     "sort_due": datetime.fromisoformat(info["due"]) if info.get("due") else NO_DUE})
        candidates += [{"task_id": task.id, "kind": "user", "name": n} for n in set(info.get("candidate_users", []))]
        candidates += [{"task_id": task.id, "kind": "group", "name": n} for n in set(info.get("candidate_groups", []))]
        if not info.get("assignee") and not info.get("candidate_users") and not info.get("candidate_groups"):
            candidates.append({"task_id": task.id, "kind": "anyone", "name": "*"})  # nobody named: anyone may
    if rows:
        conn.execute(_insert[HUMAN_TASK], rows)
    if candidates:
        conn.execute(_insert[CANDIDATE], candidates)
    changed = [{"b_task": UUID(w["task_id"]), "assignee": w["assignee"]} for w in kept
               if w["assignee"] != old_assignees.get(w["task_id"])]
    if changed:
        conn.execute(_assign, changed)


def write_history(conn: sa.Connection, instance_id: UUID, step: runtime.Step) -> None:
    if step.outbox:
        conn.execute(_insert[OUTBOX], [{**n, "instance_id": instance_id, "created_at": now(), "attempts": 0,
                                        "sent_at": None, "last_error": None} for n in step.outbox])
    if step.events:
        at = now()
        conn.execute(_insert[EVENT], [{**e, "data": dumps(e["data"]), "instance_id": instance_id, "at": at}
                                     for e in step.events])
    if step.failure:
        f = step.failure
        resolve_incidents(conn, instance_id)
        conn.execute(_insert[INCIDENT], {"id": uuid4(), "instance_id": instance_id, "task_id": f.task_id,
                                        "element_id": f.element_id, "error_type": f.error_type, "message": f.message,
                                        "line": f.line, "created_at": now(), "resolved_at": None})


def resolve_incidents(conn: sa.Connection, instance_id: UUID) -> None:
    conn.execute(_resolve, {"b_instance": instance_id, "resolved_at": now()})
