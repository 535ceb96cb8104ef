"""Pruning the task tree changes no behaviour: boundary events, multi-instance, gateways, sub-processes, calls.

Each diagram loops a few hundred times (past the ~250 passes where SpiffWorkflow's unpruned tree used to stop
working), a fresh Engine on the same database now and then so that pruned states are also loaded from the database.
Each test checks what happened through the public API (tasks, history, data, status) and that the stored state
stays as small at the last pass as at pass 100.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from baton.engine import Engine
from baton.engine.clock import clock
from baton.engine.errors import MessageNotCorrelated
from baton.engine.models import Instance
from bpmn_builder import process

HOUR = timedelta(hours=1, seconds=1)
REOPEN = 40  # passes between fresh Engines: the cached workflow is dropped and the pruned state read back
SLACK = 256  # bytes the state may differ by between pass 100 and the last (a counter gains digits)

AGAIN = ('<bpmn:scriptTask id="count"><bpmn:script>n = n + 1</bpmn:script></bpmn:scriptTask>'
         '<bpmn:exclusiveGateway id="more" default="done"/><bpmn:endEvent id="end"/>'
         '<bpmn:sequenceFlow id="again" sourceRef="more" targetRef="{back}">'
         '<bpmn:conditionExpression>n &lt; limit</bpmn:conditionExpression></bpmn:sequenceFlow>'
         '<bpmn:sequenceFlow id="done" sourceRef="more" targetRef="end"/>')


def task(element_id: str) -> str:
    return f'<bpmn:userTask id="{element_id}" name="{element_id}" camunda:assignee="ann"/>'


def script(element_id: str, code: str) -> str:
    return f'<bpmn:scriptTask id="{element_id}"><bpmn:script>{code}</bpmn:script></bpmn:scriptTask>'


def timer(value: str = "PT1H") -> str:
    return f"<bpmn:timerEventDefinition><bpmn:timeDuration>{value}</bpmn:timeDuration></bpmn:timerEventDefinition>"


def looping(*nodes: str, flows: str, back: str, extra: str = "", process_id: str = "p") -> bytes:
    """The nodes, then `count` (n = n + 1) and a gateway that goes back to `back` while n < limit."""
    return process('<bpmn:startEvent id="start"/>', *nodes, AGAIN.format(back=back),
                   flows=f"start>{back} {flows} count>more", extra=extra, process_id=process_id)


class Run:
    """One instance driven pass by pass, through an Engine replaced by a fresh one every REOPEN passes."""

    def __init__(self, url: str, *diagrams: bytes, passes: int, data: dict[str, Any] | None = None,
                 business_key: str | None = None, process_id: str = "p") -> None:
        self.url, self.passes, self.sizes = url, passes, {}
        self.engine = Engine(url)
        self.engine.deploy(*diagrams)
        self.id = self.engine.start(process_id, {"n": 0, "limit": passes, **(data or {})},
                                    business_key=business_key).id

    def __iter__(self) -> Iterator[int]:
        """The passes, 0 to passes - 1; the stored state's size is taken at the start of passes 100 and the last."""
        for n in range(self.passes):
            if n and n % REOPEN == 0:
                self.engine.close()
                self.engine = Engine(self.url)
            assert self.info().data["n"] == n
            if n in (100, self.passes - 1):
                self.sizes[n] = self.state_size()
            yield n

    def info(self) -> Any:
        return self.engine.instance(self.id)

    def open(self) -> list[str]:
        return sorted(t.element_id for t in self.engine.tasks(instance_id=self.id))

    def complete(self, element_id: str, data: dict[str, Any] | None = None) -> None:
        (found,) = [t for t in self.engine.tasks(instance_id=self.id) if t.element_id == element_id]
        self.engine.complete_task(found.id, data)

    def fire(self) -> None:
        clock.advance(HOUR)
        assert self.engine.run_due_jobs() == 1

    def state_size(self) -> int:
        with self.engine.db.reading() as conn:
            return len(conn.execute(select(Instance.state).where(Instance.id == self.id)).scalar_one())

    def finish(self) -> tuple[Any, Counter[tuple[str, str | None]]]:
        """The finished instance and its history counted by (kind, element); the state did not grow."""
        info = self.info()
        events = Counter((e.kind, e.element_id) for e in self.engine.history(self.id))
        assert info.status == "complete" and info.data["n"] == self.passes
        assert self.open() == [] and self.engine.job_status().scheduled == 0
        assert events[("ended", None)] == 1 and events[("completed", "count")] == self.passes
        assert self.sizes[self.passes - 1] <= self.sizes[100] + SLACK, self.sizes
        self.engine.close()
        return info, events


