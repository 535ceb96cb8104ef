"""Camunda 8 (zeebe:) diagrams: what Camunda Modeler 8 draws runs as Zeebe runs it, or lint says why it cannot."""

from __future__ import annotations

from decimal import Decimal

import pytest

from baton.engine import Engine
from baton.engine.errors import InvalidData, MessageNotCorrelated
from bpmn_builder import process


def zeebe(*nodes: str, flows: str = "", process_id: str = "p", extra: str = "") -> bytes:
    """A one-process document that may use the zeebe: namespace."""
    return process(*nodes, flows=flows, process_id=process_id, extra=extra).replace(
        b"xmlns:camunda=", b'xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" xmlns:camunda=')


def io(*mappings: tuple[str, str | None, str]) -> str:
    """`zeebe:ioMapping` from (kind, source, target) triples; a None source is left out."""
    body = "".join(f'<zeebe:{kind} {"" if source is None else f"source={source!r} "}target="{target}"/>'
                   for kind, source, target in mappings)
    return f"<zeebe:ioMapping>{body}</zeebe:ioMapping>"


def task(kind: str, task_id: str, *extensions: str, name: str | None = None, attrs: str = "") -> str:
    body = f"<bpmn:extensionElements>{''.join(extensions)}</bpmn:extensionElements>" if extensions else ""
    return f'<bpmn:{kind} id="{task_id}" name="{name or task_id}" {attrs}>{body}</bpmn:{kind}>'


def errors(engine: Engine, *sources: bytes) -> list[tuple[int | None, str | None, str]]:
    return [(p.line, p.element_id, p.message) for p in engine.lint(*sources).errors]


ASSIGNED = '<zeebe:assignmentDefinition assignee="ann"/>'


# Input and output mappings

def test_inputs_are_the_tasks_own_variables_and_only_the_outputs_reach_the_process(engine, fresh, database_url):
    engine.deploy(zeebe('<bpmn:startEvent id="start"/>', task("userTask", "check", ASSIGNED, io(
        ("input", "=customer.name", "sender.name"), ("input", "=iban", "sender.iban"),
        ("input", "ACME Ltd", "company"), ("input", None, "limit"), ("input", "=amount * 2", "amount"),
        ("output", "=decision", "verdict"), ("output", "=amount", "order.checked"))),
        '<bpmn:endEvent id="end"/>', flows="start>check check>end"))
    instance = engine.start("p", {"customer": {"name": "Ann"}, "iban": "DE45", "amount": 40,
                                  "order": {"id": 7}})
    [waiting] = fresh(database_url).tasks(instance_id=instance.id)
    data = fresh(database_url).instance(instance.id).data
    assert (data["sender"], data["company"], data["limit"], data["amount"]) == (
        {"name": "Ann", "iban": "DE45"}, "ACME Ltd", None, 80)
    done = fresh(database_url).complete_task(waiting.id, {"decision": "approve", "comment": "fine"})
    assert done.status == "complete"
    assert done.data == {"customer": {"name": "Ann"}, "iban": "DE45", "amount": 40, "starter": None,
                         "order": {"id": 7, "checked": 80}, "verdict": "approve"}


def test_without_outputs_the_result_reaches_the_process_unless_a_local_variable_catches_it(engine):
    engine.deploy(zeebe('<bpmn:startEvent id="start"/>', task("userTask", "check", ASSIGNED, io(
        ("input", "=amount + 1", "amount"), ("input", "=amount", "shown"))),
        '<bpmn:endEvent id="end"/>', flows="start>check check>end"))
    instance = engine.start("p", {"amount": 1})
    [waiting] = engine.tasks(instance_id=instance.id)
    assert engine.instance(instance.id).data["shown"] == 2  # each input sees the ones before it
    done = engine.complete_task(waiting.id, {"amount": 99, "decision": "ok"})
    assert done.data == {"amount": 1, "decision": "ok", "starter": None}


