"""The canonical purchase approval process: a clean diagram, and both paths through it on a real database.

Every step of a run uses a fresh Engine, so what a later step sees came from the database, not from memory.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree
from SpiffWorkflow.bpmn.parser import BpmnValidator

from baton.engine.core import Engine
from baton.engine.errors import InvalidData

DIAGRAM = Path(__file__).parent.parent / "processes" / "purchase_approval.bpmn"
PROCESS = "purchase_approval"
NS = {"bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL",
      "bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI",
      "dc": "http://www.omg.org/spec/DD/20100524/DC",
      "di": "http://www.omg.org/spec/DD/20100524/DI"}
NOT_FLOW_NODES = {"sequenceFlow", "laneSet", "documentation", "extensionElements", "property", "dataObject",
                  "ioSpecification", "association", "textAnnotation"}
# Later issues extend the process: these ids are its public surface and must not change.
STABLE_IDS = {"StartEvent_Request": "startEvent", "Task_Prepare": "scriptTask", "Task_Approve": "userTask",
              "Task_RecordDecision": "scriptTask", "Gateway_Decision": "exclusiveGateway",
              "Task_Reject": "scriptTask", "EndEvent_Approved": "endEvent", "EndEvent_Rejected": "endEvent",
              "Lane_Requester": "lane", "Lane_Approver": "lane", "Participant_PurchaseApproval": "participant"}
REQUEST = {"item": "Standing desk", "description": "For the new office", "amount": "1200.50",
           "cost_centre": "CC-42"}


class Directory:
    """bob and bea approve; carol is in no group."""

    def groups_of(self, user: str) -> list[str]:
        return ["approvers"] if user in ("bob", "bea") else []


@contextmanager
def engine(url: str):
    """A fresh engine for one step of a test."""
    eng = Engine(url, directory=Directory())
    try:
        yield eng
    finally:
        eng.close()


def deploy(url: str) -> None:
    with engine(url) as eng:
        eng.deploy(DIAGRAM, user="admin")


def start(url: str, data=None, user: str | None = "ann"):
    deploy(url)
    with engine(url) as eng:
        return eng.start(PROCESS, REQUEST if data is None else data, user=user)


def approval_task(url: str, instance_id, user: str = "bob"):
    with engine(url) as eng:
        tasks = [t for t in eng.tasks(user=user) if t.instance_id == instance_id]
    assert [t.element_id for t in tasks] == ["Task_Approve"]
    return tasks[0]


def decide(url: str, instance_id, data, user: str = "bob"):
    task = approval_task(url, instance_id, user)
    with engine(url) as eng:
        eng.complete_task(task.id, data, user=user)
    with engine(url) as eng:
        return eng.instance(instance_id)


def passed(url: str, instance_id) -> list[str]:
    with engine(url) as eng:
        return [e.element_id for e in eng.history(instance_id) if e.kind == "completed"]


# The diagram


def tree() -> etree._ElementTree:
    return etree.parse(str(DIAGRAM))


def test_diagram_lints_clean(sqlite_url):
    with engine(sqlite_url) as eng:
        report = eng.lint(DIAGRAM)
    assert report.ok, [str(p) for p in report.problems]
    assert report.problems == ()


def test_diagram_is_valid_bpmn_20():
    BpmnValidator().validate(tree(), filename=DIAGRAM.name)  # raises ValidationException when invalid


def test_diagram_is_a_camunda_modeler_collaboration_with_two_lanes():
    root = tree().getroot()
    assert root.get("exporter") == "Camunda Modeler"
    process = root.find("bpmn:process", NS)
    assert (process.get("id"), process.get("name"), process.get("isExecutable")) == (
        PROCESS, "Purchase approval", "true")
    participants = root.findall("bpmn:collaboration/bpmn:participant", NS)
    assert [(p.get("name"), p.get("processRef")) for p in participants] == [("Purchase approval", PROCESS)]
    lanes = process.findall("bpmn:laneSet/bpmn:lane", NS)
    assert [lane.get("name") for lane in lanes] == ["Requester", "Approver"]
    in_lanes = [ref.text for lane in lanes for ref in lane.findall("bpmn:flowNodeRef", NS)]
    assert sorted(in_lanes) == sorted(flow_nodes(root)), "every flow node belongs to exactly one lane"
    for element_id, tag in STABLE_IDS.items():
        found = root.xpath(f"//*[@id='{element_id}']")
        assert len(found) == 1 and etree.QName(found[0]).localname == tag, element_id


def flow_nodes(root: etree._Element) -> dict[str, etree._Element]:
    process = root.find("bpmn:process", NS)
    return {n.get("id"): n for n in process if isinstance(n.tag, str)
            and etree.QName(n).localname not in NOT_FLOW_NODES}


def shapes(root: etree._Element) -> dict[str, tuple[float, float, float, float]]:
    found = {}
    for shape in root.iterfind(".//bpmndi:BPMNShape", NS):
        bounds = shape.find("dc:Bounds", NS)
        found[shape.get("bpmnElement")] = tuple(float(bounds.get(k)) for k in ("x", "y", "width", "height"))
    return found


def test_every_flow_node_lane_and_pool_has_a_shape_and_every_flow_an_edge():
    root = tree().getroot()
    nodes = set(flow_nodes(root))
    lanes = {lane.get("id") for lane in root.iterfind(".//bpmn:lane", NS)}
    participants = {p.get("id") for p in root.iterfind(".//bpmn:participant", NS)}
    flows = {f.get("id") for f in root.iterfind(".//bpmn:sequenceFlow", NS)}
    plane = root.find("bpmndi:BPMNDiagram/bpmndi:BPMNPlane", NS)
    assert plane.get("bpmnElement") == root.find("bpmn:collaboration", NS).get("id")
    shape_refs = [s.get("bpmnElement") for s in root.iterfind(".//bpmndi:BPMNShape", NS)]
    edge_refs = [e.get("bpmnElement") for e in root.iterfind(".//bpmndi:BPMNEdge", NS)]
    assert len(shape_refs) == len(set(shape_refs)) and len(edge_refs) == len(set(edge_refs))
    assert set(shape_refs) == nodes | lanes | participants
    assert set(edge_refs) == flows
    for shape in root.iterfind(".//bpmndi:BPMNShape", NS):
        assert shape.find("dc:Bounds", NS) is not None, shape.get("id")
    for edge in root.iterfind(".//bpmndi:BPMNEdge", NS):
        assert len(edge.findall("di:waypoint", NS)) >= 2, edge.get("id")


def on_border(kind: str, box: tuple[float, float, float, float], x: float, y: float) -> bool:
    bx, by, w, h = box
    cx, cy = bx + w / 2, by + h / 2
    if kind.endswith("Event"):
        return abs(math.hypot(x - cx, y - cy) - w / 2) <= 1
    if kind.endswith("Gateway"):
        return abs(abs(x - cx) / (w / 2) + abs(y - cy) / (h / 2) - 1) <= 0.02
    inside = bx - 1 <= x <= bx + w + 1 and by - 1 <= y <= by + h + 1
    return inside and min(abs(x - bx), abs(x - bx - w), abs(y - by), abs(y - by - h)) <= 1


def test_layout_is_clean_left_to_right():
    root = tree().getroot()
    nodes, box = flow_nodes(root), shapes(root)
    pool = box["Participant_PurchaseApproval"]
    # no two flow nodes overlap
    ids = sorted(nodes)
    for i, a in enumerate(ids):
        for b in ids[i + 1:]:
            (ax, ay, aw, ah), (bx, by, bw, bh) = box[a], box[b]
            assert ax + aw <= bx or bx + bw <= ax or ay + ah <= by or by + bh <= ay, (a, b)
    # every flow node sits inside its lane, the lanes stack inside the pool without gaps
    lanes = root.findall(".//bpmn:lane", NS)
    for lane in lanes:
        lx, ly, lw, lh = box[lane.get("id")]
        for ref in lane.findall("bpmn:flowNodeRef", NS):
            x, y, w, h = box[ref.text]
            assert lx <= x and x + w <= lx + lw and ly <= y and y + h <= ly + lh, (ref.text, lane.get("id"))
    lane_boxes = [box[lane.get("id")] for lane in lanes]
    assert lane_boxes[0][1] == pool[1] and lane_boxes[-1][1] + lane_boxes[-1][3] == pool[1] + pool[3]
    for upper, lower in zip(lane_boxes, lane_boxes[1:], strict=False):
        assert upper[1] + upper[3] == lower[1]
    for lane_box in lane_boxes:
        assert lane_box[0] + lane_box[2] == pool[0] + pool[2]
    # edges start and end on their shapes' borders, run straight or at right angles, and go left to right
    for flow in root.iterfind(".//bpmn:sequenceFlow", NS):
        edge = root.xpath(f"//bpmndi:BPMNEdge[@bpmnElement='{flow.get('id')}']", namespaces=NS)[0]
        points = [(float(p.get("x")), float(p.get("y"))) for p in edge.findall("di:waypoint", NS)]
        source, target = flow.get("sourceRef"), flow.get("targetRef")
        assert on_border(etree.QName(nodes[source]).localname, box[source], *points[0]), flow.get("id")
        assert on_border(etree.QName(nodes[target]).localname, box[target], *points[-1]), flow.get("id")
        for (x1, y1), (x2, y2) in zip(points, points[1:], strict=False):
            assert x1 == x2 or y1 == y2, f"{flow.get('id')} has a diagonal segment"
            assert x2 >= x1, f"{flow.get('id')} runs right to left"
        assert box[source][0] < box[target][0], f"{flow.get('id')} goes backwards"


# Running it


def test_approve_path(database_url):
    instance = start(database_url)
    assert instance.status == "active" and instance.starter == "ann"
    assert instance.data["amount"] == Decimal("1200.50") and instance.data["currency"] == "USD"
    assert instance.data["approvals"] == [] and instance.data["decision"] is None

    task = approval_task(database_url, instance.id)
    assert (task.name, task.lane, task.candidate_groups, task.assignee) == (
        "Approve purchase", "Approver", ("approvers",), None)
    assert [f.id for f in task.form] == ["decision", "comment"]
    assert abs(task.due - (datetime.now(UTC) + timedelta(days=2))) < timedelta(minutes=5)
    with engine(database_url) as eng:
        assert eng.tasks(user="carol") == []      # not an approver
        assert eng.tasks(user="ann") == []        # the requester does not approve her own request

    done = decide(database_url, instance.id, {"decision": "approve", "comment": "Fine"})
    assert done.status == "complete" and done.ended is not None and done.waiting_on == ()
    assert done.data["decision"] == "approve"
    assert done.data["rejection_reason"] is None
    assert done.data["approvals"] == [{"approver": None, "on_behalf_of": None, "limit": None,
                                       "decision": "approve", "comment": "Fine", "at": None}]
    assert done.data["starter"] == "ann" and done.data["amount"] == Decimal("1200.50")
    assert passed(database_url, instance.id) == ["StartEvent_Request", "Task_Prepare", "Task_Approve",
                                                 "Task_RecordDecision", "Gateway_Decision", "EndEvent_Approved"]
    with engine(database_url) as eng:
        history = eng.history(instance.id)
        assert [e.kind for e in history][0] == "started" and history[-1].kind == "ended"
        assert [e.user for e in history if e.element_id == "Task_Approve"] == ["bob"]
        assert eng.tasks(user="bob") == []


@pytest.mark.parametrize(("comment", "reason"), [("Over budget", "Over budget"), (None, "rejected")])
def test_reject_path(database_url, comment, reason):
    instance = start(database_url)
    answer = {"decision": "reject"} | ({"comment": comment} if comment else {})
    done = decide(database_url, instance.id, answer, user="bea")
    assert done.status == "complete"
    assert done.data["decision"] == "reject"
    assert done.data["rejection_reason"] == reason
    assert [a["decision"] for a in done.data["approvals"]] == ["reject"]
    assert passed(database_url, instance.id) == ["StartEvent_Request", "Task_Prepare", "Task_Approve",
                                                 "Task_RecordDecision", "Gateway_Decision", "Task_Reject",
                                                 "EndEvent_Rejected"]


@pytest.mark.parametrize(("data", "field"), [
    ({"description": "no item", "amount": "10"}, "item"),
    ({"item": "", "amount": "10"}, "item"),
    ({"item": "x" * 201, "amount": "10"}, "item"),
    ({"item": "Pens"}, "amount"),
    ({"item": "Pens", "amount": "0"}, "amount"),
    ({"item": "Pens", "amount": "lots"}, "amount"),
    ({"item": "Pens", "amount": "10", "currency": "JPY"}, "currency"),
])
def test_start_form_refuses_bad_requests(database_url, data, field):
    deploy(database_url)
    with engine(database_url) as eng, pytest.raises(InvalidData) as refused:
        eng.start(PROCESS, data, user="ann")
    assert field in [e.field for e in refused.value.errors]
    with engine(database_url) as eng:
        assert eng.instances(process_id=PROCESS) == []


def test_approval_form_ignores_undeclared_fields(database_url):
    instance = start(database_url)
    done = decide(database_url, instance.id, {"decision": "approve", "amount": "1", "item": "Yacht",
                                              "approvals": [], "rejection_reason": "x"})
    assert done.status == "complete"
    assert done.data["amount"] == Decimal("1200.50") and done.data["item"] == "Standing desk"
    assert len(done.data["approvals"]) == 1 and done.data["rejection_reason"] is None


def test_approval_form_refuses_a_missing_or_unknown_decision(database_url):
    instance = start(database_url)
    task = approval_task(database_url, instance.id)
    for answer in ({"comment": "hmm"}, {"decision": "maybe"}, {"decision": "approve", "comment": "x" * 1001}):
        with engine(database_url) as eng, pytest.raises(InvalidData):
            eng.complete_task(task.id, answer, user="bob")
    with engine(database_url) as eng:
        assert eng.instance(instance.id).status == "active"
        assert [t.id for t in eng.tasks(instance_id=instance.id)] == [task.id]


def test_starter_cannot_be_overwritten(database_url):
    instance = start(database_url, REQUEST | {"starter": "mallory"}, user="ann")
    assert instance.starter == "ann" and instance.data["starter"] == "ann"
    done = decide(database_url, instance.id, {"decision": "approve", "starter": "mallory"})
    assert done.starter == "ann" and done.data["starter"] == "ann"


def test_host_code_cannot_set_the_starter_either(database_url):
    instance = start(database_url, REQUEST | {"starter": "mallory"}, user=None)
    assert instance.starter is None and instance.data["starter"] is None
    assert instance.data["amount"] == Decimal("1200.50")    # host data still goes through the form's types
