"""The web app end to end, as people use it: upload and deploy, start, approve up the chain, see it done.

The demo org (processes/demo/org.json): sam's manager is dana (limit 1,000), dana's is diego (limit 10,000), so a
$5,000 request from sam needs dana, then diego. alice is the analyst who deploys.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Page, expect

from .ui import NARROW, PROCESSES, SCREENSHOTS, Server, csrf_token, diagram_shown, first_task_url, open_task

SignIn = Callable[[Page, str], Page]
GREEN = "rgb(29, 107, 58)"
# sam's $5,000 request: approved by dana (above her limit: next approver, round the loop), then by diego.
APPROVED_PATH = (
    "Flow_Requested", "Flow_Prepared", "Flow_NeedsApproval", "Flow_ToFindApprover", "Flow_ApproverSought",
    "Flow_ApproverFound", "Flow_Asked", "Flow_Decided", "Flow_Recorded", "Flow_NeedsHigherApproval",
    "Flow_NextApprover", "Flow_Approved", "Flow_ApprovalNotified",
)
NOT_TAKEN = ("Flow_Rejected", "Flow_RejectionRecorded", "Flow_WithinOwnLimit", "Flow_ApprovedAtOnce",
             "Flow_NoApprover", "Flow_NoAuthority", "Flow_Remind", "Flow_Escalate", "Flow_Escalated")


def box(page: Page, selector: str) -> dict[str, float]:
    found = page.locator(selector).first.bounding_box()
    assert found is not None, f"{selector} is not on screen"
    return found


def overlaps(a: dict[str, float], b: dict[str, float]) -> bool:
    return (a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"]
            and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"])


def inside(a: dict[str, float], b: dict[str, float]) -> bool:
    return (a["x"] >= b["x"] - 1 and a["y"] >= b["y"] - 1 and a["x"] + a["width"] <= b["x"] + b["width"] + 1
            and a["y"] + a["height"] <= b["y"] + b["height"] + 1)

BROKEN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI" xmlns:dc="http://www.omg.org/spec/DD/20100524/DC"
    xmlns:di="http://www.omg.org/spec/DD/20100524/DI" id="Defs_E2E_Broken" targetNamespace="http://example.com/e2e">
  <bpmn:process id="e2e_broken" name="E2E broken" isExecutable="true">
    <bpmn:startEvent id="StartEvent_1" />
    <bpmn:sequenceFlow id="Flow_In" sourceRef="StartEvent_1" targetRef="Gateway_Pick" />
    <bpmn:exclusiveGateway id="Gateway_Pick" name="Pick" />
    <bpmn:sequenceFlow id="Flow_A" sourceRef="Gateway_Pick" targetRef="EndEvent_A" />
    <bpmn:sequenceFlow id="Flow_B" sourceRef="Gateway_Pick" targetRef="EndEvent_B" />
    <bpmn:endEvent id="EndEvent_A" />
    <bpmn:endEvent id="EndEvent_B" />
  </bpmn:process>
  <bpmndi:BPMNDiagram id="Diagram_1">
    <bpmndi:BPMNPlane id="Plane_1" bpmnElement="e2e_broken">
      <bpmndi:BPMNShape id="S_Start" bpmnElement="StartEvent_1"><dc:Bounds x="100" y="100" width="36" height="36" /></bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="S_Pick" bpmnElement="Gateway_Pick" isMarkerVisible="true"><dc:Bounds x="190" y="93" width="50" height="50" /></bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="S_A" bpmnElement="EndEvent_A"><dc:Bounds x="300" y="40" width="36" height="36" /></bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="S_B" bpmnElement="EndEvent_B"><dc:Bounds x="300" y="160" width="36" height="36" /></bpmndi:BPMNShape>
      <bpmndi:BPMNEdge id="E_In" bpmnElement="Flow_In"><di:waypoint x="136" y="118" /><di:waypoint x="190" y="118" /></bpmndi:BPMNEdge>
      <bpmndi:BPMNEdge id="E_A" bpmnElement="Flow_A"><di:waypoint x="215" y="93" /><di:waypoint x="215" y="58" /><di:waypoint x="300" y="58" /></bpmndi:BPMNEdge>
      <bpmndi:BPMNEdge id="E_B" bpmnElement="Flow_B"><di:waypoint x="215" y="143" /><di:waypoint x="215" y="178" /><di:waypoint x="300" y="178" /></bpmndi:BPMNEdge>
    </bpmndi:BPMNPlane>
  </bpmndi:BPMNDiagram>
</bpmn:definitions>
"""  # noqa: E501


