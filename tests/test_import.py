"""The import job against a fake Label Studio: batches, faults, resumption."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from labelhub import keys
from labelhub.daemon import create_app
from labelhub.store.models import Job, Task, utcnow
from tests.conftest import login


async def _dataset(client, items=None):
    body = {"name": "d"} if items is None else {"name": "d", "items": items}
    response = await client.post("/datasets", json=body, headers=client.admin)
    return (await response.json())["id"]


async def _import(client, dataset_id):
    response = await client.post(
        f"/datasets/{dataset_id}/import_to_ls", headers=client.admin
    )
    assert response.status == 202, await response.text()
    job_id = (await response.json())["job_id"]
    while await client.app[keys.RUNNER].run_once():
        pass
    return await (await client.get(f"/jobs/{job_id}", headers=client.admin)).json()


def _labelhub_ids(fake):
    return Counter(task["data"].get("labelhub_task_id") for task in fake.tasks.values())


async def _index(client):
    async with client.app[keys.SESSIONS]() as session:
        rows = await session.execute(select(Task.id, Task.status, Task.ls_task_id))
        return {task_id: (status, ls_id) for task_id, status, ls_id in rows}


async def _marks(client):
    """Each item's status and whether it is marked in flight, as committed."""
    async with client.app[keys.SESSIONS]() as session:
        rows = await session.execute(select(Task.id, Task.status, Task.import_sent_at))
        return {task_id: (status, sent is not None) for task_id, status, sent in rows}


def _watch_sends(client, watch):
    """Run `watch(batch_number, labelhub_ids)` before each batch goes out."""
    studio = client.app[keys.STUDIO]
    send = studio.import_tasks
    sent = []

    async def watched(project_id, studio_tasks, encoded=None):
        ids = [task["data"]["labelhub_task_id"] for task in studio_tasks]
        sent.append(ids)
        await watch(len(sent), ids)
        return await send(project_id, studio_tasks, encoded)

    studio.import_tasks = watched
    return sent


async def _agrees_with(client, fake):
    index = await _index(client)
    for ls_id, task in fake.tasks.items():
        ours = task["data"]["labelhub_task_id"]
        assert index[ours] == ("imported", ls_id)
        assert task["meta"]["labelhub_task_id"] == ours


async def test_the_demo_dataset_is_imported_in_full(daemon, fake_studio):
    client = await daemon()
    dataset_id = await _dataset(client)

    job = await _import(client, dataset_id)

    assert (job["status"], job["message"]) == ("success", "imported 100 tasks")
    assert job["progress"] == {"done": 100, "total": 100}
    assert len(fake_studio.tasks) == 100
    await _agrees_with(client, fake_studio)
    stats = await (
        await client.get(f"/datasets/{dataset_id}/stats", headers=client.admin)
    ).json()
    assert (stats["total"], stats["new"], stats["imported"]) == (100, 0, 100)


async def test_items_go_in_batches_of_the_configured_size(daemon, fake_studio):
    client = await daemon(ls_import_batch=30)
    dataset_id = await _dataset(client)

    await _import(client, dataset_id)

    imports = [path for method, path in fake_studio.calls if "/import" in path]
    assert len(imports) == 4


async def test_every_batch_is_committed_as_in_flight_before_it_is_sent(
    daemon, fake_studio
):
    """Another connection already sees the items of each batch marked in flight."""
    client = await daemon(ls_import_batch=30)
    dataset_id = await _dataset(client)
    seen = []

    async def watch(number, ids):
        marks = await _marks(client)
        seen.append(all(marks[task_id] == ("new", True) for task_id in ids))

    sent = _watch_sends(client, watch)

    job = await _import(client, dataset_id)

    assert job["message"] == "imported 100 tasks"
    assert [len(ids) for ids in sent] == [30, 30, 30, 10]
    assert seen == [True, True, True, True]
    assert not any(in_flight for _, in_flight in (await _marks(client)).values())


async def test_while_a_batch_is_in_flight_the_next_is_marked_and_the_last_recorded(
    daemon, fake_studio
):
    """Bookkeeping runs during a send, not after its answer."""
    client = await daemon(ls_import_batch=30)
    dataset_id = await _dataset(client)
    overlapped = []

    async def watch(number, ids):
        if number != 2:
            return

        # Sending items 31-60: items 61-90 get marked and items 1-30 get
        # their ids now, while this send waits.
        async def done():
            marks = await _marks(client)
            return all(
                marks[task_id]
                == (("imported", False) if task_id <= 30 else ("new", True))
                for task_id in [*range(1, 31), *range(61, 91)]
            )

        async with asyncio.timeout(5):
            while not await done():
                await asyncio.sleep(0.01)
        overlapped.append(number)

    _watch_sends(client, watch)

    job = await _import(client, dataset_id)

    assert job["message"] == "imported 100 tasks"
    assert overlapped == [2]
    await _agrees_with(client, fake_studio)


