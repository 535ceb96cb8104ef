"""Every error the engine raises on purpose, under one base class."""

from __future__ import annotations

from dataclasses import dataclass


class EngineError(Exception):
    """Base of every error the engine raises on purpose."""


class NotFound(EngineError):
    """Something asked for by id does not exist."""


class DefinitionNotFound(NotFound):
    def __init__(self, process_id: str, version: int | None = None) -> None:
        which = f"{process_id} version {version}" if version else process_id
        super().__init__(f"no deployed process {which}")
        self.process_id = process_id
        self.version = version


class DraftNotFound(NotFound):
    def __init__(self, draft_id: object) -> None:
        super().__init__(f"no draft {draft_id}")
        self.draft_id = draft_id


class InstanceNotFound(NotFound):
    def __init__(self, instance_id: object) -> None:
        super().__init__(f"no instance {instance_id}")
        self.instance_id = instance_id


class TaskNotFound(NotFound):
    def __init__(self, task_id: object) -> None:
        super().__init__(f"no open task {task_id}")
        self.task_id = task_id


class IncidentNotFound(NotFound):
    def __init__(self, incident_id: object) -> None:
        super().__init__(f"no open incident {incident_id}")
        self.incident_id = incident_id


class MessageNotCorrelated(NotFound):
    def __init__(self, name: str, correlation: object = None, business_key: str | None = None) -> None:
        which = "".join([f" with {correlation}" if correlation else "",
                         f" and business key {business_key}" if business_key else ""])
        super().__init__(f"no instance or process waits for the message {name!r}{which}")
        self.name = name


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a diagram, in words an analyst can act on."""

    file: str
    line: int | None
    element_id: str | None
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        element = f" [{self.element_id}]" if self.element_id else ""
        return f"{where}{element}: {self.message}" if where or element else self.message


class InvalidDiagram(EngineError):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems) or "invalid diagram")
        self.problems = problems


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class InvalidData(EngineError):
    """Submitted data does not fit the form or the call."""

    def __init__(self, errors: list[FieldError] | str) -> None:
        if isinstance(errors, str):
            errors = [FieldError("", errors)]
        super().__init__("; ".join(e.message for e in errors))
        self.errors = errors


class Forbidden(EngineError):
    """The user may not act on this task or instance."""


class Conflict(EngineError):
    """Someone else changed the same instance first; reload and try again."""


class InvalidState(EngineError):
    """The instance or task is not in a state that allows this action."""
