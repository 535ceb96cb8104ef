"""Sandbox for scripts and expressions from uploaded diagrams: a static check, an in-process fast path for simple
expressions, and a pool of limited child processes for everything else (see docs/sandbox.md)."""
from __future__ import annotations

import ast
import io
import logging
import os
import pickle
import select
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from types import CodeType
from typing import Any, NoReturn

from SpiffWorkflow.bpmn.script_engine.python_environment import BasePythonScriptEngineEnvironment

from ._sandbox_child import CLASSES, HEADER, line_of

log = logging.getLogger(__name__)

CHILD = str(Path(__file__).with_name("_sandbox_child.py"))
NAMES = frozenset("open exec eval compile getattr setattr delattr hasattr globals locals vars dir breakpoint input "
                  "help exit quit memoryview super classmethod staticmethod property".split())
ATTRIBUTES = frozenset({"format", "format_map", "mro"})
FRAME_PREFIXES = ("gi_", "cr_", "ag_", "f_", "tb_", "co_")   # generator and frame internals lead to real globals
NODES = {ast.Import: "imports are", ast.ImportFrom: "imports are", ast.ClassDef: "class definitions are",
         ast.AsyncFunctionDef: "async code is", ast.Await: "async code is", ast.AsyncFor: "async code is",
         ast.AsyncWith: "async code is"}
BINDINGS = {ast.Name: "id", ast.arg: "arg", ast.FunctionDef: "name", ast.ExceptHandler: "name", ast.MatchAs: "name",
            ast.MatchStar: "name", ast.MatchMapping: "rest"}
UNPICKLABLE = CLASSES | {"builtins.complex", "builtins.set", "builtins.frozenset", "builtins.bytearray"}


class ScriptError(Exception):
    """A script or expression failed, was refused, or exceeded a limit."""

    def __init__(self, message: str, *, line: int | None = None, error_type: str = "ScriptError") -> None:
        super().__init__(message)
        self.message, self.line, self.error_type = message, line, error_type


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if f"{module}.{name}" not in UNPICKLABLE:
            raise pickle.UnpicklingError(f"{module}.{name} is not plain data")
        return super().find_class(module, name)


def unpickle(data: bytes) -> Any:
    """Unpickle output of a child, allowing only containers, scalars, Decimal, dates and times, and UUID."""
    return _Unpickler(io.BytesIO(data)).load()


def _frame(message: Any) -> bytes:
    body = pickle.dumps(message, protocol=5)
    return HEADER.pack(len(body)) + body


def _refusal(node: ast.AST) -> str | None:
    if type(node) in NODES:
        return NODES[type(node)]
    if isinstance(node, ast.Attribute):
        return _attribute(node.attr)
    if isinstance(node, ast.MatchClass):       # `case tuple(__class__=c)` reads an attribute
        return next(filter(None, map(_attribute, node.kwd_attrs)), None)
    name = getattr(node, BINDINGS.get(type(node), ""), None)
    if name and name != "_" and name.startswith("_"):
        return f"names starting with '_' ({name}) are"
    return f"'{name}' is" if isinstance(node, ast.Name) and name in NAMES else None


def _attribute(name: str) -> str | None:
    if name.startswith("_"):
        return f"names starting with '_' ({name}) are"
    return f"'.{name}' is" if name in ATTRIBUTES or name.startswith(FRAME_PREFIXES) else None


def check(source: str, mode: str = "exec") -> list[tuple[int, str]]:
    """Lines and messages of syntax errors and forbidden constructs in `source`, without running it."""
    return list(_problems(source, mode))


@lru_cache(maxsize=4096)
def _problems(source: str, mode: str) -> tuple[tuple[int, str], ...]:
    where = "scripts" if mode == "exec" else "expressions"
    try:
        tree = ast.parse(source, mode=mode)
    except SyntaxError as exc:
        return ((exc.lineno or 1, f"SyntaxError: {exc.msg}"),)
    except (ValueError, RecursionError, MemoryError) as exc:
        return ((1, f"SyntaxError: {exc}"),)
    found = sorted((getattr(node, "lineno", 1), getattr(node, "end_col_offset", 0), why)
                   for node in ast.walk(tree) if (why := _refusal(node)))
    return tuple(dict.fromkeys((line, f"{why} not allowed in {where}") for line, _, why in found))


@lru_cache(maxsize=4096)
def _fast_code(expression: str, host: frozenset[str]) -> CodeType | None:
    """Compiled `expression` if it is safe to eval in this process, else None."""
    try:
        fast = _fast(ast.parse(expression, mode="eval"), host)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    return compile(expression, "<expression>", "eval") if fast else None


