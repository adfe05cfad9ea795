"""Annotations arriving by webhook, checked against what the index holds.

A group commit of webhook deliveries reads, in one go, what the index knows
of their annotations and tasks, decides for each one whether it is new,
a repeat, older than what is held, or known to be gone, and queues one
upsert for those that change anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from labelhub.store.annotations import ANNOTATIONS, TASKS, row_of, write_statement
from labelhub.store.pipeline import Batch
from labelhub.store.sql import dialect, id_list, in_array

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
    state = await _state(batch, incoming)
    rows: list[dict[str, Any]] = []
    verdicts: list[tuple[str, int | None]] = []
    for item in incoming:
        note = item.note
        key = (item.project_id, note.ls_task_id, item.labelhub_id)
        task_id = state.owners.get(key)
        before = state.known.get(note.ls_annotation_id)
        status = _verdict(note, before)
        if status == "applied" and before is None and state.gone(key, task_id, note):
            status = "stale"
        if status == "applied" and task_id is None:
            status = "pending"
        if status in ("applied", "pending"):
            rows.append(row_of(note, item.project_id, task_id))
            state.known[note.ls_annotation_id] = Known(note.updated_at, False)
        verdicts.append((status, task_id))
    if rows:
        await batch.write(*write_statement(batch.session, rows, truth=False))
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


def _known_query(postgresql: bool) -> Any:
    stored = ANNOTATIONS.c
    return select(stored.ls_annotation_id, stored.ls_updated_at, stored.deleted).where(
        in_array(stored.ls_annotation_id, "ids", postgresql)
    )


def _live_tasks_query(postgresql: bool) -> Any:
    return select(
        TASKS.c.id, TASKS.c.ls_project_id, TASKS.c.ls_task_id, TASKS.c.ls_updated_at
    ).where(
        in_array(TASKS.c.ls_project_id, "projects", postgresql),
        in_array(TASKS.c.ls_task_id, "ls_ids", postgresql),
        TASKS.c.status != "deleted",
    )


def _own_tasks_query(postgresql: bool) -> Any:
    return select(
        TASKS.c.id, TASKS.c.status, TASKS.c.ls_project_id, TASKS.c.ls_task_id
    ).where(in_array(TASKS.c.id, "ids", postgresql))


_KNOWN = {True: _known_query(True), False: _known_query(False)}
_LIVETASKS = {True: _live_tasks_query(True), False: _live_tasks_query(False)}
_OWNTASKS = {True: _own_tasks_query(True), False: _own_tasks_query(False)}
# An incoming annotation's task: (project, Label Studio task, labelhub's id).
TaskKey = tuple[int | None, int, int | None]


@dataclass
class _State:
    """What the index holds about a batch of incoming annotations."""

    known: dict[int, Known]
    owners: dict[TaskKey, int]
    # Each task's Label Studio `updated_at` when reconciliation last read
    # all its annotations.
    verified_at: dict[int, datetime | None]
    # Tasks of labelhub's that are deleted, or now another Label Studio task.
    departed: set[TaskKey]

    def gone(self, key: TaskKey, task_id: int | None, note: StudioAnnotation) -> bool:
        """Whether an annotation the index never held is known to be gone.

        Its task is gone; or reconciliation read the task's annotations from
        Label Studio when the task was as new as this annotation or newer
        (every annotation change moves the task's `updated_at`), and this
        one was not among them: it was deleted before labelhub saw it.
        """
        if key in self.departed:
            return True
        verified_at = self.verified_at.get(task_id) if task_id is not None else None
        return (
            verified_at is not None
            and note.updated_at is not None
            and note.updated_at <= verified_at
        )


async def _state(batch: Batch, incoming: Sequence[Incoming]) -> _State:
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
            _LIVETASKS[postgresql],
            {
                "projects": id_list(projects, postgresql),
                "ls_ids": id_list(ls_ids, postgresql),
            },
        ),
    )
    known = {ls_id: Known(updated_at, deleted) for ls_id, updated_at, deleted in stored}
    live = {(project, ls_task): task for task, project, ls_task, _ in live_rows}
    verified_at = {task: verified for task, _, _, verified in live_rows}
    owners: dict[TaskKey, int] = {}
    for item in incoming:
        owner = live.get((item.project_id, item.note.ls_task_id))
        if owner is not None and item.labelhub_id in (None, owner):
            owners[(item.project_id, item.note.ls_task_id, item.labelhub_id)] = owner
    departed = await _departed(batch, incoming, owners, postgresql)
    return _State(known, owners, verified_at, departed)


async def _departed(
    batch: Batch,
    incoming: Sequence[Incoming],
    owners: dict[TaskKey, int],
    postgresql: bool,
) -> set[TaskKey]:
    """Keys of annotations whose labelhub task is deleted or another's now.

    Read only when some annotation names a labelhub task that is not the
    live owner of its Label Studio task: a rare case, off the common path.
    """
    orphans = {
        (item.project_id, item.note.ls_task_id, item.labelhub_id)
        for item in incoming
        if item.labelhub_id is not None
    } - owners.keys()
    if not orphans:
        return set()
    wanted = {labelhub_id for _, _, labelhub_id in orphans}
    (rows,) = await batch.read(
        (_OWNTASKS[postgresql], {"ids": id_list(wanted, postgresql)})
    )
    tasks = {
        task_id: (status, project, ls_task)
        for task_id, status, project, ls_task in rows
    }
    departed: set[TaskKey] = set()
    for key in orphans:
        project, ls_task_id, labelhub_id = key
        found = tasks.get(labelhub_id)
        if found is None:
            continue
        status, linked_project, linked_ls_task = found
        if status == "deleted" or (
            linked_ls_task is not None
            and (linked_project, linked_ls_task) != (project, ls_task_id)
        ):
            departed.add(key)
    return departed
