"""Assigning tasks: one at a time, or many at once."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from labelhub import keys
from labelhub.errors import NotFound
from labelhub.handlers.fields import NO_NUL
from labelhub.handlers.routing import Access, Call, Routes
from labelhub.store import assignments, datasets
from labelhub.store.models import Annotation, Task, User

routes = Routes("tasks")


class TaskPath(BaseModel):
    task_id: int = Field(ge=1, le=2**63 - 1, examples=[1])


class AssignPath(TaskPath):
    username: str = Field(
        min_length=1, max_length=254, pattern=NO_NUL, examples=["ann"]
    )


class DatasetPath(BaseModel):
    dataset_id: int = Field(ge=1, le=2**31 - 1, examples=[1])


class AnnotationOut(BaseModel):
    ls_annotation_id: int
    completed_by: int | None
    label: str | None
    was_cancelled: bool
    ls_updated_at: datetime | None


class TaskDetail(BaseModel):
    id: int
    dataset_id: int
    ls_project_id: int | None
    ls_task_id: int | None
    origin: str
    status: str
    assigned_to: str | None
    assigned_at: datetime | None
    label: str | None
    data: dict[str, Any]
    annotations: list[AnnotationOut]


class AutoAssignQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str | None = Field(
        None, min_length=1, max_length=254, pattern=NO_NUL, description="one annotator"
    )
    usernames: str | None = Field(
        None,
        min_length=1,
        max_length=2000,
        pattern=r"^[^,\x00]*[^,\s\x00][^,\x00]*(,[^,\x00]*)*$",
        description="several annotators, comma-separated; their open "
        "workloads are evened out",
    )
    count: int = Field(ge=1, le=10_000, description="how many tasks to assign")

    def names(self) -> list[str]:
        """Who was named; empty means every active annotator."""
        names = [self.username or "", *(self.usernames or "").split(",")]
        return list(dict.fromkeys(name.strip() for name in names if name.strip()))


class AutoAssigned(BaseModel):
    assigned: int
    task_ids: list[int]
    by_user: dict[str, int]


async def task_detail(session: AsyncSession, task: Task) -> TaskDetail:
    assignee = await session.get(User, task.assigned_to) if task.assigned_to else None
    notes = await session.scalars(
        select(Annotation)
        .where(Annotation.task_id == task.id, Annotation.deleted.is_(False))
        .order_by(Annotation.ls_annotation_id)
    )
    return TaskDetail(
        id=task.id,
        dataset_id=task.dataset_id,
        ls_project_id=task.ls_project_id,
        ls_task_id=task.ls_task_id,
        origin=task.origin,
        status=task.status,
        assigned_to=assignee.username if assignee else None,
        assigned_at=task.assigned_at,
        label=task.label,
        data=task.data,
        annotations=[
            AnnotationOut.model_validate(note, from_attributes=True) for note in notes
        ],
    )


@routes.get("/tasks/{task_id}", access=Access.ADMIN, errors=(404,))
async def get_task(call: Call, path: TaskPath) -> TaskDetail:
    """One task with its data and annotations; 404 when unknown."""
    async with call.app[keys.SESSIONS]() as session:
        task = await session.get(Task, path.task_id)
        if task is None:
            raise NotFound(f"no task {path.task_id}")
        return await task_detail(session, task)


@routes.post(
    "/tasks/{task_id}/assign/{username}",
    access=Access.ADMIN,
    errors=(404, 409),
)
async def assign_task(call: Call, path: AssignPath) -> TaskDetail:
    """Assign (or reassign) one task to an active annotator; answers the task.

    404 for an unknown task, or a user who is not an active annotator (the
    message says which); 409 for a task not in Label Studio (new or
    deleted). Idempotent.
    """
    async with call.app[keys.SESSIONS].begin() as session:
        user = await assignments.annotator(session, path.username)
        task = await assignments.assign(session, path.task_id, user)
        return await task_detail(session, task)


@routes.delete("/tasks/{task_id}/assign", access=Access.ADMIN, errors=(404,))
async def unassign_task(call: Call, path: TaskPath) -> TaskDetail:
    """Take a task back from its assignee; idempotent; 404 for an unknown task."""
    async with call.app[keys.SESSIONS].begin() as session:
        task = await assignments.assign(session, path.task_id, None)
        return await task_detail(session, task)


@routes.post(
    "/datasets/{dataset_id}/auto_assign",
    access=Access.ADMIN,
    errors=(404,),
)
async def auto_assign(
    call: Call, path: DatasetPath, query: AutoAssignQuery
) -> AutoAssigned:
    """Assign up to `count` free tasks (imported, unlabeled, unassigned), oldest first.

    `username=ann` gives them all to one annotator; `usernames=ann,bob` spreads
    them so the annotators' open workloads end as even as possible; naming
    nobody spreads them over every active annotator. Two calls at once never
    assign the same task twice. Fewer tasks are assigned when fewer are free.
    404 for an unknown dataset, or a name that is not an active annotator.
    """
    async with call.app[keys.SESSIONS].begin() as session:
        await datasets.get(session, path.dataset_id)
        people = [await assignments.annotator(session, name) for name in query.names()]
        people = people or await assignments.active_annotators(session)
        if not people:
            raise NotFound("there is no active annotator to assign tasks to")
        if len(people) == 1:
            given = {
                people[0].id: await assignments.assign_free(
                    session, path.dataset_id, people[0].id, query.count
                )
            }
        else:
            given = await assignments.assign_balanced(
                session, path.dataset_id, [person.id for person in people], query.count
            )
    names = {person.id: person.username for person in people}
    task_ids = sorted(task_id for chunk in given.values() for task_id in chunk)
    return AutoAssigned(
        assigned=len(task_ids),
        task_ids=task_ids,
        by_user={names[user_id]: len(chunk) for user_id, chunk in given.items()},
    )
