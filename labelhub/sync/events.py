"""Webhook deliveries as events, and their application to the shadow index.

`parse_event` turns a delivery's JSON into one `Event`; `apply_events`
applies a batch of them in one transaction (the receiver commits deliveries
in groups) and says what each one did. Applying an event twice changes
nothing the second time, and an event older than what the index holds changes
nothing at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from labelhub.store import annotations as annotation_store
from labelhub.store import incoming as incoming_store
from labelhub.store import sync_state
from labelhub.store import tasks as task_store
from labelhub.store.outcome import Outcome
from labelhub.store.pipeline import Batch
from labelhub.studio.payloads import (
    MAX_SMALL_ID,
    Malformed,
    StudioAnnotation,
    StudioTask,
    parse_annotation,
    parse_id,
    parse_task,
)

KNOWN_ACTIONS = (
    "ANNOTATION_CREATED",
    "ANNOTATION_UPDATED",
    "ANNOTATIONS_CREATED",
    "ANNOTATIONS_DELETED",
    "TASKS_CREATED",
    "TASKS_DELETED",
    "PROJECT_UPDATED",
)


@dataclass(frozen=True)
class Event:
    """One delivery: its action, project, and what it says changed."""

    action: str
    project_id: int | None
    annotations: tuple[tuple[StudioAnnotation, StudioTask | None], ...] = ()
    deleted_annotation_ids: tuple[int, ...] = ()
    tasks: tuple[StudioTask, ...] = ()
    deleted_task_ids: tuple[int, ...] = ()
    without_payload: bool = False

    def ls_ids(self) -> dict[str, list[int]]:
        """The Label Studio ids the event names, for the audit trail."""
        found: dict[str, list[int]] = {}
        notes = [note.ls_annotation_id for note, _ in self.annotations]
        notes += list(self.deleted_annotation_ids)
        task_ids = [note.ls_task_id for note, _ in self.annotations]
        task_ids += [task.ls_task_id for task in self.tasks]
        task_ids += list(self.deleted_task_ids)
        if notes:
            found["annotations"] = notes[:100]
        if task_ids:
            found["tasks"] = sorted(set(task_ids))[:100]
        return found


def parse_event(body: Any, from_name: str | None, project_hint: int | None) -> Event:
    """The event a delivery carries; Malformed names what is wrong with it."""
    if not isinstance(body, dict):
        raise Malformed("the body must be a JSON object")
    action = body.get("action")
    if not isinstance(action, str) or not action:
        raise Malformed("action: a non-empty string is required")
    project_id = _project_of(body, project_hint)
    if set(body) == {"action"}:
        return Event(action, project_id, without_payload=True)

    if action in ("ANNOTATION_CREATED", "ANNOTATION_UPDATED"):
        pairs = [
            (
                parse_annotation(body.get("annotation"), from_name),
                _task(body.get("task")),
            )
        ]
    elif action == "ANNOTATIONS_CREATED":
        pairs = _annotation_list(body, from_name)
    else:
        pairs = []
    return Event(
        action,
        project_id,
        annotations=tuple(pairs),
        deleted_annotation_ids=_ids(body, "annotations")
        if action == "ANNOTATIONS_DELETED"
        else (),
        tasks=_tasks(body) if action == "TASKS_CREATED" else (),
        deleted_task_ids=_ids(body, "tasks") if action == "TASKS_DELETED" else (),
    )


def _project_of(body: dict[str, Any], hint: int | None) -> int | None:
    project = body.get("project")
    if isinstance(project, dict):
        project = project.get("id")
    if isinstance(project, int) and not isinstance(project, bool):
        return parse_id(project, "project.id", MAX_SMALL_ID)
    return hint


def _task(raw: Any) -> StudioTask | None:
    return parse_task(raw) if raw is not None else None


def _annotation_list(
    body: dict[str, Any], from_name: str | None
) -> list[tuple[StudioAnnotation, StudioTask | None]]:
    raw_notes = body.get("annotation")
    if not isinstance(raw_notes, list):
        raise Malformed("annotation: expected a list for ANNOTATIONS_CREATED")
    listed = body.get("task")
    raw_tasks = listed if isinstance(listed, list) else []
    by_id = {}
    for index, raw in enumerate(raw_tasks):
        task = parse_task(raw, f"task[{index}]")
        by_id[task.ls_task_id] = task
    notes = [
        parse_annotation(raw, from_name, f"annotation[{index}]")
        for index, raw in enumerate(raw_notes)
    ]
    return [(note, by_id.get(note.ls_task_id)) for note in notes]


def _ids(body: dict[str, Any], key: str) -> tuple[int, ...]:
    listed = body.get(key)
    if not isinstance(listed, list):
        raise Malformed(f"{key}: expected a list of {{'id': …}}")
    ids = []
    for index, entry in enumerate(listed):
        value = entry.get("id") if isinstance(entry, dict) else None
        ids.append(parse_id(value, f"{key}[{index}].id"))
    return tuple(ids)


def _tasks(body: dict[str, Any]) -> tuple[StudioTask, ...]:
    listed = body.get("tasks")
    if not isinstance(listed, list):
        raise Malformed("tasks: expected a list")
    return tuple(parse_task(raw, f"tasks[{index}]") for index, raw in enumerate(listed))


async def apply_events(
    batch: Batch, events: list[Event], tracked_projects: set[int]
) -> list[Outcome]:
    """Apply a batch in the caller's transaction; one outcome per event.

    Consecutive annotation events are written together, in a few statements
    for the whole run, and every touched task's label is derived once. The
    annotation writes and the derivation are queued on `batch`; the other
    events' statements run in order after what was queued before them.
    """
    outcomes: list[Outcome] = []
    run: list[tuple[int, Event]] = []
    for event in events:
        screened = _screen(event, tracked_projects)
        if screened is None and event.annotations:
            run.append((len(outcomes), event))
            outcomes.append(Outcome("pending"))
            continue
        await _write_annotations(batch, run, outcomes)
        run = []
        if screened is None:
            await batch.flush()
        outcomes.append(
            screened or await _apply_other(batch.session, event, tracked_projects)
        )
    await _write_annotations(batch, run, outcomes)

    touched = sorted({task for outcome in outcomes for task in outcome.changed_tasks})
    if touched:
        await batch.write(*annotation_store.derive_statement(batch.session, touched))
    return outcomes


def _screen(event: Event, tracked: set[int]) -> Outcome | None:
    """The outcome of an event that needs no data, or None to apply it."""
    if event.action not in KNOWN_ACTIONS:
        return Outcome("ignored", f"unknown action {event.action}")
    if event.action == "PROJECT_UPDATED":
        return Outcome("ignored", "project settings are not mirrored")
    if event.project_id is not None and event.project_id not in tracked:
        return Outcome(
            "ignored", f"project {event.project_id} is not one of labelhub's"
        )
    return None


async def _write_annotations(
    batch: Batch, run: list[tuple[int, Event]], outcomes: list[Outcome]
) -> None:
    if not run:
        return
    incoming = [
        incoming_store.Incoming(event.project_id, note, task)
        for _, event in run
        for note, task in event.annotations
    ]
    verdicts = iter(await incoming_store.upsert_from_studio(batch, incoming))
    for index, event in run:
        mine = [next(verdicts) for _ in event.annotations]
        statuses = [status for status, _ in mine]
        overall = next(
            (s for s in ("applied", "pending", "duplicate", "stale") if s in statuses),
            "duplicate",
        )
        changed = {task for status, task in mine if status == "applied" and task}
        outcomes[index] = Outcome(overall, _tally(statuses), changed)


def _tally(statuses: list[str]) -> str:
    seen: dict[str, int] = {}
    for status in statuses:
        seen[status] = seen.get(status, 0) + 1
    return ", ".join(f"{n} {status}" for status, n in seen.items())


async def _apply_other(
    session: AsyncSession, event: Event, tracked: set[int]
) -> Outcome:
    if event.without_payload:
        await sync_state.request_early(session, event.project_id, tracked)
        return Outcome("ignored", "no payload: early reconciliation requested")
    if event.action == "ANNOTATIONS_DELETED":
        return await annotation_store.tombstone(session, event.deleted_annotation_ids)
    if event.action == "TASKS_DELETED":
        return await task_store.mark_deleted(
            session, event.project_id, event.deleted_task_ids
        )
    if event.action == "TASKS_CREATED":
        return await task_store.link_created(session, event.project_id, event.tasks)
    return Outcome("ignored", f"{event.action} carried no annotation")
