"""Tests of the JUEL and FEEL translators: the exact Python emitted, what it means when run, and what is refused."""
from __future__ import annotations

import random
from datetime import date
from types import SimpleNamespace

import pytest
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.dmn.engine.DMNEngine import DMNEngine

from baton.engine.expressions import Untranslatable, feel, feel_unary_tests, juel, to_python
from baton.engine.scripting import Sandbox, SandboxEnvironment, check


def run(source: str, **data: object) -> object:
    """`source` evaluated with plain eval over `data` and the builtins the sandbox allows."""
    names = {"len": len, "sum": sum, "min": min, "max": max, "abs": abs, "round": round, "str": str, "int": int,
             "isinstance": isinstance, "any": any, "all": all, "dict": dict, "date": date}
    return eval(compile(source, "<expr>", "eval"), {"__builtins__": names, **data})   # one scope, as in the sandbox


@pytest.fixture(scope="module")
def sandbox():
    box = Sandbox({}, timeout=1, memory=256 * 2**20)
    yield box
    box.close()


# JUEL (Camunda 7)

@pytest.mark.parametrize(("text", "python"), [
    ("${amount > 1000}", "amount > 1000"),
    ("${approved}", "approved"),
    ("${not approved}", "not approved"),
    ("${!approved}", "not approved"),
    ("${a == 'x' && b}", "a == 'x' and b"),
    ("${a eq 'x' and b ne 2 || c}", "a == 'x' and b != 2 or c"),
    ("${a lt 1 or a gt 2 or a le 3 or a ge 4}", "a < 1 or a > 2 or a <= 3 or a >= 4"),
    ("#{amount >= 10}", "amount >= 10"),
    ("  ${ amount }  ", "amount"),
    ("${order.total}", "order['total']"),
    ("${order.customer.name}", "order['customer']['name']"),
    ("${items[0]}", "items[0]"),
    ("${items['k']}", "items['k']"),
    ('${items["k"].v}', "items['k']['v']"),
    ("${items[i + 1]}", "items[i + 1]"),
    ("${a + b * c}", "a + b * c"),
    ("${(a + b) * c}", "(a + b) * c"),
    ("${a - (b - c)}", "a - (b - c)"),
    ("${a - b - c}", "a - b - c"),
    ("${a / b div c % d mod e}", "a / b / c % d % e"),
    ("${-a}", "-a"),
    ("${-(a + b)}", "-(a + b)"),
    ("${!(a && b)}", "not (a and b)"),
    ("${empty comment}", "comment in (None, '', [], {})"),
    ("${not empty comment}", "comment not in (None, '', [], {})"),
    ("${!empty order.lines}", "order['lines'] not in (None, '', [], {})"),
    ("${amount > 1000 ? 'director' : 'lead'}", "'director' if amount > 1000 else 'lead'"),
    ("${a ? b : c ? d : e}", "b if a else d if c else e"),
    ("${(a ? b : c) + 1}", "(b if a else c) + 1"),
    ("${x == null}", "x is None"),
    ("${null != x}", "x is not None"),
    ("${true}", "True"),
    ("${false || x}", "False or x"),
    ("${1.5e3}", "1500.0"),
    ("${007}", "7"),
    ("${(a < b) == (c < d)}", "(a < b) == (c < d)"),
    ("${a < b == c}", "(a < b) == c"),
    (r"${'it\'s'}", '"it\'s"'),
    (r"${'a\nb'}", r"'a\\nb'"),
    ("${a == '}'}", "a == '}'"),
])
def test_juel_translates_to_this_python(text, python):
    assert juel(text) == python
    assert to_python(text) == python
    assert check(python, "eval") == []


@pytest.mark.parametrize(("text", "python"), [
    ("Order ${id} ok", "'Order ' + str(id) + ' ok'"),
    ("plain text", "'plain text'"),
    ("", "''"),
    ("${a}${b}", "str(a) + str(b)"),
    ("sales,${dept}", "'sales,' + str(dept)"),
    ("${'x'} and ${y.z}", "'x' + ' and ' + str(y['z'])"),
    (r"costs \${amount}", "'costs ${amount}'"),
    ("isn't ${x}", "\"isn't \" + str(x)"),
])
def test_juel_templates_build_strings(text, python):
    assert juel(text) == python


