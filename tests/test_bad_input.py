"""Input no database could store, or that says one thing twice: a 4xx, never a 500."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from labelhub import keys
from labelhub.store.models import Task
from tests.test_assignment import _imported_dataset

DEEP = "[" * 50_000 + "]" * 50_000


async def _tasks(client):
    async with client.app[keys.SESSIONS]() as session:
        return await session.scalar(select(func.count()).select_from(Task))


@pytest.mark.parametrize(
    ("body", "content_type", "complaint"),
    [
        ('[{"x": NaN}]', "application/json", "NaN is not a JSON number"),
        ('{"x": -Infinity}\n', "application/x-ndjson", "-Infinity is not a JSON"),
        ('[{"x": "a\\u0000b"}]', "application/json", "NUL character"),
        ('{"x": {"\\u0000": 1}}\n', "application/x-ndjson", "NUL character"),
        ('[{"x": "\\ud800"}]', "application/json", "unpaired surrogate"),
        (DEEP, "application/json", "nested too deeply"),
    ],
)
async def test_items_no_database_can_store_are_refused_and_nothing_is_stored(
    client, admin, body, content_type, complaint
):
    created = await client.post(
        "/datasets", json={"name": "d", "items": [{"a": 1}]}, headers=admin
    )
    dataset_id = (await created.json())["id"]

    response = await client.post(
        f"/datasets/{dataset_id}/items",
        data=body.encode(),
        headers={**admin, "Content-Type": content_type},
    )

    assert response.status == 400
    assert complaint in (await response.json())["error"]["message"]
    assert await _tasks(client) == 1


async def test_a_paired_surrogate_escape_is_a_character_like_any_other(client, admin):
    created = await client.post(
        "/datasets", json={"name": "d", "items": [{"a": 1}]}, headers=admin
    )
    dataset_id = (await created.json())["id"]

    response = await client.post(
        f"/datasets/{dataset_id}/items",
        data=b'[{"text": "smile \\ud83d\\ude00"}]',
        headers={**admin, "Content-Type": "application/json"},
    )

    assert response.status == 201
    assert await _tasks(client) == 2


@pytest.mark.parametrize(
    "body",
    [
        b'{"name": "d", "items": [{"x": NaN}]}',
        b'{"name": "d", "items": [{"x": "\\u0000"}]}',
        b'{"name": "d", "items": ' + DEEP.encode() + b"}",
    ],
)
async def test_inline_items_no_database_can_store_are_refused(client, admin, body):
    response = await client.post(
        "/datasets", data=body, headers={**admin, "Content-Type": "application/json"}
    )

    assert response.status == 400
    assert await _tasks(client) == 0


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/datasets/{d}/tasks?assigned_to=%00"),
        ("GET", "/datasets/{d}/tasks?label=%00"),
        ("POST", "/tasks/1/assign/%00"),
        ("POST", "/datasets/{d}/auto_assign?username=%00&count=5"),
        ("POST", "/datasets/{d}/auto_assign?username=ann&count=5&count=7"),
        ("POST", "/datasets/{d}/auto_assign?username=ann&username=admin&count=5"),
    ],
)
async def test_a_nul_or_a_repeated_parameter_is_refused_and_changes_nothing(
    client, admin, method, path
):
    dataset_id = await _imported_dataset(client, admin, count=10)

    response = await client.request(
        method, path.replace("{d}", str(dataset_id)), headers=admin
    )

    assert response.status == 400
    assert "error" in await response.json()
    async with client.app[keys.SESSIONS]() as session:
        assigned = await session.scalar(
            select(func.count()).where(Task.assigned_to.is_not(None))
        )
    assert assigned == 0
