"""Durability: a step killed at any point leaves the last committed wait state, and data survives the database."""

from __future__ import annotations

import copy
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from datetime import time as time_of_day
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest
import sqlalchemy as sa

from baton.engine import Engine, InstanceInfo, TaskInfo
from baton.engine.models import Instance
from conftest import diagram

POINTS = ("loaded", "before_write", "written")
SEEDS = (3, 17, 2024)

# Run in a child process: complete one task and die by SIGKILL at `point`, `delay` seconds after reaching it.
CHILD = """
import os, signal, sys, time
from baton.engine import Engine

url, task_id, point, delay = sys.argv[1:]
engine = Engine(url)

def kill(reached):
    if reached == point:
        time.sleep(float(delay))
        os.kill(os.getpid(), signal.SIGKILL)

engine.hook = kill
engine.complete_task(task_id)
sys.exit("the step ended without being killed")
"""

# Run in a child process: start an instance and die by SIGKILL inside the write transaction.
STARTER = """
import os, signal, sys
from baton.engine import Engine

engine = Engine(sys.argv[1])
engine.hook = lambda reached: os.kill(os.getpid(), signal.SIGKILL) if reached == "written" else None
engine.start("durable_steps", {"counted": 0})
sys.exit("the start ended without being killed")
"""

# Run in a child process: announce the step, run it, and wait to be killed whether it finished or not.
STEPPER = """
import sys
from baton.engine import Engine

url, task_id = sys.argv[1:]
engine = Engine(url)
print("stepping", flush=True)
engine.complete_task(task_id)
print("done", flush=True)
sys.stdin.read()
"""

DATA = {
    "order": {
        "lines": [{"sku": "desk", "price": Decimal("19.99"), "qty": 2},
                  {"sku": "lamp", "price": Decimal("0.50"), "qty": 3, "tags": ["light", ["warm", "dim"]]}],
        "customer": {"name": "Zoë Ünal ✓", "since": date(2019, 12, 31), "limits": {"credit": Decimal("1E+4")}},
    },
    "amount": Decimal("1234.5600"),
    "due": date(2024, 2, 29),
    "received": datetime(2024, 3, 1, 12, 30, 15, 123456, tzinfo=UTC),
    "local": datetime(2024, 3, 1, 14, 30, tzinfo=timezone(timedelta(hours=2))),
    "matrix": [[1, 2], [], [{"deep": [None, True, 0.25]}]],
    "empty": {},
}


def prepared(url: str, fresh: Callable[[str], Engine]) -> tuple[InstanceInfo, TaskInfo]:
    fresh(url).deploy(diagram("durable_steps.bpmn"))
    instance = fresh(url).start("durable_steps", {"counted": 0})
    [task] = fresh(url).tasks(instance_id=instance.id)
    return instance, task


