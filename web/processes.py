"""Deployed processes: list their versions, upload and lint diagrams, deploy them, start an instance."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from uuid import UUID

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from lxml import etree
from werkzeug.exceptions import BadRequest
from werkzeug.utils import secure_filename

from baton.engine import DefinitionInfo, DraftInfo, InvalidData, InvalidDiagram, LintReport
from baton.engine.parsing import Source

from . import current_engine
from .auth import current_user, has_role, login_required, role_required
from .errors import status
from .tasks import posted

log = logging.getLogger(__name__)

bp = Blueprint("processes", __name__, url_prefix="/processes")

BPMN_MODEL = "http://www.omg.org/spec/BPMN/20100524/MODEL"
# What starts a process that people cannot start by hand, by its start event's event definition.
TRIGGERS = {"timerEventDefinition": "Starts on a schedule", "messageEventDefinition": "Starts on a message",
            "signalEventDefinition": "Starts on a signal", "conditionalEventDefinition": "Starts on a condition"}
_parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


@dataclass(frozen=True)
class Process:
    """One deployed process: its newest version first, then the older ones."""

    latest: DefinitionInfo
    older: list[DefinitionInfo]
    starts: str | None = None  # None: people start it; else how it starts ("Starts on a schedule")

    @property
    def name(self) -> str:
        return self.latest.name or self.latest.process_id


@bp.get("/")
@login_required
def index() -> ResponseReturnValue:
    return _index()


@bp.post("/")
@role_required("analyst")
def upload() -> ResponseReturnValue:
    files = [Source(secure_filename(f.filename or "") or "upload", f.read()) for f in request.files.getlist("files")
             if f.filename]
    try:
        draft = current_engine().save_draft(*files, user=current_user())
    except InvalidDiagram as exc:
        flash(" ".join(str(p) for p in exc.problems) if files else "Choose at least one .bpmn file to upload.", "error")
        return _index(), 400
    return redirect(url_for("processes.review", draft_id=draft.id))


@bp.get("/drafts/<uuid:draft_id>")
@role_required("analyst")
def review(draft_id: UUID) -> ResponseReturnValue:
    return _review(current_engine().draft(draft_id, user=current_user()))


@bp.get("/drafts/<uuid:draft_id>/files/<name>")
@role_required("analyst")
def uploaded(draft_id: UUID, name: str) -> ResponseReturnValue:
    return xml_response(current_engine().draft_file(draft_id, name, user=current_user()))


@bp.post("/drafts/<uuid:draft_id>/deploy")
@role_required("analyst")
def deploy(draft_id: UUID) -> ResponseReturnValue:
    engine = current_engine()
    try:
        deployed = engine.deploy_draft(draft_id, user=current_user())
    except InvalidDiagram:
        return _review(engine.draft(draft_id, user=current_user()), refused=True), 400
    for info in deployed:
        flash(f"Deployed {info.name or info.process_id} version {info.version}.", "success")
    return redirect(url_for("processes.index"))


@bp.post("/drafts/<uuid:draft_id>/discard")
@role_required("analyst")
def discard(draft_id: UUID) -> ResponseReturnValue:
    current_engine().discard_draft(draft_id, user=current_user())
    flash("Discarded the upload.", "success")
    return redirect(url_for("processes.index"))


@bp.get("/<process_id>/<int:version>")
@login_required
def show(process_id: str, version: int) -> ResponseReturnValue:
    engine = current_engine()
    definition = engine.definition(process_id, version)
    latest = engine.definition(process_id)
    return render_template("processes/show.html", definition=definition,
                           starts=started_by(engine.diagram(process_id, latest.version), process_id))


@bp.get("/<process_id>/<int:version>/diagram.xml")
@login_required
def diagram(process_id: str, version: int) -> ResponseReturnValue:
    return xml_response(current_engine().diagram(process_id, version))


@bp.route("/<process_id>/start", methods=["GET", "POST"])
@login_required
def start(process_id: str) -> ResponseReturnValue:
    engine = current_engine()
    definition, form = engine.definition(process_id), engine.start_form(process_id)
    starts = started_by(engine.diagram(process_id, definition.version), process_id)
    if starts:
        raise BadRequest(f"{definition.name or process_id} is not started by hand: {starts[0].lower()}{starts[1:]}.")
    values: dict[str, str] = {}
    if request.method == "POST":
        # Only the declared fields: a process without a start form gets no data from the browser at all.
        values = {k: v for k, v in posted(request.form).items() if k in {f.id for f in form}}
        try:
            instance = engine.start(process_id, values, user=current_user())
        except InvalidData as exc:
            errors = {e.field: e.message for e in exc.errors}
            return render_template("processes/start.html", definition=definition, form=form, values=values,
                                   errors=errors), status(exc)
        flash(f"Started {definition.name or process_id}.", "success")
        return redirect(url_for("instances.show", instance_id=instance.id))
    return render_template("processes/start.html", definition=definition, form=form, values=values, errors={})


def xml_response(xml: bytes) -> Response:
    """Diagram XML for the viewer to fetch; never a document a browser would run scripts from."""
    response = Response(xml, mimetype="application/xml")
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def started_by(xml: bytes, process_id: str) -> str | None:
    """None when people can start the process (it has a none start event); else how it starts, for the page.

    A start event with no event definition is a none start event. A process whose start events all have one
    (a timer, a message...) starts on its own: offering a Start button for it would mislead.
    """
    try:
        root = etree.fromstring(xml, _parser)
    except etree.XMLSyntaxError:
        log.warning("the deployed diagram of %s does not parse", process_id, exc_info=True)
        return None
    process = next((p for p in root.iter(f"{{{BPMN_MODEL}}}process") if p.get("id") == process_id), None)
    if process is None:
        return None
    kinds = []
    for start in process.findall(f"{{{BPMN_MODEL}}}startEvent"):  # top level only: not an event subprocess's
        found = [etree.QName(c).localname for c in start
                 if isinstance(c.tag, str) and c.tag.endswith("EventDefinition")]
        if not found:
            return None
        kinds += found
    if not kinds:
        return None  # no start event at all: the engine starts it at its first element
    return TRIGGERS.get(kinds[0], "Starts on its own")


def _index() -> str:
    engine, analyst = current_engine(), has_role("analyst")
    return render_template("processes/index.html", processes=_grouped(engine.definitions()), analyst=analyst,
                           drafts=engine.drafts(user=current_user()) if analyst else [])


def _review(draft: DraftInfo, *, refused: bool = False) -> str:
    """The lint report, and each BPMN file's diagram with its problem elements marked."""
    report, diagrams = draft.report or LintReport(()), []
    for name in draft.files:
        if Path(name).suffix.lower() in (".bpmn", ".xml"):
            marks: dict[str, dict[str, str]] = {"errors": {}, "warnings": {}}
            for p in report.problems:
                if p.file == name and p.element_id:
                    found = marks["errors" if p.severity == "error" else "warnings"]
                    found[p.element_id] = f"{found[p.element_id]}; {p.message}" if p.element_id in found else p.message
            diagrams.append((name, {"xml": url_for("processes.uploaded", draft_id=draft.id, name=name), **marks}))
    forms = [name for name in draft.files if Path(name).suffix.lower() in (".json", ".form")]
    return render_template("processes/review.html", draft=draft, report=report, diagrams=diagrams, forms=forms,
                           refused=refused)


def _grouped(definitions: list[DefinitionInfo]) -> list[Process]:
    """Definitions (newest first within each process) as one entry per process, sorted by name, each with how its
    newest version starts."""
    engine, processes = current_engine(), []
    for process_id, versions in groupby(definitions, key=lambda d: d.process_id):
        latest, *older = sorted(versions, key=lambda d: d.version, reverse=True)
        processes.append(Process(latest, older, started_by(engine.diagram(process_id, latest.version), process_id)))
    return sorted(processes, key=lambda p: p.name.casefold())
