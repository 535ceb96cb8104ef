"""Send the notification outbox by SMTP (BATON_SMTP_URL), each row once, with its attempts counted on failure."""

from __future__ import annotations

import logging
import smtplib
from datetime import timedelta
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

import sqlalchemy as sa
from sqlalchemy import select, update

from .directory import Directory
from .models import Outbox, now

log = logging.getLogger(__name__)

OUTBOX = Outbox.__table__
MAX_ATTEMPTS = 5
CLAIM = timedelta(minutes=5)  # how long a worker holds the rows it is sending
RETRY = timedelta(minutes=1)  # the wait after a refused message grows by this with each attempt


def send(engine: sa.Engine, smtp_url: str, directory: Directory, *, sender: str = "baton@localhost",
         limit: int = 100) -> int:
    """Send unsent notifications through `smtp_url` (smtp://user:password@host:port); returns how many went.

    Each row is claimed first (for a few minutes), so that workers sharing a database never send it twice.
    """
    rows = _claim(engine, limit)
    if not rows:
        return 0
    sent = 0
    url = urlsplit(smtp_url)
    try:
        smtp = smtplib.SMTP(url.hostname or "localhost", url.port or 25, timeout=10)
    except OSError:
        for row in rows:
            _mark(engine, row.id, not_before=None)  # the server is away: the next round tries again
        raise
    with smtp:
        if url.scheme == "smtp+starttls":
            smtp.starttls()
        if url.username:
            smtp.login(unquote(url.username), unquote(url.password or ""))
        for row in rows:
            person = directory.person(row.recipient) if hasattr(directory, "person") else None
            address = person.email if person and person.email else row.recipient
            message = EmailMessage()
            message["From"], message["To"], message["Subject"] = sender, address, row.subject
            message.set_content(row.body or row.subject)
            try:
                smtp.send_message(message)
            except smtplib.SMTPException as exc:
                _mark(engine, row.id, attempts=row.attempts + 1, last_error=str(exc),
                      not_before=now() + RETRY * (row.attempts + 1))
                log.warning("notification %s to %s not sent: %s", row.id, address, exc)
                continue
            _mark(engine, row.id, sent_at=now(), attempts=row.attempts + 1, last_error=None, not_before=None)
            sent += 1
    return sent


def _claim(engine: sa.Engine, limit: int) -> list[sa.Row]:
    at = now()
    due = select(OUTBOX.c.id).where(OUTBOX.c.sent_at.is_(None), OUTBOX.c.attempts < MAX_ATTEMPTS, sa.or_(
        OUTBOX.c.not_before.is_(None), OUTBOX.c.not_before < at)).order_by(OUTBOX.c.id).limit(limit)
    with engine.execution_options(write=True).begin() as conn:
        ids = list(conn.execute(due.with_for_update(skip_locked=True)).scalars())
        if not ids:
            return []
        conn.execute(update(OUTBOX).where(OUTBOX.c.id.in_(ids)).values(not_before=at + CLAIM))
        return list(conn.execute(select(OUTBOX).where(OUTBOX.c.id.in_(ids)).order_by(OUTBOX.c.id)))


def _mark(engine: sa.Engine, outbox_id: int, **values: object) -> None:
    # Sending is outside any instance's transaction; each row is marked on its own, so none goes out twice.
    with engine.execution_options(write=True).begin() as conn:
        conn.execute(update(OUTBOX).where(OUTBOX.c.id == outbox_id), values)
