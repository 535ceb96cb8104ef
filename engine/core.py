"""The Engine facade: deploy diagrams, start instances, work their tasks; one short transaction per change."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from types import SimpleNamespace
from typing import Any
from uuid import UUID, uuid4

from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from sqlalchemy import bindparam, exists, func, select

from . import forms, jobs, mail, pruning, rows, runtime, sql, store
from .clock import clock
from .config import Settings
from .connectors import BUILTIN as BUILTIN_CONNECTORS
from .deployment import Deployment, find_definition
from .directory import Directory, SqlDirectory
from .directory import functions as directory_functions
from .drafts import Drafts
from .errors import (
    Conflict,
    DefinitionNotFound,
    Forbidden,
    IncidentNotFound,
    InstanceNotFound,
    InvalidData,
    InvalidState,
    TaskNotFound,
)
from .executor import Executor
from .info import (
    STATUSES,
    EventInfo,
    FormField,
    Inbox,
    InboxItem,
    InstanceInfo,
    TaskInfo,
)
from .messaging import Messaging
from .models import Definition, Event, HumanTask, Incident, Instance, Job, Outbox, Subscription, now
from .scripting import Sandbox
from .specs import dump_state, from_plain, load_spec, load_state

log = logging.getLogger(__name__)

RESERVED = ("starter",)
CACHED_WORKFLOWS = 256
_NEWEST = sql.Statement(select(Definition.id, Definition.version).where(
    Definition.process_id == bindparam("process_id")).order_by(Definition.version.desc()).limit(1))


class Loaded:
    """An instance row's facts and its workflow, between reading and writing."""

    def __init__(self, row: Any, workflow: Any) -> None:
        self.id, self.version, self.status = row.id, row.version, row.status
        self.process_id, self.starter = row.process_id, row.starter
        self.waiting = json.loads(row.waiting)
        self.row, self.workflow = row, workflow


