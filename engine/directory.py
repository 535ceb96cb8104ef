"""The org directory: people, groups and exchange rates, the functions diagrams call on them, and its files.

An import replaces what the file holds, in one transaction, or refuses the file with every problem in it:

* JSON: ``{"people": [{"username": "maria", "name": "Maria Lopez", "email": "maria@example.com", "manager": "dmitri",
  "limit": "5000", "currency": "EUR", "delegate": "sam", "away_from": "2024-08-01", "away_until": "2024-08-15",
  "groups": ["purchasing"]}, ...], "rates": {"EUR": "1.08"}}``. Only username and name are required; a missing or
  null limit is unlimited; a missing currency is the base currency. Without "rates" the stored rates stay; without
  "people" the stored people stay.
* CSV, people: the header ``username,name,email,manager,limit,currency,delegate,away_from,away_until,groups`` (any
  order; only username and name required), groups separated by ``;``, an empty cell meaning none (an empty limit:
  unlimited). CSV, rates: the header ``currency,rate``; such a file replaces the rates only, so import it first.
* A rate is how many base-currency units one unit is worth (EUR 1.08 with base USD: 1 EUR = 1.08 USD). The base
  currency, ``BATON_BASE_CURRENCY`` (default USD), is worth 1 and need not be listed.
* Dates are ISO 8601, a date or a datetime, naive meaning UTC. A date alone covers the whole day: away_until
  2024-08-15 lasts until the end of that day.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from itertools import groupby
from pathlib import Path
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy import bindparam, delete, insert, select

from . import models, store
from .errors import FieldError, InvalidData

log = logging.getLogger(__name__)

FIELDS = ("username", "name", "email", "manager", "limit", "currency", "delegate", "away_from", "away_until", "groups")
RATE_FIELDS = ("currency", "rate")
UNLIMITED = Decimal("Infinity")
PERSON, MEMBERSHIP, RATE = models.Person.__table__, models.Membership.__table__, models.Rate.__table__


def base_currency() -> str:
    return os.environ.get("BATON_BASE_CURRENCY", "USD").strip().upper()


@dataclass(frozen=True)
class Person:
    username: str
    name: str
    email: str | None
    manager: str | None
    limit: Decimal | None  # in `currency`; None: unlimited
    currency: str
    delegate: str | None
    away_from: datetime | None
    away_until: datetime | None
    groups: tuple[str, ...]


class Directory(Protocol):
    """What a host plugs in (an HR system, LDAP) through `Engine(directory=...)`."""

    def person(self, username: str) -> Person | None: ...
    def groups_of(self, username: str) -> set[str]: ...
    def members_of(self, group: str) -> list[str]: ...
    def rate(self, currency: str) -> Decimal | None: ...


_everyone = select(PERSON, MEMBERSHIP.c.group_name).outerjoin(
    MEMBERSHIP, MEMBERSHIP.c.username == PERSON.c.username).order_by(PERSON.c.username, MEMBERSHIP.c.group_name)
_one = _everyone.where(PERSON.c.username == bindparam("username"))
_groups_of = select(MEMBERSHIP.c.group_name).where(MEMBERSHIP.c.username == bindparam("username"))
_members_of = select(MEMBERSHIP.c.username).where(MEMBERSHIP.c.group_name == bindparam("group")).order_by(
    MEMBERSHIP.c.username)
_rate_of = select(RATE.c.rate).where(RATE.c.currency == bindparam("currency"))


def _read_people(conn: sa.Connection, query: sa.Select, **params: Any) -> list[Person]:
    people = []
    for _, group in groupby(conn.execute(query, params), key=lambda row: row.username):
        rows = list(group)
        r = rows[0]
        limit = None if r.signature_limit is None else Decimal(r.signature_limit)
        people.append(Person(r.username, r.name, r.email, r.manager, limit, r.currency, r.delegate, r.away_from,
                             r.away_until, tuple(row.group_name for row in rows if row.group_name is not None)))
    return people


class SqlDirectory:
    """The directory on Baton's own database; every call reads afresh, so a change is seen at once."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def person(self, username: str) -> Person | None:
        with self.engine.connect() as conn:
            found = _read_people(conn, _one, username=username)
        return found[0] if found else None

    def groups_of(self, username: str) -> set[str]:
        with self.engine.connect() as conn:
            return set(conn.execute(_groups_of, {"username": username}).scalars())

    def members_of(self, group: str) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.execute(_members_of, {"group": group}).scalars())

    def rate(self, currency: str) -> Decimal | None:
        with self.engine.connect() as conn:
            text = conn.execute(_rate_of, {"currency": currency}).scalar()
        return None if text is None else Decimal(text)


