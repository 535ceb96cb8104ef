"""Camunda 7 extensions read from a diagram: asynchronous boundaries, parameters and listeners of each element.

Every reader takes `found`, a list that collects what cannot run as (element, message, severity): lint reports
it, and the parser, which only runs what lint let through, passes a list it throws away.
"""

from __future__ import annotations

import ast
import keyword
import logging
import textwrap
from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import LoopTask

from . import expressions
from .elements import KEY
from .normalize import BPMN, CAMUNDA, PREFIX, PYTHON, Graph, Note, Rewritten, containers, label, local, note
from .specs import ServiceTask

log = logging.getLogger(__name__)

Found = list[tuple[etree._Element, str, str]]
EXT = f"{{{BPMN}}}extensionElements"
TASK_EVENTS = {"create": "start", "complete": "end"}  # task listeners Baton runs, and when
IGNORED_TASK_EVENTS = ("assignment", "update", "delete", "timeout")
# Start events and boundary events start when they are triggered: a boundary before them is one after them.
TRIGGERED = {"startEvent", "boundaryEvent"}
TAKEN = "baton-taken"  # set by the import on an event behind an event-based gateway: the flows whose listeners it runs


def camunda(name: str) -> str:
    return f"{{{CAMUNDA}}}{name}"


def extensions(node: etree._Element, name: str) -> list[etree._Element]:
    """The element's `camunda:<name>` extension elements."""
    ext = node.find(EXT)
    return [] if ext is None else ext.findall(camunda(name))


def flag(node: etree._Element | None, name: str) -> bool:
    return node is not None and (node.get(camunda(name)) or "").strip().lower() == "true"


# Asynchronous continuations


def boundaries(node: etree._Element) -> dict[str, Any]:
    """`camunda:asyncBefore` (or the older `camunda:async`), `camunda:asyncAfter` and the job's retry cycle."""
    before = flag(node, "asyncBefore") or flag(node, "async")
    after = flag(node, "asyncAfter")
    if before and (local(node) in TRIGGERED or _after_event_gateway(node)):
        before, after = False, True  # it starts when triggered: nothing of it runs before the trigger anyway
    cycle = (node.findtext(f"{EXT}/{camunda('failedJobRetryTimeCycle')}") or "").strip() or None
    return {"before": before, "after": after, "retry": cycle}


def _after_event_gateway(node: etree._Element) -> bool:
    """Whether an event waits behind an event-based gateway (the gateway, not the event, starts waiting)."""
    parent = node.getparent()
    if parent is None or local(node) not in ("intermediateCatchEvent", "receiveTask"):
        return False
    sources = {f.get("sourceRef") for f in parent
               if local(f) == "sequenceFlow" and f.get("targetRef") == node.get("id")}
    return any(local(n) == "eventBasedGateway" and n.get("id") in sources for n in parent)


def loop_boundaries(node: etree._Element) -> dict[str, Any]:
    """A multi-instance body's own boundaries, set on its loop characteristics."""
    loop = node.find(f"{{{BPMN}}}multiInstanceLoopCharacteristics")
    if loop is None:
        return {"before": False, "after": False, "retry": None}
    return boundaries(loop)


# Parameters: text (a JUEL template), camunda:map, camunda:list, camunda:script


def value(node: etree._Element, what: str, found: Found) -> str:
    """Python source of a parameter's value; what cannot run goes to `found` and the value is None."""
    children = [c for c in node if isinstance(c.tag, str)]
    if not children:
        text = (node.text or "").strip()
        return juel(text, what, node, found) if text else "None"
    child = children[0]
    kind = etree.QName(child).localname
    if child.tag == camunda("map"):
        entries = []
        for entry in child.iterfind(camunda("entry")):
            key = entry.get("key")
            if key is None:
                found.append((entry, f"an entry of {what} has no key", "error"))
                continue
            entries.append(f"{key!r}: {value(entry, f'{what}, entry {key!r}', found)}")
        return "{" + ", ".join(entries) + "}"
    if child.tag == camunda("list"):
        items = [value(v, f"{what}, item {n}", found) for n, v in enumerate(child.iterfind(camunda("value")), 1)]
        return "[" + ", ".join(items) + "]"
    if child.tag == camunda("script"):
        return script_value(child, what, found)
    found.append((child, f"{what} is a camunda:{kind}, which Baton does not know", "error"))
    return "None"


def script_value(node: etree._Element, what: str, found: Found) -> str:
    """A `camunda:script` parameter: one Python expression, whose value the parameter takes."""
    source = textwrap.dedent(node.text or "").strip()
    if not runnable(node, f"{what} is a script", found):
        return "None"
    if (node.get("scriptFormat") or "").strip().lower() == "juel":
        return juel(source, what, node, found) if source else "None"
    try:
        ast.parse(source, mode="eval")
    except SyntaxError:
        found.append((node, f"{what} is a Python script that is not one expression: the parameter takes the "
                            "script's value, so write it as one expression", "error"))
        return "None"
    return f"({source})"


