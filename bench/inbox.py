"""The first inbox page for a user whose groups can claim N tasks, all created through the Engine.

Run: .venv/bin/python bench/inbox.py [--n 100000] [--database URL] [--repeat 50]

Fills a database (a temporary SQLite file unless --database is given; an existing fill is reused when it already
holds N tasks) with N instances of a one-task process whose task the group `clerks` may claim, each started through
`Engine.start`, then times `Engine.inbox` the way the web inbox calls it: the first page (25) sorted by due date
with the count (which stops at 1,000+), with a text filter that matches 100 tasks, one that matches none
and one that matches every task.
Prints the median and p95 of each, in milliseconds.
Target (web issue): median <= 100 ms on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, select

from baton.engine import Engine
from baton.engine.models import HumanTask

PROCESS = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="http://baton.bench">
  <bpmn:process id="bench_inbox" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:userTask id="check" name="Check order" camunda:candidateGroups="clerks" camunda:dueDate="${due}"/>
    <bpmn:endEvent id="end"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="check"/>
    <bpmn:sequenceFlow id="f2" sourceRef="check" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
"""


class Clerks:
    """The benchmark's directory: everyone is a clerk."""

    def groups_of(self, user: str) -> set[str]:
        return {"clerks"}


def fill(engine: Engine, n: int) -> None:
    with engine.db.engine.connect() as conn:  # the inbox's own count stops at 1,000+
        have = conn.execute(select(func.count()).select_from(HumanTask)).scalar_one()
    if have >= n:
        print(f"reusing {have:,} tasks")
        return
    engine.deploy(PROCESS)
    began = time.perf_counter()
    for i in range(have, n):
        engine.start("bench_inbox", {"item": f"Order {i:06d}", "due": f"P{1 + i % 30}D"}, business_key=f"PO-{i}")
        if (i + 1) % 10_000 == 0:
            print(f"  {i + 1:,} tasks, {(i + 1 - have) / (time.perf_counter() - began):.0f} starts/s", flush=True)


def timed(call, repeat: int) -> list[float]:
    call()  # warm: statement cache, connection pool
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        call()
        times.append((time.perf_counter() - began) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--database")
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    url = args.database or f"sqlite:///{Path(tempfile.mkdtemp()) / 'inbox.db'}"
    engine = Engine(url, directory=Clerks())
    fill(engine, args.n)
    cases = {"first page, by due, with count": lambda: engine.inbox("carl", sort="due"),
             "text filter matching 100 ('order 0009')": lambda: engine.inbox("carl", text="order 0009"),
             "text filter matching none ('no such')": lambda: engine.inbox("carl", text="no such"),
             "text filter matching all ('order')": lambda: engine.inbox("carl", text="order"),
             "first page, newest first": lambda: engine.inbox("carl", sort="created")}
    print(f"{url.split(':')[0]}: {args.n:,} claimable tasks for carl (counts stop at 1,000+)")
    for name, call in cases.items():
        times = timed(call, args.repeat)
        print(f"  {name:40} median {statistics.median(times):7.1f} ms   p95 "
              f"{statistics.quantiles(times, n=20)[-1]:7.1f} ms")
    engine.close()


if __name__ == "__main__":
    main()
