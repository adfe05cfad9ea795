"""The Label Studio API as labelhub uses it."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar, overload
from urllib.parse import quote

import aiohttp

from labelhub.config import Settings
from labelhub.errors import StudioError
from labelhub.metrics import Metrics
from labelhub.studio.auth import StudioAuth, auth_for
from labelhub.studio.transport import Transport, decode_json

# Label Studio parses Datetime filter values with exactly this format.
FILTER_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
LABELHUB_ID = "labelhub_task_id"
T = TypeVar("T")
# What Label Studio (Django's paginator) answers past the last page, with 404.
PAST_LAST_PAGE = "Invalid page."


@dataclass(frozen=True, slots=True)
class TaskPage(Generic[T]):
    """Tasks from one list request, each as the caller's `parse` made it;
    `total` counts the query's matches from the page's start on (Label
    Studio's own figure), when it gave one; `last_id` is the last task's id."""

    tasks: list[T]
    total: int | None
    last_id: int


class StudioClient:
    """Calls to one Label Studio; one per process, over a shared session."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    @classmethod
    def create(
        cls,
        session: aiohttp.ClientSession,
        base_url: str,
        token: str,
        *,
        timeout_s: float = 30.0,
        retries: int = 4,
        metrics: Metrics | None = None,
    ) -> StudioClient:
        auth = auth_for(token, base_url.rstrip("/"), timeout_s)
        return cls(
            Transport(
                session,
                base_url,
                auth,
                timeout_s=timeout_s,
                retries=retries,
                metrics=metrics,
            )
        )

    @classmethod
    def from_settings(
        cls,
        session: aiohttp.ClientSession,
        settings: Settings,
        metrics: Metrics | None = None,
    ) -> StudioClient | None:
        """The configured client, or None when Label Studio is not configured."""
        if not (settings.ls_base_url and settings.ls_api_token):
            return None
        return cls.create(
            session,
            settings.ls_base_url,
            settings.ls_api_token.get_secret_value(),
            timeout_s=settings.ls_timeout_s,
            retries=settings.ls_retries,
            metrics=metrics,
        )

    @property
    def base_url(self) -> str:
        return self._transport.base_url

    @property
    def auth(self) -> StudioAuth:
        return self._transport.auth

    async def check_health(self, timeout_s: float) -> str:
        """ "ok" when Label Studio answers and accepts the token, else why not."""
        try:
            async with asyncio.timeout(timeout_s):
                await self.whoami()
        except TimeoutError:
            return f"no answer within {timeout_s:g} s"
        except StudioError as exc:
            return exc.reason
        return "ok"

    async def whoami(self) -> dict[str, Any]:
        path = "/api/current-user/whoami"
        return _object(path, await self._get(path, "whoami"))

    async def get_project(self, project_id: int) -> dict[str, Any]:
        path = f"/api/projects/{project_id}"
        return _object(path, await self._get(path, "project"))

    async def import_tasks(
        self,
        project_id: int,
        tasks: Sequence[dict[str, Any]],
        encoded: bytes | None = None,
    ) -> list[int]:
        """Create tasks; their new ids, in the order given. Never repeated blindly.

        `encoded` is `tasks` already encoded (`encode_json`), for a caller that
        did it while waiting on something else.
        """
        path = f"/api/projects/{project_id}/import"
        answer = await self._transport.call(
            "POST",
            path,
            endpoint="import",
            safe=False,
            params={"return_task_ids": "true"},
            json_body=encoded if encoded is not None else list(tasks),
        )
        ids = answer.get("task_ids") if isinstance(answer, dict) else None
        if not isinstance(ids, list) or len(ids) != len(tasks):
            got = len(ids) if isinstance(ids, list) else "no"
            raise StudioError(
                f"POST {path}",
                f"answered {got} task ids for {len(tasks)} tasks",
                kind="invalid",
                maybe_applied=True,
            )
        return [int(task_id) for task_id in ids]

    @overload
    def iter_task_pages(
        self,
        project_id: int,
        *,
        page_size: int = ...,
        fields_all: bool = ...,
        filters: Sequence[dict[str, Any]] = ...,
    ) -> AsyncIterator[TaskPage[dict[str, Any]]]: ...

    @overload
    def iter_task_pages(
        self,
        project_id: int,
        *,
        parse: Callable[[Any], T],
        page_size: int = ...,
        fields_all: bool = ...,
        filters: Sequence[dict[str, Any]] = ...,
    ) -> AsyncIterator[TaskPage[T]]: ...

    async def iter_task_pages(
        self,
        project_id: int,
        *,
        parse: Callable[[Any], Any] | None = None,
        page_size: int = 1000,
        fields_all: bool = True,
        filters: Sequence[dict[str, Any]] = (),
    ) -> AsyncIterator[TaskPage[Any]]:
        """The project's tasks in ascending id order, one page at a time.

        Pages are cut by id (`id > last seen`), not by page number, so tasks
        created or deleted during the scan cannot shift a task out of it. The
        next page is asked for as soon as this one is decoded and fetched
        while the caller works on this one; no more than those two pages are
        held. The scan ends when Label Studio's total is reached, at an empty
        page, or at the 404 it answers past the last page. Each task is given
        to `parse` as soon as its page is decoded (by default it stays as
        sent).
        """
        request = _PageRequest(project_id, page_size, fields_all, filters)
        pending = asyncio.ensure_future(self._task_answer(request, 0))
        try:
            while True:
                answer = await pending
                with _collector_paused():
                    tasks, total = _read_answer(answer)
                    last_id = int(tasks[-1]["id"]) if tasks else 0
                    more = _more_after(tasks, total)
                    if more:
                        pending = asyncio.ensure_future(
                            self._task_answer(request, last_id)
                        )
                        await asyncio.sleep(0)  # send it before parsing this one
                    if parse is not None:
                        tasks = [parse(task) for task in tasks]
                if tasks:
                    yield TaskPage(tasks, total, last_id)
                if not more:
                    return
        finally:
            pending.cancel()

    async def _task_answer(self, request: _PageRequest, after_id: int) -> bytes | None:
        """The undecoded answer for the page after `after_id`; None past the end."""
        filters = request.filters
        items = [*filters, id_after(after_id)] if after_id else list(filters)
        query = {
            "filters": {"conjunction": "and", "items": items},
            "ordering": ["tasks:id"],
        }
        params = {
            "project": str(request.project_id),
            "page": "1",
            "page_size": str(request.page_size),
            # Label Studio URL-decodes `query` once more after the framework
            # did, so a '%' in it must arrive encoded twice.
            "query": quote(json.dumps(query, separators=(",", ":"))),
        }
        if request.fields_all:
            params["fields"] = "all"
        try:
            body: bytes = await self._transport.call(
                "GET",
                "/api/tasks",
                endpoint="tasks",
                safe=True,
                params=params,
                raw_answer=True,
            )
        except StudioError as exc:
            # Past the last page Django answers "Invalid page."; any other
            # 404 (no such project, no access to it) must not read as an
            # empty project, or a full pass would retire every task.
            if exc.http_status == 404 and PAST_LAST_PAGE in exc.reason:
                return None
            raise
        return body

    async def find_labelhub_tasks(
        self, project_id: int, lowest: int, highest: int
    ) -> list[dict[str, Any]]:
        """The project's tasks whose labelhub task id lies in [lowest, highest]."""
        found: list[dict[str, Any]] = []
        wanted = [
            {
                "filter": f"filter:tasks:data.{LABELHUB_ID}",
                "operator": "in",
                "type": "Number",
                "value": {"min": lowest, "max": highest},
            }
        ]
        async for page in self.iter_task_pages(
            project_id, fields_all=False, filters=wanted
        ):
            found.extend(page.tasks)
        return found

    async def list_webhooks(self, project_id: int) -> list[dict[str, Any]]:
        answer = await self._get(f"/api/webhooks/?project={project_id}", "webhooks")
        return answer if isinstance(answer, list) else []

    async def create_webhook(
        self, project_id: int, spec: dict[str, Any]
    ) -> dict[str, Any]:
        answer = await self._transport.call(
            "POST",
            "/api/webhooks/",
            endpoint="webhooks",
            safe=False,
            json_body={"project": project_id, **spec},
        )
        return _object("/api/webhooks/", answer)

    async def update_webhook(
        self, webhook_id: int, spec: dict[str, Any]
    ) -> dict[str, Any]:
        """Rewrite a webhook; `spec` must hold `actions` or Label Studio clears them."""
        path = f"/api/webhooks/{webhook_id}/"
        answer = await self._transport.call(
            "PATCH", path, endpoint="webhooks", safe=True, json_body=spec
        )
        return _object(path, answer)

    async def delete_webhook(self, webhook_id: int) -> None:
        await self._transport.call(
            "DELETE", f"/api/webhooks/{webhook_id}/", endpoint="webhooks", safe=True
        )

    async def _get(self, path: str, endpoint: str) -> Any:
        return await self._transport.call("GET", path, endpoint=endpoint, safe=True)


@dataclass(frozen=True, slots=True)
class _PageRequest:
    project_id: int
    page_size: int
    fields_all: bool
    filters: Sequence[dict[str, Any]]


def _more_after(tasks: list[Any], total: int | None) -> bool:
    """Whether tasks remain past this page.

    Not whether the page is full: Label Studio may be set to cap a page's
    size (`TASK_API_PAGE_SIZE_MAX`) below what was asked for. Its `total`
    counts the matches from the page's first task on; without one, the
    list goes on until an empty page (or the 404 past the last).
    """
    if not tasks:
        return False
    return total is None or len(tasks) < total


def _read_answer(body: bytes | None) -> tuple[list[Any], int | None]:
    """The tasks of a page's answer, and Label Studio's total when it gave one."""
    if body is None:
        return [], None
    answer = decode_json("GET /api/tasks", body)
    tasks = answer.get("tasks") if isinstance(answer, dict) else None
    if not isinstance(tasks, list):
        raise StudioError(
            "GET /api/tasks", "the answer holds no task list", kind="invalid"
        )
    total = answer.get("total")
    return tasks, total if isinstance(total, int) else None


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection inside the block.

    A page of a thousand tasks decodes into some ten thousand containers,
    all alive until `parse` has taken what it needs from them. Collections
    during that time free nothing: they walk the page and push it into the
    oldest generation, where every full collection walks it again with all
    else the process holds. Paused, the page is freed by reference counting
    and the collector only ever sees what `parse` kept. The block holds no
    await but the one turn of the event loop that sends the next request.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _object(path: str, answer: Any) -> dict[str, Any]:
    if not isinstance(answer, dict):
        raise StudioError(path, "the answer is not a JSON object", kind="invalid")
    return answer


def id_after(task_id: int) -> dict[str, Any]:
    return {
        "filter": "filter:tasks:id",
        "operator": "greater",
        "type": "Number",
        "value": task_id,
    }


def updated_after(moment: datetime) -> dict[str, Any]:
    """A filter on tasks whose `updated_at` is later than `moment` (UTC)."""
    return {
        "filter": "filter:tasks:updated_at",
        "operator": "greater",
        "type": "Datetime",
        "value": moment.astimezone(UTC).strftime(FILTER_TIME_FORMAT),
    }
