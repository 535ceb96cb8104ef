"""Throughput of durable Baton instances against the same process run by SpiffWorkflow in memory.

Process bench/throughput.bpmn: start -> script `total = amount * 2` -> three user tasks -> end.
  durable    baton.engine.Engine on an SQLite file: `start`, then three times `tasks(instance_id=...)` (the inbox a
             user would list) and `complete_task`; each change is a transaction writing state, projections, history.
  in-memory  BpmnWorkflow on the same parsed spec with PythonScriptEngine(environment=SandboxEnvironment(Sandbox())),
             so the script runs through the same sandbox: do_engine_steps, then each ready user task run() and
             do_engine_steps().
Both are warmed up (sandbox children spawned, specs cached), then measured in interleaved rounds so that noise on
the machine hits both alike. The ratio durable/in-memory is the share of SpiffWorkflow's own speed that survives
durability (target: >= 0.5, at first >= 0.3); it is steadier than the absolute figures on a shared machine. The
durable figure is given with and without the time spent in `engine.tasks`, from the same run. One more durable
round then runs under cProfile: SQL statements per call, the top functions by cumulative time, and the time split
into buckets by the Baton function that caused it (nearest marked caller, see BUCKETS), with SQLite's own share of
each.

Run: .venv/bin/python bench/throughput.py [--n 300] [--rounds 3]
"""
from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile
import time
from collections import defaultdict
from importlib.metadata import version
from pathlib import Path

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import event

import baton.engine as engine_package
from baton.engine import Engine, parsing
from baton.engine.scripting import Sandbox, SandboxEnvironment

BPMN = Path(__file__).with_name("throughput.bpmn")
PROCESS = "throughput"

CALLS = {"start": 1, "tasks": 3, "complete_task": 3}         # Engine calls made per instance
current = {"call": ""}                                       # the Engine call under way, for counting statements


def durable(engine: Engine, n: int) -> dict[str, float]:
    """Run n instances to completion; the seconds spent in each kind of Engine call."""
    spent = dict.fromkeys(CALLS, 0.0)

    def call(name: str, *args, **kwargs):
        current["call"] = name
        began = time.perf_counter()
        result = getattr(engine, name)(*args, **kwargs)
        spent[name] += time.perf_counter() - began
        return result

    for i in range(n):
        info = call("start", PROCESS, {"amount": i})
        for _ in range(3):
            task = call("tasks", instance_id=info.id)[0]
            info = call("complete_task", task.id)
        assert info.status == "complete" and info.data["total"] == 2 * i, info
    return spent


def in_memory(spec, subprocesses, script_engine: PythonScriptEngine, n: int) -> float:
    began = time.perf_counter()
    for i in range(n):
        workflow = BpmnWorkflow(spec, subprocesses, script_engine=script_engine)
        workflow.task_tree.data.update({"amount": i})
        workflow.do_engine_steps()
        for _ in range(3):
            workflow.get_tasks(state=TaskState.READY, manual=True)[0].run()
            workflow.do_engine_steps()
        assert workflow.is_completed() and workflow.data["total"] == 2 * i
    return time.perf_counter() - began


# Where a function's time goes: to the bucket of its nearest marked caller ("file:function", "file:*" for all).
BUCKETS = {
    "sandbox (script in a child process)": ["scripting.py:*"],
    "serialization (dump_state, load_state, data JSON)": ["core.py:_values", "specs.py:dump_state",
                                                          "specs.py:load_state", "store.py:dumps"],
    "SpiffWorkflow stepping and task scans (runtime.*)": ["runtime.py:*"],
    "projections (human_task, job, subscription)": ["store.py:write_projections"],
    "history events": ["store.py:write_history"],
    "instance row insert/update, incidents": ["store.py:insert_instance", "store.py:update_instance",
                                               "store.py:resolve_incidents"],
    "transactions (begin, commit, close)": ["store.py:read", "store.py:write", "store.py:reading",
                                            "store.py:writing"],
    "inbox query (engine.tasks)": ["core.py:tasks"],
    "InstanceInfo returned (instance, _instance_info)": ["core.py:instance", "core.py:_instance_info",
                                                         "rows.py:instance_info"],
    "task row, definition row, _load": ["core.py:_on_task", "core.py:_read", "core.py:_load", "core.py:_definition"],
    "other": ["core.py:_change"],
}
MARKS = {mark: bucket for bucket, marks in BUCKETS.items() for mark in marks}
ENGINE_DIR = str(Path(engine_package.__file__).parent)


def marker(func: tuple) -> str | None:
    filename, _, name = func
    if not filename.startswith(ENGINE_DIR):
        return None
    base = Path(filename).name
    return MARKS.get(f"{base}:{name}") or MARKS.get(f"{base}:*")