class Engine(Deployment, Drafts, Executor, Messaging):
    """Deploy BPMN, run durable instances, and drive them; the contract the web app, API and CLI use."""

    def __init__(self, database_url: str | None = None, *, connectors: Mapping[str, Callable[..., Any]] | None = None,
                 functions: Mapping[str, Callable[..., Any]] | None = None, directory: Directory | None = None
                 ) -> None:
        self.settings = Settings()
        self.database_url = database_url or self.settings.database_url
        self.db = store.Store(store.connect(self.database_url))
        self.connectors = {**BUILTIN_CONNECTORS, **(connectors or {})}
        self.worker_id = jobs.owner()  # this engine's name on the job leases it holds
        self.purged_at: datetime | None = None  # when this engine last forgot expired messages
        self.directory: Directory = directory or SqlDirectory(self.db.engine)
        self._local = threading.local()  # the step a script's notify() belongs to, per thread
        builtin = {"notify": self._notify, "now": clock.now,
                   **directory_functions(self.directory, base_currency=self.settings.base_currency, now=clock.now)}
        self.sandbox = Sandbox({**builtin, **(functions or {})}, timeout=self.settings.script_timeout,
                               memory=self.settings.script_memory_mb * 2**20)
        self.script_engine = PythonScriptEngine(environment=runtime.Environment(self.sandbox, RESERVED))
        self.hook: Callable[[str], None] | None = None  # tests pause or kill a step at a named point
        self._specs: dict[int, tuple[Any, dict[str, Any]]] = {}
        self._workflows: dict[UUID, tuple[int, Any]] = {}

    def close(self) -> None:
        """Stop this engine's script processes; the database pool is shared within the process and stays."""
        self.sandbox.close()

    def _notify(self, user: str, subject: str, body: str = "") -> bool:
        """notify(user, subject, body) for diagrams: an outbox row written with the step, sent by the job executor."""
        step = getattr(self._local, "step", None)
        if step is None:
            raise InvalidState("notify() can only be called from a running step")
        step.outbox.append({"recipient": str(user), "subject": str(subject), "body": str(body)})
        return True

    @contextmanager
    def _stepping(self, step: runtime.Step) -> Iterator[runtime.Step]:
        self._local.step = step
        try:
            yield step
        finally:
            self._local.step = None

    # Instances

    def start(self, process_id: str, data: Mapping[str, Any] | None = None, *, user: str | None = None,
              business_key: str | None = None) -> InstanceInfo:
        """Start the newest version of a process as `user` (None: trusted host code) and run until it waits.

        When the process declares a start form and a user starts it, only that form's fields are accepted.
        """
        with self.db.reading() as conn:
            definition = _NEWEST.first(conn, {"process_id": process_id})
            if definition is None:
                raise DefinitionNotFound(process_id)
            spec, _ = self._spec(conn, definition.id)
        fields = start_form(spec)
        if user is not None and fields:
            start_data = forms.accept(fields, data)
        else:
            start_data = {k: v for k, v in (data or {}).items() if k not in RESERVED}
            given = [f for f in fields if f["id"] in start_data or f.get("default") is not None]
            start_data |= forms.accept(given, start_data)  # typed, and the form's defaults filled in
        return self._create(definition, process_id, start_data, user=user, business_key=business_key)

    def _create(self, definition: Any, process_id: str, data: dict[str, Any], *, user: str | None = None,
                business_key: str | None = None, trigger: str | None = None,
                then: Callable[[Any, runtime.Step], None] | None = None,
                within: Callable[[Any, UUID], None] | None = None) -> InstanceInfo:
        """Create an instance of a definition (id, version) from its `trigger` start event and run until it waits.

        `then` acts on the new workflow (fires the timer, delivers the message); `within` writes in the same
        transaction (the lease of the job or the message that started it).
        """
        spec, subprocesses = self._spec(None, definition.id)
        workflow = runtime.create(spec, subprocesses, self.script_engine)
        reserved = {"starter": user}
        with self._stepping(runtime.Step()) as step:
            runtime.start(workflow, data | reserved, step, user=user, trigger=trigger)
            if then is not None and step.failure is None:
                then(workflow, step)
        values, waiting = self._values(workflow, step, None, reserved)
        self._pause("before_write")
        row = {"id": uuid4(), "definition_id": definition.id, "process_id": process_id,
               "definition_version": definition.version, "business_key": business_key, "starter": user,
               "version": 1, "created_at": values["updated_at"], "ended_at": None, **values}
        with self.db.writing() as conn:
            if within is not None:
                within(conn, row["id"])
            store.insert_instance(conn, row)
            self._pause("written")
            store.write_projections(conn, row["id"], process_id, workflow, [], waiting, _about(row))
            store.write_history(conn, row["id"], step)
            info = rows.instance_info(conn, SimpleNamespace(**row))
        self._remember(row["id"], 1, workflow, values["status"])
        log.info("instance %s of %s started by %s", row["id"], process_id, user or trigger or "host")
        self._after(row["id"], [], waiting, step)
        return info

    def start_form(self, process_id: str) -> tuple[FormField, ...]:
        """The fields of the newest version's start form (empty when the process declares none)."""
        with self.db.read() as session:
            definition = find_definition(session, process_id, None)
            spec, _ = self._spec(session.connection(), definition.id)
        return tuple(rows.field(f) for f in start_form(spec))

    def instance(self, instance_id: UUID | str) -> InstanceInfo:
        with self.db.read() as session:
            row = session.get(Instance, _uuid(instance_id))
            if row is None:
                raise InstanceNotFound(instance_id)
            return rows.instance_info(session, row)

    def instances(self, *, process_id: str | None = None, status: str | None = None, starter: str | None = None,
                  business_key: str | None = None, waiting_on: str | None = None, incidents: bool | None = None,
                  data: Mapping[str, Any] | None = None, limit: int = 100, offset: int = 0) -> list[InstanceInfo]:
        """Instances matching every filter given: `waiting_on` is task, timer, message, signal or job."""
        if status is not None and status not in STATUSES:
            raise InvalidData(f"status must be one of {', '.join(STATUSES)}")
        query = select(Instance).order_by(Instance.created_at.desc(), Instance.id)
        for column, value in ((Instance.process_id, process_id), (Instance.status, status),
                              (Instance.starter, starter), (Instance.business_key, business_key)):
            if value is not None:
                query = query.where(column == value)
        if waiting_on is not None:
            query = query.where(_waiting_clause(waiting_on))
        if incidents is not None:
            has = exists().where(Incident.instance_id == Instance.id, Incident.resolved_at.is_(None))
            query = query.where(has if incidents else ~has)
        with self.db.read() as session:
            found = [rows.instance_info(session, r) for r in session.scalars(
                query if data else query.limit(limit).offset(offset)).all()]
        if data:
            found = [i for i in found if all(i.data.get(k) == v for k, v in data.items())][offset:offset + limit]
        return found

    def activity(self, instance_id: UUID | str) -> dict[str, int]:
        """How often each element completed, from the history (never from the pruned task tree)."""
        with self.db.reading() as conn:
            counts = conn.execute(select(Event.element_id, func.count()).where(
                Event.instance_id == _uuid(instance_id), Event.kind == "completed",
                Event.element_id.is_not(None)).group_by(Event.element_id))
            return {element_id: count for element_id, count in counts}

    def history(self, instance_id: UUID | str) -> list[EventInfo]:
        with self.db.read() as session:
            if session.get(Instance, _uuid(instance_id)) is None:
                raise InstanceNotFound(instance_id)
            events = session.scalars(select(Event).where(Event.instance_id == _uuid(instance_id)).order_by(Event.id))
            return [EventInfo(r.id, r.instance_id, r.at, r.kind, r.element_id, r.name, r.user,
                              from_plain(json.loads(r.data))) for r in events]

    # Human tasks

    def tasks(self, *, user: str | None = None, instance_id: UUID | str | None = None,
              process_id: str | None = None) -> list[TaskInfo]:
        """Open human tasks; with `user`, those assigned to them or claimable by them or their groups."""
        params = {"instance_id": _uuid(instance_id) if instance_id is not None else None, "process_id": process_id,
                  "principals": store.principals(user, self._groups(user)) if user is not None else []}
        with self.db.reading() as conn:
            found = store.open_tasks(conn, params, instance_id is not None, process_id is not None, user is not None)
            return [rows.task_info(r) for r in found]

    def inbox(self, user: str, *, process_id: str | None = None, text: str | None = None, sort: str = "due",
              page: int = 1, size: int = 25) -> Inbox:
        """One page of the user's tasks with what each is about, and the counts (capped at 1,001): indexed queries."""
        if sort not in ("due", "created"):
            raise InvalidData("sort must be due or created")
        names = store.principals(user, self._groups(user))
        dialect = self.db.engine.dialect.name
        search = store.search_terms(text, dialect)
        words = len(search) - 1 if search else 0
        params = {f"p{n}": name for n, name in enumerate(names)} | search | {
            "process_id": process_id, "limit": size, "offset": (max(page, 1) - 1) * size}
        capped = params | {"depth": store.COUNT_CAP + 1}
        filtered = (len(names), process_id is not None, words)
        with self.db.reading() as conn:  # counts stop at store.COUNT_CAP + 1: show "1,000+" beyond the cap
            few = bool(words) and conn.execute(store.search_count(dialect), {
                "text": search["text"], "cap": store.FEW}).scalar_one() < store.FEW
            total = conn.execute(store.inbox_count(len(names), False, 0, dialect), capped).scalar_one()
            found = total if not (process_id or words) else conn.execute(
                store.inbox_count(*filtered, dialect, few), capped).scalar_one()
            page_rows = conn.execute(store.inbox_page(*filtered, sort, dialect, few),
                                     params | {"depth": params["limit"] + params["offset"]})
            items = tuple(InboxItem(rows.task_info(r), r.title or r.business_key, r.starter) for r in page_rows)
        return Inbox(items, min(total, store.COUNT_CAP + 1), min(found, store.COUNT_CAP + 1))

    def task(self, task_id: UUID | str, *, user: str | None = None) -> TaskInfo:
        with self.db.read() as session:
            row = session.get(HumanTask, _uuid(task_id))
            if row is None:
                raise TaskNotFound(task_id)
            self._check_may_act(row.id, row.assignee, row.candidate_users, row.candidate_groups, user)
            return rows.task_info(row)

    def claim(self, task_id: UUID | str, *, user: str) -> TaskInfo:
        """Take a task claimable by the user's groups, so that nobody else works on it."""

        def act(loaded: Loaded, row: HumanTask, step: runtime.Step) -> None:
            task = runtime.open_task(loaded.workflow, row.task_id)
            if row.task_assignee not in (None, user):
                raise Forbidden(f"task {task_id} is already assigned to {row.task_assignee}")
            task.internal_data["baton"] = {**runtime.assignment(task), "assignee": user}
            step.record("claimed", task, user=user)

        self._on_task(task_id, user, act)
        return self.task(task_id)

    def unclaim(self, task_id: UUID | str, *, user: str) -> TaskInfo:
        """Give a claimed task back to its candidates."""

        def act(loaded: Loaded, row: HumanTask, step: runtime.Step) -> None:
            task = runtime.open_task(loaded.workflow, row.task_id)
            if row.task_assignee != user:
                raise Forbidden(f"task {task_id} is not assigned to {user}")
            task.internal_data["baton"] = {**runtime.assignment(task), "assignee": None}
            step.record("unclaimed", task, user=user)

        self._on_task(task_id, user, act)
        return self.task(task_id)

    def reassign(self, task_id: UUID | str, assignee: str | None, *, user: str | None = None) -> TaskInfo:
        """Give a task to someone else (an administrator's act, e.g. when someone leaves); None unassigns it."""

        def act(loaded: Loaded, row: Any, step: runtime.Step) -> None:
            task = runtime.open_task(loaded.workflow, row.task_id)
            task.internal_data["baton"] = {**runtime.assignment(task), "assignee": assignee}
            step.record("reassigned", task, user=user, data={"from": row.task_assignee, "to": assignee})

        self._on_task(task_id, None, act)
        return self.task(task_id)

    def complete_task(self, task_id: UUID | str, data: Mapping[str, Any] | None = None, *,
                      user: str | None = None) -> InstanceInfo:
        """Complete a human task as `user` (None: trusted host code) and run until the instance waits again."""

        def act(loaded: Loaded, row: HumanTask, step: runtime.Step) -> None:
            task = runtime.open_task(loaded.workflow, row.task_id)
            if user is None:
                accepted = {k: v for k, v in (data or {}).items() if k not in RESERVED}
            else:
                accepted = forms.accept(json.loads(row.form), data)
            runtime.complete(loaded.workflow, task, accepted, step, user=user)

        info = self._on_task(task_id, user, act)
        log.info("instance %s: %s completed task %s", info.id, user or "host", task_id)
        return info

    # Administration

    def cancel(self, instance_id: UUID | str, *, user: str | None = None) -> InstanceInfo:
        return self._change(instance_id, lambda loaded, step: runtime.cancel(loaded.workflow, step, user=user),
                            allowed=("active", "error", "suspended"), status="cancelled")

    def suspend(self, instance_id: UUID | str, *, user: str | None = None) -> InstanceInfo:
        return self._change(instance_id, lambda loaded, step: step.record("suspended", user=user),
                            allowed=("active", "error"), status="suspended")

    def resume(self, instance_id: UUID | str, *, user: str | None = None) -> InstanceInfo:
        with self.db.read() as session:
            open_incident = session.scalar(select(func.count()).select_from(Incident).where(
                Incident.instance_id == _uuid(instance_id), Incident.resolved_at.is_(None)))
        return self._change(instance_id, lambda loaded, step: step.record("resumed", user=user),
                            allowed=("suspended",), status="error" if open_incident else "active")

    def retry(self, instance_id: UUID | str, *, incident_id: UUID | str | None = None,
              data: Mapping[str, Any] | None = None, user: str | None = None) -> InstanceInfo:
        """Run the failed task of an open incident again, with `data` merged into its data first."""
        with self.db.read() as session:
            query = select(Incident).where(Incident.instance_id == _uuid(instance_id), Incident.resolved_at.is_(None))
            if incident_id is not None:
                query = query.where(Incident.id == _uuid(incident_id))
            incident = session.scalars(query.order_by(Incident.created_at.desc())).first()
        if incident is None:
            if incident_id is not None:
                raise IncidentNotFound(incident_id)
            self.instance(instance_id)
            raise InvalidState(f"instance {instance_id} has no open incident")
        clean = {k: v for k, v in (data or {}).items() if k not in RESERVED}

        return self._change(instance_id, lambda loaded, step: runtime.retry(
            loaded.workflow, incident.task_id, clean, step, user=user), allowed=("error",))

    # Notifications

    def send_outbox(self) -> int:
        """Send pending notifications through BATON_SMTP_URL; without it they wait in the outbox. How many went."""
        if not self.settings.smtp_url:
            return 0
        try:
            return mail.send(self.db.engine, self.settings.smtp_url, self.directory, sender=self.settings.mail_from)
        except OSError as exc:  # the mail server is away: the rows stay unsent and go next round
            log.warning("outbox not sent: %s", exc)
            return 0

    def outbox(self, *, unsent: bool = True) -> list[dict[str, Any]]:
        """Notifications written by diagrams, oldest first."""
        query = select(Outbox.__table__).order_by(Outbox.id)
        if unsent:
            query = query.where(Outbox.sent_at.is_(None))
        with self.db.reading() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    # The shape of every change: read, act in memory, write if nobody else wrote first.

    def _on_task(self, task_id: UUID | str, user: str | None,
                 act: Callable[[Loaded, Any, runtime.Step], None]) -> InstanceInfo:
        def fetch(conn: Any) -> Any:
            row = store.task_row(conn, _uuid(task_id))
            if row is None:
                raise TaskNotFound(task_id)
            self._check_may_act(row.task_id, row.task_assignee, row.candidate_users, row.candidate_groups, user)
            return row

        row, loaded = self._read(fetch)
        return self._apply(loaded, lambda loaded, step: act(loaded, row, step), allowed=("active",))

    def _change(self, instance_id: UUID | str, act: Callable[[Loaded, runtime.Step], None], *,
                allowed: tuple[str, ...], status: str | None = None,
                within: Callable[[Any, UUID], None] | None = None) -> InstanceInfo:
        def fetch(conn: Any) -> Any:
            row = store.instance_row(conn, _uuid(instance_id))
            if row is None:
                raise InstanceNotFound(instance_id)
            return row

        _, loaded = self._read(fetch)
        return self._apply(loaded, act, allowed=allowed, status=status, within=within)

    def _apply(self, loaded: Loaded, act: Callable[[Loaded, runtime.Step], None], *,
               allowed: tuple[str, ...], status: str | None = None,
               within: Callable[[Any, UUID], None] | None = None) -> InstanceInfo:
        """Act on the workflow in memory, then write it if nobody else wrote since it was read.

        `within` writes in the same transaction (a job's lease, a delivered message's record).
        """
        self._pause("loaded")
        if loaded.status not in allowed:
            raise InvalidState(f"instance {loaded.id} is {loaded.status}")
        with self._stepping(runtime.Step()) as step:
            act(loaded, step)
        values, waiting = self._values(loaded.workflow, step, status, {"starter": loaded.starter})
        self._pause("before_write")
        with self.db.writing() as conn:
            if within is not None:
                within(conn, loaded.id)
            store.update_instance(conn, loaded.id, loaded.version, values)
            self._pause("written")
            if loaded.status == "error" and values["status"] != "error":  # a new failure replaces it in history
                store.resolve_incidents(conn, loaded.id)
            about = _about({**loaded.row._mapping, **values})
            store.write_projections(conn, loaded.id, loaded.process_id, loaded.workflow, loaded.waiting, waiting,
                                    about)
            if (about["active"] != (loaded.status == "active") or values["title"] != loaded.row.title) \
                    and any(w["kind"] == "task" for w in waiting):  # else its task rows went with `before`
                store.refresh_inbox(conn, loaded.id, about)
            store.write_history(conn, loaded.id, step)
            info = rows.instance_info(conn, SimpleNamespace(**{**loaded.row._mapping, **values,
                                                            "version": loaded.version + 1}))
        self._remember(loaded.id, loaded.version + 1, loaded.workflow, values["status"])
        self._after(loaded.id, loaded.waiting, waiting, step)
        return info

    def _values(self, workflow: Any, step: runtime.Step, status: str | None, reserved: dict[str, Any]
                ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The instance row's new values, and what it now waits on (from one scan of the task tree)."""
        pruning.prune(workflow)  # the stored state holds what is still active; history is in the event table
        found = runtime.scan(workflow)
        runtime.guard(workflow, found, reserved)
        if step.failure is not None:
            status = "error"
        elif status is None:
            status = "complete" if runtime.finished(workflow, found) else "active"
        waiting = runtime.waiting(workflow, found) if status in ("active", "error", "suspended") else []
        data = runtime.current_data(workflow, found)
        values = {"status": status, "state": dump_state(workflow), "waiting": json.dumps(waiting),
                  "data": store.dumps(data), "title": str(data.get("item") or "")[:255] or None, "updated_at": now()}
        if status in ("complete", "cancelled"):
            values["ended_at"] = values["updated_at"]
        return values, waiting

    def _read(self, fetch: Callable[[Any], Any]) -> tuple[Any, Loaded]:
        """The instance row `fetch` reads (with whatever else it joins) and the instance's workflow at its version.

        The reads are single statements outside a transaction (a read transaction cost as much as the read): the
        state is read only at the row's version, and should another change have come in between, read again.
        """
        with self.db.reading() as conn:
            for _ in range(3):
                row = fetch(conn)
                loaded = self._load(conn, row)
                if loaded is not None:
                    return row, loaded
        raise Conflict("the instance changes faster than it can be read; try again")

    def _load(self, conn: Any, row: Any) -> Loaded | None:
        """The instance's workflow, from this engine's cache when the row has not changed since; None: it has."""
        cached = self._workflows.pop(row.id, None)  # taken out: no other thread works on the same object
        if cached is not None and cached[0] == row.version:
            return Loaded(row, cached[1])
        spec, subprocesses = self._spec(conn, row.definition_id)
        state = store.state(conn, row.id, row.version)
        if state is None:
            return None
        workflow = load_state(state, spec, subprocesses)
        workflow.script_engine = self.script_engine
        return Loaded(row, workflow)

    def _remember(self, instance_id: UUID, version: int, workflow: Any, status: str) -> None:
        if status in ("complete", "cancelled"):
            return
        self._workflows[instance_id] = (version, workflow)
        while len(self._workflows) > CACHED_WORKFLOWS:
            self._workflows.pop(next(iter(self._workflows)), None)

    def _spec(self, conn: Any, definition_id: int) -> tuple[Any, dict[str, Any]]:
        """A definition's parsed spec, read (on `conn`, or else a connection of its own) once per engine."""
        if definition_id not in self._specs:
            if conn is None:
                with self.db.reading() as own:
                    return self._spec(own, definition_id)
            text = conn.execute(select(Definition.spec).where(Definition.id == definition_id)).scalar_one()
            self._specs[definition_id] = load_spec(text)
        return self._specs[definition_id]

    def _pause(self, point: str) -> None:
        if self.hook is not None:
            self.hook(point)

    # Who may do what

    def _groups(self, user: str) -> set[str]:
        return set(self.directory.groups_of(user))

    def _check_may_act(self, task_id: UUID, assignee: str | None, users: str, groups: str, user: str | None) -> None:
        if user is None or assignee == user:
            return
        if assignee is not None:
            raise Forbidden(f"task {task_id} is assigned to someone else")
        candidates, candidate_groups = set(filter(None, users.split(","))), set(filter(None, groups.split(",")))
        if (candidates or candidate_groups) and user not in candidates and not candidate_groups & self._groups(user):
            raise Forbidden(f"{user} may not work on task {task_id}")


def start_form(spec: Any) -> list[dict[str, Any]]:
    """The fields of the form on the process's none start event, if it declares one."""
    for task_spec in spec.task_specs.values():
        fields = getattr(task_spec, "extensions", {}).get("baton", {}).get("form")
        if fields and getattr(task_spec, "event_definition", None).__class__.__name__ == "NoneEventDefinition":
            return list(fields)
    return []


def _uuid(value: UUID | str) -> UUID:
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except ValueError:
        raise InvalidData(f"'{value}' is not a valid id") from None


def _waiting_clause(kind: str) -> Any:
    tables = {"task": exists().where(HumanTask.instance_id == Instance.id),
              "timer": exists().where(Job.instance_id == Instance.id, Job.kind == "timer"),
              "job": exists().where(Job.instance_id == Instance.id, Job.kind.in_(("service", "async"))),
              "message": exists().where(Subscription.instance_id == Instance.id, Subscription.kind == "message"),
              "signal": exists().where(Subscription.instance_id == Instance.id, Subscription.kind == "signal")}
    kind = kind.removesuffix("s") if kind.removesuffix("s") in tables else kind  # "tasks" reads as well as "task"
    if kind not in tables:
        raise InvalidData(f"waiting_on must be one of {', '.join(tables)}")
    return tables[kind]


def _about(row: Mapping[str, Any]) -> dict[str, Any]:
    """What the inbox shows of an instance and filters by."""
    return {"title": row["title"], "business_key": row["business_key"], "starter": row["starter"],
            "active": row["status"] == "active"}
