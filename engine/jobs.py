"""The job table: leasing due jobs to a worker, retry schedules, timer-start schedules, and the executor's status."""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import sqlalchemy as sa
from SpiffWorkflow.bpmn.specs.event_definitions.timer import (
    CycleTimerEventDefinition,
    DurationTimerEventDefinition,
    TimerEventDefinition,
)
from sqlalchemy import delete, func, select, update

from .info import JobStatus
from .models import Incident, Instance, Job, Message, now

JOB, INSTANCE, INCIDENT, MESSAGE = Job.__table__, Instance.__table__, Incident.__table__, Message.__table__
DEFAULT_RETRIES = (timedelta(seconds=10), timedelta(minutes=1), timedelta(minutes=10))
_list = re.compile(r"\s*,\s*")


def owner() -> str:
    """A name for this worker that is unique across machines and restarts."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid4().hex[:6]}"


def acquire(engine: sa.Engine, worker: str, limit: int, lease: timedelta) -> list[sa.Row]:
    """Lease up to `limit` due jobs to `worker`: free ones, and those whose lease ran out (their worker died).

    On PostgreSQL, `FOR UPDATE SKIP LOCKED` lets many workers acquire at once without waiting on each other;
    SQLite has one writer at a time. Jobs of suspended or failed instances wait until the instance is active, and
    jobs of an instance whose other job another worker holds wait for it, so they never block the queue.
    """
    at = now()
    with engine.execution_options(write=True).begin() as conn:
        ids = list(conn.execute(_DUE, {"at": at, "limit": limit}).scalars())
        if not ids:
            return []
        conn.execute(update(JOB).where(JOB.c.id.in_(ids)).values(lock_owner=worker, lock_expires_at=at + lease))
        return list(conn.execute(select(JOB).where(JOB.c.id.in_(ids)).order_by(JOB.c.due_at)))


def _due() -> sa.Select:
    """Due jobs free to lease, built once (building it took most of an idle poll): `at` and `limit` are bound."""
    at, other = sa.bindparam("at", type_=JOB.c.due_at.type), JOB.alias("other")
    busy = select(other.c.id).where(other.c.instance_id == JOB.c.instance_id, other.c.id != JOB.c.id,
                                    other.c.lock_expires_at >= at).exists()  # its instance is in another worker's hands
    return select(JOB.c.id).outerjoin(INSTANCE, INSTANCE.c.id == JOB.c.instance_id).where(
        JOB.c.due_at <= at, sa.or_(JOB.c.lock_expires_at.is_(None), JOB.c.lock_expires_at < at),
        sa.or_(JOB.c.instance_id.is_(None), INSTANCE.c.status == "active"), ~busy).order_by(JOB.c.due_at).limit(
        sa.bindparam("limit")).with_for_update(of=JOB, skip_locked=True)


_DUE = _due()


def release(engine: sa.Engine, job_id: UUID, worker: str, **values: Any) -> None:
    """Give a job back (with new values: a later due time, an attempt counted), if this worker still holds it."""
    with engine.execution_options(write=True).begin() as conn:
        conn.execute(update(JOB).where(JOB.c.id == job_id, JOB.c.lock_owner == worker).values(
            lock_owner=None, lock_expires_at=None, **values))


def still_held(conn: sa.Connection, job_id: UUID, worker: str, **values: Any) -> bool:
    """Within a write: whether this worker's lease on the job holds; `values` are written when it does."""
    result = conn.execute(update(JOB).where(JOB.c.id == job_id, JOB.c.lock_owner == worker).values(**values))
    return result.rowcount == 1


