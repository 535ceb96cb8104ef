"""Camunda 8 variable mappings around an element: inputs are its local variables, outputs what it hands on.

Baton's instance data is one flat scope; an element with mappings gets one of its own, as in Camunda 8:
- inputs are evaluated in order when the element is reached (each sees the ones before) and become its local
  variables: a dotted target builds an object (`sender.name`, `sender.iban` -> `sender`);
- with output mappings, the element's result (the form submitted, the connector's answer, the message's payload,
  the decision's result) is local too, and only the outputs reach the process; a dotted output target sets one
  property of an existing object;
- without outputs, the result reaches the process, except where a local variable of the same name catches it;
- when the element completes, its local variables end: what they covered is as it was.
A call activity that does not propagate its child's variables (`propagateAllChildVariables="false"`), or has
outputs, hands on only its outputs. A message catcher's correlation key is evaluated once, when it starts to wait
(for an event-based gateway, the keys of its events, when it is reached).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.task import Task

log = logging.getLogger(__name__)

SCOPE = "baton_scope"  # internal data of an element being run: {"shadowed": {name: value}, "fresh": [name], ...}
KEY = "baton_keys"  # internal data of a message catcher: its correlation key for each message it waits for
CORRELATION = "zeebe:correlationKey"  # that key among a message's correlation values (never a diagram's property id)
HEADERS = "task_headers"  # where a connector finds the task's headers (`zeebe:taskHeaders`) in its input


def zeebe(task: Task) -> dict[str, Any]:
    return getattr(task.task_spec, "extensions", {}).get("zeebe") or {}


def connect(specs: list[Any]) -> None:
    """Run the mappings of every task spec that has some (SpiffWorkflow does not keep callbacks with a spec)."""
    for process in specs:
        for task_spec in process.task_specs.values():
            if getattr(task_spec, "extensions", {}).get("zeebe"):
                task_spec.update_event.connect(_entered)
                task_spec.completed_event.connect(_completed)


def _entered(workflow: Any, task: Task) -> None:
    enter(task)


def _completed(workflow: Any, task: Task) -> None:
    leave(task)


def waits_with(task: Task, name: str) -> str | None:
    """The Camunda 8 correlation key a waiting task waits for the message `name` with (None: it has none)."""
    return (task.internal_data.get(KEY) or {}).get(name)


def entered(task: Task) -> bool:
    return not zeebe(task) or SCOPE in task.internal_data


def enter(task: Task) -> None:
    """Give a reached element its local variables and, for a message catcher, its correlation key."""
    found = zeebe(task)
    if not found or SCOPE in task.internal_data:
        return  # a waiting event is updated again and again: it enters once
    data = task.data
    scope: dict[str, Any] = {"shadowed": {}, "fresh": []}
    if found.get("keys"):
        task.internal_data[KEY] = {name: correlation_key(task, _evaluate(task, key, data, "the correlation key"))
                                   for name, key in found["keys"].items()}
    if found.get("outputs") or not found.get("propagate", True):
        if "propagate" in found:  # a call activity: all the child's variables are its result
            scope["shadowed"], scope["all"] = copy.deepcopy(data), True
        elif "result" in found:
            _local(scope, data, found["result"])
    if found.get("loop"):  # a multi-instance's element and counter belong to one instance
        if found.get("element"):
            scope["fresh"].append(found["element"])
        _local(scope, data, "loopCounter")
        index = task.internal_data.get("key_or_index")
        if not isinstance(index, int):  # a sequential loop's instances come one after another
            index = len(task.parent.internal_data.get("merged", []))
        data["loopCounter"] = index + 1
    values: dict[str, Any] = {}
    for target, source in found.get("inputs", []):
        value = _evaluate(task, source, {**data, **values}, f"the input mapping '{target}'")
        root, *path = target.split(".")
        values[root] = _put(values.get(root), path, value)  # a new object, or one an earlier input built
    for root in values:
        _local(scope, data, root)
    task.data = {**data, **values}
    task.internal_data[SCOPE] = scope


def receive(task: Task, result: Mapping[str, Any]) -> None:
    """Put an element's result into its data: with output mappings, as local variables only the outputs carry on."""
    task.data = copy.deepcopy(task.data)  # SpiffWorkflow shares nested values with ancestors; never mutate theirs
    scope = task.internal_data.get(SCOPE)
    if scope is not None and zeebe(task).get("outputs"):
        for name in result:
            _local(scope, task.data, name)
    task.data.update(copy.deepcopy(dict(result)))


def leave(task: Task) -> None:
    """Evaluate the outputs of a completing element, end its local variables, and hand the outputs on."""
    found = zeebe(task)
    if not found:
        return
    scope = task.internal_data.get(SCOPE) or {"shadowed": {}, "fresh": []}
    context, values = dict(task.data), []
    for target, source in found.get("outputs", []):
        value = _evaluate(task, source, context, f"the output mapping '{target}'")
        values.append((target, value))
        root, *path = target.split(".")
        context[root] = _put(context.get(root), path, value)
    collected = found.get("collect")
    kept = task.data.get(collected) if collected else None
    data = {} if scope.get("all") else copy.deepcopy(task.data)
    for name in scope["fresh"]:
        data.pop(name, None)
    data.update(scope["shadowed"])
    for target, value in values:
        root, *path = target.split(".")
        data[root] = _put(data.get(root), path, value)  # one property of an existing object
    if collected:  # the multi-instance collects it after the instance ends
        data[collected] = kept
    task.data = data
    task.internal_data.pop(SCOPE, None)  # only now: outputs that fail are evaluated again on retry


def job_input(task: Task) -> dict[str, Any] | None:
    """What a connector gets for a Camunda 8 job: its inputs (or all the data) and its headers; None for others."""
    found = zeebe(task)
    if not found:
        return None
    if found.get("inputs"):
        roots = dict.fromkeys(target.split(".")[0] for target, _ in found["inputs"])
        given = {root: copy.deepcopy(task.data.get(root)) for root in roots}
    else:
        given = copy.deepcopy(task.data)
    if found.get("headers"):
        given[HEADERS] = dict(found["headers"])
    return given


def correlation_key(task: Task, value: Any) -> str:
    """A correlation key as Camunda 8 compares it: a text, or a number written as text."""
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise WorkflowTaskException(f"the correlation key must be a text or a number, not {_kind(value)}", task=task)
    if isinstance(value, float | Decimal) and value == int(value):
        value = int(value)
    return str(value)


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _local(scope: dict[str, Any], data: dict[str, Any], name: str) -> None:
    """Make `name` local: remember what it covers, to put back when the element completes."""
    if name in scope["shadowed"] or name in scope["fresh"] or scope.get("all"):
        return
    if name in data:
        scope["shadowed"][name] = copy.deepcopy(data[name])
    else:
        scope["fresh"].append(name)


def _put(base: Any, path: list[str], value: Any) -> Any:
    """`value` at `path` inside a copy of `base` when it is an object, else inside a new one."""
    if not path:
        return copy.deepcopy(value)
    found = copy.deepcopy(base) if isinstance(base, dict) else {}
    found[path[0]] = _put(found.get(path[0]), path[1:], value)
    return found


def _evaluate(task: Task, source: str, context: dict[str, Any], what: str) -> Any:
    try:
        return task.workflow.script_engine.environment.evaluate(source, context)
    except SpiffWorkflowException:
        raise
    except Exception as exc:  # the incident says which mapping failed; the error itself stays with it
        raise WorkflowTaskException(f"{what} cannot be evaluated: {type(exc).__name__}: {exc} (expression "
                                    f"'{source}')", task=task, exception=exc) from None
