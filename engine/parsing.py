"""BPMN and DMN bytes to SpiffWorkflow specs: safe XML, Camunda attributes, and a lint report."""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn.parser.util import full_tag
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.spiff.parser import SpiffBpmnParser
from SpiffWorkflow.spiff.parser.process import SpiffProcessParser
from SpiffWorkflow.spiff.parser.task_spec import BusinessRuleTaskParser as SpiffBusinessRuleTaskParser
from SpiffWorkflow.spiff.parser.task_spec import SpiffTaskParser
from SpiffWorkflow.spiff.specs.defaults import BusinessRuleTask

from .errors import InvalidDiagram, Problem
from .specs import ServiceTask

log = logging.getLogger(__name__)

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA = "http://camunda.org/schema/1.0/bpmn"
DMN_PREFIX = "https://www.omg.org/spec/DMN/"
NS = {"bpmn": BPMN, "camunda": CAMUNDA}
ISO_8601 = re.compile(r"^(R\d*/)?([-+\d:.TZW]+/)?P(?=\d|T\d)[\dYMWD.]*(T[\dHMS.]*)?(/[-+\d:.TZ]+)?$"
                      r"|^\d{4}-\d\d-\d\d(T[\d:.]+(Z|[+-]\d\d:?\d\d)?)?$")
NAIVE_DATE = re.compile(r"^\d{4}-\d\d-\d\d(T[\d:.]+)?$")
UNSUPPORTED = {"complexGateway": "complex gateways are not supported",
               "linkEventDefinition": "link events are not supported yet: draw the flow as a sequence flow",
               "compensateEventDefinition": "compensation is not supported"}
# SpiffWorkflow names two internal tasks of every process like this; an element with the same id breaks it.
RESERVED_IDS = {"Start", "End", "Root"}

_safe_parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                               remove_comments=False)


@dataclass(frozen=True)
class Source:
    """One uploaded file, kept byte for byte."""

    name: str
    content: bytes

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


@dataclass
class Parsed:
    """What deploy needs: the processes found, their specs, and every problem with the files."""

    processes: dict[str, tuple[Any, dict[str, Any]]] = field(default_factory=dict)  # id -> (spec, subprocess specs)
    files: dict[str, Source] = field(default_factory=dict)  # process id -> file it came from
    names: dict[str, str | None] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


def source(item: Path | str | bytes, index: int = 0) -> Source:
    if isinstance(item, bytes):
        return Source(f"upload-{index + 1}.bpmn", item)
    path = Path(item)
    return Source(path.name, path.read_bytes())


def read_xml(src: Source, max_bytes: int) -> etree._Element:
    """Parse untrusted XML: no DTD, no entities, no network, bounded size."""
    if len(src.content) > max_bytes:
        raise InvalidDiagram([Problem(src.name, None, None, f"the file is {len(src.content):,} bytes; "
                                      f"the limit is {max_bytes:,} (BATON_MAX_DIAGRAM_BYTES)")])
    doctype = re.search(rb"<!DOCTYPE", src.content, re.IGNORECASE)
    if doctype:
        line = src.content.count(b"\n", 0, doctype.start()) + 1
        raise InvalidDiagram([Problem(src.name, line, None, "a DOCTYPE is not allowed in a diagram")])
    try:
        root = etree.fromstring(src.content, _safe_parser)
    except etree.XMLSyntaxError as exc:
        raise InvalidDiagram([Problem(src.name, exc.lineno, None, f"the file is not well-formed XML: {exc.msg}")]
                             ) from exc
    if root.getroottree().docinfo.doctype:
        raise InvalidDiagram([Problem(src.name, 1, None, "a DOCTYPE is not allowed in a diagram")])
    return root


def python_expression(text: str | None) -> str | None:
    """A modeller's expression as Python: `${x}` (JUEL) and `=x` (FEEL) forms reduced to their simple cases."""
    if text is None:
        return None
    text = text.strip()
    if text.startswith("${") and text.endswith("}"):
        text = text[2:-1].strip()
        text = re.sub(r"&&", " and ", text)
        text = re.sub(r"\|\|", " or ", text)
        text = re.sub(r"!(?!=)", " not ", text)
        text = re.sub(r"\b(eq)\b", "==", re.sub(r"\b(ne)\b", "!=", text))
        text = re.sub(r"\btrue\b", "True", re.sub(r"\bfalse\b", "False", re.sub(r"\bnull\b", "None", text)))
        return text.strip()
    if text.startswith("="):
        return text[1:].strip()
    return text


