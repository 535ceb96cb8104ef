"""One process instance: where it is on its diagram, what it waits on, its data and its history."""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from flask import Blueprint, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from lxml import etree
from werkzeug.exceptions import Forbidden

from baton.engine import Engine, EventInfo, InstanceInfo

from . import current_engine
from .auth import current_user, has_role, login_required
from .processes import xml_response
from .views import money, when

log = logging.getLogger(__name__)

bp = Blueprint("instances", __name__, url_prefix="/instances")


@bp.get("/")
@login_required
def index() -> ResponseReturnValue:
    return redirect(url_for("admin.index" if has_role("admin") else "requests.index"))


@bp.get("/<uuid:instance_id>")
@login_required
def show(instance_id: UUID) -> ResponseReturnValue:
    engine = current_engine()
    instance, history = _visible(engine, instance_id)
    tasks = {t.id: t for t in engine.tasks(instance_id=instance_id)}
    definition = engine.definition(instance.process_id, instance.definition_version)
    elements = Elements.of(engine.diagram(instance.process_id, instance.definition_version))
    markers = {"xml": url_for("instances.diagram", instance_id=instance_id),
               "done": engine.activity(instance_id),
               "active": dict(Counter(w.element_id for w in instance.waiting_on if w.element_id)),
               "incidents": {i.element_id: i.message for i in instance.incidents if i.element_id},
               "focus": _focus(instance, history)}
    return render_template("instances/show.html", instance=instance, definition=definition,
                           history=_timeline(history, elements), elements=elements, data=DataView.of(instance.data),
                           tasks=tasks, markers=markers, admin=has_role("admin"))


@bp.get("/<uuid:instance_id>/diagram.xml")
@login_required
def diagram(instance_id: UUID) -> ResponseReturnValue:
    engine = current_engine()
    instance, _ = _visible(engine, instance_id)
    return xml_response(engine.diagram(instance.process_id, instance.definition_version))


def _visible(engine: Engine, instance_id: UUID) -> tuple[InstanceInfo, list[EventInfo]]:
    """The instance and its history, if the signed-in user started it, acted on it, has a task on it or is an admin."""
    user = current_user()
    instance, history = engine.instance(instance_id), engine.history(instance_id)
    if (has_role("admin") or instance.starter == user or any(e.user == user for e in history)
            or engine.tasks(user=user, instance_id=instance_id)):
        return instance, history
    raise Forbidden("Only the requester, the people with a task on it and administrators may see this request.")


# The diagram's names, for the history and what the instance waits on.

BPMN_MODEL = "http://www.omg.org/spec/BPMN/20100524/MODEL"
_parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


@dataclass(frozen=True)
class Elements:
    """Each BPMN element of a deployed diagram by id: its name (if it has one) and its kind (the XML tag)."""

    names: dict[str, str] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, xml: bytes) -> Elements:
        try:
            root = etree.fromstring(xml, _parser)
        except etree.XMLSyntaxError:  # deployed diagrams were parsed once already; never fail the page over names
            log.warning("a deployed diagram does not parse", exc_info=True)
            return cls()
        names, kinds = {}, {}
        for node in root.iter(f"{{{BPMN_MODEL}}}*"):
            element_id = node.get("id")
            if element_id:
                kinds[element_id] = etree.QName(node).localname
                if (node.get("name") or "").strip():
                    names[element_id] = " ".join(node.get("name").split())
        return cls(names, kinds)

    def label(self, element_id: str | None, name: str | None = None) -> str:
        """What a person calls the element: its name, else its kind (`exclusiveGateway` is `Exclusive gateway`)."""
        if name:
            return name
        if not element_id:
            return "—"
        if element_id in self.names:
            return self.names[element_id]
        if element_id in self.kinds:
            return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", self.kinds[element_id]).capitalize()
        return element_id

    def unnamed_gateway(self, element_id: str | None) -> bool:
        return bool(element_id) and element_id not in self.names and self.kinds.get(element_id, "").endswith("Gateway")


@dataclass(frozen=True)
class Entry:
    """One line of the history as shown: the event and what its element is called."""

    event: EventInfo
    label: str | None


def _timeline(history: list[EventInfo], elements: Elements) -> list[Entry]:
    """The history without the passing of unnamed gateways, which mean nothing to the people reading it."""
    return [Entry(e, elements.label(e.element_id, e.name) if e.element_id or e.name else None) for e in history
            if not (e.kind == "completed" and not e.name and elements.unnamed_gateway(e.element_id))]


def _focus(instance: InstanceInfo, history: list[EventInfo]) -> str | None:
    """The element the diagram opens on when it cannot show everything: a task it waits on, anything it waits on,
    a failure, else the last element it completed (the end event, once it is complete)."""
    waiting = [w for w in instance.waiting_on if w.element_id]
    first = next((w for w in waiting if w.kind == "task"), waiting[0] if waiting else None)
    if first is not None:
        return first.element_id
    failed = next((i.element_id for i in instance.incidents if i.element_id), None)
    if failed:
        return failed
    return next((e.element_id for e in reversed(history) if e.kind == "completed" and e.element_id), None)


# The instance's data: the documented fields of a request first, the rest folded away.

SUMMARY = ("item", "description", "amount", "cost_centre", "decision", "rejection_reason")
APPROVAL = ("approver", "on_behalf_of", "limit", "decision", "comment", "at")
DECISIONS = {"approve": "Approved", "reject": "Rejected", "escalated": "Escalated"}


@dataclass(frozen=True)
class DataView:
    """An instance's data as the page shows it: `summary` (label, value) pairs of the request's own fields that are
    set, `approvals` (the list of approval entries, or None when there is none), and `rest`, everything else."""

    summary: list[tuple[str, str]]
    approvals: list[Mapping[str, Any]] | None
    rest: dict[str, Any]

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> DataView:
        summary, used = [], set()
        for key in SUMMARY:
            value = data.get(key)
            if value is None or value == "":
                continue
            if key == "amount":
                currency = data.get("currency")
                if not isinstance(currency, str) or not currency:
                    currency = None
                text = money(value, currency)
                used.update(["currency"] if currency else [])
            elif key == "decision":
                text = decision(value)
            else:
                text = shown(value)
            summary.append((key_label(key), text))
            used.add(key)
        approvals = data.get("approvals")
        if isinstance(approvals, list) and all(isinstance(a, Mapping) for a in approvals):
            used.add("approvals")
        else:
            approvals = None
        return cls(summary, approvals, {k: v for k, v in data.items() if k not in used})


@bp.app_template_filter("decision")
def decision(value: Any) -> str:
    """A decision as a word: `approve` is `Approved`."""
    return DECISIONS.get(value, shown(value).capitalize()) if isinstance(value, str) else shown(value)


@bp.app_template_filter("shown")
def shown(value: Any) -> str:
    """One value of an instance's data as a person reads it."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, Decimal):
        if not value.is_finite():
            return "unlimited" if value > 0 else str(value)
        return f"{value:,.2f}" if value.as_tuple().exponent in (-1, -2) else f"{value:,f}"
    if isinstance(value, datetime | date):
        return when(value)
    return str(value)


@bp.app_template_filter("key_label")
def key_label(key: str) -> str:
    """A data key as a label: `cost_centre` becomes `Cost centre`."""
    return key.replace("_", " ").strip().capitalize() or key
