"""The job worker loop: `baton worker` in its own process, or a thread inside `baton serve`."""

from __future__ import annotations

import logging
import signal
import threading
from typing import Any

log = logging.getLogger(__name__)

BATCH = 20  # jobs leased at a time: small, so that a slow connector never outlives the others' leases


def work(engine: Any, interval: float, stop: threading.Event) -> None:
    """Run due jobs until `stop` is set, waiting `interval` seconds whenever none are left; never fatal."""
    while not stop.is_set():
        try:
            ran = engine.run_due_jobs(limit=BATCH)
        except Exception:  # the database is away or a bug: logged, and the next round tries again
            log.exception("worker round failed")
            ran = 0
        if ran:
            log.info("worker %s ran %d jobs", engine.worker_id, ran)
        if ran < BATCH:
            stop.wait(interval)


def run(engine: Any, interval: float) -> None:
    """Work in this process until SIGTERM or Ctrl+C; the job in hand is finished first."""
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda signum, frame: stop.set()) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        work(engine, interval, stop)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
