"""The one clock of the engine: real time plus an offset that tests (and BATON_CLOCK_OFFSET) move forward."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta, tzinfo

import SpiffWorkflow.bpmn.specs.event_definitions.timer as spiff_timer

log = logging.getLogger(__name__)


class Clock:
    """UTC-aware time for the whole process; `advance` moves it without anyone sleeping."""

    def __init__(self, offset: timedelta = timedelta(0)) -> None:
        self.offset = offset

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, delta: timedelta) -> None:
        self.offset += delta

    def reset(self) -> None:
        self.offset = _env_offset()


def _env_offset() -> timedelta:
    """BATON_CLOCK_OFFSET in seconds (worker processes in tests share the test's view of time)."""
    return timedelta(seconds=float(os.environ.get("BATON_CLOCK_OFFSET", "0") or 0))


clock = Clock(_env_offset())


class _SpiffDatetime(datetime):
    """What SpiffWorkflow's timer module sees as `datetime`: the same class, with `now` from Baton's clock."""

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> datetime:  # type: ignore[override]
        moment = clock.now()
        return moment.astimezone(tz) if tz is not None else moment.astimezone().replace(tzinfo=None)


spiff_timer.datetime = _SpiffDatetime  # timers are computed and fired on Baton's clock, not the wall clock