def juel(source: str, what: str, node: etree._Element, found: Found) -> str:
    """A JUEL template as Python: plain text is a string, `${...}` an expression, both together a string."""
    try:
        return expressions.juel(source)
    except expressions.Untranslatable as exc:
        found.append((node, f"{what} is a JUEL expression Baton cannot translate ({exc}): write it as a template "
                            "of data, or as a Python script (camunda:script scriptFormat=\"python\")", "error"))
        return "None"


def runnable(node: etree._Element, what: str, found: Found) -> bool:
    """Whether a `camunda:script` is in the diagram and in Python (or JUEL); what else it is goes to `found`."""
    language = (node.get("scriptFormat") or "").strip()
    if node.get("resource"):
        found.append((node, f"{what} in the file '{node.get('resource')}', which Baton does not have: write the "
                            "script into the diagram", "error"))
        return False
    if language.lower() not in PYTHON and language.lower() != "juel":
        found.append((node, f"{what} in {language}, which Baton cannot run: write it in Python", "error"))
        return False
    return True


def assignments(params: list[etree._Element], kind: str, owner: etree._Element, found: Found) -> str | None:
    """`name = <value>` lines setting an element's input or output parameters."""
    lines = []
    for param in params:
        name = param.get("name") or ""
        what = f"the {kind} parameter '{name}' of '{label(owner)}'"
        if not name.isidentifier() or keyword.iskeyword(name):
            found.append((param, f"{what} is not a name a variable can have in Baton: use letters, digits and _",
                          "error"))
            continue
        lines.append(f"{name} = {value(param, what, found)}")
    return "\n".join(lines) or None


# Listeners


def listener(node: etree._Element, what: str, found: Found) -> str | None:
    """A listener's Python script; a script in another language is an error, Java code a warning (ignored)."""
    script = node.find(camunda("script"))
    if script is not None:
        if not runnable(script, f"{what} is a script", found):
            return None
        source = textwrap.dedent(script.text or "").strip()
        if (script.get("scriptFormat") or "").strip().lower() == "juel":
            code = juel(source, what, script, found)
            return None if code == "None" else f"_ = {code}\ndel _"
        return source or None
    for attribute in ("class", "delegateExpression", "expression"):
        if node.get(attribute):
            found.append((node, f"{what} calls the Java {attribute} '{node.get(attribute)}', which Baton cannot "
                                "run: it is ignored (write the listener as a Python script to run it)", "warning"))
            return None
    found.append((node, f"{what} has no script: it is ignored", "warning"))
    return None


def listeners(node: etree._Element, found: Found) -> dict[str, list[str]]:
    """The listener scripts of an element by when they run: start, end (execution), create, complete (task)."""
    by_event: dict[str, list[str]] = {"start": [], "end": [], "create": [], "complete": []}
    for item in extensions(node, "executionListener"):
        event = (item.get("event") or "start").strip()
        if event not in ("start", "end"):
            found.append((item, f"the {event} listener of '{label(node)}' never fires on it: it is ignored",
                          "warning"))
            continue
        code = listener(item, f"the {event} listener of '{label(node)}'", found)
        if code:
            by_event[event].append(code)
    for item in extensions(node, "taskListener"):
        event = (item.get("event") or "create").strip()
        what = f"the {event} task listener of '{label(node)}'"
        if local(node) != "userTask":
            found.append((item, f"{what} is on no user task: it is ignored", "warning"))
        elif event in IGNORED_TASK_EVENTS:
            found.append((item, f"{what} is not run: Baton runs create and complete task listeners only", "warning"))
        elif event in TASK_EVENTS and (code := listener(item, what, found)):
            by_event[event].append(code)
    return by_event


# What runs as an element starts and ends


def scripts(node: etree._Element, found: Found) -> dict[str, list[str]]:
    """The element's start scripts (input parameters, start and create listeners) and end scripts (complete
    listeners, output parameters, end listeners); a process's own listeners run at its start and end events."""
    heard = listeners(node, found)
    for flow_id in (node.get(TAKEN) or "").split():  # take listeners of the flows from an event-based gateway
        flow = next((f for f in node.getparent() if f.get("id") == flow_id), None)
        heard["start"][:0] = [c for item in (extensions(flow, "executionListener") if flow is not None else [])
                              if (c := listener(item, "", []))]
    process = node.getparent()
    if process is not None and local(process) == "process" and local(node) in ("startEvent", "endEvent"):
        around = listeners(process, [])
        heard["start"] = around["start"] + heard["start"] if local(node) == "startEvent" else heard["start"]
        heard["end"] = heard["end"] + around["end"] if local(node) == "endEvent" else heard["end"]
    inputs: list[etree._Element] = []
    outputs: list[etree._Element] = []
    for io in extensions(node, "inputOutput"):
        if not service(node) or connector_io(node) is not None:  # else the inputs are the connector's input
            inputs += io.findall(camunda("inputParameter"))
        outputs += io.findall(camunda("outputParameter"))
    setting = assignments(inputs, "input", node, found)
    getting = assignments(outputs, "output", node, found)
    return {"start": [s for s in (setting, *heard["start"], *heard["create"]) if s],
            "end": [s for s in (*heard["complete"], getting, *heard["end"]) if s]}


