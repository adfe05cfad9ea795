"""Background jobs: their state, and retrying a failed one."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from labelhub import keys
from labelhub.handlers.routing import Access, Call, Routes
from labelhub.store import jobs
from labelhub.store.models import Job

routes = Routes("jobs")


class Progress(BaseModel):
    done: int
    total: int | None


class JobOut(BaseModel):
    id: int
    job_id: int
    kind: str
    status: str
    message: str
    progress: Progress
    dataset_id: int | None
    ls_project_id: int | None
    attempts: int
    error: str | None
    result: dict[str, Any] | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime

    @classmethod
    def of(cls, job: Job) -> JobOut:
        return cls(
            id=job.id,
            job_id=job.id,
            kind=job.kind,
            status=job.status,
            message=job.message,
            progress=Progress(done=job.progress_done, total=job.progress_total),
            dataset_id=job.dataset_id,
            ls_project_id=job.ls_project_id,
            attempts=job.attempts,
            error=job.error,
            result=job.result,
            created_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            updated_at=job.updated_at,
        )


class JobPath(BaseModel):
    job_id: int = Field(ge=1, le=2**31 - 1, examples=[1])


class JobListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["queued", "running", "success", "failed"] | None = None
    kind: Literal["import", "export", "reconcile"] | None = None
    dataset_id: int | None = Field(None, ge=1, le=2**31 - 1)
    ls_project_id: int | None = Field(None, ge=1, le=2**31 - 1)
    before: int | None = Field(None, ge=1, le=2**31 - 1)
    limit: int = Field(50, ge=1, le=500)


class JobPage(BaseModel):
    jobs: list[JobOut]
    next_before: int | None = Field(description="pass as `before` for older jobs")


@routes.get("/jobs/{job_id}", access=Access.ADMIN, errors=(404,))
async def get_job(call: Call, path: JobPath) -> JobOut:
    """A job's status, message, progress and (for reconciliations) drift report."""
    async with call.app[keys.SESSIONS]() as session:
        return JobOut.of(await jobs.get(session, path.job_id))


@routes.get("/jobs", access=Access.ADMIN)
async def list_jobs(call: Call, query: JobListQuery) -> JobPage:
    """Jobs, newest first, filtered by status, kind, dataset and project."""
    async with call.app[keys.SESSIONS]() as session:
        found = await jobs.newest(
            session,
            status=query.status,
            kind=query.kind,
            dataset_id=query.dataset_id,
            ls_project_id=query.ls_project_id,
            before=query.before,
            limit=query.limit,
        )
    listed = [JobOut.of(job) for job in found]
    next_before = listed[-1].id if len(listed) == query.limit else None
    return JobPage(jobs=listed, next_before=next_before)


@routes.post("/jobs/{job_id}/retry", access=Access.ADMIN, errors=(404, 409))
async def retry_job(call: Call, path: JobPath) -> JobOut:
    """Queue a failed job again; it resumes from what it had done.

    409 when the job has not failed, or when another job of its kind is
    already queued or running for the same dataset.
    """
    async with call.app[keys.SESSIONS].begin() as session:
        job = await jobs.requeue_failed(session, path.job_id)
        answer = JobOut.of(job)
    call.app[keys.RUNNER].wake()
    return answer
