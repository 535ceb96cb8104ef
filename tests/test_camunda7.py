"""Camunda 7 diagrams run as a Camunda 7 user expects: async continuations, parameters, listeners, service tasks,
call activities and extension properties; what Baton cannot run is a lint error or warning naming it."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from baton.engine import Engine
from baton.engine.clock import clock
from baton.engine.errors import InvalidDiagram
from bpmn_builder import process

START, END = '<bpmn:startEvent id="start"/>', '<bpmn:endEvent id="end"/>'


def ext(*items: str) -> str:
    return f"<bpmn:extensionElements>{''.join(items)}</bpmn:extensionElements>"


def script(element_id: str, code: str, attributes: str = "", inner: str = "") -> str:
    return (f'<bpmn:scriptTask id="{element_id}" name="{element_id}" {attributes}>{inner}'
            f'<bpmn:script>{code}</bpmn:script></bpmn:scriptTask>')


def user(element_id: str, attributes: str = "", inner: str = "") -> str:
    return (f'<bpmn:userTask id="{element_id}" name="{element_id}" camunda:assignee="ann" {attributes}>{inner}'
            '</bpmn:userTask>')


def jobs_of(instance):
    return [(w.kind, w.element_id) for w in instance.waiting_on]


def problems(report):
    return [(p.severity, p.element_id, p.message) for p in report.problems]


# Asynchronous continuations


def test_async_before_commits_the_start_and_a_job_goes_on(engine, database_url):
    engine.deploy(process(START, script("work", "x = n + 1", 'camunda:asyncBefore="true"'), user("check"), END,
                          flows="start>work work>check check>end"))
    started = engine.start("p", {"n": 1})
    assert (started.status, jobs_of(started)) == ("active", [("job", "work")])
    assert (started.data["n"], "x" in started.data) == (1, False) and engine.tasks(instance_id=started.id) == []
    assert engine.job_status().due == 1
    assert Engine(database_url).run_due_jobs() == 1  # another engine on the same database: the state is durable
    after = engine.instance(started.id)
    assert (after.data["x"], jobs_of(after)) == (2, [("task", "check")])
    assert engine.instances(waiting_on="job") == []


@pytest.mark.parametrize("attribute", ['camunda:async="true"', 'camunda:asyncBefore="true"'])
def test_the_older_async_attribute_means_async_before(engine, attribute):
    engine.deploy(process(START, script("work", "x = 1", attribute), END, flows="start>work work>end"))
    instance = engine.start("p")
    assert jobs_of(instance) == [("job", "work")] and engine.instances(waiting_on="job")[0].id == instance.id
    engine.run_due_jobs()
    assert engine.instance(instance.id).status == "complete"


FAILING = process(START, script("divide", "result = 10 / divisor", 'camunda:asyncBefore="true"', ext(
    "<camunda:failedJobRetryTimeCycle>R2/PT5M</camunda:failedJobRetryTimeCycle>")), user("check"), END,
    flows="start>divide divide>check check>end")


def test_a_failing_async_script_is_retried_on_its_cycle_then_an_incident_that_retry_resumes(engine, database_url):
    engine.deploy(FAILING)
    instance = engine.start("p", {"divisor": 0})
    for _ in range(2):  # the first run and one retry fail; each time nothing is written and the job waits
        assert Engine(database_url).run_due_jobs() == 1
        waiting = engine.instance(instance.id)
        assert (waiting.status, jobs_of(waiting), waiting.incidents) == ("active", [("job", "divide")], ())
        assert engine.job_status().retrying == 1 and engine.run_due_jobs() == 0
        clock.advance(timedelta(minutes=5, seconds=1))
    assert engine.run_due_jobs() == 1  # the last retry fails: an incident on the script
    failed = engine.instance(instance.id)
    assert failed.status == "error" and failed.incidents[0].element_id == "divide"
    assert "ZeroDivisionError" in failed.incidents[0].error_type + failed.incidents[0].message
    assert [e.kind for e in engine.history(instance.id)].count("incident") == 1
    resumed = Engine(database_url).retry(instance.id, data={"divisor": 2})
    assert (resumed.status, resumed.data["result"], jobs_of(resumed)) == ("active", 5, [("task", "check")])


def test_a_failing_script_without_async_is_an_incident_at_once(engine):
    engine.deploy(FAILING.replace(b'camunda:asyncBefore="true"', b""))
    assert engine.start("p", {"divisor": 0}).status == "error"


def test_async_before_a_user_task_creates_the_task_in_the_job(engine):
    engine.deploy(process(START, user("check", 'camunda:asyncBefore="true"'), END, flows="start>check check>end"))
    instance = engine.start("p")
    assert engine.tasks(instance_id=instance.id) == [] and jobs_of(instance) == [("job", "check")]
    engine.run_due_jobs()
    [task] = engine.tasks(user="ann")
    assert task.element_id == "check"
    assert engine.complete_task(task.id).status == "complete"


def test_async_after_a_user_task_commits_its_completion_and_a_job_goes_on(engine, database_url):
    engine.deploy(process(START, user("check", 'camunda:asyncAfter="true"'), script("after", "done = True"), END,
                          flows="start>check check>after after>end"))
    instance = engine.start("p")
    [task] = engine.tasks(instance_id=instance.id)
    completed = engine.complete_task(task.id, {"ok": True})
    assert (completed.status, jobs_of(completed)) == ("active", [("job", "check")])
    assert engine.tasks(instance_id=instance.id) == [] and "done" not in completed.data
    assert [e.element_id for e in engine.history(instance.id) if e.kind == "completed"] == ["start", "check"]
    Engine(database_url).run_due_jobs()
    after = engine.instance(instance.id)
    assert (after.status, after.data["done"], after.data["ok"]) == ("complete", True, True)
    assert engine.activity(instance.id)["check"] == 1


def test_async_on_a_gateway_and_after_an_end_event(engine):
    engine.deploy(process(
        START, '<bpmn:exclusiveGateway id="choose" camunda:asyncBefore="true" default="to_b"/>',
        script("a", "path = 'a'"), script("b", "path = 'b'"),
        '<bpmn:endEvent id="end_a" camunda:asyncAfter="true"/>', '<bpmn:endEvent id="end_b"/>',
        '<bpmn:sequenceFlow id="to_a" sourceRef="choose" targetRef="a">'
        '<bpmn:conditionExpression>${n &gt; 1}</bpmn:conditionExpression></bpmn:sequenceFlow>',
        '<bpmn:sequenceFlow id="to_b" sourceRef="choose" targetRef="b"/>', flows="start>choose a>end_a b>end_b"))
    instance = engine.start("p", {"n": 2})
    assert jobs_of(instance) == [("job", "choose")]
    engine.run_due_jobs()
    at_end = engine.instance(instance.id)
    assert (at_end.status, jobs_of(at_end), at_end.data["path"]) == ("active", [("job", "end_a")], "a")
    engine.run_due_jobs()
    assert engine.instance(instance.id).status == "complete"


def test_async_before_a_parallel_join_joins_once(engine):
    engine.deploy(process(START, '<bpmn:parallelGateway id="fork"/>', script("a", "a = 1"), script("b", "b = 1"),
                          '<bpmn:parallelGateway id="join" camunda:asyncBefore="true"/>', script("after", "c = a + b"),
                          END, flows="start>fork fork>a fork>b a>join b>join join>after after>end"))
    instance = engine.start("p")
    while engine.run_due_jobs():
        pass
    after = engine.instance(instance.id)
    assert (after.status, after.data["c"], engine.activity(instance.id)["after"]) == ("complete", 2, 1)


def timed_work(flag: str) -> bytes:
    """A user task `work`, async by `flag`, with an interrupting one-hour timer on it."""
    return process(START, user("work", f'camunda:{flag}="true"'),
                   '<bpmn:boundaryEvent id="late" attachedToRef="work"><bpmn:timerEventDefinition>'
                   '<bpmn:timeDuration>PT1H</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:boundaryEvent>',
                   END, '<bpmn:endEvent id="timed_out"/>', flows="start>work work>end late>timed_out")


def test_a_boundary_timer_starts_only_when_the_job_enters_the_activity(engine):
    engine.deploy(timed_work("asyncBefore"))
    instance = engine.start("p")
    assert jobs_of(instance) == [("job", "work")]
    engine.run_due_jobs()
    assert sorted(jobs_of(engine.instance(instance.id))) == [("task", "work"), ("timer", "late")]


def test_async_after_a_start_event_returns_before_anything_runs(engine):
    engine.deploy(process('<bpmn:startEvent id="start" camunda:asyncBefore="true"/>', script("s", "x = 1"), END,
                          flows="start>s s>end"))
    instance = engine.start("p")
    assert jobs_of(instance) == [("job", "start")] and "x" not in instance.data
    engine.run_due_jobs()
    assert engine.instance(instance.id).data["x"] == 1


def test_async_jobs_run_once_each_with_several_workers(database_url, fresh):
    setup = fresh(database_url)
    setup.deploy(process(START, script("count", "runs = runs + 1", 'camunda:asyncBefore="true"'), END,
                         flows="start>count count>end"))
    started = [setup.start("p", {"runs": 0}).id for _ in range(12)]
    workers = [fresh(database_url) for _ in range(3)]

    def work(engine: Engine) -> None:
        for _ in range(30):
            engine.run_due_jobs(limit=2)

    threads = [threading.Thread(target=work, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    while setup.run_due_jobs():
        pass
    assert {(i.status, i.data["runs"]) for i in map(setup.instance, started)} == {("complete", 1)}
    assert all(setup.activity(i)["count"] == 1 for i in started)


def test_async_after_an_activity_ends_its_boundary_events_before_the_job(engine):
    engine.deploy(timed_work("asyncAfter"))
    instance = engine.start("p")
    [task] = engine.tasks(instance_id=instance.id)
    assert jobs_of(engine.complete_task(task.id)) == [("job", "work")]
    clock.advance(timedelta(hours=2))
    engine.run_due_jobs()
    assert engine.instance(instance.id).status == "complete"
    assert [e.element_id for e in engine.history(instance.id) if e.kind == "ended"] == [None]
    assert "late" not in engine.activity(instance.id)


# Input and output parameters


def param(name: str, body: str, kind: str = "input") -> str:
    return f'<camunda:{kind}Parameter name="{name}">{body}</camunda:{kind}Parameter>'


def io(*params: str) -> str:
    return f"<camunda:inputOutput>{''.join(params)}</camunda:inputOutput>"


def test_input_parameters_may_be_maps_lists_and_python_scripts_nested(engine):
    engine.deploy(process(START, user("check", inner=ext(io(
        param("order", '<camunda:map><camunda:entry key="item">${item}</camunda:entry>'
                       '<camunda:entry key="lines"><camunda:list><camunda:value>first</camunda:value>'
                       '<camunda:value>${amount * 2}</camunda:value></camunda:list></camunda:entry>'
                       '<camunda:entry key="total"><camunda:script scriptFormat="python">round(amount * 1.2, 2)'
                       '</camunda:script></camunda:entry></camunda:map>'),
        param("tags", "<camunda:list><camunda:value>a</camunda:value><camunda:value><camunda:map>"
                      '<camunda:entry key="k">v ${item}</camunda:entry></camunda:map></camunda:value></camunda:list>'),
        param("empty", ""),
        param("summary", '<camunda:map><camunda:entry key="n"><camunda:script scriptFormat="python">'
                         'len(order["lines"])</camunda:script></camunda:entry></camunda:map>', "output")))),
        END, flows="start>check check>end"))
    instance = engine.start("p", {"item": "desk", "amount": 10})
    assert instance.data["order"] == {"item": "desk", "lines": ["first", 20], "total": 12.0}
    assert (instance.data["tags"], instance.data["empty"]) == (["a", {"k": "v desk"}], None)
    [task] = engine.tasks(instance_id=instance.id)
    assert engine.complete_task(task.id).data["summary"] == {"n": 2}


def test_service_task_inputs_are_juel_templates_like_any_tasks(database_url):
    received = []
    engine = Engine(database_url, connectors={"erp": lambda data: received.append(data) or {}})
    engine.deploy(process(START, '<bpmn:serviceTask id="call" camunda:type="external" camunda:topic="erp">' + ext(io(
        param("plain", "order"), param("value", "${n + 1}"), param("mixed", "Order ${n}"),
        param("doc", '<camunda:map><camunda:entry key="n">${n}</camunda:entry></camunda:map>'))) +
        "</bpmn:serviceTask>", END, flows="start>call call>end"))
    engine.start("p", {"n": 41})
    engine.run_due_jobs()
    assert received == [{"plain": "order", "value": 42, "mixed": "Order 41", "doc": {"n": 41}}]
    engine.close()


def test_parameters_of_events_and_gateways_are_set_too(engine):
    engine.deploy(process(START, '<bpmn:intermediateThrowEvent id="mark">' + ext(io(param("marked", "${n}"))) +
                          '</bpmn:intermediateThrowEvent>', '<bpmn:exclusiveGateway id="g">' +
                          ext(io(param("seen", "yes"))) + '</bpmn:exclusiveGateway>', END,
                          flows="start>mark mark>g g>end"))
    assert {k: v for k, v in engine.start("p", {"n": 3}).data.items() if k in ("marked", "seen")} == \
        {"marked": 3, "seen": "yes"}


@pytest.mark.parametrize(("body", "expected"), [
    ('<camunda:script scriptFormat="javascript">n * 2</camunda:script>', "in javascript, which Baton cannot run"),
    ('<camunda:script scriptFormat="groovy" resource="calc.groovy"/>', "in the file 'calc.groovy'"),
    ('<camunda:script scriptFormat="python">y = 1\ny</camunda:script>', "not one expression"),
    ("${bean.compute(n)}", "JUEL method call"),
    ('<camunda:map><camunda:entry key="k">${execution.id}</camunda:entry></camunda:map>', "entry 'k'"),
])
def test_a_parameter_baton_cannot_run_is_a_lint_error_naming_it(engine, body, expected):
    xml = process(START, user("check", inner=ext(io(param("x", body)))), END, flows="start>check check>end")
    [error] = engine.lint(xml).errors
    assert (error.element_id, error.line) == ("check", 5)
    assert "the input parameter 'x' of 'check'" in error.message and expected in error.message
    with pytest.raises(InvalidDiagram):
        engine.deploy(xml)


def test_a_parameter_name_python_cannot_hold_is_a_lint_error(engine):
    [error] = engine.lint(process(START, user("check", inner=ext(io(param("my-var", "1")))), END,
                                  flows="start>check check>end")).errors
    assert "'my-var'" in error.message and "not a name" in error.message


# Listeners


def listen(event: str, code: str, kind: str = "execution", language: str = "python") -> str:
    return (f'<camunda:{kind}Listener event="{event}"><camunda:script scriptFormat="{language}">{code}'
            f'</camunda:script></camunda:{kind}Listener>')


def test_execution_listeners_run_as_the_element_starts_and_ends_around_its_parameters(engine):
    engine.deploy(process(START, script("work", "log = log + ['script']", inner=ext(
        listen("start", "log = log + ['start listener']"), listen("end", "log = log + ['end listener']"),
        io(param("log", '<camunda:script scriptFormat="python">log + ["input"]</camunda:script>'),
           param("log", '<camunda:script scriptFormat="python">log + ["output"]</camunda:script>', "output")))),
        END, flows="start>work work>end"))
    assert engine.start("p", {"log": []}).data["log"] == ["input", "start listener", "script", "output",
                                                          "end listener"]


def test_task_listeners_run_when_the_task_is_created_and_completed(engine, database_url):
    engine.deploy(process(START, user("check", inner=ext(
        listen("create", "created = True\nreviewer = 'vera'", "task"),
        listen("complete", "approved_by = reviewer", "task"))), END, flows="start>check check>end"))
    instance = engine.start("p")
    assert instance.data["created"] is True and "approved_by" not in instance.data
    [task] = engine.tasks(instance_id=instance.id)
    assert Engine(database_url).complete_task(task.id).data["approved_by"] == "vera"


def test_take_listeners_run_as_their_flow_is_taken(engine):
    engine.deploy(process(START, script("work", "n = 1"), END,
                          '<bpmn:sequenceFlow id="taken" sourceRef="work" targetRef="end">' +
                          ext(listen("take", "took = n + 1")) + "</bpmn:sequenceFlow>", flows="start>work"))
    instance = engine.start("p")
    assert (instance.status, instance.data["took"]) == ("complete", 2)
    assert [e.element_id for e in engine.history(instance.id) if e.kind == "completed"] == ["start", "work", "end"]


def test_a_take_listener_behind_an_event_based_gateway_runs_as_its_event_is_caught(engine):
    engine.deploy(process(
        START, '<bpmn:eventBasedGateway id="wait"/>', '<bpmn:intermediateCatchEvent id="paid">'
        '<bpmn:messageEventDefinition messageRef="m"/></bpmn:intermediateCatchEvent>',
        '<bpmn:intermediateCatchEvent id="late"><bpmn:timerEventDefinition><bpmn:timeDuration>PT1H'
        '</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>', END,
        '<bpmn:sequenceFlow id="to_paid" sourceRef="wait" targetRef="paid">' + ext(listen("take", "via = 'paid'")) +
        "</bpmn:sequenceFlow>", flows="start>wait wait>late paid>end late>end",
        extra='<bpmn:message id="m" name="paid"/>'))
    instance = engine.start("p")
    assert sorted(w.kind for w in instance.waiting_on) == ["message", "timer"] and "via" not in instance.data
    engine.correlate_message("paid", {})
    after = engine.instance(instance.id)
    assert (after.status, after.data["via"]) == ("complete", "paid")


def test_process_listeners_run_at_its_start_and_end(engine):
    xml = process(START, script("work", "seen = began"), END, flows="start>work work>end").replace(
        b'isExecutable="true">', b'isExecutable="true">' + ext(
            listen("start", "began = True"), listen("end", "finished = seen")).encode())
    engine.deploy(xml)
    assert engine.start("p").data["finished"] is True


def test_a_failing_listener_is_an_incident_that_retry_runs_again(engine):
    engine.deploy(process(START, user("check", inner=ext(listen("create", "share = 100 / parts", "task"))), END,
                          flows="start>check check>end"))
    instance = engine.start("p", {"parts": 0})
    assert instance.status == "error" and engine.tasks(instance_id=instance.id) == []
    retried = engine.retry(instance.id, data={"parts": 4})
    assert (retried.status, retried.data["share"]) == ("active", 25)
    assert [t.element_id for t in engine.tasks(instance_id=instance.id)] == ["check"]  # ready, not done


def test_a_user_task_whose_assignee_cannot_be_worked_out_is_ready_again_after_retry(engine):
    engine.deploy(process(START, '<bpmn:userTask id="check" name="check" camunda:assignee="${approver}"/>', END,
                          flows="start>check check>end"))
    instance = engine.start("p")
    assert instance.status == "error" and instance.incidents[0].element_id == "check"
    retried = engine.retry(instance.id, data={"approver": "vera"})
    assert (retried.status, [t.assignee for t in engine.tasks(instance_id=instance.id)]) == ("active", ["vera"])


def test_listeners_baton_cannot_run_are_named_by_lint(engine):
    report = engine.lint(process(START, user("check", inner=ext(
        listen("start", "execution.setVariable('a', 1)", language="javascript"),
        '<camunda:executionListener class="com.acme.Audit" event="end"/>',
        '<camunda:taskListener delegateExpression="${notifier}" event="assignment"/>',
        listen("assignment", "x = 1", "task"))), END, flows="start>check check>end"))
    found = problems(report)
    assert ("error", "check", "the start listener of 'check' is a script in javascript, which Baton cannot run: "
                              "write it in Python") in found
    assert ("warning", "check", "the end listener of 'check' calls the Java class 'com.acme.Audit', which Baton "
                                "cannot run: it is ignored (write the listener as a Python script to run it)") in found
    assert sum("assignment task listener of 'check' is not run" in m for _, _, m in found) == 2
    assert len(report.errors) == 1


# Service tasks


@pytest.fixture
def calls(database_url):
    """An engine whose connectors record what they receive: erp, archiveService, com.acme.Archive, erp.order."""
    received: list[tuple[str, dict]] = []

    def connector(name):
        return lambda data: received.append((name, {k: v for k, v in data.items() if k != "starter"})) or {"ok": name}

    names = ("erp", "archiveService", "com.acme.Archive", "erp.order", "mail")
    engine = Engine(database_url, connectors={n: connector(n) for n in names})
    yield engine, received
    engine.close()


@pytest.mark.parametrize(("attributes", "name"), [
    ('camunda:type="external" camunda:topic="erp"', "erp"),
    ('camunda:delegateExpression="${archiveService}"', "archiveService"),
    ('camunda:delegateExpression="#{archiveService}"', "archiveService"),
    ('camunda:class="com.acme.Archive"', "com.acme.Archive"),
    ('camunda:expression="${erp.order()}" camunda:resultVariable="answer"', "erp.order"),
])
def test_a_service_task_calls_the_connector_its_implementation_names(calls, attributes, name):
    engine, received = calls
    xml = process(START, f'<bpmn:serviceTask id="call" {attributes}/>', END, flows="start>call call>end")
    assert engine.lint(xml).problems == ()
    engine.deploy(xml)
    instance = engine.start("p", {"n": 1})
    assert jobs_of(instance) == [("job", "call")]
    engine.run_due_jobs()
    after = engine.instance(instance.id)
    assert received == [(name, {"n": 1})] and after.status == "complete"
    assert (after.data["answer"] == {"ok": name}) if "resultVariable" in attributes else after.data["ok"] == name


def test_a_send_task_with_an_implementation_is_a_service_task(calls):
    engine, received = calls
    engine.deploy(process(START, '<bpmn:sendTask id="send" camunda:type="external" camunda:topic="mail"/>', END,
                          flows="start>send send>end"))
    instance = engine.start("p")
    assert jobs_of(instance) == [("job", "send")]
    engine.run_due_jobs()
    assert received == [("mail", {})] and engine.instance(instance.id).status == "complete"


def test_fields_are_the_connectors_input_beside_the_tasks_data(calls):
    engine, received = calls
    engine.deploy(process(START, '<bpmn:serviceTask id="call" camunda:delegateExpression="${archiveService}">' + ext(
        '<camunda:field name="a" stringValue="Hello World"/>',
        '<camunda:field name="b"><camunda:string>&lt;p&gt;Hi&lt;/p&gt;</camunda:string></camunda:field>',
        '<camunda:field name="c"><camunda:expression>Hello ${gender == \'male\' ? \'Mr.\' : \'Mrs.\'} ${name}'
        '</camunda:expression></camunda:field>', '<camunda:field name="d" expression="${n * 2}"/>') +
        "</bpmn:serviceTask>", END, flows="start>call call>end"))
    engine.start("p", {"gender": "female", "name": "Ada", "n": 2})
    engine.run_due_jobs()
    assert received == [("archiveService", {"gender": "female", "name": "Ada", "n": 2, "a": "Hello World",
                                            "b": "<p>Hi</p>", "c": "Hello Mrs. Ada", "d": 4})]


def test_a_connectors_own_inputs_and_outputs(database_url):
    def pricing(data):
        return {"status": 200, "headers": {}, "body": {"total": data["amount"] * 3}}

    engine = Engine(database_url, connectors={"pricing": pricing})
    engine.deploy(process(START, '<bpmn:serviceTask id="price">' + ext(
        "<camunda:connector><camunda:connectorId>pricing</camunda:connectorId>",
        io(param("amount", "${quantity}"), param("total", "${response.total}", "output"),
           param("code", "${statusCode}", "output")), "</camunda:connector>",
        io(param("quantity", "${n + 1}"), param("priced", "yes", "output"))) + "</bpmn:serviceTask>", END,
        flows="start>price price>end"))
    instance = engine.start("p", {"n": 1})
    engine.run_due_jobs()
    data = engine.instance(instance.id).data
    assert (data["total"], data["code"], data["quantity"], data["priced"]) == (6, 200, 2, "yes")
    assert "body" not in data  # with output parameters, only what they name comes back
    engine.close()


def test_a_connector_this_engine_lacks_is_a_lint_warning(engine):
    report = engine.lint(process(START, '<bpmn:serviceTask id="call" name="Archive" camunda:class="com.acme.Gone"/>',
                                 '<bpmn:serviceTask id="bare" name="Nothing"/>', END,
                                 flows="start>call call>bare bare>end"))
    assert report.ok and problems(report) == [
        ("warning", "call", "'Archive' calls the connector 'com.acme.Gone', which this engine does not have: register "
                            "it (Engine(connectors={'com.acme.Gone': ...})), or the task fails when it runs"),
        ("warning", "bare", "'Nothing' names nothing to call: set its implementation (an external topic, a "
                            "connector, a class or an expression naming a connector)")]


def test_an_expression_with_arguments_or_a_bean_method_field_is_named_by_lint(calls):
    engine, _ = calls
    report = engine.lint(process(START, '<bpmn:serviceTask id="call" camunda:expression="${erp.order(item, 2)}">' +
                                 ext('<camunda:field name="text1"><camunda:expression>'
                                     '${genderBean.getGenderString(gender)}</camunda:expression></camunda:field>') +
                                 "</bpmn:serviceTask>", END, flows="start>call call>end"))
    assert [(s, m.split(":")[0]) for s, _, m in problems(report)] == [
        ("warning", "'call' calls the connector 'erp.order' with its input parameters (or the task's data)"),
        ("error", "the field 'text1' of 'call' is a JUEL expression Baton cannot translate (the JUEL method call "
                  "'genderBean.getGenderString(gender)' cannot be translated")]


# Call activities


def child(marker: str = "v1") -> bytes:
    """The called process: a task to look at its data while it runs, then a script that answers."""
    return process('<bpmn:startEvent id="c_start"/>', user("inside"),
                   script("answer", f"result = a * 10\nversion = '{marker}'\nsecret = 1"),
                   '<bpmn:endEvent id="c_end"/>', flows="c_start>inside inside>answer answer>c_end",
                   process_id="child")


def caller(attributes: str = "", mappings: str = "") -> bytes:
    return process(START, f'<bpmn:callActivity id="call" name="Call" calledElement="child" {attributes}>'
                          f'{ext(mappings) if mappings else ""}</bpmn:callActivity>', END,
                   flows="start>call call>end", process_id="caller")


def run_through(engine, instance_id):
    """Complete the called process's task; the data seen inside it, and the caller's data after."""
    [task] = engine.tasks(instance_id=instance_id)
    inside = dict(engine.instance(instance_id).data)
    return inside, engine.complete_task(task.id).data


def test_in_and_out_mappings_pass_only_the_variables_they_name(engine):
    engine.deploy(caller(mappings='<camunda:in source="x" target="a"/><camunda:in sourceExpression="${x * 2}" '
                                  'target="doubled"/><camunda:out source="result" target="r"/>'
                                  '<camunda:out sourceExpression="${version}-${secret}" target="tag"/>'), child())
    instance = engine.start("caller", {"x": 4, "other": 9}, user="sam")
    inside, after = run_through(engine, instance.id)
    assert inside == {"a": 4, "doubled": 8, "starter": "sam"}
    assert {k: v for k, v in after.items() if k != "starter"} == {"x": 4, "other": 9, "r": 40, "tag": "v1-1"}


def test_all_variables_in_and_out(engine):
    engine.deploy(caller(mappings='<camunda:in variables="all"/><camunda:out variables="all"/>'), child())
    inside, after = run_through(engine, engine.start("caller", {"a": 2, "other": 9}).id)
    assert (inside["other"], after["result"], after["secret"]) == (9, 20, 1)


def test_without_mappings_all_the_data_goes_in_and_comes_back(engine):
    camunda_7 = caller().replace(b'id="defs"', b'id="defs" xmlns:modeler="http://camunda.org/schema/modeler/1.0" '
                                               b'modeler:executionPlatform="Camunda Platform"')
    assert ["Camunda 7 would pass no variables" in w.message for w in engine.lint(camunda_7, child()).warnings] == \
        [True]
    engine.deploy(caller(), child())
    inside, after = run_through(engine, engine.start("caller", {"a": 2, "other": 9}).id)
    assert (inside["other"], after["result"]) == (9, 20)


def test_the_business_key_stays_the_instances(engine):
    key = '<camunda:in businessKey="#{execution.processBusinessKey}"/><camunda:in source="a" target="a"/>'
    assert engine.lint(caller(mappings=key), child()).problems == ()
    report = engine.lint(caller(mappings='<camunda:in businessKey="${order_id}"/>'), child())
    assert report.ok and "keeps its business key" in report.warnings[0].message
    engine.deploy(caller(mappings=key), child())
    instance = engine.start("caller", {"a": 1}, business_key="order-7")
    run_through(engine, instance.id)
    assert engine.instance(instance.id).business_key == "order-7"


def test_latest_binds_to_the_newest_deployed_version_when_the_caller_is_deployed(engine):
    engine.deploy(child("v1"))
    engine.deploy(caller('camunda:calledElementBinding="latest"'))  # the called process is not uploaded with it
    first = engine.start("caller", {"a": 1})
    engine.deploy(child("v2"))
    [redeployed] = engine.deploy(caller('camunda:calledElementBinding="latest"'))  # same XML: bound anew
    assert redeployed.version == 2
    second = engine.start("caller", {"a": 1})
    assert run_through(engine, first.id)[1]["version"] == "v1"  # a running instance keeps what it started with
    assert run_through(engine, second.id)[1]["version"] == "v2"


def test_version_binding_calls_that_deployed_version(engine):
    engine.deploy(child("v1"))
    engine.deploy(child("v2"))
    engine.deploy(caller('camunda:calledElementBinding="version" camunda:calledElementVersion="1"'))
    assert run_through(engine, engine.start("caller", {"a": 1}).id)[1]["version"] == "v1"


@pytest.mark.parametrize(("attributes", "expected"), [
    ("", "the called process 'child' is neither among the uploaded files nor deployed: upload its file together "
         "with this diagram, or deploy it first"),
    ('camunda:calledElementBinding="deployment"', "it is bound to this deployment"),
    ('camunda:calledElementBinding="version" camunda:calledElementVersion="3"',
     "version 3 of the called process 'child' is not deployed"),
    ('camunda:calledElementBinding="version" camunda:calledElementVersion="latest"', "the version must be a number"),
    ('camunda:calledElementBinding="versionTag" camunda:calledElementVersionTag="1.0"', "by version tag"),
])
def test_a_called_process_baton_cannot_bind_is_a_lint_error(engine, attributes, expected):
    errors = engine.lint(caller(attributes)).errors
    assert errors and errors[0].element_id == "call" and expected in errors[0].message


def test_a_called_element_chosen_by_an_expression_is_a_lint_error(engine):
    xml = caller().replace(b'calledElement="child"', b'calledElement="${processKey}"')
    assert any("chooses the process it calls with the expression ${processKey}" in p.message
               for p in engine.lint(xml).errors)


# Extension properties


def test_extension_properties_are_readable_with_the_task(engine, database_url):
    engine.deploy(process(START, user("check", inner=ext(
        '<camunda:properties><camunda:property name="priority" value="high"/>'
        '<camunda:property name="screen" value="approval-v2"/></camunda:properties>')), END,
        flows="start>check check>end"))
    instance = engine.start("p")
    [task] = Engine(database_url).tasks(instance_id=instance.id)
    assert task.properties == {"priority": "high", "screen": "approval-v2"}
    assert engine.task(task.id).properties == task.properties
    assert engine.inbox("ann").items[0].task.properties == task.properties
