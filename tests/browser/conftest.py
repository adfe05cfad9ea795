"""Fixtures for the browser tests: a real daemon, seeded data, and Chromium.

Each test gets its own `labelhub serve --demo` in a subprocess on SQLite, so
no test sees another's assignments. Data is seeded over the HTTP API; since
no Label Studio runs here, tasks are marked imported and labeled directly in
the SQLite file (triggers keep the task counts). Playwright drives Debian's
Chromium, as its own browser download is not possible on CI.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Response,
    expect,
    sync_playwright,
)

from tests.daemon_process import Daemon
from tests.fake_studio import FakeStudio

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
LS_BASE_URL = "http://ls.example:8080"
LS_PROJECT_ID = 1
LS_TASK_OFFSET = 1000  # a task's Label Studio id is its labelhub id plus this
# What an import into Label Studio and annotations there would have done.
MARK_IMPORTED = (
    "UPDATE tasks SET status = 'imported', ls_project_id = ?, ls_task_id = id + ?"
    " WHERE id IN (SELECT id FROM tasks WHERE dataset_id = ? ORDER BY id LIMIT ?)"
)
MARK_LABELED = (
    "UPDATE tasks SET status = 'labeled', label = ? WHERE id IN"
    " (SELECT id FROM tasks WHERE dataset_id = ? ORDER BY id LIMIT ? OFFSET ?)"
)
UI_TIMEOUT_MS = 5_000
# The browser logs every 4xx answer as a failed load; those are expected.
EXPECTED_CONSOLE_ERROR = "Failed to load resource"


class ApiCallFailed(Exception):
    pass


class BrowserDaemon(Daemon):
    """The daemon, and its SQLite file for seeding what Label Studio would do."""

    @property
    def db_path(self) -> Path:
        return self.workdir / "labelhub.db"

    def api(
        self, method: str, path: str, body: Any = None, token: str | None = None
    ) -> Any:
        """The JSON answer of an API call; ApiCallFailed on an error status."""
        status, answer = self.call(method, path, body, token)
        if status >= 400:
            raise ApiCallFailed(f"{method} {path}: {status} {answer}")
        return answer

    def execute(self, statement: str, *params: Any) -> None:
        """Write to the daemon's SQLite file while it runs (it uses WAL)."""
        with sqlite3.connect(self.db_path, timeout=10) as connection:
            connection.execute(statement, params)
        connection.close()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[BrowserDaemon]:
    """`labelhub serve --demo` on a free port, stopped with SIGTERM after the test."""
    running = BrowserDaemon(tmp_path, LS_BASE_URL=LS_BASE_URL).start("--demo")
    yield running
    exit_code = running.stop()
    assert exit_code == 0, running.log_tail()


class StudioThread:
    """The fake Label Studio on an event loop of its own, in a thread.

    The tests here are synchronous (Playwright's sync API); `run` calls
    something on the fake inside its loop and waits for it.
    """

    def __init__(self) -> None:
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.fake: FakeStudio | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),))

    async def _serve(self) -> None:
        async with FakeStudio() as fake:
            self.fake = fake
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> StudioThread:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the fake Label Studio did not start")
        return self

    def __exit__(self, *_: object) -> None:
        assert self._loop is not None
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def run(self, work: Callable[[FakeStudio], Any]) -> Any:
        """`work(fake)` inside the fake's loop; its result."""
        assert self._loop is not None

        async def call() -> Any:
            return work(self.fake)  # type: ignore[arg-type]

        future = asyncio.run_coroutine_threadsafe(call(), self._loop)
        return future.result(timeout=10)


@pytest.fixture
def studio() -> Iterator[StudioThread]:
    with StudioThread() as running:
        yield running


@pytest.fixture
def wired_daemon(tmp_path: Path, studio: StudioThread) -> Iterator[BrowserDaemon]:
    """The daemon wired to the fake Label Studio's project."""
    fake = studio.fake
    assert fake is not None
    project = studio.run(lambda fake: fake.project("browser"))
    running = BrowserDaemon(
        tmp_path,
        LS_BASE_URL=fake.url,
        LS_API_TOKEN=fake.legacy_token,
        LS_PROJECT_ID=str(project),
        JOB_POLL_S="0.2",
    ).start("--demo")
    yield running
    exit_code = running.stop()
    assert exit_code == 0, running.log_tail()


@dataclass
class Seeded:
    """The dataset `browser-demo` and an admin token to change it with."""

    dataset_id: int
    admin_token: str


@pytest.fixture
def seeded(daemon: BrowserDaemon) -> Seeded:
    """`browser-demo` (100 items: 20 new, 71 imported, 6 OK, 3 NG) and `bob`.

    Nothing is assigned yet.
    """
    admin = daemon.login("admin", "admin123")
    dataset_id = daemon.api("POST", "/datasets", {"name": "browser-demo"}, admin)["id"]
    daemon.api(
        "POST",
        "/users",
        {"username": "bob", "password": "bob-password", "role": "annotator"},
        admin,
    )

    daemon.execute(MARK_IMPORTED, LS_PROJECT_ID, LS_TASK_OFFSET, dataset_id, 80)
    daemon.execute(MARK_LABELED, "OK", dataset_id, 6, 0)
    daemon.execute(MARK_LABELED, "NG", dataset_id, 3, 6)
    return Seeded(dataset_id, admin)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        reason = f"no Chromium at {CHROMIUM}; install Debian's `chromium` package"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set, but {reason}")
        pytest.skip(reason)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, daemon: BrowserDaemon) -> Iterator[Page]:
    """A fresh tab on the daemon; fails the test on script errors or CSP refusals."""
    context = browser.new_context(
        base_url=daemon.url, viewport={"width": 1280, "height": 900}
    )
    context.set_default_timeout(UI_TIMEOUT_MS)
    tab = context.new_page()
    problems: list[str] = []

    def note_console(message: ConsoleMessage) -> None:
        if message.type == "error" and EXPECTED_CONSOLE_ERROR not in message.text:
            problems.append(message.text)

    def note_response(response: Response) -> None:
        # API answers of 4xx are expected (and the browser logs each as a
        # failed load); the page's own files must always load.
        path = urlsplit(response.url).path
        own_file = path == "/" or path.startswith("/static/")
        if own_file and response.status >= 400:
            problems.append(f"{path} answered {response.status}")

    tab.on("console", note_console)
    tab.on("response", note_response)
    tab.on("pageerror", lambda error: problems.append(str(error)))
    yield tab
    context.close()
    assert problems == [], "the page logged errors"


@pytest.fixture
def sign_in(page: Page) -> Callable[[str, str], None]:
    """Open the dashboard and sign in through its form."""

    def sign_in_as(username: str, password: str) -> None:
        page.goto("/")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_text(f"Signed in as {username}")).to_be_visible()

    return sign_in_as


@pytest.fixture(scope="session")
def screenshot() -> Callable[[Page, str], None]:
    """Save the whole page as artifacts/screenshots/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def save(tab: Page, name: str) -> None:
        tab.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)

    return save


@pytest.fixture
def rows_of(page: Page) -> Callable[[str], list[list[str]]]:
    """The text of each body cell, row by row, of the table with this caption."""

    def read(caption: str) -> list[list[str]]:
        table = page.get_by_role("table", name=caption)
        expect(table).to_be_visible()
        return table.evaluate(
            "table => [...table.tBodies[0].rows].map("
            "row => [...row.cells].map(cell => cell.innerText.trim()))"
        )

    return read
