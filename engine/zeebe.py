"""Camunda 8 (`zeebe:`) extensions: what each means to Baton, read from a diagram, and what Baton cannot run."""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from lxml import etree

from . import expressions, forms
from .normalize import BPMN, PREFIX, Graph, Note, Rewritten, label, local, note

log = logging.getLogger(__name__)

ZEEBE = "http://camunda.org/schema/zeebe/1.0"
NS = {"bpmn": BPMN, "zeebe": ZEEBE}
# Elements whose job a worker does in Camunda 8 (`zeebe:taskDefinition`): in Baton, a connector.
JOB_TASKS = ("sendTask", "businessRuleTask", "scriptTask")
# What Baton reads; what it leaves aside without changing what the diagram does; everything else it cannot run.
READ = {"ioMapping", "input", "output", "taskDefinition", "taskHeaders", "header", "subscription", "calledElement",
        "calledDecision", "assignmentDefinition", "taskSchedule", "formDefinition", "userTaskForm", "userTask",
        "loopCharacteristics", "script"}
IGNORED = {"properties", "property", "versionTag", "priorityDefinition"}
ITEM = f"{PREFIX}item_"  # the id prefix of the input and output items a loop gets
NAME = re.compile(r"^[^\W\d]\w*(\.[^\W\d]\w*)*$")  # a variable, or a path into one: order.total


def extensions(node: etree._Element) -> dict[str, Any]:
    """What Baton keeps on an element's task spec: its mappings, result variable, propagation, headers, loop."""
    found: dict[str, Any] = {}
    inputs, outputs = mappings(node)
    if inputs:
        found["inputs"] = inputs
    if outputs:
        found["outputs"] = outputs
    called = _extension(node, "calledElement")
    if called is not None:
        found["propagate"] = (called.get("propagateAllChildVariables") or "true").strip().lower() != "false"
    if result := result_variable(node):
        found["result"] = result
    headers = {h.get("key"): h.get("value") or "" for h in node.iterfind(
        "bpmn:extensionElements/zeebe:taskHeaders/zeebe:header", NS) if h.get("key")}
    if headers:
        found["headers"] = headers
    loop = node.find("bpmn:multiInstanceLoopCharacteristics/bpmn:extensionElements/zeebe:loopCharacteristics", NS)
    if loop is not None:
        found["loop"] = True
        if (loop.get("inputElement") or "").strip():
            found["element"] = loop.get("inputElement").strip()
        if (loop.get("outputCollection") or "").strip() and _variable(loop.get("outputElement")):
            found["collect"] = _variable(loop.get("outputElement"))
    keys = correlation_keys(node)
    if keys:
        found["keys"] = keys
    return found


def mappings(node: etree._Element) -> tuple[list[list[str]], list[list[str]]]:
    """The element's `zeebe:ioMapping` as [target, Python source] pairs, inputs and outputs, in the diagram's order.

    What cannot be translated is kept as written: lint reports it, so it never deploys.
    """
    found: dict[str, list[list[str]]] = {"input": [], "output": []}
    for mapping in node.iterfind("bpmn:extensionElements/zeebe:ioMapping/*", NS):
        kind = etree.QName(mapping).localname if isinstance(mapping.tag, str) else ""
        if kind in found and (mapping.get("target") or "").strip():
            try:
                source = python_source(mapping.get("source"))
            except expressions.Untranslatable:
                source = mapping.get("source") or ""
            found[kind].append([mapping.get("target").strip(), source])
    return found["input"], found["output"]


def python_source(text: str | None) -> str:
    """A mapping's source as Python: `=...` is FEEL, anything else a fixed text, nothing at all null."""
    if text is None or not text.strip():
        return "None"
    if text.strip().startswith("="):
        return expressions.feel(text)
    return repr(text)


def correlation_keys(node: etree._Element) -> dict[str, str]:
    """The correlation keys (message name -> Python expression) a message catcher subscribes with.

    An event-based gateway waits for its events, so it subscribes with theirs; a message start event takes every
    message of its name (Camunda 8 gives it no key).
    """
    if local(node) == "eventBasedGateway":
        targets = [_node(node, f.get("targetRef")) for f in _flows(node) if f.get("sourceRef") == node.get("id")]
        return {name: key for target in targets if target is not None
                for name, key in _keys(target).items()}
    sources = [_node(node, f.get("sourceRef")) for f in _flows(node) if f.get("targetRef") == node.get("id")]
    if local(node) == "startEvent" or any(s is not None and local(s) == "eventBasedGateway" for s in sources):
        return {}
    return _keys(node)


