"""Baton's process engine: deploy BPMN, run durable instances, drive them from Python."""

from .core import Engine
from .errors import Conflict, DraftNotFound, EngineError, Forbidden, InvalidData, InvalidDiagram, InvalidState, NotFound
from .info import DefinitionInfo, DraftInfo, EventInfo, IncidentInfo, InstanceInfo, LintReport, TaskInfo

__all__ = ["Conflict", "DefinitionInfo", "DraftInfo", "DraftNotFound", "Engine", "EngineError", "EventInfo",
           "Forbidden", "IncidentInfo",
           "InstanceInfo", "InvalidData", "InvalidDiagram", "InvalidState", "LintReport", "NotFound", "TaskInfo"]
