"""Timers fire on the engine's clock, service tasks call connectors, and notify() fills the outbox."""

from __future__ import annotations

import socket
from datetime import timedelta
from pathlib import Path

import pytest

from baton.engine import Engine
from baton.engine.clock import clock
from bpmn_builder import process

REMINDED = process(
    '<bpmn:startEvent id="start"/>',
    '<bpmn:userTask id="approve" name="Approve" camunda:assignee="dana"/>',
    '<bpmn:boundaryEvent id="remind" attachedToRef="approve" cancelActivity="false"><bpmn:timerEventDefinition>'
    '<bpmn:timeDuration>P2D</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:boundaryEvent>',
    '<bpmn:scriptTask id="nudge"><bpmn:script>sent = notify("dana", "Reminder", "Please approve")</bpmn:script>'
    '</bpmn:scriptTask>',
    '<bpmn:endEvent id="reminded"/>', '<bpmn:endEvent id="end"/>',
    flows="start>approve approve>end remind>nudge nudge>reminded")


@pytest.fixture
def engine(database_url):
    engine = Engine(database_url, connectors={"erp.ok": lambda data: {"order": data["n"] * 2},
                                              "erp.down": lambda data: 1 / 0})
    yield engine
    engine.close()


def test_a_due_timer_fires_once_on_the_engines_clock(engine, database_url):
    engine.deploy(REMINDED)
    instance = engine.start("p")
    (timer,) = [w for w in instance.waiting_on if w.kind == "timer"]
    assert timer.due - clock.now() > timedelta(days=1, hours=23)
    assert engine.run_due_jobs() == 0
    clock.advance(timedelta(days=2, minutes=1))
    assert Engine(database_url).run_due_jobs() == 1
    assert Engine(database_url).run_due_jobs() == 0
    after = engine.instance(instance.id)
    assert [w.kind for w in after.waiting_on] == ["task"]
    assert [(n["recipient"], n["subject"]) for n in engine.outbox()] == [("dana", "Reminder")]
    assert [e.element_id for e in engine.history(instance.id) if e.kind == "timer fired"] == ["remind"]


def test_notify_in_a_failed_step_sends_nothing(engine):
    engine.deploy(process('<bpmn:startEvent id="start"/>',
                          '<bpmn:scriptTask id="s"><bpmn:script>notify("ann", "hi")\nx = 1 / 0</bpmn:script>'
                          '</bpmn:scriptTask>', '<bpmn:endEvent id="end"/>', flows="start>s s>end"))
    assert engine.start("p").status == "error"
    assert engine.outbox() == []


def test_a_service_task_job_calls_its_connector(engine):
    engine.deploy(process('<bpmn:startEvent id="start"/>',
                          '<bpmn:serviceTask id="call" camunda:type="external" camunda:topic="erp.ok"/>',
                          '<bpmn:endEvent id="end"/>', flows="start>call call>end"))
    instance = engine.start("p", {"n": 21})
    assert engine.run_due_jobs() == 1
    after = engine.instance(instance.id)
    assert (after.status, after.data["order"]) == ("complete", 42)


@pytest.mark.parametrize("topic", ["erp.down", "nobody"])
def test_a_failing_service_task_retries_with_backoff_then_becomes_an_incident(engine, topic):
    engine.deploy(process('<bpmn:startEvent id="start"/>',
                          f'<bpmn:serviceTask id="call" camunda:type="external" camunda:topic="{topic}"/>',
                          '<bpmn:endEvent id="end"/>', flows="start>call call>end"))
    instance = engine.start("p", {"n": 21})
    for wait in (timedelta(0), timedelta(seconds=10), timedelta(minutes=1)):
        clock.advance(wait)
        assert engine.run_due_jobs() == 1  # tried, failed, and given back with a later due time
        assert engine.run_due_jobs() == 0
        assert engine.instance(instance.id).status == "active"
        assert engine.job_status().retrying == 1
    clock.advance(timedelta(minutes=9))
    assert engine.run_due_jobs() == 0  # the last retry waits ten minutes
    clock.advance(timedelta(minutes=1, seconds=1))
    assert engine.run_due_jobs() == 1
    after = engine.instance(instance.id)
    assert after.status == "error" and after.incidents[0].element_id == "call"
    assert engine.job_status().failed == 1


