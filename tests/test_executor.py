"""The job executor: every kind of timer on the engine's clock, timer starts, messages, signals and leases."""

from __future__ import annotations

from datetime import timedelta

import pytest

from baton.engine import Engine
from baton.engine.clock import clock
from baton.engine.errors import InvalidData, MessageNotCorrelated
from bpmn_builder import process

HOUR = timedelta(hours=1, seconds=1)


def timer(kind: str, value: str) -> str:
    return f"<bpmn:timerEventDefinition><bpmn:{kind}>{value}</bpmn:{kind}></bpmn:timerEventDefinition>"


def task(element_id: str, name: str | None = None) -> str:
    return f'<bpmn:userTask id="{element_id}" name="{name or element_id}" camunda:assignee="ann"/>'


def fired(engine, instance_id):
    return [e.element_id for e in engine.history(instance_id) if e.kind == "timer fired"]


def open_tasks(engine, instance_id):
    return sorted(t.element_id for t in engine.tasks(instance_id=instance_id))


@pytest.mark.parametrize("definition", [timer("timeDuration", "PT15M"), timer("timeDate", "2031-01-01T09:00:00Z"),
                                        timer("timeCycle", "R1/PT15M")])
def test_an_intermediate_timer_fires_once_when_due(engine, definition):
    engine.deploy(process('<bpmn:startEvent id="start"/>',
                          f'<bpmn:intermediateCatchEvent id="wait">{definition}</bpmn:intermediateCatchEvent>',
                          task("after"), '<bpmn:endEvent id="end"/>', flows="start>wait wait>after after>end"))
    instance = engine.start("p")
    (waiting,) = instance.waiting_on
    assert engine.run_due_jobs() == 0
    clock.advance(waiting.due - clock.now() + timedelta(seconds=1))
    assert engine.run_due_jobs() == 1
    assert engine.run_due_jobs() == 0
    assert fired(engine, instance.id) == ["wait"] and open_tasks(engine, instance.id) == ["after"]


def interrupted(definition: str, then: str, extra: str) -> bytes:
    """start -> work -> end, and a boundary event on work with `definition` leading to the task `then`."""
    return process('<bpmn:startEvent id="start"/>', task("work"),
                   f'<bpmn:boundaryEvent id="stop" attachedToRef="work">{definition}</bpmn:boundaryEvent>',
                   task(then), '<bpmn:endEvent id="end"/>', '<bpmn:endEvent id="end2"/>',
                   flows=f"start>work work>end stop>{then} {then}>end2", extra=extra)


def test_an_interrupting_boundary_timer_cancels_its_task(engine):
    engine.deploy(interrupted(timer("timeDuration", "PT1H"), "escalate", ""))
    instance = engine.start("p")
    clock.advance(HOUR)
    engine.run_due_jobs()
    assert open_tasks(engine, instance.id) == ["escalate"]


def test_a_non_interrupting_cycle_fires_each_round_and_keeps_the_task(engine):
    engine.deploy(process('<bpmn:startEvent id="start"/>', task("work"),
                          '<bpmn:boundaryEvent id="nudge" attachedToRef="work" cancelActivity="false">'
                          f'{timer("timeCycle", "R3/PT1H")}</bpmn:boundaryEvent>',
                          '<bpmn:scriptTask id="count"><bpmn:script>pass</bpmn:script></bpmn:scriptTask>',
                          '<bpmn:endEvent id="end"/>', '<bpmn:endEvent id="nudged"/>',
                          flows="start>work work>end nudge>count count>nudged"))
    instance = engine.start("p")
    for _ in range(5):
        clock.advance(HOUR)
        engine.run_due_jobs()
    assert fired(engine, instance.id) == ["nudge"] * 3
    assert open_tasks(engine, instance.id) == ["work"]
    assert engine.activity(instance.id)["count"] == 3


def test_an_event_subprocess_timer_start_fires(engine):
    engine.deploy(process('<bpmn:startEvent id="start"/>', task("work"), '<bpmn:endEvent id="end"/>',
                          '<bpmn:subProcess id="watch" triggeredByEvent="true">'
                          f'<bpmn:startEvent id="tick" isInterrupting="false">{timer("timeDuration", "PT1H")}'
                          '</bpmn:startEvent>' + task("look") + '<bpmn:endEvent id="seen"/>'
                          '<bpmn:sequenceFlow id="w1" sourceRef="tick" targetRef="look"/>'
                          '<bpmn:sequenceFlow id="w2" sourceRef="look" targetRef="seen"/></bpmn:subProcess>',
                          flows="start>work work>end"))
    instance = engine.start("p")
    clock.advance(HOUR)
    assert engine.run_due_jobs() == 1
    assert open_tasks(engine, instance.id) == ["look", "work"]


