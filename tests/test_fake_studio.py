"""The fake Label Studio behaves like the real one where labelhub relies on it."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from urllib.parse import quote, urlencode

import aiohttp
import jwt
import pytest
from aiohttp import web

from tests.fake_studio import DEFAULT_CONFIG, TIME_FORMAT, FakeStudio

ITEMS = [
    {"data": {"text": f"t{i}", "labelhub_task_id": 17 + i}, "meta": {"lh": 17 + i}}
    for i in range(5)
]


@pytest.fixture
async def fake():
    async with FakeStudio() as studio:
        yield studio


@pytest.fixture
async def http(fake):
    headers = {"Authorization": f"Token {fake.legacy_token}"}
    async with aiohttp.ClientSession(fake.url, headers=headers) as session:
        yield session


@pytest.fixture
def project(fake):
    """A project with the five ITEMS as tasks 1..5."""
    project_id = fake.project("probe")
    fake.add_tasks(project_id, [i["data"] for i in ITEMS], [i["meta"] for i in ITEMS])
    return project_id


class Receiver:
    """A webhook target that records what it gets and answers as told."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], dict]] = []
        self.url = ""
        self.status = 200
        self.sleep_s = 0.0

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.json()))
        await asyncio.sleep(self.sleep_s)
        return web.Response(status=self.status)

    @property
    def actions(self) -> list[str]:
        return [body["action"] for _, body in self.requests]


@pytest.fixture
async def receiver(aiohttp_server):
    target = Receiver()
    app = web.Application(client_max_size=64 * 1024**2)
    app.router.add_post("/hook", target.handle)
    server = await aiohttp_server(app)
    target.url = str(server.make_url("/hook"))
    return target


async def answer(response: aiohttp.ClientResponse) -> tuple[int, object]:
    text = await response.text()
    return response.status, json.loads(text) if text else None


async def whoami(fake, headers):
    """GET /api/current-user/whoami with these headers: (status, body)."""
    async with (
        aiohttp.ClientSession(fake.url, headers=headers) as session,
        session.get("/api/current-user/whoami") as response,
    ):
        return await answer(response)


async def refresh(fake, token):
    """POST /api/token/refresh/ without auth: (status, body)."""
    async with (
        aiohttp.ClientSession(fake.url) as session,
        session.post("/api/token/refresh/", json={"refresh": token}) as response,
    ):
        return await answer(response)


async def list_tasks(http, project_id, query=None, *, twice=True, **params):
    """GET /api/tasks with the query JSON URL-encoded twice (or once)."""
    params = {"project": project_id, **params}
    if query is not None:
        text = json.dumps(query, separators=(",", ":"))
        params["query"] = quote(text) if twice else text
    async with http.get(f"/api/tasks?{urlencode(params)}") as response:
        return await answer(response)


def only(*items, ordering=None):
    query = {"filters": {"conjunction": "and", "items": list(items)}}
    if ordering:
        query["ordering"] = ordering
    return query


def item(field, operator, value, kind="Number"):
    return {
        "filter": f"filter:tasks:{field}",
        "operator": operator,
        "type": kind,
        "value": value,
    }


async def ids_for(http, project_id, query):
    status, body = await list_tasks(http, project_id, query)
    assert status == 200, body
    return [task["id"] for task in body["tasks"]]


# --- health and auth ---


async def test_health_needs_no_auth(fake):
    async with (
        aiohttp.ClientSession() as session,
        session.get(fake.url + "/health") as response,
    ):
        assert await answer(response) == (200, {"status": "UP"})


async def test_whoami_answers_with_legacy_token(http):
    async with http.get("/api/current-user/whoami") as response:
        status, body = await answer(response)

    assert status == 200
    assert (body["id"], body["email"], body["username"]) == (1, "admin@example.com", "")


