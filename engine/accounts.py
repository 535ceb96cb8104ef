"""Sign-in accounts: argon2 password hashes and roles (analyst deploys, admin sees and acts on everything)."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, insert, select

from .errors import InvalidData
from .models import Account

log = logging.getLogger(__name__)

ROLES = ("analyst", "admin")
ACCOUNT = Account.__table__
_hasher = PasswordHasher()


@dataclass(frozen=True)
class Signed:
    """Who signed in, and their roles."""

    username: str
    roles: frozenset[str]


def set_password(engine: sa.Engine, username: str, password: str, roles: tuple[str, ...] | None = None) -> None:
    """Create or replace an account; `roles=None` keeps an existing account's roles."""
    if len(password) < 8:
        raise InvalidData("a password needs at least 8 characters")
    unknown = set(roles or ()) - set(ROLES)
    if unknown:
        raise InvalidData(f"unknown roles {sorted(unknown)}; roles are {', '.join(ROLES)}")
    with engine.execution_options(write=True).begin() as conn:
        kept = conn.execute(select(ACCOUNT.c.roles).where(ACCOUNT.c.username == username)).scalar()
        conn.execute(delete(ACCOUNT).where(ACCOUNT.c.username == username))
        conn.execute(insert(ACCOUNT), {"username": username, "password_hash": _hasher.hash(password),
                                       "roles": ",".join(roles) if roles is not None else (kept or "")})


def authenticate(engine: sa.Engine, username: str, password: str) -> Signed | None:
    """The account if the password is right; None otherwise (also for unknown users, in the same time)."""
    with engine.connect() as conn:
        row = conn.execute(select(ACCOUNT).where(ACCOUNT.c.username == username)).first()
    try:
        _hasher.verify(row.password_hash if row else _DUMMY, password)
    except (VerificationError, InvalidHashError):
        return None
    if row is None:
        return None
    return Signed(row.username, frozenset(filter(None, row.roles.split(","))))


def account(engine: sa.Engine, username: str) -> Signed | None:
    with engine.connect() as conn:
        row = conn.execute(select(ACCOUNT).where(ACCOUNT.c.username == username)).first()
    return Signed(row.username, frozenset(filter(None, row.roles.split(",")))) if row else None


def new_password() -> str:
    """A readable random password for demo and new accounts."""
    return "-".join(secrets.token_urlsafe(4) for _ in range(3))


_DUMMY = _hasher.hash("not a password of anyone")
