"""Legal BPMN that SpiffWorkflow cannot run as drawn, rewritten into an equivalent form it runs; the checks of it."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from lxml import etree

log = logging.getLogger(__name__)

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA = "http://camunda.org/schema/1.0/bpmn"
SPIFF = "http://spiffworkflow.org/bpmn/schema/1.0/core"
ACTIVITI = "http://activiti.org/bpmn"
DC = "http://www.omg.org/spec/DD/20100524/DC"
NS = {"bpmn": BPMN}
# Every element Baton inserts has an id with this prefix and no shape on the diagram; SpiffWorkflow runs it like
# any other element, but its task spec carries no bpmn_id, so history, activity counts and markers never show it.
PREFIX = "baton_"
CONTAINERS = {"process", "subProcess", "transaction", "adHocSubProcess"}
EVENTS = {"startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent"}
GATEWAYS = {"exclusiveGateway", "inclusiveGateway", "parallelGateway", "eventBasedGateway", "complexGateway"}
ACTIVITIES = {"task", "userTask", "manualTask", "scriptTask", "serviceTask", "sendTask", "receiveTask",
              "businessRuleTask", "callActivity", "subProcess", "transaction", "adHocSubProcess"}
FLOW_NODES = EVENTS | GATEWAYS | ACTIVITIES
# SpiffWorkflow's own task names in every process: an element with one of these ids would silently take their place.
INTERNAL = {"Start", "End", "Root", "StartEventSplit", "StartEventJoin"}
INTERNAL_SUFFIXES = (".EndJoin", ".BoundaryEventSplit", ".BoundaryEventJoin")
# Attributes and elements whose value is the id of a flow node.
NODE_REFS = ("sourceRef", "targetRef", "attachedToRef", "bpmnElement", "activityRef")


@dataclass(frozen=True)
class Note:
    """What one rewrite changed, on the element of the uploaded diagram it concerns."""

    element_id: str | None
    line: int | None
    message: str
    severity: str = "note"  # "warning": the analyst should see it in the lint report


@dataclass
class Rewritten:
    """The notes of every rewrite of one tree, and the ids of the elements they inserted."""

    notes: list[Note] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)  # every id in the tree, so that new ones never clash
    inserted: set[str] = field(default_factory=set)


def local(node: etree._Element) -> str:
    return etree.QName(node).localname if isinstance(node.tag, str) and node.tag.startswith(f"{{{BPMN}}}") else ""


def label(node: etree._Element) -> str:
    return " ".join((node.get("name") or node.get("id") or local(node)).split())


def note(node: etree._Element, message: str, severity: str = "note") -> Note:
    return Note(node.get("id"), node.sourceline, message, severity)


def executable(root: etree._Element) -> list[etree._Element]:
    """The processes to deploy: those marked executable; when a tool leaves the flag out, those with a start event."""
    processes = root.findall("bpmn:process", NS)
    marked = [p for p in processes if (p.get("isExecutable") or "").strip().lower() == "true"]
    if marked:
        return marked
    unmarked = [p for p in processes if p.get("isExecutable") is None]
    if len(processes) == 1:
        return unmarked
    return [p for p in unmarked if p.find("bpmn:startEvent", NS) is not None]


def containers(root: etree._Element) -> Iterator[etree._Element]:
    return (n for n in root.iter(*(f"{{{BPMN}}}{c}" for c in CONTAINERS)))


def children(container: etree._Element, kinds: set[str] = FLOW_NODES) -> list[etree._Element]:
    return [n for n in container if local(n) in kinds]


class Graph:
    """The sequence flows of one process or sub-process, and edits that keep `incoming`/`outgoing` in step."""

    def __init__(self, container: etree._Element, known: Rewritten) -> None:
        self.container, self.known = container, known
        self.flows = children(container, {"sequenceFlow"})
        self.nodes = {n.get("id"): n for n in children(container)}

    def outgoing(self, node_id: str | None) -> list[etree._Element]:
        return [f for f in self.flows if f.get("sourceRef") == node_id]

    def incoming(self, node_id: str | None) -> list[etree._Element]:
        return [f for f in self.flows if f.get("targetRef") == node_id]

    def new_id(self, base: str) -> str:
        found, n = base, 1
        while found in self.known.ids:
            n += 1
            found = f"{base}_{n}"
        self.known.ids.add(found)
        self.known.inserted.add(found)
        return found

    def add(self, kind: str, base: str, **attributes: str) -> etree._Element:
        node = etree.SubElement(self.container, f"{{{BPMN}}}{kind}", id=self.new_id(base), **attributes)
        if kind in FLOW_NODES:
            self.nodes[node.get("id")] = node
        return node

    def connect(self, source: etree._Element, target: etree._Element) -> etree._Element:
        flow = self.add("sequenceFlow", f"{PREFIX}flow_{source.get('id')}", sourceRef=source.get("id"),
                        targetRef=target.get("id"))
        self.flows.append(flow)
        _ref(source, "outgoing", flow.get("id"))
        _ref(target, "incoming", flow.get("id"))
        return flow

    def move_source(self, flow: etree._Element, source: etree._Element) -> None:
        old = self.nodes.get(flow.get("sourceRef"))
        if old is not None:
            _unref(old, "outgoing", flow.get("id"))
        flow.set("sourceRef", source.get("id"))
        _ref(source, "outgoing", flow.get("id"))


def _ref(node: etree._Element, kind: str, flow_id: str) -> None:
    etree.SubElement(node, f"{{{BPMN}}}{kind}").text = flow_id


def _unref(node: etree._Element, kind: str, flow_id: str | None) -> None:
    for ref in node.findall(f"bpmn:{kind}", NS):
        if (ref.text or "").strip() == flow_id:
            node.remove(ref)


def rewrite(root: etree._Element) -> Rewritten:
    """Every rewrite, in order: the tree (never the stored file) becomes one SpiffWorkflow runs as the diagram means."""
    done = Rewritten(ids={n.get("id") for n in root.iter() if isinstance(n.tag, str) and n.get("id")})
    if local(root) != "definitions":
        return done
    steps: list[Callable[[etree._Element, Rewritten], list[Note]]] = [
        activiti, drawing, plain_data, empty_conditions, unconditioned_flows, links, implicit_starts, implicit_ends,
        implicit_splits]
    for process in root.iterfind("bpmn:process", NS):
        process.set("isExecutable", "true")  # `executable` decides what deploys; a called process must parse too
    for step in steps:
        done.notes += step(root, done)
    return done


def activiti(root: etree._Element, known: Rewritten) -> list[Note]:
    """Activiti's extension namespace, which older Camunda diagrams use, means what Camunda's does (as in Camunda 7)."""
    found = False
    for node in root.iter():
        if not isinstance(node.tag, str):
            continue
        if node.tag.startswith(f"{{{ACTIVITI}}}"):
            node.tag, found = f"{{{CAMUNDA}}}{etree.QName(node).localname}", True
        for key in [k for k in node.attrib if k.startswith(f"{{{ACTIVITI}}}")]:
            node.set(f"{{{CAMUNDA}}}{etree.QName(key).localname}", node.attrib.pop(key))
            found = True
    return [note(root, "the diagram's Activiti extensions are read as Camunda's")] if found else []


def drawing(root: etree._Element, known: Rewritten) -> list[Note]:
    """A shape whose bounds are not numbers draws nothing; SpiffWorkflow, which orders branches by them, skips it."""
    notes = []
    for bounds in list(root.iter(f"{{{DC}}}Bounds")):
        try:
            float(bounds.get("x", 0)) + float(bounds.get("y", 0))
        except ValueError:
            shape = bounds.getparent()
            shape.remove(bounds)
            notes.append(note(shape, f"the shape of '{shape.get('bpmnElement')}' has no position that is a number"))
    return notes


def plain_data(root: etree._Element, known: Rewritten) -> list[Note]:
    """Data objects, data stores and inputs/outputs are the instance's data itself: no associations copy them around.

    SpiffWorkflow would move a data object out of the task data, demand an implementation for every data store and
    narrow a task's data to its declared inputs; in Baton every task sees the instance's data.
    """
    notes = []
    for node in list(root.iter(*(f"{{{BPMN}}}{k}" for k in ACTIVITIES | EVENTS))):
        associations = node.findall("bpmn:dataInputAssociation", NS) + node.findall("bpmn:dataOutputAssociation", NS)
        io = node.find("bpmn:ioSpecification", NS)
        if io is not None and (node.find("bpmn:multiInstanceLoopCharacteristics", NS) is not None
                               or local(node) == "callActivity" and not associations):
            io = None  # a multi-instance names its items there; a call activity's names the variables it passes on,
            # unless associations fill its inputs from data objects, which are the instance's data themselves
        for item in [*associations, *([io] if io is not None else [])]:
            node.remove(item)
        if associations or io is not None:
            notes.append(note(node, f"'{label(node)}' reads and writes the instance's data directly: its data "
                                    "associations and inputs/outputs are documentation"))
    for node in list(root.iter(f"{{{BPMN}}}dataStore", f"{{{BPMN}}}dataStoreReference")):
        node.getparent().remove(node)
        if local(node) == "dataStore":
            notes.append(note(node, f"the data store '{label(node)}' is documentation: scripts keep their data in "
                                    "the instance"))
    return notes


def empty_conditions(root: etree._Element, known: Rewritten) -> list[Note]:
    """An empty condition is no condition (some tools write one for every flow)."""
    notes = []
    for condition in list(root.iter(f"{{{BPMN}}}conditionExpression")):
        if not (condition.text or "").strip():
            flow = condition.getparent()
            flow.remove(condition)
            notes.append(note(flow, f"the flow '{label(flow)}' has an empty condition: it is read as no condition"))
    return notes


def unconditioned_flows(root: etree._Element, known: Rewritten) -> list[Note]:
    """A flow without a condition out of a gateway that has a default is never taken: the default is the flow taken
    when no condition holds, and a flow without one has none that holds. It never loops a token forever, as Camunda
    7's reading (always true) can. (Without a default such a flow is a lint error: nothing says when to take it.)"""
    notes = []
    flows = {f.get("id"): f for f in root.iter(f"{{{BPMN}}}sequenceFlow")}
    for gateway in root.iter(f"{{{BPMN}}}exclusiveGateway", f"{{{BPMN}}}inclusiveGateway"):
        default = flows.get(gateway.get("default") or "")
        if default is None or default.get("sourceRef") != gateway.get("id"):
            continue
        for flow in flows.values():
            if flow is default or flow.get("sourceRef") != gateway.get("id") or \
                    flow.find("bpmn:conditionExpression", NS) is not None:
                continue
            etree.SubElement(flow, f"{{{BPMN}}}conditionExpression").text = "False"
            notes.append(note(flow, f"the flow '{label(flow)}' leaves the gateway '{label(gateway)}' without a "
                                    f"condition, so it is never taken: the gateway takes its default flow "
                                    f"'{label(default)}' when no condition holds. Give it a condition", "warning"))
    return notes


