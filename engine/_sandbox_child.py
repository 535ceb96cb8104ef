"""Child process of the script sandbox: runs untrusted scripts and expressions one at a time under OS limits."""
# Started as a file (`python -I -S _sandbox_child.py MEMORY TIMEOUT`), so it imports only the standard library and
# never the engine. scripting.py imports the constants below; nothing here runs on import.
from __future__ import annotations

import builtins
import datetime
import decimal
import os
import pickle
import resource
import struct
import sys
from typing import Any

HEADER = struct.Struct(">I")
SCALARS = frozenset({type(None), bool, int, float, complex, str, bytes})
CONTAINERS = frozenset({list, tuple, set, frozenset, dict})
CLASSES = frozenset({"decimal.Decimal", "datetime.date", "datetime.datetime", "datetime.time", "datetime.timedelta",
                     "datetime.timezone", "uuid.UUID"})
SAFE_NAMES = ("abs all any bool bytes chr dict divmod enumerate filter float frozenset int isinstance iter len list "
              "map max min next ord pow range repr reversed round set sorted str sum tuple zip Exception LookupError "
              "ArithmeticError IndexError KeyError RuntimeError StopIteration TypeError ValueError ZeroDivisionError")


class HostError(Exception):
    """A function of the host application, called by the script, failed."""


def safe_builtins() -> dict[str, Any]:
    names = {name: getattr(builtins, name) for name in SAFE_NAMES.split()}
    return names | {"HostError": HostError, "Decimal": decimal.Decimal, "date": datetime.date,
                    "datetime": datetime.datetime, "time": datetime.time, "timedelta": datetime.timedelta,
                    "timezone": datetime.timezone}


def plain(value: Any) -> bool:
    """Whether `value` is data the parent will accept (exact types: no subclasses, no objects made by scripts)."""
    kind = type(value)
    if kind in SCALARS:
        return True
    if kind is dict:
        return all(plain(k) and plain(v) for k, v in value.items())
    if kind in CONTAINERS:
        return all(plain(v) for v in value)
    return f"{kind.__module__}.{kind.__qualname__}" in CLASSES


def line_of(exc: BaseException, filename: str) -> int | None:
    """The line of the innermost frame of `filename` in the traceback of `exc`."""
    line, tb = None, exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def read(fd: int, size: int) -> bytes:
    buf = bytearray()
    while len(buf) < size:
        chunk = os.read(fd, size - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return bytes(buf)


def send(fd: int, message: Any) -> None:
    body = pickle.dumps(message, protocol=5)
    view = memoryview(HEADER.pack(len(body)) + body)
    while view:
        view = view[os.write(fd, view):]


def recv(fd: int) -> Any:
    (size,) = HEADER.unpack(read(fd, HEADER.size))
    return pickle.loads(read(fd, size))


def stub(name: str, inp: int, out: int) -> Any:
    """A stand-in for host function `name`: the call runs in the parent."""
    def call(*args: Any, **kwargs: Any) -> Any:
        if not plain((args, kwargs)):
            raise TypeError(f"{name}() accepts only plain data (numbers, strings, lists, dicts, dates)")
        send(out, ("call", name, args, kwargs))
        kind, value = recv(inp)
        if kind == "raise":
            raise HostError(value)
        return value
    call.__name__ = call.__qualname__ = name
    return call


def run(request: tuple, safe: dict[str, Any], codes: dict, inp: int, out: int) -> tuple:
    _, mode, source, data, names = request
    scope = {**data, **{name: stub(name, inp, out) for name in names}, "__builtins__": safe}
    try:
        code = codes.get((mode, source)) or compile(source, "<script>", mode)
        codes[mode, source] = code
        if mode == "eval":
            value = eval(code, scope)
            if not plain(value):
                return ("error", "DataError", None, f"the expression returned a {type(value).__name__}, which is "
                        "not plain data")
            return ("ok", value)
        exec(code, scope)
        value = {k: v for k, v in scope.items() if not k.startswith("_") and k not in names and not callable(v)}
        for key, item in value.items():
            if not plain(item):
                return ("error", "DataError", None, f"the variable {key!r} holds a {type(item).__name__}, which "
                        "cannot be kept in the process data (delete it at the end of the script)")
        return ("ok", value)
    except Exception as exc:
        return ("error", type(exc).__name__, line_of(exc, "<script>"), f"{type(exc).__name__}: {exc}"[:2000])


def main() -> None:
    memory, timeout = int(sys.argv[1]), float(sys.argv[2])
    inp, out = os.dup(0), os.dup(1)
    os.dup2(2, 1)                            # a stray write to stdout must not corrupt the protocol
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (32, 32))
    resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))      # no fork, no threads
    safe, codes = safe_builtins(), {}
    send(out, "ready")
    while True:
        try:
            request = recv(inp)
        except EOFError:                     # the parent closed the pipe or died
            return
        # Backstop for a child whose parent died while it loops: the kernel kills it after a little more CPU time
        # than the parent's wall-clock limit allows (which excludes time spent waiting for host functions).
        used = sum(os.times()[:2])
        resource.setrlimit(resource.RLIMIT_CPU, (int(used + timeout) + 2, resource.RLIM_INFINITY))
        if len(codes) > 500:
            codes.clear()
        try:
            send(out, run(request, safe, codes, inp, out))
        except BrokenPipeError:              # the parent died while the answer was on its way: nobody to tell
            return
        except Exception as exc:             # e.g. MemoryError while pickling a large result
            send(out, ("error", type(exc).__name__, None, f"{type(exc).__name__}: {exc}"))


if __name__ == "__main__":
    main()
