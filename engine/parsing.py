"""BPMN and DMN bytes to SpiffWorkflow specs: safe XML, Camunda attributes, and a lint report."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn.parser.util import full_tag
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import LoopTask
from SpiffWorkflow.spiff.parser import SpiffBpmnParser
from SpiffWorkflow.spiff.parser.event_parsers import SpiffSendTaskParser
from SpiffWorkflow.spiff.parser.process import SpiffProcessParser
from SpiffWorkflow.spiff.parser.task_spec import BusinessRuleTaskParser as SpiffBusinessRuleTaskParser
from SpiffWorkflow.spiff.parser.task_spec import CallActivityParser, SpiffTaskParser
from SpiffWorkflow.spiff.specs.defaults import BusinessRuleTask, SendTask

from . import calls, camunda, expressions, forms, normalize, services, zeebe
from .errors import InvalidDiagram, Problem
from .specs import CALL, CallActivity, DecisionTask, ServiceTask

log = logging.getLogger(__name__)

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA = "http://camunda.org/schema/1.0/bpmn"
SPIFF = "http://spiffworkflow.org/bpmn/schema/1.0/core"
DMN_PREFIX = "https://www.omg.org/spec/DMN/"
ZEEBE = "http://camunda.org/schema/zeebe/1.0"
NS = {"bpmn": BPMN, "camunda": CAMUNDA, "spiffworkflow": SPIFF, "zeebe": ZEEBE}
# SpiffArena's properties naming the JSON-Schema form (and its UI schema) of a user task.
SCHEMA, UI_SCHEMA = "formJsonSchemaFilename", "formUiSchemaFilename"
ISO_8601 = re.compile(r"^(R\d*/)?([-+\d:.TZW]+/)?P(?=\d|T\d)[\dYMWD.]*(T[\dHMS.]*)?(/[-+\d:.TZ]+)?$"
                      r"|^\d{4}-\d\d-\d\d(T[\d:.]+(Z|[+-]\d\d:?\d\d)?)?$")
NAIVE_DATE = re.compile(r"^\d{4}-\d\d-\d\d(T[\d:.]+)?$")
UNSUPPORTED = {"complexGateway": "complex gateways are not supported",
               "compensateEventDefinition": "compensation is not supported"}
REFERENCED = ("message", "signal", "error", "escalation")  # event definitions that name one of these by id
# SpiffWorkflow's messages that say something an analyst can act on, in the analyst's words.
REWORDED = [(re.compile(r'No DMN Diagram available with id "(.*?)"'),
             "the decision '{0}' is not among the uploaded files: upload its DMN file together with this diagram"),
            (re.compile(r"The process '(.*?)' was not found"),
             "the called process '{0}' is not among the uploaded files: upload its file together with this diagram"),
            (re.compile(r"Time Specification Error"), "the timer's date, duration or cycle cannot be read"),
            (re.compile(r"When looking for a task spec, we found two items.*\((.*?)\)"),
             "the flow points to an element that does not exist: '{0}'"),
            (re.compile(r'No "calledElement" attribute'),
             "the call activity '{label}' names no process to call: set its called element"),
            (re.compile(r"A multiinstance task must specify a cardinality or a loop input"),
             "'{label}' repeats, but says neither how often nor over which collection: set a loop cardinality or "
             "an input collection"),
            (re.compile(r"A loopMaximum or loopCondition must be specified"),
             "'{label}' loops, but has neither a loop condition nor a maximum: set one")]

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
    schemas: dict[str, list[Source]] = field(default_factory=dict)  # process id -> JSON files its forms come from
    notes: list[Problem] = field(default_factory=list)  # what the import rewrote to run a diagram as drawn
    bound: dict[str, list[str]] = field(default_factory=dict)  # process id -> deployed versions it calls

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    def used(self, process_id: str, called: Iterable[str]) -> list[Source]:
        """The files besides its own that a process's definition is built from: its called processes', its forms'."""
        src, called = self.files[process_id], list(called)
        names = {self.files[p].name for p in called if p in self.files}
        return [s for s in self.files.values() if s is not src and s.name in names] + \
            [s for p in (process_id, *called) for s in self.schemas.get(p, [])]


