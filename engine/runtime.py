"""IO-free steps on a BpmnWorkflow: start, advance until it waits, complete, retry, and what it waits on."""

from __future__ import annotations

import copy
import json
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from types import SimpleNamespace
from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn import BpmnEvent, BpmnWorkflow
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.specs.defaults import StartEvent
from SpiffWorkflow.bpmn.specs.event_definitions import (
    MessageEventDefinition,
    MultipleEventDefinition,
    NoneEventDefinition,
    SignalEventDefinition,
)
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition
from SpiffWorkflow.bpmn.specs.mixins.inclusive_gateway import InclusiveGateway
from SpiffWorkflow.bpmn.specs.mixins.unstructured_join import UnstructuredJoin
from SpiffWorkflow.bpmn.util.task import BpmnTaskIterator
from SpiffWorkflow.exceptions import SpiffWorkflowException, TaskNotFoundException
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.deep_merge import DeepMerge
from SpiffWorkflow.util.task import TaskIterator, TaskState

from . import elements, mappings, pruning
from .clock import clock
from .errors import InvalidState, TaskNotFound
from .parsing import python_expression as parsing_expression
from .scripting import Sandbox, SandboxEnvironment
from .specs import ServiceTask

log = logging.getLogger(__name__)

# SpiffWorkflow's task iterators silently stop at depth 1000: a long loop would look finished. Lift the limit.
TaskIterator.__init__.__defaults__ = (None, 10**9, True, None)
BpmnTaskIterator.__init__.__defaults__ = (None, 10**9, True, False, None)

for _name in ("spiff.task", "spiff.workflow", "spiff.data", "spiff.metrics"):
    logging.getLogger(_name).setLevel(logging.WARNING)  # SpiffWorkflow builds log records on every state change

DURATION = re.compile(r"^P(?=\d|T\d)")

# SpiffWorkflow's DeepMerge copies one level: a task inheriting data, or a join merging branches, shares nested lists
# and dicts with other tasks and later merges into them in place. Merge a deep copy, so no two tasks share a value.
_spiff_merge = DeepMerge.merge
ATOMIC = frozenset({str, int, float, bool, type(None), Decimal, datetime, date, time, UUID})


