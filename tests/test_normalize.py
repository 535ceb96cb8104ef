"""The import layer: legal BPMN that SpiffWorkflow rejects runs as drawn, and lint says what must change."""

from __future__ import annotations

import pytest

from baton.engine import Engine, parsing
from baton.engine.errors import InvalidDiagram
from bpmn_builder import HEAD, process


def fresh(url):
    """A new Engine on the same database: every step also proves persistence."""
    return Engine(url)


def user(task_id: str, name: str | None = None) -> str:
    return f'<bpmn:userTask id="{task_id}" name="{name or task_id}" camunda:assignee="ann"/>'


def flow(flow_id: str, source: str, target: str, condition: str | None = None) -> str:
    body = f'<bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">{condition}</bpmn:conditionExpression>' \
        if condition is not None else ""
    return f'<bpmn:sequenceFlow id="{flow_id}" sourceRef="{source}" targetRef="{target}">{body}</bpmn:sequenceFlow>'


def run(url: str, instance_id, done: list[str] | None = None) -> list[str]:
    """Complete every open task as host code, a fresh engine per step; the element ids completed, in order."""
    done = [] if done is None else done
    while tasks := fresh(url).tasks(instance_id=instance_id):
        done.append(tasks[0].element_id)
        fresh(url).complete_task(tasks[0].id)
    return done


def inserted_nothing_visible(engine: Engine, instance_id) -> bool:
    ids = set(engine.activity(instance_id)) | {e.element_id for e in engine.history(instance_id) if e.element_id}
    return not any(i.startswith(parsing.normalize.PREFIX) for i in ids)


def errors(engine: Engine, xml: bytes) -> list[str]:
    return [p.message for p in engine.lint(xml).errors]


def warnings(engine: Engine, xml: bytes) -> list[str]:
    return [p.message for p in engine.lint(xml).problems if p.severity == "warning"]


def test_flows_leaving_a_task_all_run_and_inserted_gateways_stay_out_of_history(engine, database_url):
    engine.deploy(process('<bpmn:startEvent id="start"/>', user("ask"), user("pack"), user("bill"),
                          '<bpmn:parallelGateway id="join"/>', '<bpmn:endEvent id="end"/>',
                          flows="start>ask ask>pack ask>bill pack>join bill>join join>end"))
    instance = engine.start("p")
    assert sorted(run(database_url, instance.id)) == ["ask", "bill", "pack"]
    assert fresh(database_url).instance(instance.id).status == "complete"
    assert engine.activity(instance.id) == {"start": 1, "ask": 1, "pack": 1, "bill": 1, "join": 1, "end": 1}
    assert inserted_nothing_visible(engine, instance.id)


@pytest.mark.parametrize(("amount", "path"), [(50, ["file"]), (500, ["review"]), (5000, ["review", "escalate"])])
def test_conditional_flows_leaving_a_task_run_when_true_and_the_default_otherwise(engine, database_url, amount, path):
    engine.deploy(process(
        '<bpmn:startEvent id="start"/>', '<bpmn:userTask id="decide" camunda:assignee="ann" default="to_file"/>',
        user("review"), user("escalate"), user("file"),
        flow("to_review", "decide", "review", "amount &gt; 100"), flow("to_escalate", "decide", "escalate",
                                                                       "${amount > 1000}"),
        flow("to_file", "decide", "file"),
        '<bpmn:endEvent id="end_review"/>', '<bpmn:endEvent id="end_escalate"/>', '<bpmn:endEvent id="end_file"/>',
        flows="start>decide review>end_review escalate>end_escalate file>end_file"))
    instance = engine.start("p", {"amount": amount})
    assert sorted(run(database_url, instance.id)[1:]) == sorted(path)
    assert fresh(database_url).instance(instance.id).status == "complete"
    assert inserted_nothing_visible(engine, instance.id)


