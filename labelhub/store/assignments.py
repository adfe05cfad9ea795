"""Assigning tasks to annotators.

A bulk assignment claims the oldest free tasks. On PostgreSQL the claim locks
them and skips rows another transaction holds (`FOR NO KEY UPDATE SKIP
LOCKED`, the lock an update of non-key columns takes anyway), so concurrent
assignments never hand out a task twice; SQLite has one writer at a time.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    SQLColumnExpression,
    Text,
    any_,
    bindparam,
    case,
    cast,
    func,
    literal_column,
    select,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from labelhub.errors import Conflict, NotFound
from labelhub.store import users
from labelhub.store.models import Task, TaskCount, User, utcnow
from labelhub.store.sql import dialect

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


_FREE = aliased(Task, name="free")


def _free_tasks(
    dataset_id: int, limit: int, *columns: SQLColumnExpression[Any]
) -> Select[Any]:
    return (
        select(*columns)
        .where(
            _FREE.dataset_id == dataset_id,
            _FREE.status == "imported",
            _FREE.assigned_to.is_(None),
        )
        .order_by(_FREE.id)
        .limit(limit)
        .with_for_update(skip_locked=True, key_share=True)
    )


def _address(session: AsyncSession) -> SQLColumnExpression[Any]:
    """A free task's row address: its ctid on PostgreSQL, its id on SQLite."""
    # Rows fetched by ctid need no primary key lookup each, and PostgreSQL
    # reads them in page order. On SQLite the id is the rowid already.
    if dialect(session) == "postgresql":
        return literal_column("free.ctid")
    return _FREE.id


Addresses = str | list[int]  # ctids as a PostgreSQL array's text; SQLite ids


def _at(
    session: AsyncSession, addresses: Select[Any] | Addresses
) -> ColumnElement[bool]:
    """The rows at `addresses`: a claim, or the addresses it answered."""
    if dialect(session) != "postgresql":
        return Task.id.in_(addresses)
    if not isinstance(addresses, Select):
        # Claimed ctids go in as a sub-select too: given as a constant, the
        # planner costs each of 10,000 as a random read and may rather read
        # the whole table.
        listed = text("CAST(:addresses AS tid[])").bindparams(
            bindparam("addresses", addresses, type_=Text)
        )
        addresses = select(func.unnest(listed))
    return literal_column("tasks.ctid") == any_(func.array(addresses.scalar_subquery()))


async def _claim(
    session: AsyncSession, dataset_id: int, count: int
) -> tuple[list[int], Addresses]:
    """Lock up to `count` of the oldest free tasks; their ids and addresses.

    The ids come oldest first; the addresses are for `_at`.
    """
    if dialect(session) != "postgresql":
        ids = list(await session.scalars(_free_tasks(dataset_id, count, _FREE.id)))
        return ids, ids
    # Two arrays in one row, the ctids as their text: no Python object per
    # claimed row for what only goes back to PostgreSQL.
    claimed = _free_tasks(
        dataset_id, count, _FREE.id, _address(session).label("address")
    ).subquery()
    by_id = claimed.c.id
    arrays = select(
        func.array_agg(aggregate_order_by(claimed.c.id, by_id)),
        cast(func.array_agg(aggregate_order_by(claimed.c.address, by_id)), Text),
    )
    found, addresses = (await session.execute(arrays)).one()
    return list(found or []), addresses or "{}"


async def _claim_and_give(
    session: AsyncSession, dataset_id: int, user_id: int, count: int, now: datetime
) -> list[int]:
    """One statement: claim up to `count` free tasks and assign them."""
    claimed = _free_tasks(dataset_id, count, _address(session))
    given = await session.scalars(
        update(Task)
        .where(_at(session, claimed), Task.assigned_to.is_(None))
        .values(assigned_to=user_id, assigned_at=now, updated_at=now)
        .returning(Task.id)
        .execution_options(synchronize_session=False)
    )
    return list(given)


async def assign_free(
    session: AsyncSession, dataset_id: int, user_id: int, count: int
) -> list[int]:
    """Assign up to `count` of the oldest free tasks to one user, atomically.

    Fewer than `count` only when fewer are free. A claimed task that another
    transaction changed while the claim ran is locked in its newest version,
    which the statement's own snapshot cannot see, so the update passes it
    by; the next statement sees it, so the claim repeats for what is missing.
    """
    now = utcnow()
    given: list[int] = []
    while len(given) < count:
        more = await _claim_and_give(
            session, dataset_id, user_id, count - len(given), now
        )
        if not more:
            break
        given += more
    return sorted(given)


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
    free, addresses = await _claim(session, dataset_id, count)
    shares = share(len(free), await open_workloads(session, dataset_id, user_ids))

    given: dict[int, list[int]] = {}
    start = 0
    for user_id, size in shares.items():
        given[user_id] = free[start : start + size]
        start += size
    if not free:
        return given
    # One statement for every user: each one's tasks follow one another in id
    # order, so the last id of each share tells whose a task is.
    assignee = case(
        *((Task.id <= chunk[-1], user_id) for user_id, chunk in given.items() if chunk)
    )
    now = utcnow()
    await session.execute(
        update(Task)
        .where(_at(session, addresses))
        .values(assigned_to=assignee, assigned_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return given
