"""Group commit for webhook deliveries.

Label Studio waits for each delivery inside the annotator's own save request,
so a delivery must be answered fast, and only once its change is durable.
Deliveries that arrive while a transaction is committing wait in a queue and
are applied together in the next one; each is answered when its batch has
committed. Under load one commit serves many deliveries; when idle, a single
delivery is committed at once, with no waiting for company.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from labelhub.errors import Unavailable
from labelhub.metrics import Metrics
from labelhub.store import sync_state, webhook_events
from labelhub.store.models import utcnow
from labelhub.store.outcome import Outcome
from labelhub.store.pipeline import Batches, ConnectionLost
from labelhub.sync.events import Event, apply_events

log = structlog.get_logger(__name__)

MAX_BATCH = 256
STOP_TIMEOUT_S = 10.0
TRACKED_REFRESH_S = 30.0


@dataclass
class Delivery:
    event: Event
    received_s: float
    request_id: str | None
    answer: asyncio.Future[Outcome] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class WebhookBatcher:
    def __init__(
        self,
        engine: AsyncEngine,
        sessions: async_sessionmaker[Any],
        metrics: Metrics,
        default_project: int | None,
    ) -> None:
        self._batches = Batches(engine, sessions)
        self._metrics = metrics
        self._default_project = default_project
        self._queue: asyncio.Queue[Delivery] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._tracked: set[int] = set()
        self._tracked_until_s = 0.0

    def start(self) -> None:
        self._worker = asyncio.create_task(self._work(), name="webhook-batcher")

    async def stop(self) -> None:
        """Apply what is queued (for up to STOP_TIMEOUT_S), then stop."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_TIMEOUT_S):
                await self._queue.join()
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        await self._batches.close()

    async def submit(
        self, event: Event, received_s: float, request_id: str | None = None
    ) -> Outcome:
        """Apply one event; returns once its change is committed."""
        delivery = Delivery(event, received_s, request_id)
        self._queue.put_nowait(delivery)
        return await delivery.answer

    async def _work(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < MAX_BATCH and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._settle(batch)
            for _ in batch:
                self._queue.task_done()

    async def _settle(self, batch: list[Delivery]) -> None:
        try:
            try:
                outcomes = await self._commit(batch)
            except ConnectionLost:
                # The database restarted, or a proxy closed an idle
                # connection: nothing was committed; once more on a new one.
                log.warning(
                    "webhook_connection_lost",
                    deliveries=len(batch),
                    request_ids=[delivery.request_id for delivery in batch[:20]],
                )
                outcomes = await self._commit(batch)
        except Exception:
            if len(batch) == 1:
                log.exception(
                    "webhook_commit_failed",
                    action=batch[0].event.action[:64],
                    request_id=batch[0].request_id,
                )
                _fail(batch[0])
                return
            # One bad event must not sink the others: apply each on its own.
            for delivery in batch:
                await self._settle([delivery])
            return
        for delivery, outcome in zip(batch, outcomes, strict=True):
            if not delivery.answer.done():
                delivery.answer.set_result(outcome)

    async def _commit(self, batch: list[Delivery]) -> list[Outcome]:
        async with self._batches.begin() as writes:
            tracked = await self._tracked_projects(writes.session, batch)
            outcomes = await apply_events(
                writes, [delivery.event for delivery in batch], tracked
            )
            now = time.perf_counter()
            now_at = utcnow()
            await writes.write(
                *webhook_events.record_statement(
                    writes.session,
                    [
                        {
                            "received_at": now_at
                            - timedelta(seconds=now - delivery.received_s),
                            "action": delivery.event.action[:64],
                            "ls_project_id": delivery.event.project_id,
                            "ls_ids": delivery.event.ls_ids(),
                            "outcome": outcome.status,
                            "detail": outcome.detail[:500],
                            "duration_ms": round((now - delivery.received_s) * 1000, 3),
                        }
                        for delivery, outcome in zip(batch, outcomes, strict=True)
                    ],
                )
            )
        self._metrics.webhook_batch.observe(len(batch))
        return outcomes

    async def _tracked_projects(
        self, session: AsyncSession, batch: list[Delivery]
    ) -> set[int]:
        """The projects labelhub imports into, read again only when needed.

        A project joins the set when a dataset names it and never leaves it
        (datasets are neither deleted nor moved), so a batch that names only
        known projects needs no query; one that names another project, or
        none, reads the set again, and so does the first batch after
        TRACKED_REFRESH_S. This saves a round trip on most group commits.
        """
        named = {delivery.event.project_id for delivery in batch}
        now_s = time.monotonic()
        if now_s >= self._tracked_until_s or not named <= self._tracked:
            self._tracked = await sync_state.tracked_projects(
                session, self._default_project
            )
            self._tracked_until_s = now_s + TRACKED_REFRESH_S
        return self._tracked


def _fail(delivery: Delivery) -> None:
    if not delivery.answer.done():
        delivery.answer.set_exception(
            Unavailable(
                "the delivery could not be stored; reconciliation will pick "
                "the change up from Label Studio"
            )
        )