def links(root: etree._Element, known: Rewritten) -> list[Note]:
    """A link throw event and the link catch event of the same name in the same process are a sequence flow."""
    notes = []
    for container in containers(root):
        graph = Graph(container, known)
        catches = {}
        for event in children(container, {"intermediateCatchEvent"}):
            link = event.find("bpmn:linkEventDefinition", NS)
            if link is not None:
                catches.setdefault(link.get("name") or event.get("name"), []).append((event, link))
        used = set()
        for event in children(container, {"intermediateThrowEvent"}):
            link = event.find("bpmn:linkEventDefinition", NS)
            if link is None:
                continue
            target = (link.findtext("bpmn:target", None, NS) or "").strip()
            found = [c for group in catches.values() for c in group if c[1].get("id") == target] if target else \
                catches.get(link.get("name") or event.get("name"), [])
            if len(found) != 1:
                continue  # lint reports it: no catch, or more than one
            catch, catch_link = found[0]
            event.remove(link)
            graph.connect(event, catch)
            used.add(id(catch))
            notes.append(note(event, f"the link '{label(event)}' continues at '{label(catch)}'"))
        for group in catches.values():
            for catch, catch_link in group:
                if id(catch) in used:
                    catch.remove(catch_link)  # a catch event of nothing: the token passes through
    return notes