@pytest.mark.parametrize(
    ("header", "detail"),
    [
        (None, "Authentication credentials were not provided."),
        ("Token wrongtoken", "Invalid token."),
        ("Bearer garbage", "Authentication credentials were not provided."),
    ],
)
async def test_bad_credentials_are_401(fake, header, detail):
    headers = {"Authorization": header} if header else {}
    status, body = await whoami(fake, headers)

    assert status == 401
    assert body["detail"] == detail
    assert body["status_code"] == 401
    assert body["version"] == "1.23.2"


async def test_legacy_token_is_refused_when_disabled():
    async with FakeStudio(legacy_enabled=False) as fake:
        headers = {"Authorization": f"Token {fake.legacy_token}"}
        status, body = await whoami(fake, headers)

    assert status == 401
    assert body["detail"].startswith("Authentication token no longer valid")


async def test_refresh_gives_an_access_token_that_works():
    async with FakeStudio(legacy_enabled=False) as fake:
        status, body = await refresh(fake, fake.pat)
        access = body["access"]
        used, _ = await whoami(fake, {"Authorization": f"Bearer {access}"})

    assert used == 200

    assert status == 200
    claims = jwt.decode(access, options={"verify_signature": False})
    assert claims["token_type"] == "access"
    assert claims["exp"] - claims["iat"] == 300
    assert fake.refresh_count == 1


async def test_personal_access_token_is_a_long_lived_refresh_jwt(fake):
    claims = jwt.decode(fake.pat, options={"verify_signature": False})

    assert claims["token_type"] == "refresh"
    assert claims["user_id"] == "1"
    assert claims["exp"] - claims["iat"] > 100 * 365 * 24 * 3600


@pytest.mark.parametrize(
    ("scheme", "detail"),
    [
        ("Bearer", "Authentication credentials were not provided."),
        ("Token", "Invalid token."),
    ],
)
async def test_personal_access_token_itself_is_401(fake, scheme, detail):
    status, body = await whoami(fake, {"Authorization": f"{scheme} {fake.pat}"})

    assert (status, body["detail"]) == (401, detail)


async def test_garbage_refresh_is_401_token_is_invalid(fake):
    status, body = await refresh(fake, "garbage")

    assert (status, body["detail"]) == (401, "Token is invalid")
    assert fake.refresh_count == 0


async def test_expired_access_token_is_401(fake):
    headers = {"Authorization": f"Bearer {fake.mint_access_token()}"}
    async with aiohttp.ClientSession(fake.url, headers=headers) as session:
        async with session.get("/api/current-user/whoami") as response:
            assert response.status == 200
        fake.advance_clock(301)
        async with session.get("/api/current-user/whoami") as response:
            status, body = await answer(response)

    assert status == 401
    assert body["detail"] == "Authentication credentials were not provided."


async def test_access_lifetime_is_a_constructor_argument():
    async with FakeStudio(access_lifetime_s=0) as fake:
        refreshed, body = await refresh(fake, fake.pat)
        used, _ = await whoami(fake, {"Authorization": f"Bearer {body['access']}"})

    assert (refreshed, used) == (200, 401)


# --- projects and import ---


async def test_project_is_created_and_read_back(http):
    async with http.post(
        "/api/projects", json={"title": "shadow", "label_config": DEFAULT_CONFIG}
    ) as response:
        status, created = await answer(response)
    async with http.get(f"/api/projects/{created['id']}") as response:
        status_read, read = await answer(response)
    async with http.get("/api/projects/999") as response:
        missing = response.status

    assert status == 201
    assert (status_read, read["title"], read["label_config"]) == (
        200,
        "shadow",
        DEFAULT_CONFIG,
    )
    assert missing == 404


@pytest.mark.parametrize("flag", ["true", "1"])
async def test_import_returns_task_ids_in_input_order(fake, http, flag):
    project_id = fake.project()
    async with http.post(
        f"/api/projects/{project_id}/import?return_task_ids={flag}", json=ITEMS
    ) as response:
        status, body = await answer(response)

    assert status == 201
    assert body["task_ids"] == [1, 2, 3, 4, 5]
    assert body["task_count"] == 5
    assert body["annotation_count"] == 0
    assert fake.tasks[3]["meta"] == {"lh": 19}
    assert fake.tasks[3]["data"] == {"text": "t2", "labelhub_task_id": 19}


