"""Concurrent writers on one database: a lost race is a Conflict, retrying it finishes the work, nothing is doubled."""

from __future__ import annotations

import queue
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from baton.engine import Engine
from baton.engine.errors import Conflict, Forbidden
from conftest import diagram

TIMEOUT = 30  # seconds a barrier or a thread may take before the test fails instead of hanging
PARTS = [f"t{i}" for i in range(1, 9)]
STARTS = 12


def hold(engine: Engine, point: str, barrier: threading.Barrier) -> None:
    """Make each thread's first step on `engine` wait at `point` until every party of `barrier` got there."""
    held = threading.local()

    def hook(reached: str) -> None:
        if reached == point and not getattr(held, "done", False):
            held.done = True
            barrier.wait()

    engine.hook = hook


def together(*actions: Callable[[], Any]) -> list[Any]:
    """Run every action in its own thread; each result, or the exception it raised."""
    results: list[Any] = [None] * len(actions)

    def run(i: int) -> None:
        try:
            results[i] = actions[i]()
        except BaseException as exc:  # noqa: B036 - the test inspects every exception, of any kind
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(actions))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT * 2)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    return results


def retried(action: Callable[[], Any], errors: list[BaseException], attempts: int = 200) -> Any:
    """The action's result once it gets through; every Conflict on the way is kept in `errors`."""
    for _ in range(attempts):
        try:
            return action()
        except Conflict as exc:
            errors.append(exc)
    raise AssertionError(f"still in conflict after {attempts} attempts")


def completions(engine: Engine, instance_id: Any) -> Counter[str]:
    """How often each human task of the instance was completed, by its history."""
    return Counter(e.element_id for e in engine.history(instance_id)
                   if e.kind == "completed" and e.element_id in {*PARTS, "first", "second"})


def test_two_engines_completing_the_same_task_let_one_win_and_the_other_conflict(database_url, fresh):
    """Both engines read the task and are about to write: one moves the instance on, the other gets Conflict."""
    fresh(database_url).deploy(diagram("durable_steps.bpmn"))
    instance = fresh(database_url).start("durable_steps", {"counted": 0})
    [task] = fresh(database_url).tasks(instance_id=instance.id)
    both_about_to_write = threading.Barrier(2, timeout=TIMEOUT)
    engines = [fresh(database_url), fresh(database_url)]
    for engine in engines:
        hold(engine, "before_write", both_about_to_write)

    outcomes = together(*(lambda e=engine: e.complete_task(task.id) for engine in engines))

    lost = [o for o in outcomes if isinstance(o, BaseException)]
    won = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(won) == 1 and len(lost) == 1, outcomes
    assert isinstance(lost[0], Conflict), repr(lost[0])
    assert lost[0].__cause__ is None, "the loser must see the version check, not a busy or locked database"
    assert [w.element_id for w in won[0].waiting_on] == ["second"]
    after = fresh(database_url)
    assert after.instance(instance.id).data["counted"] == 1
    assert [t.element_id for t in after.tasks()] == ["second"]
    assert completions(after, instance.id) == {"first": 1}


