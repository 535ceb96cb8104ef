"""Fixtures: a fresh database for every test, on SQLite and (when available) a real PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

HERE = Path(__file__).parent
BPMN = HERE / "bpmn"
PROCESSES = HERE.parent / "processes"
POSTGRES = os.environ.get("BATON_TEST_POSTGRES_URL")
PASSWORD = "correct horse battery"


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("TZ", "UTC")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'baton.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    if not POSTGRES:
        pytest.skip("no PostgreSQL: set BATON_TEST_POSTGRES_URL or run the README's test command")
    name = f"baton_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.engine.make_url(POSTGRES).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """The same test on both databases."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def engine(database_url: str) -> Iterator[Any]:
    """An Engine on the test's database (SQLite, and PostgreSQL when available), closed after the test."""
    from baton.engine import Engine

    made = Engine(database_url)
    yield made
    made.close()


@pytest.fixture
def fresh() -> Iterator[Callable[[str], Any]]:
    """A new Engine on a database; its script processes are stopped after the test."""
    made: list[Any] = []

    def make(url: str) -> Any:
        from baton.engine import Engine

        made.append(Engine(url))
        return made[-1]

    yield make
    for engine in made:
        engine.close()


def diagram(name: str) -> Path:
    return BPMN / name


@pytest.fixture(autouse=True)
def _real_time() -> Iterator[None]:
    """Every test starts and ends on the real clock, whatever it advanced."""
    from baton.engine.clock import clock

    clock.reset()
    yield
    clock.reset()


@pytest.fixture(autouse=True)
def _state_as_spiffworkflow_writes_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every state a test saves is the dictionary SpiffWorkflow's own serializer makes of it (specs.state_dict)."""
    from baton.engine import specs

    fast = specs.state_dict

    def checked(workflow: Any) -> dict[str, Any]:
        made = fast(workflow)
        assert made == specs.SERIALIZER.to_dict(workflow)
        return made

    monkeypatch.setattr(specs, "state_dict", checked)


@contextmanager
def web_app(url: str, users: dict[str, tuple[str, ...]], *, org: bool = False, **config: Any) -> Iterator[Any]:
    """The web app on a database where each user signs in with PASSWORD and the roles given (and the demo org)."""
    from baton.engine import Engine, accounts
    from baton.engine.orgfile import import_file
    from baton.web import create_app

    engine = Engine(url)
    if org:
        import_file(engine.db.engine, PROCESSES / "demo" / "org.json")
    for user, roles in users.items():
        accounts.set_password(engine.db.engine, user, PASSWORD, roles)
    engine.close()
    app = create_app({"BATON_DATABASE_URL": url, "SECRET_KEY": "test", "TESTING": True, **config})
    yield app
    app.extensions["baton"].close()
