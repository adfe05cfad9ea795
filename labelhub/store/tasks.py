"""Queries over tasks: adding items, listing, and the import's bookkeeping."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from operator import itemgetter
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import Table, bindparam, func, insert, null, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from labelhub.store import annotations as annotation_store
from labelhub.store import sync_state
from labelhub.store.models import Dataset, Task, User, UTCDateTime, utcnow
from labelhub.store.outcome import Outcome
from labelhub.store.sql import dialect

if TYPE_CHECKING:
    from labelhub.studio.payloads import StudioTask

SQLITE_INSERT_CHUNK = 5000


async def add_items(
    session: AsyncSession, dataset_id: int, items: Sequence[dict[str, Any]]
) -> int:
    """Store each item as a new task of the dataset, in one transaction."""
    if dialect(session) == "postgresql":
        await _copy_items(session, dataset_id, items)
    else:
        now = utcnow()
        for start in range(0, len(items), SQLITE_INSERT_CHUNK):
            rows = [
                {
                    "dataset_id": dataset_id,
                    "data": item,
                    "origin": "labelhub",
                    "status": "new",
                    "created_at": now,
                    "updated_at": now,
                }
                for item in items[start : start + SQLITE_INSERT_CHUNK]
            ]
            await session.execute(insert(Task), rows)
    return len(items)


async def _copy_items(
    session: AsyncSession, dataset_id: int, items: Sequence[dict[str, Any]]
) -> None:
    # COPY is an order of magnitude faster than INSERTs for 100,000 rows, and
    # the count triggers fire for it once, like for one INSERT.
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    if driver is None:
        raise RuntimeError("no PostgreSQL connection to COPY through")
    now = utcnow()
    dumps = json.dumps
    async with (
        driver.cursor() as cursor,
        cursor.copy(
            "COPY tasks (dataset_id, data, origin, status, created_at, updated_at) "
            "FROM STDIN"
        ) as copy,
    ):
        for item in items:
            await copy.write_row((dataset_id, dumps(item), "labelhub", "new", now, now))


@dataclass(frozen=True)
class TaskRow:
    id: int
    dataset_id: int
    ls_project_id: int | None
    ls_task_id: int | None
    status: str
    assigned_to: str | None
    label: str | None
    data: dict[str, Any] | None


@dataclass(frozen=True)
class TaskFilter:
    dataset_id: int | None = None
    status: str | None = None
    assignee_id: int | None = None
    unassigned: bool = False
    label: str | None = None
    unlabeled: bool = False
    live: bool = False  # leave out tasks deleted in Label Studio


async def page(
    session: AsyncSession,
    wanted: TaskFilter,
    *,
    after: int | None,
    limit: int,
    with_data: bool = False,
) -> list[TaskRow]:
    """Up to `limit` tasks with ids above `after`, in id order (keyset paging)."""
    columns = [
        Task.id,
        Task.dataset_id,
        Task.ls_project_id,
        Task.ls_task_id,
        Task.status,
        User.username,
        Task.label,
    ]
    query = select(*columns, Task.data if with_data else null()).outerjoin(
        User, User.id == Task.assigned_to
    )
    query = _where(query, wanted)
    if after is not None:
        query = query.where(Task.id > after)
    rows = await session.execute(query.order_by(Task.id).limit(limit))
    return [TaskRow(*row) for row in rows]


def _where(query: Any, wanted: TaskFilter) -> Any:
    if wanted.dataset_id is not None:
        query = query.where(Task.dataset_id == wanted.dataset_id)
    if wanted.status is not None:
        query = query.where(Task.status == wanted.status)
    if wanted.assignee_id is not None:
        query = query.where(Task.assigned_to == wanted.assignee_id)
    if wanted.unassigned:
        query = query.where(Task.assigned_to.is_(None))
    if wanted.label is not None:
        query = query.where(Task.label == wanted.label)
    if wanted.unlabeled:
        query = query.where(Task.label.is_(None))
    if wanted.live:
        query = query.where(Task.status != "deleted")
    return query


async def claim_new_batch(
    session: AsyncSession, dataset_id: int, limit: int, at: datetime
) -> list[tuple[int, dict[str, Any]]]:
    """Mark the oldest `limit` unsent items as in flight since `at`; answers them.

    One statement, in id order: choosing and marking separately would add a
    round trip per batch. On PostgreSQL the marked items come back as one
    JSON value, decoded in one call: a thousand jsonb values decoded one by
    one cost the daemon more CPU than PostgreSQL spends marking them, and
    that CPU is taken from Label Studio, busy on the batch before.
    """
    if dialect(session) == "postgresql":
        marked = await session.scalar(
            _CLAIM_POSTGRES, {"dataset": dataset_id, "limit": limit, "at": at}
        )
        return [(task_id, data) for task_id, data in json.loads(marked)]
    oldest = (
        select(Task.id)
        .where(
            Task.dataset_id == dataset_id,
            Task.status == "new",
            Task.import_sent_at.is_(None),
        )
        .order_by(Task.id)
        .limit(limit)
    )
    rows = await session.execute(
        update(Task)
        .where(Task.id.in_(oldest))
        .values(import_sent_at=at)
        .returning(Task.id, Task.data)
        .execution_options(synchronize_session=False)
    )
    return sorted(((task_id, data) for task_id, data in rows), key=itemgetter(0))


@dataclass(frozen=True)
class NewItems:
    """A dataset's items not imported yet; `in_flight` of them were sent."""

    count: int
    in_flight: int


