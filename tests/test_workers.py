"""Real `baton worker` processes on one PostgreSQL database: every timer fires once, a killed worker's jobs go on."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from baton.engine import Engine
from bpmn_builder import process

SCRIPT = Path(sys.executable).with_name("baton")
BATON = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "baton.engine.cli"]
OFFSET = "120"  # the workers' clock runs two minutes ahead: every PT1M timer is already due for them
WAITING = process(
    '<bpmn:startEvent id="start"/>',
    '<bpmn:intermediateCatchEvent id="wait"><bpmn:timerEventDefinition><bpmn:timeDuration>PT1M'
    '</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>',
    '<bpmn:scriptTask id="fire"><bpmn:script>notify("ops", "fired", "")\nfired = n</bpmn:script></bpmn:scriptTask>',
    '<bpmn:endEvent id="end"/>', flows="start>wait wait>fire fire>end", process_id="waiting")
RAN = re.compile(r"baton: worker (\S+) ran (\d+) jobs$")
SKIPPED = re.compile(r"baton: job \S+ \(timer wait\) not run now: (.*)$")


class Worker:
    """One `baton worker --verbose` process; what it logs goes to a file."""

    def __init__(self, url: str, log: Path, **env: str) -> None:
        self.log = log
        inherited = {k: v for k, v in os.environ.items() if not k.startswith("BATON_")}  # no SMTP, lease, ...
        with open(log, "w") as err:
            self.proc = subprocess.Popen([*BATON, "worker", "--poll", "0.2", "--verbose"], stdout=subprocess.DEVNULL,
                                         stderr=err, env={**inherited, "BATON_DATABASE_URL": url,
                                                          "BATON_CLOCK_OFFSET": OFFSET, **env})
        self.owner = f"{socket.gethostname()}:{self.proc.pid}:"  # how jobs.owner() begins for this process

    def lines(self) -> list[str]:
        return self.log.read_text().splitlines()

    def ran(self) -> int:
        return sum(int(m[2]) for line in self.lines() if (m := RAN.match(line)))

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=60) == 0, self.log.read_text()


@pytest.fixture
def workers(postgres_url: str, tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """Start `baton worker` processes on the test database; any still running are killed after the test."""
    started: list[Worker] = []

    def start(**env: str) -> Worker:
        started.append(Worker(postgres_url, tmp_path / f"worker{len(started) + 1}.log", **env))
        return started[-1]

    yield start
    for worker in started:
        if worker.proc.poll() is None:
            worker.proc.kill()
        worker.proc.wait(timeout=60)


@pytest.fixture
def db(postgres_url: str) -> Iterator[sa.Engine]:
    """Plain SQL on the test database, to watch the job table and count side effects."""
    engine = sa.create_engine(postgres_url)
    yield engine
    engine.dispose()


def fill(url: str, n: int) -> list[str]:
    """Deploy the waiting process and start `n` instances through the Engine; their ids."""
    engine = Engine(url)
    try:
        engine.deploy(WAITING)
        return [str(engine.start("waiting", {"n": i}).id) for i in range(n)]
    finally:
        engine.close()


def scalar(db: sa.Engine, sql: str, **params: object) -> int:
    with db.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar_one()


def wait_until(condition: Callable[[], bool], seconds: float, running: list[Worker], what: str) -> None:
    """Poll until `condition` holds; fail at the deadline, or as soon as a worker exits on its own."""
    deadline = time.monotonic() + seconds
    while not condition():
        for worker in running:
            assert worker.proc.poll() is None, f"a worker exited early:\n{worker.log.read_text()}"
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.2)


def active(db: sa.Engine) -> int:
    return scalar(db, "SELECT count(*) FROM instance WHERE status <> 'complete'")


def assert_each_fired_once(db: sa.Engine, ids: list[str]) -> None:
    """Every instance complete, one notification and one timer firing each (side effects counted), no job left."""
    with db.connect() as conn:
        statuses = dict(conn.execute(sa.text("SELECT status, count(*) FROM instance GROUP BY status")).all())
        notes = Counter({str(i): n for i, n in conn.execute(sa.text(
            "SELECT instance_id, count(*) FROM outbox GROUP BY instance_id"))})
        fired = Counter({str(i): n for i, n in conn.execute(sa.text(
            "SELECT instance_id, count(*) FROM event WHERE kind = 'timer fired' GROUP BY instance_id"))})
        jobs = conn.execute(sa.text("SELECT count(*) FROM job")).scalar_one()
        incidents = conn.execute(sa.text("SELECT count(*) FROM incident")).scalar_one()
    assert statuses == {"complete": len(ids)}
    assert set(notes) == set(ids) and set(notes.values()) == {1}, Counter(notes.values())
    assert set(fired) == set(ids) and set(fired.values()) == {1}, Counter(fired.values())
    assert jobs == 0 and incidents == 0


def assert_clean(worker: Worker) -> list[str]:
    """A worker logged only the jobs it ran and optimistic-lock skips; the skips' reasons are returned."""
    lines = worker.lines()
    unexpected = [line for line in lines if not RAN.match(line) and not SKIPPED.match(line)]
    assert not unexpected, "\n".join(unexpected[:50])
    return [m[1] for line in lines if (m := SKIPPED.match(line))]


@pytest.mark.timeout(300)
def test_four_workers_fire_two_thousand_timers_exactly_once(postgres_url, db, workers):
    ids = fill(postgres_url, 2_000)
    assert scalar(db, "SELECT count(*) FROM job WHERE kind = 'timer'") == 2_000
    four = [workers() for _ in range(4)]
    wait_until(lambda: active(db) == 0, 200, four, "every instance complete")
    for worker in four:
        worker.stop()
    assert_each_fired_once(db, ids)
    skips = [reason for worker in four for reason in assert_clean(worker)]
    assert all("try again" in reason for reason in skips), skips  # only optimistic-lock conflicts, retried
    ran = [worker.ran() for worker in four]
    assert sum(ran) == 2_000 and min(ran) > 0, ran  # each job ran once, and every worker took a share


@pytest.mark.timeout(300)
def test_a_killed_workers_leases_are_taken_over_when_they_expire(postgres_url, db, workers):
    ids = fill(postgres_url, 300)
    lease = {"BATON_JOB_LEASE": "3"}

    def held(owner: str) -> list[sa.Row]:
        with db.connect() as conn:
            return list(conn.execute(sa.text("SELECT instance_id, lock_expires_at FROM job WHERE lock_owner LIKE :o"),
                                     {"o": f"{owner}%"}))

    # A worker leases 20 jobs at a time and releases each as it finishes, so it holds leases nearly always; should
    # the kill land in the instant between two batches, another worker takes its place and is killed in turn.
    orphans: list[sa.Row] = []
    for attempt in range(1, 6):
        first = workers(**lease)
        wait_until(lambda: len(ids) - active(db) >= 30 * attempt and bool(held(first.owner)),  # noqa: B023
                   120, [first], "the first worker done with some jobs and holding leases on others")
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(timeout=60)
        if orphans := held(first.owner):
            break
    assert orphans, "no worker was killed while holding leases"
    assert_clean(first)
    assert active(db) > 0
    second = workers(**lease)
    wait_until(lambda: active(db) == 0, 200, [second], "every instance complete after the takeover")
    second.stop()
    assert_each_fired_once(db, ids)
    assert_clean(second)
    with db.connect() as conn:
        fired = dict(conn.execute(sa.text("SELECT instance_id, at FROM event WHERE kind = 'timer fired'")).all())
    assert all(fired[row.instance_id] > row.lock_expires_at for row in orphans)  # never before the lease ran out
