"""Administration: every instance, filtered; cancel, suspend, resume, retry incidents and reassign tasks."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date
from uuid import UUID

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict

from baton.engine import Conflict, Engine, InstanceInfo, InvalidState, accounts
from baton.engine.info import STATUSES

from . import current_engine
from .auth import current_user, role_required, safe_target

log = logging.getLogger(__name__)

bp = Blueprint("admin", __name__, url_prefix="/admin")

BATCH = 200
DONE = {"cancel": "Cancelled", "suspend": "Suspended", "resume": "Resumed", "retry": "Retried"}


@dataclass(frozen=True)
class Filters:
    process: str | None = None
    status: str | None = None
    starter: str | None = None
    start: date | None = None  # created on or after, in the server's time zone
    end: date | None = None  # created on or before

    @classmethod
    def read(cls, args: MultiDict[str, str]) -> Filters:
        status = args.get("status") or None
        return cls(args.get("process") or None, status if status in STATUSES else None,
                   args.get("starter", "").strip() or None, args.get("from", type=date.fromisoformat),
                   args.get("to", type=date.fromisoformat))

    def args(self) -> dict[str, str]:
        """The filters as query arguments, for the pager's links."""
        values = {"process": self.process, "status": self.status, "starter": self.starter,
                  "from": self.start.isoformat() if self.start else None,
                  "to": self.end.isoformat() if self.end else None}
        return {k: v for k, v in values.items() if v}


@bp.get("/")
@role_required("admin")
def index() -> ResponseReturnValue:
    engine, filters = current_engine(), Filters.read(request.args)
    size = current_app.config["BATON_PAGE_SIZE"]
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    found = _instances(engine, filters, limit=size + 1, offset=(page - 1) * size)
    tasks = engine.tasks()
    processes = {d.process_id: d.name or d.process_id for d in engine.definitions()}
    return render_template("admin/index.html", rows=found[:size], more=len(found) > size, page=page, filters=filters,
                           statuses=STATUSES, processes=dict(sorted(processes.items(), key=lambda p: p[1].casefold())),
                           tasks={t.id: t for t in tasks}, open_tasks=tasks, jobs=engine.job_status())


@bp.post("/instances/<uuid:instance_id>/<any(cancel, suspend, resume, retry):action>")
@role_required("admin")
def act(instance_id: UUID, action: str) -> ResponseReturnValue:
    engine = current_engine()
    try:
        if action == "retry":
            info = engine.retry(instance_id, incident_id=request.form.get("incident_id") or None, user=current_user())
        else:
            info = getattr(engine, action)(instance_id, user=current_user())
    except (InvalidState, Conflict) as exc:
        flash(f"Nothing done: {exc}.", "error")
    else:
        flash(f"{DONE[action]} “{title(info)}”; it is now {info.status}.", "success")
    return redirect(safe_target(request.form.get("next") or url_for("admin.index")))


@bp.post("/reassign")
@role_required("admin")
def reassign() -> ResponseReturnValue:
    engine, assignee = current_engine(), request.form.get("assignee", "").strip() or None
    task_id = request.form.get("task", "")
    if assignee is not None and not _known(engine, assignee):
        flash(f"Nobody is called “{assignee}”: use a username from the directory.", "error")
    else:
        try:
            task = engine.reassign(task_id, assignee, user=current_user())
        except (InvalidState, Conflict) as exc:
            flash(f"Nothing done: {exc}.", "error")
        else:
            flash(f"“{task.name}” is now assigned to {assignee}." if assignee
                  else f"“{task.name}” is now unassigned.", "success")
    return redirect(safe_target(request.form.get("next") or url_for("admin.index")))


def title(instance: InstanceInfo) -> str:
    return str(instance.data.get("item") or instance.business_key or instance.process_id)


def _known(engine: Engine, username: str) -> bool:
    return engine.directory.person(username) is not None or accounts.account(engine.db.engine, username) is not None


def _instances(engine: Engine, filters: Filters, *, limit: int, offset: int) -> list[InstanceInfo]:
    """A page of instances, newest first; the created range is applied here while the engine cannot filter on it."""
    query = {"process_id": filters.process, "status": filters.status, "starter": filters.starter}
    if filters.start is None and filters.end is None:
        return engine.instances(**query, limit=limit, offset=offset)
    found: list[InstanceInfo] = []
    at = 0
    while True:
        batch = engine.instances(**query, limit=BATCH, offset=at)
        for instance in batch:
            created = instance.created.astimezone().date()
            if filters.end is not None and created > filters.end:
                continue
            if filters.start is not None and created < filters.start:
                return found  # newest first: everything after this is older still
            if offset:
                offset -= 1
            elif len(found) < limit:
                found.append(instance)
            else:
                return found
        if len(batch) < BATCH:
            return found
        at += BATCH
