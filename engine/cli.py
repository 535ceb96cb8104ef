"""The `baton` command: deploy diagrams, start instances and work their tasks from a shell.

exit codes:
  0  ok
  1  any other engine error
  2  bad input: usage, invalid JSON, data that does not fit the form, a diagram with errors
  3  not found: no such process, instance, task or incident
  4  conflict: someone else changed the instance first; try again
  5  forbidden or invalid state: not your task, or the instance cannot do that now
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shlex
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from . import accounts, apikeys, orgfile, store
from . import worker as work
from .core import Engine
from .errors import Conflict, EngineError, Forbidden, InvalidData, InvalidDiagram, InvalidState, NotFound
from .info import STATUSES, DefinitionInfo, InstanceInfo, JobStatus, LintReport
from .show import (
    block,
    show_definitions,
    show_directory,
    show_history,
    show_instance,
    show_instances,
    show_job_status,
    show_lint,
    show_task,
    show_tasks,
    table,
    to_json,
)

log = logging.getLogger(__name__)

# The shipped processes: ./processes when run from a checkout, else the folder beside this package's source.
PROCESSES = Path("processes") if Path("processes").is_dir() else Path(__file__).resolve().parent.parent / "processes"

OK, FAILED, BAD_INPUT, NOT_FOUND, CONFLICT, FORBIDDEN = 0, 1, 2, 3, 4, 5
CODES: tuple[tuple[type[EngineError], int], ...] = (
    (InvalidData, BAD_INPUT), (InvalidDiagram, BAD_INPUT), (NotFound, NOT_FOUND), (Conflict, CONFLICT),
    (Forbidden, FORBIDDEN), (InvalidState, FORBIDDEN))
WAITING_KINDS = ("task", "timer", "message", "signal", "job")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parsed = parser().parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help and on usage errors; return the code instead
        return exc.code if isinstance(exc.code, int) else BAD_INPUT
    args = argparse.Namespace(**{"database": None, "json": False, "verbose": False, **vars(parsed)})
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="baton: %(message)s")
    engine = Engine(args.database)
    try:
        result = args.run(engine, args)
    except InvalidDiagram as exc:
        print("\n".join(str(p) for p in exc.problems) or "baton: invalid diagram", file=sys.stderr)
        return BAD_INPUT
    except EngineError as exc:
        print(f"baton: {exc}", file=sys.stderr)
        return next((code for kind, code in CODES if isinstance(exc, kind)), FAILED)
    finally:
        engine.close()
    try:
        print(to_json(result) if args.json else args.show(result), flush=True)
    except BrokenPipeError:  # the reader went away, as `baton tasks | head` does: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return BAD_INPUT if isinstance(result, LintReport) and not result.ok else OK


def parser() -> argparse.ArgumentParser:
    # Global options, accepted before or after the command: unset ones stay unset, so neither place overrides the
    # other (argparse shares these actions between parsers, so set_defaults here would reach the commands too).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--database", metavar="URL", default=argparse.SUPPRESS,
                        help="database URL (default: $BATON_DATABASE_URL, else sqlite:///baton.db)")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log what happens")
    epilog = __doc__.split("\n\n", 1)[1]
    top = argparse.ArgumentParser(prog="baton", parents=[common], description=__doc__.splitlines()[0],
                                  epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = top.add_subparsers(title="commands", metavar="COMMAND", required=True)

    def command(name: str, run: Callable[[Engine, argparse.Namespace], Any], show: Callable[[Any], str],
                summary: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common], help=summary, description=summary, epilog=epilog,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.set_defaults(run=run, show=show)
        return sub

    def options(sub: argparse.ArgumentParser, *names: str) -> None:
        helps = {"user": "act as this user (default: trusted host code: no form or permission checks)",
                 "data": "a JSON object, or @FILE holding one", "process": "only this process id"}
        for name in names:
            sub.add_argument(f"--{name}", type=json_object if name == "data" else None, help=helps.get(name))

    sub = command("deploy", lambda e, a: e.deploy(*diagrams(a.files), user=a.user), show_definitions,
                  "deploy BPMN and DMN files (and the JSON-Schema and Camunda forms they name) together; unchanged "
                  "files keep their version")
    sub.add_argument("files", nargs="+", metavar="FILE", help="a .bpmn, .dmn, .json or .form file, or a folder of "
                     ".bpmn and .dmn files")
    options(sub, "user")
    sub = command("lint", lambda e, a: e.lint(*diagrams(a.files)), show_lint,
                  "check diagrams without deploying them; exit 2 if any has errors")
    sub.add_argument("files", nargs="+", metavar="FILE", help="a .bpmn, .dmn, .json or .form file, or a folder of "
                     ".bpmn and .dmn files")
    sub = command("demo", demo, show_demo, "deploy the example processes and show how to start one")
    sub.add_argument("--processes", metavar="DIR", type=Path, default=PROCESSES,
                     help="the folder of example diagrams (default: ./processes)")
    command("definitions", lambda e, a: e.definitions(), show_definitions, "every deployed version of every process")
    sub = command("serve", serve, lambda stopped: "baton: stopped",
                  "run the web app and a job worker thread (werkzeug's server: for one machine, not the internet)")
    sub.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    sub.add_argument("--port", type=int, default=8000, help="port to listen on (default: 8000)")
    sub.add_argument("--demo", action="store_true", help="set up the demo first (as `baton demo`), then serve")
    sub.add_argument("--processes", metavar="DIR", type=Path, default=PROCESSES,
                     help="the folder of example diagrams for --demo (default: ./processes)")
    sub = command("worker", run_worker, show_job_status,
                  "run due jobs (timers, service tasks, timer starts, mail) until stopped; many may share PostgreSQL")
    sub.add_argument("--poll", type=float, metavar="SECONDS", help="how long to wait when no job is due "
                     "(default: BATON_POLL_INTERVAL or 1)")
    sub.add_argument("--status", action="store_true", help="show the jobs due, running, retrying and failed, "
                     "then exit")
    sub = command("accounts", accounts_command, show_account, "sign-in accounts for the web app")
    actions = sub.add_subparsers(title="actions", dest="action", metavar="ACTION", required=True)
    one = actions.add_parser("set", parents=[common], help="create an account or change its password and roles",
                             description="create an account or change its password and roles; without --password a "
                                         "new one is generated and printed", epilog=epilog,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
    one.add_argument("username", metavar="USER")
    one.add_argument("--roles", type=roles_list, help="comma-separated: analyst (deploys), admin (sees and acts on "
                                                      "every instance); '' for none (default: keep, or none)")
    one.add_argument("--password", help="the new password (default: a generated one, printed)")
    sub = command("apikey", apikey_command, show_apikeys, "API keys: a program sends one to act as a person")
    actions = sub.add_subparsers(title="actions", dest="action", metavar="ACTION", required=True)
    for action, summary in (("create", "make a key acting as USER and print its secret, once"),
                            ("list", "every key (never their secrets)"), ("revoke", "delete a key")):
        one = actions.add_parser(action, parents=[common], help=summary, description=summary, epilog=epilog,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
        if action == "create":
            one.add_argument("username", metavar="USER")
            one.add_argument("name", metavar="NAME", help="what the key is for, e.g. erp-webhook")
        elif action == "list":
            one.add_argument("--user", help="only this user's keys")
        else:
            one.add_argument("key", metavar="ID", help="the key's id (or its name, if no other key has it)")

    sub = command("start", lambda e, a: e.start(a.process_id, a.data, user=a.user, business_key=a.business_key),
                  show_instance, "start the newest version of a process")
    sub.add_argument("process_id", metavar="PROCESS")
    options(sub, "data", "user")
    sub.add_argument("--business-key", metavar="KEY")
    sub = command("instances", lambda e, a: e.instances(process_id=a.process, status=a.status, starter=a.starter,
                                                        waiting_on=a.waiting_on), show_instances,
                  "instances matching every filter given, newest first")
    options(sub, "process")
    sub.add_argument("--status", choices=STATUSES)
    sub.add_argument("--starter", metavar="USER", help="only instances this user started")
    sub.add_argument("--waiting-on", metavar="KIND", choices=WAITING_KINDS, help=", ".join(WAITING_KINDS))
    sub = command("show", lambda e, a: e.instance(a.instance_id), show_instance,
                  "one instance: its status, what it waits on, its incidents and data")
    sub.add_argument("instance_id", metavar="INSTANCE")
    sub = command("history", lambda e, a: e.history(a.instance_id), show_history,
                  "what happened to an instance, oldest first")
    sub.add_argument("instance_id", metavar="INSTANCE")
    sub = command("retry", lambda e, a: e.retry(a.instance_id, data=a.data, user=a.user), show_instance,
                  "run the failed task of the instance's open incident again, with --data merged in first")
    sub.add_argument("instance_id", metavar="INSTANCE")
    options(sub, "data", "user")
    for name, summary in (("cancel", "stop an instance for good"), ("suspend", "pause an instance"),
                          ("resume", "continue a suspended instance")):
        sub = command(name, administer(name), show_instance, summary)
        sub.add_argument("instance_id", metavar="INSTANCE")
        options(sub, "user")

    sub = command("tasks", lambda e, a: e.tasks(user=a.user, instance_id=a.instance, process_id=a.process),
                  show_tasks, "open human tasks")
    options(sub, "user", "process")
    sub.add_argument("--instance", metavar="ID", help="only this instance's tasks")
    sub = command("complete", lambda e, a: e.complete_task(a.task_id, a.data, user=a.user), show_instance,
                  "complete a task with its form data and run until the instance waits again")
    sub.add_argument("task_id", metavar="TASK")
    options(sub, "data", "user")
    sub = command("claim", lambda e, a: e.claim(a.task_id, user=a.user), show_task,
                  "take a task offered to you or your groups")
    sub.add_argument("task_id", metavar="TASK")
    sub.add_argument("--user", required=True)
    sub = command("unclaim", lambda e, a: e.unclaim(a.task_id, user=a.user), show_task,
                  "give a claimed task back to its candidates")
    sub.add_argument("task_id", metavar="TASK")
    sub.add_argument("--user", required=True)

    sub = command("directory", directory_command, show_directory,
                  "replace the org directory from a file, or write it to one (formats: docs/directory.md)")
    actions = sub.add_subparsers(title="actions", dest="action", metavar="ACTION", required=True)
    for action, summary in (
            ("import", "replace the people and groups, and the rates if the file has them, with a .json or .csv "
                       "file: all of it, or nothing if it has errors"),
            ("export", "write the directory to a .json file, or to a .csv file of people and FILE-rates.csv")):
        one = actions.add_parser(action, parents=[common], help=summary, description=summary, epilog=epilog,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
        one.add_argument("file", metavar="FILE", type=Path)
    return top


def administer(name: str) -> Callable[[Engine, argparse.Namespace], InstanceInfo]:
    """Cancel, suspend or resume: the same call on the instance, recorded in its history as the user's."""
    return lambda engine, args: getattr(engine, name)(args.instance_id, user=args.user)


