"""Everything under processes/: every diagram lints, validates, deploys and is fully drawn; the demo org is sound.

The timer-started `directory_sync` and the message-started `supplier_invoice` cannot be started by hand (the job
executor starts them), so for them this checks the diagram and what it declares, not a run.
"""
from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree
from SpiffWorkflow.bpmn.parser import BpmnValidator
from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition

from baton.engine import forms, parsing
from baton.engine.core import Engine
from bpmn_builder import on_border, shapes

PROCESSES = Path(__file__).parent.parent / "processes"
SHIPPED = sorted(PROCESSES.rglob("*.bpmn"))
DECISIONS = sorted(PROCESSES.rglob("*.dmn"))
ORG = PROCESSES / "demo" / "org.json"
REQUESTS = PROCESSES / "demo" / "requests.json"
DIRECTORY_SYNC = PROCESSES / "directory_sync.bpmn"
SUPPLIER_INVOICE = PROCESSES / "supplier_invoice.bpmn"
NEW = [DIRECTORY_SYNC, SUPPLIER_INVOICE]
NS = {"bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL",
      "bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI",
      "dc": "http://www.omg.org/spec/DD/20100524/DC",
      "di": "http://www.omg.org/spec/DD/20100524/DI",
      "camunda": "http://camunda.org/schema/1.0/bpmn"}
FLOW_NODES = {"startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent", "task",
              "userTask", "serviceTask", "scriptTask", "sendTask", "receiveTask", "manualTask", "businessRuleTask",
              "callActivity", "subProcess", "transaction", "exclusiveGateway", "parallelGateway",
              "inclusiveGateway", "eventBasedGateway", "complexGateway"}
BASE = "USD"
# The signature limits up the chain from an employee to the CEO (None: unlimited).
CHAIN_LIMITS = [Decimal(100), Decimal(1_000), Decimal(10_000), Decimal(100_000), Decimal(1_000_000), None]


def ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(PROCESSES)) for p in paths]


def root_of(path: Path) -> etree._Element:
    return etree.parse(str(path)).getroot()


def local(node: etree._Element) -> str:
    return etree.QName(node).localname


def flow_nodes(root: etree._Element) -> dict[str, etree._Element]:
    return {n.get("id"): n for process in root.iterfind("bpmn:process", NS) for n in process.iter()
            if isinstance(n.tag, str) and n.tag.startswith(f"{{{NS['bpmn']}}}") and local(n) in FLOW_NODES}


def waypoints(root: etree._Element, flow_id: str) -> list[tuple[float, float]]:
    edge = root.xpath(f"//bpmndi:BPMNEdge[@bpmnElement='{flow_id}']", namespaces=NS)[0]
    return [(float(p.get("x")), float(p.get("y"))) for p in edge.findall("di:waypoint", NS)]


@pytest.fixture
def engine(sqlite_url):
    eng = Engine(sqlite_url)
    try:
        yield eng
    finally:
        eng.close()


# Every shipped diagram


def test_the_shipped_processes_are_all_found():
    assert {"purchase_approval.bpmn", "directory_sync.bpmn", "supplier_invoice.bpmn"} <= set(ids(SHIPPED))


# The connectors the shipped processes call, which their host registers (processes/README.md): lint warns of any
# service task whose connector the engine lacks.
HOST_CONNECTORS = ("hr.fetch_people", "directory.sync", "notify.admins", "erp.schedule_payment")


@pytest.fixture
def hosted(sqlite_url):
    eng = Engine(sqlite_url, connectors=dict.fromkeys(HOST_CONNECTORS, lambda data: {}))
    try:
        yield eng
    finally:
        eng.close()


@pytest.mark.parametrize("path", SHIPPED, ids=ids(SHIPPED))
def test_lints_without_errors_and_deploys(hosted, path):
    engine = hosted
    report = engine.lint(path, *DECISIONS)
    assert report.ok, [str(p) for p in report.errors]
    if path in NEW:
        assert report.problems == (), [str(p) for p in report.problems]
    deployed = engine.deploy(path, *DECISIONS, user="alice")
    assert {d.process_id for d in deployed} >= {p.get("id") for p in root_of(path).iterfind("bpmn:process", NS)
                                                if p.get("isExecutable") == "true"}


