"""Baton's own task-spec classes and its one serializer configuration."""

from __future__ import annotations

import json
import logging
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter
from SpiffWorkflow.bpmn.serializer.default.workflow import WorkflowConverter as BaseWorkflowConverter
from SpiffWorkflow.dmn.specs.business_rule_task_mixin import BusinessRuleTaskMixin
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.spiff.serializer.task_spec import BusinessRuleTaskConverter, SpiffBpmnTaskConverter
from SpiffWorkflow.spiff.specs.defaults import BusinessRuleTask
from SpiffWorkflow.spiff.specs.spiff_task import SpiffBpmnTask

from . import mappings

log = logging.getLogger(__name__)

# Task data holds Decimal amounts and dates; these survive a save/load round trip under stable names.
STATE_FORMAT = 1


class ServiceTask(SpiffBpmnTask):
    """A service task as a wait state: a job calls the connector outside the instance's transaction."""

    def __init__(self, wf_spec: Any, bpmn_id: str, connector: str | None = None,
                 params: dict[str, str] | None = None, result_variable: str | None = None,
                 retry_cycle: str | None = None, **kwargs: Any) -> None:
        super().__init__(wf_spec, bpmn_id, **kwargs)
        self.connector = connector
        self.params = params or {}
        self.result_variable = result_variable
        self.retry_cycle = retry_cycle  # camunda:failedJobRetryTimeCycle: the waits before each retry
        self.manual = True  # do_engine_steps leaves it READY; the job executor completes it


class ServiceTaskConverter(SpiffBpmnTaskConverter):
    def to_dict(self, spec: ServiceTask) -> dict[str, Any]:
        dct = super().to_dict(spec)
        dct.update(connector=spec.connector, params=spec.params, result_variable=spec.result_variable,
                   retry_cycle=spec.retry_cycle)
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
    return json.dumps(SERIALIZER.to_dict(workflow), separators=(",", ":"), cls=SERIALIZER._encoder_cls)


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
