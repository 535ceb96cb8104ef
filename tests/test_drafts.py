"""Drafts: every upload is kept byte for byte with its lint report; only a draft without lint errors deploys."""

from __future__ import annotations

from uuid import uuid4

import pytest

from baton.engine import DraftNotFound, Engine, InvalidDiagram
from baton.engine.parsing import Source
from bpmn_builder import process

GOOD = process('<bpmn:startEvent id="start"/>', '<bpmn:userTask id="check" name="Check" camunda:assignee="ann"/>',
               '<bpmn:endEvent id="end"/>', flows="start>check check>end")
# An analyst's file as a modeller writes it: its own declaration, comments and spacing, which must all survive.
ODD = b'<?xml version="1.0" encoding="UTF-8"?>\r\n<!-- drawn by hand -->\r\n' + GOOD.split(b"\n", 1)[1]
NO_CONDITION = process('<bpmn:startEvent id="start"/>', '<bpmn:exclusiveGateway id="x"/>',
                       '<bpmn:endEvent id="a"/>', '<bpmn:endEvent id="b"/>', flows="start>x x>a x>b")


def test_an_upload_is_kept_byte_for_byte_with_its_report_and_deploys(engine):
    draft = engine.save_draft(Source("check.bpmn", ODD), user="alice")
    assert draft.files == ("check.bpmn",) and draft.owner == "alice" and draft.report.ok
    assert engine.draft_file(draft.id, "check.bpmn", user="alice") == ODD
    assert Engine(engine.database_url).drafts(user="alice") == [engine.drafts(user="alice")[0]]
    assert [d.id for d in engine.drafts(user="alice")] == [draft.id]
    deployed = engine.deploy_draft(draft.id, user="alice")
    assert [(d.process_id, d.version, d.deployed_by, d.filename) for d in deployed] == [("p", 1, "alice", "check.bpmn")]
    assert engine.diagram("p") == ODD
    assert engine.drafts(user="alice") == []
    with pytest.raises(DraftNotFound):
        engine.draft(draft.id)


def test_a_draft_with_lint_errors_is_kept_and_refuses_to_deploy(engine):
    draft = engine.save_draft(Source("gateway.bpmn", NO_CONDITION), user="alice")
    assert not draft.report.ok
    assert {(p.file, p.element_id) for p in draft.report.errors} == {("gateway.bpmn", "flow_1"),
                                                                    ("gateway.bpmn", "flow_2")}
    with pytest.raises(InvalidDiagram) as refused:
        engine.deploy_draft(draft.id, user="alice")
    assert {p.element_id for p in refused.value.problems} == {"flow_1", "flow_2"}
    again = engine.draft(draft.id, user="alice")
    assert again.report == draft.report and engine.definitions() == []
    assert engine.draft_file(draft.id, "gateway.bpmn") == NO_CONDITION


def test_a_draft_is_its_owners_alone_and_unknown_ids_are_not_found(engine):
    draft = engine.save_draft(Source("check.bpmn", GOOD), user="alice")
    for call in (lambda: engine.draft(draft.id, user="bob"), lambda: engine.deploy_draft(draft.id, user="bob"),
                 lambda: engine.draft_file(draft.id, "check.bpmn", user="bob"),
                 lambda: engine.discard_draft(draft.id, user="bob"), lambda: engine.draft(uuid4()),
                 lambda: engine.draft_file(draft.id, "other.bpmn", user="alice")):
        with pytest.raises(DraftNotFound):
            call()
    assert engine.drafts(user="bob") == [] and [d.id for d in engine.drafts()] == [draft.id]
    engine.discard_draft(draft.id, user="alice")
    assert engine.drafts() == [] and engine.definitions() == []


def test_a_file_baton_cannot_read_or_too_big_is_refused_and_nothing_is_kept(engine, monkeypatch):
    with pytest.raises(InvalidDiagram, match="notes.txt: Baton reads .bpmn"):
        engine.save_draft(Source("check.bpmn", GOOD), Source("notes.txt", b"hello"), user="alice")
    with pytest.raises(InvalidDiagram, match="the same name"):
        engine.save_draft(Source("check.bpmn", GOOD), Source("check.bpmn", GOOD), user="alice")
    monkeypatch.setenv("BATON_MAX_DIAGRAM_BYTES", "100")
    small = Engine(engine.database_url)
    with pytest.raises(InvalidDiagram, match="the limit is 100"):
        small.save_draft(Source("check.bpmn", GOOD), user="alice")
    small.close()
    assert engine.drafts() == []


def test_a_broken_file_is_kept_with_the_line_that_breaks_it(engine):
    broken = GOOD.replace(b"</bpmn:process>", b"</bpmn:proces>")
    draft = engine.save_draft(Source("broken.bpmn", broken), Source("check.bpmn", GOOD), user="alice")
    assert draft.files == ("broken.bpmn", "check.bpmn")
    [error] = draft.report.errors
    line = broken[:broken.find(b"</bpmn:proces>")].count(b"\n") + 1
    assert (error.file, error.line) == ("broken.bpmn", line)
    assert engine.draft_file(draft.id, "broken.bpmn") == broken
