"""One task: what it is about, its form, and claiming it."""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict

from baton.engine import InvalidData

from . import current_engine
from .auth import current_user, login_required, safe_target
from .errors import status

log = logging.getLogger(__name__)

bp = Blueprint("tasks", __name__, url_prefix="/tasks")


@bp.get("/<uuid:task_id>")
@login_required
def show(task_id: UUID) -> ResponseReturnValue:
    return _page(task_id)


@bp.post("/<uuid:task_id>")
@login_required
def complete(task_id: UUID) -> ResponseReturnValue:
    data = posted(request.form)
    try:
        current_engine().complete_task(task_id, data, user=current_user())
    except InvalidData as exc:
        return _page(task_id, values=data, errors={e.field: e.message for e in exc.errors}), status(exc)
    flash(done_message(data), "success")
    return redirect(url_for("inbox.index"))


@bp.post("/<uuid:task_id>/claim")
@login_required
def claim(task_id: UUID) -> ResponseReturnValue:
    task = current_engine().claim(task_id, user=current_user())
    flash(f"You claimed “{task.name}”.", "success")
    return redirect(safe_target(request.form.get("next")))


@bp.post("/<uuid:task_id>/unclaim")
@login_required
def unclaim(task_id: UUID) -> ResponseReturnValue:
    task = current_engine().unclaim(task_id, user=current_user())
    flash(f"You gave “{task.name}” back to its group.", "success")
    return redirect(safe_target(request.form.get("next")))


def posted(form: MultiDict[str, str]) -> dict[str, str]:
    """The form as posted, without the CSRF token; the last value wins (a checkbox follows its hidden "false")."""
    return {key: values[-1] for key, values in form.lists() if key != "csrf_token"}


def done_message(data: dict[str, Any]) -> str:
    decision = data.get("decision")
    return {"approve": "Approved.", "reject": "Rejected."}.get(str(decision), "Task completed.") + \
        " The request has moved on."


def _page(task_id: UUID, *, values: dict[str, Any] | None = None, errors: dict[str, str] | None = None) -> str:
    engine = current_engine()
    task = engine.task(task_id, user=current_user())
    instance = engine.instance(task.instance_id)
    decision = next((f for f in task.form if f.id == "decision" and f.type == "enum"
                     and {v for v, _ in f.values} >= {"approve", "reject"}), None)
    return render_template("tasks/show.html", task=task, instance=instance, data=instance.data,
                           decision=decision, others=[f for f in task.form if f is not decision],
                           values=values or {}, errors=errors or {})