def timer_expression(text: str | None) -> str | None:
    """Timer values as analysts write them (`PT48H`, `R/P1D`, a date) become the Python SpiffWorkflow evaluates."""
    if text is None or not text.strip():
        return text
    text = text.strip()
    if ISO_8601.match(text):
        if NAIVE_DATE.match(text):
            text += "+00:00"  # a date without a zone means UTC, never the server's local time
        return repr(text)
    return python_expression(text)


def normalize(root: etree._Element) -> None:
    """Rewrite expressions in place so SpiffWorkflow reads them as Python; line numbers stay as they were."""
    for tag in ("timeDuration", "timeDate", "timeCycle"):
        for node in root.iter(f"{{{BPMN}}}{tag}"):
            node.text = timer_expression(node.text)
    for tag in ("conditionExpression", "completionCondition", "loopCardinality", "loopCondition"):
        for node in root.iter(f"{{{BPMN}}}{tag}"):
            node.text = python_expression(node.text)


def literal_or_expression(value: str | None) -> dict[str, str] | None:
    """A Camunda attribute: `${...}` or `=...` is an expression, anything else a literal."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    if value.startswith(("${", "=")):
        return {"expression": python_expression(value) or ""}
    return {"literal": value}


def form_fields(node: etree._Element) -> list[dict[str, Any]]:
    """`camunda:formData/formField` as plain dicts kept on the spec."""
    fields = []
    for f in node.iterfind("bpmn:extensionElements/camunda:formData/camunda:formField", NS):
        constraints = {c.get("name"): c.get("config") for c in f.iterfind("camunda:validation/camunda:constraint", NS)}
        fields.append({
            "id": f.get("id"),
            "label": f.get("label") or f.get("id"),
            "type": f.get("type") or "string",
            "default": f.get("defaultValue"),
            "required": "required" in constraints,
            "readonly": "readonly" in constraints,
            "constraints": {k: v for k, v in constraints.items() if k not in ("required", "readonly")},
            "values": [{"id": v.get("id"), "name": v.get("name") or v.get("id")}
                       for v in f.iterfind("camunda:value", NS)],
        })
    return fields


def baton_extensions(node: etree._Element) -> dict[str, Any]:
    """What Baton reads from analysts' tools on a user task or start event."""
    attr = {k: node.get(f"{{{CAMUNDA}}}{k}") for k in ("assignee", "candidateUsers", "candidateGroups", "dueDate",
                                                        "formKey", "priority")}
    properties = {p.get("name"): p.get("value")
                  for p in node.iterfind("bpmn:extensionElements/camunda:properties/camunda:property", NS)}
    return {
        "assignee": literal_or_expression(attr["assignee"]),
        "candidate_users": literal_or_expression(attr["candidateUsers"]),
        "candidate_groups": literal_or_expression(attr["candidateGroups"]),
        "due": literal_or_expression(attr["dueDate"]),
        "form_key": attr["formKey"],
        "form": form_fields(node),
        "properties": properties,
    }


class ServiceTaskParser(SpiffTaskParser):
    """Service tasks from Spiff (`serviceTaskOperator`) and Camunda (topic, class, expression) alike."""

    def create_task(self) -> ServiceTask:
        extensions = self.parse_extensions()
        operator = extensions.get("serviceTaskOperator")
        if operator:
            connector, params, result = operator["name"], operator["parameters"], operator["resultVariable"]
            params = {k: v["value"] for k, v in params.items()}
        else:
            get = self.node.get
            connector = (get(f"{{{CAMUNDA}}}topic") or get(f"{{{CAMUNDA}}}class")
                         or get(f"{{{CAMUNDA}}}delegateExpression") or get(f"{{{CAMUNDA}}}expression"))
            connector_id = self.node.find("bpmn:extensionElements/camunda:connector/camunda:connectorId", NS)
            if connector is None and connector_id is not None:
                connector = connector_id.text
            params = {p.get("name"): p.text or "" for p in
                      self.node.iterfind("bpmn:extensionElements/camunda:inputOutput/camunda:inputParameter", NS)}
            result = get(f"{{{CAMUNDA}}}resultVariable")
        return ServiceTask(self.spec, self.bpmn_id, connector=connector, params=params, result_variable=result,
                           prescript=extensions.get("preScript"), postscript=extensions.get("postScript"),
                           **self.bpmn_attributes)