@pytest.mark.parametrize("path", SHIPPED, ids=ids(SHIPPED))
def test_is_valid_bpmn_20(path):
    BpmnValidator().validate(etree.parse(str(path)), filename=path.name)  # raises ValidationException when invalid


@pytest.mark.parametrize("path", SHIPPED, ids=ids(SHIPPED))
def test_is_a_camunda_modeler_collaboration(path):
    root = root_of(path)
    assert root.get("exporter") == "Camunda Modeler"
    assert set(root.nsmap.values()) >= {*NS.values(), "http://camunda.org/schema/modeler/1.0"}
    processes = {p.get("id"): p for p in root.iterfind("bpmn:process", NS)}
    participants = root.findall("bpmn:collaboration/bpmn:participant", NS)
    assert participants and {p.get("processRef") for p in participants} == set(processes)
    assert all(p.get("isExecutable") == "true" and p.get("name") for p in processes.values())


@pytest.mark.parametrize("path", SHIPPED, ids=ids(SHIPPED))
def test_every_element_is_drawn(path):
    root = root_of(path)
    nodes = set(flow_nodes(root))
    lanes = {lane.get("id") for lane in root.iterfind(".//bpmn:lane", NS)}
    participants = {p.get("id") for p in root.iterfind(".//bpmn:participant", NS)}
    flows = {f.get("id") for f in root.iterfind(".//bpmn:sequenceFlow", NS)}
    plane = root.find("bpmndi:BPMNDiagram/bpmndi:BPMNPlane", NS)
    assert plane.get("bpmnElement") == root.find("bpmn:collaboration", NS).get("id")
    shape_refs = [s.get("bpmnElement") for s in root.iterfind(".//bpmndi:BPMNShape", NS)]
    edge_refs = [e.get("bpmnElement") for e in root.iterfind(".//bpmndi:BPMNEdge", NS)]
    assert [ref for ref, n in Counter(shape_refs).items() if n > 1] == []
    assert [ref for ref, n in Counter(edge_refs).items() if n > 1] == []
    drawn = nodes | lanes | participants
    assert drawn <= set(shape_refs), f"not drawn: {sorted(drawn - set(shape_refs))}"
    assert flows <= set(edge_refs), f"flows without an edge: {sorted(flows - set(edge_refs))}"
    for shape in root.iterfind(".//bpmndi:BPMNShape", NS):
        bounds = shape.find("dc:Bounds", NS)
        assert bounds is not None and float(bounds.get("width")) > 0 and float(bounds.get("height")) > 0, \
            shape.get("id")
    for edge in root.iterfind(".//bpmndi:BPMNEdge", NS):
        assert len(edge.findall("di:waypoint", NS)) >= 2, edge.get("id")


def test_all_shipped_processes_deploy_together_and_are_listed(engine):
    """What `baton demo` does: everything at once; deploying the same files again changes nothing."""
    first = engine.deploy(*SHIPPED, *DECISIONS, user="demo")
    again = engine.deploy(*SHIPPED, *DECISIONS, user="demo")
    assert [(d.process_id, d.version) for d in again] == [(d.process_id, d.version) for d in first]
    listed = {d.process_id: d for d in engine.definitions()}
    assert {"purchase_approval", "directory_sync", "supplier_invoice"} <= set(listed)
    assert listed["directory_sync"].name == "Nightly directory sync"
    assert listed["supplier_invoice"].name == "Supplier invoice"
    assert (listed["directory_sync"].filename, listed["supplier_invoice"].filename) == (
        "directory_sync.bpmn", "supplier_invoice.bpmn")
    assert all(d.version == 1 and d.deployed_by == "demo" for d in engine.definitions())


# The layout of the two new diagrams