def copy_data(data: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of task data; values that cannot change in place (numbers, strings, dates) are shared, not copied.

    Equal to `copy.deepcopy(data)` (nested values that share an object still share their copy), at a fraction of its
    cost: it runs every time a task inherits data, and most values are scalars.
    """
    nested = {k: v for k, v in data.items() if type(v) not in ATOMIC}
    return {**data, **copy.deepcopy(nested)} if nested else dict(data)


def _merge_copy(a: dict[str, Any], b: dict[str, Any], path: list[str] | None = None) -> dict[str, Any]:
    return _spiff_merge(a, copy_data(b) if path is None else b, path)


DeepMerge.merge = staticmethod(_merge_copy)

# SpiffWorkflow's inclusive join looks for its inputs from the root down to the first task of its own spec on each
# path. In a loop that is last pass's join: it counts last pass's branches as arrived and fires before this pass's
# branches are done (and then again for each of them). Look below the join's own last firing instead, its nearest
# ancestor of the same spec; without one (no loop), exactly as before.
_inclusive_threshold = InclusiveGateway._check_threshold_unstructured


def _inclusive_threshold_in_loops(self: Any, my_task: Task) -> bool:
    previous = my_task.parent
    while previous is not None and previous.task_spec is not self:
        previous = previous.parent
    if previous is None:
        return _inclusive_threshold(self, my_task)
    scope = [t for child in previous.children for t in TaskIterator(child, end_at_spec=self.name)]
    return _inclusive_threshold(self, SimpleNamespace(workflow=SimpleNamespace(get_tasks=lambda **_: scope)))


InclusiveGateway._check_threshold_unstructured = _inclusive_threshold_in_loops


@dataclass
class Failure:
    """A step that failed: the task, where, and why."""

    task_id: UUID
    element_id: str | None
    error_type: str
    message: str
    line: int | None


@dataclass
class Step:
    """What one engine call did to a workflow: history entries and, perhaps, a failure."""

    events: list[dict[str, Any]] = field(default_factory=list)
    failure: Failure | None = None
    outbox: list[dict[str, str]] = field(default_factory=list)
    thrown: list[tuple[str, str, Any]] = field(default_factory=list)  # messages and signals for other instances

    def record(self, kind: str, task: Task | None = None, *, user: str | None = None,
               data: dict[str, Any] | None = None) -> None:
        spec = task.task_spec if task is not None else None
        self.events.append({"kind": kind, "element_id": getattr(spec, "bpmn_id", None),
                            "name": getattr(spec, "bpmn_name", None), "user": user, "data": data or {}})


class Environment(SandboxEnvironment):
    """The sandbox, with values no script may change (the starter) put back after every script."""

    def __init__(self, sandbox: Sandbox, reserved: tuple[str, ...]) -> None:
        super().__init__(sandbox)
        self.reserved = reserved

    def execute(self, script: str, context: dict[str, Any], external_context: dict[str, Any] | None = None) -> bool:
        kept = {k: context[k] for k in self.reserved if k in context}
        try:
            return super().execute(script, context, external_context)
        finally:
            context.update(kept)


def create(spec: Any, subprocesses: dict[str, Any], script_engine: PythonScriptEngine) -> BpmnWorkflow:
    return BpmnWorkflow(spec, subprocesses, script_engine=script_engine)


def start(workflow: BpmnWorkflow, data: dict[str, Any], step: Step, *, user: str | None,
          trigger: str | None = None) -> None:
    """Put the start data on the root task and run until the instance waits.

    Only one kind of start event begins an instance: `trigger` (the timer, message or signal start event that
    fired), or else the none start events, when the process has any.
    """
    workflow.task_tree.data.update(copy.deepcopy(data))
    starts = [t for t in workflow.get_tasks(state=TaskState.NOT_FINISHED_MASK) if isinstance(t.task_spec, StartEvent)]
    chosen = [t for t in starts if (t.task_spec.bpmn_id == trigger if trigger else
                                    isinstance(t.task_spec.event_definition, NoneEventDefinition))]
    for task in starts if chosen else []:
        if task not in chosen:
            task.cancel()
    step.record("started", user=user, data=data)
    advance(workflow, step)


def fire_start_timer(workflow: BpmnWorkflow, step: Step) -> None:
    """Fire the timer start event an instance was created for, once, whatever its own schedule says."""
    for task in workflow.get_tasks(state=TaskState.WAITING):
        if isinstance(task.task_spec, StartEvent) and "event_value" in task.internal_data:
            value = task.internal_data["event_value"]
            if isinstance(value, dict):  # a cycle: one last round, due already
                task.internal_data["event_value"] = {**value, "cycles": 1, "next": "2000-01-01T00:00:00+00:00"}
            else:
                task.internal_data["event_fired"] = True
            step.record("timer fired", task)
    workflow.refresh_timers()
    workflow.refresh_timers()  # a cycle fires on one refresh and finishes on the next
    advance(workflow, step)


def deliver(workflow: BpmnWorkflow, kind: str, name: str, payload: Any, correlation: dict[str, Any] | None,
            step: Step, *, user: str | None = None) -> bool:
    """Hand a message or signal to the instance and run on; False when nothing in it waits for it.

    A payload that is a dict goes into the catching task's data (or its `messageVariable`, when the diagram names
    one); the correlation keys say which conversation a message belongs to. A Camunda 8 catcher takes the message
    whose correlation key is the one it waits with (one catcher per message).
    """
    catchers = [(t, d) for k, n, t, d in subscriptions(workflow) if k == kind and n == name]
    correlation = dict(correlation or {})
    key = correlation.pop(mappings.CORRELATION, None)
    if any(mappings.waits_with(t, name) is not None for t, _ in catchers):
        catchers = [(t, d) for t, d in catchers if mappings.waits_with(t, name) == key][:1]
    if not catchers:
        return False
    definition = catchers[0][1]
    carried = {**correlation, **payload} if isinstance(payload, dict) else correlation
    event = BpmnEvent(type(definition)(name), payload=copy.deepcopy(carried),
                      correlations=_correlations(workflow, definition, carried, correlation) if kind == "message"
                      else {})
    try:
        if key is not None and len(catchers) == 1 and mappings.waits_with(catchers[0][0], name) is not None:
            task = catchers[0][0]  # this catcher only, whatever else in the instance waits for the same name
            task.task_spec.catch(task, event)
            task.task_spec._update(task)
        elif workflow.event_manager.catch(event, internal=False) == 0:
            return False
    except Exception:  # the diagram's correlation expressions cannot be read from this message
        log.info("message %s does not correlate with instance", name, exc_info=True)
        return False
    for task, caught in catchers:
        if task.state == TaskState.READY or task.internal_data.get("event_fired"):
            if isinstance(payload, dict) and getattr(caught, "message_var", None) is None:
                mappings.receive(task, payload)
            step.record(f"{kind} received", task, user=user, data={"name": name, "payload": payload})
    advance(workflow, step)
    return True


def _correlations(workflow: BpmnWorkflow, definition: Any, payload: Any, given: dict[str, Any] | None
                  ) -> dict[str, dict[str, Any]]:
    """The event's correlation keys: the values given, or else those the diagram reads from the payload."""
    properties = getattr(definition, "correlation_properties", [])
    if given:
        found: dict[str, dict[str, Any]] = {}
        for prop in properties:
            for key in prop.correlation_keys:
                if prop.name in given:
                    found.setdefault(key, {})[prop.name] = given[prop.name]
        return found
    try:
        return definition.calculate_correlations(workflow.script_engine, properties, payload or {})
    except SpiffWorkflowException:
        return {}


