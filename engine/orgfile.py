"""Org directory files: import (checked, all or nothing) and export, as CSV or JSON.

Files (details and examples in docs/directory.md). An import replaces what the file holds, in one transaction, or
refuses the file with every problem in it, each naming its row:
* JSON ``{"people": [{"username", "name", "email", "manager", "limit", "currency", "delegate", "away_from",
  "away_until", "groups": [...]}, ...], "rates": {"EUR": "1.08", ...}}``. A null limit is unlimited. Without
  "rates" the stored rates stay; without "people" the stored people stay.
* CSV with the header ``username,name,email,manager,limit,currency,delegate,away_from,away_until,groups``: groups
  separated by ``;``, an empty cell meaning none (an empty limit: unlimited). A CSV with the header ``currency,rate``
  replaces the rates only.
* Only username and name are required; currency defaults to the base currency (BATON_BASE_CURRENCY, USD), which is
  worth 1 and needs no rate. A rate is what one unit is worth in the base currency. Dates are ISO 8601, naive ones
  UTC; a date alone covers the whole day.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from itertools import groupby
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import delete, insert, select

from . import store
from .config import Settings
from .directory import MEMBERSHIP, PERSON, RATE, everyone
from .errors import FieldError, InvalidData

log = logging.getLogger(__name__)

FIELDS = ("username", "name", "email", "manager", "limit", "currency", "delegate", "away_from", "away_until", "groups")
RATE_FIELDS = ("currency", "rate")


# Import: parse every row, check the rows together, then replace the tables in one transaction.

@dataclass
class _Row:
    where: str  # "people.csv line 3", "org.json people[2] (maria)"
    values: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def import_file(engine: sa.Engine, path: Path, *, base_currency: str | None = None) -> dict[str, int]:
    """Replace the directory with the file's people (with their groups) and rates, all or nothing."""
    path = Path(path)
    base = (base_currency or Settings().base_currency).upper()
    raw_people, raw_rates = (_read_json if _suffix(path) == ".json" else _read_csv)(path.name, _text_of(path))
    people = None if raw_people is None else [_person(where, raw, base) for where, raw in raw_people]
    rates = None if raw_rates is None else [_rate(where, raw, base) for where, raw in raw_rates]
    with store.Store(engine).writing() as conn:  # checked and replaced in one transaction: nothing changes between
        if problems := _problems(conn, path.name, people, rates, base):
            raise InvalidData([FieldError(p.split(": ", 1)[0], p) for p in problems])
        counts = _replace(conn, people, rates, base)
    log.info("directory imported from %s: %s", path, counts)
    return counts


def _problems(conn: sa.Connection, name: str, people: list[_Row] | None, rates: list[_Row] | None, base: str
              ) -> list[str]:
    """Every problem of the file, in file order: of each row alone, and of the rows together."""
    stored = conn.execute(select(RATE.c.currency)).scalars() if rates is None else ()
    known = {base, *stored, *(r.values["currency"] for r in rates or ())}
    if people is not None:
        _check(people, known, base)
    problems = [f"{r.where}: {p}" for r in [*(people or ()), *(rates or ())] for p in r.problems]
    if people is None:  # new rates must still cover the currencies of the people already stored
        used = select(PERSON.c.currency, PERSON.c.username).order_by(PERSON.c.currency, PERSON.c.username)
        for code, rows in groupby(conn.execute(used), key=lambda row: row.currency):
            if code not in known:
                problems.append(f"{name}: no rate for {code}, which {', '.join(r.username for r in rows)} use")
    return problems