def test_unconditional_flows_run_beside_the_conditional_ones_and_the_default(engine, database_url):
    engine.deploy(process(
        '<bpmn:startEvent id="start"/>', '<bpmn:scriptTask id="decide" default="to_file">'
        '<bpmn:script>x = 1</bpmn:script></bpmn:scriptTask>',
        user("notify"), user("review"), user("file"),
        flow("to_notify", "decide", "notify"), flow("to_review", "decide", "review", "amount &gt; 100"),
        flow("to_file", "decide", "file"), '<bpmn:endEvent id="end"/>',
        flows="start>decide notify>end review>end file>end"))
    small = engine.start("p", {"amount": 5})
    assert sorted(run(database_url, small.id)) == ["file", "notify"]
    large = engine.start("p", {"amount": 500})
    assert sorted(run(database_url, large.id)) == ["notify", "review"]
    assert engine.activity(large.id)["end"] == 2


@pytest.mark.parametrize(("go", "path"), [(True, ["a", "c"]), (False, ["b", "c"])])
def test_an_activity_with_two_incoming_flows_runs_once_per_token(engine, database_url, go, path):
    engine.deploy(process(
        '<bpmn:startEvent id="start"/>', '<bpmn:exclusiveGateway id="x" default="to_b"/>', user("a"), user("b"),
        user("c"), '<bpmn:endEvent id="end"/>', flow("to_a", "x", "a", "go"), flow("to_b", "x", "b"),
        flows="start>x a>c b>c c>end"))
    instance = engine.start("p", {"go": go})
    assert run(database_url, instance.id) == path
    assert fresh(database_url).instance(instance.id).status == "complete"


def test_a_sub_process_without_start_and_end_events_starts_everything_without_incoming_flows(engine, database_url):
    engine.deploy(process(
        '<bpmn:startEvent id="start"/>',
        f'<bpmn:subProcess id="sub" name="Prepare">{user("book")}{user("pay")}{user("confirm")}'
        f'{flow("inner", "pay", "confirm")}</bpmn:subProcess>',
        user("after"), '<bpmn:endEvent id="end"/>', flows="start>sub sub>after after>end"))
    instance = engine.start("p")
    open_first = sorted(t.element_id for t in engine.tasks(instance_id=instance.id))
    assert open_first == ["book", "pay"]
    assert sorted(run(database_url, instance.id)) == ["after", "book", "confirm", "pay"]
    assert fresh(database_url).instance(instance.id).status == "complete"
    assert engine.activity(instance.id)["sub"] == 1
    assert inserted_nothing_visible(engine, instance.id)


def test_a_process_without_a_start_event_starts_everything_without_incoming_flows(engine, database_url):
    engine.deploy(process(user("a"), user("b"), '<bpmn:endEvent id="end"/>', flows="a>end b>end"))
    instance = engine.start("p")
    assert sorted(t.element_id for t in engine.tasks(instance_id=instance.id)) == ["a", "b"]
    run(database_url, instance.id)
    assert fresh(database_url).instance(instance.id).status == "complete"
    assert engine.activity(instance.id) == {"a": 1, "b": 1, "end": 2}


def test_a_link_throw_continues_at_the_link_catch_of_the_same_name(engine, database_url):
    engine.deploy(process(
        '<bpmn:startEvent id="start"/>', user("before"),
        '<bpmn:intermediateThrowEvent id="go" name="To page 2"><bpmn:linkEventDefinition name="page2"/>'
        '</bpmn:intermediateThrowEvent>',
        '<bpmn:intermediateCatchEvent id="arrive" name="From page 1"><bpmn:linkEventDefinition name="page2"/>'
        '</bpmn:intermediateCatchEvent>',
        user("after"), '<bpmn:endEvent id="end"/>', flows="start>before before>go arrive>after after>end"))
    instance = engine.start("p")
    assert run(database_url, instance.id) == ["before", "after"]
    assert fresh(database_url).instance(instance.id).status == "complete"
    assert {"go", "arrive", "after", "end"} <= set(engine.activity(instance.id))


