"""The form a diagram declares on a task: only its fields are accepted from people, typed and validated."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from .errors import FieldError, InvalidData

log = logging.getLogger(__name__)

TRUE, FALSE = {"true", "on", "yes", "1", "approve", "approved"}, {"false", "off", "no", "0", "", "reject", "rejected"}
# JSON Schema (as react-jsonschema-form and SpiffArena use it) to form fields.
TYPES = {"string": "string", "integer": "long", "number": "decimal", "boolean": "boolean"}
LIMITS = {"minimum": "min", "maximum": "max", "minLength": "minlength", "maxLength": "maxlength"}
READ = {"type", "title", "description", "default", "readOnly", "format", "enum", "enumNames", "oneOf", "anyOf", "$ref",
        "$comment", "examples", *LIMITS}
CONDITIONAL = ("allOf", "anyOf", "oneOf", "not", "if", "then", "else", "dependencies", "dependentSchemas",
               "dependentRequired", "patternProperties")


def accept(fields: list[dict[str, Any]], data: Mapping[str, Any] | None) -> dict[str, Any]:
    """Typed values for the declared, writable fields; undeclared keys are dropped, bad values refused together."""
    data = data or {}
    accepted, errors = {}, []
    for field in fields:
        name = field["id"]
        if field.get("readonly"):
            continue
        raw = data[name] if name in data else lookup(data, field.get("path"), field.get("default"))
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
    dropped = set(data) - {f["id"] for f in fields} - {f["path"][0] for f in fields if f.get("path")}
    if dropped:
        log.info("ignored undeclared form fields %s", sorted(dropped))
    return nest(fields, accepted)


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
        values = field.get("values", [])
        chosen = next((v for v in values if v["id"] == str(raw)), None)
        if chosen is None:
            raise ValueError(f"must be one of {', '.join(v['id'] for v in values)}")
        return chosen.get("value", chosen["id"])  # a JSON schema's whole-number choice stays a number
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


@dataclass(frozen=True)
class Unsupported:
    """Part of a JSON schema a form cannot show (an error) or does not check (a warning), by property name."""

    key: str | None
    message: str
    severity: str = "error"


def from_json_schema(schema: Any, ui_schema: Any = None) -> tuple[list[dict[str, Any]], list[Unsupported]]:
    """A JSON-Schema form and its UI schema as form fields, in the form's order, and what of it cannot be shown."""
    if not isinstance(schema, dict) or schema.get("type", "object") != "object" \
            or not isinstance(schema.get("properties"), dict):
        return [], [Unsupported(None, 'the form schema must be an object with properties: {"type": "object", '
                                      '"properties": {...}}')]
    ui = ui_schema if isinstance(ui_schema, dict) else {}
    required = schema.get("required") if isinstance(schema.get("required"), list) else []
    fields, found = [], [Unsupported(None, f"'{k}' (a form that changes with its answers) cannot be shown")
                         for k in CONDITIONAL if k in schema]
    for key in ordered(list(schema["properties"]), ui.get("ui:order")):
        looks = ui.get(key) if isinstance(ui.get(key), dict) else {}
        try:
            prop = resolve(schema, schema["properties"][key])
            fields.append(json_field(key, prop, key in required, looks))
        except ValueError as exc:
            found.append(Unsupported(key, f"the property '{key}' cannot be shown: {exc}"))
            continue
        found += unchecked(key, prop)
    return fields, found


FORM_JS = {"textfield": {"type": "string"}, "textarea": {"type": "string"}, "number": {"type": "number"},
           "checkbox": {"type": "boolean"}, "select": {"type": "string"}, "radio": {"type": "string"}}
SHOWN_ONLY = {"text", "html", "spacer", "separator", "image", "button", "iframe", "documentPreview"}  # nothing to enter