def _starters(graph: Graph) -> list[etree._Element]:
    """Where a process or sub-process without a start event begins: every flow node without incoming flows."""
    return [n for id_, n in graph.nodes.items() if not graph.incoming(id_) and local(n) != "boundaryEvent"
            and n.get("isForCompensation", "false").lower() != "true" and n.get("triggeredByEvent") != "true"
            and n.find("bpmn:linkEventDefinition", NS) is None]


def implicit_starts(root: etree._Element, known: Rewritten) -> list[Note]:
    """BPMN starts a (sub-)process without a start event at every element without incoming flows, all at once."""
    notes = []
    for container in containers(root):
        if local(container) == "adHocSubProcess" or container.get("triggeredByEvent") == "true" or \
                container.find("bpmn:startEvent", NS) is not None:
            continue
        graph = Graph(container, known)
        starters = _starters(graph)
        if not starters:
            continue
        start = graph.add("startEvent", f"{PREFIX}start_{container.get('id')}")
        for node in starters:
            graph.connect(start, node)
        notes.append(note(container, f"'{label(container)}' has no start event: it starts at "
                                     + ", ".join(f"'{label(n)}'" for n in starters)))
    return notes


def implicit_ends(root: etree._Element, known: Rewritten) -> list[Note]:
    """A sub-process without an end event ends when its last tokens stop: SpiffWorkflow needs the end drawn."""
    notes = []
    for container in containers(root):
        if local(container) not in ("subProcess", "transaction") or container.find("bpmn:endEvent", NS) is not None:
            continue
        graph = Graph(container, known)
        leaves = [n for id_, n in graph.nodes.items() if not graph.outgoing(id_)
                  and n.get("isForCompensation", "false").lower() != "true" and n.get("triggeredByEvent") != "true"]
        if not leaves:
            continue
        end = graph.add("endEvent", f"{PREFIX}end_{container.get('id')}")
        for node in leaves:
            graph.connect(node, end)
        notes.append(note(container, f"'{label(container)}' has no end event: it ends when "
                                     + ", ".join(f"'{label(n)}'" for n in leaves) + " have finished"))
    return notes