@pytest.mark.parametrize(("text", "data", "expected"), [
    ("${amount > 1000}", {"amount": 1500}, True),
    ("${amount > 1000}", {"amount": 999}, False),
    ("${not approved}", {"approved": False}, True),
    ("${a == 'x' && b}", {"a": "x", "b": True}, True),
    ("${a == 'x' && b}", {"a": "y", "b": True}, False),
    ("${order.total * 2}", {"order": {"total": 21}}, 42),
    ("${lines[1].qty}", {"lines": [{"qty": 1}, {"qty": 7}]}, 7),
    ("${empty comment}", {"comment": ""}, True),
    ("${empty comment}", {"comment": None}, True),
    ("${empty comment}", {"comment": []}, True),
    ("${empty comment}", {"comment": 0}, False),
    ("${empty comment}", {"comment": "hi"}, False),
    ("${not empty comment}", {"comment": {}}, False),
    ("${amount > 1000 ? 'director' : 'lead'}", {"amount": 5000}, "director"),
    ("${amount > 1000 ? 'director' : 'lead'}", {"amount": 50}, "lead"),
    ("${7 mod 4 + 7 div 2}", {}, 6.5),
    ("${-a < 0}", {"a": 3}, True),
    ("${x == null}", {"x": None}, True),
    ("Order ${id}: ${order.total}", {"id": 7, "order": {"total": 9.5}}, "Order 7: 9.5"),
])
def test_juel_translations_mean_what_juel_means(text, data, expected):
    assert run(juel(text), **data) == expected


@pytest.mark.parametrize(("text", "named"), [
    ("${order.getTotal()}", "the JUEL method call 'order.getTotal()' cannot be translated"),
    ("${myBean.check(x)}", "the JUEL method call 'myBean.check(x)' cannot be translated"),
    ("${items[0](x)}", "the JUEL method call 'items[0](x)' cannot be translated"),
    ("${currentUser()}", "the JUEL function call 'currentUser()' cannot be translated"),
    ("${fn:length(xs) > 0}", "the JUEL function 'fn:length(xs)' cannot be translated"),
    ("${execution.getVariable('x')}", "the JUEL reference to the Camunda engine \"execution.getVariable('x')\""),
    ("${execution.processBusinessKey}", "the JUEL reference to the Camunda engine 'execution.processBusinessKey'"),
    ("${task.assignee == 'x'}", "the JUEL reference to the Camunda engine 'task.assignee'"),
    ("${x -> x + 1}", "the JUEL lambda expression in '${x -> x + 1}' cannot be translated"),
    ("${a = 5}", "the JUEL assignment in '${a = 5}' cannot be translated"),
    ("${a += 'x'}", "the JUEL string concatenation operator '+='"),
    ("${a; b}", "the JUEL statement separator ';'"),
    ("${'Order ' + id}", "the JUEL string concatenation \"'Order ' + id\" cannot be translated: JUEL's '+' adds"),
    ("${[1, 2]}", "the JUEL collection literal '[1, 2]' cannot be translated"),
    ("${{'a': 1}}", "the JUEL collection literal"),
    ("${a instanceof B}", "the JUEL type test 'instanceof'"),
    ("${'abc'.length}", "the JUEL property of the literal"),
    ("${class}", "the JUEL name 'class' cannot be translated: it is a reserved word in Python"),
    ("${}", "the JUEL expression '${}' cannot be translated: it is empty"),
    ("${a +}", "the JUEL expression '${a +}' cannot be translated: it ends too early"),
    ("${a ? b}", "expected ':' but found the end"),
    ("${(a}", "expected ')' but found the end"),
    ("${a b}", "unexpected 'b' at position 5"),
    ("${a # b}", "unexpected character '#' at position 5"),
    ("${amount", "its '${' is never closed"),
    ("${'abc}", "the string is never closed"),
    ("${1e999}", "the JUEL number 1e999 cannot be translated"),
    ("${" + "(" * 500 + "a" + ")" * 500 + "}", "it is nested too deeply"),
])
def test_juel_refuses_what_it_cannot_translate_and_names_it(text, named):
    with pytest.raises(Untranslatable) as refused:
        juel(text)
    assert named in str(refused.value)
    assert refused.value.text == text


