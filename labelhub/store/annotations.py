"""Annotations in the shadow index, and the labels derived from them.

An annotation is keyed by its Label Studio id. A deleted one is kept as a
tombstone so that a late or replayed webhook cannot bring it back; only
reconciliation (which reads Label Studio itself) overrides a tombstone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

import orjson
from sqlalchemy import (
    Table,
    and_,
    bindparam,
    case,
    exists,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from labelhub.store.models import Annotation, Task, UTCDateTime, utcnow
from labelhub.store.outcome import Outcome
from labelhub.store.sql import among, dialect, id_list, in_array, upsert

if TYPE_CHECKING:
    from labelhub.studio.payloads import StudioAnnotation


# Statements on the webhook path are built once on these Core tables: their
# compiled form and cache key are reused instead of rebuilt per batch.
ANNOTATIONS = cast(Table, Annotation.__table__)
TASKS = cast(Table, Task.__table__)


def row_of(
    note: StudioAnnotation, project_id: int | None, task_id: int | None
) -> dict[str, Any]:
    """The row an annotation from Label Studio is stored as."""
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


def write_statement(
    session: AsyncSession,
    rows: list[dict[str, Any]],
    *,
    truth: bool,
    unchanged_since: datetime | None = None,
) -> tuple[Any, Any]:
    """The upsert of `rows` and its parameters.

    What was read from Label Studio (`truth`) replaces what the index holds,
    deletions included, unless the index changed that row at or after
    `unchanged_since`: a webhook applied meanwhile is newer than the read.
    """
    if dialect(session) == "postgresql":
        # One statement may change a row once: the newest of each is kept.
        newest = {row["ls_annotation_id"]: row for row in rows}
        payload = orjson.dumps(list(newest.values())).decode()
        if truth:
            return _PG_UPSERTS[truth], {"rows": payload, "since": unchanged_since}
        return _PG_UPSERTS[truth], {"rows": payload}
    if truth not in _UPSERTS:
        _UPSERTS[truth] = _upsert(session, truth=truth)
    if truth:
        return _UPSERTS[truth], [{**row, "since": unchanged_since} for row in rows]
    return _UPSERTS[truth], rows


def _upsert(session: AsyncSession, *, truth: bool) -> Any:
    statement = upsert(session, ANNOTATIONS)
    fresh = statement.excluded
    stored = ANNOTATIONS.c
    # A concurrent writer (another replica) may have stored a newer one, or a
    # deletion; only what was read from Label Studio itself overrides those.
    guard: Any = stored.updated_at < bindparam("since", type_=UTCDateTime())
    if not truth:
        guard = and_(
            stored.deleted.is_(False),
            or_(
                stored.ls_updated_at.is_(None),
                fresh.ls_updated_at.is_(None),
                fresh.ls_updated_at >= stored.ls_updated_at,
            ),
        )
    return statement.on_conflict_do_update(
        index_elements=[stored.ls_annotation_id],
        set_={name: fresh[name] for name in _REPLACED},
        where=guard,
    )


_UPSERTS: dict[bool, Any] = {}
# On PostgreSQL a group commit's annotations travel as one JSON parameter:
# one statement, and no per-row parameter binding in Python. The same guard
# as `_upsert`'s; fixed text only, nothing from outside reaches the SQL.
_COLUMNS = ", ".join(("ls_annotation_id", "created_at", *_REPLACED))
_PG_UPSERT = (
    f"INSERT INTO annotations AS stored ({_COLUMNS}) "  # noqa: S608
    f"SELECT {_COLUMNS} FROM jsonb_populate_recordset("
    "NULL::annotations, CAST(:rows AS jsonb)) "
    "ON CONFLICT (ls_annotation_id) DO UPDATE SET "
    + ", ".join(f"{name} = excluded.{name}" for name in _REPLACED)
)
_PG_GUARD = (
    " WHERE NOT stored.deleted AND (stored.ls_updated_at IS NULL"
    " OR excluded.ls_updated_at IS NULL"
    " OR excluded.ls_updated_at >= stored.ls_updated_at)"
)
_PG_TRUTH_GUARD = " WHERE stored.updated_at < CAST(:since AS timestamptz)"
_PG_UPSERTS = {
    False: text(_PG_UPSERT + _PG_GUARD),
    True: text(_PG_UPSERT + _PG_TRUTH_GUARD),
}


async def write_truth(
    session: AsyncSession,
    rows: Sequence[tuple[StudioAnnotation, int, int]],
    unchanged_since: datetime,
) -> None:
    """Store annotations as read from Label Studio: (annotation, project, task).

    A row the index changed at or after `unchanged_since` (the time the read
    began) is left as it is; the next reconciliation looks at it again.
    """
    if rows:
        statement, params = write_statement(
            session,
            [row_of(note, project_id, task_id) for note, project_id, task_id in rows],
            truth=True,
            unchanged_since=unchanged_since,
        )
        await session.execute(statement, params)


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
    stored = ANNOTATIONS.c
    rows = await session.execute(
        select(
            stored.ls_annotation_id,
            stored.task_id,
            stored.ls_updated_at,
            stored.label,
            stored.was_cancelled,
            stored.deleted,
        ).where(
            or_(
                among(session, stored.task_id, task_ids),
                among(session, stored.ls_annotation_id, ls_annotation_ids),
            )
        )
    )
    return {row[0]: Stored(*row) for row in rows}


async def tombstone(
    session: AsyncSession,
    ls_annotation_ids: Sequence[int],
    unchanged_since: datetime | None = None,
) -> Outcome:
    """Mark annotations deleted; their tasks' labels are derived again.

    With `unchanged_since`, annotations the index changed at or after it are
    left alone (a reconciliation's read cannot know of them).
    """
    statement = update(Annotation).where(
        Annotation.ls_annotation_id.in_(set(ls_annotation_ids)),
        Annotation.deleted.is_(False),
    )
    if unchanged_since is not None:
        statement = statement.where(Annotation.updated_at < unchanged_since)
    rows = (
        await session.execute(
            statement.values(deleted=True, updated_at=utcnow()).returning(
                Annotation.task_id
            )
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
            among(session, Annotation.ls_task_id, ls_task_ids),
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
    if task_ids:
        await session.execute(*derive_statement(session, task_ids))


def derive_statement(
    session: AsyncSession, task_ids: Sequence[int]
) -> tuple[Any, dict[str, Any]]:
    """The statement `derive_labels` runs, for a caller that queues it."""
    postgresql = dialect(session) == "postgresql"
    return _DERIVE[postgresql], {
        "task_ids": id_list(task_ids, postgresql),
        "now": utcnow(),
    }


_COUNTED = and_(
    ANNOTATIONS.c.task_id == TASKS.c.id,
    ANNOTATIONS.c.deleted.is_(False),
    ANNOTATIONS.c.was_cancelled.is_(False),
)
_LATEST_LABEL = (
    select(ANNOTATIONS.c.label)
    .where(_COUNTED)
    .order_by(
        ANNOTATIONS.c.ls_updated_at.desc().nulls_last(),
        ANNOTATIONS.c.ls_annotation_id.desc(),
    )
    .limit(1)
    .scalar_subquery()
)


def _derive_query(postgresql: bool) -> Any:
    return (
        update(TASKS)
        .where(
            in_array(TASKS.c.id, "task_ids", postgresql),
            # Two comparisons rather than IN: an IN list is rendered only at
            # execution, which a queued statement does not go through.
            or_(TASKS.c.status == "imported", TASKS.c.status == "labeled"),
        )
        .values(
            label=_LATEST_LABEL,
            status=case((exists().where(_COUNTED), "labeled"), else_="imported"),
            updated_at=bindparam("now", type_=UTCDateTime()),
        )
    )


_DERIVE = {True: _derive_query(True), False: _derive_query(False)}
