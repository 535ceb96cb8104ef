"""Baton's own task-spec classes and its one serializer configuration."""

from __future__ import annotations

import copy
import json
import logging
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from uuid import UUID

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter
from SpiffWorkflow.bpmn.serializer.default.workflow import WorkflowConverter as BaseWorkflowConverter
from SpiffWorkflow.bpmn.util.subworkflow import BpmnSubWorkflow
from SpiffWorkflow.dmn.specs.business_rule_task_mixin import BusinessRuleTaskMixin
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.spiff.serializer.task_spec import (
    BusinessRuleTaskConverter,
    SpiffBpmnTaskConverter,
    SubWorkflowTaskConverter,
)
from SpiffWorkflow.spiff.specs.defaults import BusinessRuleTask
from SpiffWorkflow.spiff.specs.defaults import CallActivity as SpiffCallActivity
from SpiffWorkflow.spiff.specs.spiff_task import SpiffBpmnTask
from SpiffWorkflow.task import Task

from . import mappings

log = logging.getLogger(__name__)

# Task data holds Decimal amounts and dates; these survive a save/load round trip under stable names.
STATE_FORMAT = 1
CALL = "camunda_call"  # a call activity's extensions: {"in": [...], "out": [...]} (Camunda 7 camunda:in/out)


