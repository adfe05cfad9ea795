"""Datasets: create, add items, list their tasks, statistics, import."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from labelhub import keys
from labelhub.demo import demo_items
from labelhub.handlers.fields import NO_NUL, BodyId, Item
from labelhub.handlers.items import ItemsUpload, check_items
from labelhub.handlers.routing import Access, Call, Routes
from labelhub.store import datasets, jobs, tasks, users
from labelhub.store.datasets import DatasetStats, Tally
from labelhub.store.models import Dataset

routes = Routes("datasets")
NOBODY = 0  # no account has id 0
Status = Literal["new", "imported", "labeled", "deleted"]


class DatasetIn(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    name: str = Field(min_length=1, max_length=200, pattern=NO_NUL)
    ls_project_id: BodyId | None = None
    items: list[Item] | None = Field(
        None,
        description="Items to start with; leave out for 100 demonstration items",
    )


class DatasetOut(BaseModel):
    dataset_id: int
    id: int
    name: str
    ls_project_id: int | None = Field(
        description="the project it imports into (its own, or LS_PROJECT_ID)"
    )
    created_at: datetime
    total: int
    counts: dict[str, int]

    @classmethod
    def of(
        cls, dataset: Dataset, tally: Tally, default_project: int | None
    ) -> DatasetOut:
        return cls(
            dataset_id=dataset.id,
            id=dataset.id,
            name=dataset.name,
            ls_project_id=dataset.ls_project_id or default_project,
            created_at=dataset.created_at,
            total=tally.total,
            counts=tally.by_status,
        )


class DatasetPath(BaseModel):
    dataset_id: int = Field(ge=1, le=2**31 - 1, examples=[1])


class ItemsAdded(BaseModel):
    dataset_id: int
    added: int
    total: int


class TaskListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Status | None = None
    assigned_to: str | None = Field(None, min_length=1, max_length=254, pattern=NO_NUL)
    unassigned: bool = False
    label: str | None = Field(None, min_length=1, max_length=200, pattern=NO_NUL)
    after: int | None = Field(None, ge=0, le=2**63 - 1)
    limit: int = Field(100, ge=1, le=1000)


class TaskOut(BaseModel):
    id: int
    ls_task_id: int | None
    status: str
    assigned_to: str | None
    label: str | None


class TaskPage(BaseModel):
    tasks: list[TaskOut]
    next_after: int | None = Field(description="pass as `after` for the next page")


class AnnotatorStats(BaseModel):
    username: str
    assigned: int
    labeled: int
    remaining: int
    labels: dict[str, int]


class StatsOut(BaseModel):
    dataset_id: int
    total: int
    new: int
    imported: int
    labeled: int
    deleted: int
    assigned: int
    unassigned: int
    free: int = Field(description="imported, unassigned: what auto_assign can take")
    labels: dict[str, int]
    annotators: list[AnnotatorStats]


class JobAccepted(BaseModel):
    job_id: int
    status: str


@routes.post("/datasets", access=Access.ADMIN, status=201, max_body_bytes=64 << 20)
async def create_dataset(call: Call, body: DatasetIn) -> DatasetOut:
    """Create a dataset (201). Without `items` it holds 100 demonstration items."""
    settings = call.app[keys.SETTINGS]
    items = demo_items() if body.items is None else body.items
    if items:
        check_items(items, settings.items_max_count)
    async with call.app[keys.SESSIONS].begin() as session:
        dataset = await datasets.create(
            session, body.name, body.ls_project_id, call.me.id
        )
        await tasks.add_items(session, dataset.id, items)
        tally = (await datasets.stats(session, [dataset.id]))[dataset.id].all
    return DatasetOut.of(dataset, tally, settings.ls_project_id)


@routes.get("/datasets", access=Access.ADMIN)
async def list_datasets(call: Call) -> list[DatasetOut]:
    """Every dataset with its counts by status."""
    async with call.app[keys.SESSIONS]() as session:
        found = await datasets.list_all(session)
        stats = await datasets.stats(session, [dataset.id for dataset in found])
    default = call.app[keys.SETTINGS].ls_project_id
    return [DatasetOut.of(dataset, stats[dataset.id].all, default) for dataset in found]


@routes.get("/datasets/{dataset_id}", access=Access.ADMIN, errors=(404,))
async def get_dataset(call: Call, path: DatasetPath) -> DatasetOut:
    """One dataset with its counts by status; 404 when unknown."""
    async with call.app[keys.SESSIONS]() as session:
        dataset = await datasets.get(session, path.dataset_id)
        stats = await datasets.stats(session, [dataset.id])
    default = call.app[keys.SETTINGS].ls_project_id
    return DatasetOut.of(dataset, stats[dataset.id].all, default)


@routes.post(
    "/datasets/{dataset_id}/items", access=Access.ADMIN, status=201, errors=(404,)
)
async def add_items(call: Call, path: DatasetPath, body: ItemsUpload) -> ItemsAdded:
    """Add items (a JSON array, or JSON Lines) in one transaction; all or none.

    400 for a body that does not parse, 413 over ITEMS_MAX_BODY_MB, 422 for an
    item that is not a non-empty object or too many items; nothing is stored.
    """
    async with call.app[keys.SESSIONS].begin() as session:
        dataset = await datasets.get(session, path.dataset_id)
        added = await tasks.add_items(session, dataset.id, body.items)
        tally = (await datasets.stats(session, [dataset.id]))[dataset.id].all
    return ItemsAdded(dataset_id=dataset.id, added=added, total=tally.total)


@routes.get("/datasets/{dataset_id}/tasks", access=Access.ADMIN, errors=(404,))
async def list_tasks(call: Call, path: DatasetPath, query: TaskListQuery) -> TaskPage:
    """A page of the dataset's tasks in id order; filter by status, assignee, label.

    Pass the answer's `next_after` as `after` to read on; it is null at the end.
    """
    async with call.app[keys.SESSIONS]() as session:
        await datasets.get(session, path.dataset_id)
        assignee_id = None
        if query.assigned_to is not None:
            user = await users.find(session, query.assigned_to)
            # Nobody by that name holds a task: the answer is an empty page.
            assignee_id = user.id if user is not None else NOBODY
        wanted = tasks.TaskFilter(
            dataset_id=path.dataset_id,
            status=query.status,
            assignee_id=assignee_id,
            unassigned=query.unassigned,
            label=query.label,
        )
        rows = await tasks.page(session, wanted, after=query.after, limit=query.limit)
    found = [
        TaskOut(
            id=row.id,
            ls_task_id=row.ls_task_id,
            status=row.status,
            assigned_to=row.assigned_to,
            label=row.label,
        )
        for row in rows
    ]
    next_after = found[-1].id if len(found) == query.limit else None
    return TaskPage(tasks=found, next_after=next_after)


@routes.get("/datasets/{dataset_id}/stats", access=Access.ADMIN, errors=(404,))
async def dataset_stats(call: Call, path: DatasetPath) -> StatsOut:
    """Totals by status, assigned and unassigned, labels, and per annotator."""
    async with call.app[keys.SESSIONS]() as session:
        await datasets.get(session, path.dataset_id)
        stats = (await datasets.stats(session, [path.dataset_id]))[path.dataset_id]
    return stats_out(path.dataset_id, stats)


def stats_out(dataset_id: int, stats: DatasetStats) -> StatsOut:
    annotators = [
        annotator_stats(username, tally)
        for username, tally in sorted(stats.annotators.items())
    ]
    return StatsOut(
        dataset_id=dataset_id,
        total=stats.all.total,
        **stats.all.by_status,
        assigned=sum(entry.assigned for entry in annotators),
        unassigned=stats.unassigned.live,
        free=stats.unassigned.by_status["imported"],
        labels=stats.all.labels,
        annotators=annotators,
    )


def annotator_stats(username: str, tally: Tally) -> AnnotatorStats:
    labeled = tally.by_status["labeled"]
    return AnnotatorStats(
        username=username,
        assigned=tally.live,
        labeled=labeled,
        remaining=tally.live - labeled,
        labels=tally.labels,
    )


@routes.post(
    "/datasets/{dataset_id}/import_to_ls",
    access=Access.ADMIN,
    status=202,
    errors=(404, 409),
)
async def import_to_ls(call: Call, path: DatasetPath) -> JobAccepted:
    """Queue an import of the dataset's new items into Label Studio (202).

    409 names the import of this dataset that is already queued or running.
    The job's message ends as `imported N tasks`.
    """
    return await _queue(call, path.dataset_id, "import")


@routes.post(
    "/datasets/{dataset_id}/export_from_ls",
    access=Access.ADMIN,
    status=202,
    errors=(404, 409),
)
async def export_from_ls(call: Call, path: DatasetPath) -> JobAccepted:
    """Queue a full reconciliation of the dataset's project with Label Studio (202).

    Pulls annotations back into the shadow index; the job's message ends as
    `exported N labeled tasks` and its result is the drift report.
    """
    return await _queue(call, path.dataset_id, "export")


async def _queue(call: Call, dataset_id: int, kind: str) -> JobAccepted:
    """A job of `kind` for the dataset; 409 when one is queued or running."""
    settings = call.app[keys.SETTINGS]
    async with call.app[keys.SESSIONS].begin() as session:
        dataset = await datasets.get(session, dataset_id)
        job = await jobs.enqueue(
            session,
            kind,
            dataset_id=dataset.id,
            ls_project_id=dataset.ls_project_id or settings.ls_project_id,
            requested_by=call.me.id,
        )
    call.app[keys.RUNNER].wake()
    return JobAccepted(job_id=job.id, status=job.status)