def implicit_splits(root: etree._Element, known: Rewritten) -> list[Note]:
    """Flows leaving an activity or event all run (a parallel split); conditional ones only when true (inclusive).

    The default flow of an activity runs when none of its conditional flows does, alongside its unconditional ones.
    """
    notes = []
    for container in containers(root):
        graph = Graph(container, known)
        for node in list(graph.nodes.values()):
            if local(node) in GATEWAYS:
                continue
            out = graph.outgoing(node.get("id"))
            default = node.get("default")
            conditional = [f for f in out if f.find("bpmn:conditionExpression", NS) is not None
                           and f.get("id") != default]
            if len(out) < 2 and not conditional:
                continue
            always = [f for f in out if f not in conditional and (f.get("id") != default or not conditional)]
            chosen = [f for f in out if f not in always]
            source = node
            if len(always) > 1 or (always and chosen):
                split = graph.add("parallelGateway", f"{PREFIX}split_{node.get('id')}")
                graph.connect(source, split)
                for flow in always:
                    graph.move_source(flow, split)
                source = split
            if chosen:
                choice = graph.add("inclusiveGateway", f"{PREFIX}choice_{node.get('id')}")
                graph.connect(source, choice)
                for flow in chosen:
                    graph.move_source(flow, choice)
                if default in {f.get("id") for f in chosen}:
                    choice.set("default", default)
            if default is not None:
                del node.attrib["default"]
            what = "some run, as their conditions say" if chosen and not always else \
                "all run" if not chosen else "the unconditional ones run, the others as their conditions say"
            notes.append(note(node, f"{len(out)} flows leave '{label(node)}': {what}"))
    return notes


