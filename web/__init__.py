"""Baton web app: the app factory, one Engine per app, and the helpers every blueprint uses."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, current_app
from flask_wtf import CSRFProtect
from sqlalchemy.engine import make_url

from baton.engine import Engine

log = logging.getLogger(__name__)

csrf = CSRFProtect()


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """A Baton web app on the database named by `BATON_DATABASE_URL` (config, else the environment)."""
    # An explicit instance path: Flask cannot find one for a package mapped by setuptools' package-dir.
    app = Flask(__name__, instance_path=str(Path.cwd() / "instance"))
    app.config.from_mapping(
        BATON_DATABASE_URL=os.environ.get("BATON_DATABASE_URL", "sqlite:///baton.db"),
        BATON_POLL_INTERVAL=float(os.environ.get("BATON_POLL_INTERVAL", "1")),
        BATON_PAGE_SIZE=25,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
    )
    app.config.from_mapping(config or {})
    app.config["SECRET_KEY"] = (app.config.get("SECRET_KEY") or app.config.get("BATON_SECRET_KEY")
                                or os.environ.get("BATON_SECRET_KEY") or _secret(app.config["BATON_DATABASE_URL"]))
    app.extensions["baton"] = engine = Engine(app.config["BATON_DATABASE_URL"])
    # Uploads are refused before Flask-WTF reads the form: ten diagrams at the engine's size limit, at most.
    app.config.setdefault("MAX_CONTENT_LENGTH", 10 * engine.settings.max_diagram_bytes)
    csrf.init_app(app)

    from . import admin, api, auth, drafts, errors, inbox, instances, processes, requests, tasks, views

    errors.register(app)
    views.register(app)
    for module in (auth, inbox, tasks, requests, processes, instances, admin, api, drafts):
        app.register_blueprint(module.bp)
    return app


def current_engine() -> Engine:
    """The app's Engine."""
    engine: Engine = current_app.extensions["baton"]
    return engine


def _secret(database_url: str) -> str:
    """A key kept next to the SQLite file, so sessions survive a restart; else one per process."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        path = Path(url.database).with_suffix(".secret")
        try:
            if path.is_file():
                return path.read_text(encoding="utf-8").strip()
            key = secrets.token_hex(32)
            path.touch(mode=0o600)
            path.write_text(key, encoding="utf-8")
            return key
        except OSError as exc:
            log.warning("cannot keep a secret key in %s (%s)", path, exc)
    log.warning("BATON_SECRET_KEY is not set: sessions end when this process stops")
    return secrets.token_hex(32)
