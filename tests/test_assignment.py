"""Assignment, annotator views and statistics; nobody sees another's work."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select, update

from labelhub import keys
from labelhub.store import assignments
from labelhub.store.models import Task
from tests.conftest import login


async def _imported_dataset(client, admin, count=30, project=7):
    created = await client.post(
        "/datasets",
        json={"name": "d", "items": [{"text": f"t{i}"} for i in range(count)]},
        headers=admin,
    )
    dataset_id = (await created.json())["id"]
    async with client.app[keys.SESSIONS].begin() as session:
        await session.execute(
            update(Task)
            .where(Task.dataset_id == dataset_id)
            .values(status="imported", ls_project_id=project, ls_task_id=Task.id + 1000)
        )
    return dataset_id


async def _add_annotator(client, admin, name):
    response = await client.post(
        "/users",
        json={"username": name, "password": "password-1", "role": "annotator"},
        headers=admin,
    )
    assert response.status == 201
    return await login(client, name, "password-1")


async def _label(client, task_ids, label):
    async with client.app[keys.SESSIONS].begin() as session:
        await session.execute(
            update(Task)
            .where(Task.id.in_(task_ids))
            .values(status="labeled", label=label)
        )


async def test_assign_one_task_answers_the_task(client, admin):
    dataset_id = await _imported_dataset(client, admin)

    response = await client.post("/tasks/1/assign/ann", headers=admin)

    assert response.status == 200
    task = await response.json()
    assert (task["id"], task["assigned_to"], task["dataset_id"]) == (
        1,
        "ann",
        dataset_id,
    )


async def test_reassign_and_unassign(client, admin):
    await _imported_dataset(client, admin)
    await _add_annotator(client, admin, "bob")

    await client.post("/tasks/1/assign/ann", headers=admin)
    moved = await (await client.post("/tasks/1/assign/bob", headers=admin)).json()
    freed = await (await client.delete("/tasks/1/assign", headers=admin)).json()

    assert moved["assigned_to"] == "bob"
    assert freed["assigned_to"] is None


@pytest.mark.parametrize(
    ("path", "status", "mentions"),
    [
        ("/tasks/999/assign/ann", 404, "no task 999"),
        ("/tasks/1/assign/ghost", 404, "no user 'ghost'"),
        ("/tasks/1/assign/admin", 404, "is an admin"),
        ("/tasks/abc/assign/ann", 422, "task_id:"),
    ],
)
async def test_impossible_assignments_say_why(client, admin, path, status, mentions):
    await _imported_dataset(client, admin)

    response = await client.post(path, headers=admin)

    assert response.status == status
    assert mentions in (await response.json())["error"]["message"]


async def test_deactivated_annotator_gets_no_task(client, admin):
    await _imported_dataset(client, admin)
    await _add_annotator(client, admin, "bob")
    await client.patch("/users/bob", json={"active": False}, headers=admin)

    response = await client.post("/tasks/1/assign/bob", headers=admin)

    assert response.status == 404
    assert "deactivated" in (await response.json())["error"]["message"]


async def test_a_task_not_in_label_studio_cannot_be_assigned(client, admin):
    created = await client.post(
        "/datasets", json={"name": "d", "items": [{"a": 1}]}, headers=admin
    )
    task_id = 1
    assert created.status == 201

    response = await client.post(f"/tasks/{task_id}/assign/ann", headers=admin)

    assert response.status == 409
    assert "is new" in (await response.json())["error"]["message"]


async def test_auto_assign_takes_the_oldest_free_tasks(client, admin):
    dataset_id = await _imported_dataset(client, admin)
    await client.post("/tasks/2/assign/ann", headers=admin)
    await _label(client, [1], "OK")

    response = await client.post(
        f"/datasets/{dataset_id}/auto_assign?username=ann&count=5", headers=admin
    )

    assert response.status == 200
    assert await response.json() == {
        "assigned": 5,
        "task_ids": [3, 4, 5, 6, 7],
        "by_user": {"ann": 5},
    }


async def test_auto_assign_assigns_what_is_left(client, admin):
    dataset_id = await _imported_dataset(client, admin, count=4)

    body = await (
        await client.post(
            f"/datasets/{dataset_id}/auto_assign?username=ann&count=20", headers=admin
        )
    ).json()

    assert body["assigned"] == 4


async def test_concurrent_auto_assigns_never_share_a_task(client, admin):
    dataset_id = await _imported_dataset(client, admin, count=200)
    await _add_annotator(client, admin, "bob")

    answers = await asyncio.gather(
        *[
            client.post(
                f"/datasets/{dataset_id}/auto_assign?username={name}&count=30",
                headers=admin,
            )
            for name in ("ann", "bob") * 4
        ]
    )

    given = [
        task_id for answer in answers for task_id in (await answer.json())["task_ids"]
    ]
    assert len(given) == len(set(given)) == 200


async def test_balanced_auto_assign_evens_out_open_workloads(client, admin):
    dataset_id = await _imported_dataset(client, admin, count=40)
    await _add_annotator(client, admin, "bob")
    await _add_annotator(client, admin, "cy")
    await client.post(
        f"/datasets/{dataset_id}/auto_assign?username=ann&count=6", headers=admin
    )

    body = await (
        await client.post(
            f"/datasets/{dataset_id}/auto_assign?usernames=ann,bob,cy&count=12",
            headers=admin,
        )
    ).json()

    assert body["assigned"] == 12
    assert body["by_user"] == {"ann": 0, "bob": 6, "cy": 6}
    stats = await (
        await client.get(f"/datasets/{dataset_id}/stats", headers=admin)
    ).json()
    assert {a["username"]: a["remaining"] for a in stats["annotators"]} == {
        "ann": 6,
        "bob": 6,
        "cy": 6,
    }


async def test_balanced_auto_assign_gives_each_a_run_of_the_oldest_tasks(client, admin):
    """Each annotator's share is a run of tasks, in the order they are named."""
    dataset_id = await _imported_dataset(client, admin, count=12)
    await _add_annotator(client, admin, "bob")
    await _add_annotator(client, admin, "cy")

    body = await (
        await client.post(
            f"/datasets/{dataset_id}/auto_assign?usernames=cy,ann,bob&count=8",
            headers=admin,
        )
    ).json()

    listed = await (
        await client.get(f"/datasets/{dataset_id}/tasks?limit=12", headers=admin)
    ).json()
    holders = [task["assigned_to"] for task in listed["tasks"]]
    assert body["task_ids"] == list(range(1, 9))
    assert body["by_user"] == {"cy": 3, "ann": 3, "bob": 2}
    assert holders == ["cy"] * 3 + ["ann"] * 3 + ["bob"] * 2 + [None] * 4