def _replace(conn: sa.Connection, people: list[_Row] | None, rates: list[_Row] | None, base: str) -> dict[str, int]:
    counts = {"people": 0, "groups": 0, "memberships": 0, "rates": 0}
    if people is not None:
        members = [{"group_name": g, "username": r.values["username"]} for r in people for g in r.values["groups"]]
        conn.execute(delete(MEMBERSHIP))
        conn.execute(delete(PERSON))
        for table, rows in ((PERSON, [_stored(r.values) for r in people]), (MEMBERSHIP, members)):
            if rows:
                conn.execute(insert(table), rows)
        counts.update(people=len(people), groups=len({m["group_name"] for m in members}), memberships=len(members))
    if rates is not None:
        rows = [{"currency": r.values["currency"], "rate": str(r.values["rate"])}
                for r in rates if r.values["currency"] != base]  # the base currency's rate is 1, never stored
        conn.execute(delete(RATE))
        if rows:
            conn.execute(insert(RATE), rows)
        counts["rates"] = len(rows)
    return counts


Raw = list[tuple[str, Any]]  # (where, the row as read) of people or of rates; None: the file has none


def _read_json(name: str, text: str) -> tuple[Raw | None, Raw | None]:
    try:
        data = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        raise InvalidData(f"{name} line {exc.lineno}: invalid JSON: {exc.msg}") from exc
    if (not isinstance(data, dict) or not data or set(data) - {"people", "rates"}
            or not isinstance(data.get("people", []), list) or not isinstance(data.get("rates", {}), dict)):
        raise InvalidData(f'{name}: expected {{"people": [{{"username": ..., "name": ...}}, ...], "rates": {{...}}}}')
    people = None if "people" not in data else [
        (f"{name} people[{i}]" + (f" ({raw['username']})" if isinstance(raw, dict) and raw.get("username") else ""),
         raw) for i, raw in enumerate(data["people"])]
    rates = None if "rates" not in data else [
        (f"{name} rates[{code}]", {"currency": code, "rate": rate}) for code, rate in data["rates"].items()]
    return people, rates


def _read_csv(name: str, text: str) -> tuple[Raw | None, Raw | None]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [h.strip().lower() for h in next(reader, [])]
    is_rates = sorted(header) == sorted(RATE_FIELDS)
    if not is_rates and ("username" not in header or set(header) - set(FIELDS) or len(set(header)) < len(header)):
        raise InvalidData(f"{name} line 1: expected the header {','.join(FIELDS)} (people) "
                          f"or {','.join(RATE_FIELDS)} (rates)")
    rows = []
    for cells in reader:
        if any(c.strip() for c in cells):
            raw = dict(zip(header, cells, strict=False))
            if len(cells) > len(header):
                raw[""] = cells[len(header):]  # a field no row may have: reported as extra cells
            rows.append((f"{name} line {reader.line_num}", raw))
    return (None, rows) if is_rates else (rows, None)


def _person(where: str, raw: Any, base: str) -> _Row:
    """One person's values as parsed, and what is wrong with them alone."""
    row = _Row(where)
    problems = row.problems
    if not isinstance(raw, dict):
        problems.append("expected an object with a username and a name")
        raw = {}
    if "" in raw:
        problems.append("more cells than the header has")
    if unknown := sorted(set(raw) - {"", *FIELDS}):
        problems.append(f"unknown field {', '.join(unknown)}")
    values = row.values = {key: _text(raw, key, problems) for key in ("username", "name", "email", "manager",
                                                                      "delegate")}
    problems += [f"missing {key}" for key in ("username", "name") if not values[key]]
    values["limit"] = limit = _number(raw, "limit", problems)
    if limit is not None and limit < 0:
        problems.append(f"negative limit {limit}")
    values["currency"] = _currency(raw, problems) or base
    values.update({key: _moment(raw, key, problems) for key in ("away_from", "away_until")})
    if values["away_from"] and values["away_until"] and values["away_until"] < values["away_from"]:
        problems.append(f"away_until {raw['away_until']} is before away_from {raw['away_from']}")
    groups = raw.get("groups") or []
    groups = groups.split(";") if isinstance(groups, str) else groups
    if not isinstance(groups, list) or not all(isinstance(g, str) and len(g) <= 255 and ";" not in g for g in groups):
        problems.append("groups must be a list of names without ';'")
        groups = []
    values["groups"] = tuple(sorted({g.strip() for g in groups if g.strip()}))
    return row