@pytest.fixture
def run(sqlite_url: str) -> Iterator[Callable[..., Run]]:
    made: list[Run] = []

    def make(*diagrams: bytes, **kwargs: Any) -> Run:
        made.append(Run(sqlite_url, *diagrams, **kwargs))
        return made[-1]

    yield make
    for r in made:
        r.engine.close()


INTERRUPTING = looping(
    task("work"), f'<bpmn:boundaryEvent id="late" attachedToRef="work">{timer()}</bpmn:boundaryEvent>',
    script("escalate", "escalated = escalated + 1"), script("worked", "finished = finished + 1"),
    '<bpmn:exclusiveGateway id="merge"/>',
    flows="work>worked late>escalate worked>merge escalate>merge merge>count", back="work")


def test_an_interrupting_boundary_timer_fires_or_its_task_completes_pass_after_pass(run):
    r = run(INTERRUPTING, passes=300, data={"escalated": 0, "finished": 0})
    for n in r:
        assert r.open() == ["work"] and [w.kind for w in r.info().waiting_on] == ["task", "timer"]
        if n % 2:
            r.fire()
        else:
            r.complete("work")
    info, events = r.finish()
    assert (info.data["escalated"], info.data["finished"]) == (150, 150)
    assert events[("timer fired", "late")] == 150 and events[("completed", "work")] == 150
    assert events[("completed", "escalate")] == 150 and events[("completed", "worked")] == 150


NON_INTERRUPTING = looping(
    task("work"), f'<bpmn:boundaryEvent id="nudge" attachedToRef="work" cancelActivity="false">{timer()}'
                  '</bpmn:boundaryEvent>',
    script("remind", "reminded = n\nif n == 0:\n    first_reminder = True"), '<bpmn:endEvent id="reminded_end"/>',
    flows="work>count nudge>remind remind>reminded_end", back="work")


def test_a_non_interrupting_boundary_timer_fires_and_its_task_then_completes_pass_after_pass(run):
    r = run(NON_INTERRUPTING, passes=300)
    for _ in r:
        assert r.open() == ["work"]
        r.fire()
        assert r.open() == ["work"] and [w.kind for w in r.info().waiting_on] == ["task"]
        r.complete("work")
    info, events = r.finish()
    # the process's end merges the data of every branch that ended, the latest last, as without pruning
    assert (info.data["reminded"], info.data["first_reminder"]) == (299, True)
    assert events[("timer fired", "nudge")] == 300 and events[("completed", "remind")] == 300
    assert events[("completed", "work")] == 300 and events[("completed", "reminded_end")] == 300


def multi(kind: str, element_id: str, sequential: bool, body: str = "", output: str | None = None) -> str:
    """A multi-instance activity over `items`, each instance seeing `item`; `output` collects each one's `result`."""
    out = (f"<bpmn:loopDataOutputRef>{output}</bpmn:loopDataOutputRef>" if output else "")
    out_item = '<bpmn:outputDataItem id="result"/>' if output else ""
    return (f'<bpmn:{kind} id="{element_id}" name="{element_id}"'
            f'{" camunda:assignee=" + chr(34) + "ann" + chr(34) if kind == "userTask" else ""}>'
            f'<bpmn:multiInstanceLoopCharacteristics isSequential="{str(sequential).lower()}">'
            f'<bpmn:loopDataInputRef>items</bpmn:loopDataInputRef>{out}<bpmn:inputDataItem id="item"/>{out_item}'
            f'</bpmn:multiInstanceLoopCharacteristics>{body}</bpmn:{kind}>')


