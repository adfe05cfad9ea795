"""Check, on a real Label Studio, the launcher and the API facts labelhub relies on.

One server is started for the whole module from the cached template; each test
makes its own project, so the tests do not depend on each other's data.
"""

from __future__ import annotations

import json
import queue
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from . import labelstudio
from .labelstudio import (
    ADMIN_EMAIL,
    LabelStudio,
    api,
    create_personal_access_token,
    create_project,
    refresh_access_token,
)

pytestmark = pytest.mark.e2e

LABEL_CONFIG = (
    '<View><Text name="text" value="$text"/>'
    '<Choices name="label" toName="text">'
    '<Choice value="OK"/><Choice value="NG"/></Choices></View>'
)
FIRST_LABELHUB_ID = 17
TASK_COUNT = 5
WEBHOOK_PATH = "/webhooks/label-studio"
WEBHOOK_SECRET = "abc"
WEBHOOK_ACTIONS = [
    "ANNOTATION_CREATED",
    "ANNOTATION_UPDATED",
    "ANNOTATIONS_CREATED",
    "ANNOTATIONS_DELETED",
    "TASKS_DELETED",
]
DELIVERY_TIMEOUT_S = 5.0


def _choice(label: str) -> list[dict[str, Any]]:
    """Return an annotation result choosing ``label``."""
    value = {"choices": [label]}
    return [
        {"from_name": "label", "to_name": "text", "type": "choices", "value": value}
    ]


def _filter(field_name: str, operator: str, type_: str, value: Any) -> dict[str, Any]:
    """Return one data-manager filter item on a task field."""
    return {
        "filter": f"filter:tasks:{field_name}",
        "operator": operator,
        "type": type_,
        "value": value,
    }


def _query(*filters: dict[str, Any], ordering: list[str] | None = None) -> str:
    """Return the compact JSON of a data-manager ``query`` parameter."""
    body: dict[str, Any] = {"filters": {"conjunction": "and", "items": list(filters)}}
    if ordering is not None:
        body["ordering"] = ordering
    return json.dumps(body, separators=(",", ":"))


@pytest.fixture(scope="module")
def label_studio() -> Iterator[LabelStudio]:
    """A running Label Studio on a fresh copy of the template."""
    with LabelStudio() as server:
        yield server


@dataclass
class ImportedProject:
    """A project with five imported tasks carrying labelhub ids 17..21."""

    project_id: int
    task_ids: list[int]


def _import_project(ls: LabelStudio, title: str) -> ImportedProject:
    """Create a project and import five tasks with labelhub ids in data and meta."""
    project_id = create_project(ls.base_url, ls.token, title, LABEL_CONFIG)
    items = [
        {
            "data": {"text": f"text {number}", "labelhub_task_id": number},
            "meta": {"labelhub_task_id": number},
        }
        for number in range(FIRST_LABELHUB_ID, FIRST_LABELHUB_ID + TASK_COUNT)
    ]
    path = f"/api/projects/{project_id}/import"
    status, answer = ls.api("POST", path, items, {"return_task_ids": "true"})
    assert status == 201, answer
    assert answer["task_count"] == TASK_COUNT
    return ImportedProject(project_id, answer["task_ids"])


def _listed_ids(ls: LabelStudio, project_id: int, query: str) -> list[int]:
    """Return the ids ``GET /api/tasks`` lists for a data-manager query."""
    params = {"project": project_id, "query": query}
    status, answer = ls.api("GET", "/api/tasks", query=params)
    assert status == 200, answer
    return [task["id"] for task in answer["tasks"]]


def _updated_at(ls: LabelStudio, task_id: int) -> str:
    """Return a task's ``updated_at`` string."""
    status, answer = ls.api("GET", f"/api/tasks/{task_id}")
    assert status == 200, answer
    return str(answer["updated_at"])


def test_launcher_serves_its_own_port_and_keeps_home_inside(
    label_studio: LabelStudio,
) -> None:
    """The server answers on the chosen port, logs to the data dir, keeps HOME
    there, and has the admin's legacy token enabled."""
    assert label_studio.base_url == f"http://127.0.0.1:{label_studio.port}"
    log = label_studio.log_path.read_text()
    assert f"development server at {label_studio.base_url}/" in log
    assert "is in use" not in log
    assert (label_studio.data_dir / "home" / ".local").is_dir()
    status, answer = label_studio.api("GET", "/api/jwt/settings")
    assert (status, answer["legacy_api_tokens_enabled"]) == (200, True)