def attribution(stats: pstats.Stats) -> dict[tuple, dict[str, float]]:
    """Which buckets each function's own time belongs to: a marked function's to its bucket, any other's to its
    callers' buckets in proportion to the time each caller spent in it (iterated to a fixed point)."""
    shares = {f: {b: 1.0} for f in stats.stats if (b := marker(f))}
    fixed = set(shares)
    for _ in range(200):
        changed = False
        for f, (*_, callers) in stats.stats.items():
            known = [(c, edge[3]) for c, edge in callers.items() if c != f and c in shares]
            if f in fixed or (callers and not known):
                continue
            dist = defaultdict(float, {} if known else {"other": 1.0})
            weight = sum(w for _, w in known) or 1.0
            for caller, w in known:
                for bucket, part in shares[caller].items():
                    dist[bucket] += part * w / weight
            old = shares.get(f, {})
            if any(abs(dist[b] - old.get(b, 0.0)) > 1e-9 for b in {*dist, *old}):
                shares[f], changed = dict(dist), True
        if not changed:
            break
    return shares


def buckets(stats: pstats.Stats) -> tuple[dict[str, float], dict[str, float]]:
    """Seconds per bucket, and the part of them spent inside SQLite itself."""
    shares = attribution(stats)
    spent: dict[str, float] = defaultdict(float)
    sqlite: dict[str, float] = defaultdict(float)
    for f, (_, _, own_time, _, _) in stats.stats.items():
        for bucket, part in shares.get(f, {"other": 1.0}).items():
            spent[bucket] += own_time * part
            if f[0] == "~" and "sqlite3." in f[2]:
                sqlite[bucket] += own_time * part
    return spent, sqlite


def profile(engine: Engine, n: int) -> None:
    statements = dict.fromkeys(CALLS, 0)

    def count(*_args) -> None:
        statements[current["call"]] += 1

    event.listen(engine.db.engine, "before_cursor_execute", count)
    profiler = cProfile.Profile()
    profiler.enable()
    durable(engine, n)
    profiler.disable()
    event.remove(engine.db.engine, "before_cursor_execute", count)
    stats = pstats.Stats(profiler, stream=sys.stdout)
    total = sum(v[2] for v in stats.stats.values())
    per_call = ", ".join(f"{name} {statements[name] / n / k:.1f}" for name, k in CALLS.items())
    print(f"\n== profile of one durable round: {n} instances, {total:.2f} s under cProfile")
    print(f"SQL statements per instance {sum(statements.values()) / n:.1f}; per call: {per_call} (BEGIN counted)")
    stats.strip_dirs().sort_stats("cumulative").print_stats(20)
    spent, sqlite = buckets(pstats.Stats(profiler))
    print(f"{'bucket (by the Baton function that caused the time)':52} {'seconds':>8} {'share':>6} {'in SQLite':>10}")
    for bucket, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):
        print(f"{bucket:52} {seconds:8.3f} {seconds / total:6.1%} {sqlite.get(bucket, 0.0):10.3f}")
    print(f"{'SQL execution inside SQLite, all buckets':52} {sum(sqlite.values()):8.3f} "
          f"{sum(sqlite.values()) / total:6.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=300, help="instances per round")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds of each kind")
    args = parser.parse_args()
    print(f"engine {Path(engine_package.__file__).parent}, SpiffWorkflow {version('SpiffWorkflow')}, "
          f"SQLAlchemy {version('SQLAlchemy')}, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f}; {args.n} instances x {args.rounds} rounds")
    sandbox = Sandbox()
    script_engine = PythonScriptEngine(environment=SandboxEnvironment(sandbox))
    parsed = parsing.parse([parsing.source(BPMN)], max_bytes=5 * 2**20, check=sandbox.check)
    assert not parsed.errors, parsed.errors
    spec, subprocesses = parsed.processes[PROCESS]

    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(f"sqlite:///{tmp}/bench.db")
        try:
            engine.deploy(BPMN)
            warm = max(10, args.n // 10)
            durable(engine, warm)
            in_memory(spec, subprocesses, script_engine, warm)
            spent, memory = dict.fromkeys(CALLS, 0.0), 0.0
            for r in range(1, args.rounds + 1):
                calls = durable(engine, args.n)
                m = in_memory(spec, subprocesses, script_engine, args.n)
                d = sum(calls.values())
                print(f"round {r}: durable {args.n / d:6.1f} inst/s ({args.n / (d - calls['tasks']):6.1f} without "
                      f"engine.tasks)   in-memory {args.n / m:6.1f} inst/s   ratio {m / d:.3f}")
                spent, memory = {k: spent[k] + calls[k] for k in CALLS}, memory + m
            total, d = args.n * args.rounds, sum(spent.values())
            ratio, ratio_without = memory / d, memory / (d - spent["tasks"])
            print(f"\ndurable:   {total / d:7.1f} instances/s counting engine.tasks, "
                  f"{total / (d - spent['tasks']):7.1f} without")
            print(f"in-memory: {total / memory:7.1f} instances/s ({memory / total * 1000:.2f} ms per instance)")
            print("durable ms per call: " + ", ".join(f"{k} {spent[k] / total / per * 1000:.2f}"
                                                      for k, per in CALLS.items()))
            print(f"ratio durable/in-memory: {ratio:.3f} ({ratio_without:.3f} without engine.tasks); "
                  f"target >= 0.5: {'met' if ratio >= 0.5 else 'NOT met'}")
            profile(engine, args.n)
        finally:
            engine.close()
            sandbox.close()
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