def test_purchase_request_from_upload_to_approved(
    live_server: Server, new_page: Callable[[], Page], signed_in: SignIn
) -> None:
    item = f"E2E laptop {uuid.uuid4().hex[:6]}"

    # alice, the analyst, uploads the diagram, sees it drawn with no problems, and deploys it.
    alice = signed_in(new_page(), "alice")
    alice.get_by_role("link", name="Processes").click()
    expect(alice.get_by_role("heading", name="Processes", level=1)).to_be_visible()
    deployed = alice.locator("#process-purchase_approval [data-label=Version]").inner_text().strip()  # by `baton demo`
    alice.get_by_label("Choose").set_input_files(PROCESSES / "purchase_approval.bpmn")
    alice.get_by_role("button", name="Upload and check").click()
    expect(alice.get_by_role("heading", name="Check upload")).to_be_visible()
    expect(alice.get_by_text("No problems")).to_be_visible()
    diagram_shown(alice)
    expect(alice.locator('.djs-element[data-element-id="Task_Approve"]')).to_be_attached()
    alice.get_by_role("button", name="Deploy").click()
    expect(alice.get_by_role("heading", name="Processes", level=1)).to_be_visible()
    expect(alice.locator(".flash")).to_contain_text(f"Deployed Purchase approval {deployed.lower()}.")
    # The same file as the demo deployed: a no-op, the version stays.
    expect(alice.locator("#process-purchase_approval [data-label=Version]")).to_have_text(deployed)

    # sam starts a $5,000 request from the start form.
    sam = signed_in(new_page(), "sam")
    sam.goto(live_server("/processes/"))
    sam.get_by_role("link", name="Start Purchase approval").first.click()
    expect(sam.get_by_role("heading", name="Start Purchase approval")).to_be_visible()
    sam.get_by_label("Item").fill(item)
    sam.get_by_label("Description").fill("A laptop for the new analyst")
    sam.get_by_label("Amount").fill("5000")
    sam.get_by_label("US dollar").check()
    sam.get_by_label("Cost centre").fill("CC-100")
    sam.get_by_role("button", name="Start", exact=True).click()
    expect(sam.get_by_role("heading", name=item, level=1)).to_be_visible()
    expect(sam.locator(".flash")).to_contain_text("Started Purchase approval")
    instance_url = sam.url
    assert re.search(r"/instances/[0-9a-f-]{36}$", instance_url), instance_url

    # dana, sam's team lead, finds it in her inbox and approves.
    dana = signed_in(new_page(), "dana")
    open_task(dana, live_server, item)
    expect(dana.locator(".summary")).to_contain_text("5,000.00 USD")
    dana.get_by_label("Comment").fill("Fine by me; above my limit, so on to Diego.")
    dana.get_by_role("button", name="Approve").click()
    expect(dana.locator(".flash")).to_contain_text("Approved.")
    expect(dana.get_by_role("link", name=item, exact=True)).to_have_count(0)

    # diego, the director (limit 10,000), sees dana's approval and approves: that is the last signature.
    diego = signed_in(new_page(), "diego")
    open_task(diego, live_server, item)
    expect(diego.locator(".chain")).to_contain_text("Dana Whitfield")
    diego.get_by_role("button", name="Approve").click()
    expect(diego.locator(".flash")).to_contain_text("Approved.")

    # sam sees the request done, approved, with the path it took marked on the diagram.
    deadline = time.monotonic() + 20
    sam.goto(instance_url)
    while sam.locator("#instance-status").inner_text().strip().lower() != "complete":
        assert time.monotonic() < deadline, sam.locator("main").inner_text()
        sam.wait_for_timeout(500)
        sam.reload()
    diagram_shown(sam)
    done = sam.locator(".djs-element.baton-done")
    for element in ("StartEvent_Request", "Task_Approve", "Task_NotifyApproved", "EndEvent_Approved"):
        expect(done.and_(sam.locator(f'[data-element-id="{element}"]'))).to_have_count(1)
    for element in ("EndEvent_Rejected", "Task_Reject", "EndEvent_NoAuthority"):
        expect(done.and_(sam.locator(f'[data-element-id="{element}"]'))).to_have_count(0)
    expect(sam.locator(".djs-element.baton-active")).to_have_count(0)
    # The path it took: the flows of the approved path are green, the rejection and the others are not.
    taken = sam.locator(".djs-connection.baton-taken")
    for flow in APPROVED_PATH:
        expect(taken.and_(sam.locator(f'[data-element-id="{flow}"]'))).to_have_count(1)
    for flow in NOT_TAKEN:
        expect(sam.locator(f'.djs-connection[data-element-id="{flow}"]')).to_have_count(1)
        expect(taken.and_(sam.locator(f'[data-element-id="{flow}"]'))).to_have_count(0)
    line = sam.locator('.djs-connection[data-element-id="Flow_Approved"] .djs-visual > path')
    expect(line).to_have_css("stroke", GREEN)
    arrow = line.evaluate("""path => {
        const id = /#([^"')]+)/.exec(getComputedStyle(path).markerEnd || '');
        const head = id && document.getElementById(id[1]);
        return head ? getComputedStyle(head.firstElementChild).fill : 'no marker';
    }""")
    assert arrow == GREEN, arrow  # the arrowhead too
    rejected = sam.locator('.djs-connection[data-element-id="Flow_Rejected"] .djs-visual > path')
    expect(rejected).not_to_have_css("stroke", GREEN)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    sam.screenshot(path=str(SCREENSHOTS / "instance-complete-1280.png"), full_page=True)
    approvals = sam.locator('.djs-overlays[data-container-id="Task_Approve"] .diagram-badge-done')
    expect(approvals).to_have_text("×2")  # two approvers: the task ran twice
    for timer in ("BoundaryEvent_Reminder", "BoundaryEvent_Escalate"):  # the badge leaves its timers visible
        assert not overlaps(box(sam, '.djs-overlays[data-container-id="Task_Approve"] .diagram-badge'),
                            box(sam, f'.djs-shape[data-element-id="{timer}"] .djs-visual')), timer
    expect(sam.locator('.djs-overlays[data-container-id="Task_Prepare"] .diagram-badge')).to_have_count(0)  # once
    # The data: the request and its two signatures; the engine's own variables folded away.
    expect(sam.locator(".request-summary")).to_contain_text("5,000.00 USD")
    expect(sam.locator("table.approvals tbody tr")).to_have_count(2)
    expect(sam.locator("table.approvals tbody tr").first).to_contain_text("Dana Whitfield")
    expect(sam.get_by_text("Amount base")).not_to_be_visible()
    sam.get_by_text("All data").click()
    expect(sam.get_by_text("Amount base")).to_be_visible()
    expect(sam.locator(".timeline")).not_to_contain_text("Gateway")
    sam.goto(live_server("/requests/"))
    row = sam.get_by_role("row").filter(has_text=item)
    expect(row).to_contain_text("Approved")