def test_busy_port_is_detected_and_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    """When the chosen port is taken, Label Studio says "is in use" and moves on;
    the launcher notices, stops it, retries on another port, and stop() cleans up."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        busy_port: int = busy.getsockname()[1]
        free_port = labelstudio._free_port()
        ports = iter([busy_port, free_port])
        monkeypatch.setattr(labelstudio, "_free_port", lambda: next(ports))
        server = LabelStudio().start()
        try:
            assert server.port == free_port
            assert "is in use" not in server.log_path.read_text()
        finally:
            server.stop()
    assert not server.data_dir.exists()


def test_import_returns_task_ids_in_input_order(label_studio: LabelStudio) -> None:
    """POST /api/projects/{id}/import?return_task_ids=true answers 201 with
    ``task_ids`` in input order; data and meta are stored as sent."""
    project = _import_project(label_studio, "import order")
    first = project.task_ids[0]
    assert project.task_ids == list(range(first, first + TASK_COUNT))
    status, task = label_studio.api("GET", f"/api/tasks/{project.task_ids[2]}")
    assert status == 200
    assert task["data"] == {"text": "text 19", "labelhub_task_id": 19}
    assert task["meta"] == {"labelhub_task_id": 19}


def test_task_list_pages_and_answers_404_past_the_end(
    label_studio: LabelStudio,
) -> None:
    """GET /api/tasks?project&page&page_size&fields=all gives a dict with ``total``
    and ``tasks`` (ascending id, with annotations); a page past the end is 404."""
    project = _import_project(label_studio, "paging")
    params = {
        "project": project.project_id,
        "page": 1,
        "page_size": 2,
        "fields": "all",
    }
    status, answer = label_studio.api("GET", "/api/tasks", query=params)
    assert status == 200
    assert answer["total"] == TASK_COUNT
    assert [task["id"] for task in answer["tasks"]] == project.task_ids[:2]
    assert answer["tasks"][0]["annotations"] == []
    status, answer = label_studio.api("GET", "/api/tasks", query={**params, "page": 4})
    assert (status, answer["detail"]) == (404, "Invalid page.")


def test_filter_on_id_greater_and_ordering(label_studio: LabelStudio) -> None:
    """``filter:tasks:id`` ``greater`` (type Number) keeps only higher ids, and
    ``ordering`` accepts ``["tasks:id"]`` and ``["-tasks:id"]``."""
    project = _import_project(label_studio, "id filter")
    pivot = project.task_ids[1]
    newer = _query(_filter("id", "greater", "Number", pivot), ordering=["tasks:id"])
    assert _listed_ids(label_studio, project.project_id, newer) == project.task_ids[2:]
    descending = _query(ordering=["-tasks:id"])
    listed = _listed_ids(label_studio, project.project_id, descending)
    assert listed == project.task_ids[::-1]


def test_filter_on_updated_at_needs_microseconds_and_z(
    label_studio: LabelStudio,
) -> None:
    """``filter:tasks:updated_at`` ``greater`` (type Datetime) works with
    ``%Y-%m-%dT%H:%M:%S.%fZ`` values; ``+00:00`` or no fraction answers 500."""
    project = _import_project(label_studio, "updated filter")
    watermark = _updated_at(label_studio, project.task_ids[4])
    path = f"/api/tasks/{project.task_ids[3]}/annotations"
    assert label_studio.api("POST", path, {"result": _choice("OK")})[0] == 201
    newer = _query(_filter("updated_at", "greater", "Datetime", watermark))
    assert _listed_ids(label_studio, project.project_id, newer) == [project.task_ids[3]]
    for bad in (watermark.replace("Z", "+00:00"), watermark[:19] + "Z"):
        query = _query(_filter("updated_at", "greater", "Datetime", bad))
        params = {"project": project.project_id, "query": query}
        status, _ = label_studio.api("GET", "/api/tasks", query=params)
        assert status == 500


def test_filter_on_data_field(label_studio: LabelStudio) -> None:
    """``filter:tasks:data.labelhub_task_id`` works with type Number for
    ``equal``, ``in`` ({min, max}, inclusive) and ``in_list``; String needs the
    JSON value itself (19, not "19"); ``meta.*`` filters answer 500."""
    project = _import_project(label_studio, "data filter")
    ids, field_name = project.task_ids, "data.labelhub_task_id"
    cases = [
        (_filter(field_name, "equal", "Number", 19), [ids[2]]),
        (_filter(field_name, "in", "Number", {"min": 18, "max": 20}), ids[1:4]),
        (_filter(field_name, "in_list", "Number", [17, 21]), [ids[0], ids[4]]),
        (_filter(field_name, "equal", "String", 19), [ids[2]]),
        (_filter(field_name, "equal", "String", "19"), []),
    ]
    for item, expected in cases:
        listed = _listed_ids(label_studio, project.project_id, _query(item))
        assert listed == expected, item
    meta_query = _query(_filter("meta.labelhub_task_id", "equal", "Number", 19))
    params = {
        "project": project.project_id,
        "query": meta_query,
    }
    assert label_studio.api("GET", "/api/tasks", query=params)[0] == 500


def test_query_parameter_is_url_decoded_twice(label_studio: LabelStudio) -> None:
    """Label Studio runs ``unquote`` on the already decoded ``query``, so a ``%``
    in the JSON must be encoded twice (quote the JSON, then form-encode it)."""
    project = _import_project(label_studio, "percent")
    item = {"data": {"text": "100%41", "labelhub_task_id": 99}}
    path = f"/api/projects/{project.project_id}/import"
    status, answer = label_studio.api("POST", path, [item], {"return_task_ids": "1"})
    assert status == 201
    query = _query(_filter("data.text", "equal", "String", "100%41"))
    assert _listed_ids(label_studio, project.project_id, query) == []
    twice = urllib.parse.quote(query)
    assert _listed_ids(label_studio, project.project_id, twice) == answer["task_ids"]


def test_annotation_changes_bump_task_updated_at(label_studio: LabelStudio) -> None:
    """POST /api/tasks/{id}/annotations (201), PATCH /api/annotations/{id} (200)
    and DELETE /api/annotations/{id} (204) each change the task's updated_at."""
    project = _import_project(label_studio, "annotations")
    task_id = project.task_ids[0]
    seen = [_updated_at(label_studio, task_id)]
    path = f"/api/tasks/{task_id}/annotations"
    status, annotation = label_studio.api("POST", path, {"result": _choice("OK")})
    assert (status, annotation["task"]) == (201, task_id)
    seen.append(_updated_at(label_studio, task_id))
    path = f"/api/annotations/{annotation['id']}"
    status, patched = label_studio.api("PATCH", path, {"result": _choice("NG")})
    assert (status, patched["result"]) == (200, _choice("NG"))
    seen.append(_updated_at(label_studio, task_id))
    assert label_studio.api("DELETE", path)[0] == 204
    seen.append(_updated_at(label_studio, task_id))
    assert seen == sorted(set(seen))