def advance(workflow: BpmnWorkflow, step: Step) -> None:
    """Run engine tasks until only human tasks, timers, messages or jobs remain; a failure becomes `step.failure`."""

    sent = len(step.outbox)

    def starting(task: Task) -> None:
        nonlocal sent
        sent = len(step.outbox)

    def done(task: Task) -> None:
        if (task.state == TaskState.COMPLETED or elements.waiting(task)) and getattr(task.task_spec, "bpmn_id", None):
            step.record("completed", task)  # done, even when what follows waits at a boundary after it

    try:
        pruning.run(workflow, will_complete_task=starting, did_complete_task=done)  # do_engine_steps, kept small
        prepare_human_tasks(workflow)
        step.thrown += thrown(workflow)
    except SpiffWorkflowException as exc:
        fail(workflow, step, exc, sent)
        return
    if workflow.is_completed():
        step.record("ended")


def fail(workflow: BpmnWorkflow, step: Step, exc: SpiffWorkflowException, sent: int) -> None:
    """The failed task becomes an incident; what it wanted to send (the outbox past `sent`) waits for its retry."""
    del step.outbox[sent:]
    step.failure = failure(workflow, exc)
    step.record("incident", _task(workflow, step.failure.task_id),
                data={"message": step.failure.message, "line": step.failure.line})


def failure(workflow: BpmnWorkflow, exc: SpiffWorkflowException) -> Failure:
    task = getattr(exc, "task", None)
    if task is None:
        task = next(iter(workflow.get_tasks(state=TaskState.ERROR)), None) or workflow.last_task
    cause = exc.__cause__ or exc
    message = getattr(cause, "message", None) or str(exc).split("\n")[0]
    error_type = getattr(exc, "error_type", None) or type(cause).__name__
    line = getattr(exc, "line_number", None) or getattr(cause, "line", None)
    if task is not None and task.state != TaskState.ERROR:
        task._set_state(TaskState.ERROR)
    return Failure(task.id, getattr(task.task_spec, "bpmn_id", None), str(error_type), str(message),
                   int(line) if line else None)


