"""Datasets: creation, items, task listing and statistics."""

from __future__ import annotations

import io
import json

import pytest
from sqlalchemy import select

from labelhub.daemon import create_app


async def _create(client, admin, **body):
    response = await client.post("/datasets", json={"name": "d", **body}, headers=admin)
    assert response.status == 201, await response.text()
    return await response.json()


async def test_a_dataset_without_items_holds_100_varied_demo_items(client, admin):
    created = await _create(client, admin, name="demo-dataset")

    assert created["dataset_id"] == created["id"]
    assert created["total"] == 100
    assert created["counts"] == {"new": 100, "imported": 0, "labeled": 0, "deleted": 0}
    page = await (
        await client.get(f"/datasets/{created['id']}/tasks?limit=1000", headers=admin)
    ).json()
    assert len(page["tasks"]) == 100


async def test_demo_items_are_distinct_sentences(client, admin):
    from labelhub import keys
    from labelhub.store.models import Task

    created = await _create(client, admin)

    async with client.app[keys.SESSIONS]() as session:
        datas = await session.scalars(
            select(Task.data).where(Task.dataset_id == created["id"])
        )
        sentences = [data["text"] for data in datas]

    assert len(set(sentences)) == 100
    assert all(len(sentence.split()) >= 6 for sentence in sentences)


async def test_stats_of_a_new_demo_dataset(client, admin):
    created = await _create(client, admin)

    response = await client.get(f"/datasets/{created['id']}/stats", headers=admin)

    stats = await response.json()
    assert stats["total"] == 100
    assert (stats["new"], stats["imported"], stats["labeled"], stats["deleted"]) == (
        100,
        0,
        0,
        0,
    )
    assert (stats["assigned"], stats["unassigned"]) == (0, 100)
    assert stats["labels"] == {}
    assert stats["annotators"] == []


async def test_items_can_be_given_inline_or_left_empty(client, admin):
    inline = await _create(client, admin, items=[{"text": "a"}, {"text": "b"}])
    empty = await _create(client, admin, items=[])

    assert inline["total"] == 2
    assert empty["total"] == 0


async def test_items_are_added_as_a_json_list(client, admin):
    dataset = await _create(client, admin, items=[])

    response = await client.post(
        f"/datasets/{dataset['id']}/items",
        json=[{"text": "one"}, {"text": "two", "source": "cam-2"}],
        headers=admin,
    )

    assert response.status == 201
    assert await response.json() == {
        "dataset_id": dataset["id"],
        "added": 2,
        "total": 2,
    }


async def test_items_are_added_as_json_lines(client, admin):
    dataset = await _create(client, admin, items=[])
    body = "\n".join(json.dumps({"text": f"line {i}"}) for i in range(500)) + "\n"

    response = await client.post(
        f"/datasets/{dataset['id']}/items",
        data=body,
        headers={**admin, "Content-Type": "application/x-ndjson"},
    )

    assert response.status == 201
    assert (await response.json())["added"] == 500


@pytest.mark.parametrize(
    ("body", "status", "mentions"),
    [
        (b"", 400, "the body is empty"),
        (b"[1, 2", 400, "not valid JSON"),
        (b'{"text": "a"}\n{"text": ', 400, "line 2 is not valid JSON"),
        (b"[]", 422, "at least one item"),
        (b'[{"text": "a"}, 5]', 422, "items[1]: must be a non-empty JSON object"),
        (b'[{"text": "a"}, {}]', 422, "items[1]: must be a non-empty JSON object"),
        (b'{"a": 1}\n[1]', 422, "items[1]"),
        (b'"just a string"', 422, "send a JSON array of objects"),
        (b'[{"labelhub_task_id": 3}]', 422, "reserved"),
        (b"\xff\xfe", 400, "not UTF-8"),
    ],
)
async def test_bad_items_are_refused_and_nothing_is_stored(
    client, admin, body, status, mentions
):
    dataset = await _create(client, admin, items=[{"text": "kept"}])

    response = await client.post(
        f"/datasets/{dataset['id']}/items",
        data=body,
        headers={**admin, "Content-Type": "application/json"},
    )

    assert response.status == status
    assert mentions in (await response.json())["error"]["message"]
    after = await (await client.get(f"/datasets/{dataset['id']}", headers=admin)).json()
    assert after["total"] == 1


