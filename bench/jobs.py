"""Timer lag and job throughput of `baton worker` processes on one PostgreSQL database.

Run: .venv/bin/python bench/jobs.py --database postgresql+psycopg://USER@HOST/bench_jobs [--timers 10000]
         [--window 20] [--lag-workers 4] [--jobs 2000] [--workers 1,2,4] [--poll 1]

The database must exist; the script empties its instances (and their jobs, history and outbox) before each part.
Process: start -> timer (a timeDate read from the variable `due`) -> script `notify(...)`, `fired = True` -> end,
so every firing is one job, one "timer fired" event and one outbox row; each part checks those counts at the end.
Instances are started one by one through `Engine.start` (the fill rate is printed), then `baton worker --poll P
--verbose` processes are launched with BATON_CLOCK_OFFSET, so that the timers fall due after the workers are up
without anyone waiting for the wall clock:
  lag   --timers N instances due at evenly spread times from --lead s (20: the workers are up by then, checked)
        to --lead + --window s after the workers' launch, run by --lag-workers workers. Lag = the "timer fired"
        event's time (written in the step's transaction) minus the instance's due time; prints p50, p90, p99 and
        max. A window shorter than N / (jobs per second) measures the backlog more than the executor's reaction
        time: the rate part says where that line is.
  rate  --jobs M instances whose timers are all due, then 1, 2 and 4 workers (a fresh fill for each); jobs per
        second from launching the workers to the last instance complete, and between the first and last firing.
Target (job executor issue): report the figures; there is no pass mark. Worker logs go to a temporary folder and
are scanned for tracebacks and conflict skips, which are counted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path

import sqlalchemy as sa

from baton.engine import Engine

SCRIPT = Path(sys.executable).with_name("baton")
BATON = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "baton.engine.cli"]
PROCESS = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="http://baton.bench">
  <bpmn:process id="bench_timer" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:intermediateCatchEvent id="wait">
      <bpmn:timerEventDefinition><bpmn:timeDate>due</bpmn:timeDate></bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:scriptTask id="fire"><bpmn:script>notify("ops", "fired", "")
fired = True</bpmn:script></bpmn:scriptTask>
    <bpmn:endEvent id="end"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="wait"/>
    <bpmn:sequenceFlow id="f2" sourceRef="wait" targetRef="fire"/>
    <bpmn:sequenceFlow id="f3" sourceRef="fire" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
"""
RAN = re.compile(r"baton: worker \S+ ran (\d+) jobs$")
SKIPPED = re.compile(r"baton: job .* not run now: (.*)$")
HOURS = 3600.0


def reset(db: sa.Engine) -> None:
    """Forget every instance: their jobs, tasks, history and incidents go with them (ON DELETE CASCADE)."""
    with db.begin() as conn:
        for table in ("outbox", "message", "instance"):
            conn.execute(sa.text(f"DELETE FROM {table}"))
        assert conn.execute(sa.text("SELECT count(*) FROM job")).scalar_one() == 0


def fill(engine: Engine, db: sa.Engine, dues: list[datetime]) -> float:
    """Start one instance per due time through the Engine; the starts per second."""
    began = time.perf_counter()
    for i, due in enumerate(dues):
        engine.start("bench_timer", {"due": due.isoformat()})
        if (i + 1) % 2_000 == 0:
            print(f"  {i + 1:,} started, {(i + 1) / (time.perf_counter() - began):.0f} starts/s", flush=True)
    rate = len(dues) / (time.perf_counter() - began)
    with db.connect() as conn:
        conn.execute(sa.text("ANALYZE"))  # what autovacuum would do soon after a bulk load
        waiting = conn.execute(sa.text("SELECT count(*) FROM job WHERE kind = 'timer'")).scalar_one()
    assert waiting == len(dues), waiting
    return rate


def launch(url: str, count: int, offset: float, poll: float, logs: Path, tag: str) -> list[subprocess.Popen]:
    env = {**os.environ, "BATON_DATABASE_URL": url, "BATON_CLOCK_OFFSET": f"{offset:.6f}"}
    workers = []
    for k in range(count):
        with open(logs / f"{tag}-{k + 1}.log", "w") as err, open(logs / f"{tag}-{k + 1}.out", "w") as out:
            workers.append(subprocess.Popen([*BATON, "worker", "--poll", str(poll), "--verbose"], env=env,
                                            stdout=out, stderr=err))
    return workers