def from_form_js(form: Any) -> tuple[list[dict[str, Any]], list[Unsupported]]:
    """A Camunda 8 form (form-js JSON) as form fields, through the JSON-Schema reading.

    A key with dots, and the `path` of a group around fields, nest what the form sets, as in form-js: the key
    `address.city` inside a group with the path `customer` sets `customer["address"]["city"]`.
    """
    components = form.get("components") if isinstance(form, dict) else None
    if not isinstance(components, list):
        return [], [Unsupported(None, 'the Camunda form must have "components"')]
    properties, required, ui, found, paths = {}, [], {"ui:order": []}, [], {}
    for c, prefix in _components(components, [], found):
        key, kind = str(c.get("key") or ""), c.get("type")
        if kind == "dynamiclist":
            found.append(Unsupported(c.get("path"), f"the repeating list '{c.get('path') or c.get('label')}' cannot "
                                                    "be shown: a form shows fields that are entered once"))
            continue
        path = [*prefix, *key.split(".")]
        date = kind == "datetime" and c.get("subtype") == "date"
        if not all(p.isidentifier() for p in path) or (kind not in FORM_JS and not date):
            found.append(Unsupported(key or None, f"the {kind} field '{key}' cannot be shown: " + (
                "its key must be names joined by dots, such as order.total" if not all(
                    p.isidentifier() for p in path) else "only text, number, checkbox, select, radio, textarea and "
                "date fields are supported")))
            continue
        name = ".".join(path)
        rules = c.get("validate") if isinstance(c.get("validate"), dict) else {}
        prop = dict(FORM_JS.get(kind) or {"type": "string", "format": "date"}, title=c.get("label") or key)
        prop |= {k: rules[k] for k in ("minLength", "maxLength") if k in rules}
        prop |= {name: rules[k] for k, name in (("min", "minimum"), ("max", "maximum")) if k in rules}
        prop |= {"default": c["defaultValue"]} if "defaultValue" in c else {}
        prop |= {"description": c["description"]} if c.get("description") else {}
        prop |= {"readOnly": True} if c.get("disabled") or c.get("readonly") else {}
        if kind in ("select", "radio"):
            values = c.get("values") if isinstance(c.get("values"), list) else []
            prop["oneOf"] = [{"const": v.get("value"), "title": v.get("label")} for v in values if isinstance(v, dict)]
        properties[name] = prop
        paths[name] = path
        required += [name] if rules.get("required") else []
        ui[name] = {"ui:widget": "textarea"} if kind == "textarea" else {}
        ui["ui:order"].append(name)
    fields, more = from_json_schema({"type": "object", "properties": properties, "required": required}, ui)
    for field in fields:
        if len(paths.get(field["id"], [])) > 1:
            field["path"] = paths[field["id"]]
    return fields, found + more


def _components(components: list[Any], prefix: list[str], found: list[Unsupported]
                ) -> list[tuple[dict[str, Any], list[str]]]:
    """The fields of a form-js form, each with the path of the groups around it; groups and what shows only gone."""
    fields = []
    for c in (c for c in components if isinstance(c, dict) and c.get("type") not in SHOWN_ONLY):
        if c.get("type") == "group":
            path = str(c.get("path") or "")
            fields += _components(c.get("components") if isinstance(c.get("components"), list) else [],
                                  [*prefix, *path.split(".")] if path else prefix, found)
        else:
            fields.append((c, prefix))
    return fields


def nest(fields: list[dict[str, Any]], values: dict[str, Any]) -> dict[str, Any]:
    """Form values with those of nested fields (`path`) put inside the objects their path names."""
    paths = {f["id"]: f["path"] for f in fields if f.get("path")}
    nested: dict[str, Any] = {}
    for name, value in values.items():
        *parents, leaf = paths.get(name, [name])
        inside = nested
        for part in parents:
            inside = inside.setdefault(part, {}) if isinstance(inside.get(part, {}), dict) else {}
        inside[leaf] = value
    return nested


def lookup(data: Mapping[str, Any], path: list[str] | None, default: Any = None) -> Any:
    """The value at `path` inside nested objects of `data`, or `default`."""
    found: Any = data
    for part in path or [None]:
        if part is None or not isinstance(found, Mapping) or part not in found:
            return default
        found = found[part]
    return found


def ordered(keys: list[str], order: Any) -> list[str]:
    """The keys in `ui:order`'s order, where "*" stands for the others in the schema's order (else they follow)."""
    if not isinstance(order, list):
        return keys
    star = order.index("*") if "*" in order else len(order)
    head, tail = [k for k in order[:star] if k in keys], [k for k in order[star + 1:] if k in keys]
    return head + [k for k in keys if k not in head and k not in tail] + tail