def source(item: Source | Path | str | bytes, index: int = 0) -> Source:
    if isinstance(item, Source):
        return item
    if isinstance(item, bytes):
        return Source(f"upload-{index + 1}.bpmn", item)
    path = Path(item)
    return Source(path.name, path.read_bytes())


def is_json(src: Source) -> bool:
    """A JSON file uploaded with diagrams: a JSON-Schema form, or a Camunda 8 form (`.form`, form-js JSON)."""
    return Path(src.name).suffix.lower() in (".json", ".form")


def check_size(src: Source, max_bytes: int) -> None:
    if len(src.content) > max_bytes:
        raise InvalidDiagram([Problem(src.name, None, None, f"the file is {len(src.content):,} bytes; "
                                      f"the limit is {max_bytes:,} (BATON_MAX_DIAGRAM_BYTES)")])


def read_json(src: Source, max_bytes: int) -> Any:
    """Parse an uploaded JSON file (a form schema), bounded in size."""
    check_size(src, max_bytes)
    try:
        return json.loads(src.content)
    except UnicodeDecodeError as exc:
        raise InvalidDiagram([Problem(src.name, None, None, "the file is not UTF-8 text")]) from exc
    except json.JSONDecodeError as exc:
        raise InvalidDiagram([Problem(src.name, exc.lineno, None, f"the file is not valid JSON: {exc.msg}")]
                             ) from exc
    except (ValueError, RecursionError) as exc:  # numbers too long, arrays nested too deep
        raise InvalidDiagram([Problem(src.name, None, None, f"the file cannot be read as JSON: {exc}")]) from exc


def read_xml(src: Source, max_bytes: int) -> etree._Element:
    """Parse untrusted XML: no DTD, no entities, no network, bounded size."""
    check_size(src, max_bytes)
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
    """A modeller's expression as Python: JUEL (`${...}`) and FEEL (`=...`) are translated, Python kept as it is.

    What cannot be translated is kept as written: lint reports why, and a run would fail as an incident.
    """
    if text is None:
        return None
    try:
        return translate(text.strip())
    except expressions.Untranslatable:
        return text.strip()


def translate(text: str) -> str:
    """JUEL or FEEL as Python; a `${...}` that JUEL refuses but that reads as Python is Python, as Baton read it."""
    try:
        return expressions.to_python(text)
    except expressions.Untranslatable:
        inner = text[2:-1].strip() if text.startswith("${") and text.endswith("}") else ""
        if inner and _compiles(inner):
            return inner
        raise


def _compiles(source: str) -> bool:
    try:
        compile(source, "<expression>", "eval")
    except (SyntaxError, ValueError):
        return False
    return True


def timer_expression(text: str | None) -> str | None:
    """Timer values as analysts write them (`PT48H`, `R/P1D`, a date) become the Python SpiffWorkflow evaluates."""
    if text is None or not text.strip():
        return text
    text = text.strip()
    if ISO_8601.match(text):
        if NAIVE_DATE.match(text):
            text += "+00:00"  # a date without a zone means UTC, never the server's local time
        return repr(text)
    if "${" in text or "#{" in text:  # a JUEL template such as PT${hours}H
        try:
            return expressions.juel(text)
        except expressions.Untranslatable:
            return text
    return python_expression(text)


def normalize_expressions(root: etree._Element) -> None:
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
    if "${" in value or "#{" in value:  # JUEL, or a template such as `sales,${department}`
        try:
            return {"expression": expressions.juel(value)}
        except expressions.Untranslatable:
            return {"expression": value}
    if value.startswith("="):
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


