"""Periodic work inside the daemon: reconciliation and pruning.

Ticks only enqueue jobs; the job runner (of this or any daemon sharing the
database) runs them, and the jobs table allows one active reconciliation per
project, so a slow run is never stacked on.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from labelhub.config import Settings
from labelhub.errors import Conflict, LabelhubError
from labelhub.store import jobs, sync_state, webhook_events
from labelhub.store.models import Job, SyncState, utcnow
from labelhub.studio.client import StudioClient
from labelhub.sync.runner import JobRunner
from labelhub.sync.webhook_setup import register

log = structlog.get_logger(__name__)

EARLY_CHECK_S = 15
PRUNE_INTERVAL_S = 3600
FIRST_TICK_DELAY_S = 5
JITTER_SHARE = 0.1


class Scheduler:
    def __init__(
        self,
        sessions: async_sessionmaker[Any],
        settings: Settings,
        runner: JobRunner,
        studio: StudioClient | None,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.runner = runner
        self.studio = studio
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._startup: asyncio.Task[None] | None = None

    def start(self) -> None:
        interval_s = self.settings.reconcile_interval_s
        every = {"coalesce": True, "max_instances": 1, "misfire_grace_time": 60}
        self._scheduler.add_job(
            self.prune, "interval", seconds=PRUNE_INTERVAL_S, **every
        )
        if interval_s and self.studio is not None:
            first = datetime.now(UTC) + timedelta(seconds=FIRST_TICK_DELAY_S)
            self._scheduler.add_job(
                self.reconcile_tick,
                "interval",
                seconds=interval_s,
                jitter=max(1, int(interval_s * JITTER_SHARE)),
                next_run_time=first,
                **every,
            )
            self._scheduler.add_job(
                self.early_tick, "interval", seconds=EARLY_CHECK_S, **every
            )
        self._scheduler.start()
        if self.studio is not None and self.settings.labelhub_public_url:
            self._startup = asyncio.create_task(self.register_webhooks())
        log.info("scheduler_started", reconcile_interval_s=interval_s)

    async def stop(self) -> None:
        self._scheduler.shutdown(wait=False)
        if self._startup is not None:
            self._startup.cancel()

    async def reconcile_tick(self) -> None:
        """Queue a reconciliation of every project; full ones when due."""
        started = time.perf_counter()
        async with self.sessions() as session:
            projects = await sync_state.tracked_projects(
                session, self.settings.ls_project_id
            )
            states = {
                state.ls_project_id: state
                for state in await session.scalars(select(SyncState))
            }
        queued = [
            project
            for project in sorted(projects)
            if await self._enqueue(project, self._full_due(states.get(project)))
        ]
        log.info(
            "scheduler_ticked",
            tick="reconcile",
            queued=queued,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )

    def _full_due(self, state: SyncState | None) -> bool:
        if state is None or state.last_full_at is None:
            return True
        age = utcnow() - state.last_full_at
        return age >= timedelta(seconds=self.settings.reconcile_full_interval_s)

    async def early_tick(self) -> None:
        """Queue reconciliations that webhooks asked to come early."""
        async with self.sessions() as session:
            asked = list(
                await session.scalars(
                    select(SyncState.ls_project_id).where(
                        SyncState.early_requested_at.is_not(None)
                    )
                )
            )
        queued = [project for project in asked if await self._enqueue(project, False)]
        (log.info if queued else log.debug)(
            "scheduler_ticked", tick="early", queued=queued
        )

    async def _enqueue(self, project_id: int, full: bool) -> bool:
        try:
            async with self.sessions.begin() as session:
                await jobs.enqueue(
                    session,
                    "reconcile",
                    ls_project_id=project_id,
                    params={"full": full},
                )
        except Conflict:
            return False  # one is already queued or running
        self.runner.wake()
        return True

    async def prune(self) -> None:
        """Drop audit rows and finished reconcile jobs past their retention."""
        keep_days = self.settings.webhook_retention_days
        cutoff = utcnow() - timedelta(days=keep_days)
        async with self.sessions.begin() as session:
            events = await webhook_events.prune(session, keep_days)
            result = await session.execute(
                delete(Job).where(
                    Job.kind == "reconcile",
                    Job.status.in_(("success", "failed")),
                    Job.finished_at < cutoff,
                )
            )
        log.info(
            "scheduler_ticked",
            tick="prune",
            webhook_events=events,
            reconcile_jobs=result.rowcount,
        )

    async def register_webhooks(self) -> None:
        """Make sure every project's webhook reaches this daemon's public URL."""
        if self.studio is None or not self.settings.labelhub_public_url:
            return
        async with self.sessions() as session:
            projects = await sync_state.tracked_projects(
                session, self.settings.ls_project_id
            )
        for project in sorted(projects):
            try:
                await register(
                    self.studio,
                    self.settings,
                    project,
                    self.settings.labelhub_public_url,
                )
            except LabelhubError as exc:
                log.warning(
                    "webhook_register_failed", project_id=project, reason=exc.message
                )