async def count_new(session: AsyncSession, dataset_id: int) -> NewItems:
    count, in_flight = (
        await session.execute(
            select(func.count(), func.count(Task.import_sent_at)).where(
                Task.dataset_id == dataset_id, Task.status == "new"
            )
        )
    ).one()
    return NewItems(count, in_flight)


async def in_flight(
    session: AsyncSession, dataset_id: int
) -> list[tuple[int, datetime]]:
    """Items sent in a batch whose answer never arrived, and when they were sent."""
    rows = await session.execute(
        select(Task.id, Task.import_sent_at).where(
            Task.dataset_id == dataset_id,
            Task.status == "new",
            Task.import_sent_at.is_not(None),
        )
    )
    return [(task_id, sent_at) for task_id, sent_at in rows if sent_at is not None]


async def clear_sent(session: AsyncSession, task_ids: Sequence[int]) -> None:
    await session.execute(
        update(Task)
        .where(Task.id.in_(task_ids), Task.status == "new")
        .values(import_sent_at=None)
    )


async def link(
    session: AsyncSession, project_id: int, pairs: Sequence[tuple[int, int]]
) -> int:
    """Record which Label Studio task each new item became; moves them to imported.

    Label Studio on SQLite hands out the ids of deleted tasks again, so a task
    the index still holds under an id now given to a new item is gone from
    Label Studio: it is marked deleted first. Answers how many of the items
    are linked to their task now, those linked already included.
    """
    if not pairs:
        return 0
    postgresql = dialect(session) == "postgresql"
    # Both statements read the pairs from one JSON parameter: as a list, a
    # thousand ids cost the driver more CPU to send than the database to read.
    mapping = json.dumps([[task_id, ls_task_id] for task_id, ls_task_id in pairs])
    values = {"pairs": mapping, "project": project_id, "now": utcnow()}
    await session.execute(_RETIRE_POSTGRES if postgresql else _RETIRE_SQLITE, values)
    result = await session.execute(
        _LINK_POSTGRES if postgresql else _LINK_SQLITE, values
    )
    waiting = await annotation_store.attach_pending(
        session, project_id, [ls_task_id for _, ls_task_id in pairs]
    )
    await annotation_store.derive_labels(session, waiting)
    return int(result.rowcount)  # type: ignore[attr-defined]


async def record_reads(
    session: AsyncSession, reads: Sequence[tuple[int, datetime]]
) -> None:
    """Remember Label Studio's `updated_at` of tasks read with all their
    annotations: (task id, updated_at). labelhub's own `updated_at` stays."""
    if not reads:
        return
    if dialect(session) == "postgresql":
        # One statement (the count trigger runs once) for the whole page.
        await session.execute(
            _RECORD_READS_POSTGRES,
            {
                "ids": [task_id for task_id, _ in reads],
                "times": [read_at for _, read_at in reads],
            },
        )
        return
    # The Core table: an executemany, not the ORM's bulk update by key.
    table = cast(Table, Task.__table__)
    await session.execute(
        update(table)
        .where(table.c.id == bindparam("task_id"))
        .values(ls_updated_at=bindparam("read_at"), updated_at=table.c.updated_at),
        [{"task_id": task_id, "read_at": read_at} for task_id, read_at in reads],
    )


_RECORD_READS_POSTGRES = text(
    "UPDATE tasks SET ls_updated_at = reads.read_at "
    "FROM unnest(CAST(:ids AS bigint[]), CAST(:times AS timestamptz[])) "
    "AS reads (task_id, read_at) WHERE tasks.id = reads.task_id"
)


async def mark_deleted(
    session: AsyncSession, project_id: int | None, ls_task_ids: Sequence[int]
) -> Outcome:
    """Tasks deleted in Label Studio, with the annotations it deleted with them."""
    rows = await session.scalars(
        update(Task)
        .where(
            Task.ls_project_id == project_id,
            Task.ls_task_id.in_(set(ls_task_ids)),
            Task.status != "deleted",
        )
        .values(status="deleted", updated_at=utcnow())
        .returning(Task.id)
    )
    gone = list(rows)
    if not gone:
        return Outcome("duplicate", "no such live task")
    await annotation_store.tombstone_for_tasks(session, gone)
    return Outcome("applied", f"{len(gone)} deleted")