def test_a_connector_gets_its_inputs_and_headers_and_the_outputs_read_its_answer(database_url, fresh):
    calls = []
    engine = fresh(database_url)
    engine.connectors["pricing"] = lambda given: calls.append(given) or {"total": given["count"] * 3, "debug": 1}
    engine.deploy(zeebe('<bpmn:startEvent id="start"/>', task(
        "serviceTask", "price", '<zeebe:taskDefinition type="pricing"/>',
        io(("input", "=amount + 1", "count"), ("input", "shop@example.com", "from.email"),
           ("output", "=total", "price")),
        '<zeebe:taskHeaders><zeebe:header key="currency" value="EUR"/></zeebe:taskHeaders>'),
        '<bpmn:endEvent id="end"/>', flows="start>price price>end"))
    instance = engine.start("p", {"amount": 1})
    assert engine.run_due_jobs() == 1
    assert calls == [{"count": 2, "from": {"email": "shop@example.com"}, "task_headers": {"currency": "EUR"}}]
    assert fresh(database_url).instance(instance.id).data == {"amount": 1, "starter": None, "price": 6}


def test_send_and_business_rule_tasks_and_message_events_with_a_job_type_call_their_connector(sqlite_url, fresh):
    sent = []
    engine = fresh(sqlite_url)
    engine.connectors["email"] = lambda given: sent.append(given) or {"sent": len(sent)}
    job = '<zeebe:taskDefinition type="email"/>'
    xml = zeebe('<bpmn:startEvent id="start"/>', task("sendTask", "mail", job, io(("input", "=who", "to"))),
                task("businessRuleTask", "rate", job),
                f'<bpmn:intermediateThrowEvent id="tell"><bpmn:extensionElements>{job}</bpmn:extensionElements>'
                '<bpmn:messageEventDefinition id="told"/></bpmn:intermediateThrowEvent>',
                f'<bpmn:endEvent id="end"><bpmn:extensionElements>{job}</bpmn:extensionElements>'
                '<bpmn:messageEventDefinition id="ended"/></bpmn:endEvent>',
                flows="start>mail mail>rate rate>tell tell>end")
    assert engine.lint(xml).ok
    engine.deploy(xml)
    instance = engine.start("p", {"who": "ann"})
    while engine.run_due_jobs():
        pass
    assert [s.get("to") for s in sent] == ["ann", None, None, None]
    done = engine.instance(instance.id)
    assert (done.status, done.data["sent"]) == ("complete", 4)
    assert engine.activity(instance.id) == {"start": 1, "mail": 1, "rate": 1, "tell": 1, "end": 1}


def test_a_mapping_that_fails_is_an_incident_on_its_element_and_retry_enters_it_again(engine, fresh, database_url):
    engine.deploy(zeebe('<bpmn:startEvent id="start"/>', task("userTask", "check", ASSIGNED, io(
        ("input", "=order.total * 2", "limit"))), '<bpmn:endEvent id="end"/>', flows="start>check check>end"))
    instance = engine.start("p", {"amount": 1})
    failed = fresh(database_url).instance(instance.id)
    [incident] = failed.incidents
    assert (failed.status, incident.element_id) == ("error", "check")
    assert incident.message.startswith("the input mapping 'limit' cannot be evaluated: ")
    fixed = fresh(database_url).retry(instance.id, data={"order": {"total": 5}})
    assert (fixed.status, fixed.data["limit"]) == ("active", 10)
    [waiting] = fresh(database_url).tasks(instance_id=instance.id)
    assert fresh(database_url).complete_task(waiting.id).data == {"amount": 1, "order": {"total": 5},
                                                                   "starter": None}


def test_an_output_that_fails_is_an_incident_and_retry_completes_the_task(engine):
    engine.deploy(zeebe('<bpmn:startEvent id="start"/>', task("userTask", "check", ASSIGNED, io(
        ("output", "=upper case(decision)", "verdict"))), '<bpmn:endEvent id="end"/>', flows="start>check check>end"))
    instance = engine.start("p")
    [waiting] = engine.tasks(instance_id=instance.id)
    failed = engine.complete_task(waiting.id, {"decision": 3})
    assert failed.status == "error" and "the output mapping 'verdict'" in failed.incidents[0].message
    done = engine.retry(instance.id, data={"decision": "yes"})
    assert (done.status, done.data) == ("complete", {"starter": None, "verdict": "YES"})


