"""The inbox: the signed-in user's open tasks, filtered by process and text, sorted, paged."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import Blueprint, current_app, render_template, request
from flask.typing import ResponseReturnValue

from baton.engine.info import InboxItem, TaskInfo

from . import current_engine
from .auth import current_user, login_required

log = logging.getLogger(__name__)

bp = Blueprint("inbox", __name__)

SORTS = ("due", "created")
LATEST = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Row:
    """One inbox line: the task, and what it is about."""

    item: InboxItem

    @property
    def task(self) -> TaskInfo:
        return self.item.task

    @property
    def title(self) -> str:
        return self.item.title or self.task.name

    @property
    def requester(self) -> str | None:
        return self.item.requester

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
    size = current_app.config["BATON_PAGE_SIZE"]
    engine = current_engine()
    inbox = engine.inbox(current_user(), process_id=process or None, text=text or None, sort=sort, page=page,
                         size=size)
    pages = max(math.ceil(inbox.found / size), 1)
    if page > pages:  # past the end (the list shrank, or a typed URL): show the last page
        page = pages
        inbox = engine.inbox(current_user(), process_id=process or None, text=text or None, sort=sort, page=page,
                             size=size)
    processes = {d.process_id: d.name or d.process_id for d in engine.definitions()}
    return render_template("inbox/index.html", rows=[Row(i) for i in inbox.items], total=inbox.total,
                           found=inbox.found, processes=dict(sorted(processes.items(), key=lambda p: p[1].casefold())),
                           process=process, q=text, sort=sort, page=page, pages=pages,
                           user=current_user())