async def link_created(
    session: AsyncSession, project_id: int | None, created: Sequence[StudioTask]
) -> Outcome:
    """Link Label Studio tasks that carry labelhub's id to their items.

    Tasks without one (made in Label Studio itself) are left for the next
    reconciliation, which is asked to come early.
    """
    if project_id is None:
        return Outcome("ignored", "no project named")
    wanted = {task.labelhub_id: task.ls_task_id for task in created if task.labelhub_id}
    waiting = await session.execute(
        select(Task.id)
        .join(Dataset, Dataset.id == Task.dataset_id)
        .where(
            Task.id.in_(wanted),
            Task.status == "new",
            Dataset.ls_project_id == project_id,
        )
    )
    pairs = [(task_id, wanted[task_id]) for (task_id,) in waiting]
    linked = await link(session, project_id, pairs)
    unknown = len(created) - len(wanted)
    if unknown:
        await sync_state.request_early(session, project_id, [])
    detail = (
        f"{linked} linked, {len(wanted) - linked} known, "
        f"{unknown} left for reconciliation"
    )
    return Outcome("applied" if linked else "duplicate", detail)


# The id array is chosen before any row is locked; the repeated conditions
# leave out an item that another transaction imported meanwhile.
_CLAIM_POSTGRES = text(
    "WITH marked AS ("
    "UPDATE tasks SET import_sent_at = :at "
    "WHERE id = ANY(ARRAY("
    "SELECT id FROM tasks "
    "WHERE dataset_id = :dataset AND status = 'new' AND import_sent_at IS NULL "
    "ORDER BY id LIMIT :limit)) "
    "AND status = 'new' AND import_sent_at IS NULL "
    "RETURNING id, data) "
    "SELECT coalesce(json_agg(json_build_array(id, data) ORDER BY id), '[]')::text "
    "FROM marked"
).bindparams(bindparam("at", type_=UTCDateTime()))

# IN a subquery, not = ANY(ARRAY(subquery)): statistics older than the links
# (a fresh import) make PostgreSQL read all the project's live tasks, and it
# then hashes a subquery's rows but walks such an array for every task read.
_RETIRE_POSTGRES = text(
    "UPDATE tasks SET status = 'deleted', updated_at = :now "
    "WHERE ls_project_id = :project AND status <> 'deleted' "
    "AND (id, ls_task_id) NOT IN (SELECT (p.value->>0)::bigint, "
    "(p.value->>1)::bigint FROM jsonb_array_elements(CAST(:pairs AS jsonb)) "
    "AS p(value)) "
    "AND ls_task_id IN (SELECT (p.value->>1)::bigint "
    "FROM jsonb_array_elements(CAST(:pairs AS jsonb)) AS p(value))"
).bindparams(bindparam("now", type_=UTCDateTime()))
_RETIRE_SQLITE = text(
    "UPDATE tasks SET status = 'deleted', updated_at = :now "
    "WHERE ls_project_id = :project AND status <> 'deleted' "
    "AND ls_task_id IN "
    "(SELECT json_extract(p.value, '$[1]') FROM json_each(:pairs) AS p) "
    "AND NOT EXISTS (SELECT 1 FROM json_each(:pairs) AS p "
    "WHERE json_extract(p.value, '$[0]') = tasks.id "
    "AND json_extract(p.value, '$[1]') = tasks.ls_task_id)"
).bindparams(bindparam("now", type_=UTCDateTime()))

# One statement per batch: the count triggers then run once, not per task.
# An item already linked to the same task (by a reconciliation or a webhook
# that came first) is counted too, and keeps its status.
_LINK_POSTGRES = text(
    "UPDATE tasks AS t SET ls_task_id = (p.value->>1)::bigint, "
    "ls_project_id = :project, import_sent_at = NULL, updated_at = :now, "
    "status = CASE WHEN t.status = 'new' THEN 'imported' ELSE t.status END "
    "FROM jsonb_array_elements(CAST(:pairs AS jsonb)) AS p(value) "
    "WHERE t.id = (p.value->>0)::bigint AND (t.status = 'new' OR "
    "(t.status <> 'deleted' AND t.ls_project_id = :project "
    "AND t.ls_task_id = (p.value->>1)::bigint))"
).bindparams(bindparam("now", type_=UTCDateTime()))
_LINK_SQLITE = text(
    "UPDATE tasks SET ls_task_id = json_extract(p.value, '$[1]'), "
    "ls_project_id = :project, import_sent_at = NULL, updated_at = :now, "
    "status = CASE WHEN tasks.status = 'new' THEN 'imported' ELSE tasks.status END "
    "FROM json_each(:pairs) AS p "
    "WHERE tasks.id = json_extract(p.value, '$[0]') AND (tasks.status = 'new' OR "
    "(tasks.status <> 'deleted' AND tasks.ls_project_id = :project "
    "AND tasks.ls_task_id = json_extract(p.value, '$[1]')))"
).bindparams(bindparam("now", type_=UTCDateTime()))