def directory_command(engine: Engine, args: argparse.Namespace) -> dict[str, int] | list[Path]:
    db = store.connect(engine.database_url)
    try:
        if args.action == "import":
            return orgfile.import_file(db, args.file)
        return orgfile.export_file(db, args.file)
    except InvalidData as exc:  # one problem a line, each naming its row
        raise InvalidData("\n".join(e.message for e in exc.errors)) from exc


@dataclasses.dataclass(frozen=True)
class Account:
    username: str
    password: str | None  # None: the account existed and keeps its password
    roles: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class Demo:
    deployed: list[DefinitionInfo]
    next_steps: list[str]
    people: int = 0
    started: list[str] = dataclasses.field(default_factory=list)
    accounts: list[Account] = dataclasses.field(default_factory=list)


def demo(engine: Engine, args: argparse.Namespace) -> Demo:
    folder = args.processes
    if not folder.is_dir():
        raise InvalidData(f"no folder {folder}: run from the repository root or pass --processes DIR")
    files = diagrams([folder])
    if not files:
        raise InvalidData(f"no .bpmn or .dmn files under {folder}")
    deployed = engine.deploy(*files, user="demo")
    org, requests = folder / "demo" / "org.json", folder / "demo" / "requests.json"
    people = orgfile.import_file(engine.db.engine, org)["people"] if org.is_file() else 0
    made = demo_accounts(engine, json.loads(org.read_text(encoding="utf-8")).get("people", [])) if people else []
    started = []
    if requests.is_file() and not engine.instances(process_id="purchase_approval", limit=1):
        for request in json.loads(requests.read_text(encoding="utf-8"), parse_float=Decimal):
            requester = request.pop("requester")
            instance = engine.start("purchase_approval", request, user=requester)
            started.append(f"{requester}: {request.get('item')} ({instance.status})")
    baton = f"baton --database {shlex.quote(args.database)}" if args.database else "baton"
    process = "purchase_approval" if any(d.process_id == "purchase_approval" for d in deployed) else (
        deployed[0].process_id if deployed else "PROCESS")
    return Demo(deployed, [f"{baton} start {process} --user sam --data '{{\"item\": \"Desk\", \"amount\": 800}}'",
                           f"{baton} tasks --user dana",
                           f"{baton} complete TASK --user dana --data '{{\"decision\": \"approve\"}}'"],
                people, started, made)