async def test_progress_is_committed_with_the_ids_it_counts(daemon, fake_studio):
    """At any moment the job's progress equals the items recorded as imported."""
    client = await daemon(ls_import_batch=20)
    dataset_id = await _dataset(client)
    progress = []

    async def watch(number, ids):
        async with client.app[keys.SESSIONS]() as session:
            job = (await session.scalars(select(Job))).one()
            imported = await session.scalar(
                select(func.count()).where(Task.status == "imported")
            )
        progress.append((job.progress_done, imported))

    _watch_sends(client, watch)

    job = await _import(client, dataset_id)

    assert job["progress"] == {"done": 100, "total": 100}
    assert all(done == imported for done, imported in progress)
    assert progress[0] == (0, 0)


async def test_a_later_batch_refused_fails_the_job_and_a_retry_sends_only_the_rest(
    daemon, fake_studio
):
    """The refused batch and the one marked meanwhile are freed, none left in flight."""
    client = await daemon(ls_import_batch=30)
    dataset_id = await _dataset(client)
    project = client.app[keys.SETTINGS].ls_project_id
    fake_studio.fail("POST", f"/api/projects/{project}/import", status=400, skip=2)

    job = await _import(client, dataset_id)

    assert job["status"] == "failed"
    assert "HTTP 400" in job["message"]
    marks = await _marks(client)
    assert sorted(marks.values()) == [("imported", False)] * 60 + [("new", False)] * 40
    await _agrees_with(client, fake_studio)

    response = await client.post(f"/jobs/{job['id']}/retry", headers=client.admin)
    assert response.status == 200, await response.text()
    while await client.app[keys.RUNNER].run_once():
        pass
    retried = await (
        await client.get(f"/jobs/{job['id']}", headers=client.admin)
    ).json()

    assert (retried["status"], retried["message"]) == ("success", "imported 100 tasks")
    assert len(fake_studio.tasks) == 100
    assert max(_labelhub_ids(fake_studio).values()) == 1
    await _agrees_with(client, fake_studio)


async def test_importing_again_imports_nothing(daemon, fake_studio):
    client = await daemon()
    dataset_id = await _dataset(client)
    await _import(client, dataset_id)

    job = await _import(client, dataset_id)

    assert job["message"] == "imported 0 tasks"
    assert len(fake_studio.tasks) == 100


async def test_items_added_later_are_imported_by_the_next_job(daemon, fake_studio):
    client = await daemon()
    dataset_id = await _dataset(client, [{"text": "a"}])
    await _import(client, dataset_id)
    await client.post(
        f"/datasets/{dataset_id}/items",
        json=[{"text": "b"}, {"text": "c"}],
        headers=client.admin,
    )

    job = await _import(client, dataset_id)

    assert job["message"] == "imported 2 tasks"
    await _agrees_with(client, fake_studio)


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 500, "after_commit": True},
        {"status": 502, "after_commit": True},
        {"drop": True, "after_commit": True},
    ],
    ids=["500-after-commit", "502-after-commit", "dropped-after-commit"],
)
async def test_a_third_batch_committed_without_an_answer_is_not_sent_again(
    daemon, fake_studio, fault
):
    client = await daemon(ls_import_batch=30)
    dataset_id = await _dataset(client)
    project = client.app[keys.SETTINGS].ls_project_id
    rule = fake_studio.fail(
        "POST", f"/api/projects/{project}/import", times=1, skip=2, **fault
    )

    job = await _import(client, dataset_id)

    assert rule.hits == 1
    assert (job["status"], job["message"]) == ("success", "imported 100 tasks")
    assert max(_labelhub_ids(fake_studio).values()) == 1
    assert len(fake_studio.tasks) == 100
    await _agrees_with(client, fake_studio)


async def test_a_batch_that_failed_before_committing_is_sent_again(daemon, fake_studio):
    client = await daemon(ls_import_batch=30)
    dataset_id = await _dataset(client)
    project = client.app[keys.SETTINGS].ls_project_id
    fake_studio.fail("POST", f"/api/projects/{project}/import", status=503)

    job = await _import(client, dataset_id)

    assert job["message"] == "imported 100 tasks"
    assert len(fake_studio.tasks) == 100


