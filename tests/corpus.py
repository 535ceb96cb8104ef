"""Real modellers' diagrams: find them, make a missing gateway default explicit, and drive an instance to its end."""

from __future__ import annotations

import ast
import builtins
import json
import re
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from lxml import etree
from sqlalchemy import select

from baton.engine import Engine
from baton.engine.clock import clock
from baton.engine.errors import EngineError
from baton.engine.models import Subscription

HERE = Path(__file__).parent
SHARED = HERE.parent.parent / "shared" / "corpus" / "miwg"
KEPT = HERE / "data" / "miwg"  # the files the tests need, with their licence note, for a clone without ../shared
BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
NO_CONDITION = re.compile(r"leaves the gateway .* without a condition")
ROUNDS = 200


def corpus() -> Path:
    return SHARED if SHARED.is_dir() else KEPT


def files(root: Path) -> Iterator[tuple[str, Path]]:
    """(tool, file) for every diagram under the corpus, tool by tool."""
    for tool in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(tool.glob("*.bpmn")):
            yield tool.name, path


def only_missing_conditions(problems: Any) -> bool:
    errors = [p for p in problems if p.severity == "error"]
    return bool(errors) and all(NO_CONDITION.search(p.message) for p in errors)


def first_flow_default(xml: bytes) -> bytes:
    """The test's transform: each exclusive or inclusive gateway without a default takes its first outgoing flow."""
    root = etree.fromstring(xml, etree.XMLParser(resolve_entities=False, no_network=True))
    for gateway in root.iter(f"{{{BPMN}}}exclusiveGateway", f"{{{BPMN}}}inclusiveGateway"):
        outgoing = [f.text for f in gateway.iterfind(f"{{{BPMN}}}outgoing") if f.text]
        if not outgoing:
            outgoing = [f.get("id") for f in root.iter(f"{{{BPMN}}}sequenceFlow")
                        if f.get("sourceRef") == gateway.get("id")]
        if len(outgoing) > 1 and not gateway.get("default"):
            gateway.set("default", outgoing[0])
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


class AnyConnector(dict):
    """Every service task's connector answers with nothing (a corpus diagram names systems we do not have)."""

    def get(self, key: Any, default: Any = None) -> Any:
        return lambda data: {}


def answer(field: Any) -> Any:
    """What an automatic user enters in a form field: its default, or a plain value of its type (yes to a yes/no)."""
    if field.default is not None:
        return field.default
    if field.values:
        return field.values[0][0]
    return {"boolean": True, "long": 1, "decimal": 1, "date": date.today().isoformat()}.get(field.type, "x")


def unset(instance: Any) -> set[str]:
    """The names a failed expression read that the instance's data lacks (a task's external form sets them)."""
    quoted = re.search(r"expression '(.+)'", instance.incidents[0].message) if instance.incidents else None
    try:
        tree = ast.parse(quoted.group(1), mode="eval") if quoted else None
    except SyntaxError:
        return set()
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} if tree else set()
    return names - set(instance.data) - set(dir(builtins))


def correlation_key(engine: Engine, task_id: Any) -> str | None:
    """The Camunda 8 correlation key a message catcher waits with (a sender knows it; the driver looks it up)."""
    with engine.db.reading() as conn:
        key = conn.execute(select(Subscription.key).where(Subscription.task_id == task_id)).scalar()
    return json.loads(key).get("zeebe:correlationKey") if key else None


def drive(engine: Engine, instance_id: Any) -> str:
    """Complete tasks, fire timers, run jobs and deliver awaited messages and signals until the instance ends."""
    for _ in range(ROUNDS):
        instance = engine.instance(instance_id)
        if instance.status == "error" and (missing := unset(instance)):
            keyed = "correlation key" in instance.incidents[0].message  # a text, as Camunda 8 keys are
            engine.retry(instance_id, data=dict.fromkeys(missing, "x" if keyed else True))  # what a form would set
            continue
        if instance.status != "active":
            return instance.status
        kinds = {w.kind for w in instance.waiting_on}
        for task in engine.tasks(instance_id=instance_id):
            engine.complete_task(task.id, {f.id: answer(f) for f in task.form if not f.readonly})
        if kinds & {"timer", "job"}:
            due = [w.due for w in instance.waiting_on if w.due is not None]
            if due and min(due) > clock.now():
                clock.advance(min(due) - clock.now() + timedelta(seconds=1))
            engine.run_due_jobs()
        for waiting in instance.waiting_on:
            try:
                if waiting.kind == "message":
                    engine.correlate_message(waiting.name, business_key=instance.business_key,
                                             correlation_key=correlation_key(engine, waiting.task_id))
                elif waiting.kind == "signal":
                    engine.signal(waiting.name)
            except EngineError:
                continue
        if not kinds:
            return "stuck"
    status = engine.instance(instance_id).status
    return "looped" if status == "active" else status  # still going round after every round: a loop
