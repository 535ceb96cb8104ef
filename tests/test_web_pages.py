"""The processes, instance and admin pages through Flask's test client, on a real SQLite database with the demo org."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any
from uuid import UUID

import pytest
from flask import Flask
from flask.testing import FlaskClient

from baton.engine import Engine
from bpmn_builder import DIVIDE
from conftest import PASSWORD, PROCESSES, web_app

PURCHASE = PROCESSES / "purchase_approval.bpmn"
DESK = {"item": "Standing desk", "amount": "800", "currency": "USD", "cost_centre": "CC-ENG-210"}


@pytest.fixture
def app(sqlite_url: str, tmp_path: Any) -> Iterator[Flask]:
    users = {"sam": (), "ivy": (), "dana": (), "alice": ("analyst",), "leo": ("analyst",), "adam": ("admin",)}
    with web_app(sqlite_url, users, org=True) as app:
        yield app


@pytest.fixture
def engine(app: Flask) -> Engine:
    return app.extensions["baton"]


@pytest.fixture
def deployed(engine: Engine) -> None:
    engine.deploy(PURCHASE, user="alice")


def token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no CSRF token"
    return found.group(1)


def client_for(app: Flask, user: str) -> FlaskClient:
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    signed = client.post("/login", data={"username": user, "password": PASSWORD, "csrf_token": token(page)})
    assert signed.status_code == 302, f"{user} could not sign in"
    return client


def post(client: FlaskClient, url: str, data: dict[str, Any], *, page: str) -> Any:
    """POST as a browser would: with the CSRF token of the page the form is on."""
    html = client.get(page).get_data(as_text=True)
    return client.post(url, data={**data, "csrf_token": token(html)})


def upload(client: FlaskClient, *files: tuple[str, bytes]) -> Any:
    return post(client, "/processes/", {"files": [(io.BytesIO(content), name) for name, content in files]},
                page="/processes/")


def markers(html: str, element: str = "diagram") -> dict[str, Any]:
    """The JSON the diagram script reads: the XML's address and the elements to mark."""
    found = re.search(rf'<script type="application/json" id="{element}-markers">(.*?)</script>', html, re.S)
    assert found, "the page has no diagram"
    return dict(json.loads(found.group(1)))


def broken_purchase() -> tuple[bytes, int]:
    """Purchase approval with the default flow of 'Within own limit?' removed, and the line of that flow."""
    xml = PURCHASE.read_bytes()
    broken = xml.replace(b'name="Within own limit?" default="Flow_NeedsApproval"', b'name="Within own limit?"')
    assert broken != xml
    line = next(i for i, text in enumerate(broken.splitlines(), 1)
                if b'<bpmn:sequenceFlow id="Flow_NeedsApproval"' in text)
    return broken, line


def start_desk(app: Flask) -> UUID:
    sam = client_for(app, "sam")
    started = post(sam, "/processes/purchase_approval/start", DESK, page="/processes/purchase_approval/start")
    assert started.status_code == 302
    return UUID(started.headers["Location"].rsplit("/", 1)[1])


def test_analyst_uploads_a_clean_diagram_sees_no_problems_and_deploys_it(app, engine):
    alice = client_for(app, "alice")
    assert 'type="file"' in alice.get("/processes/").get_data(as_text=True)
    uploaded = upload(alice, ("purchase_approval.bpmn", PURCHASE.read_bytes()),
                      ("purchase_form.json", b'{"type": "object"}'))
    assert uploaded.status_code == 302 and "/processes/drafts/" in uploaded.headers["Location"]
    review = alice.get(uploaded.headers["Location"])
    html = review.get_data(as_text=True)
    assert review.status_code == 200 and "No problems" in html and 'name="deploy"' in html
    assert "purchase_form.json" in html  # the form schema is listed, kept alongside
    xml = alice.get(markers(html, "diagram-1")["xml"])
    assert xml.data == PURCHASE.read_bytes() and xml.mimetype == "application/xml"
    assert "sandbox" in xml.headers["Content-Security-Policy"]
    form_token = token(html)
    done = alice.post(uploaded.headers["Location"] + "/deploy", data={"csrf_token": form_token})
    assert done.status_code == 302 and done.headers["Location"] == "/processes/"
    [definition] = engine.definitions()
    assert (definition.process_id, definition.version, definition.deployed_by) == ("purchase_approval", 1, "alice")
    listing = alice.get("/processes/").get_data(as_text=True)
    assert "Deployed Purchase approval version 1" in listing and "/processes/purchase_approval/start" in listing
    assert alice.post(uploaded.headers["Location"] + "/deploy", data={"csrf_token": form_token}).status_code == 404


