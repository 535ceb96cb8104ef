"""Settings read from BATON_* environment variables, in one place."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta


def _env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _list(name: str) -> tuple[str, ...]:
    return tuple(item.strip().lower() for item in _env(name, "").split(",") if item.strip())


@dataclass(frozen=True)
class Settings:
    database_url: str = field(default_factory=lambda: _env("BATON_DATABASE_URL", "sqlite:///baton.db"))
    max_diagram_bytes: int = field(default_factory=lambda: int(_env("BATON_MAX_DIAGRAM_BYTES", str(5 * 2**20))))
    script_timeout: float = field(default_factory=lambda: float(_env("BATON_SCRIPT_TIMEOUT", "1")))
    base_currency: str = field(default_factory=lambda: _env("BATON_BASE_CURRENCY", "USD").upper())
    smtp_url: str = field(default_factory=lambda: _env("BATON_SMTP_URL", ""))
    mail_from: str = field(default_factory=lambda: _env("BATON_MAIL_FROM", "baton@localhost"))
    script_memory_mb: int = field(default_factory=lambda: int(_env("BATON_SCRIPT_MEMORY", "256")))
    webhook_secret: str = field(default_factory=lambda: _env("BATON_WEBHOOK_SECRET", ""), repr=False)
    job_lease: timedelta = field(default_factory=lambda: timedelta(seconds=float(_env("BATON_JOB_LEASE", "300"))))
    poll_interval: float = field(default_factory=lambda: float(_env("BATON_POLL_INTERVAL", "1")))
    http_allow: tuple[str, ...] = field(default_factory=lambda: _list("BATON_HTTP_ALLOW"))  # empty: any host
