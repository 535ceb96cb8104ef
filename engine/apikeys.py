"""API keys: secrets a program sends to act as a person through the API; only their SHA-256 digests are stored."""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import delete, insert, select, update

from .errors import InvalidData, NotFound
from .models import ApiKey, now

log = logging.getLogger(__name__)

API_KEY = ApiKey.__table__
PREFIX = "bk_"
MAX_LENGTH = 255  # names and usernames; also more than any key this module makes


@dataclass(frozen=True)
class KeyInfo:
    """A key as people see it: never its secret."""

    id: int
    name: str
    username: str
    created: datetime
    last_used: datetime | None


def create(engine: sa.Engine, username: str, name: str) -> str:
    """A new key acting as `username`; its secret is returned here once and never stored."""
    username, name = username.strip(), name.strip()
    if not username or not name:
        raise InvalidData("an API key needs a username and a name")
    if len(username) > MAX_LENGTH or len(name) > MAX_LENGTH:
        raise InvalidData(f"usernames and key names have at most {MAX_LENGTH} characters")
    if name.isdigit():
        raise InvalidData("a key name needs a letter: digits alone read as a key's id")
    secret = PREFIX + secrets.token_urlsafe(32)
    with engine.execution_options(write=True).begin() as conn:
        taken = conn.execute(select(API_KEY.c.id).where(API_KEY.c.username == username, API_KEY.c.name == name))
        if taken.first() is not None:
            raise InvalidData(f"{username} already has an API key named {name!r}; revoke it or choose another name")
        conn.execute(insert(API_KEY), {"username": username, "name": name, "digest": digest(secret),
                                       "created_at": now()})
    log.info("API key %r created for %s", name, username)
    return secret


def authenticate(engine: sa.Engine, secret: str) -> str | None:
    """The username a key acts as, noting when it was used; None for an unknown or revoked key."""
    if not secret or len(secret) > MAX_LENGTH:
        return None
    # The lookup is by digest, so a timing difference tells nothing about the secret; an unknown key writes nothing.
    key = digest(secret)
    with engine.connect() as conn:
        username = conn.execute(select(API_KEY.c.username).where(API_KEY.c.digest == key)).scalar()
    if username is None:
        return None
    with engine.execution_options(write=True).begin() as conn:  # revoked in between: refused after all
        used = conn.execute(update(API_KEY).where(API_KEY.c.digest == key).values(last_used_at=now())).rowcount
    return str(username) if used else None


def revoke(engine: sa.Engine, key: int | str) -> KeyInfo:
    """Delete a key by its id, or by its name if that names one key only."""
    with engine.execution_options(write=True).begin() as conn:
        matches = conn.execute(select(API_KEY).where(_which(key))).all()
        if not matches:
            raise NotFound(f"no API key {key}")
        if len(matches) > 1:
            raise InvalidData(f"{len(matches)} API keys are named {key!r}; revoke one by its id")
        conn.execute(delete(API_KEY).where(API_KEY.c.id == matches[0].id))
    log.info("API key %s (%r of %s) revoked", matches[0].id, matches[0].name, matches[0].username)
    return _info(matches[0])


def keys(engine: sa.Engine, username: str | None = None) -> list[KeyInfo]:
    """Every key, or one user's, oldest first."""
    query = select(API_KEY).order_by(API_KEY.c.id)
    if username is not None:
        query = query.where(API_KEY.c.username == username)
    with engine.connect() as conn:
        return [_info(row) for row in conn.execute(query)]


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _which(key: int | str) -> sa.ColumnElement[bool]:
    if isinstance(key, int) or key.isdigit():
        return API_KEY.c.id == int(key)
    return API_KEY.c.name == key


def _info(row: sa.Row[Any]) -> KeyInfo:
    return KeyInfo(row.id, row.name, row.username, row.created_at, row.last_used_at)