def crosses(box: tuple[float, float, float, float], a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether an axis-parallel segment passes through the inside of a box."""
    bx, by, w, h = box
    (x1, y1), (x2, y2) = a, b
    if y1 == y2:
        return by < y1 < by + h and min(x1, x2) < bx + w and max(x1, x2) > bx
    return bx < x1 < bx + w and min(y1, y2) < by + h and max(y1, y2) > by


@pytest.mark.parametrize("path", NEW, ids=ids(NEW))
def test_layout_is_clean_left_to_right(path):
    root = root_of(path)
    nodes, box = flow_nodes(root), shapes(root)
    (pool,) = [box[p.get("id")] for p in root.iterfind(".//bpmn:participant", NS)]
    ordered = sorted(nodes)
    for i, a in enumerate(ordered):
        x, y, w, h = box[a]
        assert pool[0] + 30 <= x and x + w <= pool[0] + pool[2] and pool[1] <= y and y + h <= pool[1] + pool[3], a
        for b in ordered[i + 1:]:
            (ax, ay, aw, ah), (bx, by, bw, bh) = box[a], box[b]
            assert ax + aw <= bx or bx + bw <= ax or ay + ah <= by or by + bh <= ay, f"{a} overlaps {b}"
    lanes = root.findall(".//bpmn:lane", NS)
    for lane in lanes:
        lx, ly, lw, lh = box[lane.get("id")]
        for ref in lane.findall("bpmn:flowNodeRef", NS):
            x, y, w, h = box[ref.text]
            assert lx <= x and x + w <= lx + lw and ly <= y and y + h <= ly + lh, (ref.text, lane.get("id"))
    if lanes:
        in_lanes = [ref.text for lane in lanes for ref in lane.findall("bpmn:flowNodeRef", NS)]
        assert sorted(in_lanes) == ordered, "every flow node belongs to exactly one lane"
        stack = [box[lane.get("id")] for lane in lanes]
        assert stack[0][1] == pool[1] and stack[-1][1] + stack[-1][3] == pool[1] + pool[3]
        for upper, lower in zip(stack, stack[1:], strict=False):
            assert upper[1] + upper[3] == lower[1]
        assert all(lane[0] + lane[2] == pool[0] + pool[2] for lane in stack)
    for flow in root.iterfind(".//bpmn:sequenceFlow", NS):
        points, fid = waypoints(root, flow.get("id")), flow.get("id")
        source, target = flow.get("sourceRef"), flow.get("targetRef")
        assert on_border(local(nodes[source]), box[source], *points[0]), f"{fid} does not leave {source}'s border"
        assert on_border(local(nodes[target]), box[target], *points[-1]), f"{fid} does not reach {target}'s border"
        for a, b in zip(points, points[1:], strict=False):
            assert a[0] == b[0] or a[1] == b[1], f"{fid} has a diagonal segment"
            assert b[0] >= a[0], f"{fid} runs right to left"
            for other in set(nodes) - {source, target}:
                assert not crosses(box[other], a, b), f"{fid} runs through {other}"
        assert box[source][0] < box[target][0], f"{fid} goes backwards"


# directory_sync: a scheduled process


def test_directory_sync_starts_every_night_at_two_utc():
    root = root_of(DIRECTORY_SYNC)
    process = root.find("bpmn:process", NS)
    assert (process.get("id"), process.get("name")) == ("directory_sync", "Nightly directory sync")
    (start,) = process.findall("bpmn:startEvent", NS)
    cycle = start.find("bpmn:timerEventDefinition/bpmn:timeCycle", NS)
    assert cycle.text == "R/2026-01-01T02:00:00Z/P1D"
    assert TimerEventDefinition.parse_iso_recurring_interval(cycle.text) == (
        -1, datetime(2026, 1, 1, 2, tzinfo=UTC), timedelta(days=1))


def spec_of(path: Path, process_id: str):
    parsed = parsing.parse([parsing.source(path)], max_bytes=10**7)
    assert parsed.errors == []
    spec, _ = parsed.processes[process_id]
    return {s.bpmn_id: s for s in spec.task_specs.values() if getattr(s, "bpmn_id", None)}


def test_directory_sync_runs_three_connectors_and_a_summary():
    specs = spec_of(DIRECTORY_SYNC, "directory_sync")
    jobs = {bpmn_id: (s.bpmn_name, s.connector, s.result_variable) for bpmn_id, s in specs.items()
            if hasattr(s, "connector")}
    assert jobs == {"Task_FetchPeople": ("Fetch people from HR", "hr.fetch_people", "people"),
                    "Task_UpdateDirectory": ("Update the directory", "directory.sync", "changes"),
                    "Task_NotifyAdmins": ("Notify admins", "notify.admins", None)}
    root = root_of(DIRECTORY_SYNC)
    gateway = root.find(".//bpmn:exclusiveGateway", NS)
    assert gateway.get("name") == "Changes?"
    default = root.xpath(f"//bpmn:sequenceFlow[@id='{gateway.get('default')}']", namespaces=NS)[0]
    assert default.get("targetRef") == "EndEvent_NoChanges"
    condition = root.find(".//bpmn:sequenceFlow[@targetRef='Task_Summarize']/bpmn:conditionExpression", NS)
    assert parsing.python_expression(condition.text) == "changes > 0"
    script = root.find(".//bpmn:scriptTask[@id='Task_Summarize']/bpmn:script", NS).text
    assert "summary =" in script


# supplier_invoice: a process started by a message


def test_supplier_invoice_starts_on_the_supplier_invoice_message():
    root = root_of(SUPPLIER_INVOICE)
    process = root.find("bpmn:process", NS)
    assert (process.get("id"), process.get("name")) == ("supplier_invoice", "Supplier invoice")
    (message,) = root.findall("bpmn:message", NS)
    assert (message.get("id"), message.get("name")) == ("Message_SupplierInvoice", "supplier_invoice")
    (start,) = process.findall("bpmn:startEvent", NS)
    assert start.find("bpmn:messageEventDefinition", NS).get("messageRef") == "Message_SupplierInvoice"


def test_supplier_invoice_tasks_forms_and_connector():
    specs = spec_of(SUPPLIER_INVOICE, "supplier_invoice")
    check, approve = (specs[t].extensions["baton"] for t in ("Task_CheckInvoice", "Task_ApprovePayment"))
    assert check["candidate_groups"] == {"literal": "finance"}
    assert approve["candidate_groups"] == {"literal": "approvers"}
    invoice = ["invoice_number", "supplier", "amount", "currency", "cost_centre"]
    assert [f["id"] for f in check["form"]] == [*invoice, "correct", "check_comment"]
    assert [f["id"] for f in approve["form"]] == [*invoice, "check_comment", "decision", "comment"]
    assert [f["id"] for f in check["form"] if f["readonly"]] == invoice
    assert [f["id"] for f in approve["form"] if f["readonly"]] == [*invoice, "check_comment"]
    # what a finance clerk and an approver may post: only their own fields, the invoice stays as it came
    posted = {"correct": "yes", "check_comment": "Matches PO-77", "amount": "1", "supplier": "Mallory"}
    assert forms.accept(check["form"], posted) == {"correct": True, "check_comment": "Matches PO-77"}
    assert forms.accept(approve["form"], {"decision": "approve", "amount": "1"}) == {
        "decision": "approve", "comment": None}
    assert specs["Task_SchedulePayment"].connector == "erp.schedule_payment"
    assert specs["Task_SchedulePayment"].result_variable == "payment_reference"
    root = root_of(SUPPLIER_INVOICE)
    conditions = {f.get("targetRef"): parsing.python_expression(f.find("bpmn:conditionExpression", NS).text)
                  for f in root.iterfind(".//bpmn:sequenceFlow", NS)
                  if f.find("bpmn:conditionExpression", NS) is not None}
    assert conditions == {"Task_ApprovePayment": "correct == True", "Task_SchedulePayment": "decision == 'approve'"}
    ends = {e.get("id"): e.get("name") for e in root.iterfind(".//bpmn:endEvent", NS)}
    assert ends == {"EndEvent_Incorrect": "Invoice disputed", "EndEvent_Rejected": "Invoice rejected",
                    "EndEvent_Paid": "Invoice paid"}


# The demo org


def org() -> dict:
    return json.loads(ORG.read_text(encoding="utf-8"))


def people() -> dict[str, dict]:
    return {p["username"]: p for p in org()["people"]}


def in_base(amount: str, currency: str) -> Decimal:
    rates = {BASE: "1", **org()["rates"]}
    return Decimal(amount) * Decimal(rates[currency])


def chain(username: str) -> list[str]:
    everyone, found = people(), [username]
    while everyone[found[-1]]["manager"] is not None:
        found.append(everyone[found[-1]]["manager"])
        assert len(found) <= len(everyone), f"the manager chain of {username} is a cycle"
    return found


def test_org_has_the_directory_format():
    data = org()
    assert set(data) == {"people", "rates"}
    assert all(Decimal(rate) > 0 for rate in data["rates"].values()) and BASE not in data["rates"]
    keys = {"username", "name", "email", "manager", "limit", "currency", "delegate", "away_from", "away_until",
            "groups"}
    usernames = [p["username"] for p in data["people"]]
    assert len(usernames) == len(set(usernames)) and 10 <= len(usernames) <= 16
    for person in data["people"]:
        assert set(person) == keys, person["username"]
        assert person["name"] and person["email"].endswith("@example.com")
        assert person["limit"] is None or isinstance(person["limit"], str) and Decimal(person["limit"]) > 0
        assert person["currency"] == BASE or person["currency"] in data["rates"]
        assert isinstance(person["groups"], list) and "employees" in person["groups"]
        assert person["away_from"] is None and person["away_until"] is None, "nobody is away in the demo"


def test_org_is_one_tree_under_the_ceo_with_limits_rising_up_the_chain():
    everyone = people()
    roots = [u for u, p in everyone.items() if p["manager"] is None]
    assert roots == ["olivia"] and everyone["olivia"]["limit"] is None
    for username, person in everyone.items():
        assert person["manager"] is None or person["manager"] in everyone, username
        assert person["delegate"] is None or person["delegate"] in everyone and person["delegate"] != username
        assert chain(username)[-1] == "olivia"
        if person["manager"] is not None:
            boss = everyone[person["manager"]]
            assert boss["limit"] is None or person["limit"] is not None and (
                in_base(person["limit"], person["currency"]) < in_base(boss["limit"], boss["currency"])), username
    for employee in ("sam", "ivy"):
        limits = [everyone[u]["limit"] for u in chain(employee)]
        assert [None if v is None else Decimal(v) for v in limits] == CHAIN_LIMITS
    assert chain("sam")[1] == chain("ivy")[1] == "dana"


def test_org_groups():
    everyone = people()
    members = {}
    for username, person in everyone.items():
        for group in person["groups"]:
            members.setdefault(group, set()).add(username)
    approvers = {u for u, p in everyone.items() if p["limit"] is None or in_base(p["limit"], p["currency"]) >= 1000}
    assert members["approvers"] == approvers
    cfo = chain("sam")[-2]
    assert cfo in members["finance"] and len(members["finance"]) >= 2
    assert members["admins"] and "alice" in members["analysts"]
    assert members["employees"] == set(everyone)


def test_a_director_has_a_director_as_delegate():
    everyone = people()
    directors = {u for u, p in everyone.items() if p["limit"] is not None and Decimal(p["limit"]) == 10_000}
    delegating = [(u, everyone[u]["delegate"]) for u in sorted(directors) if everyone[u]["delegate"]]
    assert delegating and all(d in directors for _, d in delegating)


def test_org_imports_into_the_directory(sqlite_url):
    from baton.engine import store
    from baton.engine.directory import SqlDirectory
    from baton.engine.orgfile import import_file

    db = store.connect(sqlite_url)
    counts = import_file(db, ORG)
    assert counts["people"] == len(people()) and counts["rates"] == len(org()["rates"])
    found = SqlDirectory(db)
    assert found.person("diego").delegate == "nora" and found.person("olivia").limit is None
    assert "finance" in found.groups_of("paula") and found.members_of("analysts") == ["alice"]


def test_demo_requests_fit_the_purchase_request_form():
    requests = json.loads(REQUESTS.read_text(encoding="utf-8"))
    everyone = people()
    start = root_of(PROCESSES / "purchase_approval.bpmn").find("bpmn:process/bpmn:startEvent", NS)
    fields = parsing.form_fields(start)
    assert len(requests) >= 4
    for request in requests:
        assert set(request) == {"requester", "item", "description", "amount", "currency", "cost_centre"}
        assert request["requester"] in everyone and isinstance(request["amount"], str)
        data = {k: v for k, v in request.items() if k != "requester"}
        accepted = forms.accept(fields, data)
        assert accepted["amount"] == Decimal(request["amount"]) and accepted["item"] == request["item"]
    amounts = sorted(in_base(r["amount"], r["currency"]) for r in requests)
    assert amounts[0] <= 100 < amounts[1] and amounts[-1] > 10_000, "requests for several levels of approver"
