"""Prune a workflow's task tree to what is still active, so that long-running instances stay small and shallow.

SpiffWorkflow 3.2 never forgets a task: every loop pass adds to the tree, so state, step cost and tree depth grow
with history (which Baton already keeps in the `event` table). After each step, and every few waves inside one,
`prune` keeps only the tasks a future step can read:

- every unfinished task (and ERROR ones: a retry runs them) and its children (multi-instance and loop tasks look
  up their merged children);
- the parent of each of those (a task inherits its parent's data when it becomes ready; a parallel join counts its
  branches by the parents of its tasks);
- tasks of a parallel or inclusive join that was reached but has not fired, with their parents (of the process's
  end join, only the latest branch that ended: it carries the data of all of them);
- for each live task, its nearest ancestor of each input of a parallel or inclusive join (SpiffWorkflow's parallel
  join walks up to it to tell which branches are still to come, even from a loop's first pass), and of the join
  itself (where an inclusive join in a loop starts looking for its inputs);
- the split task of each structured join (boundary events, multiple start events) that has yet to run, with its
  children (the join looks them up through `find_ancestor`);
- the root and the last completed task.

Every other task is dropped and each kept task hangs from its nearest kept ancestor, so ancestry among kept tasks
is unchanged and depth is bounded by what is active. Tasks keep their full data in memory; the serializer encodes
it against the new parent. Finished sub-process workflows whose task is finished are dropped too.
The stored JSON keeps its shape: states saved before pruning load as they are and are pruned on their next step.
"""

from __future__ import annotations

import logging
from typing import Any
from uuid import UUID
from weakref import WeakKeyDictionary

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.specs.control import _EndJoin
from SpiffWorkflow.bpmn.specs.mixins.unstructured_join import UnstructuredJoin
from SpiffWorkflow.specs.Join import Join
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.deep_merge import DeepMerge
from SpiffWorkflow.util.task import TaskState

log = logging.getLogger(__name__)

LIVE = TaskState.NOT_FINISHED_MASK | TaskState.ERROR
GROWTH = 64  # tasks added inside one step before it prunes again: amortizes the walk, bounds the tree


def run(workflow: BpmnWorkflow, will_complete_task: Any = None, did_complete_task: Any = None) -> None:
    """`BpmnWorkflow.do_engine_steps`, pruning between waves so a loop of engine tasks never builds a deep tree.

    Between waves no task list of SpiffWorkflow's is in use, so dropping tasks there is safe.
    """
    limit = size(workflow) + GROWTH
    while workflow._do_engine_steps(will_complete_task, did_complete_task):
        if size(workflow) > limit:
            prune(workflow)
            limit = size(workflow) + GROWTH
    workflow.refresh_timers()


def size(workflow: BpmnWorkflow) -> int:
    return len(workflow.tasks) + sum(len(sp.tasks) for sp in workflow.subprocesses.values())


def prune(workflow: BpmnWorkflow) -> int:
    """Drop every task no future step can need, in the workflow and its sub-processes; how many were dropped."""
    dropped = 0
    for wf in [workflow, *workflow.subprocesses.values()]:
        dropped += _prune_tree(wf, workflow)
    dropped += _drop_finished_subprocesses(workflow)
    return dropped


def _needed(wf: Any) -> set[UUID]:
    tasks = wf.tasks
    keep: set[UUID] = {wf.task_tree.id}
    if wf.last_task is not None and wf.last_task.id in tasks:
        keep.add(wf.last_task.id)
    joins_in_spec, inputs = _facts(wf.spec)
    live: list[Task] = []
    joins: list[Task] = []
    fired: dict[str, float] = {}
    for task in tasks.values():
        if task._state & LIVE:
            live.append(task)
            keep.add(task.id)
            keep.update(task._children)
            if task._parent is not None:
                keep.add(task._parent)
        if task.task_spec.name in joins_in_spec:
            joins.append(task)
            if task._state == TaskState.COMPLETED:
                name = task.task_spec.name
                fired[name] = max(fired.get(name, 0.0), task.last_state_change)

    # Parallel and inclusive joins: tasks of a join reached since it last fired count the branches that arrived.
    carrier = _fold_ended_branches(wf, joins)
    for task in joins:
        if task._state != TaskState.COMPLETED and task.last_state_change >= fired.get(task.task_spec.name, 0.0) \
                and (task._state != TaskState.CANCELLED or not isinstance(task.task_spec, _EndJoin) or task is carrier):
            keep.add(task.id)
            if task._parent is not None:
                keep.add(task._parent)

    # Walking up from each live task: a parallel join looks for the nearest ancestor of each of its input specs
    # (however far up, even passes back); an inclusive join looks no further up than its own last firing.
    if inputs:
        for task in live:
            found: set[str] = set()
            node = task
            while node is not None:
                if node.task_spec.name in inputs and node.task_spec.name not in found:
                    found.add(node.task_spec.name)
                    keep.add(node.id)
                node = tasks.get(node._parent) if node._parent is not None else None

    # A structured join (boundary events, multiple start events) that has yet to run finds its split as its nearest
    # ancestor of that spec and looks at the split's children. Once it ran, the split is history: keeping every split
    # whose join is not on the live path would keep each pass's split where an interrupting event took another way.
    for task in live:
        spec = task.task_spec
        if isinstance(spec, Join) and spec.split_task:
            node = tasks.get(task._parent) if task._parent is not None else None
            while node is not None and node.task_spec.name != spec.split_task:
                node = tasks.get(node._parent) if node._parent is not None else None
            if node is not None:
                keep.add(node.id)
                keep.update(node._children)
    return keep


