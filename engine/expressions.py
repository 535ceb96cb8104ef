"""JUEL (Camunda 7) and FEEL (Camunda 8, DMN) expressions translated to Python source for the script sandbox."""

# Semantics kept deliberately simple, and where they differ from Camunda's:
# - Task data are dicts from JSON, so a path `order.total` reads `order["total"]`; a missing key or variable fails
#   when evaluated (an incident), where JUEL and FEEL would give null.
# - Comparisons with None raise at run time except `==`/`!=`, which become `is`/`is not` against a null literal.
#   `and`, `or`, `not` and `if` use Python truthiness, not FEEL's three-valued logic.
# - JUEL's `+` adds numbers and never joins strings, so a string literal next to `+` is refused (write a template
#   `Order ${id}` instead); between variables `+` stays Python's `+`. JUEL's `==` does not coerce ('1' == 1).
# - FEEL numbers become Python ints and floats (not decimals); FEEL's string `+` is Python's.
from __future__ import annotations

import ast
import keyword
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import NoReturn

log = logging.getLogger(__name__)

# Python precedence levels of emitted source, low to high.
IF, OR, AND, NOT, CMP, ADD, MUL, NEG, POW, ATOM = 2, 3, 4, 5, 6, 11, 12, 13, 14, 16
TOKEN = re.compile(r"""(?P<space>\s+)
    | (?P<num>\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)
    | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    | (?P<name>[^\W\d]\w*)
    | (?P<op>\*\*|\.\.|&&|\|\||==|!=|<=|>=|->|\+=|[-+*/%<>=!?:()\[\]{},.;])""", re.VERBOSE | re.DOTALL)
TEMPLATE = re.compile(r"\\?[$#]\{")
ESCAPES = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "'": "'", "\\": "\\"}
JUEL_WORDS = frozenset("and or not eq ne lt gt le ge true false null empty div mod instanceof".split())
JUEL_REFUSED = {"=": "assignment", "+=": "string concatenation operator '+='", "->": "lambda expression",
                ";": "statement separator ';'"}
ENGINE_NAMES = frozenset({"execution", "task", "variableScope"})  # Camunda 7 objects, not process variables
FEEL_WORDS = frozenset("and or not if then else for in return some every satisfies between instance of function "
                       "null true false".split())
LITERALS = frozenset({"num", "str", "null", "const"})
COMPARISONS = ("=", "!=", "<", "<=", ">", ">=")


class Untranslatable(ValueError):
    """An expression that cannot be turned into Python; the message names the construct in plain words."""

    def __init__(self, message: str, text: str = "") -> None:
        super().__init__(message)
        self.message, self.text = message, text


@dataclass(frozen=True)
class _Py:
    """Emitted Python source, its precedence, and what it is known to be (num, str, null, const, bool, list...)."""

    src: str
    prec: int = ATOM
    kind: str = ""


CONSTANTS = {"true": _Py("True", ATOM, "const"), "false": _Py("False", ATOM, "const"),
             "null": _Py("None", ATOM, "null")}


def to_python(text: str | None) -> str | None:
    """A modeller's expression as Python: `${...}`/`#{...}` is JUEL, `=...` is FEEL, anything else is Python already."""
    if text is None:
        return None
    stripped = text.strip()
    if stripped.startswith(("${", "#{")):
        return juel(stripped)
    if stripped.startswith("="):
        return feel(stripped)
    return text


def juel(text: str) -> str:
    """A JUEL expression `${...}` as Python; text around or without `${...}` is a template that builds a string."""
    parts: list[str | _Py] = []
    pos, literal = 0, ""
    while (found := TEMPLATE.search(text, pos)) is not None:
        literal += text[pos:found.start()]
        if found.group().startswith("\\"):          # `\${` is the text `${`
            literal += found.group()[1:]
            pos = found.end()
            continue
        tokens, pos = _lex(text, found.end(), "JUEL", template=True)
        parser = _Parser(tokens, text, "JUEL")
        if tokens[0][0] == "end":
            parser.refuse(f"expression {_quote(text[found.start():pos])}", "it is empty")
        parts += [literal, parser.parse(parser.juel)]
        literal = ""
    parts.append(literal + text[pos:])
    found_exprs = [p for p in parts if isinstance(p, _Py)]
    if len(found_exprs) == 1 and all(isinstance(p, _Py) or not p.strip() for p in parts):
        return _checked(found_exprs[0].src, "JUEL", text)
    pieces = [repr(p) if isinstance(p, str) else p.src if p.kind == "str" else f"str({p.src})" for p in parts if p]
    return _checked(" + ".join(pieces) or "''", "JUEL", text)


