"""Tiny BPMN documents for tests, written as the flow nodes they contain, and checks of diagram layouts."""

from __future__ import annotations

import math
from typing import Any

HEAD = ('<?xml version="1.0" encoding="UTF-8"?>\n'
        '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
        'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" id="defs" targetNamespace="http://baton.test">\n')


def process(*nodes: str, flows: str = "", process_id: str = "p", extra: str = "") -> bytes:
    """A document with one executable process; `flows` is 'a>b b>c' for plain sequence flows."""
    sequence = []
    for i, pair in enumerate(flows.split()):
        source, target = pair.split(">")
        sequence.append(f'<bpmn:sequenceFlow id="flow_{i}" sourceRef="{source}" targetRef="{target}"/>')
    body = "\n".join([*nodes, *sequence])
    return (f'{HEAD}{extra}<bpmn:process id="{process_id}" isExecutable="true">\n{body}\n'
            '</bpmn:process>\n</bpmn:definitions>\n').encode()


def script_process(script: str, process_id: str = "p") -> bytes:
    """start -> script -> user task (ann) -> end."""
    return process('<bpmn:startEvent id="start"/>',
                   f'<bpmn:scriptTask id="run" name="Run"><bpmn:script>{script}</bpmn:script></bpmn:scriptTask>',
                   '<bpmn:userTask id="check" name="Check" camunda:assignee="ann"/>',
                   '<bpmn:endEvent id="end"/>', flows="start>run run>check check>end", process_id=process_id)


APPROVAL = process(
    '<bpmn:startEvent id="start"/>',
    '''<bpmn:userTask id="approve" name="Approve" camunda:assignee="${approver}">
  <bpmn:extensionElements><camunda:formData>
    <camunda:formField id="decision" label="Decision" type="enum">
      <camunda:validation><camunda:constraint name="required"/></camunda:validation>
      <camunda:value id="approve" name="Approve"/><camunda:value id="reject" name="Reject"/>
    </camunda:formField>
    <camunda:formField id="comment" label="Comment" type="string">
      <camunda:validation><camunda:constraint name="maxlength" config="20"/></camunda:validation>
    </camunda:formField>
    <camunda:formField id="quantity" label="Quantity" type="long" defaultValue="1">
      <camunda:validation><camunda:constraint name="min" config="1"/></camunda:validation>
    </camunda:formField>
  </camunda:formData></bpmn:extensionElements>
</bpmn:userTask>''',
    '<bpmn:endEvent id="end"/>', flows="start>approve approve>end", process_id="approval")

DIVIDE = process(
    '<bpmn:startEvent id="start"/>',
    '<bpmn:scriptTask id="divide" name="Divide"><bpmn:script>x = 1\nresult = 10 / divisor</bpmn:script>'
    '</bpmn:scriptTask>',
    '<bpmn:userTask id="check" name="Check" camunda:candidateGroups="clerks"/>',
    '<bpmn:endEvent id="end"/>', flows="start>divide divide>check check>end", process_id="divide")


def on_border(kind: str, box: tuple[float, float, float, float], x: float, y: float) -> bool:
    """Whether a waypoint (x, y) sits on the border of a shape of this kind (event circle, gateway diamond, box)."""
    bx, by, w, h = box
    cx, cy = bx + w / 2, by + h / 2
    if kind.endswith("Event"):
        return abs(math.hypot(x - cx, y - cy) - w / 2) <= 1
    if kind.endswith("Gateway"):
        return abs(abs(x - cx) / (w / 2) + abs(y - cy) / (h / 2) - 1) <= 0.02
    inside = bx - 1 <= x <= bx + w + 1 and by - 1 <= y <= by + h + 1
    return inside and min(abs(x - bx), abs(x - bx - w), abs(y - by), abs(y - by - h)) <= 1


DI = {"bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI", "dc": "http://www.omg.org/spec/DD/20100524/DC"}


def shapes(root: Any) -> dict[str, tuple[float, float, float, float]]:
    """Every drawn element's bounds (x, y, width, height), by the id of the element it draws."""
    found = {}
    for shape in root.iterfind(".//bpmndi:BPMNShape", DI):
        bounds = shape.find("dc:Bounds", DI)
        found[shape.get("bpmnElement")] = tuple(float(bounds.get(k)) for k in ("x", "y", "width", "height"))
    return found
