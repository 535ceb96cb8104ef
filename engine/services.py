"""Service tasks: the connector an element calls and its input, from Camunda 7, Camunda 8 and SpiffArena."""

from __future__ import annotations

import logging
import re
from collections.abc import Container, Iterable
from typing import Any

from lxml import etree

from .camunda import Found, camunda, connector_inputs, connector_io, extensions, juel, service, value
from .errors import Problem
from .normalize import CAMUNDA, label
from .specs import ServiceTask

log = logging.getLogger(__name__)

NS = {"bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL", "camunda": CAMUNDA,
      "zeebe": "http://camunda.org/schema/zeebe/1.0"}
BEAN = re.compile(r"^\s*[$#]\{\s*([A-Za-z_][\w.]*)\s*(\((.*)\))?\s*\}\s*$", re.DOTALL)


def service_task(parser: Any) -> ServiceTask:
    """The service task a SpiffWorkflow task parser's node describes: its connector, input and outputs."""
    spiff, node, found = parser.parse_extensions(), parser.node, []
    operator = spiff.get("serviceTaskOperator")
    outputs: dict[str, str] = {}
    with_data = False
    if operator:  # SpiffArena: parameters are Python already
        connector, result = operator["name"], operator["resultVariable"]
        params = {k: v["value"] for k, v in operator["parameters"].items()}
    else:
        connector = connector_name(node, found)
        job_type = node.find("bpmn:extensionElements/zeebe:taskDefinition", NS)
        if connector is None and job_type is not None:  # Camunda 8: the job type names the worker
            connector = job_type.get("type")
        params = service_inputs(node, found)  # Camunda 8's inputs are local variables: mappings.py
        outputs = connector_outputs(node, found)
        with_data = bool(extensions(node, "field")) and fields_only(node)
        result = node.get(camunda("resultVariable"))
    cycle = (node.findtext("bpmn:extensionElements/camunda:failedJobRetryTimeCycle", None, NS) or "").strip()
    return ServiceTask(parser.spec, parser.bpmn_id, connector=connector, params=params, result_variable=result,
                       retry_cycle=cycle or None, connector_outputs=outputs, with_data=with_data,
                       prescript=spiff.get("preScript"), postscript=spiff.get("postScript"), **parser.bpmn_attributes)


def connector_name(node: etree._Element, found: Found) -> str | None:
    """The connector a Camunda 7 service task calls: its topic, connector id, class, or the bean its expression
    names (`${erp.order(x)}` calls 'erp.order')."""
    if node.get(camunda("topic")):
        return node.get(camunda("topic")).strip()
    for item in extensions(node, "connector"):
        return (item.findtext(camunda("connectorId")) or "").strip() or None
    if node.get(camunda("class")):
        return node.get(camunda("class")).strip()
    for attribute in ("delegateExpression", "expression"):
        text = node.get(camunda(attribute))
        if not text:
            continue
        bean = BEAN.match(text)
        if bean is None:
            found.append((node, f"'{label(node)}' calls {text}, which names no connector: write "
                                "${connector} or ${connector.method(...)}", "error"))
            return None
        if bean.group(3) and bean.group(3).strip():
            found.append((node, f"'{label(node)}' calls the connector '{bean.group(1)}' with its input parameters (or "
                                f"the task's data): the arguments in {text.strip()} are not passed", "warning"))
        return bean.group(1)
    return None


def service_inputs(node: etree._Element, found: Found) -> dict[str, str]:
    """A service task's connector input as Python expressions: its fields (`camunda:field`), then its input
    parameters (the connector's own, under `camunda:connector`, or else the task's)."""
    params: dict[str, str] = {}
    for item in extensions(node, "field"):
        name = item.get("name") or ""
        what = f"the field '{name}' of '{label(node)}'"
        if not name:
            found.append((item, f"a field of '{label(node)}' has no name: it is left out", "warning"))
            continue
        if item.get("stringValue") is not None:
            params[name] = repr(item.get("stringValue"))
        elif item.get("expression") is not None:
            params[name] = juel(item.get("expression"), what, item, found)
        elif (string := item.find(camunda("string"))) is not None:
            params[name] = repr(string.text or "")
        elif (expression := item.find(camunda("expression"))) is not None:
            params[name] = juel((expression.text or "").strip(), what, expression, found)
        else:
            params[name] = "None"
    for io in connector_inputs(node):
        for param in io.findall(camunda("inputParameter")):
            name = param.get("name") or ""
            params[name] = value(param, f"the input parameter '{name}' of '{label(node)}'", found)
    return params


def connector_outputs(node: etree._Element, found: Found) -> dict[str, str]:
    """A `camunda:connector`'s output parameters: read from what the connector returned, set on the task's data."""
    outputs: dict[str, str] = {}
    io = connector_io(node)
    if io is not None:
        for param in io.findall(camunda("outputParameter")):
            name = param.get("name") or ""
            outputs[name] = value(param, f"the connector output parameter '{name}' of '{label(node)}'", found)
    return outputs


def fields_only(node: etree._Element) -> bool:
    """Whether the connector gets the task's data besides its fields (it declares no input parameters)."""
    return not any(io.find(camunda("inputParameter")) is not None for io in connector_inputs(node))




def check(node: etree._Element) -> Found:
    """What of a service task's implementation and input cannot run as drawn."""
    found: Found = []
    if service(node):
        connector_name(node, found)
        service_inputs(node, found)
        connector_outputs(node, found)
    return found


def missing(parser: Any, processes: Iterable[tuple[Any, dict[str, Any]]], connectors: Container[str]
            ) -> list[Problem]:
    """Warnings for service tasks that name no connector, or one this engine does not have (its job would fail)."""
    back = {new: old for new, old in parser.renamed.items()}
    found: dict[str, Problem] = {}
    for spec, subprocesses in processes:
        for task_spec in (t for s in [spec, *subprocesses.values()] if s for t in s.task_specs.values()):
            element_id = getattr(task_spec, "bpmn_id", None)
            node = parser.nodes.get(back.get(element_id, element_id)) if element_id else None
            if not isinstance(task_spec, ServiceTask) or node is None or task_spec.connector in connectors:
                continue
            name = label(node)
            message = (f"'{name}' names nothing to call: set its implementation (an external topic, a connector, "
                       "a class or an expression naming a connector)") if not task_spec.connector else (
                f"'{name}' calls the connector '{task_spec.connector}', which this engine does not have: register "
                f"it (Engine(connectors={{'{task_spec.connector}': ...}})), or the task fails when it runs")
            found[element_id] = Problem(parser.origin.get(node.get("id"), ""), node.sourceline, element_id, message,
                                        "warning")
    return list(found.values())
