"""Label Studio's JSON, turned into labelhub's terms.

Webhook bodies and task-list entries are parsed into small frozen records.
Anything of the wrong shape raises `Malformed` naming the field, so a bad
delivery is refused clearly instead of half-applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from labelhub.studio.client import LABELHUB_ID

ANNOTATION_ACTIONS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED", "ANNOTATIONS_CREATED")


class Malformed(ValueError):
    """A Label Studio payload that does not have the shape labelhub expects."""


# Label Studio's ids are database keys: positive, and within 64 bits
# (tasks, annotations) or 32 (projects, users), as labelhub stores them.
MAX_ID = 2**63 - 1
MAX_SMALL_ID = 2**31 - 1


def parse_id(value: Any, field: str, maximum: int = MAX_ID) -> int:
    """A Label Studio id, or Malformed naming the field."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise Malformed(f"{field}: expected an integer, got {type(value).__name__}")
    if not 0 < value <= maximum:
        raise Malformed(f"{field}: {value} is not an id (1 to {maximum})")
    return value


def _flag(value: Any, field: str) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise Malformed(f"{field}: expected true or false, got {type(value).__name__}")
    return value


def _dict(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Malformed(f"{field}: expected an object, got {type(value).__name__}")
    return value


def _list(value: Any, field: str) -> list[Any]:
    if not isinstance(value, list):
        raise Malformed(f"{field}: expected a list, got {type(value).__name__}")
    return value


def parse_time(value: Any, field: str) -> datetime | None:
    """Label Studio's ISO timestamps (`…Z`) as aware UTC datetimes."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise Malformed(f"{field}: expected a timestamp, got {type(value).__name__}")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Malformed(f"{field}: {value!r} is not a timestamp") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def label_of(result: list[Any], from_name: str | None) -> str | None:
    """The chosen value of the Choices control `from_name` (default: the first)."""
    for region in result:
        if not isinstance(region, dict) or region.get("type") != "choices":
            continue
        if from_name is not None and region.get("from_name") != from_name:
            continue
        choices = (region.get("value") or {}).get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], str):
            return choices[0]
    return None


def labelhub_id_of(task: dict[str, Any]) -> int | None:
    """labelhub's own task id, carried in a Label Studio task's data or meta."""
    for part in ("data", "meta"):
        holder = task.get(part)
        if isinstance(holder, dict):
            value = holder.get(LABELHUB_ID)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return None


@dataclass(frozen=True, slots=True)
class StudioAnnotation:
    ls_annotation_id: int
    ls_task_id: int
    project_id: int | None
    completed_by: int | None
    result: list[Any]
    label: str | None
    was_cancelled: bool
    created_at: datetime | None
    updated_at: datetime | None


def parse_annotation(
    raw: Any, from_name: str | None, field: str = "annotation"
) -> StudioAnnotation:
    note = _dict(raw, field)
    result = _list(
        note.get("result") if note.get("result") is not None else [], f"{field}.result"
    )
    completed_by = note.get("completed_by")
    if isinstance(completed_by, dict):  # some answers embed the user
        completed_by = completed_by.get("id")
    if not isinstance(completed_by, int) or not 0 < completed_by <= MAX_SMALL_ID:
        completed_by = None  # who did it is a detail: not a reason to refuse
    project = note.get("project")
    return StudioAnnotation(
        ls_annotation_id=parse_id(note.get("id"), f"{field}.id"),
        ls_task_id=parse_id(note.get("task"), f"{field}.task"),
        project_id=project if isinstance(project, int) else None,
        completed_by=completed_by,
        result=result,
        label=label_of(result, from_name),
        was_cancelled=_flag(note.get("was_cancelled"), f"{field}.was_cancelled"),
        created_at=parse_time(note.get("created_at"), f"{field}.created_at"),
        updated_at=parse_time(note.get("updated_at"), f"{field}.updated_at"),
    )


@dataclass(frozen=True, slots=True)
class StudioTask:
    ls_task_id: int
    labelhub_id: int | None
    updated_at: datetime | None
    data: dict[str, Any]


def parse_task(raw: Any, field: str = "task") -> StudioTask:
    return StudioTask(*_task_fields(raw, field))


def _task_fields(
    raw: Any, field: str
) -> tuple[int, int | None, datetime | None, dict[str, Any]]:
    task = _dict(raw, field)
    data = task.get("data")
    return (
        parse_id(task.get("id"), f"{field}.id"),
        labelhub_id_of(task),
        parse_time(task.get("updated_at"), f"{field}.updated_at"),
        data if isinstance(data, dict) else {},
    )


# Not frozen: a reconciliation builds one per task of every page, and a
# frozen dataclass takes four times as long to build.
@dataclass(slots=True)
class ListedTask:
    """A task as Label Studio's task list shows it with `fields=all`."""

    ls_task_id: int
    labelhub_id: int | None
    updated_at: datetime | None
    data: dict[str, Any]
    annotations: tuple[StudioAnnotation, ...]


def parse_listed_task(raw: Any, from_name: str | None) -> ListedTask:
    ls_task_id, labelhub_id, updated_at, data = _task_fields(raw, "task")
    notes = raw.get("annotations")
    annotations: tuple[StudioAnnotation, ...] = ()
    if notes:
        field = f"task {ls_task_id} annotation"
        annotations = tuple(
            [parse_annotation(note, from_name, field) for note in notes]
        )
    return ListedTask(ls_task_id, labelhub_id, updated_at, data, annotations)
