"""Deployed processes: list their versions, upload and lint diagrams, deploy them, start an instance."""

from __future__ import annotations

import logging
import re
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

from flask import Blueprint, Response, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from lxml import etree
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import BadRequest, NotFound
from werkzeug.utils import secure_filename

from baton.engine import DefinitionInfo, InvalidData, InvalidDiagram, LintReport

from . import current_engine
from .auth import current_user, has_role, login_required, role_required
from .errors import status
from .tasks import posted

log = logging.getLogger(__name__)

bp = Blueprint("processes", __name__, url_prefix="/processes")

DIAGRAMS, FORMS = (".bpmn", ".dmn"), (".json",)
TOKEN = re.compile(r"[A-Za-z0-9_-]{22}")
KEEP_UPLOADS = 24 * 3600  # seconds an unfinished upload waits for its Deploy
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


@dataclass(frozen=True)
class Upload:
    """Files an analyst uploaded, kept in a folder of their own until they deploy them."""

    token: str
    folder: Path

    @property
    def files(self) -> list[Path]:
        return sorted(p for p in self.folder.iterdir() if p.suffix.lower() in DIAGRAMS + FORMS)

    @property
    def diagrams(self) -> list[Path]:
        return [p for p in self.files if p.suffix.lower() in DIAGRAMS]

    @property
    def forms(self) -> list[Path]:
        return [p for p in self.files if p.suffix.lower() in FORMS]


@bp.get("/")
@login_required
def index() -> ResponseReturnValue:
    return render_template("processes/index.html", processes=_grouped(current_engine().definitions()),
                           analyst=has_role("analyst"))


@bp.post("/")
@role_required("analyst")
def upload() -> ResponseReturnValue:
    files = [f for f in request.files.getlist("files") if f.filename]
    wrong = [f.filename for f in files if Path(f.filename or "").suffix.lower() not in DIAGRAMS + FORMS]
    if wrong or not any(Path(f.filename or "").suffix.lower() in DIAGRAMS for f in files):
        flash(f"Not a .bpmn, .dmn or .json file: {', '.join(map(str, wrong))}." if wrong
              else "Choose at least one .bpmn file to upload.", "error")
        return render_template("processes/index.html", processes=_grouped(current_engine().definitions()),
                               analyst=True), 400
    stash = _stash(files)
    return redirect(url_for("processes.review", token=stash.token))


@bp.get("/uploads/<token>")
@role_required("analyst")
def review(token: str) -> ResponseReturnValue:
    return _review(_upload(token))


@bp.get("/uploads/<token>/<name>")
@role_required("analyst")
def uploaded(token: str, name: str) -> ResponseReturnValue:
    path = _upload(token).folder / secure_filename(name)
    if path.suffix.lower() not in DIAGRAMS or not path.is_file():
        raise NotFound()
    return xml_response(path.read_bytes())


@bp.post("/uploads/<token>/deploy")
@role_required("analyst")
def deploy(token: str) -> ResponseReturnValue:
    stash = _upload(token)
    try:
        deployed = current_engine().deploy(*stash.files, user=current_user())
    except InvalidDiagram:
        return _review(stash, refused=True), 400
    shutil.rmtree(stash.folder, ignore_errors=True)
    for info in deployed:
        flash(f"Deployed {info.name or info.process_id} version {info.version}.", "success")
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


def _review(stash: Upload, *, refused: bool = False) -> str:
    """The lint report, and each BPMN file's diagram with its problem elements marked."""
    report = _lint(stash)
    diagrams = []
    for path in stash.diagrams:
        if path.suffix.lower() == ".bpmn":
            marks: dict[str, dict[str, str]] = {"errors": {}, "warnings": {}}
            for p in report.problems:
                if p.file == path.name and p.element_id:
                    found = marks["errors" if p.severity == "error" else "warnings"]
                    found[p.element_id] = f"{found[p.element_id]}; {p.message}" if p.element_id in found else p.message
            diagrams.append((path.name, {"xml": url_for("processes.uploaded", token=stash.token, name=path.name),
                                         **marks}))
    return render_template("processes/review.html", upload=stash, report=report, diagrams=diagrams, refused=refused)


def _grouped(definitions: list[DefinitionInfo]) -> list[Process]:
    """Definitions (newest first within each process) as one entry per process, sorted by name, each with how its
    newest version starts."""
    engine, processes = current_engine(), []
    for process_id, versions in groupby(definitions, key=lambda d: d.process_id):
        latest, *older = sorted(versions, key=lambda d: d.version, reverse=True)
        processes.append(Process(latest, older, started_by(engine.diagram(process_id, latest.version), process_id)))
    return sorted(processes, key=lambda p: p.name.casefold())


def _lint(stash: Upload) -> LintReport:
    return current_engine().lint(*stash.files) if stash.diagrams else LintReport(())


def _root() -> Path:
    root = current_app.config.get("BATON_UPLOAD_DIR") or Path(tempfile.gettempdir()) / "baton-uploads"
    return Path(root)


def _stash(files: list[FileStorage]) -> Upload:
    """Keep the files under a random token, owned by the signed-in analyst; forget uploads older than a day."""
    root = _root()
    root.mkdir(parents=True, exist_ok=True)
    for old in root.iterdir():
        if old.is_dir() and time.time() - old.stat().st_mtime > KEEP_UPLOADS:
            shutil.rmtree(old, ignore_errors=True)
    token = secrets.token_urlsafe(16)
    folder = root / token
    folder.mkdir(mode=0o700)
    (folder / "owner").write_text(current_user(), encoding="utf-8")
    for file in files:
        file.save(folder / (secure_filename(file.filename or "") or f"upload{Path(file.filename or '').suffix}"))
    log.info("%s uploaded %s as %s", current_user(), [f.filename for f in files], token)
    return Upload(token, folder)


def _upload(token: str) -> Upload:
    folder = _root() / token
    owner = folder / "owner"
    if not TOKEN.fullmatch(token) or not owner.is_file() or owner.read_text(encoding="utf-8") != current_user():
        raise NotFound("This upload is gone (uploads are kept for a day). Upload the files again.")
    return Upload(token, folder)
