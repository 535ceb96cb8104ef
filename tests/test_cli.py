"""Tests of the `baton` command, each step a separate process on the same database."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from conftest import diagram

SCRIPT = Path(sys.executable).with_name("baton")
BATON = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "baton.engine.cli"]
REVIEW = diagram("cli_review.bpmn")


def run(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*BATON, *args], capture_output=True, text=True, timeout=120, cwd=cwd,
                          env={**os.environ, **(env or {})})
    assert "Traceback" not in done.stderr, done.stderr
    return done


@pytest.fixture
def baton(sqlite_url):
    """`baton COMMAND ... --database URL`, the global option after the command as people type it."""
    return lambda *args, **kwargs: run(*args, "--database", sqlite_url, **kwargs)


@pytest.fixture
def task(baton):
    """The id of the open review task of a freshly started instance."""
    assert baton("deploy", str(REVIEW)).returncode == 0
    assert baton("start", "cli_review").returncode == 0
    return json.loads(baton("tasks", "--json").stdout)[0]["id"]


def test_redeploying_the_same_file_keeps_its_version(baton):
    first = baton("deploy", str(REVIEW), "--user", "maria", "--json")
    again = baton("deploy", str(REVIEW), "--json")
    assert (first.returncode, again.returncode) == (0, 0)
    assert [(d["process_id"], d["version"]) for d in json.loads(again.stdout)] == [("cli_review", 1)]
    listed = baton("definitions")
    assert re.search(r"^cli_review\s+1\s+CLI review\s+cli_review.bpmn\s+maria", listed.stdout, re.M)


def test_lint_prints_every_problem_with_its_line(baton, tmp_path):
    text = REVIEW.read_text().replace('targetRef="done"', 'targetRef="nowhere"').replace(
        '<bpmn:endEvent id="done">', '<bpmn:endEvent id="End">')
    broken = tmp_path / "broken.bpmn"
    broken.write_text(text)
    lines = text.splitlines()
    flow = next(n for n, line in enumerate(lines, 1) if 'targetRef="nowhere"' in line)
    end = next(n for n, line in enumerate(lines, 1) if 'id="End"' in line)

    linted = baton("lint", str(broken))
    assert linted.returncode == 2
    assert f"broken.bpmn:{flow} [to_done]: the flow points to an element that does not exist" in linted.stdout
    assert f"broken.bpmn:{end} [End]: 'End' can never be reached" in linted.stdout  # a warning, with its line
    assert baton("lint", str(REVIEW)).stdout.strip() == "0 errors, 0 warnings"

    deployed = baton("deploy", str(broken))
    assert deployed.returncode == 2
    assert f"broken.bpmn:{flow} [to_done]: the flow points" in deployed.stderr.splitlines()[0]
    assert baton("definitions", "--json").stdout.strip() == "[]"


def test_a_review_from_start_to_end(baton):
    baton("deploy", str(REVIEW))
    started = baton("start", "cli_review", "--data", '{"item": "desk", "amount": 12.50}', "--business-key", "PO-1",
                    "--json")
    instance = json.loads(started.stdout)
    assert (started.returncode, instance["status"], instance["business_key"]) == (0, "active", "PO-1")
    assert instance["data"]["amount"] == "12.50"  # a Decimal, not the float 12.5

    tasks = json.loads(baton("tasks", "--user", "ann", "--json").stdout)
    assert [(t["name"], t["assignee"], t["instance_id"]) for t in tasks] == [("Review the request", "ann",
                                                                               instance["id"])]
    assert [f["id"] for f in tasks[0]["form"]] == ["decision", "comment"]
    assert tasks[0]["id"] in baton("tasks").stdout

    bad = baton("complete", tasks[0]["id"], "--user", "ann", "--data", '{"decision": "maybe"}')
    assert bad.returncode == 2 and "approve, reject" in bad.stderr
    done = baton("complete", tasks[0]["id"], "--user", "ann", "--data", '{"decision": "approve", "comment": "ok"}')
    assert done.returncode == 0 and re.search(r"^status\s+complete$", done.stdout, re.M)

    shown = baton("show", instance["id"])
    assert re.search(r"^business key\s+PO-1$", shown.stdout, re.M) and "  decision: approve" in shown.stdout
    events = json.loads(baton("history", instance["id"], "--json").stdout)
    assert ("completed", "review", "ann") in [(e["kind"], e["element_id"], e["user"]) for e in events]
    assert "decision=approve, comment=ok" in baton("history", instance["id"]).stdout
    assert baton("instances", "--status", "complete", "--json").stdout.count(instance["id"]) == 1


def test_only_the_assignee_may_complete_or_claim(baton, task):
    for args in (("complete", task, "--user", "bob", "--data", '{"decision": "approve"}'),
                 ("claim", task, "--user", "bob"), ("unclaim", task, "--user", "bob")):
        refused = baton(*args)
        assert refused.returncode == 5, args
        assert refused.stderr.startswith("baton: ") and len(refused.stderr.splitlines()) == 1
    assert re.search(r"^assignee\s+-$", baton("unclaim", task, "--user", "ann").stdout, re.M)
    assert re.search(r"^assignee\s+bob$", baton("claim", task, "--user", "bob").stdout, re.M)


@pytest.mark.parametrize("data", ['{"decision": ', '["approve"]', "@missing.json"])
def test_bad_data_exits_2(baton, data):
    refused = baton("complete", str(uuid.uuid4()), "--user", "ann", "--data", data)
    assert refused.returncode == 2 and "argument --data" in refused.stderr


def test_unknown_ids_exit_3_and_malformed_ones_2(baton):
    unknown = str(uuid.uuid4())
    for args in (("show", unknown), ("history", unknown), ("complete", unknown), ("start", "nope")):
        missing = baton(*args)
        assert (missing.returncode, missing.stderr.startswith("baton: no ")) == (3, True), args
    assert baton("show", "nope").returncode == 2
    assert baton("deploy", "missing.bpmn").returncode == 2


def test_suspend_resume_and_cancel(baton, task):
    instance = json.loads(baton("tasks", "--json").stdout)[0]["instance_id"]
    assert "suspended" in baton("suspend", instance, "--user", "vera").stdout
    assert baton("tasks", "--instance", instance).stdout.strip() == "(none)"
    assert baton("complete", task).returncode == 5
    assert json.loads(baton("resume", instance, "--json").stdout)["status"] == "active"
    assert baton("retry", instance).returncode == 5
    assert json.loads(baton("cancel", instance, "--json").stdout)["status"] == "cancelled"
    assert baton("cancel", instance).returncode == 5
    assert baton("instances", "--waiting-on", "task").stdout.strip() == "(none)"


def test_demo_deploys_the_processes_folder(sqlite_url, tmp_path):
    (tmp_path / "processes").mkdir()
    shutil.copy(REVIEW, tmp_path / "processes")
    shown = run("demo", "--database", sqlite_url, cwd=tmp_path)
    assert shown.returncode == 0 and re.search(r"^cli_review\s+1\s", shown.stdout, re.M)
    assert f"baton --database {sqlite_url} start cli_review" in shown.stdout
    assert run("demo", "--database", sqlite_url, "--processes", "nowhere", cwd=tmp_path).returncode == 2


def test_global_options_go_before_the_command_or_come_from_the_environment(sqlite_url):
    assert run("deploy", str(REVIEW), env={"BATON_DATABASE_URL": sqlite_url}).returncode == 0
    listed = run("--json", "--database", sqlite_url, "definitions")
    assert [d["process_id"] for d in json.loads(listed.stdout)] == ["cli_review"]


def test_help_documents_the_exit_codes():
    shown = run("--help")
    assert shown.returncode == 0 and "3  not found" in shown.stdout
    assert "5  forbidden" in run("complete", "--help").stdout
    assert run().returncode == 2


def test_the_purchase_approval_runs_to_completion_one_process_per_step(baton):
    processes = Path(__file__).parent.parent / "processes"
    assert baton("directory", "import", str(processes / "demo" / "org.json")).returncode == 0
    assert baton("deploy", str(processes / "purchase_approval.bpmn")).returncode == 0
    started = json.loads(baton("start", "purchase_approval", "--user", "sam", "--json",
                               "--data", '{"item": "Desk", "amount": 800, "currency": "USD"}').stdout)
    (task,) = json.loads(baton("tasks", "--user", "dana", "--json").stdout)
    done = baton("complete", task["id"], "--user", "dana", "--data", '{"decision": "approve"}', "--json")
    assert done.returncode == 0, done.stderr
    shown = json.loads(baton("show", started["id"], "--json").stdout)
    assert (shown["status"], shown["data"]["decision"]) == ("complete", "approve")
    assert [a["approver"] for a in shown["data"]["approvals"]] == ["dana"]