def test_a_broken_diagram_shows_its_problems_and_cannot_be_deployed(
    live_server: Server, page: Page, signed_in: SignIn, tmp_path: Path
) -> None:
    broken = tmp_path / "e2e_broken.bpmn"
    broken.write_text(BROKEN, encoding="utf-8")
    signed_in(page, "alice")
    page.goto(live_server("/processes/"))
    page.get_by_label("Choose").set_input_files(broken)
    page.get_by_role("button", name="Upload and check").click()
    expect(page.get_by_role("heading", name="Check upload")).to_be_visible()
    expect(page.locator(".lint-report")).to_contain_text("2 errors")

    problems = page.locator("table.problems tbody tr")
    expect(problems).to_have_count(2)
    for row, (line, element) in zip(problems.all(), [(9, "Flow_A"), (10, "Flow_B")], strict=True):
        expect(row.locator("[data-label=Severity]")).to_have_text("Error")
        expect(row.locator("[data-label=File]")).to_have_text("e2e_broken.bpmn")
        expect(row.locator("[data-label=Line]")).to_have_text(str(line))
        expect(row.locator("[data-label=Element]")).to_have_text(element)
        expect(row.locator("[data-label=Problem]")).to_contain_text("without a condition")

    # No Deploy button; the problem elements are marked on the drawn diagram.
    expect(page.get_by_role("button", name="Deploy")).to_have_count(0)
    diagram_shown(page)
    for element in ("Flow_A", "Flow_B"):
        expect(page.locator(f'.djs-element.baton-error[data-element-id="{element}"]')).to_have_count(1)
    expect(page.locator(".baton-error")).to_have_count(2)

    # Posting the deploy anyway is refused, and nothing is deployed.
    draft = page.url.rstrip("/").rsplit("/", 1)[1]
    answer = page.request.post(live_server(f"/processes/drafts/{draft}/deploy"), form={"csrf_token": csrf_token(page)})
    assert answer.status == 400, answer.status
    assert "Not deployed" in answer.text()
    page.goto(live_server("/processes/"))
    expect(page.locator("#process-e2e_broken")).to_have_count(0)

    # The upload stays as a draft on the processes page until it is discarded.
    page.get_by_role("link", name="e2e_broken.bpmn").click()
    expect(page.locator(".lint-report")).to_contain_text("2 errors")
    page.get_by_role("button", name="Discard").click()
    expect(page.locator(".flash")).to_contain_text("Discarded")
    expect(page.get_by_role("link", name="e2e_broken.bpmn")).to_have_count(0)