@contextmanager
def exclusive(engine: sa.Engine, instance_id: UUID | None) -> Iterator[bool]:
    """Whether this worker may run a job of the instance now: never two jobs of one instance at once.

    On PostgreSQL a transaction-scoped advisory lock on the instance, held while the job runs (a crashed worker's
    lock ends with its connection); SQLite runs a single worker.
    """
    if instance_id is None or engine.dialect.name != "postgresql":
        yield True
        return
    key = int.from_bytes(instance_id.bytes[:8], "big", signed=True)
    with engine.connect() as conn, conn.begin():
        yield bool(conn.execute(sa.text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": key}).scalar())


def retry_delays(cycle: str | None) -> tuple[timedelta, ...]:
    """The waits before each retry of a failing service task: `R3/PT10M`, a list `PT10S,PT1M,PT10M`, or default."""
    if not cycle:
        return DEFAULT_RETRIES
    if cycle.startswith("R"):
        count, _, duration = TimerEventDefinition.parse_iso_recurring_interval(cycle)
        return (duration,) * max(count, 0)
    return tuple(TimerEventDefinition.get_timedelta_from_start(TimerEventDefinition.parse_iso_duration(p))
                 for p in _list.split(cycle.strip()))


def start_schedule(definition: Any, expression: str) -> tuple[datetime, dict[str, Any]] | None:
    """The first firing of a timer start event, and what comes after: {"every": seconds, "left": n (-1: forever)}."""
    at = now()
    if isinstance(definition, CycleTimerEventDefinition):
        cycles, start, duration = TimerEventDefinition.parse_iso_recurring_interval(expression)
        first = start + duration if start <= at else start  # "R3/PT1H" first fires an hour after deployment
        return (first, {"every": duration.total_seconds(), "left": cycles}) if cycles != 0 else None
    if isinstance(definition, DurationTimerEventDefinition):
        duration = TimerEventDefinition.get_timedelta_from_start(TimerEventDefinition.parse_iso_duration(expression))
        return at + duration, {"every": 0, "left": 1}
    return TimerEventDefinition.get_datetime(expression), {"every": 0, "left": 1}


def next_start(due: datetime, schedule: dict[str, Any]) -> datetime | None:
    """When a timer start fires next after firing at `due`; overdue rounds missed while nobody ran are skipped."""
    left = schedule["left"] - 1 if schedule["left"] > 0 else -1
    if left == 0 or not schedule["every"]:
        return None
    schedule["left"] = left
    step = timedelta(seconds=schedule["every"])
    missed = max(0, int((now() - due) / step))
    return due + step * (missed + 1)


def schedule_starts(conn: sa.Connection, process_id: str, definition_id: int, starts: list[tuple[str, Any, str]]
                    ) -> None:
    """Replace the process's timer-start jobs with the new version's: (element id, definition, expression)."""
    from .models import Definition

    older = select(Definition.id).where(Definition.process_id == process_id)
    conn.execute(delete(JOB).where(JOB.c.kind == "start", JOB.c.definition_id.in_(older)))
    rows = []
    for element_id, definition, expression in starts:
        first = start_schedule(definition, expression)
        if first is not None:
            rows.append({"id": uuid4(), "definition_id": definition_id, "element_id": element_id, "kind": "start",
                         "due_at": first[0], "attempts": 0, "schedule": json.dumps(first[1])})
    if rows:
        conn.execute(sa.insert(JOB), rows)


def status(engine: sa.Engine) -> JobStatus:
    """Jobs due now, leased, retrying after a failure, failed into incidents, and the oldest overdue age."""
    at = now()
    with engine.connect() as conn:
        due = conn.execute(select(func.count(), func.min(JOB.c.due_at)).where(
            JOB.c.due_at <= at, sa.or_(JOB.c.lock_expires_at.is_(None), JOB.c.lock_expires_at < at))).one()
        running = conn.execute(select(func.count()).where(JOB.c.lock_expires_at >= at)).scalar_one()
        retrying = conn.execute(select(func.count()).where(JOB.c.attempts > 0)).scalar_one()
        failed = conn.execute(select(func.count()).where(INCIDENT.c.resolved_at.is_(None))).scalar_one()
        scheduled = conn.execute(select(func.count()).select_from(JOB)).scalar_one()
    oldest = (at - due[1]).total_seconds() if due[1] is not None else None
    return JobStatus(due[0], running, retrying, failed, oldest, scheduled)


def purge_messages(engine: sa.Engine) -> None:
    """Forget messages whose time to live is over (their message ids may be used again)."""
    with engine.execution_options(write=True).begin() as conn:
        conn.execute(delete(MESSAGE).where(MESSAGE.c.expires_at < now()))