def timer_started(value: str, process_id: str = "ticking") -> bytes:
    return process(f'<bpmn:startEvent id="tick">{value}</bpmn:startEvent>', task("handle"),
                   '<bpmn:endEvent id="end"/>', flows="tick>handle handle>end", process_id=process_id)


def test_a_cycle_timer_start_creates_one_instance_per_round(engine):
    engine.deploy(timer_started(timer("timeCycle", "R3/PT1H")))
    assert engine.run_due_jobs() == 0 and engine.job_status().scheduled == 1
    for _ in range(5):
        clock.advance(HOUR)
        engine.run_due_jobs()
    started = engine.instances(process_id="ticking")
    assert len(started) == 3 and {i.status for i in started} == {"active"}
    assert all(open_tasks(engine, i.id) == ["handle"] for i in started)
    assert engine.job_status().scheduled == 0


def test_a_timer_start_after_downtime_fires_once_and_goes_on_from_now(engine):
    engine.deploy(timer_started(timer("timeCycle", "R/P1D")))
    clock.advance(timedelta(days=10, minutes=1))  # nobody ran the worker for ten days
    assert engine.run_due_jobs() == 1
    assert engine.run_due_jobs() == 0
    clock.advance(timedelta(days=1))
    assert engine.run_due_jobs() == 1
    assert len(engine.instances(process_id="ticking")) == 2


def test_a_new_version_replaces_the_schedule(engine):
    engine.deploy(timer_started(timer("timeCycle", "R/PT1H")))
    engine.deploy(timer_started(timer("timeDate", "2030-06-01T08:00:00Z")))
    assert engine.job_status().scheduled == 1
    clock.advance(timedelta(hours=3))
    engine.run_due_jobs()
    assert engine.instances(process_id="ticking") == []


def test_overdue_timers_fire_once_each_after_downtime(engine):
    engine.deploy(process('<bpmn:startEvent id="start"/>',
                          f'<bpmn:intermediateCatchEvent id="wait">{timer("timeDuration", "PT1M")}'
                          '</bpmn:intermediateCatchEvent>', task("after"), '<bpmn:endEvent id="end"/>',
                          flows="start>wait wait>after after>end"))
    started = [engine.start("p").id for _ in range(30)]
    clock.advance(timedelta(days=3))
    while engine.run_due_jobs():
        pass
    assert all(fired(engine, i) == ["wait"] for i in started)


MESSAGES = '<bpmn:message id="paid" name="payment received"/><bpmn:message id="cancel" name="order cancelled"/>'


def waits_for(catch: str, flows: str) -> bytes:
    return process('<bpmn:startEvent id="start"/>', catch, task("ship"), '<bpmn:endEvent id="end"/>',
                   flows=flows, extra=MESSAGES)


CATCHERS = {
    "catch event": waits_for('<bpmn:intermediateCatchEvent id="wait"><bpmn:messageEventDefinition messageRef="paid"/>'
                             '</bpmn:intermediateCatchEvent>', "start>wait wait>ship ship>end"),
    "receive task": waits_for('<bpmn:receiveTask id="wait" messageRef="paid"/>', "start>wait wait>ship ship>end"),
    "event-based gateway": waits_for(
        '<bpmn:eventBasedGateway id="gw"/><bpmn:intermediateCatchEvent id="wait"><bpmn:messageEventDefinition '
        'messageRef="paid"/></bpmn:intermediateCatchEvent><bpmn:intermediateCatchEvent id="later">'
        f'{timer("timeDuration", "P7D")}</bpmn:intermediateCatchEvent><bpmn:endEvent id="gave_up"/>',
        "start>gw gw>wait gw>later later>gave_up wait>ship ship>end"),
}


