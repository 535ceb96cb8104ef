"""The inbox: the signed-in user's open tasks, filtered by process and text, sorted, paged."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, current_app, render_template, request
from flask.typing import ResponseReturnValue

from baton.engine import Engine
from baton.engine.info import InstanceInfo, TaskInfo

from . import current_engine
from .auth import current_user, login_required
from .views import name

log = logging.getLogger(__name__)

bp = Blueprint("inbox", __name__)

SORTS = ("due", "created")
LATEST = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Row:
    """One inbox line: the task, and what it is about."""

    task: TaskInfo
    instance: InstanceInfo

    @property
    def title(self) -> str:
        return str(self.instance.data.get("item") or self.instance.business_key or self.task.name)

    @property
    def requester(self) -> str | None:
        return self.instance.starter

    @property
    def claimable(self) -> bool:
        return self.task.assignee is None and bool(self.task.candidate_users or self.task.candidate_groups)

    def unclaimable(self, user: str) -> bool:
        return self.task.assignee == user and bool(self.task.candidate_users or self.task.candidate_groups)


@bp.get("/")
@login_required
def index() -> ResponseReturnValue:
    process, text = request.args.get("process", ""), request.args.get("q", "").strip()
    sort = request.args.get("sort") if request.args.get("sort") in SORTS else "due"
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    engine = current_engine()
    tasks = engine.tasks(user=current_user())
    processes = _process_names(engine, {t.process_id for t in tasks})
    rows = _rows(engine, [t for t in tasks if not process or t.process_id == process])
    if text:
        rows = [r for r in rows if _matches(r, text.casefold(), processes)]
    rows.sort(key=(lambda r: (r.task.due or LATEST, r.task.created)) if sort == "due" else (lambda r: r.task.created),
              reverse=sort == "created")
    size = current_app.config["BATON_PAGE_SIZE"]
    pages = max(math.ceil(len(rows) / size), 1)
    page = min(page, pages)
    return render_template("inbox/index.html", rows=rows[(page - 1) * size:page * size], total=len(tasks),
                           found=len(rows), processes=processes, process=process, q=text, sort=sort, page=page,
                           pages=pages, user=current_user())


def _rows(engine: Engine, tasks: list[TaskInfo]) -> list[Row]:
    instances: dict[Any, InstanceInfo] = {}
    for task in tasks:
        if task.instance_id not in instances:
            instances[task.instance_id] = engine.instance(task.instance_id)
    return [Row(t, instances[t.instance_id]) for t in tasks]


def _process_names(engine: Engine, ids: set[str]) -> dict[str, str]:
    names = {d.process_id: d.name or d.process_id for d in engine.definitions() if d.process_id in ids}
    return dict(sorted(names.items(), key=lambda item: item[1].casefold()))


def _matches(row: Row, text: str, processes: dict[str, str]) -> bool:
    haystack = (row.task.name, row.title, processes.get(row.task.process_id, row.task.process_id),
                row.requester or "", name(row.requester) if row.requester else "",
                str(row.instance.data.get("description") or ""))
    return any(text in part.casefold() for part in haystack)
