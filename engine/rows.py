"""Rows as the engine returns them: frozen info objects, never ORM rows."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import select

from .info import DefinitionInfo, FormField, IncidentInfo, InstanceInfo, TaskInfo, Waiting
from .models import Incident
from .specs import from_plain


def definition_info(row: Any) -> DefinitionInfo:
    return DefinitionInfo(row.id, row.process_id, row.version, row.name, row.filename, row.checksum,
                          row.deployed_by, row.deployed_at)


def field(f: dict[str, Any]) -> FormField:
    return FormField(f["id"], f["label"], f["type"], f.get("default"), f.get("required", False),
                     f.get("readonly", False), f.get("constraints", {}),
                     tuple((v["id"], v["name"]) for v in f.get("values", [])), f.get("help"))


def task_info(row: Any) -> TaskInfo:
    form = tuple(field(f) for f in json.loads(row.form))
    return TaskInfo(row.id, row.name or row.element_id, row.element_id, row.instance_id, row.process_id, row.lane,
                    row.assignee, tuple(filter(None, row.candidate_users.split(","))),
                    tuple(filter(None, row.candidate_groups.split(","))), form, row.created_at, row.due_at,
                    json.loads(row.properties or "{}"))


def when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def instance_info(session: Any, row: Any) -> InstanceInfo:
    incidents: tuple[IncidentInfo, ...] = ()
    if row.status in ("error", "suspended"):
        query = select(Incident.__table__).where(Incident.instance_id == row.id, Incident.resolved_at.is_(None))
        incidents = tuple(IncidentInfo(i.id, i.task_id, i.element_id, i.error_type, i.message, i.line, i.created_at)
                          for i in session.execute(query.order_by(Incident.created_at)))
    waiting = tuple(Waiting(w["kind"], w["element_id"], w["name"], when(w["due"]), UUID(w["task_id"]))
                    for w in json.loads(row.waiting))
    return InstanceInfo(row.id, row.process_id, row.definition_version, row.status, row.business_key, row.starter,
                        from_plain(json.loads(row.data)), row.created_at, row.updated_at, row.ended_at, waiting,
                        incidents)