def feel(text: str) -> str:
    """A FEEL expression (the leading `=` of Camunda 8 optional) as Python."""
    source = text.strip()
    source = source[1:] if source.startswith("=") else source
    tokens, _ = _lex(source, 0, "FEEL")
    parser = _Parser(tokens, source, "FEEL")
    if tokens[0][0] == "end":
        parser.refuse(f"expression {_quote(text)}", "it is empty")
    return _checked(parser.parse(parser.feel).src, "FEEL", source)


def feel_unary_tests(text: str | None, input_name: str) -> str:
    """A DMN input entry (FEEL unary tests) as a Python condition on `input_name`, a Python expression."""
    source = (text or "").strip()
    if source in ("", "-"):
        return "True"
    tokens, _ = _lex(source, 0, "FEEL")
    parser = _Parser(tokens, source, "FEEL", subject=_subject(input_name), dmn=True)
    return _checked(parser.parse(parser.unary_tests).src, "FEEL", source)


def _subject(source: str) -> _Py:
    try:
        body = ast.parse(source.strip(), mode="eval").body
    except SyntaxError as exc:
        raise Untranslatable(f"the input expression {source!r} is not Python", source) from exc
    simple = isinstance(body, (ast.Name, ast.Attribute, ast.Subscript, ast.Call))
    return _Py(source.strip() if simple else f"({source.strip()})")


def _quote(text: str) -> str:
    """`text` quoted and shortened for a message."""
    return repr(text if len(text) <= 80 else text[:77] + "...")


