"""How the `baton` command prints results: JSON for programs, aligned tables and blocks for people."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

from .info import DefinitionInfo, EventInfo, InstanceInfo, JobStatus, LintReport, TaskInfo


def to_json(value: Any) -> str:
    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return dataclasses.asdict(v)
        return [plain(i) for i in v] if isinstance(v, list | tuple) else v

    def default(v: Any) -> str:
        if isinstance(v, datetime | date):
            return v.isoformat()
        return str(v)  # UUID, Decimal

    return json.dumps(plain(value), indent=2, ensure_ascii=False, default=default)


def cell(value: Any) -> str:
    if value is None or value == ():
        return "-"
    if isinstance(value, datetime):
        return value.astimezone().strftime("%Y-%m-%d %H:%M")
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


def human(v: Any) -> str:
    """A data value for people: numbers and text as they are, structures as JSON."""
    return json.dumps(v, ensure_ascii=False, default=str) if isinstance(v, dict | list) else cell(v)


def count(items: Sequence[Any], noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    cells = [list(headers), *([cell(v) for v in row] for row in rows)]
    if len(cells) == 1:
        return "(none)"
    widths = [max(len(c) for c in column) for column in zip(*cells, strict=True)]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells)


def block(pairs: Iterable[tuple[str, Any]]) -> str:
    pairs = list(pairs)
    width = max(len(k) for k, _ in pairs)
    text = "\n".join(f"{k.ljust(width)}  {v if isinstance(v, str) else cell(v)}" for k, v in pairs)
    return "\n".join(line.rstrip() for line in text.splitlines())


def show_definitions(definitions: list[DefinitionInfo]) -> str:
    return table(("PROCESS", "VERSION", "NAME", "FILE", "DEPLOYED BY", "DEPLOYED"),
                 ((d.process_id, d.version, d.name, d.filename, d.deployed_by, d.deployed_at) for d in definitions))


def show_lint(report: LintReport) -> str:
    lines = [str(p) if p.severity == "error" else f"{p} ({p.severity})" for p in report.problems]
    return "\n".join([*lines, f"{count(report.errors, 'error')}, {count(report.warnings, 'warning')}"])


def show_directory(result: dict[str, int] | list[Path]) -> str:
    if isinstance(result, list):
        return "wrote " + ", ".join(map(str, result))
    nouns = {"people": ("person", "people"), "groups": ("group", "groups"), "memberships": ("membership",
             "memberships"), "rates": ("rate", "rates")}
    return "imported " + (", ".join(f"{n} {nouns[k][n != 1]}" for k, n in result.items() if n) or "nothing")


def show_tasks(tasks: list[TaskInfo]) -> str:
    return table(("ID", "NAME", "PROCESS", "ASSIGNEE", "CANDIDATES", "CREATED", "DUE"),
                 ((t.id, t.name, t.process_id, t.assignee, t.candidate_users + t.candidate_groups, t.created, t.due)
                  for t in tasks))


def show_task(task: TaskInfo) -> str:
    form = [f"{f.id} ({f.type}{', required' if f.required else ''}"
            f"{': ' + '|'.join(v for v, _ in f.values) if f.values else ''})" for f in task.form]
    return block([("id", task.id), ("name", task.name), ("process", task.process_id), ("instance", task.instance_id),
                  ("assignee", task.assignee), ("candidate users", task.candidate_users),
                  ("candidate groups", task.candidate_groups), ("created", task.created), ("due", task.due),
                  ("form", ", ".join(form) or "-")])


def show_instance(instance: InstanceInfo) -> str:
    waiting = "; ".join(" ".join(filter(None, (w.kind, w.element_id, w.name and f'"{w.name}"',
                                               w.due and f"due {cell(w.due)}"))) for w in instance.waiting_on)
    incidents = "".join(f"\n  {cell(i.created)}  {i.element_id or '-'}  {i.message}"
                        f"{f' (line {i.line})' if i.line else ''}  [{i.id}]" for i in instance.incidents)
    data = "".join(f"\n  {k}: {human(v)}" for k, v in instance.data.items())
    return block([("id", instance.id), ("process", f"{instance.process_id} version {instance.definition_version}"),
                  ("status", instance.status), ("business key", instance.business_key),
                  ("starter", instance.starter), ("created", instance.created), ("updated", instance.updated),
                  ("ended", instance.ended), ("waiting on", waiting or "-"), ("incidents", incidents or "-"),
                  ("data", data or "-")])


def show_instances(instances: list[InstanceInfo]) -> str:
    return table(("ID", "PROCESS", "VERSION", "STATUS", "STARTER", "BUSINESS KEY", "CREATED", "WAITING ON"),
                 ((i.id, i.process_id, i.definition_version, i.status, i.starter, i.business_key, i.created,
                   ",".join(f"{w.kind}:{w.element_id or w.name}" for w in i.waiting_on) or None) for i in instances))


def show_history(events: list[EventInfo]) -> str:
    return table(("AT", "KIND", "ELEMENT", "NAME", "USER", "DATA"),
                 ((e.at, e.kind, e.element_id, e.name, e.user,
                   ", ".join(f"{k}={human(v)}" for k, v in e.data.items()) or None) for e in events))


def show_job_status(status: JobStatus | None) -> str:
    if status is None:
        return "baton: worker stopped"
    overdue = f"{status.oldest_overdue_seconds:.1f} s" if status.oldest_overdue_seconds is not None else "none"
    return (f"due now        {status.due}\nrunning        {status.running}\nretrying       {status.retrying}\n"
            f"failed         {status.failed} (open incidents)\nscheduled      {status.scheduled}\n"
            f"oldest overdue {overdue}")
