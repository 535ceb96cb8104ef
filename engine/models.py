"""SQLAlchemy tables: definitions, instances and the projections rewritten with them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import (
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from .clock import clock


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every database (SQLite forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):  # type: ignore[no-untyped-def]
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime stored")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value, dialect):  # type: ignore[no-untyped-def]
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


SCHEMA_REVISION = "0006"  # the newest Alembic revision under migrations/versions


def now() -> datetime:
    return clock.now()


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, uuid.UUID: Uuid}


class Definition(Base):
    """One deployed version of one process id; the spec is stored here once, never per instance."""

    __tablename__ = "definition"
    __table_args__ = (UniqueConstraint("process_id", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    process_id: Mapped[str] = mapped_column(String(255), index=True)
    version: Mapped[int]
    name: Mapped[str | None] = mapped_column(String(255))
    filename: Mapped[str] = mapped_column(String(255))
    checksum: Mapped[str] = mapped_column(String(64))
    xml: Mapped[bytes] = mapped_column(LargeBinary)
    spec: Mapped[str] = mapped_column(Text)
    deployed_by: Mapped[str | None] = mapped_column(String(255))
    deployed_at: Mapped[datetime] = mapped_column(default=now)


class Draft(Base):
    """Files an analyst uploaded, kept byte for byte until they are deployed or discarded."""

    __tablename__ = "draft"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    owner: Mapped[str | None] = mapped_column(String(255), index=True)  # None: uploaded by host code
    created_at: Mapped[datetime] = mapped_column(default=now)


class DraftFile(Base):
    __tablename__ = "draft_file"
    draft_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("draft.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    content: Mapped[bytes] = mapped_column(LargeBinary)


class Instance(Base):
    __tablename__ = "instance"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    definition_id: Mapped[int] = mapped_column(ForeignKey("definition.id"), index=True)
    process_id: Mapped[str] = mapped_column(String(255), index=True)
    definition_version: Mapped[int]
    status: Mapped[str] = mapped_column(String(16), index=True)
    business_key: Mapped[str | None] = mapped_column(String(255), index=True)
    title: Mapped[str | None] = mapped_column(String(255))  # what the request is about: its data's `item`
    starter: Mapped[str | None] = mapped_column(String(255), index=True)
    state: Mapped[str] = mapped_column(Text)  # JSON text: key order matters to SpiffWorkflow, never jsonb
    data: Mapped[str] = mapped_column(Text, default="{}")
    waiting: Mapped[str] = mapped_column(Text, default="[]")  # what it waits on now, derived at every save
    state_format: Mapped[int] = mapped_column(default=1)
    spiff_version: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=now, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=now)
    ended_at: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(Integer, default=1)


class HumanTask(Base):
    """The inbox projection: one row per ready user or manual task."""

    __tablename__ = "human_task"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    instance_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("instance.id", ondelete="CASCADE"), index=True)
    process_id: Mapped[str] = mapped_column(String(255), index=True)
    element_id: Mapped[str] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(255))
    lane: Mapped[str | None] = mapped_column(String(255))
    assignee: Mapped[str | None] = mapped_column(String(255), index=True)
    candidate_users: Mapped[str] = mapped_column(Text, default="")
    candidate_groups: Mapped[str] = mapped_column(Text, default="")
    form: Mapped[str] = mapped_column(Text, default="[]")
    properties: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")  # camunda:properties, JSON
    created_at: Mapped[datetime]
    due_at: Mapped[datetime | None]
    sort_due: Mapped[datetime]  # due_at, or far in the future: the inbox's sort key
    # What the inbox search finds it by: its name, its instance's title, business key and starter, lowercased.
    # Indexed for full-text search outside this model (migration 0004): on PostgreSQL a GIN index on its tsvector,
    # on SQLite the FTS5 table human_task_search kept by triggers (rebuild it if a migration recreates this table).
    text: Mapped[str] = mapped_column(Text, default="")


class InboxEntry(Base):
    """Who sees a human task in their inbox: one row per principal, so every inbox page is an index range scan.

    A principal is `user:<name>`, `group:<name>` or `*` (anyone); a claimed task has one entry, its assignee's.
    """

    __tablename__ = "inbox_entry"
    principal: Mapped[str] = mapped_column(String(255), primary_key=True)
    task_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("human_task.id", ondelete="CASCADE"), primary_key=True,
                                               index=True)
    instance_id: Mapped[uuid.UUID] = mapped_column(index=True)
    process_id: Mapped[str] = mapped_column(String(255))
    active: Mapped[bool]  # the instance is active (not suspended, failed or ended)
    sort_due: Mapped[datetime]
    created_at: Mapped[datetime]
    __table_args__ = (Index("ix_inbox_due", "principal", "active", "sort_due", "created_at", "task_id"),
                      Index("ix_inbox_created", "principal", "active", "created_at", "task_id"))


class Job(Base):
    """Work the job executor runs: due timers, service tasks, and the timer start events of deployed processes.

    A worker leases a due job (owner, expiry) before it runs it; another worker takes it over once the lease ends.
    """

    __tablename__ = "job"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    instance_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("instance.id", ondelete="CASCADE"), index=True)
    definition_id: Mapped[int | None] = mapped_column(ForeignKey("definition.id", ondelete="CASCADE"), index=True)
    task_id: Mapped[uuid.UUID | None]
    element_id: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))  # "timer", "service", "async" (a boundary) or "start" (timer)
    due_at: Mapped[datetime] = mapped_column(index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    lock_owner: Mapped[str | None] = mapped_column(String(255))
    lock_expires_at: Mapped[datetime | None]
    schedule: Mapped[str | None] = mapped_column(Text)  # a timer start's cycle: JSON {"every": s, "left": n}


class Subscription(Base):
    """A message or signal an instance waits for, with its correlation key for an indexed match."""

    __tablename__ = "subscription"
    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("instance.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # "message" or "signal"
    name: Mapped[str] = mapped_column(String(255), index=True)
    correlation: Mapped[str] = mapped_column(Text, default="{}")
    key: Mapped[str] = mapped_column(String(512), default="{}")  # canonical JSON of the correlation values
    task_id: Mapped[uuid.UUID | None]
    __table_args__ = (Index("ix_subscription_match", "kind", "name", "key"),)


class StartTrigger(Base):
    """A message or signal start event of a process's newest version: what starts an instance when it arrives."""

    __tablename__ = "start_trigger"
    id: Mapped[int] = mapped_column(primary_key=True)
    definition_id: Mapped[int] = mapped_column(ForeignKey("definition.id", ondelete="CASCADE"), index=True)
    process_id: Mapped[str] = mapped_column(String(255), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # "message" or "signal"
    name: Mapped[str] = mapped_column(String(255))
    element_id: Mapped[str] = mapped_column(String(255))
    __table_args__ = (Index("ix_start_trigger_match", "kind", "name"),)


class Message(Base):
    """A message received from outside: kept for its time to live, to deliver it later or only once."""

    __tablename__ = "message"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(255))
    message_id: Mapped[str | None] = mapped_column(String(255), unique=True)  # the sender's id: delivered once
    key: Mapped[str] = mapped_column(String(512), default="{}")
    business_key: Mapped[str | None] = mapped_column(String(255))
    payload: Mapped[str] = mapped_column(Text, default="{}")
    created_at: Mapped[datetime] = mapped_column(default=now)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    delivered_at: Mapped[datetime | None]
    instance_id: Mapped[uuid.UUID | None]  # where it went (no foreign key: the instance may be deleted)
    __table_args__ = (Index("ix_message_waiting", "name", "delivered_at"),)