def test_elements_named_like_spiffworkflows_own_tasks_keep_their_ids(engine, database_url):
    xml = process('<bpmn:startEvent id="Start"/>', user("Root", "Check"), '<bpmn:endEvent id="End"/>',
                  flows="Start>Root Root>End")
    assert engine.lint(xml).problems == ()
    engine.deploy(xml)
    instance = engine.start("p")
    assert [t.element_id for t in engine.tasks(instance_id=instance.id)] == ["Root"]
    run(database_url, instance.id)
    assert fresh(database_url).instance(instance.id).status == "complete"
    assert engine.activity(instance.id) == {"Start": 1, "Root": 1, "End": 1}
    assert [e.element_id for e in engine.history(instance.id) if e.kind == "completed"] == ["Start", "Root", "End"]


def test_data_objects_and_stores_are_the_instances_data(engine, database_url):
    extra = '<bpmn:dataStore id="crm" name="CRM"/>\n'
    engine.deploy(process(
        '<bpmn:startEvent id="start"/>',
        '<bpmn:dataObject id="order_data"/><bpmn:dataObjectReference id="order" dataObjectRef="order_data"/>',
        '<bpmn:dataStoreReference id="crm_ref" dataStoreRef="crm"/>',
        '<bpmn:scriptTask id="price"><bpmn:ioSpecification><bpmn:dataInput id="in_item"/>'
        '<bpmn:inputSet><bpmn:dataInputRefs>in_item</bpmn:dataInputRefs></bpmn:inputSet><bpmn:outputSet/>'
        '</bpmn:ioSpecification>'
        '<bpmn:dataInputAssociation><bpmn:sourceRef>crm_ref</bpmn:sourceRef><bpmn:targetRef>in_item</bpmn:targetRef>'
        '</bpmn:dataInputAssociation>'
        '<bpmn:dataOutputAssociation><bpmn:targetRef>order</bpmn:targetRef></bpmn:dataOutputAssociation>'
        '<bpmn:script>total = amount * 2</bpmn:script></bpmn:scriptTask>',
        user("check"), '<bpmn:endEvent id="end"/>', flows="start>price price>check check>end", extra=extra))
    instance = engine.start("p", {"amount": 21})
    assert run(database_url, instance.id) == ["check"]
    finished = fresh(database_url).instance(instance.id)
    assert (finished.status, finished.data["total"]) == ("complete", 42)


def test_a_pool_beside_the_executable_one_is_documentation(engine):
    pools = (f'{HEAD}<bpmn:process id="customer" isExecutable="false"><bpmn:startEvent id="c_start"/>'
             '<bpmn:exclusiveGateway id="c_choice"/><bpmn:task id="c_a"/><bpmn:task id="c_b"/>'
             f'{flow("c1", "c_start", "c_choice")}{flow("c2", "c_choice", "c_a")}{flow("c3", "c_choice", "c_b")}'
             '</bpmn:process><bpmn:process id="shop" isExecutable="true"><bpmn:startEvent id="s"/>'
             f'<bpmn:endEvent id="e"/>{flow("s1", "s", "e")}</bpmn:process></bpmn:definitions>').encode()
    assert engine.lint(pools).ok
    assert [d.process_id for d in engine.deploy(pools)] == ["shop"]


def test_without_the_flag_the_process_with_a_start_event_deploys(engine):
    pools = (f'{HEAD}<bpmn:process id="supplier"><bpmn:task id="ship"/></bpmn:process>'
             '<bpmn:process id="shop"><bpmn:startEvent id="s"/><bpmn:endEvent id="e"/>'
             f'{flow("s1", "s", "e")}</bpmn:process></bpmn:definitions>').encode()
    assert [d.process_id for d in engine.deploy(pools)] == ["shop"]


def test_a_process_marked_not_executable_does_not_deploy(engine):
    xml = process('<bpmn:startEvent id="s"/>', '<bpmn:endEvent id="e"/>', flows="s>e").replace(
        b'isExecutable="true"', b'isExecutable="false" name="Sketch"')
    assert errors(engine, xml) == ["the file has no executable process: 'Sketch' is marked not executable "
                                   "(isExecutable=\"false\"); mark the process to run as executable in your modeller"]
    with pytest.raises(InvalidDiagram):
        engine.deploy(xml)