def ready(workers: list[subprocess.Popen], logs: Path, tag: str) -> float:
    """Wait until every worker printed its banner (its Engine is up, its loop begins); the seconds it took."""
    began = time.perf_counter()
    while not all("baton: worker" in (logs / f"{tag}-{k + 1}.out").read_text() for k in range(len(workers))):
        if any(w.poll() is not None for w in workers) or time.perf_counter() - began > 120:
            raise SystemExit("a worker did not start: see its log")
        time.sleep(0.05)
    return time.perf_counter() - began


def wait_done(db: sa.Engine, workers: list[subprocess.Popen], total: int, limit: float) -> float:
    """Poll until no instance is active; the seconds it took."""
    began = last = time.perf_counter()
    while True:
        with db.connect() as conn:
            left = conn.execute(sa.text("SELECT count(*) FROM instance WHERE status = 'active'")).scalar_one()
        elapsed = time.perf_counter() - began
        if left == 0:
            return elapsed
        if any(w.poll() is not None for w in workers):
            raise SystemExit("a worker exited early: see its log")
        if elapsed > limit:
            raise SystemExit(f"{left} instances still active after {limit:.0f} s")
        if time.perf_counter() - last >= 15:
            print(f"  {elapsed:5.0f} s: {total - left:,} of {total:,} fired", flush=True)
            last = time.perf_counter()
        time.sleep(0.1)


def stop(workers: list[subprocess.Popen]) -> None:
    for w in workers:
        w.send_signal(signal.SIGTERM)
    for w in workers:
        w.wait(timeout=60)


def check(db: sa.Engine, total: int, logs: Path, tag: str) -> str:
    """Every timer fired once with one side effect, no job left; what the worker logs say (ran, skips, errors)."""
    with db.connect() as conn:
        counts = {sql: conn.execute(sa.text(sql)).scalar_one() for sql in (
            "SELECT count(*) FROM instance WHERE status = 'complete'",
            "SELECT count(DISTINCT instance_id) FROM outbox", "SELECT count(*) FROM outbox",
            "SELECT count(DISTINCT instance_id) FROM event WHERE kind = 'timer fired'",
            "SELECT count(*) FROM event WHERE kind = 'timer fired'", "SELECT count(*) FROM job")}
    expected = [total, total, total, total, total, 0]
    if list(counts.values()) != expected:
        print(f"  COUNTS WRONG (expected {expected}): {counts}")
    ran, skips, errors = [], 0, 0
    for log in sorted(logs.glob(f"{tag}-*.log")):
        lines = log.read_text().splitlines()
        ran.append(sum(int(m[1]) for line in lines if (m := RAN.match(line))))
        skips += sum(1 for line in lines if SKIPPED.match(line))
        errors += sum(1 for line in lines if not RAN.match(line) and not SKIPPED.match(line))
    return f"jobs run per worker {ran}, conflict skips {skips}, other log lines (errors) {errors}"