def version(url: str, instance_id: UUID) -> int:
    """The instance row's version counter, read straight from the table: the facade does not show it."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.select(Instance.version).where(Instance.id == instance_id)).scalar_one()
    finally:
        engine.dispose()


def snapshot(url: str, engine: Engine, instance_id: UUID) -> dict[str, Any]:
    """What the instance row, its projections and its history say about where the instance is."""
    info = engine.instance(instance_id)
    return {"status": info.status, "version": version(url, instance_id), "data": info.data,
            "waiting_on": [(w.kind, w.element_id) for w in info.waiting_on],
            "inbox": [(t.element_id, t.id) for t in engine.tasks()],
            "history": [(e.kind, e.element_id, e.user, e.data) for e in engine.history(instance_id)]}


def run_child(source: str, *args: str, **options: Any) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", source, *args], text=True, **options)


def assert_killed(source: str, *args: str) -> None:
    """Run a child that kills itself: it must die by SIGKILL, not end or fail on its own."""
    child = run_child(source, *args, stderr=subprocess.PIPE)
    _, errors = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL, errors


def at_first(url: str, engine: Engine, instance_id: UUID, task_id: UUID) -> None:
    """The instance waits at its first task, and every projection says so."""
    state = snapshot(url, engine, instance_id)
    assert (state["status"], state["data"]["counted"]) == ("active", 0)
    assert state["waiting_on"] == [("task", "first")]
    assert state["inbox"] == [("first", task_id)]


def at_second(url: str, engine: Engine, instance_id: UUID, version: int) -> None:
    """The step happened exactly once: the instance waits at its second task, and every projection says so."""
    state = snapshot(url, engine, instance_id)
    assert (state["status"], state["version"], state["data"]["counted"]) == ("active", version, 1)
    assert state["waiting_on"] == [("task", "second")]
    assert [element for element, _ in state["inbox"]] == ["second"]
    assert [h[:2] for h in state["history"]].count(("completed", "first")) == 1


def finish(url: str, fresh: Callable[[str], Engine], instance_id: UUID) -> None:
    [second] = fresh(url).tasks(instance_id=instance_id)
    assert fresh(url).complete_task(second.id).status == "complete"


def killed_step_rolls_back(url: str, fresh: Callable[[str], Engine], point: str, delay: float) -> None:
    instance, task = prepared(url, fresh)
    before = snapshot(url, fresh(url), instance.id)

    assert_killed(CHILD, url, str(task.id), point, str(delay))

    engine = fresh(url)
    assert snapshot(url, engine, instance.id) == before
    at_first(url, engine, instance.id, task.id)
    again = fresh(url).complete_task(task.id)
    assert [w.element_id for w in again.waiting_on] == ["second"]
    at_second(url, fresh(url), instance.id, before["version"] + 1)
    finish(url, fresh, instance.id)


@pytest.mark.parametrize("point", POINTS)
def test_a_step_killed_at_a_named_point_leaves_the_last_wait_state(sqlite_url, fresh, point):
    """SIGKILL after loading, before writing, or inside the write transaction: nothing of the step is kept."""
    killed_step_rolls_back(sqlite_url, fresh, point, 0)


def _random_kills() -> list[Any]:
    cases = []
    for seed in SEEDS:
        rng = random.Random(seed)
        point, delay = rng.choice(POINTS), round(rng.uniform(0, 0.05), 3)
        cases.append(pytest.param(point, delay, id=f"seed{seed}-{point}-{delay}"))
    return cases


@pytest.mark.parametrize(("point", "delay"), _random_kills())
def test_a_step_killed_at_a_random_point_after_a_random_pause_leaves_the_last_wait_state(sqlite_url, fresh, point,
                                                                                           delay):
    """The same at a point and after a pause drawn from fixed seeds."""
    killed_step_rolls_back(sqlite_url, fresh, point, delay)


def test_a_step_killed_inside_its_postgres_transaction_is_rolled_back(postgres_url, fresh):
    """The row was updated but not committed when the client died: the server throws the update away."""
    killed_step_rolls_back(postgres_url, fresh, "written", 0)


def test_a_start_killed_inside_its_write_leaves_no_instance(database_url, fresh):
    """The instance row was inserted but not committed: neither it nor any task of it is seen afterwards."""
    fresh(database_url).deploy(diagram("durable_steps.bpmn"))
    assert_killed(STARTER, database_url)
    engine = fresh(database_url)
    assert (engine.instances(), engine.tasks()) == ([], [])
    instance = engine.start("durable_steps", {"counted": 0})
    assert [t.element_id for t in fresh(database_url).tasks(instance_id=instance.id)] == ["first"]


@pytest.mark.parametrize("seed", (1, 17, 2))  # on a fast machine: killed before, during and after the write
def test_a_step_killed_at_a_random_moment_leaves_one_of_its_two_wait_states(sqlite_url, fresh, seed):
    """Killed from outside at any moment, the instance is wholly before or wholly after the step, never between."""
    instance, task = prepared(sqlite_url, fresh)
    before = snapshot(sqlite_url, fresh(sqlite_url), instance.id)
    child = run_child(STEPPER, sqlite_url, str(task.id), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert child.stdout.readline() == "stepping\n"
        time.sleep(random.Random(seed).uniform(0, 0.1))   # not a synchronization: it picks the moment of the kill
        child.kill()
        assert child.wait(60) == -signal.SIGKILL
    finally:
        child.kill()
        child.wait()
        child.stdin.close()
        child.stdout.close()

    engine = fresh(sqlite_url)
    after = snapshot(sqlite_url, engine, instance.id)
    if after["version"] == before["version"]:
        assert after == before
        at_first(sqlite_url, engine, instance.id, task.id)
        fresh(sqlite_url).complete_task(task.id)
    at_second(sqlite_url, fresh(sqlite_url), instance.id, before["version"] + 1)
    finish(sqlite_url, fresh, instance.id)


def typed(value: Any) -> Any:
    """`value` with the exact type and text of every leaf, so that Decimal('2.50') == 2.5 no longer hides a change."""
    if isinstance(value, dict):
        return {key: typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [typed(item) for item in value]
    return type(value), repr(value)


def test_nested_decimal_and_date_data_survives_the_database(database_url, fresh):
    """Start data, a completed task's data and a script's result come back with the same values and types."""
    fresh(database_url).deploy(diagram("durable_data.bpmn"))
    instance = fresh(database_url).start("durable_data", copy.deepcopy(DATA))
    expected = {**DATA, "starter": None}
    assert typed(fresh(database_url).instance(instance.id).data) == typed(expected)

    [edit] = fresh(database_url).tasks(instance_id=instance.id)
    submitted = {"reviewed_on": date(2024, 3, 4), "fees": [Decimal("0.10"), {"vat": Decimal("2.50")}]}
    fresh(database_url).complete_task(edit.id, copy.deepcopy(submitted))
    expected |= submitted | {"total": Decimal("41.48")}
    waiting = fresh(database_url).instance(instance.id)
    assert [w.element_id for w in waiting.waiting_on] == ["check"]
    assert typed(waiting.data) == typed(expected)

    [check] = fresh(database_url).tasks(instance_id=instance.id)
    fresh(database_url).complete_task(check.id)
    final = fresh(database_url).instance(instance.id)
    assert final.status == "complete"
    assert typed(final.data) == typed(expected)
    history = fresh(database_url).history(instance.id)
    assert typed(history[0].data) == typed({**DATA, "starter": None})
    assert typed(next(e.data for e in history if e.element_id == "edit")) == typed(submitted)


def test_a_time_of_day_made_by_a_script_survives_the_database(sqlite_url, fresh):
    """The sandbox lets a script make a datetime.time; the store must keep it like a date."""
    fresh(sqlite_url).deploy(diagram("durable_clock.bpmn"))
    instance = fresh(sqlite_url).start("durable_clock", {"at": datetime(2024, 3, 1, 9, 30, tzinfo=UTC)})
    assert typed(fresh(sqlite_url).instance(instance.id).data["opens"]) == typed(time_of_day(9, 30))


def test_a_script_changing_a_list_leaves_the_start_history_and_the_callers_data_alone(database_url, fresh):
    """`items.append(3)` in a script changes neither the caller's list nor what history says the instance began with."""
    fresh(database_url).deploy(diagram("durable_branches.bpmn"))
    data = {"items": [1, 2], "order": {"lines": [{"sku": "a", "qty": 1}]}}
    instance = fresh(database_url).start("durable_branches", data)
    assert data == {"items": [1, 2], "order": {"lines": [{"sku": "a", "qty": 1}]}}
    [started] = [e for e in fresh(database_url).history(instance.id) if e.kind == "started"]
    assert started.data == {**data, "starter": None}


