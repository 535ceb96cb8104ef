"""The canonical purchase approval process: a clean diagram, and the signature-authority chain on a real database.

The org is tests/data/org_purchase.json, imported into the engine's own directory:

    sam (100) -> dana, team lead (1,000) -> dirk, director (10,000) -> vera, VP (100,000) -> carl, CFO (1,000,000)
    -> ceo (unlimited); dora, a second director under vera (10,000), is dirk's delegate; otto (500 EUR) reports to
    dora. Rates: 1 EUR = 1.10 USD, 1 GBP = 1.25 USD.

Variants of the org (someone away, another delegate, a new manager, no unlimited CEO) are written next to the test.
Every step of a run uses a fresh Engine, so what a later step sees came from the database, not from memory.
"""
from __future__ import annotations

import json
from contextlib import contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree
from SpiffWorkflow.bpmn.parser import BpmnValidator

from baton.engine.clock import clock
from baton.engine.core import Engine
from baton.engine.errors import Forbidden, InvalidData
from baton.engine.orgfile import import_file
from bpmn_builder import on_border, shapes

DIAGRAM = Path(__file__).parent.parent / "processes" / "purchase_approval.bpmn"
ORG = Path(__file__).parent / "data" / "org_purchase.json"
PROCESS = "purchase_approval"
NS = {"bpmn": "http://www.omg.org/spec/BPMN/20100524/MODEL",
      "bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI",
      "dc": "http://www.omg.org/spec/DD/20100524/DC",
      "di": "http://www.omg.org/spec/DD/20100524/DI"}
NOT_FLOW_NODES = {"sequenceFlow", "laneSet", "documentation", "extensionElements", "property", "dataObject",
                  "ioSpecification", "association", "textAnnotation"}
# The process's public surface: history, reports and tests refer to these ids, so they must not change.
STABLE_IDS = {"StartEvent_Request": "startEvent", "Task_Prepare": "scriptTask", "Task_Approve": "userTask",
              "Task_RecordDecision": "scriptTask", "Gateway_Decision": "exclusiveGateway",
              "Task_Reject": "scriptTask", "EndEvent_Approved": "endEvent", "EndEvent_Rejected": "endEvent",
              "Lane_Requester": "lane", "Lane_Approver": "lane", "Participant_PurchaseApproval": "participant",
              # v2: the signature-authority chain
              "Gateway_OwnLimit": "exclusiveGateway", "Task_ApproveAtOnce": "scriptTask",
              "EndEvent_ApprovedAtOnce": "endEvent", "Gateway_ApproverLoop": "exclusiveGateway",
              "Task_FindApprover": "scriptTask", "Gateway_ApproverFound": "exclusiveGateway",
              "Task_NoAuthority": "scriptTask", "EndEvent_NoAuthority": "endEvent", "Task_AskApprover": "scriptTask",
              "BoundaryEvent_Reminder": "boundaryEvent", "Task_RemindApprover": "scriptTask",
              "EndEvent_Reminded": "endEvent", "BoundaryEvent_Escalate": "boundaryEvent", "Task_Escalate": "scriptTask",
              "Task_NotifyApproved": "scriptTask", "Task_NextApprover": "scriptTask"}
# The flows that go back to look for the next approver: routed below everything else, right to left.
LOOP_BACKS = {"Flow_Escalated", "Flow_NextApprover"}
LIMITS = {"sam": Decimal(100), "dana": Decimal(1000), "dirk": Decimal(10000), "dora": Decimal(10000),
          "vera": Decimal(100000), "carl": Decimal(1000000), "ceo": Decimal("Infinity"), "otto": Decimal("550.00")}
NO_AUTHORITY = "nobody has the signature authority for this amount"


@contextmanager
def engine(url: str):
    """A fresh engine for one step of a test."""
    eng = Engine(url)
    try:
        yield eng
    finally:
        eng.close()


def import_org(url: str, path: Path = ORG) -> None:
    with engine(url) as eng:
        import_file(eng.db.engine, path)


def org_variant(tmp_path: Path, name: str, **changes: dict) -> Path:
    """org_purchase.json with some people's fields changed."""
    org = json.loads(ORG.read_text(encoding="utf-8"))
    for person in org["people"]:
        person.update(changes.pop(person["username"], {}))
    assert not changes, f"no such people: {sorted(changes)}"
    path = tmp_path / f"org_{name}.json"
    path.write_text(json.dumps(org, indent=2), encoding="utf-8")
    return path


