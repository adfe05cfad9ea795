"""Annotations in the shadow index, and the labels derived from them.

An annotation is keyed by its Label Studio id. A deleted one is kept as a
tombstone so that a late or replayed webhook cannot bring it back; only
reconciliation (which reads Label Studio itself) overrides a tombstone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, case, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from labelhub.store.models import Annotation, Task, utcnow
from labelhub.store.outcome import Outcome
from labelhub.store.sql import upsert

if TYPE_CHECKING:
    from labelhub.studio.payloads import StudioAnnotation, StudioTask


@dataclass
class Known:
    """What the index holds of an annotation."""

    updated_at: datetime | None
    deleted: bool


@dataclass(frozen=True, slots=True)
class Incoming:
    """An annotation from Label Studio, with the task payload it came with."""

    project_id: int | None
    note: StudioAnnotation
    task: StudioTask | None

    @property
    def labelhub_id(self) -> int | None:
        return self.task.labelhub_id if self.task else None


async def upsert_from_studio(
    session: AsyncSession, incoming: Sequence[Incoming]
) -> list[tuple[str, int | None]]:
    """Store annotations from Label Studio; older or repeated ones change nothing.

    Answers, for each one, its status (`applied`, `pending` when its task is
    not known yet, `duplicate` or `stale`) and the task it belongs to.
    """
    known = await _known(session, [item.note.ls_annotation_id for item in incoming])
    owners = await _owners(session, incoming)
    rows: list[dict[str, Any]] = []
    verdicts: list[tuple[str, int | None]] = []
    for item in incoming:
        note = item.note
        status = _verdict(note, known.get(note.ls_annotation_id))
        task_id = owners.get((item.project_id, note.ls_task_id, item.labelhub_id))
        if status == "applied" and task_id is None:
            status = "pending"
        if status in ("applied", "pending"):
            rows.append(_row(note, item.project_id, task_id))
            known[note.ls_annotation_id] = Known(note.updated_at, False)
        verdicts.append((status, task_id))
    if rows:
        await _write(session, rows)
    return verdicts


def _verdict(note: StudioAnnotation, before: Known | None) -> str:
    if before is None:
        return "applied"
    if before.deleted:
        return "stale"
    if note.updated_at is None or before.updated_at is None:
        return "applied"
    if note.updated_at < before.updated_at:
        return "stale"
    if note.updated_at == before.updated_at:
        return "duplicate"
    return "applied"


async def _known(session: AsyncSession, ids: list[int]) -> dict[int, Known]:
    rows = await session.execute(
        select(
            Annotation.ls_annotation_id, Annotation.ls_updated_at, Annotation.deleted
        ).where(Annotation.ls_annotation_id.in_(set(ids)))
    )
    return {ls_id: Known(updated_at, deleted) for ls_id, updated_at, deleted in rows}


async def _owners(
    session: AsyncSession, incoming: Sequence[Incoming]
) -> dict[tuple[int | None, int, int | None], int]:
    """The index's task for each (project, Label Studio task, labelhub id) named.

    labelhub's own id in the payload decides when present: Label Studio on
    SQLite reuses task ids, so the id alone may name a task that is gone.
    """
    projects = {item.project_id for item in incoming if item.project_id is not None}
    ls_ids = {item.note.ls_task_id for item in incoming}
    rows = await session.execute(
        select(Task.id, Task.ls_project_id, Task.ls_task_id).where(
            Task.ls_project_id.in_(projects),
            Task.ls_task_id.in_(ls_ids),
            Task.status != "deleted",
        )
    )
    live = {(project, ls_task_id): task_id for task_id, project, ls_task_id in rows}
    owners: dict[tuple[int | None, int, int | None], int] = {}
    for item in incoming:
        owner = live.get((item.project_id, item.note.ls_task_id))
        if owner is not None and item.labelhub_id in (None, owner):
            owners[(item.project_id, item.note.ls_task_id, item.labelhub_id)] = owner
    return owners


def _row(
    note: StudioAnnotation, project_id: int | None, task_id: int | None
) -> dict[str, Any]:
    now = utcnow()
    return {
        "ls_annotation_id": note.ls_annotation_id,
        "ls_project_id": project_id,
        "ls_task_id": note.ls_task_id,
        "task_id": task_id,
        "completed_by": note.completed_by,
        "label": note.label,
        "result": note.result,
        "was_cancelled": note.was_cancelled,
        "deleted": False,
        "ls_created_at": note.created_at,
        "ls_updated_at": note.updated_at,
        "created_at": now,
        "updated_at": now,
    }


_REPLACED = (
    "ls_project_id",
    "ls_task_id",
    "task_id",
    "completed_by",
    "label",
    "result",
    "was_cancelled",
    "deleted",
    "ls_created_at",
    "ls_updated_at",
    "updated_at",
)


async def _write(
    session: AsyncSession, rows: list[dict[str, Any]], *, truth: bool = False
) -> None:
    statement = upsert(session, Annotation)
    fresh = statement.excluded
    # A concurrent writer (another replica) may have stored a newer one, or a
    # deletion; only what was read from Label Studio itself overrides those.
    guard = None
    if not truth:
        guard = and_(
            Annotation.deleted.is_(False),
            or_(
                Annotation.ls_updated_at.is_(None),
                fresh.ls_updated_at.is_(None),
                fresh.ls_updated_at >= Annotation.ls_updated_at,
            ),
        )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[Annotation.ls_annotation_id],
            set_={name: fresh[name] for name in _REPLACED},
            where=guard,
        ),
        rows,
    )


async def write_truth(
    session: AsyncSession, rows: Sequence[tuple[StudioAnnotation, int, int]]
) -> None:
    """Store annotations as read from Label Studio: (annotation, project, task)."""
    if rows:
        await _write(
            session,
            [_row(note, project_id, task_id) for note, project_id, task_id in rows],
            truth=True,
        )


@dataclass(frozen=True, slots=True)
class Stored:
    """An annotation as the index holds it, for comparing with Label Studio."""

    ls_annotation_id: int
    task_id: int | None
    ls_updated_at: datetime | None
    label: str | None
    was_cancelled: bool
    deleted: bool


async def stored_for(
    session: AsyncSession, task_ids: Sequence[int], ls_annotation_ids: Sequence[int]
) -> dict[int, Stored]:
    """The index's annotations of these tasks, or with these Label Studio ids."""
    if not task_ids and not ls_annotation_ids:
        return {}
    rows = await session.execute(
        select(
            Annotation.ls_annotation_id,
            Annotation.task_id,
            Annotation.ls_updated_at,
            Annotation.label,
            Annotation.was_cancelled,
            Annotation.deleted,
        ).where(
            or_(
                Annotation.task_id.in_(task_ids),
                Annotation.ls_annotation_id.in_(ls_annotation_ids),
            )
        )
    )
    return {row[0]: Stored(*row) for row in rows}


