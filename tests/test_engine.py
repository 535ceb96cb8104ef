"""The Engine facade: deploy, versions, start, tasks, forms, incidents and administration."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from baton.engine import Engine
from baton.engine.errors import (
    Conflict,
    DefinitionNotFound,
    Forbidden,
    InstanceNotFound,
    InvalidData,
    InvalidDiagram,
    InvalidState,
    TaskNotFound,
)
from bpmn_builder import APPROVAL, DIVIDE, process
from conftest import diagram


def fresh(url):
    """A new Engine on the same database: every step also proves persistence."""
    return Engine(url)


def test_deploy_versions_and_noop_redeploy(engine, database_url):
    first = engine.deploy(APPROVAL, user="alice")
    assert [(d.process_id, d.version, d.deployed_by) for d in first] == [("approval", 1, "alice")]
    assert fresh(database_url).deploy(APPROVAL)[0].version == 1
    changed = APPROVAL.replace(b'name="Approve"', b'name="Approve it"', 1)
    assert engine.deploy(changed)[0].version == 2
    assert [d.version for d in engine.definitions()] == [2, 1]
    assert engine.definition("approval").version == 2
    assert engine.definition("approval", 1).checksum == first[0].checksum
    assert engine.diagram("approval", 1) == APPROVAL
    with pytest.raises(DefinitionNotFound):
        engine.definition("nope")


def test_running_instances_stay_on_their_version(engine, database_url):
    engine.deploy(APPROVAL)
    old = engine.start("approval", {"approver": "ann"})
    engine.deploy(APPROVAL.replace(b'name="Approve"', b'name="Approve v2"', 1))
    new = engine.start("approval", {"approver": "ann"})
    names = {t.instance_id: t.name for t in fresh(database_url).tasks()}
    assert (old.definition_version, names[old.id]) == (1, "Approve")
    assert (new.definition_version, names[new.id]) == (2, "Approve v2")


def test_lint_reports_every_error_of_a_file_at_once(engine):
    broken = process(
        '<bpmn:startEvent id="start"/>',
        '<bpmn:exclusiveGateway id="choose" name="Choose"/>',
        '<bpmn:scriptTask id="bad" name="Bad"><bpmn:script>x = = 1</bpmn:script></bpmn:scriptTask>',
        '<bpmn:scriptTask id="sneaky"><bpmn:script>import os</bpmn:script></bpmn:scriptTask>',
        '<bpmn:endEvent id="end"/>',
        flows="start>choose choose>bad choose>sneaky bad>end sneaky>end")
    report = engine.lint(broken)
    assert not report.ok
    flagged = {(p.element_id, p.line is not None) for p in report.errors}
    assert {("flow_1", True), ("flow_2", True), ("bad", True)} <= flagged
    assert [(p.element_id, "imports are not allowed" in p.message) for p in report.warnings] == [("sneaky", True)]
    with pytest.raises(InvalidDiagram) as caught:
        engine.deploy(broken)
    assert len(caught.value.problems) == len(report.errors)
    assert engine.definitions() == []


@pytest.mark.parametrize(("content", "expected_line", "words"), [
    (b'<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY a "aaaa">]>\n<x>&a;</x>', 2, "DOCTYPE"),
    (APPROVAL[:400], None, "not well-formed"),
])
def test_unsafe_or_broken_xml_is_refused_with_a_line(engine, content, expected_line, words):
    with pytest.raises(InvalidDiagram) as caught:
        engine.deploy(content)
    problem = caught.value.problems[0]
    assert words in problem.message
    assert problem.line == (expected_line or problem.line) and problem.line


def test_oversized_diagram_is_refused_before_parsing(database_url, monkeypatch):
    monkeypatch.setenv("BATON_MAX_DIAGRAM_BYTES", "1000")
    with pytest.raises(InvalidDiagram, match="limit is 1,000"):
        Engine(database_url).deploy(APPROVAL + b" " * 1000)


def test_unconditioned_exclusive_flow_names_its_line_and_element(engine):
    diagram = process('<bpmn:startEvent id="start"/>', '<bpmn:exclusiveGateway id="gw"/>',
                      '<bpmn:endEvent id="a"/>', '<bpmn:endEvent id="b"/>', flows="start>gw gw>a gw>b")
    with pytest.raises(InvalidDiagram) as caught:
        engine.deploy(diagram)
    lines = diagram.decode().splitlines()
    for problem in caught.value.problems:
        assert problem.element_id in lines[problem.line - 1]
        assert "without a condition" in problem.message


def test_a_user_completes_only_declared_fields_typed_and_validated(engine, database_url):
    engine.deploy(APPROVAL)
    instance = engine.start("approval", {"approver": "ann", "amount": Decimal("50")}, user="sam")
    task = fresh(database_url).tasks(user="ann")[0]
    assert [f.id for f in task.form] == ["decision", "comment", "quantity"]
    with pytest.raises(InvalidData) as caught:
        fresh(database_url).complete_task(task.id, {"decision": "maybe", "comment": "x" * 30}, user="ann")
    assert {e.field for e in caught.value.errors} == {"decision", "comment"}
    done = fresh(database_url).complete_task(
        task.id, {"decision": "approve", "quantity": "3", "amount": "1000000", "starter": "mallory"}, user="ann")
    assert done.status == "complete"
    assert done.data["amount"] == Decimal("50")
    assert done.data["quantity"] == 3
    assert done.starter == "sam" and done.data["starter"] == "sam"
    assert fresh(database_url).instance(instance.id).status == "complete"


def test_starter_cannot_be_overwritten_by_data_or_script(engine, database_url):
    diagram = process('<bpmn:startEvent id="start"/>',
                      '<bpmn:scriptTask id="hack"><bpmn:script>starter = "mallory"</bpmn:script></bpmn:scriptTask>',
                      '<bpmn:userTask id="look" camunda:assignee="${starter}"/>', '<bpmn:endEvent id="end"/>',
                      flows="start>hack hack>look look>end")
    engine.deploy(diagram)
    instance = engine.start("p", {"starter": "mallory"}, user="sam")
    assert instance.starter == "sam" and instance.data["starter"] == "sam"
    assert [t.assignee for t in fresh(database_url).tasks(instance_id=instance.id)] == ["sam"]


def test_only_the_assignee_or_a_candidate_may_act(database_url):
    class Groups:
        def groups_of(self, user):
            return {"clerks"} if user == "carl" else set()

    engine = Engine(database_url, directory=Groups())
    engine.deploy(APPROVAL, DIVIDE)
    engine.start("approval", {"approver": "ann"})
    task = engine.tasks(process_id="approval")[0]
    with pytest.raises(Forbidden):
        engine.complete_task(task.id, {"decision": "approve"}, user="bob")
    assert engine.tasks(user="bob") == []
    engine.start("divide", {"divisor": 5})
    clerk_task = engine.tasks(process_id="divide")[0]
    assert [t.id for t in engine.tasks(user="carl")] == [clerk_task.id]
    with pytest.raises(Forbidden):
        engine.claim(clerk_task.id, user="bob")
    assert engine.claim(clerk_task.id, user="carl").assignee == "carl"
    assert Engine(database_url, directory=Groups()).tasks(user="carl")[0].assignee == "carl"
    with pytest.raises(Forbidden):
        engine.unclaim(clerk_task.id, user="ann")
    assert engine.unclaim(clerk_task.id, user="carl").assignee is None


def test_a_task_completes_once(engine, database_url):
    engine.deploy(APPROVAL)
    engine.start("approval", {"approver": "ann"})
    task = engine.tasks()[0]
    engine.complete_task(task.id, {"decision": "approve"}, user="ann")
    with pytest.raises(TaskNotFound):
        fresh(database_url).complete_task(task.id, {"decision": "reject"}, user="ann")
    with pytest.raises(InstanceNotFound):
        engine.instance("00000000-0000-0000-0000-000000000000")
    with pytest.raises(InvalidData):
        engine.instance("not-an-id")


def test_failing_script_is_an_incident_that_retry_resolves(engine, database_url):
    engine.deploy(DIVIDE)
    instance = engine.start("divide", {"divisor": 0})
    assert instance.status == "error"
    (incident,) = instance.incidents
    assert incident.element_id == "divide" and "ZeroDivisionError" in f"{incident.error_type} {incident.message}"
    assert incident.line == 2
    assert fresh(database_url).instances(incidents=True)[0].id == instance.id
    assert engine.tasks() == []
    fixed = fresh(database_url).retry(instance.id, data={"divisor": 5})
    assert fixed.status == "active" and fixed.incidents == ()
    assert fixed.data["result"] == 2
    kinds = [e.kind for e in engine.history(instance.id)]
    assert kinds.count("incident") == 1 and "retried" in kinds


def test_retry_that_fails_again_keeps_one_open_incident(engine):
    engine.deploy(DIVIDE)
    instance = engine.start("divide", {"divisor": 0})
    again = engine.retry(instance.id)
    assert again.status == "error" and len(again.incidents) == 1


def test_suspend_resume_and_cancel(engine, database_url):
    engine.deploy(APPROVAL)
    instance = engine.start("approval", {"approver": "ann"})
    task = engine.tasks()[0]
    assert fresh(database_url).suspend(instance.id).status == "suspended"
    assert engine.tasks(user="ann") == []
    with pytest.raises(InvalidState):
        fresh(database_url).complete_task(task.id, {"decision": "approve"}, user="ann")
    assert fresh(database_url).resume(instance.id).status == "active"
    cancelled = fresh(database_url).cancel(instance.id)
    assert cancelled.status == "cancelled" and cancelled.ended is not None and cancelled.waiting_on == ()
    assert engine.tasks() == []
    with pytest.raises(InvalidState):
        engine.resume(instance.id)


def test_instances_filter_by_status_starter_waiting_and_data(engine):
    engine.deploy(APPROVAL, DIVIDE)
    waiting = engine.start("approval", {"approver": "ann", "region": "north"}, user="sam", business_key="PO-1")
    failed = engine.start("divide", {"divisor": 0}, user="ivy")
    assert [i.id for i in engine.instances(status="error")] == [failed.id]
    assert [i.id for i in engine.instances(starter="sam")] == [waiting.id]
    assert [i.id for i in engine.instances(waiting_on="task")] == [waiting.id]
    assert [i.id for i in engine.instances(business_key="PO-1")] == [waiting.id]
    assert [i.id for i in engine.instances(data={"region": "north"})] == [waiting.id]
    assert engine.instances(waiting_on="timer") == []
    with pytest.raises(InvalidData):
        engine.instances(status="sleeping")


def test_timer_due_times_are_in_the_job_projection_and_naive_dates_mean_utc(engine):
    diagram = process(
        '<bpmn:startEvent id="start"/>',
        '<bpmn:intermediateCatchEvent id="later"><bpmn:timerEventDefinition>'
        '<bpmn:timeDate>2030-01-01T09:00:00</bpmn:timeDate></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>',
        '<bpmn:intermediateCatchEvent id="wait"><bpmn:timerEventDefinition>'
        '<bpmn:timeDuration>PT48H</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>',
        '<bpmn:endEvent id="end"/>', flows="start>later later>wait wait>end")
    engine.deploy(diagram)
    instance = engine.start("p")
    (timer,) = instance.waiting_on
    assert (timer.kind, timer.element_id, timer.due) == ("timer", "later", datetime(2030, 1, 1, 9, tzinfo=UTC))
    assert [i.id for i in engine.instances(waiting_on="timer")] == [instance.id]


def test_service_task_is_a_wait_state_with_a_job(engine):
    diagram = process('<bpmn:startEvent id="start"/>',
                      '<bpmn:serviceTask id="call" camunda:type="external" camunda:topic="erp"/>',
                      '<bpmn:endEvent id="end"/>', flows="start>call call>end")
    engine.deploy(diagram)
    instance = engine.start("p")
    assert instance.status == "active"
    assert [(w.kind, w.element_id) for w in instance.waiting_on] == [("job", "call")]
    assert [i.id for i in engine.instances(waiting_on="jobs")] == [instance.id]
    assert engine.tasks() == []


def test_a_loop_of_300_passes_is_not_reported_complete_early(sqlite_url):
    diagram = process(
        '<bpmn:startEvent id="start"/>',
        '<bpmn:scriptTask id="count"><bpmn:script>n = n + 1</bpmn:script></bpmn:scriptTask>',
        '<bpmn:exclusiveGateway id="more" default="flow_done"/>', '<bpmn:endEvent id="end"/>',
        '<bpmn:sequenceFlow id="flow_again" sourceRef="more" targetRef="count">'
        '<bpmn:conditionExpression>n &lt; 300</bpmn:conditionExpression></bpmn:sequenceFlow>',
        '<bpmn:sequenceFlow id="flow_done" sourceRef="more" targetRef="end"/>',
        flows="start>count count>more")
    engine = Engine(sqlite_url)
    engine.deploy(diagram)
    instance = engine.start("p", {"n": 0})
    assert (instance.status, instance.data["n"]) == ("complete", 300)
    assert sum(e.element_id == "count" for e in engine.history(instance.id)) == 300


def test_conflict_is_an_engine_error():
    assert issubclass(Conflict, Exception) and Conflict.__mro__[1].__name__ == "EngineError"


def test_dmn_and_call_activity_deploy_together_and_resolve(engine, database_url):
    main = process('<bpmn:startEvent id="start"/>',
                   '<bpmn:businessRuleTask id="decide" camunda:decisionRef="approval_level"/>',
                   '<bpmn:callActivity id="sub" calledElement="child"/>',
                   '<bpmn:endEvent id="end"/>', flows="start>decide decide>sub sub>end", process_id="parent")
    child = process('<bpmn:startEvent id="c_start"/>',
                    '<bpmn:scriptTask id="c_run"><bpmn:script>seen = level.upper()</bpmn:script></bpmn:scriptTask>',
                    '<bpmn:endEvent id="c_end"/>', flows="c_start>c_run c_run>c_end", process_id="child")
    assert not engine.lint(main).ok  # alone, neither the decision nor the called process resolves
    deployed = engine.deploy(main, child, diagram("limits.dmn"))
    assert sorted(d.process_id for d in deployed) == ["child", "parent"]
    done = fresh(database_url).start("parent", {"amount": 5000})
    assert (done.status, done.data["level"], done.data["seen"]) == ("complete", "director", "DIRECTOR")


def test_schema_revision_is_alembic_head():
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from baton.engine.models import SCHEMA_REVISION

    config = Config()
    config.set_main_option("script_location", "baton.engine:migrations")
    assert ScriptDirectory.from_config(config).get_current_head() == SCHEMA_REVISION


def test_a_bad_database_url_is_an_engine_error():
    from baton.engine.errors import EngineError

    with pytest.raises(EngineError):
        Engine("nosuchdb://x")


def test_start_form_activity_and_reassign(engine, database_url):
    engine.deploy(APPROVAL)
    assert engine.start_form("approval") == ()
    instance = engine.start("approval", {"approver": "ann"})
    task = engine.tasks()[0]
    assert engine.reassign(task.id, "bob", user="admin").assignee == "bob"
    with pytest.raises(Forbidden):
        fresh(database_url).complete_task(task.id, {"decision": "approve"}, user="ann")
    fresh(database_url).complete_task(task.id, {"decision": "approve"}, user="bob")
    assert engine.activity(instance.id) == {"start": 1, "approve": 1, "end": 1}
    assert [e.data for e in engine.history(instance.id) if e.kind == "reassigned"] == [{"from": "ann", "to": "bob"}]


def test_accounts_hash_passwords_and_keep_roles(sqlite_url):
    from baton.engine import accounts, store

    db = store.connect(sqlite_url)
    accounts.set_password(db, "alice", "correct horse", ("analyst",))
    assert accounts.authenticate(db, "alice", "wrong horse!") is None
    assert accounts.authenticate(db, "nobody", "correct horse") is None
    signed = accounts.authenticate(db, "alice", "correct horse")
    assert signed.roles == {"analyst"}
    accounts.set_password(db, "alice", "battery staple")
    assert accounts.authenticate(db, "alice", "battery staple").roles == {"analyst"}
    with pytest.raises(InvalidData):
        accounts.set_password(db, "bob", "short")


def test_inbox_pages_filters_and_counts_with_indexed_queries(database_url):
    class Clerks:
        def groups_of(self, user):
            return {"clerks"} if user == "carl" else set()

    engine = Engine(database_url, directory=Clerks())
    engine.deploy(DIVIDE, APPROVAL)
    for n in range(1, 6):
        engine.start("divide", {"divisor": n, "item": f"Order {n}"}, user="sam", business_key=f"PO-{n}")
    engine.start("approval", {"approver": "carl", "item": "Chair"})
    inbox = engine.inbox("carl", size=2)
    assert (inbox.total, inbox.found, len(inbox.items)) == (6, 6, 2)
    assert engine.inbox("carl", text="order 3").found == 1
    assert engine.inbox("carl", text="ORDER 3").items[0].title == "Order 3"
    assert engine.inbox("carl", process_id="approval").items[0].task.name == "Approve"
    newest = engine.inbox("carl", sort="created", size=1).items[0]
    assert (newest.title, newest.requester) == ("Chair", None)
    assert engine.inbox("carl", page=4, size=2).items == ()
    assert engine.inbox("nobody").total == 0
    engine.complete_task(engine.inbox("carl", text="order 3").items[0].task.id)  # its entries go with its row
    assert (engine.inbox("carl").total, engine.inbox("carl", text="order 3").found) == (5, 0)
    engine.close()


SHARED = process('<bpmn:startEvent id="start"/>',
                 '<bpmn:userTask id="review" name="Review" camunda:candidateGroups="clerks,buyers" '
                 'camunda:candidateUsers="carl"/>',
                 '<bpmn:userTask id="file" name="File" camunda:assignee="dora"/>',
                 '<bpmn:endEvent id="end"/>', flows="start>review review>file file>end", process_id="shared")


class Groups:
    """carl is a clerk and a buyer, bea a buyer, dora in no group."""

    def groups_of(self, user):
        return {"carl": {"clerks", "buyers"}, "bea": {"buyers"}}.get(user, set())


def test_a_task_seen_through_several_principals_shows_once(database_url):
    engine = Engine(database_url, directory=Groups())
    engine.deploy(SHARED)
    for n in range(3):
        engine.start("shared", {"item": f"Desk {n}"})
    inbox = engine.inbox("carl", size=2)
    assert (inbox.total, inbox.found, len(inbox.items)) == (3, 3, 2)
    assert len({i.task.id for i in inbox.items + engine.inbox("carl", page=2, size=2).items}) == 3
    assert len(engine.tasks(user="carl")) == 3
    engine.close()


def test_claiming_moves_a_task_out_of_the_others_inboxes_and_back(database_url):
    engine = Engine(database_url, directory=Groups())
    engine.deploy(SHARED)
    engine.start("shared", {"item": "Desk"})
    task = engine.inbox("bea").items[0].task
    engine.claim(task.id, user="carl")
    assert engine.inbox("bea").total == 0 and engine.tasks(user="bea") == []
    assert engine.inbox("carl").items[0].task.assignee == "carl"
    engine.unclaim(task.id, user="carl")
    assert engine.inbox("bea").total == 1
    engine.reassign(task.id, "dora", user="admin")
    assert (engine.inbox("bea").total, engine.inbox("carl").total, engine.inbox("dora").total) == (0, 0, 1)
    engine.close()


def test_suspended_and_finished_instances_leave_the_inbox(database_url):
    engine = Engine(database_url, directory=Groups())
    engine.deploy(SHARED)
    started = engine.start("shared", {"item": "Desk"})
    engine.suspend(started.id, user="admin")
    assert engine.inbox("bea").total == 0
    engine.resume(started.id, user="admin")
    task = engine.inbox("bea").items[0].task
    engine.complete_task(task.id, {"item": "Standing desk"})  # host code may change the data
    assert engine.inbox("bea").total == 0
    assert engine.inbox("dora", text="standing").items[0].title == "Standing desk"  # the title follows the data
    assert engine.inbox("dora", text="desk 2").found == 0
    engine.complete_task(engine.inbox("dora").items[0].task.id, user="dora")
    assert engine.inbox("dora").total == 0
    engine.close()


def test_inbox_counts_stop_at_the_cap(database_url, monkeypatch):
    from baton.engine import store

    monkeypatch.setattr(store, "COUNT_CAP", 3)
    engine = Engine(database_url, directory=Groups())
    engine.deploy(SHARED)
    for n in range(5):
        engine.start("shared", {"item": f"Chair {n}"})
    inbox = engine.inbox("carl", text="chair", size=10)
    assert (inbox.total, inbox.found, len(inbox.items)) == (4, 4, 5)  # "3+" for counts, every task on the page
    engine.close()


def test_upgrading_from_revision_0001_fills_the_inbox(sqlite_url):
    import sqlalchemy as sa
    from alembic import command
    from alembic.config import Config

    from baton.engine import store

    engine = Engine(sqlite_url, directory=Groups())
    engine.deploy(SHARED)
    engine.start("shared", {"item": "Lamp"}, business_key="PO-7")
    config = Config()
    config.set_main_option("script_location", "baton.engine:migrations")
    with engine.db.engine.execution_options(write=True).begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0001")
    with engine.db.engine.connect() as conn:
        assert "inbox_entry" not in sa.inspect(conn).get_table_names()
    engine.close()
    store._upgraded.clear()
    upgraded = Engine(sqlite_url, directory=Groups())
    assert [i.title for i in upgraded.inbox("bea", text="po-7").items] == ["Lamp"]
    upgraded.close()


def test_the_migrations_build_exactly_the_models_schema(database_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from baton.engine import store
    from baton.engine.migrations import include_object
    from baton.engine.models import Base

    with store.connect(database_url).connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": include_object})
        assert compare_metadata(context, Base.metadata) == []
