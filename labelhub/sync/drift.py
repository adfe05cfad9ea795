"""One page of Label Studio tasks compared with the shadow index, and repaired.

Label Studio is the truth: a page of its tasks (with their annotations) is
matched to the index's tasks, and every difference is repaired and counted
in the run's `Drift`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from labelhub.store import annotations as annotation_store
from labelhub.store import tasks as task_store
from labelhub.store.models import Task, utcnow
from labelhub.store.sql import among
from labelhub.studio.payloads import ListedTask, StudioAnnotation

BEYOND_LAST_ID = 2**62
DRIFT_KINDS = (
    "annotations_created",
    "annotations_changed",
    "annotations_deleted",
    "labels_changed",
    "tasks_deleted",
    "tasks_linked",
    "tasks_restored",
    "tasks_adopted",
)


@dataclass
class Drift:
    """What a reconciliation found different from Label Studio, and repaired."""

    project_id: int
    mode: str
    tasks_seen: int = 0
    pages: int = 0
    duration_ms: float = 0.0
    repaired: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(DRIFT_KINDS, 0)
    )
    unclaimed: int = 0
    duplicates: int = 0
    watermark_at: datetime | None = None
    webhook: str = "not checked"

    def count(self, kind: str, n: int = 1) -> None:
        self.repaired[kind] += n

    @property
    def total_repaired(self) -> int:
        return sum(self.repaired.values())

    def report(self) -> dict[str, Any]:
        return {
            "project_id": self.project_id,
            "mode": self.mode,
            "tasks_seen": self.tasks_seen,
            "pages": self.pages,
            "duration_ms": round(self.duration_ms, 1),
            "repaired": dict(self.repaired),
            "total_repaired": self.total_repaired,
            "unclaimed": self.unclaimed,
            "duplicates": self.duplicates,
            "webhook": self.webhook,
        }


@dataclass(frozen=True)
class PageScope:
    """What every page of one run shares."""

    project_id: int
    home_dataset: int | None
    label_from: str | None
    full: bool
    started_at: datetime


def expected_state(notes: Sequence[StudioAnnotation]) -> tuple[str, str | None]:
    """A task's status and label from its annotations (as `derive_labels`)."""
    counted = [note for note in notes if not note.was_cancelled]
    if not counted:
        return "imported", None
    latest = max(
        counted,
        key=lambda note: (
            note.updated_at is not None,
            note.updated_at or datetime.min,
            note.ls_annotation_id,
        ),
    )
    return "labeled", latest.label


async def reconcile_page(
    session: AsyncSession,
    scope: PageScope,
    seen: list[ListedTask],
    lower_id: int,
    drift: Drift,
) -> None:
    """Make the index agree with one page of Label Studio's tasks."""
    # An empty page is the end of the project: everything above is gone.
    upper_id = seen[-1].ls_task_id if seen else BEYOND_LAST_ID
    indexed = await _indexed(session, scope, seen, lower_id, upper_id)
    owners, states = await _match(session, scope, seen, indexed, drift)
    touched = await _sync_annotations(session, scope, seen, owners, drift)
    for entry in seen:
        owner = owners.get(entry.ls_task_id)
        if owner is not None and states.get(owner) != expected_state(entry.annotations):
            touched.add(owner)
    await _record_reads(session, seen, owners, indexed)
    if scope.full:
        await _retire_missing(session, scope, seen, indexed, drift)
    await _derive(session, sorted(touched), states, drift)


# An index task as `_indexed` reads it: id, ls_task_id, status, label,
# whether it was last changed before the run began, and Label Studio's
# `updated_at` when reconciliation last read it.
Indexed = tuple[int, int, str, str | None, bool, datetime | None]


