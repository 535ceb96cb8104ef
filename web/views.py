"""What every template may use: the signed-in user, the inbox count, people's names, dates and money."""

from __future__ import annotations

import logging
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from flask import Flask, g

from baton.engine.clock import clock

from . import current_engine

log = logging.getLogger(__name__)


def register(app: Flask) -> None:
    app.context_processor(lambda: {"nav": Nav()})
    app.add_template_filter(name, "person")
    app.add_template_filter(group, "group")
    app.add_template_filter(when, "when")
    app.add_template_filter(money, "money")
    app.add_template_global(overdue, "overdue")


class Nav:
    """The navigation's facts, read lazily so that pages that do not show them do not pay for them."""

    @property
    def user(self) -> str | None:
        account = g.get("account")
        return account.username if account else None

    @property
    def roles(self) -> frozenset[str]:
        account = g.get("account")
        return account.roles if account else frozenset()

    @property
    def inbox(self) -> str:
        """The navigation's task count: exact up to 1,000, then "1,000+" (the engine stops counting there)."""
        if "inbox_count" not in g:
            total = current_engine().inbox(self.user, size=0).total if self.user else 0
            g.inbox_count = "1,000+" if total > 1000 else str(total)
        return str(g.inbox_count)


def name(username: str | None) -> str:
    """A person's display name from the directory, else their username."""
    if not username:
        return "—"
    cache = g.setdefault("names", {})
    if username not in cache:
        person = current_engine().directory.person(username)
        cache[username] = person.name if person is not None and person.name else username
    return str(cache[username])


def group(name: str) -> str:
    return f"anyone in {name}"


def when(value: datetime | date | None, fmt: str = "%d %b %Y %H:%M") -> str:
    if value is None:
        return "—"
    if isinstance(value, datetime):
        return value.astimezone().strftime(fmt)
    return value.strftime("%d %b %Y")


def money(amount: Any, currency: str | None = None) -> str:
    if amount is None or amount == "":
        return "—"
    try:
        text = f"{Decimal(str(amount)):,.2f}"
    except ArithmeticError:
        text = str(amount)
    return f"{text} {currency}" if currency else text


def overdue(due: datetime | None) -> bool:
    return due is not None and due < clock.now()
