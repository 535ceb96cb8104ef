"""Cost of one step of a long-running instance against the number of loop passes behind it.

Process (inline): start -> user task `work` -> script `n = n + 1` -> XOR (n < limit: back to `work`) -> end, with a
limit no run reaches. One instance on an SQLite file is driven through baton.engine.Engine by `complete_task`
(each call one transaction: state, projections, history). At K = 10, 100, 1,000 and 10,000 passes it reports
  state     bytes of the instance row's `state` column (the serialized workflow, spec left out)
  warm ms   median of R task completions with the workflow in the Engine's cache (dump + write)
  cold ms   median of R task completions with the cache dropped first (load the row + dump + write)
and the ratios K=10,000 / K=10 (issue #7's target: <= 1.5 for time and size alike). The R timed completions
at each K are passes too: K counts the passes before them.
`--no-prune` turns the pruning off (SpiffWorkflow's own tree, for comparison; keep --max at 1000 or less).

Run: .venv/bin/python bench/long_running.py [--repeat 21] [--max 10000] [--no-prune]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import select

from baton.engine import Engine, pruning
from baton.engine.models import Instance

os.environ.setdefault("TZ", "UTC")

BPMN = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="defs" targetNamespace="http://baton.bench">
<bpmn:process id="long_running" isExecutable="true">
  <bpmn:startEvent id="start"/>
  <bpmn:userTask id="work" name="Work" camunda:assignee="ann"/>
  <bpmn:scriptTask id="count"><bpmn:script>n = n + 1</bpmn:script></bpmn:scriptTask>
  <bpmn:exclusiveGateway id="more" default="done"/>
  <bpmn:endEvent id="end"/>
  <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="work"/>
  <bpmn:sequenceFlow id="f2" sourceRef="work" targetRef="count"/>
  <bpmn:sequenceFlow id="f3" sourceRef="count" targetRef="more"/>
  <bpmn:sequenceFlow id="again" sourceRef="more" targetRef="work">
    <bpmn:conditionExpression>n &lt; limit</bpmn:conditionExpression></bpmn:sequenceFlow>
  <bpmn:sequenceFlow id="done" sourceRef="more" targetRef="end"/>
</bpmn:process>
</bpmn:definitions>
"""
CHECKPOINTS = (10, 100, 1_000, 10_000)


def complete_one(engine: Engine, instance_id, cold: bool) -> float:
    task = engine.tasks(instance_id=instance_id)[0]
    if cold:
        engine._workflows.clear()  # the next call loads and deserializes the row
    began = time.perf_counter()
    engine.complete_task(task.id)
    return time.perf_counter() - began


def state_bytes(engine: Engine, instance_id) -> int:
    with engine.db.reading() as conn:
        return len(conn.execute(select(Instance.state).where(Instance.id == instance_id)).scalar_one())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=21, help="timed completions per K and mode")
    parser.add_argument("--max", type=int, default=10_000, help="largest K")
    parser.add_argument("--no-prune", action="store_true", help="SpiffWorkflow's unpruned tree, for comparison")
    args = parser.parse_args()
    if args.no_prune:
        pruning.prune = lambda workflow: 0
        pruning.GROWTH = 10**12
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        engine.deploy(BPMN)
        instance = engine.start("long_running", {"n": 0, "limit": 10**9})
        passes, rows = 0, []
        print(f"pruning {'off' if args.no_prune else 'on'}; {args.repeat} timed completions per K and mode")
        print(f"{'K':>7} {'state bytes':>12} {'warm ms':>9} {'cold ms':>9}")
        for k in (k for k in CHECKPOINTS if k <= args.max):
            while passes < k:
                engine.complete_task(engine.tasks(instance_id=instance.id)[0].id)
                passes += 1
            size = state_bytes(engine, instance.id)
            warm = statistics.median(complete_one(engine, instance.id, False) for _ in range(args.repeat))
            cold = statistics.median(complete_one(engine, instance.id, True) for _ in range(args.repeat))
            passes += 2 * args.repeat
            rows.append((k, size, warm * 1000, cold * 1000))
            print(f"{k:>7} {size:>12,} {warm * 1000:>9.2f} {cold * 1000:>9.2f}", flush=True)
        engine.close()
    first, last = rows[0], rows[-1]
    print(f"ratio K={last[0]:,}/K={first[0]}: state {last[1] / first[1]:.2f}, warm {last[2] / first[2]:.2f}, "
          f"cold {last[3] / first[3]:.2f} (target <= 1.5)")


if __name__ == "__main__":
    main()
