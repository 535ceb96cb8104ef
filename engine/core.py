"""The Engine facade: deploy diagrams, start instances, work their tasks; one short transaction per change."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from uuid import UUID, uuid4

from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from sqlalchemy import exists, func, select
from sqlalchemy.orm import Session

from . import forms, mail, parsing, runtime, store
from .clock import clock
from .config import Settings
from .directory import Directory, SqlDirectory
from .directory import functions as directory_functions
from .errors import (
    Conflict,
    DefinitionNotFound,
    Forbidden,
    IncidentNotFound,
    InstanceNotFound,
    InvalidData,
    InvalidDiagram,
    InvalidState,
    NotFound,
    TaskNotFound,
)
from .info import (
    STATUSES,
    DefinitionInfo,
    EventInfo,
    FormField,
    Inbox,
    InboxItem,
    IncidentInfo,
    InstanceInfo,
    LintReport,
    TaskInfo,
    Waiting,
)
from .models import Definition, Event, HumanTask, Incident, Instance, Job, Outbox, Subscription, now
from .scripting import Sandbox
from .specs import dump_spec, dump_state, from_plain, load_spec, load_state

log = logging.getLogger(__name__)

Source = Path | str | bytes
RESERVED = ("starter",)
CACHED_WORKFLOWS = 256


class Loaded:
    """An instance row's facts and its workflow, between reading and writing."""

    def __init__(self, row: Any, workflow: Any) -> None:
        self.id, self.version, self.status = row.id, row.version, row.status
        self.process_id, self.starter = row.process_id, row.starter
        self.waiting = json.loads(row.waiting)
        self.row, self.workflow = row, workflow