def rename_internal(root: etree._Element) -> dict[str, str]:
    """Give elements whose id is one of SpiffWorkflow's internal task names another id; returns new id -> old."""
    ids = {n.get("id") for n in root.iter() if isinstance(n.tag, str) and n.get("id")}
    renamed = {}
    for node in root.iter(*(f"{{{BPMN}}}{k}" for k in FLOW_NODES)):
        old = node.get("id") or ""
        if old in INTERNAL or old.endswith(INTERNAL_SUFFIXES):
            new, n = f"{PREFIX}id_{old}", 1
            while new in ids:
                n += 1
                new = f"{PREFIX}id_{old}_{n}"
            ids.add(new)
            renamed[new] = old
            node.set("id", new)
    if renamed:
        back = {old: new for new, old in renamed.items()}
        for node in root.iter():
            if not isinstance(node.tag, str):
                continue
            for attribute in NODE_REFS:
                if node.get(attribute) in back:
                    node.set(attribute, back[node.get(attribute)])
            if etree.QName(node).localname == "flowNodeRef" and (node.text or "").strip() in back:
                node.text = back[(node.text or "").strip()]
    return renamed


# Checks of the rewritten tree: reachability is only known once links, starts and splits are sequence flows.

ZEEBE = "http://camunda.org/schema/zeebe/1.0"
PYTHON = {"", "python", "python3", "py", "text/python", "text/x-python", "application/python", "application/x-python"}
ASSIGNMENT = ("assignee", "candidateUsers", "candidateGroups")


def checks(root: etree._Element, scope: set[str], inserted: set[str]) -> list[tuple[etree._Element, str, str]]:
    """Problems an analyst should see: (element, message, severity) for the processes in `scope`."""
    found: list[tuple[etree._Element, str, str]] = []
    for process in root.iterfind("bpmn:process", NS):
        if process.get("id") not in scope:
            continue
        for container in [process, *process.iter(*(f"{{{BPMN}}}{c}" for c in CONTAINERS - {"process"}))]:
            found += [(n, f"'{label(n)}' can never be reached: no path leads to it from a start event", "warning")
                      for n in unreachable(Graph(container, Rewritten())) if n.get("id") not in inserted]
        lanes = {(ref.text or "").strip() for ref in process.iter(f"{{{BPMN}}}flowNodeRef")}
        for node in process.iter(f"{{{BPMN}}}userTask", f"{{{BPMN}}}manualTask"):
            zeebe = node.find(f"bpmn:extensionElements/{{{ZEEBE}}}assignmentDefinition", NS)
            if node.get("id") not in lanes and not any((node.get(f"{{{CAMUNDA}}}{a}") or "").strip() or (
                    zeebe is not None and (zeebe.get(a) or "").strip()) for a in ASSIGNMENT):
                found.append((node, f"nobody is assigned to '{label(node)}' and it names no candidate users or "
                                    "groups: anyone may claim it", "warning"))
        for node in process.iter(f"{{{BPMN}}}userTask", f"{{{BPMN}}}startEvent"):
            key = (node.get(f"{{{CAMUNDA}}}formKey") or "").strip()
            if key and node.find(f"bpmn:extensionElements/{{{CAMUNDA}}}formData", NS) is None:
                found.append((node, f"'{label(node)}' takes its form from '{key}', which Baton cannot show: it "
                                    "opens with no fields, so what that form would set stays unset", "warning"))
        for node in process.iter(f"{{{BPMN}}}scriptTask"):
            language = (node.get("scriptFormat") or "").strip()
            if language.lower() not in PYTHON:
                found.append((node, f"the script of '{label(node)}' is written in {language}: Baton runs it as "
                                    "Python", "warning"))
        for node in process.iter(f"{{{BPMN}}}businessRuleTask"):
            if not (node.get(f"{{{CAMUNDA}}}decisionRef") or _spiff_decision(node)
                    or node.find(f"bpmn:extensionElements/{{{ZEEBE}}}calledDecision", NS) is not None):
                found.append((node, f"the business rule task '{label(node)}' names no decision: set the decision "
                                    "it evaluates (camunda:decisionRef)", "error"))
        for node in process.iter(f"{{{BPMN}}}boundaryEvent"):
            if not any(etree.QName(c).localname.endswith("EventDefinition") for c in node if isinstance(c.tag, str)):
                found.append((node, f"the boundary event '{label(node)}' has no trigger: say what it waits for (a "
                                    "timer, a message, an error...)", "error"))
        for node in process.iter(f"{{{BPMN}}}subProcess", f"{{{BPMN}}}transaction"):
            if not children(node):
                found.append((node, f"the sub-process '{label(node)}' is empty: draw what happens inside it, or "
                                    "make it a task", "error"))
        for node in process.iter(f"{{{BPMN}}}linkEventDefinition"):
            event = node.getparent()
            found.append((event, f"the link '{label(event)}' has no single matching "
                                 f"{'catching' if local(event) == 'intermediateThrowEvent' else 'throwing'} link "
                                 "event of the same name in the same process", "error"))
    return found