def test_mappings_baton_cannot_run_are_lint_errors_on_their_line_and_element(engine):
    xml = zeebe('<bpmn:startEvent id="start"/>',
                task("userTask", "check", ASSIGNED, io(
                    ("input", "=Current Status.email", "mail"), ("output", "=x", "Vacation Approval"),
                    ("output", "=x", "order.1st")), name="Check"),
                '<bpmn:endEvent id="end"/>', flows="start>check check>end")
    found = errors(engine, xml)
    assert [(line, element) for line, element, _ in found] == [(5, "check")] * 3
    assert [message for *_, message in found] == [
        "the input mapping 'mail' of 'Check' is FEEL Baton cannot translate ('=Current Status.email'): the FEEL "
        "name 'Current Status' with spaces cannot be translated: rename the variable without spaces",
        "the output mapping target 'Vacation Approval' of 'Check' is not a variable name: use letters, digits "
        "and _, and dots for a path (such as order.total)",
        "the output mapping target 'order.1st' of 'Check' is not a variable name: use letters, digits and _, and "
        "dots for a path (such as order.total)"]


def test_camunda_8_extensions_baton_does_not_know_are_errors_and_harmless_ones_warnings(engine):
    xml = zeebe('<bpmn:startEvent id="start"/>', task(
        "userTask", "check", ASSIGNED, '<zeebe:executionListeners><zeebe:executionListener eventType="start" '
        'type="audit"/></zeebe:executionListeners>', '<zeebe:properties><zeebe:property name="a" value="b"/>'
        '</zeebe:properties>', '<zeebe:userTask/>', name="Check"),
        '<bpmn:endEvent id="end"/>', flows="start>check check>end")
    report = engine.lint(xml)
    assert [(p.severity, p.element_id, p.message) for p in report.problems] == [
        ("error", "check", "Baton cannot run zeebe:executionListeners on 'Check' (a Camunda 8 extension it does "
                           "not know): remove it, or model what it does in BPMN"),
        ("warning", "check", "Baton ignores zeebe:properties on 'Check'")]


def test_a_camunda_user_task_marker_is_a_user_task(engine):
    engine.deploy(zeebe('<bpmn:startEvent id="start"/>', task("userTask", "check", ASSIGNED, '<zeebe:userTask/>'),
                        '<bpmn:endEvent id="end"/>', flows="start>check check>end"))
    [waiting] = engine.tasks(instance_id=engine.start("p").id)
    assert (waiting.element_id, waiting.assignee) == ("check", "ann")


def test_a_start_events_outputs_set_variables_when_the_instance_starts(engine):
    from baton.engine.clock import clock

    engine.deploy(zeebe('<bpmn:startEvent id="start"><bpmn:extensionElements>' + io(
        ("output", "=string join(tags, &quot;, &quot;)", "label"), ("output", "=today()", "opened")) +
        "</bpmn:extensionElements></bpmn:startEvent>", task("userTask", "check", ASSIGNED),
        '<bpmn:endEvent id="end"/>', flows="start>check check>end"))
    started = engine.start("p", {"tags": ["red", None, "big"]})
    assert (started.data["label"], started.data["opened"]) == ("red, big", clock.now().date())


def test_a_feel_script_task_sets_its_result_variable(engine):
    engine.deploy(zeebe('<bpmn:startEvent id="start"/>', task(
        "scriptTask", "sum", '<zeebe:script expression="=sum(items) + 1" resultVariable="total"/>'),
        '<bpmn:endEvent id="end"/>', flows="start>sum sum>end"))
    assert engine.start("p", {"items": [1, 2]}).data["total"] == 4


# Call activities and decisions

CHILD = zeebe('<bpmn:startEvent id="child_start"/>',
              '<bpmn:scriptTask id="work"><bpmn:script>result = given * 10\nnoise = 1</bpmn:script></bpmn:scriptTask>',
              '<bpmn:endEvent id="child_end"/>', flows="child_start>work work>child_end", process_id="child")


@pytest.mark.parametrize(("propagate", "outputs", "expected"), [
    ("true", (), {"result": 20, "noise": 1}),
    ("false", (), {}),
    ("true", (("output", "=result + 1", "answer"),), {"answer": 21})])
