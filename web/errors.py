"""Engine and HTTP errors as friendly pages, or as JSON under /api/: the one module that knows HTTP status codes."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from baton.engine.errors import Conflict, EngineError, Forbidden, InvalidData, InvalidDiagram, InvalidState, NotFound

log = logging.getLogger(__name__)

STATUS: tuple[tuple[type[EngineError], int], ...] = (
    (NotFound, 404), (Forbidden, 403), (Conflict, 409), (InvalidData, 400), (InvalidDiagram, 400), (InvalidState, 409))
TITLES = {400: "That did not work", 403: "Not yours to open", 404: "Not found", 405: "Not allowed",
          409: "Someone was quicker", 500: "Something went wrong"}


def status(exc: EngineError) -> int:
    """The HTTP status for an engine error (500 for one nobody expected)."""
    return next((code for kind, code in STATUS if isinstance(exc, kind)), 500)


def register(app: Flask) -> None:
    app.register_error_handler(EngineError, engine_error)
    app.register_error_handler(CSRFError, csrf_error)
    app.register_error_handler(HTTPException, http_error)


def engine_error(exc: EngineError) -> ResponseReturnValue:
    code = status(exc)
    if code == 500:
        log.exception("unexpected engine error", exc_info=exc)
    return reply(code, str(exc))


def csrf_error(exc: CSRFError) -> ResponseReturnValue:
    return page(400, "This form has expired or did not come from Baton. Go back, reload the page and try again.")


def http_error(exc: HTTPException) -> ResponseReturnValue:
    if exc.code is None or exc.code < 400:
        return exc
    # Keep the exception's own headers, such as a 401's WWW-Authenticate or a 405's Allow.
    headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
    return reply(exc.code, exc.description or "", headers)


def reply(code: int, message: str, headers: list[tuple[str, str]] | None = None) -> ResponseReturnValue:
    """JSON `{"error": ...}` for the API, which programs read; a page for everyone else."""
    if request.path.startswith("/api/"):
        return jsonify(error=message), code, headers or []
    return page(code, message, headers)


def page(code: int, message: str, headers: list[tuple[str, str]] | None = None) -> ResponseReturnValue:
    return (render_template("error.html", code=code, title=TITLES.get(code, "Error"), message=message), code,
            headers or [])