class BusinessRuleTaskParser(SpiffBusinessRuleTaskParser):
    """Decisions named the Spiff way (`calledDecisionId`) or the Camunda way (`camunda:decisionRef`)."""

    @staticmethod
    def get_decision_ref(node: etree._Element) -> str | None:
        return SpiffBusinessRuleTaskParser.get_decision_ref(node) or node.get(f"{{{CAMUNDA}}}decisionRef")


class ProcessParser(SpiffProcessParser):
    """Finds elements by id among BPMN elements only: a Camunda enum value `approve` is not the task `approve`."""

    def _index_process_nodes(self) -> None:
        super()._index_process_nodes()
        for node_id, node in list(self.nodes_by_id.items()):
            if not node.tag.startswith(f"{{{BPMN}}}"):
                bpmn = self.node.xpath(f'.//bpmn:*[@id="{node_id}"]', namespaces=NS)
                if bpmn:
                    self.nodes_by_id[node_id] = bpmn[0]
                else:
                    del self.nodes_by_id[node_id]


class Parser(SpiffBpmnParser):
    """Baton's one parser: SpiffWorkflow's, plus Camunda's assignment, form and service-task attributes."""

    PROCESS_PARSER_CLASS = ProcessParser
    OVERRIDE_PARSER_CLASSES = {
        **SpiffBpmnParser.OVERRIDE_PARSER_CLASSES,
        full_tag("serviceTask"): (ServiceTaskParser, ServiceTask),
        full_tag("businessRuleTask"): (BusinessRuleTaskParser, BusinessRuleTask),
    }

    def __init__(self) -> None:
        super().__init__()
        self.nodes: dict[str, etree._Element] = {}

    def add(self, root: etree._Element, filename: str) -> None:
        for node in root.iter():
            if isinstance(node.tag, str) and node.get("id") and node.tag.startswith(f"{{{BPMN}}}"):
                self.nodes.setdefault(node.get("id"), node)
        if root.tag.startswith("{" + DMN_PREFIX) or "DMN" in root.tag:
            self.add_dmn_xml(root, filename=filename)
        else:
            self.add_bpmn_xml(root, filename=filename)

    def spec(self, process_id: str) -> tuple[Any, dict[str, Any]]:
        spec = self.get_spec(process_id)
        subprocesses = self.get_subprocess_specs(process_id)
        for wf_spec in [spec, *subprocesses.values()]:
            for task_spec in wf_spec.task_specs.values():
                node = self.nodes.get(getattr(task_spec, "bpmn_id", None) or "")
                if node is not None and node.tag in (f"{{{BPMN}}}userTask", f"{{{BPMN}}}startEvent",
                                                     f"{{{BPMN}}}manualTask"):
                    task_spec.extensions = {**getattr(task_spec, "extensions", {}), "baton": baton_extensions(node)}
        return spec, subprocesses


def parse(sources: Iterable[Source], *, max_bytes: int,
          check: Callable[[str, str], list[tuple[int, str]]] | None = None) -> Parsed:
    """Parse every file together, so call activities and business-rule tasks resolve, and collect all problems."""
    parser, parsed, roots = Parser(), Parsed(), {}
    for src in sources:
        try:
            root = read_xml(src, max_bytes)
        except InvalidDiagram as exc:
            parsed.problems.extend(exc.problems)
            continue
        parsed.problems.extend(lint_xml(src.name, root, check))
        normalize(root)
        roots[src.name] = root
        try:
            parser.add(root, src.name)
        except ValidationException as exc:
            parsed.problems.append(problem(exc, src.name, parser.nodes))
            continue
        for process in root.iterfind("bpmn:process", NS):
            if process.get("isExecutable", "true").lower() == "true" or len(root.findall("bpmn:process", NS)) == 1:
                parsed.files[process.get("id")] = src
                parsed.names[process.get("id")] = process.get("name")
    if roots and not parsed.files and not any(r.tag.startswith("{" + DMN_PREFIX) for r in roots.values()):
        parsed.problems.append(Problem(next(iter(roots)), None, None, "the file has no executable process"))
    flagged = {p.element_id for p in parsed.problems if p.element_id}
    for process_id, src in list(parsed.files.items()):
        try:
            parsed.processes[process_id] = parser.spec(process_id)
        except ValidationException as exc:
            found = problem(exc, src.name, parser.nodes)
            if found.element_id not in flagged:
                parsed.problems.append(found)
            del parsed.files[process_id]
    return parsed