def test_personal_access_token_flow(label_studio: LabelStudio) -> None:
    """POST /api/token/ with the legacy token gives a PAT (once: then 409);
    /api/token/refresh/ turns it into an access token accepted as ``Bearer``,
    while ``Bearer <PAT>`` is refused with 401."""
    base_url = label_studio.base_url
    pat = create_personal_access_token(base_url, label_studio.token)
    assert label_studio.api("POST", "/api/token/")[0] == 409
    access = refresh_access_token(base_url, pat)
    status, _ = api(base_url, access, "GET", "/api/projects", scheme="Bearer")
    assert status == 200
    status, _ = api(base_url, pat, "GET", "/api/projects", scheme="Bearer")
    assert status == 401


def test_whoami_gives_user_id_and_email(label_studio: LabelStudio) -> None:
    """GET /api/current-user/whoami answers the user with ``id`` and ``email``;
    /api/current-user/ does not exist (404)."""
    status, user = label_studio.api("GET", "/api/current-user/whoami")
    assert status == 200
    assert isinstance(user["id"], int)
    assert user["email"] == ADMIN_EMAIL
    assert label_studio.api("GET", "/api/current-user/")[0] == 404


def test_deleted_task_gives_404(label_studio: LabelStudio) -> None:
    """DELETE /api/tasks/{id} answers 204; afterwards GET and DELETE are 404."""
    project = _import_project(label_studio, "delete task")
    path = f"/api/tasks/{project.task_ids[0]}"
    assert label_studio.api("DELETE", path)[0] == 204
    assert label_studio.api("GET", path)[0] == 404
    assert label_studio.api("DELETE", path)[0] == 404