def _checked(src: str, language: str, text: str) -> str:
    """`src` if it compiles as one Python expression: a last guard so that a translation never yields broken code."""
    try:
        ast.parse(src, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise Untranslatable(f"the {language} expression {_quote(text)} cannot be translated", text) from exc
    return src


def _lex(text: str, pos: int, language: str, *, template: bool = False) -> tuple[list[tuple[str, str, int]], int]:
    """Tokens (kind, text, offset) from `pos`; a template's expression ends at its unmatched `}`."""
    tokens: list[tuple[str, str, int]] = []
    depth = 0
    while pos < len(text):
        match = TOKEN.match(text, pos)
        if match is None:
            why = "the string is never closed" if text[pos] in "'\"" else f"unexpected character {text[pos]!r}"
            raise Untranslatable(f"the {language} expression {_quote(text)} cannot be translated: {why} "
                                 f"at position {pos + 1}", text)
        kind, value = match.lastgroup or "", match.group()
        if value == "{" and kind == "op":
            depth += 1
        elif value == "}" and kind == "op":
            if template and depth == 0:
                return [*tokens, ("end", "", pos)], match.end()
            depth -= 1
        if kind != "space":
            tokens.append((kind, value, pos))
        pos = match.end()
    if template:
        raise Untranslatable(f"the {language} expression {_quote(text)} cannot be translated: "
                             "its '${' is never closed", text)
    return [*tokens, ("end", "", pos)], pos


def _unquote(token: str, language: str) -> str:
    def escape(match: re.Match[str]) -> str:
        code = match.group(1)
        if language == "FEEL" and code.startswith("u"):
            return chr(int(code[1:], 16))
        if language == "FEEL" or code in "\\'\"":
            return ESCAPES.get(code, code)
        return "\\" + code                          # JUEL escapes only quotes and backslashes
    return re.sub(r"\\(u[0-9a-fA-F]{4}|.)", escape, token[1:-1], flags=re.DOTALL)


def _wrap(p: _Py, prec: int) -> str:
    return p.src if p.prec >= prec else f"({p.src})"


def _binary(left: _Py, op: str, right: _Py, prec: int, kind: str = "") -> _Py:
    if op == "**":                                  # Python's ** groups to the right
        return _Py(f"{_wrap(left, POW + 1)} ** {_wrap(right, NEG)}", POW, kind)
    return _Py(f"{_wrap(left, prec)} {op} {_wrap(right, prec + 1)}", prec, kind)


def _compare(left: _Py, op: str, right: _Py) -> _Py:
    if op in ("==", "!=") and "null" in (left.kind, right.kind) and not {left.kind, right.kind} & {"num", "str"}:
        # (`5 is None` would draw a SyntaxWarning)
        left, right = (right, left) if left.kind == "null" else (left, right)
        op = "is" if op == "==" else "is not"
    return _Py(f"{_wrap(left, CMP + 1)} {op} {_wrap(right, CMP + 1)}", CMP, "bool")


def _not(p: _Py) -> _Py:
    return _Py(f"not {_wrap(p, NOT)}", NOT, "bool")


def _neg(p: _Py) -> _Py:
    return _Py(f"-{_wrap(p, NEG)}", NEG, "num" if p.kind == "num" else "")


def _if(test: _Py, yes: _Py, no: _Py) -> _Py:
    return _Py(f"{_wrap(yes, OR)} if {_wrap(test, OR)} else {_wrap(no, IF)}", IF)


def _index(base: _Py, key: _Py | str) -> _Py:
    return _Py(f"{_wrap(base, ATOM)}[{key.src if isinstance(key, _Py) else key}]")


def _call(name: str, args: list[_Py], kind: str = "") -> _Py:
    return _Py(f"{name}({', '.join(_wrap(a, IF) for a in args)})", ATOM, kind)


def _method(base: _Py, name: str, args: list[_Py], kind: str = "") -> _Py:
    target = f"({base.src})" if base.kind == "num" else _wrap(base, ATOM)
    return _Py(f"{target}.{name}({', '.join(_wrap(a, IF) for a in args)})", ATOM, kind)


def _member(item: _Py, container: _Py, negated: bool = False) -> _Py:
    return _Py(f"{_wrap(item, CMP + 1)} {'not in' if negated else 'in'} {_wrap(container, CMP + 1)}", CMP, "bool")


def _between(low: _Py, low_op: str, subject: _Py, high_op: str, high: _Py) -> _Py:
    return _Py(f"{_wrap(low, CMP + 1)} {low_op} {_wrap(subject, CMP + 1)} {high_op} {_wrap(high, CMP + 1)}", CMP,
               "bool")


def _any_of(subject: _Py, tests: list[tuple[_Py, _Py | None]], negated: bool = False) -> _Py:
    """Tests joined by `or`; plain equalities with literals become one membership test."""
    literals = [value for _, value in tests if value is not None]
    if len(literals) == len(tests) and (len(literals) > 1 or negated):
        if len(literals) == 1:
            return _compare(subject, "!=", literals[0])
        return _member(subject, _Py(f"({', '.join(v.src for v in literals)})"), negated)
    joined = tests[0][0] if len(tests) == 1 else _Py(" or ".join(_wrap(t, AND) for t, _ in tests), OR, "bool")
    return _not(joined) if negated else joined


def _date(args: list[_Py]) -> _Py | None:
    if args[0].kind != "str":
        return None
    try:
        day = date.fromisoformat(ast.literal_eval(args[0].src))
    except ValueError:
        return None
    return _Py(f"date({day.year}, {day.month}, {day.day})")


# FEEL built-ins: name -> (fewest arguments, most arguments, Python). Only builtins the sandbox allows are emitted.
FUNCTIONS: dict[str, tuple[int, int, Callable[[list[_Py]], _Py | None]]] = {
    "not": (1, 1, lambda a: _not(a[0])),
    "count": (1, 1, lambda a: _call("len", a)),
    "sum": (1, 99, lambda a: _call("sum", a if len(a) == 1 else [_Py(f"[{', '.join(_wrap(x, IF) for x in a)}]")])),
    "min": (1, 99, lambda a: _call("min", a)),
    "max": (1, 99, lambda a: _call("max", a)),
    "abs": (1, 1, lambda a: _call("abs", a)),
    "floor": (1, 1, lambda a: _Py(f"int({_wrap(a[0], MUL)} // 1)")),
    "ceiling": (1, 1, lambda a: _Py(f"-int(-{_wrap(a[0], NEG)} // 1)", NEG)),
    "decimal": (2, 2, lambda a: _call("round", a)),
    "string": (1, 1, lambda a: _call("str", a, "")),
    "string length": (1, 1, lambda a: _call("len", a)),
    "contains": (2, 2, lambda a: _member(a[1], a[0])),
    "list contains": (2, 2, lambda a: _member(a[1], a[0])),
    "starts with": (2, 2, lambda a: _method(a[0], "startswith", a[1:], "bool")),
    "ends with": (2, 2, lambda a: _method(a[0], "endswith", a[1:], "bool")),
    "upper case": (1, 1, lambda a: _method(a[0], "upper", [])),
    "lower case": (1, 1, lambda a: _method(a[0], "lower", [])),
    "date": (1, 1, _date),
    "string join": (1, 2, lambda a: _Py(f"{a[1].src if len(a) > 1 else repr('')}.join([item for item in "
                                        f"{_wrap(a[0], IF)} if item is not None])", ATOM, "str")),
    "now": (0, 0, lambda a: _Py("now()")),  # the engine's clock: a datetime with its zone
    "today": (0, 0, lambda a: _Py("now().date()")),
}


class _Parser:
    """Recursive descent over one expression's tokens, emitting Python source as it goes."""

    def __init__(self, tokens: list[tuple[str, str, int]], text: str, language: str, *, subject: _Py | None = None,
                 dmn: bool = False) -> None:
        self.tokens, self.text, self.language, self.i = tokens, text, language, 0
        self.subject, self.dmn, self.used_subject = subject, dmn, False    # the DMN input value that `?` stands for
        self.bound: frozenset[str] = frozenset()    # names bound by some/every/for
        self.in_filter = False
        self.names: list[str] = []                  # variables read, in order

    # Tokens and errors

    @property
    def tok(self) -> tuple[str, str, int]:
        return self.tokens[self.i]

    def at(self, *values: str, ahead: int = 0) -> bool:
        kind, value, _ = self.tokens[min(self.i + ahead, len(self.tokens) - 1)]
        return kind in ("op", "name") and value in values

    def next(self) -> str:
        value = self.tokens[self.i][1]
        self.i = min(self.i + 1, len(self.tokens) - 1)
        return value

    def take(self, value: str) -> None:
        if not self.at(value):
            self.unexpected(repr(value))
        self.next()

    def refuse(self, construct: str, why: str = "") -> NoReturn:
        message = f"the {self.language} {construct} cannot be translated" + (f": {why}" if why else "")
        raise Untranslatable(message, self.text)

    def unexpected(self, wanted: str = "") -> NoReturn:
        kind, value, pos = self.tok
        if self.language == "JUEL" and kind == "op" and value in JUEL_REFUSED:
            self.refuse(f"{JUEL_REFUSED[value]} in {self.quoted}")
        if self.language == "JUEL" and value == "instanceof":
            self.refuse(f"type test 'instanceof' in {self.quoted}")
        found = "the end" if kind == "end" else f"{value!r} at position {pos + 1}"
        self.refuse(f"expression {self.quoted}", f"expected {wanted} but found {found}" if wanted
                    else "it ends too early" if kind == "end" else f"unexpected {found}")

    @property
    def quoted(self) -> str:
        return _quote(self.text)

    def span(self, start: int, end: int) -> str:
        """The source text of tokens start..end-1."""
        last = self.tokens[max(end - 1, start)]
        return self.text[self.tokens[start][2]:last[2] + len(last[1])]

    def matching(self, i: int) -> int:
        """The index after the bracket closing the one at `i`."""
        depth = 0
        for j in range(i, len(self.tokens)):
            kind, value, _ = self.tokens[j]
            depth += kind == "op" and value in "([{"
            depth -= kind == "op" and value in ")]}"
            if depth == 0:
                return j + 1
        return len(self.tokens) - 1

    def parse(self, rule: Callable[[], _Py]) -> _Py:
        try:
            result = rule()
        except RecursionError:
            self.refuse(f"expression {self.quoted}", "it is nested too deeply")
        if self.tok[0] != "end":
            self.unexpected()
        return result

    def string(self, value: str) -> str:
        # SpiffWorkflow's DMN engine replaces every '?' outside quotes, and it misreads quotes in quotes.
        return repr(value).replace("?", "\\x3f") if self.dmn else repr(value)

    def number(self, text: str) -> _Py:
        self.next()
        if text.isdigit():
            return _Py(str(int(text)), ATOM, "num")
        if not math.isfinite(value := float(text)):
            self.refuse(f"number {text}", "it is too large")
        return _Py(repr(value), ATOM, "num")

    def variable(self, name: str) -> _Py:
        if keyword.iskeyword(name):
            self.refuse(f"name {name!r}", "it is a reserved word in Python: rename the variable")
        self.names.append(name)
        if self.in_filter and name != "item" and name not in self.bound:   # FEEL reads the element's entries first
            key = self.string(name)
            return _Py(f"item[{key}] if isinstance(item, dict) and {key} in item else {name}", IF)
        return _Py(name)

    def level(self, operand: Callable[[], _Py], ops: dict[str, str], combine: Callable[[_Py, str, _Py], _Py]) -> _Py:
        """A left-associative run of binary operators."""
        left = operand()
        while self.tok[0] in ("op", "name") and self.tok[1] in ops:
            op = ops[self.next()]
            left = combine(left, op, operand())
        return left

    # JUEL, by the EL specification's precedence

    def juel(self) -> _Py:
        test = self.juel_or()
        if not self.at("?"):
            return test
        self.next()
        yes = self.juel()
        self.take(":")
        return _if(test, yes, self.juel())

    def juel_or(self) -> _Py:
        return self.level(self.juel_and, {"||": "or", "or": "or"}, lambda a, op, b: _binary(a, op, b, OR, "bool"))

    def juel_and(self) -> _Py:
        return self.level(self.juel_eq, {"&&": "and", "and": "and"}, lambda a, op, b: _binary(a, op, b, AND, "bool"))

    def juel_eq(self) -> _Py:
        return self.level(self.juel_rel, {"==": "==", "!=": "!=", "eq": "==", "ne": "!="}, _compare)

    def juel_rel(self) -> _Py:
        ops = {"<": "<", ">": ">", "<=": "<=", ">=": ">=", "lt": "<", "gt": ">", "le": "<=", "ge": ">="}
        return self.level(self.juel_add, ops, _compare)

    def juel_add(self) -> _Py:
        start, left = self.i, self.juel_mul()
        while self.at("+", "-"):
            op = self.next()
            right = self.juel_mul()
            if op == "+" and "str" in (left.kind, right.kind):
                self.refuse(f"string concatenation {self.span(start, self.i)!r}",
                            "JUEL's '+' adds numbers; write a template such as 'Order ${id}' instead")
            left = _binary(left, op, right, ADD)
        return left

    def juel_mul(self) -> _Py:
        ops = {"*": "*", "/": "/", "div": "/", "%": "%", "mod": "%"}
        return self.level(self.juel_unary, ops, lambda a, op, b: _binary(a, op, b, MUL))

    def juel_unary(self) -> _Py:
        if self.at("-"):
            self.next()
            return _neg(self.juel_unary())
        if self.at("!", "not"):
            self.next()
            if self.at("empty"):
                self.next()
                return _member(self.juel_unary(), _Py("(None, '', [], {})"), negated=True)
            return _not(self.juel_unary())
        if self.at("empty"):
            self.next()
            return _member(self.juel_unary(), _Py("(None, '', [], {})"))
        return self.juel_postfix()

    def juel_postfix(self) -> _Py:
        start, value = self.i, self.juel_primary()
        while True:
            if self.at(".", "[") and value.kind in LITERALS:
                self.refuse(f"property of the literal {self.span(start, self.i)!r}")
            if self.at("."):
                self.next()
                if self.tok[0] != "name":
                    self.unexpected("a property name")
                value = _index(value, self.string(self.next()))
            elif self.at("["):
                self.next()
                key = self.juel()
                self.take("]")
                value = _index(value, key)
            elif self.at("("):
                self.refuse(f"method call {self.span(start, self.matching(self.i))!r}",
                            "Baton evaluates data, not Java objects")
            else:
                return value

    def juel_primary(self) -> _Py:
        kind, value, _ = self.tok
        start = self.i
        if kind == "num":
            return self.number(value)
        if kind == "str":
            self.next()
            return _Py(self.string(_unquote(value, "JUEL")), ATOM, "str")
        if kind == "name":
            if value in CONSTANTS:
                self.next()
                return CONSTANTS[value]
            if value in ENGINE_NAMES:
                end = self.i + 1
                while self.at(".", ahead=end - self.i) or self.at("(", "[", ahead=end - self.i):
                    end = end + 2 if self.at(".", ahead=end - self.i) else self.matching(end)
                self.refuse(f"reference to the Camunda engine {self.span(start, end)!r}", "use process variables")
            if self.at(":", ahead=1) and self.tokens[self.i + 2][0] == "name" and self.at("(", ahead=3):
                self.refuse(f"function {self.span(start, self.matching(self.i + 3))!r}")
            if self.at("(", ahead=1):
                self.refuse(f"function call {self.span(start, self.matching(self.i + 1))!r}")
            if value in JUEL_WORDS:
                self.unexpected()
            self.next()
            return self.variable(value)
        if self.at("("):
            self.next()
            inner = self.juel()
            self.take(")")
            return inner
        if self.at("[", "{"):
            self.refuse(f"collection literal {self.span(start, self.matching(self.i))!r}")
        self.unexpected()

    # FEEL, by the DMN 1.3 grammar

    def feel(self) -> _Py:
        if self.at("if"):
            self.next()
            test = self.feel()
            self.take("then")
            yes = self.feel()
            self.take("else")
            return _if(test, yes, self.feel())
        if self.at("some", "every"):
            fn = "any" if self.next() == "some" else "all"
            clauses, body = self.contexts("satisfies")
            return _Py(f"{fn}({_wrap(body, OR)} {clauses})", ATOM, "bool")
        if self.at("for"):
            self.next()
            clauses, body = self.contexts("return")
            return _Py(f"[{_wrap(body, OR)} {clauses}]", ATOM, "list")
        return self.level(self.feel_and, {"or": "or"}, lambda a, op, b: _binary(a, op, b, OR, "bool"))

    def contexts(self, keyword_: str) -> tuple[str, _Py]:
        """`x in xs, y in ys` up to `keyword_`, then the body: comprehension clauses and the body's Python."""
        clauses, outer, start = [], self.bound, self.i
        while True:
            kind, name, _ = self.tok
            if kind != "name" or name in FEEL_WORDS:
                self.unexpected("a name")
            self.next()
            self.take("in")
            source = self.feel_add()
            if self.at(".."):
                self.refuse(f"range in {self.span(start, self.i + 2)!r}", "iterate over a list instead")
            self.variable(name)
            clauses.append(f"for {name} in {_wrap(source, OR)}")
            self.bound |= {name}
            if not self.at(","):
                break
            self.next()
        self.take(keyword_)
        body = self.feel()
        self.bound = outer
        return " ".join(clauses), body

    def feel_and(self) -> _Py:
        return self.level(self.feel_cmp, {"and": "and"}, lambda a, op, b: _binary(a, op, b, AND, "bool"))

    def feel_cmp(self) -> _Py:
        left = self.feel_add()
        if self.at(*COMPARISONS):
            op = self.next()
            result = _compare(left, "==" if op == "=" else op, self.feel_add())
        elif self.at("between"):
            self.next()
            low = self.feel_add()
            self.take("and")
            result = _between(low, "<=", left, "<=", self.feel_add())
        elif self.at("in"):
            self.next()
            result = self.membership(left)
        elif self.at("instance"):
            self.refuse(f"type test 'instance of' in {self.quoted}")
        else:
            return left
        if self.at(*COMPARISONS, "between", "in"):
            self.refuse(f"chained comparison in {self.quoted}", "compare two values at a time and join with 'and'")
        return result

    def membership(self, subject: _Py) -> _Py:
        """`subject in ...`: the right side is one unary test, or a parenthesized list of them."""
        outer, self.subject = self.subject, subject
        try:
            if self.at("(") and not self.interval_ahead():
                self.next()
                tests = self.positive_tests()
                self.take(")")
                return _any_of(subject, tests)
            return self.positive_test(lists=True)[0]
        finally:
            self.subject = outer

    def feel_add(self) -> _Py:
        return self.level(self.feel_mul, {"+": "+", "-": "-"}, lambda a, op, b: _binary(
            a, op, b, ADD, "str" if a.kind == b.kind == "str" else ""))

    def feel_mul(self) -> _Py:
        return self.level(self.feel_pow, {"*": "*", "/": "/"}, lambda a, op, b: _binary(a, op, b, MUL))

    def feel_pow(self) -> _Py:
        return self.level(self.feel_unary, {"**": "**"}, lambda a, op, b: _binary(a, op, b, POW))

    def feel_unary(self) -> _Py:
        if self.at("-"):
            self.next()
            return _neg(self.feel_unary())
        return self.feel_postfix()

    def feel_postfix(self) -> _Py:
        start, value = self.i, self.feel_primary()
        while True:
            filter_here = self.at("[") and not self.at(",", ")", ahead=1) and self.tokens[self.i + 1][0] != "end"
            if (self.at(".") or filter_here) and value.kind in LITERALS:
                self.refuse(f"path or filter on the literal {self.span(start, self.i)!r}")
            if self.at("."):
                self.next()
                if self.tok[0] != "name":
                    self.unexpected("a name")
                key = self.string(self.next())
                if self.tok[0] == "name" and self.tok[1] not in FEEL_WORDS:
                    self.refuse(f"name with spaces in {self.span(start, self.i + 1)!r}",
                                "rename the entry without spaces")
                value = _Py(f"[item[{key}] for item in {_wrap(value, OR)}]", ATOM, "list") \
                    if value.kind == "list" else _index(value, key)
            elif filter_here:                       # (not the `[` closing an interval such as `]1..10[`)
                self.next()
                outer = self.in_filter, self.bound
                self.in_filter, self.bound = True, self.bound - {"item"}
                try:
                    condition = self.feel()
                finally:
                    self.in_filter, self.bound = outer
                self.take("]")
                value = self.filtered(value, condition, start)
            elif self.at("("):
                self.refuse(f"call {self.span(start, self.matching(self.i))!r}",
                            "only built-in functions are supported")
            else:
                return value

    def filtered(self, base: _Py, condition: _Py, start: int) -> _Py:
        if condition.kind == "num" and re.fullmatch(r"-?\d+", condition.src) and int(condition.src) != 0:
            index = int(condition.src)
            return _index(base, str(index - 1 if index > 0 else index))   # FEEL counts from 1, -1 is the last
        if condition.kind in ("bool", "const"):
            return _Py(f"[item for item in {_wrap(base, OR)} if {_wrap(condition, OR)}]", ATOM, "list")
        self.refuse(f"filter {self.span(start, self.i)!r}",
                    "use a condition such as 'item > 10' or a whole-number position from 1")

    def feel_primary(self) -> _Py:
        kind, value, _ = self.tok
        start = self.i
        if kind == "num":
            return self.number(value)
        if kind == "str":
            self.next()
            return _Py(self.string(_unquote(value, "FEEL")), ATOM, "str")
        if self.at("?"):
            if self.subject is None:
                self.refuse("'?'", "it stands for the input value only in a decision table's input entry")
            self.next()
            self.used_subject = True
            return self.subject
        if self.at("if", "some", "every", "for"):
            return self.feel()
        if kind == "name":
            if value in CONSTANTS:
                self.next()
                return CONSTANTS[value]
            if value == "date" and self.at("and", ahead=1) and self.at("time", ahead=2):
                self.refuse(f"function {self.span(start, self.matching(self.i + 3))!r}")
            if value == "function":
                self.refuse(f"function definition in {self.quoted}")
            if value == "not" and not self.at("(", ahead=1):
                self.refuse(f"'not' without parentheses in {self.quoted}", "FEEL writes it as a function: not(x)")
            words: list[str] = []
            while self.tokens[self.i + len(words)][0] == "name" and self.tokens[self.i + len(words)][1] not in \
                    FEEL_WORDS - {"not"}:
                words.append(self.tokens[self.i + len(words)][1])
            for n in range(len(words), 0, -1):
                if self.at("(", ahead=n) and (n == 1 or " ".join(words[:n]) in FUNCTIONS):
                    return self.call(" ".join(words[:n]), start, n)
            if len(words) > 1:
                self.refuse(f"name {' '.join(words)!r} with spaces", "rename the variable without spaces")
            if value in FEEL_WORDS:
                self.unexpected()
            self.next()
            return self.variable(value)
        if self.at("("):
            self.next()
            inner = self.feel()
            self.take(")")
            return inner
        if self.at("["):
            return _Py(f"[{', '.join(_wrap(item, IF) for item in self.items('[', ']', self.feel))}]", ATOM, "list")
        if self.at("{"):
            return self.context()
        self.unexpected()

    def items(self, opening: str, closing: str, item: Callable[[], _Py]) -> list[_Py]:
        self.take(opening)
        found = []
        while not self.at(closing):
            found.append(item())
            if not self.at(","):
                break
            self.next()
        self.take(closing)
        return found

    def call(self, name: str, start: int, words: int) -> _Py:
        if name not in FUNCTIONS:
            self.refuse(f"function {self.span(start, self.matching(self.i + words))!r}", "supported are " +
                        ", ".join(f"{n}()" for n in FUNCTIONS))
        self.i += words
        if self.tokens[self.i + 1][0] == "name" and self.at(":", ahead=2):
            self.refuse(f"named arguments in {self.span(start, self.matching(self.i))!r}")
        args = self.items("(", ")", self.feel)
        fewest, most, emit = FUNCTIONS[name]
        result = emit(args) if fewest <= len(args) <= most else None
        if result is None:
            self.refuse(f"call {self.span(start, self.i)!r}", "date() takes a literal date such as \"2026-01-31\""
                        if name == "date" else "wrong number of arguments")
        return result

    def context(self) -> _Py:
        self.take("{")
        keys: list[str] = []
        entries = []
        while not self.at("}"):
            kind, value, _ = self.tok
            if kind == "str":
                key = _unquote(self.next(), "FEEL")
            elif kind == "name":
                words = []
                while self.tok[0] == "name":
                    words.append(self.next())
                key = " ".join(words)
            else:
                self.unexpected("a key")
            self.take(":")
            mark = len(self.names)
            entry = self.feel()
            if used := sorted(set(self.names[mark:]) & set(keys)):
                self.refuse(f"context entry {key!r} that reads the entry {used[0]!r}", "compute it outside")
            keys.append(key)
            entries.append(f"{self.string(key)}: {_wrap(entry, IF)}")
            if not self.at(","):
                break
            self.next()
        self.take("}")
        return _Py("{" + ", ".join(entries) + "}", ATOM, "dict")

    # FEEL unary tests (DMN input entries)

    def unary_tests(self) -> _Py:
        assert self.subject is not None
        if self.at("not") and self.at("(", ahead=1):
            self.next()
            self.next()
            tests = self.positive_tests()
            self.take(")")
            return _any_of(self.subject, tests, negated=True)
        return _any_of(self.subject, self.positive_tests())

    def positive_tests(self, lists: bool = False) -> list[tuple[_Py, _Py | None]]:
        tests = [self.positive_test(lists)]
        while self.at(","):
            self.next()
            tests.append(self.positive_test(lists))
        return tests

    def positive_test(self, lists: bool = False) -> tuple[_Py, _Py | None]:
        """One test of the subject, and the literal it must equal if that is all it checks."""
        subject = self.subject
        assert subject is not None
        if self.at(*COMPARISONS):
            op = self.next()
            endpoint = self.feel_add()
            literal = endpoint if op == "=" and endpoint.kind in LITERALS else None
            return _compare(subject, "==" if op == "=" else op, endpoint), literal
        if self.at("]") or (self.at("[", "(") and self.interval_ahead()):
            opening = self.next()
            low = self.feel_add()
            self.take("..")
            high = self.feel_add()
            if not self.at("]", ")", "["):
                self.unexpected("']', ')' or '['")
            closing = self.next()
            return _between(low, "<=" if opening == "[" else "<", subject, "<=" if closing == "]" else "<", high), None
        outer, self.used_subject = self.used_subject, False
        test = self.feel()
        used, self.used_subject = self.used_subject, outer or self.used_subject
        if used:                                    # `? > 5 and ? < 10`
            return test, None
        if test.kind in LITERALS:
            return _compare(subject, "==", test), test
        if test.kind == "list" or (lists and test.kind != "bool"):
            return _member(subject, test), None
        if test.kind == "bool":                     # FEEL: a test that is true matches, else compare
            return _Py(f"{_wrap(test, OR)} or {_compare(subject, '==', test).src}", OR, "bool"), None
        return _compare(subject, "==", test), None

    def interval_ahead(self) -> bool:
        """Whether the bracket here opens an interval `[a..b]` rather than a list or parentheses."""
        i, names, used = self.i, len(self.names), self.used_subject
        try:
            self.next()
            self.feel_add()
            return self.at("..")
        except Untranslatable:
            return False
        finally:
            self.i, self.used_subject = i, used
            del self.names[names:]
