"""An in-process fake of the parts of Label Studio 1.23's HTTP API labelhub uses.

It reproduces what was measured on a real Label Studio 1.23.2 (see
``/work/shared/labelstudio/FINDINGS.md``): response shapes and status codes, error
bodies ``{"id", "status_code", "version", "detail", "exc_info"}``, legacy ``Token``
and JWT ``Bearer`` auth, the data-manager task list with its ``query`` filters
(URL-decoded twice, like the real server), task-id reuse on SQLite, synchronous
at-most-once webhooks with a timeout, and the webhook PATCH that resets ``actions``.
Faults (error answers, slow answers, dropped connections, errors after the commit)
are injected with :meth:`FakeStudio.fail`.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import operator
import re
import secrets
import time
import uuid
from bisect import bisect_left, bisect_right, insort
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any
from urllib.parse import unquote

import aiohttp
import jwt
from aiohttp import web

__all__ = [
    "DEFAULT_CONFIG",
    "DEFAULT_LEGACY_TOKEN",
    "TIME_FORMAT",
    "FakeStudio",
    "Fault",
]


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


LS_VERSION = "1.23.2"
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_EPOCH = datetime(1970, 1, 1)
DEFAULT_CONFIG = (
    '<View><Text name="text" value="$text"/>'
    '<Choices name="label" toName="text">'
    '<Choice value="OK"/><Choice value="NG"/></Choices></View>'
)
DEFAULT_LEGACY_TOKEN = "deadbeefcafe0123456789abcdef0123456789ab"
ADMIN = {"id": 1, "email": "admin@example.com", "username": ""}
DEFAULT_PAGE_SIZE = 100
WEBHOOK_BATCH_SIZE = 5000
WEBHOOK_ACTIONS = frozenset(
    _words(
        "PROJECT_CREATED PROJECT_UPDATED PROJECT_DELETED TASKS_CREATED "
        "TASKS_DELETED ANNOTATION_CREATED ANNOTATIONS_CREATED "
        "ANNOTATION_UPDATED ANNOTATIONS_DELETED LABEL_LINK_CREATED "
        "LABEL_LINK_UPDATED LABEL_LINK_DELETED"
    )
)
ORGANIZATION_ONLY_ACTIONS = frozenset({"PROJECT_CREATED", "PROJECT_DELETED"})
NO_CREDENTIALS = "Authentication credentials were not provided."
LEGACY_DISABLED = (
    "Authentication token no longer valid: legacy token authentication has been "
    "disabled for this organization"
)
PAT_LIFETIME_S = 200 * 365 * 24 * 3600
# The headers python-requests adds to every webhook POST of the real server.
_REQUESTS_HEADERS = {
    "User-Agent": "python-requests/2.34.2",
    "Accept-Encoding": "gzip, deflate",
    "Accept": "*/*",
}
_OPEN_API_PATHS = frozenset(
    {"/api/token/refresh", "/api/token/refresh/", "/api/version", "/api/version/"}
)
_TRUE_STRINGS = frozenset({"1", "true", "yes", "on"})
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "equal": operator.eq,
    "not_equal": operator.ne,
    "greater": operator.gt,
    "greater_or_equal": operator.ge,
    "less": operator.lt,
    "less_or_equal": operator.le,
}
_ID_RANGE_OPERATORS = frozenset(
    {"equal", "greater", "greater_or_equal", "less", "less_or_equal", "in"}
)
_NUMERIC_TASK_FIELDS = frozenset(
    {"total_annotations", "cancelled_annotations", "total_predictions", "inner_id"}
)
_API_ANNOTATION_KEYS = _words(
    "id result created_username created_ago completed_by was_cancelled "
    "ground_truth created_at updated_at draft_created_at lead_time "
    "import_id last_action bulk_created task project updated_by "
    "parent_prediction parent_annotation last_created_by"
)
_HOOK_ANNOTATION_KEYS = _words(
    "id result was_cancelled ground_truth created_at updated_at "
    "draft_created_at lead_time prediction result_count unique_id import_id "
    "last_action bulk_created task project completed_by updated_by "
    "parent_prediction parent_annotation last_created_by"
)

Json = Any
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _ApiError(Exception):
    """An error answer in Label Studio's error shape, raised inside handlers."""

    def __init__(self, status: int, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.extra = extra

    def response(self, headers: dict[str, str] | None = None) -> web.Response:
        body = {
            "id": str(uuid.uuid4()),
            "status_code": self.status,
            "version": LS_VERSION,
            "detail": self.detail,
            "exc_info": None,
            **self.extra,
        }
        return _json(body, self.status, headers)


def _validation_error(errors: dict[str, Any]) -> _ApiError:
    return _ApiError(400, "Validation error", validation_errors=errors)


def _server_error(detail: str) -> _ApiError:
    return _ApiError(500, detail, exc_info=f"Traceback (fake studio)\n{detail}")


def _json(
    body: Json, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        text=json.dumps(body),
        status=status,
        headers=headers,
        content_type="application/json",
    )


def _view(record: dict[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    return {key: record[key] for key in keys}


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    return (items[start : start + size] for start in range(0, len(items), size))


class _Clock:
    """Wall time (shiftable for token expiry) and strictly increasing timestamps."""

    def __init__(self) -> None:
        self.offset_s = 0.0
        self._last_us = 0

    def time(self) -> float:
        return time.time() + self.offset_s

    def now(self) -> str:
        """Now in Label Studio's format, always later than the previous call."""
        micros = max(int(self.time() * 1_000_000), self._last_us + 1)
        self._last_us = micros
        moment = _EPOCH + timedelta(microseconds=micros)
        return moment.isoformat(timespec="microseconds") + "Z"


@dataclass
class Fault:
    """One fault rule; ``remaining`` None means it never runs out."""

    method: str
    path_prefix: str
    status: int | None
    remaining: int | None
    after_commit: bool
    delay_s: float
    drop: bool
    retry_after_s: float | None
    skip: int = 0
    hits: int = 0
    read_first: bool = False

    def take(self, method: str, path: str) -> bool:
        """Whether this rule fires for the request (and use up one of its times)."""
        if self.remaining == 0 or not path.startswith(self.path_prefix):
            return False
        if self.method not in ("*", method.upper()):
            return False
        if self.skip > 0:
            self.skip -= 1
            return False
        self.hits += 1
        if self.remaining is not None:
            self.remaining -= 1
        return True

    @property
    def slow_only(self) -> bool:
        return self.status is None and not self.drop and self.delay_s > 0


# --- the data-manager task list: query parsing, filters, ordering, paging ---


def _parse_task_query(raw: str | None) -> tuple[list[dict[str, Any]], list[str]]:
    """Filter items and ordering of a ``query`` value aiohttp decoded once."""
    if not raw:
        return [], []
    try:
        query = json.loads(unquote(raw))
    except ValueError as exc:
        raise _server_error(str(exc)) from exc
    filters = query.get("filters") or {}
    items = filters.get("items") or []
    if filters.get("conjunction", "and") != "and" and len(items) > 1:
        raise _server_error("fake studio: only the 'and' conjunction is supported")
    return items, query.get("ordering") or []


def _field(item: dict[str, Any]) -> str:
    return str(item.get("filter", "")).removeprefix("filter:tasks:")


def _is_id_range(item: dict[str, Any]) -> bool:
    return _field(item) == "id" and item.get("operator") in _ID_RANGE_OPERATORS


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise _server_error(f"could not convert {value!r} to a number") from exc


def _as_number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _narrow(ids: list[int], bounds: tuple[int, int], item: dict[str, Any]):
    """Narrow ``ids[lo:hi]`` by one ``filter:tasks:id`` item, using bisect."""
    lo, hi = bounds
    op, value = item["operator"], item.get("value")
    if op == "in":
        low, high = _number(value["min"]), _number(value["max"])
    else:
        low = high = _number(value)
    if op in ("greater", "greater_or_equal", "equal", "in"):
        cut = bisect_right if op == "greater" else bisect_left
        lo = max(lo, cut(ids, low))
    if op in ("less", "less_or_equal", "equal", "in"):
        cut = bisect_left if op == "less" else bisect_right
        hi = min(hi, cut(ids, high))
    return lo, hi


def _number_test(op: str, value: Any) -> Callable[[float], bool]:
    if op == "in":
        low, high = _number(value["min"]), _number(value["max"])
        return lambda number: low <= number <= high
    if op == "in_list":
        allowed = {_number(element) for element in value}
        return lambda number: number in allowed
    if op not in _COMPARE:
        raise _server_error(f"fake studio: unsupported Number operator {op!r}")
    compare, bound = _COMPARE[op], _number(value)
    return lambda number: compare(number, bound)


def _number_predicate(get: Callable[[dict[str, Any]], Any], item: dict[str, Any]):
    test = _number_test(item.get("operator", ""), item.get("value"))

    def predicate(task: dict[str, Any]) -> bool:
        number = _as_number(get(task))
        return number is not None and test(number)

    return predicate


def _json_predicate(key: str, item: dict[str, Any]):
    """A non-Number ``data.<key>`` filter: JSON equality, like the real one."""
    op, value = item.get("operator"), item.get("value")
    missing = object()
    if op == "equal":
        return lambda task: task["data"].get(key, missing) == value
    if op == "not_equal":
        return lambda task: task["data"].get(key, missing) != value
    if op == "in_list":
        return lambda task: task["data"].get(key, missing) in value
    if op == "contains":
        needle = str(value).lower()
        return lambda task: needle in json.dumps(task["data"].get(key)).lower()
    raise _server_error(f"fake studio: unsupported operator {op!r} for data.{key}")


def _datetime_predicate(field: str, item: dict[str, Any]):
    op, value = item.get("operator", ""), item.get("value")
    try:
        bound = datetime.strptime(value, TIME_FORMAT).strftime(TIME_FORMAT)
    except (TypeError, ValueError) as exc:
        raise _server_error(str(exc)) from exc
    if op not in _COMPARE:
        raise _server_error(f"fake studio: unsupported Datetime operator {op!r}")
    compare = _COMPARE[op]
    return lambda task: compare(task[field], bound)


def _predicate(item: dict[str, Any]) -> Callable[[dict[str, Any]], bool]:
    """A test on one task for a filter item that is not an id range."""
    field = _field(item)
    if field in ("updated_at", "created_at"):
        return _datetime_predicate(field, item)
    if field.startswith("data."):
        key = field.removeprefix("data.")
        if item.get("type") == "Number":
            return _number_predicate(lambda task: task["data"].get(key), item)
        return _json_predicate(key, item)
    if field in _NUMERIC_TASK_FIELDS or field == "id":
        return _number_predicate(operator.itemgetter(field), item)
    if field.startswith("meta."):
        raise _server_error(f"Cannot resolve keyword '{field}' into field.")
    raise _server_error(f"fake studio: unsupported filter {item.get('filter')!r}")


def _order(ids: list[int], ordering: list[str], tasks: dict[int, dict]) -> list[int]:
    key = ordering[0] if ordering else "tasks:id"
    if key == "tasks:id":
        return ids
    if key == "-tasks:id":
        return ids[::-1]
    if key.removeprefix("-") in ("tasks:updated_at", "tasks:created_at"):
        field = key.removeprefix("-").removeprefix("tasks:")
        return sorted(
            ids,
            key=lambda task_id: (tasks[task_id][field], task_id),
            reverse=key.startswith("-"),
        )
    raise _server_error(f"fake studio: unsupported ordering {key!r}")


def _page_slice(count: int, page: str | None, page_size: str | None) -> slice:
    """The slice of one page, or 404 "Invalid page." like Django's paginator."""
    size = _as_number(page_size)
    size = int(size) if size and size >= 1 else DEFAULT_PAGE_SIZE
    number = _as_number(page if page is not None else 1)
    pages = max(1, -(-count // size))
    if number is None or number != int(number) or not 1 <= number <= pages:
        raise _ApiError(404, "Invalid page.")
    start = (int(number) - 1) * size
    return slice(start, start + size)


# --- views of stored records ---


def _hook_task(task: dict[str, Any]) -> dict[str, Any]:
    """A task as webhook bodies carry it."""
    updated_by = task["updated_by"]
    return {
        "id": task["id"],
        "data": task["data"],
        "meta": task["meta"],
        "created_at": task["created_at"],
        "updated_at": task["updated_at"],
        "is_labeled": task["is_labeled"],
        "allow_skip": True,
        "overlap": task["overlap"],
        "inner_id": task["inner_id"],
        "total_annotations": task["total_annotations"],
        "cancelled_annotations": task["cancelled_annotations"],
        "total_predictions": task["total_predictions"],
        "precomputed_agreement": None,
        "comment_count": 0,
        "unresolved_comment_count": 0,
        "last_comment_updated_at": None,
        "project": task["project"],
        "updated_by": updated_by[0]["user_id"] if updated_by else None,
        "file_upload": None,
        "comment_authors": [],
    }


def _config_keys(label_config: str) -> list[str]:
    """The task data keys a label config needs (its ``value="$key"`` attributes)."""
    return list(dict.fromkeys(re.findall(r'value="\$(\w+)', label_config)))


def _choices_names(label_config: str) -> tuple[str, str]:
    found = re.search(r'<Choices[^>]*name="(\w+)"[^>]*toName="(\w+)"', label_config)
    return (found.group(1), found.group(2)) if found else ("label", "text")


def _import_items(body: Json) -> list[tuple[Any, dict, bool, Json]]:
    """(data, meta, was a flat item, raw item) for each item of an import body."""
    items = [body] if isinstance(body, dict) else body
    if not isinstance(items, list):
        errors = {"non_field_errors": ["load_tasks: Data root must be list"]}
        raise _validation_error(errors)
    if not items:
        raise _validation_error({"non_field_errors": ["load_tasks: No tasks added"]})
    return [_import_item(item) for item in items]


def _import_item(item: Json) -> tuple[Any, dict, bool, Json]:
    if isinstance(item, dict) and "data" in item:
        return item["data"], item.get("meta") or {}, False, item
    return item, {}, True, item


def _item_error(index: int, item: tuple, keys: list[str]) -> str | dict:
    """The real import's message for a bad item, or {} for a good one."""
    data, _, flat, raw = item
    if isinstance(data, dict):
        missing = [key for key in keys if key not in data]
        if not missing:
            return {}
        assume = (
            "[assume: item as is = task root with values] "
            if flat
            else '[assume: item["data"] = task root with values]'
        )
        problem = f'"{missing[0]}" key is expected in task data {assume}'
    else:
        problem = (
            'Task root must be dict with "data", "meta", "annotations", '
            '"predictions" fields'
        )
    return f"Error at item {index}: {problem} :: {raw}"


class FakeStudio:
    """An in-process fake Label Studio 1.23 on ``127.0.0.1:<free port>``.

    State lives in plain dicts (``projects``, ``tasks``, ``annotations``,
    ``webhooks``, ``users``) that tests may read. The direct helpers (``project``,
    ``add_tasks``, ``annotate``, ...) change state without HTTP and without
    webhooks; with ``notify=True`` they queue the webhooks on the running event
    loop (``await fake.drain()`` waits for them). The HTTP API behaves like the
    real server, including webhook delivery before the answer. Every request is
    recorded in ``calls``, every webhook attempt in ``deliveries`` (webhook, url,
    action, status, error, body text), every successful token refresh in
    ``refresh_count``. Use ``async with FakeStudio() as fake:`` or
    ``await fake.start()`` / ``await fake.close()``.
    """

    def __init__(
        self,
        *,
        legacy_token: str = DEFAULT_LEGACY_TOKEN,
        legacy_enabled: bool = True,
        access_lifetime_s: float = 300,
        webhook_timeout_s: float = 1.0,
        reuse_task_ids: bool = False,
    ) -> None:
        self.legacy_token = legacy_token
        self.legacy_enabled = legacy_enabled
        self.access_lifetime_s = access_lifetime_s
        self.webhook_timeout_s = webhook_timeout_s
        self.reuse_task_ids = reuse_task_ids
        self.projects: dict[int, dict[str, Any]] = {}
        self.tasks: dict[int, dict[str, Any]] = {}
        self.annotations: dict[int, dict[str, Any]] = {}
        self.webhooks: dict[int, dict[str, Any]] = {}
        self.users: dict[int, dict[str, Any]] = {ADMIN["id"]: dict(ADMIN)}
        self.calls: list[tuple[str, str]] = []
        self.deliveries: list[dict[str, Any]] = []
        self.faults: list[Fault] = []
        self.deliver = True
        self._active = 0
        # Label Studio's TASK_API_PAGE_SIZE_MAX: no limit unless set.
        self.max_page_size: int | None = None
        self.refresh_count = 0
        self._clock = _Clock()
        self._secret = secrets.token_hex(32)
        self._ids = {"project": 0, "task": 0, "annotation": 0, "webhook": 0}
        self._project_tasks: dict[int, list[int]] = {}
        self._task_annotations: dict[int, list[int]] = {}
        self._version = 0
        self._prefix_cache: dict[int, tuple[int, list[int]]] = {}
        self._query_cache: dict[tuple[int, str], tuple[int, list[int], int]] = {}
        self._pending: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self.pat = self._mint("refresh", PAT_LIFETIME_S)
        self.app = self._build_app()

    # --- lifecycle ---

    async def start(self) -> FakeStudio:
        """Serve on 127.0.0.1 on a free port (see ``url``)."""
        self._runner = web.AppRunner(self.app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        return self

    async def close(self) -> None:
        """Finish pending notifications, then stop serving."""
        await self.drain()
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeStudio:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234`` (only once started)."""
        if self._runner is None:
            raise RuntimeError("FakeStudio is not started")
        host, port = self._runner.addresses[0][:2]
        return f"http://{host}:{port}"

    # --- direct helpers for tests (no HTTP) ---

    def project(self, title: str = "p", label_config: str = DEFAULT_CONFIG) -> int:
        """Create a project; return its id."""
        project_id = self._next_id("project")
        self.projects[project_id] = {
            "id": project_id,
            "title": title,
            "label_config": label_config,
            "description": "",
            "token": secrets.token_urlsafe(30),
            "created_at": self._clock.now(),
        }
        self._project_tasks[project_id] = []
        return project_id

    def add_tasks(
        self,
        project_id: int,
        datas: Sequence[dict[str, Any]],
        metas: Sequence[dict[str, Any]] | None = None,
    ) -> list[int]:
        """Create tasks as an import would (same id scheme); no webhook."""
        metas = metas if metas is not None else [{}] * len(datas)
        items = [
            (dict(data), dict(meta)) for data, meta in zip(datas, metas, strict=True)
        ]
        return self._insert_tasks(project_id, items)

    def annotate(
        self,
        task_id: int,
        label: str | None,
        *,
        cancelled: bool = False,
        completed_by: int = 1,
        notify: bool = False,
    ) -> int:
        """Annotate a task with one choice (empty result if cancelled or None)."""
        body = {
            "result": self._label_result(task_id, label, cancelled),
            "was_cancelled": cancelled,
            "completed_by": completed_by,
        }
        annotation = self._create_annotation(task_id, body, completed_by)
        self._notify_annotation(notify, "ANNOTATION_CREATED", annotation["id"])
        return annotation["id"]

    def update_annotation(
        self,
        annotation_id: int,
        label: str | None = None,
        *,
        cancelled: bool | None = None,
        notify: bool = False,
    ) -> None:
        """Change an annotation's choice and/or cancelled flag, as a PATCH would."""
        body: dict[str, Any] = {}
        if cancelled is not None:
            body["was_cancelled"] = cancelled
        if label is not None or cancelled:
            task_id = self.annotations[annotation_id]["task"]
            body["result"] = self._label_result(task_id, label, bool(cancelled))
        self._change_annotation(annotation_id, body, user_id=1)
        self._notify_annotation(notify, "ANNOTATION_UPDATED", annotation_id)

    def delete_annotation(self, annotation_id: int, *, notify: bool = False) -> None:
        """Delete an annotation (ANNOTATIONS_DELETED only with ``notify``)."""
        project_id = self._remove_annotation(annotation_id, user_id=1)
        if notify:
            self._schedule(self._annotations_deleted(project_id, annotation_id))

    def delete_task(self, task_id: int, *, notify: bool = False) -> None:
        """Delete a task and its annotations (TASKS_DELETED only with ``notify``)."""
        project_id = self._remove_task(task_id)
        if notify:
            self._schedule(self._tasks_deleted(project_id, task_id))

    def update_task(
        self, task_id: int, data: dict | None = None, meta: dict | None = None
    ) -> None:
        """Replace a task's data and/or meta, as a PATCH would (never a webhook)."""
        self._patch_task(task_id, {"data": data, "meta": meta})

    def add_webhook(
        self,
        project_id: int,
        url: str,
        *,
        actions: Sequence[str] | None = None,
        headers: dict[str, str] | None = None,
        send_payload: bool = True,
        is_active: bool = True,
    ) -> int:
        """Register a webhook directly; ``actions=None`` means all actions."""
        return self._store_webhook(
            {
                "project": project_id,
                "url": url,
                "send_payload": send_payload,
                "send_for_all_actions": actions is None,
                "headers": dict(headers or {}),
                "is_active": is_active,
                "actions": sorted(actions or []),
            }
        )

    def fail(
        self,
        method: str,
        path_prefix: str,
        *,
        status: int | None = None,
        times: int | None = 1,
        after_commit: bool = False,
        delay_s: float = 0,
        drop: bool = False,
        retry_after_s: float | None = None,
        skip: int = 0,
        read_first: bool = False,
    ) -> Fault:
        """Make the next ``times`` matching requests fail (``times=None``: all).

        ``method`` may be ``"*"``; ``path_prefix`` matches the path without query.
        The answer is ``status`` (default 500) with ``Retry-After`` when
        ``retry_after_s`` is given. ``delay_s`` sleeps first; with only
        ``delay_s`` the normal answer follows (a slow answer). ``drop`` closes
        the connection instead of answering. ``after_commit`` applies the
        request's effect (and its webhooks) before the error or the drop.
        ``skip`` lets that many matching requests through first.
        ``read_first`` reads the request's body before the delay, so that a
        slow answer is still carried out after the client gave up on it.
        """
        fault = Fault(
            method=method.upper(),
            path_prefix=path_prefix,
            status=status,
            remaining=times,
            after_commit=after_commit,
            delay_s=delay_s,
            drop=drop,
            retry_after_s=retry_after_s,
            skip=skip,
            read_first=read_first,
        )
        self.faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        """Forget all fault rules."""
        self.faults.clear()

    def advance_clock(self, seconds: float) -> None:
        """Move the fake's clock (token expiry and timestamps) forward."""
        self._clock.offset_s += seconds

    def mint_access_token(self, lifetime_s: float | None = None) -> str:
        """An access JWT as ``/api/token/refresh/`` would give (not counted)."""
        lifetime = self.access_lifetime_s if lifetime_s is None else lifetime_s
        return self._mint("access", lifetime)

    def timestamp(self) -> str:
        """A fresh timestamp from the fake's clock, in Label Studio's format."""
        return self._clock.now()

    async def drain(self) -> None:
        """Wait until webhooks scheduled by helpers with ``notify=True`` are sent."""
        while self._pending is not None:
            pending = self._pending
            await pending
            if self._pending is pending:
                self._pending = None

    # --- state changes ---

    def _next_id(self, kind: str) -> int:
        self._ids[kind] += 1
        return self._ids[kind]

    def _new_task_ids(self, count: int) -> list[int]:
        if self.reuse_task_ids:
            first = next(reversed(self.tasks), 0) + 1
        else:
            first = self._ids["task"] + 1
        self._ids["task"] = max(self._ids["task"], first + count - 1)
        return list(range(first, first + count))

    def _insert_tasks(self, project_id: int, items: Sequence[tuple[dict, dict]]):
        ids = self._new_task_ids(len(items))
        project_ids = self._project_tasks[project_id]
        inner_id = self.tasks[project_ids[-1]]["inner_id"] if project_ids else 0
        for task_id, (data, meta) in zip(ids, items, strict=True):
            inner_id += 1
            self.tasks[task_id] = self._new_task(task_id, project_id, data, meta)
            self.tasks[task_id]["inner_id"] = inner_id
            self._task_annotations[task_id] = []
            insort(project_ids, task_id)
        self._version += 1
        return ids

    def _new_task(self, task_id: int, project_id: int, data: dict, meta: dict):
        created_at = self._clock.now()
        return {
            "id": task_id,
            "inner_id": 0,
            "cancelled_annotations": 0,
            "total_annotations": 0,
            "total_predictions": 0,
            "annotators": [],
            "completed_at": None,
            "annotations_results": "",
            "predictions_results": "",
            "predictions_score": None,
            "file_upload": None,
            "storage_filename": None,
            "annotations_ids": "",
            "predictions_model_versions": "",
            "avg_lead_time": None,
            "draft_exists": False,
            "updated_by": [],
            "data": data,
            "meta": meta,
            "created_at": created_at,
            "updated_at": self._clock.now(),
            "is_labeled": False,
            "overlap": 1,
            "comment_count": 0,
            "unresolved_comment_count": 0,
            "last_comment_updated_at": None,
            "project": project_id,
            "comment_authors": [],
        }

    def _label_result(self, task_id: int, label: str | None, cancelled: bool):
        if cancelled or label is None:
            return []
        config = self.projects[self.tasks[task_id]["project"]]["label_config"]
        from_name, to_name = _choices_names(config)
        value = {"choices": [label]}
        return [
            {
                "from_name": from_name,
                "to_name": to_name,
                "type": "choices",
                "value": value,
            }
        ]

    def _create_annotation(self, task_id: int, body: dict[str, Any], user_id: int):
        task = self.tasks[task_id]
        annotation_id = self._next_id("annotation")
        completed_by = body.get("completed_by", user_id)
        result = body.get("result") or []
        now = self._clock.now()
        email = self.users.get(completed_by, {}).get("email", "")
        annotation = {
            "id": annotation_id,
            "result": result,
            "created_username": f" {email}, {completed_by}",
            "created_ago": "0 minutes",
            "completed_by": completed_by,
            "was_cancelled": bool(body.get("was_cancelled", False)),
            "ground_truth": bool(body.get("ground_truth", False)),
            "created_at": now,
            "updated_at": self._clock.now(),
            "draft_created_at": None,
            "lead_time": body.get("lead_time"),
            "prediction": {},
            "result_count": len(result),
            "unique_id": str(uuid.uuid4()),
            "import_id": None,
            "last_action": None,
            "bulk_created": False,
            "task": task_id,
            "project": task["project"],
            "updated_by": user_id,
            "parent_prediction": None,
            "parent_annotation": None,
            "last_created_by": None,
        }
        self.annotations[annotation_id] = annotation
        self._task_annotations[task_id].append(annotation_id)
        self._recount(task_id, user_id)
        return annotation

    def _change_annotation(self, annotation_id: int, body: dict, user_id: int):
        annotation = self.annotations[annotation_id]
        for key in ("result", "was_cancelled", "ground_truth", "lead_time"):
            if key in body:
                annotation[key] = body[key]
        annotation["result_count"] = len(annotation["result"] or [])
        annotation["updated_by"] = user_id
        annotation["updated_at"] = self._clock.now()
        self._recount(annotation["task"], user_id)
        return annotation

    def _remove_annotation(self, annotation_id: int, user_id: int) -> int:
        annotation = self.annotations.pop(annotation_id)
        self._task_annotations[annotation["task"]].remove(annotation_id)
        self._recount(annotation["task"], user_id)
        return annotation["project"]

    def _remove_task(self, task_id: int) -> int:
        task = self.tasks.pop(task_id)
        for annotation_id in self._task_annotations.pop(task_id):
            del self.annotations[annotation_id]
        project_ids = self._project_tasks[task["project"]]
        del project_ids[bisect_left(project_ids, task_id)]
        self._version += 1
        return task["project"]

    def _patch_task(self, task_id: int, changes: dict[str, Any]) -> None:
        task = self.tasks[task_id]
        for key in ("data", "meta"):
            if changes.get(key) is not None:
                task[key] = changes[key]
        task["updated_at"] = self._clock.now()
        self._version += 1

    def _recount(self, task_id: int, user_id: int) -> None:
        """Refresh a task's counters and ``updated_at`` after an annotation change."""
        task = self.tasks[task_id]
        annotations = [self.annotations[i] for i in self._task_annotations[task_id]]
        cancelled = sum(1 for a in annotations if a["was_cancelled"])
        task["total_annotations"] = len(annotations) - cancelled
        task["cancelled_annotations"] = cancelled
        task["is_labeled"] = task["total_annotations"] >= task["overlap"]
        task["annotations_ids"] = ", ".join(str(a["id"]) for a in annotations)
        task["completed_at"] = max((a["created_at"] for a in annotations), default=None)
        task["updated_by"] = [{"user_id": user_id}]
        task["updated_at"] = self._clock.now()
        self._version += 1

    def _store_webhook(self, fields: dict[str, Any]) -> int:
        webhook_id = self._next_id("webhook")
        now = self._clock.now()
        self.webhooks[webhook_id] = {
            "id": webhook_id,
            "organization": 1,
            **fields,
            "created_at": now,
            "updated_at": now,
        }
        return webhook_id

    # --- reading state ---

    def _select(self, project_id: int, raw_query: str | None) -> tuple[list[int], int]:
        """Matching task ids in order and their total annotations (cached)."""
        key = (project_id, raw_query or "")
        cached = self._query_cache.get(key)
        if cached is not None and cached[0] == self._version:
            return cached[1], cached[2]
        items, ordering = _parse_task_query(raw_query)
        ids = self._project_tasks[project_id]
        bounds = (0, len(ids))
        for item in filter(_is_id_range, items):
            bounds = _narrow(ids, bounds, item)
        lo, hi = bounds
        hi = max(lo, hi)
        predicates = [_predicate(item) for item in items if not _is_id_range(item)]
        selected = ids[lo:hi]
        if predicates:
            selected = [
                i for i in selected if all(p(self.tasks[i]) for p in predicates)
            ]
            total = sum(self.tasks[i]["total_annotations"] for i in selected)
        else:
            prefix = self._prefix(project_id)
            total = prefix[hi] - prefix[lo]
        selected = _order(selected, ordering, self.tasks)
        if len(self._query_cache) > 16:
            self._query_cache.clear()
        self._query_cache[key] = (self._version, selected, total)
        return selected, total

    def _prefix(self, project_id: int) -> list[int]:
        """Prefix sums of ``total_annotations`` along the project's sorted ids."""
        cached = self._prefix_cache.get(project_id)
        if cached is not None and cached[0] == self._version:
            return cached[1]
        counts = (
            self.tasks[i]["total_annotations"] for i in self._project_tasks[project_id]
        )
        prefix = list(itertools.accumulate(counts, initial=0))
        self._prefix_cache[project_id] = (self._version, prefix)
        return prefix

    def _full_task(self, task_id: int) -> dict[str, Any]:
        annotations = [
            _view(self.annotations[i], _API_ANNOTATION_KEYS)
            for i in self._task_annotations[task_id]
        ]
        return {
            **self.tasks[task_id],
            "annotations": annotations,
            "predictions": [],
            "drafts": [],
        }

    def _project_view(self, project_id: int) -> dict[str, Any]:
        """A project as the API and webhook bodies show it, with live counters."""
        project = self.projects[project_id]
        tasks = [self.tasks[i] for i in self._project_tasks[project_id]]
        annotations = sum(t["total_annotations"] for t in tasks)
        return {
            "id": project_id,
            "task_number": len(tasks),
            "finished_task_number": sum(1 for t in tasks if t["is_labeled"]),
            "total_predictions_number": 0,
            "total_annotations_number": annotations,
            "num_tasks_with_annotations": sum(
                1 for t in tasks if t["total_annotations"]
            ),
            "useful_annotation_number": annotations,
            "skipped_annotations_number": sum(
                t["cancelled_annotations"] for t in tasks
            ),
            "title": project["title"],
            "description": project["description"],
            "label_config": project["label_config"],
            "token": project["token"],
            "maximum_annotations": 1,
            "is_draft": False,
            "is_published": False,
            "created_at": project["created_at"],
            "updated_at": project["created_at"],
            "task_data_login": None,
            "task_data_password": None,
            "organization": 1,
            "created_by": 1,
        }

    # --- webhooks ---

    def _subscribers(self, project_id: int, action: str) -> list[dict[str, Any]]:
        return [
            hook
            for hook in self.webhooks.values()
            if hook["project"] == project_id
            and hook["is_active"]
            and (hook["send_for_all_actions"] or action in hook["actions"])
        ]

    def _prepare(
        self, project_id: int, action: str, make_bodies: Callable[[], list[dict]]
    ) -> list[tuple[dict[str, Any], str, str]]:
        """Snapshot an event's deliveries now: (webhook, action, JSON text)."""
        hooks = self._subscribers(project_id, action)
        if not hooks:
            return []
        short = json.dumps({"action": action})
        project = self._project_view(project_id)
        deliveries = []
        for body in make_bodies():
            full = json.dumps({"action": action, **body, "project": project})
            for hook in hooks:
                deliveries.append(
                    (hook, action, full if hook["send_payload"] else short)
                )
        return deliveries

    async def _send(self, deliveries: list[tuple[dict[str, Any], str, str]]) -> None:
        """POST each delivery in turn, like the real server (no retries)."""
        for hook, action, text in deliveries:
            await self._post(hook, action, text)

    async def _post(self, hook: dict[str, Any], action: str, text: str) -> None:
        record = {"webhook": hook["id"], "url": hook["url"], "action": action}
        record.update(status=None, error=None, body=text)
        if not self.deliver:
            record["error"] = "suppressed (deliver is False)"
            self.deliveries.append(record)
            return
        headers = {**_REQUESTS_HEADERS, **hook["headers"]}
        headers["Content-Type"] = "application/json"
        timeout = aiohttp.ClientTimeout(total=self.webhook_timeout_s)
        if self._session is None:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.post(
                hook["url"],
                data=io.BytesIO(text.encode()),
                headers=headers,
                timeout=timeout,
            ) as response:
                record["status"] = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            record["error"] = f"{type(exc).__name__}: {exc}"
        self.deliveries.append(record)

    def _schedule(self, deliveries: list[tuple[dict[str, Any], str, str]]) -> None:
        """Send deliveries in the background, after those scheduled before."""
        if not deliveries:
            return
        previous = self._pending

        async def run() -> None:
            if previous is not None:
                await previous
            await self._send(deliveries)

        self._pending = asyncio.get_running_loop().create_task(run())

    def _annotation_event(self, action: str, annotation_id: int):
        annotation = self.annotations[annotation_id]

        def bodies() -> list[dict]:
            task = _hook_task(self.tasks[annotation["task"]])
            return [
                {"annotation": _view(annotation, _HOOK_ANNOTATION_KEYS), "task": task}
            ]

        return self._prepare(annotation["project"], action, bodies)

    def _notify_annotation(self, notify: bool, action: str, annotation_id: int) -> None:
        if notify:
            self._schedule(self._annotation_event(action, annotation_id))

    def _annotations_deleted(self, project_id: int, annotation_id: int):
        bodies = [{"annotations": [{"id": annotation_id}]}]
        return self._prepare(project_id, "ANNOTATIONS_DELETED", lambda: bodies)

    def _tasks_deleted(self, project_id: int, task_id: int):
        bodies = [{"tasks": [{"id": task_id}]}]
        return self._prepare(project_id, "TASKS_DELETED", lambda: bodies)

    def _tasks_created(self, project_id: int, task_ids: list[int]):
        def bodies() -> list[dict]:
            return [
                {"tasks": [_hook_task(self.tasks[i]) for i in chunk]}
                for chunk in _chunks(task_ids, WEBHOOK_BATCH_SIZE)
            ]

        return self._prepare(project_id, "TASKS_CREATED", bodies)

    # --- auth ---

    def _mint(self, token_type: str, lifetime_s: float) -> str:
        issued = int(self._clock.time())
        claims = {
            "token_type": token_type,
            "exp": int(issued + lifetime_s),
            "iat": issued,
            "jti": uuid.uuid4().hex,
            "user_id": "1",
        }
        return jwt.encode(claims, self._secret, algorithm="HS256")

    def _claims(self, token: str, token_type: str) -> dict[str, Any] | None:
        """The claims of a valid, unexpired JWT of that type, else None."""
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                options={"verify_exp": False, "verify_iat": False},
            )
        except jwt.PyJWTError:
            return None
        if claims.get("token_type") != token_type:
            return None
        if claims.get("exp", 0) <= self._clock.time():
            return None
        return claims

    def _authenticate(self, header: str) -> None:
        scheme, _, credential = header.partition(" ")
        credential = credential.strip()
        if scheme.lower() == "token":
            if credential != self.legacy_token:
                raise _ApiError(401, "Invalid token.")
            if not self.legacy_enabled:
                raise _ApiError(401, LEGACY_DISABLED)
            return
        if scheme.lower() == "bearer" and self._claims(credential, "access"):
            return
        raise _ApiError(401, NO_CREDENTIALS)

    # --- middlewares ---

    def _build_app(self) -> web.Application:
        app = web.Application(
            middlewares=[self._record, self._faults, self._errors, self._auth],
            client_max_size=1024**3,
        )
        for method, path, handler in self._routes():
            app.router.add_route(method, path, handler)
            app.router.add_route(method, path + "/", handler)
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler: Handler):
        self.calls.append((request.method, request.path_qs))
        self._active += 1
        try:
            return await handler(request)
        finally:
            self._active -= 1

    async def settled(self, timeout_s: float = 10.0) -> None:
        """Wait until no request is being worked on, those given up on included."""
        async with asyncio.timeout(timeout_s):
            while self._active:
                await asyncio.sleep(0.01)

    @web.middleware
    async def _faults(self, request: web.Request, handler: Handler):
        fault = next(
            (f for f in self.faults if f.take(request.method, request.path)), None
        )
        if fault is None:
            return await handler(request)
        if fault.read_first:
            # As Django does: the whole request is read before the work
            # starts, and the work is finished when the client has gone.
            await request.read()
        if fault.delay_s:
            await asyncio.sleep(fault.delay_s)
        if fault.slow_only:
            return await handler(request)
        if fault.after_commit:
            await handler(request)
        if fault.drop:
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=499)
        headers = {}
        if fault.retry_after_s is not None:
            headers["Retry-After"] = f"{fault.retry_after_s:g}"
        error = _ApiError(fault.status or 500, "fake studio: injected failure")
        return error.response(headers)

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler):
        try:
            return await handler(request)
        except _ApiError as error:
            return error.response()

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler):
        path = request.path
        if path.startswith("/api/") and path not in _OPEN_API_PATHS:
            self._authenticate(request.headers.get("Authorization", ""))
        return await handler(request)

    # --- HTTP handlers ---

    def _routes(self) -> list[tuple[str, str, Handler]]:
        task = "/api/tasks/{task_id:\\d+}"
        annotation = "/api/annotations/{annotation_id:\\d+}"
        webhook = "/api/webhooks/{webhook_id:\\d+}"
        return [
            ("GET", "/health", self._health),
            ("GET", "/api/version", self._version_info),
            ("POST", "/api/token/refresh", self._refresh),
            ("GET", "/api/current-user/whoami", self._whoami),
            ("GET", "/api/projects", self._list_projects),
            ("POST", "/api/projects", self._create_project),
            ("GET", "/api/projects/{project_id:\\d+}", self._get_project),
            ("POST", "/api/projects/{project_id:\\d+}/import", self._import),
            ("GET", "/api/tasks", self._list_tasks),
            ("GET", task, self._get_task),
            ("PATCH", task, self._patch_task_api),
            ("DELETE", task, self._delete_task_api),
            ("GET", task + "/annotations", self._list_annotations),
            ("POST", task + "/annotations", self._create_annotation_api),
            ("GET", annotation, self._get_annotation),
            ("PATCH", annotation, self._patch_annotation_api),
            ("PUT", annotation, self._patch_annotation_api),
            ("DELETE", annotation, self._delete_annotation_api),
            ("GET", "/api/webhooks", self._list_webhooks),
            ("POST", "/api/webhooks", self._create_webhook),
            ("GET", webhook, self._get_webhook),
            ("PATCH", webhook, self._update_webhook),
            ("PUT", webhook, self._update_webhook),
            ("DELETE", webhook, self._delete_webhook),
        ]

    async def _health(self, request: web.Request) -> web.Response:
        return _json({"status": "UP"})

    async def _version_info(self, request: web.Request) -> web.Response:
        return _json({"release": LS_VERSION, "label-studio-os-package": {}})

    async def _refresh(self, request: web.Request) -> web.Response:
        body = await _read_json(request)
        token = body.get("refresh") if isinstance(body, dict) else None
        if not token:
            raise _validation_error({"refresh": ["This field is required."]})
        if self._claims(str(token), "refresh") is None:
            raise _ApiError(401, "Token is invalid")
        self.refresh_count += 1
        return _json({"access": self._mint("access", self.access_lifetime_s)})

    async def _whoami(self, request: web.Request) -> web.Response:
        user = self.users[ADMIN["id"]]
        return _json(
            {
                "id": user["id"],
                "first_name": "",
                "last_name": "",
                "username": user["username"],
                "email": user["email"],
                "initials": user["email"][:2],
                "active_organization": 1,
            }
        )

    async def _list_projects(self, request: web.Request) -> web.Response:
        results = [self._project_view(project_id) for project_id in self.projects]
        return _json(
            {"count": len(results), "next": None, "previous": None, "results": results}
        )

    async def _create_project(self, request: web.Request) -> web.Response:
        body = await _read_json(request)
        if not isinstance(body, dict):
            raise _validation_error({"non_field_errors": ["Invalid data."]})
        title = str(body.get("title") or "")
        if "title" in body and len(title) < 3:
            errors = {"title": ["Ensure this field has at least 3 characters."]}
            raise _validation_error(errors)
        project_id = self.project(title, body.get("label_config") or "<View></View>")
        return _json(self._project_view(project_id), 201)

    async def _get_project(self, request: web.Request) -> web.Response:
        return _json(self._project_view(self._project_or_404(request)))

    async def _import(self, request: web.Request) -> web.Response:
        started = time.monotonic()
        project_id = self._project_or_404(request)
        body = await _read_json(request)
        items = _import_items(body)
        self._check_items(project_id, items)
        task_ids = self._insert_tasks(project_id, [item[:2] for item in items])
        await self._send(self._tasks_created(project_id, task_ids))
        result: dict[str, Any] = {
            "task_count": len(task_ids),
            "annotation_count": 0,
            "prediction_count": 0,
            "duration": round(time.monotonic() - started, 3),
            "file_upload_ids": [],
            "could_be_tasks_list": False,
            "found_formats": [],
            "data_columns": [],
        }
        if request.query.get("return_task_ids", "").lower() in _TRUE_STRINGS:
            result["task_ids"] = task_ids
        return _json(result, 201)

    def _check_items(self, project_id: int, items: list) -> None:
        """400 for the whole import when an item lacks a key the config needs."""
        keys = _config_keys(self.projects[project_id]["label_config"])
        errors = [_item_error(index, item, keys) for index, item in enumerate(items)]
        if any(errors):
            raise _validation_error({"non_field_errors": errors})

    async def _list_tasks(self, request: web.Request) -> web.Response:
        query = request.query
        project_id = _as_number(query.get("project"))
        if project_id is None:
            raise _ApiError(404, "Neither project nor view id specified")
        if int(project_id) not in self.projects:
            raise _ApiError(404, "No Project matches the given query.")
        ids, total_annotations = self._select(int(project_id), query.get("query"))
        page_size = query.get("page_size")
        if self.max_page_size is not None and page_size is not None:
            asked = _as_number(page_size)
            if asked is not None and asked > self.max_page_size:
                page_size = str(self.max_page_size)
        page = ids[_page_slice(len(ids), query.get("page"), page_size)]
        if query.get("fields") == "all":
            tasks = [self._full_task(task_id) for task_id in page]
        else:
            tasks = [self.tasks[task_id] for task_id in page]
        body = {
            "total_annotations": total_annotations,
            "total_predictions": 0,
            "total": len(ids),
            "tasks": tasks,
        }
        return _json(body)

    async def _get_task(self, request: web.Request) -> web.Response:
        return _json(self._full_task(self._task_or_404(request)))

    async def _patch_task_api(self, request: web.Request) -> web.Response:
        task_id = self._task_or_404(request)
        body = await _read_json(request)
        if not isinstance(body, dict):
            raise _validation_error({"non_field_errors": ["Invalid data."]})
        self._patch_task(task_id, body)
        return _json(self._full_task(task_id))

    async def _delete_task_api(self, request: web.Request) -> web.Response:
        task_id = self._task_or_404(request)
        project_id = self._remove_task(task_id)
        await self._send(self._tasks_deleted(project_id, task_id))
        return web.Response(status=204)

    async def _list_annotations(self, request: web.Request) -> web.Response:
        task_id = self._task_or_404(request)
        ids = self._task_annotations[task_id]
        return _json([_view(self.annotations[i], _API_ANNOTATION_KEYS) for i in ids])

    async def _create_annotation_api(self, request: web.Request) -> web.Response:
        task_id = self._task_or_404(request)
        body = await _read_json(request)
        if not isinstance(body, dict):
            raise _validation_error({"non_field_errors": ["Invalid data."]})
        annotation = self._create_annotation(task_id, body, ADMIN["id"])
        await self._send(self._annotation_event("ANNOTATION_CREATED", annotation["id"]))
        return _json(_view(annotation, _API_ANNOTATION_KEYS), 201)

    async def _get_annotation(self, request: web.Request) -> web.Response:
        annotation = self.annotations[self._annotation_or_404(request)]
        return _json(_view(annotation, _API_ANNOTATION_KEYS))

    async def _patch_annotation_api(self, request: web.Request) -> web.Response:
        annotation_id = self._annotation_or_404(request)
        body = await _read_json(request)
        if not isinstance(body, dict):
            raise _validation_error({"non_field_errors": ["Invalid data."]})
        annotation = self._change_annotation(annotation_id, body, ADMIN["id"])
        await self._send(self._annotation_event("ANNOTATION_UPDATED", annotation_id))
        return _json(_view(annotation, _API_ANNOTATION_KEYS))

    async def _delete_annotation_api(self, request: web.Request) -> web.Response:
        annotation_id = self._annotation_or_404(request)
        project_id = self._remove_annotation(annotation_id, ADMIN["id"])
        await self._send(self._annotations_deleted(project_id, annotation_id))
        return web.Response(status=204)

    async def _list_webhooks(self, request: web.Request) -> web.Response:
        project = request.query.get("project")
        hooks = [
            hook
            for hook in self.webhooks.values()
            if project is None or str(hook["project"]) == project
        ]
        return _json(hooks)

    async def _create_webhook(self, request: web.Request) -> web.Response:
        body = await _read_json(request)
        project = _as_number(body.get("project")) if isinstance(body, dict) else None
        if project is None or int(project) not in self.projects:
            raise _ApiError(404, "Project not found.")
        fields = {
            "project": int(project),
            "send_payload": True,
            "send_for_all_actions": True,
            "headers": {},
            "is_active": True,
            **_webhook_changes(body, partial=False),
        }
        webhook_id = self._store_webhook(fields)
        return _json(self.webhooks[webhook_id], 201)

    async def _get_webhook(self, request: web.Request) -> web.Response:
        return _json(self.webhooks[self._webhook_or_404(request)])

    async def _update_webhook(self, request: web.Request) -> web.Response:
        """PATCH/PUT: ``actions`` always resets (to [] if absent); headers stay."""
        webhook = self.webhooks[self._webhook_or_404(request)]
        body = await _read_json(request)
        if not isinstance(body, dict):
            raise _validation_error({"non_field_errors": ["Invalid data."]})
        webhook.update(_webhook_changes(body, partial=request.method == "PATCH"))
        webhook["updated_at"] = self._clock.now()
        return _json(webhook)

    async def _delete_webhook(self, request: web.Request) -> web.Response:
        del self.webhooks[self._webhook_or_404(request)]
        return web.Response(status=204)

    # --- path lookups ---

    def _project_or_404(self, request: web.Request) -> int:
        project_id = int(request.match_info["project_id"])
        if project_id not in self.projects:
            raise _ApiError(404, "No Project matches the given query.")
        return project_id

    def _task_or_404(self, request: web.Request) -> int:
        task_id = int(request.match_info["task_id"])
        if task_id not in self.tasks:
            raise _ApiError(404, "No Task matches the given query.")
        return task_id

    def _annotation_or_404(self, request: web.Request) -> int:
        annotation_id = int(request.match_info["annotation_id"])
        if annotation_id not in self.annotations:
            raise _ApiError(404, "No Annotation matches the given query.")
        return annotation_id

    def _webhook_or_404(self, request: web.Request) -> int:
        webhook_id = int(request.match_info["webhook_id"])
        if webhook_id not in self.webhooks:
            raise _ApiError(404, "No Webhook matches the given query.")
        return webhook_id


async def _read_json(request: web.Request) -> Json:
    text = await request.text()
    if not text:
        return {}
    try:
        return json.loads(text)
    except ValueError as exc:
        raise _ApiError(400, f"JSON parse error - {exc}") from exc


def _webhook_changes(body: dict[str, Any], *, partial: bool) -> dict[str, Any]:
    """Validated writable fields of a webhook body; ``actions`` defaults to []."""
    if not partial and not body.get("url"):
        raise _validation_error({"url": ["This field is required."]})
    keys = ("url", "send_payload", "send_for_all_actions", "headers", "is_active")
    changes = {key: body[key] for key in keys if key in body}
    changes["actions"] = _valid_actions(body.get("actions") or [])
    return changes


def _valid_actions(actions: Any) -> list[str]:
    if not isinstance(actions, list):
        kind = type(actions).__name__
        message = f'Expected a list of items but got type "{kind}".'
        raise _validation_error({"actions": [message]})
    bad = {
        str(index): [f'"{action}" is not a valid choice.']
        for index, action in enumerate(actions)
        if action not in WEBHOOK_ACTIONS
    }
    if bad:
        raise _validation_error({"actions": bad})
    if ORGANIZATION_ONLY_ACTIONS.intersection(actions):
        message = "Project webhook can't contain organization-only action."
        raise _validation_error({"non_field_errors": [message]})
    return sorted(set(actions))
