"""What the engine returns: frozen dataclasses, never ORM rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from .errors import Problem

STATUSES = ("active", "error", "suspended", "complete", "cancelled")


@dataclass(frozen=True)
class DefinitionInfo:
    id: int
    process_id: str
    version: int
    name: str | None
    filename: str
    checksum: str
    deployed_by: str | None
    deployed_at: datetime


@dataclass(frozen=True)
class DraftInfo:
    """An upload waiting to deploy: its files' names and, when read one by one, what lint says of them now."""

    id: UUID
    owner: str | None
    created_at: datetime
    files: tuple[str, ...]
    report: LintReport | None = None


@dataclass(frozen=True)
class FormField:
    id: str
    label: str
    type: str
    default: str | None = None
    required: bool = False
    readonly: bool = False
    constraints: dict[str, str] = field(default_factory=dict)
    values: tuple[tuple[str, str], ...] = ()
    help: str | None = None


@dataclass(frozen=True)
class TaskInfo:
    id: UUID
    name: str
    element_id: str
    instance_id: UUID
    process_id: str
    lane: str | None
    assignee: str | None
    candidate_users: tuple[str, ...]
    candidate_groups: tuple[str, ...]
    form: tuple[FormField, ...]
    created: datetime
    due: datetime | None
    properties: dict[str, str] = field(default_factory=dict)  # the element's extension properties


@dataclass(frozen=True)
class InboxItem:
    """An inbox line: the task, what the request is about, and who asked."""

    task: TaskInfo
    title: str | None
    requester: str | None


@dataclass(frozen=True)
class Inbox:
    """One page of a user's tasks; `total` is all their tasks, `found` those matching the filters."""

    items: tuple[InboxItem, ...]
    total: int
    found: int


@dataclass(frozen=True)
class Waiting:
    """One thing an instance waits on: a human task, a timer, a message, a signal or a job."""

    kind: str
    element_id: str | None
    name: str | None = None
    due: datetime | None = None
    task_id: UUID | None = None


@dataclass(frozen=True)
class IncidentInfo:
    id: UUID
    task_id: UUID
    element_id: str | None
    error_type: str | None
    message: str
    line: int | None
    created: datetime


@dataclass(frozen=True)
class InstanceInfo:
    id: UUID
    process_id: str
    definition_version: int
    status: str
    business_key: str | None
    starter: str | None
    data: dict[str, Any]
    created: datetime
    updated: datetime
    ended: datetime | None
    waiting_on: tuple[Waiting, ...] = ()
    incidents: tuple[IncidentInfo, ...] = ()


@dataclass(frozen=True)
class EventInfo:
    id: int
    instance_id: UUID
    at: datetime
    kind: str
    element_id: str | None
    name: str | None
    user: str | None
    data: dict[str, Any]


@dataclass(frozen=True)
class LintReport:
    problems: tuple[Problem, ...]

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "error")

    @property
    def warnings(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "warning")

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class Delivery:
    """What became of a message: delivered to a waiting instance, started one, buffered, or a duplicate."""

    outcome: str  # "delivered", "started", "buffered" or "duplicate"
    instance_id: UUID | None
    message_id: str | None = None


@dataclass(frozen=True)
class JobStatus:
    """The job executor at a glance: due now, leased by a worker, failing (retrying) and failed (incidents)."""

    due: int
    running: int
    retrying: int
    failed: int
    oldest_overdue_seconds: float | None
    scheduled: int