def test_a_call_activity_calls_its_process_and_hands_back_what_it_propagates(engine, propagate, outputs, expected):
    engine.deploy(zeebe('<bpmn:startEvent id="start"/>', task(
        "callActivity", "call", f'<zeebe:calledElement processId="child" propagateAllChildVariables="{propagate}"/>',
        io(("input", "=amount * 2", "given"), *outputs)), '<bpmn:endEvent id="end"/>', flows="start>call call>end"),
        CHILD)
    done = engine.start("p", {"amount": Decimal(1)})
    assert (done.status, done.data) == ("complete", {"amount": 1, "starter": None, **expected})


def decision(hit: str, columns: int) -> bytes:
    """The decision `risk` on `age`: under 18 red (minor), under 30 yellow (young); one output column or two."""
    outputs = ['<output id="o_level" name="level" typeRef="string"/>',
               '<output id="o_why" name="why" typeRef="string"/>']
    rules = "".join(
        f'<rule id="{rule}"><inputEntry id="{rule}_in"><text>&lt; {limit}</text></inputEntry>'
        + "".join(f'<outputEntry id="{rule}_{n}"><text>"{value}"</text></outputEntry>'
                  for n, value in enumerate(values[:columns])) + "</rule>"
        for rule, limit, values in (("r1", 18, ("red", "minor")), ("r2", 30, ("yellow", "young"))))
    return f'''<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" id="risk_defs" name="Risk" namespace="baton.test">
  <decision id="risk" name="Risk"><decisionTable id="table" hitPolicy="{hit}">
    <input id="in_age"><inputExpression id="in_age_expr" typeRef="number"><text>age</text></inputExpression></input>
    {"".join(outputs[:columns])}{rules}
  </decisionTable></decision>
</definitions>'''.encode()


@pytest.mark.parametrize(("hit", "columns", "age", "result"), [
    ("UNIQUE", 1, 40, None), ("FIRST", 1, 10, "red"), ("FIRST", 2, 20, {"level": "yellow", "why": "young"}),
    ("COLLECT", 1, 10, ["red", "yellow"]), ("COLLECT", 2, 40, [])])
def test_a_called_decision_puts_its_result_into_the_result_variable(engine, hit, columns, age, result):
    engine.deploy(zeebe('<bpmn:startEvent id="start"/>', task(
        "businessRuleTask", "decide", '<zeebe:calledDecision decisionId="risk" resultVariable="risk"/>'),
        '<bpmn:endEvent id="end"/>', flows="start>decide decide>end"), decision(hit, columns))
    assert engine.start("p", {"age": age}).data == {"age": age, "starter": None, "risk": result}


def test_a_called_decision_with_outputs_hands_on_only_the_outputs(engine):
    engine.deploy(zeebe('<bpmn:startEvent id="start"/>', task(
        "businessRuleTask", "decide", '<zeebe:calledDecision decisionId="risk" resultVariable="risk"/>',
        io(("output", "=risk[1]", "worst"))), '<bpmn:endEvent id="end"/>', flows="start>decide decide>end"),
        decision("COLLECT", 1))
    assert engine.start("p", {"age": 1, "risk": "kept"}).data == {"age": 1, "starter": None, "risk": "kept",
                                                                "worst": "red"}


def test_a_called_process_not_uploaded_is_a_lint_error_on_the_call_activity(engine):
    xml = zeebe('<bpmn:startEvent id="start"/>', task("callActivity", "call",
                                                      '<zeebe:calledElement processId="child"/>'),
                '<bpmn:endEvent id="end"/>', flows="start>call call>end")
    assert errors(engine, xml) == [(5, "call", "the called process 'child' is neither among the uploaded files nor "
                                               "deployed: upload its file together with this diagram, or deploy it "
                                               "first")]


def test_a_call_activity_that_would_narrow_what_it_passes_on_is_a_warning(engine):
    xml = zeebe('<bpmn:startEvent id="start"/>', task(
        "callActivity", "call", '<zeebe:calledElement processId="child" propagateAllParentVariables="false"/>',
        name="Call"), '<bpmn:endEvent id="end"/>', flows="start>call call>end")
    assert [(p.severity, p.message) for p in engine.lint(xml, CHILD).problems] == [
        ("warning", "the call activity 'Call' gives the process it calls all its variables: Baton does not narrow "
                    "them to its input mappings (propagateAllParentVariables)")]