def test_the_deployed_xml_is_the_upload_byte_for_byte(engine):
    xml = process('<bpmn:startEvent id="Start"/>', user("ask"), user("a"), user("b"), '<bpmn:endEvent id="End"/>',
                  flows="Start>ask ask>a ask>b a>End b>End").replace(b"\n", b"\r\n")
    engine.deploy(xml)
    assert engine.diagram("p") == xml


def test_the_import_notes_what_it_rewrote():
    xml = process('<bpmn:startEvent id="start"/>', user("ask", "Ask"), user("a"), user("b"),
                  '<bpmn:endEvent id="end"/>', flows="start>ask ask>a ask>b a>end b>end")
    parsed = parsing.parse([parsing.source(xml)], max_bytes=10**6)
    assert [(n.element_id, n.line, n.message) for n in parsed.notes] == [("ask", 5, "2 flows leave 'Ask': all run")]


@pytest.mark.parametrize(("nodes", "flows", "expected"), [
    (['<bpmn:intermediateCatchEvent id="wait" name="Wait"><bpmn:timerEventDefinition/></bpmn:intermediateCatchEvent>'],
     "start>wait wait>end", "the timer 'Wait' has no date, duration or cycle: set when it fires"),
    (['<bpmn:intermediateCatchEvent id="hear"><bpmn:messageEventDefinition messageRef="nope"/>'
      '</bpmn:intermediateCatchEvent>'], "start>hear hear>end", "the message 'nope' is never defined"),
    (['<bpmn:intermediateCatchEvent id="hear"><bpmn:signalEventDefinition signalRef="nope"/>'
      '</bpmn:intermediateCatchEvent>'], "start>hear hear>end", "the signal 'nope' is never defined"),
    ([user("work"), '<bpmn:boundaryEvent id="late" name="Late" attachedToRef="work"/>'], "start>work work>end late>end",
     "the boundary event 'Late' has no trigger: say what it waits for (a timer, a message, an error...)"),
    (['<bpmn:callActivity id="call" calledElement="elsewhere"/>'], "start>call call>end",
     "the called process 'elsewhere' is neither among the uploaded files nor deployed: upload its file "
     "together with this diagram, or deploy it first"),
    (['<bpmn:businessRuleTask id="rules" name="Price"/>'], "start>rules rules>end",
     "the business rule task 'Price' names no decision: set the decision it evaluates (camunda:decisionRef)"),
    (['<bpmn:intermediateThrowEvent id="go" name="Go"><bpmn:linkEventDefinition name="nowhere"/>'
      '</bpmn:intermediateThrowEvent>'], "start>go",
     "the link 'Go' has no single matching catching link event of the same name in the same process"),
    (['<bpmn:subProcess id="sub" name="Later"/>'], "start>sub sub>end",
     "the sub-process 'Later' is empty: draw what happens inside it, or make it a task"),
    (['<bpmn:exclusiveGateway id="x" name="Big?"/>', flow("yes", "x", "end", "amount &gt; 10"),
      flow("no", "x", "end")], "start>x",
     "the flow 'no' leaves the gateway 'Big?' without a condition and is not its default flow: add a condition or "
     "make it the default"),
])
def test_what_blocks_execution_is_an_error_naming_the_element(engine, nodes, flows, expected):
    xml = process('<bpmn:startEvent id="start"/>', *nodes, '<bpmn:endEvent id="end"/>', flows=flows)
    assert expected in errors(engine, xml)
    with pytest.raises(InvalidDiagram):
        engine.deploy(xml)