def test_eight_threads_completing_tasks_while_instances_start_only_ever_meet_conflict(database_url, fresh):
    """Every exception that escapes is a Conflict, retrying finishes everything, and nothing is done twice."""
    fresh(database_url).deploy(diagram("durable_parallel.bpmn"), diagram("durable_steps.bpmn"))
    parallel = fresh(database_url).start("durable_parallel", {"parts": len(PARTS)})
    parts = {t.element_id: t.id for t in fresh(database_url).tasks(instance_id=parallel.id)}
    assert sorted(parts) == PARTS
    # Two engines with four threads each: races between engines and between threads of one engine (its cache).
    engines = [fresh(database_url), fresh(database_url)]
    starter = fresh(database_url)
    all_about_to_write = threading.Barrier(len(PARTS) + 1, timeout=TIMEOUT)  # eight completions and one start
    for engine in engines:
        hold(engine, "before_write", all_about_to_write)
    started: queue.Queue[Any] = queue.Queue()
    errors: list[BaseException] = []
    first_tries: list[str] = []

    def start_instances() -> None:
        all_about_to_write.wait()
        for n in range(STARTS):
            started.put(retried(lambda n=n: starter.start("durable_steps", {"counted": 0, "n": n}), errors).id)
        for _ in PARTS:
            started.put(None)

    def work(i: int) -> None:
        engine = engines[i % 2]
        try:
            engine.complete_task(parts[PARTS[i]])
            first_tries.append("won")
        except Conflict as exc:
            errors.append(exc)
            first_tries.append("conflict")
            retried(lambda: engine.complete_task(parts[PARTS[i]]), errors)
        while (instance_id := started.get(timeout=TIMEOUT)) is not None:
            while tasks := engine.tasks(instance_id=instance_id):
                retried(lambda: engine.complete_task(tasks[0].id), errors)

    outcomes = together(start_instances, *(lambda i=i: work(i) for i in range(len(PARTS))))

    crashed = [o for o in outcomes if isinstance(o, BaseException)]
    assert not [e for e in errors + crashed if not isinstance(e, Conflict)], errors + crashed
    assert sorted(first_tries) == ["conflict"] * 7 + ["won"], "all eight read one version: exactly one write wins"
    after = fresh(database_url)
    assert after.tasks() == []
    assert after.instance(parallel.id).status == "complete"
    assert completions(after, parallel.id) == {part: 1 for part in PARTS}
    steps = after.instances(process_id="durable_steps", limit=STARTS + 1)
    assert sorted(i.data["n"] for i in steps) == list(range(STARTS))
    for instance in steps:
        assert (instance.status, instance.data["counted"], instance.waiting_on) == ("complete", 1, ())
        assert completions(after, instance.id) == {"first": 1, "second": 1}


class Clerks:
    """Everyone is a clerk; the first lookup also runs `meanwhile`, so that another user acts at that moment."""

    def __init__(self, meanwhile: Callable[[], Any] | None = None) -> None:
        self.meanwhile = meanwhile

    def groups_of(self, user: str) -> list[str]:
        if self.meanwhile is not None:
            action, self.meanwhile = self.meanwhile, None
            action()
        return ["clerks"]


@pytest.mark.parametrize("action", ["claim", "complete_task"])
def test_a_task_claimed_by_someone_else_meanwhile_is_neither_reclaimed_nor_completed(database_url, fresh, action):
    """Bob claims the group task after Ann's engine read it but before it loaded the instance: Ann's action fails."""
    fresh(database_url).deploy(diagram("durable_claim.bpmn"))
    instance = fresh(database_url).start("durable_claim")
    [task] = fresh(database_url).tasks(instance_id=instance.id)
    bobs = Engine(database_url, directory=Clerks())
    # Ann's engine asks the directory for her groups between reading the task and loading its instance.
    anns = Engine(database_url, directory=Clerks(meanwhile=lambda: bobs.claim(task.id, user="bob")))
    try:
        with pytest.raises((Conflict, Forbidden)):
            getattr(anns, action)(task.id, user="ann")
    finally:
        anns.close()
        bobs.close()
    after = fresh(database_url)
    assert [(t.id, t.assignee) for t in after.tasks()] == [(task.id, "bob")]
    assert [(e.kind, e.user) for e in after.history(instance.id) if e.user] == [("claimed", "bob")]



def test_a_change_between_reading_a_task_and_its_state_is_read_again(database_url, fresh, monkeypatch):
    """The task row and the state are two reads: when another change comes in between, both are read again."""
    from baton.engine import store

    first, second = fresh(database_url), fresh(database_url)
    first.deploy(diagram("durable_steps.bpmn"))
    instance = first.start("durable_steps", {"counted": 0})
    [task] = first.tasks(instance_id=instance.id)
    second.start_form("durable_steps")  # the spec is cached: reading it would begin a read transaction on SQLite
    read, versions = store.state, []

    def changed_meanwhile(conn: Any, instance_id: Any, version: int) -> str | None:
        versions.append(version)
        if len(versions) == 1:
            first.reassign(task.id, "someone", user="admin")
        return read(conn, instance_id, version)

    monkeypatch.setattr(store, "state", changed_meanwhile)
    done = second.complete_task(task.id)  # `second` has no workflow cached: it reads the row, then the state
    assert versions == [1, 2] and [w.element_id for w in done.waiting_on] == ["second"]
    events = [(e.kind, e.element_id) for e in second.history(instance.id)]
    assert events.index(("reassigned", "first")) < events.index(("completed", "first"))
