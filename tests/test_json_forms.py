"""SpiffArena's JSON-Schema forms: translated at deploy, linted, and enforced like Camunda's generated forms."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from baton.engine import InvalidData, InvalidDiagram, parsing
from baton.engine.forms import accept, from_json_schema
from bpmn_builder import process

DATA = Path(__file__).parent / "data" / "json_forms"
APPROVE = DATA / "approve.bpmn"
APPROVE_FILES = (APPROVE, DATA / "approve-schema.json", DATA / "approve-uischema.json")
REQUEST_FILES = (DATA / "request.bpmn", DATA / "request-schema.json")
DECIMAL = {"type": "object", "properties": {"price": {"type": "number", "minimum": 0.5, "maximum": 1000}}}


@pytest.fixture
def engine(database_url, fresh):
    return fresh(database_url)


def translated(properties: dict, **schema) -> list[dict]:
    fields, unsupported = from_json_schema({"type": "object", "properties": properties, **schema})
    assert unsupported == []
    return fields


def test_each_json_type_becomes_a_form_type():
    fields = translated({"name": {"type": "string"}, "count": {"type": "integer"}, "price": {"type": "number"},
                         "urgent": {"type": "boolean"}, "due": {"type": "string", "format": "date"}})
    assert [(f["id"], f["type"]) for f in fields] == [("name", "string"), ("count", "long"), ("price", "decimal"),
                                                      ("urgent", "boolean"), ("due", "date")]


def test_title_required_limits_default_read_only_and_description_carry_over():
    [count, code] = translated({
        "count": {"type": "integer", "title": "How many", "minimum": 1, "maximum": 9, "default": 2,
                  "description": "Boxes, not items"},
        "code": {"type": "string", "minLength": 2, "maxLength": 8, "readOnly": True, "default": "AB"}},
        required=["count"])
    assert count == {"id": "count", "label": "How many", "type": "long", "default": "2", "required": True,
                     "readonly": False, "constraints": {"min": "1", "max": "9"}, "values": [],
                     "help": "Boxes, not items"}
    assert (code["label"], code["required"], code["readonly"], code["default"]) == ("code", False, True, "AB")
    assert code["constraints"] == {"minlength": "2", "maxlength": "8"}


def test_enum_one_of_and_any_of_constants_become_choices():
    status, size, site, rank = translated({
        "status": {"type": "string", "enum": ["open", "shut"], "enumNames": ["Open", "Shut"]},
        "size": {"type": "string", "oneOf": [{"const": "s", "title": "Small"}, {"const": "l", "title": "Large"}]},
        "site": {"anyOf": [{"const": "north"}, {"enum": ["south"], "title": "South"}]},
        "rank": {"type": "integer", "enum": [1, 2]}})
    assert all(f["type"] == "enum" for f in (status, size, site, rank))
    assert status["values"] == [{"id": "open", "name": "Open"}, {"id": "shut", "name": "Shut"}]
    assert size["values"] == [{"id": "s", "name": "Small"}, {"id": "l", "name": "Large"}]
    assert site["values"] == [{"id": "north", "name": "north"}, {"id": "south", "name": "South"}]
    assert rank["values"] == [{"id": "1", "name": "1", "value": 1}, {"id": "2", "name": "2", "value": 2}]


def test_the_ui_schema_orders_widens_locks_and_explains_fields():
    schema = {"type": "object", "properties": {k: {"type": "string"} for k in ("a", "b", "c", "d")}}
    ui = {"ui:order": ["c", "*", "a"], "b": {"ui:widget": "textarea", "ui:help": "Say why", "ui:title": "Bee"},
          "c": {"ui:readonly": True}, "d": {"ui:disabled": True}}
    fields, unsupported = from_json_schema(schema, ui)
    assert unsupported == []
    assert [f["id"] for f in fields] == ["c", "b", "d", "a"]
    assert [f["readonly"] for f in fields] == [True, False, True, False]
    assert (fields[1]["type"], fields[1]["help"], fields[1]["label"]) == ("text", "Say why", "Bee")
    assert [f["id"] for f in from_json_schema(schema, {"ui:order": ["d", "b"]})[0]] == ["d", "b", "a", "c"]


def test_a_local_ref_is_followed():
    [owner] = translated({"owner": {"$ref": "#/$defs/name", "title": "Owner"}},
                         **{"$defs": {"name": {"type": "string", "title": "Name", "maxLength": 40}}})
    assert (owner["label"], owner["type"], owner["constraints"]) == ("Owner", "string", {"maxlength": "40"})


@pytest.mark.parametrize(("prop", "words"), [
    ({"type": "object", "properties": {}}, "a nested object"),
    ({"type": "array", "items": {"type": "string"}}, "an array"),
    ({"$ref": "#/definitions/missing"}, "$ref '#/definitions/missing' points to nothing"),
    ({"$ref": "other.json#/definitions/x"}, "$ref 'other.json#/definitions/x' must point into the same file"),
    ({"$ref": "#/properties/x"}, "$ref '#/properties/x' refers back to itself"),
    ({"type": ["string", "null"]}, "a list of types (string, null)"),
    ({"type": "null"}, "the type 'null'"),
    ({"title": "No type"}, "it has no type"),
    ({"type": "string", "anyOf": ["options_from_task_data_var:fruits"]}, "'anyOf' may only list constants"),
    ({"type": "number", "enum": [1.5, 2.5]}, "'enum' must list texts"),
    ({"type": "integer", "minimum": "one"}, "'minimum' must be a number"),
])
def test_what_a_form_cannot_show_is_refused_by_name(prop, words):
    fields, [refused] = from_json_schema({"type": "object", "properties": {"x": prop}})
    assert fields == [] and refused.severity == "error" and refused.key == "x"
    assert f"the property 'x' cannot be shown: {words}" in refused.message


def test_a_schema_that_is_not_an_object_form_or_changes_with_its_answers_is_refused():
    for schema in ([], {"type": "string"}, {"type": "object"}):
        assert from_json_schema(schema)[1][0].message.startswith("the form schema must be an object")
    fields, [refused] = from_json_schema({"type": "object", "properties": {"a": {"type": "string"}},
                                          "if": {"properties": {"a": {"const": "x"}}}})
    assert [f["id"] for f in fields] == ["a"] and "'if'" in refused.message


def test_lint_names_the_file_line_task_and_construct(engine):
    diagram = APPROVE.read_bytes().replace(b"approve-schema.json", b"unsupported-schema.json")
    report = engine.lint(diagram, DATA / "unsupported-schema.json", DATA / "approve-uischema.json")
    found = {(p.file, p.line, p.element_id, p.severity): p.message for p in report.problems}
    assert found.pop(("unsupported-schema.json", 4, "approve", "error")).endswith("a nested object needs its "
                                                                                "fields at the top level of the form")
    assert "an array" in found.pop(("unsupported-schema.json", 5, "approve", "error"))
    assert "$ref '#/definitions/person' points to nothing" in found.pop(("unsupported-schema.json", 6, "approve",
                                                                         "error"))
    assert "a list of types" in found.pop(("unsupported-schema.json", 7, "approve", "error"))
    assert "'anyOf' may only list constants" in found.pop(("unsupported-schema.json", 8, "approve", "error"))
    assert found.pop(("unsupported-schema.json", 9, "approve", "warning")) == "'pattern' of the property 'code' " \
                                                                              "is not checked"
    assert "the format 'email'" in found.pop(("unsupported-schema.json", 10, "approve", "warning"))
    assert "'dependencies'" in found.pop(("unsupported-schema.json", None, "approve", "error"))
    assert found == {}


def test_a_schema_file_not_uploaded_is_an_error_and_refuses_deploy(engine):
    [problem] = engine.lint(APPROVE, DATA / "approve-uischema.json").problems
    assert (problem.file, problem.line, problem.element_id, problem.severity) == ("approve.bpmn", 9, "approve",
                                                                                  "error")
    assert problem.message == "Upload approve-schema.json together with this diagram: 'Approve' takes its form from it"
    with pytest.raises(InvalidDiagram) as refused:
        engine.deploy(APPROVE, DATA / "approve-uischema.json")
    assert refused.value.problems == [problem]
    assert engine.definitions() == []


def test_a_json_file_that_is_not_json_is_an_error_with_its_line(engine, tmp_path):
    broken = tmp_path / "approve-schema.json"
    broken.write_text('{\n  "type": "object",\n  "properties": {,}\n}\n', encoding="utf-8")
    [problem] = engine.lint(APPROVE, broken, DATA / "approve-uischema.json").problems
    assert (problem.file, problem.line, problem.severity) == ("approve-schema.json", 3, "error")
    assert problem.message.startswith("the file is not valid JSON")


def test_a_json_form_task_completes_with_typed_values(database_url, engine, fresh):
    engine.deploy(*APPROVE_FILES, user="alice")
    instance = engine.start("json_approval", {"item": "desk"})
    [task] = fresh(database_url).tasks(instance_id=instance.id)
    assert [f.id for f in task.form] == ["decision", "quantity", "price", "delivery", "priority", "site", "urgent",
                                         "code", "comment"]
    assert {f.id: f.type for f in task.form}["price"] == "decimal"
    done = fresh(database_url).complete_task(task.id, {
        "decision": "approve", "quantity": "3", "price": "12.50", "delivery": "2025-03-31", "priority": "2",
        "urgent": "true", "comment": "Fine", "starter": "mallory", "item": "yacht", "site": "south"}, user="ann")
    data = fresh(database_url).instance(done.id).data
    assert done.status == "complete"
    assert (data["decision"], data["quantity"], data["price"], data["delivery"], data["priority"], data["urgent"]) == \
        ("approve", 3, Decimal("12.50"), date(2025, 3, 31), 2, True)
    assert data["comment"] == "Fine" and data["item"] == "desk"  # an undeclared field is dropped
    assert "site" not in data and "code" not in data  # read-only fields are never taken from the form


def test_invalid_json_form_values_are_refused_field_by_field(database_url, engine, fresh):
    engine.deploy(*APPROVE_FILES)
    [task] = engine.tasks(instance_id=engine.start("json_approval").id)
    with pytest.raises(InvalidData) as refused:
        fresh(database_url).complete_task(task.id, {"decision": "maybe", "quantity": "11", "price": "0.1",
                                                  "delivery": "", "priority": "7", "comment": "x"}, user="ann")
    errors = {e.field: e.message for e in refused.value.errors}
    assert errors == {"decision": "Decision: must be one of approve, reject",
                      "quantity": "Quantity must be at most 10", "price": "Unit price must be at least 0.5",
                      "delivery": "Deliver by is required", "priority": "Priority: must be one of 1, 2, 3",
                      "comment": "Comment must be at least 2 characters"}
    assert fresh(database_url).tasks(instance_id=task.instance_id)[0].id == task.id  # still open


def test_a_json_start_form_types_and_checks_what_starts_the_process(database_url, engine, fresh):
    engine.deploy(*REQUEST_FILES)
    assert [(f.id, f.type, f.required) for f in fresh(database_url).start_form("json_request")] == [
        ("item", "string", True), ("amount", "decimal", True), ("needed_by", "date", False)]
    with pytest.raises(InvalidData) as refused:
        engine.start("json_request", {"item": "Desk", "amount": "-1"}, user="sam")
    assert [e.field for e in refused.value.errors] == ["amount"]
    started = engine.start("json_request", {"item": "Desk", "amount": "80.5", "needed_by": "2025-04-01",
                                            "starter": "mallory"}, user="sam")
    data = fresh(database_url).instance(started.id).data
    assert (data["item"], data["amount"], data["needed_by"], started.starter) == ("Desk", Decimal("80.5"),
                                                                                  date(2025, 4, 1), "sam")


def test_a_process_lists_the_schema_files_it_is_built_from():
    sources = [parsing.source(p) for p in (*APPROVE_FILES, *REQUEST_FILES)]
    parsed = parsing.parse(sources, max_bytes=10**7)
    assert parsed.problems == []
    assert [s.name for s in parsed.used("json_approval", [])] == ["approve-schema.json", "approve-uischema.json"]
    assert [s.name for s in parsed.used("json_request", [])] == ["request-schema.json"]


def test_a_changed_schema_deploys_a_new_version(engine, tmp_path):
    assert engine.deploy(*APPROVE_FILES)[0].version == 1
    assert engine.deploy(*APPROVE_FILES)[0].version == 1
    changed = tmp_path / "approve-schema.json"
    changed.write_bytes((DATA / "approve-schema.json").read_bytes().replace(b'"Quantity"', b'"How many"'))
    assert engine.deploy(APPROVE, changed, DATA / "approve-uischema.json")[0].version == 2


def test_a_json_form_field_keeps_its_help_text(engine):
    engine.deploy(*APPROVE_FILES)
    [task] = engine.tasks(instance_id=engine.start("json_approval").id)
    assert {f.id: f.help for f in task.form}["comment"] == "Why you decided so"


@pytest.mark.parametrize(("value", "ok"), [("0.5", True), ("1000", True), ("0.49", False), ("abc", False)])
def test_a_decimal_field_takes_decimals_within_its_limits(value, ok):
    fields, _ = from_json_schema(DECIMAL)
    if ok:
        assert accept(fields, {"price": value}) == {"price": Decimal(value)}
    else:
        with pytest.raises(InvalidData):
            accept(fields, {"price": value})


CAMUNDA_8_FORM = '''{"components": [
  {"type": "text", "text": "# Check the order"},
  {"type": "textfield", "key": "item", "label": "Item", "disabled": true},
  {"type": "number", "key": "quantity", "label": "Quantity", "validate": {"required": true, "min": 1, "max": 9}},
  {"type": "radio", "key": "decision", "label": "Decision", "validate": {"required": true},
   "values": [{"label": "Approve", "value": "approve"}, {"label": "Reject", "value": "reject"}]},
  {"type": "datetime", "subtype": "date", "key": "deliver_by", "label": "Deliver by"},
  {"type": "checklist", "key": "extras", "label": "Extras"}]}'''


def camunda_8_form(form: str) -> bytes:
    return process('<bpmn:startEvent id="start"/>',
                   '<bpmn:userTask id="check" name="Check" camunda:assignee="ann"><bpmn:extensionElements>'
                   '<zeebe:formDefinition formKey="camunda-forms:bpmn:form_1"/></bpmn:extensionElements>'
                   '</bpmn:userTask>', '<bpmn:endEvent id="end"/>', flows="start>check check>end",
                   extra=f'<bpmn:extensionElements><zeebe:userTaskForm id="form_1">{form}</zeebe:userTaskForm>'
                         '</bpmn:extensionElements>'
                   ).replace(b"xmlns:camunda=", b'xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" xmlns:camunda=')


def test_a_camunda_8_form_is_shown_and_checked_and_what_it_cannot_show_is_a_lint_error(engine):
    report = engine.lint(camunda_8_form(CAMUNDA_8_FORM))
    assert [(p.element_id, p.message) for p in report.errors] == [
        ("check", "the checklist field 'extras' cannot be shown: only text, number, checkbox, select, radio, "
                  "textarea and date fields are supported")]
    form = CAMUNDA_8_FORM.replace(',\n  {"type": "checklist", "key": "extras", "label": "Extras"}', "")
    engine.deploy(camunda_8_form(form))
    [task] = engine.tasks(instance_id=engine.start("p", {"item": "Desk"}).id)
    assert [(f.id, f.type, f.required, f.readonly) for f in task.form] == [
        ("item", "string", False, True), ("quantity", "decimal", True, False), ("decision", "enum", True, False),
        ("deliver_by", "date", False, False)]
    with pytest.raises(InvalidData):
        engine.complete_task(task.id, {"quantity": "12", "decision": "approve"}, user="ann")
    done = engine.complete_task(task.id, {"quantity": "2", "decision": "approve", "item": "Yacht"}, user="ann")
    assert (done.data["quantity"], done.data["decision"], done.data["item"]) == (2, "approve", "Desk")
