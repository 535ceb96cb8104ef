"""The diagrams API: upload files as a draft, read the lint report and the files byte for byte, deploy or discard."""

from __future__ import annotations

import hashlib
import hmac
import io
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from baton.engine import Engine, accounts, apikeys
from baton.web import create_app
from bpmn_builder import process

SECRET = "webhook secret of the modelling tool"
GOOD = process('<bpmn:startEvent id="start"/>', '<bpmn:userTask id="check" name="Check" camunda:assignee="ann"/>',
               '<bpmn:endEvent id="end"/>', flows="start>check check>end", process_id="order")
BROKEN = process('<bpmn:startEvent id="start"/>', '<bpmn:exclusiveGateway id="x"/>', '<bpmn:endEvent id="a"/>',
                 '<bpmn:endEvent id="b"/>', flows="start>x x>a x>b", process_id="routing")


@pytest.fixture
def app(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    monkeypatch.setenv("BATON_WEBHOOK_SECRET", SECRET)
    made = create_app({"BATON_DATABASE_URL": sqlite_url, "SECRET_KEY": "test", "TESTING": True,
                       "WTF_CSRF_ENABLED": True})
    yield made
    made.extensions["baton"].close()


@pytest.fixture
def keys(app: Flask) -> dict[str, dict[str, str]]:
    """Bearer headers of alice (analyst), leo (another analyst) and sam (no role)."""
    db = app.extensions["baton"].db.engine
    for user, roles in (("alice", ("analyst",)), ("leo", ("analyst",)), ("sam", ())):
        accounts.set_password(db, user, "pass phrase of " + user, roles)
    return {user: {"Authorization": f"Bearer {apikeys.create(db, user, 'modeller')}"}
            for user in ("alice", "leo", "sam")}


def upload(client: FlaskClient, headers: dict[str, str], *files: tuple[str, bytes]) -> Any:
    return client.post("/api/drafts/", headers=headers, content_type="multipart/form-data",
                       data={"files": [(io.BytesIO(content), name) for name, content in files]})


def test_an_analyst_uploads_reads_the_report_and_the_file_and_deploys(app, keys):
    client = app.test_client()
    made = upload(client, keys["alice"], ("order.bpmn", GOOD))
    assert made.status_code == 201
    draft = made.get_json()
    assert (draft["files"], draft["owner"], draft["ok"]) == (["order.bpmn"], "alice", True)
    assert made.headers["Location"].endswith(f"/api/drafts/{draft['id']}")
    assert client.get(f"/api/drafts/{draft['id']}/files/order.bpmn", headers=keys["alice"]).data == GOOD
    assert [d["id"] for d in client.get("/api/drafts/", headers=keys["alice"]).get_json()["drafts"]] == [draft["id"]]
    deployed = client.post(f"/api/drafts/{draft['id']}/deploy", headers=keys["alice"])
    assert deployed.status_code == 201
    [definition] = deployed.get_json()["definitions"]
    assert (definition["process_id"], definition["version"], definition["deployed_by"]) == ("order", 1, "alice")
    assert Engine(app.config["BATON_DATABASE_URL"]).diagram("order") == GOOD
    assert client.get(f"/api/drafts/{draft['id']}", headers=keys["alice"]).status_code == 404


def test_a_draft_with_errors_names_line_and_element_and_is_refused_with_nothing_deployed(app, keys):
    client = app.test_client()
    made = client.post("/api/drafts/?name=routing.bpmn", data=BROKEN, headers=keys["alice"],
                       content_type="application/xml")
    assert made.status_code == 201 and made.get_json()["ok"] is False
    problems = made.get_json()["problems"]
    assert {(p["file"], p["element_id"], p["severity"]) for p in problems} == {("routing.bpmn", "flow_1", "error"),
                                                                            ("routing.bpmn", "flow_2", "error")}
    assert all(p["line"] and "without a condition" in p["message"] for p in problems)
    refused = client.post(f"/api/drafts/{made.get_json()['id']}/deploy", headers=keys["alice"])
    assert refused.status_code == 422 and len(refused.get_json()["problems"]) == 2
    assert app.extensions["baton"].definitions() == []
    shown = client.get(f"/api/drafts/{made.get_json()['id']}", headers=keys["alice"]).get_json()
    assert shown["problems"] == problems


def test_only_analysts_and_only_their_own_drafts(app, keys):
    client = app.test_client()
    draft = upload(client, keys["alice"], ("order.bpmn", GOOD)).get_json()
    assert upload(client, keys["sam"], ("order.bpmn", GOOD)).status_code == 403
    assert client.get("/api/drafts/", headers=keys["sam"]).status_code == 403
    for call in (client.get, client.delete):
        assert call(f"/api/drafts/{draft['id']}", headers=keys["leo"]).status_code == 404
    assert client.post(f"/api/drafts/{draft['id']}/deploy", headers=keys["leo"]).status_code == 404
    assert client.get(f"/api/drafts/{draft['id']}").status_code == 401
    assert client.delete(f"/api/drafts/{draft['id']}", headers=keys["alice"]).status_code == 204
    assert client.get(f"/api/drafts/{draft['id']}", headers=keys["alice"]).status_code == 404


def test_a_signed_sender_uploads_as_host_code_and_bad_files_are_refused(app, keys):
    client = app.test_client()
    signature = "sha256=" + hmac.new(SECRET.encode(), GOOD, hashlib.sha256).hexdigest()
    made = client.post("/api/drafts/?name=order.bpmn", data=GOOD, headers={"X-Baton-Signature": signature})
    assert made.status_code == 201 and made.get_json()["owner"] is None
    forged = client.post("/api/drafts/?name=order.bpmn", data=GOOD + b" ", headers={"X-Baton-Signature": signature})
    assert forged.status_code == 401
    refused = upload(client, keys["alice"], ("notes.txt", b"hello"))
    assert refused.status_code == 400 and refused.get_json()["problems"][0]["file"] == "notes.txt"
    assert client.post("/api/drafts/", headers=keys["alice"]).status_code == 400
    assert [d["owner"] for d in client.get("/api/drafts/", headers=keys["alice"]).get_json()["drafts"]] == []


def test_any_caller_lists_the_deployed_processes_and_downloads_a_diagram_byte_for_byte(app, keys):
    engine = app.extensions["baton"]
    engine.deploy(GOOD, user="alice")
    client = app.test_client()
    listed = client.get("/api/processes/", headers=keys["sam"]).get_json()["definitions"]
    assert [(d["process_id"], d["version"], d["deployed_by"]) for d in listed] == [("order", 1, "alice")]
    assert client.get("/api/processes/order/1/diagram", headers=keys["sam"]).data == GOOD
    assert client.get("/api/processes/order/2/diagram", headers=keys["sam"]).status_code == 404
    assert client.get("/api/processes/").status_code == 401