def _spiff_decision(node: etree._Element) -> str | None:
    return node.findtext(".//{http://spiffworkflow.org/bpmn/schema/1.0/core}calledDecisionId")


def unreachable(graph: Graph) -> list[etree._Element]:
    """Flow nodes no token can reach from a start event of their own process or sub-process."""
    starts = [n for n in graph.nodes.values() if local(n) == "startEvent"]
    if not starts or local(graph.container) == "adHocSubProcess":
        return []  # one that cannot start is an error of its own; an ad-hoc sub-process has no order
    seen = {n.get("id") for n in starts}
    seen |= {n.get("id") for n in graph.nodes.values()
             if n.get("triggeredByEvent") == "true" or n.get("isForCompensation", "").lower() == "true"}
    todo = list(seen)
    while todo:
        current = todo.pop()
        reached = [f.get("targetRef") for f in graph.outgoing(current)]
        reached += [n.get("id") for n in graph.nodes.values() if n.get("attachedToRef") == current]
        for node_id in reached:
            if node_id not in seen:
                seen.add(node_id)
                todo.append(node_id)
    return [n for node_id, n in graph.nodes.items() if node_id not in seen]


def no_executable(processes: list[tuple[str, str | None]]) -> str:
    """Why nothing deploys: every process is marked not executable, or none has a start event, or there is none."""
    marked = [name for name, flag in processes if (flag or "").strip().lower() == "false"]
    if marked:
        names = ", ".join(f"'{name}'" for name in marked)
        return (f"the file has no executable process: {names} {'is' if len(marked) == 1 else 'are'} marked not "
                "executable (isExecutable=\"false\"); mark the process to run as executable in your modeller")
    if processes:
        return ("the file has no executable process: none is marked executable and none has a start event; mark "
                "the process to run as executable in your modeller")
    return "the file has no executable process"


PROSE = re.compile(r"[^\W\d][\w'’?.,/-]*(\s+[\w'’?.,/-]+)+")


def unreadable(node: etree._Element, text: str, what: str, message: str) -> str:
    """Why an expression is not Python: the language it is written in, prose, or Python's own message."""
    raw = " ".join(text.split())
    shown = f"'{raw[:80]}…'" if len(raw) > 80 else f"'{raw}'"
    language = node.get("language") or node.getroottree().getroot().get("expressionLanguage") or ""
    owner = node.getparent() if node.getparent() is not None else node
    subject = what.split(" cannot")[0].replace("the ", "", 1)
    subject = f"the {subject} {shown}" + (f" of '{label(owner)}'" if owner.get("name") else "")
    if "feel" in language.lower() or raw.startswith("="):
        return f"{subject} is FEEL, which Baton cannot translate: write it in Python"
    if raw.startswith("${") or "juel" in language.lower():
        return f"{subject} is a JUEL expression Baton cannot translate: write it in Python"
    if re.search(r"\b[A-Za-z]+:[A-Za-z]+\(", raw):
        return f"{subject} is XPath, which Baton does not run: write it in Python"
    if PROSE.fullmatch(raw):
        return f"{subject} reads as prose: write the test it stands for in Python, such as decision == \"approve\""
    if re.match(r"[^\W\d]\w*(\s+\w+)+\s*(=|==|!=|<|>)", raw):
        return f"{subject} is not Python: a variable name cannot contain spaces"
    return f"{what}: {message}"