# FEEL expressions (Camunda 8, DMN literal expressions and output entries)

@pytest.mark.parametrize(("text", "python"), [
    ("=amount > 1000", "amount > 1000"),
    ("amount > 1000", "amount > 1000"),
    ("= amount = 1000", "amount == 1000"),
    ("a != b", "a != b"),
    ("a <= 1 and b >= 2 or not(c)", "a <= 1 and b >= 2 or not c"),
    ("a + b * c - d / e ** 2", "a + b * c - d / e ** 2"),
    ("2 ** 3 ** 2", "(2 ** 3) ** 2"),
    ("-a ** 2", "(-a) ** 2"),
    ('"Hello " + name', "'Hello ' + name"),
    ('"say \\"hi\\"\\n"', "'say \"hi\"\\n'"),
    ("true", "True"),
    ("null", "None"),
    ("a = null", "a is None"),
    ("a != null", "a is not None"),
    ("1.50", "1.5"),
    ("order.total", "order['total']"),
    ("order.customer.name", "order['customer']['name']"),
    ("if amount > 1000 then \"director\" else \"lead\"", "'director' if amount > 1000 else 'lead'"),
    ("if a then b else if c then d else e", "b if a else d if c else e"),
    ("x in [1..10]", "1 <= x <= 10"),
    ("x in (1..10)", "1 < x < 10"),
    ("x in ]1..10]", "1 < x <= 10"),
    ("x in [1, 2, 3]", "x in [1, 2, 3]"),
    ('x in ("a", "b")', "x in ('a', 'b')"),
    ("x in (a, b)", "x == a or x == b"),
    ("x in allowed", "x in allowed"),
    ("x in > 5", "x > 5"),
    ("x in (< 1, > 9)", "x < 1 or x > 9"),
    ("x between 1 and 5", "1 <= x <= 5"),
    ("x between a + 1 and b", "a + 1 <= x <= b"),
    ("[1, 2, 3]", "[1, 2, 3]"),
    ("[]", "[]"),
    ('{a: 1, "b c": [1, 2], first name: "x"}', "{'a': 1, 'b c': [1, 2], 'first name': 'x'}"),
    ("{}", "{}"),
    ("xs[item > 10]", "[item for item in xs if item > 10]"),
    ("xs[1]", "xs[0]"),
    ("xs[-1]", "xs[-1]"),
    ("xs[item > 10][1]", "[item for item in xs if item > 10][0]"),
    ("xs[item > 10].name", "[item['name'] for item in [item for item in xs if item > 10]]"),
    ("orders[amount > 10]",
     "[item for item in orders if (item['amount'] if isinstance(item, dict) and 'amount' in item else amount) > 10]"),
    ("some x in xs satisfies x > 10", "any(x > 10 for x in xs)"),
    ("every x in xs satisfies x > 10", "all(x > 10 for x in xs)"),
    ("some x in xs, y in ys satisfies x = y", "any(x == y for x in xs for y in ys)"),
    ("some o in orders satisfies o.total > limit", "any(o['total'] > limit for o in orders)"),
    ("for x in xs return x * 2", "[x * 2 for x in xs]"),
    ("count(xs)", "len(xs)"),
    ("sum(xs)", "sum(xs)"),
    ("sum(a, b, c)", "sum([a, b, c])"),
    ("min(xs)", "min(xs)"),
    ("max(a, b)", "max(a, b)"),
    ("abs(a - b)", "abs(a - b)"),
    ("floor(a + b)", "int((a + b) // 1)"),
    ("ceiling(x)", "-int(-x // 1)"),
    ("decimal(x, 2)", "round(x, 2)"),
    ("string(id)", "str(id)"),
    ("string length(name)", "len(name)"),
    ('contains(name, "x")', "'x' in name"),
    ("list contains(xs, 3)", "3 in xs"),
    ('starts with(name, "A")', "name.startswith('A')"),
    ('ends with(name, "z")', "name.endswith('z')"),
    ("upper case(name)", "name.upper()"),
    ("lower case(a + b)", "(a + b).lower()"),
    ("not(a and b)", "not (a and b)"),
    ('date("2026-01-31")', "date(2026, 1, 31)"),
    ('string join(risks, ", ")', "', '.join([item for item in risks if item is not None])"),
    ("string join(parts)", "''.join([item for item in parts if item is not None])"),
    ("string(now())", "str(now())"),
    ("today()", "now().date()"),
    ("sum(credit_history[weight > 1].weight)",
     "sum([item['weight'] for item in [item for item in credit_history if "
     "(item['weight'] if isinstance(item, dict) and 'weight' in item else weight) > 1]])"),
])
def test_feel_translates_to_this_python(text, python):
    assert feel(text) == python
    assert check(python, "eval") == []