def _fast(node: ast.AST, host: frozenset[str]) -> bool:
    """Whether an expression only reads data, compares, adds and calls host functions: safe to eval in-process."""
    def ok(*nodes: ast.AST | None) -> bool:
        return all(n is not None and _fast(n, host) for n in nodes)
    match node:
        case ast.Expression(body=body):
            return ok(body)
        case ast.Constant():
            return True
        case ast.Name(id=name):
            return not name.startswith("_")
        case ast.Compare(left=left, comparators=rest):
            return ok(left, *rest)
        case ast.BoolOp(values=values) | ast.List(elts=values) | ast.Tuple(elts=values) | ast.Set(elts=values):
            return ok(*values)
        case ast.UnaryOp(op=ast.Not() | ast.USub(), operand=operand):
            return ok(operand)
        case ast.BinOp(op=ast.Add() | ast.Sub(), left=left, right=right):
            return ok(left, right)
        case ast.Subscript(value=value, slice=ast.Constant()):
            return ok(value)
        case ast.Dict(keys=keys, values=values):
            return ok(*keys, *values)
        case ast.IfExp(test=test, body=body, orelse=orelse):
            return ok(test, body, orelse)
        case ast.Call(func=ast.Name(id=name), args=args, keywords=keywords) if name in host:
            return ok(*args) and all(k.arg and ok(k.value) for k in keywords)
    return False


class _Child:
    """One persistent interpreter with its own memory limit, spoken to over pipes in length-prefixed pickle frames."""

    def __init__(self, memory: int, timeout: float) -> None:
        self.proc = subprocess.Popen([sys.executable, "-I", "-S", CHILD, str(memory), str(timeout)], env={}, cwd="/",
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)
        self.poll = select.poll()
        self.poll.register(self.proc.stdout.fileno(), select.POLLIN)
        try:
            if self.recv(time.monotonic() + 30) != "ready":
                raise ScriptError("the script process did not start", error_type="Crash")
        except BaseException:
            self.kill()
            raise

    def send(self, frame: bytes) -> None:
        view = memoryview(frame)
        try:
            while view:
                view = view[os.write(self.proc.stdin.fileno(), view):]
        except BrokenPipeError:
            raise self._stopped() from None

    def _read(self, size: int, deadline: float) -> bytes | None:
        buf = bytearray()
        while len(buf) < size:
            wait = deadline - time.monotonic()
            if wait <= 0 or not self.poll.poll(wait * 1000 + 1):     # waiting in poll() releases the GIL
                return None
            chunk = os.read(self.proc.stdout.fileno(), size - len(buf))
            if not chunk:
                raise self._stopped()
            buf += chunk
        return bytes(buf)

    def recv(self, deadline: float) -> Any:
        """The next message, or None at the deadline."""
        head = self._read(HEADER.size, deadline)
        body = head and self._read(HEADER.unpack(head)[0], deadline)
        return None if body is None else unpickle(body)

    def _stopped(self) -> ScriptError:
        return ScriptError(f"the script process stopped (exit code {self.proc.wait()})", error_type="Crash")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.proc.stdin.close()
        self.proc.stdout.close()


class _Pool:
    """Up to `size` children; each call has one to itself."""

    def __init__(self, size: int, memory: int, timeout: float) -> None:
        self.size, self.memory, self.timeout = size, memory, timeout
        self.idle: list[_Child] = []
        self.count, self.closed, self.pid = 0, False, os.getpid()
        self.ready = threading.Condition()

    def take(self) -> _Child:
        with self.ready:
            if self.pid != os.getpid():         # forked (e.g. gunicorn --preload): the children belong to the parent
                self.idle, self.count, self.pid = [], 0, os.getpid()
            while not self.idle and self.count >= self.size and not self.closed:
                self.ready.wait()
            if self.closed:
                raise ScriptError("the sandbox is closed", error_type="Closed")
            if self.idle:
                return self.idle.pop()
            self.count += 1
        try:
            return _Child(self.memory, self.timeout)     # spawned outside the lock: other threads keep going
        except BaseException:
            self.give(None)
            raise

    def give(self, child: _Child | None, healthy: bool = False) -> None:
        with self.ready:
            if child and healthy and not self.closed:
                self.idle.append(child)
            else:
                self.count -= 1
            self.ready.notify()
        if child and (not healthy or self.closed):
            child.kill()

    def close(self) -> None:
        """Kill the idle children now; a busy one dies when its call ends (at the latest at the time limit)."""
        with self.ready:
            self.closed, idle, self.idle = True, self.idle, []
            self.ready.notify_all()
        for child in idle:
            child.kill()