def settings(node: etree._Element, found: Found) -> dict[str, Any]:
    """Everything Baton runs around one element, as its task spec keeps it."""
    return {**boundaries(node), **scripts(node, found), "element": node.get("id"), "name": node.get("name")}


def service(node: etree._Element) -> bool:
    """Whether an element calls something as a service task does (a send task may, in Camunda 7)."""
    if local(node) == "serviceTask":
        return True
    return local(node) == "sendTask" and (any(node.get(camunda(a)) for a in (
        "class", "delegateExpression", "expression", "topic")) or bool(extensions(node, "connector")))


def connector_io(node: etree._Element) -> etree._Element | None:
    """A `camunda:connector`'s own input and output parameters."""
    for item in extensions(node, "connector"):
        return item.find(camunda("inputOutput"))
    return None


def connector_inputs(node: etree._Element) -> list[etree._Element]:
    """Where a service task's connector input is declared: under its connector, or else on the task."""
    io = connector_io(node)
    return [io] if io is not None else extensions(node, "inputOutput")


# Sequence flows: take listeners become a task on the flow


def take_listeners(root: etree._Element, known: Rewritten) -> list[Note]:
    """A sequence flow's take listeners run as a script task inserted on the flow (no shape, no history entry)."""
    notes = []
    for container in containers(root):
        graph = Graph(container, known)
        for flow in list(graph.flows):
            heard = [item for item in extensions(flow, "executionListener")
                     if (item.get("event") or "take").strip() == "take"]
            code = [c for item in heard if (c := listener(item, "", []))]
            if not code or flow.get("targetRef") not in graph.nodes:
                continue
            source = graph.nodes.get(flow.get("sourceRef"))
            if source is not None and local(source) == "eventBasedGateway":
                # Only events may follow it: the flow is taken as its event is caught, when that event starts.
                target = graph.nodes[flow.get("targetRef")]
                target.set(TAKEN, " ".join([*(target.get(TAKEN) or "").split(), flow.get("id")]))
                continue
            step = graph.add("scriptTask", f"{PREFIX}take_{flow.get('id')}")
            etree.SubElement(step, f"{{{BPMN}}}script").text = "\n".join(code)
            _retarget(graph, flow, step, graph.nodes[flow.get("targetRef")])
            notes.append(note(flow, f"the take listener of the flow '{label(flow)}' runs as the flow is taken"))
    return notes


def _retarget(graph: Graph, flow: etree._Element, step: etree._Element, target: etree._Element) -> None:
    """flow: source -> step, and a new flow step -> target."""
    for ref in target.findall(f"{{{BPMN}}}incoming"):
        if (ref.text or "").strip() == flow.get("id"):
            target.remove(ref)
    flow.set("targetRef", step.get("id"))
    etree.SubElement(step, f"{{{BPMN}}}incoming").text = flow.get("id")
    graph.connect(step, target)


# Lint


def check(node: etree._Element) -> Found:
    """What of an element's async boundaries, parameters and listeners cannot run (a process: its own listeners;
    a sequence flow: its take listeners)."""
    found: Found = []
    kind = local(node)
    if kind == "process":
        listeners(node, found)
    elif kind == "sequenceFlow":
        for item in extensions(node, "executionListener"):
            listener(item, f"the take listener of the flow '{label(node)}'", found)
    elif kind and node.find(EXT) is not None:
        scripts(node, found)
    return found


# On the task specs


def attach(wf_spec: Any, task_spec: Any, node: etree._Element, element_id: str | None) -> None:
    """What Camunda 7 runs around an element, on the spec that runs it; a loop's own boundaries on the loop.

    Boundaries of an activity with boundary events go on the split and join around it, so that its boundary events
    start only after the boundary before it, and are gone before the one after it.
    """
    found = loop_boundaries(node) if isinstance(task_spec, LoopTask) else settings(node, [])
    found["element"], found["name"] = element_id, node.get("name")
    if isinstance(task_spec, ServiceTask):
        found["before"] = False  # a service task already waits for its job
    split = wf_spec.task_specs.get(f"{task_spec.name}.BoundaryEventSplit")
    if split is not None:
        edges = {"element": element_id, "name": found["name"], "retry": found["retry"]}
        _put(split, {**edges, "before": found.pop("before")})
        _put(wf_spec.task_specs.get(f"{task_spec.name}.BoundaryEventJoin"), {**edges, "after": found.pop("after")})
    _put(task_spec, found)


def _put(task_spec: Any, found: dict[str, Any]) -> None:
    """Keep an element's settings on its spec when there is anything to do."""
    if task_spec is None or not any(found.get(k) for k in ("before", "after", "start", "end")):
        return
    kept = {k: v for k, v in found.items() if v}
    task_spec.extensions = {**(getattr(task_spec, "extensions", None) or {}), KEY: kept}