class ServiceTask(SpiffBpmnTask):
    """A service task as a wait state: a job calls the connector outside the instance's transaction."""

    def __init__(self, wf_spec: Any, bpmn_id: str, connector: str | None = None,
                 params: dict[str, str] | None = None, result_variable: str | None = None,
                 retry_cycle: str | None = None, connector_outputs: dict[str, str] | None = None,
                 with_data: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(wf_spec, bpmn_id, **kwargs)
        self.connector = connector
        self.params = params or {}  # the connector's input: name -> Python expression
        self.result_variable = result_variable
        self.retry_cycle = retry_cycle  # camunda:failedJobRetryTimeCycle: the waits before each retry
        self.connector_outputs = connector_outputs or {}  # a camunda:connector's outputs: name -> Python
        self.with_data = with_data  # the input is the task's data and `params` (Camunda 7 fields)
        self.manual = True  # do_engine_steps leaves it READY; the job executor completes it


class CallActivity(SpiffCallActivity):
    """A call activity that passes what Camunda 7's `camunda:in` / `camunda:out` name (without any: all the data)."""

    def copy_data(self, my_task: Any, subworkflow: Any) -> None:
        mapping = (getattr(self, "extensions", None) or {}).get(CALL)
        if not mapping:
            return super().copy_data(my_task, subworkflow)
        start = subworkflow.get_next_task(subworkflow.task_tree, skip_subprocesses=True, spec_name="Start")
        reserved = getattr(my_task.workflow.script_engine.environment, "reserved", ())
        given = {k: copy.deepcopy(v) for k, v in my_task.data.items() if k in reserved}
        start.set_data(**_mapped(my_task, mapping["in"], my_task.data, given))

    def update_data(self, my_task: Any, subworkflow: Any) -> None:
        mapping = (getattr(self, "extensions", None) or {}).get(CALL)
        if not mapping:
            return super().update_data(my_task, subworkflow)
        my_task.data = _mapped(my_task, mapping["out"], subworkflow.last_task.data, copy.deepcopy(my_task.data))


def _mapped(task: Any, rules: list[dict[str, Any]], source: dict[str, Any], target: dict[str, Any]
            ) -> dict[str, Any]:
    """`target` with the variables the rules take from `source`: all of them, one by name, or an expression."""
    for rule in rules:
        if rule.get("all"):
            target.update(copy.deepcopy(source))
        elif "source" in rule:
            target[rule["target"]] = copy.deepcopy(source.get(rule["source"]))
        else:
            try:
                target[rule["target"]] = task.workflow.script_engine.environment.evaluate(
                    rule["expression"], copy.deepcopy(source))
            except Exception as exc:
                raise WorkflowTaskException(f"Error evaluating expression '{rule['expression']}'", task=task,
                                            exception=exc) from exc
    return target


class ServiceTaskConverter(SpiffBpmnTaskConverter):
    def to_dict(self, spec: ServiceTask) -> dict[str, Any]:
        dct = super().to_dict(spec)
        dct.update(connector=spec.connector, params=spec.params, result_variable=spec.result_variable,
                   retry_cycle=spec.retry_cycle, connector_outputs=spec.connector_outputs,
                   with_data=spec.with_data)
        return dct


class DecisionTask(BusinessRuleTask):
    """A business rule task whose decision's result goes into one variable, shaped as Camunda 8 shapes it.

    One output column gives its value, several an object; a COLLECT table a list of them; no rule matching, null
    (an empty list for COLLECT). The output columns do not become variables of their own.
    """

    def __init__(self, wf_spec: Any, bpmn_id: str, result_variable: str | None = None, **kwargs: Any) -> None:
        super().__init__(wf_spec, bpmn_id, **kwargs)
        self.result_variable = result_variable

    def _run_hook(self, my_task: Any) -> bool:
        if not self.result_variable:
            return bool(super()._run_hook(my_task))
        try:
            table = self.dmnEngine.decision_table
            rows = [dict(rule.output_as_dict(my_task)) for rule in self.dmnEngine.decide(my_task)]
            values = [next(iter(row.values()), None) if len(table.outputs) == 1 else row for row in rows]
            my_task.data[self.result_variable] = values if table.hit_policy == "COLLECT" else \
                (values[0] if values else None)
        except SpiffWorkflowException as exc:
            exc.add_note(f"Business Rule Task '{self.bpmn_name}'.")
            raise
        except Exception as exc:
            raise WorkflowTaskException(str(exc), task=my_task, exception=exc) from exc
        return bool(super(BusinessRuleTaskMixin, self)._run_hook(my_task))  # past the mixin's merge of every output


class DecisionTaskConverter(BusinessRuleTaskConverter):
    def to_dict(self, spec: DecisionTask) -> dict[str, Any]:
        dct = super().to_dict(spec)
        dct["result_variable"] = spec.result_variable
        return dct


class WorkflowConverter(BpmnWorkflowConverter):
    """Instance state without its spec: the spec is stored once per definition and passed back in on load."""

    def to_dict(self, workflow: BpmnWorkflow) -> dict[str, Any]:
        dct = BaseWorkflowConverter.to_dict(self, workflow)
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct


def _registry() -> Any:
    config = dict(SPIFF_CONFIG)
    config[ServiceTask] = ServiceTaskConverter
    config[DecisionTask] = DecisionTaskConverter
    config[CallActivity] = SubWorkflowTaskConverter  # after SpiffWorkflow's: states naming CallActivity load as it
    config[BpmnWorkflow] = WorkflowConverter
    registry = BpmnWorkflowSerializer.configure(config)
    registry.register(Decimal, lambda v: {"value": str(v)}, lambda d: Decimal(d["value"]), "Decimal")
    registry.register(datetime, lambda v: {"value": v.isoformat()}, lambda d: datetime.fromisoformat(d["value"]),
                      "datetime")
    registry.register(date, lambda v: {"value": v.isoformat()}, lambda d: date.fromisoformat(d["value"]), "date")
    registry.register(time, lambda v: {"value": v.isoformat()}, lambda d: time.fromisoformat(d["value"]), "time")
    return registry


REGISTRY = _registry()
SERIALIZER = BpmnWorkflowSerializer(REGISTRY)


def dump_state(workflow: BpmnWorkflow) -> str:
    """The instance's state as JSON text, spec left out."""
    return json.dumps(state_dict(workflow), separators=(",", ":"), cls=SERIALIZER._encoder_cls)


def state_dict(workflow: BpmnWorkflow) -> dict[str, Any]:
    """`SERIALIZER.to_dict(workflow)`, the same dictionary, built directly.

    Every engine call saves the whole state: SpiffWorkflow's converters dispatch every task and value through the
    registry, which took two thirds of the time. Here tasks and workflows are written out as its converters would
    (TaskConverter, WorkflowConverter, BpmnSubWorkflowConverter of SpiffWorkflow 3.2); values in internal data and
    workflow data still go through the registry, and task data is left to the JSON encoder, as there.
    Every test compares the two on every state it saves (tests/conftest.py).
    """
    if type(workflow) is not BpmnWorkflow or any(type(sp) is not BpmnSubWorkflow
                                                 for sp in workflow.subprocesses.values()):
        return dict(SERIALIZER.to_dict(workflow))
    dct = _workflow_dict(workflow)
    dct["subprocesses"] = {str(k): {**_workflow_dict(sp), "parent_task_id": str(sp.parent_task_id),
                                    "spec": sp.spec.name, "typename": "BpmnSubWorkflow"}
                           for k, sp in workflow.subprocesses.items()}
    dct["bpmn_events"] = REGISTRY.convert(workflow.bpmn_events)
    dct["typename"] = "BpmnWorkflow"
    return dct


_texts: dict[UUID, str] = {}  # str(uuid) is slow Python; a task id is written once per save for as long as it lives


def _text(task_id: UUID) -> str:
    text = _texts.get(task_id)
    if text is None:
        if len(_texts) > 50_000:
            _texts.clear()
        text = _texts[task_id] = str(task_id)
    return text


def _workflow_dict(workflow: Any) -> dict[str, Any]:
    tasks = workflow.tasks
    out = {}
    for key, task in tasks.items():
        if type(task) is not Task:
            out[str(key)] = REGISTRY.convert(task)
            continue
        parent = tasks.get(task._parent) if task._parent is not None else None
        if parent is None:
            data, delta = task.data, {}
        else:
            before, after = parent.data, task.data
            data, delta = {}, {"updates": {k: v for k, v in after.items() if k not in before or v != before[k]},
                               "deletions": [k for k in before if k not in after]}
        internal = task.internal_data
        text = _text(key)
        out[text] = {
            "id": text if key == task.id else str(task.id),
            "parent": _text(task._parent) if parent is not None else None,
            "children": [_text(c) for c in task._children], "last_state_change": task.last_state_change,
            "state": task._state, "task_spec": task.task_spec.name, "triggered": task.triggered,
            "internal_data": REGISTRY.convert(internal) if internal else {}, "data": data, "delta": delta,
            "typename": "Task"}
    return {
        "data": REGISTRY.convert(REGISTRY.clean(workflow.data)), "correlations": workflow.correlations,
        "last_task": str(workflow.last_task.id) if workflow.last_task is not None else None,
        "success": workflow.success, "completed": workflow.completed, "tasks": out,
        "root": str(workflow.task_tree.id)}


def load_state(state: str, spec: Any, subprocesses: dict[str, Any]) -> BpmnWorkflow:
    dct = json.loads(state)
    dct["spec"], dct["subprocess_specs"] = spec, subprocesses
    return SERIALIZER.from_dict(dct)


def dump_spec(spec: Any, subprocesses: dict[str, Any]) -> str:
    return json.dumps({"spec": REGISTRY.convert(spec), "subprocesses": {k: REGISTRY.convert(v) for k, v in
                                                                         subprocesses.items()}})


def load_spec(text: str) -> tuple[Any, dict[str, Any]]:
    """A definition's specs, ready to run: with the Camunda 8 mappings of their elements connected."""
    dct = json.loads(text)
    spec, subprocesses = REGISTRY.restore(dct["spec"]), {k: REGISTRY.restore(v) for k, v in dct["subprocesses"].items()}
    mappings.connect([spec, *subprocesses.values()])
    return spec, subprocesses


def to_plain(value: Any) -> Any:
    """Task data as JSON-ready values, with Decimal and dates tagged so that `from_plain` restores them."""
    return REGISTRY.convert(value)


def from_plain(value: Any) -> Any:
    return REGISTRY.restore(value)