class ApiKey(Base):
    """A key a program sends to act as a person through the API; only its SHA-256 digest is stored."""

    __tablename__ = "api_key"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    username: Mapped[str] = mapped_column(String(255), index=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=now)
    last_used_at: Mapped[datetime | None]


class Incident(Base):
    """A failed step that waits for someone to fix data and retry."""

    __tablename__ = "incident"
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    instance_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("instance.id", ondelete="CASCADE"), index=True)
    task_id: Mapped[uuid.UUID]
    element_id: Mapped[str | None] = mapped_column(String(255))
    error_type: Mapped[str | None] = mapped_column(String(255))
    message: Mapped[str] = mapped_column(Text)
    line: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=now)
    resolved_at: Mapped[datetime | None]


class Event(Base):
    """Append-only history: what happened to an instance, who did it, and when."""

    __tablename__ = "event"
    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("instance.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=now)
    kind: Mapped[str] = mapped_column(String(32))
    element_id: Mapped[str | None] = mapped_column(String(255))
    name: Mapped[str | None] = mapped_column(String(255))
    user: Mapped[str | None] = mapped_column(String(255))
    data: Mapped[str] = mapped_column(Text, default="{}")


class Person(Base):
    """Someone in the org directory: who they report to and what they may sign."""

    __tablename__ = "person"
    username: Mapped[str] = mapped_column(String(255), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(255))
    manager: Mapped[str | None] = mapped_column(String(255), index=True)
    signature_limit: Mapped[str | None] = mapped_column(String(64))  # Decimal as text; None: unlimited
    currency: Mapped[str] = mapped_column(String(3))
    delegate: Mapped[str | None] = mapped_column(String(255))
    away_from: Mapped[datetime | None]
    away_until: Mapped[datetime | None]


class Membership(Base):
    __tablename__ = "membership"
    group: Mapped[str] = mapped_column("group_name", String(255), primary_key=True)
    username: Mapped[str] = mapped_column(ForeignKey("person.username", ondelete="CASCADE"), primary_key=True,
                                          index=True)


class Rate(Base):
    """How much one unit of a currency is worth in the base currency."""

    __tablename__ = "rate"
    currency: Mapped[str] = mapped_column(String(3), primary_key=True)
    rate: Mapped[str] = mapped_column(String(64))  # Decimal as text


class Outbox(Base):
    """Notifications to send: written in the step's transaction, sent by the job executor."""

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(primary_key=True)
    instance_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    recipient: Mapped[str] = mapped_column(String(255))
    subject: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=now)
    sent_at: Mapped[datetime | None] = mapped_column(index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    not_before: Mapped[datetime | None]  # a worker is sending it, or it waits to be retried, until then


class Account(Base):
    """How a person signs in to the web app, and what they may do there."""

    __tablename__ = "account"
    username: Mapped[str] = mapped_column(String(255), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    roles: Mapped[str] = mapped_column(String(255), default="")  # comma-separated: analyst, admin
