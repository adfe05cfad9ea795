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
    BigInteger,
    Table,
    Text,
    and_,
    any_,
    bindparam,
    case,
    exists,
    or_,
    select,
    text,
    update,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from labelhub.store.models import Annotation, Task, UTCDateTime, utcnow
from labelhub.store.outcome import Outcome
from labelhub.store.pipeline import Batch
from labelhub.store.sql import among, dialect, id_list, upsert

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
    batch: Batch, incoming: Sequence[Incoming]
) -> list[tuple[str, int | None]]:
    """Store annotations from Label Studio; older or repeated ones change nothing.

    Answers, for each one, its status (`applied`, `pending` when its task is
    not known yet, `duplicate` or `stale`) and the task it belongs to. What
    the index holds is read in one go; the write is queued on `batch`.
    """
    known, owners = await _state(batch, incoming)
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
        await batch.write(*_write_statement(batch.session, rows, truth=False))
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


# The webhook path runs these for every group commit: built once, their
# compiled form and cache key are reused instead of rebuilt per batch.
_ANNOTATIONS = cast(Table, Annotation.__table__)
_TASKS = cast(Table, Task.__table__)


def _any(column: Any, name: str, postgresql: bool) -> Any:
    """`column IN (:name)`: one array parameter on PostgreSQL (given in its
    text form, see `id_list`), so that the SQL text and its prepared
    statement are the same whatever the list's length."""
    if postgresql:
        array = sql_cast(bindparam(name, type_=Text), ARRAY(BigInteger))
        return column == any_(array)
    return column.in_(bindparam(name, expanding=True))


def _known_query(postgresql: bool) -> Any:
    stored = _ANNOTATIONS.c
    return select(stored.ls_annotation_id, stored.ls_updated_at, stored.deleted).where(
        _any(stored.ls_annotation_id, "ids", postgresql)
    )


def _live_tasks_query(postgresql: bool) -> Any:
    return select(_TASKS.c.id, _TASKS.c.ls_project_id, _TASKS.c.ls_task_id).where(
        _any(_TASKS.c.ls_project_id, "projects", postgresql),
        _any(_TASKS.c.ls_task_id, "ls_ids", postgresql),
        _TASKS.c.status != "deleted",
    )


_KNOWN = {True: _known_query(True), False: _known_query(False)}
_LIVE_TASKS = {True: _live_tasks_query(True), False: _live_tasks_query(False)}


async def _state(
    batch: Batch, incoming: Sequence[Incoming]
) -> tuple[dict[int, Known], dict[tuple[int | None, int, int | None], int]]:
    """What the index knows of these annotations, and the task of each.

    labelhub's own id in the payload decides the task when present: Label
    Studio on SQLite reuses task ids, so the id alone may name a task that
    is gone.
    """
    postgresql = dialect(batch.session) == "postgresql"
    ids = {item.note.ls_annotation_id for item in incoming}
    projects = {item.project_id for item in incoming if item.project_id is not None}
    ls_ids = {item.note.ls_task_id for item in incoming}
    stored, live_rows = await batch.read(
        (_KNOWN[postgresql], {"ids": id_list(ids, postgresql)}),
        (
            _LIVE_TASKS[postgresql],
            {
                "projects": id_list(projects, postgresql),
                "ls_ids": id_list(ls_ids, postgresql),
            },
        ),
    )
    known = {ls_id: Known(updated_at, deleted) for ls_id, updated_at, deleted in stored}
    live = {(project, ls_task): task for task, project, ls_task in live_rows}
    owners: dict[tuple[int | None, int, int | None], int] = {}
    for item in incoming:
        owner = live.get((item.project_id, item.note.ls_task_id))
        if owner is not None and item.labelhub_id in (None, owner):
            owners[(item.project_id, item.note.ls_task_id, item.labelhub_id)] = owner
    return known, owners


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


def _write_statement(
    session: AsyncSession, rows: list[dict[str, Any]], *, truth: bool
) -> tuple[Any, Any]:
    """The upsert of `rows` and its parameters."""
    if dialect(session) == "postgresql":
        # One statement may change a row once: the newest of each is kept.
        newest = {row["ls_annotation_id"]: row for row in rows}
        payload = orjson.dumps(list(newest.values())).decode()
        return _PG_UPSERTS[truth], {"rows": payload}
    if truth not in _UPSERTS:
        _UPSERTS[truth] = _upsert(session, truth=truth)
    return _UPSERTS[truth], rows


def _upsert(session: AsyncSession, *, truth: bool) -> Any:
    statement = upsert(session, _ANNOTATIONS)
    fresh = statement.excluded
    stored = _ANNOTATIONS.c
    # A concurrent writer (another replica) may have stored a newer one, or a
    # deletion; only what was read from Label Studio itself overrides those.
    guard = None
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
_PG_UPSERTS = {False: text(_PG_UPSERT + _PG_GUARD), True: text(_PG_UPSERT)}


async def write_truth(
    session: AsyncSession, rows: Sequence[tuple[StudioAnnotation, int, int]]
) -> None:
    """Store annotations as read from Label Studio: (annotation, project, task)."""
    if rows:
        statement, params = _write_statement(
            session,
            [_row(note, project_id, task_id) for note, project_id, task_id in rows],
            truth=True,
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
    stored = _ANNOTATIONS.c
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
    _ANNOTATIONS.c.task_id == _TASKS.c.id,
    _ANNOTATIONS.c.deleted.is_(False),
    _ANNOTATIONS.c.was_cancelled.is_(False),
)
_LATEST_LABEL = (
    select(_ANNOTATIONS.c.label)
    .where(_COUNTED)
    .order_by(
        _ANNOTATIONS.c.ls_updated_at.desc().nulls_last(),
        _ANNOTATIONS.c.ls_annotation_id.desc(),
    )
    .limit(1)
    .scalar_subquery()
)


def _derive_query(postgresql: bool) -> Any:
    return (
        update(_TASKS)
        .where(
            _any(_TASKS.c.id, "task_ids", postgresql),
            # Two comparisons rather than IN: an IN list is rendered only at
            # execution, which a queued statement does not go through.
            or_(_TASKS.c.status == "imported", _TASKS.c.status == "labeled"),
        )
        .values(
            label=_LATEST_LABEL,
            status=case((exists().where(_COUNTED), "labeled"), else_="imported"),
            updated_at=bindparam("now", type_=UTCDateTime()),
        )
    )


_DERIVE = {True: _derive_query(True), False: _derive_query(False)}