def problem(exc: ValidationException, filename: str, nodes: dict[str, etree._Element]) -> Problem:
    """A SpiffWorkflow validation error in an analyst's words, with the line recovered from the XML."""
    element_id = getattr(exc, "id", None) or None
    line = getattr(exc, "line_number", None) or None
    if not line and element_id in nodes:
        line = nodes[element_id].sourceline
    message = str(exc).split("\nSource Details")[0].strip()
    return Problem(getattr(exc, "file_name", None) or filename, int(line) if line else None, element_id, message)


def lint_xml(filename: str, root: etree._Element, check: Callable[[str, str], list[tuple[int, str]]] | None
             ) -> list[Problem]:
    """Checks SpiffWorkflow does not make, or makes one at a time: all of them, before anything runs."""
    found: list[Problem] = []

    def add(node: etree._Element, message: str, severity: str = "error", line: int | None = None) -> None:
        found.append(Problem(filename, line or node.sourceline, node.get("id") or _owner_id(node), message, severity))

    if not root.tag.startswith(f"{{{BPMN}}}"):
        return found
    messages = {m.get("id") for m in root.iter(f"{{{BPMN}}}message")}
    flows = {f.get("id"): f for f in root.iter(f"{{{BPMN}}}sequenceFlow")}
    ids = {n.get("id") for n in root.iter() if isinstance(n.tag, str) and n.get("id")}
    for node in root.iter():
        if not isinstance(node.tag, str):
            continue
        local = etree.QName(node).localname
        if local in UNSUPPORTED:
            add(node, UNSUPPORTED[local])
        if node.get("id") in RESERVED_IDS and node.getparent() is not None and local != "definitions":
            add(node, f"the id '{node.get('id')}' is reserved by the engine: rename the element")
        if local in ("exclusiveGateway", "inclusiveGateway"):
            outgoing = [flows[f.text] for f in node.iterfind("bpmn:outgoing", NS) if f.text in flows]
            outgoing = outgoing or [f for f in flows.values() if f.get("sourceRef") == node.get("id")]
            if len(outgoing) > 1:
                for flow in outgoing:
                    if flow.find("bpmn:conditionExpression", NS) is None and flow.get("id") != node.get("default"):
                        add(flow, f"the flow '{flow.get('name') or flow.get('id')}' leaves the gateway "
                                  f"'{node.get('name') or node.get('id')}' without a condition and is not its "
                                  "default flow: add a condition or make it the default")
        if local == "sequenceFlow" and flow_dangles(node, ids):
            add(node, "the flow points to an element that does not exist")
        if local == "messageEventDefinition" and node.get("messageRef") and node.get("messageRef") not in messages:
            add(node, f"the message '{node.get('messageRef')}' is never defined")
        if local == "timerEventDefinition" and not any((c.text or "").strip() for c in node):
            add(node, "the timer has no date, duration or cycle")
        if check is not None:
            for text, mode, what in expressions(node, local):
                for offset, message in check(python_expression(text) if mode == "eval" else text, mode):
                    line = (node.sourceline or 0) + max(offset - 1, 0) if mode == "exec" else node.sourceline
                    # What does not compile blocks deployment; what the sandbox refuses fails (as an incident) when run.
                    severity = "error" if message.startswith("SyntaxError") else "warning"
                    add(node, f"{what}: {message}" if severity == "error" else f"{what.replace('cannot', 'will not')}"
                        f": {message}", severity, line=line)
    return found


def expressions(node: etree._Element, local: str) -> list[tuple[str, str, str]]:
    if local == "script" and node.text:
        return [(node.text, "exec", "the script cannot run")]
    if local in ("conditionExpression", "completionCondition", "loopCondition") and node.text:
        return [(node.text, "eval", "the condition cannot be evaluated")]
    if local in ("timeDuration", "timeDate", "timeCycle") and node.text and not ISO_8601.match(node.text.strip()):
        return [(node.text, "eval", "the timer expression cannot be evaluated")]
    return []


def flow_dangles(flow: etree._Element, ids: set[str]) -> bool:
    return flow.get("sourceRef") not in ids or flow.get("targetRef") not in ids


def _owner_id(node: etree._Element) -> str | None:
    while node is not None and not node.get("id"):
        node = node.getparent()
    return node.get("id") if node is not None else None