def test_an_invalid_start_form_shows_field_errors_and_keeps_the_input(
    live_server: Server, page: Page, signed_in: SignIn
) -> None:
    signed_in(page, "sam")
    page.goto(live_server("/processes/purchase_approval/start"))
    # The browser's own checks (required, min) would stop this form: turn them off to reach the server's.
    page.locator("main form.form").evaluate("form => form.noValidate = true")
    page.get_by_label("Description").fill("Keep this description")
    page.get_by_label("Amount").fill("-5")
    page.get_by_label("Euro").check()
    page.get_by_label("Cost centre").fill("CC-42")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.get_by_role("button", name="Start", exact=True).click()
    assert posted.value.status in (400, 422), posted.value.status

    summary = page.get_by_role("alert")
    expect(summary).to_contain_text("Please correct these")
    expect(page.locator("#error-item")).to_be_visible()
    expect(page.locator("#error-amount")).to_be_visible()
    expect(page.get_by_label("Item")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Amount")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Amount")).to_have_value("-5")
    expect(page.get_by_label("Description")).to_have_value("Keep this description")
    expect(page.get_by_label("Cost centre")).to_have_value("CC-42")
    expect(page.get_by_label("Euro")).to_be_checked()
    summary.get_by_role("link").first.click()  # the summary links to the fields
    expect(page).to_have_url(re.compile(r"#item$"))

    # Corrected, the same form starts the request.
    page.get_by_label("Item").fill("E2E corrected request")
    page.get_by_label("Amount").fill("50")
    page.get_by_role("button", name="Start", exact=True).click()
    expect(page.get_by_role("heading", name="E2E corrected request", level=1)).to_be_visible()


def test_an_invalid_task_form_shows_field_errors_and_keeps_the_input(
    live_server: Server, page: Page, signed_in: SignIn
) -> None:
    signed_in(page, "dana")
    task = first_task_url(page, live_server)
    page.goto(task)
    comment = page.get_by_label("Comment")
    comment.evaluate("box => box.removeAttribute('maxlength')")  # as an old browser would, past the 1,000 limit
    long = "too long " * 120
    comment.fill(long)
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.get_by_role("button", name="Approve").click()
    assert posted.value.status in (400, 422), posted.value.status
    expect(page.get_by_role("alert")).to_contain_text("Please correct this")
    expect(page.locator("#error-comment")).to_be_visible()
    expect(page.get_by_label("Comment")).to_have_value(long)
    expect(page.get_by_label("Comment")).to_have_attribute("aria-invalid", "true")
    page.goto(live_server("/"))
    expect(page.locator(f"table a[href='{task.removeprefix(live_server.url)}']").first).to_be_visible()  # still open


