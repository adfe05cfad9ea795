"""The webhook receiver, fed with bodies captured from a real Label Studio."""

from __future__ import annotations

import asyncio
import copy
import io
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select, text, update

from labelhub import keys
from labelhub.daemon import create_app
from labelhub.store.models import Annotation, SyncState, Task, WebhookEvent
from labelhub.sync.events import parse_event
from tests.conftest import WEBHOOK_SECRET

FIXTURES = Path(__file__).parent / "fixtures" / "webhooks"
HOOK = "/webhooks/label-studio"
SECRET = {"X-Webhook-Secret": WEBHOOK_SECRET}


def sample(name):
    return json.loads((FIXTURES / f"{name}.json").read_text())


async def _send(client, body, headers=SECRET, path=HOOK):
    response = await client.post(path, json=body, headers=headers)
    return response.status, await response.json()


async def _task(client, task_id):
    async with client.app[keys.SESSIONS]() as session:
        task = await session.get(Task, task_id)
        return task.status, task.label


async def _count(client, model, *where):
    async with client.app[keys.SESSIONS]() as session:
        return await session.scalar(
            select(func.count()).select_from(model).where(*where)
        )


async def test_annotation_created_labels_the_task(hooked):
    status, body = await _send(hooked, sample("ANNOTATION_CREATED"))

    assert (status, body["status"]) == (200, "applied")
    assert await _task(hooked, 1) == ("labeled", "OK")


async def test_the_same_event_twice_changes_nothing_the_second_time(hooked):
    await _send(hooked, sample("ANNOTATION_CREATED"))

    status, body = await _send(hooked, sample("ANNOTATION_CREATED"))

    assert (status, body["status"]) == (200, "duplicate")
    assert await _count(hooked, Annotation) == 1


async def test_an_update_changes_the_label_and_an_older_replay_does_not(hooked):
    await _send(hooked, sample("ANNOTATION_CREATED"))
    await _send(hooked, sample("ANNOTATION_UPDATED__PATCH"))

    _status, body = await _send(hooked, sample("ANNOTATION_CREATED"))

    assert body["status"] == "stale"
    assert await _task(hooked, 1) == ("labeled", "NG")


async def test_a_skipped_annotation_sets_no_label(hooked):
    _status, body = await _send(
        hooked, sample("ANNOTATION_CREATED__skipped_was_cancelled")
    )

    assert body["status"] == "applied"
    assert await _task(hooked, 3) == ("imported", None)


async def test_the_latest_non_cancelled_annotation_wins(hooked):
    await _send(hooked, sample("ANNOTATION_CREATED__skipped_was_cancelled"))
    await _send(hooked, sample("ANNOTATION_UPDATED__PUT"))

    assert await _task(hooked, 3) == ("labeled", "OK")


async def test_deleting_the_last_annotation_returns_the_task_to_imported(hooked):
    await _send(hooked, sample("ANNOTATION_CREATED"))

    _status, body = await _send(
        hooked, sample("ANNOTATIONS_DELETED__DELETE_api_annotations_id")
    )

    assert body["status"] == "applied"
    assert await _task(hooked, 1) == ("imported", None)


async def test_a_deleted_annotation_is_not_brought_back_by_a_replay(hooked):
    await _send(hooked, sample("ANNOTATION_CREATED"))
    await _send(hooked, sample("ANNOTATIONS_DELETED__DELETE_api_annotations_id"))

    _status, body = await _send(hooked, sample("ANNOTATION_UPDATED__PATCH"))

    assert body["status"] == "stale"
    assert await _task(hooked, 1) == ("imported", None)


async def test_one_group_commit_applies_its_events_in_order(hooked):
    """A creation, its deletion and another task's creation, committed together."""
    other = sample("ANNOTATION_CREATED")
    other["annotation"].update(id=9001, task=102)
    other["task"].update(id=102, data={"text": "rt 1"}, meta={})
    bodies = [
        sample("ANNOTATION_CREATED"),
        sample("ANNOTATIONS_DELETED__DELETE_api_annotations_id"),
        other,
    ]
    events = [parse_event(body, None, None) for body in bodies]
    batcher = hooked.app[keys.WEBHOOKS]

    outcomes = await asyncio.gather(*(batcher.submit(e, 0.0) for e in events))

    assert [outcome.status for outcome in outcomes] == ["applied"] * 3
    assert await _task(hooked, 1) == ("imported", None)
    assert await _task(hooked, 2) == ("labeled", "OK")
    assert await _count(hooked, Annotation, Annotation.deleted.is_(True)) == 1