DEMO_ROLES = {"analysts": "analyst", "admins": "admin"}


def demo_accounts(engine: Engine, people: list[dict[str, Any]]) -> list[Account]:
    """A sign-in account for each demo person, roles from their groups; $BATON_DEMO_PASSWORD for all, if set."""
    shared = os.environ.get("BATON_DEMO_PASSWORD")
    made = []
    for person in people:
        username = person["username"]
        roles = tuple(DEMO_ROLES[g] for g in person.get("groups", []) if g in DEMO_ROLES)
        if shared is None and accounts.account(engine.db.engine, username) is not None:
            made.append(Account(username, None, roles))
            continue
        password = shared or accounts.new_password()
        accounts.set_password(engine.db.engine, username, password, roles)
        made.append(Account(username, password, roles))
    return made


def serve(engine: Engine, args: argparse.Namespace) -> None:
    """The web app with a job worker thread, until interrupted."""
    from werkzeug.serving import run_simple

    from baton.web import create_app  # here, not at the top: the engine package never needs Flask

    if args.demo:
        print(show_demo(demo(engine, args)), flush=True)
    app = create_app({"BATON_DATABASE_URL": engine.database_url})
    stop = threading.Event()
    worker = threading.Thread(target=work.work, args=(app.extensions["baton"], app.config["BATON_POLL_INTERVAL"], stop),
                              name="baton-worker", daemon=True)
    worker.start()
    print(f"baton: serving http://{args.host}:{args.port}/ (Ctrl+C to stop)", flush=True)
    signal.signal(signal.SIGTERM, interrupt)  # a service manager's stop ends the worker as cleanly as Ctrl+C
    try:
        run_simple(args.host, args.port, app, threaded=True)
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        worker.join(timeout=5)
        app.extensions["baton"].close()