def test_a_new_version_is_listed_first_and_older_ones_folded(app, engine, deployed):
    engine.deploy(PURCHASE.read_bytes().replace(b"Prepare request", b"Prepare the request"), user="alice")
    html = client_for(app, "sam").get("/processes/").get_data(as_text=True)
    folded = html[html.index("<details"):html.index("</details>")]
    assert "1 older version" in folded and "Version 1" in folded and "Version 2" not in folded
    assert "Version 2" in html
    assert client_for(app, "sam").get("/processes/purchase_approval/1/diagram.xml").data == PURCHASE.read_bytes()


def test_broken_diagram_shows_line_and_element_and_cannot_be_deployed(app, engine):
    alice = client_for(app, "alice")
    broken, line = broken_purchase()
    uploaded = upload(alice, ("purchase_approval.bpmn", broken))
    html = alice.get(uploaded.headers["Location"]).get_data(as_text=True)
    assert 'name="deploy"' not in html and "1 error" in html
    row = re.search(r'<tr class="problem problem-error">(.*?)</tr>', html, re.S)
    assert row, "no error row"
    cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)]
    assert cells[:4] == ["Error", "purchase_approval.bpmn", str(line), "Flow_NeedsApproval"]
    assert "without a condition" in cells[4]
    assert list(markers(html, "diagram-1")["errors"]) == ["Flow_NeedsApproval"]
    forced = alice.post(uploaded.headers["Location"] + "/deploy", data={"csrf_token": token(html)})
    assert forced.status_code == 400 and "Not deployed" in forced.get_data(as_text=True)
    assert engine.definitions() == []


def test_a_json_form_that_is_not_json_is_an_error_and_other_files_are_refused(app, engine):
    alice = client_for(app, "alice")
    uploaded = upload(alice, ("purchase_approval.bpmn", PURCHASE.read_bytes()), ("form.json", b"{nope"))
    html = alice.get(uploaded.headers["Location"]).get_data(as_text=True)
    assert "not valid JSON" in html and 'name="deploy"' not in html
    refused = upload(alice, ("notes.txt", b"hello"))
    assert refused.status_code == 400 and "notes.txt" in refused.get_data(as_text=True)
    assert upload(alice, ("form.json", b"{}")).status_code == 400  # a form alone deploys nothing


def test_only_analysts_upload_and_only_their_own_uploads(app):
    alice = client_for(app, "alice")
    location = upload(alice, ("purchase_approval.bpmn", PURCHASE.read_bytes())).headers["Location"]
    for user in ("sam", "adam"):
        client = client_for(app, user)
        assert 'type="file"' not in client.get("/processes/").get_data(as_text=True)
        assert upload(client, ("purchase_approval.bpmn", PURCHASE.read_bytes())).status_code == 403
        assert client.get(location).status_code == 403
    assert client_for(app, "leo").get(location).status_code == 404  # another analyst's upload


def test_start_form_errors_are_shown_beside_the_fields_with_the_input_kept(app, engine, deployed):
    sam = client_for(app, "sam")
    form = sam.get("/processes/purchase_approval/start").get_data(as_text=True)
    assert 'id="item"' in form and 'id="amount"' in form and "Euro" in form
    refused = post(sam, "/processes/purchase_approval/start", {"item": "Standing desk", "amount": "-5",
                                                               "cost_centre": "CC-9"},
                   page="/processes/purchase_approval/start")
    html = refused.get_data(as_text=True)
    assert refused.status_code == 400
    assert 'id="error-amount">Amount must be at least 0.01' in html
    assert 'value="Standing desk"' in html and 'value="-5"' in html and 'value="CC-9"' in html
    assert engine.instances() == []