def properties(node: etree._Element) -> dict[str, str]:
    """An element's `camunda:properties` and `spiffworkflow:properties`, by name."""
    found: dict[str, str] = {}
    for path in ("camunda:properties/camunda:property", "spiffworkflow:properties/spiffworkflow:property"):
        found |= {p.get("name"): p.get("value") for p in node.iterfind(f"bpmn:extensionElements/{path}", NS)}
    return found


def form_files(node: etree._Element) -> tuple[str, str | None] | None:
    """The JSON schema and UI schema files an element takes its form from, if it names one."""
    named = properties(node)
    return (named[SCHEMA], named.get(UI_SCHEMA) or None) if named.get(SCHEMA) else None


def baton_extensions(node: etree._Element, json_forms: JsonForms) -> dict[str, Any]:
    """What Baton reads from analysts' tools on a user task or start event."""
    attr = {k: node.get(f"{{{CAMUNDA}}}{k}") for k in ("assignee", "candidateUsers", "candidateGroups", "dueDate",
                                                        "formKey", "priority")}
    for c8 in node.iterfind("bpmn:extensionElements/zeebe:assignmentDefinition", NS):  # Camunda 8
        attr |= {k: v for k in ("assignee", "candidateUsers", "candidateGroups") if (v := c8.get(k))}
    for c8 in node.iterfind("bpmn:extensionElements/zeebe:taskSchedule", NS):
        attr["dueDate"] = attr["dueDate"] or c8.get("dueDate")
    files = form_files(node)
    return {
        "assignee": literal_or_expression(attr["assignee"]),
        "candidate_users": literal_or_expression(attr["candidateUsers"]),
        "candidate_groups": literal_or_expression(attr["candidateGroups"]),
        "due": literal_or_expression(attr["dueDate"]),
        "form_key": attr["formKey"],
        "form": json_forms.fields.get(files, []) if files else form_fields(node) or zeebe.form(
            node, json_forms.form_ids)[0],
        "properties": properties(node),
    }


class JsonForms:
    """The uploaded JSON files, and the forms translated from the ones user tasks and start events name."""

    def __init__(self, files: Iterable[Source], max_bytes: int) -> None:
        self.files = {f.name: f for f in files}
        self.documents: dict[str, Any] = {}  # name -> its JSON, for the files that parse
        self.problems: list[Problem] = []
        for src in self.files.values():
            try:
                self.documents[src.name] = read_json(src, max_bytes)
            except InvalidDiagram as exc:
                self.problems.extend(exc.problems)
        self.fields: dict[tuple[str, str | None], list[dict[str, Any]]] = {}  # translated once per pair
        self.used: dict[str, list[Source]] = {}  # process id -> the JSON files its forms come from
        self.form_ids: dict[str, tuple[str, Any]] = {}  # Camunda 8 form id -> (file, its form-js JSON)
        for name, document in self.documents.items():
            form_id = document.get("id") if isinstance(document, dict) and "components" in document else None
            if isinstance(form_id, str) and form_id in self.form_ids:
                self.problems.append(Problem(name, None, None, f"the Camunda form id '{form_id}' is the id of "
                                                               f"{self.form_ids[form_id][0]} too: give each its own"))
            elif isinstance(form_id, str):
                self.form_ids[form_id] = (name, document)

    def link(self, filename: str, root: etree._Element) -> list[Problem]:
        """Translate the forms a diagram names; problems for files not uploaded and for what cannot be shown."""
        found = []
        for node in root.iter(f"{{{BPMN}}}userTask", f"{{{BPMN}}}startEvent"):
            found += self._camunda_8(filename, node)
            files = form_files(node)
            if files is None:
                continue
            named, label = [name for name in files if name], node.get("name") or node.get("id")
            found += [Problem(filename, node.sourceline, node.get("id"),
                              f"Upload {name} together with this diagram: '{label}' takes its form from it")
                      for name in named if name not in self.files]
            self._use(node, named)
            if files not in self.fields and all(name in self.documents for name in named):
                found += self._translate(files, node.get("id"))
        return found

    def _camunda_8(self, filename: str, node: etree._Element) -> list[Problem]:
        """What of a Camunda 8 form (embedded, or linked to an uploaded .form file) cannot be shown."""
        _, unsupported, linked = zeebe.form(node, self.form_ids)
        if linked is not None:
            self._use(node, [linked])
            return [Problem(linked, form_js_line(self.files[linked], u.key), node.get("id"), u.message, u.severity)
                    for u in unsupported]
        definition = node.find("bpmn:extensionElements/zeebe:formDefinition", NS)
        line = definition.sourceline if definition is not None else node.sourceline
        return [Problem(filename, line, node.get("id"), u.message, u.severity) for u in unsupported]

    def _use(self, node: etree._Element, names: list[str]) -> None:
        """Remember the files the element's process uses, so that its definition's checksum covers them."""
        process = next(node.iterancestors(f"{{{BPMN}}}process"), None)
        if process is not None:
            used = self.used.setdefault(process.get("id"), [])
            used += [self.files[n] for n in names if n in self.files and self.files[n] not in used]

    def _translate(self, files: tuple[str, str | None], element_id: str | None) -> list[Problem]:
        schema, ui_schema = files
        ui = self.documents[ui_schema] if ui_schema else None
        self.fields[files], unsupported = forms.from_json_schema(self.documents[schema], ui)
        return [Problem(schema, json_line(self.files[schema], u.key), element_id, u.message, u.severity)
                for u in unsupported]


