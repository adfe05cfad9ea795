"""The import job: a dataset's new items become tasks of a Label Studio project.

Items go in batches to Label Studio's import API, which answers with the new
task ids; each is recorded on its item. Every task carries labelhub's own task
id in its data and meta. Before a batch is sent its items are marked as in
flight; when no answer arrives (timeout, a 5xx after Label Studio committed,
a crash of labelhub), the items are looked up in Label Studio by that id
before anything is sent again, so no item ever becomes two tasks.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from labelhub.errors import StudioError, Unavailable
from labelhub.store import datasets, tasks
from labelhub.store.models import utcnow
from labelhub.studio.client import LABELHUB_ID, StudioClient
from labelhub.studio.transport import encode_json
from labelhub.sync.runner import JobContext

log = structlog.get_logger(__name__)

MAX_UNANSWERED_BATCHES = 3
RECOVER_POLL_S = 2.0


@dataclass(frozen=True)
class _Batch:
    """Items marked in flight (and committed), and the tasks to send for them,
    encoded ahead: the send follows the previous batch's answer at once."""

    task_ids: list[int]
    studio_tasks: list[dict[str, Any]]
    encoded: bytes


@dataclass(frozen=True)
class _Answered:
    batch: _Batch
    ls_task_ids: list[int]


def studio_of(ctx: JobContext) -> StudioClient:
    if ctx.studio is None:
        raise Unavailable(
            "Label Studio is not configured: set LS_BASE_URL and LS_API_TOKEN, "
            "restart labelhub, then retry this job"
        )
    return ctx.studio


async def run_import(ctx: JobContext) -> str:
    """Send the dataset's new items to Label Studio; `imported N tasks`."""
    studio = studio_of(ctx)
    # One transaction finds the project, counts what is left and, unless a
    # batch was left in flight, marks the first batch: the first send waits
    # for all of it.
    async with ctx.sessions.begin() as session:
        dataset_id, project_id = await _target(session, ctx)
        new = await tasks.count_new(session, dataset_id)
        first = None if new.in_flight else await _claim(session, ctx, dataset_id)

    run = _Run(ctx, studio, dataset_id, project_id, ctx.done + new.count, ctx.done)
    if new.in_flight:
        run.done += await _recover(ctx, studio, dataset_id, project_id)
        first = await run.claim_alone()
    await run.send_all(first)
    return f"imported {run.done} tasks"


@dataclass
class _Run:
    """The batches of one import, pipelined.

    Label Studio's answer to a batch takes far longer than labelhub's own
    bookkeeping, so while a batch is in flight one transaction records the
    ids (and the job's progress) of the batch answered before it and marks
    the next batch in flight; that batch goes out as soon as the answer
    arrives. One transaction rather than one per step: each costs the daemon
    CPU that Label Studio, working on the batch, needs on the same machine.
    A failure leaves at most the batch sent and the one marked after it in
    flight: the one marked is freed, the one sent is looked for by
    `_recover`, now or when the job resumes.
    """

    ctx: JobContext
    studio: StudioClient
    dataset_id: int
    project_id: int
    total: int
    done: int = 0
    unanswered: int = 0

    async def send_all(self, batch: _Batch | None) -> None:
        answered: _Answered | None = None
        bookkeeping: asyncio.Future[_Batch | None] | None = None
        try:
            while batch is not None:
                bookkeeping = asyncio.ensure_future(self._record_and_claim(answered))
                try:
                    ls_task_ids = await self._send(batch)
                except StudioError as exc:
                    await self._settle_unanswered(batch, exc, await bookkeeping)
                    answered, batch = None, await self.claim_alone()
                    continue
                answered = _Answered(batch, ls_task_ids)
                batch = await bookkeeping
            if answered is not None:
                async with self.ctx.sessions.begin() as session:
                    await self._record(session, answered)
        finally:
            if bookkeeping is not None and not bookkeeping.done():
                bookkeeping.cancel()
                await asyncio.gather(bookkeeping, return_exceptions=True)

    async def claim_alone(self) -> _Batch | None:
        async with self.ctx.sessions.begin() as session:
            return await _claim(session, self.ctx, self.dataset_id)

    async def _send(self, batch: _Batch) -> list[int]:
        return await self.studio.import_tasks(
            self.project_id, batch.studio_tasks, batch.encoded
        )

    async def _record_and_claim(self, answered: _Answered | None) -> _Batch | None:
        """The next batch, marked in the transaction that records `answered`."""
        async with self.ctx.sessions.begin() as session:
            if answered is not None:
                await self._record(session, answered)
            return await _claim(session, self.ctx, self.dataset_id)

    async def _record(self, session: AsyncSession, answered: _Answered) -> None:
        pairs = list(zip(answered.batch.task_ids, answered.ls_task_ids, strict=True))
        self.done += await tasks.link(session, self.project_id, pairs)
        message = f"importing: {self.done} of {self.total} tasks"
        await self.ctx.record_progress(session, self.done, self.total, message)

    async def _settle_unanswered(
        self, batch: _Batch, exc: StudioError, upcoming: _Batch | None
    ) -> None:
        """Free the batch marked meanwhile, then free or recover `batch`."""
        if upcoming is not None:  # marked, but it will not go out now
            await _forget_sent(self.ctx, upcoming.task_ids)
        if not exc.maybe_applied:
            await _forget_sent(self.ctx, batch.task_ids)
            raise exc
        self.unanswered += 1
        log.warning(
            "import_batch_unanswered", reason=exc.reason, size=len(batch.task_ids)
        )
        if self.unanswered > MAX_UNANSWERED_BATCHES:
            raise exc
        self.done += await _recover(
            self.ctx, self.studio, self.dataset_id, self.project_id
        )


