"""The JSON API for programs: messages in, authenticated by an API key or an HMAC signature, never by a cookie."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
from decimal import Decimal
from importlib.resources import files
from typing import Any

from flask import Blueprint, Response, request
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import BadRequest, Unauthorized

from baton.engine import apikeys

from . import csrf, current_engine

log = logging.getLogger(__name__)

bp = Blueprint("api", __name__, url_prefix="/api")
csrf.exempt(bp)  # no view here reads the session, so a forged cross-site request carries nothing to abuse

STATUS = {"delivered": 200, "duplicate": 200, "started": 201, "buffered": 202}
FIELDS: dict[str, tuple[type, ...]] = {"payload": (dict,), "correlation": (dict,), "correlation_key": (str, int),
                                        "business_key": (str,), "message_id": (str,), "buffer": (int, Decimal)}
NAMES = {dict: "a JSON object", str: "a string", int: "a number of seconds"}


@bp.post("/messages/<name>")
def message(name: str) -> ResponseReturnValue:
    user = caller()
    body = fields(request.get_data())
    delivery = current_engine().correlate_message(
        name, body.get("payload"), correlation=body.get("correlation"), correlation_key=body.get("correlation_key"),
        business_key=body.get("business_key"), message_id=body.get("message_id"), buffer=body.get("buffer"), user=user)
    log.info("message %r from %s: %s", name, user or "a signed sender", delivery.outcome)
    return {"outcome": delivery.outcome, "message_id": delivery.message_id,
            "instance_id": str(delivery.instance_id) if delivery.instance_id else None}, STATUS[delivery.outcome]


@bp.get("/openapi.json")
def openapi() -> ResponseReturnValue:
    """The API's OpenAPI 3.1 description (web/openapi.json), open to anyone: it holds no data."""
    return Response(files("baton.web").joinpath("openapi.json").read_bytes(), mimetype="application/json")


def caller() -> str | None:
    """The API key's user, or None (host code) for a valid signature; anything else is refused, cookies included."""
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        username = apikeys.authenticate(current_engine().db.engine, key.strip())
        if username is None:
            raise refused("unknown or revoked API key")
        return username
    signature = request.headers.get("X-Baton-Signature")
    if signature is not None:
        if not signed(request.get_data(), signature, current_engine().settings.webhook_secret):
            raise refused("bad signature")
        return None
    raise refused("send an API key (Authorization: Bearer KEY) or a signature (X-Baton-Signature: sha256=HMAC)")


def signed(body: bytes, signature: str, secret: str) -> bool:
    """Whether `signature` is `sha256=` and the HMAC-SHA256 of the body with the secret; never without a secret."""
    if not secret or not signature.startswith("sha256="):
        return False
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), signature.removeprefix("sha256=").strip().lower().encode())


def refused(reason: str) -> Unauthorized:
    log.warning("API request to %s refused: %s", request.path, reason)
    return Unauthorized(reason, www_authenticate=WWWAuthenticate("Bearer", {"realm": "baton"}))


def fields(raw: bytes) -> dict[str, Any]:
    """The request's JSON object with only known fields of the right types (an empty body is `{}`)."""
    try:
        body = json.loads(raw, parse_float=Decimal, parse_constant=_no_constant) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise BadRequest(f"unknown fields {', '.join(unknown)}; known are {', '.join(FIELDS)}")
    body = {k: v for k, v in body.items() if v is not None}
    for key, value in body.items():
        if not isinstance(value, FIELDS[key]) or isinstance(value, bool):
            raise BadRequest(f"{key} must be {NAMES[FIELDS[key][0]]}")
    if "buffer" in body:
        body["buffer"] = seconds(body["buffer"])
    return body


def seconds(value: int | Decimal) -> float:
    """A time to live in seconds: a finite number above 0."""
    try:
        ttl = float(value)
    except OverflowError:
        ttl = math.inf
    if not 0 < ttl < math.inf:
        raise BadRequest("buffer must be a positive number of seconds")
    return ttl


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")
