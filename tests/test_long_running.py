"""Long-running instances: 10,000 loop passes finish correctly, and state stays bounded by what is still active."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from baton.engine import Engine
from baton.engine.clock import clock
from baton.engine.models import Instance
from bpmn_builder import process

PASSES = 10_000
FIXTURE = Path(__file__).parent / "data" / "state_format_1.db"

AGAIN = ('<bpmn:exclusiveGateway id="more" default="flow_done"/><bpmn:endEvent id="end"/>'
         '<bpmn:sequenceFlow id="flow_again" sourceRef="more" targetRef="{back}">'
         '<bpmn:conditionExpression>n &lt; limit</bpmn:conditionExpression></bpmn:sequenceFlow>'
         '<bpmn:sequenceFlow id="flow_done" sourceRef="more" targetRef="end"/>')
COUNT = '<bpmn:scriptTask id="count"><bpmn:script>n = n + 1</bpmn:script></bpmn:scriptTask>'
WORK = '<bpmn:userTask id="work" name="Work" camunda:assignee="ann"/>'
TIMER = ('<bpmn:intermediateCatchEvent id="wait"><bpmn:timerEventDefinition><bpmn:timeDuration>PT1M'
         '</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>')
SUB = ('<bpmn:subProcess id="sub"><bpmn:startEvent id="s_start"/>'
       '<bpmn:userTask id="inner" name="Inner" camunda:assignee="ann"/>'
       '<bpmn:scriptTask id="inc"><bpmn:script>n = n + 1</bpmn:script></bpmn:scriptTask><bpmn:endEvent id="s_end"/>'
       '<bpmn:sequenceFlow id="s1" sourceRef="s_start" targetRef="inner"/>'
       '<bpmn:sequenceFlow id="s2" sourceRef="inner" targetRef="inc"/>'
       '<bpmn:sequenceFlow id="s3" sourceRef="inc" targetRef="s_end"/></bpmn:subProcess>')

# Each loops until n reaches `limit`; the element counted once per pass is named in LOOPED.
DIAGRAMS = {
    "user_loop": process('<bpmn:startEvent id="start"/>', WORK, COUNT, AGAIN.format(back="work"),
                         flows="start>work work>count count>more", process_id="user_loop"),
    "timer_loop": process('<bpmn:startEvent id="start"/>', TIMER, COUNT, AGAIN.format(back="wait"),
                          flows="start>wait wait>count count>more", process_id="timer_loop"),
    "script_loop": process('<bpmn:startEvent id="start"/>', COUNT, AGAIN.format(back="count"),
                           flows="start>count count>more", process_id="script_loop"),
    "sub_loop": process('<bpmn:startEvent id="start"/>', SUB, AGAIN.format(back="sub"),
                        flows="start>sub sub>more", process_id="sub_loop"),
    "parallel_loop": process(
        '<bpmn:startEvent id="start"/>', '<bpmn:parallelGateway id="fork"/>', WORK,
        '<bpmn:scriptTask id="side"><bpmn:script>seen = n</bpmn:script></bpmn:scriptTask>',
        '<bpmn:parallelGateway id="join"/>', COUNT, AGAIN.format(back="fork"),
        flows="start>fork fork>work fork>side work>join side>join join>count count>more", process_id="parallel_loop"),
}
LOOPED = {"user_loop": "work", "timer_loop": "wait", "script_loop": "count", "sub_loop": "inner",
          "parallel_loop": "work"}


def step(engine: Engine, instance_id: Any) -> bool:
    """Do whatever the instance waits on (a task or a due timer); False once nothing is left to do."""
    tasks = engine.tasks(instance_id=instance_id)
    if tasks:
        engine.complete_task(tasks[0].id)
        return True
    if engine.instance(instance_id).status != "active":
        return False
    for _ in range(60 * 24):  # a timer: move the clock on until it is due (a fixture's timers lie ahead of it)
        clock.advance(timedelta(minutes=1, seconds=1))
        if engine.run_due_jobs():
            return True
    return False


def run_out(url: str, instance_id: Any, *, reopen_every: int = 2_500) -> int:
    """Drive an instance to its end, with a fresh Engine on the same database now and then; how many steps."""
    engine, steps = Engine(url), 0
    try:
        while step(engine, instance_id):
            steps += 1
            if steps % reopen_every == 0:
                engine.close()
                engine = Engine(url)
    finally:
        engine.close()
    return steps


def state_size(url: str, instance_id: Any) -> int:
    engine = Engine(url)
    try:
        with engine.db.reading() as conn:
            return len(conn.execute(select(Instance.state).where(Instance.id == instance_id)).scalar_one())
    finally:
        engine.close()


def build_fixture(url: str) -> dict[str, str]:
    """How tests/data/state_format_1.db was made, with the code before pruning: instances a few passes in."""
    engine = Engine(url)
    engine.deploy(*DIAGRAMS.values())
    made = {}
    for name in DIAGRAMS:
        instance = engine.start(name, {"n": 0, "limit": 7})
        for _ in range(3):
            step(engine, instance.id)
        made[name] = str(instance.id)
    engine.close()
    return made


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", sorted(DIAGRAMS))
def test_ten_thousand_passes_finish_with_every_pass_in_history(sqlite_url, name):
    engine = Engine(sqlite_url)
    engine.deploy(DIAGRAMS[name])
    instance = engine.start(name, {"n": 0, "limit": PASSES})
    engine.close()
    run_out(sqlite_url, instance.id)
    engine = Engine(sqlite_url)
    done = engine.instance(instance.id)
    assert (done.status, done.data["n"]) == ("complete", PASSES)
    assert engine.activity(instance.id)[LOOPED[name]] == PASSES
    assert engine.activity(instance.id).get("end") == 1
    engine.close()


@pytest.mark.parametrize("name", ["user_loop", "parallel_loop", "sub_loop"])
def test_stored_state_does_not_grow_with_passes(sqlite_url, name):
    engine = Engine(sqlite_url)
    engine.deploy(DIAGRAMS[name])
    instance = engine.start(name, {"n": 0, "limit": 10**9})
    sizes = {}
    for passes in range(1, 401):
        engine.complete_task(engine.tasks(instance_id=instance.id)[0].id)
        if passes in (10, 400):
            sizes[passes] = state_size(sqlite_url, instance.id)
    engine.close()
    assert sizes[400] <= sizes[10] * 1.1, sizes


def test_instances_saved_before_pruning_load_and_finish(tmp_path):
    path = tmp_path / "old.db"
    shutil.copy(FIXTURE, path)
    url = f"sqlite:///{path}"
    engine = Engine(url)
    instances = {i.process_id: i for i in engine.instances()}
    engine.close()
    assert sorted(instances) == sorted(DIAGRAMS)
    for name, instance in instances.items():
        run_out(url, instance.id)
        engine = Engine(url)
        done = engine.instance(instance.id)
        assert (done.status, done.data["n"]) == ("complete", 7), name
        assert engine.activity(instance.id)[LOOPED[name]] == 7, name
        engine.close()