def test_calls_and_decisions_named_by_an_expression_or_without_a_result_are_lint_errors(engine):
    xml = zeebe('<bpmn:startEvent id="start"/>', task(
        "callActivity", "call", '<zeebe:calledElement processId="=&quot;child-&quot; + tenant"/>', name="Call"),
        task("businessRuleTask", "decide", '<zeebe:calledDecision decisionId="=which"/>', name="Decide"),
        task("businessRuleTask", "rate", '<zeebe:calledDecision decisionId="risk"/>', name="Rate"),
        '<bpmn:endEvent id="end"/>', flows="start>call call>decide decide>rate rate>end")
    assert [(element, message) for _, element, message in errors(engine, xml, decision("FIRST", 1))] == [
        ("call", "the call activity 'Call' names the process it calls by an expression ('=\"child-\" + tenant'): "
                 "Baton calls a process named in the diagram, so write its id"),
        ("decide", "the business rule task 'Decide' names its decision by an expression ('=which'): write the "
                   "decision's id"),
        ("decide", "the business rule task 'Decide' names no result variable: say where its decision's result "
                   "goes"),
        ("rate", "the business rule task 'Rate' names no result variable: say where its decision's result goes")]


# Multi-instance

def test_a_loop_runs_once_per_element_with_its_own_element_and_counter_and_collects_the_outputs(engine, fresh,
                                                                                              database_url):
    loop = ('<bpmn:multiInstanceLoopCharacteristics><bpmn:extensionElements><zeebe:loopCharacteristics '
            'inputCollection="=docs" inputElement="doc" outputCollection="verdicts" outputElement="=verdict"/>'
            '</bpmn:extensionElements></bpmn:multiInstanceLoopCharacteristics>')
    engine.deploy(zeebe('<bpmn:startEvent id="start"/>', task(
        "userTask", "review", '<zeebe:assignmentDefinition assignee="=doc.owner"/>',
        io(("input", "=doc.title + &quot; #&quot; + string(loopCounter)", "title"))).replace(
        "</bpmn:userTask>", loop + "</bpmn:userTask>"), '<bpmn:endEvent id="end"/>',
        flows="start>review review>end"))
    instance = engine.start("p", {"docs": [{"title": "A", "owner": "ann"}, {"title": "B", "owner": "bob"}]})
    waiting = fresh(database_url).tasks(instance_id=instance.id)
    assert sorted(t.assignee for t in waiting) == ["ann", "bob"]
    for task_info in sorted(waiting, key=lambda t: t.assignee or ""):
        done = fresh(database_url).complete_task(task_info.id, {"verdict": f"ok by {task_info.assignee}"})
    assert (done.status, done.data) == ("complete", {
        "docs": [{"title": "A", "owner": "ann"}, {"title": "B", "owner": "bob"}], "starter": None,
        "verdicts": ["ok by ann", "ok by bob"]})


def test_a_loop_over_an_expression_is_a_lint_error(engine):
    loop = ('<bpmn:multiInstanceLoopCharacteristics><bpmn:extensionElements><zeebe:loopCharacteristics '
            'inputCollection="=docs[item.open]" inputElement="doc"/></bpmn:extensionElements>'
            '</bpmn:multiInstanceLoopCharacteristics>')
    xml = zeebe('<bpmn:startEvent id="start"/>', task("userTask", "review", ASSIGNED, name="Review").replace(
        "</bpmn:userTask>", loop + "</bpmn:userTask>"), '<bpmn:endEvent id="end"/>', flows="start>review review>end")
    assert ("review", "the input collection '=docs[item.open]' of 'Review' is an expression: Baton loops over, and "
                      "collects, a variable named in the diagram (such as =documents)") in [
        (element, message) for _, element, message in errors(engine, xml)]


# Messages: correlation keys

