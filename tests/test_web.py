"""The web app through Flask's test client, on a real SQLite database with the demo org and purchase approval."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from baton.engine import Engine, accounts
from baton.engine.cli import main
from baton.engine.worker import work
from bpmn_builder import process
from conftest import PASSWORD, PROCESSES, web_app


@pytest.fixture
def app(sqlite_url: str) -> Iterator[Flask]:
    engine = Engine(sqlite_url)
    engine.deploy(PROCESSES / "purchase_approval.bpmn")
    engine.close()
    users = {"sam": (), "dana": (), "ivy": (), "adam": ("admin",)}
    with web_app(sqlite_url, users, org=True, WTF_CSRF_ENABLED=True) as app:
        yield app


@pytest.fixture
def request_800(app: Flask) -> Any:
    """Sam asks for an $800 desk: over Sam's limit, so it waits for Dana."""
    return app.extensions["baton"].start("purchase_approval", {"item": "Standing desk", "amount": "800",
                                                               "currency": "USD", "cost_centre": "CC-ENG-210",
                                                               "description": "Sit less"}, user="sam")


def token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no CSRF token"
    return found.group(1)


def sign_in(client: FlaskClient, user: str, password: str = PASSWORD) -> Any:
    page = client.get("/login").get_data(as_text=True)
    return client.post("/login", data={"username": user, "password": password, "csrf_token": token(page)})


def post(client: FlaskClient, url: str, data: dict[str, str], *, page: str | None = None) -> Any:
    """POST as a browser would: with the CSRF token of the page the form is on."""
    html = client.get(page or url).get_data(as_text=True)
    return client.post(url, data={**data, "csrf_token": token(html)})


def dana_task(app: Flask) -> Any:
    tasks = app.extensions["baton"].tasks(user="dana")
    assert len(tasks) == 1
    return tasks[0]


def test_signing_in_and_out(app):
    client = app.test_client()
    assert client.get("/").headers["Location"].startswith("/login")
    refused = sign_in(client, "sam", "wrong password")
    assert refused.status_code == 200 and "Wrong username or password" in refused.get_data(as_text=True)
    signed = sign_in(client, "sam")
    assert signed.status_code == 302 and signed.headers["Location"] == "/"
    home = client.get("/").get_data(as_text=True)
    assert "Sam Rivera" in home and "Sign out" in home and "Admin" not in home
    assert post(client, "/logout", {}, page="/").headers["Location"] == "/login"
    assert client.get("/").status_code == 302


def test_sign_in_goes_back_where_it_was_asked_for_but_never_off_site(app):
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    there = client.post("/login?next=/requests/", data={"username": "sam", "password": PASSWORD,
                                                        "csrf_token": token(page)})
    assert there.headers["Location"] == "/requests/"
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    away = client.post("/login?next=//evil.example/", data={"username": "sam", "password": PASSWORD,
                                                           "csrf_token": token(page)})
    assert away.headers["Location"] == "/"


def test_admins_see_the_admin_link(app):
    client = app.test_client()
    sign_in(client, "adam")
    assert 'href="/admin/"' in client.get("/").get_data(as_text=True)
    other = app.test_client()
    sign_in(other, "sam")
    assert other.get("/admin/").status_code == 403


def test_inbox_shows_danas_task_for_sams_request(app, request_800):
    client = app.test_client()
    sign_in(client, "dana")
    html = client.get("/").get_data(as_text=True)
    task = dana_task(app)
    assert "Standing desk" in html and "Approve purchase" in html and "Sam Rivera" in html
    assert f"/tasks/{task.id}" in html
    assert re.search(r'class="badge"[^>]*>1<', html)
    assert "Standing desk" in client.get("/?q=standing").get_data(as_text=True)
    assert "Standing desk" not in client.get("/?q=chair").get_data(as_text=True)
    assert "Standing desk" not in client.get("/?process=nothing_like_it").get_data(as_text=True)
    assert "Standing desk" in client.get("/?sort=created&page=9").get_data(as_text=True)


