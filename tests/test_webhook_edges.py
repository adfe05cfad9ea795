"""The receiver at its edges: every captured body, odd ids, late and foreign events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from labelhub import keys
from labelhub.store import tasks as task_store
from labelhub.store import webhook_events
from labelhub.store.models import Annotation, SyncState, WebhookEvent
from tests.conftest import set_tasks
from tests.test_webhooks import FIXTURES, HOOK, _count, _send, _task, sample

CAPTURED = sorted(path.stem for path in FIXTURES.glob("*.json"))


@pytest.mark.parametrize("name", CAPTURED)
async def test_every_captured_body_is_answered_and_audited(hooked, name):
    status, body = await _send(hooked, sample(name), path=HOOK + "?project=1")

    assert status == 200
    assert body["status"] in ("applied", "duplicate", "pending", "ignored")
    async with hooked.app[keys.SESSIONS]() as session:
        actions = list(await session.scalars(select(WebhookEvent.action)))
    assert actions == [sample(name)["action"]]


async def test_a_bulk_annotation_deletion_returns_each_task_to_imported(hooked):
    await _send(hooked, sample("ANNOTATIONS_CREATED__dm_predictions_to_annotations"))
    await hooked.post("/datasets/1/items", json=[{"text": "a"}], headers=hooked.admin)
    async with hooked.app[keys.SESSIONS].begin() as session:
        await task_store.link(session, 1, [(4, 112)])  # its annotation waited
    assert (await _task(hooked, 4))[0] == "labeled"

    _status, body = await _send(hooked, sample("ANNOTATIONS_DELETED__dm_action_bulk"))

    assert body["status"] == "applied"
    assert await _task(hooked, 4) == ("imported", None)
    assert await _count(hooked, Annotation, Annotation.deleted.is_(False)) == 0


async def test_a_bulk_task_deletion_marks_the_tasks_deleted(hooked):
    await set_tasks(hooked, {1: 110, 2: 111})

    _status, body = await _send(hooked, sample("TASKS_DELETED__dm_action_delete_tasks"))

    assert body["status"] == "applied"
    assert [await _task(hooked, task_id) for task_id in (1, 2, 3)] == [
        ("deleted", None),
        ("deleted", None),
        ("imported", None),
    ]


async def test_tasks_created_without_payload_asks_for_an_early_reconciliation(
    hooked,
):
    _status, body = await _send(
        hooked, sample("TASKS_CREATED__send_payload_false"), path=HOOK + "?project=1"
    )

    assert body["status"] == "ignored"
    assert await _early_requested(hooked) == {1}


async def test_a_delivery_without_payload_for_another_project_is_ignored(hooked):
    _status, body = await _send(
        hooked, {"action": "ANNOTATION_CREATED"}, path=HOOK + "?project=99"
    )

    assert body["status"] == "ignored"
    assert "project 99" in body["detail"]
    assert await _early_requested(hooked) == set()


@pytest.mark.parametrize(
    ("annotation", "top", "field"),
    [
        ({"id": 2**63}, {}, "annotation.id"),
        ({"task": 0}, {}, "annotation.task"),
        ({"was_cancelled": "false"}, {}, "annotation.was_cancelled"),
        ({}, {"project": {"id": 2**31}}, "project.id"),
        (
            {},
            {"action": "ANNOTATIONS_DELETED", "annotations": [{"id": -1}]},
            "annotations[0].id",
        ),
        ({}, {"action": "TASKS_DELETED", "tasks": [{"id": 2**63}]}, "tasks[0].id"),
    ],
)
async def test_an_id_or_flag_out_of_range_is_refused_and_changes_nothing(
    hooked, annotation, top, field
):
    body = sample("ANNOTATION_CREATED")
    body["annotation"].update(annotation)
    body.update(top)

    status, answer = await _send(hooked, body)

    assert status == 400
    assert field in answer["error"]["message"]
    assert await _count(hooked, Annotation) == 0
    assert await _task(hooked, 1) == ("imported", None)


async def test_made_up_actions_share_one_metric_label(hooked):
    for n in range(3):
        await _send(hooked, {"action": f"MADE_UP_{n}", "project": {"id": 1}})

    metrics = await (await hooked.get("/metrics")).text()

    assert "MADE_UP" not in metrics
    assert (
        'labelhub_webhook_deliveries_total{action="other",outcome="ignored"} 3.0'
        in metrics
    )


async def test_a_late_annotation_for_a_deleted_task_is_not_given_to_its_successor(
    hooked,
):
    """Label Studio on SQLite gives a deleted task's id to the next new task."""
    await _send(hooked, sample("TASKS_DELETED__DELETE_api_tasks_id"))  # 102: task 2
    late = sample("ANNOTATION_CREATED")
    late["annotation"].update(id=555, task=102)
    late["task"].update(id=102, data={"text": "rt 1", "labelhub_task_id": 2}, meta={})

    _status, body = await _send(hooked, late)
    await hooked.post("/datasets/1/items", json=[{"text": "new"}], headers=hooked.admin)
    async with hooked.app[keys.SESSIONS].begin() as session:
        await task_store.link(session, 1, [(4, 102)])

    assert body["status"] == "stale"
    assert await _task(hooked, 4) == ("imported", None)
    assert await _count(hooked, Annotation) == 0


async def test_an_annotation_absent_when_its_task_was_last_read_is_stale(hooked):
    """Reconciliation read task 101 after this annotation was made: it was gone."""
    body = sample("ANNOTATION_CREATED")
    async with hooked.app[keys.SESSIONS].begin() as session:
        await task_store.record_reads(session, [(1, _moment(body, seconds=1))])

    _status, answer = await _send(hooked, body)

    assert answer["status"] == "stale"
    assert await _task(hooked, 1) == ("imported", None)


async def test_an_annotation_made_after_its_task_was_last_read_is_applied(hooked):
    body = sample("ANNOTATION_CREATED")
    async with hooked.app[keys.SESSIONS].begin() as session:
        await task_store.record_reads(session, [(1, _moment(body, seconds=-1))])

    _status, answer = await _send(hooked, body)

    assert answer["status"] == "applied"
    assert await _task(hooked, 1) == ("labeled", "OK")


def _moment(body, *, seconds):
    made = body["annotation"]["updated_at"].replace("Z", "+00:00")
    return datetime.fromisoformat(made) + timedelta(seconds=seconds)


async def _early_requested(client):
    async with client.app[keys.SESSIONS]() as session:
        rows = await session.scalars(
            select(SyncState.ls_project_id).where(
                SyncState.early_requested_at.is_not(None)
            )
        )
        return set(rows)


async def test_the_audit_trail_keeps_what_arrived_lately_and_prunes_the_rest(hooked):
    await _send(hooked, sample("ANNOTATION_CREATED"))
    async with hooked.app[keys.SESSIONS].begin() as session:
        old = datetime.now(UTC) - timedelta(days=40)
        await session.execute(
            WebhookEvent.__table__.insert().values(
                received_at=old, action="ANNOTATION_CREATED", outcome="applied"
            )
        )

        pruned = await webhook_events.prune(session, keep_days=30)

    async with hooked.app[keys.SESSIONS]() as session:
        kept = list(await session.scalars(select(WebhookEvent.received_at)))
    assert pruned == 1
    assert len(kept) == 1
    assert datetime.now(UTC) - kept[0] < timedelta(minutes=1)
