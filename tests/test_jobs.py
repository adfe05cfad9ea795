"""Durable jobs: claimed once, leased, resumed, recorded."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import update

from labelhub.config import Settings
from labelhub.errors import StudioError
from labelhub.metrics import Metrics
from labelhub.store import jobs
from labelhub.store.engine import create_engine, create_sessions
from labelhub.store.models import Job, utcnow
from labelhub.store.urls import to_async_url
from labelhub.sync.runner import JobRunner


@pytest.fixture
async def sessions(database_url):
    engine = create_engine(to_async_url(database_url))
    yield create_sessions(engine)
    await engine.dispose()


def _settings(**values):
    values = {"job_lease_s": 30, "job_poll_s": 0.05, **values}
    return Settings(_env_file=None, **values)


def _runner(sessions, handler, *, owner, settings=None):
    return JobRunner(
        sessions,
        settings or _settings(),
        None,
        Metrics(),
        {"export": handler},
        owner=owner,
        workers=1,
    )


async def _enqueue(sessions, count=1, **fields):
    ids = []
    async with sessions.begin() as session:
        for index in range(count):
            job = await jobs.enqueue(
                session, "export", ls_project_id=index + 1, **fields
            )
            ids.append(job.id)
    return ids


async def _job(sessions, job_id):
    async with sessions() as session:
        return await jobs.get(session, job_id)


async def _wait_for(condition, timeout_s=10.0):
    async with asyncio.timeout(timeout_s):
        while not await condition():
            await asyncio.sleep(0.02)


async def test_a_job_runs_once_and_records_success(sessions):
    async def handler(ctx):
        await ctx.progress(3, 3, "working")
        ctx.result["seen"] = 3
        return "exported 3 labeled tasks"

    [job_id] = await _enqueue(sessions)

    assert await _runner(sessions, handler, owner="a").run_once() is True
    assert await _runner(sessions, handler, owner="a").run_once() is False

    job = await _job(sessions, job_id)
    assert (job.status, job.message, job.attempts) == (
        "success",
        "exported 3 labeled tasks",
        1,
    )
    assert (job.progress_done, job.progress_total, job.result) == (3, 3, {"seen": 3})
    assert job.lease_owner is None
    assert job.finished_at is not None


async def test_two_runners_on_one_database_never_run_a_job_twice(database_url):
    engines = [create_engine(to_async_url(database_url)) for _ in range(2)]
    runs = []

    async def handler(ctx):
        runs.append((ctx.job_id, ctx.owner))
        await asyncio.sleep(0.01)
        return "done"

    sessions = [create_sessions(engine) for engine in engines]
    ids = await _enqueue(sessions[0], count=30)
    runners = [
        JobRunner(
            s, _settings(), None, Metrics(), {"export": handler}, owner=o, workers=3
        )
        for s, o in zip(sessions, ("a", "b"), strict=True)
    ]

    for runner in runners:
        runner.start()

    async def all_done():
        async with sessions[0]() as session:
            found = await jobs.newest(session, status="success", limit=100)
        return len(found) == len(ids)

    await _wait_for(all_done)
    for runner in runners:
        await runner.stop()
    for engine in engines:
        await engine.dispose()

    assert sorted(job_id for job_id, _ in runs) == ids
    assert {owner for _, owner in runs} <= {"a", "b"}


async def test_a_job_whose_daemon_died_is_resumed_after_its_lease(sessions):
    seen = []

    async def handler(ctx):
        seen.append((ctx.attempt, ctx.done))
        return f"resumed from {ctx.done}"

    [job_id] = await _enqueue(sessions)
    async with sessions.begin() as session:
        await jobs.claim(session, "dead-daemon", 30)
        await jobs.report(
            session, job_id, "dead-daemon", done=40, total=100, message="x"
        )

    assert await _runner(sessions, handler, owner="b").run_once() is False

    async with sessions.begin() as session:
        await session.execute(
            update(Job).values(lease_expires_at=utcnow() - timedelta(seconds=1))
        )
    assert await _runner(sessions, handler, owner="b").run_once() is True

    assert seen == [(2, 40)]
    assert (await _job(sessions, job_id)).message == "resumed from 40"


async def test_a_job_that_keeps_dying_is_given_up(sessions):
    [job_id] = await _enqueue(sessions)
    async with sessions.begin() as session:
        await session.execute(
            update(Job).values(
                status="running",
                attempts=5,
                lease_owner="dead",
                lease_expires_at=utcnow() - timedelta(seconds=1),
            )
        )

    await _runner(sessions, None, owner="b").run_once()

    job = await _job(sessions, job_id)
    assert (job.status, job.message) == ("failed", "gave up after 5 attempts")


async def test_a_labelhub_error_fails_the_job_with_its_message(sessions):
    async def handler(ctx):
        raise StudioError("POST /api/projects/1/import", "cannot connect to http://x")

    [job_id] = await _enqueue(sessions)
    await _runner(sessions, handler, owner="a").run_once()

    job = await _job(sessions, job_id)
    assert job.status == "failed"
    assert job.message == (
        "Label Studio call POST /api/projects/1/import failed: cannot connect to http://x"
    )


async def test_a_crash_fails_the_job_and_is_logged_once(sessions, logs):
    async def handler(ctx):
        raise RuntimeError("bug")

    [job_id] = await _enqueue(sessions)
    await _runner(sessions, handler, owner="a").run_once()

    job = await _job(sessions, job_id)
    assert (job.status, job.message) == ("failed", "internal error: RuntimeError")
    crashes = logs.events("job_crashed")
    assert len(crashes) == 1
    assert crashes[0]["job_id"] == job_id


async def test_every_log_line_of_a_job_carries_its_id(sessions, logs):
    async def handler(ctx):
        import structlog

        structlog.get_logger("test").info("inside_job")
        return "ok"

    [job_id] = await _enqueue(sessions)
    await _runner(sessions, handler, owner="a").run_once()

    lines = [
        line
        for line in logs.events()
        if line["event"] in {"job_started", "inside_job", "job_succeeded"}
    ]
    assert len(lines) == 3
    assert all(line["job_id"] == job_id for line in lines)


async def test_stopping_the_daemon_hands_a_running_job_back(sessions):
    started = asyncio.Event()

    async def handler(ctx):
        started.set()
        await asyncio.sleep(60)
        return "never"

    [job_id] = await _enqueue(sessions)
    runner = _runner(sessions, handler, owner="a")
    runner.start()
    await asyncio.wait_for(started.wait(), 5)

    await runner.stop()

    job = await _job(sessions, job_id)
    assert (job.status, job.lease_owner) == ("queued", None)
    assert job.message == "interrupted; queued to resume"


async def test_a_job_queued_while_a_worker_finds_none_starts_without_a_poll(
    sessions,
):
    """A wake-up that arrives during a look for work that found nothing counts."""
    started = asyncio.Event()

    async def handler(ctx):
        started.set()
        return "exported 0 labeled tasks"

    runner = _runner(sessions, handler, owner="a", settings=_settings(job_poll_s=600))
    look = runner.run_once
    looks = 0

    async def look_while_a_job_is_queued():
        nonlocal looks
        looks += 1
        found = await look()
        if looks == 1:  # queued after the claim found nothing, before the wait
            await _enqueue(sessions)
            runner.wake()
        return found

    runner.run_once = look_while_a_job_is_queued
    runner.start()
    try:
        await asyncio.wait_for(started.wait(), 10)
    finally:
        await runner.stop()

    assert looks == 2


def _endless_job():
    """A job handler that works until cancelled, and events for both."""
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def handler(ctx):
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    return handler, started, cancelled


async def test_a_runner_that_lost_its_lease_stops_without_finishing(sessions):
    handler, started, cancelled = _endless_job()
    [job_id] = await _enqueue(sessions)
    runner = _runner(sessions, handler, owner="a", settings=_settings(job_lease_s=5))
    task = asyncio.create_task(runner.run_once())
    await asyncio.wait_for(started.wait(), 5)
    async with sessions.begin() as session:
        await session.execute(update(Job).values(lease_owner="b"))

    await asyncio.wait_for(cancelled.wait(), 10)
    await task

    job = await _job(sessions, job_id)
    assert (job.status, job.lease_owner, job.message) == ("running", "b", "running")


async def test_work_stops_when_the_lease_cannot_be_renewed_in_time(
    sessions, monkeypatch
):
    """The database is gone while a job runs: another daemon may take it."""
    handler, started, cancelled = _endless_job()

    async def unreachable(*args, **kwargs):
        raise OSError("connection refused")

    [job_id] = await _enqueue(sessions)
    runner = _runner(sessions, handler, owner="a", settings=_settings(job_lease_s=5))
    task = asyncio.create_task(runner.run_once())
    await asyncio.wait_for(started.wait(), 5)
    monkeypatch.setattr(jobs, "renew_lease", unreachable)

    await asyncio.wait_for(cancelled.wait(), 10)
    await task

    job = await _job(sessions, job_id)
    assert job.status == "running"  # left for whoever claims it once it lapses


async def _queued_import(client, admin):
    """A new dataset's import job, queued; its id."""
    created = await (
        await client.post("/datasets", json={"name": "d"}, headers=admin)
    ).json()
    answer = await client.post(f"/datasets/{created['id']}/import_to_ls", headers=admin)
    return (await answer.json())["job_id"]