_spec_facts: WeakKeyDictionary[Any, tuple[frozenset[str], frozenset[str]]] = WeakKeyDictionary()


def _facts(spec: Any) -> tuple[frozenset[str], frozenset[str]]:
    """Of a process spec (once): its unstructured joins, and the specs a parallel or inclusive join walks up to."""
    found = _spec_facts.get(spec)
    if found is None:
        joins = [s for s in spec.task_specs.values() if isinstance(s, UnstructuredJoin)]
        walked = {n for s in joins if not isinstance(s, _EndJoin) for n in (s.name, *(i.name for i in s.inputs))}
        found = _spec_facts[spec] = (frozenset(s.name for s in joins), frozenset(walked))
    return found


def _fold_ended_branches(wf: Any, joins: list[Task]) -> Task | None:
    """Fold the branches that ended while others go on into the latest of them; that one's end-join task, if any.

    Each end event reached while other tokens go on leaves a cancelled task of the process's end join, whose parent's
    data the end join merges, oldest first, when it finally fires. A loop with a branch that ends every pass (a
    non-interrupting boundary event's path) would keep one per pass for as long as the process runs; instead the
    latest one's parent carries the merge of all of them, in the same order, and the others go.
    """
    ended = sorted((t for t in joins if isinstance(t.task_spec, _EndJoin) and t._state == TaskState.CANCELLED
                    and t._parent in wf.tasks), key=lambda t: t.last_state_change)
    if len(ended) > 1:
        merged: dict[str, Any] = {}
        for task in ended:
            DeepMerge.merge(merged, wf.tasks[task._parent].data)
        wf.tasks[ended[-1]._parent].data = merged
    return ended[-1] if ended else None


def _prune_tree(wf: Any, top: BpmnWorkflow) -> int:
    keep = _needed(wf)
    tasks = wf.tasks
    if len(keep) == len(tasks):
        return 0
    children: dict[UUID, list[UUID]] = {tid: [] for tid in keep}
    parents: dict[UUID, UUID | None] = {wf.task_tree.id: None}
    stack: list[tuple[UUID, UUID]] = [(c, wf.task_tree.id) for c in reversed(wf.task_tree._children)]
    while stack:  # pre-order, iterative: the tree before pruning may be thousands deep
        tid, kept_above = stack.pop()
        task = tasks.get(tid)
        if task is None:
            continue
        if tid in keep:
            children[kept_above].append(tid)
            parents[tid] = kept_above
            kept_above = tid
        stack.extend((c, kept_above) for c in reversed(task._children))
    for tid, task in list(tasks.items()):
        if tid in parents:
            task._parent = parents[tid]
            task._children = children[tid]
    removed = [tid for tid in tasks if tid not in parents]
    wf.tasks = {tid: task for tid, task in tasks.items() if tid in parents}
    for tid in removed:
        top.event_manager.tasks.pop(tid, None)
    if wf.last_task is not None and wf.last_task.id not in wf.tasks:
        wf.last_task = None
    return len(removed)


def _drop_finished_subprocesses(workflow: BpmnWorkflow) -> int:
    dropped = 0
    while True:
        gone = [tid for tid, sp in workflow.subprocesses.items() if sp.completed and _owner_finished(workflow, tid)]
        if not gone:
            return dropped
        for tid in gone:
            for t in workflow.subprocesses.pop(tid).tasks:
                workflow.event_manager.tasks.pop(t, None)
        dropped += len(gone)


def _owner_finished(workflow: BpmnWorkflow, task_id: UUID) -> bool:
    """Whether the task that ran a sub-process is finished, or gone with its own finished workflow."""
    for wf in [workflow, *workflow.subprocesses.values()]:
        task = wf.tasks.get(task_id)
        if task is not None:
            return task.has_state(TaskState.COMPLETED | TaskState.CANCELLED)
    return True