def form_js_line(src: Source, key: str | None) -> int | None:
    """The line where a form-js form has the field of this key (None for the form as a whole)."""
    leaf = (key or "").split(".")[-1]
    found = re.search(rb'"key"\s*:\s*' + re.escape(json.dumps(leaf, ensure_ascii=False).encode()), src.content) \
        if leaf else None
    return src.content.count(b"\n", 0, found.start()) + 1 if found else None


def json_line(src: Source, key: str | None) -> int | None:
    """The line where a JSON schema names a property (None for the schema as a whole)."""
    if key is None:
        return None
    pattern = re.compile(re.escape(json.dumps(key, ensure_ascii=False).encode()) + rb"\s*:")
    found = pattern.search(src.content, max(src.content.find(b'"properties"'), 0))
    return src.content.count(b"\n", 0, found.start()) + 1 if found else None


class ServiceTaskParser(SpiffTaskParser):
    """Service tasks from Spiff (`serviceTaskOperator`), Camunda 7 (topic, connector, class, expression) and 8."""

    def create_task(self) -> ServiceTask:
        return services.service_task(self)


class SendTaskParser(SpiffSendTaskParser):
    """A send task that calls something as a service task does (Camunda 7) is one; else it throws its message."""

    def create_task(self) -> Any:
        return services.service_task(self) if camunda.service(self.node) else super().create_task()