async def test_a_retry_asked_for_gets_a_fresh_count_of_attempts(
    client, admin, sessions
):
    job_id = await _queued_import(client, admin)
    async with sessions.begin() as session:
        await session.execute(update(Job).values(status="failed", attempts=9))

    await client.post(f"/jobs/{job_id}/retry", headers=admin)

    assert (await _job(sessions, job_id)).attempts == 0


async def test_a_second_import_of_a_dataset_is_409_naming_the_first(client, admin):
    created = await (
        await client.post("/datasets", json={"name": "d"}, headers=admin)
    ).json()
    first = await client.post(f"/datasets/{created['id']}/import_to_ls", headers=admin)

    second = await client.post(f"/datasets/{created['id']}/import_to_ls", headers=admin)

    job_id = (await first.json())["job_id"]
    assert second.status == 409
    error = (await second.json())["error"]
    assert f"job {job_id}" in error["message"]
    assert error["details"] == {"job_id": job_id}


async def test_jobs_are_listed_newest_first_and_filtered(client, admin):
    for name in ("a", "b"):
        created = await (
            await client.post("/datasets", json={"name": name}, headers=admin)
        ).json()
        await client.post(f"/datasets/{created['id']}/import_to_ls", headers=admin)

    listing = await (
        await client.get("/jobs?kind=import&limit=1", headers=admin)
    ).json()
    older = await (
        await client.get(
            f"/jobs?kind=import&before={listing['next_before']}", headers=admin
        )
    ).json()

    assert [job["dataset_id"] for job in listing["jobs"]] == [2]
    assert [job["dataset_id"] for job in older["jobs"]] == [1]
    assert older["next_before"] is None


async def test_only_a_failed_job_can_be_retried(client, admin, sessions):
    job_id = await _queued_import(client, admin)

    queued = await client.post(f"/jobs/{job_id}/retry", headers=admin)
    async with sessions.begin() as session:
        await session.execute(
            update(Job).values(status="failed", message="x", error="e")
        )
    retried = await client.post(f"/jobs/{job_id}/retry", headers=admin)

    assert queued.status == 409
    assert retried.status == 200
    body = await retried.json()
    assert (body["status"], body["message"], body["error"]) == (
        "queued",
        "queued for retry",
        None,
    )


async def test_unknown_job_is_404(client, admin):
    assert (await client.get("/jobs/12345", headers=admin)).status == 404
    assert (await client.post("/jobs/12345/retry", headers=admin)).status == 404