def _keys(node: etree._Element) -> dict[str, str]:
    ref = node.get("messageRef") if local(node) == "receiveTask" else None
    definition = node.find("bpmn:messageEventDefinition", NS)
    message = _message(node, ref or (definition.get("messageRef") if definition is not None else None))
    subscription = message.find("bpmn:extensionElements/zeebe:subscription", NS) if message is not None else None
    text = subscription.get("correlationKey") if subscription is not None else None
    if message is None or not message.get("name") or text is None or not text.strip():
        return {}
    try:
        return {message.get("name"): python_source(text)}
    except expressions.Untranslatable:
        return {message.get("name"): text}


def _flows(node: etree._Element) -> list[etree._Element]:
    parent = node.getparent()
    return list(parent.iterfind("bpmn:sequenceFlow", NS)) if parent is not None else []


def _node(node: etree._Element, node_id: str | None) -> etree._Element | None:
    parent = node.getparent()
    return next((n for n in parent if n.get("id") == node_id), None) if parent is not None and node_id else None


def _message(node: etree._Element, ref: str | None) -> etree._Element | None:
    if not ref:
        return None
    root = node.getroottree().getroot()
    return next((m for m in root.iter(f"{{{BPMN}}}message") if m.get("id") == ref), None)


def _extension(node: etree._Element, name: str) -> etree._Element | None:
    return node.find(f"bpmn:extensionElements/zeebe:{name}", NS)


def result_variable(node: etree._Element) -> str | None:
    """Where a business rule task's called decision puts its result (`zeebe:calledDecision resultVariable`)."""
    decision = _extension(node, "calledDecision")
    return (decision.get("resultVariable") or "").strip() or None if decision is not None else None


def decision_ref(node: etree._Element) -> str | None:
    decision = _extension(node, "calledDecision")
    return (decision.get("decisionId") or "").strip() or None if decision is not None else None


def form(node: etree._Element, linked: dict[str, tuple[str, Any]]
         ) -> tuple[list[dict[str, Any]], list[forms.Unsupported], str | None]:
    """A task's Camunda 8 form as form fields, what of it cannot be shown, and the uploaded file it comes from.

    The form is embedded (`formKey="camunda-forms:bpmn:ID"` naming a `zeebe:userTaskForm` of the diagram) or
    linked (`formId` naming the `id` of an uploaded form-js file); another form key, or an external form, is one
    Baton cannot show.
    """
    definition = _extension(node, "formDefinition")
    if definition is None:
        return [], [], None
    form_id, key = (definition.get("formId") or "").strip(), (definition.get("formKey") or "").strip()
    if form_id:
        if form_id not in linked:
            return [], [forms.Unsupported(None, f"the Camunda form '{form_id}' is not among the uploaded files: "
                                                "upload its .form file together with this diagram")], None
        name, document = linked[form_id]
        return *forms.from_form_js(document), name
    if key.startswith("camunda-forms:bpmn:"):
        embedded_id = key.removeprefix("camunda-forms:bpmn:")
        embedded = next((f for f in node.getroottree().getroot().iter(f"{{{ZEEBE}}}userTaskForm")
                         if f.get("id") == embedded_id), None)
        if embedded is None:
            return [], [forms.Unsupported(None, f"the Camunda form '{key}' is not in the diagram: embed it in the "
                                                "diagram (Camunda Modeler's embedded form)")], None
        try:
            return *forms.from_form_js(json.loads(embedded.text or "")), None
        except ValueError as exc:
            return [], [forms.Unsupported(None, f"the Camunda form '{embedded_id}' is not valid JSON: {exc}")], None
    other = key or (definition.get("externalReference") or "").strip()
    return [], [forms.Unsupported(None, f"'{label(node)}' takes its form from '{other}', which Baton cannot show: "
                                        "it opens with no fields, so what that form would set stays unset",
                                  "warning")] if other else [], None


# Rewrites of the parsed copy (never the stored file), before lint: constructs SpiffWorkflow knows by other names.

def rewrite(root: etree._Element, known: Rewritten) -> list[Note]:
    """Camunda 8's called elements, jobs, FEEL script tasks and loops as the BPMN SpiffWorkflow runs."""
    notes: list[Note] = []
    for step in (called_elements, jobs, scripts, loops):
        notes += step(root, known)
    return notes


