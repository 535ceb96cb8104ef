"""Tests of the script sandbox with real child processes."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from uuid import uuid4

import pytest
from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.parser import BpmnParser
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine

from baton.engine.scripting import Sandbox, SandboxEnvironment, ScriptError, check, unpickle

BAD_SCRIPTS = ["import os", "open('x')", "().__class__.__base__.__subclasses__()", "while True: pass",
               "x = 7 ** 7 ** 8", "s = 'a' * 10**10"]


@pytest.fixture
def calls():
    return []


@pytest.fixture
def sandbox(calls):
    def manager_of(user):
        calls.append(("manager_of", user, os.getpid()))
        return {"ann": "bob", "bob": "carol"}[user]

    meeting = threading.Barrier(2)
    box = Sandbox({"manager_of": manager_of, "notify": lambda *args: calls.append(("notify", *args)),
                   "meet": lambda: meeting.wait(5)}, timeout=1.0, size=2)
    yield box
    box.close()


def warm(sandbox):
    """Start both children: two scripts that wait for each other cannot share one."""
    other = threading.Thread(target=sandbox.execute, args=("meet()", {}))
    other.start()
    sandbox.execute("meet()", {})
    other.join()


def watch(sandbox, stop, latencies):
    data = {"amount": 150, "approver": "bob", "items": [1, 2, 3]}
    while not stop.is_set():
        for expression, expected in [("1 + 1", 2), ("amount > 100 and approver == 'bob'", True), ("sum(items)", 6)]:
            started = time.monotonic()
            assert sandbox.evaluate(expression, data) == expected
            latencies.append(time.monotonic() - started)
        time.sleep(0.005)


@pytest.mark.parametrize("script", BAD_SCRIPTS)
def test_forbidden_script_fails_in_time_while_other_threads_answer(sandbox, script):
    warm(sandbox)                                # measure answers, not the start of a child
    stop, latencies = threading.Event(), []
    watcher = threading.Thread(target=watch, args=(sandbox, stop, latencies))
    watcher.start()
    time.sleep(0.05)
    started = time.monotonic()
    try:
        with pytest.raises(ScriptError) as failure:
            sandbox.execute(script, {})
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        watcher.join()
    assert elapsed < 2 * sandbox.timeout
    assert failure.value.error_type in {"Forbidden", "Timeout", "MemoryError"}
    assert len(latencies) >= 3 and max(latencies) < 0.1


def test_errors_carry_plain_message_line_and_type(sandbox):
    with pytest.raises(ScriptError) as failure:
        sandbox.execute("x = 1\ny = x + missing", {})
    assert (failure.value.message, failure.value.line, failure.value.error_type) == (
        "NameError: name 'missing' is not defined", 2, "NameError")
    with pytest.raises(ScriptError) as failure:
        sandbox.execute("a = 1\nimport os", {})
    assert (failure.value.message, failure.value.line, failure.value.error_type) == (
        "imports are not allowed in scripts", 2, "Forbidden")
    with pytest.raises(ScriptError) as failure:
        sandbox.execute("while True: pass", {})
    assert failure.value.message == "the script exceeded the time limit of 1 s"
    with pytest.raises(ScriptError) as failure:
        sandbox.execute("s = 'a' * 10**10", {})
    assert failure.value.message == "the script exceeded the memory limit of 256 MB"


def test_script_returns_new_data_sharing_nothing_with_input(sandbox):
    data = {"amount": Decimal("1000.50"), "due": date(2024, 5, 1), "lines": [[1, 2], [3]], "tags": {"a"}}
    script = ("total = amount * 2\nlines[0].append(sum(lines[1]))\nlater = due + timedelta(days=30)\n"
              "def double(v):\n    return v * 2\nstamp = datetime(2024, 1, 1, tzinfo=timezone.utc)\nn = double(3)")
    result = sandbox.execute(script, data)
    assert result == {"amount": Decimal("1000.50"), "due": date(2024, 5, 1), "lines": [[1, 2, 3], [3]], "tags": {"a"},
                      "total": Decimal("2001.00"), "later": date(2024, 5, 31), "n": 6,
                      "stamp": datetime(2024, 1, 1, tzinfo=UTC)}
    assert data["lines"] == [[1, 2], [3]]
    assert result["lines"] is not data["lines"] and result["lines"][1] is not data["lines"][1]
    assert result["tags"] is not data["tags"]


def test_deleted_and_private_variables_and_functions_leave_the_data(sandbox):
    result = sandbox.execute("del old\nsquare = lambda v: v * v\nfor _ in range(2):\n    n = square(3)", {"old": 1})
    assert result == {"n": 9}


def test_variables_that_are_not_plain_data_are_refused_by_name(sandbox):
    with pytest.raises(ScriptError, match="'it' holds a list_iterator") as failure:
        sandbox.execute("it = iter([1])", {})
    assert failure.value.error_type == "DataError"


def test_host_functions_run_in_the_parent(sandbox, calls):
    result = sandbox.execute("boss = manager_of(requester)\nnotify(boss, 'new request', {'amount': 5})",
                             {"requester": "ann"})
    assert result == {"requester": "ann", "boss": "bob"}
    assert calls == [("manager_of", "ann", os.getpid()), ("notify", "bob", "new request", {"amount": 5})]


def test_host_function_errors_reach_the_script(sandbox):
    script = "try:\n    boss = manager_of('zoe')\nexcept HostError as error:\n    boss = 'nobody: ' + str(error)"
    assert sandbox.execute(script, {})["boss"] == "nobody: manager_of() failed: KeyError: 'zoe'"
    with pytest.raises(ScriptError) as failure:
        sandbox.execute("x = 1\nboss = manager_of('zoe')", {})
    assert (failure.value.message, failure.value.line, failure.value.error_type) == (
        "HostError: manager_of() failed: KeyError: 'zoe'", 2, "HostError")
    with pytest.raises(ScriptError, match="manager_of.. failed") as failure:
        sandbox.evaluate("(user and\n manager_of(user))", {"user": "zoe"})    # fast path
    assert (failure.value.error_type, failure.value.line) == ("HostError", 2)


def test_time_in_host_functions_does_not_count_against_the_script():
    box = Sandbox({"slow": lambda: time.sleep(0.3)}, timeout=0.5, size=1)
    try:
        assert box.execute("for i in range(3):\n    slow()", {}) == {"i": 2}
    finally:
        box.close()


def test_child_killed_for_timeout_is_replaced():
    box = Sandbox(timeout=0.5, size=1)
    try:
        with pytest.raises(ScriptError, match="time limit of 0.5 s"):
            box.execute("while True: pass", {})
        assert box.execute("y = x * 2", {"x": 21}) == {"x": 21, "y": 42}
    finally:
        box.close()


def test_pool_serves_eight_threads_at_once(sandbox):
    results, errors = {}, []

    def work(n):
        try:
            for _ in range(5):
                results[n] = sandbox.execute("y = [x] * 3\nz = sum(y)", {"x": n})["z"]
                assert sandbox.evaluate("len(str(x)) + x", {"x": n}) == len(str(n)) + n
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and results == {n: 3 * n for n in range(8)}


@pytest.mark.parametrize(("expression", "data", "expected"), [
    ("amount > 100 and approver == 'bob'", {"amount": 150, "approver": "bob"}, True),
    ("-a + b - 1 if not flag else [a, {'k': b}]", {"a": 1, "b": 2, "flag": False}, 0),
    ("order['lines'][0] in ('x', 'y')", {"order": {"lines": ["y"]}}, True),
    ("manager_of(requester)", {"requester": "ann"}, "bob"),
    ("sorted(xs)[-1] * 2", {"xs": [3, 1]}, 6),
    ("due + timedelta(days=1)", {"due": date(2024, 1, 1)}, date(2024, 1, 2)),
    ("len([v for v in xs if v > 1])", {"xs": [3, 1]}, 1),
])
def test_expressions_evaluate_in_either_path(sandbox, expression, data, expected):
    assert sandbox.evaluate(expression, data) == expected


def test_expression_errors_are_script_errors(sandbox):
    with pytest.raises(ScriptError) as failure:
        sandbox.evaluate("amount > limit", {"amount": 1})              # fast path
    assert (failure.value.message, failure.value.line, failure.value.error_type) == (
        "NameError: name 'limit' is not defined", 1, "NameError")
    with pytest.raises(ScriptError) as failure:
        sandbox.evaluate("len(limit)", {"limit": 1})                    # child path
    assert (failure.value.message, failure.value.error_type) == ("TypeError: object of type 'int' has no len()",
                                                                 "TypeError")
    with pytest.raises(ScriptError, match="'open' is not allowed in expressions"):
        sandbox.evaluate("open('x')", {})
    with pytest.raises(ScriptError, match="not plain data"):
        sandbox.evaluate("dict(f=len)", {})


def test_unpickler_accepts_plain_data_only():
    plain = {"d": Decimal("1.5"), "t": datetime(2024, 1, 1, tzinfo=UTC), "span": timedelta(hours=2), "id": uuid4(),
             "s": {1, 2}, "f": frozenset({3}), "c": 1j, "b": b"x", "ba": bytearray(b"y"), "n": [None, (True, 1.0)]}
    assert unpickle(pickle.dumps(plain, protocol=5)) == plain
    for forbidden in [os.system, Fraction(1, 2), Evil()]:
        with pytest.raises(pickle.UnpicklingError, match="not plain data"):
            unpickle(pickle.dumps(forbidden))


class Evil:
    def __reduce__(self):
        return (os.system, ("echo owned",))


def test_check_reports_lines_of_forbidden_constructs():
    source = ("x = 1\nimport os\ny = ().__class__\nz = '{}'.format(x)\nw = open('f')\ng = (i for i in [1])\n"
              "f = g.gi_frame\nmatch x:\n    case tuple(__class__=c):\n        pass\nclass A:\n    pass\n"
              "try:\n    pass\nexcept Exception as __builtins__:\n    pass\n")
    assert check(source) == [
        (2, "imports are not allowed in scripts"),
        (3, "names starting with '_' (__class__) are not allowed in scripts"),
        (4, "'.format' is not allowed in scripts"),
        (5, "'open' is not allowed in scripts"),
        (7, "'.gi_frame' is not allowed in scripts"),
        (9, "names starting with '_' (__class__) are not allowed in scripts"),
        (11, "class definitions are not allowed in scripts"),
        (15, "names starting with '_' (__builtins__) are not allowed in scripts"),
    ]
    assert check("x = (1\ny = 2") == [(1, "SyntaxError: '(' was never closed")]
    assert check("a > b and manager_of(a)", "eval") == []
    assert Sandbox().check("__import__('os')", "eval") == [
        (1, "names starting with '_' (__import__) are not allowed in expressions")]


def test_closed_sandbox_refuses_scripts():
    box = Sandbox()
    box.execute("x = 1", {})
    box.close()
    with pytest.raises(ScriptError, match="closed"):
        box.execute("x = 1", {})


def test_limits_default_from_environment(monkeypatch):
    monkeypatch.setenv("BATON_SCRIPT_TIMEOUT", "0.25")
    monkeypatch.setenv("BATON_SCRIPT_MEMORY", "128")
    box = Sandbox()
    assert (box.timeout, box.memory) == (0.25, 128 * 2**20)
    box.close()


PARENT = """
import sys, threading, time
from baton.engine.scripting import Sandbox
box = Sandbox(timeout=1, size=2)
threading.Thread(target=box.execute, args=('while True: pass', {}), daemon=True).start()
time.sleep(0.2)
box.execute('x = 1', {})
print('ready', flush=True)
sys.stdin.read()
"""


def test_children_exit_when_the_parent_dies():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}, text=True)
    try:
        assert parent.stdout.readline() == "ready\n"
        time.sleep(0.3)
        children = []
        for task in os.listdir(f"/proc/{parent.pid}/task"):     # each thread lists the children it started
            with open(f"/proc/{parent.pid}/task/{task}/children") as f:
                children += [int(pid) for pid in f.read().split()]
        assert len(children) == 2
        parent.kill()
        parent.wait()
        # the idle child sees EOF at once; the busy one is stopped by its CPU limit (timeout + 1 to 2 s)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(alive(pid) for pid in children):
            time.sleep(0.1)
        assert not any(alive(pid) for pid in children)
    finally:
        parent.kill()
        parent.wait()
        parent.stdin.close()
        parent.stdout.close()


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_failing_script_task_reports_message_and_line_through_spiffworkflow(sandbox):
    engine = PythonScriptEngine(environment=SandboxEnvironment(sandbox))
    ok = run_diagram("total = amount * 2\nboss = manager_of('ann')", engine, {"amount": Decimal("2.5")})
    assert ok.data == {"amount": Decimal("2.5"), "total": Decimal("5.0"), "boss": "bob"}
    with pytest.raises(WorkflowTaskException) as failure:
        run_diagram("x = 1\ny = x + missing", engine, {})
    assert failure.value.line_number == 2 and failure.value.error_line == "y = x + missing"
    assert "NameError: name 'missing' is not defined" in str(failure.value)
    assert failure.value.__context__.error_type == "NameError"


def run_diagram(script, engine, data):
    body = (f'<bpmn:scriptTask id="s"><bpmn:script>{script}</bpmn:script></bpmn:scriptTask>'
            '<bpmn:startEvent id="a"/><bpmn:endEvent id="z"/>'
            '<bpmn:sequenceFlow id="f1" sourceRef="a" targetRef="s"/>'
            '<bpmn:sequenceFlow id="f2" sourceRef="s" targetRef="z"/>')
    parser = BpmnParser()
    parser.add_bpmn_str(('<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" '
                         f'targetNamespace="x"><bpmn:process id="p" isExecutable="true">{body}</bpmn:process>'
                         '</bpmn:definitions>').encode())
    workflow = BpmnWorkflow(parser.get_spec("p"), script_engine=engine)
    workflow.get_next_task(spec_name="Start").data.update(data)
    workflow.do_engine_steps()
    return workflow.get_next_task(spec_name="s")
