"""Send the notification outbox by SMTP (BATON_SMTP_URL), each row once, with its attempts counted on failure."""

from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

import sqlalchemy as sa
from sqlalchemy import select, update

from .directory import Directory
from .models import Outbox, now

log = logging.getLogger(__name__)

OUTBOX = Outbox.__table__
MAX_ATTEMPTS = 5


def send(engine: sa.Engine, smtp_url: str, directory: Directory, *, sender: str = "baton@localhost",
         limit: int = 100) -> int:
    """Send unsent notifications through `smtp_url` (smtp://user:password@host:port); returns how many went."""
    with engine.connect() as conn:
        rows = conn.execute(select(OUTBOX).where(OUTBOX.c.sent_at.is_(None), OUTBOX.c.attempts < MAX_ATTEMPTS)
                            .order_by(OUTBOX.c.id).limit(limit)).all()
    if not rows:
        return 0
    sent = 0
    url = urlsplit(smtp_url)
    with smtplib.SMTP(url.hostname or "localhost", url.port or 25, timeout=10) as smtp:
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
                _mark(engine, row.id, attempts=row.attempts + 1, last_error=str(exc))
                log.warning("notification %s to %s not sent: %s", row.id, address, exc)
                continue
            _mark(engine, row.id, sent_at=now(), attempts=row.attempts + 1, last_error=None)
            sent += 1
    return sent


def _mark(engine: sa.Engine, outbox_id: int, **values: object) -> None:
    # Sending is outside any instance's transaction; each row is marked on its own, so none goes out twice.
    with engine.execution_options(write=True).begin() as conn:
        conn.execute(update(OUTBOX).where(OUTBOX.c.id == outbox_id), values)