async def test_import_without_flag_returns_no_task_ids(fake, http):
    project_id = fake.project()
    async with http.post(f"/api/projects/{project_id}/import", json=ITEMS) as response:
        status, body = await answer(response)

    assert status == 201
    assert "task_ids" not in body
    assert set(body) >= {"task_count", "duration", "file_upload_ids", "data_columns"}


async def test_import_takes_a_flat_dict_as_data(fake, http):
    project_id = fake.project()
    url = f"/api/projects/{project_id}/import?return_task_ids=true"
    async with http.post(url, json={"text": "flat", "ext_id": "f-1"}) as response:
        status, body = await answer(response)

    assert status == 201
    task = fake.tasks[body["task_ids"][0]]
    assert (task["data"], task["meta"]) == ({"text": "flat", "ext_id": "f-1"}, {})


async def test_import_of_empty_list_is_400(fake, http):
    project_id = fake.project()
    async with http.post(f"/api/projects/{project_id}/import", json=[]) as response:
        status, body = await answer(response)

    assert status == 400
    assert body["validation_errors"] == {
        "non_field_errors": ["load_tasks: No tasks added"]
    }


async def test_import_with_an_item_missing_text_stores_nothing(fake, http):
    project_id = fake.project()
    items = [{"data": {"text": "ok"}}, {"data": {"other": "x"}}]
    async with http.post(f"/api/projects/{project_id}/import", json=items) as response:
        status, body = await answer(response)

    assert status == 400
    errors = body["validation_errors"]["non_field_errors"]
    assert errors[0] == {}
    assert errors[1].startswith('Error at item 1: "text" key is expected in task data')
    assert fake.tasks == {}


async def test_import_into_unknown_project_is_404(http):
    async with http.post("/api/projects/77/import", json=ITEMS) as response:
        assert response.status == 404


async def test_reused_task_ids_after_deleting_the_highest():
    async with FakeStudio(reuse_task_ids=True) as fake:
        project_id = fake.project()
        fake.add_tasks(project_id, [{"text": str(i)} for i in range(4)])
        fake.delete_task(4)
        fake.delete_task(3)

        assert fake.add_tasks(project_id, [{"text": "a"}, {"text": "b"}]) == [3, 4]


async def test_task_ids_are_not_reused_by_default(fake):
    project_id = fake.project()
    fake.add_tasks(project_id, [{"text": str(i)} for i in range(4)])
    fake.delete_task(4)

    assert fake.add_tasks(project_id, [{"text": "a"}]) == [5]


# --- task list, paging and filters ---


async def test_task_list_pages_in_ascending_id_order(fake, http, project):
    status, body = await list_tasks(http, project, page=2, page_size=2)

    assert status == 200
    assert body["total"] == 5
    assert body["total_predictions"] == 0
    assert [task["id"] for task in body["tasks"]] == [3, 4]
    assert "annotations" not in body["tasks"][0]


async def test_default_page_size_is_100(fake, http):
    project_id = fake.project()
    fake.add_tasks(project_id, [{"text": str(i)} for i in range(150)])

    status, body = await list_tasks(http, project_id)

    assert (status, len(body["tasks"]), body["total"]) == (200, 100, 150)


async def test_last_partial_page_is_200(http, project):
    status, body = await list_tasks(http, project, page=3, page_size=2)

    assert (status, [task["id"] for task in body["tasks"]]) == (200, [5])


async def test_page_past_the_end_is_404(http, project):
    status, body = await list_tasks(http, project, page=4, page_size=2)

    assert (status, body["detail"]) == (404, "Invalid page.")


async def test_first_page_of_an_empty_project_is_200(fake, http):
    status, body = await list_tasks(http, fake.project())

    assert (status, body["tasks"], body["total"]) == (200, [], 0)


async def test_task_list_without_project_is_404(http):
    async with http.get("/api/tasks") as response:
        status, body = await answer(response)

    assert (status, body["detail"]) == (404, "Neither project nor view id specified")