async def test_too_many_items_is_422(aiohttp_client, make_settings, admin_for):
    client = await aiohttp_client(create_app(make_settings(items_max_count=3)))
    admin = await admin_for(client)
    dataset = await _create(client, admin, items=[])

    response = await client.post(
        f"/datasets/{dataset['id']}/items",
        json=[{"a": i} for i in range(4)],
        headers=admin,
    )

    assert response.status == 422
    assert "more than the 3" in (await response.json())["error"]["message"]


async def test_a_body_over_the_limit_is_413(aiohttp_client, make_settings, admin_for):
    client = await aiohttp_client(create_app(make_settings(items_max_body_mb=1)))
    admin = await admin_for(client)
    dataset = await _create(client, admin, items=[])
    body = io.BytesIO(json.dumps([{"text": "x" * 1000}] * 1200).encode())

    response = await client.post(
        f"/datasets/{dataset['id']}/items",
        data=body,
        headers={**admin, "Content-Type": "application/json"},
    )

    assert response.status == 413


async def test_unknown_dataset_is_404_everywhere(client, admin):
    for method, path in (
        ("GET", "/datasets/999"),
        ("GET", "/datasets/999/tasks"),
        ("GET", "/datasets/999/stats"),
        ("POST", "/datasets/999/import_to_ls"),
    ):
        response = await client.request(method, path, headers=admin)
        assert response.status == 404, (method, path)
    response = await client.post("/datasets/999/items", json=[{"a": 1}], headers=admin)
    assert response.status == 404


async def test_task_pages_follow_keyset_cursors(client, admin):
    dataset = await _create(client, admin, items=[{"n": i} for i in range(25)])
    seen = []
    after = None

    while True:
        query = "?limit=10" + (f"&after={after}" if after else "")
        page = await (
            await client.get(f"/datasets/{dataset['id']}/tasks{query}", headers=admin)
        ).json()
        seen += [task["id"] for task in page["tasks"]]
        after = page["next_after"]
        if after is None:
            break

    assert len(seen) == len(set(seen)) == 25
    assert seen == sorted(seen)


@pytest.mark.parametrize(
    ("query", "mentions"),
    [
        ("status=done", "status:"),
        ("limit=0", "limit:"),
        ("limit=abc", "limit:"),
        ("after=-1", "after:"),
        ("label=%27%3B%20DROP%20TABLE%20tasks%3B--&statu=x", "statu:"),
    ],
)
async def test_bad_task_queries_are_422(client, admin, query, mentions):
    dataset = await _create(client, admin, items=[{"a": 1}])

    response = await client.get(
        f"/datasets/{dataset['id']}/tasks?{query}", headers=admin
    )

    assert response.status == 422
    assert mentions in (await response.json())["error"]["message"]


async def test_an_unknown_assignee_holds_no_task(client, admin):
    dataset = await _create(client, admin, items=[{"a": 1}])

    response = await client.get(
        f"/datasets/{dataset['id']}/tasks?assigned_to=ghost", headers=admin
    )

    assert response.status == 200
    assert (await response.json())["tasks"] == []


async def test_sql_in_a_filter_is_only_a_value(client, admin):
    dataset = await _create(client, admin, items=[{"a": 1}])

    response = await client.get(
        f"/datasets/{dataset['id']}/tasks?label=%27%3B%20DROP%20TABLE%20tasks%3B--",
        headers=admin,
    )

    assert response.status == 200
    assert (await response.json())["tasks"] == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/datasets"),
        ("POST", "/datasets"),
        ("GET", "/datasets/1"),
        ("POST", "/datasets/1/items"),
        ("GET", "/datasets/1/tasks"),
        ("GET", "/datasets/1/stats"),
        ("POST", "/datasets/1/import_to_ls"),
        ("GET", "/jobs"),
        ("GET", "/jobs/1"),
        ("POST", "/jobs/1/retry"),
    ],
)
async def test_annotators_are_refused_dataset_and_job_routes(
    client, admin, ann, method, path
):
    await _create(client, admin)

    response = await client.request(method, path, json={"name": "x"}, headers=ann)

    assert response.status == 403