async def _target(session: AsyncSession, ctx: JobContext) -> tuple[int, int]:
    """The dataset and its project; a dataset without one takes the default."""
    if ctx.dataset_id is None:
        raise Unavailable("an import job needs a dataset")
    dataset = await datasets.get(session, ctx.dataset_id)
    if dataset.ls_project_id is None:
        if ctx.settings.ls_project_id is None:
            raise Unavailable(
                f"dataset {dataset.id} names no Label Studio project: set "
                "LS_PROJECT_ID or create the dataset with ls_project_id"
            )
        dataset.ls_project_id = ctx.settings.ls_project_id
    return dataset.id, dataset.ls_project_id


async def _claim(
    session: AsyncSession, ctx: JobContext, dataset_id: int
) -> _Batch | None:
    """The next items to send, marked in flight in `session`; None when none."""
    items = await tasks.claim_new_batch(
        session, dataset_id, ctx.settings.ls_import_batch, utcnow()
    )
    if not items:
        return None
    studio_tasks = [
        _as_studio_task(dataset_id, task_id, data) for task_id, data in items
    ]
    return _Batch(
        [task_id for task_id, _ in items], studio_tasks, encode_json(studio_tasks)
    )


def _as_studio_task(
    dataset_id: int, task_id: int, data: dict[str, Any]
) -> dict[str, Any]:
    return {
        "data": {**data, LABELHUB_ID: task_id},
        "meta": {LABELHUB_ID: task_id, "labelhub_dataset_id": dataset_id},
    }


async def _link(
    ctx: JobContext, project_id: int, task_ids: list[int], ls_ids: list[int]
) -> int:
    async with ctx.sessions.begin() as session:
        return await tasks.link(
            session, project_id, list(zip(task_ids, ls_ids, strict=True))
        )


async def _forget_sent(ctx: JobContext, task_ids: list[int]) -> None:
    if not task_ids:
        return
    async with ctx.sessions.begin() as session:
        await tasks.clear_sent(session, task_ids)


async def _recover(
    ctx: JobContext, studio: StudioClient, dataset_id: int, project_id: int
) -> int:
    """Link items Label Studio holds from unanswered batches; free the rest
    once they are overdue.

    Label Studio reads a request whole before it works on it, and finishes
    the work when the client has gone: a batch whose answer was lost may
    still become tasks. An item not found is looked for again, every
    RECOVER_POLL_S, until LS_IMPORT_SETTLE_S have passed since it was sent;
    only then is it freed, to be sent again.
    """
    settle = timedelta(seconds=ctx.settings.ls_import_settle_s)
    linked = 0
    while True:
        async with ctx.sessions() as session:
            sent = dict(await tasks.in_flight(session, dataset_id))
        if not sent:
            return linked
        found = await _find(studio, project_id, set(sent))
        linked += await _link(ctx, project_id, list(found), list(found.values()))

        now = utcnow()
        missing = [
            (task_id, at) for task_id, at in sent.items() if task_id not in found
        ]
        overdue = [task_id for task_id, at in missing if at + settle <= now]
        waiting = [at for _, at in missing if at + settle > now]
        await _forget_sent(ctx, overdue)
        log.info(
            "import_recovered",
            in_flight=len(sent),
            found=len(found),
            freed=len(overdue),
            waiting=len(waiting),
        )
        if not waiting:
            return linked
        due_s = (min(waiting) + settle - now).total_seconds()
        await asyncio.sleep(min(RECOVER_POLL_S, due_s))


async def _find(
    studio: StudioClient, project_id: int, wanted: set[int]
) -> dict[int, int]:
    """The Label Studio task of each wanted item that Label Studio holds."""
    found: dict[int, int] = {}
    for task in await studio.find_labelhub_tasks(project_id, min(wanted), max(wanted)):
        labelhub_id = (task.get("data") or {}).get(LABELHUB_ID)
        if labelhub_id in wanted and labelhub_id not in found:
            found[int(labelhub_id)] = int(task["id"])
    return found
