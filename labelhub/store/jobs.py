"""The jobs table: enqueue, claim with a lease, report, finish.

A job is claimed by one runner at a time: on PostgreSQL the claim skips rows
another runner has locked (`FOR UPDATE SKIP LOCKED`); SQLite has one writer.
A running job whose lease expired (its daemon died) is claimable again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from labelhub.errors import Conflict, NotFound
from labelhub.store.models import Job, utcnow

ACTIVE_STATUSES = ("queued", "running")


async def enqueue(
    session: AsyncSession,
    kind: str,
    *,
    dataset_id: int | None = None,
    ls_project_id: int | None = None,
    params: dict[str, Any] | None = None,
    requested_by: int | None = None,
) -> Job:
    """A new queued job; 409 naming the job already queued or running for it."""
    job = Job(
        kind=kind,
        dataset_id=dataset_id,
        ls_project_id=ls_project_id,
        params=params,
        requested_by=requested_by,
        status="queued",
        message="queued",
    )
    try:
        async with session.begin_nested():
            session.add(job)
    except IntegrityError:
        raise await _busy(session, kind, dataset_id, ls_project_id) from None
    return job


async def _busy(
    session: AsyncSession, kind: str, dataset_id: int | None, ls_project_id: int | None
) -> Conflict:
    query = select(Job).where(Job.status.in_(ACTIVE_STATUSES), Job.kind == kind)
    if dataset_id is not None:
        query = query.where(Job.dataset_id == dataset_id)
        subject = f"dataset {dataset_id}"
    else:
        query = query.where(Job.ls_project_id == ls_project_id)
        subject = f"Label Studio project {ls_project_id}"
    other = await session.scalar(query.limit(1))
    which = f"job {other.id} ({other.status})" if other else "another job"
    return Conflict(
        f"an {kind} of {subject} is already queued or running: {which}",
        details={"job_id": other.id if other else None},
    )


async def claim(session: AsyncSession, owner: str, lease_s: float) -> Job | None:
    """Take the oldest claimable job for `owner`, or None when there is none."""
    now = utcnow()
    claimable = or_(
        Job.status == "queued",
        and_(Job.status == "running", Job.lease_expires_at < now),
    )
    oldest = (
        select(Job.id)
        .where(claimable)
        .order_by(Job.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    statement = (
        update(Job)
        .where(Job.id == oldest, claimable)
        .values(
            status="running",
            message="running",
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=lease_s),
            attempts=Job.attempts + 1,
            started_at=func.coalesce(Job.started_at, now),
            updated_at=now,
        )
        .returning(Job)
        .execution_options(synchronize_session=False)
    )
    return (await session.scalars(statement)).one_or_none()


def _owned(job_id: int, owner: str) -> Any:
    return and_(Job.id == job_id, Job.lease_owner == owner, Job.status == "running")


async def renew_lease(
    session: AsyncSession, job_id: int, owner: str, lease_s: float
) -> bool:
    """Extend the lease; False when `owner` no longer holds the job."""
    now = utcnow()
    result = await session.execute(
        update(Job)
        .where(_owned(job_id, owner))
        .values(lease_expires_at=now + timedelta(seconds=lease_s), updated_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def report(
    session: AsyncSession,
    job_id: int,
    owner: str,
    *,
    done: int,
    total: int | None,
    message: str,
) -> None:
    await session.execute(
        update(Job)
        .where(_owned(job_id, owner))
        .values(
            progress_done=done,
            progress_total=total,
            message=message,
            updated_at=utcnow(),
        )
    )


async def finish(
    session: AsyncSession,
    job_id: int,
    owner: str,
    *,
    status: str,
    message: str,
    error: str | None = None,
    result: dict[str, Any] | None = None,
) -> bool:
    now = utcnow()
    outcome = await session.execute(
        update(Job)
        .where(_owned(job_id, owner))
        .values(
            status=status,
            message=message,
            error=error,
            result=result,
            finished_at=now,
            updated_at=now,
            lease_owner=None,
            lease_expires_at=None,
        )
    )
    return bool(outcome.rowcount)  # type: ignore[attr-defined]


async def release(session: AsyncSession, job_id: int, owner: str) -> None:
    """Hand a job back to the queue (the daemon is stopping) to resume later."""
    await session.execute(
        update(Job)
        .where(_owned(job_id, owner))
        .values(
            status="queued",
            message="interrupted; queued to resume",
            lease_owner=None,
            lease_expires_at=None,
            updated_at=utcnow(),
        )
    )


async def get(session: AsyncSession, job_id: int) -> Job:
    job = await session.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    return job


async def requeue_failed(session: AsyncSession, job_id: int) -> Job:
    """Queue a failed job again; it resumes where it stopped, with a fresh
    count of attempts (a person asked for it)."""
    job = await get(session, job_id)
    if job.status != "failed":
        raise Conflict(
            f"job {job_id} is {job.status}; only a failed job can be retried"
        )
    try:
        async with session.begin_nested():
            job.status = "queued"
            job.attempts = 0
            job.message = "queued for retry"
            job.error = None
            job.finished_at = None
            job.updated_at = utcnow()
    except IntegrityError:
        raise await _busy(
            session, job.kind, job.dataset_id, job.ls_project_id
        ) from None
    return job


async def newest(
    session: AsyncSession,
    *,
    status: str | None = None,
    kind: str | None = None,
    dataset_id: int | None = None,
    ls_project_id: int | None = None,
    before: int | None = None,
    limit: int = 50,
) -> Sequence[Job]:
    """Jobs newest first, filtered; `before` continues a previous page."""
    query = select(Job)
    if status is not None:
        query = query.where(Job.status == status)
    if kind is not None:
        query = query.where(Job.kind == kind)
    if dataset_id is not None:
        query = query.where(Job.dataset_id == dataset_id)
    if ls_project_id is not None:
        query = query.where(Job.ls_project_id == ls_project_id)
    if before is not None:
        query = query.where(Job.id < before)
    return (await session.scalars(query.order_by(Job.id.desc()).limit(limit))).all()