def test_to_python_dispatches_on_the_form_of_the_text():
    assert to_python("=amount > 1000") == "amount > 1000"
    assert to_python("  ${a && b} ") == "a and b"
    assert to_python("#{a}") == "a"
    assert to_python("amount > 1000 and ok") == "amount > 1000 and ok"    # Python already
    assert to_python("'PT5M'") == "'PT5M'"
    assert to_python(None) is None


@pytest.mark.parametrize(("text", "data", "expected"), [
    ("=amount > 1000", {"amount": 1001}, True),
    ("amount = 1000", {"amount": 1000}, True),
    ("x in [1..10]", {"x": 10}, True),
    ("x in [1..10]", {"x": 11}, False),
    ("x in (1..10)", {"x": 10}, False),
    ("x in [1..10)", {"x": 1}, True),
    ('x in ("a", "b")', {"x": "b"}, True),
    ("x in allowed", {"x": 2, "allowed": [1, 2]}, True),
    ("x between 1 and 5", {"x": 5}, True),
    ("x between 1 and 5", {"x": 6}, False),
    ("if amount > 1000 then \"director\" else \"lead\"", {"amount": 10}, "lead"),
    ("xs[item > 10]", {"xs": [5, 11, 20]}, [11, 20]),
    ("orders[amount > limit].id", {"orders": [{"id": 1, "amount": 5}, {"id": 2, "amount": 50}], "limit": 10}, [2]),
    ("orders[amount > 10]", {"orders": [], "amount": 0}, []),
    ("xs[1]", {"xs": ["a", "b"]}, "a"),
    ("xs[-1]", {"xs": ["a", "b"]}, "b"),
    ("some x in xs satisfies x > 10", {"xs": [1, 20]}, True),
    ("every x in xs satisfies x > 10", {"xs": [1, 20]}, False),
    ("for x in xs return x * 2", {"xs": [1, 2]}, [2, 4]),
    ("count(xs) + sum(xs)", {"xs": [1, 2, 3]}, 9),
    ("floor(-1.5)", {}, -2),
    ("floor(1.5)", {}, 1),
    ("ceiling(1.2)", {}, 2),
    ("ceiling(-1.2)", {}, -1),
    ("decimal(1/3, 2)", {}, 0.33),
    ("string length(s)", {"s": "abc"}, 3),
    ('starts with(s, "ab") and not(ends with(s, "x"))', {"s": "abc"}, True),
    ("upper case(s)", {"s": "abc"}, "ABC"),
    ('string join(xs, "-")', {"xs": ["a", None, "c"]}, "a-c"),
    ('{total: a * 2, tag: "x"}', {"a": 4}, {"total": 8, "tag": "x"}),
    ('due < date("2026-01-31")', {"due": date(2026, 1, 1)}, True),
    ("a = null", {"a": None}, True),
])
def test_feel_translations_mean_what_feel_means(text, data, expected):
    assert run(feel(text), **data) == expected


