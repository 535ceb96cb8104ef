"""Messages and signals from outside: correlated to the waiting instance, or starting one, or buffered for later."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import sqlalchemy as sa
from SpiffWorkflow.bpmn.specs.event_definitions import MessageEventDefinition
from sqlalchemy import select, update

from . import mappings, runtime, store
from .errors import Conflict, InvalidData, InvalidState, MessageNotCorrelated, NotFound
from .info import Delivery
from .models import Definition, Instance, Message, StartTrigger, Subscription, now

log = logging.getLogger(__name__)

MESSAGE, SUBSCRIPTION, INSTANCE, TRIGGER = Message.__table__, Subscription.__table__, Instance.__table__, \
    StartTrigger.__table__
REMEMBERED = timedelta(days=1)  # how long a delivered message's id is remembered, unless the sender says longer
ATTEMPTS = 5  # a signal's delivery to one instance is tried again when another change to it came first


class Messaging:
    """The message and signal half of the Engine facade (mixed into `Engine`)."""

    def correlate_message(self, name: str, payload: Any = None, *, correlation: Mapping[str, Any] | None = None,
                          correlation_key: str | int | None = None, business_key: str | None = None,
                          message_id: str | None = None, buffer: float | None = None,
                          user: str | None = None) -> Delivery:
        """Deliver a message to the one instance waiting for it, or start a process that begins with it.

        `correlation` gives the diagram's correlation property values (else they are read from the payload);
        `correlation_key` is Camunda 8's: it reaches the catcher whose `zeebe:subscription` key, evaluated when it
        began to wait, is the same text; `business_key` picks the instance by its business key. When nothing waits,
        the message is an error, or, given `buffer` (seconds), kept that long and delivered when a matching instance
        starts waiting. The same `message_id` is delivered once while it is remembered (a day, or `buffer` when
        longer). A message start event takes the message whatever its key.
        """
        if not name or not isinstance(name, str):
            raise InvalidData("a message needs a name")
        if correlation_key is not None:
            if correlation:
                raise InvalidData("give either correlation values or a correlation key, not both")
            if isinstance(correlation_key, bool) or not isinstance(correlation_key, str | int):
                raise InvalidData("a correlation key is a text (or a whole number)")
            correlation = {mappings.CORRELATION: str(correlation_key)}
        if buffer is not None and (isinstance(buffer, bool) or not isinstance(buffer, int | float | Decimal)
                                   or not 0 < buffer < 10**9):
            raise InvalidData("buffer must be a positive number of seconds")
        buffer = float(buffer) if buffer is not None else None
        if message_id is not None and (seen := self._seen(message_id)) is not None:
            return seen
        correlation = dict(correlation or {})
        keep = max(REMEMBERED, timedelta(seconds=buffer or 0))
        record = _record(name, message_id, payload, correlation, business_key, keep)
        try:
            target = self._waiting_for(name, payload, correlation, business_key)
            if target is not None:
                self._change(target, _deliver("message", name, payload, correlation, user), allowed=("active",),
                             within=record)
                return Delivery("delivered", target, message_id)
            trigger = self._start_trigger("message", name)
            if trigger is not None:
                info = self._create(trigger, trigger.process_id, {}, user=user, business_key=business_key,
                                    trigger=trigger.element_id, then=_deliver("message", name, payload, correlation,
                                                                              user, started=True),
                                    within=record)
                return Delivery("started", info.id, message_id)
        except sa.exc.IntegrityError:  # the same message id, delivered by someone else a moment ago
            return self._seen(message_id) or Delivery("duplicate", None, message_id)
        if buffer is None:
            raise MessageNotCorrelated(name, f"correlation key {correlation_key!r}" if correlation_key is not None
                                       else correlation or None, business_key)
        with self.db.writing() as conn:
            conn.execute(sa.insert(MESSAGE), {**_row(name, message_id, payload, correlation, business_key),
                                              "expires_at": now() + timedelta(seconds=buffer)})
        log.info("message %s buffered for %s s", name, buffer)
        return Delivery("buffered", None, message_id)

    def signal(self, name: str, payload: Any = None, *, user: str | None = None) -> list[Delivery]:
        """Broadcast a signal to every instance waiting for it, and start every process that begins with it."""
        if not name or not isinstance(name, str):
            raise InvalidData("a signal needs a name")
        with self.db.reading() as conn:
            waiting = list(conn.execute(select(SUBSCRIPTION.c.instance_id).distinct().join(
                INSTANCE, INSTANCE.c.id == SUBSCRIPTION.c.instance_id).where(
                SUBSCRIPTION.c.kind == "signal", SUBSCRIPTION.c.name == name, INSTANCE.c.status == "active"))
                .scalars())
            starts = list(conn.execute(_triggers("signal", name)))
        reached = [Delivery("delivered", i) for i in waiting if self._signal_one(i, name, payload, user)]
        for trigger in starts:
            info = self._create(trigger, trigger.process_id, {}, user=user, trigger=trigger.element_id,
                                then=_deliver("signal", name, payload, None, user, started=True))
            reached.append(Delivery("started", info.id))
        log.info("signal %s reached %d instances", name, len(reached))
        return reached

    def _signal_one(self, instance_id: UUID, name: str, payload: Any, user: str | None) -> bool:
        for _ in range(ATTEMPTS):
            try:
                self._change(instance_id, _deliver("signal", name, payload, None, user), allowed=("active",))
                return True
            except Conflict:
                continue
            except (InvalidState, NotFound):  # it moved on or ended meanwhile
                return False
        log.warning("signal %s not delivered to %s: it kept changing", name, instance_id)
        return False

    def _seen(self, message_id: str) -> Delivery | None:
        with self.db.reading() as conn:
            row = conn.execute(select(MESSAGE.c.instance_id, MESSAGE.c.delivered_at).where(
                MESSAGE.c.message_id == message_id, MESSAGE.c.expires_at > now())).first()
        return Delivery("duplicate", row.instance_id, message_id) if row is not None else None

    def _waiting_for(self, name: str, payload: Any, correlation: dict[str, Any], business_key: str | None,
                     instance_id: UUID | None = None) -> UUID | None:
        """The one active instance with a subscription matching the message; two or more is an error."""
        s, i = SUBSCRIPTION.c, INSTANCE.c
        query = select(s.instance_id, i.definition_id, s.key).join(INSTANCE, i.id == s.instance_id).where(
            s.kind == "message", s.name == name, i.status == "active")
        if business_key is not None:
            query = query.where(i.business_key == business_key)
        if instance_id is not None:
            query = query.where(s.instance_id == instance_id)
        with self.db.reading() as conn:
            if correlation:
                rows = conn.execute(query.where(s.key == runtime.canonical(correlation)).limit(2)).all()
            else:
                definitions = conn.execute(query.with_only_columns(i.definition_id).distinct()).scalars().all()
                keys = {k for d in definitions for k in self._keys(conn, d, name, payload)}
                rows = conn.execute(query.where(s.key.in_(keys)).limit(2)).all() if keys else []
        found = {r.instance_id for r in rows}
        if len(found) > 1:
            raise InvalidData(f"more than one instance waits for the message {name!r}: give a correlation key "
                              "or a business key")
        return found.pop() if found else None

    def _keys(self, conn: Any, definition_id: int, name: str, payload: Any) -> set[str]:
        """The correlation keys a message would have in one definition: read from the payload as its diagram says."""
        spec, subprocesses = self._spec(conn, definition_id)
        keys = set()
        for process in [spec, *subprocesses.values()]:
            for definition in (d for task_spec in process.task_specs.values() for d in runtime.caught(task_spec)):
                if isinstance(definition, MessageEventDefinition) and definition.name == name:
                    values = {}
                    for prop in definition.correlation_properties:
                        try:
                            values[prop.name] = self.script_engine.environment.evaluate(
                                prop.retrieval_expression, dict(payload) if isinstance(payload, dict) else {})
                        except Exception:  # the payload does not carry it
                            continue
                    keys.add(runtime.canonical(values))
        return keys

    def _start_trigger(self, kind: str, name: str) -> Any:
        with self.db.reading() as conn:
            rows = conn.execute(_triggers(kind, name)).all()
        if len(rows) > 1:
            raise InvalidData(f"{len(rows)} processes start with the message {name!r}: "
                              f"{', '.join(r.process_id for r in rows)}")
        return rows[0] if rows else None

    def _after(self, instance_id: UUID, before: list[dict[str, Any]], after: list[dict[str, Any]],
               step: runtime.Step) -> None:
        """After a change is written: send what it threw to other instances; hand it buffered messages it now awaits."""
        for kind, name, payload in step.thrown:
            try:
                if kind == "signal":
                    self.signal(name, payload)
                else:
                    self.correlate_message(name, payload)
            except (MessageNotCorrelated, InvalidData) as exc:
                log.warning("instance %s threw %s %s, which nobody took: %s", instance_id, kind, name, exc)
        had = {w["task_id"] for w in before if w["kind"] == "message"}
        awaited = {w["name"] for w in after if w["kind"] == "message" and w["task_id"] not in had}
        if awaited:
            self._deliver_buffered(instance_id, awaited)

    def _deliver_buffered(self, instance_id: UUID, names: set[str]) -> None:
        with self.db.reading() as conn:
            rows = conn.execute(select(MESSAGE).where(MESSAGE.c.name.in_(names), MESSAGE.c.delivered_at.is_(None),
                                                      MESSAGE.c.expires_at > now()).order_by(MESSAGE.c.created_at))
            waiting = rows.all()
        for message in waiting:
            payload, correlation = json.loads(message.payload), json.loads(message.key)
            try:
                if self._waiting_for(message.name, payload, correlation, message.business_key, instance_id) is None:
                    continue
                self._change(instance_id, _deliver("message", message.name, payload, correlation),
                             allowed=("active",), within=lambda conn, i, m=message: _delivered(conn, m.id, i))
            except (Conflict, InvalidData, InvalidState, MessageNotCorrelated) as exc:
                log.info("buffered message %s not delivered to %s: %s", message.id, instance_id, exc)
                continue
            log.info("buffered message %s delivered to %s", message.id, instance_id)
            return  # the instance moved on: what it awaits now is settled by that change


def _deliver(kind: str, name: str, payload: Any, correlation: dict[str, Any] | None, user: str | None = None, *,
             started: bool = False) -> Any:
    """The step that hands a message or signal to a loaded instance (or, `started`, to a new workflow)."""
    def act(loaded: Any, step: runtime.Step) -> None:
        workflow = loaded if started else loaded.workflow
        if not runtime.deliver(workflow, kind, name, payload, correlation, step, user=user):
            raise MessageNotCorrelated(name, correlation)
    return act


def _triggers(kind: str, name: str) -> sa.Select:
    t = TRIGGER.c
    return select(t.definition_id.label("id"), t.process_id, t.element_id, Definition.version).join(
        Definition, Definition.id == t.definition_id).where(t.kind == kind, t.name == name).order_by(t.process_id)


def _row(name: str, message_id: str | None, payload: Any, correlation: dict[str, Any],
         business_key: str | None) -> dict[str, Any]:
    return {"id": uuid4(), "name": name, "message_id": message_id, "key": runtime.canonical(correlation),
            "business_key": business_key, "payload": store.dumps(payload if payload is not None else {}),
            "created_at": now(), "delivered_at": None, "instance_id": None}


def _record(name: str, message_id: str | None, payload: Any, correlation: dict[str, Any],
            business_key: str | None, keep: timedelta) -> Any:
    """Within the delivering write: remember a message id, so that the same message is delivered once."""
    def write(conn: Any, instance_id: UUID | None) -> None:
        if message_id is not None:
            conn.execute(sa.insert(MESSAGE), {**_row(name, message_id, payload, correlation, business_key),
                                              "delivered_at": now(), "instance_id": instance_id,
                                              "expires_at": now() + keep})
    return write


def _delivered(conn: Any, message: UUID, instance_id: UUID) -> None:
    done = conn.execute(update(MESSAGE).where(MESSAGE.c.id == message, MESSAGE.c.delivered_at.is_(None)).values(
        delivered_at=now(), instance_id=instance_id))
    if done.rowcount != 1:
        raise Conflict(f"message {message} was delivered by someone else")