def test_nobody_opens_or_completes_another_users_task(
    live_server: Server, new_page: Callable[[], Page], signed_in: SignIn
) -> None:
    dana = signed_in(new_page(), "dana")
    task = first_task_url(dana, live_server)
    sam = signed_in(new_page(), "sam")
    opened = sam.goto(task)
    assert opened is not None and opened.status in (403, 404), opened and opened.status
    expect(sam.get_by_role("button", name="Approve")).to_have_count(0)
    sam.goto(live_server("/"))
    answer = sam.request.post(task, form={"csrf_token": csrf_token(sam), "decision": "approve"}, max_redirects=0)
    assert answer.status in (403, 404), answer.status
    dana.goto(task)  # still dana's, still open
    expect(dana.get_by_role("button", name="Approve")).to_be_visible()


def test_a_post_without_the_csrf_token_is_refused(live_server: Server, page: Page, signed_in: SignIn) -> None:
    signed_in(page, "dana")
    task = first_task_url(page, live_server)
    answer = page.request.post(task, form={"decision": "approve"}, max_redirects=0)
    assert answer.status == 400, answer.status
    answer = page.request.post(task, form={"decision": "approve", "csrf_token": "forged"}, max_redirects=0)
    assert answer.status == 400, answer.status
    page.goto(task)
    expect(page.get_by_role("button", name="Approve")).to_be_visible()  # not completed
    # Signing out is a POST too: without the token, still signed in.
    answer = page.request.post(live_server("/logout"), form={}, max_redirects=0)
    assert answer.status == 400, answer.status
    page.goto(live_server("/"))
    expect(page.get_by_role("heading", name="Inbox")).to_be_visible()


def test_on_a_phone_the_diagram_is_readable_centred_on_the_task_and_fits_on_request(
    live_server: Server, page: Page, signed_in: SignIn
) -> None:
    signed_in(page, "sam")
    page.set_viewport_size(NARROW)
    page.goto(live_server("/requests/"))
    in_flight = page.get_by_role("row").filter(has=page.locator(".status-active"))
    in_flight.first.locator("a[href^='/instances/']").first.click()
    diagram_shown(page)
    frame = page.locator(".diagram")
    assert float(frame.get_attribute("data-scale") or 0) >= 0.6  # not shrunk to a fifth to fit 390 px
    task = page.locator('.djs-shape.baton-active[data-element-id="Task_Approve"] .djs-visual')
    assert inside(box(page, '.djs-shape[data-element-id="Task_Approve"] .djs-visual'), box(page, ".diagram")), \
        "the diagram does not open on the task it waits for"
    expect(task).to_be_attached()
    expect(page.locator('.djs-overlays[data-container-id="Task_Approve"] .diagram-badge')).to_have_count(0)  # once
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, overflow  # the frame scrolls, not the page

    # A mouse drags it sideways.
    frame.scroll_into_view_if_needed()
    before = frame.evaluate("f => f.scrollLeft")
    middle = box(page, ".diagram")
    page.mouse.move(middle["x"] + middle["width"] / 2, middle["y"] + middle["height"] / 2)
    page.mouse.down()
    page.mouse.move(middle["x"] + middle["width"] / 2 + 120, middle["y"] + middle["height"] / 2, steps=5)
    page.mouse.up()
    assert frame.evaluate("f => f.scrollLeft") < before

    # Fit shows all of it, in the frame; + zooms back in.
    page.get_by_role("button", name="Fit").click()
    assert float(frame.get_attribute("data-scale") or 1) < 0.6
    assert frame.evaluate("f => f.scrollWidth <= f.clientWidth && f.scrollHeight <= f.clientHeight")
    for element in ("StartEvent_Request", "EndEvent_Approved", "EndEvent_Rejected"):
        assert inside(box(page, f'.djs-shape[data-element-id="{element}"] .djs-visual'), box(page, ".diagram")), element
    expect(page.get_by_role("button", name="Fit")).to_be_disabled()
    page.get_by_role("button", name="Zoom in").click()
    assert float(frame.get_attribute("data-scale") or 0) > 0.2
    expect(page.get_by_role("button", name="Fit")).to_be_enabled()