MULTI = looping(
    multi("userTask", "review", False, output="reviews"),
    multi("userTask", "sign", True, output="signatures"),
    multi("scriptTask", "price", False, "<bpmn:script>result = item * 10 + n</bpmn:script>", output="prices"),
    multi("scriptTask", "tally", True, "<bpmn:script>result = item + n</bpmn:script>", output="tallies"),
    script("sum", "total = total + sum(prices) + sum(tallies) + len(reviews) + len(signatures)\n"
                  "last = [reviews, signatures, prices, tallies]\n"  # SpiffWorkflow fills only empty outputs
                  "reviews, signatures, prices, tallies = [], [], [], []"),
    flows="review>sign sign>price price>tally tally>sum sum>count", back="review")


def test_parallel_and_sequential_multi_instance_tasks_run_once_per_item_pass_after_pass(run):
    r = run(MULTI, passes=260, data={"items": [1, 2], "total": 0})
    expected = 0
    for n in r:
        assert r.open() == ["review", "review"]
        reviews = r.engine.tasks(instance_id=r.id)
        for t in reversed(reviews):  # the second instance first: the output keeps the items' order regardless
            r.engine.complete_task(t.id, {"result": f"ok {n}"})
        for item in (1, 2):
            assert r.open() == ["sign"]  # one at a time
            r.complete("sign", {"result": f"{item} signed"})
        info = r.info()
        assert info.data["last"] == [[f"ok {n}"] * 2, ["1 signed", "2 signed"], [10 + n, 20 + n], [1 + n, 2 + n]]
        expected += (10 + n) + (20 + n) + (1 + n) + (2 + n) + 4
        assert info.data["total"] == expected
    info, events = r.finish()
    for element in ("review", "sign", "price", "tally"):  # each item's instance, and the activity as a whole
        assert events[("completed", element)] == 260 * 3, element
    assert info.data["total"] == expected


INCLUSIVE = looping(
    '<bpmn:inclusiveGateway id="split"/>', task("a"), task("b"), script("c", "pass"),
    '<bpmn:inclusiveGateway id="join"/>',
    '<bpmn:sequenceFlow id="to_a" sourceRef="split" targetRef="a"><bpmn:conditionExpression>n % 3 != 0'
    '</bpmn:conditionExpression></bpmn:sequenceFlow>'
    '<bpmn:sequenceFlow id="to_b" sourceRef="split" targetRef="b"><bpmn:conditionExpression>n % 3 != 1'
    '</bpmn:conditionExpression></bpmn:sequenceFlow>'
    '<bpmn:sequenceFlow id="to_c" sourceRef="split" targetRef="c"><bpmn:conditionExpression>n % 3 != 2'
    '</bpmn:conditionExpression></bpmn:sequenceFlow>',
    flows="a>join b>join c>join join>count", back="split")


def test_an_inclusive_split_takes_two_of_three_branches_and_its_join_waits_for_both(run):
    r = run(INCLUSIVE, passes=300)
    for n in r:
        branches = [b for b, skip in (("a", 0), ("b", 1), ("c", 2)) if n % 3 != skip]
        assert r.open() == [b for b in branches if b != "c"]
        for b in reversed(r.open()):
            r.complete(b)
            if b != branches[0] and "c" not in branches:
                assert r.info().data["n"] == n  # the join still waits for the other branch
    info, events = r.finish()
    assert (events[("completed", "a")], events[("completed", "b")], events[("completed", "c")]) == (200, 200, 200)
    assert events[("completed", "split")] == 300 and events[("completed", "join")] == 300


EVENT_GATEWAY = looping(
    '<bpmn:eventBasedGateway id="gw"/>',
    '<bpmn:intermediateCatchEvent id="paid"><bpmn:messageEventDefinition messageRef="payment"/>'
    '</bpmn:intermediateCatchEvent>', f'<bpmn:intermediateCatchEvent id="waited">{timer()}'
                                      '</bpmn:intermediateCatchEvent>',
    script("on_time", "paid_count = paid_count + 1"), script("chase", "chased = chased + 1"),
    '<bpmn:exclusiveGateway id="merge"/>',
    flows="gw>paid gw>waited paid>on_time waited>chase on_time>merge chase>merge merge>count", back="gw",
    extra='<bpmn:message id="payment" name="payment received"/>')