async def _indexed(
    session: AsyncSession,
    scope: PageScope,
    seen: list[ListedTask],
    lower_id: int,
    upper_id: int,
) -> list[Indexed]:
    """The index's live tasks for the page.

    A full pass reads the page's whole id range, which holds the tasks that
    Label Studio no longer has as well; an incremental run's pages are
    sparse, so it reads the page's ids only.
    """
    tasks = Task.__table__.c  # Core columns: rows without the ORM's loading work
    # A flag rather than the timestamp: converting a thousand timestamps
    # per page costs more than the query itself.
    older = (tasks.updated_at < scope.started_at).label("older")
    query = select(
        tasks.id,
        tasks.ls_task_id,
        tasks.status,
        tasks.label,
        older,
        tasks.ls_updated_at,
    ).where(tasks.ls_project_id == scope.project_id, tasks.status != "deleted")
    if scope.full:
        query = query.where(tasks.ls_task_id > lower_id, tasks.ls_task_id <= upper_id)
    else:
        ls_ids = [entry.ls_task_id for entry in seen]
        query = query.where(among(session, tasks.ls_task_id, ls_ids))
    connection = await session.connection()
    return [tuple(row) for row in await connection.execute(query)]


async def _match(
    session: AsyncSession,
    scope: PageScope,
    seen: list[ListedTask],
    indexed: list[Indexed],
    drift: Drift,
) -> tuple[dict[int, int], dict[int, tuple[str, str | None]]]:
    """Each Label Studio task's index task; unknown ones linked or adopted."""
    live: dict[int, int] = {}
    states: dict[int, tuple[str, str | None]] = {}
    for task_id, ls_id, status, label, _, _ in indexed:
        if ls_id is not None:
            live[ls_id] = task_id
        states[task_id] = (status, label)

    owners: dict[int, int] = {}
    strangers: list[ListedTask] = []
    for entry in seen:
        owner = live.get(entry.ls_task_id)
        if owner is not None and entry.labelhub_id in (None, owner):
            owners[entry.ls_task_id] = owner
        else:
            strangers.append(entry)
    if strangers:
        claimed = await _claim(session, scope, strangers, drift)
        owners.update(claimed)
        states.update(await _states(session, list(claimed.values())))
    return owners, states


async def _states(
    session: AsyncSession, task_ids: list[int]
) -> dict[int, tuple[str, str | None]]:
    if not task_ids:
        return {}
    rows = await session.execute(
        select(Task.id, Task.status, Task.label).where(
            among(session, Task.id, task_ids)
        )
    )
    return {task_id: (status, label) for task_id, status, label in rows}


async def _claim(
    session: AsyncSession, scope: PageScope, strangers: list[ListedTask], drift: Drift
) -> dict[int, int]:
    """Link tasks carrying labelhub's id; restore wrongly deleted; adopt the rest."""
    ours = {task.labelhub_id: task for task in strangers if task.labelhub_id}
    rows = await session.execute(
        select(Task.id, Task.status, Task.ls_project_id, Task.ls_task_id).where(
            among(session, Task.id, list(ours))
        )
    )
    owners: dict[int, int] = {}
    links: list[tuple[int, int]] = []
    for task_id, status, project_id, ls_task_id in rows:
        task = ours.pop(task_id)
        if status == "new":
            links.append((task_id, task.ls_task_id))
        elif (project_id, ls_task_id) == (scope.project_id, task.ls_task_id):
            await session.execute(
                update(Task)
                .where(Task.id == task_id)
                .values(status="imported", updated_at=utcnow())
            )
            drift.count("tasks_restored")
        else:
            drift.duplicates += 1  # a second Label Studio task with one item's id
            continue
        owners[task.ls_task_id] = task_id
    if links:
        drift.count(
            "tasks_linked", await task_store.link(session, scope.project_id, links)
        )
    foreign = [task for task in strangers if task.labelhub_id in (None, *ours)]
    owners.update(await _adopt(session, scope, foreign, drift))
    return owners


async def _adopt(
    session: AsyncSession, scope: PageScope, foreign: list[ListedTask], drift: Drift
) -> dict[int, int]:
    """Record tasks made in Label Studio itself in the project's first dataset."""
    if not foreign:
        return {}
    if scope.home_dataset is None:
        drift.unclaimed += len(foreign)
        return {}
    now = utcnow()
    stale = [task.ls_task_id for task in foreign]
    await session.execute(  # Label Studio reused these ids: the old tasks are gone
        update(Task)
        .where(
            Task.ls_project_id == scope.project_id,
            Task.ls_task_id.in_(stale),
            Task.status != "deleted",
        )
        .values(status="deleted", updated_at=now)
    )
    rows = await session.execute(
        insert(Task).returning(Task.id, Task.ls_task_id),
        [
            {
                "dataset_id": scope.home_dataset,
                "data": task.data,
                "origin": "studio",
                "status": "imported",
                "ls_project_id": scope.project_id,
                "ls_task_id": task.ls_task_id,
                "created_at": now,
                "updated_at": now,
            }
            for task in foreign
        ],
    )
    adopted: dict[int, int] = {
        ls_task_id: task_id for task_id, ls_task_id in rows if ls_task_id is not None
    }
    drift.count("tasks_adopted", len(adopted))
    return adopted