async def test_fields_all_adds_annotations(fake, http, project):
    annotation_id = fake.annotate(2, "OK")

    status, body = await list_tasks(http, project, fields="all", page_size=2)

    assert status == 200
    assert body["total_annotations"] == 1
    first, second = body["tasks"]
    assert (first["annotations"], first["predictions"], first["drafts"]) == ([], [], [])
    assert [a["id"] for a in second["annotations"]] == [annotation_id]
    assert second["annotations"][0]["result"][0]["value"] == {"choices": ["OK"]}


@pytest.mark.parametrize(
    ("operator", "value", "expected"),
    [
        ("greater", 2, [3, 4, 5]),
        ("greater", "2", [3, 4, 5]),
        ("greater_or_equal", 2, [2, 3, 4, 5]),
        ("less", 3, [1, 2]),
        ("in", {"min": 2, "max": 4}, [2, 3, 4]),
    ],
)
async def test_id_filters(http, project, operator, value, expected):
    assert await ids_for(http, project, only(item("id", operator, value))) == expected


@pytest.mark.parametrize(
    ("operator", "value", "kind", "expected"),
    [
        ("equal", 19, "Number", [3]),
        ("in", {"min": 18, "max": 20}, "Number", [2, 3, 4]),
        ("greater", 19, "Number", [4, 5]),
        ("in_list", [17, 19], "Number", [1, 3]),
        ("equal", 19, "String", [3]),
        ("equal", "19", "String", []),
    ],
)
async def test_data_filters(http, project, operator, value, kind, expected):
    query = only(item("data.labelhub_task_id", operator, value, kind))

    assert await ids_for(http, project, query) == expected


async def test_data_text_filter_matches_strings(http, project):
    query = only(item("data.text", "equal", "t3", "String"))

    assert await ids_for(http, project, query) == [4]


async def test_updated_at_filters_are_strict_and_inclusive(fake, http, project):
    stamp = fake.tasks[3]["updated_at"]

    greater = only(item("updated_at", "greater", stamp, "Datetime"))
    at_least = only(item("updated_at", "greater_or_equal", stamp, "Datetime"))

    assert await ids_for(http, project, greater) == [4, 5]
    assert await ids_for(http, project, at_least) == [3, 4, 5]


@pytest.mark.parametrize(
    "stamp", ["2026-12-03T19:38:29.039895+00:00", "2026-12-03T19:38:29Z"]
)
async def test_updated_at_in_another_format_is_500(http, project, stamp):
    query = only(item("updated_at", "greater", stamp, "Datetime"))

    status, body = await list_tasks(http, project, query)

    assert status == 500
    assert "does not match format '%Y-%m-%dT%H:%M:%S.%fZ'" in body["detail"]


async def test_meta_filter_is_500_like_the_real_one(http, project):
    query = only(item("meta.lh", "equal", 19))

    status, body = await list_tasks(http, project, query)

    assert status == 500
    assert "Cannot resolve keyword 'meta.lh'" in body["detail"]


async def test_filters_combine_with_and(http, project):
    query = only(item("id", "greater", 1), item("data.labelhub_task_id", "less", 20))

    assert await ids_for(http, project, query) == [2, 3]


@pytest.mark.parametrize(
    ("ordering", "expected"),
    [(["tasks:id"], [1, 2, 3, 4, 5]), (["-tasks:id"], [5, 4, 3, 2, 1])],
)
async def test_ordering_by_id(http, project, ordering, expected):
    query = only(ordering=ordering)

    assert await ids_for(http, project, query) == expected


async def test_ordering_by_updated_at_puts_the_changed_task_last(fake, http, project):
    fake.annotate(1, "OK")

    query = only(ordering=["tasks:updated_at"])

    assert await ids_for(http, project, query) == [2, 3, 4, 5, 1]


async def test_query_is_url_decoded_twice(fake, http, project):
    [task_id] = fake.add_tasks(project, [{"text": "100%41"}])
    query = only(item("data.text", "equal", "100%41", "String"))

    _, once = await list_tasks(http, project, query, twice=False)
    _, twice = await list_tasks(http, project, query)

    assert once["tasks"] == []
    assert [task["id"] for task in twice["tasks"]] == [task_id]


