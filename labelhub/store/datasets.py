"""Queries over datasets and their statistics."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from labelhub.errors import NotFound
from labelhub.store.models import TASK_STATUSES, Dataset, TaskCount, User


async def create(
    session: AsyncSession, name: str, ls_project_id: int | None, created_by: int | None
) -> Dataset:
    dataset = Dataset(name=name, ls_project_id=ls_project_id, created_by=created_by)
    session.add(dataset)
    await session.flush()
    return dataset


async def get(session: AsyncSession, dataset_id: int) -> Dataset:
    dataset = await session.get(Dataset, dataset_id)
    if dataset is None:
        raise NotFound(f"no dataset {dataset_id}")
    return dataset


async def list_all(session: AsyncSession) -> Sequence[Dataset]:
    return (await session.scalars(select(Dataset).order_by(Dataset.id))).all()


async def for_project(session: AsyncSession, ls_project_id: int) -> Sequence[Dataset]:
    rows = await session.scalars(
        select(Dataset)
        .where(Dataset.ls_project_id == ls_project_id)
        .order_by(Dataset.id)
    )
    return rows.all()


@dataclass
class Tally:
    """Counts of tasks by status and by label."""

    by_status: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(TASK_STATUSES, 0)
    )
    labels: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    @property
    def live(self) -> int:
        return self.total - self.by_status["deleted"]

    def add(self, status: str, label: str, n: int) -> None:
        self.by_status[status] = self.by_status.get(status, 0) + n
        if label and status != "deleted":
            self.labels[label] = self.labels.get(label, 0) + n


@dataclass
class DatasetStats:
    all: Tally = field(default_factory=Tally)
    unassigned: Tally = field(default_factory=Tally)
    annotators: dict[str, Tally] = field(default_factory=lambda: defaultdict(Tally))


async def stats(
    session: AsyncSession, dataset_ids: Sequence[int]
) -> dict[int, DatasetStats]:
    """Statistics of each dataset, read from the trigger-kept counts."""
    result: dict[int, DatasetStats] = {
        dataset_id: DatasetStats() for dataset_id in dataset_ids
    }
    if not dataset_ids:
        return result
    rows = await session.execute(
        select(
            TaskCount.dataset_id,
            TaskCount.status,
            TaskCount.label,
            TaskCount.n,
            User.username,
        )
        .outerjoin(User, User.id == TaskCount.assignee_id)
        .where(TaskCount.dataset_id.in_(dataset_ids), TaskCount.n != 0)
    )
    for dataset_id, status, label, n, username in rows:
        entry = result[dataset_id]
        entry.all.add(status, label, n)
        if username is None:
            entry.unassigned.add(status, label, n)
        else:
            entry.annotators[username].add(status, label, n)
    return result


async def assignee_tally(
    session: AsyncSession, user_id: int, dataset_id: int | None
) -> Tally:
    """One annotator's tasks by status and label, in a dataset or in all."""
    query = select(TaskCount.status, TaskCount.label, TaskCount.n).where(
        TaskCount.assignee_id == user_id, TaskCount.n != 0
    )
    if dataset_id is not None:
        query = query.where(TaskCount.dataset_id == dataset_id)
    tally = Tally()
    for status, label, n in await session.execute(query):
        tally.add(status, label, n)
    return tally
