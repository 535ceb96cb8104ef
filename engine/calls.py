"""Call activities: the variables Camunda 7's camunda:in / camunda:out pass, and the called version bound."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.spiff.specs.defaults import CallActivity

from .camunda import Found, camunda, extensions, juel
from .normalize import BPMN, label, local

log = logging.getLogger(__name__)

# A deployed process a call activity binds to: (process id, version or None for the newest) -> (its spec, its
# subprocess specs, "id@version:checksum"), or None when there is none.
Called = Callable[[str, int | None], tuple[Any, dict[str, Any], str] | None]


class Refused(ValidationException):
    """A problem found while building specs, already in the analyst's words."""

    def __str__(self) -> str:
        return str(self.args[0])


def call_mappings(node: etree._Element, found: Found) -> dict[str, Any] | None:
    """`camunda:in` and `camunda:out` of a call activity: which variables go into the called process and come back.

    None when it declares none: the called process then sees all the data and all of its data comes back.
    """
    mapped: dict[str, list[dict[str, Any]]] = {"in": [], "out": []}
    seen = False
    for direction in ("in", "out"):
        for item in extensions(node, direction):
            seen = True
            if item.get("businessKey") is not None:
                if direction == "in" and "processBusinessKey" not in item.get("businessKey", ""):
                    found.append((item, f"'{label(node)}' runs the called process inside this instance, which keeps "
                                        "its business key: the business key it passes is ignored", "warning"))
                continue
            target = item.get("target")
            if (item.get("variables") or "").strip() == "all":
                mapped[direction].append({"all": True})
            elif item.get("source") is not None and target:
                mapped[direction].append({"source": item.get("source"), "target": target})
            elif item.get("sourceExpression") is not None and target:
                what = f"the variable '{target}' passed {'to' if direction == 'in' else 'from'} '{label(node)}'"
                mapped[direction].append({"expression": juel(item.get("sourceExpression"), what, item, found),
                                          "target": target})
            else:
                found.append((item, f"a camunda:{direction} of '{label(node)}' says neither which variable nor "
                                    "variables=\"all\": it is ignored", "warning"))
    return mapped if seen else None


def binding(node: etree._Element, found: Found) -> tuple[str, int | None]:
    """How a call activity picks the called process's version: ('latest' | 'deployment' | 'version', number)."""
    kind = (node.get(camunda("calledElementBinding")) or "latest").strip()
    if kind == "version":
        text = (node.get(camunda("calledElementVersion")) or "").strip()
        if text.isdigit():
            return "version", int(text)
        found.append((node, f"'{label(node)}' calls version '{text}' of '{node.get('calledElement')}': the version "
                            "must be a number", "error"))
        return "latest", None
    if kind == "versionTag":
        found.append((node, f"'{label(node)}' calls '{node.get('calledElement')}' by version tag, which Baton does "
                            "not keep: bind by version or to the latest", "error"))
        return "latest", None
    if kind not in ("latest", "deployment"):
        found.append((node, f"'{label(node)}' binds its called process by '{kind}': Baton knows latest, "
                            "deployment and version", "error"))
    return kind, None


def check(node: etree._Element) -> Found:
    """What of a call activity's mappings and binding cannot run as drawn."""
    found: Found = []
    if local(node) != "callActivity":
        return found
    called = node.get("calledElement") or ""
    if "${" in called or "#{" in called:
        found.append((node, f"'{label(node)}' chooses the process it calls with the expression {called}: Baton "
                            "calls a process named in the diagram", "error"))
    if call_mappings(node, found) is None and camunda_7(node):
        found.append((node, f"'{label(node)}' passes no camunda:in or camunda:out: Camunda 7 would pass no variables, "
                            "Baton passes all the data in and back; add camunda:in and camunda:out (variables=\"all\" "
                            "or by name) to say which", "warning"))
    binding(node, found)
    return found


MODELER = "http://camunda.org/schema/modeler/1.0"


def camunda_7(node: etree._Element) -> bool:
    """Whether the diagram was drawn for Camunda 7 (Camunda Modeler's "Camunda Platform")."""
    root = node.getroottree().getroot()
    platform = root.get(f"{{{MODELER}}}executionPlatform")
    if platform is not None:
        return platform.startswith("Camunda Platform")
    return (root.get("exporter") or "").startswith("Camunda Modeler") and "zeebe" not in (root.nsmap or {})


def bind(parser: Any, process_id: str, spec: Any, subprocesses: dict[str, Any]) -> list[str]:
    """Each called process in the version its call activity binds to (`camunda:calledElementBinding`); the
    deployed versions taken, as "id@version:checksum".

    `deployment`: the one uploaded with the caller. `latest` (the default): that one, or else the newest deployed
    now. `version` (`camunda:calledElementVersion`): that deployed version. The binding is made at deployment;
    one diagram calls one version of each process.
    """
    back = {new: old for new, old in parser.renamed.items()}
    chosen: dict[str, tuple[str, int | None]] = {}
    bound = []
    for wf_spec in [spec, *(s for s in list(subprocesses.values()) if s is not None)]:
        for task_spec in list(wf_spec.task_specs.values()):
            if not isinstance(task_spec, CallActivity) or not task_spec.bpmn_id:
                continue
            node = parser.nodes.get(back.get(task_spec.bpmn_id, task_spec.bpmn_id))
            if node is None or node.tag != f"{{{BPMN}}}callActivity":
                continue
            called, (kind, version) = task_spec.spec, binding(node, [])
            where = {"node": node, "file_name": parser.origin.get(node.get("id"))}
            if chosen.setdefault(called, (kind, version)) != (kind, version):
                raise Refused(f"'{label(node)}' calls '{called}' bound otherwise than another call of it in this "
                              "diagram: one diagram calls one version of each process", **where)
            if subprocesses.get(called) is not None and kind != "version":
                continue
            found = parser.called(called, version) if parser.called is not None and kind != "deployment" else None
            if found is None:
                raise Refused(_unbound(called, kind, version), **where)
            subprocesses[called], deployed, taken = found
            for name, sub in deployed.items():
                subprocesses.setdefault(name, sub)
            bound.append(taken)
    return bound


def _unbound(called: str, kind: str, version: int | None) -> str:
    if kind == "version":
        return f"version {version} of the called process '{called}' is not deployed"
    if kind == "deployment":
        return (f"the called process '{called}' is not among the uploaded files: it is bound to this deployment "
                "(calledElementBinding=\"deployment\"), so upload its file together with this diagram")
    return (f"the called process '{called}' is neither among the uploaded files nor deployed: upload its file "
            "together with this diagram, or deploy it first")