async def _sync_annotations(
    session: AsyncSession,
    scope: PageScope,
    seen: list[ListedTask],
    owners: dict[int, int],
    drift: Drift,
) -> set[int]:
    """Annotations created, changed or deleted in Label Studio; touched tasks."""
    truth = {
        note.ls_annotation_id: (note, owners[entry.ls_task_id])
        for entry in seen
        if entry.ls_task_id in owners
        for note in entry.annotations
    }
    owned = sorted(set(owners.values()))
    stored = await annotation_store.stored_for(session, owned, list(truth))
    rows: list[tuple[StudioAnnotation, int, int]] = []
    touched: set[int] = set()
    for ls_id, (note, task_id) in truth.items():
        known = stored.get(ls_id)
        if known is None or known.deleted:
            drift.count("annotations_created")
        elif (known.task_id, known.ls_updated_at, known.label, known.was_cancelled) != (
            task_id,
            note.updated_at,
            note.label,
            note.was_cancelled,
        ):
            drift.count("annotations_changed")
        else:
            continue
        rows.append((note, scope.project_id, task_id))
        touched.add(task_id)
        if known is not None and known.task_id is not None:
            touched.add(known.task_id)
    await annotation_store.write_truth(session, rows, scope.started_at)

    owned_set = set(owned)
    gone = [
        known
        for ls_id, known in stored.items()
        if ls_id not in truth and not known.deleted and known.task_id in owned_set
    ]
    if gone:
        await annotation_store.tombstone(
            session, [known.ls_annotation_id for known in gone], scope.started_at
        )
        drift.count("annotations_deleted", len(gone))
        touched.update(known.task_id for known in gone if known.task_id is not None)
    return touched


async def _record_reads(
    session: AsyncSession,
    seen: list[ListedTask],
    owners: dict[int, int],
    indexed: list[Indexed],
) -> None:
    """Remember when each task was read with all its annotations.

    A webhook for an annotation the index never held, no newer than that
    read, names one deleted before labelhub saw it: it changes nothing.
    Only changed times are written, so a quiet project costs no writes.
    """
    last_read = {row[0]: row[5] for row in indexed}
    reads = []
    for entry in seen:
        owner = owners.get(entry.ls_task_id)
        if owner is None or entry.updated_at is None:
            continue
        if last_read.get(owner) != entry.updated_at:
            reads.append((owner, entry.updated_at))
    await task_store.record_reads(session, reads)


async def _retire_missing(
    session: AsyncSession,
    scope: PageScope,
    seen: list[ListedTask],
    indexed: list[Indexed],
    drift: Drift,
) -> None:
    """Tasks the index holds in this page's id range that Label Studio has not.

    Tasks linked since the run began are left alone: they may be newer than
    the page Label Studio answered with.
    """
    present = {entry.ls_task_id for entry in seen}
    missing = [
        task_id
        for task_id, ls_id, _, _, older, _ in indexed
        if ls_id not in present and older
    ]
    if not missing:
        return
    rows = await session.scalars(
        update(Task)
        .where(
            among(session, Task.id, missing),
            Task.status != "deleted",
            Task.updated_at < scope.started_at,
        )
        .values(status="deleted", updated_at=utcnow())
        .returning(Task.id)
    )
    gone = list(rows)
    if gone:
        await annotation_store.tombstone_for_tasks(session, gone)
        drift.count("tasks_deleted", len(gone))


async def _derive(
    session: AsyncSession,
    task_ids: list[int],
    before: dict[int, tuple[str, str | None]],
    drift: Drift,
) -> None:
    if not task_ids:
        return
    await annotation_store.derive_labels(session, task_ids)
    after = await _states(session, task_ids)
    drift.count(
        "labels_changed",
        sum(1 for task_id in task_ids if after.get(task_id) != before.get(task_id)),
    )