class Engine:
    """Deploy BPMN, run durable instances, and drive them; the contract the web app, API and CLI use."""

    def __init__(self, database_url: str | None = None, *, connectors: Mapping[str, Callable[..., Any]] | None = None,
                 functions: Mapping[str, Callable[..., Any]] | None = None, directory: Directory | None = None
                 ) -> None:
        self.settings = Settings()
        self.database_url = database_url or self.settings.database_url
        self.db = store.Store(store.connect(self.database_url))
        self.connectors = dict(connectors or {})
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

    # Diagrams

    def lint(self, *sources: Source) -> LintReport:
        """Check diagrams without deploying them: every problem of every file at once."""
        return LintReport(tuple(self._parse(sources).problems))

    def deploy(self, *sources: Source, user: str | None = None) -> list[DefinitionInfo]:
        """Deploy BPMN and DMN files together; identical XML is a no-op, changed XML a new version."""
        parsed = self._parse(sources)
        if parsed.errors:
            raise InvalidDiagram(parsed.errors)
        deployed = []
        with self.db.write() as session:
            for process_id, (spec, subprocesses) in parsed.processes.items():
                src = parsed.files[process_id]
                checksum = parsing.Source("", src.content + b"".join(
                    s.content for s in parsed.files.values() if s is not src and s.name in _called_files(
                        subprocesses, parsed))).checksum
                latest = _latest(session, process_id)
                if latest is not None and latest.checksum == checksum:
                    deployed.append(_definition_info(latest))
                    continue
                row = Definition(process_id=process_id, version=latest.version + 1 if latest else 1,
                                 name=parsed.names.get(process_id), filename=src.name, checksum=checksum,
                                 xml=src.content, spec=dump_spec(spec, subprocesses), deployed_by=user)
                session.add(row)
                session.flush()
                deployed.append(_definition_info(row))
        for info in deployed:
            log.info("deployed %s version %s by %s", info.process_id, info.version, user or "host")
        return deployed

    def definitions(self) -> list[DefinitionInfo]:
        """Every deployed version of every process, newest first within each process."""
        with self.db.read() as session:
            rows = session.scalars(select(Definition).order_by(Definition.process_id, Definition.version.desc()))
            return [_definition_info(r) for r in rows]

    def definition(self, process_id: str, version: int | None = None) -> DefinitionInfo:
        with self.db.read() as session:
            return _definition_info(_definition(session, process_id, version))

    def diagram(self, process_id: str, version: int | None = None) -> bytes:
        """The XML exactly as it was deployed."""
        with self.db.read() as session:
            return _definition(session, process_id, version).xml

    def _parse(self, sources: Iterable[Source]) -> parsing.Parsed:
        items = [parsing.source(s, i) for i, s in enumerate(sources)]
        return parsing.parse(items, max_bytes=self.settings.max_diagram_bytes, check=self.sandbox.check)

    # Instances

    def start(self, process_id: str, data: Mapping[str, Any] | None = None, *, user: str | None = None,
              business_key: str | None = None) -> InstanceInfo:
        """Start the newest version of a process as `user` (None: trusted host code) and run until it waits.

        When the process declares a start form and a user starts it, only that form's fields are accepted.
        """
        with self.db.reading() as conn:
            definition = conn.execute(select(Definition.id, Definition.version).where(
                Definition.process_id == process_id).order_by(Definition.version.desc()).limit(1)).first()
            if definition is None:
                raise DefinitionNotFound(process_id)
            spec, subprocesses = self._spec(conn, definition.id)
        workflow = runtime.create(spec, subprocesses, self.script_engine)
        reserved = {"starter": user}
        fields = start_form(spec)
        if user is not None and fields:
            start_data = forms.accept(fields, data) | reserved
        else:
            start_data = {k: v for k, v in (data or {}).items() if k not in RESERVED}
            given = [f for f in fields if f["id"] in start_data or f.get("default") is not None]
            start_data |= forms.accept(given, start_data) | reserved  # typed, and the form's defaults filled in
        with self._stepping(runtime.Step()) as step:
            runtime.start(workflow, start_data, step, user=user)
        values, waiting = self._values(workflow, step, None, reserved)
        self._pause("before_write")
        row = {"id": uuid4(), "definition_id": definition.id, "process_id": process_id,
               "definition_version": definition.version, "business_key": business_key, "starter": user,
               "version": 1, "created_at": values["updated_at"], "ended_at": None, **values}
        with self.db.writing() as conn:
            store.insert_instance(conn, row)
            self._pause("written")
            store.write_projections(conn, row["id"], process_id, workflow, [], waiting, _about(row))
            store.write_history(conn, row["id"], step)
            info = _instance_info(conn, SimpleNamespace(**row))
        self._remember(row["id"], 1, workflow, values["status"])
        log.info("instance %s of %s started by %s", row["id"], process_id, user or "host")
        return info

    def start_form(self, process_id: str) -> tuple[FormField, ...]:
        """The fields of the newest version's start form (empty when the process declares none)."""
        with self.db.read() as session:
            definition = _definition(session, process_id, None)
            spec, _ = self._spec(session.connection(), definition.id)
        return tuple(_field(f) for f in start_form(spec))

    def instance(self, instance_id: UUID | str) -> InstanceInfo:
        with self.db.read() as session:
            row = session.get(Instance, _uuid(instance_id))
            if row is None:
                raise InstanceNotFound(instance_id)
            return _instance_info(session, row)

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
            rows = session.scalars(query if data else query.limit(limit).offset(offset)).all()
            found = [_instance_info(session, r) for r in rows]
        if data:
            found = [i for i in found if all(i.data.get(k) == v for k, v in data.items())][offset:offset + limit]
        return found

    def activity(self, instance_id: UUID | str) -> dict[str, int]:
        """How often each element completed, from the history (never from the pruned task tree)."""
        with self.db.reading() as conn:
            rows = conn.execute(select(Event.element_id, func.count()).where(
                Event.instance_id == _uuid(instance_id), Event.kind == "completed",
                Event.element_id.is_not(None)).group_by(Event.element_id))
            return {element_id: count for element_id, count in rows}

    def history(self, instance_id: UUID | str) -> list[EventInfo]:
        with self.db.read() as session:
            if session.get(Instance, _uuid(instance_id)) is None:
                raise InstanceNotFound(instance_id)
            rows = session.scalars(select(Event).where(Event.instance_id == _uuid(instance_id)).order_by(Event.id))
            return [EventInfo(r.id, r.instance_id, r.at, r.kind, r.element_id, r.name, r.user,
                              from_plain(json.loads(r.data))) for r in rows]

    # Human tasks

    def tasks(self, *, user: str | None = None, instance_id: UUID | str | None = None,
              process_id: str | None = None) -> list[TaskInfo]:
        """Open human tasks; with `user`, those assigned to them or claimable by them or their groups."""
        query = store.task_query(instance_id is not None, process_id is not None, user is not None)
        params = {"instance_id": _uuid(instance_id) if instance_id is not None else None, "process_id": process_id,
                  "principals": store.principals(user, self._groups(user)) if user is not None else []}
        with self.db.reading() as conn:
            return [_task_info(r) for r in conn.execute(query, params)]

    def inbox(self, user: str, *, process_id: str | None = None, text: str | None = None, sort: str = "due",
              page: int = 1, size: int = 25) -> Inbox:
        """One page of the user's tasks with what each is about, and the counts (capped at 1,001): indexed queries."""
        if sort not in ("due", "created"):
            raise InvalidData("sort must be due or created")
        names = store.principals(user, self._groups(user))
        text = f"%{text.strip().lower()}%" if text and text.strip() else None
        params = {f"p{n}": name for n, name in enumerate(names)} | {
            "process_id": process_id, "text": text, "limit": size, "offset": (max(page, 1) - 1) * size}
        capped = params | {"depth": store.COUNT_CAP + 1}
        with self.db.reading() as conn:  # counts stop at store.COUNT_CAP + 1: show "1,000+" beyond the cap
            total = conn.execute(store.inbox_count(len(names), False, False), capped).scalar_one()
            found = total if not (process_id or text) else conn.execute(
                store.inbox_count(len(names), process_id is not None, text is not None), capped).scalar_one()
            rows = conn.execute(store.inbox_page(len(names), process_id is not None, text is not None, sort),
                                params | {"depth": params["limit"] + params["offset"]})
            items = tuple(InboxItem(_task_info(r), r.title or r.business_key, r.starter) for r in rows)
        return Inbox(items, min(total, store.COUNT_CAP + 1), min(found, store.COUNT_CAP + 1))

    def task(self, task_id: UUID | str, *, user: str | None = None) -> TaskInfo:
        with self.db.read() as session:
            row = session.get(HumanTask, _uuid(task_id))
            if row is None:
                raise TaskNotFound(task_id)
            self._check_may_act(row.id, row.assignee, row.candidate_users, row.candidate_groups, user)
            return _task_info(row)

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

    # Jobs: the job-executor issue runs these from a worker with leases; here they run when asked.

    def run_due_jobs(self, *, limit: int = 100) -> int:
        """Fire due timers and call due service tasks' connectors, each as its own step; returns how many ran."""
        with self.db.reading() as conn:
            due = conn.execute(select(Job.id, Job.instance_id, Job.task_id, Job.kind).where(
                Job.due_at <= now()).order_by(Job.due_at).limit(limit)).all()
        ran = 0
        for job in due:
            try:
                if job.kind == "timer":
                    self._change(job.instance_id, lambda loaded, step: runtime.fire_timers(loaded.workflow, step),
                                 allowed=("active",))
                else:
                    self._change(job.instance_id, lambda loaded, step, job=job: self._call(loaded, job.task_id, step),
                                 allowed=("active",))
                ran += 1
            except (Conflict, InvalidState, NotFound) as exc:
                log.info("job %s skipped: %s", job.id, exc)
        self.send_outbox()
        return ran

    def send_outbox(self) -> int:
        """Send pending notifications through BATON_SMTP_URL; without it they wait in the outbox. How many went."""
        if not self.settings.smtp_url:
            return 0
        try:
            return mail.send(self.db.engine, self.settings.smtp_url, self.directory, sender=self.settings.mail_from)
        except OSError as exc:  # the mail server is away: the rows stay unsent and go next round
            log.warning("outbox not sent: %s", exc)
            return 0

    def _call(self, loaded: Loaded, task_id: UUID, step: runtime.Step) -> None:
        task = runtime.service_task(loaded.workflow, task_id)
        connector = self.connectors.get(task.task_spec.connector or "")
        try:
            if connector is None:
                raise LookupError(f"no connector named '{task.task_spec.connector}' is registered")
            result = connector(runtime.service_input(loaded.workflow, task))
        except Exception as exc:  # a connector is host code: whatever it raises becomes an incident
            runtime.fail_service(loaded.workflow, task, exc, step)
            return
        runtime.complete_service(loaded.workflow, task, result, step)

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
        with self.db.reading() as conn:
            row = store.task_row(conn, _uuid(task_id))
            if row is None:
                raise TaskNotFound(task_id)
            self._check_may_act(row.task_id, row.task_assignee, row.candidate_users, row.candidate_groups, user)
            loaded = self._load(conn, row)
        return self._apply(loaded, lambda loaded, step: act(loaded, row, step), allowed=("active",))

    def _change(self, instance_id: UUID | str, act: Callable[[Loaded, runtime.Step], None], *,
                allowed: tuple[str, ...], status: str | None = None) -> InstanceInfo:
        with self.db.reading() as conn:
            row = store.instance_row(conn, _uuid(instance_id))
            if row is None:
                raise InstanceNotFound(instance_id)
            loaded = self._load(conn, row)
        return self._apply(loaded, act, allowed=allowed, status=status)

    def _apply(self, loaded: Loaded, act: Callable[[Loaded, runtime.Step], None], *,
               allowed: tuple[str, ...], status: str | None = None) -> InstanceInfo:
        """Act on the workflow in memory, then write it if nobody else wrote since it was read."""
        self._pause("loaded")
        if loaded.status not in allowed:
            raise InvalidState(f"instance {loaded.id} is {loaded.status}")
        with self._stepping(runtime.Step()) as step:
            act(loaded, step)
        values, waiting = self._values(loaded.workflow, step, status, {"starter": loaded.starter})
        self._pause("before_write")
        with self.db.writing() as conn:
            store.update_instance(conn, loaded.id, loaded.version, values)
            self._pause("written")
            if loaded.status == "error" and values["status"] != "error":  # a new failure replaces it in history
                store.resolve_incidents(conn, loaded.id)
            about = _about({**loaded.row._mapping, **values})
            store.write_projections(conn, loaded.id, loaded.process_id, loaded.workflow, loaded.waiting, waiting,
                                    about)
            if about["active"] != (loaded.status == "active") or values["title"] != loaded.row.title:
                store.refresh_inbox(conn, loaded.id, about)
            store.write_history(conn, loaded.id, step)
            info = _instance_info(conn, SimpleNamespace(**{**loaded.row._mapping, **values,
                                                            "version": loaded.version + 1}))
        self._remember(loaded.id, loaded.version + 1, loaded.workflow, values["status"])
        return info

    def _values(self, workflow: Any, step: runtime.Step, status: str | None, reserved: dict[str, Any]
                ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The instance row's new values, and what it now waits on (from one scan of the task tree)."""
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

    def _load(self, conn: Any, row: Any) -> Loaded:
        """The instance's workflow, from this engine's cache when the row has not changed since."""
        cached = self._workflows.pop(row.id, None)  # taken out: no other thread works on the same object
        if cached is not None and cached[0] == row.version:
            return Loaded(row, cached[1])
        spec, subprocesses = self._spec(conn, row.definition_id)
        workflow = load_state(store.state(conn, row.id), spec, subprocesses)
        workflow.script_engine = self.script_engine
        return Loaded(row, workflow)

    def _remember(self, instance_id: UUID, version: int, workflow: Any, status: str) -> None:
        if status in ("complete", "cancelled"):
            return
        self._workflows[instance_id] = (version, workflow)
        while len(self._workflows) > CACHED_WORKFLOWS:
            self._workflows.pop(next(iter(self._workflows)), None)

    def _spec(self, conn: Any, definition_id: int) -> tuple[Any, dict[str, Any]]:
        if definition_id not in self._specs:
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


def _called_files(subprocesses: dict[str, Any], parsed: parsing.Parsed) -> set[str]:
    return {parsed.files[p].name for p in subprocesses if p in parsed.files}


def _uuid(value: UUID | str) -> UUID:
    if isinstance(value, UUID):
        return value
    try:
        return UUID(str(value))
    except ValueError:
        raise InvalidData(f"'{value}' is not a valid id") from None


def _latest(session: Session, process_id: str) -> Definition | None:
    return session.scalars(select(Definition).where(Definition.process_id == process_id)
                           .order_by(Definition.version.desc()).limit(1)).first()


def _definition(session: Session, process_id: str, version: int | None) -> Definition:
    if version is None:
        row = _latest(session, process_id)
    else:
        row = session.scalars(select(Definition).where(Definition.process_id == process_id,
                                                       Definition.version == version)).first()
    if row is None:
        raise DefinitionNotFound(process_id, version)
    return row


def _definition_info(row: Definition) -> DefinitionInfo:
    return DefinitionInfo(row.id, row.process_id, row.version, row.name, row.filename, row.checksum,
                          row.deployed_by, row.deployed_at)


def _field(f: dict[str, Any]) -> FormField:
    return FormField(f["id"], f["label"], f["type"], f.get("default"), f.get("required", False),
                     f.get("readonly", False), f.get("constraints", {}),
                     tuple((v["id"], v["name"]) for v in f.get("values", [])))


def _task_info(row: HumanTask) -> TaskInfo:
    form = tuple(_field(f) for f in json.loads(row.form))
    return TaskInfo(row.id, row.name or row.element_id, row.element_id, row.instance_id, row.process_id, row.lane,
                    row.assignee, tuple(filter(None, row.candidate_users.split(","))),
                    tuple(filter(None, row.candidate_groups.split(","))), form, row.created_at, row.due_at)


def _waiting_clause(kind: str) -> Any:
    tables = {"task": exists().where(HumanTask.instance_id == Instance.id),
              "timer": exists().where(Job.instance_id == Instance.id, Job.kind == "timer"),
              "job": exists().where(Job.instance_id == Instance.id, Job.kind == "service"),
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


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _instance_info(session: Session, row: Instance) -> InstanceInfo:
    incidents: tuple[IncidentInfo, ...] = ()
    if row.status in ("error", "suspended"):
        query = select(Incident.__table__).where(Incident.instance_id == row.id, Incident.resolved_at.is_(None))
        incidents = tuple(IncidentInfo(i.id, i.task_id, i.element_id, i.error_type, i.message, i.line, i.created_at)
                          for i in session.execute(query.order_by(Incident.created_at)))
    waiting = tuple(Waiting(w["kind"], w["element_id"], w["name"], _when(w["due"]), UUID(w["task_id"]))
                    for w in json.loads(row.waiting))
    return InstanceInfo(row.id, row.process_id, row.definition_version, row.status, row.business_key, row.starter,
                        from_plain(json.loads(row.data)), row.created_at, row.updated_at, row.ended_at, waiting,
                        incidents)