class BusinessRuleTaskParser(SpiffBusinessRuleTaskParser):
    """Decisions named the Spiff way (`calledDecisionId`), the Camunda 7 way (`camunda:decisionRef`) or the Camunda 8
    way (`zeebe:calledDecision`, whose result goes into one variable)."""

    def create_task(self) -> BusinessRuleTask:
        result = zeebe.result_variable(self.node)
        if result is None:
            return super().create_task()
        extensions = self.parse_extensions()
        return DecisionTask(self.spec, self.bpmn_id, result_variable=result,
                            dmnEngine=self.process_parser.parser.get_engine(self.get_decision_ref(self.node),
                                                                            self.node),
                            prescript=extensions.get("preScript"), postscript=extensions.get("postScript"),
                            **self.bpmn_attributes)

    @staticmethod
    def get_decision_ref(node: etree._Element) -> str | None:
        return SpiffBusinessRuleTaskParser.get_decision_ref(node) or node.get(f"{{{CAMUNDA}}}decisionRef") or \
            zeebe.decision_ref(node)


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
        full_tag("sendTask"): (SendTaskParser, SendTask),
        full_tag("callActivity"): (CallActivityParser, CallActivity),
        full_tag("businessRuleTask"): (BusinessRuleTaskParser, BusinessRuleTask),
    }

    def __init__(self, json_forms: JsonForms, called: calls.Called | None = None) -> None:
        super().__init__()
        self.called = called  # deployed processes that call activities bind to, by (process id, version or None)
        self.bound: dict[str, list[str]] = {}  # process id -> the deployed versions it calls, "id@version:checksum"
        self.nodes: dict[str, etree._Element] = {}
        self.json_forms = json_forms
        self.inserted: set[str] = set()  # elements the import added: their tasks are no diagram element
        self.renamed: dict[str, str] = {}  # id in the parsed tree -> id in the diagram
        self.origin: dict[str, str] = {}  # element id -> the file it is in

    def add(self, root: etree._Element, filename: str, inserted: Iterable[str] = ()) -> None:
        self.inserted |= set(inserted)
        self.renamed |= normalize.rename_internal(root)
        for node in root.iter():
            if isinstance(node.tag, str) and node.get("id") and node.tag.startswith(f"{{{BPMN}}}"):
                self.nodes.setdefault(node.get("id"), node)
                self.origin.setdefault(node.get("id"), filename)
        if root.tag.startswith("{" + DMN_PREFIX) or "DMN" in root.tag:
            feel_cells(root)
            self.add_dmn_xml(root, filename=filename)
        else:
            self.add_bpmn_xml(root, filename=filename)

    def spec(self, process_id: str) -> tuple[Any, dict[str, Any]]:
        spec = self.get_spec(process_id)
        subprocesses = self.get_subprocess_specs(process_id, require_call_activity_specs=False)
        for wf_spec in [spec, *(s for s in subprocesses.values() if s is not None)]:
            for task_spec in wf_spec.task_specs.values():
                bpmn_id = getattr(task_spec, "bpmn_id", None) or ""
                node = self.nodes.get(bpmn_id)
                if node is not None and node.tag in (f"{{{BPMN}}}userTask", f"{{{BPMN}}}startEvent",
                                                     f"{{{BPMN}}}manualTask"):
                    task_spec.extensions = {**getattr(task_spec, "extensions", {}), "baton": baton_extensions(
                        node, self.json_forms)}
                # A loop's mappings belong to each of its instances, not to the loop around them.
                if node is not None and not isinstance(task_spec, LoopTask) and (found := zeebe.extensions(node)):
                    task_spec.extensions = {**getattr(task_spec, "extensions", {}), "zeebe": found}
                for item in (getattr(task_spec, "input_item", None), getattr(task_spec, "output_item", None)):
                    if item is not None and (item.bpmn_id or "").startswith(zeebe.ITEM):
                        item.bpmn_id = item.bpmn_name  # a Camunda 8 loop's element is a variable of that name
                if node is not None:
                    element_id = node.get("id")
                    camunda.attach(wf_spec, task_spec, node,
                                   None if element_id in self.inserted else self.renamed.get(element_id, element_id))
                if node is not None and isinstance(task_spec, CallActivity):
                    task_spec.extensions = {**(task_spec.extensions or {}), CALL: calls.call_mappings(node, [])}
                # History, inbox and diagram markers know elements by the id drawn; inserted ones by none.
                if bpmn_id in self.inserted:
                    task_spec.bpmn_id = None
                elif bpmn_id in self.renamed:
                    task_spec.bpmn_id = self.renamed[bpmn_id]
        self.bound[process_id] = calls.bind(self, process_id, spec, subprocesses)
        return spec, subprocesses


