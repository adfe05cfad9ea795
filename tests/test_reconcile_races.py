"""Reconciliation beside webhooks, restarts and other daemons: nothing regresses."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from labelhub import keys
from labelhub.daemon import create_app
from labelhub.store.models import Task
from labelhub.sync import locks
from labelhub.sync import reconcile as reconcile_module
from labelhub.sync.locks import project_lock
from labelhub.sync.scheduler import Scheduler
from labelhub.sync.webhook_setup import register
from tests.conftest import WEBHOOK_SECRET, drain_jobs, login
from tests.test_reconcile import _export, assert_mirrors

SECRET = {"X-Webhook-Secret": WEBHOOK_SECRET}


def _delivery(fake, client, note_id, action="ANNOTATION_CREATED"):
    """The webhook body Label Studio sends for an annotation, as it is now."""
    note = fake.annotations[note_id]
    task = fake.tasks[note["task"]]
    return {
        "action": action,
        "annotation": dict(note, result=[dict(region) for region in note["result"]]),
        "task": {"id": task["id"], "data": task["data"], "meta": task["meta"]},
        "project": {"id": client.project},
    }


async def _state(client, ls_task_id):
    async with client.app[keys.SESSIONS]() as session:
        row = await session.execute(
            select(Task.status, Task.label).where(
                Task.ls_task_id == ls_task_id, Task.status != "deleted"
            )
        )
        return tuple(row.one())


async def test_a_webhook_applied_during_a_pass_is_not_undone_by_it(
    synced, fake_studio, monkeypatch
):
    """The page was read before the annotator's change; its webhook wins."""
    client = await synced(count=3)
    ls_id = sorted(fake_studio.tasks)[0]
    note = fake_studio.annotate(ls_id, "OK")
    await _export(client)
    page_repair = reconcile_module.reconcile_page
    answers = []

    async def change_while_the_page_is_in_hand(session, scope, seen, *args):
        if seen and not answers:
            fake_studio.update_annotation(note, "NG")
            body = _delivery(fake_studio, client, note, "ANNOTATION_UPDATED")
            response = await client.post(
                "/webhooks/label-studio", json=body, headers=SECRET
            )
            answers.append((await response.json())["status"])
        await page_repair(session, scope, seen, *args)

    monkeypatch.setattr(
        reconcile_module, "reconcile_page", change_while_the_page_is_in_hand
    )
    job = await _export(client)

    assert answers == ["applied"]
    assert job["status"] == "success"
    assert await _state(client, ls_id) == ("labeled", "NG")
    monkeypatch.undo()
    await _export(client)
    await assert_mirrors(client, fake_studio)


async def test_a_replayed_creation_of_an_annotation_deleted_while_down_is_stale(
    synced, fake_studio
):
    client = await synced(count=3)
    ls_id = sorted(fake_studio.tasks)[0]
    note = fake_studio.annotate(ls_id, "OK")
    replay = _delivery(fake_studio, client, note)
    fake_studio.delete_annotation(note)
    await _export(client)

    response = await client.post("/webhooks/label-studio", json=replay, headers=SECRET)

    assert (await response.json())["status"] == "stale"
    await assert_mirrors(client, fake_studio)


async def test_a_daemon_restarted_after_changes_converges_and_ignores_replays(
    aiohttp_client, studio_settings, fake_studio
):
    """labelhub stops; annotators go on in Label Studio; labelhub starts again."""
    settings = studio_settings()
    first = await aiohttp_client(create_app(settings))
    first.project = settings.ls_project_id
    admin = await login(first, "admin", "admin123")
    items = [{"text": f"item {i}"} for i in range(8)]
    await first.post("/datasets", json={"name": "d", "items": items}, headers=admin)
    await first.post("/datasets/1/import_to_ls", headers=admin)
    await drain_jobs(first)
    ids = sorted(fake_studio.tasks)
    kept = fake_studio.annotate(ids[0], "OK", notify=False)
    doomed = fake_studio.annotate(ids[1], "OK", notify=False)
    old_bodies = [
        _delivery(fake_studio, first, kept),
        _delivery(fake_studio, first, doomed),
    ]
    await first.close()

    fake_studio.update_annotation(kept, "NG")
    fake_studio.delete_annotation(doomed)
    fake_studio.annotate(ids[2], "NG")
    fake_studio.delete_task(ids[3])
    second = await aiohttp_client(create_app(settings))
    second.admin = await login(second, "admin", "admin123")
    second.project = settings.ls_project_id
    job = await _export(second)
    answers = []
    for body in old_bodies:
        response = await second.post(
            "/webhooks/label-studio", json=body, headers=SECRET
        )
        answers.append((await response.json())["status"])

    assert job["message"] == "exported 2 labeled tasks"
    assert answers == ["stale", "stale"]
    await assert_mirrors(second, fake_studio)
    stats = await (await second.get("/datasets/1/stats", headers=second.admin)).json()
    assert (stats["labeled"], stats["deleted"], stats["labels"]) == (2, 1, {"NG": 2})


