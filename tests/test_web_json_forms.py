"""JSON-Schema forms in the web app: uploaded with their diagram, deployed, rendered and checked on the server."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from flask import Flask, render_template_string
from flask.testing import FlaskClient
from test_web_pages import client_for, post

from baton.engine.info import FormField
from conftest import web_app

DATA = Path(__file__).parent / "data" / "json_forms"
APPROVE = ("approve.bpmn", "approve-schema.json", "approve-uischema.json")


@pytest.fixture
def app(sqlite_url: str, tmp_path: Path) -> Iterator[Flask]:
    with web_app(sqlite_url, {"sam": (), "alice": ("analyst",)}) as app:
        yield app


def upload(client: FlaskClient, *names: str) -> str:
    """Upload files of the test data; the address of the check page."""
    files = [(io.BytesIO((DATA / name).read_bytes()), name) for name in names]
    uploaded = post(client, "/processes/", {"files": files}, page="/processes/")
    assert uploaded.status_code == 302
    return str(uploaded.headers["Location"])


@pytest.fixture
def task_url(app: Flask) -> str:
    """The JSON-form approval uploaded with its schemas, deployed through the pages, and started."""
    alice = client_for(app, "alice")
    review = upload(alice, *APPROVE)
    html = alice.get(review).get_data(as_text=True)
    assert "No problems" in html and "approve-schema.json" in html
    assert post(alice, review + "/deploy", {}, page=review).headers["Location"] == "/processes/"
    engine = app.extensions["baton"]
    [task] = engine.tasks(instance_id=engine.start("json_approval", {"item": "Desk"}).id)
    return f"/tasks/{task.id}"


def test_a_diagram_uploaded_without_its_schema_cannot_be_deployed(app):
    alice = client_for(app, "alice")
    review = upload(alice, "approve.bpmn", "approve-uischema.json")
    html = alice.get(review).get_data(as_text=True)
    assert "Upload approve-schema.json together with this diagram" in html and 'name="deploy"' not in html
    assert post(alice, review + "/deploy", {}, page=review).status_code == 400
    assert app.extensions["baton"].definitions() == []


def test_the_task_page_renders_the_json_form(app, task_url):
    html = client_for(app, "sam").get(task_url).get_data(as_text=True)
    assert 'name="decision" value="approve"' in html and 'name="decision" value="reject"' in html
    assert re.search(r'<input id="quantity" name="quantity" type="number" value="1" step="1"[^>]* required[^>]* '
                     r'min="1" max="10"', html)
    assert re.search(r'<label for="price">Unit price</label>\s*<p class="hint" id="hint-price">[^<]*'
                     r'From 0.5 to 1000</p>', html)
    assert re.search(r'<input id="price" name="price" type="number" value="" step="any" inputmode="decimal"[^>]* '
                     r'min="0.5" max="1000" aria-describedby="hint-price">', html)
    assert '<input id="delivery" name="delivery" type="date"' in html
    assert re.search(r'<legend>Priority</legend>.*<input type="radio" name="priority" value="3"', html, re.S)
    assert re.search(r'<input type="radio" name="site" value="north"\s+disabled>', html)
    assert '<input type="checkbox" id="urgent" name="urgent" value="true">' in html
    assert re.search(r'<input id="code" name="code" type="text" value="PO-1"\s+readonly>', html)
    assert re.search(r'<textarea id="comment" name="comment" rows="4" minlength="2" maxlength="500" '
                     r'aria-describedby="hint-comment"></textarea>', html)
    assert html.index('id="quantity"') < html.index('id="comment"') < html.index('value="approve"')


def test_a_refused_json_form_shows_errors_beside_the_fields_and_keeps_the_input(app, task_url):
    sam = client_for(app, "sam")
    refused = post(sam, task_url, {"decision": "approve", "quantity": "11", "price": "0.1", "delivery": "2025-03-31",
                                   "comment": "x"}, page=task_url)
    html = refused.get_data(as_text=True)
    assert refused.status_code == 400
    assert re.search(r'<p class="field-error" id="error-quantity">Quantity must be at most 10</p>\s*<input '
                     r'id="quantity" name="quantity" type="number" value="11"[^>]* aria-describedby="error-quantity '
                     r'hint-quantity" aria-invalid="true"', html)
    assert re.search(r'id="price"[^>]*value="0.1"[^>]*aria-describedby="error-price hint-price"', html)
    assert re.search(r'aria-describedby="error-comment hint-comment" aria-invalid="true">x</textarea>', html)
    assert 'value="2025-03-31"' in html
    done = post(sam, task_url, {"decision": "approve", "quantity": "2", "price": "9.95", "delivery": "2025-03-31",
                                "priority": "3", "urgent": "true", "comment": "Fine", "item": "Yacht"}, page=task_url)
    assert done.status_code == 302
    [instance] = app.extensions["baton"].instances(process_id="json_approval")
    assert (instance.status, instance.data["price"], instance.data["priority"], instance.data["item"]) == (
        "complete", Decimal("9.95"), 3, "Desk")


def test_a_json_start_form_is_rendered_and_checked(app):
    alice = client_for(app, "alice")
    review = upload(alice, "request.bpmn", "request-schema.json")
    assert post(alice, review + "/deploy", {}, page=review).status_code == 302
    sam = client_for(app, "sam")
    url = "/processes/json_request/start"
    html = sam.get(url).get_data(as_text=True)
    assert re.search(r'<input id="item" name="item" type="text" value=""[^>]* required[^>]* maxlength="80"', html)
    assert re.search(r'<input id="amount" name="amount" type="number" value="" step="any"[^>]* min="0"', html)
    refused = post(sam, url, {"item": "Desk", "amount": "-5"}, page=url)
    assert refused.status_code == 400 and 'id="error-amount"' in refused.get_data(as_text=True)
    assert 'value="-5"' in refused.get_data(as_text=True)
    assert post(sam, url, {"item": "Desk", "amount": "80.50", "needed_by": "2025-04-01"}, page=url).status_code == 302


def test_help_text_describes_every_kind_of_field(app):
    fields = (FormField("note", "Note", "text", constraints={"maxlength": "500"}, help="Say why"),
              FormField("ok", "Agreed", "boolean", help="Tick to agree"),
              FormField("size", "Size", "enum", values=(("s", "Small"), ("l", "Large")), help="Pick one"))
    with app.test_request_context():
        html = render_template_string('{% from "_form.html" import fields %}{{ fields(form, {}, errors) }}',
                                      form=fields, errors={"note": "Note is required"})
    assert '<p class="hint" id="hint-note">Say why; Up to 500 characters</p>' in html
    assert re.search(r'<textarea id="note"[^>]* aria-describedby="error-note hint-note" aria-invalid="true">', html)
    assert re.search(r'<input type="checkbox" id="ok"[^>]* aria-describedby="hint-ok">', html)
    assert '<p class="hint" id="hint-ok">Tick to agree</p>' in html
    assert '<fieldset id="size" aria-describedby="hint-size">' in html and 'id="hint-size">Pick one</p>' in html