def test_the_task_page_shows_the_request_and_renders_the_form(app, request_800):
    client = app.test_client()
    sign_in(client, "dana")
    page = client.get(f"/tasks/{dana_task(app).id}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Standing desk" in html and "Sit less" in html and "800.00 USD" in html and "CC-ENG-210" in html
    assert 'name="decision" value="approve"' in html and 'name="decision" value="reject"' in html
    assert re.search(r'<label for="comment">Comment', html)
    assert re.search(r'<textarea id="comment"[^>]*maxlength="1000"', html)


def test_approving_completes_the_task(app, request_800, fresh):
    client = app.test_client()
    sign_in(client, "dana")
    url = f"/tasks/{dana_task(app).id}"
    done = post(client, url, {"decision": "approve", "comment": "Fine"})
    assert done.status_code == 302 and done.headers["Location"] == "/"
    assert "Approved." in client.get("/").get_data(as_text=True)
    instance = fresh(app.config["BATON_DATABASE_URL"]).instance(request_800.id)
    assert instance.status == "complete" and instance.data["decision"] == "approve"
    assert instance.data["approvals"][-1]["approver"] == "dana"
    assert app.extensions["baton"].tasks(user="dana") == []


def test_an_invalid_form_shows_the_errors_and_keeps_the_input(app, request_800):
    client = app.test_client()
    sign_in(client, "dana")
    url = f"/tasks/{dana_task(app).id}"
    refused = post(client, url, {"decision": "maybe", "comment": "Let me think <about> it"})
    html = refused.get_data(as_text=True)
    assert refused.status_code == 400
    assert 'id="error-decision"' in html and "must be one of approve, reject" in html
    assert "Let me think &lt;about&gt; it</textarea>" in html
    assert dana_task(app).id  # still open
    too_long = post(client, url, {"decision": "reject", "comment": "x" * 1001})
    assert too_long.status_code == 400 and 'id="error-comment"' in too_long.get_data(as_text=True)


def test_a_posted_undeclared_field_changes_nothing(app, request_800):
    client = app.test_client()
    sign_in(client, "dana")
    post(client, f"/tasks/{dana_task(app).id}", {"decision": "approve", "amount": "1", "starter": "dana"})
    instance = app.extensions["baton"].instance(request_800.id)
    assert str(instance.data["amount"]) == "800" and instance.starter == "sam"


def test_nobody_else_may_open_or_complete_the_task(app, request_800):
    task = dana_task(app)
    client = app.test_client()
    sign_in(client, "ivy")
    assert client.get(f"/tasks/{task.id}").status_code == 403
    html = client.get("/").get_data(as_text=True)
    assert "Standing desk" not in html
    refused = client.post(f"/tasks/{task.id}", data={"decision": "approve", "csrf_token": token(html)})
    assert refused.status_code == 403 and "Not yours" in refused.get_data(as_text=True)
    assert client.get("/tasks/00000000-0000-0000-0000-000000000000").status_code == 404
    assert app.extensions["baton"].instance(request_800.id).status == "active"


def test_a_post_without_the_csrf_token_is_refused(app, request_800):
    client = app.test_client()
    sign_in(client, "dana")
    refused = client.post(f"/tasks/{dana_task(app).id}", data={"decision": "approve"})
    assert refused.status_code == 400
    assert app.extensions["baton"].instance(request_800.id).status == "active"
    assert app.test_client().post("/login", data={"username": "dana", "password": PASSWORD}).status_code == 400


def test_the_session_cookie_is_http_only_and_same_site(app):
    client = app.test_client()
    signed = sign_in(client, "sam")
    cookie = next(c for c in signed.headers.getlist("Set-Cookie") if c.startswith("session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_my_requests_shows_where_each_waits_and_for_whom(app, request_800):
    client = app.test_client()
    sign_in(client, "sam")
    html = client.get("/requests/").get_data(as_text=True)
    assert "Standing desk" in html and "Approve purchase" in html and "Dana Whitfield" in html
    assert f"/instances/{request_800.id}" in html
    other = app.test_client()
    sign_in(other, "ivy")
    assert "Standing desk" not in other.get("/requests/").get_data(as_text=True)


GROUP_TASK = process(
    '<bpmn:startEvent id="start"/>',
    '''<bpmn:userTask id="count" name="Count stock" camunda:candidateGroups="approvers">
  <bpmn:extensionElements><camunda:formData>
    <camunda:formField id="boxes" label="Boxes" type="long">
      <camunda:validation><camunda:constraint name="required"/><camunda:constraint name="min" config="0"/>
        <camunda:constraint name="max" config="99"/></camunda:validation>
    </camunda:formField>
    <camunda:formField id="on" label="Counted on" type="date"/>
    <camunda:formField id="damaged" label="Some damaged" type="boolean" defaultValue="true"/>
    <camunda:formField id="site" label="Site" type="enum">
      <camunda:value id="a" name="A"/><camunda:value id="b" name="B"/><camunda:value id="c" name="C"/>
      <camunda:value id="d" name="D"/><camunda:value id="e" name="E"/>
    </camunda:formField>
    <camunda:formField id="note" label="Note" type="string">
      <camunda:validation><camunda:constraint name="minlength" config="2"/></camunda:validation>
    </camunda:formField>
  </camunda:formData></bpmn:extensionElements>
</bpmn:userTask>''',
    '<bpmn:endEvent id="end"/>', flows="start>count count>end", process_id="stock")


@pytest.fixture
def group_task(app: Flask) -> Any:
    engine = app.extensions["baton"]
    engine.deploy(GROUP_TASK)
    return engine.tasks(instance_id=engine.start("stock", {}, user="sam").id)[0]


def test_the_form_renders_every_field_type_accessibly(app, group_task):
    client = app.test_client()
    sign_in(client, "dana")
    html = client.get(f"/tasks/{group_task.id}").get_data(as_text=True)
    assert re.search(r'<input id="boxes" name="boxes" type="number" value="" step="1"[^>]* required[^>]* min="0" '
                     r'max="99"', html)
    assert '<input id="on" name="on" type="date"' in html
    assert re.search(r'<input type="checkbox" id="damaged" name="damaged" value="true" checked', html)
    assert '<select id="site" name="site">' in html and '<option value="e">E</option>' in html
    assert re.search(r'<input id="note" name="note" type="text" value=""[^>]* minlength="2"', html)
    assert html.count("<label") >= 5 and "Complete</button>" in html


def test_a_checkbox_left_unticked_is_posted_as_false(app, group_task):
    client = app.test_client()
    sign_in(client, "dana")
    url = f"/tasks/{group_task.id}"
    refused = post(client, url, {"boxes": "100", "damaged": "false", "site": "c", "on": "2025-01-31"})
    html = refused.get_data(as_text=True)
    assert refused.status_code == 400 and "Boxes must be at most 99" in html
    assert 'value="100"' in html and '<option value="c" selected>' in html and 'value="2025-01-31"' in html
    assert not re.search(r'name="damaged" value="true" checked', html)
    assert post(client, url, {"boxes": "3", "damaged": "false"}).status_code == 302
    assert app.extensions["baton"].instance(group_task.instance_id).data["damaged"] is False


def test_claiming_a_group_task_takes_it_and_unclaiming_gives_it_back(app, group_task):
    engine = app.extensions["baton"]
    client = app.test_client()
    sign_in(client, "dana")
    assert "Claim<" in client.get("/").get_data(as_text=True)
    claimed = post(client, f"/tasks/{group_task.id}/claim", {"next": "/?sort=created"}, page="/")
    assert claimed.headers["Location"] == "/?sort=created"
    assert engine.task(group_task.id).assignee == "dana"
    assert "Unclaim<" in client.get("/").get_data(as_text=True)
    post(client, f"/tasks/{group_task.id}/unclaim", {"next": "https://evil.example/"}, page="/")
    assert engine.task(group_task.id).assignee is None
    sam = app.test_client()
    sign_in(sam, "sam")
    assert post(sam, f"/tasks/{group_task.id}/claim", {}, page="/").status_code == 403


def test_the_serve_worker_runs_due_jobs_until_stopped_and_survives_a_failing_round():
    stop = threading.Event()
    rounds: list[int] = []

    class Flaky:
        worker_id = "flaky"

        def run_due_jobs(self, *, limit: int) -> int:
            rounds.append(1)
            if len(rounds) == 1:
                raise RuntimeError("database went away")
            if len(rounds) == 3:
                stop.set()
            return 0

    worker = threading.Thread(target=work, args=(Flaky(), 0.01, stop))
    worker.start()
    worker.join(timeout=5)
    assert not worker.is_alive() and len(rounds) == 3


def test_baton_accounts_set_creates_an_account_that_signs_in(sqlite_url, capsys, fresh):
    assert main(["accounts", "set", "zoe", "--roles", "analyst", "--database", sqlite_url]) == 0
    password = re.search(r"^password\s+(\S+)$", capsys.readouterr().out, re.M).group(1)
    engine = fresh(sqlite_url)
    assert accounts.authenticate(engine.db.engine, "zoe", password).roles == {"analyst"}
    assert main(["accounts", "set", "zoe", "--password", PASSWORD, "--database", sqlite_url]) == 0
    assert "password" not in capsys.readouterr().out
    assert accounts.authenticate(engine.db.engine, "zoe", PASSWORD).roles == {"analyst"}
    assert main(["accounts", "set", "zoe", "--roles", "boss", "--database", sqlite_url]) == 2


def test_the_demo_makes_an_account_for_every_demo_person(sqlite_url, capsys, monkeypatch, fresh):
    monkeypatch.setenv("BATON_DEMO_PASSWORD", PASSWORD)
    assert main(["demo", "--database", sqlite_url, "--processes", str(PROCESSES)]) == 0
    assert re.search(rf"^alice\s+{PASSWORD}\s+analyst$", capsys.readouterr().out, re.M)
    engine = fresh(sqlite_url)
    assert accounts.authenticate(engine.db.engine, "adam", PASSWORD).roles == {"admin"}
    assert accounts.authenticate(engine.db.engine, "dana", PASSWORD).roles == frozenset()