async def test_paging_a_filtered_list_counts_all_matches(http, project):
    query = only(item("id", "greater", 1))

    status, body = await list_tasks(http, project, query, page=2, page_size=3)

    assert (status, body["total"]) == (200, 4)
    assert [task["id"] for task in body["tasks"]] == [5]


# --- tasks and annotations ---


async def test_annotations_change_task_counters_and_updated_at(fake, http, project):
    stamps = [fake.tasks[1]["updated_at"]]
    result = [{"from_name": "label", "to_name": "text", "type": "choices"}]

    async with http.post("/api/tasks/1/annotations", json={"result": result}) as r:
        status, created = await answer(r)
    stamps.append(fake.tasks[1]["updated_at"])
    labeled = fake.tasks[1]["is_labeled"], fake.tasks[1]["total_annotations"]
    async with http.patch(
        f"/api/annotations/{created['id']}", json={"was_cancelled": True}
    ) as r:
        patched = r.status
    stamps.append(fake.tasks[1]["updated_at"])
    cancelled = fake.tasks[1]["cancelled_annotations"], fake.tasks[1]["is_labeled"]
    async with http.delete(f"/api/annotations/{created['id']}") as r:
        deleted = r.status
    stamps.append(fake.tasks[1]["updated_at"])

    assert (status, patched, deleted) == (201, 200, 204)
    assert (created["task"], created["project"], created["completed_by"]) == (1, 1, 1)
    assert labeled == (True, 1)
    assert cancelled == (1, False)
    assert fake.tasks[1]["total_annotations"] == 0
    assert fake.tasks[1]["updated_by"] == [{"user_id": 1}]
    assert stamps == sorted(set(stamps))


async def test_timestamps_use_label_studios_format(fake, project):
    for key in ("created_at", "updated_at"):
        stamp = fake.tasks[1][key]
        assert datetime.strptime(stamp, TIME_FORMAT).strftime(TIME_FORMAT) == stamp


async def test_get_task_has_annotations_and_missing_task_is_404(fake, http, project):
    annotation_id = fake.annotate(1, "NG", completed_by=2)
    async with http.get("/api/tasks/1") as response:
        status, task = await answer(response)
    async with http.get("/api/tasks/99") as response:
        missing = await answer(response)

    assert status == 200
    assert task["annotations"][0]["id"] == annotation_id
    assert task["annotations"][0]["completed_by"] == 2
    assert missing[0] == 404
    assert missing[1]["detail"] == "No Task matches the given query."


async def test_delete_task_cascades_to_its_annotations(fake, http, project):
    annotation_id = fake.annotate(1, "OK")

    async with http.delete("/api/tasks/1") as response:
        status = response.status
    async with http.delete("/api/tasks/1") as response:
        again = response.status

    assert (status, again) == (204, 404)
    assert annotation_id not in fake.annotations


async def test_patch_task_changes_updated_at_without_webhook(
    fake, http, project, receiver
):
    fake.add_webhook(project, receiver.url)
    before = fake.tasks[1]["updated_at"]

    async with http.patch("/api/tasks/1", json={"meta": {"lh": 99}}) as response:
        status, task = await answer(response)

    assert status == 200
    assert task["meta"] == {"lh": 99}
    assert task["updated_at"] > before
    assert receiver.requests == []


async def test_cancelled_annotation_does_not_label_the_task(fake, project):
    fake.annotate(1, None, cancelled=True)

    task = fake.tasks[1]
    assert (task["is_labeled"], task["total_annotations"]) == (False, 0)
    assert task["cancelled_annotations"] == 1


# --- webhooks ---


async def create_webhook(http, body):
    async with http.post("/api/webhooks/", json=body) as response:
        return await answer(response)


async def annotate_over_http(http, task_id):
    async with http.post(f"/api/tasks/{task_id}/annotations", json={"result": []}) as r:
        assert r.status == 201
        return (await r.json())["id"]