def called_elements(root: etree._Element, known: Rewritten) -> list[Note]:
    """`zeebe:calledElement processId` is the process a call activity calls (an expression is for lint to refuse)."""
    for node in root.iter(f"{{{BPMN}}}callActivity"):
        called = _extension(node, "calledElement")
        process_id = (called.get("processId") or "").strip() if called is not None else ""
        if process_id and not process_id.startswith("=") and not node.get("calledElement"):
            node.set("calledElement", process_id)
    return []


def jobs(root: etree._Element, known: Rewritten) -> list[Note]:
    """A send, business rule or script task, or a message throw or end event, with a job type is a connector's job."""
    notes = []
    for node in list(root.iter(*(f"{{{BPMN}}}{k}" for k in JOB_TASKS))):
        job = _extension(node, "taskDefinition")
        if job is None or _extension(node, "calledDecision") is not None or _extension(node, "script") is not None:
            continue
        node.tag = f"{{{BPMN}}}serviceTask"
        notes.append(note(node, f"'{label(node)}' is a job: the connector '{job.get('type')}' does it"))
    for event in list(root.iter(f"{{{BPMN}}}intermediateThrowEvent", f"{{{BPMN}}}endEvent")):
        job, message = _extension(event, "taskDefinition"), event.find("bpmn:messageEventDefinition", NS)
        if job is None or message is None:
            continue
        ends = local(event) == "endEvent"
        event.remove(message)
        event.tag = f"{{{BPMN}}}serviceTask"
        if ends:  # the job runs where the diagram draws the event; the path ends after it
            graph = Graph(event.getparent(), known)
            graph.connect(event, graph.add("endEvent", f"{PREFIX}end_{event.get('id')}"))
        notes.append(note(event, f"the message of '{label(event)}' is sent by a job: the connector "
                                 f"'{job.get('type')}' sends it"))
    return notes


def scripts(root: etree._Element, known: Rewritten) -> list[Note]:
    """A script task's FEEL expression (`zeebe:script`) is a script that sets its result variable."""
    for node in root.iter(f"{{{BPMN}}}scriptTask"):
        script = _extension(node, "script")
        if script is None or node.find("bpmn:script", NS) is not None:
            continue
        name, text = (script.get("resultVariable") or "").strip(), script.get("expression") or ""
        try:
            source = expressions.feel(text)
        except expressions.Untranslatable:
            continue  # lint says why
        if name.isidentifier():
            etree.SubElement(node, f"{{{BPMN}}}script").text = f"{name} = {source}"
    return []


def loops(root: etree._Element, known: Rewritten) -> list[Note]:
    """`zeebe:loopCharacteristics` as the BPMN of a multi-instance: the collection, its element, the output."""
    for loop in root.iter(f"{{{ZEEBE}}}loopCharacteristics"):
        owner = loop.getparent().getparent()
        if local(owner) != "multiInstanceLoopCharacteristics":
            continue
        collection = _variable(loop.get("inputCollection"))
        output, element = (loop.get("outputCollection") or "").strip(), _variable(loop.get("outputElement"))
        for tag, text in (("loopDataInputRef", collection), ("loopDataOutputRef", output)):
            if text and owner.find(f"bpmn:{tag}", NS) is None:
                etree.SubElement(owner, f"{{{BPMN}}}{tag}").text = text
        for tag, name in (("inputDataItem", (loop.get("inputElement") or "").strip()), ("outputDataItem", element)):
            if name and owner.find(f"bpmn:{tag}", NS) is None:
                etree.SubElement(owner, f"{{{BPMN}}}{tag}", id=f"{ITEM}{tag}_{owner.getparent().get('id')}",
                                 name=name)
    return []


def _variable(text: str | None) -> str | None:
    """The variable a FEEL expression names, when it is just a name (`=documents`); else None."""
    name = (text or "").strip().removeprefix("=").strip()
    return name if name.isidentifier() else None


# Lint: what Baton cannot run, in an analyst's words, on the element concerned.

def checks(root: etree._Element, scope: set[str]) -> list[tuple[etree._Element, str, str]]:
    """(element, message, severity) for the Camunda 8 extensions of the processes in `scope`."""
    found: list[tuple[etree._Element, str, str]] = []
    for process in root.iterfind("bpmn:process", NS):
        if process.get("id") not in scope:
            continue
        for node in process.iter():
            if isinstance(node.tag, str) and node.tag.startswith(f"{{{BPMN}}}") and node.get("id"):
                found += _checks(node)
    return found


