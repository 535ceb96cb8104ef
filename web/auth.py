"""Sign-in and sign-out, who is signed in, and the decorators that require it."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Blueprint, flash, g, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import Forbidden

from baton.engine import accounts

from . import current_engine

log = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)
View = TypeVar("View", bound=Callable[..., Any])


@bp.before_app_request
def load_user() -> None:
    if request.endpoint == "static":
        return
    username = session.get("user")
    g.account = accounts.account(current_engine().db.engine, username) if username else None
    if username and g.account is None:  # the account was deleted since: sign out
        session.clear()


def current_user() -> str:
    """The signed-in username (views behind login_required only)."""
    return str(g.account.username)


def has_role(role: str) -> bool:
    return g.get("account") is not None and role in g.account.roles


def login_required(view: View) -> View:
    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if g.get("account") is None:
            return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def role_required(role: str) -> Callable[[View], View]:
    """Signed in and holding `role` (analyst or admin), else 403."""

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not has_role(role):
                raise Forbidden(f"This page is for users with the {role} role.")
            return view(*args, **kwargs)

        return login_required(wrapped)  # type: ignore[return-value]

    return decorate


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    error = None
    username = request.form.get("username", "").strip()
    if request.method == "POST":
        signed = accounts.authenticate(current_engine().db.engine, username, request.form.get("password", ""))
        if signed is not None:
            session.clear()
            session["user"] = signed.username
            log.info("%s signed in", signed.username)
            return redirect(safe_target(request.args.get("next")))
        error = "Wrong username or password."
    return render_template("auth/login.html", username=username, error=error)


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    session.clear()
    flash("You are signed out.")
    return redirect(url_for("auth.login"))


def safe_target(target: str | None) -> str:
    """Only a path on this site: never an open redirect."""
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("inbox.index")
