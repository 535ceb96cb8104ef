"""The org directory: people, groups and exchange rates, and the functions diagrams call on them.

A host plugs in its own source through the `Directory` protocol; `SqlDirectory` reads Baton's own tables, which
`orgfile` imports from and exports to CSV and JSON files.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from itertools import groupby
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy import bindparam, select

from . import models
from .errors import InvalidData

log = logging.getLogger(__name__)

PERSON, MEMBERSHIP, RATE = models.Person.__table__, models.Membership.__table__, models.Rate.__table__


@dataclass(frozen=True)
class Person:
    username: str
    name: str
    email: str | None
    manager: str | None
    limit: Decimal | None  # in `currency`; None: unlimited
    currency: str
    delegate: str | None
    away_from: datetime | None
    away_until: datetime | None
    groups: tuple[str, ...]


class Directory(Protocol):
    """What a host plugs in (an HR system, LDAP) through `Engine(directory=...)`."""

    def person(self, username: str) -> Person | None: ...
    def groups_of(self, username: str) -> set[str]: ...
    def members_of(self, group: str) -> list[str]: ...
    def rate(self, currency: str) -> Decimal | None: ...


_everyone = select(PERSON, MEMBERSHIP.c.group_name).outerjoin(
    MEMBERSHIP, MEMBERSHIP.c.username == PERSON.c.username).order_by(PERSON.c.username, MEMBERSHIP.c.group_name)
_one = _everyone.where(PERSON.c.username == bindparam("username"))
_groups_of = select(MEMBERSHIP.c.group_name).where(MEMBERSHIP.c.username == bindparam("username"))
_members_of = select(MEMBERSHIP.c.username).where(MEMBERSHIP.c.group_name == bindparam("group")).order_by(
    MEMBERSHIP.c.username)
_rate_of = select(RATE.c.rate).where(RATE.c.currency == bindparam("currency"))


def everyone(conn: sa.Connection) -> list[Person]:
    return _read_people(conn, _everyone)


def _read_people(conn: sa.Connection, query: sa.Select, **params: Any) -> list[Person]:
    people = []
    for _, group in groupby(conn.execute(query, params), key=lambda row: row.username):
        rows = list(group)
        r = rows[0]
        limit = None if r.signature_limit is None else Decimal(r.signature_limit)
        people.append(Person(r.username, r.name, r.email, r.manager, limit, r.currency, r.delegate, r.away_from,
                             r.away_until, tuple(row.group_name for row in rows if row.group_name is not None)))
    return people


class SqlDirectory:
    """The directory on Baton's own database; every call reads afresh, so a change is seen at once."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def person(self, username: str) -> Person | None:
        with self.engine.connect() as conn:
            found = _read_people(conn, _one, username=username)
        return found[0] if found else None

    def groups_of(self, username: str) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.execute(_groups_of, {"username": username}).scalars())

    def members_of(self, group: str) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(_members_of, {"group": group}).scalars())

    def rate(self, currency: str) -> Decimal | None:
        with self.engine.connect() as conn:
            text = conn.execute(_rate_of, {"currency": currency}).scalar()
        return None if text is None else Decimal(text)


def functions(directory: Directory, *, base_currency: str, now: Callable[[], datetime]) -> dict[str, Callable]:
    """The sandbox-safe functions diagrams call; they take and return plain data."""
    base = base_currency.upper()

    def to_base(amount: Any, currency: str) -> Decimal:
        code = str(currency).upper()
        rate = Decimal(1) if code == base else directory.rate(code)
        if rate is None:
            raise InvalidData(f"no exchange rate for the currency {currency!r} (the base currency is {base})")
        return Decimal(str(amount)) * rate

    def limit_of(person: Person) -> Decimal:
        return Decimal("Infinity") if person.limit is None else to_base(person.limit, person.currency)

    def away(person: Person | None) -> bool:
        if person is None or (person.away_from is None and person.away_until is None):
            return False
        at = now()
        return (person.away_from is None or person.away_from <= at) and (
            person.away_until is None or at <= person.away_until)

    def manager_of(user: str) -> str | None:
        person = directory.person(user)
        return person.manager if person else None

    def signature_limit(user: str) -> Decimal:
        person = directory.person(user)
        return limit_of(person) if person else Decimal(0)

    def acting_approver(user: str | None, requester: str | None = None) -> dict[str, Any] | None:
        seen = set()
        while user is not None and user not in seen:  # `seen`: a host's directory may have a manager cycle
            seen.add(user)
            person = directory.person(user)
            if person is None:
                return None
            signer, on_behalf_of = user, None
            if person.delegate and away(person) and not away(directory.person(person.delegate)):
                signer, on_behalf_of = person.delegate, user
            if signer != requester:
                return {"approver": signer, "on_behalf_of": on_behalf_of, "limit": limit_of(person)}
            user = person.manager  # nobody approves their own request: the manager decides instead
        return None

    return {"manager_of": manager_of, "signature_limit": signature_limit,
            "members_of": lambda group: directory.members_of(group),
            "to_base": to_base, "is_away": lambda user: away(directory.person(user)),
            "acting_approver": acting_approver}