def parse(sources: Iterable[Source], *, max_bytes: int,
          check: Callable[[str, str], list[tuple[int, str]]] | None = None,
          connectors: Container[str] | None = None, called: calls.Called | None = None) -> Parsed:
    """Parse every file together, so call activities and business-rule tasks resolve, and collect all problems.

    Each diagram is rewritten (a parsed copy; `Source.content` stays as uploaded) into a form SpiffWorkflow runs,
    linted, and parsed; whatever SpiffWorkflow raises becomes a problem.
    """
    sources = list(sources)
    json_forms = JsonForms([s for s in sources if is_json(s)], max_bytes)
    parser, parsed, roots = Parser(json_forms, called), Parsed(problems=list(json_forms.problems)), {}
    deploys = False
    unexecutable: list[tuple[str, str | None]] = []  # (name, isExecutable) of the processes that do not deploy
    for src in sources:
        if is_json(src):
            continue
        try:
            root = read_xml(src, max_bytes)
        except InvalidDiagram as exc:
            parsed.problems.extend(exc.problems)
            continue
        deployable = [p.get("id") for p in normalize.executable(root)]
        unexecutable += [(normalize.label(p), p.get("isExecutable")) for p in root.iterfind("bpmn:process", NS)
                         if p.get("id") not in deployable]
        deploys = deploys or bool(deployable)
        try:
            rewritten = normalize.rewrite(root)
            rewritten.notes += zeebe.rewrite(root, rewritten)
            rewritten.notes += camunda.take_listeners(root, rewritten)
            parsed.problems.extend(lint_xml(src.name, root, check, deployable, rewritten.inserted))
        except Exception as exc:  # a bug in a rewrite or a check must never stop the report
            parsed.problems.append(crash(exc, src.name))
            continue
        for n in rewritten.notes:
            found = Problem(src.name, n.line, n.element_id, n.message, n.severity)
            (parsed.problems if n.severity == "warning" else parsed.notes).append(found)
        parsed.problems.extend(json_forms.link(src.name, root))
        normalize_expressions(root)
        roots[src.name] = root
        try:
            parser.add(root, src.name, rewritten.inserted)
        except Exception as exc:
            parsed.problems.append(problem(exc, src.name, parser))
            continue
        for process in root.iterfind("bpmn:process", NS):
            if process.get("id") in deployable:
                parsed.files[process.get("id")] = src
                parsed.names[process.get("id")] = process.get("name")
    if roots and not deploys and not any(r.tag.startswith("{" + DMN_PREFIX) for r in roots.values()):
        parsed.problems.append(Problem(next(iter(roots)), None, None, normalize.no_executable(unexecutable)))
    errors = [p for p in parsed.problems if p.severity == "error"]
    flagged = {p.element_id for p in errors if p.element_id} | {p.message for p in errors}
    for process_id, src in list(parsed.files.items()):
        try:
            parsed.processes[process_id] = parser.spec(process_id)
        except Exception as exc:
            found = problem(exc, src.name, parser)
            if found.element_id not in flagged and found.message not in flagged:
                parsed.problems.append(found)
            del parsed.files[process_id]
    parsed.schemas = json_forms.used
    parsed.bound = parser.bound
    if connectors is not None:
        parsed.problems += services.missing(parser, parsed.processes.values(), connectors)
    return parsed


def problem(exc: Exception, filename: str, parser: Parser) -> Problem:
    """A SpiffWorkflow error in an analyst's words, on the element of the diagram, with the line from the XML."""
    if not isinstance(exc, ValidationException):
        return crash(exc, filename, parser)
    element_id = getattr(exc, "id", None) or None
    line = getattr(exc, "line_number", None) or None
    missing = re.search(r"The process '(.*?)' was not found", str(exc))
    if element_id is None and missing:  # SpiffWorkflow names no element: the call activity that calls it
        element_id = next((i for i, n in parser.nodes.items() if n.tag == f"{{{BPMN}}}callActivity"
                           and n.get("calledElement") == missing.group(1)), None)
    if not line and element_id in parser.nodes:
        line = parser.nodes[element_id].sourceline
    message = str(exc).split("\nSource Details")[0].strip()
    node = parser.nodes.get(element_id or "")
    name = normalize.label(node) if node is not None else element_id
    for pattern, words in REWORDED:
        if found := pattern.search(message):
            message = words.format(*found.groups(), label=name)
    if re.match(r"\w+(Error|Exception)\(", message):  # SpiffWorkflow wrapped an error of its own
        message = f"'{name}' cannot be read: {message}"
    if element_id in parser.inserted:
        element_id = None
    element_id = parser.renamed.get(element_id or "", element_id)
    return Problem(getattr(exc, "file_name", None) or filename, int(line) if line else None, element_id, message)