def run_worker(engine: Engine, args: argparse.Namespace) -> JobStatus | None:
    if args.status:
        return engine.job_status()
    print(f"baton: worker {engine.worker_id} on {engine.db.engine.url.render_as_string()} (Ctrl+C to stop)",
          flush=True)
    work.run(engine, args.poll or engine.settings.poll_interval)
    return None


def interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def accounts_command(engine: Engine, args: argparse.Namespace) -> Account:
    password = args.password or accounts.new_password()
    accounts.set_password(engine.db.engine, args.username, password, args.roles)
    signed = accounts.account(engine.db.engine, args.username)
    return Account(args.username, None if args.password else password, tuple(sorted(signed.roles if signed else ())))


@dataclasses.dataclass(frozen=True)
class NewKey:
    username: str
    name: str
    secret: str


def apikey_command(engine: Engine, args: argparse.Namespace) -> NewKey | list[apikeys.KeyInfo] | apikeys.KeyInfo:
    if args.action == "create":
        return NewKey(args.username, args.name, apikeys.create(engine.db.engine, args.username, args.name))
    if args.action == "list":
        return apikeys.keys(engine.db.engine, args.user)
    return apikeys.revoke(engine.db.engine, args.key)


def show_apikeys(result: NewKey | list[apikeys.KeyInfo] | apikeys.KeyInfo) -> str:
    if isinstance(result, NewKey):
        return (f"API key {result.name!r} for {result.username}:\n{result.secret}\n"
                "Keep it now: it is stored hashed and will not be shown again.")
    if isinstance(result, apikeys.KeyInfo):
        return f"revoked API key {result.id} ({result.name!r} of {result.username})"
    return table(("ID", "NAME", "USER", "CREATED", "LAST USED"),
                 ((k.id, k.name, k.username, k.created, k.last_used) for k in result))


def roles_list(text: str) -> tuple[str, ...]:
    roles = tuple(r.strip() for r in text.split(",") if r.strip())
    unknown = set(roles) - set(accounts.ROLES)
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown roles {', '.join(sorted(unknown))}; roles are "
                                         f"{', '.join(accounts.ROLES)}")
    return roles


def json_object(text: str) -> dict[str, Any]:
    """A `--data` value: JSON text or @FILE, fractions as Decimal so that amounts stay exact."""
    try:
        if text.startswith("@"):
            text = Path(text[1:]).read_text(encoding="utf-8")
        value = json.loads(text, parse_float=Decimal)
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot read {text[1:]}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"invalid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object, like '{\"amount\": 12.50}'")
    return value


def diagrams(paths: Iterable[Path | str]) -> list[Path]:
    """The files named, with each folder replaced by the .bpmn and .dmn files under it."""
    found = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix in (".bpmn", ".dmn") and p.is_file())
        elif path.is_file():
            found.append(path)
        else:
            raise InvalidData(f"no file {path}")
    return found


def show_demo(result: Demo) -> str:
    lines = [show_definitions(result.deployed), ""]
    if result.people:
        lines.append(f"Demo org: {result.people} people imported (processes/demo/org.json)")
    if result.started:
        lines += ["Requests in flight:", *(f"  {line}" for line in result.started)]
    if result.accounts:
        lines += ["", "Sign-in accounts for `baton serve` (write the passwords down: they are not shown again):",
                  table(("USER", "PASSWORD", "ROLES"), ((a.username, a.password or "(unchanged)", a.roles)
                                                        for a in result.accounts))]
    return "\n".join([*lines, "", "Start one, then work its tasks:", *(f"  {line}" for line in result.next_steps)])


def show_account(account: Account) -> str:
    return block([("account", account.username), ("roles", account.roles or "-")]
                 + ([("password", account.password)] if account.password else []))


if __name__ == "__main__":
    sys.exit(main())
