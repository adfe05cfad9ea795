"""The import beside a Label Studio still at work, reconciliations and webhooks."""

from __future__ import annotations

from sqlalchemy import func, select

from labelhub import keys
from labelhub.store.models import Task
from labelhub.sync.reconcile import reconcile
from tests.conftest import WEBHOOK_SECRET, drain_jobs
from tests.test_import import _agrees_with, _dataset, _import, _labelhub_ids


async def _statuses(client):
    async with client.app[keys.SESSIONS]() as session:
        rows = await session.execute(
            select(Task.status, func.count()).group_by(Task.status)
        )
        return dict(rows.all())


async def test_a_batch_finished_after_the_answer_was_given_up_is_not_sent_twice(
    daemon, fake_studio
):
    """Label Studio reads the batch, the client times out, the batch lands later."""
    client = await daemon(ls_import_batch=50, ls_timeout_s=0.3, ls_import_settle_s=5)
    dataset_id = await _dataset(client)
    project = client.app[keys.SETTINGS].ls_project_id
    fake_studio.fail(
        "POST", f"/api/projects/{project}/import", delay_s=1.0, read_first=True
    )

    job = await _import(client, dataset_id)
    await fake_studio.settled()  # nothing of it is still on its way

    assert job["message"] == "imported 100 tasks"
    assert len(fake_studio.tasks) == 100
    assert max(_labelhub_ids(fake_studio).values()) == 1
    await _agrees_with(client, fake_studio)


async def test_items_not_found_are_sent_again_only_once_overdue(
    daemon, fake_studio, logs
):
    client = await daemon(ls_import_batch=50, ls_import_settle_s=0.6)
    dataset_id = await _dataset(client)
    project = client.app[keys.SETTINGS].ls_project_id
    fake_studio.fail("POST", f"/api/projects/{project}/import", status=502)

    job = await _import(client, dataset_id)

    looks = [
        (line["found"], line["freed"], line["waiting"])
        for line in logs.events("import_recovered")
    ]
    assert job["message"] == "imported 100 tasks"
    assert looks[0] == (0, 0, 50)  # sent just now: it may yet land
    assert looks[-1] == (0, 50, 0)  # overdue and still not there: sent again
    assert len(fake_studio.tasks) == 100
    assert max(_labelhub_ids(fake_studio).values()) == 1


async def test_a_reconciliation_between_the_commit_and_the_record_loses_nothing(
    daemon, fake_studio
):
    """The pass links the batch first; the import then finds it linked."""
    client = await daemon(ls_import_batch=50)
    app = client.app
    studio = app[keys.STUDIO]
    send = studio.import_tasks
    sent = []

    async def send_then_reconcile(project_id, studio_tasks, encoded=None):
        ls_ids = await send(project_id, studio_tasks, encoded)
        sent.append(len(ls_ids))
        if len(sent) == 1:
            await reconcile(
                app[keys.SESSIONS],
                studio,
                app[keys.SETTINGS],
                project_id,
                full=False,
            )
        return ls_ids

    studio.import_tasks = send_then_reconcile
    dataset_id = await _dataset(client)

    job = await _import(client, dataset_id)

    assert job["message"] == "imported 100 tasks"
    assert await _statuses(client) == {"imported": 100}
    assert len(fake_studio.tasks) == 100
    await _agrees_with(client, fake_studio)


async def test_tasks_created_webhooks_during_an_import_leave_every_item_imported(
    daemon, fake_studio
):
    client = await daemon(ls_import_batch=30)
    project = client.app[keys.SETTINGS].ls_project_id
    url = str(client.server.make_url("/webhooks/label-studio"))
    fake_studio.add_webhook(
        project, url, actions=None, headers={"X-Webhook-Secret": WEBHOOK_SECRET}
    )
    dataset_id = await _dataset(client)

    job = await _import(client, dataset_id)

    assert job["message"] == "imported 100 tasks"
    assert await _statuses(client) == {"imported": 100}
    await _agrees_with(client, fake_studio)


async def test_a_project_gone_from_label_studio_fails_the_export_and_keeps_the_index(
    daemon, fake_studio
):
    client = await daemon()
    dataset_id = await _dataset(client)
    await _import(client, dataset_id)
    del fake_studio.projects[client.app[keys.SETTINGS].ls_project_id]

    response = await client.post(
        f"/datasets/{dataset_id}/export_from_ls", headers=client.admin
    )
    await drain_jobs(client)
    job_id = (await response.json())["job_id"]
    job = await (await client.get(f"/jobs/{job_id}", headers=client.admin)).json()

    assert job["status"] == "failed"
    assert "No Project matches" in job["message"]
    assert await _statuses(client) == {"imported": 100}