def test_an_event_based_gateway_takes_the_message_or_the_timer_pass_after_pass(run):
    r = run(EVENT_GATEWAY, passes=300, data={"paid_count": 0, "chased": 0}, business_key="PO-1")
    for n in r:
        assert sorted(w.kind for w in r.info().waiting_on) == ["message", "timer"]
        if n % 2:
            r.fire()
        else:
            delivered = r.engine.correlate_message("payment received", {"amount": n}, business_key="PO-1")
            assert delivered.instance_id == r.id and r.info().data["amount"] == n
    with pytest.raises(MessageNotCorrelated):  # nothing waits for it once the instance ended
        r.engine.correlate_message("payment received", business_key="PO-1")
    info, events = r.finish()
    assert (info.data["paid_count"], info.data["chased"]) == (150, 150)
    assert events[("message received", "gw")] == 150 and events[("timer fired", "gw")] == 150
    assert events[("completed", "paid")] == 150 and events[("completed", "waited")] == 150
    assert events[("completed", "gw")] == 300


SUB_WITH_ERROR = looping(
    '<bpmn:subProcess id="sub"><bpmn:startEvent id="s_start"/>' + task("inner")
    + '<bpmn:exclusiveGateway id="fails" default="fine"/><bpmn:endEvent id="s_end"/>'
      '<bpmn:endEvent id="s_fail"><bpmn:errorEventDefinition errorRef="broken"/></bpmn:endEvent>'
      '<bpmn:sequenceFlow id="s1" sourceRef="s_start" targetRef="inner"/>'
      '<bpmn:sequenceFlow id="s2" sourceRef="inner" targetRef="fails"/>'
      '<bpmn:sequenceFlow id="s3" sourceRef="fails" targetRef="s_fail"><bpmn:conditionExpression>n % 2 == 1'
      '</bpmn:conditionExpression></bpmn:sequenceFlow>'
      '<bpmn:sequenceFlow id="fine" sourceRef="fails" targetRef="s_end"/></bpmn:subProcess>',
    '<bpmn:boundaryEvent id="caught" attachedToRef="sub"><bpmn:errorEventDefinition errorRef="broken"/>'
    '</bpmn:boundaryEvent>',
    script("repair", "repaired = repaired + 1"), script("passed", "fine_count = fine_count + 1"),
    '<bpmn:exclusiveGateway id="merge"/>',
    flows="sub>passed caught>repair passed>merge repair>merge merge>count", back="sub",
    extra='<bpmn:error id="broken" name="Broken" errorCode="BROKEN"/>')


def test_an_error_thrown_in_a_sub_process_every_other_pass_is_caught_by_its_boundary_event(run):
    r = run(SUB_WITH_ERROR, passes=300, data={"repaired": 0, "fine_count": 0})
    for n in r:
        assert r.open() == ["inner"]
        r.complete("inner", {"note": n})
        assert r.info().incidents == () and r.info().data["repaired"] == (n + 1) // 2
    info, events = r.finish()
    assert (info.data["repaired"], info.data["fine_count"]) == (150, 150)
    assert events[("completed", "inner")] == 300 and events[("completed", "caught")] == 150
    assert events[("completed", "s_fail")] == 150 and events[("completed", "s_end")] == 150
    assert events[("completed", "repair")] == 150 and events[("completed", "passed")] == 150
    assert events[("incident", "s_fail")] == 0


CALLER = looping('<bpmn:callActivity id="call" calledElement="child"/>', flows="call>count", back="call")
CHILD = process('<bpmn:startEvent id="c_start"/>', task("child_work"), script("c_run", "calls = calls + 1"),
                '<bpmn:endEvent id="c_end"/>', flows="c_start>child_work child_work>c_run c_run>c_end",
                process_id="child")


def test_a_call_activity_runs_its_process_once_per_pass_with_the_callers_data(run):
    r = run(CALLER, CHILD, passes=300, data={"calls": 0})
    for n in r:
        assert r.open() == ["child_work"] and r.info().data["calls"] == n
        r.complete("child_work", {"answer": n})
    info, events = r.finish()
    assert (info.data["calls"], info.data["answer"]) == (300, 299)
    assert events[("completed", "call")] == 300 and events[("completed", "child_work")] == 300
    assert events[("completed", "c_run")] == 300 and events[("completed", "c_end")] == 300