async def test_a_dropped_database_connection_loses_no_delivery(hooked):
    """The receiver's own connection is killed between two deliveries."""
    await _send(hooked, sample("ANNOTATION_CREATED"))
    if hooked.app[keys.ENGINE].dialect.name != "postgresql":
        pytest.skip("the receiver holds a connection of its own on PostgreSQL only")
    async with hooked.app[keys.SESSIONS]() as session:
        killed = await session.scalar(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    assert killed >= 1

    status, body = await _send(hooked, sample("ANNOTATION_UPDATED__PATCH"))

    assert (status, body["status"]) == (200, "applied")
    assert await _count(hooked, Annotation) == 1


async def test_annotations_for_unknown_tasks_wait_for_them(hooked):
    _status, body = await _send(
        hooked, sample("ANNOTATIONS_CREATED__dm_predictions_to_annotations")
    )
    assert body["status"] == "pending"

    async with hooked.app[keys.SESSIONS].begin() as session:
        from labelhub.store import tasks

        await session.execute(
            update(Task).where(Task.id == 2).values(status="new", ls_task_id=None)
        )
        await tasks.link(session, 1, [(2, 112)])

    assert await _task(hooked, 2) == ("labeled", "OK")


async def test_tasks_deleted_marks_them_deleted(hooked):
    _status, body = await _send(hooked, sample("TASKS_DELETED__DELETE_api_tasks_id"))

    assert body["status"] == "applied"
    assert await _task(hooked, 2) == ("deleted", None)


async def test_tasks_created_links_items_that_carry_labelhubs_id(hooked):
    await hooked.post(
        "/datasets/1/items", json=[{"text": "new one"}], headers=hooked.admin
    )
    body = sample("TASKS_CREATED__POST_api_tasks_single")
    body["tasks"][0]["data"]["labelhub_task_id"] = 4

    _status, answer = await _send(hooked, body)

    assert answer["status"] == "applied"
    async with hooked.app[keys.SESSIONS]() as session:
        task = await session.get(Task, 4)
    assert (task.status, task.ls_task_id) == ("imported", 109)


async def test_tasks_created_outside_labelhub_ask_for_an_early_reconciliation(hooked):
    status, body = await _send(
        hooked, sample("TASKS_CREATED__import_with_annotations_and_predictions")
    )

    assert status == 200
    assert "2 left for reconciliation" in body["detail"]
    assert (
        await _count(hooked, SyncState, SyncState.early_requested_at.is_not(None)) == 1
    )


async def test_a_delivery_without_payload_asks_for_an_early_reconciliation(hooked):
    status, body = await _send(
        hooked,
        sample("ANNOTATION_CREATED__send_payload_false"),
        path=f"{HOOK}?project=1",
    )

    assert (status, body["status"]) == (200, "ignored")
    async with hooked.app[keys.SESSIONS]() as session:
        state = await session.get(SyncState, 1)
    assert state.early_requested_at is not None


@pytest.mark.parametrize(
    "body",
    [sample("PROJECT_UPDATED"), {"action": "SOMETHING_NEW", "x": 1}],
    ids=["project-updated", "unknown-action"],
)
async def test_other_actions_are_acknowledged_and_change_nothing(hooked, body):
    status, answer = await _send(hooked, body)

    assert (status, answer["status"]) == (200, "ignored")
    assert await _count(hooked, Annotation) == 0


async def test_events_of_another_project_are_ignored(hooked):
    body = sample("ANNOTATION_CREATED")
    body["project"]["id"] = 99
    body["annotation"]["project"] = 99

    _status, answer = await _send(hooked, body)

    assert answer["status"] == "ignored"
    assert await _task(hooked, 1) == ("imported", None)


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-Webhook-Secret": "wrong"}, {"X-Webhook-Secret": ""}],
    ids=["missing", "wrong", "empty"],
)
async def test_a_missing_or_wrong_secret_is_401(hooked, headers):
    status, _body = await _send(hooked, sample("ANNOTATION_CREATED"), headers=headers)

    assert status == 401
    assert await _task(hooked, 1) == ("imported", None)