@pytest.mark.parametrize(("text", "named"), [
    ("foo(x)", "the FEEL function 'foo(x)' cannot be translated: supported are not(), count()"),
    ("substring(s, 1, 2)", "the FEEL function 'substring(s, 1, 2)' cannot be translated"),
    ('date and time("2026-01-01T10:00:00")', "the FEEL function 'date and time(\"2026-01-01T10:00:00\")'"),
    ("date(x)", "the FEEL call 'date(x)' cannot be translated: date() takes a literal date"),
    ('date("2026-02-30")', "date() takes a literal date"),
    ("count(a, b)", "the FEEL call 'count(a, b)' cannot be translated: wrong number of arguments"),
    ("count(list: xs)", "the FEEL named arguments in 'count(list: xs)' cannot be translated"),
    ("order total > 5", "the FEEL name 'order total' with spaces cannot be translated"),
    ("order.grand total", "the FEEL name with spaces in 'order.grand total' cannot be translated"),
    ("x instance of number", "the FEEL type test 'instance of'"),
    ("function(x) x + 1", "the FEEL function definition in"),
    ("1 < x < 5", "the FEEL chained comparison in '1 < x < 5' cannot be translated"),
    ("? > 5", "the FEEL '?' cannot be translated: it stands for the input value only in a decision table"),
    ("xs[i]", "the FEEL filter 'xs[i]' cannot be translated"),
    ("xs[0]", "the FEEL filter 'xs[0]' cannot be translated"),
    ('"abc".x', "the FEEL path or filter on the literal"),
    ("for i in 1..3 return i", "the FEEL range in 'i in 1..3' cannot be translated"),
    ("{a: 1, b: a + 1}", "the FEEL context entry 'b' that reads the entry 'a' cannot be translated"),
    ("a.b(c)", "the FEEL call 'a.b(c)' cannot be translated"),
    ("not approved", "the FEEL 'not' without parentheses"),
    ("lambda", "the FEEL name 'lambda' cannot be translated: it is a reserved word in Python"),
    ('@"2026-01-01"', "unexpected character '@'"),
    ("a == b", "unexpected '=='"),
    ("=", "the FEEL expression '=' cannot be translated: it is empty"),
    ("1e999", "the FEEL number 1e999"),
])
def test_feel_refuses_what_it_cannot_translate_and_names_it(text, named):
    with pytest.raises(Untranslatable) as refused:
        feel(text)
    assert named in str(refused.value)


# FEEL unary tests (DMN input entries)

@pytest.mark.parametrize(("cell", "python"), [
    ("-", "True"),
    ("", "True"),
    (None, "True"),
    ('"gold"', "x == 'gold'"),
    ('"gold","silver"', "x in ('gold', 'silver')"),
    (">= 1000", "x >= 1000"),
    ("< 5", "x < 5"),
    ("= 5", "x == 5"),
    ("!= 5", "x != 5"),
    ("[1..10]", "1 <= x <= 10"),
    ("(1..10)", "1 < x < 10"),
    ("]1..10[", "1 < x < 10"),
    ("[1..10)", "1 <= x < 10"),
    ("[1..10[", "1 <= x < 10"),
    ("(1..10]", "1 < x <= 10"),
    ("[low..high]", "low <= x <= high"),
    ('not("a","b")', "x not in ('a', 'b')"),
    ('not("a")', "x != 'a'"),
    ("not(null)", "x is not None"),
    ("not(< 5, > 10)", "not (x < 5 or x > 10)"),
    ("1000", "x == 1000"),
    ("-5", "x == -5"),
    ("true", "x == True"),
    ("null", "x is None"),
    ("limit", "x == limit"),
    ("order.limit * 2", "x == order['limit'] * 2"),
    ("[1, 2]", "x in [1, 2]"),
    ("< 5, > 10", "x < 5 or x > 10"),
    ('"a", [1..2]', "x == 'a' or 1 <= x <= 2"),
    ("? > 5 and ? < 10", "x > 5 and x < 10"),
    ("starts with(?, \"A\")", "x.startswith('A')"),
    ("a > 5", "a > 5 or x == (a > 5)"),
])
def test_unary_tests_translate_to_this_python(cell, python):
    assert feel_unary_tests(cell, "x") == python
    assert check(python, "eval") == []


def test_unary_tests_wrap_an_input_expression_that_is_not_simple():
    assert feel_unary_tests(">= 10", "order['total']") == "order['total'] >= 10"
    assert feel_unary_tests(">= 10", "a + b") == "(a + b) >= 10"
    assert feel_unary_tests("[1..2]", "a or b") == "1 <= (a or b) <= 2"


