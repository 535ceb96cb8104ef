"""One process instance: where it is on its diagram, what it waits on, its data and its history."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from flask import Blueprint, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import Forbidden

from baton.engine import Engine, EventInfo, InstanceInfo

from . import current_engine
from .auth import current_user, has_role, login_required
from .processes import xml_response
from .views import when

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
    markers = {"xml": url_for("instances.diagram", instance_id=instance_id),
               "done": engine.activity(instance_id),
               "active": dict(Counter(w.element_id for w in instance.waiting_on if w.element_id)),
               "incidents": {i.element_id: i.message for i in instance.incidents if i.element_id}}
    return render_template("instances/show.html", instance=instance, definition=definition, history=history,
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