def _checks(node: etree._Element) -> list[tuple[etree._Element, str, str]]:
    found: list[tuple[etree._Element, str, str]] = []
    name = label(node)
    for extension in node.iterfind("bpmn:extensionElements//zeebe:*", NS):
        kind, parent = etree.QName(extension).localname, etree.QName(extension.getparent()).localname
        if extension.getparent().tag.startswith(f"{{{ZEEBE}}}") and parent not in READ:
            continue  # inside an extension reported already
        if kind in IGNORED:
            found.append((extension, f"Baton ignores zeebe:{kind} on '{name}'", "warning"))
        elif kind not in READ:
            found.append((extension, f"Baton cannot run zeebe:{kind} on '{name}' (a Camunda 8 extension it does not "
                                     "know): remove it, or model what it does in BPMN", "error"))
    for mapping in node.iterfind("bpmn:extensionElements/zeebe:ioMapping/*", NS):
        kind = {"input": "input", "output": "output"}.get(etree.QName(mapping).localname)
        target = (mapping.get("target") or "").strip()
        if kind is None:
            continue
        if not NAME.match(target):
            found.append((mapping, f"the {kind} mapping target '{target}' of '{name}' is not a variable name: use "
                                   "letters, digits and _, and dots for a path (such as order.total)", "error"))
        found += _feel(mapping, mapping.get("source"), f"the {kind} mapping '{target}' of '{name}'")
    called = _extension(node, "calledElement")
    if called is not None and (called.get("processId") or "").strip().startswith("="):
        found.append((node, f"the call activity '{name}' names the process it calls by an expression "
                            f"('{called.get('processId').strip()}'): Baton calls a process named in the diagram, "
                            "so write its id", "error"))
    if called is not None and (called.get("propagateAllParentVariables") or "").strip().lower() == "false":
        found.append((node, f"the call activity '{name}' gives the process it calls all its variables: Baton does "
                            "not narrow them to its input mappings (propagateAllParentVariables)", "warning"))
    decision = _extension(node, "calledDecision")
    if decision is not None and (decision.get("decisionId") or "").strip().startswith("="):
        found.append((node, f"the business rule task '{name}' names its decision by an expression "
                            f"('{decision.get('decisionId').strip()}'): write the decision's id", "error"))
    if decision is not None and not (decision.get("resultVariable") or "").strip():
        found.append((node, f"the business rule task '{name}' names no result variable: say where its decision's "
                            "result goes", "error"))
    script = _extension(node, "script")
    if script is not None and local(node) == "scriptTask":
        if not (script.get("resultVariable") or "").strip().isidentifier():
            found.append((node, f"the script task '{name}' names no result variable that is a variable name: say "
                                "where its result goes", "error"))
        found += _feel(node, script.get("expression") or "=", f"the expression of the script task '{name}'")
    for loop in node.iterfind("bpmn:multiInstanceLoopCharacteristics/bpmn:extensionElements/zeebe:loopCharacteristics",
                              NS):
        for attribute, what in (("inputCollection", "input collection"), ("outputElement", "output element")):
            text = (loop.get(attribute) or "").strip()
            if text and not _variable(text):
                found.append((loop, f"the {what} '{text}' of '{name}' is an expression: Baton loops over, and "
                                    "collects, a variable named in the diagram (such as =documents)", "error"))
        for attribute, what in (("inputElement", "input element"), ("outputCollection", "output collection")):
            text = (loop.get(attribute) or "").strip()
            if text and not text.isidentifier():
                found.append((loop, f"the {what} '{text}' of '{name}' is not a variable name", "error"))
    for key in _keys(node).values():
        if refused := _untranslatable(key):
            found.append((node, f"the correlation key '{key}' '{name}' waits with cannot be read: {refused}",
                          "error"))
    return found


def _feel(node: etree._Element, text: str | None, what: str) -> list[tuple[etree._Element, str, str]]:
    try:
        python_source(text)
    except expressions.Untranslatable as exc:
        return [(node, f"{what} is FEEL Baton cannot translate ('{' '.join((text or '').split())[:80]}'): {exc}",
                 "error")]
    return []


def _untranslatable(source: str) -> str | None:
    """Why a translated source (or the FEEL kept as written) is not Python."""
    if source.strip().startswith("="):
        try:
            expressions.feel(source)
        except expressions.Untranslatable as exc:
            return str(exc)
    return None