@pytest.mark.parametrize("kind", CATCHERS)
def test_a_message_reaches_the_waiting_instance_with_its_payload(engine, kind):
    engine.deploy(CATCHERS[kind])
    instance = engine.start("p", business_key="PO-1")
    delivery = engine.correlate_message("payment received", {"amount": 80}, business_key="PO-1")
    assert (delivery.outcome, delivery.instance_id) == ("delivered", instance.id)
    after = engine.instance(instance.id)
    assert after.data["amount"] == 80 and open_tasks(engine, instance.id) == ["ship"]
    with pytest.raises(MessageNotCorrelated):
        engine.correlate_message("payment received", business_key="PO-1")


def test_a_message_boundary_event_interrupts_the_task(engine):
    engine.deploy(interrupted('<bpmn:messageEventDefinition messageRef="cancel"/>', "refund", MESSAGES))
    instance = engine.start("p", business_key="PO-2")
    engine.correlate_message("order cancelled", business_key="PO-2")
    assert open_tasks(engine, instance.id) == ["refund"]


def test_a_message_start_event_starts_an_instance(engine):
    engine.deploy(process('<bpmn:startEvent id="ordered"><bpmn:messageEventDefinition messageRef="paid"/>'
                          '</bpmn:startEvent>', task("ship"), '<bpmn:endEvent id="end"/>',
                          flows="ordered>ship ship>end", extra=MESSAGES))
    delivery = engine.correlate_message("payment received", {"amount": 12}, business_key="PO-9")
    started = engine.instance(delivery.instance_id)
    assert delivery.outcome == "started" and started.business_key == "PO-9" and started.data["amount"] == 12
    assert open_tasks(engine, started.id) == ["ship"]


CORRELATED = process(
    '<bpmn:startEvent id="start"/>',
    '<bpmn:intermediateCatchEvent id="wait"><bpmn:messageEventDefinition messageRef="paid"/>'
    '</bpmn:intermediateCatchEvent>', task("ship"), '<bpmn:endEvent id="end"/>',
    flows="start>wait wait>ship ship>end",
    extra='<bpmn:collaboration id="c"><bpmn:participant id="part" processRef="p"/><bpmn:correlationKey name="order">'
          '<bpmn:correlationPropertyRef>order_id</bpmn:correlationPropertyRef></bpmn:correlationKey>'
          '</bpmn:collaboration><bpmn:correlationProperty id="order_id" name="order id">'
          '<bpmn:correlationPropertyRetrievalExpression messageRef="paid"><bpmn:formalExpression>order_id'
          '</bpmn:formalExpression></bpmn:correlationPropertyRetrievalExpression></bpmn:correlationProperty>'
          + MESSAGES)


def test_correlation_by_key_among_many_reaches_exactly_the_right_one(engine, database_url):
    engine.deploy(CORRELATED)
    started = {n: engine.start("p", {"order_id": n}).id for n in range(1000)}
    delivery = engine.correlate_message("payment received", {"order_id": 737, "paid": True})
    assert delivery.instance_id == started[737]
    assert engine.correlate_message("payment received", correlation={"order_id": 5}).instance_id == started[5]
    moved = engine.instances(process_id="p", waiting_on="task")
    assert sorted(i.id for i in moved) == sorted([started[737], started[5]])
    with pytest.raises(MessageNotCorrelated):
        engine.correlate_message("payment received", {"order_id": 5000})


def test_without_a_key_two_waiting_instances_are_ambiguous(engine):
    engine.deploy(CATCHERS["catch event"])
    engine.start("p")
    engine.start("p")
    with pytest.raises(InvalidData, match="more than one"):
        engine.correlate_message("payment received")


def test_a_buffered_message_is_delivered_when_its_instance_subscribes(engine):
    engine.deploy(CORRELATED)
    with pytest.raises(MessageNotCorrelated):
        engine.correlate_message("payment received", {"order_id": 7})
    early = engine.correlate_message("payment received", {"order_id": 7, "paid": True}, buffer=3600)
    assert early.outcome == "buffered"
    other = engine.start("p", {"order_id": 8})
    instance = engine.start("p", {"order_id": 7})
    assert engine.instance(instance.id).data["paid"] is True and open_tasks(engine, instance.id) == ["ship"]
    assert open_tasks(engine, other.id) == []


def test_an_expired_buffered_message_is_not_delivered(engine):
    engine.deploy(CORRELATED)
    engine.correlate_message("payment received", {"order_id": 7}, buffer=60)
    clock.advance(timedelta(minutes=2))
    instance = engine.start("p", {"order_id": 7})
    assert open_tasks(engine, instance.id) == []