async def tombstone(session: AsyncSession, ls_annotation_ids: Sequence[int]) -> Outcome:
    """Mark annotations deleted; their tasks' labels are derived again."""
    rows = (
        await session.execute(
            update(Annotation)
            .where(
                Annotation.ls_annotation_id.in_(set(ls_annotation_ids)),
                Annotation.deleted.is_(False),
            )
            .values(deleted=True, updated_at=utcnow())
            .returning(Annotation.task_id)
        )
    ).all()
    changed = {task_id for (task_id,) in rows if task_id is not None}
    if rows:
        return Outcome("applied", f"{len(rows)} deleted", changed)
    return Outcome("duplicate", "already deleted, or never seen")


async def tombstone_for_tasks(session: AsyncSession, task_ids: Sequence[int]) -> None:
    """Label Studio deletes a task's annotations with it, without telling."""
    await session.execute(
        update(Annotation)
        .where(Annotation.task_id.in_(task_ids), Annotation.deleted.is_(False))
        .values(deleted=True, updated_at=utcnow())
    )


async def attach_pending(
    session: AsyncSession, project_id: int, ls_task_ids: Sequence[int]
) -> list[int]:
    """Give annotations that arrived before their task to that task."""
    owner = (
        select(Task.id)
        .where(
            Task.ls_project_id == project_id,
            Task.ls_task_id == Annotation.ls_task_id,
            Task.status != "deleted",
        )
        .limit(1)
        .scalar_subquery()
    )
    rows = await session.execute(
        update(Annotation)
        .where(
            Annotation.task_id.is_(None),
            Annotation.ls_project_id == project_id,
            Annotation.ls_task_id.in_(ls_task_ids),
        )
        .values(task_id=owner)
        .returning(Annotation.task_id)
    )
    return sorted({task_id for (task_id,) in rows if task_id is not None})


async def derive_labels(session: AsyncSession, task_ids: Sequence[int]) -> None:
    """Label and status of each task from its annotations.

    The label is the latest non-cancelled annotation's; a task with any
    non-cancelled annotation is labeled, one without goes back to imported.
    """
    if not task_ids:
        return
    counted = and_(
        Annotation.task_id == Task.id,
        Annotation.deleted.is_(False),
        Annotation.was_cancelled.is_(False),
    )
    latest = (
        select(Annotation.label)
        .where(counted)
        .order_by(
            Annotation.ls_updated_at.desc().nulls_last(),
            Annotation.ls_annotation_id.desc(),
        )
        .limit(1)
        .scalar_subquery()
    )
    await session.execute(
        update(Task)
        .where(Task.id.in_(task_ids), Task.status.in_(("imported", "labeled")))
        .values(
            label=latest,
            status=case((exists().where(counted), "labeled"), else_="imported"),
            updated_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