def test_starting_shows_the_instance_with_status_history_and_diagram(app, engine, deployed):
    instance_id = start_desk(app)
    sam = client_for(app, "sam")
    page = sam.get(f"/instances/{instance_id}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Standing desk" in html and "Sam Rivera" in html
    assert re.search(r'id="instance-status">\s*Active', html)
    assert "started the request" in html and "Approve purchase" in html and "Dana" in html
    found = markers(html)
    assert found["done"]["Task_Prepare"] == 1 and found["active"]["Task_Approve"] == 1
    assert found["active"]["BoundaryEvent_Reminder"] == 1  # timers are highlighted too
    xml = sam.get(found["xml"])
    assert found["xml"] == f"/instances/{instance_id}/diagram.xml"
    assert xml.status_code == 200 and xml.data == PURCHASE.read_bytes()


def test_others_may_not_see_a_request_but_its_approver_and_admins_may(app, deployed):
    instance_id = start_desk(app)
    ivy = client_for(app, "ivy")
    assert ivy.get(f"/instances/{instance_id}").status_code == 403
    assert ivy.get(f"/instances/{instance_id}/diagram.xml").status_code == 403
    assert client_for(app, "dana").get(f"/instances/{instance_id}").status_code == 200
    assert client_for(app, "adam").get(f"/instances/{instance_id}").status_code == 200
    assert ivy.get("/instances/00000000-0000-0000-0000-000000000000").status_code == 404


def test_admin_filters_suspends_resumes_reassigns_and_cancels(app, engine, deployed):
    instance_id = start_desk(app)
    adam = client_for(app, "adam")
    today = date.today()
    listed = adam.get("/admin/", query_string={"status": "active", "starter": "sam", "process": "purchase_approval",
                                                "from": today.isoformat(), "to": today.isoformat()})
    assert f"/instances/{instance_id}" in listed.get_data(as_text=True)
    for query in ({"status": "complete"}, {"starter": "ivy"}, {"to": (today - timedelta(days=2)).isoformat()},
                  {"from": (today + timedelta(days=2)).isoformat()}):
        assert f"/instances/{instance_id}" not in adam.get("/admin/", query_string=query).get_data(as_text=True)

    def act(action: str) -> str:
        done = post(adam, f"/admin/instances/{instance_id}/{action}", {"next": "/admin/"}, page="/admin/")
        assert done.status_code == 302
        return engine.instance(instance_id).status

    assert act("suspend") == "suspended"
    assert act("resume") == "active"
    [task] = engine.tasks(instance_id=instance_id)
    reassigned = post(adam, "/admin/reassign", {"task": str(task.id), "assignee": "ivy"}, page="/admin/")
    assert reassigned.status_code == 302 and engine.task(task.id).assignee == "ivy"
    assert client_for(app, "ivy").get(f"/instances/{instance_id}").status_code == 200
    unknown = post(adam, "/admin/reassign", {"task": str(task.id), "assignee": "nobody"}, page="/admin/")
    assert "Nobody is called" in adam.get(unknown.headers["Location"]).get_data(as_text=True)
    assert engine.task(task.id).assignee == "ivy"
    assert act("cancel") == "cancelled"
    history = adam.get(f"/instances/{instance_id}").get_data(as_text=True)
    for done in ("suspended the instance", "resumed the instance", "cancelled the instance",
                 "reassigned <strong>Approve purchase</strong>: Dana Whitfield → Ivy Chen"):
        assert done in history


def test_admin_retries_an_incident_shown_in_red_on_the_instance_page(app, engine):
    engine.deploy(DIVIDE)
    instance = engine.start("divide", {"divisor": 0})
    adam = client_for(app, "adam")
    html = adam.get(f"/instances/{instance.id}").get_data(as_text=True)
    assert "division by zero" in html and "divide" in markers(html)["incidents"]
    retried = post(adam, f"/admin/instances/{instance.id}/retry", {"next": f"/instances/{instance.id}"},
                   page=f"/instances/{instance.id}")
    assert retried.status_code == 302
    assert [e.kind for e in engine.history(instance.id)].count("incident") == 2  # tried again, failed again
    figures = re.findall(r"<dt>([^<]+)</dt><dd>([^<]+)</dd>", adam.get("/admin/").get_data(as_text=True))
    assert ("Failed (incidents)", "1") in figures and ("Due now", "0") in figures


def test_non_admins_get_403_on_admin_pages_and_actions(app, deployed):
    instance_id = start_desk(app)
    sam = client_for(app, "sam")
    assert sam.get("/admin/").status_code == 403
    assert post(sam, f"/admin/instances/{instance_id}/cancel", {}, page="/processes/").status_code == 403
    assert client_for(app, "alice").get("/admin/").status_code == 403


def text_of(html: str) -> str:
    """The page's words, without tags and with spaces collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


def test_the_data_card_shows_the_request_and_folds_the_rest_away(app, engine, deployed):
    instance_id = start_desk(app)
    [task] = engine.tasks(instance_id=instance_id)
    engine.complete_task(task.id, {"decision": "approve", "comment": "Good for the back"}, user="dana")
    html = client_for(app, "sam").get(f"/instances/{instance_id}").get_data(as_text=True)
    card = html[html.index('id="data-title"'):html.index('id="diagram-title"')]
    summary = card[:card.index("<details")]
    folded = card[card.index("<details"):card.index("</details>")]
    approvals = card[card.index('id="approvals-title"'):]
    shown = text_of(summary)
    assert "Item Standing desk" in shown and "Amount 800.00 USD" in shown and "Cost centre CC-ENG-210" in shown
    assert "Decision Approved" in shown
    for internal in ("Starter", "Candidate", "Amount base", "Own limit", "Approver limit", "Comment"):
        assert internal not in shown, internal
        assert f"<dt>{internal}</dt>" in folded, internal
    assert "Currency" not in card  # shown with the amount
    assert "<details" in card and "<details open" not in card  # folded until asked for
    assert "All data" in folded and "amount_base" not in folded  # keys as words
    row = text_of(approvals[approvals.index("<tbody>"):approvals.index("</tbody>")])
    assert "Dana Whitfield" in row and "1,000" in row and "Approved" in row and "Good for the back" in row
    assert text_of(approvals).count("Good for the back") == 1  # not repeated below as data


def test_a_process_without_the_request_fields_shows_its_data_as_it_is(app, engine):
    engine.deploy(DIVIDE)
    instance = engine.start("divide", {"divisor": 0})
    html = client_for(app, "adam").get(f"/instances/{instance.id}").get_data(as_text=True)
    card = html[html.index('id="data-title"'):html.index('id="diagram-title"')]
    assert "<details" not in card and "<dt>Divisor</dt>" in card and "approvals-title" not in html


def test_the_history_names_elements_and_leaves_out_unnamed_gateways(app, engine, deployed):
    instance_id = start_desk(app)
    html = client_for(app, "sam").get(f"/instances/{instance_id}").get_data(as_text=True)
    history = html[html.index('id="history-title"'):]
    assert "Gateway" not in text_of(history)  # unnamed: left out, neither its id nor "Exclusive gateway"
    assert "Within own limit?" in history and "Find approver" in history  # a named gateway and a task stay
    assert "Gateway_ApproverLoop" in {e.element_id for e in engine.history(instance_id)}
    waiting = html[html.index("Waiting on"):html.index('id="data-title"')]
    assert "Reminder" in waiting and "Escalate" in waiting and "BoundaryEvent_" not in waiting
    assert markers(html)["focus"] == "Task_Approve"  # a narrow screen opens the diagram on what it waits for


def test_only_processes_people_start_offer_start(app, engine, deployed):
    engine.deploy(PROCESSES / "directory_sync.bpmn", PROCESSES / "supplier_invoice.bpmn", user="alice")
    sam = client_for(app, "sam")
    html = sam.get("/processes/").get_data(as_text=True)
    rows = {m.group(1): m.group(2) for m in re.finditer(r'<tr id="process-(\w+)">(.*?)</tr>', html, re.S)}
    assert set(rows) == {"purchase_approval", "directory_sync", "supplier_invoice"}
    assert "/processes/purchase_approval/start" in rows["purchase_approval"]
    assert "Starts on a schedule" in rows["directory_sync"] and "/start" not in rows["directory_sync"]
    assert "Starts on a message" in rows["supplier_invoice"] and "/start" not in rows["supplier_invoice"]
    shown = sam.get("/processes/directory_sync/1").get_data(as_text=True)
    assert "Starts on a schedule" in shown and "/processes/directory_sync/start" not in shown
    refused = sam.get("/processes/supplier_invoice/start")
    assert refused.status_code == 400 and "starts on a message" in refused.get_data(as_text=True)
    assert engine.instances() == []


def test_a_process_with_a_none_start_event_besides_a_timer_one_may_be_started():
    from baton.web.processes import started_by

    def diagram(*starts: str) -> bytes:
        return ('<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL"><process id="p">'
                + "".join(f'<startEvent id="S{i}">{s}</startEvent>' for i, s in enumerate(starts))
                + '</process></definitions>').encode()

    timer = "<timerEventDefinition/>"
    assert started_by(diagram("", timer), "p") is None
    assert started_by(diagram("<documentation>by hand</documentation>"), "p") is None
    assert started_by(diagram(timer), "p") == "Starts on a schedule"
    assert started_by(diagram("<messageEventDefinition/>"), "p") == "Starts on a message"
    assert started_by(diagram("<signalEventDefinition/>"), "p") == "Starts on a signal"


def test_elements_are_called_by_their_names_else_by_their_kind():
    from baton.web.instances import Elements

    elements = Elements.of(PURCHASE.read_bytes())
    assert elements.label("Task_Approve") == "Approve purchase"
    assert elements.label("Gateway_ApproverLoop") == "Exclusive gateway"
    assert elements.label("Task_Approve", "As the event named it") == "As the event named it"
    assert elements.label("Not_In_The_Diagram") == "Not_In_The_Diagram"
    assert elements.unnamed_gateway("Gateway_ApproverLoop") and not elements.unnamed_gateway("Gateway_Decision")
    assert not elements.unnamed_gateway("Task_Prepare") and not elements.unnamed_gateway(None)
    assert Elements.of(b"<not xml").label("X") == "X"  # never fails the page