def human_tasks(workflow: BpmnWorkflow) -> list[Task]:
    return scan(workflow).human


def open_task(workflow: BpmnWorkflow, task_id: UUID) -> Task:
    """A ready human task by id, or TaskNotFound: SpiffWorkflow's run() itself has no state guard."""
    task = _task(workflow, task_id)
    if task is None or task.state != TaskState.READY or not task.task_spec.manual \
            or isinstance(task.task_spec, ServiceTask):
        raise TaskNotFound(task_id)
    return task


def complete(workflow: BpmnWorkflow, task: Task, data: dict[str, Any], step: Step, *, user: str | None) -> None:
    """Complete a ready human task with already-accepted data and run until the instance waits again."""
    mappings.receive(task, data)
    if _run(workflow, task, step, user=user, data=data):
        advance(workflow, step)


def _run(workflow: BpmnWorkflow, task: Task, step: Step, **completed: Any) -> bool:
    """Run a task and record that it completed; False when that failed and became an incident.

    What fails as the task completes (its outputs) is an incident on it; what fails readying what follows with its
    data (the next element's inputs) is an incident there, after the task completed.
    """
    try:
        task.run()
    except SpiffWorkflowException as exc:
        if task.state == TaskState.COMPLETED and getattr(exc, "task", None) is not task:
            step.record("completed", task, **completed)
        fail(workflow, step, exc, len(step.outbox))
        return False
    step.record("completed", task, **completed)
    return True


def retry(workflow: BpmnWorkflow, task_id: UUID, data: dict[str, Any] | None, step: Step, *, user: str | None) -> None:
    """Run a failed task again, after its data was fixed, and go on."""
    task = _task(workflow, task_id)
    if task is None or task.state != TaskState.ERROR:
        raise InvalidState(f"task {task_id} has not failed")
    task.data = copy.deepcopy(task.data)
    task.data.update(copy.deepcopy(data or {}))
    step.record("retried", task, user=user, data=data)
    if not mappings.entered(task):  # it failed where it begins (its inputs): reach it again, with the data fixed
        task.parent.data = {**copy.deepcopy(task.parent.data), **copy.deepcopy(data or {})}
        try:
            task.task_spec._update(task)
        except SpiffWorkflowException as exc:
            fail(workflow, step, exc, 0)
            return
        advance(workflow, step)
        return
    human = task.task_spec.manual and not isinstance(task.task_spec, ServiceTask)
    if not elements.started(task):  # its input parameters or start listeners failed: they run again
        task._set_state(TaskState.READY)
        try:
            elements.start(task)
        except SpiffWorkflowException as exc:
            fail(workflow, step, exc, 0)
            return
        if human:  # now it is ready for its people
            advance(workflow, step)
            return
    if isinstance(task.task_spec, ServiceTask):
        task._set_state(TaskState.READY)  # a job calls the connector again
        task.internal_data.pop("baton_job_due", None)
        return
    if human and "baton" not in task.internal_data:  # who may do it could not be worked out: nobody has done it
        task._set_state(TaskState.READY)
        advance(workflow, step)
        return
    try:
        task.run()
    except SpiffWorkflowException as exc:
        fail(workflow, step, exc, 0)
        return
    if task.state == TaskState.COMPLETED:
        step.record("completed", task)
    advance(workflow, step)


def fire_timers(workflow: BpmnWorkflow, step: Step) -> None:
    """Fire every timer that is due on the engine's clock and run on."""
    waiting = [(task, copy.deepcopy(task.internal_data.get("event_value"))) for task, _ in timers(workflow)]
    workflow.refresh_timers()
    for task, value in waiting:  # a cycle stays waiting for its next round: its value moved on
        if task.state != TaskState.WAITING or task.internal_data.get("event_fired") \
                or task.internal_data.get("event_value") != value:
            step.record("timer fired", task)
    advance(workflow, step)