def test_unary_tests_never_leave_a_question_mark_for_spiffworkflow_to_replace():
    assert feel_unary_tests('"why?"', "x") == "x == 'why\\x3f'"
    assert run(feel_unary_tests('"why?"', "x"), x="why?") is True
    assert "?" not in feel_unary_tests('? = "a?b" or ? = "c"', "x")
    assert feel('"why?"') == "'why?'"        # outside DMN cells the string stays as written


@pytest.mark.parametrize(("cell", "value", "matches"), [
    ("[1..10]", 10, True),
    ("[1..10]", 11, False),
    ("[1..10]", 1, True),
    ("(1..10)", 1, False),
    ("]1..10[", 10, False),
    ("[1..10)", 10, False),
    ('"gold","silver"', "silver", True),
    ('"gold","silver"', "bronze", False),
    ('not("gold","silver")', "bronze", True),
    ('not("gold","silver")', "gold", False),
    (">= 1000", 1000, True),
    (">= 1000", 999.99, False),
    ("< 5", 4, True),
    ("1000", 1000, True),
    ("1000", 1001, False),
    ("true", True, True),
    ("true", False, False),
    ("null", None, True),
    ("null", 0, False),
    ("? > 5 and ? < 10", 7, True),
    ("? > 5 and ? < 10", 10, False),
    ("< 5, > 10", 11, True),
    ("< 5, > 10", 7, False),
    ("[1, 2]", 2, True),
    ("-", "anything", True),
])
def test_unary_tests_match_what_feel_matches(cell, value, matches):
    assert run(feel_unary_tests(cell, "x"), x=value) is matches


@pytest.mark.parametrize(("cell", "named"), [
    ("100 <= ? < 10000", "the FEEL chained comparison in '100 <= ? < 10000' cannot be translated"),
    ("[1..", "the FEEL expression '[1..' cannot be translated: it ends too early"),
    ("[1..5}", "expected ']', ')' or '[' but found '}'"),
    ("not(1", "expected ')' but found the end"),
    (">", "it ends too early"),
    ('"a" "b"', "unexpected '\"b\"' at position 5"),
    ("customer type", "the FEEL name 'customer type' with spaces cannot be translated"),
    ("foo(?)", "the FEEL function 'foo(?)' cannot be translated"),
])
def test_unary_tests_refuse_what_they_cannot_translate(cell, named):
    with pytest.raises(Untranslatable) as refused:
        feel_unary_tests(cell, "x")
    assert named in str(refused.value)


def test_unary_tests_refuse_an_input_that_is_not_python():
    with pytest.raises(Untranslatable, match="the input expression 'a b' is not Python"):
        feel_unary_tests("< 5", "a b")


# Whatever goes in, a translation is one Python expression or a refusal

def test_random_text_is_translated_or_refused_never_crashes():
    atoms = ["a", "xs", "item", "1", "2.5", "'s'", '"t"', "true", "null", "(", ")", "[", "]", "{", "}", ",", ".",
             "..", "+", "-", "*", "**", "=", "!=", "<", ">=", "and", "or", "not", "?", ":", "in", "between", "if",
             "then", "else", "some", "satisfies", "for", "return", "count", "string length", "empty", "&&", "!",
             "x.y", "fn:f", "execution", "#", "@", "'", '"', "\\", "${", "date"]
    rng = random.Random(6)
    for _ in range(3000):
        text = " ".join(rng.choice(atoms) for _ in range(rng.randint(1, 8)))
        for translate in (juel, lambda t: juel("${" + t + "}"), feel, lambda t: feel_unary_tests(t, "v")):
            try:
                source = translate(text)
            except Untranslatable:
                continue
            compile(source, "<expr>", "eval")


# Through Baton's sandbox and SpiffWorkflow's DMN engine

