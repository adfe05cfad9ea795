"""Fixtures: every app test runs on SQLite and on a real PostgreSQL.

PostgreSQL is the server named by TEST_DATABASE_URL (default: the local one);
a fresh database is created for the run and dropped after it. When CI is set
and that server cannot be reached, the run fails instead of skipping.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import json
import os
import shutil
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import text, update

from labelhub import keys
from labelhub.config import Settings
from labelhub.daemon import create_app
from labelhub.logs import configure_logging
from labelhub.store.engine import create_engine
from labelhub.store.migrate import migrate
from labelhub.store.models import Base, Task
from labelhub.store.urls import to_async_url

DEFAULT_TEST_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
JWT_SECRET = "test-secret-" + "x" * 60
WEBHOOK_SECRET = "hook-secret-" + "y" * 40
# Variables a developer's shell may hold that must not steer the tests.
_ENV_PREFIXES = ("LABELHUB_", "LS_", "POSTGRES_", "RECONCILE_", "JOB_", "WEBHOOK_")
_ENV_NAMES = ("DATABASE_URL", "JWT_SECRET", "JWT_EXPIRE_MINUTES", "BCRYPT_ROUNDS")


class LogLines:
    """JSON log lines written while a test runs."""

    def __init__(self) -> None:
        self.buffer = io.StringIO()

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        lines = [json.loads(line) for line in self.buffer.getvalue().splitlines()]
        return [line for line in lines if name is None or line["event"] == name]

    def text(self) -> str:
        return self.buffer.getvalue()


@pytest.fixture(autouse=True)
def logs() -> LogLines:
    captured = LogLines()
    configure_logging("debug", "json", stream=captured.buffer)
    return captured


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith(_ENV_PREFIXES) or name in _ENV_NAMES:
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env or labelhub.db is read


def _run(coroutine: Awaitable[Any]) -> Any:
    # In a thread of its own: another library's loop (Playwright's) may be
    # running in this one.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()  # type: ignore[arg-type]


async def _migrate_url(url: str) -> None:
    engine = create_engine(to_async_url(url))
    try:
        await migrate(engine)
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "labelhub.db"
    _run(_migrate_url(f"sqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str | None]:
    server = os.environ.get("TEST_DATABASE_URL", DEFAULT_TEST_SERVER)
    name = f"labelhub_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(server, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but PostgreSQL at {server} is unreachable: {exc}")
        yield None
        return
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = server.rsplit("/", 1)[0] + "/" + name
    _run(_migrate_url(url))
    yield url
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _truncate(url: str) -> None:
    engine = create_engine(to_async_url(url))
    tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
    async with engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    await engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest,
    sqlite_template: Path,
    postgres_url: str | None,
    tmp_path: Path,
) -> str:
    """A freshly migrated, empty database of each kind."""
    if request.param == "sqlite":
        path = tmp_path / "labelhub.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite:///{path}"
    if postgres_url is None:
        pytest.skip("PostgreSQL is unreachable (set CI to make this an error)")
    _run(_truncate(postgres_url))
    return postgres_url


@pytest.fixture
def make_settings(database_url: str) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "jwt_secret": JWT_SECRET,
            "bcrypt_rounds": 4,
            "labelhub_migrate_on_start": False,
            "labelhub_demo": True,
            "reconcile_interval_s": 0,
            "labelhub_log_format": "json",
            "job_workers": 0,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return make


Client = TestClient[Any, Any]


@pytest.fixture
async def client(
    aiohttp_client: Callable[..., Awaitable[Client]],
    make_settings: Callable[..., Settings],
) -> Client:
    return await aiohttp_client(create_app(make_settings()))


async def login(client: Client, username: str, password: str) -> dict[str, str]:
    """Authorization headers for `username`, failing the test if login fails."""
    response = await client.post(
        "/auth/login", json={"username": username, "password": password}
    )
    assert response.status == 200, await response.text()
    token = (await response.json())["access_token"]
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def admin_for() -> Callable[[Client], Awaitable[dict[str, str]]]:
    """Log in as the demo admin on another client than the default one."""

    async def log_in(other: Client) -> dict[str, str]:
        return await login(other, "admin", "admin123")

    return log_in


@pytest.fixture
async def admin(client: Client) -> dict[str, str]:
    return await login(client, "admin", "admin123")


@pytest.fixture
async def ann(client: Client) -> dict[str, str]:
    return await login(client, "ann", "ann123")


@pytest.fixture
async def fake_studio():
    from tests.fake_studio import FakeStudio

    async with FakeStudio() as fake:
        yield fake


@pytest.fixture
def studio_settings(make_settings, fake_studio):
    """Settings for a daemon wired to the fake Label Studio's project 1."""

    def make(**overrides: Any) -> Settings:
        project = fake_studio.project("labelhub")
        values = {
            "ls_base_url": fake_studio.url,
            "ls_api_token": fake_studio.legacy_token,
            "ls_project_id": project,
            "webhook_secret": WEBHOOK_SECRET,
            "ls_retries": 2,
            "ls_timeout_s": 5.0,
            # Items of a batch whose answer was lost are sent again soon:
            # the fake either carried a batch out at once or not at all.
            "ls_import_settle_s": 0.5,
        }
        values.update(overrides)
        return make_settings(**values)

    return make


@pytest.fixture
async def hooked(aiohttp_client, make_settings):
    """A daemon with a dataset whose items are Label Studio tasks 101..103."""
    settings = make_settings(webhook_secret=WEBHOOK_SECRET, ls_project_id=1)
    client = await aiohttp_client(create_app(settings))
    token = (
        await (
            await client.post(
                "/auth/login", json={"username": "admin", "password": "admin123"}
            )
        ).json()
    )["access_token"]
    client.admin = {"Authorization": f"Bearer {token}"}
    await client.post(
        "/datasets",
        json={
            "name": "d",
            "ls_project_id": 1,
            "items": [{"text": f"rt {i}"} for i in range(3)],
        },
        headers=client.admin,
    )
    await set_tasks(client, {1: 101, 2: 102, 3: 103})
    return client


async def set_tasks(client, mapping):
    async with client.app[keys.SESSIONS].begin() as session:
        for task_id, ls_task_id in mapping.items():
            await session.execute(
                update(Task)
                .where(Task.id == task_id)
                .values(status="imported", ls_project_id=1, ls_task_id=ls_task_id)
            )


@pytest.fixture
async def synced(aiohttp_client, studio_settings, fake_studio):
    """A daemon whose 20-item dataset is imported into the fake's project."""

    async def start(count=20, **overrides):
        client = await aiohttp_client(create_app(studio_settings(**overrides)))
        client.admin = await login(client, "admin", "admin123")
        client.project = client.app[keys.SETTINGS].ls_project_id
        items = [{"text": f"item {i}"} for i in range(count)]
        await client.post(
            "/datasets", json={"name": "d", "items": items}, headers=client.admin
        )
        await client.post("/datasets/1/import_to_ls", headers=client.admin)
        await drain_jobs(client)
        fake_studio.deliver = False  # labelhub is "down": no webhook arrives
        return client

    return start


async def drain_jobs(client):
    """Run queued jobs in this process until none is left."""
    while await client.app[keys.RUNNER].run_once():
        pass


@pytest.fixture
async def daemon(aiohttp_client, studio_settings):
    """A daemon wired to the fake Label Studio, logged in as admin."""

    async def start(**overrides):
        client = await aiohttp_client(create_app(studio_settings(**overrides)))
        client.admin = await login(client, "admin", "admin123")
        return client

    return start