def test_a_failed_service_task_runs_again_after_retry(database_url):
    calls = []

    def flaky(data):
        calls.append(data["n"])
        if len(calls) < 5:
            raise ConnectionError("ERP is down")
        return {"done": True}

    engine = Engine(database_url, connectors={"erp": flaky})
    engine.deploy(process('<bpmn:startEvent id="start"/>',
                          '<bpmn:serviceTask id="call" camunda:type="external" camunda:topic="erp">'
                          '<bpmn:extensionElements><camunda:failedJobRetryTimeCycle>R3/PT5M'
                          '</camunda:failedJobRetryTimeCycle></bpmn:extensionElements></bpmn:serviceTask>',
                          '<bpmn:endEvent id="end"/>', flows="start>call call>end"))
    instance = engine.start("p", {"n": 1})
    for _ in range(4):
        engine.run_due_jobs()
        clock.advance(timedelta(minutes=5, seconds=1))
    failed = engine.instance(instance.id)
    assert failed.status == "error" and "ERP is down" in failed.incidents[0].message and len(calls) == 4
    assert engine.retry(instance.id).status == "active"
    assert engine.run_due_jobs() == 1  # the attempts start again from the first
    assert engine.instance(instance.id).status == "complete" and len(calls) == 5
    engine.close()


def test_the_outbox_is_sent_by_smtp_once_each(sqlite_url, monkeypatch):
    from aiosmtpd.controller import Controller

    from baton.engine.orgfile import import_file

    class Inbox:
        def __init__(self):
            self.mails = []

        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's handler name
            self.mails.append((envelope.rcpt_tos, envelope.content.decode()))
            return "250 OK"

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    received = Inbox()
    server = Controller(received, hostname="127.0.0.1", port=port)
    server.start()
    try:
        monkeypatch.setenv("BATON_SMTP_URL", f"smtp://127.0.0.1:{port}")
        engine = Engine(sqlite_url)
        import_file(engine.db.engine, Path(__file__).parent / "data" / "org_purchase.json")
        engine.deploy(REMINDED)
        engine.start("p")
        clock.advance(timedelta(days=2, minutes=1))
        engine.run_due_jobs()
        engine.run_due_jobs()
        assert [rcpt for rcpt, _ in received.mails] == [["dana@example.com"]]
        assert "Subject: Reminder" in received.mails[0][1]
        assert engine.outbox() == [] and engine.outbox(unsent=False)[0]["sent_at"] is not None
        engine.close()
    finally:
        server.stop()


def test_without_a_mail_server_the_outbox_waits(sqlite_url, monkeypatch):
    monkeypatch.setenv("BATON_SMTP_URL", "smtp://127.0.0.1:9")  # nothing listens there
    engine = Engine(sqlite_url)
    engine.deploy(REMINDED)
    engine.start("p")
    clock.advance(timedelta(days=2, minutes=1))
    assert engine.run_due_jobs() == 1
    assert [n["subject"] for n in engine.outbox()] == ["Reminder"]
    engine.close()


@pytest.mark.parametrize(("cycle", "ok"), [("R3/PT10M", True), ("PT10S,PT1M,PT10M", True), ("R0/PT1M", True),
                                           ("every minute", False), ("R3/soon", False)])
def test_a_retry_cycle_that_cannot_be_read_is_a_lint_error(engine, cycle, ok):
    report = engine.lint(process('<bpmn:startEvent id="start"/>',
                                 '<bpmn:serviceTask id="call" camunda:topic="erp.ok"><bpmn:extensionElements>'
                                 f'<camunda:failedJobRetryTimeCycle>{cycle}</camunda:failedJobRetryTimeCycle>'
                                 '</bpmn:extensionElements></bpmn:serviceTask>', '<bpmn:endEvent id="end"/>',
                                 flows="start>call call>end"))
    assert report.ok == ok
    assert ok or ("call", 1) == (report.errors[0].element_id, len(report.errors))
