"""Assigning tasks to annotators.

Claiming tasks for an assignment is one statement: on PostgreSQL it skips
rows another transaction holds (`FOR UPDATE SKIP LOCKED`), so concurrent
assignments never hand out a task twice; SQLite has one writer at a time.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

from sqlalchemy import Select, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from labelhub.errors import Conflict, NotFound
from labelhub.store import users
from labelhub.store.models import Task, TaskCount, User, utcnow
from labelhub.store.sql import among

ASSIGNABLE = ("imported", "labeled")


async def annotator(session: AsyncSession, username: str) -> User:
    """The active annotator `username`; 404 saying why there is none."""
    user = await users.find(session, username)
    if user is None:
        raise NotFound(f"no user {users.normalize(username)!r}")
    if not user.active:
        raise NotFound(
            f"user {user.username!r} is deactivated; tasks go to active annotators"
        )
    if user.role != "annotator":
        raise NotFound(f"user {user.username!r} is an admin; tasks go to annotators")
    return user


async def active_annotators(session: AsyncSession) -> list[User]:
    found = await session.scalars(
        select(User)
        .where(User.role == "annotator", User.active.is_(True))
        .order_by(User.username)
    )
    return list(found)


async def assign(session: AsyncSession, task_id: int, user: User | None) -> Task:
    """Give one task to `user` (None: take it back); 404 or 409 when impossible."""
    task = await session.get(Task, task_id)
    if task is None:
        raise NotFound(f"no task {task_id}")
    if user is not None and task.status not in ASSIGNABLE:
        raise Conflict(
            f"task {task_id} is {task.status}; only tasks in Label Studio "
            "(imported or labeled) can be assigned"
        )
    task.assigned_to = user.id if user else None
    task.assigned_at = utcnow() if user else None
    await session.flush()
    return task


def _free_tasks(dataset_id: int, limit: int) -> Select[int]:
    return (
        select(Task.id)
        .where(
            Task.dataset_id == dataset_id,
            Task.status == "imported",
            Task.assigned_to.is_(None),
        )
        .order_by(Task.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )


async def assign_free(
    session: AsyncSession, dataset_id: int, user_id: int, count: int
) -> list[int]:
    """Assign up to `count` of the oldest free tasks to one user, atomically."""
    now = utcnow()
    # Materialized, so PostgreSQL locks the chosen rows once instead of
    # rescanning the LIMIT subquery per row (which would take every free task).
    free = _free_tasks(dataset_id, count).cte("free").prefix_with("MATERIALIZED")
    statement = (
        update(Task)
        .where(Task.id.in_(select(free.c.id)), Task.assigned_to.is_(None))
        .values(assigned_to=user_id, assigned_at=now, updated_at=now)
        .returning(Task.id)
        .execution_options(synchronize_session=False)
    )
    return sorted(await session.scalars(statement))


async def open_workloads(
    session: AsyncSession, dataset_id: int, user_ids: Sequence[int]
) -> dict[int, int]:
    """Tasks each user holds in the dataset and has not labeled yet."""
    rows = await session.execute(
        select(TaskCount.assignee_id, TaskCount.n).where(
            TaskCount.dataset_id == dataset_id,
            TaskCount.status == "imported",
            TaskCount.assignee_id.in_(user_ids),
        )
    )
    loads = dict.fromkeys(user_ids, 0)
    for assignee_id, n in rows:
        loads[assignee_id] += n
    return loads


def share(count: int, loads: dict[int, int]) -> dict[int, int]:
    """Split `count` new tasks so the largest resulting load is as small as can be."""
    heap = [
        (load, order, user_id) for order, (user_id, load) in enumerate(loads.items())
    ]
    heapq.heapify(heap)
    shares = dict.fromkeys(loads, 0)
    for _ in range(count):
        load, order, user_id = heapq.heappop(heap)
        shares[user_id] += 1
        heapq.heappush(heap, (load + 1, order, user_id))
    return shares


async def assign_balanced(
    session: AsyncSession, dataset_id: int, user_ids: Sequence[int], count: int
) -> dict[int, list[int]]:
    """Spread up to `count` free tasks over users, evening out open workloads."""
    free = list(await session.scalars(_free_tasks(dataset_id, count)))
    shares = share(len(free), await open_workloads(session, dataset_id, user_ids))
    now = utcnow()
    given: dict[int, list[int]] = {}
    start = 0
    for user_id, size in shares.items():
        chunk = free[start : start + size]
        start += size
        given[user_id] = chunk
        if chunk:
            await session.execute(
                update(Task)
                .where(among(session, Task.id, chunk))
                .values(assigned_to=user_id, assigned_at=now, updated_at=now)
                .execution_options(synchronize_session=False)
            )
    return given