def test_a_repeated_message_id_is_delivered_once(engine):
    engine.deploy(process('<bpmn:startEvent id="ordered"><bpmn:messageEventDefinition messageRef="paid"/>'
                          '</bpmn:startEvent>', task("ship"), '<bpmn:endEvent id="end"/>',
                          flows="ordered>ship ship>end", extra=MESSAGES))
    first = engine.correlate_message("payment received", {"n": 1}, message_id="evt-1")
    again = engine.correlate_message("payment received", {"n": 1}, message_id="evt-1")
    assert (first.outcome, again.outcome, again.instance_id) == ("started", "duplicate", first.instance_id)
    assert len(engine.instances(process_id="p")) == 1
    clock.advance(timedelta(days=2))
    engine.run_due_jobs()  # forgets ids older than a day
    assert engine.correlate_message("payment received", message_id="evt-1").outcome == "started"


SIGNALS = '<bpmn:signal id="alarm" name="fire alarm"/>'


def test_a_signal_reaches_every_catcher_and_starts_processes(engine):
    engine.deploy(interrupted('<bpmn:signalEventDefinition signalRef="alarm"/>', "leave", SIGNALS))
    engine.deploy(process('<bpmn:startEvent id="rang"><bpmn:signalEventDefinition signalRef="alarm"/>'
                          '</bpmn:startEvent>', task("count"), '<bpmn:endEvent id="end"/>',
                          flows="rang>count count>end", process_id="roll_call", extra=SIGNALS))
    working = [engine.start("p").id for _ in range(5)]
    reached = engine.signal("fire alarm", {"drill": True})
    assert sorted(d.instance_id for d in reached if d.outcome == "delivered") == sorted(working)
    (started,) = [d for d in reached if d.outcome == "started"]
    assert engine.instance(started.instance_id).data["drill"] is True
    assert all(open_tasks(engine, i) == ["leave"] for i in working)
    assert engine.signal("fire alarm") != [] and engine.signal("nobody listens") == []


def test_a_thrown_signal_reaches_other_instances(engine):
    engine.deploy(interrupted('<bpmn:signalEventDefinition signalRef="alarm"/>', "leave", SIGNALS))
    engine.deploy(process('<bpmn:startEvent id="start"/>', '<bpmn:intermediateThrowEvent id="ring">'
                          '<bpmn:signalEventDefinition signalRef="alarm"/></bpmn:intermediateThrowEvent>',
                          '<bpmn:endEvent id="end"/>', flows="start>ring ring>end", process_id="bell",
                          extra=SIGNALS))
    working = engine.start("p")
    engine.start("bell")
    assert open_tasks(engine, working.id) == ["leave"]


def test_an_instance_busy_in_one_worker_does_not_hold_up_the_others(database_url):
    import threading

    called, release = threading.Event(), threading.Event()

    def slow(data):
        called.set()
        release.wait(10)
        return {"answered": True}

    first, second = Engine(database_url, connectors={"slow": slow}), Engine(database_url)
    first.deploy(process('<bpmn:startEvent id="start"/>', '<bpmn:parallelGateway id="split"/>',
                         '<bpmn:serviceTask id="call" camunda:topic="slow"/>',
                         f'<bpmn:intermediateCatchEvent id="wait">{timer("timeDuration", "PT1M")}'
                         '</bpmn:intermediateCatchEvent>', '<bpmn:parallelGateway id="join"/>',
                         '<bpmn:endEvent id="end"/>',
                         flows="start>split split>call split>wait call>join wait>join join>end", process_id="busy"))
    first.deploy(process('<bpmn:startEvent id="start"/>',
                         f'<bpmn:intermediateCatchEvent id="wait">{timer("timeDuration", "PT1M")}'
                         '</bpmn:intermediateCatchEvent>', '<bpmn:endEvent id="end"/>',
                         flows="start>wait wait>end", process_id="other"))
    busy, other = first.start("busy"), first.start("other")
    clock.advance(timedelta(minutes=2))
    worker = threading.Thread(target=first.run_due_jobs, kwargs={"limit": 1})
    worker.start()
    assert called.wait(10)  # the first worker holds the busy instance's service task
    try:
        assert second.run_due_jobs(limit=1) == 1  # the other instance's timer, not the busy one's
        assert second.instance(other.id).status == "complete"
    finally:
        release.set()
        worker.join(10)
    while second.run_due_jobs():
        pass
    assert second.instance(busy.id).status == "complete"
    first.close()
    second.close()