def service_task(workflow: BpmnWorkflow, task_id: UUID) -> Task:
    task = _task(workflow, task_id)
    if task is None or task.state != TaskState.READY or not isinstance(task.task_spec, ServiceTask):
        raise TaskNotFound(task_id)
    return task


def service_input(workflow: BpmnWorkflow, task: Task) -> dict[str, Any]:
    """What a connector receives: the declared input parameters, evaluated, or else a copy of the task's data
    (with Camunda 7 fields, the data and the fields)."""
    job = mappings.job_input(task)
    if job is not None:
        return job
    spec = task.task_spec
    given = {name: workflow.script_engine.evaluate(task, parsing_expression(text))
             for name, text in spec.params.items()}
    if not spec.params or getattr(spec, "with_data", False):
        return {**copy.deepcopy(task.data), **given}
    return given


# What a camunda:connector's output parameters may read besides the result's own keys (Camunda's http-connector).
CONNECTOR_NAMES = {"response": "body", "statusCode": "status"}


def complete_service(workflow: BpmnWorkflow, task: Task, result: Any, step: Step) -> None:
    """Put a connector's result into the data (its output parameters, if it declares any) and run on."""
    spec = task.task_spec
    outputs = getattr(spec, "connector_outputs", None)
    if outputs:
        context = {**task.data, **(result if isinstance(result, dict) else {})}
        context |= {alias: result[key] for alias, key in CONNECTOR_NAMES.items()
                    if isinstance(result, dict) and key in result and alias not in result}
        try:
            values = {name: workflow.script_engine.environment.evaluate(text, copy.deepcopy(context))
                      for name, text in outputs.items()}
        except Exception as exc:  # the diagram reads what the connector did not return
            fail_service(workflow, task, exc, step)
            return
        mappings.receive(task, values)
    if spec.result_variable:
        mappings.receive(task, {spec.result_variable: result})
    elif isinstance(result, dict) and not outputs:
        mappings.receive(task, result)
    if _run(workflow, task, step):
        advance(workflow, step)


def boundary(workflow: BpmnWorkflow, task_id: UUID) -> Task:
    """A task waiting at an asynchronous boundary, or TaskNotFound."""
    task = _task(workflow, task_id)
    if task is None or not elements.waiting(task):
        raise TaskNotFound(task_id)
    return task


def resume(workflow: BpmnWorkflow, task: Task, step: Step) -> None:
    """The job of an asynchronous boundary: go on from it and run until the instance waits again."""
    task.internal_data.pop("baton_job_due", None)
    try:
        elements.resume(task)
    except SpiffWorkflowException as exc:
        fail(workflow, step, exc, len(step.outbox))
        return
    advance(workflow, step)


def fail_service(workflow: BpmnWorkflow, task: Task, exc: Exception, step: Step) -> None:
    task._set_state(TaskState.ERROR)
    step.failure = Failure(task.id, task.task_spec.bpmn_id, type(exc).__name__, str(exc) or type(exc).__name__, None)
    step.record("incident", task, data={"message": step.failure.message})


def cancel(workflow: BpmnWorkflow, step: Step, *, user: str | None) -> None:
    workflow.cancel()
    step.record("cancelled", user=user)


def prepare_human_tasks(workflow: BpmnWorkflow) -> None:
    """Work out once, when a human task becomes ready, who may do it and when it is due."""
    for task in scan(workflow).human:
        if "baton" in task.internal_data:
            continue
        ext = getattr(task.task_spec, "extensions", {}).get("baton", {})
        try:
            task.internal_data["baton"] = {
                "assignee": _one(_value(workflow, task, ext.get("assignee"))),
                "candidate_users": _names(_value(workflow, task, ext.get("candidate_users"))),
                "candidate_groups": _names(_value(workflow, task, ext.get("candidate_groups"))),
                "due": _due(_value(workflow, task, ext.get("due"))),
            }
        except SpiffWorkflowException:
            raise
        except Exception as exc:
            raise workflow.script_engine.create_task_exec_exception(task, "", exc) from exc


