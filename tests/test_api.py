"""The JSON API and its API keys, through Flask's test client on a real SQLite database."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from baton.engine import Engine, accounts, apikeys
from baton.engine.cli import main
from baton.engine.errors import InvalidData, NotFound
from baton.engine.models import ApiKey, Instance, Message
from baton.web import create_app
from bpmn_builder import process

SECRET = "webhook secret of the ERP"
PASSWORD = "correct horse battery"
PAID = process(
    '<bpmn:startEvent id="start"/>',
    '<bpmn:intermediateCatchEvent id="wait" name="Paid"><bpmn:messageEventDefinition messageRef="m_paid"/>'
    '</bpmn:intermediateCatchEvent>',
    '<bpmn:userTask id="ship" name="Ship" camunda:assignee="sam"/>',
    '<bpmn:endEvent id="end"/>', flows="start>wait wait>ship ship>end", process_id="order",
    extra='<bpmn:message id="m_paid" name="paid"/>\n')


@pytest.fixture
def make_app(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], Flask]]:
    """An app on the test database whose webhook secret is `secret` ('' for none)."""
    made: list[Flask] = []

    def make(secret: str) -> Flask:
        monkeypatch.setenv("BATON_WEBHOOK_SECRET", secret)
        app = create_app({"BATON_DATABASE_URL": sqlite_url, "SECRET_KEY": "test", "TESTING": True,
                          "WTF_CSRF_ENABLED": True})
        made.append(app)
        return app

    yield make
    for app in made:
        app.extensions["baton"].close()


@pytest.fixture
def order(sqlite_url: str, fresh: Callable[[str], Engine]) -> Any:
    """An order waiting for the message `paid`, its business key order-1."""
    engine = fresh(sqlite_url)
    engine.deploy(PAID)
    accounts.set_password(engine.db.engine, "sam", PASSWORD)
    return engine.start("order", business_key="order-1")


@pytest.fixture
def key(sqlite_url: str, fresh: Callable[[str], Engine], order: Any) -> str:
    return apikeys.create(fresh(sqlite_url).db.engine, "erp", "payments")


@pytest.fixture
def client(make_app: Callable[[str], Flask], order: Any) -> FlaskClient:
    return make_app(SECRET).test_client()


def send(client: FlaskClient, name: str = "paid", body: Any = None, *, raw: bytes | None = None,
         headers: dict[str, str] | None = None) -> Any:
    data = raw if raw is not None else json.dumps(body if body is not None else {"business_key": "order-1"}).encode()
    return client.post(f"/api/messages/{name}", data=data, headers=headers or {}, content_type="application/json")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def signature(body: bytes, secret: str = SECRET) -> dict[str, str]:
    return {"X-Baton-Signature": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}


def snapshot(engine: Engine, instance_id: Any) -> tuple[Any, ...]:
    """Everything a refused request must leave as it was."""
    with engine.db.engine.connect() as conn:
        version = conn.execute(select(Instance.version).where(Instance.id == instance_id)).scalar()
        messages = conn.execute(select(func.count()).select_from(Message)).scalar()
        used = conn.execute(select(ApiKey.id, ApiKey.last_used_at).order_by(ApiKey.id)).all()
    info = engine.instance(instance_id)
    return version, info.status, info.waiting_on, [e.id for e in engine.history(instance_id)], messages, used


def test_a_key_is_shown_once_and_only_its_digest_is_stored(sqlite_url, fresh, order):
    db = fresh(sqlite_url).db.engine
    secret = apikeys.create(db, "sam", "laptop")
    assert secret.startswith("bk_") and len(secret) > 40
    with db.connect() as conn:
        assert conn.execute(select(ApiKey.digest)).scalars().all() == [hashlib.sha256(secret.encode()).hexdigest()]
    [listed] = apikeys.keys(fresh(sqlite_url).db.engine)
    assert (listed.name, listed.username, listed.last_used) == ("laptop", "sam", None)
    assert apikeys.authenticate(db, secret) == "sam"
    assert apikeys.keys(db, "sam")[0].last_used is not None and apikeys.keys(db, "nobody") == []
    assert apikeys.authenticate(db, secret + "x") is None and apikeys.authenticate(db, "") is None
    with pytest.raises(InvalidData, match="already has an API key named 'laptop'"):
        apikeys.create(db, "sam", "laptop")
    assert apikeys.revoke(db, listed.id).name == "laptop"
    assert apikeys.authenticate(db, secret) is None
    with pytest.raises(NotFound):
        apikeys.revoke(db, listed.id)


def test_keys_are_revoked_by_name_only_when_one_key_has_it(sqlite_url, fresh, order):
    db = fresh(sqlite_url).db.engine
    for user in ("sam", "dana"):
        apikeys.create(db, user, "ci")
    with pytest.raises(InvalidData, match="revoke one by its id"):
        apikeys.revoke(db, "ci")
    apikeys.create(db, "sam", "erp")
    assert apikeys.revoke(db, "erp").username == "sam"
    with pytest.raises(InvalidData):
        apikeys.create(db, "sam", "42")


def test_the_cli_creates_lists_and_revokes_keys(sqlite_url, fresh, order, capsys):
    assert main(["apikey", "create", "sam", "erp", "--database", sqlite_url]) == 0
    printed = capsys.readouterr().out
    secret = next(line for line in printed.splitlines() if line.startswith("bk_"))
    assert "will not be shown again" in printed
    assert apikeys.authenticate(fresh(sqlite_url).db.engine, secret) == "sam"
    assert main(["apikey", "list", "--json", "--database", sqlite_url]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert (listed["name"], listed["username"]) == ("erp", "sam") and secret not in json.dumps(listed)
    assert main(["apikey", "revoke", str(listed["id"]), "--database", sqlite_url]) == 0
    assert "revoked API key" in capsys.readouterr().out
    assert apikeys.authenticate(fresh(sqlite_url).db.engine, secret) is None
    assert main(["apikey", "revoke", str(listed["id"]), "--database", sqlite_url]) == 3


def test_a_message_with_a_key_moves_the_waiting_instance_on(sqlite_url, fresh, client, key, order):
    before = fresh(sqlite_url).history(order.id)
    response = send(client, body={"business_key": "order-1", "payload": {"paid": 12.5}}, headers=bearer(key))
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["outcome"] == "delivered" and response.get_json()["instance_id"] == str(order.id)
    moved = fresh(sqlite_url).instance(order.id)
    assert [w.element_id for w in moved.waiting_on] == ["ship"]
    received = [e for e in fresh(sqlite_url).history(order.id)[len(before):] if e.kind == "message received"]
    assert [(e.element_id, e.data["payload"]) for e in received] == [("wait", {"paid": Decimal("12.5")})]
    assert apikeys.keys(fresh(sqlite_url).db.engine)[0].last_used is not None


def test_a_camunda_8_message_reaches_the_instance_waiting_with_its_correlation_key(sqlite_url, fresh, client, key):
    engine = fresh(sqlite_url)
    engine.deploy(PAID.replace(b'<bpmn:message id="m_paid" name="paid"/>', b'<bpmn:message id="m_paid" name="paid">'
                               b'<bpmn:extensionElements><zeebe:subscription correlationKey="=orderId"/>'
                               b'</bpmn:extensionElements></bpmn:message>').replace(
        b"xmlns:camunda=", b'xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" xmlns:camunda='))
    first, second = engine.start("order", {"orderId": "A-17"}), engine.start("order", {"orderId": 18})
    response = send(client, body={"correlation_key": 18, "payload": {"paid": 1}}, headers=bearer(key))
    assert (response.status_code, response.get_json()["instance_id"]) == (200, str(second.id))
    assert send(client, body={"correlation_key": "A-1"}, headers=bearer(key)).status_code == 404
    assert send(client, body={"correlation_key": ["A-17"]}, headers=bearer(key)).status_code == 400
    assert [w.element_id for w in fresh(sqlite_url).instance(first.id).waiting_on] == ["wait"]


def test_a_signed_message_is_delivered_as_host_code(sqlite_url, fresh, client, order):
    body = json.dumps({"business_key": "order-1"}).encode()
    response = send(client, raw=body, headers=signature(body))
    assert response.status_code == 200 and response.get_json()["outcome"] == "delivered"
    assert [w.element_id for w in fresh(sqlite_url).instance(order.id).waiting_on] == ["ship"]


BODY = json.dumps({"business_key": "order-1", "buffer": 60}).encode()


@pytest.mark.parametrize(("secret", "headers"), [
    (SECRET, {}),
    (SECRET, {"Authorization": "Bearer bk_not-a-key"}),
    (SECRET, {"Authorization": "Bearer "}),
    (SECRET, {"Authorization": "Basic ZXJwOnBheW1lbnRz"}),
    (SECRET, signature(BODY, "another secret")),
    (SECRET, signature(BODY + b" ")),
    (SECRET, {"X-Baton-Signature": hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()}),
    ("", signature(BODY, "")),
    ("", {"X-Baton-Signature": "sha256="}),
], ids=["nothing", "unknown key", "empty key", "basic auth", "other secret", "other body", "no sha256= prefix",
        "no secret configured", "empty signature"])
def test_a_request_without_a_valid_key_or_signature_is_refused_and_changes_nothing(
        sqlite_url, fresh, make_app, order, key, secret, headers):
    client = make_app(secret).test_client()
    before = snapshot(fresh(sqlite_url), order.id)
    response = send(client, raw=BODY, headers=headers)
    assert response.status_code == 401 and "error" in response.get_json()
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert snapshot(fresh(sqlite_url), order.id) == before


def test_a_revoked_key_is_refused(sqlite_url, fresh, client, key, order):
    apikeys.revoke(fresh(sqlite_url).db.engine, "payments")
    before = snapshot(fresh(sqlite_url), order.id)
    assert send(client, headers=bearer(key)).status_code == 401
    assert snapshot(fresh(sqlite_url), order.id) == before


def test_a_signed_in_session_is_not_enough(sqlite_url, fresh, client, order):
    login = client.get("/login").get_data(as_text=True)
    csrf = login.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    assert client.post("/login", data={"username": "sam", "password": PASSWORD, "csrf_token": csrf}).status_code == 302
    assert client.get("/").status_code == 200  # the session cookie works for pages
    before = snapshot(fresh(sqlite_url), order.id)
    response = send(client)
    assert response.status_code == 401 and "error" in response.get_json()
    assert snapshot(fresh(sqlite_url), order.id) == before


@pytest.mark.parametrize("raw", [b"{", b"[]", b'"paid"', b'{"bufer": 60}', b'{"payload": [1]}',
                                 b'{"business_key": 1}', b'{"buffer": 0}', b'{"buffer": -1}', b'{"buffer": true}',
                                 b'{"buffer": 1e999}', b'{"payload": {"x": NaN}}', b"\xff"])
def test_a_malformed_body_is_400_and_changes_nothing(sqlite_url, fresh, client, key, order, raw):
    before = snapshot(fresh(sqlite_url), order.id)
    response = send(client, raw=raw, headers=bearer(key))
    assert response.status_code == 400 and response.get_json()["error"]
    assert snapshot(fresh(sqlite_url), order.id)[:5] == before[:5]


def test_an_unknown_message_is_404_json(client, key):
    response = send(client, "refunded", headers=bearer(key))
    assert response.status_code == 404 and "refunded" in response.get_json()["error"]


def test_a_message_nobody_waits_for_can_be_buffered(client, key):
    response = send(client, body={"business_key": "order-2", "buffer": 60}, headers=bearer(key))
    assert response.status_code == 202 and response.get_json()["outcome"] == "buffered"


def test_a_repeated_message_id_is_delivered_once(sqlite_url, fresh, client, key, order):
    body = {"business_key": "order-1", "message_id": "pay-7"}
    first, again = send(client, body=body, headers=bearer(key)), send(client, body=body, headers=bearer(key))
    assert (first.status_code, first.get_json()["outcome"]) == (200, "delivered")
    assert (again.status_code, again.get_json()["outcome"]) == (200, "duplicate")
    assert again.get_json()["message_id"] == "pay-7"
    assert [w.element_id for w in fresh(sqlite_url).instance(order.id).waiting_on] == ["ship"]
    assert [e.kind for e in fresh(sqlite_url).history(order.id)].count("message received") == 1


def test_api_errors_are_json_and_pages_stay_html(client, key):
    wrong_method = client.get("/api/messages/paid", headers=bearer(key))
    assert wrong_method.status_code == 405 and wrong_method.is_json and "POST" in wrong_method.headers["Allow"]
    assert client.post("/api/nothing-here").get_json()["error"]
    page = client.get("/no-such-page")
    assert page.status_code == 404 and page.mimetype == "text/html"