def functions(directory: Directory, *, base_currency: str, now: Callable[[], datetime]) -> dict[str, Callable]:
    """The sandbox-safe functions diagrams call; they take and return plain data."""
    base = base_currency.upper()

    def to_base(amount: Any, currency: str) -> Decimal:
        code = str(currency).upper()
        rate = Decimal(1) if code == base else directory.rate(code)
        if rate is None:
            raise InvalidData(f"no exchange rate for the currency {currency!r} (the base currency is {base})")
        return Decimal(str(amount)) * rate

    def limit_of(person: Person) -> Decimal:
        return UNLIMITED if person.limit is None else to_base(person.limit, person.currency)

    def away(person: Person | None) -> bool:
        if person is None or (person.away_from is None and person.away_until is None):
            return False
        at = now()
        return (person.away_from is None or person.away_from <= at) and (
            person.away_until is None or at <= person.away_until)

    def manager_of(user: str) -> str | None:
        person = directory.person(user)
        return person.manager if person else None

    def signature_limit(user: str) -> Decimal:
        person = directory.person(user)
        return limit_of(person) if person else Decimal(0)

    def acting_approver(user: str | None, requester: str | None = None) -> dict[str, Any] | None:
        seen = set()
        while user is not None and user not in seen:  # `seen`: a host's directory may have a manager cycle
            seen.add(user)
            person = directory.person(user)
            if person is None:
                return None
            signer, on_behalf_of = user, None
            if person.delegate and away(person) and not away(directory.person(person.delegate)):
                signer, on_behalf_of = person.delegate, user
            if signer != requester:
                return {"approver": signer, "on_behalf_of": on_behalf_of, "limit": limit_of(person)}
            user = person.manager  # nobody approves their own request: the manager decides instead
        return None

    return {"manager_of": manager_of, "signature_limit": signature_limit, "members_of": directory.members_of,
            "to_base": to_base, "is_away": lambda user: away(directory.person(user)),
            "acting_approver": acting_approver}


# Import: read every row, check the file as a whole, then replace the tables in one transaction.

@dataclass
class _Row:
    where: str  # "people.csv line 3", "org.json people[2] (maria)"
    values: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def import_file(engine: sa.Engine, path: Path, *, base: str | None = None) -> dict[str, int]:
    """Replace the directory with the file's people (with their groups) and rates, all or nothing."""
    path, base = Path(path), (base or base_currency()).upper()
    people, rate_rows = _read(path, base)
    rates = None if rate_rows is None else {
        r.values["currency"]: r.values["rate"] for r in rate_rows if not r.problems and r.values["currency"] != base}
    with store.Store(engine).writing() as conn:
        known = {base, *(rates if rates is not None else conn.execute(select(RATE.c.currency)).scalars())}
        if people is not None:
            _check(people, known, base)
        problems = [f"{r.where}: {p}" for r in [*(people or []), *(rate_rows or [])] for p in r.problems]
        if people is None:  # the new rates must still cover the currencies of the people already stored
            users = conn.execute(select(PERSON.c.currency, PERSON.c.username).order_by(PERSON.c.currency))
            for code, rows in groupby(users, key=lambda row: row.currency):
                if code not in known:
                    problems.append(f"{path.name}: no rate for {code}, which {', '.join(r.username for r in rows)} use")
        if problems:
            raise InvalidData([FieldError(p.split(": ", 1)[0], p) for p in problems])
        counts = {"people": 0, "groups": 0, "memberships": 0, "rates": 0}
        if people is not None:
            conn.execute(delete(MEMBERSHIP))
            conn.execute(delete(PERSON))
            memberships = [{"group_name": g, "username": r.values["username"]}
                           for r in people for g in r.values["groups"]]
            if people:
                conn.execute(insert(PERSON), [_person_row(r.values) for r in people])
            if memberships:
                conn.execute(insert(MEMBERSHIP), memberships)
            counts.update(people=len(people), groups=len({m["group_name"] for m in memberships}),
                          memberships=len(memberships))
        if rates is not None:
            conn.execute(delete(RATE))
            if rates:
                conn.execute(insert(RATE), [{"currency": c, "rate": str(r)} for c, r in rates.items()])
            counts["rates"] = len(rates)
    log.info("directory imported from %s: %s", path, counts)
    return counts


def _person_row(values: dict[str, Any]) -> dict[str, Any]:
    limit = values["limit"]
    return {**{k: values[k] for k in FIELDS if k not in ("limit", "groups")},
            "signature_limit": None if limit is None else str(limit)}


