"""Deploying diagrams: lint, versions, and the start events each new version brings (message, signal, timer)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from SpiffWorkflow.bpmn.specs.defaults import StartEvent
from SpiffWorkflow.bpmn.specs.event_definitions import MessageEventDefinition, SignalEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from . import jobs, parsing, rows
from .errors import DefinitionNotFound, InvalidDiagram, Problem
from .info import DefinitionInfo, LintReport
from .models import Definition, StartTrigger
from .specs import dump_spec, load_spec

log = logging.getLogger(__name__)

Source = parsing.Source | Path | str | bytes


class Deployment:
    """The diagram half of the Engine facade (mixed into `Engine`)."""

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
                    s.content for s in parsed.used(process_id, subprocesses)) + "\n".join(
                    parsed.bound.get(process_id, [])).encode()).checksum  # a newer called version: a new version
                latest = _latest(session, process_id)
                if latest is not None and latest.checksum == checksum:
                    deployed.append(rows.definition_info(latest))
                    continue
                row = Definition(process_id=process_id, version=latest.version + 1 if latest else 1,
                                 name=parsed.names.get(process_id), filename=src.name, checksum=checksum,
                                 xml=src.content, spec=dump_spec(spec, subprocesses), deployed_by=user)
                session.add(row)
                session.flush()
                self._schedule(session.connection(), row, spec)
                deployed.append(rows.definition_info(row))
        for info in deployed:
            log.info("deployed %s version %s by %s", info.process_id, info.version, user or "host")
        return deployed

    def _schedule(self, conn: Any, row: Definition, spec: Any) -> None:
        """The new version's start events take over: its message and signal starts, and its timer schedule."""
        triggers, timers = [], []
        for task_spec in spec.task_specs.values():
            definition = getattr(task_spec, "event_definition", None)
            if not isinstance(task_spec, StartEvent) or definition is None:
                continue
            if isinstance(definition, TimerEventDefinition):
                try:
                    expression = str(self.script_engine.environment.evaluate(definition.expression, {}))
                    jobs.start_schedule(definition, expression)
                except Exception as exc:  # a timer the sandbox cannot evaluate or ISO 8601 cannot read
                    raise InvalidDiagram([Problem(row.filename, None, task_spec.bpmn_id, "the timer start "
                                                  f"{definition.expression} cannot be scheduled: {exc}")]) from exc
                timers.append((task_spec.bpmn_id, definition, expression))
            elif isinstance(definition, MessageEventDefinition | SignalEventDefinition):
                kind = "message" if isinstance(definition, MessageEventDefinition) else "signal"
                triggers.append({"definition_id": row.id, "process_id": row.process_id, "kind": kind,
                                 "name": definition.name, "element_id": task_spec.bpmn_id})
        conn.execute(delete(StartTrigger).where(StartTrigger.process_id == row.process_id))
        if triggers:
            conn.execute(insert(StartTrigger), triggers)
        jobs.schedule_starts(conn, row.process_id, row.id, timers)

    def _definition_row(self, definition_id: int) -> Any:
        with self.db.reading() as conn:
            row = conn.execute(select(Definition.id, Definition.version, Definition.process_id).where(
                Definition.id == definition_id)).first()
        if row is None:
            raise DefinitionNotFound(str(definition_id))
        return row

    def definitions(self) -> list[DefinitionInfo]:
        """Every deployed version of every process, newest first within each process."""
        with self.db.read() as session:
            found = session.scalars(select(Definition).order_by(Definition.process_id, Definition.version.desc()))
            return [rows.definition_info(r) for r in found]

    def definition(self, process_id: str, version: int | None = None) -> DefinitionInfo:
        with self.db.read() as session:
            return rows.definition_info(find_definition(session, process_id, version))

    def diagram(self, process_id: str, version: int | None = None) -> bytes:
        """The XML exactly as it was deployed."""
        with self.db.read() as session:
            return find_definition(session, process_id, version).xml

    def _parse(self, sources: Iterable[Source]) -> parsing.Parsed:
        items = [parsing.source(s, i) for i, s in enumerate(sources)]
        return parsing.parse(items, max_bytes=self.settings.max_diagram_bytes, check=self.sandbox.check,
                             connectors=self.connectors, called=self._called)

    def _called(self, process_id: str, version: int | None) -> tuple[Any, dict[str, Any], str] | None:
        """A deployed version of a process (None: the newest), for a call activity bound to it."""
        with self.db.read() as session:
            try:
                row = find_definition(session, process_id, version)
            except DefinitionNotFound:
                return None
            spec, subprocesses = load_spec(row.spec)
            return spec, subprocesses, f"{row.process_id}@{row.version}:{row.checksum}"


def _latest(session: Session, process_id: str) -> Definition | None:
    return session.scalars(select(Definition).where(Definition.process_id == process_id)
                           .order_by(Definition.version.desc()).limit(1)).first()


def find_definition(session: Session, process_id: str, version: int | None) -> Definition:
    if version is None:
        row = _latest(session, process_id)
    else:
        row = session.scalars(select(Definition).where(Definition.process_id == process_id,
                                                       Definition.version == version)).first()
    if row is None:
        raise DefinitionNotFound(process_id, version)
    return row