class Sandbox:
    """Runs untrusted scripts and expressions; `functions` are trusted host callables that run in this process."""

    def __init__(self, functions: Mapping[str, Callable] | None = None, *, timeout: float | None = None,
                 memory: int | None = None, size: int | None = None) -> None:
        self.functions = dict(functions or {})
        self.timeout = timeout or float(os.environ.get("BATON_SCRIPT_TIMEOUT", "1.0"))
        self.memory = memory or int(float(os.environ.get("BATON_SCRIPT_MEMORY", "256")) * 2**20)
        self._host = {name: _guard(name, fn) for name, fn in self.functions.items()}
        self._pool = _Pool(size or os.cpu_count() or 2, self.memory, self.timeout)
        self._names = frozenset(self.functions)
        self._close = weakref.finalize(self, self._pool.close)    # also runs at interpreter exit

    def execute(self, script: str, data: dict[str, Any]) -> dict[str, Any]:
        """Run `script` on a copy of `data` in a child process and return the resulting data."""
        if clash := sorted(self.functions.keys() & data.keys()):
            raise ScriptError(f"the data variable {clash[0]!r} hides the function of that name", error_type="NameClash")
        return self._run("exec", script, data)

    def evaluate(self, expression: str, data: Mapping[str, Any]) -> Any:
        """The value of `expression` over `data`: in this process if it is simple, else in a child."""
        code = _fast_code(expression, self._names)
        if code is None:
            return self._run("eval", expression, data)
        try:
            return eval(code, {**data, **self._host, "__builtins__": {}})
        except ScriptError as exc:             # from a host function
            exc.line = line_of(exc, "<expression>")
            raise
        except Exception as exc:
            name = type(exc).__name__
            raise ScriptError(f"{name}: {exc}", line=line_of(exc, "<expression>"), error_type=name) from exc

    def check(self, source: str, mode: str = "exec") -> list[tuple[int, str]]:
        """Lines and messages of syntax errors and forbidden constructs in `source`."""
        return check(source, mode)

    def close(self) -> None:
        """Kill the child processes; calls afterwards raise ScriptError."""
        self._close()

    def _run(self, mode: str, source: str, data: Mapping[str, Any]) -> Any:
        what = "script" if mode == "exec" else "expression"
        if problems := _problems(source, mode):
            line, message = problems[0]
            kind = "SyntaxError" if message.startswith("SyntaxError") else "Forbidden"
            raise ScriptError(message, line=line, error_type=kind)
        try:
            request = _frame(("run", mode, source, dict(data), sorted(self._names)))
        except Exception as exc:
            raise ScriptError(f"the data cannot be passed to the {what}: {exc}", error_type="DataError") from exc
        child, healthy = self._pool.take(), False
        try:
            reply = self._talk(child, request, what)
            healthy = reply[0] == "ok" or reply[1] != "MemoryError"
        finally:
            self._pool.give(child, healthy)
        if reply[0] == "ok":
            return reply[1]
        _, kind, line, message = reply
        if kind == "MemoryError":
            message = f"the {what} exceeded the memory limit of {self.memory / 2**20:g} MB"
        raise ScriptError(message, line=line, error_type=kind)

    def _talk(self, child: _Child, request: bytes, what: str) -> tuple:
        child.send(request)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                message = child.recv(deadline)
            except pickle.UnpicklingError as exc:
                raise ScriptError(f"the {what} returned data that is not allowed: {exc}",
                                  error_type="DataError") from exc
            if message is None:
                raise ScriptError(f"the {what} exceeded the time limit of {self.timeout:g} s", error_type="Timeout")
            if message[0] != "call":
                return message
            started = time.monotonic()
            child.send(self._serve(*message[1:]))
            deadline += time.monotonic() - started          # time spent in host functions is not the script's

    def _serve(self, name: str, args: tuple, kwargs: dict) -> bytes:
        try:
            return _frame(("return", self.functions[name](*args, **kwargs)))
        except Exception as exc:
            log.info("script function %s failed: %r", name, exc)
            return _frame(("raise", f"{name}() failed: {type(exc).__name__}: {exc}"))


def _guard(name: str, fn: Callable) -> Callable:
    """`fn` for the fast path, its failures turned into ScriptError naming it."""
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            message = f"HostError: {name}() failed: {type(exc).__name__}: {exc}"
            raise ScriptError(message, error_type="HostError") from exc
    return call


class SandboxEnvironment(BasePythonScriptEngineEnvironment):
    """Adapter so SpiffWorkflow's PythonScriptEngine(environment=SandboxEnvironment(sandbox)) runs everything through
    the sandbox."""

    def __init__(self, sandbox: Sandbox) -> None:
        super().__init__()
        self.sandbox = sandbox

    def evaluate(self, expression: str, context: dict, external_context: dict | None = None) -> Any:
        return self.sandbox.evaluate(expression, {**(external_context or {}), **context})

    def execute(self, script: str, context: dict, external_context: dict | None = None) -> bool:
        external = external_context or {}
        try:
            result = self.sandbox.execute(script, {**external, **context})
        except ScriptError as exc:
            _raise_at_line(exc)
        context.clear()
        context.update((k, v) for k, v in result.items() if k not in external)
        return True

    def call_service(self, context: dict, **kwargs: Any) -> Any:
        raise NotImplementedError("service tasks are not run by the script sandbox")


def _raise_at_line(exc: ScriptError) -> NoReturn:
    """Re-raise `exc` from a frame named '<string>' at its line: PythonScriptEngine reads the line from there."""
    if exc.line is None:
        raise exc
    code = compile("\n" * (exc.line - 1) + "raise exc", "<string>", "exec")
    exec(code, {"exc": exc})