def crash(exc: Exception, filename: str, parser: Parser | None = None) -> Problem:
    """An error SpiffWorkflow (or a rewrite) did not mean to raise, on the innermost element it was reading."""
    log.warning("unexpected %s reading %s", type(exc).__name__, filename, exc_info=exc)
    node, tb = None, exc.__traceback__
    while tb is not None:
        candidate = getattr(tb.tb_frame.f_locals.get("self"), "node", None)
        if isinstance(candidate, etree._Element) and candidate.get("id"):
            node = candidate
        tb = tb.tb_next
    element_id = node.get("id") if node is not None else None
    if parser is not None:
        element_id = None if element_id in parser.inserted else parser.renamed.get(element_id or "", element_id)
    what = f"'{normalize.label(node)}'" if node is not None else "the diagram"
    return Problem(filename, node.sourceline if node is not None else None, element_id,
                   f"{what} cannot be read: {type(exc).__name__}: {exc}")


def lint_xml(filename: str, root: etree._Element, check: Callable[[str, str], list[tuple[int, str]]] | None,
             deployable: Iterable[str] = (), inserted: Iterable[str] = ()) -> list[Problem]:
    """Checks SpiffWorkflow does not make, or makes one at a time: all of them, before anything runs.

    Only the processes that deploy (and those they call) are checked: a pool drawn beside them is documentation;
    with none to deploy, every process is, so that a draft shows all that must change.
    """
    found: list[Problem] = []

    def add(node: etree._Element, message: str, severity: str = "error", line: int | None = None) -> None:
        if etree.QName(node).localname.endswith("EventDefinition"):
            node = node.getparent()  # the event is what the diagram draws and the markers find
        found.append(Problem(filename, line or node.sourceline, node.get("id") or _owner_id(node), message, severity))

    if not root.tag.startswith(f"{{{BPMN}}}"):
        return found
    deployable, inserted = set(deployable), set(inserted)
    scope = deployable | {c.get("calledElement") for c in root.iter(f"{{{BPMN}}}callActivity")}
    processes = [p for p in root.iterfind("bpmn:process", NS) if p.get("id") in scope or not deployable]
    defined = {kind: {m.get("id") for m in root.iter(f"{{{BPMN}}}{kind}")} for kind in REFERENCED}
    flows = {f.get("id"): f for f in root.iter(f"{{{BPMN}}}sequenceFlow")}
    ids = {n.get("id") for n in root.iter() if isinstance(n.tag, str) and n.get("id")}
    for node in (n for p in processes for n in p.iter()):
        if not isinstance(node.tag, str) or node.get("id") in inserted \
                or (inserted and not node.get("id") and _owner_id(node) in inserted):
            continue
        for item, message, severity in (*camunda.check(node), *services.check(node), *calls.check(node)):
            add(item, message, severity)
        local = etree.QName(node).localname
        if local in UNSUPPORTED:
            owner = node.getparent() if local.endswith("EventDefinition") else node
            add(node, f"{UNSUPPORTED[local]} ('{normalize.label(owner)}')")
        if local in ("exclusiveGateway", "inclusiveGateway"):
            outgoing = [flows[f.text] for f in node.iterfind("bpmn:outgoing", NS) if f.text in flows]
            outgoing = outgoing or [f for f in flows.values() if f.get("sourceRef") == node.get("id")]
            if len(outgoing) > 1:
                for flow in outgoing:
                    if flow.find("bpmn:conditionExpression", NS) is None and flow.get("id") != node.get("default"):
                        add(flow, f"the flow '{normalize.label(flow)}' leaves the gateway "
                                  f"'{normalize.label(node)}' without a condition and is not its "
                                  "default flow: add a condition or make it the default")
        if local == "sequenceFlow" and flow_dangles(node, ids):
            missing = node.get("sourceRef") if node.get("sourceRef") not in ids else node.get("targetRef")
            add(node, f"the flow points to an element that does not exist: '{missing}'")
        kind = local.removesuffix("EventDefinition")
        if kind in REFERENCED and node.get(f"{kind}Ref") is not None and node.get(f"{kind}Ref") not in defined[kind]:
            add(node, f"the {kind} '{node.get(f'{kind}Ref')}' is never defined")
        if local == "timerEventDefinition" and not any((c.text or "").strip() for c in node):
            add(node, f"the timer '{normalize.label(node.getparent())}' has no date, duration or cycle: set when "
                      "it fires")
        if local == "failedJobRetryTimeCycle" and not retry_cycle_ok((node.text or "").strip()):
            add(node, f"the retry cycle '{(node.text or '').strip()}' is not R<n>/<duration> or a list of ISO 8601 "
                      "durations such as PT10S,PT1M,PT10M")
        if check is not None:
            for text, mode, what in expressions_of(node, local):
                if mode == "eval" and (refused := untranslatable(text)):
                    add(node, f"{normalize.unreadable(node, text, what, refused)} ({refused})")
                    continue
                for offset, message in check(python_expression(text) if mode == "eval" else text, mode):
                    line = (node.sourceline or 0) + max(offset - 1, 0) if mode == "exec" else node.sourceline
                    # What does not compile blocks deployment; what the sandbox refuses fails (as an incident) when run.
                    if not message.startswith("SyntaxError"):
                        add(node, f"{what.replace('cannot', 'will not')}: {message}", "warning", line=line)
                    elif mode == "eval":
                        add(node, normalize.unreadable(node, text, what, message), line=line)
                    else:
                        add(node, f"{what}: {message}", line=line)
    for node, message, severity in normalize.checks(root, {p.get("id") for p in processes}, inserted):
        add(node, message, severity)
    for node, message, severity in zeebe.checks(root, {p.get("id") for p in processes}):
        add(node, message, severity)
    return found