def _read(path: Path, base: str) -> tuple[list[_Row] | None, list[_Row] | None]:
    """The file's people rows and rate rows (None: not in the file), each with the problems found in it alone."""
    if path.suffix.lower() not in (".json", ".csv"):
        raise InvalidData(f"{path.name}: a directory file is .json or .csv")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InvalidData(f"cannot read {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise InvalidData(f"{path.name}: not UTF-8 text") from exc
    return (_read_json if path.suffix.lower() == ".json" else _read_csv)(path.name, text, base)


def _read_json(name: str, text: str, base: str) -> tuple[list[_Row] | None, list[_Row] | None]:
    try:
        data = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise InvalidData(f"{name} line {exc.lineno}: invalid JSON: {exc.msg}") from exc
    if (not isinstance(data, dict) or not data.keys() & {"people", "rates"} or set(data) - {"people", "rates"}
            or not isinstance(data.get("people", []), list) or not isinstance(data.get("rates", {}), dict)):
        raise InvalidData(f'{name}: expected {{"people": [{{"username": ..., "name": ...}}, ...], "rates": {{...}}}}')
    people = None
    if "people" in data:
        people = []
        for i, raw in enumerate(data["people"]):
            username = raw.get("username") if isinstance(raw, dict) else None
            row = _Row(f"{name} people[{i}]" + (f" ({username})" if isinstance(username, str) else ""))
            if isinstance(raw, dict):
                row.values = _person(raw, base, row.problems)
            else:
                row.values, row.problems = _person({}, base, []), ["expected an object with a username and a name"]
            people.append(row)
    rates = None
    if "rates" in data:
        rates = [_rate(f"{name} rates[{code}]", {"currency": code, "rate": value}, base)
                 for code, value in data["rates"].items()]
    return people, rates


def _read_csv(name: str, text: str, base: str) -> tuple[list[_Row] | None, list[_Row] | None]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [h.strip().lower() for h in next(reader, [])]
    if sorted(header) == sorted(RATE_FIELDS):
        kind = "rates"
    elif "username" in header and set(header) <= set(FIELDS) and len(set(header)) == len(header):
        kind = "people"
    else:
        raise InvalidData(f"{name} line 1: expected the header {','.join(FIELDS)} (people) "
                          f"or {','.join(RATE_FIELDS)} (rates)")
    rows = []
    for cells in reader:
        if not any(c.strip() for c in cells):
            continue
        where, raw = f"{name} line {reader.line_num}", dict(zip(header, cells, strict=False))
        row = _rate(where, raw, base) if kind == "rates" else _Row(where)
        if kind == "people":
            row.values = _person(raw, base, row.problems)
        if len(cells) > len(header):
            row.problems.append(f"{len(cells)} cells, but the header has {len(header)}")
        rows.append(row)
    return (None, rows) if kind == "rates" else (rows, None)


def _person(raw: dict[str, Any], base: str, problems: list[str]) -> dict[str, Any]:
    """One person's values, parsed; what is wrong with them goes to `problems`."""
    if unknown := sorted(set(raw) - set(FIELDS)):
        problems.append(f"unknown field {', '.join(unknown)}")
    values = {key: _text(raw, key, problems) for key in ("username", "name", "email", "manager", "delegate")}
    problems += [f"missing {key}" for key in ("username", "name") if not values[key]]
    values["limit"] = limit = _number(raw, "limit", problems)
    if limit is not None and limit < 0:
        problems.append(f"negative limit {limit}")
    values["currency"] = (_text(raw, "currency", problems) or base).upper()
    if not re.fullmatch("[A-Z]{3}", values["currency"]):
        problems.append(f"currency {values['currency']!r} is not a three-letter code")
    values.update({key: _moment(raw, key, problems) for key in ("away_from", "away_until")})
    if values["away_from"] and values["away_until"] and values["away_until"] < values["away_from"]:
        problems.append(f"away_until {raw['away_until']} is before away_from {raw['away_from']}")
    groups = raw.get("groups") or []
    if isinstance(groups, str):
        groups = groups.split(";")
    if not isinstance(groups, list) or not all(isinstance(g, str) and len(g) <= 255 for g in groups):
        problems.append("groups must be a list of names")
        groups = []
    values["groups"] = tuple(sorted({g.strip() for g in groups if g.strip()}))
    return values


def _rate(where: str, raw: dict[str, Any], base: str) -> _Row:
    row = _Row(where)
    code = (_text(raw, "currency", row.problems) or "").upper()
    rate = _number(raw, "rate", row.problems)
    if not re.fullmatch("[A-Z]{3}", code):
        row.problems.append(f"currency {code!r} is not a three-letter code")
    if rate is None or rate <= 0:
        row.problems.append(f"the rate of {code} must be a positive number")
    elif code == base and rate != 1:
        row.problems.append(f"{code} is the base currency: its rate is 1")
    row.values = {"currency": code, "rate": rate}
    return row


def _check(people: list[_Row], known: set[str], base: str) -> None:
    """What is wrong with the rows together: duplicates, unknown references, manager cycles."""
    first: dict[str, _Row] = {}
    for row in people:
        username = row.values["username"]
        if username in first:
            row.problems.append(f"duplicate user {username!r}, first at {first[username].where}")
        elif username:
            first[username] = row
    for row in people:
        v = row.values
        if v["manager"] and v["manager"] not in first:
            row.problems.append(f"unknown manager {v['manager']!r}")
        if v["delegate"] and v["delegate"] == v["username"]:
            row.problems.append(f"{v['delegate']!r} cannot be their own delegate")
        elif v["delegate"] and v["delegate"] not in first:
            row.problems.append(f"unknown delegate {v['delegate']!r}")
        if v["currency"] not in known:
            row.problems.append(f"unknown currency {v['currency']} (not the base currency {base}, and no rate)")
    done: set[str] = set()
    for start in first:
        chain, at = [], start
        while at in first and at not in done and at not in chain:
            chain.append(at)
            at = first[at].values["manager"]
        if at in chain:
            cycle = chain[chain.index(at):]
            first[cycle[0]].problems.append(f"the manager chain is a cycle: {' -> '.join([*cycle, cycle[0]])}")
        done.update(chain)


def _text(raw: dict[str, Any], key: str, problems: list[str]) -> str | None:
    value = raw.get(key)
    if value is not None and not isinstance(value, str):
        problems.append(f"{key} must be text")
        return None
    if value and len(value.strip()) > 255:
        problems.append(f"{key} is longer than 255 characters")
    return value.strip() or None if value else None


def _number(raw: dict[str, Any], key: str, problems: list[str]) -> Decimal | None:
    value = raw.get(key)
    if value is None or value == "":
        return None
    try:
        if isinstance(value, bool) or not isinstance(value, int | Decimal | str):
            raise InvalidOperation
        number = Decimal(value.strip() if isinstance(value, str) else value)
        if not number.is_finite():
            raise InvalidOperation
    except InvalidOperation:
        problems.append(f"{key} {value!r} is not a number")
        return None
    return number


def _moment(raw: dict[str, Any], key: str, problems: list[str]) -> datetime | None:
    value = raw.get(key)
    if value is None or value == "":
        return None
    try:
        text = value.strip()
        if len(text) <= 10:  # a date alone: from the start of the day, or until its end
            moment = datetime.combine(date.fromisoformat(text), time.max if key == "away_until" else time.min)
        else:
            moment = datetime.fromisoformat(text)
    except (AttributeError, ValueError):
        problems.append(f"{key} {value!r} is not an ISO 8601 date or datetime")
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# Export: the same formats; a date alone where the moment is the start or end of a UTC day, as imports read it.

def export_file(engine: sa.Engine, path: Path) -> list[Path]:
    """Write the directory to a .json file, or to a .csv file of people and a FILE-rates.csv beside it; the files."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".json", ".csv"):
        raise InvalidData(f"{path.name}: a directory file is .json or .csv")
    with engine.connect() as conn:
        people = _read_people(conn, _everyone)
        rates = {r.currency: r.rate for r in conn.execute(select(RATE).order_by(RATE.c.currency))}
    records = [_record(p) for p in people]
    if suffix == ".json":
        path.write_text(json.dumps({"people": records, "rates": rates}, indent=2, ensure_ascii=False) + "\n",
                        encoding="utf-8")
        return [path]
    _write_csv(path, FIELDS, ([*r.values()][:-1] + [";".join(r["groups"])] for r in records))
    if not rates:
        return [path]
    rates_path = path.with_name(f"{path.stem}-rates{path.suffix}")
    _write_csv(rates_path, RATE_FIELDS, rates.items())
    return [path, rates_path]


def _record(p: Person) -> dict[str, Any]:
    return {"username": p.username, "name": p.name, "email": p.email, "manager": p.manager,
            "limit": None if p.limit is None else str(p.limit), "currency": p.currency, "delegate": p.delegate,
            "away_from": _iso(p.away_from, time.min), "away_until": _iso(p.away_until, time.max),
            "groups": list(p.groups)}


def _iso(moment: datetime | None, day_edge: time) -> str | None:
    if moment is None:
        return None
    moment = moment.astimezone(UTC)
    return moment.date().isoformat() if moment.timetz() == day_edge.replace(tzinfo=UTC) else moment.isoformat()


def _write_csv(path: Path, header: Iterable[str], rows: Iterable[Iterable[Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(["" if v is None else v for v in row] for row in rows)