@pytest.mark.parametrize(("condition", "expected"), [
    ('Vacation Approval = "Approved"', "the condition 'Vacation Approval = \"Approved\"' of 'yes' is not Python: "
                                       "a variable name cannot contain spaces"),
    ("Manual Validation Required", "the condition 'Manual Validation Required' of 'yes' reads as prose: write the "
                                   "test it stands for in Python, such as decision == \"approve\""),
    ('= date and time("2026-01-01T00:00:00") < now', "the condition '= date and time(\"2026-01-01T00:00:00\") < "
     "now' of 'yes' is FEEL, which Baton cannot translate: write it in Python (the FEEL function 'date and time("
     "\"2026-01-01T00:00:00\")' cannot be translated)"),
    ("${fn:length(items) > 2}", "the condition '${fn:length(items) > 2}' of 'yes' is a JUEL expression Baton "
     "cannot translate: write it in Python (the JUEL function 'fn:length(items)' cannot be translated)"),
    ("not(bpmn:getDataObject('ok'))", "the condition 'not(bpmn:getDataObject('ok'))' of 'yes' is XPath, which "
                                      "Baton does not run: write it in Python"),
])
def test_a_condition_that_is_not_python_says_what_it_is(engine, condition, expected):
    xml = process('<bpmn:startEvent id="start"/>', '<bpmn:exclusiveGateway id="x" default="no"/>',
                  '<bpmn:endEvent id="end"/>',
                  flow("yes", "x", "end", condition.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))
                  .replace('id="yes"', 'id="yes" name="yes"'), flow("no", "x", "end"), flows="start>x")
    assert errors(engine, xml) == [expected]


def test_warnings_unreachable_unassigned_and_foreign_scripts(engine):
    xml = process('<bpmn:startEvent id="start"/>', '<bpmn:userTask id="anyone" name="Sort mail"/>',
                  '<bpmn:scriptTask id="js" name="Greet" scriptFormat="javascript"><bpmn:script>x = 1</bpmn:script>'
                  '</bpmn:scriptTask>', user("orphan", "Forgotten"), '<bpmn:endEvent id="end"/>',
                  flows="start>anyone anyone>js js>end orphan>end")
    report = engine.lint(xml)
    assert report.ok
    assert sorted((p.element_id, p.message) for p in report.problems) == [
        ("anyone", "nobody is assigned to 'Sort mail' and it names no candidate users or groups: anyone may claim it"),
        ("js", "the script of 'Greet' is written in javascript: Baton runs it as Python"),
        ("orphan", "'Forgotten' can never be reached: no path leads to it from a start event"),
    ]


def test_activiti_attributes_mean_what_camundas_do(engine, database_url):
    xml = process('<bpmn:startEvent id="start"/>', '<bpmn:userTask id="approve" activiti:assignee="${approver}"/>',
                  '<bpmn:endEvent id="end"/>', flows="start>approve approve>end").replace(
        b"<bpmn:definitions ", b'<bpmn:definitions xmlns:activiti="http://activiti.org/bpmn" ')
    assert engine.lint(xml).problems == ()
    engine.deploy(xml)
    instance = engine.start("p", {"approver": "maria"})
    assert [t.assignee for t in fresh(database_url).tasks(instance_id=instance.id)] == ["maria"]


def test_a_form_baton_cannot_show_is_a_warning(engine):
    xml = process('<bpmn:startEvent id="start"/>',
                  '<bpmn:userTask id="approve" name="Approve" camunda:assignee="ann" camunda:formKey="app:ok.jsf"/>',
                  '<bpmn:endEvent id="end"/>', flows="start>approve approve>end")
    assert warnings(engine, xml) == ["'Approve' takes its form from 'app:ok.jsf', which Baton cannot show: it opens "
                                     "with no fields, so what that form would set stays unset"]


def test_whatever_spiffworkflow_raises_becomes_a_problem(engine, monkeypatch):
    def broken(self, process_id):
        raise KeyError("decisionRef")

    monkeypatch.setattr(parsing.Parser, "spec", broken)
    report = engine.lint(process('<bpmn:startEvent id="start"/>', '<bpmn:endEvent id="end"/>', flows="start>end"))
    assert [p.message for p in report.errors] == ["the diagram cannot be read: KeyError: 'decisionRef'"]


ZEEBE = 'xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" '


