"""An annotator's own queue and statistics; never anyone else's."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from labelhub import keys
from labelhub.config import Settings
from labelhub.errors import NotFound
from labelhub.handlers.datasets import annotator_stats
from labelhub.handlers.routing import Access, Call, Routes
from labelhub.store import datasets, tasks
from labelhub.store.tasks import TaskRow

routes = Routes("annotator")


class OwnTasksQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset_id: int | None = Field(None, ge=1, le=2**31 - 1)
    status: Literal["new", "imported", "labeled", "deleted"] | None = None
    after: int | None = Field(None, ge=0, le=2**63 - 1)
    limit: int = Field(50, ge=1, le=500)


class OwnTask(BaseModel):
    id: int
    dataset_id: int
    ls_task_id: int | None
    status: str
    label: str | None
    data: dict[str, Any]
    link: str | None = Field(description="opens the task in Label Studio")


class OwnTaskPage(BaseModel):
    tasks: list[OwnTask]
    next_after: int | None


class OwnTaskPath(BaseModel):
    task_id: int = Field(ge=1, le=2**63 - 1, examples=[1])


class OwnStatsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset_id: int | None = Field(None, ge=1, le=2**31 - 1)


class OwnStats(BaseModel):
    username: str
    dataset_id: int | None
    assigned: int
    labeled: int
    remaining: int
    labels: dict[str, int]


def studio_link(settings: Settings, row: TaskRow) -> str | None:
    if row.status == "deleted":
        return None
    if not (settings.ls_base_url and row.ls_project_id and row.ls_task_id):
        return None
    project = f"{settings.ls_base_url}/projects/{row.ls_project_id}"
    return f"{project}/data?task={row.ls_task_id}"


def _own(settings: Settings, row: TaskRow) -> OwnTask:
    return OwnTask(
        id=row.id,
        dataset_id=row.dataset_id,
        ls_task_id=row.ls_task_id,
        status=row.status,
        label=row.label,
        data=row.data or {},
        link=studio_link(settings, row),
    )


@routes.get("/annotator/tasks", access=Access.USER)
async def own_tasks(call: Call, query: OwnTasksQuery) -> OwnTaskPage:
    """The caller's own tasks in id order, each with a link into Label Studio.

    Filter by dataset and status; pass `next_after` as `after` to read on.
    Tasks deleted in Label Studio are left out unless `status=deleted` asks
    for them (they have no link: there is nothing left to open).
    """
    wanted = tasks.TaskFilter(
        dataset_id=query.dataset_id,
        status=query.status,
        assignee_id=call.me.id,
        live=query.status is None,
    )
    async with call.app[keys.SESSIONS]() as session:
        rows = await tasks.page(
            session, wanted, after=query.after, limit=query.limit, with_data=True
        )
    settings = call.app[keys.SETTINGS]
    found = [_own(settings, row) for row in rows]
    next_after = found[-1].id if len(found) == query.limit else None
    return OwnTaskPage(tasks=found, next_after=next_after)


@routes.get("/annotator/tasks/{task_id}", access=Access.USER, errors=(404,))
async def own_task(call: Call, path: OwnTaskPath) -> OwnTask:
    """One of the caller's own tasks; 404 for any task not assigned to them."""
    wanted = tasks.TaskFilter(assignee_id=call.me.id)
    async with call.app[keys.SESSIONS]() as session:
        rows = await tasks.page(
            session, wanted, after=path.task_id - 1, limit=1, with_data=True
        )
    if not rows or rows[0].id != path.task_id:
        raise NotFound(f"no task {path.task_id} among your tasks")
    return _own(call.app[keys.SETTINGS], rows[0])


@routes.get("/annotator/stats", access=Access.USER)
async def own_stats(call: Call, query: OwnStatsQuery) -> OwnStats:
    """The caller's assigned, labeled and remaining tasks and label counts.

    Within one dataset with `dataset_id`, across all datasets without it.
    """
    async with call.app[keys.SESSIONS]() as session:
        tally = await datasets.assignee_tally(session, call.me.id, query.dataset_id)
    counted = annotator_stats(call.me.username, tally)
    return OwnStats(dataset_id=query.dataset_id, **counted.model_dump())
