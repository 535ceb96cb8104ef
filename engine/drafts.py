"""Drafts: every upload is kept, byte for byte, with its lint report, until it deploys or its owner discards it."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from uuid import UUID

from sqlalchemy import delete, select

from . import parsing
from .errors import DraftNotFound, InvalidDiagram, Problem
from .info import DefinitionInfo, DraftInfo
from .models import Draft, DraftFile

log = logging.getLogger(__name__)

DIAGRAMS = (".bpmn", ".xml", ".dmn")
KINDS = (*DIAGRAMS, ".json", ".form")  # diagrams, decisions, and the JSON-Schema and Camunda forms they name


class Drafts:
    """The upload half of the Engine facade (mixed into `Engine`)."""

    def save_draft(self, *sources: parsing.Source | Path | str | bytes, user: str | None = None) -> DraftInfo:
        """Keep uploaded files as one draft owned by `user`, and lint them. A file too big or of a kind Baton does not
        read is refused (InvalidDiagram) and nothing is kept; lint errors are kept with the draft, to fix."""
        files = [parsing.source(s, i) for i, s in enumerate(sources)]
        refused = [Problem(f.name, None, None, f"Baton reads {', '.join(KINDS)} files, not this one")
                   for f in files if Path(f.name).suffix.lower() not in KINDS]
        refused += [Problem(f.name, None, None, "another file of this upload has the same name")
                    for i, f in enumerate(files) if f.name in {g.name for g in files[:i]}]
        for f in files:
            try:
                parsing.check_size(f, self.settings.max_diagram_bytes)
            except InvalidDiagram as exc:
                refused += exc.problems
        if not any(Path(f.name).suffix.lower() in DIAGRAMS for f in files):
            refused.append(Problem("", None, None, "upload at least one .bpmn or .dmn file"))
        if refused:
            raise InvalidDiagram(refused)
        with self.db.write() as session:
            draft = Draft(owner=user)
            session.add(draft)
            session.flush()
            session.add_all(DraftFile(draft_id=draft.id, name=f.name, content=f.content) for f in files)
            draft_id, created_at = draft.id, draft.created_at
        log.info("%s saved draft %s: %s", user or "host", draft_id, [f.name for f in files])
        return DraftInfo(draft_id, user, created_at, tuple(f.name for f in files), self.lint(*files))

    def draft(self, draft_id: UUID, *, user: str | None = None) -> DraftInfo:
        """A draft with what lint says of its files now (a process it calls may have been deployed since)."""
        row, files = self._draft(draft_id, user)
        return DraftInfo(row.id, row.owner, row.created_at, tuple(f.name for f in files),
                         self.lint(*(parsing.Source(f.name, f.content) for f in files)))

    def drafts(self, *, user: str | None = None) -> list[DraftInfo]:
        """The drafts `user` uploaded (None: every draft), newest first, without their lint reports."""
        with self.db.read() as session:
            query = select(Draft).order_by(Draft.created_at.desc(), Draft.id)
            found = session.scalars(query if user is None else query.where(Draft.owner == user)).all()
            names: dict[UUID, list[str]] = {}
            for draft_id, name in session.execute(select(DraftFile.draft_id, DraftFile.name).where(
                    DraftFile.draft_id.in_([d.id for d in found])).order_by(DraftFile.name)):
                names.setdefault(draft_id, []).append(name)
            return [DraftInfo(d.id, d.owner, d.created_at, tuple(names.get(d.id, ()))) for d in found]

    def draft_file(self, draft_id: UUID, name: str, *, user: str | None = None) -> bytes:
        """One file of a draft, exactly as uploaded."""
        for f in self._draft(draft_id, user)[1]:
            if f.name == name:
                return f.content
        raise DraftNotFound(f"{draft_id}/{name}")

    def deploy_draft(self, draft_id: UUID, *, user: str | None = None) -> list[DefinitionInfo]:
        """Deploy a draft's files together (InvalidDiagram while lint finds errors); the deployed draft is removed."""
        _, files = self._draft(draft_id, user)
        deployed = self.deploy(*(parsing.Source(f.name, f.content) for f in files), user=user)
        self.discard_draft(draft_id, user=user)
        return deployed

    def discard_draft(self, draft_id: UUID, *, user: str | None = None) -> None:
        self._draft(draft_id, user)
        with self.db.write() as session:
            session.execute(delete(DraftFile).where(DraftFile.draft_id == draft_id))
            session.execute(delete(Draft).where(Draft.id == draft_id))

    def _draft(self, draft_id: UUID, user: str | None) -> tuple[Any, list[Any]]:
        """The draft and its files; someone else's draft is not found (host code, user None, sees every draft)."""
        with self.db.read() as session:
            row = session.get(Draft, draft_id)
            if row is None or (user is not None and row.owner != user):
                raise DraftNotFound(draft_id)
            files = session.scalars(select(DraftFile).where(DraftFile.draft_id == draft_id)
                                    .order_by(DraftFile.name)).all()
            session.expunge_all()
            return row, list(files)
