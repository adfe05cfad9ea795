"""Reconciliation: make the shadow index of one project equal Label Studio's.

A full pass pages through every task of the project in id order; an
incremental run only through tasks whose `updated_at` is past the last run's
watermark (Label Studio's own clock, less an overlap margin). Deletions are
visible to full passes only. Each page is repaired in its own transaction,
so memory stays bounded by the page size whatever the project's size.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from labelhub.config import Settings
from labelhub.metrics import Metrics
from labelhub.store import sync_state
from labelhub.store.models import Dataset, utcnow
from labelhub.studio.client import StudioClient, updated_after
from labelhub.studio.payloads import ListedTask, parse_listed_task
from labelhub.sync.drift import Drift, PageScope, reconcile_page
from labelhub.sync.locks import project_lock
from labelhub.sync.webhook_setup import check_webhook

log = structlog.get_logger(__name__)

PAGE_SIZE = 1000
Progress = Callable[[int, int | None], Awaitable[None]]


async def reconcile(
    sessions: async_sessionmaker[Any],
    studio: StudioClient,
    settings: Settings,
    project_id: int,
    *,
    full: bool,
    wait_for_lock: bool = True,
    job_id: int | None = None,
    metrics: Metrics | None = None,
    progress: Progress | None = None,
) -> Drift | None:
    """One run over a project; None when another daemon holds its lock."""
    async with project_lock(sessions, project_id, wait=wait_for_lock) as held:
        if not held:
            log.info("reconciliation_skipped", project_id=project_id, reason="locked")
            return None
        try:
            drift = await _run(
                sessions, studio, settings, project_id, full, job_id, progress
            )
        except Exception:
            if metrics is not None:
                metrics.reconciliations.labels(
                    "full" if full else "incremental", "failed"
                ).inc()
            raise
    if metrics is not None:
        metrics.reconciliations.labels(drift.mode, "success").inc()
        for kind, n in drift.repaired.items():
            if n:
                metrics.drift.labels(kind).inc(n)
    log.info("reconciliation_finished", **drift.report())
    return drift


async def _run(
    sessions: async_sessionmaker[Any],
    studio: StudioClient,
    settings: Settings,
    project_id: int,
    full: bool,
    job_id: int | None,
    progress: Progress | None,
) -> Drift:
    started = time.perf_counter()
    started_at = utcnow()
    async with sessions() as session:
        state = await sync_state.get(session, project_id)
        home = await session.scalar(
            select(func.min(Dataset.id)).where(Dataset.ls_project_id == project_id)
        )
    since = None if full or state is None else state.watermark_at
    drift = Drift(project_id, "incremental" if since else "full")
    drift.watermark_at = since
    scope = PageScope(
        project_id=project_id,
        home_dataset=home,
        label_from=settings.ls_label_from_name,
        full=since is None,
        started_at=started_at,
    )

    await _pages(sessions, studio, settings, scope, since, drift, progress)
    drift.webhook = await check_webhook(studio, settings, project_id)
    drift.duration_ms = (time.perf_counter() - started) * 1000
    async with sessions.begin() as session:
        await sync_state.record_success(
            session,
            project_id,
            watermark_at=drift.watermark_at,
            full=scope.full,
            job_id=job_id,
            started_at=started_at,
        )
    return drift


async def _pages(
    sessions: async_sessionmaker[Any],
    studio: StudioClient,
    settings: Settings,
    scope: PageScope,
    since: datetime | None,
    drift: Drift,
    progress: Progress | None,
) -> None:
    filters = []
    if since is not None:
        filters.append(
            updated_after(since - timedelta(seconds=settings.reconcile_overlap_s))
        )
    lower_id = 0
    total: int | None = None
    async for page in studio.iter_task_pages(
        scope.project_id,
        parse=partial(parse_listed_task, from_name=scope.label_from),
        page_size=PAGE_SIZE,
        filters=filters,
    ):
        if total is None and page.total is not None:
            total = page.total
        async with sessions.begin() as session:
            await reconcile_page(session, scope, page.tasks, lower_id, drift)
        lower_id = page.last_id
        drift.pages += 1
        drift.tasks_seen += len(page.tasks)
        drift.watermark_at = _latest(drift.watermark_at, page.tasks)
        if progress is not None:
            await progress(drift.tasks_seen, total)
    if scope.full:
        async with sessions.begin() as session:  # past the last task Label Studio has
            await reconcile_page(session, scope, [], lower_id, drift)


def _latest(watermark: datetime | None, tasks: list[ListedTask]) -> datetime | None:
    for entry in tasks:
        moment = entry.updated_at
        if moment is not None and (watermark is None or moment > watermark):
            watermark = moment
    return watermark
