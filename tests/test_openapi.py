"""The OpenAPI description is valid, covers every API route and no other, and real answers match its schemas."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate

from baton.engine import accounts, apikeys
from baton.web import create_app
from bpmn_builder import process

PAID = process('<bpmn:startEvent id="start"/>',
               '<bpmn:intermediateCatchEvent id="wait"><bpmn:messageEventDefinition messageRef="m"/>'
               '</bpmn:intermediateCatchEvent>', '<bpmn:endEvent id="end"/>', flows="start>wait wait>end",
               process_id="order", extra='<bpmn:message id="m" name="paid"/>\n')


@pytest.fixture
def app(sqlite_url: str) -> Iterator[Flask]:
    made = create_app({"BATON_DATABASE_URL": sqlite_url, "SECRET_KEY": "test", "TESTING": True})
    yield made
    made.extensions["baton"].close()


@pytest.fixture
def spec(app: Flask) -> dict[str, Any]:
    found = app.test_client().get("/api/openapi.json")
    assert found.status_code == 200 and found.mimetype == "application/json"
    return dict(found.get_json())


def matches(spec: dict[str, Any], path: str, method: str, status: int, body: Any) -> None:
    """Raise unless `body` fits the schema the description gives for this answer."""
    answer = spec["paths"][path][method]["responses"][str(status)]
    answer = spec["components"]["responses"][answer["$ref"].rsplit("/", 1)[1]] if "$ref" in answer else answer
    schema = {**answer["content"]["application/json"]["schema"], "components": spec["components"]}
    OAS31Validator(schema).validate(body)


def test_the_description_is_valid_openapi_and_lists_exactly_the_api_routes(app, spec):
    validate(spec)
    routes = {(re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule), method.lower())
              for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/")
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    described = {(path, method) for path, item in spec["paths"].items() for method in item if method != "parameters"}
    assert described == routes


def test_real_answers_match_the_schemas(app, spec):
    engine = app.extensions["baton"]
    accounts.set_password(engine.db.engine, "alice", "pass phrase of alice", ("analyst",))
    headers = {"Authorization": f"Bearer {apikeys.create(engine.db.engine, 'alice', 'modeller')}"}
    client = app.test_client()
    made = client.post("/api/drafts/", headers=headers, content_type="multipart/form-data",
                       data={"files": [(io.BytesIO(PAID), "order.bpmn")]})
    matches(spec, "/api/drafts/", "post", 201, made.get_json())
    draft = made.get_json()["id"]
    matches(spec, "/api/drafts/", "get", 200, client.get("/api/drafts/", headers=headers).get_json())
    deployed = client.post(f"/api/drafts/{draft}/deploy", headers=headers)
    matches(spec, "/api/drafts/{draft_id}/deploy", "post", 201, deployed.get_json())
    matches(spec, "/api/processes/", "get", 200, client.get("/api/processes/", headers=headers).get_json())
    engine.start("order", business_key="order-1")
    delivered = client.post("/api/messages/paid", headers=headers, json={"business_key": "order-1"})
    matches(spec, "/api/messages/{name}", "post", 200, delivered.get_json())
    missing = client.get(f"/api/drafts/{draft}", headers=headers)
    matches(spec, "/api/drafts/{draft_id}", "get", missing.status_code, missing.get_json())
    refused = client.post("/api/drafts/?name=notes.txt", headers=headers, data=b"hello")
    matches(spec, "/api/drafts/", "post", refused.status_code, refused.get_json())
    with pytest.raises(Exception, match="is not one of"):
        matches(spec, "/api/messages/{name}", "post", 200, {**delivered.get_json(), "outcome": "lost"})
