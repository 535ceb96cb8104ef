"""Engine errors and HTTP errors as friendly pages: the one module that knows HTTP status codes."""

from __future__ import annotations

import logging

from flask import Flask, render_template
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
    return page(code, str(exc))


def csrf_error(exc: CSRFError) -> ResponseReturnValue:
    return page(400, "This form has expired or did not come from Baton. Go back, reload the page and try again.")


def http_error(exc: HTTPException) -> ResponseReturnValue:
    if exc.code is None or exc.code < 400:
        return exc
    return page(exc.code, exc.description or "")


def page(code: int, message: str) -> ResponseReturnValue:
    return render_template("error.html", code=code, title=TITLES.get(code, "Error"), message=message), code