async def test_without_a_configured_secret_everything_is_refused(client, logs):
    status, body = await _send(client, sample("ANNOTATION_CREATED"))

    assert status == 401
    assert "WEBHOOK_SECRET is not configured" in body["error"]["message"]
    assert len(logs.events("webhook_secret_unset")) == 1


def _raw(action, **fields):
    return json.dumps({"action": action, "project": {"id": 1}, **fields}).encode()


@pytest.mark.parametrize(
    ("raw", "mentions"),
    [
        (b"not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b"{}", "action:"),
        (b'{"action": 5}', "action:"),
        (
            _raw("ANNOTATION_CREATED", annotation={"id": "x", "task": 101}),
            "annotation.id",
        ),
        (
            _raw(
                "ANNOTATION_CREATED", annotation={"id": 1, "task": 101, "result": "no"}
            ),
            "annotation.result",
        ),
        (_raw("ANNOTATIONS_DELETED", annotations=[{"id": None}]), "annotations[0].id"),
        (_raw("TASKS_DELETED", tasks="all"), "tasks:"),
        (
            _raw(
                "ANNOTATION_UPDATED",
                annotation={"id": 1, "task": 101, "updated_at": "x"},
            ),
            "updated_at",
        ),
    ],
)
async def test_garbage_is_400_and_changes_nothing(hooked, raw, mentions):
    response = await hooked.post(
        HOOK, data=raw, headers={**SECRET, "Content-Type": "application/json"}
    )

    assert response.status == 400
    assert mentions in (await response.json())["error"]["message"]
    assert await _count(hooked, Annotation) == 0


async def test_a_body_over_the_limit_is_413(aiohttp_client, make_settings):
    settings = make_settings(webhook_secret=WEBHOOK_SECRET, webhook_max_body_mb=1)
    client = await aiohttp_client(create_app(settings))
    raw = json.dumps({"action": "TASKS_CREATED", "pad": "x" * 1_100_000}).encode()

    response = await client.post(HOOK, data=io.BytesIO(raw), headers=SECRET)

    assert response.status == 413


async def test_a_5000_task_delivery_of_megabytes_is_accepted(hooked):
    body = sample("TASKS_CREATED__import_3_tasks_with_meta")
    template = body["tasks"][0]
    body["tasks"] = []
    for index in range(5000):
        task = copy.deepcopy(template)
        task["id"] = 10_000 + index
        task["data"]["text"] = "x" * 600
        body["tasks"].append(task)
    raw = json.dumps(body).encode()
    assert len(raw) > 3_000_000

    response = await hooked.post(HOOK, data=io.BytesIO(raw), headers=SECRET)

    assert response.status == 200


async def test_a_hundred_concurrent_duplicates_leave_one_annotation(hooked):
    body = sample("ANNOTATION_CREATED")

    answers = await asyncio.gather(*[_send(hooked, body) for _ in range(100)])

    assert {status for status, _ in answers} == {200}
    assert sorted(answer["status"] for _, answer in answers).count("applied") == 1
    assert await _count(hooked, Annotation) == 1
    assert await _task(hooked, 1) == ("labeled", "OK")


async def test_every_delivery_is_audited_without_its_payload(hooked):
    await _send(hooked, sample("ANNOTATION_CREATED"))
    await hooked.post(HOOK, data=b"[]", headers=SECRET)

    async with hooked.app[keys.SESSIONS]() as session:
        rows = (
            await session.scalars(select(WebhookEvent).order_by(WebhookEvent.id))
        ).all()

    assert [(row.action, row.outcome) for row in rows] == [
        ("ANNOTATION_CREATED", "applied"),
        ("(none)", "rejected"),
    ]
    assert rows[0].ls_ids == {"annotations": [1], "tasks": [101]}
    assert rows[0].ls_project_id == 1
    assert rows[0].duration_ms > 0
    stored = json.dumps([row.ls_ids for row in rows]) + " ".join(
        row.detail for row in rows
    )
    assert "label_config" not in stored


async def test_stats_follow_webhooks_alone(hooked):
    await hooked.post("/tasks/1/assign/ann", headers=hooked.admin)
    await _send(hooked, sample("ANNOTATION_CREATED"))

    stats = await (await hooked.get("/datasets/1/stats", headers=hooked.admin)).json()

    assert (stats["labeled"], stats["labels"]) == (1, {"OK": 1})
    assert stats["annotators"][0]["labeled"] == 1
