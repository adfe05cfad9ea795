"""The job runner: claims queued jobs, runs them, records how they ended.

The jobs table is the truth; a runner is only a worker. It holds a lease on
the job it runs and renews it; a job whose daemon died is taken over once its
lease expires, and its handler resumes from what the store records as done.
On shutdown a running job is handed back to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from labelhub.config import Settings
from labelhub.errors import LabelhubError
from labelhub.metrics import Metrics
from labelhub.store import jobs
from labelhub.store.models import Job
from labelhub.studio.client import StudioClient

log = structlog.get_logger(__name__)

MAX_ATTEMPTS = 5


@dataclass
class JobContext:
    """What a job handler gets: its job, the store, Label Studio, progress."""

    job_id: int
    kind: str
    dataset_id: int | None
    ls_project_id: int | None
    params: dict[str, Any]
    attempt: int
    done: int
    sessions: async_sessionmaker[Any]
    studio: StudioClient | None
    settings: Settings
    metrics: Metrics
    owner: str
    result: dict[str, Any] = field(default_factory=dict)

    async def progress(self, done: int, total: int | None, message: str) -> None:
        async with self.sessions.begin() as session:
            await self.record_progress(session, done, total, message)

    async def record_progress(
        self, session: AsyncSession, done: int, total: int | None, message: str
    ) -> None:
        """Progress written in the caller's transaction, with what it counts."""
        await jobs.report(
            session, self.job_id, self.owner, done=done, total=total, message=message
        )


JobHandler = Callable[[JobContext], Awaitable[str]]


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class JobRunner:
    def __init__(
        self,
        sessions: async_sessionmaker[Any],
        settings: Settings,
        studio: StudioClient | None,
        metrics: Metrics,
        handlers: dict[str, JobHandler],
        *,
        owner: str | None = None,
        workers: int = 2,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.studio = studio
        self.metrics = metrics
        self.handlers = handlers
        self.owner = owner or default_owner()
        self.workers = workers
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        for index in range(self.workers):
            self._tasks.append(
                asyncio.create_task(self._work(), name=f"job-worker-{index}")
            )
        log.info("job_runner_started", owner=self.owner, workers=self.workers)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def wake(self) -> None:
        """Look for work now rather than at the next poll."""
        self._wake.set()

    async def _work(self) -> None:
        while True:
            # Cleared before looking, not after: a wake-up that arrives while
            # this worker finds nothing must not be lost until the next poll.
            self._wake.clear()
            try:
                ran = await self.run_once()
            except Exception:
                log.exception("job_runner_failed")
                ran = False
            if not ran:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.settings.job_poll_s):
                        await self._wake.wait()

    async def run_once(self) -> bool:
        """Claim and run one job; False when none was waiting."""
        async with self.sessions.begin() as session:
            job = await jobs.claim(session, self.owner, self.settings.job_lease_s)
        if job is None:
            return False
        with structlog.contextvars.bound_contextvars(job_id=job.id, job_kind=job.kind):
            await self._run(job)
        return True

    async def _run(self, job: Job) -> None:
        if job.attempts > MAX_ATTEMPTS:
            await self._finish(
                job, "failed", f"gave up after {MAX_ATTEMPTS} attempts", None
            )
            return
        context = self._context(job)
        log.info("job_started", attempt=job.attempts, dataset_id=job.dataset_id)
        started = time.perf_counter()
        work = asyncio.create_task(self._handle(job, context))
        keeper = asyncio.create_task(self._keep_lease(job, work))
        try:
            status, message, error = await work
        except asyncio.CancelledError:
            work.cancel()
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                await self._release(job)  # the daemon is stopping
                raise
            log.warning("job_abandoned", reason="another runner holds its lease")
            return
        finally:
            keeper.cancel()

        duration_s = time.perf_counter() - started
        self.metrics.jobs.labels(job.kind, status).inc()
        self.metrics.job_seconds.labels(job.kind).observe(duration_s)
        await self._finish(job, status, message, error, context.result or None)
        event = "job_succeeded" if status == "success" else "job_failed"
        (log.info if status == "success" else log.warning)(
            event, message=message, duration_ms=round(duration_s * 1000)
        )

    async def _handle(
        self, job: Job, context: JobContext
    ) -> tuple[str, str, str | None]:
        handler = self.handlers.get(job.kind)
        if handler is None:
            return "failed", f"no handler for jobs of kind {job.kind!r}", None
        try:
            return "success", await handler(context), None
        except LabelhubError as exc:
            return "failed", exc.message, f"{type(exc).__name__}: {exc.message}"
        except Exception as exc:
            log.exception("job_crashed")
            return "failed", f"internal error: {type(exc).__name__}", repr(exc)

    async def _keep_lease(self, job: Job, work: asyncio.Task[Any]) -> None:
        """Renew the lease every third of it; stop the work once it may lapse.

        A renewal that fails (the database restarting) is tried again at the
        next step; if the lease could lapse before that step, the work stops,
        since another daemon may take the job then. It resumes later.
        """
        lease_s = self.settings.job_lease_s
        step_s = lease_s / 3
        expires_s = time.monotonic() + lease_s
        while True:
            await asyncio.sleep(step_s)
            try:
                async with self.sessions.begin() as session:
                    held = await jobs.renew_lease(session, job.id, self.owner, lease_s)
            except Exception as exc:
                log.warning("job_lease_not_renewed", reason=repr(exc)[:200])
                if time.monotonic() + step_s < expires_s:
                    continue
                held = False
            if not held:
                log.warning("job_lease_lost")
                work.cancel()
                return
            expires_s = time.monotonic() + lease_s

    def _context(self, job: Job) -> JobContext:
        return JobContext(
            job_id=job.id,
            kind=job.kind,
            dataset_id=job.dataset_id,
            ls_project_id=job.ls_project_id,
            params=dict(job.params or {}),
            attempt=job.attempts,
            done=job.progress_done,
            sessions=self.sessions,
            studio=self.studio,
            settings=self.settings,
            metrics=self.metrics,
            owner=self.owner,
        )

    async def _finish(
        self,
        job: Job,
        status: str,
        message: str,
        error: str | None,
        result: dict[str, Any] | None = None,
    ) -> None:
        async with self.sessions.begin() as session:
            await jobs.finish(
                session,
                job.id,
                self.owner,
                status=status,
                message=message,
                error=error,
                result=result,
            )

    async def _release(self, job: Job) -> None:
        with contextlib.suppress(Exception):
            async with self.sessions.begin() as session:
                await jobs.release(session, job.id, self.owner)
            log.info("job_released")