@dataclass
class Delivery:
    """One webhook POST as received."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any] = field(default_factory=dict)


@pytest.fixture
def webhook_listener() -> Iterator[tuple[str, queue.Queue[Delivery]]]:
    """A loopback HTTP listener; yields its webhook URL and received deliveries."""
    received: queue.Queue[Delivery] = queue.Queue()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            body = json.loads(self.rfile.read(length))
            received.put(Delivery(self.path, dict(self.headers), body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            """Keep test output quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}{WEBHOOK_PATH}", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _register_webhook(ls: LabelStudio, project_id: int, url: str) -> dict[str, Any]:
    """Register the labelhub-style webhook on a project and return it."""
    body = {
        "project": project_id,
        "url": url,
        "send_payload": True,
        "send_for_all_actions": False,
        "actions": WEBHOOK_ACTIONS,
        "headers": {"X-Webhook-Secret": WEBHOOK_SECRET},
    }
    status, webhook = ls.api("POST", "/api/webhooks/", body)
    assert status == 201, webhook
    return dict(webhook)


def test_webhook_registration_and_patch(label_studio: LabelStudio) -> None:
    """POST /api/webhooks/ answers 201; GET /api/webhooks/?project= lists it with
    actions and headers. PATCH /api/webhooks/{id}/ updates url, headers and
    is_active, but RESETS ``actions`` to [] unless they are sent again."""
    project = _import_project(label_studio, "webhook patch")
    url = f"http://127.0.0.1:9{WEBHOOK_PATH}"
    webhook = _register_webhook(label_studio, project.project_id, url)
    assert sorted(webhook["actions"]) == sorted(WEBHOOK_ACTIONS)
    query = {"project": project.project_id}
    status, listed = label_studio.api("GET", "/api/webhooks/", query=query)
    assert status == 200
    assert [(hook["id"], hook["headers"]) for hook in listed] == [
        (webhook["id"], {"X-Webhook-Secret": WEBHOOK_SECRET})
    ]
    path = f"/api/webhooks/{webhook['id']}/"
    change = {"url": url + "?v=2", "headers": {"X-Webhook-Secret": "new"}}
    status, patched = label_studio.api("PATCH", path, {**change, "is_active": False})
    assert status == 200
    assert (patched["url"], patched["headers"]) == (change["url"], change["headers"])
    assert (patched["is_active"], patched["actions"]) == (False, [])
    status, patched = label_studio.api("PATCH", path, {"actions": WEBHOOK_ACTIONS})
    assert sorted(patched["actions"]) == sorted(WEBHOOK_ACTIONS)
    assert (patched["headers"], patched["is_active"]) == (change["headers"], False)


def test_webhook_delivers_annotation_created(
    label_studio: LabelStudio,
    webhook_listener: tuple[str, queue.Queue[Delivery]],
) -> None:
    """Creating an annotation POSTs ANNOTATION_CREATED to the webhook URL before
    the API call returns, with the custom header, annotation, task and meta."""
    url, received = webhook_listener
    project = _import_project(label_studio, "webhook delivery")
    _register_webhook(label_studio, project.project_id, url)
    task_id = project.task_ids[0]
    path = f"/api/tasks/{task_id}/annotations"
    status, annotation = label_studio.api("POST", path, {"result": _choice("OK")})
    assert status == 201
    delivery = received.get(timeout=DELIVERY_TIMEOUT_S)
    assert delivery.path == WEBHOOK_PATH
    assert delivery.headers["X-Webhook-Secret"] == WEBHOOK_SECRET
    assert delivery.body["action"] == "ANNOTATION_CREATED"
    assert delivery.body["annotation"]["id"] == annotation["id"]
    assert delivery.body["task"]["id"] == task_id
    assert delivery.body["task"]["meta"] == {"labelhub_task_id": FIRST_LABELHUB_ID}
    assert delivery.body["project"]["id"] == project.project_id