async def test_a_slow_answer_is_waited_for_and_matched(daemon, fake_studio):
    client = await daemon(ls_import_batch=50, ls_timeout_s=0.3)
    dataset_id = await _dataset(client)
    project = client.app[keys.SETTINGS].ls_project_id
    fake_studio.fail("POST", f"/api/projects/{project}/import", delay_s=0.5)

    job = await _import(client, dataset_id)

    assert job["message"] == "imported 100 tasks"
    assert max(_labelhub_ids(fake_studio).values()) == 1
    await _agrees_with(client, fake_studio)


async def test_label_studio_refusing_the_items_fails_the_job_and_keeps_them(
    daemon, fake_studio
):
    client = await daemon()
    dataset_id = await _dataset(client, [{"caption": "no text key"}])

    job = await _import(client, dataset_id)

    assert job["status"] == "failed"
    assert "HTTP 400" in job["message"]
    assert '"text" key is expected' in job["message"]
    assert await _index(client) == {1: ("new", None)}
    async with client.app[keys.SESSIONS]() as session:
        assert (await session.get(Task, 1)).import_sent_at is None


async def test_an_unreachable_label_studio_fails_the_job_clearly(daemon):
    client = await daemon(ls_base_url="http://127.0.0.1:9", ls_retries=0)
    dataset_id = await _dataset(client)

    job = await _import(client, dataset_id)

    assert job["status"] == "failed"
    assert "cannot connect to http://127.0.0.1:9" in job["message"]
    assert (await client.get("/health")).status == 200


async def test_without_label_studio_configured_the_job_says_what_to_set(
    aiohttp_client, make_settings
):
    client = await aiohttp_client(create_app(make_settings()))
    client.admin = await login(client, "admin", "admin123")
    dataset_id = await _dataset(client)

    job = await _import(client, dataset_id)

    assert job["status"] == "failed"
    assert "set LS_BASE_URL and LS_API_TOKEN" in job["message"]


async def test_a_dataset_without_a_project_and_no_default_fails_clearly(daemon):
    client = await daemon(ls_project_id=None)
    dataset_id = await _dataset(client)

    job = await _import(client, dataset_id)

    assert job["status"] == "failed"
    assert "set LS_PROJECT_ID" in job["message"]


async def test_an_import_killed_mid_batch_resumes_without_duplicates(
    daemon, fake_studio
):
    client = await daemon(ls_import_batch=40)
    dataset_id = await _dataset(client)
    project = client.app[keys.SETTINGS].ls_project_id
    # A daemon sent items 1..40, Label Studio committed them, and the daemon
    # died before recording the answer; its job still holds a lease.
    fake_studio.add_tasks(
        project,
        [{"text": "x", "labelhub_task_id": i} for i in range(1, 41)],
        [{"labelhub_task_id": i} for i in range(1, 41)],
    )
    async with client.app[keys.SESSIONS].begin() as session:
        await session.execute(
            update(Task).where(Task.id <= 40).values(import_sent_at=utcnow())
        )
    await client.post(f"/datasets/{dataset_id}/import_to_ls", headers=client.admin)
    async with client.app[keys.SESSIONS].begin() as session:
        await session.execute(
            update(Job).values(
                status="running",
                attempts=1,
                lease_owner="dead",
                lease_expires_at=utcnow() - timedelta(seconds=1),
            )
        )

    await client.app[keys.RUNNER].run_once()

    async with client.app[keys.SESSIONS]() as session:
        job = (await session.scalars(select(Job))).one()
    assert (job.status, job.message, job.attempts) == (
        "success",
        "imported 100 tasks",
        2,
    )
    assert len(fake_studio.tasks) == 100
    await _agrees_with(client, fake_studio)


async def test_personal_access_tokens_work_for_the_import(daemon, fake_studio):
    client = await daemon(ls_api_token=fake_studio.pat)
    dataset_id = await _dataset(client)

    job = await _import(client, dataset_id)

    assert job["message"] == "imported 100 tasks"
    assert fake_studio.refresh_count == 1


async def test_reused_label_studio_ids_retire_the_tasks_that_held_them(
    aiohttp_client, studio_settings, fake_studio
):
    fake_studio.reuse_task_ids = True
    client = await aiohttp_client(create_app(studio_settings()))
    client.admin = await login(client, "admin", "admin123")
    dataset_id = await _dataset(client, [{"text": "a"}, {"text": "b"}])
    await _import(client, dataset_id)
    fake_studio.delete_task(max(fake_studio.tasks))  # no webhook reaches labelhub
    await client.post(
        f"/datasets/{dataset_id}/items", json=[{"text": "c"}], headers=client.admin
    )

    job = await _import(client, dataset_id)

    assert job["message"] == "imported 1 tasks"
    index = await _index(client)
    assert index[2][0] == "deleted"
    assert index[3] == ("imported", index[2][1])
