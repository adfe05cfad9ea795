"""End-to-end fixtures: one real Label Studio for the run, real daemons against it.

The closed loop runs once per variant: SQLite with a legacy token, and
PostgreSQL with a personal access token, so both stores and both token kinds
meet the real thing.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.conftest import DEFAULT_TEST_SERVER, WEBHOOK_SECRET
from tests.daemon_process import Daemon
from tests.e2e.labelstudio import (
    LabelStudio,
    create_personal_access_token,
    create_project,
)

LABEL_CONFIG = (
    '<View><Text name="text" value="$text"/>'
    '<Choices name="label" toName="text">'
    '<Choice value="OK"/><Choice value="NG"/></Choices></View>'
)


@pytest.fixture(scope="session")
def label_studio() -> Iterator[LabelStudio]:
    with LabelStudio() as studio:
        studio.personal_access_token = create_personal_access_token(
            studio.base_url, studio.token
        )
        yield studio


@dataclass
class Loop:
    """What the steps of one closed-loop run share."""

    studio: LabelStudio
    daemon: Daemon
    project_id: int
    token_kind: str
    tokens: dict[str, str] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)

    def as_admin(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return self.daemon.call(method, path, body, token=self.tokens["admin"])

    def as_annotator(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return self.daemon.call(method, path, body, token=self.tokens["annotator"])

    def studio_api(
        self, method: str, path: str, body: Any = None, **query: Any
    ) -> tuple[int, Any]:
        return self.studio.api(method, path, body, query or None)


def _postgres_database() -> Iterator[str]:
    server = os.environ.get("TEST_DATABASE_URL", DEFAULT_TEST_SERVER)
    name = f"labelhub_e2e_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(server, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but PostgreSQL at {server} is unreachable: {exc}")
        pytest.skip(f"PostgreSQL is unreachable: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield server.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(
    scope="module",
    params=[
        ("sqlite", "legacy"),
        ("postgresql", "personal_access_token"),
        ("sqlite", "personal_access_token"),
        ("postgresql", "legacy"),
    ],
    ids=[
        "sqlite-legacy-token",
        "postgresql-personal-access-token",
        "sqlite-personal-access-token",
        "postgresql-legacy-token",
    ],
)
def loop(
    request: pytest.FixtureRequest,
    label_studio: LabelStudio,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Loop]:
    store, token_kind = request.param
    workdir: Path = tmp_path_factory.mktemp(f"e2e-{store}")
    databases = _postgres_database() if store == "postgresql" else None
    database_url = next(databases) if databases else f"sqlite:///{workdir}/labelhub.db"
    project_id = create_project(
        label_studio.base_url, label_studio.token, f"e2e {store}", LABEL_CONFIG
    )
    token = (
        label_studio.token
        if token_kind == "legacy"
        else label_studio.personal_access_token
    )
    daemon = Daemon(
        workdir,
        DATABASE_URL=database_url,
        LS_BASE_URL=label_studio.base_url,
        LS_API_TOKEN=token,
        LS_PROJECT_ID=str(project_id),
        WEBHOOK_SECRET=WEBHOOK_SECRET,
        JOB_POLL_S="0.2",
    )
    daemon.start("--demo")
    yield Loop(label_studio, daemon, project_id, token_kind)
    daemon.stop()
    if databases:
        next(databases, None)