def test_camunda_8_assignments_job_types_and_inputs_are_read(sqlite_url):
    from baton.engine import Engine

    xml = process('<bpmn:startEvent id="start"/>',
                  '<bpmn:serviceTask id="price"><bpmn:extensionElements><zeebe:taskDefinition type="pricing"/>'
                  '<zeebe:ioMapping><zeebe:input source="=amount + 1" target="count"/></zeebe:ioMapping>'
                  '</bpmn:extensionElements></bpmn:serviceTask>',
                  '<bpmn:userTask id="check" name="Check"><bpmn:extensionElements>'
                  '<zeebe:assignmentDefinition assignee="=reviewer" candidateGroups="buyers, clerks"/>'
                  '<zeebe:taskSchedule dueDate="2031-05-01T09:00:00Z"/></bpmn:extensionElements></bpmn:userTask>',
                  '<bpmn:endEvent id="end"/>', flows="start>price price>check check>end"
                  ).replace(b"xmlns:camunda=", ZEEBE.encode() + b"xmlns:camunda=")
    engine = Engine(sqlite_url, connectors={"pricing": lambda data: {"total": data["count"] * 3}})
    engine.deploy(xml)
    instance = engine.start("p", {"amount": 1, "reviewer": "vera"})
    engine.run_due_jobs()
    [task] = engine.tasks(instance_id=instance.id)
    assert (task.assignee, task.candidate_groups, task.due.year) == ("vera", ("buyers", "clerks"), 2031)
    assert engine.instance(instance.id).data["total"] == 6
    engine.close()


def test_camunda_7_input_and_output_parameters_are_set_around_the_task(engine):
    engine.deploy(process('<bpmn:startEvent id="start"/>',
                          '<bpmn:userTask id="check" name="Check" camunda:assignee="ann"><bpmn:extensionElements>'
                          '<camunda:inputOutput><camunda:inputParameter name="greeting">Hello ${name}'
                          '</camunda:inputParameter><camunda:inputParameter name="limit">${amount * 2}'
                          '</camunda:inputParameter><camunda:outputParameter name="checked_by">${reviewer}'
                          '</camunda:outputParameter></camunda:inputOutput></bpmn:extensionElements></bpmn:userTask>',
                          '<bpmn:endEvent id="end"/>', flows="start>check check>end"))
    instance = engine.start("p", {"name": "Sam", "amount": 40})
    [task] = engine.tasks(instance_id=instance.id)
    waiting = engine.instance(instance.id).data
    assert (waiting["greeting"], waiting["limit"]) == ("Hello Sam", 80)
    done = engine.complete_task(task.id, {"reviewer": "ann"})
    assert (done.status, done.data["checked_by"]) == ("complete", "ann")


@pytest.mark.parametrize(("kind", "go", "path"), [
    ("exclusiveGateway", True, ["a"]), ("exclusiveGateway", False, ["c"]), ("inclusiveGateway", True, ["a"]),
    ("inclusiveGateway", False, ["c"])])
def test_a_flow_without_condition_beside_a_default_is_never_taken_with_a_warning(engine, database_url, kind, go,
                                                                                 path):
    xml = process('<bpmn:startEvent id="start"/>', f'<bpmn:{kind} id="x" default="to_c"/>', user("a"), user("b"),
                  user("c"), '<bpmn:endEvent id="end"/>', flow("to_a", "x", "a", "go"), flow("to_b", "x", "b"),
                  flow("to_c", "x", "c"), flows="start>x a>end b>end c>end")
    assert errors(engine, xml) == []
    assert [w for w in warnings(engine, xml) if "without a condition" in w] == [
        "the flow 'to_b' leaves the gateway 'x' without a condition, so it is never taken: the gateway takes its "
        "default flow 'to_c' when no condition holds. Give it a condition"]
    engine.deploy(xml)
    instance = engine.start("p", {"go": go})
    assert run(database_url, instance.id) == path
    assert fresh(database_url).instance(instance.id).status == "complete"


def test_flows_without_condition_and_no_default_stay_an_error(engine):
    xml = process('<bpmn:startEvent id="start"/>', '<bpmn:exclusiveGateway id="x"/>', user("a"), user("b"),
                  '<bpmn:endEvent id="end"/>', flows="start>x x>a x>b a>end b>end")
    assert len([e for e in errors(engine, xml) if "without a condition and is not its default" in e]) == 2