def test_completing_a_task_copies_the_submitted_data_instead_of_keeping_it(database_url, fresh):
    """A caller that changes its list after completing a task changes nothing in the instance or its history."""
    fresh(database_url).deploy(diagram("durable_steps.bpmn"))
    engine = fresh(database_url)  # the same engine throughout: its cached workflow must not hold the caller's list
    instance = engine.start("durable_steps", {"counted": 0})
    [first] = engine.tasks(instance_id=instance.id)
    notes = ["checked"]
    engine.complete_task(first.id, {"notes": notes})
    notes.append("changed by the caller afterwards")
    [second] = engine.tasks(instance_id=instance.id)
    engine.complete_task(second.id)
    assert engine.instance(instance.id).data["notes"] == ["checked"]
    assert fresh(database_url).instance(instance.id).data["notes"] == ["checked"]
    assert [e.data for e in engine.history(instance.id) if e.element_id == "first"] == [{"notes": ["checked"]}]


def test_a_parallel_branch_keeps_its_data_when_another_branch_changes_a_nested_list(database_url, fresh):
    """Branch 'look' waits while branch 'grow' changes `order["lines"]` and joins: 'look' still sees the old lines."""
    fresh(database_url).deploy(diagram("durable_branches.bpmn"))
    data = {"items": [1, 2], "order": {"lines": [{"sku": "a", "qty": 1}]}}
    instance = fresh(database_url).start("durable_branches", copy.deepcopy(data))
    [look] = [t for t in fresh(database_url).tasks(instance_id=instance.id) if t.element_id == "look"]
    fresh(database_url).complete_task(look.id)
    [grown] = fresh(database_url).tasks(instance_id=instance.id)
    final = fresh(database_url).complete_task(grown.id)
    assert final.status == "complete"
    assert (final.data["seen_items"], final.data["seen_lines"]) == (data["items"], data["order"]["lines"])


def test_instance_data_is_kept_while_a_parallel_join_waits(database_url, fresh):
    """After one of eight parallel tasks is done, the instance's data is still its data."""
    fresh(database_url).deploy(diagram("durable_parallel.bpmn"))
    instance = fresh(database_url).start("durable_parallel", {"parts": 8}, user="sam")
    first = fresh(database_url).tasks(instance_id=instance.id)[0]
    fresh(database_url).complete_task(first.id)
    assert fresh(database_url).instance(instance.id).data == {"parts": 8, "starter": "sam"}