async def test_annotation_webhook_arrives_with_custom_headers_before_the_answer(
    fake, http, project, receiver
):
    status, hook = await create_webhook(
        http,
        {
            "project": project,
            "url": receiver.url,
            "headers": {"X-Webhook-Secret": "abc"},
        },
    )

    annotation_id = await annotate_over_http(http, 2)

    assert status == 201
    assert (hook["send_payload"], hook["send_for_all_actions"]) == (True, True)
    [(headers, body)] = receiver.requests
    assert headers["X-Webhook-Secret"] == "abc"
    assert headers["Content-Type"] == "application/json"
    assert body["action"] == "ANNOTATION_CREATED"
    assert body["annotation"]["id"] == annotation_id
    assert body["task"]["id"] == 2
    assert body["task"]["meta"] == {"lh": 18}
    assert body["project"]["id"] == project
    assert fake.deliveries[-1]["status"] == 200
    assert json.loads(fake.deliveries[-1]["body"]) == body


async def test_each_write_sends_its_action(fake, http, project, receiver):
    fake.add_webhook(project, receiver.url)

    annotation_id = await annotate_over_http(http, 1)
    async with http.patch(f"/api/annotations/{annotation_id}", json={}) as response:
        assert response.status == 200
    async with http.delete(f"/api/annotations/{annotation_id}") as response:
        assert response.status == 204
    async with http.delete("/api/tasks/1") as response:
        assert response.status == 204

    assert receiver.actions == [
        "ANNOTATION_CREATED",
        "ANNOTATION_UPDATED",
        "ANNOTATIONS_DELETED",
        "TASKS_DELETED",
    ]
    assert receiver.requests[2][1]["annotations"] == [{"id": annotation_id}]
    assert receiver.requests[3][1]["tasks"] == [{"id": 1}]


async def test_deleting_an_annotated_task_sends_only_tasks_deleted(
    fake, http, project, receiver
):
    fake.annotate(1, "OK")
    fake.add_webhook(project, receiver.url)

    async with http.delete("/api/tasks/1") as response:
        assert response.status == 204

    assert receiver.actions == ["TASKS_DELETED"]


async def test_import_sends_tasks_created_in_batches_of_5000(fake, http, receiver):
    project_id = fake.project()
    fake.add_webhook(project_id, receiver.url)
    items = [{"text": str(i)} for i in range(6000)]

    async with http.post(f"/api/projects/{project_id}/import", json=items) as r:
        assert r.status == 201

    assert receiver.actions == ["TASKS_CREATED", "TASKS_CREATED"]
    sizes = [len(body["tasks"]) for _, body in receiver.requests]
    assert sizes == [5000, 1000]
    assert receiver.requests[1][1]["tasks"][-1]["id"] == 6000


async def test_send_payload_false_sends_only_the_action(fake, http, project, receiver):
    fake.add_webhook(project, receiver.url, send_payload=False)

    await annotate_over_http(http, 1)

    assert receiver.requests[0][1] == {"action": "ANNOTATION_CREATED"}


async def test_filtered_webhook_gets_only_its_actions(fake, http, project, receiver):
    _, hook = await create_webhook(
        http,
        {
            "project": project,
            "url": receiver.url,
            "send_for_all_actions": False,
            "actions": ["TASKS_DELETED", "ANNOTATION_CREATED"],
        },
    )

    annotation_id = await annotate_over_http(http, 1)
    async with http.delete(f"/api/annotations/{annotation_id}"):
        pass

    assert hook["actions"] == ["ANNOTATION_CREATED", "TASKS_DELETED"]
    assert receiver.actions == ["ANNOTATION_CREATED"]


async def test_patch_without_actions_resets_them_and_keeps_headers(
    fake, http, project, receiver
):
    _, hook = await create_webhook(
        http,
        {
            "project": project,
            "url": receiver.url,
            "send_for_all_actions": False,
            "actions": ["ANNOTATION_CREATED"],
            "headers": {"X-Webhook-Secret": "abc"},
        },
    )

    async with http.patch(
        f"/api/webhooks/{hook['id']}/", json={"url": receiver.url + "?v=2"}
    ) as response:
        status, patched = await answer(response)
    await annotate_over_http(http, 1)

    assert status == 200
    assert patched["actions"] == []
    assert patched["headers"] == {"X-Webhook-Secret": "abc"}
    assert patched["url"].endswith("?v=2")
    assert receiver.requests == []


