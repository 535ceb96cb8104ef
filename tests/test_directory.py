"""Tests of the org directory: its files, the functions diagrams call on it, and `baton directory`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from baton.engine import store
from baton.engine.directory import SqlDirectory, functions
from baton.engine.errors import InvalidData
from baton.engine.orgfile import export_file, import_file
from baton.engine.scripting import Sandbox

DATA = Path(__file__).parent / "data"
HEADER = "username,name,email,manager,limit,currency,delegate,away_from,away_until,groups"
USERS = ("vera", "dmitri", "maria", "sam", "lena", "omar", "zoe")
SMALL = [HEADER, "vera,Vera,,,,USD,,,,finance", "dmitri,Dmitri,,vera,20000,USD,,,,finance",
         "maria,Maria,,dmitri,5000,EUR,sam,,,purchasing", "sam,Sam,,maria,1000,USD,,,,purchasing"]
DURING = datetime(2024, 8, 12, tzinfo=UTC)  # maria (delegate sam) and lena (delegate maria) are away
AFTER = datetime(2024, 9, 1, tzinfo=UTC)  # maria is back; lena is away for good
SCRIPT = Path(sys.executable).with_name("baton")
BATON = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "baton.engine.cli"]


@pytest.fixture
def db(database_url):
    return store.connect(database_url)


@pytest.fixture
def org(db):
    """The example org of tests/data/directory_people.json, with EUR and GBP rates."""
    assert import_file(db, DATA / "directory_people.json") == {"people": 6, "groups": 4, "memberships": 7, "rates": 2}
    return db


def people(db):
    directory = SqlDirectory(db)
    return {user: directory.person(user) for user in USERS}


def snapshot(db, tmp_path):
    export_file(db, tmp_path / "snapshot.json")
    return json.loads((tmp_path / "snapshot.json").read_text())


def write(path: Path, content: str | list[str] | dict) -> Path:
    text = json.dumps(content) if isinstance(content, dict) else content
    path.write_text("\n".join(text) + "\n" if isinstance(text, list) else text, encoding="utf-8")
    return path


def at(moment: datetime, directory: SqlDirectory) -> dict:
    return functions(directory, base_currency="USD", now=lambda: moment)


def test_json_round_trip_keeps_every_person(org, tmp_path):
    before = people(org)
    maria = before["maria"]
    assert (maria.limit, maria.currency, maria.delegate) == (5000, "EUR", "sam")
    assert maria.groups == ("approvers", "purchasing")
    assert (maria.away_from, maria.away_until) == (datetime(2024, 8, 1, tzinfo=UTC),
                                                   datetime(2024, 8, 15, 23, 59, 59, 999999, tzinfo=UTC))
    assert before["lena"].away_from == datetime(2024, 8, 10, 7, tzinfo=UTC)
    assert (before["vera"].limit, before["omar"].currency, before["zoe"]) == (None, "USD", None)
    assert export_file(org, tmp_path / "org.json") == [tmp_path / "org.json"]
    import_file(org, write(tmp_path / "other.json", {"people": [{"username": "zoe", "name": "Zoe"}]}))
    assert people(org) != before
    import_file(org, tmp_path / "org.json")
    assert people(org) == before
    assert SqlDirectory(org).rate("EUR") == Decimal("1.08")


def test_csv_round_trip_writes_the_rates_beside_the_people(db, tmp_path):
    assert import_file(db, DATA / "directory_rates.csv") == {"people": 0, "groups": 0, "memberships": 0, "rates": 2}
    assert import_file(db, DATA / "directory_people.csv") == {"people": 6, "groups": 4, "memberships": 7, "rates": 0}
    before = people(db)
    assert export_file(db, tmp_path / "org.csv") == [tmp_path / "org.csv", tmp_path / "org-rates.csv"]
    assert (tmp_path / "org-rates.csv").read_text().splitlines() == ["currency,rate", "EUR,1.08", "GBP,1.27"]
    assert 'lena,"Berg, Lena",,maria,0,GBP,maria,2024-08-10T07:00:00+00:00,,' in (tmp_path / "org.csv").read_text()
    import_file(db, write(tmp_path / "other.json", {"people": [{"username": "zoe", "name": "Zoe"}], "rates": {}}))
    assert people(db) != before
    import_file(db, tmp_path / "org-rates.csv")
    import_file(db, tmp_path / "org.csv")
    assert people(db) == before


def test_the_csv_and_json_examples_describe_the_same_org(org, tmp_path):
    other = store.connect(f"sqlite:///{tmp_path / 'other.db'}")
    import_file(other, DATA / "directory_rates.csv")
    import_file(other, DATA / "directory_people.csv")
    assert people(other) == people(org)


@pytest.mark.parametrize(("change", "problem"), [
    ("zoe,Zoe,,bob,1,USD,,,,", "line 6: unknown manager 'bob'"),
    ("vera,Vera,,maria,,USD,,,,finance", "line 2: the manager chain is a cycle: vera -> maria -> dmitri -> vera"),
    ("zoe,Zoe,,zoe,1,USD,,,,", "line 6: the manager chain is a cycle: zoe -> zoe"),
    ("zoe,Zoe,,vera,-1,USD,,,,", "line 6: negative limit -1"),
    ("sam,Sam Two,,vera,1,USD,,,,", "line 6: duplicate user 'sam', first at bad.csv line 5"),
    ("zoe,Zoe,,vera,1,CHF,,,,", "line 6: unknown currency CHF: no rate, and the base currency is USD"),
    ("zoe,Zoe,,vera,1,USD,bob,,,", "line 6: unknown delegate 'bob'"),
    ("zoe,Zoe,,vera,1,USD,zoe,,,", "line 6: 'zoe' cannot be their own delegate"),
    ("zoe,Zoe,,vera,1,USD,,2024-08-02,2024-08-01,", "line 6: away_until 2024-08-01 is before away_from 2024-08-02"),
    ("zoe,Zoe,,vera,1k,USD,,,,", "line 6: limit '1k' is not a number"),
    ("zoe,Zoe,,vera,1,USD,,01/08/2024,,", "line 6: away_from '01/08/2024' is not an ISO 8601 date or datetime"),
    (",Zoe,,vera,1,USD,,,,", "line 6: missing username"),
])
def test_a_bad_csv_row_is_named_and_nothing_changes(db, tmp_path, change, problem):
    import_file(db, DATA / "directory_rates.csv")
    import_file(db, write(tmp_path / "good.csv", SMALL))
    before = snapshot(db, tmp_path)
    lines = SMALL + [change] if change.split(",")[0] != "vera" else [HEADER, change, *SMALL[2:]]
    with pytest.raises(InvalidData) as caught:
        import_file(db, write(tmp_path / "bad.csv", lines))
    assert [e.message for e in caught.value.errors] == [f"bad.csv {problem}"]
    assert snapshot(db, tmp_path) == before


@pytest.mark.parametrize(("change", "problem"), [
    ({"manager": "bob"}, "people[1] (zoe): unknown manager 'bob'"),
    ({"limit": -5}, "people[1] (zoe): negative limit -5"),
    ({"limit": "NaN"}, "people[1] (zoe): limit 'NaN' is not a number"),
    # the file's rates replace the stored ones, EUR among them
    ({"currency": "EUR"}, "people[1] (zoe): unknown currency EUR: no rate, and the base currency is USD"),
    ({"away_until": "2024-13-01"}, "people[1] (zoe): away_until '2024-13-01' is not an ISO 8601 date or datetime"),
    ({"groups": "finance"}, None),
    ({"groups": ["a;b"]}, "people[1] (zoe): groups must be a list of names without ';'"),
    ({"mgr": "vera"}, "people[1] (zoe): unknown field mgr"),
])
def test_a_bad_json_person_is_named_by_index_and_username(db, tmp_path, change, problem):
    import_file(db, DATA / "directory_people.json")
    before = snapshot(db, tmp_path)
    file = write(tmp_path / "bad.json", {"people": [{"username": "vera", "name": "Vera"},
                                                    {"username": "zoe", "name": "Zoe", **change}],
                                         "rates": {"GBP": "1.27"}})
    if problem is None:
        import_file(db, file)
        assert SqlDirectory(db).groups_of("zoe") == {"finance"}
        return
    with pytest.raises(InvalidData) as caught:
        import_file(db, file)
    assert [e.message for e in caught.value.errors] == [f"bad.json {problem}"]
    assert snapshot(db, tmp_path) == before


def test_every_problem_of_a_file_is_reported_one_per_row(db, tmp_path):
    with pytest.raises(InvalidData) as caught:
        import_file(db, DATA / "directory_bad.csv")
    assert [e.message.removeprefix("directory_bad.csv ") for e in caught.value.errors] == [
        "line 3: unknown manager 'bob'",
        "line 4: negative limit -5",
        "line 4: the manager chain is a cycle: carl -> dora -> carl",
        "line 5: unknown currency XYZ: no rate, and the base currency is USD",
        "line 6: duplicate user 'vera', first at directory_bad.csv line 2",
        "line 7: limit 'lots' is not a number",
        "line 7: unknown delegate 'zed'",
        "line 8: away_until 2024-08-01 is before away_from 2024-08-15",
        "line 8: 'fay' cannot be their own delegate",
        "line 9: away_from 'tomorrow' is not an ISO 8601 date or datetime",
    ]
    assert snapshot(db, tmp_path)["people"] == []


def test_rates_cannot_drop_a_currency_people_use(org, tmp_path):
    with pytest.raises(InvalidData, match="rates.csv: no rate for EUR, which maria use"):
        import_file(org, write(tmp_path / "rates.csv", ["currency,rate", "GBP,1.30"]))
    with pytest.raises(InvalidData, match=r"rates.csv line 2: USD is the base currency: its rate is 1"):
        import_file(org, write(tmp_path / "rates.csv", ["currency,rate", "USD,2", "EUR,1.1", "GBP,1.3"]))
    assert SqlDirectory(org).rate("GBP") == Decimal("1.27")


def test_the_base_currency_comes_from_the_environment(db, tmp_path, monkeypatch):
    monkeypatch.setenv("BATON_BASE_CURRENCY", "EUR")
    import_file(db, write(tmp_path / "org.csv", [HEADER, "eva,Eva,,,100,,,,,"]))
    assert SqlDirectory(db).person("eva").currency == "EUR"


def test_a_manager_change_is_seen_at_once(org, tmp_path):
    manager_of = at(AFTER, SqlDirectory(org))["manager_of"]
    assert manager_of("sam") == "maria"
    text = (DATA / "directory_people.csv").read_text().replace("sam@example.com,maria", "sam@example.com,dmitri")
    import_file(org, write(tmp_path / "moved.csv", text))
    assert manager_of("sam") == "dmitri"


def test_limits_compare_in_the_base_currency(org):
    f = at(AFTER, SqlDirectory(org))
    assert f["signature_limit"]("maria") == Decimal("5400")  # 5000 EUR at 1.08
    assert f["to_base"](5300, "USD") <= f["signature_limit"]("maria") < f["to_base"](5100, "EUR")
    assert f["to_base"]("100", "gbp") == Decimal("127")
    assert f["signature_limit"]("vera") == Decimal("Infinity")
    assert (f["signature_limit"]("lena"), f["signature_limit"]("nobody")) == (0, 0)
    with pytest.raises(InvalidData, match="'CHF'"):
        f["to_base"](1, "CHF")
    assert (f["manager_of"]("maria"), f["manager_of"]("vera"), f["manager_of"]("nobody")) == ("dmitri", None, None)
    assert f["members_of"]("finance") == ["dmitri", "vera"]


@pytest.mark.parametrize(("user", "now", "away"), [
    ("maria", datetime(2024, 7, 31, 23, 59, 59, tzinfo=UTC), False),
    ("maria", datetime(2024, 8, 1, tzinfo=UTC), True),
    ("maria", datetime(2024, 8, 15, 23, 59, 59, tzinfo=UTC), True),  # a date alone is the whole day
    ("maria", datetime(2024, 8, 16, tzinfo=UTC), False),
    ("lena", datetime(2024, 8, 10, 6, 59, tzinfo=UTC), False),  # from 09:00 at +02:00
    ("lena", datetime(2024, 8, 10, 7, tzinfo=UTC), True),
    ("lena", datetime(2030, 1, 1, tzinfo=UTC), True),  # no end
    ("omar", datetime(2000, 1, 1, tzinfo=UTC), True),  # no start
    ("omar", datetime(2024, 8, 1, tzinfo=UTC), False),
    ("sam", DURING, False),
    ("nobody", DURING, False),
])
def test_is_away_between_both_dates_inclusive(org, user, now, away):
    assert at(now, SqlDirectory(org))["is_away"](user) is away


@pytest.mark.parametrize(("now", "user", "requester", "expected"), [
    (AFTER, "dmitri", "sam", {"approver": "dmitri", "on_behalf_of": None, "limit": Decimal(20000)}),
    (AFTER, "maria", "lena", {"approver": "maria", "on_behalf_of": None, "limit": Decimal(5400)}),
    (DURING, "maria", "lena", {"approver": "sam", "on_behalf_of": "maria", "limit": Decimal(5400)}),
    (DURING, "maria", "sam", {"approver": "dmitri", "on_behalf_of": None, "limit": Decimal(20000)}),
    (AFTER, "maria", "maria", {"approver": "dmitri", "on_behalf_of": None, "limit": Decimal(20000)}),
    (DURING, "lena", "sam", {"approver": "lena", "on_behalf_of": None, "limit": Decimal(0)}),  # her delegate is away
    (AFTER, "vera", None, {"approver": "vera", "on_behalf_of": None, "limit": Decimal("Infinity")}),
    (AFTER, "vera", "vera", None),
    (AFTER, None, "sam", None),
    (AFTER, "nobody", "sam", None),
])
def test_acting_approver(org, now, user, requester, expected):
    assert at(now, SqlDirectory(org))["acting_approver"](user, requester) == expected


def test_diagrams_call_the_functions_in_the_sandbox(org):
    box = Sandbox(at(DURING, SqlDirectory(org)), size=1)
    try:
        data = box.execute("signer = acting_approver(manager_of(starter), starter)\n"
                           "ok = to_base(amount, currency) <= signer['limit']", {"starter": "lena", "amount": Decimal(
                               "4000"), "currency": "EUR"})
        assert data["signer"] == {"approver": "sam", "on_behalf_of": "maria", "limit": Decimal(5400)}
        assert data["ok"] is True
        assert box.evaluate("signature_limit('vera') > to_base(amount, 'GBP')", {"amount": 10**9}) is True
    finally:
        box.close()


def run(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([*BATON, *args], capture_output=True, text=True, timeout=120, env=os.environ)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def test_cli_imports_exports_and_names_each_bad_row(sqlite_url, tmp_path):
    done = run("directory", "import", str(DATA / "directory_people.json"), "--database", sqlite_url)
    assert (done.returncode, done.stdout) == (0, "imported 6 people, 4 groups, 7 memberships, 2 rates\n")
    done = run("--database", sqlite_url, "directory", "import", str(DATA / "directory_bad.csv"))
    assert done.returncode == 2
    lines = done.stderr.removeprefix("baton: ").splitlines()
    assert len(lines) == 10 and lines[0] == "directory_bad.csv line 3: unknown manager 'bob'"
    done = run("directory", "export", str(tmp_path / "org.csv"), "--database", sqlite_url)
    assert done.returncode == 0 and (tmp_path / "org-rates.csv").exists()
    assert run("directory", "import", str(tmp_path / "org.csv"), "--database", sqlite_url).returncode == 0
    assert run("directory", "import", str(tmp_path / "org.txt"), "--database", sqlite_url).returncode == 2