def _value(workflow: BpmnWorkflow, task: Task, item: dict[str, str] | None) -> Any:
    if not item:
        return None
    if "literal" in item:
        return item["literal"]
    return workflow.script_engine.evaluate(task, item["expression"])


def _one(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _names(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return [str(v) for v in value]


def _due(value: Any) -> str | None:
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC).isoformat()
    text = str(value).strip()
    if DURATION.match(text):
        start = clock.now()
        return (start + TimerEventDefinition.get_timedelta_from_start(
            TimerEventDefinition.parse_iso_duration(text), start)).isoformat()
    return _due(datetime.fromisoformat(text))


def assignment(task: Task) -> dict[str, Any]:
    """Who a ready human task is for: assignee (or claimant), candidate users and groups, due time."""
    info = dict(task.internal_data.get("baton") or {})
    claimed = task.internal_data.get("baton_claimed_by")
    if claimed:
        info["assignee"] = claimed
    return info


def caught(task_spec: Any) -> list[Any]:
    """The event definitions a task spec catches (an event-based gateway or a multiple event has several)."""
    definition = getattr(task_spec, "event_definition", None)
    return list(definition.event_definitions) if isinstance(definition, MultipleEventDefinition) else [definition]


def timers(workflow: BpmnWorkflow) -> list[tuple[Task, datetime]]:
    """Every waiting timer with its due time."""
    found = []
    for task in workflow.event_manager.tasks.values() if hasattr(workflow, "event_manager") else []:
        if "event_value" in task.internal_data and any(isinstance(d, TimerEventDefinition)
                                                       for d in caught(task.task_spec)):
            value = task.internal_data["event_value"]
            due = TimerEventDefinition.get_datetime(value["next"] if isinstance(value, dict) else value)
            found.append((task, due if due.tzinfo else due.replace(tzinfo=UTC)))
    return found


def thrown(workflow: BpmnWorkflow) -> list[tuple[str, str, Any]]:
    """Messages and signals thrown that nothing in the instance caught: (kind, name, payload) for other instances."""
    found = []
    for event in workflow.get_events():
        definition = event.event_definition
        if isinstance(definition, MessageEventDefinition | SignalEventDefinition):
            kind = "message" if isinstance(definition, MessageEventDefinition) else "signal"
            found.append((kind, definition.name, event.payload))
    return found


def subscription_key(task: Task, definition: Any) -> str:
    """The correlation values a waiting message catcher answers to, as canonical JSON for an indexed match.

    Each correlation property of the diagram takes its value from the conversation so far, or else from the
    instance's data (the retrieval expression evaluated on it, as Camunda matches process variables).
    """
    if (key := mappings.waits_with(task, definition.name)) is not None:  # Camunda 8: its key since it began to wait
        return canonical({mappings.CORRELATION: key})
    known = {prop: value for props in task.workflow.top_workflow.correlations.values() for prop, value in props.items()}
    values = {}
    for prop in getattr(definition, "correlation_properties", []):
        if prop.name in known:
            values[prop.name] = known[prop.name]
            continue
        try:
            values[prop.name] = task.workflow.script_engine.environment.evaluate(prop.retrieval_expression, task.data)
        except Exception:  # the data does not hold it yet: the key leaves it out
            continue
    return canonical(values)


def canonical(values: dict[str, Any]) -> str:
    return json.dumps(values, sort_keys=True, separators=(",", ":"), default=str)


def subscriptions(workflow: BpmnWorkflow) -> list[tuple[str, str, Task, Any]]:
    """Messages and signals the workflow waits for: (kind, name, task, event definition)."""
    found = []
    for task in workflow.event_manager.tasks.values() if hasattr(workflow, "event_manager") else []:
        for definition in caught(task.task_spec):
            if isinstance(definition, MessageEventDefinition):
                found.append(("message", definition.name, task, definition))
            elif isinstance(definition, SignalEventDefinition):
                found.append(("signal", definition.name, task, definition))
    return found


@dataclass
class Scan:
    """One pass over every task of a workflow and its subprocesses: what later steps would each look up again."""

    human: list[Task] = field(default_factory=list)
    service: list[Task] = field(default_factory=list)
    boundaries: list[Task] = field(default_factory=list)  # waiting at an asynchronous boundary for a job
    active: list[Task] = field(default_factory=list)
    pending: bool = False


ACTIVE = TaskState.READY | TaskState.WAITING | TaskState.STARTED | TaskState.ERROR
PENDING = ACTIVE | TaskState.FUTURE


def scan(workflow: BpmnWorkflow) -> Scan:
    found = Scan()
    for w in [workflow, *workflow.subprocesses.values()]:
        for task in w.tasks.values():
            if not task.has_state(PENDING):
                continue
            found.pending = True
            if task.has_state(ACTIVE):
                found.active.append(task)
                if task.internal_data and elements.waiting(task):
                    found.boundaries.append(task)
            if task.state == TaskState.READY and task.task_spec.manual:
                (found.service if isinstance(task.task_spec, ServiceTask) else found.human).append(task)
    return found


def finished(workflow: BpmnWorkflow, found: Scan) -> bool:
    """Complete only when every task of every (sub)process is finished, whatever SpiffWorkflow's iterators say."""
    return workflow.is_completed() and not found.pending


def waiting(workflow: BpmnWorkflow, found: Scan) -> list[dict[str, Any]]:
    """What the instance waits on: human tasks, timers, service-task jobs, messages and signals."""

    def entry(kind: str, task: Task, **more: Any) -> dict[str, Any]:
        return {"kind": kind, "task_id": str(task.id), "element_id": task.task_spec.bpmn_id,
                "name": task.task_spec.bpmn_name, "due": None, **more}

    items = [entry("task", t, due=assignment(t).get("due"), assignee=assignment(t).get("assignee"))
             for t in found.human]
    items += [entry("timer", t, due=due.isoformat()) for t, due in timers(workflow)]
    items += [entry("job", t, due=t.internal_data.setdefault("baton_job_due", clock.now().isoformat()))
              for t in found.service]
    for t in found.boundaries:
        element_id, name = elements.element(t)
        items.append({**entry("job", t, due=t.internal_data.setdefault("baton_job_due", clock.now().isoformat())),
                      "element_id": element_id, "name": name, "job": "async"})
    items += [entry(kind, t, name=name, correlation=dict(workflow.correlations),
                    key=subscription_key(t, d) if kind == "message" else "{}")
              for kind, name, t, d in subscriptions(workflow)]
    return items


def current_data(workflow: BpmnWorkflow, found: Scan) -> dict[str, Any]:
    """The data an observer means by 'the instance's data now'."""
    if workflow.is_completed():
        return dict(workflow.data)
    # A parallel or inclusive join that waits for other branches has inherited no data yet.
    active = [t for t in found.active
              if not (t.state == TaskState.WAITING and isinstance(t.task_spec, UnstructuredJoin))]
    if active:
        return dict(max(active, key=lambda t: t.last_state_change).data)
    return dict(workflow.last_task.data) if workflow.last_task else {}


def guard(workflow: BpmnWorkflow, found: Scan, reserved: dict[str, Any]) -> None:
    """Put reserved values (the starter) back wherever a form, message or host changed them."""
    for task in found.active:
        for key, value in reserved.items():
            if task.data.get(key) != value:
                task.data[key] = value
    if workflow.is_completed():
        workflow.data.update(reserved)


def _task(workflow: BpmnWorkflow, task_id: UUID) -> Task | None:
    try:
        return workflow.get_task_from_id(task_id)
    except TaskNotFoundException:
        return None