PAID = '<bpmn:message id="paid" name="paid"><bpmn:extensionElements><zeebe:subscription correlationKey="=orderId"/>' \
       '</bpmn:extensionElements></bpmn:message>'


def test_a_message_reaches_the_instance_whose_key_it_carries(engine, fresh, database_url):
    engine.deploy(zeebe('<bpmn:startEvent id="start"/>', '<bpmn:receiveTask id="wait" messageRef="paid"/>',
                        '<bpmn:endEvent id="end"/>', flows="start>wait wait>end", extra=PAID))
    first, second = engine.start("p", {"orderId": "A-17"}), engine.start("p", {"orderId": 18})
    with pytest.raises(MessageNotCorrelated, match="with correlation key 'A-1'"):
        fresh(database_url).correlate_message("paid", {"amount": 1}, correlation_key="A-1")
    with pytest.raises(MessageNotCorrelated):  # a message without a key reaches no keyed catcher
        fresh(database_url).correlate_message("paid", {"orderId": "A-17"})
    assert fresh(database_url).correlate_message("paid", {"amount": 2}, correlation_key="18").instance_id == \
        second.id
    assert fresh(database_url).correlate_message("paid", {"amount": 3}, correlation_key="A-17").instance_id == \
        first.id
    assert [fresh(database_url).instance(i.id).data["amount"] for i in (first, second)] == [3, 2]
    with pytest.raises(InvalidData, match="not both"):
        engine.correlate_message("paid", correlation={"a": 1}, correlation_key="A-17")


def test_the_key_is_the_one_it_had_when_the_catcher_began_to_wait(engine):
    engine.deploy(zeebe('<bpmn:startEvent id="start"/>',
                        '<bpmn:intermediateCatchEvent id="wait"><bpmn:messageEventDefinition messageRef="paid"/>'
                        '</bpmn:intermediateCatchEvent>',
                        task("userTask", "edit", ASSIGNED),
                        '<bpmn:endEvent id="end"/>', '<bpmn:endEvent id="end2"/>',
                        '<bpmn:parallelGateway id="split"/>',
                        flows="start>split split>wait split>edit wait>end edit>end2", extra=PAID))
    instance = engine.start("p", {"orderId": "A-1"})
    [edit] = engine.tasks(instance_id=instance.id)
    engine.complete_task(edit.id, {"orderId": "B-2"})
    with pytest.raises(MessageNotCorrelated):
        engine.correlate_message("paid", correlation_key="B-2")
    assert engine.correlate_message("paid", correlation_key="A-1").outcome == "delivered"
    assert engine.instance(instance.id).status == "complete"


def test_a_boundary_event_and_a_gateways_event_wait_with_their_keys(engine):
    engine.deploy(zeebe('<bpmn:startEvent id="start"/>', task("userTask", "check", ASSIGNED),
                        '<bpmn:boundaryEvent id="cancelled" attachedToRef="check"><bpmn:messageEventDefinition '
                        'messageRef="cancel"/></bpmn:boundaryEvent>',
                        '<bpmn:eventBasedGateway id="which"/>',
                        '<bpmn:intermediateCatchEvent id="wait"><bpmn:messageEventDefinition messageRef="paid"/>'
                        '</bpmn:intermediateCatchEvent>',
                        '<bpmn:intermediateCatchEvent id="late"><bpmn:timerEventDefinition><bpmn:timeDuration>'
                        'PT1H</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>',
                        '<bpmn:endEvent id="end"/>', '<bpmn:endEvent id="end2"/>', '<bpmn:endEvent id="end3"/>',
                        flows="start>check check>which which>wait which>late wait>end late>end2 cancelled>end3",
                        extra=PAID + '<bpmn:message id="cancel" name="cancel"><bpmn:extensionElements>'
                        '<zeebe:subscription correlationKey="=customer"/></bpmn:extensionElements></bpmn:message>'))
    kept, cancelled = engine.start("p", {"orderId": "A-1", "customer": "c1"}), \
        engine.start("p", {"orderId": "A-2", "customer": "c2"})
    assert engine.correlate_message("cancel", correlation_key="c2").instance_id == cancelled.id
    assert engine.instance(cancelled.id).status == "complete"
    [check] = engine.tasks(instance_id=kept.id)
    engine.complete_task(check.id)
    assert engine.correlate_message("paid", correlation_key="A-1").instance_id == kept.id
    assert engine.activity(kept.id) == {"start": 1, "check": 1, "which": 1, "wait": 1, "end": 1}