async def test_webhook_list_is_a_plain_list_for_the_project(fake, http, project):
    other = fake.project()
    fake.add_webhook(project, "http://127.0.0.1:9/a", actions=["TASKS_DELETED"])
    fake.add_webhook(other, "http://127.0.0.1:9/b")

    async with http.get(f"/api/webhooks/?project={project}") as response:
        status, hooks = await answer(response)

    assert status == 200
    assert [hook["url"] for hook in hooks] == ["http://127.0.0.1:9/a"]


async def test_webhook_without_project_is_404(http, receiver):
    status, body = await create_webhook(http, {"url": receiver.url})

    assert (status, body["detail"]) == (404, "Project not found.")


async def test_webhook_with_unknown_action_is_400(http, project, receiver):
    body = {"project": project, "url": receiver.url, "actions": ["NOPE"]}

    status, answer_body = await create_webhook(http, body)

    assert status == 400
    assert answer_body["validation_errors"] == {
        "actions": {"0": ['"NOPE" is not a valid choice.']}
    }


async def test_put_and_delete_webhook(fake, http, project, receiver):
    hook_id = fake.add_webhook(project, receiver.url)
    full = {
        "project": project,
        "url": receiver.url,
        "send_payload": True,
        "send_for_all_actions": False,
        "actions": ["TASKS_DELETED"],
        "headers": {},
        "is_active": False,
    }

    async with http.put(f"/api/webhooks/{hook_id}/", json=full) as response:
        status, put = await answer(response)
    async with http.delete(f"/api/webhooks/{hook_id}/") as response:
        deleted = response.status
    async with http.get(f"/api/webhooks/{hook_id}/") as response:
        missing = response.status

    assert (status, put["is_active"], put["actions"]) == (200, False, ["TASKS_DELETED"])
    assert (deleted, missing) == (204, 404)


async def test_inactive_webhook_gets_nothing(fake, http, project, receiver):
    fake.add_webhook(project, receiver.url, is_active=False)

    await annotate_over_http(http, 1)

    assert receiver.requests == []


async def test_deliver_false_loses_the_event(fake, http, project, receiver):
    fake.add_webhook(project, receiver.url)
    fake.deliver = False

    await annotate_over_http(http, 1)

    assert receiver.requests == []
    assert fake.deliveries[-1]["error"].startswith("suppressed")


async def test_slow_receiver_times_out_but_the_call_succeeds(receiver):
    receiver.sleep_s = 1.0
    async with FakeStudio(webhook_timeout_s=0.2) as fake:
        project_id = fake.project()
        [task_id] = fake.add_tasks(project_id, [{"text": "x"}])
        fake.add_webhook(project_id, receiver.url)
        headers = {"Authorization": f"Token {fake.legacy_token}"}
        async with aiohttp.ClientSession(fake.url, headers=headers) as session:
            started = time.monotonic()
            await annotate_over_http(session, task_id)
            elapsed = time.monotonic() - started

    assert elapsed < 0.9
    assert len(receiver.requests) == 1
    assert fake.deliveries[-1]["status"] is None
    assert "Timeout" in fake.deliveries[-1]["error"]


async def test_receiver_errors_are_recorded_and_ignored(fake, http, project, receiver):
    receiver.status = 500
    fake.add_webhook(project, receiver.url)
    fake.add_webhook(project, "http://127.0.0.1:9/unreachable")

    await annotate_over_http(http, 1)

    first, second = fake.deliveries
    assert (first["status"], first["error"]) == (500, None)
    assert second["status"] is None
    assert second["error"]


