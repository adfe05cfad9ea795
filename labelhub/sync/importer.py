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
from typing import Any

import structlog

from labelhub.errors import StudioError, Unavailable
from labelhub.store import datasets, tasks
from labelhub.store.models import utcnow
from labelhub.studio.client import LABELHUB_ID, StudioClient
from labelhub.sync.runner import JobContext

log = structlog.get_logger(__name__)

MAX_UNANSWERED_BATCHES = 3
Batch = tuple[int, dict[str, Any]]  # an item's task id and data


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
    dataset_id, project_id = await _target(ctx)
    async with ctx.sessions() as session:
        remaining = await tasks.count_new(session, dataset_id)
    run = _Run(ctx, studio, dataset_id, project_id, total=ctx.done + remaining)
    run.done = ctx.done + await _recover(ctx, studio, dataset_id, project_id)
    await run.send_all()
    return f"imported {run.done} tasks"


@dataclass
class _Run:
    """The batches of one import, pipelined.

    Label Studio's answer to a batch takes far longer than labelhub's own
    bookkeeping, so while a batch is in flight the next one is already marked
    in flight (and committed, before it is sent), and the ids of the previous
    one are recorded. A failure leaves at most these batches in flight, which
    `_recover` settles as before.
    """

    ctx: JobContext
    studio: StudioClient
    dataset_id: int
    project_id: int
    total: int
    done: int = 0
    unanswered: int = 0

    async def send_all(self) -> None:
        recording: asyncio.Future[None] = _finished()
        upcoming: asyncio.Future[list[Batch]] | None = None
        try:
            batch = await _next_batch(self.ctx, self.dataset_id)
            while batch:
                upcoming = asyncio.ensure_future(_next_batch(self.ctx, self.dataset_id))
                ls_ids = await self._send(batch, upcoming, recording)
                await recording
                if ls_ids is None:  # unanswered, and recovered: start afresh
                    batch = await _next_batch(self.ctx, self.dataset_id)
                    continue
                recording = asyncio.ensure_future(self._record(batch, ls_ids))
                batch = await upcoming
            await recording
        finally:
            for pending in (recording, upcoming):
                if pending is not None and not pending.done():
                    pending.cancel()
                    await asyncio.gather(pending, return_exceptions=True)

    async def _send(
        self,
        batch: list[Batch],
        upcoming: asyncio.Future[list[Batch]],
        recording: asyncio.Future[None],
    ) -> list[int] | None:
        """Label Studio's ids for the batch; None when it never answered."""
        try:
            return await self.studio.import_tasks(
                self.project_id,
                [_as_studio_task(self.dataset_id, *item) for item in batch],
            )
        except StudioError as exc:
            # The next batch was marked but will not go out now.
            await _forget_sent(self.ctx, [task_id for task_id, _ in await upcoming])
            await recording
            await self._unanswered(batch, exc)
            return None

    async def _unanswered(self, batch: list[Batch], exc: StudioError) -> None:
        if not exc.maybe_applied:
            await _forget_sent(self.ctx, [task_id for task_id, _ in batch])
            raise exc
        self.unanswered += 1
        log.warning("import_batch_unanswered", reason=exc.reason, size=len(batch))
        if self.unanswered > MAX_UNANSWERED_BATCHES:
            raise exc
        if exc.kind == "timeout":
            # Label Studio may still be working on the batch; give it the
            # same time again before looking for what it created.
            await asyncio.sleep(self.ctx.settings.ls_timeout_s)
        self.done += await _recover(
            self.ctx, self.studio, self.dataset_id, self.project_id
        )

    async def _record(self, batch: list[Batch], ls_ids: list[int]) -> None:
        task_ids = [task_id for task_id, _ in batch]
        self.done += await _link(self.ctx, self.project_id, task_ids, ls_ids)
        await self.ctx.progress(
            self.done, self.total, f"importing: {self.done} of {self.total} tasks"
        )


def _finished() -> asyncio.Future[None]:
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    done.set_result(None)
    return done


async def _target(ctx: JobContext) -> tuple[int, int]:
    """The dataset and its project; a dataset without one takes the default."""
    if ctx.dataset_id is None:
        raise Unavailable("an import job needs a dataset")
    async with ctx.sessions.begin() as session:
        dataset = await datasets.get(session, ctx.dataset_id)
        if dataset.ls_project_id is None:
            if ctx.settings.ls_project_id is None:
                raise Unavailable(
                    f"dataset {dataset.id} names no Label Studio project: set "
                    "LS_PROJECT_ID or create the dataset with ls_project_id"
                )
            dataset.ls_project_id = ctx.settings.ls_project_id
        return dataset.id, dataset.ls_project_id


async def _next_batch(ctx: JobContext, dataset_id: int) -> list[Batch]:
    """The next items to send, already marked (and committed) as in flight."""
    async with ctx.sessions.begin() as session:
        return await tasks.claim_new_batch(
            session, dataset_id, ctx.settings.ls_import_batch, utcnow()
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
    """Link items Label Studio holds from unanswered batches; free the rest."""
    async with ctx.sessions() as session:
        sent = await tasks.in_flight(session, dataset_id)
    if not sent:
        return 0

    wanted = set(sent)
    found: dict[int, int] = {}
    for task in await studio.find_labelhub_tasks(project_id, min(sent), max(sent)):
        labelhub_id = (task.get("data") or {}).get(LABELHUB_ID)
        if labelhub_id in wanted and labelhub_id not in found:
            found[int(labelhub_id)] = int(task["id"])

    linked = await _link(ctx, project_id, list(found), list(found.values()))
    await _forget_sent(ctx, [task_id for task_id in sent if task_id not in found])
    log.info("import_recovered", in_flight=len(sent), found=len(found), linked=linked)
    return linked