def test_each_instance_of_a_loop_waits_with_its_own_key_in_the_one_process_instance(engine, fresh, database_url):
    child = zeebe('<bpmn:startEvent id="child_start"/>', '<bpmn:receiveTask id="arrived" messageRef="doc"/>',
                  '<bpmn:endEvent id="child_end"/>', flows="child_start>arrived arrived>child_end", process_id="fetch",
                  extra='<bpmn:message id="doc" name="document arrived"><bpmn:extensionElements><zeebe:subscription '
                        'correlationKey="=document"/></bpmn:extensionElements></bpmn:message>')
    engine.deploy(zeebe('<bpmn:startEvent id="start"/>', task(
        "callActivity", "fetch_all", '<zeebe:calledElement processId="fetch"/>').replace(
        "</bpmn:callActivity>", '<bpmn:multiInstanceLoopCharacteristics><bpmn:extensionElements>'
        '<zeebe:loopCharacteristics inputCollection="=documents" inputElement="document"/></bpmn:extensionElements>'
        '</bpmn:multiInstanceLoopCharacteristics></bpmn:callActivity>'),
        '<bpmn:endEvent id="end"/>', flows="start>fetch_all fetch_all>end"), child)
    instance = engine.start("p", {"documents": ["passport", "payslip"]})
    fresh(database_url).correlate_message("document arrived", {"pages": 2}, correlation_key="payslip")
    assert [w.kind for w in fresh(database_url).instance(instance.id).waiting_on] == ["message"]
    fresh(database_url).correlate_message("document arrived", {"pages": 1}, correlation_key="passport")
    assert fresh(database_url).instance(instance.id).status == "complete"


def test_a_message_start_event_takes_the_message_whatever_its_key(engine):
    engine.deploy(zeebe('<bpmn:startEvent id="start"><bpmn:messageEventDefinition messageRef="paid"/>'
                        '</bpmn:startEvent>', '<bpmn:endEvent id="end"/>', flows="start>end", extra=PAID))
    delivery = engine.correlate_message("paid", {"orderId": "A-1"}, correlation_key="A-1")
    assert delivery.outcome == "started"
    assert engine.instance(delivery.instance_id).data["orderId"] == "A-1"


def test_a_buffered_message_waits_for_the_instance_with_its_key(engine):
    engine.deploy(zeebe('<bpmn:startEvent id="start"/>', '<bpmn:receiveTask id="wait" messageRef="paid"/>',
                        '<bpmn:endEvent id="end"/>', flows="start>wait wait>end", extra=PAID))
    assert engine.correlate_message("paid", {"amount": 5}, correlation_key="A-2", buffer=60).outcome == "buffered"
    other, wanted = engine.start("p", {"orderId": "A-1"}), engine.start("p", {"orderId": "A-2"})
    assert (engine.instance(other.id).status, engine.instance(wanted.id).status) == ("active", "complete")
    assert engine.instance(wanted.id).data["amount"] == 5


def test_a_messages_payload_is_local_to_its_catcher_when_it_has_outputs(engine):
    engine.deploy(zeebe('<bpmn:startEvent id="start">' + f"<bpmn:extensionElements>{io(('output', '=1', 'round'))}"
                        "</bpmn:extensionElements></bpmn:startEvent>",
                        task("intermediateCatchEvent", "wait", io(("output", "=amount * 100", "cents"),
                                                                  ("output", "=round + 1", "round"))).replace(
                            "</bpmn:intermediateCatchEvent>",
                            '<bpmn:messageEventDefinition messageRef="paid"/></bpmn:intermediateCatchEvent>'),
                        '<bpmn:endEvent id="end"/>', flows="start>wait wait>end", extra=PAID))
    instance = engine.start("p", {"orderId": "A-1"})
    engine.correlate_message("paid", {"amount": 2, "note": "via bank"}, correlation_key="A-1")
    assert engine.instance(instance.id).data == {"orderId": "A-1", "starter": None, "round": 2, "cents": 200}