async def test_helpers_notify_only_when_asked(fake, project, receiver):
    fake.add_webhook(project, receiver.url)

    fake.annotate(1, "OK")
    annotation_id = fake.annotate(2, "NG", notify=True)
    fake.delete_annotation(annotation_id, notify=True)
    fake.delete_task(3, notify=True)
    await fake.drain()

    assert receiver.actions == [
        "ANNOTATION_CREATED",
        "ANNOTATIONS_DELETED",
        "TASKS_DELETED",
    ]


# --- faults ---


async def test_fault_answers_status_with_retry_after(fake, http, project):
    fake.fail("GET", "/api/tasks", status=503, retry_after_s=2)

    async with http.get(f"/api/tasks?project={project}") as response:
        first = response.status, response.headers.get("Retry-After")
    async with http.get(f"/api/tasks?project={project}") as response:
        second = response.status

    assert first == (503, "2")
    assert second == 200


async def test_fault_lasts_for_its_times(fake, http):
    rule = fake.fail("*", "/api/current-user", times=2)

    statuses = []
    for _ in range(3):
        async with http.get("/api/current-user/whoami") as response:
            statuses.append(response.status)

    assert statuses == [500, 500, 200]
    assert rule.hits == 2


async def test_delay_alone_gives_a_slow_normal_answer(fake, http):
    fake.fail("GET", "/api/current-user", delay_s=0.3)

    started = time.monotonic()
    async with http.get("/api/current-user/whoami") as response:
        status = response.status

    assert status == 200
    assert time.monotonic() - started >= 0.3


async def test_slow_answer_trips_a_client_timeout(fake, http):
    fake.fail("GET", "/api/current-user", delay_s=0.5)

    with pytest.raises(TimeoutError):
        async with http.get(
            "/api/current-user/whoami", timeout=aiohttp.ClientTimeout(total=0.2)
        ):
            pass


async def test_drop_closes_the_connection_without_effect(fake, http):
    project_id = fake.project()
    fake.fail("POST", "/api/projects/", drop=True)

    with pytest.raises(aiohttp.ServerDisconnectedError):
        async with http.post(f"/api/projects/{project_id}/import", json=ITEMS):
            pass

    assert fake.tasks == {}


async def test_after_commit_stores_the_import_but_answers_500(fake, http, receiver):
    project_id = fake.project()
    fake.add_webhook(project_id, receiver.url)
    fake.fail("POST", f"/api/projects/{project_id}/import", after_commit=True)

    async with http.post(f"/api/projects/{project_id}/import", json=ITEMS) as r:
        status = r.status

    assert status == 500
    assert len(fake.tasks) == 5
    assert receiver.actions == ["TASKS_CREATED"]


async def test_after_commit_with_drop_loses_the_answer_only(fake, http):
    project_id = fake.project()
    fake.fail("POST", "/api/projects/", after_commit=True, drop=True)

    with pytest.raises(aiohttp.ServerDisconnectedError):
        async with http.post(f"/api/projects/{project_id}/import", json=ITEMS):
            pass

    assert len(fake.tasks) == 5


# --- bookkeeping and speed ---


async def test_calls_record_method_and_path_with_query(fake, http, project):
    await list_tasks(http, project, page=1)

    assert fake.calls[-1] == ("GET", f"/api/tasks?project={project}&page=1")


async def test_paths_work_with_and_without_trailing_slash(http, project):
    for path in (
        "/api/tasks/1",
        "/api/tasks/1/",
        "/api/projects/1",
        "/api/projects/1/",
    ):
        async with http.get(path) as response:
            assert response.status == 200, path


async def test_paging_100k_tasks_is_fast(fake, http):
    project_id = fake.project()
    fake.add_tasks(project_id, [{"text": str(i)} for i in range(100_000)])

    started = time.monotonic()
    seen, last = 0, 0
    while True:
        query = only(item("id", "greater", last))
        _, body = await list_tasks(http, project_id, query, page_size=1000)
        if not body["tasks"]:
            break
        seen += len(body["tasks"])
        last = body["tasks"][-1]["id"]
    elapsed = time.monotonic() - started

    assert seen == 100_000
    assert elapsed < 10