def percentile(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def lag(engine: Engine, db: sa.Engine, args: argparse.Namespace, logs: Path) -> None:
    n, window, lead = args.timers, args.window, args.lead
    print(f"\n== timer lag: {n:,} timers due over {window:g} s from {lead:g} s after the workers' launch, "
          f"{args.lag_workers} workers, --poll {args.poll:g}")
    reset(db)
    anchor = datetime.now(UTC) + timedelta(hours=3)  # the workers' clock will read this when they start
    dues = [anchor + timedelta(seconds=lead + window * i / max(n - 1, 1)) for i in range(n)]
    print(f"fill: {fill(engine, db, dues):.0f} starts/s")
    offset = (anchor - datetime.now(UTC)).total_seconds()
    workers = launch(args.database, args.lag_workers, offset, args.poll, logs, "lag")
    try:
        up = ready(workers, logs, "lag")
        print(f"workers up {up:.1f} s after launch" + ("" if up < lead else ": AFTER the first due time, raise --lead"))
        took = wait_done(db, workers, n, args.limit) + up
    finally:
        stop(workers)
    with db.connect() as conn:
        rows = conn.execute(sa.text("SELECT i.data, e.at FROM event e JOIN instance i ON i.id = e.instance_id "
                                    "WHERE e.kind = 'timer fired'")).all()
    lags = sorted((_aware(at) - datetime.fromisoformat(json.loads(data)["due"])).total_seconds() for data, at in rows)
    first, last = min(_aware(r.at) for r in rows), max(_aware(r.at) for r in rows)
    print(f"all fired {took - lead - window:.1f} s after the last due time; firing rate "
          f"{n / (last - first).total_seconds():.1f} jobs/s (first to last firing)")
    print(f"lag seconds: p50 {percentile(lags, 50):.2f}  p90 {percentile(lags, 90):.2f}  "
          f"p99 {percentile(lags, 99):.2f}  max {lags[-1]:.2f}  min {lags[0]:.2f}")
    print(check(db, n, logs, "lag"))


def rate(engine: Engine, db: sa.Engine, args: argparse.Namespace, logs: Path) -> None:
    m = args.jobs
    print(f"\n== jobs per second: {m:,} due timers, workers {args.workers}, --poll {args.poll:g}")
    table = []
    for count in args.workers:
        reset(db)
        dues = [datetime.now(UTC) + timedelta(minutes=10)] * m
        print(f"{count} worker(s): fill {fill(engine, db, dues):.0f} starts/s", flush=True)
        workers = launch(args.database, count, 2 * HOURS, args.poll, logs, f"rate{count}")
        try:
            took = wait_done(db, workers, m, args.limit)
        finally:
            stop(workers)
        with db.connect() as conn:
            first, last = conn.execute(sa.text("SELECT min(at), max(at) FROM event WHERE kind = 'timer fired'")).one()
        steady = m / (_aware(last) - _aware(first)).total_seconds()
        summary = check(db, m, logs, f"rate{count}")
        print(f"  {m / took:.1f} jobs/s from launch ({took:.1f} s), {steady:.1f} jobs/s first to last firing; "
              f"{summary}", flush=True)
        table.append((count, m / took, steady, took))
    print(f"\n{'workers':>7} {'jobs/s (launch to done)':>24} {'jobs/s (first to last firing)':>30} {'seconds':>8}")
    for count, launched, steady, took in table:
        print(f"{count:>7} {launched:>24.1f} {steady:>30.1f} {took:>8.1f}")


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database", required=True, metavar="URL", help="an existing PostgreSQL database")
    parser.add_argument("--timers", type=int, default=10_000, help="timers in the lag part (0: skip it)")
    parser.add_argument("--window", type=float, default=20, help="seconds over which the lag part's timers fall due")
    parser.add_argument("--lead", type=float, default=20, help="seconds from the workers' launch to the first "
                        "due time of the lag part (they must be up by then)")
    parser.add_argument("--lag-workers", type=int, default=4, help="workers in the lag part")
    parser.add_argument("--jobs", type=int, default=2_000, help="due timers in each rate run (0: skip the part)")
    parser.add_argument("--workers", type=lambda s: [int(k) for k in s.split(",")], default=[1, 2, 4],
                        help="worker counts of the rate part, comma-separated")
    parser.add_argument("--poll", type=float, default=1, help="the workers' --poll")
    parser.add_argument("--limit", type=float, default=3_600, help="give up on a part after this many seconds")
    args = parser.parse_args()
    print(f"SpiffWorkflow {version('SpiffWorkflow')}, SQLAlchemy {version('SQLAlchemy')}, Python "
          f"{sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    engine = Engine(args.database)
    db = sa.create_engine(args.database)
    try:
        with db.connect() as conn:
            print(conn.execute(sa.text("SELECT version()")).scalar_one().split(" on ")[0])
        engine.deploy(PROCESS)
        with tempfile.TemporaryDirectory() as tmp:
            if args.timers:
                lag(engine, db, args, Path(tmp))
            if args.jobs:
                rate(engine, db, args, Path(tmp))
            for log in Path(tmp).glob("*.log"):
                odd = [line for line in log.read_text().splitlines() if not RAN.match(line)]  # skips, errors
                if odd:
                    print(f"\n{log.name}: {len(odd)} lines besides 'ran N jobs', first ones:\n" + "\n".join(odd[:10]))
    finally:
        engine.close()
        db.dispose()
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