@pytest.mark.parametrize(("source", "data", "expected"), [
    (juel("${amount > 1000 && !rejected}"), {"amount": 5000, "rejected": False}, True),
    (juel("${order.total >= limit ? 'director' : 'lead'}"), {"order": {"total": 10}, "limit": 5}, "director"),
    (juel("Order ${id} for ${customer.name}"), {"id": 7, "customer": {"name": "Ann"}}, "Order 7 for Ann"),
    (juel("${not empty comment}"), {"comment": "ok"}, True),
    (feel("=some line in order.lines satisfies line.qty > 10"), {"order": {"lines": [{"qty": 11}]}}, True),
    (feel("count(xs[item > 1]) + floor(2.5)"), {"xs": [1, 2, 3]}, 4),
    (feel('orders[amount > limit].id'), {"orders": [{"id": 1, "amount": 50}], "limit": 10}, [1]),
    (feel('if starts with(name, "A") then upper case(name) else name'), {"name": "ann"}, "ann"),
    (feel('due < date("2026-01-31")'), {"due": date(2026, 1, 1)}, True),
    (feel_unary_tests("[1000..5000)", "amount"), {"amount": 4999}, True),
    (feel_unary_tests('not("gold","silver")', "tier"), {"tier": "gold"}, False),
])
def test_translations_run_in_the_sandbox(sandbox, source, data, expected):
    assert check(source, "eval") == []
    assert sandbox.evaluate(source, data) == expected


@pytest.mark.parametrize(("cell", "amount", "matches"), [
    ("[1000..5000)", 1000, True),
    ("[1000..5000)", 5000, False),
    (">= 1000", 999, False),
    ('not(1, 2)', 3, True),
    ("? > 5 and ? < 10", 7, True),
    ('"why?"', "why?", True),
])
def test_spiffworkflow_dmn_engine_evaluates_a_translated_cell(sandbox, cell, amount, matches):
    # The hook for decision tables: an input entry rewritten to a condition on `dmninputexpr`, which SpiffWorkflow's
    # DMNEngine binds to the value of the input expression.
    engine = PythonScriptEngine(environment=SandboxEnvironment(sandbox))
    task = SimpleNamespace(workflow=SimpleNamespace(script_engine=engine), data={"order": {"amount": amount}})
    match = feel_unary_tests(cell, "dmninputexpr")
    assert DMNEngine(None).evaluate(feel("order.amount"), match, task) is matches


TIERS = b'''<?xml version="1.0" encoding="UTF-8"?>
<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" id="tiers_defs" name="Tiers" namespace="x">
  <decision id="tier" name="Tier">
    <decisionTable id="table" hitPolicy="FIRST">
      <input id="in_amount"><inputExpression id="e1" typeRef="number"><text>amount</text></inputExpression></input>
      <input id="in_level"><inputExpression id="e2" typeRef="string"><text>level</text></inputExpression></input>
      <output id="out" name="tier" typeRef="string"/>
      <rule id="r1"><inputEntry id="a1"><text>[0..1000)</text></inputEntry>
        <inputEntry id="b1"><text>"gold","silver"</text></inputEntry>
        <outputEntry id="o1"><text>"small vip"</text></outputEntry></rule>
      <rule id="r2"><inputEntry id="a2"><text>&lt; 1000</text></inputEntry>
        <inputEntry id="b2"><text>not("gold","silver")</text></inputEntry>
        <outputEntry id="o2"><text>"small"</text></outputEntry></rule>
      <rule id="r3"><inputEntry id="a3"><text>&gt;= 1000</text></inputEntry>
        <inputEntry id="b3"><text>-</text></inputEntry>
        <outputEntry id="o3"><text>if amount &gt; 5000 then "huge" else "large"</text></outputEntry></rule>
    </decisionTable>
  </decision>
</definitions>
'''


@pytest.mark.parametrize(("amount", "level", "tier"), [(500, "gold", "small vip"), (999, "bronze", "small"),
                                                       (1000, "gold", "large"), (7000, "none", "huge")])
def test_feel_decision_tables_run_through_the_engine(sqlite_url, amount, level, tier):
    from baton.engine import Engine
    from bpmn_builder import process

    engine = Engine(sqlite_url)
    engine.deploy(process('<bpmn:startEvent id="start"/>',
                          '<bpmn:businessRuleTask id="decide" camunda:decisionRef="tier"/>',
                          '<bpmn:endEvent id="end"/>', flows="start>decide decide>end"), TIERS)
    assert engine.start("p", {"amount": amount, "level": level}).data["tier"] == tier
    engine.close()
