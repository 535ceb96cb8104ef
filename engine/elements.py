"""Around every element: asynchronous continuations, and the scripts run as it starts and ends (Camunda 7).

The parser puts what an element needs in its task spec's `extensions[KEY]` (serialized with the spec):

- `before` / `after`: a transaction boundary before the element starts (`camunda:asyncBefore`) or after it ended
  (`camunda:asyncAfter`). The step that reaches it stops there; a job continues from it (`resume`).
- `start` / `end`: Python scripts run as the element starts (its input parameters, start listeners, task create
  listeners) and as it ends (task complete listeners, output parameters, end listeners).
- `element`, `name`: the diagram's element the boundary belongs to (a boundary-event split or join stands for
  the activity it wraps), `retry`: the job's `camunda:failedJobRetryTimeCycle`.

SpiffWorkflow calls `TaskSpec._update` when a task may become ready, `_on_ready` when it is, and `_on_complete`
when it is done; no spec class overrides them, so wrapping them here reaches every kind of element.
"""

from __future__ import annotations

import logging
from typing import Any

from SpiffWorkflow.specs.base import TaskSpec
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

log = logging.getLogger(__name__)

KEY = "camunda"
ASYNC = "c7_async"  # task.internal_data: "before" (waits for its job), "entered", "after" (waits), "left"
STARTED, ENDED = "c7_started", "c7_ended"  # the start and end scripts ran
WAITS = ("before", "after")

_update, _on_ready, _on_complete = TaskSpec._update, TaskSpec._on_ready, TaskSpec._on_complete


def settings(spec: Any) -> dict[str, Any] | None:
    extensions = getattr(spec, "extensions", None)
    return extensions.get(KEY) if extensions else None


def _update_wrapped(self: TaskSpec, my_task: Task) -> None:
    found = settings(self)
    if found and found.get("before"):
        state = my_task.internal_data.get(ASYNC)
        if state is None:  # reached the boundary: wait in WAITING until the job enters
            if my_task.has_state(TaskState.PREDICTED_MASK):
                self._predict(my_task)
            my_task._inherit_data()  # the instance's data, as it is at the boundary
            my_task._set_state(TaskState.WAITING)
            my_task.internal_data[ASYNC] = "before"
            return
        if state == "before":
            return
    _update(self, my_task)


def _on_ready_wrapped(self: TaskSpec, my_task: Task) -> None:
    _on_ready(self, my_task)
    found = settings(self)
    if found and found.get("start") and not my_task.internal_data.get(STARTED):
        run(my_task, found["start"])
        my_task.internal_data[STARTED] = True


def _on_complete_wrapped(self: TaskSpec, my_task: Task) -> None:
    found = settings(self)
    if found:
        if found.get("end") and not my_task.internal_data.get(ENDED):
            run(my_task, found["end"])
            my_task.internal_data[ENDED] = True
        if found.get("after") and my_task.internal_data.get(ASYNC) != "left":
            my_task._set_state(TaskState.STARTED)  # done, but what follows waits for the job
            my_task.internal_data[ASYNC] = "after"
            return
    _on_complete(self, my_task)


TaskSpec._update = _update_wrapped  # type: ignore[method-assign]
TaskSpec._on_ready = _on_ready_wrapped  # type: ignore[method-assign]
TaskSpec._on_complete = _on_complete_wrapped  # type: ignore[method-assign]


def run(task: Task, scripts: list[str]) -> None:
    """Run scripts in the task's data; a failure leaves the task in ERROR, as a failing pre- or post-script does."""
    for script in scripts:
        try:
            task.workflow.script_engine.execute(task, script)
        except Exception:
            task._set_state(TaskState.ERROR)
            raise


def waiting(task: Task) -> bool:
    """Whether the task waits at an asynchronous boundary for its job."""
    return task.internal_data.get(ASYNC) in WAITS and task.state in (TaskState.WAITING, TaskState.STARTED)


def resume(task: Task) -> None:
    """The job of a boundary: go on from it (the step runs on from there)."""
    if task.internal_data.get(ASYNC) == "before":
        task.internal_data[ASYNC] = "entered"
        task.task_spec._update(task)
    elif task.internal_data.get(ASYNC) == "after":
        task.internal_data[ASYNC] = "left"
        task.complete()


def element(task: Task) -> tuple[str | None, str | None]:
    """The diagram element (id, name) a task's boundary belongs to."""
    found = settings(task.task_spec) or {}
    return (found.get("element") or task.task_spec.bpmn_id, found.get("name") or task.task_spec.bpmn_name)


def retry_cycle(task: Task) -> str | None:
    return (settings(task.task_spec) or {}).get("retry")


def started(task: Task) -> bool:
    """Whether the task's start scripts ran (or it has none)."""
    found = settings(task.task_spec)
    return not (found and found.get("start")) or bool(task.internal_data.get(STARTED))


def start(task: Task) -> None:
    """Run the task's start scripts again, after they failed."""
    found = settings(task.task_spec) or {}
    if found.get("start") and not task.internal_data.get(STARTED):
        run(task, found["start"])
        task.internal_data[STARTED] = True
