"""Reconciliation and export: the index converges on Label Studio's truth."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from labelhub import keys
from labelhub.daemon import create_app
from labelhub.store.models import Annotation, Job, SyncState, Task, utcnow
from labelhub.sync.locks import project_lock
from labelhub.sync.reconcile import reconcile
from labelhub.sync.scheduler import Scheduler
from tests.conftest import WEBHOOK_SECRET, login
from tests.conftest import drain_jobs as _drain


async def _export(client):
    response = await client.post("/datasets/1/export_from_ls", headers=client.admin)
    job_id = (await response.json())["job_id"]
    await _drain(client)
    return await (await client.get(f"/jobs/{job_id}", headers=client.admin)).json()


def _expected(fake, ls_task_id):
    notes = [
        note
        for note in fake.annotations.values()
        if note["task"] == ls_task_id and not note["was_cancelled"]
    ]
    if not notes:
        return "imported", None
    latest = max(notes, key=lambda note: (note["updated_at"], note["id"]))
    return "labeled", latest["result"][0]["value"]["choices"][0]


async def assert_mirrors(client, fake):
    """Every task's status and label, and every annotation, equal Label Studio's."""
    project = client.project
    async with client.app[keys.SESSIONS]() as session:
        tasks = {
            ls_id: (status, label)
            for ls_id, status, label in await session.execute(
                select(Task.ls_task_id, Task.status, Task.label).where(
                    Task.ls_project_id == project, Task.status != "deleted"
                )
            )
        }
        notes = set(
            await session.scalars(
                select(Annotation.ls_annotation_id).where(
                    Annotation.ls_project_id == project, Annotation.deleted.is_(False)
                )
            )
        )
    theirs = {
        task_id for task_id, task in fake.tasks.items() if task["project"] == project
    }
    assert set(tasks) == theirs
    for ls_id in theirs:
        assert tasks[ls_id] == _expected(fake, ls_id), ls_id
    assert notes == {
        note_id for note_id, note in fake.annotations.items() if note["task"] in theirs
    }


async def _annotate_behind_labelhubs_back(fake):
    ids = sorted(fake.tasks)
    ok = [fake.annotate(ids[0], "OK"), fake.annotate(ids[1], "OK")]
    fake.annotate(ids[2], "NG")
    doomed = fake.annotate(ids[3], "NG")
    fake.update_annotation(ok[1], "NG")
    fake.delete_annotation(doomed)
    fake.annotate(ids[4], None, cancelled=True)
    fake.delete_task(ids[5])
    return ids


async def test_export_after_lost_webhooks_converges(synced, fake_studio):
    client = await synced()
    await _annotate_behind_labelhubs_back(fake_studio)

    job = await _export(client)

    assert (job["status"], job["message"]) == ("success", "exported 3 labeled tasks")
    report = job["result"]
    assert report["mode"] == "full"
    assert report["tasks_seen"] == 19
    assert report["repaired"]["annotations_created"] == 4
    assert report["repaired"]["tasks_deleted"] == 1
    assert report["repaired"]["labels_changed"] == 3
    await assert_mirrors(client, fake_studio)
    stats = await (await client.get("/datasets/1/stats", headers=client.admin)).json()
    assert (stats["labeled"], stats["deleted"], stats["labels"]) == (
        3,
        1,
        {"OK": 1, "NG": 2},
    )


async def test_a_second_pass_finds_nothing_to_repair(synced, fake_studio):
    client = await synced()
    await _annotate_behind_labelhubs_back(fake_studio)
    await _export(client)

    job = await _export(client)

    assert job["result"]["total_repaired"] == 0


async def test_a_pass_over_many_pages_repairs_every_page(
    synced, fake_studio, monkeypatch
):
    monkeypatch.setattr("labelhub.sync.reconcile.PAGE_SIZE", 4)
    client = await synced()
    ids = await _annotate_behind_labelhubs_back(fake_studio)  # deletes ids[5]
    fake_studio.annotate(ids[17], "OK")
    fake_studio.delete_task(ids[19])  # past the last page

    job = await _export(client)

    report = job["result"]
    assert (report["pages"], report["tasks_seen"]) == (5, 18)
    assert report["repaired"]["annotations_created"] == 5
    assert report["repaired"]["tasks_deleted"] == 2
    await assert_mirrors(client, fake_studio)


async def test_a_task_changed_after_the_pass_began_is_not_retired(synced, fake_studio):
    client = await synced(count=5)
    ls_id = sorted(fake_studio.tasks)[2]
    fake_studio.delete_task(ls_id)
    # As if a webhook had linked it again while the pass was reading.
    async with client.app[keys.SESSIONS].begin() as session:
        await session.execute(
            update(Task)
            .where(Task.ls_task_id == ls_id)
            .values(updated_at=utcnow() + timedelta(hours=1))
        )

    job = await _export(client)

    assert job["result"]["repaired"]["tasks_deleted"] == 0
    async with client.app[keys.SESSIONS]() as session:
        status = await session.scalar(
            select(Task.status).where(Task.ls_task_id == ls_id)
        )
    assert status == "imported"


async def test_changes_and_deletions_of_annotations_are_repaired(synced, fake_studio):
    client = await synced()
    ids = sorted(fake_studio.tasks)
    first = fake_studio.annotate(ids[0], "OK")
    second = fake_studio.annotate(ids[1], "OK")
    await _export(client)
    fake_studio.update_annotation(first, "NG")
    fake_studio.delete_annotation(second)

    job = await _export(client)

    assert job["result"]["repaired"]["annotations_changed"] == 1
    assert job["result"]["repaired"]["annotations_deleted"] == 1
    await assert_mirrors(client, fake_studio)


async def test_a_replayed_stale_webhook_after_reconciliation_changes_nothing(
    synced, fake_studio
):
    client = await synced()
    ids = sorted(fake_studio.tasks)
    note = fake_studio.annotate(ids[0], "OK", notify=False)
    fake_studio.deliver = True
    stale = fake_studio.annotations[note] | {}
    old_body = {
        "action": "ANNOTATION_CREATED",
        "annotation": dict(stale, result=[dict(r) for r in stale["result"]]),
        "task": {"id": ids[0], "data": fake_studio.tasks[ids[0]]["data"]},
        "project": {"id": client.project},
    }
    fake_studio.update_annotation(note, "NG")
    fake_studio.delete_annotation(fake_studio.annotate(ids[1], "OK"))
    await _export(client)

    response = await client.post(
        "/webhooks/label-studio",
        json=old_body,
        headers={"X-Webhook-Secret": WEBHOOK_SECRET},
    )

    assert (await response.json())["status"] == "stale"
    await assert_mirrors(client, fake_studio)


async def test_an_interrupted_import_is_healed(synced, fake_studio):
    client = await synced(count=5)
    # Label Studio holds item 6 (imported, answer lost); the index still says new.
    await client.post(
        "/datasets/1/items", json=[{"text": "late"}], headers=client.admin
    )
    [ls_id] = fake_studio.add_tasks(
        client.project,
        [{"text": "late", "labelhub_task_id": 6}],
        [{"labelhub_task_id": 6}],
    )

    job = await _export(client)

    assert job["result"]["repaired"]["tasks_linked"] == 1
    async with client.app[keys.SESSIONS]() as session:
        task = await session.get(Task, 6)
    assert (task.status, task.ls_task_id) == ("imported", ls_id)


async def test_tasks_made_in_label_studio_are_adopted(synced, fake_studio):
    client = await synced(count=3)
    [ls_id] = fake_studio.add_tasks(client.project, [{"text": "made in the UI"}])
    fake_studio.annotate(ls_id, "OK")

    job = await _export(client)

    assert job["result"]["repaired"]["tasks_adopted"] == 1
    async with client.app[keys.SESSIONS]() as session:
        task = (
            await session.scalars(select(Task).where(Task.ls_task_id == ls_id))
        ).one()
    assert (task.origin, task.dataset_id, task.status, task.label) == (
        "studio",
        1,
        "labeled",
        "OK",
    )
    await assert_mirrors(client, fake_studio)


async def test_an_incremental_run_reads_only_what_changed(synced, fake_studio):
    # No overlap margin here: every task was imported moments before the
    # watermark, so any margin would read them all again.
    client = await synced(count=30, reconcile_overlap_s=0)
    await _export(client)  # full: sets the watermark
    ids = sorted(fake_studio.tasks)
    fake_studio.annotate(ids[7], "NG")
    fake_studio.calls.clear()

    drift = await reconcile(
        client.app[keys.SESSIONS],
        client.app[keys.STUDIO],
        client.app[keys.SETTINGS],
        client.project,
        full=False,
    )

    assert (drift.mode, drift.tasks_seen) == ("incremental", 1)
    assert drift.pages == 1
    assert drift.repaired["annotations_created"] == 1
    assert any("updated_at" in path for _, path in fake_studio.calls)
    await assert_mirrors(client, fake_studio)


async def test_deletions_are_left_to_full_passes(synced, fake_studio):
    client = await synced(count=5)
    await _export(client)
    fake_studio.delete_task(sorted(fake_studio.tasks)[0])
    args = (
        client.app[keys.SESSIONS],
        client.app[keys.STUDIO],
        client.app[keys.SETTINGS],
        client.project,
    )

    incremental = await reconcile(*args, full=False)
    full = await reconcile(*args, full=True)

    assert incremental.repaired["tasks_deleted"] == 0
    assert full.repaired["tasks_deleted"] == 1
    await assert_mirrors(client, fake_studio)


async def test_only_one_daemon_reconciles_a_project_at_a_time(
    aiohttp_client, studio_settings, fake_studio, database_url
):
    if not database_url.startswith("postgresql"):
        pytest.skip("the advisory lock is PostgreSQL's; SQLite serves one daemon")
    settings = studio_settings()
    first = await aiohttp_client(create_app(settings))
    second = await aiohttp_client(create_app(settings))

    async with project_lock(
        first.app[keys.SESSIONS], settings.ls_project_id, wait=False
    ) as held:
        other = await reconcile(
            second.app[keys.SESSIONS],
            second.app[keys.STUDIO],
            settings,
            settings.ls_project_id,
            full=True,
            wait_for_lock=False,
        )
    after = await reconcile(
        second.app[keys.SESSIONS],
        second.app[keys.STUDIO],
        settings,
        settings.ls_project_id,
        full=True,
        wait_for_lock=False,
    )

    assert held is True
    assert other is None
    assert after is not None


async def test_two_daemons_reconciling_at_once_run_one_after_the_other(
    aiohttp_client, studio_settings, fake_studio, database_url
):
    if not database_url.startswith("postgresql"):
        pytest.skip("the advisory lock is PostgreSQL's; SQLite serves one daemon")
    settings = studio_settings()
    apps = [await aiohttp_client(create_app(settings)) for _ in range(2)]
    fake_studio.add_tasks(settings.ls_project_id, [{"text": str(i)} for i in range(50)])
    running = 0
    most = 0

    async def one(client):
        nonlocal running, most
        async with project_lock(
            client.app[keys.SESSIONS], settings.ls_project_id, wait=True
        ):
            running += 1
            most = max(most, running)
            await asyncio.sleep(0.1)
            running -= 1

    await asyncio.gather(*(one(client) for client in apps))

    assert most == 1


async def test_the_scheduler_queues_a_full_pass_first_then_incremental_runs(
    synced, fake_studio
):
    client = await synced(count=3)
    scheduler = Scheduler(
        client.app[keys.SESSIONS],
        client.app[keys.SETTINGS],
        client.app[keys.RUNNER],
        client.app[keys.STUDIO],
    )

    await scheduler.reconcile_tick()
    await scheduler.reconcile_tick()  # one is queued already: not stacked
    await _drain(client)
    await scheduler.reconcile_tick()
    await _drain(client)

    async with client.app[keys.SESSIONS]() as session:
        runs = (
            await session.scalars(
                select(Job).where(Job.kind == "reconcile").order_by(Job.id)
            )
        ).all()
    assert [(job.params, job.status) for job in runs] == [
        ({"full": True}, "success"),
        ({"full": False}, "success"),
    ]
    assert "(full)" in runs[0].message
    assert "(incremental)" in runs[1].message


async def test_an_early_request_is_picked_up_by_the_early_tick(synced, fake_studio):
    client = await synced(count=3)
    scheduler = Scheduler(
        client.app[keys.SESSIONS],
        client.app[keys.SETTINGS],
        client.app[keys.RUNNER],
        client.app[keys.STUDIO],
    )
    await client.post(
        f"/webhooks/label-studio?project={client.project}",
        json={"action": "ANNOTATION_CREATED"},
        headers={"X-Webhook-Secret": WEBHOOK_SECRET},
    )

    await scheduler.early_tick()
    await _drain(client)

    async with client.app[keys.SESSIONS]() as session:
        state = await session.get(SyncState, client.project)
        job = (await session.scalars(select(Job).where(Job.kind == "reconcile"))).one()
    assert job.status == "success"
    assert state.early_requested_at is None


async def test_the_webhook_is_registered_once_and_repaired(synced, fake_studio):
    client = await synced(count=3, labelhub_public_url="http://labelhub.test:8000")
    args = (
        client.app[keys.SESSIONS],
        client.app[keys.STUDIO],
        client.app[keys.SETTINGS],
        client.project,
    )

    first = await reconcile(*args, full=False)
    second = await reconcile(*args, full=False)
    [hook] = fake_studio.webhooks.values()
    hook["is_active"] = False
    third = await reconcile(*args, full=False)

    # The daemon registered it at start-up, or the first run did.
    assert first.webhook in ("created", "ok")
    assert (second.webhook, third.webhook) == ("ok", "updated")
    [hook] = fake_studio.webhooks.values()
    assert (
        hook["url"]
        == f"http://labelhub.test:8000/webhooks/label-studio?project={client.project}"
    )
    assert hook["headers"] == {"X-Webhook-Secret": WEBHOOK_SECRET}
    assert hook["is_active"] is True
    assert "TASKS_CREATED" not in hook["actions"]


async def test_a_missing_webhook_is_reported(synced, fake_studio, logs):
    client = await synced(count=3)

    drift = await reconcile(
        client.app[keys.SESSIONS],
        client.app[keys.STUDIO],
        client.app[keys.SETTINGS],
        client.project,
        full=False,
    )

    assert drift.webhook == "missing"
    assert len(logs.events("webhook_missing")) == 1


def _cli_env(client, fake, database_url):
    return {
        "PATH": os.environ["PATH"],
        "DATABASE_URL": database_url,
        "LS_BASE_URL": fake.url,
        "LS_API_TOKEN": fake.legacy_token,
        "LS_PROJECT_ID": str(client.project),
        "WEBHOOK_SECRET": WEBHOOK_SECRET,
        "LABELHUB_LOG_LEVEL": "warning",
    }


async def _cli(env, *args):
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "labelhub.cli",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, out.decode(), err.decode()


async def test_the_command_line_reconciles_and_prints_the_drift_report(
    synced, fake_studio, database_url
):
    client = await synced(count=4)
    fake_studio.annotate(sorted(fake_studio.tasks)[0], "OK")

    status, out, err = await _cli(
        _cli_env(client, fake_studio, database_url),
        "reconcile",
        "--dataset",
        "1",
        "--full",
    )

    assert status == 0, err
    report = json.loads(out)
    assert (report["mode"], report["tasks_seen"]) == ("full", 4)
    assert report["repaired"]["annotations_created"] == 1
    await assert_mirrors(client, fake_studio)


async def test_the_command_line_registers_the_webhook_once(
    synced, fake_studio, database_url
):
    client = await synced(count=2)
    env = _cli_env(client, fake_studio, database_url)

    first = await _cli(env, "webhook", "register", "--url", "http://10.0.0.5:8000")
    second = await _cli(env, "webhook", "register", "--url", "http://10.0.0.5:8000")
    bad = await _cli(env, "webhook", "register", "--url", "10.0.0.5:8000")

    assert first[0] == second[0] == 0
    assert first[1].strip() == f"project {client.project}: webhook created"
    assert second[1].strip() == f"project {client.project}: webhook ok"
    assert len(fake_studio.webhooks) == 1
    assert bad[0] == 2
    assert "LABELHUB_PUBLIC_URL: must be an http:// or https:// URL" in bad[2]


async def test_reconciliation_without_label_studio_fails_the_job_clearly(
    aiohttp_client, make_settings
):
    client = await aiohttp_client(create_app(make_settings()))
    admin = await login(client, "admin", "admin123")
    await client.post("/datasets", json={"name": "d"}, headers=admin)

    response = await client.post("/datasets/1/export_from_ls", headers=admin)
    await _drain(client)

    job_id = (await response.json())["job_id"]
    job = await (await client.get(f"/jobs/{job_id}", headers=admin)).json()
    assert job["status"] == "failed"
    assert "set LS_BASE_URL and LS_API_TOKEN" in job["message"]


async def test_a_project_emptied_in_label_studio_empties_the_index(synced, fake_studio):
    client = await synced(count=4)
    for task_id in list(fake_studio.tasks):
        fake_studio.delete_task(task_id)

    job = await _export(client)

    assert job["result"]["repaired"]["tasks_deleted"] == 4
    async with client.app[keys.SESSIONS]() as session:
        statuses = set(await session.scalars(select(Task.status)))
    assert statuses == {"deleted"}