def away_now() -> dict[str, str]:
    """Away from yesterday for a month, on the engine's clock."""
    today = clock.now().date()
    return {"away_from": (today - timedelta(days=1)).isoformat(),
            "away_until": (today + timedelta(days=30)).isoformat()}


@pytest.fixture
def org(database_url):
    """A database with the org imported and the diagram deployed."""
    import_org(database_url)
    deploy(database_url)
    return database_url


def deploy(url: str) -> None:
    with engine(url) as eng:
        eng.deploy(DIAGRAM, user="admin")


def request(url: str, amount: str = "1200.50", *, user: str | None = "sam", currency: str | None = None,
            **more) -> object:
    data = {"item": "Standing desk", "description": "For the new office", "amount": amount, "cost_centre": "CC-42",
            **({"currency": currency} if currency else {}), **more}
    with engine(url) as eng:
        return eng.start(PROCESS, data, user=user)


def open_tasks(url: str, instance_id) -> list:
    with engine(url) as eng:
        return eng.tasks(instance_id=instance_id)


def approval_task(url: str, instance_id, user: str):
    """The one open approval task of the instance, which is `user`'s and nobody else's to see."""
    with engine(url) as eng:
        tasks = [t for t in eng.tasks(user=user) if t.instance_id == instance_id]
        assert [t.element_id for t in tasks] == ["Task_Approve"], f"{user} has no approval task"
        assert [t.id for t in eng.tasks(instance_id=instance_id)] == [tasks[0].id]
    return tasks[0]


def decide(url: str, instance_id, user: str, decision: str = "approve", comment: str | None = None, **more):
    task = approval_task(url, instance_id, user)
    answer = {"decision": decision, **({"comment": comment} if comment is not None else {}), **more}
    with engine(url) as eng:
        eng.complete_task(task.id, answer, user=user)
    with engine(url) as eng:
        return eng.instance(instance_id)


def passed(url: str, instance_id) -> list[str]:
    with engine(url) as eng:
        return [e.element_id for e in eng.history(instance_id) if e.kind == "completed"]


def signed_by(url: str, instance_id) -> list[str]:
    """Who completed the approval task, in order, from the history."""
    with engine(url) as eng:
        return [e.user for e in eng.history(instance_id) if e.kind == "completed" and e.element_id == "Task_Approve"]


def mail(url: str, instance_id) -> list[tuple[str, str]]:
    with engine(url) as eng:
        return [(m["recipient"], m["subject"]) for m in eng.outbox() if m["instance_id"] == instance_id]


def entries(instance) -> list[tuple]:
    """approvals as (approver, on_behalf_of, limit, decision, comment)."""
    for entry in instance.data["approvals"]:
        assert set(entry) == {"approver", "on_behalf_of", "limit", "decision", "comment", "at"}
        assert isinstance(entry["at"], datetime) and abs(entry["at"] - clock.now()) < timedelta(minutes=5)
    return [(e["approver"], e["on_behalf_of"], e["limit"], e["decision"], e["comment"])
            for e in instance.data["approvals"]]


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


def test_the_approval_task_has_a_reminder_and_an_escalation():
    root = tree().getroot()
    approve = root.find(".//bpmn:userTask[@id='Task_Approve']", NS)
    assert approve.get("{http://camunda.org/schema/1.0/bpmn}assignee") == "${approver}"
    timers = {b.get("id"): (b.get("attachedToRef"), b.get("cancelActivity", "true"),
                            b.findtext("bpmn:timerEventDefinition/bpmn:timeDuration", namespaces=NS))
              for b in root.iterfind(".//bpmn:boundaryEvent", NS)}
    assert timers == {"BoundaryEvent_Reminder": ("Task_Approve", "false", "P2D"),
                      "BoundaryEvent_Escalate": ("Task_Approve", "true", "P5D")}
    targets = {f.get("sourceRef"): f.get("targetRef") for f in root.iterfind(".//bpmn:sequenceFlow", NS)}
    assert targets["Task_Escalate"] == targets["Task_NextApprover"] == "Gateway_ApproverLoop"


