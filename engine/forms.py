"""The form a diagram declares on a task: only its fields are accepted from people, typed and validated."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from .errors import FieldError, InvalidData

log = logging.getLogger(__name__)

TRUE, FALSE = {"true", "on", "yes", "1", "approve", "approved"}, {"false", "off", "no", "0", "", "reject", "rejected"}


def accept(fields: list[dict[str, Any]], data: Mapping[str, Any] | None) -> dict[str, Any]:
    """Typed values for the declared, writable fields; undeclared keys are dropped, bad values refused together."""
    data = data or {}
    accepted, errors = {}, []
    for field in fields:
        name = field["id"]
        if field.get("readonly"):
            continue
        raw = data.get(name, field.get("default"))
        if raw is None or raw == "":
            if field.get("required") and field["type"] != "boolean":
                errors.append(FieldError(name, f"{field['label']} is required"))
            else:
                accepted[name] = False if field["type"] == "boolean" else None  # declared fields always exist after
            continue
        try:
            accepted[name] = convert(field, raw)
        except (ValueError, TypeError, InvalidOperation) as exc:
            errors.append(FieldError(name, f"{field['label']}: {exc}"))
            continue
        if message := violation(field, accepted[name]):
            errors.append(FieldError(name, f"{field['label']} {message}"))
    if errors:
        raise InvalidData(errors)
    dropped = set(data) - {f["id"] for f in fields}
    if dropped:
        log.info("ignored undeclared form fields %s", sorted(dropped))
    return accepted


def convert(field: dict[str, Any], raw: Any) -> Any:
    kind = field["type"]
    if kind == "long":
        if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
            raise ValueError("must be a whole number")
        return int(str(raw).strip())
    if kind in ("decimal", "double", "number", "amount"):
        return Decimal(str(raw).strip())
    if kind == "boolean":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text in TRUE | FALSE:
            return text in TRUE
        raise ValueError("must be yes or no")
    if kind == "date":
        if isinstance(raw, datetime):
            return raw.date()
        if isinstance(raw, date):
            return raw
        return date.fromisoformat(str(raw).strip()[:10])
    if kind == "enum":
        allowed = [v["id"] for v in field.get("values", [])]
        if str(raw) not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return str(raw)
    return str(raw)


def violation(field: dict[str, Any], value: Any) -> str | None:
    """The first min/max/minlength/maxlength constraint the value breaks, in words."""
    rules = field.get("constraints", {})
    for rule, limit in rules.items():
        if limit is None:
            continue
        if rule in ("min", "max") and isinstance(value, (int, Decimal, date)):
            bound = date.fromisoformat(limit) if isinstance(value, date) else Decimal(limit)
            if rule == "min" and value < bound:
                return f"must be at least {limit}"
            if rule == "max" and value > bound:
                return f"must be at most {limit}"
        if rule == "minlength" and len(str(value)) < int(limit):
            return f"must be at least {limit} characters"
        if rule == "maxlength" and len(str(value)) > int(limit):
            return f"must be at most {limit} characters"
    return None