def resolve(schema: dict[str, Any], prop: Any) -> dict[str, Any]:
    """A property's schema with its local `$ref` (`#/definitions/...`, `#/$defs/...`) followed."""
    seen = set()
    while isinstance(prop, dict) and "$ref" in prop:
        ref = prop["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#/"):
            raise ValueError(f"$ref '{ref}' must point into the same file, as '#/definitions/NAME'")
        if ref in seen:
            raise ValueError(f"$ref '{ref}' refers back to itself")
        seen.add(ref)
        target: Any = schema
        for part in ref[2:].split("/"):
            target = target.get(part.replace("~1", "/").replace("~0", "~")) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            raise ValueError(f"$ref '{ref}' points to nothing in the schema")
        prop = {**target, **{k: v for k, v in prop.items() if k != "$ref"}}
    if not isinstance(prop, dict):
        raise ValueError("it is not a schema (an object with a type)")
    return prop


def json_field(key: str, prop: dict[str, Any], required: bool, ui: dict[str, Any]) -> dict[str, Any]:
    """One property as a form field; ValueError when a form cannot show it."""
    kind, values = field_type(prop, ui), choices(prop)
    for limit in LIMITS:
        if limit in prop and (isinstance(prop[limit], bool) or not isinstance(prop[limit], int | float)):
            raise ValueError(f"'{limit}' must be a number")
    return {"id": key, "label": str(ui.get("ui:title") or prop.get("title") or key),
            "type": "enum" if values else kind, "default": text(prop.get("default")), "required": required,
            "readonly": bool(prop.get("readOnly") or ui.get("ui:readonly") or ui.get("ui:disabled")),
            "constraints": {name: text(prop[limit]) for limit, name in LIMITS.items() if limit in prop},
            "values": [{"id": str(v), "name": str(v if name is None else name)} | ({} if isinstance(v, str) else
                                                                                  {"value": v}) for v, name in values],
            "help": text(ui.get("ui:help") or prop.get("description"))}


def field_type(prop: dict[str, Any], ui: dict[str, Any]) -> str:
    """The form's type for a property's JSON type, format and widget."""
    kind = prop.get("type")
    if kind is None and ("enum" in prop or "oneOf" in prop or "anyOf" in prop):
        kind = "string"
    if isinstance(kind, list):
        raise ValueError(f"a list of types ({', '.join(map(str, kind))}) needs one type")
    if kind == "object":
        raise ValueError("a nested object needs its fields at the top level of the form")
    if kind == "array":
        raise ValueError("an array (a list of values) is not supported")
    if kind not in TYPES:
        raise ValueError(f"the type '{kind}' is not one of {', '.join(TYPES)}" if kind else "it has no type")
    if kind == "string" and prop.get("format") == "date":
        return "date"
    if kind == "string" and ui.get("ui:widget") == "textarea":
        return "text"
    return TYPES[kind]


def choices(prop: dict[str, Any]) -> list[tuple[Any, Any]]:
    """The (value, title) pairs of `enum` (with `enumNames`) or of `oneOf`/`anyOf` constants; ValueError for others."""
    which = next((k for k in ("enum", "oneOf", "anyOf") if k in prop), None)
    if which is None:
        return []
    options = prop[which] if isinstance(prop[which], list) else []
    if which == "enum":
        names = prop.get("enumNames") if isinstance(prop.get("enumNames"), list) else []
        found = [(v, names[i] if i < len(names) else None) for i, v in enumerate(options)]
    else:
        found = [constant(option, which) for option in options]
    kind = {"string": str, "integer": int, None: str}.get(prop.get("type"))
    if not found or kind is None or any(isinstance(v, bool) or not isinstance(v, kind) for v, _ in found):
        raise ValueError(f"'{which}' must list texts, or whole numbers for an integer")
    return found


def constant(option: Any, which: str) -> tuple[Any, Any]:
    if isinstance(option, dict) and "const" in option:
        return option["const"], option.get("title")
    if isinstance(option, dict) and isinstance(option.get("enum"), list) and len(option["enum"]) == 1:
        return option["enum"][0], option.get("title")
    raise ValueError(f"'{which}' may only list constants, as {{\"const\": ..., \"title\": ...}}")


def unchecked(key: str, prop: dict[str, Any]) -> list[Unsupported]:
    """Warnings for the keywords of a property that a form neither shows nor checks."""
    found = [Unsupported(key, f"'{k}' of the property '{key}' is not checked", "warning")
             for k in prop if k not in READ]
    if prop.get("format") not in (None, "date"):
        found.append(Unsupported(key, f"the format '{prop['format']}' of the property '{key}' is not checked",
                                 "warning"))
    return found


def text(value: Any) -> str | None:
    """A JSON value as the text a form field holds (true/false for booleans)."""
    if value is None:
        return None
    return ("true" if value else "false") if isinstance(value, bool) else str(value)
