"""The JSON API for diagrams: upload files as a draft, read its lint report and files, deploy or discard it; list
the deployed processes and download their diagrams exactly as uploaded."""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any
from uuid import UUID

from flask import Blueprint, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import BadRequest, Forbidden
from werkzeug.utils import secure_filename

from baton.engine import DefinitionInfo, DraftInfo, InvalidDiagram, accounts
from baton.engine.parsing import Source

from . import csrf, current_engine
from .api import caller
from .processes import xml_response

log = logging.getLogger(__name__)

bp = Blueprint("drafts_api", __name__, url_prefix="/api")
csrf.exempt(bp)  # authenticated by an API key or a signature on every request, never by the session cookie


@bp.post("/drafts/")
def upload() -> ResponseReturnValue:
    """Multipart `files`, or one file as the raw body with `?name=order.bpmn`."""
    user = analyst()
    if request.files:
        files = [Source(secure_filename(f.filename or "") or "upload", f.read())
                 for f in request.files.getlist("files")]
    elif request.args.get("name"):
        files = [Source(secure_filename(request.args["name"]) or "upload", request.get_data())]
    else:
        raise BadRequest("send the files as multipart/form-data `files`, or one file as the body with ?name=FILE")
    try:
        draft = current_engine().save_draft(*files, user=user)
    except InvalidDiagram as exc:
        return {"error": str(exc), "problems": [asdict(p) for p in exc.problems]}, 400
    log.info("API: %s saved draft %s", user or "a signed sender", draft.id)
    return described(draft), 201, {"Location": url_for("drafts_api.show", draft_id=draft.id)}


@bp.get("/drafts/")
def index() -> ResponseReturnValue:
    return {"drafts": [described(d) for d in current_engine().drafts(user=analyst())]}


@bp.get("/drafts/<uuid:draft_id>")
def show(draft_id: UUID) -> ResponseReturnValue:
    return described(current_engine().draft(draft_id, user=analyst()))


@bp.get("/drafts/<uuid:draft_id>/files/<name>")
def file(draft_id: UUID, name: str) -> ResponseReturnValue:
    return xml_response(current_engine().draft_file(draft_id, name, user=analyst()))


@bp.post("/drafts/<uuid:draft_id>/deploy")
def deploy(draft_id: UUID) -> ResponseReturnValue:
    try:
        deployed = current_engine().deploy_draft(draft_id, user=analyst())
    except InvalidDiagram as exc:
        return {"error": "the draft has lint errors: fix them and upload again",
                "problems": [asdict(p) for p in exc.problems]}, 422
    return {"definitions": [definition(d) for d in deployed]}, 201


@bp.delete("/drafts/<uuid:draft_id>")
def discard(draft_id: UUID) -> ResponseReturnValue:
    current_engine().discard_draft(draft_id, user=analyst())
    return "", 204


@bp.get("/processes/")
def processes() -> ResponseReturnValue:
    caller()
    return {"definitions": [definition(d) for d in current_engine().definitions()]}


@bp.get("/processes/<process_id>/<int:version>/diagram")
def diagram(process_id: str, version: int) -> ResponseReturnValue:
    caller()
    return xml_response(current_engine().diagram(process_id, version))


def analyst() -> str | None:
    """The caller, who must hold the analyst role (None: a signed sender, trusted host code)."""
    user = caller()
    account = accounts.account(current_engine().db.engine, user) if user else None
    if user is not None and (account is None or "analyst" not in account.roles):
        raise Forbidden(f"{user} does not have the analyst role, which uploads and deploys diagrams")
    return user


def definition(info: DefinitionInfo) -> dict[str, Any]:
    return {**asdict(info), "deployed_at": info.deployed_at.isoformat()}


def described(draft: DraftInfo) -> dict[str, Any]:
    shown: dict[str, Any] = {"id": str(draft.id), "owner": draft.owner, "created_at": draft.created_at.isoformat(),
                             "files": list(draft.files)}
    if draft.report is not None:
        shown |= {"ok": draft.report.ok, "problems": [asdict(p) for p in draft.report.problems]}
    return shown