def flow_nodes(root: etree._Element) -> dict[str, etree._Element]:
    process = root.find("bpmn:process", NS)
    return {n.get("id"): n for n in process if isinstance(n.tag, str)
            and etree.QName(n).localname not in NOT_FLOW_NODES}


def crosses(box: tuple[float, float, float, float], a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether the straight segment a-b runs through the inside of the box."""
    bx, by, w, h = box
    (x1, y1), (x2, y2) = a, b
    return (max(min(x1, x2), bx + 1) < min(max(x1, x2), bx + w - 1)
            or (x1 == x2 and bx + 1 < x1 < bx + w - 1)) and (
        max(min(y1, y2), by + 1) < min(max(y1, y2), by + h - 1) or (y1 == y2 and by + 1 < y1 < by + h - 1))


def test_layout_is_clean_left_to_right():
    root = tree().getroot()
    nodes, box = flow_nodes(root), shapes(root)
    pool = box["Participant_PurchaseApproval"]
    hosts = {n.get("id"): n.get("attachedToRef") for n in nodes.values() if n.get("attachedToRef")}
    # no two flow nodes overlap, except that a boundary event sits on its task's border
    ids = sorted(nodes)
    for i, a in enumerate(ids):
        for b in ids[i + 1:]:
            if hosts.get(a) == b or hosts.get(b) == a:
                continue
            (ax, ay, aw, ah), (bx, by, bw, bh) = box[a], box[b]
            assert ax + aw <= bx or bx + bw <= ax or ay + ah <= by or by + bh <= ay, (a, b)
    for event, task in hosts.items():
        x, y, w, h = box[event]
        assert on_border("userTask", box[task], x + w / 2, y + h / 2), f"{event} is not on the border of {task}"
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
    # edges start and end on their shapes' borders, run straight or at right angles, and go left to right; the
    # loop-backs run down, then right to left below every shape, each on its own line, then up into the merge
    bottom = max(y + h for node_id, (x, y, w, h) in box.items() if node_id in nodes)
    corridors = []
    for flow in root.iterfind(".//bpmn:sequenceFlow", NS):
        flow_id = flow.get("id")
        edge = root.xpath(f"//bpmndi:BPMNEdge[@bpmnElement='{flow_id}']", namespaces=NS)[0]
        points = [(float(p.get("x")), float(p.get("y"))) for p in edge.findall("di:waypoint", NS)]
        source, target = flow.get("sourceRef"), flow.get("targetRef")
        assert on_border(etree.QName(nodes[source]).localname, box[source], *points[0]), flow_id
        assert on_border(etree.QName(nodes[target]).localname, box[target], *points[-1]), flow_id
        for (x1, y1), (x2, y2) in zip(points, points[1:], strict=False):
            assert x1 == x2 or y1 == y2, f"{flow_id} has a diagonal segment"
            for other in nodes:
                if other not in (source, target, hosts.get(source)):
                    assert not crosses(box[other], (x1, y1), (x2, y2)), f"{flow_id} runs through {other}"
        if flow_id in LOOP_BACKS:
            (_, down_from), (_, corridor), (_, _), (_, up_to) = points[0], points[1], points[2], points[3]
            assert len(points) == 4 and corridor > bottom and points[1][1] == points[2][1], flow_id
            assert points[2][0] < points[1][0] and up_to < corridor and down_from < corridor, flow_id
            corridors.append(corridor)
            continue
        for (x1, _), (x2, _) in zip(points, points[1:], strict=False):
            assert x2 >= x1, f"{flow_id} runs right to left"
        assert box[source][0] < box[target][0], f"{flow_id} goes backwards"
    assert len(corridors) == len(set(corridors)) == len(LOOP_BACKS)
    assert max(corridors) < pool[1] + pool[3]


# Running it: who signs, for which amounts


CHAINS = {
    # name: (requester, amount, currency, who gets the approval task in turn; each approves)
    "within own limit": ("sam", "80", None, []),
    "exactly the team lead's limit": ("sam", "1000", None, ["dana"]),
    "team lead": ("sam", "800", None, ["dana"]),
    "director": ("sam", "5000", None, ["dana", "dirk"]),
    "VP and CFO": ("sam", "250000", None, ["dana", "dirk", "vera", "carl"]),
    "up to the CEO": ("sam", "2000000", None, ["dana", "dirk", "vera", "carl", "ceo"]),
    "EUR within the team lead's limit": ("sam", "900", "EUR", ["dana"]),           # 990 USD
    "EUR above the team lead's limit": ("sam", "950", "EUR", ["dana", "dirk"]),    # 1,045 USD
    "GBP": ("sam", "900", "GBP", ["dana", "dirk"]),                                 # 1,125 USD
    "own limit in EUR": ("otto", "540", None, []),                                  # otto: 500 EUR = 550 USD
    "a director's request": ("dirk", "50000", None, ["vera"]),
    "the CEO's request": ("ceo", "5000000", None, []),
}


@pytest.mark.parametrize("case", CHAINS)
def test_the_chain_of_signers(org, case):
    requester, amount, currency, signers = CHAINS[case]
    instance = request(org, amount, user=requester, currency=currency)
    assert instance.starter == requester and instance.data["amount"] == Decimal(amount)
    assert instance.data["currency"] == (currency or "USD")
    for signer in signers:
        assert instance.status == "active" and instance.data["decision"] is None
        task = approval_task(org, instance.id, signer)
        assert (task.name, task.lane, task.assignee, task.candidate_groups) == (
            "Approve purchase", "Approver", signer, ())
        assert [f.id for f in task.form] == ["decision", "comment"]
        assert abs(task.due - (clock.now() + timedelta(days=2))) < timedelta(minutes=5)
        with engine(org) as eng:
            assert [t for t in eng.tasks(user=requester) if t.instance_id == instance.id] == []
        instance = decide(org, instance.id, signer, "approve", f"ok from {signer}")
    assert instance.status == "complete" and instance.waiting_on == () and open_tasks(org, instance.id) == []
    assert instance.data["decision"] == "approve" and instance.data["rejection_reason"] is None
    assert signed_by(org, instance.id) == signers
    if signers:
        assert entries(instance) == [(s, None, LIMITS[s], "approve", f"ok from {s}") for s in signers]
        assert passed(org, instance.id)[-2:] == ["Task_NotifyApproved", "EndEvent_Approved"]
        asked = [(s, "Please approve: Standing desk") for s in signers]
    else:
        assert entries(instance) == [(requester, None, LIMITS.get(requester, Decimal("Infinity")), "approve",
                                      "within own signature limit")]
        assert passed(org, instance.id) == ["StartEvent_Request", "Task_Prepare", "Gateway_OwnLimit",
                                            "Task_ApproveAtOnce", "EndEvent_ApprovedAtOnce"]
        asked = []
    assert mail(org, instance.id) == [*asked, (requester, "Approved: Standing desk")]


@pytest.mark.parametrize(("comment", "reason"), [("Over budget", "Over budget"), (None, "rejected by dirk")])
def test_a_rejection_at_the_second_level_ends_the_request(org, comment, reason):
    instance = request(org, "5000")
    instance = decide(org, instance.id, "dana", "approve", "Fine by me")
    assert instance.status == "active"
    done = decide(org, instance.id, "dirk", "reject", comment)
    assert done.status == "complete" and done.waiting_on == ()
    assert done.data["decision"] == "reject" and done.data["rejection_reason"] == reason
    assert entries(done) == [("dana", None, Decimal(1000), "approve", "Fine by me"),
                             ("dirk", None, Decimal(10000), "reject", comment)]
    assert signed_by(org, done.id) == ["dana", "dirk"]
    assert passed(org, done.id)[-4:] == ["Task_RecordDecision", "Gateway_Decision", "Task_Reject",
                                         "EndEvent_Rejected"]
    assert mail(org, done.id)[-1] == ("sam", "Rejected: Standing desk")


def test_a_rejection_needs_no_authority(org):
    """The team lead may turn down a request far above her limit."""
    instance = request(org, "250000")
    done = decide(org, instance.id, "dana", "reject", "Not this year")
    assert (done.status, done.data["decision"], done.data["rejection_reason"]) == (
        "complete", "reject", "Not this year")
    assert signed_by(org, done.id) == ["dana"]


# Delegates, a changing org, and nobody with the authority


def test_an_away_approver_s_delegate_signs_with_the_approver_s_limit(org, tmp_path):
    import_org(org, org_variant(tmp_path, "dirk_away", dirk=away_now()))
    instance = request(org, "50000")
    instance = decide(org, instance.id, "dana")
    with engine(org) as eng:
        assert [t for t in eng.tasks(user="dirk") if t.instance_id == instance.id] == []
        (task,) = eng.tasks(instance_id=instance.id)
        with pytest.raises(Forbidden):
            eng.complete_task(task.id, {"decision": "approve"}, user="dirk")
    with engine(org) as eng:
        assert [(m["recipient"], m["subject"], "on behalf of dirk" in m["body"]) for m in eng.outbox()][-1] == (
            "dora", "Please approve: Standing desk", True)
    instance = decide(org, instance.id, "dora", "approve", "For dirk")
    # dora signed for dirk, with dirk's 10,000: not enough, so it goes to dirk's manager, not dora's
    instance = decide(org, instance.id, "vera")
    assert instance.status == "complete" and instance.data["decision"] == "approve"
    assert entries(instance) == [("dana", None, Decimal(1000), "approve", None),
                                 ("dora", "dirk", Decimal(10000), "approve", "For dirk"),
                                 ("vera", None, Decimal(100000), "approve", None)]
    assert signed_by(org, instance.id) == ["dana", "dora", "vera"]


@pytest.mark.parametrize(("changes", "signers"), [
    ({"dirk": {"away_from": "2001-01-01", "away_until": "2001-01-31"}}, [("dana", None), ("dirk", None)]),
    ({"dirk": {"away_from": "2999-01-01"}}, [("dana", None), ("dirk", None)]),
    ({"dirk": {"delegate": None, "away_from": "2001-01-01"}}, [("dana", None), ("dirk", None)]),
    ({"dirk": {"away_from": "2001-01-01"}, "dora": {"away_from": "2001-01-01"}}, [("dana", None), ("dirk", None)]),
    ({"dirk": {"away_from": "2001-01-01"}}, [("dana", None), ("dora", "dirk")]),
], ids=["away in the past", "away in the future", "away without a delegate", "the delegate is away too", "away"])
def test_who_signs_for_an_away_approver(org, tmp_path, changes, signers):
    import_org(org, org_variant(tmp_path, "away", **changes))
    instance = request(org, "5000")
    for signer, _ in signers:
        instance = decide(org, instance.id, signer)
    assert instance.status == "complete"
    assert [(a["approver"], a["on_behalf_of"]) for a in instance.data["approvals"]] == signers


def test_the_requester_never_signs_as_a_delegate(org, tmp_path):
    """dana is away dirk's delegate: her own request skips dirk and goes to dirk's manager."""
    import_org(org, org_variant(tmp_path, "dana_deputy", dirk={"delegate": "dana", **away_now()}))
    instance = request(org, "5000", user="dana")
    with engine(org) as eng:
        assert [t for t in eng.tasks(user="dana") if t.instance_id == instance.id] == []
    done = decide(org, instance.id, "vera")
    assert done.status == "complete" and done.data["decision"] == "approve"
    assert entries(done) == [("vera", None, Decimal(100000), "approve", None)]
    assert signed_by(org, done.id) == ["vera"]


def test_a_new_manager_is_used_from_the_next_step_on(org, tmp_path):
    instance = request(org, "5000")
    approval_task(org, instance.id, "dana")
    import_org(org, org_variant(tmp_path, "dana_moved", dana={"manager": "dora"}))
    instance = decide(org, instance.id, "dana")
    done = decide(org, instance.id, "dora")
    assert done.status == "complete"
    assert [(a["approver"], a["decision"]) for a in done.data["approvals"]] == [("dana", "approve"),
                                                                                ("dora", "approve")]
    assert signed_by(org, done.id) == ["dana", "dora"]


def test_a_request_nobody_may_sign_is_rejected_for_lack_of_authority(org, tmp_path):
    import_org(org, org_variant(tmp_path, "capped_ceo", ceo={"limit": "5000000"}))
    instance = request(org, "10000000")
    for signer in ["dana", "dirk", "vera", "carl", "ceo"]:
        instance = decide(org, instance.id, signer)
    assert instance.status == "complete" and instance.waiting_on == ()
    assert (instance.data["decision"], instance.data["rejection_reason"]) == ("reject", NO_AUTHORITY)
    assert [a["decision"] for a in instance.data["approvals"]] == ["approve"] * 5
    assert passed(org, instance.id)[-4:] == ["Task_FindApprover", "Gateway_ApproverFound", "Task_NoAuthority",
                                             "EndEvent_NoAuthority"]
    assert mail(org, instance.id)[-1] == ("sam", "Rejected: Standing desk")


@pytest.mark.parametrize(("requester", "amount"), [("ceo", "6000000"), ("mallory", "10"), (None, "10")],
                         ids=["the top of the chain", "not in the directory", "started by host code"])
def test_a_request_without_any_approver_is_rejected_at_once(org, tmp_path, requester, amount):
    import_org(org, org_variant(tmp_path, "capped_ceo", ceo={"limit": "5000000"}))
    instance = request(org, amount, user=requester, currency="USD")  # host code gets no form defaults
    assert instance.status == "complete" and open_tasks(org, instance.id) == []
    assert (instance.data["decision"], instance.data["rejection_reason"]) == ("reject", NO_AUTHORITY)
    assert instance.data["approvals"] == []
    assert passed(org, instance.id)[-2:] == ["Task_NoAuthority", "EndEvent_NoAuthority"]
    assert mail(org, instance.id) == ([(requester, "Rejected: Standing desk")] if requester else [])


# The reminder and the escalation, on the engine's clock


def timers(instance) -> dict[str, datetime]:
    return {w.element_id: w.due for w in instance.waiting_on if w.kind == "timer"}


def run_due_jobs(url: str) -> int:
    with engine(url) as eng:
        return eng.run_due_jobs()


def test_the_approver_is_reminded_after_two_days_and_the_request_escalates_after_five(org):
    instance = request(org, "800")
    started = clock.now()
    with engine(org) as eng:
        due = timers(eng.instance(instance.id))
    assert set(due) == {"BoundaryEvent_Reminder", "BoundaryEvent_Escalate"}
    assert abs(due["BoundaryEvent_Reminder"] - (started + timedelta(days=2))) < timedelta(minutes=5)
    assert abs(due["BoundaryEvent_Escalate"] - (started + timedelta(days=5))) < timedelta(minutes=5)
    assert run_due_jobs(org) == 0

    clock.advance(timedelta(days=2, minutes=1))
    assert run_due_jobs(org) == 1
    assert mail(org, instance.id) == [("dana", "Please approve: Standing desk"),
                                      ("dana", "Reminder: please approve Standing desk")]
    approval_task(org, instance.id, "dana")  # still open, still dana's
    with engine(org) as eng:
        reminded = eng.instance(instance.id)
    assert reminded.status == "active" and set(timers(reminded)) == {"BoundaryEvent_Escalate"}
    assert reminded.data["approvals"] == []

    clock.advance(timedelta(days=3))
    assert run_due_jobs(org) == 1
    with engine(org) as eng:
        escalated = eng.instance(instance.id)
    task = approval_task(org, escalated.id, "dirk")
    assert abs(task.due - (clock.now() + timedelta(days=2))) < timedelta(minutes=5)
    assert entries(escalated) == [("dana", None, Decimal(1000), "escalated", "no answer within 5 days")]
    assert mail(org, instance.id)[2:] == [("sam", "Escalated: Standing desk"),
                                          ("dirk", "Please approve: Standing desk")]
    assert abs(timers(escalated)["BoundaryEvent_Escalate"] - (clock.now() + timedelta(days=5))) < timedelta(minutes=5)

    done = decide(org, instance.id, "dirk")
    assert done.status == "complete" and done.data["decision"] == "approve"
    assert [(a["approver"], a["decision"]) for a in done.data["approvals"]] == [("dana", "escalated"),
                                                                                ("dirk", "approve")]
    assert signed_by(org, done.id) == ["dirk"]
    with engine(org) as eng:
        assert [e.element_id for e in eng.history(done.id) if e.kind == "timer fired"] == [
            "BoundaryEvent_Reminder", "BoundaryEvent_Escalate"]


def test_an_answer_after_the_reminder_keeps_everything_the_chain_recorded(org):
    instance = request(org, "5000")
    instance = decide(org, instance.id, "dana")
    clock.advance(timedelta(days=2, minutes=1))
    assert run_due_jobs(org) == 1
    done = decide(org, instance.id, "dirk", "approve", "Late, sorry")
    assert done.status == "complete" and done.waiting_on == ()
    assert [(a["approver"], a["decision"], a["comment"]) for a in done.data["approvals"]] == [
        ("dana", "approve", None), ("dirk", "approve", "Late, sorry")]
    assert "EndEvent_Reminded" in passed(org, done.id)
    assert run_due_jobs(org) == 0


def test_an_escalation_from_a_delegate_goes_to_the_absent_approver_s_manager(org, tmp_path):
    import_org(org, org_variant(tmp_path, "dirk_away", dirk=away_now()))
    instance = request(org, "5000")
    decide(org, instance.id, "dana")
    approval_task(org, instance.id, "dora")
    clock.advance(timedelta(days=5, minutes=1))
    assert run_due_jobs(org) >= 1
    done = decide(org, instance.id, "vera")
    assert done.status == "complete"
    assert [(a["approver"], a["on_behalf_of"], a["decision"]) for a in done.data["approvals"]] == [
        ("dana", None, "approve"), ("dora", "dirk", "escalated"), ("vera", None, "approve")]


# Forms and the starter


@pytest.mark.parametrize(("data", "field"), [
    ({"description": "no item", "amount": "10"}, "item"),
    ({"item": "", "amount": "10"}, "item"),
    ({"item": "x" * 201, "amount": "10"}, "item"),
    ({"item": "Pens"}, "amount"),
    ({"item": "Pens", "amount": "0"}, "amount"),
    ({"item": "Pens", "amount": "lots"}, "amount"),
    ({"item": "Pens", "amount": "10", "currency": "JPY"}, "currency"),
])
def test_start_form_refuses_bad_requests(org, data, field):
    with engine(org) as eng, pytest.raises(InvalidData) as refused:
        eng.start(PROCESS, data, user="sam")
    assert field in [e.field for e in refused.value.errors]
    with engine(org) as eng:
        assert eng.instances(process_id=PROCESS) == []


def test_forms_ignore_undeclared_fields(org):
    instance = request(org, "800", approvals=[{"approver": "sam"}], own_limit="1000000", candidate="ceo",
                       approver="sam", decision="approve")
    assert instance.status == "active" and instance.data["approvals"] == []
    assert instance.data["own_limit"] == Decimal(100) and instance.data["approver"] == "dana"
    done = decide(org, instance.id, "dana", "approve", amount="1", item="Yacht", approvals=[],
                  rejection_reason="x", approver_limit="99999999", approver="mallory")
    assert done.status == "complete"
    assert done.data["amount"] == Decimal("800") and done.data["item"] == "Standing desk"
    assert entries(done) == [("dana", None, Decimal(1000), "approve", None)]
    assert done.data["rejection_reason"] is None


def test_approval_form_refuses_a_missing_or_unknown_decision(org):
    instance = request(org, "800")
    task = approval_task(org, instance.id, "dana")
    for answer in ({"comment": "hmm"}, {"decision": "maybe"}, {"decision": "approve", "comment": "x" * 1001}):
        with engine(org) as eng, pytest.raises(InvalidData):
            eng.complete_task(task.id, answer, user="dana")
    with engine(org) as eng:
        assert eng.instance(instance.id).status == "active"
        assert [t.id for t in eng.tasks(instance_id=instance.id)] == [task.id]


def test_only_the_approver_may_decide(org):
    instance = request(org, "800")
    task = approval_task(org, instance.id, "dana")
    for user in ("sam", "dirk", "mallory"):
        with engine(org) as eng, pytest.raises(Forbidden):
            eng.complete_task(task.id, {"decision": "approve"}, user=user)
    assert decide(org, instance.id, "dana").status == "complete"


def test_starter_cannot_be_overwritten(org):
    instance = request(org, "800", starter="dana")
    assert instance.starter == "sam" and instance.data["starter"] == "sam"
    done = decide(org, instance.id, "dana", "approve", starter="mallory")
    assert done.starter == "sam" and done.data["starter"] == "sam"
    assert mail(org, done.id)[-1] == ("sam", "Approved: Standing desk")


def test_host_code_cannot_set_the_starter_either(org):
    instance = request(org, "1200.50", user=None, currency="USD", starter="dana")
    assert instance.starter is None and instance.data["starter"] is None
    assert instance.data["amount"] == Decimal("1200.50")    # host data still goes through the form's types
    assert instance.data["rejection_reason"] == NO_AUTHORITY  # nobody requested it, so nobody's manager signs