async def test_a_page_shorter_than_asked_for_is_not_the_end(synced, fake_studio):
    """Label Studio set to cap pages (TASK_API_PAGE_SIZE_MAX) loses no task."""
    client = await synced(count=12)
    fake_studio.max_page_size = 5
    fake_studio.annotate(sorted(fake_studio.tasks)[11], "OK")

    job = await _export(client)

    report = job["result"]
    assert (report["tasks_seen"], report["pages"]) == (12, 3)
    assert report["repaired"]["tasks_deleted"] == 0
    assert report["repaired"]["annotations_created"] == 1
    await assert_mirrors(client, fake_studio)


async def test_an_export_fails_clearly_when_the_project_stays_locked(
    synced, aiohttp_client, fake_studio, database_url, monkeypatch
):
    if not database_url.startswith("postgresql"):
        pytest.skip("the advisory lock is PostgreSQL's; SQLite serves one daemon")
    client = await synced(count=3)
    other = await aiohttp_client(create_app(client.app[keys.SETTINGS]))
    monkeypatch.setattr(locks, "WAIT_LIMIT_S", 0.2)

    async with project_lock(
        other.app[keys.SESSIONS], client.project, wait=False
    ) as held:
        job = await _export(client)

    assert held is True
    assert job["status"] == "failed"
    assert f"kept project {client.project} locked" in job["message"]
    assert "retry the export" in job["message"]


async def test_registering_at_a_new_address_leaves_no_second_webhook(
    synced, fake_studio
):
    client = await synced(count=1)
    args = (client.app[keys.STUDIO], client.app[keys.SETTINGS], client.project)

    first = await register(*args, "http://old.test:8000")
    moved = await register(*args, "http://new.test:8000")

    [hook] = fake_studio.webhooks.values()
    assert (first, moved) == ("created", "updated")
    assert hook["url"].startswith("http://new.test:8000/webhooks/label-studio")


async def test_a_foreign_webhook_to_the_same_path_is_left_alone(synced, fake_studio):
    """Another service's hook on a path like labelhub's, without its secret."""
    client = await synced(count=1)
    studio = client.app[keys.STUDIO]
    await studio.create_webhook(
        client.project,
        {
            "url": "http://elsewhere.test/webhooks/label-studio",
            "headers": {"X-Webhook-Secret": "not-ours"},
            "actions": ["ANNOTATION_CREATED"],
        },
    )

    await register(
        studio, client.app[keys.SETTINGS], client.project, "http://new.test:8000"
    )

    urls = sorted(hook["url"] for hook in fake_studio.webhooks.values())
    assert urls[0] == "http://elsewhere.test/webhooks/label-studio"
    assert urls[1].startswith("http://new.test:8000/")


async def test_a_deleted_webhook_is_created_again(synced, fake_studio):
    client = await synced(count=1, labelhub_public_url="http://labelhub.test:8000")
    args = (
        client.app[keys.SESSIONS],
        client.app[keys.STUDIO],
        client.app[keys.SETTINGS],
        client.project,
    )
    await reconcile_module.reconcile(*args, full=False)
    fake_studio.webhooks.clear()  # someone removed it in Label Studio

    drift = await reconcile_module.reconcile(*args, full=False)

    [hook] = fake_studio.webhooks.values()
    assert drift.webhook == "created"
    assert hook["headers"] == SECRET


async def test_the_daemon_registers_its_webhook_when_it_starts(
    aiohttp_client, studio_settings, fake_studio
):
    settings = studio_settings(labelhub_public_url="http://labelhub.test:8000")

    await aiohttp_client(create_app(settings))
    await _until(lambda: fake_studio.webhooks)

    [hook] = fake_studio.webhooks.values()
    assert hook["url"].startswith("http://labelhub.test:8000/webhooks/label-studio")
    assert hook["headers"] == SECRET


async def test_an_inactive_webhook_is_reported_when_labelhub_cannot_repair_it(
    synced, fake_studio, logs
):
    client = await synced(count=1)
    fake_studio.add_webhook(
        client.project,
        "http://labelhub.test:8000/webhooks/label-studio",
        headers=SECRET,
        is_active=False,
    )

    drift = await reconcile_module.reconcile(
        client.app[keys.SESSIONS],
        client.app[keys.STUDIO],
        client.app[keys.SETTINGS],
        client.project,
        full=False,
    )

    assert drift.webhook == "inactive"
    assert [line["project_id"] for line in logs.events("webhook_inactive")] == [
        client.project
    ]


async def test_scheduled_work_runs_one_at_a_time_coalesced_with_jitter(
    synced, fake_studio
):
    client = await synced(count=1, reconcile_interval_s=300)
    scheduler = Scheduler(
        client.app[keys.SESSIONS],
        client.app[keys.SETTINGS],
        client.app[keys.RUNNER],
        client.app[keys.STUDIO],
    )
    scheduler.start()
    try:
        jobs = {job.func.__name__: job for job in scheduler._scheduler.get_jobs()}
    finally:
        await scheduler.stop()

    assert set(jobs) == {"prune", "reconcile_tick", "early_tick"}
    for job in jobs.values():
        assert (job.coalesce, job.max_instances) == (True, 1)
    tick = jobs["reconcile_tick"].trigger
    assert tick.interval.total_seconds() == 300
    assert tick.jitter == 30


async def _until(condition, timeout_s=5.0):
    """Wait for `condition()` to hold, failing after `timeout_s`."""
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.02)