def feel_cells(root: etree._Element) -> None:
    """A decision table's FEEL as the Python SpiffWorkflow evaluates (`dmninputexpr` is its name for the input).

    Input entries are unary tests (`>= 1000`, `[1..10)`, `"gold","silver"`); input expressions and outputs are
    expressions. A cell FEEL cannot read, such as SpiffArena's Python cells, is left as written.
    """
    def rewrite(cell: etree._Element | None, translate: Callable[[str], str]) -> None:
        if cell is not None and cell.text and cell.text.strip() not in ("", "-"):
            try:
                cell.text = translate(cell.text)
            except expressions.Untranslatable:
                pass

    for node in root.iter():
        local = etree.QName(node).localname if isinstance(node.tag, str) else ""
        text = node.find("{*}text") if local in ("inputEntry", "inputExpression", "outputEntry") else None
        if local == "inputEntry":
            rewrite(text, lambda cell: expressions.feel_unary_tests(cell, "dmninputexpr"))
        elif local in ("inputExpression", "outputEntry"):
            rewrite(text, expressions.feel)


def untranslatable(text: str) -> str | None:
    """Why a JUEL or FEEL expression cannot become Python, or None when it can (or is Python already)."""
    try:
        translate(text.strip())
    except expressions.Untranslatable as exc:
        return str(exc)
    return None


def retry_cycle_ok(cycle: str) -> bool:
    from .jobs import retry_delays

    try:
        retry_delays(cycle)
    except Exception:  # SpiffWorkflow's ISO 8601 readers raise several kinds of errors
        return False
    return True


def expressions_of(node: etree._Element, local: str) -> list[tuple[str, str, str]]:
    if local == "script" and node.text and (node.tag == f"{{{BPMN}}}script" or (
            node.get("scriptFormat") or "").strip().lower() in normalize.PYTHON):
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