def _rate(where: str, raw: dict[str, Any], base: str) -> _Row:
    row = _Row(where)
    code, rate = _currency(raw, row.problems) or "", _number(raw, "rate", row.problems)
    if "" in raw:
        row.problems.append("more cells than the header has")
    if rate is None or rate <= 0:
        row.problems.append(f"the rate of {code or 'a currency'} must be a positive number")
    elif code == base and rate != 1:
        row.problems.append(f"{code} is the base currency: its rate is 1")
    row.values = {"currency": code, "rate": rate}
    return row


def _check(people: list[_Row], known: set[str], base: str) -> None:
    """Add what is wrong with the rows together: duplicates, unknown references, manager cycles."""
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
            row.problems.append(f"unknown currency {v['currency']}: no rate, and the base currency is {base}")
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
    return (value or "").strip() or None


def _currency(raw: dict[str, Any], problems: list[str]) -> str | None:
    code = (_text(raw, "currency", problems) or "").upper()
    if code and not re.fullmatch("[A-Z]{3}", code):
        problems.append(f"currency {code!r} is not a three-letter code")
    return code or None


def _number(raw: dict[str, Any], key: str, problems: list[str]) -> Decimal | None:
    value = raw.get(key)
    if value is None or value == "":
        return None
    try:
        number = Decimal(value.strip() if isinstance(value, str) else value)
    except (InvalidOperation, TypeError, ValueError):
        number = Decimal("NaN")
    if isinstance(value, bool) or not number.is_finite():
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


def _stored(values: dict[str, Any]) -> dict[str, Any]:
    return {**{k: values[k] for k in FIELDS if k not in ("limit", "groups")},
            "signature_limit": None if values["limit"] is None else str(values["limit"])}


def _suffix(path: Path) -> str:
    if path.suffix.lower() not in (".json", ".csv"):
        raise InvalidData(f"{path.name}: a directory file is .json or .csv")
    return path.suffix.lower()


def _text_of(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise InvalidData(f"cannot read {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise InvalidData(f"{path.name}: not UTF-8 text") from exc


# Export: the same formats; a date alone where the moment is the start or end of a UTC day, as imports read it.

def export_file(engine: sa.Engine, path: Path) -> list[Path]:
    """Write the directory to a .json file, or to a .csv file of people and a FILE-rates.csv beside it; the files."""
    path = Path(path)
    suffix = _suffix(path)
    with engine.connect() as conn:
        people = everyone(conn)
        rates = {r.currency: r.rate for r in conn.execute(select(RATE).order_by(RATE.c.currency))}
    records = [{"username": p.username, "name": p.name, "email": p.email, "manager": p.manager,
                "limit": None if p.limit is None else str(p.limit), "currency": p.currency, "delegate": p.delegate,
                "away_from": _iso(p.away_from, time.min), "away_until": _iso(p.away_until, time.max),
                "groups": list(p.groups)} for p in people]
    if suffix == ".json":
        text = json.dumps({"people": records, "rates": rates}, indent=2, ensure_ascii=False)
        path.write_text(text + "\n", encoding="utf-8")
        return [path]
    files = {path: (FIELDS, [[*r.values()][:-1] + [";".join(r["groups"])] for r in records])}
    if rates:
        files[path.with_name(f"{path.stem}-rates{path.suffix}")] = (RATE_FIELDS, list(rates.items()))
    for file, (header, rows) in files.items():
        with file.open("w", newline="", encoding="utf-8") as out:
            csv.writer(out).writerows([header, *(["" if v is None else v for v in row] for row in rows)])
    return list(files)


def _iso(moment: datetime | None, day_edge: time) -> str | None:
    if moment is None:
        return None
    moment = moment.astimezone(UTC)
    return moment.date().isoformat() if moment.timetz() == day_edge.replace(tzinfo=UTC) else moment.isoformat()
