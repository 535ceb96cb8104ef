"""The database: schema upgrades, short transactions, and instance rows with their projections."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from typing import Any
from uuid import UUID, uuid4

import SpiffWorkflow
import sqlalchemy as sa
from sqlalchemy import bindparam, delete, event, func, insert, select, union_all, update
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from . import runtime, sql
from .errors import Conflict, EngineError
from .models import (
    SCHEMA_REVISION,
    Event,
    HumanTask,
    InboxEntry,
    Incident,
    Instance,
    Job,
    Outbox,
    Subscription,
    now,
)
from .specs import STATE_FORMAT, to_plain

log = logging.getLogger(__name__)

SPIFF_VERSION = getattr(SpiffWorkflow, "__version__", "3.2")
_upgraded: set[str] = set()
_engines: dict[str, sa.Engine] = {}
_upgrade_lock = threading.RLock()
# SQLite copies the WAL into the database (and syncs it) every this many pages. At its default of 1000, those
# checkpoints (15-30 ms each) took about a tenth of the throughput benchmark; a page rewritten often is copied once.
WAL_PAGES = 10000


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
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=30000",
                           f"wal_autocheckpoint={WAL_PAGES}"):
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
        self.writer = engine.execution_options(write=True)  # made once: each call builds a new engine proxy
        self.reads = sessionmaker(engine, expire_on_commit=False)
        self.writes = sessionmaker(self.writer, expire_on_commit=False)

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
        with _conflicts(), self.writer.begin() as conn:
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


INSTANCE, HUMAN_TASK, INBOX = Instance.__table__, HumanTask.__table__, InboxEntry.__table__
JOB, SUBSCRIPTION, EVENT, INCIDENT = Job.__table__, Subscription.__table__, Event.__table__, Incident.__table__
OUTBOX = Outbox.__table__
JOB_KINDS = {"timer": "timer", "job": "service"}  # what the instance waits on -> the job row's kind
ROW = [c for c in INSTANCE.c if c.name != "state"]  # the state is read only when the workflow is not cached
# The hot path's statements: built and compiled once, run on the DB-API cursor (engine/sql.py).
_by_id = sql.Statement(select(*ROW).where(INSTANCE.c.id == bindparam("id")))
_by_task = sql.Statement(select(
    *ROW, HUMAN_TASK.c.id.label("task_id"), HUMAN_TASK.c.assignee.label("task_assignee"),
    HUMAN_TASK.c.candidate_users, HUMAN_TASK.c.candidate_groups, HUMAN_TASK.c.form).join(
    HUMAN_TASK, HUMAN_TASK.c.instance_id == INSTANCE.c.id).where(HUMAN_TASK.c.id == bindparam("id")))
_state = sql.Statement(select(INSTANCE.c.state).where(INSTANCE.c.id == bindparam("id"),
                                                      INSTANCE.c.version == bindparam("version")))
_update = sql.Statement(update(INSTANCE).where(INSTANCE.c.id == bindparam("b_id"),
                                               INSTANCE.c.version == bindparam("b_version")))
_insert = {t: sql.Statement(insert(t)) for t in (INSTANCE, HUMAN_TASK, INBOX, JOB, SUBSCRIPTION, EVENT, INCIDENT,
                                                  OUTBOX)}
_delete_entries = sql.Statement(delete(INBOX).where(INBOX.c.task_id == bindparam("b_task")))
_delete_instance_entries = sql.Statement(delete(INBOX).where(INBOX.c.instance_id == bindparam("b_instance")))
_instance_tasks = sql.Statement(select(HUMAN_TASK).where(HUMAN_TASK.c.instance_id == bindparam("b_instance")))
_retext = sql.Statement(update(HUMAN_TASK).where(HUMAN_TASK.c.id == bindparam("b_task")))
_delete_task = sql.Statement(delete(HUMAN_TASK).where(HUMAN_TASK.c.id == bindparam("b_task")))
_assign = sql.Statement(update(HUMAN_TASK).where(HUMAN_TASK.c.id == bindparam("b_task")))
_job = (JOB.c.instance_id == bindparam("b_instance")) & (JOB.c.task_id == bindparam("b_task"))
_delete_job, _move_job = sql.Statement(delete(JOB).where(_job)), sql.Statement(update(JOB).where(_job))
_delete_subscriptions = sql.Statement(delete(SUBSCRIPTION).where(SUBSCRIPTION.c.instance_id == bindparam("b_instance")))
_resolve = sql.Statement(update(INCIDENT).where(INCIDENT.c.instance_id == bindparam("b_instance"),
                                                INCIDENT.c.resolved_at.is_(None)))


def open_tasks(conn: sa.Connection, params: dict[str, Any], by_instance: bool, by_process: bool, by_user: bool
               ) -> list[Any]:
    """Rows of `task_query`; by instance or process (no list of principals to expand), on the DB-API cursor."""
    if by_user:
        return list(conn.execute(task_query(by_instance, by_process, True), params))
    return _task_statement(by_instance, by_process).all(conn, params)


@cache
def _task_statement(by_instance: bool, by_process: bool) -> sql.Statement:
    return sql.Statement(task_query(by_instance, by_process, False))


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
    if by_user:  # the inbox entries of the user's principals: their own, their groups' and anyone's
        query = query.where(h.id.in_(select(INBOX.c.task_id).where(
            INBOX.c.principal.in_(bindparam("principals", expanding=True)))))
    return query


NO_DUE = datetime(9999, 12, 31, tzinfo=UTC)  # tasks without a due date sort last on every database
FEW = 5000  # a search matching fewer tasks than this drives the inbox query itself
COUNT_CAP = 1000  # counting stops here ("1,000+"): an exact count of 100,000 tasks would cost a scan each time


def principals(user: str, groups: set[str]) -> list[str]:
    """The inbox entries a user sees: their own, their groups' and anyone's."""
    return [f"user:{user}", *(f"group:{g}" for g in sorted(groups)), "*"]


def _entries(task: dict[str, Any] | sa.Row, about: dict[str, Any]) -> list[dict[str, Any]]:
    """The inbox rows of one human task: its assignee's, or else each candidate's (nobody named: anyone's)."""
    task = dict(getattr(task, "_mapping", task))
    if task["assignee"]:
        names = [f"user:{task['assignee']}"]
    else:
        names = [f"user:{u}" for u in set(filter(None, task["candidate_users"].split(",")))]
        names += [f"group:{g}" for g in set(filter(None, task["candidate_groups"].split(",")))]
    return [{"principal": p, "task_id": task["id"], "instance_id": task["instance_id"],
             "process_id": task["process_id"], "active": about["active"], "sort_due": task["sort_due"],
             "created_at": task["created_at"]} for p in names or ["*"]]


WORD = re.compile(r"[^\W_]+")  # what both full-text indexes (FTS5 unicode61, PostgreSQL 'simple') call a word


def _search_text(name: str | None, about: dict[str, Any]) -> str:
    """The words the inbox search finds a task by, lowercased and one space apart."""
    return " ".join(WORD.findall(" ".join(filter(None, (name, about["title"], about["business_key"],
                                                         about["starter"]))).lower()))


def search_terms(text: str | None, dialect: str) -> dict[str, str]:
    """What the user typed, as bind values: `text` for the full-text index, `w0`.. for a word-start check per row.

    Every word typed must start a word of the task's text. Empty when nothing searchable was typed.
    """
    words = WORD.findall((text or "").lower())
    if not words:
        return {}
    query = " & ".join(f"{w}:*" for w in words) if dialect == "postgresql" else " ".join(f'"{w}"*' for w in words)
    return {"text": query} | {f"w{n}": f"% {w}%" for n, w in enumerate(words)}


def _matching(dialect: str) -> Any:
    """The ids of the tasks whose text matches the search (bind `text`), through the database's full-text index."""
    h = HUMAN_TASK.c
    if dialect == "postgresql":
        simple = sa.literal_column("'simple'::regconfig")  # a constant: the GIN index's expression must match
        return select(h.id).where(func.to_tsvector(simple, h.text).op("@@")(func.to_tsquery(simple, bindparam("text"))))
    return select(h.id).where(sa.literal_column("human_task.rowid").in_(
        sa.text("SELECT rowid FROM human_task_search WHERE human_task_search MATCH :text")))


def _keys(columns: Any, sort: str) -> list[Any]:
    if sort == "due":
        return [columns.sort_due, columns.created_at, columns.task_id]
    return [columns.created_at.desc(), columns.task_id.desc()]


def _visible(count: int, by_process: bool, words: int, sort: str, dialect: str, few: bool) -> sa.Subquery:
    """The user's entries (bind p0.., `depth`) in sort order; a task seen through two principals appears twice.

    Usually each principal's entries are one index range scan that stops at `depth`, and a search (of `words`
    words) checks each entry's task as it passes; when the search matches `few` tasks, the full-text index's
    matches drive instead, so that nobody walks 100,000 entries to find none.
    """
    e, h = INBOX.c, HUMAN_TASK.c

    def entries(*where: Any) -> sa.Select:
        query = select(e.task_id, e.sort_due, e.created_at).where(*where, e.active.is_(True))
        if by_process:
            query = query.where(e.process_id == bindparam("process_id"))
        return query

    principals = [bindparam(f"p{n}") for n in range(count)]
    if few:  # on SQLite, a unary + keeps the planner off the principal index, so the matches drive
        principal = sa.literal_column("+inbox_entry.principal") if dialect == "sqlite" else e.principal
        return entries(principal.in_(principals), e.task_id.in_(_matching(dialect))).subquery()
    spaced = " " + h.text  # each word typed starts a word: " text" contains " word"
    # OFFSET 0 keeps PostgreSQL from turning the check into a join that reads every task before the walk begins
    passing = [select(h.id).where(h.id == e.task_id, *(spaced.like(bindparam(f"w{n}")) for n in range(words)))
               .offset(0).exists()] if words else []
    branches = [select(*entries(e.principal == p, *passing).order_by(*_keys(e, sort)).limit(bindparam("depth"))
                        .subquery().c) for p in principals]
    return union_all(*branches).subquery() if count > 1 else branches[0].subquery()


@cache
def search_count(dialect: str) -> sa.Select:
    """How many tasks match a search, up to `cap`: whether the matches or the sort index should drive the inbox."""
    return select(func.count()).select_from(_matching(dialect).limit(bindparam("cap")).subquery())


@cache
def inbox_count(count: int, by_process: bool, words: int, dialect: str, few: bool = False) -> sa.Select:
    """How many tasks the user sees, exact up to COUNT_CAP (bind depth=COUNT_CAP + 1)."""
    seen = _visible(count, by_process, words, "due", dialect, few)
    return select(func.count(seen.c.task_id.distinct()))


@cache
def inbox_page(count: int, by_process: bool, words: int, sort: str, dialect: str, few: bool = False
               ) -> sa.Select:
    """One page of the inbox (bind `limit`, `offset`, depth=limit+offset) with what each task's instance is about."""
    h, i = HUMAN_TASK.c, INSTANCE.c
    seen = _visible(count, by_process, words, sort, dialect, few)
    top = select(seen.c.task_id, seen.c.sort_due, seen.c.created_at).distinct().order_by(
        *_keys(seen.c, sort)).limit(bindparam("limit")).offset(bindparam("offset")).subquery()
    return select(HUMAN_TASK, i.title, i.business_key, i.starter).join(top, top.c.task_id == h.id).join(
        INSTANCE, i.id == h.instance_id).order_by(*_keys(top.c, sort))


def instance_row(conn: sa.Connection, instance_id: UUID) -> Any | None:
    return _by_id.first(conn, {"id": instance_id})


def task_row(conn: sa.Connection, task_id: UUID) -> Any | None:
    """An open human task with its instance's row: one query for what completing it needs."""
    return _by_task.first(conn, {"id": task_id})


def state(conn: sa.Connection, instance_id: UUID, version: int) -> str | None:
    """The instance's state at this version; None when it has moved on (or is gone)."""
    row = _state.first(conn, {"id": instance_id, "version": version})
    return None if row is None else str(row.state)


def insert_instance(conn: sa.Connection, row: dict[str, Any]) -> None:
    _insert[INSTANCE].run(conn, {**row, "state_format": STATE_FORMAT, "spiff_version": SPIFF_VERSION})


def update_instance(conn: sa.Connection, instance_id: UUID, version: int, values: dict[str, Any]) -> None:
    """Write the new state if nobody else wrote since we read `version`; otherwise Conflict."""
    changed = _update.run(conn, {"ended_at": None, **values, "version": version + 1, "b_id": instance_id,
                                 "b_version": version})
    if changed != 1:
        raise Conflict(f"instance {instance_id} was changed by someone else; reload and try again")


def write_projections(conn: sa.Connection, instance_id: UUID, process_id: str, workflow: Any,
                      before: list[dict[str, Any]], after: list[dict[str, Any]], about: dict[str, Any]) -> None:
    """Bring the inbox, job and subscription rows from what the instance waited on `before` to `after`.

    `about` is what the inbox shows and filters by: the instance's title, business key, starter, and whether active.
    """
    old = {(w["kind"], w["task_id"]): w for w in before}  # an event-based gateway waits on a timer and a message
    new = {(w["kind"], w["task_id"]): w for w in after}
    _write_tasks(conn, instance_id, process_id, workflow, *_split(old, new, ("task",)),
                 {i: w.get("assignee") for (_, i), w in old.items()}, about)
    gone, added, kept = _split(old, new, ("timer", "job"))
    if gone:
        _delete_job.run(conn, [{"b_instance": instance_id, "b_task": UUID(i)} for i in gone])
    if added:
        _insert[JOB].run(conn, [{"id": uuid4(), "instance_id": instance_id, "task_id": UUID(w["task_id"]),
                                 "element_id": w["element_id"], "kind": w.get("job") or JOB_KINDS[w["kind"]],
                                 "attempts": 0, "due_at": datetime.fromisoformat(w["due"])} for w in added])
    for w in kept:
        if w["due"] != old[(w["kind"], w["task_id"])]["due"]:
            _move_job.run(conn, {"b_instance": instance_id, "b_task": UUID(w["task_id"]),
                                 "due_at": datetime.fromisoformat(w["due"]), "lock_owner": None,
                                 "lock_expires_at": None, "attempts": 0, "last_error": None})
    subscriptions = [w for w in after if w["kind"] in ("message", "signal")]
    if subscriptions != [w for w in before if w["kind"] in ("message", "signal")]:
        _delete_subscriptions.run(conn, {"b_instance": instance_id})
        if subscriptions:
            _insert[SUBSCRIPTION].run(conn, [
                {"instance_id": instance_id, "kind": w["kind"], "name": w["name"], "task_id": UUID(w["task_id"]),
                 "correlation": dumps(w["correlation"]), "key": w.get("key", "{}")} for w in subscriptions])


def _split(old: dict[tuple[str, str], dict[str, Any]], new: dict[tuple[str, str], dict[str, Any]],
           kinds: tuple[str, ...]) -> tuple[list[str], list[dict[str, Any]], list[dict[str, Any]]]:
    """Of the given kinds: task ids gone since before, entries added, entries kept."""
    gone = [i[1] for i, w in old.items() if w["kind"] in kinds and i not in new]
    added = [w for i, w in new.items() if w["kind"] in kinds and i not in old]
    kept = [w for i, w in new.items() if w["kind"] in kinds and i in old]
    return gone, added, kept


def _write_tasks(conn: sa.Connection, instance_id: UUID, process_id: str, workflow: Any, gone: list[str],
                 added: list[dict[str, Any]], kept: list[dict[str, Any]], old_assignees: dict[str, str | None],
                 about: dict[str, Any]) -> None:
    if gone:
        _delete_task.run(conn, [{"b_task": UUID(i)} for i in gone])  # its inbox entries go with it (ON DELETE CASCADE)
    rows = [_task_row(workflow.get_task_from_id(UUID(w["task_id"])), instance_id, process_id, about) for w in added]
    changed = [_task_row(workflow.get_task_from_id(UUID(w["task_id"])), instance_id, process_id, about)
               for w in kept if w["assignee"] != old_assignees.get(w["task_id"])]
    if rows:
        _insert[HUMAN_TASK].run(conn, rows)
    if changed:  # claimed, given back or reassigned: the task now shows in other inboxes
        _assign.run(conn, [{"b_task": r["id"], "assignee": r["assignee"]} for r in changed])
        _delete_entries.run(conn, [{"b_task": r["id"]} for r in changed])
    entries = [e for r in rows + changed for e in _entries(r, about)]
    if entries:
        _insert[INBOX].run(conn, entries)


def _task_row(task: Any, instance_id: UUID, process_id: str, about: dict[str, Any]) -> dict[str, Any]:
    spec, info = task.task_spec, runtime.assignment(task)
    due = datetime.fromisoformat(info["due"]) if info.get("due") else None
    return {"id": task.id, "instance_id": instance_id, "process_id": process_id, "element_id": spec.bpmn_id,
            "name": spec.bpmn_name or spec.bpmn_id, "lane": spec.lane, "assignee": info.get("assignee"),
            "candidate_users": ",".join(info.get("candidate_users", [])),
            "candidate_groups": ",".join(info.get("candidate_groups", [])),
            "form": json.dumps(getattr(spec, "extensions", {}).get("baton", {}).get("form", [])),
            "properties": json.dumps(getattr(spec, "extensions", {}).get("baton", {}).get("properties", {})),
            "created_at": datetime.fromtimestamp(task.last_state_change, UTC), "due_at": due,
            "sort_due": due or NO_DUE, "text": _search_text(spec.bpmn_name or spec.bpmn_id, about)}


def refresh_inbox(conn: sa.Connection, instance_id: UUID, about: dict[str, Any]) -> None:
    """Rewrite an instance's inbox rows and search text after its status or title changed."""
    _delete_instance_entries.run(conn, {"b_instance": instance_id})
    tasks = _instance_tasks.all(conn, {"b_instance": instance_id})
    texts = [{"b_task": t.id, "text": _search_text(t.name, about)} for t in tasks]
    if texts:
        _retext.run(conn, texts)
        _insert[INBOX].run(conn, [e for t in tasks for e in _entries(t, about)])


def write_history(conn: sa.Connection, instance_id: UUID, step: runtime.Step) -> None:
    if step.outbox:
        _insert[OUTBOX].run(conn, [{**n, "instance_id": instance_id, "created_at": now(), "attempts": 0,
                                        "sent_at": None, "last_error": None} for n in step.outbox])
    if step.events:
        at = now()
        _insert[EVENT].run(conn, [{**e, "data": dumps(e["data"]), "instance_id": instance_id, "at": at}
                                     for e in step.events])
    if step.failure:
        f = step.failure
        resolve_incidents(conn, instance_id)
        _insert[INCIDENT].run(conn, {"id": uuid4(), "instance_id": instance_id, "task_id": f.task_id,
                                        "element_id": f.element_id, "error_type": f.error_type, "message": f.message,
                                        "line": f.line, "created_at": now(), "resolved_at": None})


def resolve_incidents(conn: sa.Connection, instance_id: UUID) -> None:
    _resolve.run(conn, {"b_instance": instance_id, "resolved_at": now()})
