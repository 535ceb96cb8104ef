"""My requests: the instances the signed-in user started, and where each waits now and for whom."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Blueprint, current_app, render_template, request
from flask.typing import ResponseReturnValue

from baton.engine import Engine
from baton.engine.info import InstanceInfo, TaskInfo, Waiting

from . import current_engine
from .auth import current_user, login_required

log = logging.getLogger(__name__)

bp = Blueprint("requests", __name__, url_prefix="/requests")


@dataclass(frozen=True)
class Step:
    """One thing a request waits on, and the people it waits for (empty for a timer, a message or a job)."""

    waiting: Waiting
    task: TaskInfo | None


@dataclass(frozen=True)
class Row:
    instance: InstanceInfo
    steps: tuple[Step, ...]

    @property
    def title(self) -> str:
        return str(self.instance.data.get("item") or self.instance.business_key or self.instance.process_id)

    @property
    def shown(self) -> tuple[Step, ...]:
        """People first: a task's boundary timers are noise beside the task itself."""
        tasks = tuple(s for s in self.steps if s.waiting.kind == "task")
        return tasks or self.steps


@bp.get("/")
@login_required
def index() -> ResponseReturnValue:
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    size = current_app.config["BATON_PAGE_SIZE"]
    engine = current_engine()
    found = engine.instances(starter=current_user(), limit=size + 1, offset=(page - 1) * size)
    names = {d.process_id: d.name or d.process_id for d in engine.definitions()}
    return render_template("requests/index.html", rows=[_row(engine, i) for i in found[:size]], names=names,
                           page=page, more=len(found) > size)


def _row(engine: Engine, instance: InstanceInfo) -> Row:
    tasks = ({t.id: t for t in engine.tasks(instance_id=instance.id)}
             if any(w.kind == "task" for w in instance.waiting_on) else {})
    return Row(instance, tuple(Step(w, tasks.get(w.task_id) if w.kind == "task" else None)
                               for w in instance.waiting_on))