async def test_auto_assign_passes_over_tasks_another_transaction_updates(
    client, admin, database_url
):
    """A row lock for an update is skipped; a key-share lock (an FK check) is not."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has no row locks; it has one writer at a time")
    dataset_id = await _imported_dataset(client, admin, count=10)

    async with client.app[keys.SESSIONS].begin() as other:
        await other.execute(
            select(Task.id).where(Task.id == 2).with_for_update(key_share=True)
        )
        await other.execute(
            select(Task.id)
            .where(Task.id == 3)
            .with_for_update(read=True, key_share=True)
        )
        body = await (
            await client.post(
                f"/datasets/{dataset_id}/auto_assign?username=ann&count=3",
                headers=admin,
            )
        ).json()

    assert body["task_ids"] == [1, 3, 4]


async def test_a_claim_that_comes_up_short_is_repeated_for_the_rest(
    client, admin, monkeypatch
):
    """A task changed by another transaction mid-claim is given by the next claim."""
    dataset_id = await _imported_dataset(client, admin, count=10)
    asked = []
    claim_and_give = assignments._claim_and_give

    async def one_short_at_first(session, dataset_id, user_id, count, now):
        asked.append(count)
        short = count - 1 if len(asked) == 1 else count
        return await claim_and_give(session, dataset_id, user_id, short, now)

    monkeypatch.setattr(assignments, "_claim_and_give", one_short_at_first)
    body = await (
        await client.post(
            f"/datasets/{dataset_id}/auto_assign?username=ann&count=5", headers=admin
        )
    ).json()

    assert asked == [5, 1]
    assert body["task_ids"] == [1, 2, 3, 4, 5]


def test_share_fills_the_smallest_loads_first():
    from labelhub.store.assignments import share

    assert share(7, {1: 4, 2: 0, 3: 1}) == {1: 0, 2: 4, 3: 3}
    assert share(2, {1: 0, 2: 0, 3: 0}) == {1: 1, 2: 1, 3: 0}


@pytest.mark.parametrize(
    ("query", "mentions"),
    [
        ("username=ann&count=-5", "count:"),
        ("username=ann&count=abc", "count:"),
        ("username=ann&count=10001", "count:"),
        ("username=ann", "count: Field required"),
        ("usernames=,,&count=5", "usernames:"),
        ("username=ann%27%3B--&count=5", "no user"),
    ],
)
async def test_bad_auto_assign_input_changes_nothing(client, admin, query, mentions):
    dataset_id = await _imported_dataset(client, admin)

    response = await client.post(
        f"/datasets/{dataset_id}/auto_assign?{query}", headers=admin
    )

    assert response.status in (404, 422)
    assert mentions in (await response.json())["error"]["message"]
    stats = await (
        await client.get(f"/datasets/{dataset_id}/stats", headers=admin)
    ).json()
    assert stats["assigned"] == 0


async def test_naming_nobody_spreads_tasks_over_every_active_annotator(client, admin):
    dataset_id = await _imported_dataset(client, admin, count=10)
    await _add_annotator(client, admin, "bob")

    body = await (
        await client.post(f"/datasets/{dataset_id}/auto_assign?count=6", headers=admin)
    ).json()

    assert body["by_user"] == {"ann": 3, "bob": 3}


async def test_annotator_sees_exactly_her_tasks_with_links(
    aiohttp_client, make_settings, admin_for
):
    from labelhub.daemon import create_app

    client = await aiohttp_client(
        create_app(make_settings(ls_base_url="http://ls:8080"))
    )
    admin = await admin_for(client)
    dataset_id = await _imported_dataset(client, admin)
    bob = await _add_annotator(client, admin, "bob")
    ann = await login(client, "ann", "ann123")
    await client.post("/tasks/1/assign/ann", headers=admin)
    await client.post(
        f"/datasets/{dataset_id}/auto_assign?username=ann&count=20", headers=admin
    )
    await client.post(
        f"/datasets/{dataset_id}/auto_assign?username=bob&count=3", headers=admin
    )

    mine = await (
        await client.get(
            f"/annotator/tasks?dataset_id={dataset_id}&status=imported&limit=50",
            headers=ann,
        )
    ).json()
    his = await (await client.get("/annotator/tasks", headers=bob)).json()

    assert [task["id"] for task in mine["tasks"]] == list(range(1, 22))
    assert mine["tasks"][0]["link"] == "http://ls:8080/projects/7/data?task=1001"
    assert mine["tasks"][0]["data"] == {"text": "t0"}
    assert [task["id"] for task in his["tasks"]] == [22, 23, 24]


async def test_a_task_deleted_in_label_studio_leaves_the_annotators_queue(
    client, admin, ann
):
    dataset_id = await _imported_dataset(client, admin, count=3)
    await client.post(
        f"/datasets/{dataset_id}/auto_assign?username=ann&count=3", headers=admin
    )
    async with client.app[keys.SESSIONS].begin() as session:
        await session.execute(update(Task).where(Task.id == 2).values(status="deleted"))

    queue = await (await client.get("/annotator/tasks", headers=ann)).json()
    gone = await (
        await client.get("/annotator/tasks?status=deleted", headers=ann)
    ).json()
    stats = await (await client.get("/annotator/stats", headers=ann)).json()

    assert [task["id"] for task in queue["tasks"]] == [1, 3]
    assert [(task["id"], task["link"]) for task in gone["tasks"]] == [(2, None)]
    assert stats["assigned"] == 2


async def test_annotator_stats_count_her_own_work(client, admin, ann):
    dataset_id = await _imported_dataset(client, admin)
    await client.post(
        f"/datasets/{dataset_id}/auto_assign?username=ann&count=21", headers=admin
    )
    await _label(client, [1, 2, 3], "OK")
    await _label(client, [4], "NG")
    await _label(client, [25], "OK")

    scoped = await (
        await client.get(f"/annotator/stats?dataset_id={dataset_id}", headers=ann)
    ).json()
    overall = await (await client.get("/annotator/stats", headers=ann)).json()

    assert scoped == {
        "username": "ann",
        "dataset_id": dataset_id,
        "assigned": 21,
        "labeled": 4,
        "remaining": 17,
        "labels": {"OK": 3, "NG": 1},
    }
    assert overall["dataset_id"] is None
    assert overall["assigned"] == 21


async def test_admin_stats_break_down_per_annotator(client, admin):
    dataset_id = await _imported_dataset(client, admin)
    await client.post(
        f"/datasets/{dataset_id}/auto_assign?username=ann&count=10", headers=admin
    )
    await _label(client, [1, 2], "OK")
    await _label(client, [11], "NG")

    stats = await (
        await client.get(f"/datasets/{dataset_id}/stats", headers=admin)
    ).json()

    assert (stats["total"], stats["imported"], stats["labeled"]) == (30, 27, 3)
    assert (stats["assigned"], stats["unassigned"]) == (10, 20)
    assert stats["labels"] == {"OK": 2, "NG": 1}
    assert stats["annotators"] == [
        {
            "username": "ann",
            "assigned": 10,
            "labeled": 2,
            "remaining": 8,
            "labels": {"OK": 2},
        }
    ]


async def test_another_persons_task_is_404_for_an_annotator(client, admin, ann):
    await _imported_dataset(client, admin)
    await _add_annotator(client, admin, "bob")
    await client.post("/tasks/1/assign/bob", headers=admin)
    await client.post("/tasks/2/assign/ann", headers=admin)

    theirs = await client.get("/annotator/tasks/1", headers=ann)
    mine = await client.get("/annotator/tasks/2", headers=ann)

    assert theirs.status == 404
    assert mine.status == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/tasks/1"),
        ("POST", "/tasks/1/assign/ann"),
        ("DELETE", "/tasks/1/assign"),
        ("POST", "/datasets/1/auto_assign?username=ann&count=5"),
    ],
)
async def test_annotators_cannot_assign(client, admin, ann, method, path):
    await _imported_dataset(client, admin)

    response = await client.request(method, path, headers=ann)

    assert response.status == 403


async def test_an_annotator_cannot_reach_anyone_elses_statistics(client, admin, ann):
    dataset_id = await _imported_dataset(client, admin)
    await _add_annotator(client, admin, "bob")
    await client.post(
        f"/datasets/{dataset_id}/auto_assign?username=bob&count=5", headers=admin
    )

    response = await client.get(
        f"/annotator/stats?dataset_id={dataset_id}", headers=ann
    )
    extra = await client.get("/annotator/stats?username=bob", headers=ann)

    assert (await response.json())["assigned"] == 0
    assert extra.status == 422