def test_a_key_that_is_not_a_text_or_number_is_an_incident(engine):
    engine.deploy(zeebe('<bpmn:startEvent id="start"/>', '<bpmn:receiveTask id="wait" messageRef="paid"/>',
                        '<bpmn:endEvent id="end"/>', flows="start>wait wait>end", extra=PAID))
    failed = engine.start("p", {"orderId": None})
    assert (failed.status, failed.incidents[0].element_id) == ("error", "wait")
    assert failed.incidents[0].message.startswith("the correlation key must be a text or a number, not null")


# Forms

REVIEW_FORM = b'''{"id": "review-form", "type": "default", "schemaVersion": 16, "components": [
  {"type": "textfield", "key": "order.item", "label": "Item", "disabled": true},
  {"type": "group", "label": "Customer", "path": "customer", "components": [
    {"type": "textfield", "key": "name", "label": "Name", "validate": {"required": true}},
    {"type": "number", "key": "address.zip", "label": "Zip"}]},
  {"type": "group", "label": "Decision", "components": [
    {"type": "radio", "key": "decision", "label": "Decision", "values": [{"label": "Yes", "value": "yes"}]}]}]}'''


def linked(form_id: str) -> bytes:
    return zeebe('<bpmn:startEvent id="start"/>', task("userTask", "check", ASSIGNED,
                                                      f'<zeebe:formDefinition formId="{form_id}"/>', name="Check"),
                 '<bpmn:endEvent id="end"/>', flows="start>check check>end")


def test_a_form_linked_by_its_id_is_the_tasks_form_and_its_paths_nest_the_data(engine, fresh, database_url, tmp_path):
    form = tmp_path / "review.form"
    form.write_bytes(REVIEW_FORM)
    engine.deploy(linked("review-form"), form)
    [waiting] = engine.tasks(instance_id=engine.start("p", {"customer": {"name": "old", "vip": True}}).id)
    assert [(f.id, f.type, f.required, f.readonly) for f in waiting.form] == [
        ("order.item", "string", False, True), ("customer.name", "string", True, False),
        ("customer.address.zip", "decimal", False, False), ("decision", "enum", False, False)]
    with pytest.raises(InvalidData, match="Name is required"):
        fresh(database_url).complete_task(waiting.id, {"decision": "yes"}, user="ann")
    done = fresh(database_url).complete_task(waiting.id, {"customer.name": "Ann", "customer.address.zip": "12",
                                                          "decision": "yes", "order.item": "Yacht"}, user="ann")
    assert done.data["customer"] == {"name": "Ann", "address": {"zip": Decimal(12)}}  # the form sets the variable
    assert (done.data["decision"], "order" in done.data) == ("yes", False)


def test_a_form_id_not_uploaded_is_a_lint_error_naming_it(engine):
    assert errors(engine, linked("review-form")) == [
        (5, "check", "the Camunda form 'review-form' is not among the uploaded files: upload its .form file "
                     "together with this diagram")]


def test_what_a_linked_form_cannot_show_is_a_lint_error_in_the_form_file(engine, tmp_path):
    form = tmp_path / "review.form"
    form.write_bytes(REVIEW_FORM.replace(b'"key": "name"', b'"key": "full name"'))
    assert [(p.file, p.line, p.element_id, p.message) for p in engine.lint(linked("review-form"), form).errors] == [
        ("review.form", 4, "check", "the textfield field 'full name' cannot be shown: its key must be names joined "
                                    "by dots, such as order.total")]


def test_a_form_baton_cannot_show_is_a_warning(engine):
    xml = zeebe('<bpmn:startEvent id="start"/>', task(
        "userTask", "check", ASSIGNED, '<zeebe:formDefinition externalReference="https://forms.example.com/1"/>',
        name="Check"), '<bpmn:endEvent id="end"/>', flows="start>check check>end")
    report = engine.lint(xml)
    assert report.ok and [p.message for p in report.problems] == [
        "'Check' takes its form from 'https://forms.example.com/1', which Baton cannot show: it opens with no fields, "
        "so what that form would set stays unset"]
